//! A private Tor network on loopback, for tests, benchmarks and development.
//!
//! Debian's `tor` is started as a few directory authorities and relays, all on
//! 127.0.0.1 with ports chosen at start. Every relay is a guard, an HSDir and an
//! exit whose policy allows 127.0.0.0/8 and nothing else, so nothing this network
//! does ever leaves the machine. Once a consensus lists every node, the network's
//! directory holds `network.json` ([`NetworkDescription`]) with what C tor and
//! Arti clients need to join it, `client.torrc` and a shell `env` file.
//!
//! Two lifetimes: [`Lifetime::ThisProcess`] (tests: every tor is told the
//! starting process owns it, and a watcher removes the directory once that
//! process exits, however it exits) and [`Lifetime::Detached`] (`nightjar testnet
//! up`: the network runs until [`TestNetwork::stop_dir`]).

mod consensus;
mod description;
mod keys;
mod process;
mod torrc;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use description::{AuthorityInfo, NetworkDescription, NodeInfo};

/// How long a network lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until this process exits or the [`TestNetwork`] is dropped.
    ThisProcess,
    /// Until [`TestNetwork::stop_dir`] (`nightjar testnet down`).
    Detached,
}

/// How to build a network.
#[derive(Debug, Clone)]
pub struct TestNetworkOptions {
    /// Directory authorities (at least 1; 3 make votes meaningful).
    pub authorities: usize,
    /// Relays besides the authorities.
    pub relays: usize,
    /// A new consensus this often (`V3AuthVotingInterval`).
    pub voting_interval: Duration,
    /// The `tor` program.
    pub tor: PathBuf,
    /// The `tor-gencert` program.
    pub tor_gencert: PathBuf,
    /// Where the network lives; `None` for a new directory under the system's
    /// temporary directory.
    pub dir: Option<PathBuf>,
    /// See [`Lifetime`].
    pub lifetime: Lifetime,
    /// Give up if no consensus lists every node after this long.
    pub ready_timeout: Duration,
}

impl Default for TestNetworkOptions {
    fn default() -> Self {
        Self {
            authorities: 3,
            relays: 5,
            voting_interval: Duration::from_secs(20),
            tor: PathBuf::from("tor"),
            tor_gencert: PathBuf::from("tor-gencert"),
            dir: None,
            lifetime: Lifetime::ThisProcess,
            ready_timeout: Duration::from_secs(150),
        }
    }
}

/// Errors starting or finding a private network.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    /// A program (tor, tor-gencert) is missing.
    #[error("`{program}` was not found: install tor: apt-get install tor")]
    ToolMissing {
        /// The program.
        program: PathBuf,
        /// Why running it failed.
        source: std::io::Error,
    },
    /// tor-gencert or `tor --list-fingerprint` failed.
    #[error("{tool} failed: {output}")]
    Tool {
        /// Which.
        tool: String,
        /// What it said.
        output: String,
    },
    /// A tor of the network exited during start.
    #[error("tor {nickname} exited during start ({status}); its log ends with:\n{log}")]
    NodeExited {
        /// Which node.
        nickname: String,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// No complete consensus in time.
    #[error(
        "no consensus listing all {expected} tors after {waited:?} (last seen: {seen}); \
         logs are in {dir}"
    )]
    Timeout {
        /// How long we waited.
        waited: Duration,
        /// How many nodes the network has.
        expected: usize,
        /// What the last consensus held.
        seen: String,
        /// The network's directory (kept for its logs only in detached mode).
        dir: PathBuf,
    },
    /// A network is already running in that directory.
    #[error("a test network is already running in {0}; stop it first (nightjar testnet down)")]
    AlreadyRunning(PathBuf),
    /// No network is running in that directory.
    #[error("no test network is running in {0} (start one: nightjar testnet up)")]
    NotRunning(PathBuf),
    /// The directory holds something else.
    #[error("{0} is not empty and holds no test network; choose another directory")]
    ForeignDirectory(PathBuf),
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

impl TestnetError {
    fn io(context: &'static str, source: std::io::Error) -> Self {
        Self::Io { context, source }
    }

    fn spawn(program: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            Self::ToolMissing {
                program: program.to_owned(),
                source,
            }
        } else {
            Self::io("starting a program", source)
        }
    }
}

/// A running private network.
#[derive(Debug)]
pub struct TestNetwork {
    description: NetworkDescription,
    children: Vec<Child>,
    /// Kill the tors and remove the directory on drop.
    stop_on_drop: bool,
    /// Keep the directory (logs) when a start fails: only for detached networks,
    /// whose directory the user chose and removes with `down`.
    keep_files: bool,
}

impl TestNetwork {
    /// Starts a network and waits until it has a consensus listing every node
    /// (about 20 to 40 seconds with the default 20-second voting interval).
    pub async fn start(options: TestNetworkOptions) -> Result<Self, TestnetError> {
        tokio::task::spawn_blocking(move || Self::start_blocking(options))
            .await
            .map_err(|e| TestnetError::io("starting the network", std::io::Error::other(e)))?
    }

    /// [`TestNetwork::start`] for callers without a runtime: blocks the thread.
    pub fn start_blocking(options: TestNetworkOptions) -> Result<Self, TestnetError> {
        // Ports are chosen free, then released for tor to bind: another program
        // can take one in between. Start again on fresh ports when that happens.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::start_once(&options) {
                Err(TestnetError::NodeExited { log, nickname, .. })
                    if attempts < 3 && log.contains("Address already in use") =>
                {
                    tracing::warn!(%nickname, "a port was taken meanwhile; starting again");
                }
                result => return result,
            }
        }
    }

    fn start_once(options: &TestNetworkOptions) -> Result<Self, TestnetError> {
        check_tool(&options.tor)?;
        check_tool(&options.tor_gencert)?;
        let dir = prepare_dir(options.dir.as_deref())?;
        let owner = std::process::id();
        if options.lifetime == Lifetime::ThisProcess {
            process::spawn_reaper(owner, &dir)?;
        }
        let mut net = Self {
            description: NetworkDescription {
                dir: dir.clone(),
                voting_interval_secs: options.voting_interval.as_secs().max(1),
                // Tests networks have 24 voting rounds per shared-random run,
                // and tor ties the onion-service time period to that.
                hsdir_interval_secs: 24 * options.voting_interval.as_secs().max(1),
                authorities: Vec::new(),
                relays: Vec::new(),
                client_torrc: Vec::new(),
                consensus_after_ms: 0,
            },
            children: Vec::new(),
            // Until the network is up, a failure cleans up after itself.
            stop_on_drop: true,
            keep_files: options.lifetime == Lifetime::Detached,
        };
        let owner_pid = (options.lifetime == Lifetime::ThisProcess).then_some(owner);
        net.create_nodes(options, owner_pid)?;
        let started = Instant::now();
        net.wait_for_consensus(options.ready_timeout)?;
        net.description.consensus_after_ms =
            started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
        net.description
            .write_files()
            .map_err(|e| TestnetError::io("writing the network description", e))?;
        tracing::info!(
            ms = net.description.consensus_after_ms,
            nodes = net.description.node_count(),
            "private Tor network is up"
        );
        net.stop_on_drop = options.lifetime == Lifetime::ThisProcess;
        Ok(net)
    }

    /// A network already running in `dir` (started by `nightjar testnet up`).
    /// Dropping the returned value leaves it running.
    pub fn attach(dir: &Path) -> Result<Self, TestnetError> {
        let description =
            NetworkDescription::load(dir).map_err(|_| TestnetError::NotRunning(dir.to_owned()))?;
        let nodes = process::node_dirs(dir);
        if nodes.is_empty() || nodes.iter().any(|n| process::running_pid(n).is_none()) {
            return Err(TestnetError::NotRunning(dir.to_owned()));
        }
        Ok(Self {
            description,
            children: Vec::new(),
            stop_on_drop: false,
            keep_files: true,
        })
    }

    /// Stops the network running in `dir` and removes the files it made there.
    /// Returns false if nothing was running.
    pub fn stop_dir(dir: &Path) -> Result<bool, TestnetError> {
        let nodes = process::node_dirs(dir);
        let was_running = nodes.iter().any(|n| process::running_pid(n).is_some());
        process::stop_all(dir, Duration::from_secs(5));
        remove_network_files(dir)?;
        Ok(was_running)
    }

    /// What clients need to join.
    pub fn description(&self) -> &NetworkDescription {
        &self.description
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.description.dir
    }

    /// The C tor client configuration lines (`DirAuthority ...`,
    /// `TestingTorNetwork 1`, ...).
    pub fn client_torrc_lines(&self) -> &[String] {
        &self.description.client_torrc
    }

    fn create_nodes(
        &mut self,
        options: &TestNetworkOptions,
        owner_pid: Option<u32>,
    ) -> Result<(), TestnetError> {
        let dir = self.description.dir.clone();
        let count = options.authorities.max(1) + options.relays;
        let ports = free_ports(2 * count)?;
        let nicknames: Vec<(String, bool)> = (0..count)
            .map(|i| {
                if i < options.authorities.max(1) {
                    (format!("auth{i}"), true)
                } else {
                    (format!("relay{}", i - options.authorities.max(1)), false)
                }
            })
            .collect();
        let made = make_keys(options, &dir, &nicknames, &ports)?;
        let mut dir_authorities = Vec::new();
        for (node, v3) in &made {
            if let Some(v3_identity) = v3 {
                let auth = AuthorityInfo {
                    node: node.clone(),
                    v3_identity: v3_identity.clone(),
                };
                dir_authorities.push(auth.dir_authority_line());
                self.description.authorities.push(auth);
            } else {
                self.description.relays.push(node.clone());
            }
        }
        self.description.client_torrc =
            description::client_torrc_lines(&self.description.authorities);
        for (node, v3) in &made {
            let node_dir = dir.join(&node.nickname);
            let text = torrc::NodeTorrc {
                nickname: &node.nickname,
                data_dir: &node_dir,
                or_port: node.or_port,
                dir_port: node.dir_port,
                authority: v3.is_some(),
                dir_authorities: &dir_authorities,
                voting_interval_secs: self.description.voting_interval_secs,
                owner_pid,
            }
            .render();
            let torrc_path = node_dir.join("torrc");
            std::fs::write(&torrc_path, text)
                .map_err(|e| TestnetError::io("writing a torrc", e))?;
            std::fs::write(node_dir.join("resolv.conf"), torrc::RESOLV_CONF)
                .map_err(|e| TestnetError::io("writing resolv.conf", e))?;
            let detached = options.lifetime == Lifetime::Detached;
            self.children.push(process::spawn_tor(
                &options.tor,
                &node_dir,
                &torrc_path,
                detached,
            )?);
        }
        Ok(())
    }

    fn wait_for_consensus(&mut self, timeout: Duration) -> Result<(), TestnetError> {
        let expected = self.description.node_count();
        let start = Instant::now();
        let mut seen = consensus::ConsensusSummary::default();
        loop {
            self.check_children()?;
            for auth in &self.description.authorities {
                if let Ok(Some(doc)) = consensus::fetch(auth.node.dir_port) {
                    seen = consensus::summarize(&doc);
                    tracing::debug!(%seen, "consensus");
                    if seen.usable >= expected {
                        return self.wait_for_caches(&doc, start, timeout);
                    }
                    break;
                }
            }
            if start.elapsed() > timeout {
                return Err(TestnetError::Timeout {
                    waited: timeout,
                    expected,
                    seen: seen.to_string(),
                    dir: self.description.dir.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until every authority serves the consensus and all its
    /// microdescriptors, so that clients bootstrap at once instead of backing
    /// off. (Relays' caches lag by up to a minute on a young network: they asked
    /// for a consensus before there was one and back off. C tor clients here
    /// fetch from the authorities; see `client_torrc_lines`.)
    fn wait_for_caches(
        &mut self,
        consensus: &str,
        start: Instant,
        timeout: Duration,
    ) -> Result<(), TestnetError> {
        let digests = consensus::microdesc_digests(consensus);
        let ports: Vec<u16> = self
            .description
            .authorities
            .iter()
            .map(|a| a.node.dir_port)
            .collect();
        let mut pending = ports;
        loop {
            self.check_children()?;
            pending.retain(|port| !consensus::cache_ready(*port, &digests));
            if pending.is_empty() {
                tracing::debug!(ms = start.elapsed().as_millis(), "every authority is ready");
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(TestnetError::Timeout {
                    waited: timeout,
                    expected: self.description.node_count(),
                    seen: format!(
                        "a full consensus, but {} authorities lack microdescriptors",
                        pending.len()
                    ),
                    dir: self.description.dir.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn check_children(&mut self) -> Result<(), TestnetError> {
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                let node = self
                    .description
                    .authorities
                    .iter()
                    .map(|a| &a.node)
                    .chain(self.description.relays.iter())
                    .nth(i);
                let nickname = node.map(|n| n.nickname.clone()).unwrap_or_default();
                return Err(TestnetError::NodeExited {
                    log: process::log_tail(&self.description.dir.join(&nickname)),
                    nickname,
                    status: status.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        if !self.stop_on_drop {
            return;
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep_files {
            let _ = remove_network_files(&self.description.dir);
        }
    }
}

/// Fails with an installation hint if `program` cannot be run.
fn check_tool(program: &Path) -> Result<(), TestnetError> {
    let status = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| TestnetError::spawn(program, e))?;
    // tor-gencert has no --version and exits non-zero; running at all suffices.
    let _ = status;
    Ok(())
}

/// Creates (or reuses, if it held a stopped network) the network directory.
fn prepare_dir(dir: Option<&Path>) -> Result<PathBuf, TestnetError> {
    let dir = match dir {
        None => tempfile::Builder::new()
            .prefix("nightjar-testnet-")
            .tempdir()
            .map_err(|e| TestnetError::io("creating a temporary directory", e))?
            .keep(),
        Some(dir) => {
            let nodes = process::node_dirs(dir);
            if nodes.iter().any(|n| process::running_pid(n).is_some()) {
                return Err(TestnetError::AlreadyRunning(dir.to_owned()));
            }
            remove_network_files(dir)?;
            if std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
            {
                return Err(TestnetError::ForeignDirectory(dir.to_owned()));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| TestnetError::io("creating the network directory", e))?;
            dir.canonicalize()
                .map_err(|e| TestnetError::io("resolving the network directory", e))?
        }
    };
    set_private(&dir)?;
    Ok(dir)
}

/// tor refuses data directories others can read.
fn set_private(dir: &Path) -> Result<(), TestnetError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| TestnetError::io("restricting a directory's permissions", e))
}

/// Removes what a network put into `dir`, and `dir` itself if nothing else is
/// left; never anything we did not make.
fn remove_network_files(dir: &Path) -> Result<(), TestnetError> {
    if !dir.exists() {
        return Ok(());
    }
    for node in process::node_dirs(dir) {
        std::fs::remove_dir_all(&node).map_err(|e| TestnetError::io("removing a node", e))?;
    }
    for file in [
        NetworkDescription::FILE,
        NetworkDescription::CLIENT_TORRC,
        NetworkDescription::ENV_FILE,
    ] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    // Fails (and so keeps the directory) if anything else is in it.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// `n` distinct free loopback ports. All listeners are held until every port is
/// chosen so that no port is handed out twice.
fn free_ports(n: usize) -> Result<Vec<u16>, TestnetError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestnetError::io("choosing free ports", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestnetError::io("choosing free ports", e))
}

type MadeNode = (NodeInfo, Option<String>);

/// Makes every node's directory and keys, in parallel (RSA key generation is the
/// slow part of starting).
fn make_keys(
    options: &TestNetworkOptions,
    dir: &Path,
    nicknames: &[(String, bool)],
    ports: &[u16],
) -> Result<Vec<MadeNode>, TestnetError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = nicknames
            .iter()
            .enumerate()
            .map(|(i, (nickname, authority))| {
                let node_dir = dir.join(nickname);
                let (or_port, dir_port) = (ports[2 * i], ports[2 * i + 1]);
                scope.spawn(move || -> Result<MadeNode, TestnetError> {
                    std::fs::create_dir_all(&node_dir)
                        .map_err(|e| TestnetError::io("creating a node directory", e))?;
                    set_private(&node_dir)?;
                    let v3 = if *authority {
                        Some(keys::make_authority_keys(
                            &options.tor_gencert,
                            &node_dir,
                            dir_port,
                        )?)
                    } else {
                        None
                    };
                    let (rsa_identity, ed25519_identity) =
                        keys::make_relay_keys(&options.tor, &node_dir)?;
                    let node = NodeInfo {
                        nickname: nickname.clone(),
                        rsa_identity,
                        ed25519_identity,
                        address: "127.0.0.1".to_owned(),
                        or_port,
                        dir_port,
                    };
                    Ok((node, v3))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(TestnetError::io(
                        "making node keys",
                        std::io::Error::other("a key-making thread failed"),
                    ))
                })
            })
            .collect()
    })
}

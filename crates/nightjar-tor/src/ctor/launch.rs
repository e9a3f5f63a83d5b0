//! Launching our own tor: the torrc we give it, and waiting for its control port.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

use crate::TorError;
use crate::control::ControlAddr;

/// A pluggable-transport client program, as `ClientTransportPlugin` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportPlugin {
    /// The transports it provides (`obfs4`, `snowflake`, ...).
    pub transports: Vec<String>,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl TransportPlugin {
    /// Debian's obfs4proxy (`apt-get install obfs4proxy`).
    pub fn obfs4() -> Self {
        Self {
            transports: vec!["obfs4".into()],
            program: PathBuf::from("/usr/bin/obfs4proxy"),
            args: Vec::new(),
        }
    }

    /// Debian's snowflake client (`apt-get install snowflake-client`); its broker,
    /// front domain and STUN servers come from the bridge line.
    pub fn snowflake() -> Self {
        Self {
            transports: vec!["snowflake".into()],
            program: PathBuf::from("/usr/bin/snowflake-client"),
            args: Vec::new(),
        }
    }

    fn torrc_line(&self) -> String {
        let mut line = format!(
            "ClientTransportPlugin {} exec {}",
            self.transports.join(","),
            self.program.display()
        );
        for a in &self.args {
            line.push(' ');
            line.push_str(a);
        }
        line
    }
}

/// How to run tor and what to put in its configuration.
#[derive(Debug, Clone)]
pub struct TorProcessConfig {
    /// The tor program.
    pub tor: PathBuf,
    /// tor's data directory (kept between runs: a consensus cache makes start-up
    /// fast). `None`: a new temporary directory, removed when the backend is
    /// dropped.
    pub data_dir: Option<PathBuf>,
    /// More torrc lines (the private network's `DirAuthority` lines, ...).
    pub extra_torrc: Vec<String>,
    /// Bridge lines (`obfs4 192.0.2.1:443 FINGERPRINT cert=... iat-mode=0`);
    /// when any is given tor reaches the network only through them.
    pub bridges: Vec<String>,
    /// The programs for the bridges' transports.
    pub transport_plugins: Vec<TransportPlugin>,
}

impl Default for TorProcessConfig {
    fn default() -> Self {
        Self {
            tor: PathBuf::from("tor"),
            data_dir: None,
            extra_torrc: Vec::new(),
            bridges: Vec::new(),
            transport_plugins: Vec::new(),
        }
    }
}

/// Where our tor's ports are: unix sockets in the data directory where the path
/// allows it (other local users cannot reach them), else automatic loopback
/// ports written to files.
#[derive(Debug, Clone)]
pub(crate) struct Ports {
    pub control: PortSpec,
    pub socks: PortSpec,
}

#[derive(Debug, Clone)]
pub(crate) enum PortSpec {
    Unix(PathBuf),
    /// `127.0.0.1:auto`, the chosen port written to this file.
    Auto(PathBuf),
}

impl Ports {
    pub(crate) fn for_dir(dir: &Path) -> Self {
        let spec = |sock: &str, file: &str| {
            let p = dir.join(sock);
            let s = p.to_string_lossy();
            // sun_path holds 108 bytes; tor cannot quote every character in a
            // unix: address, so odd paths fall back to loopback TCP.
            if s.len() < 100
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                PortSpec::Unix(p)
            } else {
                PortSpec::Auto(dir.join(file))
            }
        };
        Self {
            control: spec("control.sock", "control.port"),
            socks: spec("socks.sock", "socks.port"),
        }
    }
}

impl TorProcessConfig {
    /// Checks what tor would only notice later.
    pub(crate) fn validate(&self) -> Result<(), TorError> {
        for line in self.extra_torrc.iter().chain(&self.bridges) {
            if line.contains(['\n', '\r']) {
                return Err(TorError::Config(
                    "a torrc line contains a line break".into(),
                ));
            }
        }
        for bridge in &self.bridges {
            let first = bridge.split_whitespace().next().unwrap_or("");
            // A bridge line starts with its transport unless it is a plain
            // address.
            let is_addr = first.parse::<std::net::SocketAddr>().is_ok();
            if !is_addr
                && !self
                    .transport_plugins
                    .iter()
                    .any(|p| p.transports.iter().any(|t| t == first))
            {
                return Err(TorError::Config(format!(
                    "no pluggable-transport program configured for `{first}` bridges"
                )));
            }
        }
        Ok(())
    }

    /// The torrc: a client only, hardened, owned by this process.
    pub(crate) fn torrc(&self, data_dir: &Path, ports: &Ports, owner_pid: u32) -> String {
        let mut lines = vec![
            format!("DataDirectory {}", data_dir.display()),
            // Never a relay, bridge or exit: a client only.
            "ClientOnly 1".into(),
            "ORPort 0".into(),
            "DirPort 0".into(),
            "ExitRelay 0".into(),
            "ClientUseIPv6 0".into(),
            "AvoidDiskWrites 1".into(),
            "SafeLogging 1".into(),
            "Log notice stdout".into(),
            "CookieAuthentication 1".into(),
            format!(
                "CookieAuthFile {}",
                data_dir.join("control_auth_cookie").display()
            ),
            // Without a controller left alive (we crashed), tor exits too.
            format!("__OwningControllerProcess {owner_pid}"),
        ];
        match &ports.control {
            PortSpec::Unix(p) => lines.push(format!("ControlPort unix:{}", p.display())),
            PortSpec::Auto(file) => {
                lines.push("ControlPort 127.0.0.1:auto".into());
                lines.push(format!("ControlPortWriteToFile {}", file.display()));
            }
        }
        // Streams with different SOCKS credentials never share a circuit, and
        // onion-service failures come back as their own reply codes.
        let socks_flags = "IsolateSOCKSAuth ExtendedErrors";
        match &ports.socks {
            PortSpec::Unix(p) => {
                lines.push(format!("SocksPort unix:{} {socks_flags}", p.display()))
            }
            PortSpec::Auto(_) => lines.push(format!("SocksPort 127.0.0.1:auto {socks_flags}")),
        }
        if !self.bridges.is_empty() {
            lines.push("UseBridges 1".into());
            for plugin in &self.transport_plugins {
                lines.push(plugin.torrc_line());
            }
            for bridge in &self.bridges {
                lines.push(format!("Bridge {bridge}"));
            }
        }
        lines.extend(self.extra_torrc.iter().cloned());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// The last lines tor printed, for error messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    const KEEP: usize = 12;

    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == Self::KEEP {
            q.pop_front();
        }
        q.push_back(line);
    }

    pub(crate) fn text(&self) -> String {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Creates a directory only we can read (tor insists on that).
pub(crate) fn private_dir(dir: &Path) -> Result<(), TorError> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Starts tor with `torrc_path`; its output goes to `tracing` at debug level
/// (tor's notices can name onion services even with SafeLogging) and to `tail`.
pub(crate) fn spawn(tor: &Path, torrc_path: &Path, tail: &LogTail) -> Result<Child, TorError> {
    let mut child = Command::new(tor)
        .arg("-f")
        .arg(torrc_path)
        // Keep the distribution's defaults (SocksPort 9050, a system-wide
        // DataDirectory, RunAsDaemon) out.
        .args(["--defaults-torrc", "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TorError::TorNotFound(tor.to_owned())
            } else {
                TorError::Io(e)
            }
        })?;
    if let Some(out) = child.stdout.take() {
        forward(out, tail.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward(err, tail.clone());
    }
    Ok(child)
}

fn forward<R: tokio::io::AsyncRead + Unpin + Send + 'static>(r: R, tail: LogTail) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "nightjar_tor::tor", "{line}");
            tail.push(line);
        }
    });
}

/// Waits until tor's control port accepts connections; fails with tor's last
/// words if it exits first.
pub(crate) async fn wait_for_control(
    child: &mut Child,
    ports: &Ports,
    tail: &LogTail,
    timeout: Duration,
) -> Result<ControlAddr, TorError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            // Give the output forwarders a moment to drain.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(TorError::Config(format!(
                "tor exited ({status}): {}",
                tail.text()
            )));
        }
        if let Some(addr) = control_addr(&ports.control).await {
            return Ok(addr);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(TorError::BootstrapStalled(format!(
                "tor did not open its control port within {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The control port's address once it is connectable.
async fn control_addr(spec: &PortSpec) -> Option<ControlAddr> {
    match spec {
        PortSpec::Unix(p) => {
            tokio::net::UnixStream::connect(p).await.ok()?;
            Some(ControlAddr::Unix(p.clone()))
        }
        PortSpec::Auto(file) => {
            let text = tokio::fs::read_to_string(file).await.ok()?;
            let addr = text
                .lines()
                .find_map(|l| l.strip_prefix("PORT="))?
                .parse()
                .ok()?;
            tokio::net::TcpStream::connect(addr).await.ok()?;
            Some(ControlAddr::Tcp(addr))
        }
    }
}

/// Removes sockets and port files a killed tor left behind, so a restarted tor
/// is not mistaken for ready before it is.
pub(crate) fn remove_stale(ports: &Ports) {
    for spec in [&ports.control, &ports.socks] {
        let path = match spec {
            PortSpec::Unix(p) | PortSpec::Auto(p) => p,
        };
        let _ = std::fs::remove_file(path);
    }
}

/// Runs `tor --verify-config` on the torrc this configuration produces.
pub async fn verify_config(config: &TorProcessConfig) -> Result<(), TorError> {
    config.validate()?;
    let dir = tempfile::Builder::new()
        .prefix("nightjar-tor-verify-")
        .tempdir()?;
    let ports = Ports::for_dir(dir.path());
    let torrc = dir.path().join("torrc");
    std::fs::write(&torrc, config.torrc(dir.path(), &ports, std::process::id()))?;
    let out = Command::new(&config.tor)
        .arg("--verify-config")
        .arg("-f")
        .arg(&torrc)
        .args(["--defaults-torrc", "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TorError::TorNotFound(config.tor.clone())
            } else {
                TorError::Io(e)
            }
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out.stdout);
        let reason: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("[warn]") || l.contains("[err]"))
            .collect();
        Err(TorError::Config(reason.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrc_is_a_hardened_client() {
        let cfg = TorProcessConfig {
            bridges: vec![
                "obfs4 192.0.2.1:443 0123456789ABCDEF0123456789ABCDEF01234567 cert=x iat-mode=0"
                    .into(),
            ],
            transport_plugins: vec![TransportPlugin::obfs4()],
            ..TorProcessConfig::default()
        };
        cfg.validate().unwrap();
        let dir = Path::new("/tmp/nj-ctor-x");
        let t = cfg.torrc(dir, &Ports::for_dir(dir), 42);
        for line in [
            "ClientOnly 1",
            "ClientUseIPv6 0",
            "AvoidDiskWrites 1",
            "SafeLogging 1",
            "CookieAuthentication 1",
            "__OwningControllerProcess 42",
            "ControlPort unix:/tmp/nj-ctor-x/control.sock",
            "SocksPort unix:/tmp/nj-ctor-x/socks.sock IsolateSOCKSAuth ExtendedErrors",
            "UseBridges 1",
            "ClientTransportPlugin obfs4 exec /usr/bin/obfs4proxy",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
    }

    #[test]
    fn long_paths_fall_back_to_loopback_ports() {
        let dir = PathBuf::from(format!("/tmp/{}", "d".repeat(120)));
        let t = TorProcessConfig::default().torrc(&dir, &Ports::for_dir(&dir), 1);
        assert!(t.contains("ControlPort 127.0.0.1:auto\n"));
        assert!(t.contains("SocksPort 127.0.0.1:auto IsolateSOCKSAuth ExtendedErrors\n"));
    }

    #[test]
    fn bridges_need_their_transport() {
        let cfg = TorProcessConfig {
            bridges: vec!["snowflake 192.0.2.3:80 2B280B23E1107BB62ABFC40DDCC8824814F80A72".into()],
            ..TorProcessConfig::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = TorProcessConfig {
            bridges: vec!["192.0.2.3:443".into()],
            ..TorProcessConfig::default()
        };
        assert!(cfg.validate().is_ok());
    }
}

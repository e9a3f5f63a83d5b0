//! Starting what every long-running subcommand needs: Tor, and for those with a
//! profile, the profile's store and the node.
//!
//! Profiles live in `$XDG_DATA_HOME/nightjar/profiles/NAME` (else
//! `~/.local/share/nightjar/profiles/NAME`); `--data-dir DIR` or `NIGHTJAR_DATA_DIR`
//! puts them in `DIR/profiles/NAME` instead. A persistent profile keeps Tor's state
//! in `<profile dir>/tor`; an ephemeral one keeps nothing on disk and Tor's state in
//! a fresh directory on tmpfs, removed at exit.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use nightjar_node::{CoverLevel, Node, NodeConfig, Rendezvous};
use nightjar_store::{KdfParams, Store, StoreError};
use nightjar_tor::testnet::TestNetwork;
use nightjar_tor::{Backend, BootstrapStatus, Transport};
use tokio::sync::watch;
use zeroize::Zeroizing;

/// Which Tor network to join, and how.
#[derive(Debug, Clone, Args)]
pub struct TorArgs {
    /// Tor backend: `arti` (embedded, nothing to install) or `ctor` (the system's
    /// tor program).
    #[arg(
        long = "tor",
        value_name = "BACKEND",
        env = "NIGHTJAR_TOR_BACKEND",
        default_value = "arti"
    )]
    pub backend: Backend,
    /// Join the private Tor network running in DIR (started by `nightjar testnet
    /// up`) instead of the public Tor network.
    #[arg(long, value_name = "DIR", env = "NIGHTJAR_TESTNET")]
    pub testnet: Option<PathBuf>,
    /// The tor program, for `--tor ctor`.
    #[arg(long, value_name = "PATH", env = "NIGHTJAR_TOR", default_value = "tor")]
    pub tor_program: PathBuf,
    /// Where invite codes meet: a magic-wormhole rendezvous server, reached
    /// through Tor (an onion address, or a public host through a Tor exit).
    #[arg(
        long,
        value_name = "URL",
        env = "NIGHTJAR_RENDEZVOUS",
        default_value = nightjar_node::invite::DEFAULT_RENDEZVOUS
    )]
    pub rendezvous: Rendezvous,
}

/// Which profile to run, and how to unlock it.
#[derive(Debug, Clone, Args)]
pub struct ProfileArgs {
    /// The profile to use; created (after asking for a passphrase twice) if it
    /// does not exist.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub profile: String,
    /// Use a throwaway identity: nothing is written to disk and everything is
    /// forgotten at exit.
    #[arg(long, conflicts_with_all = ["passphrase_file"])]
    pub ephemeral: bool,
    /// Where profiles live (DIR/profiles/NAME) [default: $XDG_DATA_HOME/nightjar,
    /// else ~/.local/share/nightjar].
    #[arg(long, value_name = "DIR", env = "NIGHTJAR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Read the profile's passphrase from the first line of FILE (else
    /// $NIGHTJAR_PASSPHRASE, else a prompt on the terminal).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// How often, in seconds, to fetch what contacts left in your mailboxes
    /// while you were offline, and to check that the mailboxes holding your
    /// undelivered messages still have them (a restarted mailbox has lost
    /// them; they are deposited again). More often means less delay, and more
    /// visits a mailbox could observe.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub mailbox_every: u64,
    /// Leave dummy messages in the mailboxes of contacts who are away, at
    /// random times, one every EVERY on average per contact (30m, 2h, 1h30m; a
    /// bare number is seconds), or `off`.
    ///
    /// A mailbox operator then cannot tell from the deposits for a contact
    /// whether, or when, anyone wrote to them: a dummy looks like a short
    /// message (and is checked for, and deposited again after a mailbox
    /// restart, as one is while this node runs), and the contact's node drops
    /// it unseen. Each one costs you a proof of work (up to seconds of CPU at a
    /// busy mailbox) and the mailbox 498 bytes of memory until the contact
    /// collects it. Dummies pause for a contact once 16 messages (real ones
    /// included) went to its mailbox, until it has collected them and you have
    /// been online together again, so that real messages keep their room: at
    /// 2h, that is about 32 hours of absence.
    #[arg(
        long,
        value_name = "EVERY",
        default_value = "off",
        value_parser = parse_mailbox_cover
    )]
    pub mailbox_cover: ::std::option::Option<Duration>,
    /// Where files you accept are saved (a file of the same name there is never
    /// replaced unless you ask) [default: $XDG_DOWNLOAD_DIR if it is set and
    /// absolute, else ~/Downloads].
    #[arg(long, value_name = "DIR", env = "NIGHTJAR_DOWNLOADS")]
    pub downloads: Option<PathBuf>,
    /// Files larger than SIZE that contacts offer are declined without asking
    /// you. SIZE is a number of bytes, or a number with K, M, G or T (powers of
    /// 1024): 500M, 4G.
    #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = parse_size)]
    pub max_file_size: u64,
    /// Cover traffic on the link with each online contact.
    ///
    /// Cells leave on a random schedule whether or not you talk, and your
    /// messages take the place of cover cells, so someone watching your Tor
    /// connection cannot tell a conversation from an idle link. File transfers
    /// always run at full speed: that a transfer happens, and its size, show.
    #[arg(long, value_name = "LEVEL", value_enum, default_value = "low")]
    pub cover: CoverArg,
    /// Send at once instead of on the next cover cell (or without the random
    /// delay, with --cover off).
    ///
    /// Saves up to 1.5 s per cell of a message at --cover low. The cost: someone
    /// watching your Tor connection sees exactly when you send, so your typing
    /// rhythm and reply times show, and roughly how much (cover fills only the
    /// silences).
    #[arg(long)]
    pub low_latency: bool,
    #[command(flatten)]
    pub tor: TorArgs,
}

/// The levels of `--cover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoverArg {
    /// No cover: each message leaves after a random delay of up to 1 s, and
    /// when you talk shows.
    Off,
    /// About one 498-byte cell a second each way per online contact (30 KB a
    /// minute each way); a cell of a message waits 0.5 s on average, 1.5 s at
    /// most.
    Low,
    /// Ten cells a second each way per online contact (300 KB a minute each
    /// way); a cell waits 0.15 s at most.
    Constant,
}

impl ProfileArgs {
    /// Cover traffic and send timing, from `--cover` and `--low-latency`.
    pub fn shaping(&self) -> nightjar_node::ShapingConfig {
        nightjar_node::ShapingConfig {
            cover: match self.cover {
                CoverArg::Off => CoverLevel::Off,
                CoverArg::Low => CoverLevel::Low,
                CoverArg::Constant => CoverLevel::Constant,
            },
            low_latency: self.low_latency,
        }
    }
}

/// A size such as `4096`, `500M` or `4G` (K, M, G, T: powers of 1024; a `B` or
/// `iB` after the letter is allowed, and so is a space before it).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a size: give bytes (1048576) or a number with K, M, G or T (500M, 4G)"
        )
    };
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_uppercase();
    let mut letters = unit.chars();
    let shift = match (letters.next(), letters.as_str()) {
        (None, _) | (Some('B'), "") => 0,
        (Some(letter), "" | "B" | "IB") => match letter {
            'K' => 10,
            'M' => 20,
            'G' => 30,
            'T' => 40,
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `off`, or the mean gap of `--mailbox-cover`: a duration such as `30m`, `2h`
/// or `1h30m`, or a number of seconds; at least a second.
pub fn parse_mailbox_cover(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || {
        format!(
            "{text:?} is not a duration: give off, or a time in hours, minutes or seconds such as 30m, 2h, 1h30m or 48h"
        )
    };
    let every = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(text.parse().map_err(|_| bad())?)
    } else {
        let signed: jiff::SignedDuration = text.parse().map_err(|_| bad())?;
        Duration::try_from(signed).map_err(|_| bad())?
    };
    if every < Duration::from_secs(1) {
        return Err(format!("{text:?} is too short: at least 1s"));
    }
    Ok(Some(every))
}

/// Where accepted files go: `--downloads`, else `$XDG_DOWNLOAD_DIR` when it is
/// absolute, else `$HOME/Downloads`, else `Downloads` in the working directory.
/// Made absolute, so what the node stores does not depend on where it ran.
fn downloads_dir(
    given: Option<&Path>,
    xdg: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    let dir = match given {
        Some(dir) => dir.to_owned(),
        None => match xdg.filter(|p| p.is_absolute()) {
            Some(xdg) => xdg,
            None => home
                .filter(|p| p.is_absolute())
                .unwrap_or_default()
                .join("Downloads"),
        },
    };
    std::path::absolute(&dir).with_context(|| format!("cannot use {} for downloads", dir.display()))
}

/// The node's file settings from the flags.
fn files_config(args: &ProfileArgs) -> Result<nightjar_node::FilesConfig> {
    Ok(nightjar_node::FilesConfig {
        downloads: downloads_dir(
            args.downloads.as_deref(),
            std::env::var_os("XDG_DOWNLOAD_DIR").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )?,
        max_incoming: args.max_file_size,
    })
}

/// The environment variable that may hold the passphrase.
pub const PASSPHRASE_VAR: &str = "NIGHTJAR_PASSPHRASE";

/// A running Tor client and what must outlive it.
pub struct Tor {
    /// The transport the node or the chat uses.
    pub transport: Arc<dyn Transport>,
    /// Removed when dropped, after the transport has shut down.
    scratch: Option<tempfile::TempDir>,
    /// Kept so an attached test network's handle lives as long as we use it.
    _network: Option<TestNetwork>,
}

impl std::fmt::Debug for Tor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tor").finish_non_exhaustive()
    }
}

impl Tor {
    /// Stops Tor and removes its scratch directory.
    pub async fn shutdown(self) -> Result<()> {
        let result = self.transport.shutdown().await;
        drop(self.transport);
        drop(self.scratch);
        result.context("Tor did not shut down cleanly")
    }
}

/// Where Tor keeps its state.
#[derive(Debug, Clone)]
pub enum TorState {
    /// This directory, kept between runs.
    Persistent(PathBuf),
    /// A fresh directory on tmpfs, removed at exit.
    Scratch,
}

/// Starts Tor and waits until it has joined the network. On a terminal, says
/// what it is doing on stderr.
pub async fn start_tor(args: &TorArgs, state: TorState) -> Result<Tor> {
    let started = Instant::now();
    let (progress, status) = watch::channel(starting());
    let shown = Progress::start(args.backend, status);
    let result = launch(args, state, &progress).await;
    shown.finish(&result, started.elapsed());
    result
}

/// How a bootstrap is reported before Tor has said anything.
pub fn starting() -> BootstrapStatus {
    BootstrapStatus {
        percent: 0,
        summary: "starting".into(),
        blocked: None,
    }
}

/// Starts Tor and waits until it has joined the network, reporting its progress
/// on `progress` and nowhere else.
pub async fn launch(
    args: &TorArgs,
    state: TorState,
    progress: &watch::Sender<BootstrapStatus>,
) -> Result<Tor> {
    let backend = args.backend;
    let (dir, scratch) = match state {
        TorState::Persistent(dir) => (dir, None),
        TorState::Scratch => {
            let scratch = scratch_dir("nightjar-tor-")?;
            (scratch.path().to_owned(), Some(scratch))
        }
    };
    let (transport, network) = match &args.testnet {
        Some(net_dir) => {
            let network = TestNetwork::attach(net_dir).with_context(|| {
                format!("no private Tor network is running in {}", net_dir.display())
            })?;
            // A private network's state is not worth keeping between runs, so a
            // persistent profile's tor uses the backend's own temporary directory;
            // an ephemeral profile's stays on tmpfs.
            let state_dir = scratch.as_ref().map(|_| dir);
            let transport = backend
                .launch_on_testnet_in(
                    network.description(),
                    args.tor_program.clone(),
                    state_dir,
                    Some(progress),
                )
                .await;
            (transport, Some(network))
        }
        None => (
            backend
                .launch(Some(dir), args.tor_program.clone(), Some(progress))
                .await,
            None,
        ),
    };
    Ok(Tor {
        transport: transport.context("could not start Tor")?,
        scratch,
        _network: network,
    })
}

/// A fresh private directory on a tmpfs or ramfs (see
/// [`nightjar_tor::scratch::ram_dir`]). Without one this fails: an ephemeral
/// profile promises that nothing of it reaches a disk, Tor's state included.
pub fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir> {
    Ok(nightjar_tor::scratch::ram_dir(prefix)?)
}

/// "Joining the Tor network… 45% (loading relay descriptors)" on a terminal, with
/// the seconds ticking, so a slow start does not look like a hang.
struct Progress {
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(backend: Backend, status: watch::Receiver<BootstrapStatus>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { ticker: None };
        }
        let ticker = tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let now = status.borrow().clone();
                // Pad so a shorter line fully covers a longer one.
                eprint!(
                    "\rjoining the Tor network ({}) … {:>3}% {:<40.40} {} s ",
                    backend.describe(),
                    now.percent,
                    now.summary,
                    started.elapsed().as_secs()
                );
                let _ = std::io::stderr().flush();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Self {
            ticker: Some(ticker),
        }
    }

    fn finish<T>(self, result: &Result<T>, took: Duration) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
            match result {
                Ok(_) => eprintln!(
                    "\r{:<100}\rjoined the Tor network in {:.1} s",
                    "",
                    took.as_secs_f64()
                ),
                Err(_) => eprintln!(),
            }
        }
    }
}

/// A running node and what must be cleaned up after it.
pub struct Running {
    /// The node's handle.
    pub node: Node,
    /// Tor, shut down after the node.
    tor: Tor,
    /// The profile's name, or `None` when ephemeral.
    pub profile: Option<String>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    /// Stops the node (telling contacts who get our presence), then Tor, then
    /// removes temporary state.
    pub async fn shutdown(self) -> Result<()> {
        let node = match self.node.shutdown().await {
            // Already stopped (the daemon's `shutdown` method stops it itself).
            Err(nightjar_node::NodeError::Stopped) => Ok(()),
            other => other,
        };
        let tor = self.tor.shutdown().await;
        node.context("the node did not shut down cleanly")?;
        tor
    }
}

/// Opens (or creates) the profile, starts Tor and starts the node.
pub async fn start_node(args: &ProfileArgs) -> Result<Running> {
    let opened = open_profile(args, None).await?;
    if let Some(dir) = &opened.created {
        eprintln!("created profile {:?} in {}", args.profile, dir.display());
    }
    let tor = start_tor(&args.tor, opened.tor_state.clone()).await?;
    let running = run_node(args, opened, tor).await?;
    if let Some(warning) = memory_lock_warning() {
        eprintln!("{warning}");
    }
    Ok(running)
}

/// A warning for the person at the keyboard if the profile's long-term keys
/// could not be locked into RAM (see [`nightjar_proto::locked`]).
pub fn memory_lock_warning() -> Option<String> {
    match nightjar_proto::locked::status() {
        status @ nightjar_proto::locked::LockStatus::NotLocked(_) => {
            Some(format!("warning: {status}"))
        }
        _ => None,
    }
}

/// A profile's store, open, before anything runs.
pub struct Opened {
    store: Store,
    tor_state: TorState,
    profile: Option<String>,
    /// The profile's directory, when it was created just now.
    pub created: Option<PathBuf>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").finish_non_exhaustive()
    }
}

impl Opened {
    /// Where this profile's Tor keeps its state.
    pub fn tor_state(&self) -> TorState {
        self.tor_state.clone()
    }
}

/// Opens the profile `args` names (creating it if it does not exist), or makes an
/// ephemeral one. The passphrase is `passphrase` when given, else it comes from
/// `--passphrase-file`, `NIGHTJAR_PASSPHRASE` or a prompt on the terminal.
pub async fn open_profile(
    args: &ProfileArgs,
    passphrase: Option<Zeroizing<String>>,
) -> Result<Opened> {
    if args.ephemeral {
        let store = Store::in_memory(&nightjar_node::new_profile())
            .context("could not create the ephemeral profile")?;
        return Ok(Opened {
            store,
            tor_state: TorState::Scratch,
            profile: None,
            created: None,
        });
    }
    check_profile_name(&args.profile)?;
    let dir = profile_dir(args.data_dir.as_deref(), &args.profile)?;
    let (store, created) = open_or_create(args, &dir, passphrase).await?;
    Ok(Opened {
        store,
        tor_state: TorState::Persistent(dir.join("tor")),
        profile: Some(args.profile.clone()),
        created,
    })
}

/// Starts the node of an opened profile on a running Tor.
pub async fn run_node(args: &ProfileArgs, opened: Opened, tor: Tor) -> Result<Running> {
    let Opened { store, profile, .. } = opened;
    let files = match files_config(args) {
        Ok(files) => files,
        Err(e) => {
            let _ = tor.shutdown().await;
            return Err(e);
        }
    };
    let node = nightjar_node::start(NodeConfig {
        store,
        transport: tor.transport.clone(),
        ephemeral: args.ephemeral,
        rendezvous: args.tor.rendezvous.clone(),
        offline: nightjar_node::OfflineConfig {
            drain_every: std::time::Duration::from_secs(args.mailbox_every),
            check_every: std::time::Duration::from_secs(args.mailbox_every),
            mailbox_cover: args.mailbox_cover,
            ..nightjar_node::OfflineConfig::default()
        },
        files,
        shaping: args.shaping(),
    })
    .await;
    match node {
        Ok(node) => Ok(Running { node, tor, profile }),
        Err(e) => {
            let _ = tor.shutdown().await;
            Err(e).context("could not start nightjar")
        }
    }
}

/// The store, and its directory if it was just created.
async fn open_or_create(
    args: &ProfileArgs,
    dir: &Path,
    given: Option<Zeroizing<String>>,
) -> Result<(Store, Option<PathBuf>)> {
    let name = &args.profile;
    let creating = !Store::exists(dir);
    let passphrase = match given {
        Some(p) if p.is_empty() => bail!("an empty passphrase is not allowed"),
        Some(p) => p,
        None => passphrase(args, creating, name)?,
    };
    let dir = dir.to_owned();
    let opened = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            if creating {
                create_parent(&dir)?;
                let profile = nightjar_node::new_profile();
                Store::create(&dir, &passphrase, KdfParams::DEFAULT, &profile)
            } else {
                Store::open(&dir, &passphrase)
            }
        }
    })
    .await
    .context("opening the profile was interrupted")?;
    match opened {
        Ok(store) => Ok((store, creating.then_some(dir))),
        Err(StoreError::WrongPassphrase) => bail!("wrong passphrase for profile {name:?}"),
        Err(StoreError::Locked) => {
            bail!("profile {name:?} is in use by another nightjar process")
        }
        Err(e) => Err(e).with_context(|| format!("could not open profile {name:?}")),
    }
}

/// Makes the directory that holds profiles, private to this user.
fn create_parent(dir: &Path) -> Result<(), StoreError> {
    if let Some(parent) = dir.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent)?;
    }
    Ok(())
}

/// Profile names become directory names: keep them plain.
pub fn check_profile_name(name: &str) -> Result<()> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(plain) {
        bail!(
            "invalid profile name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        );
    }
    Ok(())
}

/// The directory of profile `name`.
pub fn profile_dir(data_dir: Option<&Path>, name: &str) -> Result<PathBuf> {
    Ok(profiles_dir(data_dir)?.join(name))
}

/// The directory that holds every profile's directory.
pub fn profiles_dir(data_dir: Option<&Path>) -> Result<PathBuf> {
    let base = match data_dir {
        Some(dir) => dir.to_owned(),
        None => default_data_dir(
            std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )?,
    };
    Ok(base.join("profiles"))
}

/// `$XDG_DATA_HOME/nightjar`, else `$HOME/.local/share/nightjar` (the XDG base
/// directory rules: a relative XDG_DATA_HOME is ignored).
fn default_data_dir(xdg: Option<PathBuf>, home: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(xdg) = xdg.filter(|p| p.is_absolute()) {
        return Ok(xdg.join("nightjar"));
    }
    match home.filter(|p| p.is_absolute()) {
        Some(home) => Ok(home.join(".local/share/nightjar")),
        None => {
            bail!("cannot tell where profiles live: set HOME, XDG_DATA_HOME or NIGHTJAR_DATA_DIR")
        }
    }
}

/// The passphrase from the environment, a file, or the terminal (twice when
/// creating). Never empty.
fn passphrase(args: &ProfileArgs, creating: bool, name: &str) -> Result<Zeroizing<String>> {
    let passphrase = match given_passphrase(args)? {
        Some(p) => p,
        None => prompt(creating, name)?,
    };
    if passphrase.is_empty() {
        bail!("an empty passphrase is not allowed");
    }
    Ok(passphrase)
}

/// The passphrase from `--passphrase-file` or `NIGHTJAR_PASSPHRASE`, if either
/// gives one.
pub fn given_passphrase(args: &ProfileArgs) -> Result<Option<Zeroizing<String>>> {
    let given = if let Some(file) = &args.passphrase_file {
        let text =
            Zeroizing::new(std::fs::read_to_string(file).with_context(|| {
                format!("could not read the passphrase file {}", file.display())
            })?);
        Some(Zeroizing::new(first_line(&text).to_owned()))
    } else {
        std::env::var(PASSPHRASE_VAR).ok().map(Zeroizing::new)
    };
    Ok(given)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn prompt(creating: bool, name: &str) -> Result<Zeroizing<String>> {
    let ask = |question: &str| {
        rpassword::prompt_password(question).map(Zeroizing::new).context(
            "no passphrase: there is no terminal to ask on; set NIGHTJAR_PASSPHRASE or use --passphrase-file",
        )
    };
    if !creating {
        return ask(&format!("passphrase for profile {name:?}: "));
    }
    eprintln!("profile {name:?} does not exist yet; choose a passphrase to create it");
    let first = ask("new passphrase: ")?;
    if first.is_empty() {
        bail!("an empty passphrase is not allowed");
    }
    let second = ask("the same again: ")?;
    if *first != *second {
        bail!("the two passphrases differ; nothing was created");
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names() {
        for good in ["default", "work", "a.b-c_d", "X9"] {
            assert!(check_profile_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(check_profile_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("0", 0),
            ("498", 498),
            ("1048576", 1 << 20),
            ("1K", 1024),
            ("500M", 500 << 20),
            ("500m", 500 << 20),
            ("4G", 4 << 30),
            ("4 G", 4 << 30),
            (" 4GB ", 4 << 30),
            ("4GiB", 4 << 30),
            ("2T", 2 << 40),
            ("16777215T", 16_777_215 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
        }
        for bad in [
            "", "G", "-1", "1.5G", "4X", "4GG", "4 iB", "0x10", "4Gi", "1 2", "4Bk",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("is not a size"), "{bad:?}: {e}");
        }
        assert!(parse_size("16777216T").unwrap_err().contains("too large"));
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn mailbox_cover_is_off_unless_asked() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            profile: ProfileArgs,
        }
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(["nightjar"].iter().chain(args))
                .map(|cli| cli.profile.mailbox_cover)
        };
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&["--mailbox-cover", "off"]).unwrap(), None);
        for (text, secs) in [
            ("30m", 1800),
            ("2h", 7200),
            ("1h30m", 5400),
            (" 1h 30m ", 5400),
            ("90", 90),
            ("1s", 1),
        ] {
            assert_eq!(
                parse(&["--mailbox-cover", text]).unwrap(),
                Some(Duration::from_secs(secs)),
                "{text:?}"
            );
        }
        for bad in ["", "soon", "-5m", "500ms", "0", "1d", "5x"] {
            assert!(parse(&["--mailbox-cover", bad]).is_err(), "{bad:?}");
        }
        let e = parse_mailbox_cover("soon").unwrap_err();
        assert!(e.contains("is not a duration"), "{e}");
    }

    #[test]
    fn downloads_follow_xdg() {
        let dir = downloads_dir(None, Some("/x/dl".into()), Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/x/dl"));
        // A relative XDG_DOWNLOAD_DIR is ignored, as the XDG rules say.
        let dir = downloads_dir(None, Some("dl".into()), Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/home/a/Downloads"));
        let dir = downloads_dir(None, None, Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/home/a/Downloads"));
        let given = Path::new("/srv/incoming");
        let dir = downloads_dir(Some(given), Some("/x/dl".into()), None).unwrap();
        assert_eq!(dir, given);
        // A relative directory is taken from where nightjar started.
        let cwd = std::env::current_dir().unwrap();
        let dir = downloads_dir(Some(Path::new("in")), None, None).unwrap();
        assert_eq!(dir, cwd.join("in"));
        let dir = downloads_dir(None, None, None).unwrap();
        assert_eq!(dir, cwd.join("Downloads"));
    }

    #[test]
    fn file_flags_on_the_command_line() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            profile: ProfileArgs,
        }
        let args = <Cli as clap::Parser>::try_parse_from([
            "nightjar",
            "--downloads",
            "/srv/in",
            "--max-file-size",
            "500M",
        ])
        .unwrap();
        assert_eq!(
            args.profile.downloads.as_deref(),
            Some(Path::new("/srv/in"))
        );
        assert_eq!(args.profile.max_file_size, 500 << 20);
        let args = <Cli as clap::Parser>::try_parse_from(["nightjar"]).unwrap();
        assert_eq!(args.profile.max_file_size, 4 << 30);
        // Cover is on unless asked otherwise.
        assert_eq!(
            args.profile.shaping(),
            nightjar_node::ShapingConfig::default()
        );
        assert_eq!(args.profile.shaping().cover, CoverLevel::Low);
        let args = <Cli as clap::Parser>::try_parse_from([
            "nightjar",
            "--cover",
            "constant",
            "--low-latency",
        ])
        .unwrap();
        assert_eq!(
            args.profile.shaping(),
            nightjar_node::ShapingConfig {
                cover: CoverLevel::Constant,
                low_latency: true,
            }
        );
        let e = <Cli as clap::Parser>::try_parse_from(["nightjar", "--cover", "loud"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("possible values"), "{e}");
        let e = <Cli as clap::Parser>::try_parse_from(["nightjar", "--max-file-size", "lots"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("is not a size"), "{e}");
    }

    #[test]
    fn data_dir_follows_xdg() {
        let dir = default_data_dir(Some("/x/data".into()), Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/x/data/nightjar"));
        // A relative XDG_DATA_HOME is invalid and ignored.
        let dir = default_data_dir(Some("rel".into()), Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/home/a/.local/share/nightjar"));
        let dir = default_data_dir(None, Some("/home/a".into())).unwrap();
        assert_eq!(dir, PathBuf::from("/home/a/.local/share/nightjar"));
        assert!(default_data_dir(None, None).is_err());
    }

    #[test]
    fn profile_dir_under_data_dir() {
        let dir = profile_dir(Some(Path::new("/d")), "work").unwrap();
        assert_eq!(dir, PathBuf::from("/d/profiles/work"));
    }

    #[test]
    fn passphrase_file_first_line() {
        assert_eq!(first_line("secret\n"), "secret");
        assert_eq!(first_line("secret\r\nmore"), "secret");
        assert_eq!(first_line(""), "");
    }
}

//! The `nightjar` command.

mod chat;
mod cli;
mod daemon;
mod demo;
mod harden;
mod mailbox;
mod oneshot;
mod room;
mod startup;
mod testnet;
mod tui;

use std::io::IsTerminal as _;

use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// nightjar: a messenger over Tor onion services that hides who talks to whom.
#[derive(Debug, Parser)]
#[command(
    name = "nightjar",
    version,
    about,
    long_about = "nightjar: a messenger over Tor onion services that hides who talks to whom.\n\n\
        Everything travels between onion services, with no central server. Messages are \
        end-to-end encrypted with a double ratchet (headers included) seeded by a \
        post-quantum hybrid handshake, and every byte on the wire belongs to a fixed-size \
        cell.\n\n\
        Logging: set RUST_LOG (e.g. RUST_LOG=debug). Keys, message text, onion addresses \
        and contact names appear only at debug level or below."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The terminal interface (also what `nightjar` alone opens): contacts,
    /// conversations, invite codes, authentication, your address as a QR code.
    /// Without --profile or --ephemeral it starts with the list of profiles.
    Tui(tui::TuiArgs),
    /// Show nightjar at work: Alice and Bob talk over a private Tor network started
    /// on this machine (needs Debian's `tor`; takes about a minute).
    Demo(demo::DemoArgs),
    /// A private Tor network on loopback, for development and tests.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
    /// The line interface: slash commands on stdin (from a terminal or a script),
    /// what happens printed as it happens.
    Cli(cli::CliArgs),
    /// A one-shot chat between two people: no profile, nothing on disk.
    /// `nightjar chat --listen` prints a string; `nightjar chat STRING` connects.
    /// Or `nightjar chat --invite` prints a short code for `nightjar chat --join CODE`.
    Chat(chat::ChatArgs),
    /// A one-shot group room for several people: no profile, nothing on disk.
    /// `nightjar room --listen` prints a string; `nightjar room STRING` joins.
    /// The host relays, and so reads, every text.
    Room(room::RoomArgs),
    /// Run a profile in the background and serve its commands and events as
    /// JSON-RPC 2.0 on a unix socket (see docs/rpc.md). Stops on SIGINT, SIGTERM
    /// or the `shutdown` method.
    Daemon(DaemonArgs),
    /// A mailbox server for your friends, RAM only, on an onion of its own: where
    /// invite codes meet (and, soon, messages wait for people who are offline).
    Mailbox(mailbox::MailboxArgs),
}

/// Options of `nightjar daemon`.
#[derive(Debug, clap::Args)]
struct DaemonArgs {
    /// The unix socket to serve on (made 0600; refused if a daemon answers there).
    #[arg(long, value_name = "PATH")]
    socket: std::path::PathBuf,
    #[command(flatten)]
    profile: startup::ProfileArgs,
}

async fn run_daemon(args: DaemonArgs) -> anyhow::Result<()> {
    let running = startup::start_node(&args.profile).await?;
    let served = daemon::serve(running.node.clone(), &args.socket, stop_signal()).await;
    let stopped = running.shutdown().await;
    served?;
    stopped
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Our own warnings are for the person at the keyboard; the Tor libraries' are
/// mostly about network conditions they recover from by themselves, so by default
/// only their errors show. `RUST_LOG` overrides this.
const DEFAULT_LOG_FILTER: &str = "error,nightjar=warn,nightjar_tor=warn,nightjar_proto=warn";

/// Runs a command and reports failure as one sentence (no backtrace: errors here
/// are for the person at the keyboard).
///
/// The runtime is shut down without waiting: tokio reads stdin on a blocking
/// thread that may still be waiting for a line nobody will type.
fn interactive(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(command);
    runtime.shutdown_background();
    if let Err(e) = result {
        eprintln!("nightjar: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// `nightjar tui` with no options (but those from the environment).
fn default_tui() -> anyhow::Result<tui::TuiArgs> {
    match Cli::try_parse_from(["nightjar", "tui"])?.command {
        Some(Command::Tui(args)) => Ok(args),
        _ => anyhow::bail!("the terminal interface has no default options"),
    }
}

/// Sends the log to stderr, or for the terminal interface (whose screen stderr
/// is) to the file it names, or nowhere.
fn init_logging(log_file: Option<&std::path::Path>, to_stderr: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot write the log to {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None if to_stderr => builder.with_writer(std::io::stderr).init(),
        None => builder.with_writer(std::io::sink).init(),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    harden::process()?;
    nightjar_proto::locked::reserve();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let on_terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let command = match cli.command {
        None if on_terminal => Some(Command::Tui(default_tui()?)),
        other => other,
    };
    match &command {
        Some(Command::Tui(args)) => init_logging(args.log_file.as_deref(), false)?,
        _ => init_logging(None, true)?,
    }
    match command {
        Some(Command::Tui(args)) => {
            // Which profile to run was said on the command line; else the list.
            let explicit = matches
                .subcommand_matches("tui")
                .and_then(|m| m.value_source("profile"))
                == Some(ValueSource::CommandLine);
            let pick = !explicit && !args.profile.ephemeral;
            interactive(tui::run(args, pick))
        }
        Some(Command::Demo(args)) => interactive(demo::run(args)),
        Some(Command::Testnet(cmd)) => {
            if let Err(e) = testnet::run(cmd) {
                eprintln!("nightjar: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Some(Command::Daemon(args)) => interactive(run_daemon(args)),
        Some(Command::Cli(args)) => interactive(cli::run(args)),
        Some(Command::Chat(args)) => interactive(chat::run(args)),
        Some(Command::Room(args)) => interactive(room::run(args)),
        Some(Command::Mailbox(args)) => interactive(mailbox::run(args, stop_signal())),
        None => {
            Cli::command().print_help()?;
            Ok(())
        }
    }
}

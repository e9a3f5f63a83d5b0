//! The `nightjar` command.

// `serve` is the entry point of `nightjar daemon`.
#[allow(dead_code)]
mod daemon;
mod demo;
mod testnet;

use clap::{CommandFactory as _, Parser, Subcommand};

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
    /// Show nightjar at work: Alice and Bob talk over a private Tor network started
    /// on this machine (needs Debian's `tor`; takes about a minute).
    Demo(demo::DemoArgs),
    /// A private Tor network on loopback, for development and tests.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
}

/// Our own warnings are for the person at the keyboard; the Tor libraries' are
/// mostly about network conditions they recover from by themselves, so by default
/// only their errors show. `RUST_LOG` overrides this.
const DEFAULT_LOG_FILTER: &str = "error,nightjar=warn,nightjar_tor=warn,nightjar_proto=warn";

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Demo(args)) => tokio::runtime::Runtime::new()?.block_on(demo::run(args)),
        Some(Command::Testnet(cmd)) => testnet::run(cmd),
        None => {
            Cli::command().print_help()?;
            Ok(())
        }
    }
}

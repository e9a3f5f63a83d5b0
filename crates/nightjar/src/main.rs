//! The `nightjar` command.

mod testnet;

use clap::{Parser, Subcommand};

/// nightjar: a messenger over Tor onion services that hides who talks to whom.
#[derive(Debug, Parser)]
#[command(name = "nightjar", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A private Tor network on loopback, for development and tests.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Testnet(cmd)) => testnet::run(cmd),
        None => Ok(()),
    }
}

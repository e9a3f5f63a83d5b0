//! The `nightjar` command.

use clap::Parser;

/// nightjar: a messenger over Tor onion services that hides who talks to whom.
#[derive(Debug, Parser)]
#[command(name = "nightjar", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}

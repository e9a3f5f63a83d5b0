//! `nightjar testnet up|down|env`: a private Tor network on loopback that outlives
//! the command, for trying nightjar and running tests against one network.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use nightjar_tor::testnet::{Lifetime, NetworkDescription, TestNetwork, TestNetworkOptions};

#[derive(Debug, Subcommand)]
pub enum TestnetCommand {
    /// Start the network and wait until it has a consensus.
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Directory authorities.
        #[arg(long, default_value_t = 3)]
        authorities: usize,
        /// Relays besides the authorities.
        #[arg(long, default_value_t = 5)]
        relays: usize,
        /// Seconds between consensuses.
        #[arg(long, default_value_t = 20)]
        voting_interval: u64,
        /// The tor program.
        #[arg(long, default_value = "tor")]
        tor: PathBuf,
    },
    /// Stop the network and remove its directory.
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Print shell assignments describing the network (eval "$(nightjar testnet env)").
    Env {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Debug, Args)]
pub struct DirArg {
    /// Where the network lives [default: $NIGHTJAR_TESTNET, else TMPDIR/nightjar-testnet].
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl DirArg {
    fn resolve(&self) -> PathBuf {
        self.dir
            .clone()
            .or_else(|| std::env::var_os(NetworkDescription::ENV_VAR).map(PathBuf::from))
            .unwrap_or_else(|| std::env::temp_dir().join("nightjar-testnet"))
    }
}

pub fn run(cmd: TestnetCommand) -> anyhow::Result<()> {
    match cmd {
        TestnetCommand::Up {
            dir,
            authorities,
            relays,
            voting_interval,
            tor,
        } => {
            let dir = dir.resolve();
            eprintln!(
                "starting {authorities} authorities and {relays} relays in {}",
                dir.display()
            );
            let tor_gencert = tor.with_file_name("tor-gencert");
            let net = TestNetwork::start_blocking(TestNetworkOptions {
                authorities,
                relays,
                voting_interval: Duration::from_secs(voting_interval),
                tor_gencert: if tor.components().count() > 1 {
                    tor_gencert
                } else {
                    PathBuf::from("tor-gencert")
                },
                tor,
                dir: Some(dir),
                lifetime: Lifetime::Detached,
                ..TestNetworkOptions::default()
            })?;
            let d = net.description();
            eprintln!(
                "up: {} tors, consensus after {:.1} s",
                d.node_count(),
                d.consensus_after_ms as f64 / 1000.0
            );
            eprintln!("description: {}", d.json_path().display());
            eprintln!("C tor client options: {}", d.client_torrc_path().display());
            print!("{}", d.env_text());
            Ok(())
        }
        TestnetCommand::Down { dir } => {
            let dir = dir.resolve();
            if TestNetwork::stop_dir(&dir)? {
                eprintln!("stopped the network in {}", dir.display());
            } else {
                eprintln!("no network was running in {}", dir.display());
            }
            Ok(())
        }
        TestnetCommand::Env { dir } => {
            let dir = dir.resolve();
            let net = TestNetwork::attach(&dir)?;
            let text = std::fs::read_to_string(dir.join(NetworkDescription::ENV_FILE))
                .with_context(|| format!("reading the env file in {}", dir.display()))?;
            drop(net);
            print!("{text}");
            Ok(())
        }
    }
}

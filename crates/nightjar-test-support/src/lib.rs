//! Fixtures shared by nightjar's test binaries and benchmarks.
//!
//! [`shared_network`] gives every test in a binary the same private Tor network:
//! the first caller starts it (about half a minute), the others wait for it, and
//! it stops when the test binary exits, however it exits. With
//! `NIGHTJAR_TESTNET=DIR` set (see `nightjar testnet up` / `env`), tests join the
//! network already running there instead, which saves the start-up on every run.
//! `NIGHTJAR_TOR=/path/to/tor` tests another tor build.

use std::sync::OnceLock;

pub mod memscan;
pub mod onion;
pub mod trace;
pub mod wormhole;

use nightjar_tor::testnet::{Lifetime, TestnetError};
pub use nightjar_tor::testnet::{NetworkDescription, TestNetwork, TestNetworkOptions};

static NETWORK: OnceLock<Result<TestNetwork, String>> = OnceLock::new();

/// The network shared by every test of this binary; started on first use.
///
/// # Panics
///
/// If the network cannot be started (for instance when tor is not installed):
/// a test that needs it must fail loudly rather than pass without it.
#[allow(clippy::panic)]
pub async fn shared_network() -> &'static TestNetwork {
    match try_shared_network().await {
        Ok(net) => net,
        Err(e) => panic!("the private Tor network is not available: {e}"),
    }
}

/// [`shared_network`], returning the reason instead of panicking.
pub async fn try_shared_network() -> Result<&'static TestNetwork, String> {
    // Starting blocks for a while; other tests wait on the same OnceLock in their
    // own blocking threads, so no runtime is stalled.
    let result = tokio::task::spawn_blocking(|| NETWORK.get_or_init(init).as_ref())
        .await
        .map_err(|e| format!("starting the network failed: {e}"))?;
    result.map_err(Clone::clone)
}

fn init() -> Result<TestNetwork, String> {
    init_tracing();
    let started = std::time::Instant::now();
    let net = match std::env::var_os(NetworkDescription::ENV_VAR) {
        Some(dir) => TestNetwork::attach(std::path::Path::new(&dir)),
        None => TestNetwork::start_blocking(options()),
    };
    net.map_err(|e: TestnetError| e.to_string()).inspect(|net| {
        eprintln!(
            "private Tor network: {} tors in {} ({:.1} s to a full consensus, ready after {:.1} s)",
            net.description().node_count(),
            net.dir().display(),
            net.description().consensus_after_ms as f64 / 1000.0,
            started.elapsed().as_secs_f64()
        );
    })
}

/// The network tests start: the defaults, with `NIGHTJAR_TOR=/path/to/tor` (and
/// its sibling `tor-gencert`) choosing another tor build.
fn options() -> TestNetworkOptions {
    let mut options = TestNetworkOptions {
        lifetime: Lifetime::ThisProcess,
        ..TestNetworkOptions::default()
    };
    if std::env::var_os(TOR_VAR).is_some() {
        let tor = tor_program();
        options.tor_gencert = tor.with_file_name("tor-gencert");
        options.tor = tor;
    }
    options
}

/// The tor program tests should run: `$NIGHTJAR_TOR`, else `tor` from `PATH`.
pub fn tor_program() -> std::path::PathBuf {
    std::env::var_os(TOR_VAR)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "tor".into())
}

/// Names the tor program tests use instead of `tor` from `PATH`.
pub const TOR_VAR: &str = "NIGHTJAR_TOR";

/// Sends `tracing` output to the test harness (captured unless `--nocapture`),
/// filtered by `RUST_LOG`. Safe to call from every test.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

//! File throughput over the private Tor network: `send_file` between two nodes
//! on on-disk profiles, beside a raw onion stream between the same two Tor
//! clients carrying the same number of bytes, measured in the same run, runs
//! interleaved so both see the same machine.
//!
//! The raw reference goes both ways over one stream (client → service and
//! service → client), since a node link may be dialled by either side. The node
//! figure runs from the sender's transfer turning active (the receiver accepted)
//! to the receiver's transfer completing (written, synced, hash checked, moved
//! into place).
//!
//! ```text
//! cargo bench -p nightjar-node --bench file_throughput -- [--mib 64] [--runs 3] [--backend ctor|arti]
//! ```
//!
//! `NIGHTJAR_TESTNET=DIR` reuses a network from `nightjar testnet up`.

// A benchmark binary: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nightjar_node::{
    AcceptFile, Event, FilesConfig, MessageState, Node, NodeConfig, OfflineConfig, Rendezvous,
    TransferState,
};
use nightjar_store::{KdfParams, Store};
use nightjar_test_support::{shared_network, tor_program};
use nightjar_tor::{
    Backend, BoxStream, ConnectOptions, IsolationKey, ServiceConfig, ServiceKey, Transport,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

/// A hang guard for one step; nothing is asserted about time.
const PATIENCE: Duration = Duration::from_secs(900);
/// The size of each write on the raw stream.
const WRITE_LEN: usize = 64 * 1024;
/// The share of the raw stream's throughput the node aims for.
const GOAL: f64 = 0.90;
/// What the client sends first on the raw stream.
const HELLO: &[u8; 8] = b"nj-bench";

struct Args {
    mib: usize,
    runs: usize,
    backend: Backend,
}

fn parse_args() -> Args {
    let mut parsed = Args {
        mib: 64,
        runs: 3,
        backend: Backend::CTor,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> usize {
            args.next()
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or_else(|| panic!("{flag} N (a positive number)"))
        };
        match arg.as_str() {
            "--mib" => parsed.mib = number("--mib"),
            "--runs" => parsed.runs = number("--runs"),
            "--backend" => {
                parsed.backend = args
                    .next()
                    .and_then(|b| b.parse().ok())
                    .expect("--backend ctor|arti")
            }
            // Flags cargo bench passes to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    parsed
}

fn main() {
    let args = parse_args();
    tokio::runtime::Runtime::new().unwrap().block_on(run(args));
}

async fn run(args: Args) {
    let Args { mib, runs, backend } = args;
    let len = mib << 20;
    let net = shared_network().await;
    let start = |_: ()| backend.launch_on_testnet(net.description(), tor_program());
    let (alice_tor, bob_tor) = tokio::try_join!(start(()), start(())).unwrap();

    let mut raw = RawPair::open(&*alice_tor, &*bob_tor).await;
    let mut nodes = NodePair::start(alice_tor.clone(), bob_tor.clone(), len).await;

    let (mut up, mut down, mut node) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let a = raw.up(len).await;
        let b = raw.down(len).await;
        let c = nodes.transfer().await;
        eprintln!(
            "run {run}/{runs}: raw up {:.2} MB/s, raw down {:.2} MB/s, nightjar {:.2} MB/s",
            mbps(len, a),
            mbps(len, b),
            mbps(len, c)
        );
        up.push(mbps(len, a));
        down.push(mbps(len, b));
        node.push(mbps(len, c));
    }
    nodes.stop().await;
    raw.close().await;

    let (up, down, node) = (median(&up), median(&down), median(&node));
    let ratio = node / up.max(down);
    println!(
        "\nfile throughput over the private Tor network ({backend} ↔ {backend}), {mib} MiB, medians of {runs} runs"
    );
    println!(
        "{:<52} {:>8.2} MB/s",
        "raw onion stream A -> B (client -> service)", up
    );
    println!(
        "{:<52} {:>8.2} MB/s",
        "raw onion stream B -> A (service -> client)", down
    );
    println!(
        "{:<52} {:>8.2} MB/s",
        "nightjar: A's transfer active -> B's completed", node
    );
    println!("ratio node / max(raw up, raw down): {ratio:.2}x");
    println!(
        "goal >= {GOAL:.2}x: {}",
        if ratio >= GOAL { "met" } else { "not met" }
    );
    alice_tor.shutdown().await.unwrap();
    bob_tor.shutdown().await.unwrap();
}

/// Decimal megabytes per second.
fn mbps(len: usize, took: Duration) -> f64 {
    len as f64 / took.as_secs_f64() / 1e6
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

// ----- the raw reference ----------------------------------------------------------

/// One onion service on B and one stream to it from A, kept for every run.
struct RawPair {
    service: Arc<dyn nightjar_tor::OnionService>,
    client: BoxStream,
    served: BoxStream,
}

impl RawPair {
    async fn open(client: &dyn Transport, host: &dyn Transport) -> Self {
        let service = host
            .launch_service(ServiceConfig {
                nickname: "bench-sink".into(),
                key: ServiceKey::Ephemeral,
                virtual_port: 80,
                authorized_clients: None,
            })
            .await
            .unwrap();
        let address = service.address();
        let service: Arc<dyn nightjar_tor::OnionService> = service.into();
        // A connect attempt given up by the client may still reach the service:
        // the stream to keep is the one that says hello.
        let (found_tx, mut found) = mpsc::unbounded_channel();
        let accepting = {
            let service = service.clone();
            tokio::spawn(async move {
                while let Ok(mut stream) = service.accept().await {
                    let found_tx = found_tx.clone();
                    tokio::spawn(async move {
                        let mut hello = [0u8; HELLO.len()];
                        if stream.read_exact(&mut hello).await.is_ok() && hello == *HELLO {
                            let _ = found_tx.send(stream);
                        }
                    });
                }
            })
        };
        let options = ConnectOptions {
            isolation: IsolationKey("bench".into()),
            client_auth: None,
        };
        let mut client = tokio::time::timeout(PATIENCE, async {
            loop {
                match client.connect(&address, 80, &options).await {
                    Ok(stream) => break stream,
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        })
        .await
        .expect("the service never became reachable");
        client.write_all(HELLO).await.unwrap();
        client.flush().await.unwrap();
        let served = tokio::time::timeout(PATIENCE, found.recv())
            .await
            .expect("the service never heard hello")
            .unwrap();
        accepting.abort();
        Self {
            service,
            client,
            served,
        }
    }

    /// Client → service: first write to the last byte read.
    async fn up(&mut self, len: usize) -> Duration {
        stream_once(&mut self.client, &mut self.served, len).await
    }

    /// Service → client.
    async fn down(&mut self, len: usize) -> Duration {
        stream_once(&mut self.served, &mut self.client, len).await
    }

    async fn close(self) {
        drop((self.client, self.served));
        self.service.shutdown().await.unwrap();
    }
}

async fn stream_once(from: &mut BoxStream, to: &mut BoxStream, len: usize) -> Duration {
    let block = vec![0x5a_u8; WRITE_LEN];
    let write = async {
        let started = Instant::now();
        let mut left = len;
        while left > 0 {
            let n = left.min(WRITE_LEN);
            from.write_all(&block[..n]).await.unwrap();
            left -= n;
        }
        from.flush().await.unwrap();
        started
    };
    let read = async {
        let mut buf = vec![0u8; WRITE_LEN];
        let mut left = len;
        while left > 0 {
            let n = to.read(&mut buf[..left.min(WRITE_LEN)]).await.unwrap();
            assert!(n > 0, "the stream closed early");
            left -= n;
        }
        Instant::now()
    };
    let (started, finished) = tokio::time::timeout(PATIENCE, async { tokio::join!(write, read) })
        .await
        .expect("the raw transfer stalled");
    finished - started
}

// ----- nightjar -------------------------------------------------------------------

type Stamped = mpsc::UnboundedReceiver<(Instant, Event)>;

/// Two befriended nodes on on-disk profiles and the file A sends B.
struct NodePair {
    _dir: tempfile::TempDir,
    source: PathBuf,
    downloads: PathBuf,
    alice: Node,
    alice_events: Stamped,
    bob: Node,
    bob_events: Stamped,
}

impl NodePair {
    async fn start(alice_tor: Arc<dyn Transport>, bob_tor: Arc<dyn Transport>, len: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("payload.bin");
        write_payload(&source, len);
        let (alice, mut alice_events) = start_node(dir.path(), "alice", alice_tor).await;
        let (bob, mut bob_events) = start_node(dir.path(), "bob", bob_tor).await;

        let address = bob.info().await.unwrap().address;
        alice.send_request(&address, "bob", "").await.unwrap();
        let request = until(&mut bob_events, |e| match e {
            Event::RequestReceived { request } => Some(request.id),
            _ => None,
        })
        .await
        .1;
        bob.accept_request(request, "alice").await.unwrap();
        until(&mut alice_events, |e| {
            matches!(e, Event::ContactAdded { .. }).then_some(())
        })
        .await;
        // One message each way, so the link is up and warm before timing.
        for (from, to, events) in [
            (&alice, "bob", &mut alice_events),
            (&bob, "alice", &mut bob_events),
        ] {
            let sent = from.send_message(to, "warming up").await.unwrap();
            until(events, |e| match e {
                Event::MessageState {
                    id,
                    state: MessageState::Delivered,
                    ..
                } if *id == sent.id => Some(()),
                _ => None,
            })
            .await;
        }
        Self {
            downloads: dir.path().join("bob-downloads"),
            _dir: dir,
            source,
            alice,
            alice_events,
            bob,
            bob_events,
        }
    }

    /// One transfer: A's transfer turning active to B's completing.
    async fn transfer(&mut self) -> Duration {
        let sent = self.alice.send_file("bob", &self.source).await.unwrap();
        let offer = until(&mut self.bob_events, |e| match e {
            Event::FileOffered { transfer } => Some(transfer.id),
            _ => None,
        })
        .await
        .1;
        self.bob
            .accept_file(offer, AcceptFile::default())
            .await
            .unwrap();
        let (started, ()) = until(&mut self.alice_events, |e| {
            state_of(e, sent.id, TransferState::Active)
        })
        .await;
        let (finished, path) = until(&mut self.bob_events, |e| match e {
            Event::FileState { transfer }
                if transfer.id == offer && transfer.state == TransferState::Completed =>
            {
                Some(transfer.path.clone().expect("a completed file has a path"))
            }
            Event::FileState { transfer } if transfer.id == offer && is_final(transfer.state) => {
                panic!("the transfer ended {:?}", transfer.state)
            }
            _ => None,
        })
        .await;
        until(&mut self.alice_events, |e| {
            state_of(e, sent.id, TransferState::Completed)
        })
        .await;
        // Keep the disk from filling over many runs.
        std::fs::remove_file(Path::new(&path)).unwrap();
        assert!(Path::new(&path).starts_with(&self.downloads));
        finished - started
    }

    async fn stop(self) {
        self.alice.shutdown().await.unwrap();
        self.bob.shutdown().await.unwrap();
    }
}

fn state_of(event: &Event, id: i64, state: TransferState) -> Option<()> {
    match event {
        Event::FileState { transfer } if transfer.id == id => {
            if transfer.state == state {
                Some(())
            } else if is_final(transfer.state) {
                panic!("the transfer ended {:?}", transfer.state)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn is_final(state: TransferState) -> bool {
    matches!(
        state,
        TransferState::Completed
            | TransferState::Declined
            | TransferState::Cancelled
            | TransferState::Failed
    )
}

/// The same bytes on every run: a fixed-seed SplitMix64 stream, which neither
/// compresses nor repeats.
fn write_payload(path: &Path, len: usize) {
    let mut state = 0x6e69_6768_746a_6172_u64;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        data.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).unwrap();
}

async fn start_node(root: &Path, who: &str, tor: Arc<dyn Transport>) -> (Node, Stamped) {
    // A cheap key derivation: the profile is a throwaway.
    let kdf = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    let store =
        Store::create(&root.join(who), "bench", kdf, &nightjar_node::new_profile()).unwrap();
    let node = nightjar_node::start(NodeConfig {
        store,
        transport: tor,
        ephemeral: false,
        rendezvous: Rendezvous::default(),
        offline: OfflineConfig::default(),
        files: FilesConfig {
            downloads: root.join(format!("{who}-downloads")),
            max_incoming: u64::MAX,
        },
        shaping: nightjar_node::ShapingConfig::UNSHAPED,
    })
    .await
    .unwrap();
    // Stamp each event as it is broadcast, not when the bench gets round to it.
    let mut events = node.subscribe();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if tx.send((Instant::now(), event)).is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("missed {n} events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    (node, rx)
}

async fn until<T>(events: &mut Stamped, mut pick: impl FnMut(&Event) -> Option<T>) -> (Instant, T) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let (at, event) = events.recv().await.expect("the node stopped");
            if let Some(found) = pick(&event) {
                return (at, found);
            }
        }
    })
    .await
    .expect("the node never reported the expected event")
}

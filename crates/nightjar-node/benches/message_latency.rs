//! Message latency over the private Tor network: from `send_message` to the
//! delivery receipt, beside the round trip of one cell over a raw onion stream
//! between the same two Tor clients, measured in the same run. The difference is
//! what the node adds (handshake state, encryption, storage, receipts).
//!
//! ```text
//! cargo bench -p nightjar-node --bench message_latency -- [--messages 200] [--backend ctor|arti]
//! ```
//!
//! `NIGHTJAR_TESTNET=DIR` reuses a network from `nightjar testnet up`.

// A benchmark binary: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nightjar_node::{Event, MessageState, Node, NodeConfig};
use nightjar_proto::cell::CELL_SIZE;
use nightjar_store::Store;
use nightjar_test_support::{shared_network, tor_program};
use nightjar_tor::{Backend, ConnectOptions, IsolationKey, ServiceConfig, ServiceKey, Transport};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::broadcast;

const PATIENCE: Duration = Duration::from_secs(600);

fn main() {
    let mut messages = 200usize;
    let mut backend = Backend::CTor;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--messages" => {
                messages = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--messages N")
            }
            "--backend" => {
                backend = args
                    .next()
                    .and_then(|b| b.parse().ok())
                    .expect("--backend ctor|arti")
            }
            // Flags cargo bench passes to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(messages, backend));
}

async fn run(messages: usize, backend: Backend) {
    let net = shared_network().await;
    let start = |_: ()| backend.launch_on_testnet(net.description(), tor_program());
    let (alice_tor, bob_tor) = tokio::try_join!(start(()), start(())).unwrap();

    let raw = raw_round_trips(&*alice_tor, &*bob_tor, messages).await;
    let node = node_round_trips(alice_tor.clone(), bob_tor.clone(), messages).await;

    println!(
        "\nmessage latency over the private Tor network ({backend} ↔ {backend}), {messages} samples each"
    );
    println!("{:<44} {:>9} {:>9}", "", "p50", "p99");
    let row = |name: &str, s: &[Duration]| {
        println!(
            "{name:<44} {:>7.1}ms {:>7.1}ms",
            ms(percentile(s, 50)),
            ms(percentile(s, 99))
        );
    };
    row("raw onion stream: one cell there and back", &raw);
    row("nightjar: send_message -> delivered receipt", &node);
    let overhead = ms(percentile(&node, 50)) - ms(percentile(&raw, 50));
    println!(
        "overhead at p50: {overhead:+.1} ms ({:.2}x the raw round trip)",
        ms(percentile(&node, 50)) / ms(percentile(&raw, 50))
    );
    alice_tor.shutdown().await.unwrap();
    bob_tor.shutdown().await.unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let index = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

/// One cell echoed over a plain onion stream, the floor for any protocol.
async fn raw_round_trips(client: &dyn Transport, host: &dyn Transport, n: usize) -> Vec<Duration> {
    let service = host
        .launch_service(ServiceConfig {
            nickname: "bench-echo".into(),
            key: ServiceKey::Ephemeral,
            virtual_port: 80,
            authorized_clients: None,
        })
        .await
        .unwrap();
    let address = service.address();
    let service: Arc<dyn nightjar_tor::OnionService> = service.into();
    let echo = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut stream = service.accept().await.unwrap();
            let mut cell = [0u8; CELL_SIZE];
            while stream.read_exact(&mut cell).await.is_ok() {
                stream.write_all(&cell).await.unwrap();
                stream.flush().await.unwrap();
            }
        })
    };
    let options = ConnectOptions {
        isolation: IsolationKey("bench".into()),
        client_auth: None,
    };
    let mut stream = tokio::time::timeout(PATIENCE, async {
        loop {
            match client.connect(&address, 80, &options).await {
                Ok(stream) => break stream,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    })
    .await
    .expect("the echo service never became reachable");
    let mut cell = [7u8; CELL_SIZE];
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let started = Instant::now();
        stream.write_all(&cell).await.unwrap();
        stream.flush().await.unwrap();
        stream.read_exact(&mut cell).await.unwrap();
        // The first round trips warm the circuit up, as the node's do below.
        if i >= 10 {
            samples.push(started.elapsed());
        }
    }
    drop(stream);
    echo.abort();
    service.shutdown().await.unwrap();
    samples
}

async fn start_node(tor: Arc<dyn Transport>) -> (Node, broadcast::Receiver<Event>) {
    let store = Store::in_memory(&nightjar_node::new_profile()).unwrap();
    let node = nightjar_node::start(NodeConfig {
        store,
        transport: tor,
        ephemeral: true,
        rendezvous: nightjar_node::Rendezvous::default(),
        offline: nightjar_node::OfflineConfig::default(),
        files: nightjar_node::FilesConfig::default(),
        shaping: nightjar_node::ShapingConfig::UNSHAPED,
    })
    .await
    .unwrap();
    let events = node.subscribe();
    (node, events)
}

async fn until<T>(
    events: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(event) = events.recv().await
                && let Some(found) = pick(&event)
            {
                return found;
            }
        }
    })
    .await
    .expect("the node never reported the expected event")
}

async fn node_round_trips(
    alice_tor: Arc<dyn Transport>,
    bob_tor: Arc<dyn Transport>,
    n: usize,
) -> Vec<Duration> {
    let (alice, mut alice_events) = start_node(alice_tor).await;
    let (bob, mut bob_events) = start_node(bob_tor).await;
    let address = bob.info().await.unwrap().address;
    alice.send_request(&address, "bob", "").await.unwrap();
    let request = until(&mut bob_events, |e| match e {
        Event::RequestReceived { request } => Some(request.id),
        _ => None,
    })
    .await;
    bob.accept_request(request, "alice").await.unwrap();
    until(&mut alice_events, |e| {
        matches!(e, Event::ContactAdded { .. }).then_some(())
    })
    .await;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let started = Instant::now();
        let sent = alice
            .send_message("bob", &format!("ping {i}"))
            .await
            .unwrap();
        until(&mut alice_events, |e| match e {
            Event::MessageState {
                id,
                state: MessageState::Delivered,
                ..
            } if *id == sent.id => Some(()),
            _ => None,
        })
        .await;
        if i >= 10 {
            samples.push(started.elapsed());
        }
    }
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
    samples
}

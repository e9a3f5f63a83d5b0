//! What the engine's tests share: starting nodes on the loopback transport, waiting
//! for events, making two nodes contacts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::sync::Arc;
use std::time::Duration;

use nightjar_node::{
    Event, FilesConfig, MessageState, Node, NodeConfig, OfflineConfig, Rendezvous, ShapingConfig,
};
use nightjar_store::{KdfParams, Store};
use nightjar_tor::Transport;
use nightjar_tor::loopback::LoopbackNetwork;
use nightjar_tor::tap::{TapLog, TapTransport};
use tokio::sync::broadcast;

/// Only a guard against hangs; nothing here is timed.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn ephemeral(net: &LoopbackNetwork) -> (Node, broadcast::Receiver<Event>) {
    let store = Store::in_memory(&nightjar_node::new_profile()).unwrap();
    start(store, net.transport()).await
}

pub async fn start(
    store: Store,
    transport: Arc<dyn Transport>,
) -> (Node, broadcast::Receiver<Event>) {
    start_with(store, transport, Rendezvous::default()).await
}

pub async fn start_with(
    store: Store,
    transport: Arc<dyn Transport>,
    rendezvous: Rendezvous,
) -> (Node, broadcast::Receiver<Event>) {
    start_configured(store, transport, rendezvous, OfflineConfig::default()).await
}

pub async fn start_configured(
    store: Store,
    transport: Arc<dyn Transport>,
    rendezvous: Rendezvous,
    offline: OfflineConfig,
) -> (Node, broadcast::Receiver<Event>) {
    let files = FilesConfig::default();
    start_full(store, transport, rendezvous, offline, files, true).await
}

/// A node on a persistent profile with these file settings.
pub async fn start_with_files(
    store: Store,
    transport: Arc<dyn Transport>,
    files: FilesConfig,
) -> (Node, broadcast::Receiver<Event>) {
    let offline = OfflineConfig::default();
    start_full(
        store,
        transport,
        Rendezvous::default(),
        offline,
        files,
        false,
    )
    .await
}

/// An ephemeral node whose links are shaped by `shaping`.
pub async fn start_shaped(
    transport: Arc<dyn Transport>,
    shaping: ShapingConfig,
) -> (Node, broadcast::Receiver<Event>) {
    let store = Store::in_memory(&nightjar_node::new_profile()).unwrap();
    let config = NodeConfig {
        store,
        transport,
        ephemeral: true,
        rendezvous: Rendezvous::default(),
        offline: OfflineConfig::default(),
        files: FilesConfig::default(),
        shaping,
    };
    start_node(config).await
}

async fn start_full(
    store: Store,
    transport: Arc<dyn Transport>,
    rendezvous: Rendezvous,
    offline: OfflineConfig,
    files: FilesConfig,
    ephemeral: bool,
) -> (Node, broadcast::Receiver<Event>) {
    start_node(NodeConfig {
        store,
        transport,
        ephemeral,
        rendezvous,
        offline,
        files,
        shaping: ShapingConfig::UNSHAPED,
    })
    .await
}

async fn start_node(config: NodeConfig) -> (Node, broadcast::Receiver<Event>) {
    let node = nightjar_node::start(config).await.unwrap();
    let events = node.subscribe();
    (node, events)
}

/// A persistent profile with a cheap key derivation (tests open many).
pub fn create_profile(dir: &std::path::Path) -> Store {
    let cheap = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    Store::create(dir, "pass", cheap, &nightjar_node::new_profile()).unwrap()
}

pub async fn next_matching<T>(
    events: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.expect("event stream ended");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the expected event never came")
}

/// Alice asks Bob; Bob accepts; both end up with an active contact.
pub async fn befriend(
    alice: &Node,
    alice_events: &mut broadcast::Receiver<Event>,
    bob: &Node,
    bob_events: &mut broadcast::Receiver<Event>,
) {
    befriend_as(alice, alice_events, "bob", bob, bob_events, "alice").await;
}

/// [`befriend`], with the names each side gives the other.
pub async fn befriend_as(
    alice: &Node,
    alice_events: &mut broadcast::Receiver<Event>,
    bob_name: &str,
    bob: &Node,
    bob_events: &mut broadcast::Receiver<Event>,
    alice_name: &str,
) {
    let bob_address = bob.info().await.unwrap().address;
    alice
        .send_request(&bob_address, bob_name, "hi, it's alice")
        .await
        .unwrap();
    let request = next_matching(bob_events, |e| match e {
        Event::RequestReceived { request } => Some(request.clone()),
        _ => None,
    })
    .await;
    assert_eq!(request.greeting, "hi, it's alice");
    assert_eq!(request.fingerprint, alice.info().await.unwrap().fingerprint);
    next_matching(alice_events, |e| {
        matches!(e, Event::RequestDelivered { .. }).then_some(())
    })
    .await;
    bob.accept_request(request.id, alice_name).await.unwrap();
    let added = next_matching(alice_events, |e| match e {
        Event::ContactAdded { contact } => Some(contact.clone()),
        _ => None,
    })
    .await;
    assert_eq!(added.name, bob_name);
    next_matching(bob_events, |e| {
        matches!(e, Event::ContactAdded { .. }).then_some(())
    })
    .await;
}

pub async fn delivered(events: &mut broadcast::Receiver<Event>, id: &str) {
    next_matching(events, |e| match e {
        Event::MessageState { id: got, state, .. }
            if got == id && *state == MessageState::Delivered =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
}

pub async fn received(events: &mut broadcast::Receiver<Event>) -> (String, String) {
    next_matching(events, |e| match e {
        Event::MessageReceived { message } => Some((message.contact.clone(), message.body.clone())),
        _ => None,
    })
    .await
}

/// Waits until `name` is connected to `node`.
pub async fn until_online(node: &Node, events: &mut broadcast::Receiver<Event>, name: &str) {
    if node.contact(name).await.unwrap().online {
        return;
    }
    next_matching(events, |e| {
        matches!(e, Event::Connected { contact } if contact == name).then_some(())
    })
    .await;
}

/// Alice and Bob, contacts with a link up, both shaped by `shaping`; every
/// stream of Alice's transport is recorded in `alice_wire`.
pub struct ShapedPair {
    pub net: LoopbackNetwork,
    pub alice_wire: TapLog,
    pub alice: Node,
    pub alice_events: broadcast::Receiver<Event>,
    pub bob: Node,
    pub bob_events: broadcast::Receiver<Event>,
}

pub async fn shaped_pair(shaping: ShapingConfig) -> ShapedPair {
    let net = LoopbackNetwork::new();
    let (alice_transport, alice_wire) = TapTransport::wrap(net.transport());
    let (alice, mut alice_events) = start_shaped(alice_transport, shaping).await;
    let (bob, mut bob_events) = start_shaped(net.transport(), shaping).await;
    befriend(&alice, &mut alice_events, &bob, &mut bob_events).await;
    until_online(&alice, &mut alice_events, "bob").await;
    until_online(&bob, &mut bob_events, "alice").await;
    ShapedPair {
        net,
        alice_wire,
        alice,
        alice_events,
        bob,
        bob_events,
    }
}

/// A C tor client of the shared private network, bootstrapped.
pub async fn test_ctor() -> Arc<nightjar_tor::ctor::CTor> {
    use nightjar_tor::ctor::{CTor, CTorOptions, TorProcessConfig};
    let net = nightjar_test_support::shared_network().await;
    let config = TorProcessConfig {
        tor: nightjar_test_support::tor_program(),
        ..TorProcessConfig::for_test_network(net.description())
    };
    let options = CTorOptions {
        // A fresh service takes a few seconds to publish on this network.
        connect_attempts: 12,
        ..CTorOptions::default()
    };
    let tor = CTor::launch(config, options).await.unwrap();
    tor.wait_bootstrapped().await.unwrap();
    Arc::new(tor)
}

/// A mailbox server with cheap work on a loopback port, published as an onion
/// of `tor`; the server runs until the test ends.
pub async fn mailbox_onion(
    tor: &dyn Transport,
) -> (nightjar_mailbox::Mailbox, nightjar_tor::forward::Forward) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = nightjar_mailbox::Config::default();
    config.pow.min_difficulty = 4;
    config.pow.max_difficulty = 4;
    let mailbox = nightjar_mailbox::Mailbox::new(config).unwrap();
    tokio::spawn({
        let mailbox = mailbox.clone();
        async move {
            nightjar_mailbox::serve_mailbox(listener, mailbox, std::future::pending())
                .await
                .unwrap();
        }
    });
    let service = nightjar_tor::ServiceConfig {
        nickname: "mailbox".into(),
        key: nightjar_tor::ServiceKey::Ephemeral,
        virtual_port: 80,
        authorized_clients: None,
    };
    let forward = nightjar_tor::forward::Forward::start(tor, service, addr)
        .await
        .unwrap();
    (mailbox, forward)
}

/// Over Tor on a busy machine things can be slow: only a guard against hangs.
pub const TOR_PATIENCE: Duration = Duration::from_secs(900);

/// [`next_matching`] with [`TOR_PATIENCE`], for tests over the private Tor
/// network; events lost to a lagging receiver are skipped.
pub async fn next_over_tor<T>(
    events: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(TOR_PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the event stream ended"),
            }
        }
    })
    .await
    .expect("the expected event never came")
}

/// A node on the on-disk profile `root/who` (made on first use, with a cheap
/// key derivation), unshaped, taking files up to `max_incoming` bytes.
pub async fn start_on_disk(
    root: &std::path::Path,
    who: &str,
    transport: Arc<dyn Transport>,
    max_incoming: u64,
) -> (Node, broadcast::Receiver<Event>) {
    let dir = root.join(who);
    let store = if dir.exists() {
        Store::open(&dir, "pass").unwrap()
    } else {
        let kdf = KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        Store::create(&dir, "pass", kdf, &nightjar_node::new_profile()).unwrap()
    };
    let node = nightjar_node::start(NodeConfig {
        store,
        transport,
        ephemeral: false,
        rendezvous: Rendezvous::default(),
        offline: OfflineConfig::default(),
        files: FilesConfig {
            downloads: root.join(format!("{who}-downloads")),
            max_incoming,
        },
        shaping: ShapingConfig::UNSHAPED,
    })
    .await
    .unwrap();
    let events = node.subscribe();
    (node, events)
}

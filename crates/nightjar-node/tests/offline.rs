//! Offline delivery through a mailbox, on the in-process loopback network: a
//! real mailbox server (on a loopback TCP port, published as an onion of the
//! loopback network) and persistent profiles that stop and start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use nightjar_node::{Event, MessageDirection, MessageState, Node, OfflineConfig, Rendezvous};
use nightjar_store::Store;
use nightjar_tor::forward::Forward;
use nightjar_tor::loopback::LoopbackNetwork;
use nightjar_tor::tap::{TapLog, TapTransport};
use nightjar_tor::{ServiceConfig, ServiceKey, Transport};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};

/// A mailbox server on a loopback port; stopping and starting it again on the
/// same port is a restart (the onion in front of it stays).
struct MailboxServer {
    addr: SocketAddr,
    /// The mailbox behind it, for its counts.
    mailbox: nightjar_mailbox::Mailbox,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MailboxServer {
    async fn start_at(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let mailbox = nightjar_mailbox::Mailbox::new(nightjar_mailbox::Config::default()).unwrap();
        let task = tokio::spawn({
            let mailbox = mailbox.clone();
            async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                nightjar_mailbox::serve_mailbox(listener, mailbox, shutdown)
                    .await
                    .unwrap();
            }
        });
        Self {
            addr,
            mailbox,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn restart(mut self) -> Self {
        let addr = self.addr;
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        Self::start_at(addr).await
    }
}

/// The mailbox's onion, and the transport that must live as long as it.
async fn publish(net: &LoopbackNetwork, server: &MailboxServer) -> (Forward, Arc<dyn Transport>) {
    let config = ServiceConfig {
        nickname: "mailbox".into(),
        key: ServiceKey::Ephemeral,
        virtual_port: 80,
        authorized_clients: None,
    };
    let tor = net.transport();
    let forward = Forward::start(&*tor, config, server.addr).await.unwrap();
    (forward, tor)
}

fn quick() -> OfflineConfig {
    OfflineConfig {
        drain_every: Duration::from_secs(1),
        check_every: Duration::from_secs(1),
        deposit_after: Duration::from_secs(60),
        mailbox_cover: None,
    }
}

/// [`quick`], with cover deposits at short random intervals.
fn quick_with_cover() -> OfflineConfig {
    OfflineConfig {
        mailbox_cover: Some(Duration::from_millis(200)),
        ..quick()
    }
}

async fn open(dir: &Path, transport: Arc<dyn Transport>) -> (Node, broadcast::Receiver<Event>) {
    open_with(dir, transport, quick()).await
}

async fn open_with(
    dir: &Path,
    transport: Arc<dyn Transport>,
    offline: OfflineConfig,
) -> (Node, broadcast::Receiver<Event>) {
    let store = Store::open(dir, "pass").unwrap();
    start_configured(store, transport, Rendezvous::default(), offline).await
}

/// Alice (with `alice_offline`) and Bob, contacts, with Bob naming `mailbox`;
/// returns once Alice has Bob's grant (a text Bob sent after it arrived) and
/// Bob is gone.
async fn alice_with_bob_away(
    net: &LoopbackNetwork,
    alice_transport: Arc<dyn Transport>,
    root: &Path,
    mailbox: &Forward,
    alice_offline: OfflineConfig,
) -> (Node, broadcast::Receiver<Event>) {
    let alice_store = create_profile(&root.join("alice"));
    let bob_store = create_profile(&root.join("bob"));
    let (alice, mut alice_events) = start_configured(
        alice_store,
        alice_transport,
        Rendezvous::default(),
        alice_offline,
    )
    .await;
    let (bob, mut bob_events) =
        start_configured(bob_store, net.transport(), Rendezvous::default(), quick()).await;
    let listed = bob
        .add_mailbox(&mailbox.address().to_string())
        .await
        .unwrap();
    assert_eq!(listed, vec![mailbox.address().to_string()]);
    befriend(&alice, &mut alice_events, &bob, &mut bob_events).await;
    until_online(&bob, &mut bob_events, "alice").await;
    // The grant goes out on the link before anything else Bob sends on it.
    bob.send_message("alice", "see you").await.unwrap();
    assert_eq!(received(&mut alice_events).await.1, "see you");
    bob.shutdown().await.unwrap();
    next_matching(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    (alice, alice_events)
}

async fn deposited(events: &mut broadcast::Receiver<Event>, ids: &[String]) {
    for id in ids {
        next_matching(events, |e| match e {
            Event::MessageState { id: got, state, .. }
                if got == id && *state == MessageState::Deposited =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    }
}

async fn send_all(alice: &Node, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let sent = alice
            .send_message("bob", &format!("while you were away {i}"))
            .await
            .unwrap();
        ids.push(sent.id);
    }
    ids
}

/// Bob comes back while Alice is away: everything arrives from the mailbox, in
/// order, once.
async fn bob_drains(net: &LoopbackNetwork, root: &Path, n: usize) -> Node {
    let (bob, mut bob_events) = open(&root.join("bob"), net.transport()).await;
    for i in 0..n {
        let message = next_matching(&mut bob_events, |e| match e {
            Event::MessageReceived { message } => Some(message.clone()),
            _ => None,
        })
        .await;
        assert_eq!(message.body, format!("while you were away {i}"));
        assert!(message.via_mailbox, "message {i} came over a link");
    }
    bob
}

/// The messages `node` stored from `contact`.
async fn incoming(node: &Node, contact: &str) -> Vec<nightjar_node::MessageView> {
    let history = node.history(contact, 100).await.unwrap();
    history
        .into_iter()
        .filter(|m| m.direction == MessageDirection::Incoming)
        .collect()
}

/// A mailbox on its onion; Bob names it, then goes away; Alice sends `n`
/// messages and sees each deposited.
struct Scene {
    net: LoopbackNetwork,
    root: tempfile::TempDir,
    server: MailboxServer,
    _mailbox: (Forward, Arc<dyn Transport>),
    alice: Node,
    alice_events: broadcast::Receiver<Event>,
    ids: Vec<String>,
    /// What Alice's transport opened.
    alice_wire: TapLog,
}

async fn scene(n: usize) -> Scene {
    let mut scene = away_scene(quick()).await;
    scene.ids = send_all(&scene.alice, n).await;
    deposited(&mut scene.alice_events, &scene.ids).await;
    scene
}

/// The scene before Alice sends anything, with Alice's offline settings.
async fn away_scene(alice_offline: OfflineConfig) -> Scene {
    let net = LoopbackNetwork::new();
    let root = tempfile::tempdir().unwrap();
    let server = MailboxServer::start_at("127.0.0.1:0".parse().unwrap()).await;
    let mailbox = publish(&net, &server).await;
    let (alice_transport, alice_wire) = TapTransport::wrap(net.transport());
    let (alice, alice_events) = alice_with_bob_away(
        &net,
        alice_transport,
        root.path(),
        &mailbox.0,
        alice_offline,
    )
    .await;
    Scene {
        net,
        root,
        server,
        _mailbox: mailbox,
        alice,
        alice_events,
        ids: Vec::new(),
        alice_wire,
    }
}

/// The sizes of the deposit requests written on a tapped transport.
fn deposit_requests(wire: &TapLog) -> Vec<usize> {
    wire.units()
        .into_iter()
        .filter(|u| u.out && u.head.as_deref() == Some("POST /v2/deposit"))
        .map(|u| u.len)
        .collect()
}

/// Waits until `done` holds, looking every 50 ms. The limit is only a guard
/// against hangs; nothing here is timed.
async fn until(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(120), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the awaited state never came");
}

/// The most counters cover takes under one grant: a quarter of the receiver's
/// window, so that the rest is left to real messages.
const COVER_BOUND: usize = (nightjar_proto::offline::WINDOW / 4) as usize;

#[tokio::test]
async fn twenty_messages_wait_in_the_mailbox_and_arrive_once_in_order() {
    let Scene {
        net,
        root,
        server: _server,
        _mailbox,
        alice,
        ids,
        ..
    } = scene(20).await;
    alice.shutdown().await.unwrap();

    let bob = bob_drains(&net, root.path(), 20).await;
    // Alice comes back: her copies go over the link too, Bob keeps one of each
    // and confirms them all.
    let (alice, mut alice_events) = open(&root.path().join("alice"), net.transport()).await;
    for id in &ids {
        delivered(&mut alice_events, id).await;
    }
    let incoming = incoming(&bob, "alice").await;
    assert_eq!(incoming.len(), 20, "each message stored exactly once");
    for (i, m) in incoming.iter().enumerate() {
        assert_eq!(m.body, format!("while you were away {i}"));
        assert!(m.via_mailbox);
    }
    // Alice's side still says they went via a mailbox once delivered.
    let history = alice.history("bob", 100).await.unwrap();
    let sent: Vec<_> = history
        .iter()
        .filter(|m| m.body.starts_with("while you were away"))
        .collect();
    assert_eq!(sent.len(), 20);
    for m in sent {
        assert_eq!(
            (m.direction, m.state, m.via_mailbox),
            (MessageDirection::Outgoing, MessageState::Delivered, true)
        );
    }
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_mailbox_restart_loses_deposits_and_the_sender_deposits_them_again() {
    let Scene {
        net,
        root,
        server,
        _mailbox,
        alice,
        mut alice_events,
        ids,
        ..
    } = scene(5).await;
    // Everything in the mailbox's memory is gone.
    let _server = server.restart().await;
    // Alice notices the new instance: each message, in order, is queued again
    // and deposited again.
    for id in &ids {
        for wanted in [MessageState::Queued, MessageState::Deposited] {
            next_matching(&mut alice_events, |e| match e {
                Event::MessageState { id: got, state, .. } if got == id && *state == wanted => {
                    Some(())
                }
                _ => None,
            })
            .await;
        }
    }
    alice.shutdown().await.unwrap();

    let bob = bob_drains(&net, root.path(), 5).await;
    assert_eq!(bob.history("alice", 100).await.unwrap().len(), 6);
    bob.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_deposit_goes_on_a_circuit_of_its_own() {
    let Scene {
        alice, alice_wire, ..
    } = scene(4).await;
    let keys: Vec<String> = alice_wire
        .opened()
        .into_iter()
        .filter(|o| o.port == 80)
        .map(|o| o.isolation)
        .collect();
    let deposits: Vec<&String> = keys.iter().filter(|k| k.starts_with("deposit-")).collect();
    assert_eq!(deposits.len(), 4, "{keys:?}");
    let distinct: std::collections::HashSet<_> = deposits.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "deposits shared an isolation key: {keys:?}"
    );
    // Keys carry numbers and labels only: no name, no address.
    assert!(
        keys.iter()
            .all(|k| !k.contains("bob") && !k.contains(".onion"))
    );
    // Links are isolated per contact, and apart from every mailbox stream.
    let link_keys: Vec<String> = alice_wire
        .opened()
        .into_iter()
        .filter(|o| o.port == 7300)
        .map(|o| o.isolation)
        .collect();
    assert!(link_keys.iter().all(|k| !keys.contains(k)), "{link_keys:?}");
    alice.shutdown().await.unwrap();
}

#[tokio::test]
async fn mailbox_names_are_checked_and_at_most_four_kept() {
    let net = LoopbackNetwork::new();
    let (node, _events) = ephemeral(&net).await;
    assert!(node.mailboxes().await.unwrap().is_empty());
    let address = node.info().await.unwrap().address;
    for bad in [
        "",
        "mailbox.example.com",
        "ws://127.0.0.1:4000/v1",
        "abc.onion",
    ] {
        assert!(node.add_mailbox(bad).await.is_err(), "{bad:?}");
    }
    let onions: Vec<String> = (1u8..=5)
        .map(|i| nightjar_proto::onion::OnionAddress::from_public_key([i; 32]).to_string())
        .collect();
    for onion in &onions[..4] {
        node.add_mailbox(&format!("ws://{onion}/v1")).await.unwrap();
    }
    // The same one again changes nothing.
    assert_eq!(node.add_mailbox(&onions[0]).await.unwrap(), onions[..4]);
    assert!(node.add_mailbox(&onions[4]).await.is_err());
    // The address now names the first mailbox.
    let with_mailbox = node.info().await.unwrap().address;
    assert!(with_mailbox.len() > address.len());
    assert_eq!(node.remove_mailbox(&onions[0]).await.unwrap(), onions[1..4]);
    assert!(node.remove_mailbox(&onions[0]).await.is_err());
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn cover_deposits_look_like_messages_and_leave_no_trace() {
    let Scene {
        net,
        root,
        server,
        _mailbox,
        alice,
        mut alice_events,
        alice_wire,
        ..
    } = away_scene(quick_with_cover()).await;
    // Bob is away: cover fills his mailbox, up to the bound.
    until(|| server.mailbox.stats().blobs >= COVER_BOUND).await;
    // A real message after all of them still lies in Bob's window.
    let ids = send_all(&alice, 1).await;
    deposited(&mut alice_events, &ids).await;
    let stats = server.mailbox.stats();
    assert_eq!(stats.blobs, COVER_BOUND + 1, "cover went past its bound");
    assert_eq!(stats.slots, stats.blobs, "one blob per slot, as for a text");
    // Every deposit request is the same size, the real one's included (a
    // deposit may be tried again after a stale challenge).
    let requests = deposit_requests(&alice_wire);
    assert!(requests.len() > COVER_BOUND, "{requests:?}");
    assert!(
        requests.iter().all(|len| *len == requests[0]),
        "{requests:?}"
    );
    // Each cover deposit went on a circuit of its own, as a real one does.
    let opened: Vec<String> = alice_wire
        .opened()
        .into_iter()
        .filter(|o| o.port == 80)
        .map(|o| o.isolation)
        .collect();
    let covers: std::collections::HashSet<&String> = opened
        .iter()
        .filter(|k| k.starts_with("cover-deposit-"))
        .collect();
    assert_eq!(covers.len(), COVER_BOUND, "{opened:?}");
    // Nothing of it on Alice's side: the text Bob sent and hers.
    assert_eq!(alice.history("bob", 100).await.unwrap().len(), 2);
    // The mailbox restarts and loses everything: Alice's checks see it, and
    // the cover comes back with the real message, so what comes back says
    // nothing of which was real.
    let server = server.restart().await;
    assert_eq!(server.mailbox.stats().blobs, 0);
    until(|| server.mailbox.stats().blobs == COVER_BOUND + 1).await;
    alice.shutdown().await.unwrap();

    // Bob comes back: the real message arrives once, the cover not at all, and
    // the mailbox ends empty.
    let (bob, mut bob_events) = open(&root.path().join("bob"), net.transport()).await;
    let message = next_matching(&mut bob_events, |e| match e {
        Event::MessageReceived { message } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(message.body, "while you were away 0");
    assert!(message.via_mailbox);
    until(|| server.mailbox.stats().blobs == 0).await;
    // What the drain made of the cover was told before its acknowledgement.
    while let Ok(event) = bob_events.try_recv() {
        assert!(
            !matches!(
                event,
                Event::MessageReceived { .. } | Event::MessageState { .. }
            ),
            "{event:?}"
        );
    }
    // (Reading the history marks the conversation read: count unread first.)
    assert_eq!(bob.contact("alice").await.unwrap().unread, 1);
    assert_eq!(
        incoming(&bob, "alice").await.len(),
        1,
        "only the real message is stored"
    );

    // Bob collected through his grant, so the next link brings Alice a fresh
    // one: once Bob is away again, cover resumes under it.
    let (alice, mut alice_events) = open_with(
        &root.path().join("alice"),
        net.transport(),
        quick_with_cover(),
    )
    .await;
    until_online(&bob, &mut bob_events, "alice").await;
    bob.shutdown().await.unwrap();
    next_matching(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    until(|| server.mailbox.stats().blobs >= COVER_BOUND).await;
    alice.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_mailbox_cover_nothing_is_deposited() {
    // Set up first, so it runs at least as long as the one with cover.
    let off = away_scene(quick()).await;
    let on = away_scene(quick_with_cover()).await;
    until(|| on.server.mailbox.stats().blobs >= COVER_BOUND).await;
    assert_eq!(off.server.mailbox.stats().blobs, 0);
    assert!(deposit_requests(&off.alice_wire).is_empty());
    assert!(deposit_requests(&on.alice_wire).len() >= COVER_BOUND);
    on.alice.shutdown().await.unwrap();
    off.alice.shutdown().await.unwrap();
}

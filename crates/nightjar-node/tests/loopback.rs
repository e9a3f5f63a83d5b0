//! The engine's whole flow between in-process nodes over the loopback transport.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use nightjar_node::{
    Event, Level, MessageDirection, MessageState, NodeError, PresenceState, RequestDirection,
};
use nightjar_store::Store;
use nightjar_tor::loopback::LoopbackNetwork;

#[tokio::test]
async fn request_accept_chat_receipts_presence_verify_delete() {
    let net = LoopbackNetwork::new();
    let (alice, mut alice_events) = ephemeral(&net).await;
    let (bob, mut bob_events) = ephemeral(&net).await;
    befriend(&alice, &mut alice_events, &bob, &mut bob_events).await;
    assert!(alice.requests().await.unwrap().is_empty());
    assert!(bob.requests().await.unwrap().is_empty());

    let sent = alice.send_message("bob", "hello bob").await.unwrap();
    assert_eq!(sent.state, MessageState::Queued);
    assert_eq!(
        received(&mut bob_events).await,
        ("alice".into(), "hello bob".into())
    );
    delivered(&mut alice_events, &sent.id).await;
    let reply = bob.send_message("alice", "hello alice").await.unwrap();
    assert_eq!(
        received(&mut alice_events).await,
        ("bob".into(), "hello alice".into())
    );
    delivered(&mut bob_events, &reply.id).await;

    let history = alice.history("bob", 10).await.unwrap();
    let bodies: Vec<_> = history
        .iter()
        .map(|m| (m.direction, m.body.as_str(), m.state))
        .collect();
    assert_eq!(
        bodies,
        [
            (
                MessageDirection::Outgoing,
                "hello bob",
                MessageState::Delivered
            ),
            (
                MessageDirection::Incoming,
                "hello alice",
                MessageState::Received
            ),
        ]
    );

    bob.set_presence("alice", true).await.unwrap();
    let presence = next_matching(&mut alice_events, |e| match e {
        Event::Presence { contact, presence } if contact == "bob" => Some(*presence),
        _ => None,
    })
    .await;
    assert_eq!(presence, PresenceState::Online);

    let bobs_fingerprint = bob.info().await.unwrap().fingerprint;
    let wrong = alice.info().await.unwrap().fingerprint;
    assert!(matches!(
        alice.verify("bob", &wrong).await,
        Err(NodeError::FingerprintMismatch(_))
    ));
    assert_eq!(alice.contact("bob").await.unwrap().level, Level::Unverified);
    let verified = alice
        .verify("bob", &bobs_fingerprint.replace(' ', "-"))
        .await
        .unwrap();
    assert_eq!(verified.level, Level::Verified);

    assert!(matches!(
        alice.send_message("carol", "?").await,
        Err(NodeError::UnknownContact(_))
    ));
    assert!(matches!(
        alice.send_request("nj1notanaddress", "x", "").await,
        Err(NodeError::BadAddress(_))
    ));
    let own = alice.info().await.unwrap().address;
    assert!(matches!(
        alice.send_request(&own, "me", "").await,
        Err(NodeError::OwnAddress)
    ));

    // Bob shuts down: Alice hears he went offline.
    bob.shutdown().await.unwrap();
    let presence = next_matching(&mut alice_events, |e| match e {
        Event::Presence { contact, presence } if contact == "bob" => Some(*presence),
        _ => None,
    })
    .await;
    assert_eq!(presence, PresenceState::Offline);
    alice.delete_contact("bob").await.unwrap();
    assert!(alice.contacts().await.unwrap().is_empty());
    alice.shutdown().await.unwrap();
}

#[tokio::test]
async fn messages_wait_for_an_offline_peer_and_arrive_once_in_order() {
    let net = LoopbackNetwork::new();
    let dir = tempfile::tempdir().unwrap();
    let bob_dir = dir.path().join("bob");
    let bob_store = create_profile(&bob_dir);
    let (alice, mut alice_events) = ephemeral(&net).await;
    let (bob, mut bob_events) = start(bob_store, net.transport()).await;
    befriend(&alice, &mut alice_events, &bob, &mut bob_events).await;
    bob.shutdown().await.unwrap();
    drop(bob);
    // Let Alice notice.
    next_matching(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;

    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            alice
                .send_message("bob", &format!("message {i}"))
                .await
                .unwrap()
                .id,
        );
    }
    // Bob comes back from disk, on a new Tor client.
    let bob_store = Store::open(&bob_dir, "pass").unwrap();
    let (bob, mut bob_events) = start(bob_store, net.transport()).await;
    for i in 0..20 {
        assert_eq!(received(&mut bob_events).await.1, format!("message {i}"));
    }
    for id in &ids {
        delivered(&mut alice_events, id).await;
    }
    let history = bob.history("alice", 100).await.unwrap();
    assert_eq!(history.len(), 20, "each message stored exactly once");
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_declined_request_leaves_nothing_and_a_stranger_cannot_reach_the_endpoint() {
    let net = LoopbackNetwork::new();
    let (alice, mut alice_events) = ephemeral(&net).await;
    let (bob, mut bob_events) = ephemeral(&net).await;
    let bob_address = bob.info().await.unwrap().address;
    alice.send_request(&bob_address, "bob", "").await.unwrap();
    let request = next_matching(&mut bob_events, |e| match e {
        Event::RequestReceived { request } => Some(request.clone()),
        _ => None,
    })
    .await;
    assert_eq!(request.direction, RequestDirection::Incoming);
    next_matching(&mut alice_events, |e| {
        matches!(e, Event::RequestDelivered { .. }).then_some(())
    })
    .await;
    assert!(matches!(
        alice.send_request(&bob_address, "bob2", "").await,
        Err(NodeError::AlreadyKnown(_))
    ));
    bob.decline_request(request.id).await.unwrap();
    assert!(bob.requests().await.unwrap().is_empty());
    assert!(bob.contacts().await.unwrap().is_empty());
    assert!(matches!(
        bob.decline_request(request.id).await,
        Err(NodeError::UnknownRequest(_))
    ));
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_together_settles_on_one_working_link() {
    nightjar_test_support::init_tracing();
    let net = LoopbackNetwork::new();
    let dir = tempfile::tempdir().unwrap();
    let (alice_dir, bob_dir) = (dir.path().join("alice"), dir.path().join("bob"));
    let (alice, mut alice_events) = start(create_profile(&alice_dir), net.transport()).await;
    let (bob, mut bob_events) = start(create_profile(&bob_dir), net.transport()).await;
    befriend(&alice, &mut alice_events, &bob, &mut bob_events).await;
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();

    // Both come back at once and each may dial the other straight away; whatever
    // links form, both sides must settle on one that carries everything once.
    let ((alice, mut alice_events), (bob, mut bob_events)) = tokio::join!(
        start(Store::open(&alice_dir, "pass").unwrap(), net.transport()),
        start(Store::open(&bob_dir, "pass").unwrap(), net.transport())
    );
    for round in 0..5 {
        // One direction at a time, so each event stream is read in the order
        // its events must come.
        let a = alice
            .send_message("bob", &format!("a{round}"))
            .await
            .unwrap();
        assert_eq!(received(&mut bob_events).await.1, format!("a{round}"));
        delivered(&mut alice_events, &a.id).await;
        let b = bob
            .send_message("alice", &format!("b{round}"))
            .await
            .unwrap();
        assert_eq!(received(&mut alice_events).await.1, format!("b{round}"));
        delivered(&mut bob_events, &b.id).await;
    }
    assert_eq!(alice.history("bob", 100).await.unwrap().len(), 10);
    assert_eq!(bob.history("alice", 100).await.unwrap().len(), 10);
    assert!(alice.contact("bob").await.unwrap().online);
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}

//! Invite codes between nodes over the loopback transport, meeting on nightjar's
//! own rendezvous server published as an onion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::pending;
use std::sync::Arc;

use common::*;
use nightjar_node::{Event, Level, Node, NodeError, Rendezvous};
use nightjar_store::Store;
use nightjar_tor::forward::Forward;
use nightjar_tor::loopback::LoopbackNetwork;
use nightjar_tor::{ServiceConfig, ServiceKey, Transport};
use tokio::sync::broadcast;

/// A rendezvous server on loopback, published as an onion on `net` (by a
/// transport of its own, kept alive with the forward).
async fn meeting_place(net: &LoopbackNetwork) -> ((Arc<dyn Transport>, Forward), Rendezvous) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(nightjar_mailbox::serve(
        listener,
        nightjar_mailbox::Config::default(),
        pending(),
    ));
    let config = ServiceConfig {
        nickname: "rendezvous".into(),
        key: ServiceKey::Ephemeral,
        virtual_port: 80,
        authorized_clients: None,
    };
    let tor = net.transport();
    let forward = Forward::start(tor.as_ref(), config, addr).await.unwrap();
    let url = format!("ws://{}/v1", forward.address());
    ((tor, forward), url.parse().unwrap())
}

async fn node(
    net: &LoopbackNetwork,
    rendezvous: &Rendezvous,
) -> (Node, broadcast::Receiver<Event>) {
    let store = Store::in_memory(&nightjar_node::new_profile()).unwrap();
    start_with(store, net.transport(), rendezvous.clone()).await
}

#[tokio::test]
async fn an_invite_makes_verified_contacts_on_both_sides_who_then_talk() {
    let net = LoopbackNetwork::new();
    let (_forward, rendezvous) = meeting_place(&net).await;
    let (alice, mut alice_events) = node(&net, &rendezvous).await;
    let (bob, mut bob_events) = node(&net, &rendezvous).await;

    let invite = alice.create_invite("bob", false).await.unwrap();
    assert_eq!(invite.name, "bob");
    assert!(invite.code.starts_with(char::is_numeric), "{}", invite.code);
    let alice_seen = bob.join_invite(&invite.code, "alice", false).await.unwrap();
    assert_eq!(alice_seen.level, Level::Verified);
    assert_eq!(
        alice_seen.fingerprint,
        alice.info().await.unwrap().fingerprint
    );
    let bob_seen = next_matching(&mut alice_events, |e| match e {
        Event::InviteCompleted { contact } => Some(contact.clone()),
        _ => None,
    })
    .await;
    assert_eq!(bob_seen.name, "bob");
    assert_eq!(bob_seen.level, Level::Verified);
    assert_eq!(bob_seen.fingerprint, bob.info().await.unwrap().fingerprint);
    assert!(!bob_seen.require_auth);

    until_online(&alice, &mut alice_events, "bob").await;
    let sent = alice
        .send_message("bob", "met through a code")
        .await
        .unwrap();
    assert_eq!(
        received(&mut bob_events).await,
        ("alice".into(), "met through a code".into())
    );
    delivered(&mut alice_events, &sent.id).await;

    // The same person again is refused, and nothing changes.
    let again = alice.create_invite("bob2", false).await.unwrap();
    let refused = bob.join_invite(&again.code, "alice2", false).await;
    assert!(
        matches!(refused, Err(NodeError::AlreadyKnown(_))),
        "{refused:?}"
    );
    next_matching(&mut alice_events, |e| {
        matches!(e, Event::InviteFailed { name, .. } if name == "bob2").then_some(())
    })
    .await;
    assert_eq!(alice.contacts().await.unwrap().len(), 1);
    assert_eq!(bob.contacts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_code_fails_on_both_sides_and_leaves_nothing() {
    let net = LoopbackNetwork::new();
    let (_forward, rendezvous) = meeting_place(&net).await;
    let (alice, mut alice_events) = node(&net, &rendezvous).await;
    let (bob, _bob_events) = node(&net, &rendezvous).await;

    let invite = alice.create_invite("bob", false).await.unwrap();
    let nameplate = invite.code.split('-').next().unwrap();
    let wrong = format!("{nameplate}-aardvark-absurd");
    assert_ne!(wrong, invite.code);
    let failed = bob.join_invite(&wrong, "alice", false).await;
    match failed {
        Err(NodeError::Invite(reason)) => assert!(reason.contains("code was wrong"), "{reason}"),
        other => panic!("expected a failed invite, got {other:?}"),
    }
    let reason = next_matching(&mut alice_events, |e| match e {
        Event::InviteFailed { name, reason } if name == "bob" => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("code was wrong"), "{reason}");
    assert!(alice.contacts().await.unwrap().is_empty());
    assert!(bob.contacts().await.unwrap().is_empty());
    // The name is free again.
    alice.create_invite("bob", false).await.unwrap();
}

#[tokio::test]
async fn bad_codes_and_names_are_refused_before_any_network() {
    let net = LoopbackNetwork::new();
    let (_forward, rendezvous) = meeting_place(&net).await;
    let (alice, _events) = node(&net, &rendezvous).await;
    assert!(matches!(
        alice.join_invite("not a code", "x", false).await,
        Err(NodeError::BadCode(_))
    ));
    assert!(matches!(
        alice.create_invite("two words", false).await,
        Err(NodeError::BadName(_))
    ));
    alice.create_invite("dora", false).await.unwrap();
    assert!(matches!(
        alice.create_invite("dora", false).await,
        Err(NodeError::NameTaken(_))
    ));
}

#[tokio::test]
async fn when_one_side_asks_for_authentication_nothing_flows_before_it() {
    let net = LoopbackNetwork::new();
    let (_forward, rendezvous) = meeting_place(&net).await;
    let (alice, mut alice_events) = node(&net, &rendezvous).await;
    let (bob, mut bob_events) = node(&net, &rendezvous).await;

    let invite = alice.create_invite("bob", true).await.unwrap();
    let alice_seen = bob.join_invite(&invite.code, "alice", false).await.unwrap();
    assert!(
        alice_seen.require_auth,
        "the requirement holds for both sides"
    );
    next_matching(&mut bob_events, |e| {
        matches!(e, Event::AuthRequired { contact } if contact == "alice").then_some(())
    })
    .await;
    next_matching(&mut alice_events, |e| {
        matches!(e, Event::AuthRequired { contact } if contact == "bob").then_some(())
    })
    .await;

    let waiting = bob.send_message("alice", "too early?").await.unwrap();
    let (a, b) = tokio::join!(
        alice.authenticate("bob", "our word", None),
        bob.authenticate("alice", "our word", None),
    );
    a.unwrap();
    b.unwrap();
    // The message waited for the authentication, then went.
    let got = next_matching(&mut alice_events, |e| match e {
        Event::AuthResult { outcome, .. } => Some(Err(*outcome)),
        Event::MessageReceived { message } => Some(Ok(message.body.clone())),
        _ => None,
    })
    .await;
    assert_eq!(got, Err(nightjar_node::AuthOutcome::Succeeded));
    assert_eq!(
        received(&mut alice_events).await,
        ("bob".into(), "too early?".into())
    );
    delivered(&mut bob_events, &waiting.id).await;
    assert!(!alice.contact("bob").await.unwrap().require_auth);
}

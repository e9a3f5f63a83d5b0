//! Shared-secret authentication (SMP) between nodes over the loopback transport:
//! the levels it gives, and how runs end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use nightjar_node::{AuthOutcome, Event, Level, Node, NodeError};
use nightjar_tor::loopback::LoopbackNetwork;
use tokio::sync::broadcast;

async fn outcome(events: &mut broadcast::Receiver<Event>, from: &str) -> AuthOutcome {
    next_matching(events, |e| match e {
        Event::AuthResult { contact, outcome } if contact == from => Some(*outcome),
        _ => None,
    })
    .await
}

async fn asked(events: &mut broadcast::Receiver<Event>, from: &str) -> Option<String> {
    next_matching(events, |e| match e {
        Event::AuthRequested { contact, question } if contact == from => Some(question.clone()),
        _ => None,
    })
    .await
}

async fn level(node: &Node, name: &str) -> Level {
    node.contact(name).await.unwrap().level
}

/// Two connected contacts.
async fn pair(
    net: &LoopbackNetwork,
) -> (
    Node,
    broadcast::Receiver<Event>,
    Node,
    broadcast::Receiver<Event>,
) {
    let (alice, mut alice_events) = ephemeral(net).await;
    let (bob, mut bob_events) = ephemeral(net).await;
    befriend(&alice, &mut alice_events, &bob, &mut bob_events).await;
    until_online(&alice, &mut alice_events, "bob").await;
    until_online(&bob, &mut bob_events, "alice").await;
    (alice, alice_events, bob, bob_events)
}

#[tokio::test]
async fn equal_secrets_authenticate_and_different_ones_fail() {
    let net = LoopbackNetwork::new();
    let (alice, mut alice_events, bob, mut bob_events) = pair(&net).await;
    assert_eq!(level(&alice, "bob").await, Level::Unverified);

    alice
        .authenticate("bob", "blue heron", Some("the bird at the lake?"))
        .await
        .unwrap();
    assert_eq!(
        asked(&mut bob_events, "alice").await.as_deref(),
        Some("the bird at the lake?")
    );
    bob.answer_auth("alice", "blue heron").await.unwrap();
    assert_eq!(
        outcome(&mut alice_events, "bob").await,
        AuthOutcome::Succeeded
    );
    assert_eq!(
        outcome(&mut bob_events, "alice").await,
        AuthOutcome::Succeeded
    );
    assert_eq!(level(&alice, "bob").await, Level::Authenticated);
    assert_eq!(level(&bob, "alice").await, Level::Authenticated);
    let view = alice.contact("bob").await.unwrap();
    assert!(!view.verified, "authentication is not verification");
    assert_eq!(view.last_auth, Some(AuthOutcome::Succeeded));

    // A second run, this time by Bob and without a question, with other secrets.
    bob.authenticate("alice", "grey heron", None).await.unwrap();
    assert_eq!(asked(&mut alice_events, "bob").await, None);
    alice.answer_auth("bob", "blue heron").await.unwrap();
    assert_eq!(outcome(&mut alice_events, "bob").await, AuthOutcome::Failed);
    assert_eq!(outcome(&mut bob_events, "alice").await, AuthOutcome::Failed);
    // The failure is shown, and the earlier success no longer counts.
    let view = alice.contact("bob").await.unwrap();
    assert_eq!(view.level, Level::Unverified);
    assert_eq!(view.last_auth, Some(AuthOutcome::Failed));
    assert_eq!(level(&bob, "alice").await, Level::Unverified);
}

#[tokio::test]
async fn both_typing_the_secret_at_once_still_compares_them() {
    let net = LoopbackNetwork::new();
    let (alice, mut alice_events, bob, mut bob_events) = pair(&net).await;
    // Whatever the interleaving (crossing runs, or one answering the other), each
    // side types the secret once and both learn the result.
    let (a, b) = tokio::join!(
        alice.authenticate("bob", "same words", None),
        bob.authenticate("alice", "same words", None),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(
        outcome(&mut alice_events, "bob").await,
        AuthOutcome::Succeeded
    );
    assert_eq!(
        outcome(&mut bob_events, "alice").await,
        AuthOutcome::Succeeded
    );
}

#[tokio::test]
async fn aborts_and_misuse_are_reported() {
    let net = LoopbackNetwork::new();
    let (alice, mut alice_events, bob, mut bob_events) = pair(&net).await;
    assert!(matches!(
        bob.answer_auth("alice", "x").await,
        Err(NodeError::NoAuthPending(_))
    ));
    assert!(matches!(
        alice.abort_auth("bob").await,
        Err(NodeError::NoAuthPending(_))
    ));
    assert!(matches!(
        alice.authenticate("bob", "  ", None).await,
        Err(NodeError::BadSecret(_))
    ));
    assert!(matches!(
        alice
            .authenticate("bob", "s", Some(&"?".repeat(4096)))
            .await,
        Err(NodeError::BadSecret(_))
    ));
    assert!(matches!(
        alice.authenticate("nobody", "s", None).await,
        Err(NodeError::UnknownContact(_))
    ));

    alice.authenticate("bob", "secret", None).await.unwrap();
    asked(&mut bob_events, "alice").await;
    bob.abort_auth("alice").await.unwrap();
    assert_eq!(
        outcome(&mut bob_events, "alice").await,
        AuthOutcome::Aborted
    );
    assert_eq!(
        outcome(&mut alice_events, "bob").await,
        AuthOutcome::Aborted
    );
    assert_eq!(level(&alice, "bob").await, Level::Unverified);
}

#[tokio::test]
async fn authentication_lasts_until_the_link_goes_down() {
    let net = LoopbackNetwork::new();
    let (alice, mut alice_events, bob, mut bob_events) = pair(&net).await;
    let fingerprint = bob.info().await.unwrap().fingerprint;
    alice.verify("bob", &fingerprint).await.unwrap();
    assert_eq!(level(&alice, "bob").await, Level::Verified);

    alice.authenticate("bob", "secret", None).await.unwrap();
    asked(&mut bob_events, "alice").await;
    bob.answer_auth("alice", "secret").await.unwrap();
    assert_eq!(
        outcome(&mut alice_events, "bob").await,
        AuthOutcome::Succeeded
    );
    assert_eq!(level(&alice, "bob").await, Level::Authenticated);

    bob.shutdown().await.unwrap();
    next_matching(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { contact } if contact == "bob").then_some(())
    })
    .await;
    assert_eq!(level(&alice, "bob").await, Level::Verified);
    assert!(matches!(
        alice.authenticate("bob", "secret", None).await,
        Err(NodeError::NotConnected(_))
    ));
}

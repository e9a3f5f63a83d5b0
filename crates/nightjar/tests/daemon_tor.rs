//! Two `nightjar daemon` processes on the private Tor network, driven only through
//! their JSON-RPC sockets: a contact request and its acceptance, messages both ways
//! with receipts, presence, verification and authentication; then a node killed with SIGKILL while
//! messages wait in its outbox, restarted, and everything delivered exactly once;
//! and a file whose sender is killed with SIGKILL halfway, which completes once the
//! sender is back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::HANG_GUARD;
use common::daemon::{Daemon, Profile, befriend};
use nightjar_test_support::onion::PublishedOnion;
use nightjar_test_support::shared_network;
use serde_json::json;

#[tokio::test]
async fn two_daemons_talk_over_onion_services() {
    let net = shared_network().await;
    let dir = tempfile::tempdir().unwrap();
    let alice = Daemon::start(net, dir.path(), "alice", "ctor", Profile::Ephemeral);
    let bob = Daemon::start(net, dir.path(), "bob", "arti", Profile::Ephemeral);
    let mut a = alice.connect().await;
    let mut b = bob.connect().await;
    befriend(&mut a, &mut b).await;

    let sent = a
        .call(
            "send_message",
            json!({"contact": "bob", "text": "hello over tor"}),
        )
        .await;
    assert_eq!(sent["state"], "queued");
    let got = b.event_named("message_received").await;
    assert_eq!(got["message"]["body"], "hello over tor");
    assert_eq!(got["message"]["contact"], "alice");
    a.delivered(&sent["id"]).await;
    let reply = b
        .call(
            "send_message",
            json!({"contact": "alice", "text": "and back"}),
        )
        .await;
    let got = a.event_named("message_received").await;
    assert_eq!(got["message"]["body"], "and back");
    b.delivered(&reply["id"]).await;

    b.call("set_presence", json!({"contact": "alice", "on": true}))
        .await;
    let presence = a.event_named("presence").await;
    assert_eq!(presence["presence"], "online");

    let fingerprint = b.call("info", json!({})).await["fingerprint"].clone();
    let wrong = a
        .try_call("verify", json!({"contact": "bob", "fingerprint": "12345"}))
        .await;
    assert_eq!(wrong["error"]["data"]["kind"], "fingerprint_mismatch");
    let verified = a
        .call(
            "verify",
            json!({"contact": "bob", "fingerprint": fingerprint}),
        )
        .await;
    assert_eq!(verified["level"], "verified");

    // Authentication with a shared secret: Bob is asked, answers, both learn it.
    a.call(
        "authenticate",
        json!({"contact": "bob", "secret": "blue heron", "question": "the bird?"}),
    )
    .await;
    let asked = b.event_named("auth_requested").await;
    assert_eq!(asked["question"], "the bird?");
    b.call(
        "answer_auth",
        json!({"contact": "alice", "secret": "blue heron"}),
    )
    .await;
    assert_eq!(a.event_named("auth_result").await["outcome"], "succeeded");
    assert_eq!(b.event_named("auth_result").await["outcome"], "succeeded");
    let bob_seen = a.call("contact", json!({"name": "bob"})).await;
    assert_eq!(bob_seen["level"], "authenticated");

    // It lasts as long as the link: when Bob leaves, Alice falls back to verified.
    bob.stop(&mut b).await;
    let presence = a.event_named("presence").await;
    assert_eq!(presence["presence"], "offline");
    a.event_named("disconnected").await;
    let bob_seen = a.call("contact", json!({"name": "bob"})).await;
    assert_eq!(bob_seen["level"], "verified");
    alice.stop(&mut a).await;
}

#[tokio::test]
async fn queued_messages_survive_sigkill_and_arrive_exactly_once() {
    let net = shared_network().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = Daemon::start(net, dir.path(), "alice", "ctor", Profile::OnDisk(&data));
    let bob = Daemon::start(net, dir.path(), "bob", "ctor", Profile::OnDisk(&data));
    let mut a = alice.connect().await;
    let mut b = bob.connect().await;
    befriend(&mut a, &mut b).await;
    bob.stop(&mut b).await;
    a.event_named("disconnected").await;

    let mut ids = Vec::new();
    for i in 0..5 {
        let sent = a
            .call(
                "send_message",
                json!({"contact": "bob", "text": format!("queued {i}")}),
            )
            .await;
        assert_eq!(sent["state"], "queued");
        ids.push(sent["id"].clone());
    }
    // The moment `send_message` answered, the message was on disk.
    drop(a);
    alice.kill().await;

    let alice = Daemon::start(net, dir.path(), "alice", "ctor", Profile::OnDisk(&data));
    let bob = Daemon::start(net, dir.path(), "bob", "ctor", Profile::OnDisk(&data));
    let mut a = alice.connect().await;
    let mut b = bob.connect().await;
    for i in 0..5 {
        let got = b.event_named("message_received").await;
        assert_eq!(got["message"]["body"], format!("queued {i}"));
    }
    for id in &ids {
        a.delivered(id).await;
    }
    let history = b
        .call("history", json!({"contact": "alice", "limit": 100}))
        .await;
    let bodies: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        bodies,
        (0..5).map(|i| format!("queued {i}")).collect::<Vec<_>>()
    );
    alice.stop(&mut a).await;
    bob.stop(&mut b).await;
}

/// Invite codes end to end: the reference magic-wormhole server on loopback,
/// published as an onion on the private network, which both daemons reach through
/// Tor. A wrong code fails on both sides and leaves nothing; the right one makes
/// verified contacts who can talk at once.
#[tokio::test]
async fn invite_codes_through_the_reference_rendezvous_server() {
    let net = shared_network().await;
    let server = nightjar_test_support::wormhole::MailboxServer::start().unwrap();
    let onion = PublishedOnion::start(net, server.addr()).await.unwrap();
    let url = onion.rendezvous_url();
    let dir = tempfile::tempdir().unwrap();
    let alice = Daemon::start(
        net,
        dir.path(),
        "alice",
        "ctor",
        Profile::EphemeralMeetingAt(&url),
    );
    let bob = Daemon::start(
        net,
        dir.path(),
        "bob",
        "arti",
        Profile::EphemeralMeetingAt(&url),
    );
    let mut a = alice.connect().await;
    let mut b = bob.connect().await;

    let invite = a.call("create_invite", json!({"name": "bob"})).await;
    let code = invite["code"].as_str().unwrap().to_owned();
    let nameplate = code.split('-').next().unwrap();
    let wrong = b
        .try_call(
            "join_invite",
            json!({"code": format!("{nameplate}-aardvark-absurd"), "name": "alice"}),
        )
        .await;
    assert_eq!(wrong["error"]["data"]["kind"], "invite_failed", "{wrong}");
    let failed = a.event_named("invite_failed").await;
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("code was wrong"),
        "{failed}"
    );
    assert_eq!(a.call("contacts", json!({})).await, json!([]));
    assert_eq!(b.call("contacts", json!({})).await, json!([]));

    let invite = a.call("create_invite", json!({"name": "bob"})).await;
    let joined = b
        .call(
            "join_invite",
            json!({"code": invite["code"], "name": "alice"}),
        )
        .await;
    assert_eq!(joined["level"], "verified");
    let alice_info = a.call("info", json!({})).await;
    assert_eq!(joined["fingerprint"], alice_info["fingerprint"]);
    let completed = a.event_named("invite_completed").await;
    assert_eq!(completed["contact"]["name"], "bob");
    assert_eq!(completed["contact"]["level"], "verified");

    let sent = b
        .call(
            "send_message",
            json!({"contact": "alice", "text": "met by a code"}),
        )
        .await;
    let got = a.event_named("message_received").await;
    assert_eq!(got["message"]["body"], "met by a code");
    b.delivered(&sent["id"]).await;

    bob.stop(&mut b).await;
    alice.stop(&mut a).await;
}

/// A file transfer outlives a SIGKILL of its sender: when the sender's daemon
/// comes back on its profile, the receiver carries on from where its partial
/// file stands, and the file arrives whole.
#[tokio::test]
async fn a_file_transfer_survives_the_sender_being_killed() {
    let net = shared_network().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = Daemon::start(net, dir.path(), "alice", "ctor", Profile::OnDisk(&data));
    let bob = Daemon::start(net, dir.path(), "bob", "ctor", Profile::OnDisk(&data));
    let mut a = alice.connect().await;
    let mut b = bob.connect().await;
    befriend(&mut a, &mut b).await;

    // Bytes no compressor or cache could shortcut: a simple generator will do.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let content: Vec<u8> = (0..30_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let source = dir.path().join("film.bin");
    std::fs::write(&source, &content).unwrap();
    let sent = a
        .call("send_file", json!({"contact": "bob", "path": source}))
        .await;
    assert_eq!(sent["state"], "offered");
    let offer = b.event_named("file_offered").await;
    let id = offer["transfer"]["id"].clone();
    assert_eq!(offer["transfer"]["hash"], sent["hash"]);
    b.call("accept_file", json!({"id": id})).await;
    let before = b
        .event(|e| {
            assert!(
                !(e["event"] == "file_state" && e["transfer"]["state"] == "completed"),
                "the file arrived before the sender could be killed"
            );
            e["event"] == "file_progress" && e["id"] == id && e["bytes"].as_u64() >= Some(2 << 20)
        })
        .await["bytes"]
        .as_u64()
        .unwrap();

    drop(a);
    alice.kill().await;
    b.event_named("disconnected").await;
    let downloads = dir.path().join("bob-downloads");
    let partials = std::fs::read_dir(&downloads)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".part")
        })
        .count();
    assert_eq!(
        partials, 1,
        "the partial file stays while the sender is gone"
    );

    let alice = Daemon::start(net, dir.path(), "alice", "ctor", Profile::OnDisk(&data));
    let mut a = alice.connect().await;
    // The first progress after the restart goes on from where it stood.
    let after = b
        .event(|e| e["event"] == "file_progress" && e["id"] == id)
        .await["bytes"]
        .as_u64()
        .unwrap();
    assert!(after >= before, "started over at {after} after {before}");
    let done = b
        .event(|e| e["event"] == "file_state" && e["transfer"]["state"] == "completed")
        .await;
    let saved = std::fs::read(done["transfer"]["path"].as_str().unwrap()).unwrap();
    assert!(saved == content, "the saved file differs from the one sent");
    // The sender hears `done` too (perhaps before this client subscribed).
    tokio::time::timeout(HANG_GUARD, async {
        while a.call("transfer", json!({"id": sent["id"]})).await["state"] != "completed" {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("the sender never learned the file arrived");
    alice.stop(&mut a).await;
    bob.stop(&mut b).await;
}

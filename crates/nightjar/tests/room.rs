//! `nightjar room`, run as people run it, over the private Tor network: a host
//! and two participants on both Tor backends, texts relayed to everyone else with
//! the right nicks, a taken nick made unique, a participant leaving, and the
//! host's quit ending the room for all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::oneshot::OneShot;
use nightjar_test_support::shared_network;

fn room(name: &'static str, args: &[&str], backend: &str, testnet: &std::path::Path) -> OneShot {
    OneShot::start("room", name, args, backend, testnet)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_people_in_a_room_arti_hosts() {
    let net = shared_network().await;
    let mut host = room("host", &["--listen", "--name", "host"], "arti", net.dir());
    let string = host.next_line().await;
    assert!(string.starts_with("njchat1"), "{string}");

    let mut bob = room("bob", &["--name", "bob", &string], "ctor", net.dir());
    bob.note("you are bob in the room").await;
    bob.note("here: host, bob (you)").await;
    host.note("* bob joined").await;
    // The same nick again gets a suffix, and everyone learns the final one.
    let mut other = room("bob-2", &["--name", "bob", &string], "arti", net.dir());
    other.note("you are bob-2 in the room").await;
    other.note("here: host, bob, bob-2 (you)").await;
    host.note("* bob-2 joined").await;
    bob.note("* bob-2 joined").await;

    // Each text reaches the two others under its sender's nick. A participant's
    // own text never comes back: each next line is someone else's.
    bob.type_line("from bob").await;
    assert_eq!(host.next_line().await, "<bob> from bob");
    assert_eq!(other.next_line().await, "<bob> from bob");
    other.type_line("from the other bob").await;
    assert_eq!(host.next_line().await, "<bob-2> from the other bob");
    assert_eq!(bob.next_line().await, "<bob-2> from the other bob");
    host.type_line("from the host").await;
    assert_eq!(bob.next_line().await, "<host> from the host");
    assert_eq!(other.next_line().await, "<host> from the host");
    bob.type_line("bob again").await;
    assert_eq!(host.next_line().await, "<bob> bob again");
    assert_eq!(other.next_line().await, "<bob> bob again");

    other.type_line("/who").await;
    other.note("here: host, bob, bob-2 (you)").await;

    // One leaves; the others are told.
    bob.type_line("/quit").await;
    let (status, error) = bob.exit().await;
    assert!(status.success(), "{error:?}");
    host.note("* bob left").await;
    other.note("* bob left").await;
    host.type_line("/who").await;
    host.note("here: bob-2, host (you)").await;

    // The host's quit ends the room for everyone, and all end well.
    host.type_line("/quit").await;
    other.note("the host ended the room").await;
    let (host_end, other_end) = tokio::join!(host.exit(), other.exit());
    assert!(host_end.0.success(), "{host_end:?}");
    assert!(other_end.0.success(), "{other_end:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_room_refuses_ctor_hosts() {
    let net = shared_network().await;
    let mut host = room(
        "host",
        &["--listen", "--name", "host", "--max", "1"],
        "ctor",
        net.dir(),
    );
    let string = host.next_line().await;
    let mut first = room("first", &[&string], "arti", net.dir());
    let me = first.note_starting("you are guest-").await;
    let nick = me
        .strip_prefix("you are ")
        .and_then(|rest| rest.strip_suffix(" in the room"))
        .unwrap()
        .to_owned();
    host.note(&format!("* {nick} joined")).await;
    let second = room("second", &["--name", "late", &string], "arti", net.dir());
    let (status, error) = second.exit().await;
    assert_eq!(status.code(), Some(1));
    assert_eq!(error.as_deref(), Some("nightjar: the room is full"));
    // The refusal changed nothing for those inside.
    first.type_line("still here").await;
    assert_eq!(host.next_line().await, format!("<{nick}> still here"));
    host.type_line("/quit").await;
    let (host_end, first_end) = tokio::join!(host.exit(), first.exit());
    assert!(host_end.0.success(), "{host_end:?}");
    assert!(first_end.0.success(), "{first_end:?}");
}

#[test]
fn a_bad_nick_is_refused_before_tor_starts() {
    for nick in ["two words", "", &"x".repeat(33), "bell\u{7}"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_nightjar"))
            .args([
                "room",
                "--listen",
                "--name",
                nick,
                "--testnet",
                "/nonexistent",
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{nick:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--name"), "{stderr}");
    }
}

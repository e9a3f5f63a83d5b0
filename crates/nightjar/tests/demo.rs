//! The demo, run as a newcomer would run it, over the private Tor network: both
//! directions between the two backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use nightjar_test_support::shared_network;

async fn run_demo(alice: &str, bob: &str, wire_log: Option<&Path>) -> String {
    let net = shared_network().await;
    let output = tokio::task::spawn_blocking({
        let dir = net.dir().to_owned();
        let (alice, bob) = (alice.to_owned(), bob.to_owned());
        let wire_log = wire_log.map(Path::to_owned);
        move || {
            let mut demo = Command::new(env!("CARGO_BIN_EXE_nightjar"));
            demo.args(["demo", "--alice", &alice, "--bob", &bob, "--testnet"])
                .arg(dir);
            if let Some(path) = wire_log {
                demo.arg("--wire-log").arg(path);
            }
            demo.output().unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "demo failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn check(stdout: &str) {
    for expected in [
        "Bob's address:     nj1",
        "Bob got request #1",
        "contacts on both sides after",
        "a wrong fingerprint is refused",
        "marks Bob as verified",
        "answers \"the library\"",
        "the secrets differ (and nothing more)",
        "for Alice, Bob is now still only verified (green)",
        "the secrets match",
        "Bob is now authenticated (cyan)",
        "Carol types it, asking for authentication first",
        "already verified (the code proved who is who): Verified",
        "Carol's first message waits",
        "then Alice got \"Hi Alice, Carol here.\"",
        "Alice sees Bob: Online",
        "Bob quit; Alice sees Bob: Offline",
        "each message is a 498-byte blob in his mailbox",
        "Bob ← Alice  \"Bob, are you there?\" (via mailbox)",
        "Bob ← Alice  \"The meeting moved to Thursday.\" (via mailbox)",
        "Bob ← Alice  \"Bring the blue folder.\" (via mailbox)",
        "Done in",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    // Every message of the script arrived and its receipt came back.
    assert_eq!(stdout.matches("receipt back").count(), 4, "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_from_system_tor_to_embedded_arti() {
    let dir = tempfile::tempdir().unwrap();
    let wire_log = dir.path().join("wire.jsonl");
    check(&run_demo("ctor", "arti", Some(&wire_log)).await);
    check_wire(&std::fs::read_to_string(&wire_log).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_from_embedded_arti_to_system_tor() {
    check(&run_demo("arti", "ctor", None).await);
}

/// What an observer of Alice's or Bob's side saw during the demo: every write
/// to a contact's or a request onion's stream is one 498-byte cell, and every
/// deposit to a mailbox has one size.
fn check_wire(jsonl: &str) {
    let mut cells = 0;
    let mut deposits = std::collections::BTreeSet::new();
    let mut deposit_count = 0;
    for line in jsonl.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(unit) = record.get("unit") else {
            continue;
        };
        if unit["out"] != true {
            continue;
        }
        let len = unit["len"].as_u64().unwrap();
        match unit["port"].as_u64().unwrap() {
            7300 => {
                assert_eq!(len, 498, "a write of {len} bytes to a peer: {line}");
                cells += 1;
            }
            _ if unit["head"]
                .as_str()
                .is_some_and(|h| h.starts_with("POST /v2/deposit")) =>
            {
                deposits.insert(len);
                deposit_count += 1;
            }
            _ => {}
        }
    }
    assert!(cells > 50, "only {cells} cells written to peers");
    assert!(deposit_count >= 3, "only {deposit_count} deposits");
    assert_eq!(deposits.len(), 1, "deposits of several sizes: {deposits:?}");
}

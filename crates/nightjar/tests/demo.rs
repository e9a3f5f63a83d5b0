//! The demo, run as a newcomer would run it, over the private Tor network: both
//! directions between the two backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use nightjar_test_support::shared_network;

async fn run_demo(alice: &str, bob: &str) -> String {
    let net = shared_network().await;
    let output = tokio::task::spawn_blocking({
        let dir = net.dir().to_owned();
        let (alice, bob) = (alice.to_owned(), bob.to_owned());
        move || {
            Command::new(env!("CARGO_BIN_EXE_nightjar"))
                .args(["demo", "--alice", &alice, "--bob", &bob, "--testnet"])
                .arg(dir)
                .output()
                .unwrap()
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
    check(&run_demo("ctor", "arti").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_from_embedded_arti_to_system_tor() {
    check(&run_demo("arti", "ctor").await);
}

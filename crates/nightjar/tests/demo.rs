//! The demo, run as a newcomer would run it, over the private Tor network: both
//! directions between the two backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use nightjar_test_support::shared_network;
use nightjar_tor::testnet::NetworkDescription;

async fn run_demo(alice: &str, bob: &str, wire_log: Option<&Path>) -> String {
    let net = shared_network().await;
    let output = tokio::task::spawn_blocking({
        let dir = net.dir().to_owned();
        let (alice, bob) = (alice.to_owned(), bob.to_owned());
        let wire_log = wire_log.map(Path::to_owned);
        move || {
            let mut demo = Command::new(env!("CARGO_BIN_EXE_nightjar"));
            demo.args(["demo", "--alice", &alice, "--bob", &bob, "--testnet"])
                .arg(dir)
                .env("RUST_LOG", "info");
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
    check_log(
        &String::from_utf8_lossy(&output.stderr),
        &stdout,
        net.description(),
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

/// What the demo says and does that its log at info level must not repeat: what
/// Alice and Bob typed, the secrets they answered, and the addresses, invite
/// code and fingerprint the demo prints on stdout.
const SCRIPTED: &[&str] = &[
    "Hi Bob, it's Alice from the book club.",
    "Hi Bob! Is this really going through Tor?",
    "It is: onion services on both ends, no server in between.",
    "All work and no play makes Jack a dull boy.",
    "Got all of it. Let me check your key.",
    "Where did we meet?",
    "the library",
    "the book club",
    "the blue door",
    "Hi Alice, Carol here.",
    "Bob, are you there?",
    "The meeting moved to Thursday.",
    "Bring the blue folder.",
];

/// The demo's log (stderr, `RUST_LOG=info`) holds no keys, plaintext, onion
/// addresses, contact names or fingerprints. Only log lines are checked, not
/// what the demo prints for people to read.
fn check_log(stderr: &str, stdout: &str, network: &NetworkDescription) {
    let printed = printed_identifiers(stdout);
    let relays: Vec<String> = network
        .authorities
        .iter()
        .flat_map(|a| {
            [
                a.v3_identity.clone(),
                a.node.rsa_identity.clone(),
                a.node.ed25519_identity.clone(),
            ]
        })
        .chain(
            network
                .relays
                .iter()
                .flat_map(|r| [r.rsa_identity.clone(), r.ed25519_identity.clone()]),
        )
        .collect();
    let dir = network.dir.to_string_lossy().into_owned();
    let mut lines = 0;
    for line in stderr.lines().filter_map(log_line) {
        lines += 1;
        let fail = |what: &str| panic!("the log shows {what}:\n{line}");
        for secret in SCRIPTED
            .iter()
            .copied()
            .chain(printed.iter().map(String::as_str))
        {
            if line.to_lowercase().contains(&secret.to_lowercase()) {
                fail(&format!("{secret:?}"));
            }
        }
        if let Some(name) =
            words(&line).find(|w| ["alice", "bob", "carol"].contains(&w.to_lowercase().as_str()))
        {
            fail(&format!("a contact's name ({name})"));
        }
        // What tor's own relays are called is public: the test network's relay
        // identities and its directory may appear.
        let mut rest = line.replace(&dir, "");
        for relay in &relays {
            rest = rest.replace(relay, "").replace(&relay.to_lowercase(), "");
        }
        let longest = |alphabet: fn(char) -> bool| longest_run(&rest, alphabet);
        if longest(|c| c.is_ascii_alphabetic() || ('2'..='7').contains(&c)) >= 52 {
            fail("a long base32 run (an onion address or a key)");
        }
        // Arti's own lines name public directory documents by their digests
        // (a consensus, a microdescriptor): the shape of a key is checked on
        // our lines; the values above are checked on every line.
        let ours = line
            .split_whitespace()
            .nth(2)
            .is_some_and(|target| target.starts_with("nightjar"));
        if ours && longest(|c| c.is_ascii_hexdigit()) >= 32 {
            fail("a long hex run (a key or a fingerprint)");
        }
        if ours && longest(|c| c.is_ascii_alphanumeric() || "+/-_".contains(c)) >= 43 {
            fail("a long base64 run (a key)");
        }
    }
    assert!(lines > 0, "no log line at info level in\n{stderr}");
}

/// The line without colours, if it is a line of the log (`TIMESTAMP  LEVEL ...`).
fn log_line(line: &str) -> Option<String> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // An SGR sequence: ESC [ parameters m.
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    let mut fields = plain.split_whitespace();
    let stamp = fields.next()?;
    let level = fields.next()?;
    let is_stamp = stamp.len() >= 20 && stamp.as_bytes()[4] == b'-' && stamp.contains('T');
    let is_level = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level);
    (is_stamp && is_level).then_some(plain)
}

/// Bob's `nj1…` address, his fingerprint and Carol's invite code, as the demo
/// prints them.
fn printed_identifiers(stdout: &str) -> Vec<String> {
    let after = |marker: &str, end: fn(char) -> bool| {
        let start = stdout
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker:?} in\n{stdout}"))
            + marker.len();
        let rest = stdout[start..].trim_start();
        rest[..rest.find(end).unwrap_or(rest.len())].to_owned()
    };
    let address = after("Bob's address:", char::is_whitespace);
    let fingerprint = after("Bob's fingerprint:", |c| c == '\n');
    let code = after("Alice reads out \"", |c| c == '"');
    assert!(address.starts_with("nj1"), "{address}");
    let compact: String = fingerprint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    vec![address, fingerprint.trim().to_owned(), compact, code]
}

/// The words of `line`, as a regular expression's `\w+` finds them.
fn words(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The length of the longest run of characters of `alphabet` in `text`.
fn longest_run(text: &str, alphabet: fn(char) -> bool) -> usize {
    text.split(|c| !alphabet(c))
        .map(str::len)
        .max()
        .unwrap_or(0)
}

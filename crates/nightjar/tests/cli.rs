//! `nightjar cli` driven through pipes, as a script would drive it: two ephemeral
//! profiles on the private Tor network become contacts, exchange messages with
//! receipts, verify each other and quit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;

mod common;

use common::{HANG_GUARD, Person};
use nightjar_test_support::shared_network;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Both type `/quit`; both sessions end cleanly.
async fn quit_both(mut alice: Person, mut bob: Person) {
    alice.say("/quit").await;
    bob.say("/quit").await;
    let (a, b) = tokio::time::timeout(HANG_GUARD, async {
        tokio::join!(alice.child.wait(), bob.child.wait())
    })
    .await
    .expect("the sessions did not end");
    assert!(a.unwrap().success());
    assert!(b.unwrap().success());
}

/// The text after the timestamp of an event line (`[HH:MM:SS] text`).
fn after_stamp(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, rest)| rest)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_people_become_contacts_and_talk() {
    let net = shared_network().await;
    let mut alice = Person::start("alice", "arti", net.dir(), &[]);
    let mut bob = Person::start("bob", "ctor", net.dir(), &[]);

    alice.say("/address").await;
    let address = alice.expect("address: ").await;
    let address = address.strip_prefix("address: ").unwrap().to_owned();
    assert!(address.starts_with("nj1"), "{address}");

    // Mistakes are one sentence, and the session goes on.
    bob.say("hello?").await;
    bob.expect("error: commands start with '/'").await;
    bob.say("/frobnicate").await;
    bob.expect("error: unknown command /frobnicate").await;

    bob.say(&format!("/req-send {address} alice Hi, it is Bob"))
        .await;
    bob.expect("to alice sent").await;
    let request = alice.expect("request #").await;
    assert!(request.contains("\"Hi, it is Bob\""), "{request}");
    let id = after_stamp(&request)
        .strip_prefix("request #")
        .and_then(|r| r.split_once(' '))
        .map(|(id, _)| id.to_owned())
        .unwrap();
    bob.expect("delivered").await;

    alice.say(&format!("/req-accept {id} bob")).await;
    alice.expect("accepted: bob").await;
    bob.expect("contact alice added").await;

    alice.say("/msg bob hello Bob").await;
    alice.expect("-> bob: hello Bob").await;
    assert_eq!(
        after_stamp(&bob.expect("<alice>").await),
        "<alice> hello Bob"
    );
    alice.expect("✓ delivered bob").await;

    bob.say("/peer alice").await;
    bob.expect("talking to alice").await;
    bob.say("hello Alice").await;
    assert_eq!(
        after_stamp(&alice.expect("<bob>").await),
        "<bob> hello Alice"
    );
    bob.expect("✓ delivered alice").await;

    // Verification: Bob reads his fingerprint to Alice out of band.
    bob.say("/fingerprint").await;
    let fingerprint = bob.expect("fingerprint: ").await;
    let fingerprint = fingerprint
        .strip_prefix("fingerprint: ")
        .unwrap()
        .to_owned();
    alice.say("/verify bob 11111 22222").await;
    alice.expect("error: the fingerprint does not match").await;
    alice.say(&format!("/verify bob {fingerprint}")).await;
    alice.expect("bob is verified").await;
    alice.say("/peer bob").await;
    alice.expect("level: verified").await;

    alice.say("/history bob").await;
    alice.expect("<bob> hello Alice").await;

    quit_both(alice, bob).await;
}

/// `nightjar mailbox` publishes a rendezvous on its own onion; Alice makes an
/// invite code asking for authentication first, Bob joins with it, and Bob's first
/// message waits until both have typed the same secret.
#[tokio::test(flavor = "multi_thread")]
async fn an_invite_code_through_a_nightjar_mailbox_then_authentication() {
    let net = shared_network().await;
    let mut mailbox = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["mailbox", "--tor", "ctor", "--testnet"])
        .arg(net.dir())
        .env_remove("NIGHTJAR_TESTNET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut mailbox_out = BufReader::new(mailbox.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(HANG_GUARD, async {
        while let Some(line) = mailbox_out.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("rendezvous: ") {
                return url.to_owned();
            }
        }
        panic!("the mailbox ended without a rendezvous URL");
    })
    .await
    .expect("the mailbox never published");
    assert!(
        url.starts_with("ws://") && url.ends_with(".onion/v1"),
        "{url}"
    );

    let extra = ["--rendezvous", url.as_str()];
    let mut alice = Person::start("alice", "ctor", net.dir(), &extra);
    let mut bob = Person::start("bob", "arti", net.dir(), &extra);
    alice.say("/invite bob --auth").await;
    let line = alice.expect("invite code for bob: ").await;
    let code = after_stamp(&line)
        .strip_prefix("invite code for bob: ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    bob.say(&format!("/join {code} alice")).await;
    bob.expect("invite for alice completed: alice is verified; messages wait")
        .await;
    alice
        .expect("invite for bob completed: bob is verified; messages wait")
        .await;

    bob.say("/msg alice first words").await;
    bob.expect("-> alice: first words").await;
    bob.expect("alice connected; messages wait until you authenticate")
        .await;
    alice
        .expect("bob connected; messages wait until you authenticate")
        .await;
    alice.say("/auth bob owl at dusk").await;
    bob.expect("alice asks to authenticate").await;
    bob.say("/auth alice owl").await;
    alice.expect("authentication with bob succeeded").await;
    bob.expect("authentication with alice succeeded").await;
    alice.expect("<bob> first words").await;
    bob.expect("✓ delivered alice").await;
    alice.say("/convs").await;
    alice.expect("bob authenticated online").await;

    quit_both(alice, bob).await;
    mailbox.start_kill().unwrap();
}

/// Reads `nightjar mailbox` output until a line starts with `prefix`.
async fn mailbox_line(out: &mut Lines<BufReader<ChildStdout>>, prefix: &str) -> String {
    tokio::time::timeout(HANG_GUARD, async {
        while let Some(line) = out.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
        panic!("the mailbox ended without printing {prefix:?}");
    })
    .await
    .expect("the mailbox never printed its address")
}

/// `nightjar mailbox --listen ADDR`, published by the test's own tor so that a
/// restart of the mailbox keeps its onion.
async fn mailbox_on(addr: &str) -> Child {
    let mut mailbox = Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["mailbox", "--listen", addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(mailbox.stdout.take().unwrap()).lines();
    assert_eq!(mailbox_line(&mut out, "listening: ").await, addr);
    mailbox
}

/// Resident memory of a process, from /proc, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Deposits with made-up work, as fast as one connection goes: every one refused.
async fn flood(addr: &str, deposits: usize) {
    use http_body_util::{BodyExt as _, Full};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..deposits {
        let mut body = vec![0u8; 32 + 32 + 16 + 498];
        body[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let request = http::Request::post("/v2/deposit")
            .header(http::header::HOST, "mailbox")
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        sender.ready().await.unwrap();
        let answer = sender.send_request(request).await.unwrap();
        assert_eq!(answer.status(), http::StatusCode::FORBIDDEN);
        answer.into_body().collect().await.unwrap();
    }
}

/// Bob is offline: Alice's twenty messages wait in his mailbox. A flood of
/// deposits without valid work leaves the mailbox's memory flat; the mailbox
/// restarts and loses them, Alice notices and deposits them again; Bob comes back
/// while Alice is away and gets all twenty from the mailbox, in order, once;
/// when Alice is back her receipts come.
#[tokio::test(flavor = "multi_thread")]
async fn messages_wait_in_a_mailbox_while_bob_is_offline() {
    let net = shared_network().await;
    let data = tempfile::tempdir().unwrap();
    let addr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let mut mailbox = mailbox_on(&addr).await;
    let onion = nightjar_test_support::onion::PublishedOnion::start(net, addr.parse().unwrap())
        .await
        .unwrap();
    let rendezvous = onion.rendezvous_url();
    let extra = ["--rendezvous", rendezvous.as_str(), "--mailbox-every", "3"];
    // Both on the system tor: each deposit takes a circuit (and so a descriptor
    // fetch) of its own, and on a young private network embedded Arti's fetches of
    // descriptors published by C tor fail for minutes at a time. Arti's side of
    // offline delivery runs in the demo's tests, in both directions.

    let mut alice = Person::start_persistent("alice", "ctor", net.dir(), data.path(), &extra);
    let mut bob = Person::start_persistent("bob", "ctor", net.dir(), data.path(), &extra);
    bob.say(&format!("/mailbox-add {}", onion.address())).await;
    bob.expect(&format!("mailbox: {}", onion.address())).await;
    bob.say("/invite alice").await;
    let line = bob.expect("invite code for alice: ").await;
    let code = after_stamp(&line)
        .strip_prefix("invite code for alice: ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    alice.say(&format!("/join {code} bob")).await;
    alice.expect("invite for bob completed").await;
    bob.expect("alice connected").await;
    // Bob's grant goes out before anything else he sends on the link.
    bob.say("/msg alice see you").await;
    alice.expect("<bob> see you").await;
    bob.say("/quit").await;
    assert!(bob.child.wait().await.unwrap().success());
    alice.expect("bob disconnected").await;

    let before = rss_kib(mailbox.id().unwrap());
    flood(&addr, 20_000).await;
    let after = rss_kib(mailbox.id().unwrap());
    assert!(
        after < before + 8 * 1024,
        "the mailbox grew from {before} KiB to {after} KiB under bad work"
    );
    println!("mailbox RSS before a flood of 20000 bad deposits: {before} KiB, after: {after} KiB");

    for i in 0..20 {
        alice
            .say(&format!("/msg bob while you were away {i}"))
            .await;
    }
    for _ in 0..20 {
        alice.expect("✓ via mailbox bob").await;
    }

    // The mailbox restarts: its memory, and Alice's deposits, are gone.
    mailbox.start_kill().unwrap();
    mailbox.wait().await.unwrap();
    let _mailbox = mailbox_on(&addr).await;
    for _ in 0..20 {
        alice.expect("✓ queued bob").await;
        alice.expect("✓ via mailbox bob").await;
    }
    alice.say("/quit").await;
    assert!(alice.child.wait().await.unwrap().success());

    let mut bob = Person::start_persistent("bob", "ctor", net.dir(), data.path(), &extra);
    for i in 0..20 {
        bob.expect(&format!("<alice> while you were away {i} (via mailbox)"))
            .await;
    }
    let mut alice = Person::start_persistent("alice", "ctor", net.dir(), data.path(), &extra);
    for _ in 0..20 {
        alice.expect("✓ delivered bob").await;
    }
    bob.say("/history alice 100").await;
    bob.expect("-> alice: see you").await;
    for i in 0..20 {
        bob.expect(&format!("<alice> while you were away {i} (via mailbox)"))
            .await;
    }
    bob.say("/convs").await;
    bob.expect("alice verified").await;
    let copies = bob
        .seen
        .iter()
        .filter(|l| l.contains("while you were away 7 "))
        .count();
    assert_eq!(copies, 2, "once as it arrived, once in the history");
    quit_both(alice, bob).await;
}

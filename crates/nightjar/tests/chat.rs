//! `nightjar chat`, run as people run it, over the private Tor network: one side
//! listens (or invites), the other connects with the printed string (or the code),
//! a line goes each way, and one side's quit ends the other. Invite codes meet on
//! nightjar's own rendezvous server, published as an onion on the network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::pending;

use common::HANG_GUARD;
use common::oneshot::OneShot;
use nightjar_test_support::onion::PublishedOnion;
use nightjar_test_support::shared_network;
use nightjar_tor::testnet::TestNetwork;

fn chat(name: &'static str, args: &[&str], backend: &str, testnet: &std::path::Path) -> OneShot {
    OneShot::start("chat", name, args, backend, testnet)
}

/// nightjar's rendezvous server on a loopback port, published as an onion on
/// the private network by a tor of the test's own; its URL, and what keeps it up.
async fn rendezvous(net: &TestNetwork) -> (String, PublishedOnion) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(nightjar_mailbox::serve(
        listener,
        nightjar_mailbox::Config::default(),
        pending(),
    ));
    let onion = tokio::time::timeout(HANG_GUARD, PublishedOnion::start(net, addr))
        .await
        .expect("the rendezvous onion was not published in time")
        .unwrap();
    (onion.rendezvous_url(), onion)
}

/// A line each way, then `first` quits and both end well.
async fn talk_and_quit(first: OneShot, mut second: OneShot) {
    let mut first = first;
    second.type_line("hello from the second").await;
    assert_eq!(first.next_line().await, "<peer> hello from the second");
    first.type_line("hello back").await;
    assert_eq!(second.next_line().await, "<peer> hello back");
    first.type_line("/quit").await;
    let (first_end, second_end) = tokio::join!(first.exit(), second.exit());
    assert!(first_end.0.success(), "{first_end:?}");
    // The second ends because the first left, with its input still open.
    assert!(second_end.0.success(), "{second_end:?}");
}

async fn run(listener_backend: &str, dialler_backend: &str) {
    let net = shared_network().await;
    let mut listener = chat("listener", &["--listen"], listener_backend, net.dir());
    let string = listener.next_line().await;
    assert!(string.starts_with("njchat1"), "{string}");
    let dialler = chat("dialler", &[&string], dialler_backend, net.dir());
    talk_and_quit(listener, dialler).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_arti_listens_ctor_dials() {
    run("arti", "ctor").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_ctor_listens_arti_dials() {
    run("ctor", "arti").await;
}

/// The code alone on stdout: a number and two words.
async fn read_code(inviter: &mut OneShot) -> String {
    let code = inviter.next_line().await;
    let parts: Vec<&str> = code.split('-').collect();
    assert_eq!(parts.len(), 3, "{code}");
    assert!(parts[0].bytes().all(|b| b.is_ascii_digit()), "{code}");
    code
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_code_arti_invites_ctor_joins() {
    let net = shared_network().await;
    let (url, _onion) = rendezvous(net).await;
    let mut inviter = chat(
        "inviter",
        &["--invite", "--rendezvous", &url],
        "arti",
        net.dir(),
    );
    let code = read_code(&mut inviter).await;
    let joiner = chat(
        "joiner",
        &["--join", &code, "--rendezvous", &url],
        "ctor",
        net.dir(),
    );
    talk_and_quit(inviter, joiner).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_code_fails_on_both_sides() {
    let net = shared_network().await;
    let (url, _onion) = rendezvous(net).await;
    let mut inviter = chat(
        "inviter",
        &["--invite", "--rendezvous", &url],
        "arti",
        net.dir(),
    );
    let code = read_code(&mut inviter).await;
    let nameplate = code.split('-').next().unwrap();
    // Generated codes hold words from the PGP list; these are not on it.
    let wrong = format!("{nameplate}-wrong-guess");
    let joiner = chat(
        "joiner",
        &["--join", &wrong, "--rendezvous", &url],
        "arti",
        net.dir(),
    );
    let (inviter_end, joiner_end) = tokio::join!(inviter.exit(), joiner.exit());
    let sentence = "nightjar: the code was wrong, or someone tried to guess it";
    for (status, error) in [inviter_end, joiner_end] {
        assert_eq!(status.code(), Some(1));
        assert_eq!(error.as_deref(), Some(sentence));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_with_auth_ctor_invites_arti_joins() {
    let net = shared_network().await;
    let (url, _onion) = rendezvous(net).await;
    let mut inviter = chat(
        "inviter",
        &["--invite", "--auth", "--rendezvous", &url],
        "ctor",
        net.dir(),
    );
    let code = read_code(&mut inviter).await;
    let mut joiner = chat(
        "joiner",
        &["--join", &code, "--rendezvous", &url],
        "arti",
        net.dir(),
    );
    inviter
        .note("you asked for a shared secret; type it:")
        .await;
    joiner
        .note("the other side asks for a shared secret; type it:")
        .await;

    let failed = "authentication failed; /auth to try again or /quit to leave";
    inviter.type_line("correct horse").await;
    joiner.type_line("battery staple").await;
    inviter.note(failed).await;
    joiner.note(failed).await;

    inviter.type_line("correct horse").await;
    joiner.type_line("correct horse").await;
    inviter.note("authenticated").await;
    joiner.note("authenticated").await;
    // Neither secret reached a screen: the first lines on stdout are the texts.
    talk_and_quit(inviter, joiner).await;
}

#[test]
fn malformed_string_is_one_sentence() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["chat", "njchat1qqqqqq", "--testnet", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        "nightjar: the connection string has a typo: its checksum does not match"
    );
}

#[test]
fn malformed_code_is_one_sentence() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .args(["chat", "--join", "crossover-7", "--testnet", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .trim()
            .starts_with("nightjar: this is not an invite code: "),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

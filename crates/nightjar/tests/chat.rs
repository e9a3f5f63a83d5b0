//! `nightjar chat`, run as people run it, over the private Tor network: one side
//! listens, the other connects with the printed string, a line goes each way, and
//! one side's quit ends the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use nightjar_test_support::shared_network;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Generous: Tor start-up plus publication on a young network.
const HANG_GUARD: Duration = Duration::from_secs(300);

fn chat(args: &[&str], backend: &str, testnet: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nightjar"))
        .arg("chat")
        .args(args)
        .args(["--tor", backend, "--testnet"])
        .arg(testnet)
        .env_remove("NIGHTJAR_TESTNET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(HANG_GUARD, lines.next_line())
        .await
        .expect("no output in time")
        .unwrap()
        .expect("output ended")
}

async fn run(listener_backend: &str, dialler_backend: &str) {
    let net = shared_network().await;
    let mut listener = chat(&["--listen"], listener_backend, net.dir());
    let mut listener_out = BufReader::new(listener.stdout.take().unwrap()).lines();
    let string = next_line(&mut listener_out).await;
    assert!(string.starts_with("njchat1"), "{string}");

    let mut dialler = chat(&[&string], dialler_backend, net.dir());
    let mut dialler_out = BufReader::new(dialler.stdout.take().unwrap()).lines();
    let mut dialler_in = dialler.stdin.take().unwrap();
    let mut listener_in = listener.stdin.take().unwrap();

    dialler_in
        .write_all(b"hello from the dialler\n")
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut listener_out).await,
        "<peer> hello from the dialler"
    );
    listener_in.write_all(b"hello back\n").await.unwrap();
    assert_eq!(next_line(&mut dialler_out).await, "<peer> hello back");

    listener_in.write_all(b"/quit\n").await.unwrap();
    let (listener_status, dialler_status) = tokio::time::timeout(HANG_GUARD, async {
        tokio::join!(listener.wait(), dialler.wait())
    })
    .await
    .expect("the chat did not end");
    assert!(listener_status.unwrap().success());
    // The dialler ends because the listener left, with its input still open.
    assert!(dialler_status.unwrap().success());
    drop(dialler_in);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_arti_listens_ctor_dials() {
    run("arti", "ctor").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_ctor_listens_arti_dials() {
    run("ctor", "arti").await;
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

//! The client against magic-wormhole's reference mailbox server, and against its
//! reference command-line client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use nightjar_test_support::wormhole::{MailboxServer, wormhole_program};
use nightjar_wormhole::{
    Code, CodeError, Config, MAX_MESSAGE_LEN, Mood, Wormhole, WormholeError, allocate, join,
};
use rand_core::UnwrapErr;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A hang guard only: everything here takes about a second.
const GUARD: Duration = Duration::from_secs(60);
/// The reference client's application id for `wormhole send` / `receive`.
const TEXT_APP: &str = "lothar.com/wormhole/text-or-file-xfer";

async fn server() -> MailboxServer {
    tokio::task::spawn_blocking(MailboxServer::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn tcp(server: &MailboxServer) -> TcpStream {
    TcpStream::connect(server.addr()).await.unwrap()
}

fn config(server: &MailboxServer, app_id: &str) -> Config {
    Config {
        url: server.url(),
        app_id: app_id.into(),
    }
}

fn rng() -> UnwrapErr<rand::rngs::SysRng> {
    UnwrapErr(rand::rngs::SysRng)
}

/// Opens a wormhole between two of our clients: one allocates, one joins.
async fn pair(server: &MailboxServer) -> (Wormhole<TcpStream>, Wormhole<TcpStream>) {
    let config = config(server, "example.org/nightjar-test");
    let (code, pending) = allocate(tcp(server).await, &config, 2, &mut rng())
        .await
        .unwrap();
    assert!(code.is_from_word_list());
    let (a, b) = tokio::join!(pending.connect(), join(tcp(server).await, &config, &code));
    (a.unwrap(), b.unwrap())
}

#[tokio::test]
async fn two_clients_exchange_messages_both_ways() {
    let server = server().await;
    timeout(GUARD, async {
        let (mut a, mut b) = pair(&server).await;
        assert_eq!(a.verifier(), b.verifier());
        assert_eq!(*a.derive_key(b"purpose"), *b.derive_key(b"purpose"));

        a.send(b"first from a").await.unwrap();
        a.send(b"second from a").await.unwrap();
        b.send(b"from b").await.unwrap();
        let largest = vec![0x5a; MAX_MESSAGE_LEN];
        b.send(&largest).await.unwrap();
        assert_eq!(b.receive().await.unwrap(), b"first from a");
        assert_eq!(b.receive().await.unwrap(), b"second from a");
        assert_eq!(a.receive().await.unwrap(), b"from b");
        assert_eq!(a.receive().await.unwrap(), largest);

        let too_large = vec![0; MAX_MESSAGE_LEN + 1];
        assert!(matches!(
            a.send(&too_large).await,
            Err(WormholeError::TooLarge { .. })
        ));
        a.close(Mood::Happy).await.unwrap();
        b.close(Mood::Happy).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_wrong_code_fails_on_both_sides() {
    let server = server().await;
    timeout(GUARD, async {
        let config = config(&server, "example.org/nightjar-test");
        let (code, pending) = allocate(tcp(&server).await, &config, 2, &mut rng())
            .await
            .unwrap();
        let wrong = Code::from_parts(code.nameplate(), &["wrong", "words"]).unwrap();
        let (a, b) = tokio::join!(pending.connect(), join(tcp(&server).await, &config, &wrong));
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert!(matches!(a, WormholeError::WrongCode), "{a:?}");
        assert!(matches!(b, WormholeError::WrongCode), "{b:?}");
        assert_eq!(
            a.to_string(),
            "the code was wrong, or someone tried to guess it"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_refusing_server_is_reported() {
    let server = tokio::task::spawn_blocking(|| {
        MailboxServer::start_with(&["--signal-error=closed for maintenance"])
    })
    .await
    .unwrap()
    .unwrap();
    let config = config(&server, "example.org/nightjar-test");
    let err = timeout(GUARD, allocate(tcp(&server).await, &config, 2, &mut rng()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, WormholeError::Unwelcome(ref why) if why == "closed for maintenance"),
        "{err:?}"
    );
}

#[test]
fn bad_code_strings_are_rejected() {
    assert_eq!("".parse::<Code>(), Err(CodeError::Empty));
    assert_eq!("crossover-7".parse::<Code>(), Err(CodeError::BadNameplate));
    assert_eq!("7".parse::<Code>(), Err(CodeError::NoWords));
    assert_eq!(
        "7-cross/over".parse::<Code>(),
        Err(CodeError::BadWord { position: 1 })
    );
    let err = "seven-crossover".parse::<Code>().unwrap_err();
    assert!(err.to_string().contains("7-crossover-clockwork"), "{err}");
}

/// `wormhole send --text` from the reference client, received by ours.
#[tokio::test]
async fn receives_text_from_the_reference_client() {
    let server = server().await;
    let sender = tokio::process::Command::new(wormhole_program().unwrap())
        .args([
            "--relay-url",
            &server.url(),
            "send",
            "--code",
            "42-some-words",
        ])
        .args(["--text", "hi from python"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    timeout(GUARD, async {
        let code = Code::parse("42-some-words").unwrap();
        let mut wormhole = join(tcp(&server).await, &config(&server, TEXT_APP), &code)
            .await
            .unwrap();
        let offer: serde_json::Value =
            serde_json::from_slice(&wormhole.receive().await.unwrap()).unwrap();
        assert_eq!(offer, json!({"offer": {"message": "hi from python"}}));
        let answer = json!({"answer": {"message_ack": "ok"}});
        wormhole
            .send(&serde_json::to_vec(&answer).unwrap())
            .await
            .unwrap();
        wormhole.close(Mood::Happy).await.unwrap();
        let output = sender.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "wormhole send failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    })
    .await
    .unwrap();
}

/// Our text offer, printed by `wormhole receive --only-text`.
#[tokio::test]
async fn sends_text_to_the_reference_client() {
    let server = server().await;
    timeout(GUARD, async {
        let config = config(&server, TEXT_APP);
        let (code, pending) = allocate(tcp(&server).await, &config, 2, &mut rng())
            .await
            .unwrap();
        let receiver = tokio::process::Command::new(wormhole_program().unwrap())
            .args(["--relay-url", &server.url(), "receive", "--only-text"])
            .arg(code.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut wormhole = pending.connect().await.unwrap();
        let offer = json!({"offer": {"message": "hello from nightjar"}});
        wormhole
            .send(&serde_json::to_vec(&offer).unwrap())
            .await
            .unwrap();
        let answer: serde_json::Value =
            serde_json::from_slice(&wormhole.receive().await.unwrap()).unwrap();
        assert_eq!(answer, json!({"answer": {"message_ack": "ok"}}));
        wormhole.close(Mood::Happy).await.unwrap();
        let output = receiver.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "wormhole receive failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "hello from nightjar\n"
        );
    })
    .await
    .unwrap();
}

/// The reference client with a wrong code: we see `WrongCode`, it fails too.
#[tokio::test]
async fn a_wrong_code_from_the_reference_client_is_detected() {
    let server = server().await;
    timeout(GUARD, async {
        let config = config(&server, TEXT_APP);
        let (code, pending) = allocate(tcp(&server).await, &config, 2, &mut rng())
            .await
            .unwrap();
        let wrong = format!("{}-wrong-words", code.nameplate());
        let receiver = tokio::process::Command::new(wormhole_program().unwrap())
            .args([
                "--relay-url",
                &server.url(),
                "receive",
                "--only-text",
                &wrong,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let err = pending.connect().await.unwrap_err();
        assert!(matches!(err, WormholeError::WrongCode), "{err:?}");
        let output = receiver.wait_with_output().await.unwrap();
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("WrongPasswordError")
                || String::from_utf8_lossy(&output.stderr)
                    .to_lowercase()
                    .contains("wrong"),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    })
    .await
    .unwrap();
}

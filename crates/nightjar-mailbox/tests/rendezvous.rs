//! The rendezvous server at `/v1`, served by `serve()` on a loopback port, with
//! nightjar's wormhole client, magic-wormhole's reference command-line client
//! and raw websocket frames.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nightjar_mailbox::{Config, serve};
use nightjar_wormhole::{Code, Config as WormholeConfig, Mood, WormholeError, allocate, join};
use rand_core::UnwrapErr;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// A hang guard only; the Python client alone takes a few seconds to start.
const GUARD: Duration = Duration::from_secs(120);
const APP: &str = "example.org/nightjar-test";

/// A mailbox server on a loopback port; stops when dropped.
struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, Config::default(), async {
            let _ = stopped.await;
        }));
        Self { addr, _stop: stop }
    }

    fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    async fn tcp(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    fn config(&self) -> WormholeConfig {
        WormholeConfig {
            url: self.url(),
            app_id: APP.into(),
        }
    }

    /// A raw websocket, past the welcome.
    async fn raw(&self) -> Raw {
        let (ws, _) = tokio_tungstenite::client_async(self.url(), self.tcp().await)
            .await
            .unwrap();
        let mut raw = Raw(ws);
        let welcome = raw.recv().await;
        assert_eq!(welcome["type"], "welcome");
        assert!(welcome["welcome"].get("error").is_none());
        assert!(welcome["server_tx"].is_number());
        raw
    }
}

struct Raw(WebSocketStream<TcpStream>);

impl Raw {
    async fn send_text(&mut self, text: String) {
        self.0.send(Message::Text(text.into())).await.unwrap();
    }

    async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    async fn recv(&mut self) -> Value {
        loop {
            match self.0.next().await.unwrap().unwrap() {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Sends `value` and returns the server's answers after the `ack`.
    async fn ask(&mut self, value: Value, answers: usize) -> Vec<Value> {
        self.send(value).await;
        assert_eq!(self.recv().await["type"], "ack");
        let mut out = Vec::new();
        for _ in 0..answers {
            out.push(self.recv().await);
        }
        out
    }
}

fn rng() -> UnwrapErr<rand::rngs::SysRng> {
    UnwrapErr(rand::rngs::SysRng)
}

#[tokio::test]
async fn two_of_our_clients_exchange_messages_both_ways() {
    let server = Server::start().await;
    timeout(GUARD, async {
        let config = server.config();
        let (code, pending) = allocate(server.tcp().await, &config, 2, &mut rng())
            .await
            .unwrap();
        assert_eq!(code.nameplate(), "1");
        let (a, b) = tokio::join!(pending.connect(), join(server.tcp().await, &config, &code));
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.verifier(), b.verifier());
        a.send(b"first from a").await.unwrap();
        a.send(b"second from a").await.unwrap();
        let largest = vec![0x5a; nightjar_wormhole::MAX_MESSAGE_LEN];
        b.send(&largest).await.unwrap();
        assert_eq!(b.receive().await.unwrap(), b"first from a");
        assert_eq!(b.receive().await.unwrap(), b"second from a");
        assert_eq!(a.receive().await.unwrap(), largest);
        a.close(Mood::Happy).await.unwrap();
        b.close(Mood::Happy).await.unwrap();
        // Both sides closed and released: the next code starts at 1 again.
        let (code, pending) = allocate(server.tcp().await, &config, 2, &mut rng())
            .await
            .unwrap();
        assert_eq!(code.nameplate(), "1");
        pending.cancel().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_wrong_code_fails_on_both_sides() {
    let server = Server::start().await;
    timeout(GUARD, async {
        let config = server.config();
        let (code, pending) = allocate(server.tcp().await, &config, 2, &mut rng())
            .await
            .unwrap();
        let wrong = Code::from_parts(code.nameplate(), &["wrong", "words"]).unwrap();
        let (a, b) = tokio::join!(pending.connect(), join(server.tcp().await, &config, &wrong));
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert!(matches!(a, WormholeError::WrongCode), "{a:?}");
        assert!(matches!(b, WormholeError::WrongCode), "{b:?}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_third_side_is_refused_as_crowded() {
    let server = Server::start().await;
    timeout(GUARD, async {
        let config = server.config();
        let (code, pending) = allocate(server.tcp().await, &config, 2, &mut rng())
            .await
            .unwrap();
        // A second side claims the nameplate and stays.
        let mut second = server.raw().await;
        second
            .ask(json!({"type": "bind", "appid": APP, "side": "second"}), 0)
            .await;
        let claimed = second
            .ask(json!({"type": "claim", "nameplate": code.nameplate()}), 1)
            .await;
        assert_eq!(claimed[0]["type"], "claimed");
        let third = join(server.tcp().await, &config, &code).await.unwrap_err();
        assert!(matches!(third, WormholeError::Crowded), "{third:?}");
        // Another application's nameplate 1 is another nameplate.
        let other = WormholeConfig {
            app_id: "example.org/other".into(),
            ..config
        };
        let (other_code, other_pending) = allocate(server.tcp().await, &other, 2, &mut rng())
            .await
            .unwrap();
        assert_eq!(other_code.nameplate(), code.nameplate());
        other_pending.cancel().await.unwrap();
        pending.cancel().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_server_keeps_serving() {
    let server = Server::start().await;
    timeout(GUARD, async {
        let mut raw = server.raw().await;
        raw.send_text("{this is not json".into()).await;
        let error = raw.recv().await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["orig"], "{this is not json");

        let claim = json!({"type": "claim", "nameplate": "1", "id": "0001"});
        let answers = raw.ask(claim.clone(), 1).await;
        assert_eq!(answers[0]["error"], "must bind first");
        assert_eq!(answers[0]["orig"], claim);

        raw.ask(json!({"type": "bind", "appid": APP, "side": "s1"}), 0)
            .await;
        let answers = raw.ask(json!({"type": "teleport"}), 1).await;
        assert_eq!(answers[0]["type"], "error");
        assert_eq!(answers[0]["error"], "unknown type");
        assert_eq!(answers[0]["orig"], json!({"type": "teleport"}));
        let answers = raw
            .ask(json!({"type": "add", "phase": "0", "body": "zz"}), 1)
            .await;
        assert_eq!(answers[0]["type"], "error");
        let answers = raw.ask(json!({"type": "ping", "ping": 9}), 1).await;
        assert_eq!(answers[0]["pong"], 9);

        // A frame over the limit closes that connection only.
        let mut big = server.raw().await;
        let huge = "0".repeat(2 << 20);
        let _ = big
            .0
            .send(Message::Text(
                json!({"type": "ping", "ping": 1, "pad": huge})
                    .to_string()
                    .into(),
            ))
            .await;
        loop {
            match big.0.next().await {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(Message::Text(t))) => panic!("answered an oversized frame: {t}"),
                Some(Ok(_)) => {}
            }
        }
        let answers = raw.ask(json!({"type": "list"}), 1).await;
        assert_eq!(answers[0]["nameplates"], json!([]));
        let mut fresh = server.raw().await;
        let answers = fresh.ask(json!({"type": "ping", "ping": 3}), 1).await;
        assert_eq!(answers[0]["pong"], 3);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn raw_sides_see_every_message_with_its_id_and_time() {
    let server = Server::start().await;
    timeout(GUARD, async {
        let mut a = server.raw().await;
        let mut b = server.raw().await;
        a.ask(json!({"type": "bind", "appid": APP, "side": "aa"}), 0)
            .await;
        b.ask(json!({"type": "bind", "appid": APP, "side": "bb"}), 0)
            .await;
        let nameplate = a.ask(json!({"type": "allocate"}), 1).await[0]["nameplate"].clone();
        let mailbox = a
            .ask(json!({"type": "claim", "nameplate": nameplate}), 1)
            .await[0]["mailbox"]
            .clone();
        a.ask(json!({"type": "open", "mailbox": mailbox}), 0).await;
        let echo = a
            .ask(
                json!({"type": "add", "phase": "pake", "body": "abcd", "id": "x1"}),
                1,
            )
            .await;
        assert_eq!(echo[0]["type"], "message");
        assert_eq!(echo[0]["side"], "aa");
        assert_eq!(echo[0]["id"], "x1");
        assert!(echo[0]["server_rx"].is_number());
        let listed = b.ask(json!({"type": "list"}), 1).await;
        assert_eq!(listed[0]["nameplates"], json!([{"id": nameplate}]));
        b.ask(json!({"type": "claim", "nameplate": nameplate}), 1)
            .await;
        let old = b.ask(json!({"type": "open", "mailbox": mailbox}), 1).await;
        assert_eq!(old[0]["body"], "abcd");
        b.ask(json!({"type": "add", "phase": "pake", "body": "ef"}), 1)
            .await;
        let live = a.recv().await;
        assert_eq!(
            (live["side"].clone(), live["body"].clone()),
            (json!("bb"), json!("ef"))
        );
        a.ask(json!({"type": "close", "mood": "happy"}), 1).await;
        let closed = b.ask(json!({"type": "close", "mood": "happy"}), 1).await;
        assert_eq!(closed[0]["type"], "closed");
    })
    .await
    .unwrap();
}

/// The reference command-line client, as `scripts/setup.sh` installs it.
fn wormhole_program() -> PathBuf {
    let dir = std::env::var_os("NIGHTJAR_PYTHON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/nightjar/python/bin")
        });
    let candidate = dir.join("wormhole");
    if candidate.is_file() {
        return candidate;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("wormhole"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`wormhole` not found; run scripts/setup.sh"))
}

fn reference(server: &Server) -> Command {
    let mut cmd = Command::new(wormhole_program());
    cmd.arg("--relay-url")
        .arg(server.url())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn receive_text(server: &Server, code: &str) -> String {
    let out = reference(server)
        .args(["receive", "--only-text", code])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "receive failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn reference_clients_meet_on_a_given_code() {
    let server = Server::start().await;
    timeout(GUARD, async {
        let sender = reference(&server)
            .args(["send", "--code", "42-some-words", "--text", "hi"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let text = receive_text(&server, "42-some-words").await;
        assert_eq!(text.trim_end(), "hi");
        let out = sender.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "send failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn reference_clients_meet_on_an_allocated_code() {
    let server = Server::start().await;
    timeout(GUARD, async {
        let mut sender = reference(&server)
            .args(["send", "--code-length", "2", "--text", "allocated hello"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(sender.stderr.take().unwrap()).lines();
        let code = loop {
            let line = lines.next_line().await.unwrap().expect("no code printed");
            if let Some(code) = line.trim().strip_prefix("Wormhole code is: ") {
                break code.to_owned();
            }
        };
        assert!(code.starts_with("1-"), "{code}");
        assert_eq!(code.split('-').count(), 3, "{code}");
        // Keep draining the sender's stderr so it never blocks on a full pipe.
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let text = receive_text(&server, &code).await;
        assert_eq!(text.trim_end(), "allocated hello");
        assert!(sender.wait().await.unwrap().success());
        drain.await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn our_client_meets_the_reference_client() {
    let server = Server::start().await;
    timeout(GUARD, async {
        let sender = reference(&server)
            .args([
                "send",
                "--code",
                "7-pickup-ragtime",
                "--text",
                "from python",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let config = WormholeConfig {
            app_id: "lothar.com/wormhole/text-or-file-xfer".into(),
            ..server.config()
        };
        let code: Code = "7-pickup-ragtime".parse().unwrap();
        let mut ours = join(server.tcp().await, &config, &code).await.unwrap();
        let offer: Value = serde_json::from_slice(&ours.receive().await.unwrap()).unwrap();
        assert_eq!(offer["offer"]["message"], "from python");
        ours.send(br#"{"answer": {"message_ack": "ok"}}"#)
            .await
            .unwrap();
        ours.close(Mood::Happy).await.unwrap();
        let out = sender.wait_with_output().await.unwrap();
        assert!(out.status.success());
    })
    .await
    .unwrap();
}

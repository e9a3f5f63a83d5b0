//! Driving `nightjar daemon` processes through their JSON-RPC sockets.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nightjar_test_support::TestNetwork;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, Command};

use super::HANG_GUARD;

/// How a daemon's profile is kept.
pub enum Profile<'a> {
    Ephemeral,
    /// Ephemeral, with invite codes meeting at this rendezvous URL.
    EphemeralMeetingAt(&'a str),
    /// A persistent profile in this data directory.
    OnDisk(&'a Path),
}

pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
}

impl Daemon {
    pub fn start(
        net: &TestNetwork,
        dir: &Path,
        name: &str,
        backend: &str,
        profile: Profile<'_>,
    ) -> Self {
        let program = std::process::Command::new(env!("CARGO_BIN_EXE_nightjar"));
        Self::start_as(program, net, dir, name, backend, profile)
    }

    /// Starts `program`, which runs nightjar (perhaps under another program),
    /// with the daemon's arguments added.
    pub fn start_as(
        program: std::process::Command,
        net: &TestNetwork,
        dir: &Path,
        name: &str,
        backend: &str,
        profile: Profile<'_>,
    ) -> Self {
        let socket = dir.join(format!("{name}.sock"));
        let mut command = Command::from(program);
        command
            .args(["daemon", "--socket"])
            .arg(&socket)
            .args(["--tor", backend, "--testnet"])
            .arg(net.dir())
            .env_remove("NIGHTJAR_TESTNET")
            .env("NIGHTJAR_DOWNLOADS", dir.join(format!("{name}-downloads")))
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        match profile {
            Profile::Ephemeral => {
                command.arg("--ephemeral");
            }
            Profile::EphemeralMeetingAt(url) => {
                command.args(["--ephemeral", "--rendezvous", url]);
            }
            Profile::OnDisk(data) => {
                command
                    .args(["--profile", name, "--data-dir"])
                    .arg(data)
                    .env("NIGHTJAR_PASSPHRASE", format!("{name}'s long passphrase"));
            }
        }
        Self {
            child: command.spawn().unwrap(),
            socket,
        }
    }

    pub async fn connect(&self) -> Client {
        let stream = tokio::time::timeout(HANG_GUARD, async {
            loop {
                if let Ok(stream) = UnixStream::connect(&self.socket).await {
                    return stream;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("the daemon never opened its socket");
        let (read, write) = stream.into_split();
        let mut client = Client {
            lines: BufReader::new(read).lines(),
            write,
            next_id: 1,
            events: Vec::new(),
        };
        client.call("subscribe", json!({})).await;
        client
    }

    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    pub async fn stop(mut self, client: &mut Client) {
        client.call("shutdown", json!({})).await;
        let status = tokio::time::timeout(HANG_GUARD, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "the daemon exited with {status}");
    }
}

pub struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    next_id: u64,
    /// Event notifications read while waiting for something else.
    pub events: Vec<Value>,
}

impl Client {
    pub async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(HANG_GUARD, self.lines.next_line())
            .await
            .expect("the daemon went quiet")
            .unwrap()
            .expect("the daemon closed the connection");
        serde_json::from_str(&line).unwrap()
    }

    /// Calls `method`; panics on an error answer.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let answer = self.try_call(method, params).await;
        match answer.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {answer}"),
        }
    }

    /// Calls `method`; returns the whole answer.
    pub async fn try_call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut line = request.to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.unwrap();
        loop {
            let message = self.read().await;
            if message["id"] == json!(id) {
                return message;
            }
            if message["method"] == "event" {
                self.events.push(message["params"].clone());
            }
        }
    }

    /// The first event (already read or still to come) that `pick` accepts;
    /// events before it are consumed.
    pub async fn event(&mut self, mut pick: impl FnMut(&Value) -> bool) -> Value {
        if let Some(at) = self.events.iter().position(&mut pick) {
            let found = self.events[at].clone();
            self.events.drain(..=at);
            return found;
        }
        self.events.clear();
        loop {
            let message = self.read().await;
            if message["method"] == "event" && pick(&message["params"]) {
                return message["params"].clone();
            }
        }
    }

    pub async fn event_named(&mut self, name: &str) -> Value {
        self.event(|e| e["event"] == name).await
    }

    pub async fn delivered(&mut self, id: &Value) {
        self.event(|e| {
            e["event"] == "message_state" && e["id"] == *id && e["state"] == "delivered"
        })
        .await;
    }
}

/// Alice asks Bob, Bob accepts; both see the contact.
pub async fn befriend(alice: &mut Client, bob: &mut Client) {
    let address = bob.call("info", json!({})).await["address"].clone();
    alice
        .call(
            "send_request",
            json!({"address": address, "name": "bob", "greeting": "hi"}),
        )
        .await;
    let request = bob.event_named("request_received").await;
    assert_eq!(request["request"]["greeting"], "hi");
    let id = request["request"]["id"].clone();
    bob.call("accept_request", json!({"id": id, "name": "alice"}))
        .await;
    let added = alice.event_named("contact_added").await;
    assert_eq!(added["contact"]["name"], "bob");
    bob.event_named("contact_added").await;
}

//! The daemon with real nodes on the in-process loopback network, driven only
//! through socket clients.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nightjar_node::{Node, NodeConfig};
use nightjar_store::Store;
use nightjar_tor::loopback::LoopbackNetwork;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::connection::MAX_LINE;
use super::{MAX_CLIENTS, serve};

/// Only a guard against hangs; nothing here is timed.
const PATIENCE: Duration = Duration::from_secs(30);

async fn node(net: &LoopbackNetwork) -> Node {
    node_with_files(net, nightjar_node::FilesConfig::default()).await
}

async fn node_with_files(net: &LoopbackNetwork, files: nightjar_node::FilesConfig) -> Node {
    let store = Store::in_memory(&nightjar_node::new_profile()).unwrap();
    nightjar_node::start(NodeConfig {
        store,
        transport: net.transport(),
        ephemeral: true,
        rendezvous: nightjar_node::Rendezvous::default(),
        offline: nightjar_node::OfflineConfig::default(),
        files,
        shaping: nightjar_node::ShapingConfig::UNSHAPED,
    })
    .await
    .unwrap()
}

struct Daemon {
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start(net: &LoopbackNetwork) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("rpc.sock");
        let files = nightjar_node::FilesConfig {
            downloads: dir.path().join("downloads"),
            max_incoming: 1 << 30,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let (node, socket) = (node_with_files(net, files).await, socket.clone());
            async move {
                serve(node, &socket, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        wait_for_socket(&socket).await;
        Self {
            socket,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// A directory of this daemon's own, for files it sends.
    fn dir(&self) -> &Path {
        self._dir.path()
    }

    async fn client(&self) -> Client {
        Client::connect(&self.socket).await
    }

    /// Stops it as a signal would, and checks it cleaned up.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        finished(&mut self.task).await;
        assert!(!self.socket.exists());
    }
}

async fn finished(task: &mut JoinHandle<anyhow::Result<()>>) {
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the daemon did not stop")
        .unwrap()
        .unwrap();
}

async fn wait_for_socket(socket: &Path) {
    tokio::time::timeout(PATIENCE, async {
        while UnixStream::connect(socket).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the daemon never listened");
}

async fn read_from(lines: &mut Lines<BufReader<OwnedReadHalf>>) -> Option<Value> {
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("no answer from the daemon")
        .ok()??;
    Some(serde_json::from_str(&line).unwrap())
}

/// A line-at-a-time JSON-RPC client that keeps notifications aside while it
/// waits for a response.
struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    next_id: u64,
    notifications: VecDeque<Value>,
}

impl Client {
    async fn connect(socket: &Path) -> Self {
        let (read, write) = UnixStream::connect(socket).await.unwrap().into_split();
        Self {
            lines: BufReader::new(read).lines(),
            write,
            next_id: 0,
            notifications: VecDeque::new(),
        }
    }

    async fn send_line(&mut self, line: &[u8]) {
        self.write.write_all(line).await.unwrap();
        self.write.write_all(b"\n").await.unwrap();
    }

    /// The next line from the daemon, or `None` when it closed the connection.
    async fn read(&mut self) -> Option<Value> {
        read_from(&mut self.lines).await
    }

    /// The next response, keeping notifications for later.
    async fn response(&mut self) -> Value {
        loop {
            let message = self.read().await.expect("the daemon hung up");
            assert_eq!(message["jsonrpc"], "2.0", "{message}");
            if message.get("id").is_some() {
                return message;
            }
            self.notifications.push_back(message);
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(request.to_string().as_bytes()).await;
        let response = self.response().await;
        assert_eq!(response["id"], id, "{response}");
        let mut fields = response.as_object().cloned().unwrap();
        match (fields.remove("result"), fields.remove("error")) {
            (Some(result), None) => Ok(result),
            (None, Some(error)) => Err(error),
            _ => panic!("neither result nor error: {response}"),
        }
    }

    async fn ok(&mut self, method: &str, params: Value) -> Value {
        match self.call(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method} failed: {error}"),
        }
    }

    /// The application error `kind` of a failed call.
    async fn refused(&mut self, method: &str, params: Value) -> Value {
        let error = self.call(method, params).await.unwrap_err();
        assert_eq!(error["code"], -32000, "{error}");
        error["data"]["kind"].clone()
    }

    /// The first event (the notification's params) that `pick` accepts; events
    /// before it are dropped.
    async fn event(&mut self, mut pick: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let message = match self.notifications.pop_front() {
                Some(message) => message,
                None => self.read().await.expect("the daemon hung up"),
            };
            assert_eq!(message["method"], "event", "{message}");
            if pick(&message["params"]) {
                return message["params"].clone();
            }
        }
    }

    async fn event_named(&mut self, name: &str) -> Value {
        self.event(|e| e["event"] == name).await
    }
}

#[tokio::test]
async fn two_people_talk_through_their_daemons() {
    let net = LoopbackNetwork::new();
    let (alice_daemon, bob_daemon) = (Daemon::start(&net).await, Daemon::start(&net).await);
    let (mut alice, mut bob) = (alice_daemon.client().await, bob_daemon.client().await);
    assert_eq!(alice.ok("subscribe", json!({})).await, Value::Null);
    assert_eq!(bob.ok("subscribe", Value::Null).await, Value::Null);
    let alice_info = alice.ok("info", json!({})).await;
    let bob_info = bob.ok("info", json!({})).await;
    assert_eq!(alice_info["ephemeral"], true);

    // Request and acceptance.
    let request = alice
        .ok(
            "send_request",
            json!({"address": bob_info["address"], "name": "bob", "greeting": "hi, it's alice"}),
        )
        .await;
    assert_eq!(request["direction"], "outgoing");
    assert_eq!(request["name"], "bob");
    let received = bob.event_named("request_received").await;
    assert_eq!(received["request"]["greeting"], "hi, it's alice");
    assert_eq!(
        received["request"]["fingerprint"],
        alice_info["fingerprint"]
    );
    alice.event_named("request_delivered").await;
    let pending = bob.ok("requests", Value::Null).await;
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    let id = received["request"]["id"].clone();
    let contact = bob
        .ok("accept_request", json!({"id": id, "name": "alice"}))
        .await;
    assert_eq!(
        (&contact["name"], &contact["level"]),
        (&json!("alice"), &json!("unverified"))
    );
    let added = alice.event_named("contact_added").await;
    assert_eq!(added["contact"]["name"], "bob");
    assert_eq!(added["contact"]["fingerprint"], bob_info["fingerprint"]);
    bob.event_named("contact_added").await;

    // Messages both ways, with receipts.
    let sent = alice
        .ok(
            "send_message",
            json!({"contact": "bob", "text": "hello bob"}),
        )
        .await;
    assert_eq!(sent["direction"], "outgoing");
    let got = bob.event_named("message_received").await;
    assert_eq!(
        (&got["message"]["contact"], &got["message"]["body"]),
        (&json!("alice"), &json!("hello bob"))
    );
    alice
        .event(|e| {
            e["event"] == "message_state" && e["id"] == sent["id"] && e["state"] == "delivered"
        })
        .await;
    let reply = bob
        .ok(
            "send_message",
            json!({"contact": "alice", "text": "hello alice"}),
        )
        .await;
    let got = alice.event_named("message_received").await;
    assert_eq!(got["message"]["body"], "hello alice");
    bob.event(|e| {
        e["event"] == "message_state" && e["id"] == reply["id"] && e["state"] == "delivered"
    })
    .await;

    assert_eq!(
        alice.ok("contact", json!({"name": "bob"})).await["unread"],
        1
    );
    let history = alice.ok("history", json!({"contact": "bob"})).await;
    let seen: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["direction"].clone(),
                m["body"].clone(),
                m["state"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("outgoing"), json!("hello bob"), json!("delivered")),
            (json!("incoming"), json!("hello alice"), json!("received")),
        ]
    );
    assert_eq!(
        alice.ok("contact", json!({"name": "bob"})).await["unread"],
        0
    );
    let last = alice
        .ok("history", json!({"contact": "bob", "limit": 1}))
        .await;
    assert_eq!(last[0]["body"], "hello alice");

    // Presence.
    assert_eq!(
        bob.ok("set_presence", json!({"contact": "alice", "on": true}))
            .await,
        Value::Null
    );
    let presence = alice
        .event(|e| e["event"] == "presence" && e["contact"] == "bob")
        .await;
    assert_eq!(presence["presence"], "online");

    // Verification.
    let kind = alice
        .refused(
            "verify",
            json!({"contact": "bob", "fingerprint": alice_info["fingerprint"]}),
        )
        .await;
    assert_eq!(kind, "fingerprint_mismatch");
    let spoken = bob_info["fingerprint"].as_str().unwrap().replace(' ', "-");
    let verified = alice
        .ok("verify", json!({"contact": "bob", "fingerprint": spoken}))
        .await;
    assert_eq!(verified["level"], "verified");
    let contacts = alice.ok("contacts", json!({})).await;
    assert_eq!(contacts[0]["level"], "verified");

    // The node's refusals, by kind.
    assert_eq!(
        alice
            .refused("send_message", json!({"contact": "carol", "text": "?"}))
            .await,
        "unknown_contact"
    );
    assert_eq!(
        alice
            .refused("send_request", json!({"address": "nj1nope", "name": "x"}))
            .await,
        "bad_address"
    );
    assert_eq!(
        alice
            .refused(
                "send_request",
                json!({"address": alice_info["address"], "name": "me"})
            )
            .await,
        "own_address"
    );
    assert_eq!(
        alice.refused("decline_request", json!({"id": 999})).await,
        "unknown_request"
    );

    // Bob's daemon stops on its signal; Alice hears he left.
    bob_daemon.stop().await;
    let presence = alice
        .event(|e| e["event"] == "presence" && e["contact"] == "bob")
        .await;
    assert_eq!(presence["presence"], "offline");
    assert_eq!(
        alice.ok("delete_contact", json!({"contact": "bob"})).await,
        Value::Null
    );
    assert_eq!(alice.ok("contacts", json!({})).await, json!([]));
    alice_daemon.stop().await;
}

#[tokio::test]
async fn the_socket_is_private_and_not_taken_from_a_running_daemon() {
    let net = LoopbackNetwork::new();
    let daemon = Daemon::start(&net).await;
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let second = serve(node(&net).await, &daemon.socket, std::future::pending()).await;
    let e = second.unwrap_err();
    assert!(e.to_string().contains("already listening"), "{e}");
    // The first one is untouched.
    daemon.client().await.ok("info", json!({})).await;
    daemon.stop().await;
}

#[tokio::test]
async fn protocol_errors_are_answered_and_the_connection_lives_on() {
    let net = LoopbackNetwork::new();
    let daemon = Daemon::start(&net).await;
    let mut client = daemon.client().await;

    for (line, code) in [
        (&b"{\"jsonrpc\":\"2.0\",\"id\":1,"[..], -32700),
        (b"not json", -32700),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}",
            -32700,
        ),
        (
            b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"info\"}]",
            -32600,
        ),
        (b"[]", -32600),
        (b"17", -32600),
        (b"{\"jsonrpc\":\"2.0\",\"method\":5}", -32600),
    ] {
        client.send_line(line).await;
        let response = client.response().await;
        assert_eq!(response["id"], Value::Null, "{response}");
        assert_eq!(response["error"]["code"], code, "{response}");
    }
    client.send_line(b"   ").await;

    client
        .send_line(br#"{"jsonrpc":"1.0","id":"x","method":"info"}"#)
        .await;
    let response = client.response().await;
    assert_eq!(
        (&response["id"], &response["error"]["code"]),
        (&json!("x"), &json!(-32600))
    );

    let error = client.call("frobnicate", json!({})).await.unwrap_err();
    assert_eq!(error["code"], -32601);

    for (method, params, param) in [
        ("contact", json!({}), "name"),
        ("send_message", json!({"contact": "bob", "text": 5}), "text"),
        (
            "history",
            json!({"contact": "bob", "limit": "all"}),
            "limit",
        ),
        ("info", json!({"extra": 1}), "extra"),
        ("contact", json!(["bob"]), "params"),
    ] {
        let error = client.call(method, params).await.unwrap_err();
        assert_eq!(error["code"], -32602, "{error}");
        assert_eq!(error["data"]["param"], param, "{error}");
    }

    // Still serving.
    assert_eq!(client.ok("requests", json!({})).await, json!([]));
    daemon.stop().await;
}

#[tokio::test]
async fn a_request_without_id_is_carried_out_but_not_answered() {
    let net = LoopbackNetwork::new();
    let daemon = Daemon::start(&net).await;
    let other = node(&net).await;
    let address = other.info().await.unwrap().address;
    let mut client = daemon.client().await;

    let request = json!({"jsonrpc": "2.0", "method": "send_request",
        "params": {"address": address, "name": "someone"}});
    client.send_line(request.to_string().as_bytes()).await;
    // Failing notifications are not answered either.
    client
        .send_line(br#"{"jsonrpc":"2.0","method":"contact","params":{"name":"nobody"}}"#)
        .await;
    client
        .send_line(br#"{"jsonrpc":"2.0","method":"no_such_method"}"#)
        .await;
    // The next line is the answer to the next request with an id.
    let pending = client.ok("requests", json!({})).await;
    assert_eq!(pending[0]["name"], "someone", "{pending}");
    assert_eq!(pending.as_array().map(Vec::len), Some(1));

    other.shutdown().await.unwrap();
    daemon.stop().await;
}

#[tokio::test]
async fn an_oversized_line_closes_only_that_connection() {
    let net = LoopbackNetwork::new();
    let daemon = Daemon::start(&net).await;
    let mut bystander = daemon.client().await;
    let mut client = daemon.client().await;

    // Stays within the limit: answered (not JSON-RPC, but read whole).
    let mut big = br#"{"jsonrpc":"2.0","id":1,"method":"info","params":{"pad":""#.to_vec();
    big.resize(MAX_LINE - 3, b'a');
    big.extend_from_slice(br#""}}"#);
    client.send_line(&big).await;
    let response = client.response().await;
    assert_eq!(response["error"]["data"]["param"], "pad");

    // One byte more is refused, and the connection closed. The daemon may close
    // before it has read everything, so the write may fail.
    let Client {
        mut lines,
        mut write,
        ..
    } = client;
    let writer = tokio::spawn(async move {
        big.push(b' ');
        let _ = write.write_all(&big).await;
        let _ = write.write_all(b"\n").await;
    });
    let response = read_from(&mut lines).await.unwrap();
    assert_eq!(
        (&response["id"], &response["error"]["code"]),
        (&Value::Null, &json!(-32600))
    );
    assert_eq!(read_from(&mut lines).await, None);
    writer.await.unwrap();

    assert_eq!(bystander.ok("contacts", json!({})).await, json!([]));
    daemon.stop().await;
}

#[tokio::test]
async fn every_subscribed_client_gets_the_events_and_a_leaving_one_harms_none() {
    let net = LoopbackNetwork::new();
    let daemon = Daemon::start(&net).await;
    let other = node(&net).await;
    let (mut first, mut second) = (daemon.client().await, daemon.client().await);
    let mut unsubscribed = daemon.client().await;
    first.ok("subscribe", json!({})).await;
    second.ok("subscribe", json!({})).await;
    // Subscribing twice does not double the events.
    second.ok("subscribe", json!({})).await;
    {
        let mut leaving = daemon.client().await;
        leaving.ok("subscribe", json!({})).await;
    }
    // Half a request, then gone.
    let mut rude = daemon.client().await;
    rude.write
        .write_all(br#"{"jsonrpc":"2.0","id":1,"#)
        .await
        .unwrap();
    drop(rude);

    let address = daemon.client().await.ok("info", json!({})).await["address"].clone();
    other
        .send_request(address.as_str().unwrap(), "daemon", "hello both")
        .await
        .unwrap();
    for client in [&mut first, &mut second] {
        let event = client.event_named("request_received").await;
        assert_eq!(event["request"]["greeting"], "hello both");
    }
    // Exactly once on the client that subscribed twice: the next response comes
    // with no second copy of the event before it.
    assert_eq!(second.ok("contacts", json!({})).await, json!([]));
    assert!(
        second
            .notifications
            .iter()
            .all(|n| n["params"]["event"] != "request_received"),
        "{:?}",
        second.notifications
    );
    // A client that did not subscribe gets answers only.
    assert_eq!(
        unsubscribed.ok("requests", json!({})).await[0]["greeting"],
        "hello both"
    );
    assert!(unsubscribed.notifications.is_empty());

    other.shutdown().await.unwrap();
    daemon.stop().await;
}

/// A client the daemon serves, once it has a place (a client that just left may
/// hold one until the daemon notices).
async fn admitted(socket: &Path) -> Client {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut client = Client::connect(socket).await;
            client
                .send_line(br#"{"jsonrpc":"2.0","id":0,"method":"info"}"#)
                .await;
            let line = client.read().await.unwrap();
            if line.get("result").is_some() {
                return client;
            }
            assert_eq!(line["error"]["data"]["kind"], "too_many_clients", "{line}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("never admitted")
}

#[tokio::test]
async fn clients_beyond_the_cap_are_told_and_closed() {
    let net = LoopbackNetwork::new();
    let daemon = Daemon::start(&net).await;
    let mut clients = Vec::new();
    for _ in 0..MAX_CLIENTS {
        clients.push(admitted(&daemon.socket).await);
    }
    let mut refused = daemon.client().await;
    let line = refused.read().await.unwrap();
    assert_eq!(line["error"]["data"]["kind"], "too_many_clients", "{line}");
    assert_eq!(refused.read().await, None);

    // When one leaves, a newcomer gets its place.
    drop(clients.pop());
    admitted(&daemon.socket).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_client_can_stop_the_daemon() {
    let net = LoopbackNetwork::new();
    let mut daemon = Daemon::start(&net).await;
    let mut watcher = daemon.client().await;
    watcher.ok("subscribe", json!({})).await;
    let mut client = daemon.client().await;

    assert_eq!(client.ok("shutdown", json!({})).await, Value::Null);
    // Answered only once the socket is gone.
    assert!(!daemon.socket.exists());
    assert_eq!(client.read().await, None);
    finished(&mut daemon.task).await;
    // Other clients are closed too.
    while let Some(message) = watcher.read().await {
        assert_eq!(message["method"], "event", "{message}");
    }
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let net = LoopbackNetwork::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rpc.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let mut task = tokio::spawn({
        let (node, socket) = (node(&net).await, socket.clone());
        async move {
            serve(node, &socket, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    wait_for_socket(&socket).await;
    Client::connect(&socket).await.ok("info", json!({})).await;
    stop.send(()).unwrap();
    finished(&mut task).await;
    assert!(!socket.exists());
}

#[tokio::test]
async fn a_one_shot_client_gets_its_answers_before_the_connection_closes() {
    let net = LoopbackNetwork::new();
    let daemon = Daemon::start(&net).await;
    let mut client = daemon.client().await;
    client
        .send_line(br#"{"jsonrpc":"2.0","id":1,"method":"info"}"#)
        .await;
    client
        .send_line(br#"{"jsonrpc":"2.0","id":2,"method":"contacts"}"#)
        .await;
    client.write.shutdown().await.unwrap();
    let first = client.read().await.unwrap();
    assert_eq!(
        (&first["id"], first["result"]["ephemeral"].as_bool()),
        (&json!(1), Some(true))
    );
    let second = client.read().await.unwrap();
    assert_eq!((&second["id"], &second["result"]), (&json!(2), &json!([])));
    assert_eq!(client.read().await, None);
    daemon.stop().await;
}

/// Alice and Bob, contacts of each other, both subscribed.
async fn befriended(alice: &mut Client, bob: &mut Client) {
    alice.ok("subscribe", json!({})).await;
    bob.ok("subscribe", json!({})).await;
    let bob_info = bob.ok("info", json!({})).await;
    alice
        .ok(
            "send_request",
            json!({"address": bob_info["address"], "name": "bob"}),
        )
        .await;
    let received = bob.event_named("request_received").await;
    bob.ok(
        "accept_request",
        json!({"id": received["request"]["id"], "name": "alice"}),
    )
    .await;
    alice.event_named("contact_added").await;
    bob.event_named("contact_added").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_from_one_daemon_to_the_other() {
    let net = LoopbackNetwork::new();
    let (alice_daemon, bob_daemon) = (Daemon::start(&net).await, Daemon::start(&net).await);
    let (mut alice, mut bob) = (alice_daemon.client().await, bob_daemon.client().await);
    befriended(&mut alice, &mut bob).await;

    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let source = alice_daemon.dir().join("notes for bob.bin");
    std::fs::write(&source, &data).unwrap();

    // Refusals first, by kind.
    assert_eq!(
        alice
            .refused(
                "send_file",
                json!({"contact": "bob", "path": alice_daemon.dir().join("missing")}),
            )
            .await,
        "bad_file"
    );
    assert_eq!(
        alice.refused("transfer", json!({"id": 999})).await,
        "unknown_transfer"
    );
    assert_eq!(
        alice
            .refused("send_file", json!({"contact": "carol", "path": source}))
            .await,
        "unknown_contact"
    );

    let sent = alice
        .ok("send_file", json!({"contact": "bob", "path": source}))
        .await;
    assert_eq!(
        (&sent["direction"], &sent["state"], &sent["size"]),
        (&json!("outgoing"), &json!("offered"), &json!(data.len()))
    );
    assert_eq!(sent["hash"].as_str().map(str::len), Some(64), "{sent}");
    assert_eq!(sent["name"], "notes for bob.bin");

    let offered = bob.event_named("file_offered").await;
    let offer = &offered["transfer"];
    assert_eq!(
        (&offer["contact"], &offer["direction"], &offer["hash"]),
        (&json!("alice"), &json!("incoming"), &sent["hash"])
    );
    let listed = bob.ok("transfers", json!({"contact": "alice"})).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["state"], "offered");

    let accepted = bob
        .ok(
            "accept_file",
            json!({"id": offer["id"], "save_as": "from alice.bin"}),
        )
        .await;
    assert_eq!(accepted["save_name"], "from alice.bin");
    let id = offer["id"].clone();
    let done = bob
        .event(|e| {
            e["event"] == "file_state"
                && e["transfer"]["id"] == id
                && e["transfer"]["state"] == "completed"
        })
        .await;
    let saved = PathBuf::from(done["transfer"]["path"].as_str().unwrap());
    assert_eq!(
        saved,
        bob_daemon.dir().join("downloads").join("from alice.bin")
    );
    assert_eq!(std::fs::read(&saved).unwrap(), data);
    alice
        .event(|e| {
            e["event"] == "file_state"
                && e["transfer"]["id"] == sent["id"]
                && e["transfer"]["state"] == "completed"
        })
        .await;

    let again = bob.ok("transfer", json!({"id": offer["id"]})).await;
    assert_eq!(
        (&again["state"], &again["bytes_done"]),
        (&json!("completed"), &json!(data.len()))
    );
    assert_eq!(
        bob.refused("accept_file", json!({"id": offer["id"]})).await,
        "wrong_state"
    );
    assert_eq!(
        alice.ok("transfers", Value::Null).await[0]["state"],
        "completed"
    );

    alice_daemon.stop().await;
    bob_daemon.stop().await;
}

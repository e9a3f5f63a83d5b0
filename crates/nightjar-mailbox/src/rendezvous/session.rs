//! One websocket connection's side of the protocol: a text frame in, the
//! messages to send back out. The session remembers what the connection has
//! done (bound, claimed, opened, …) and enforces the reference server's rules:
//! bind first, one allocate, claim, release, open and close per connection.
//! Every client message is acknowledged before it is acted on, and every
//! refusal is an `error` that echoes the message.

use nightjar_wormhole::protocol::{
    ClientEnvelope, ClientMessage, HexBytes, Mood, NameplateEntry, ServerMessage,
};
use serde::Deserialize as _;
use serde_json::Value;

use super::Rendezvous;
use super::state::{ConnId, Listener, StoredMessage};

/// Longest application id accepted.
const MAX_APPID_LEN: usize = 256;
/// Longest side, phase, mailbox id or message id accepted.
const MAX_NAME_LEN: usize = 64;
/// How much of a frame that is not JSON is echoed in the `error`.
const MAX_ECHO_CHARS: usize = 256;

/// The message types a client may send.
const CLIENT_TYPES: [&str; 9] = [
    "bind", "list", "allocate", "claim", "release", "open", "add", "close", "ping",
];

/// A refusal: the `error` text sent with the echoed message.
type Refusal = String;

#[derive(Debug)]
struct Binding {
    app: String,
    side: String,
}

/// The protocol state of one connection.
#[derive(Debug)]
pub(crate) struct Session {
    rendezvous: Rendezvous,
    conn: ConnId,
    listener: Listener,
    bound: Option<Binding>,
    did_allocate: bool,
    did_claim: bool,
    did_release: bool,
    did_open: bool,
    did_close: bool,
    /// The nameplate claimed on this connection.
    nameplate: Option<String>,
    /// The mailbox opened on this connection.
    mailbox: Option<String>,
    /// Whether the mailbox sends its new messages to `listener`.
    listening: bool,
}

impl Session {
    /// A session whose mailbox messages are delivered to `listener`.
    pub(crate) fn new(rendezvous: Rendezvous, listener: Listener) -> Self {
        let conn = rendezvous.next_conn_id();
        Self {
            rendezvous,
            conn,
            listener,
            bound: None,
            did_allocate: false,
            did_claim: false,
            did_release: false,
            did_open: false,
            did_close: false,
            nameplate: None,
            mailbox: None,
            listening: false,
        }
    }

    /// Handles one text frame; returns the answers, in order.
    pub(crate) fn handle(&mut self, text: &str) -> Vec<ServerMessage> {
        let value = match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            _ => return vec![refuse("message is not a JSON object", echo(text))],
        };
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            return vec![refuse("missing 'type'", value)];
        };
        let kind = kind.to_owned();
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        let mut out = vec![ServerMessage::Ack { id }];
        match self.dispatch(&kind, &value) {
            Ok(answers) => out.extend(answers),
            Err(why) => out.push(refuse(&why, value)),
        }
        out
    }

    fn dispatch(&mut self, kind: &str, value: &Value) -> Result<Vec<ServerMessage>, Refusal> {
        if kind == "ping" {
            return match parse(value)? {
                (ClientMessage::Ping { ping }, _) => Ok(vec![ServerMessage::Pong { pong: ping }]),
                _ => Err("ping requires 'ping'".into()),
            };
        }
        if kind == "bind" {
            return self.bind(value);
        }
        let Some(binding) = &self.bound else {
            return Err("must bind first".into());
        };
        if !CLIENT_TYPES.contains(&kind) {
            return Err("unknown type".into());
        }
        let app = binding.app.clone();
        let side = binding.side.clone();
        let (message, id) = parse(value)?;
        match message {
            ClientMessage::List => Ok(vec![self.list(&app)]),
            ClientMessage::Allocate => self.allocate(&app, &side).map(|m| vec![m]),
            ClientMessage::Claim { nameplate } => {
                self.claim(&app, &side, nameplate).map(|m| vec![m])
            }
            ClientMessage::Release { nameplate } => {
                self.release(&app, &side, nameplate).map(|m| vec![m])
            }
            ClientMessage::Open { mailbox } => self.open(&app, &side, mailbox),
            ClientMessage::Add { phase, body } => self.add(&app, &side, phase, body, id),
            ClientMessage::Close { mailbox, mood } => {
                self.close(&app, &side, mailbox, mood).map(|m| vec![m])
            }
            // Handled above, whatever the binding.
            ClientMessage::Bind { .. } | ClientMessage::Ping { .. } => Ok(Vec::new()),
            _ => Err("unknown type".into()),
        }
    }

    fn bind(&mut self, value: &Value) -> Result<Vec<ServerMessage>, Refusal> {
        if self.bound.is_some() {
            return Err("already bound".into());
        }
        let ClientMessage::Bind { appid, side, .. } = parse(value)?.0 else {
            return Err("bind requires 'appid' and 'side'".into());
        };
        check_len("appid", &appid, MAX_APPID_LEN)?;
        check_len("side", &side, MAX_NAME_LEN)?;
        if side.is_empty() {
            return Err("bind requires a non-empty 'side'".into());
        }
        self.bound = Some(Binding { app: appid, side });
        Ok(Vec::new())
    }

    fn list(&self, app: &str) -> ServerMessage {
        let nameplates = self.rendezvous.with_state(|s, _| s.list(app));
        ServerMessage::Nameplates {
            nameplates: nameplates
                .into_iter()
                .map(|id| NameplateEntry { id })
                .collect(),
        }
    }

    fn allocate(&mut self, app: &str, side: &str) -> Result<ServerMessage, Refusal> {
        if self.did_allocate {
            return Err("you already allocated one, don't be greedy".into());
        }
        let nameplate = self
            .rendezvous
            .with_state(|s, now| s.allocate(app, side, now))
            .map_err(|e| e.to_string())?;
        self.did_allocate = true;
        Ok(ServerMessage::Allocated { nameplate })
    }

    fn claim(
        &mut self,
        app: &str,
        side: &str,
        nameplate: String,
    ) -> Result<ServerMessage, Refusal> {
        if self.did_claim {
            return Err("only one claim per connection".into());
        }
        self.did_claim = true;
        let mailbox = self
            .rendezvous
            .with_state(|s, now| s.claim(app, &nameplate, side, now))
            .map_err(|e| e.to_string())?;
        self.nameplate = Some(nameplate);
        Ok(ServerMessage::Claimed { mailbox })
    }

    fn release(
        &mut self,
        app: &str,
        side: &str,
        nameplate: Option<String>,
    ) -> Result<ServerMessage, Refusal> {
        if self.did_release {
            return Err("only one release per connection".into());
        }
        let nameplate = match (nameplate, &self.nameplate) {
            (Some(asked), Some(claimed)) if asked != *claimed => {
                return Err("release and claim must use same nameplate".into());
            }
            (Some(asked), _) => asked,
            (None, Some(claimed)) => claimed.clone(),
            (None, None) => return Err("release without nameplate must follow claim".into()),
        };
        self.did_release = true;
        self.rendezvous
            .with_state(|s, _| s.release(app, &nameplate, side));
        Ok(ServerMessage::Released)
    }

    fn open(
        &mut self,
        app: &str,
        side: &str,
        mailbox: String,
    ) -> Result<Vec<ServerMessage>, Refusal> {
        if self.did_open {
            return Err("only one open per connection".into());
        }
        check_len("mailbox", &mailbox, MAX_NAME_LEN)?;
        let (conn, listener) = (self.conn, self.listener.clone());
        let old = self
            .rendezvous
            .with_state(|s, now| s.open(app, &mailbox, side, conn, listener, now))
            .map_err(|e| e.to_string())?;
        self.did_open = true;
        self.listening = true;
        self.mailbox = Some(mailbox);
        Ok(old.iter().map(|m| delivery(m)).collect())
    }

    fn add(
        &mut self,
        app: &str,
        side: &str,
        phase: String,
        body: HexBytes,
        id: Option<String>,
    ) -> Result<Vec<ServerMessage>, Refusal> {
        let Some(mailbox) = self.mailbox.as_ref().filter(|_| self.listening) else {
            return Err("must open mailbox before adding".into());
        };
        check_len("phase", &phase, MAX_NAME_LEN)?;
        if let Some(id) = &id {
            check_len("id", id, MAX_NAME_LEN)?;
        }
        self.rendezvous
            .with_state(|s, now| {
                let message = StoredMessage {
                    side: side.to_owned(),
                    phase,
                    body: body.0,
                    id,
                    server_rx: now as f64,
                };
                s.add(app, mailbox, message, now)
            })
            .map_err(|e| e.to_string())?;
        // The message comes back to this connection through the listener.
        Ok(Vec::new())
    }

    fn close(
        &mut self,
        app: &str,
        side: &str,
        mailbox: Option<String>,
        mood: Option<Mood>,
    ) -> Result<ServerMessage, Refusal> {
        if self.did_close {
            return Err("only one close per connection".into());
        }
        let mailbox = match (mailbox, &self.mailbox) {
            (Some(asked), Some(opened)) if asked != *opened => {
                return Err("open and close must use same mailbox".into());
            }
            (Some(asked), _) => asked,
            (None, Some(opened)) => opened.clone(),
            (None, None) => return Err("close without mailbox must follow open".into()),
        };
        self.did_close = true;
        self.listening = false;
        let conn = self.conn;
        self.rendezvous
            .with_state(|s, _| s.close(app, &mailbox, side, conn));
        tracing::debug!(
            mood = mood.as_ref().map_or("none", Mood::as_str),
            "rendezvous: a side closed its mailbox"
        );
        Ok(ServerMessage::Closed)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let (true, Some(binding), Some(mailbox)) = (self.listening, &self.bound, &self.mailbox) {
            let conn = self.conn;
            self.rendezvous
                .with_state(|s, _| s.unlisten(&binding.app, mailbox, conn));
        }
    }
}

/// A stored message as sent to a listener.
pub(crate) fn delivery(message: &StoredMessage) -> ServerMessage {
    ServerMessage::Message {
        side: message.side.clone(),
        phase: message.phase.clone(),
        body: HexBytes(message.body.clone()),
        id: message.id.clone(),
        server_rx: Some(message.server_rx),
    }
}

/// Parses a client message of a known type; the refusal says what is wrong.
fn parse(value: &Value) -> Result<(ClientMessage, Option<String>), Refusal> {
    match ClientEnvelope::deserialize(value) {
        Ok(envelope) => Ok((envelope.message, envelope.id)),
        Err(e) => {
            let mut why = format!("malformed message: {e}");
            truncate(&mut why, MAX_ECHO_CHARS);
            Err(why)
        }
    }
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), Refusal> {
    if value.len() > max {
        return Err(format!("'{field}' is longer than {max} bytes"));
    }
    Ok(())
}

fn refuse(why: &str, orig: Value) -> ServerMessage {
    ServerMessage::Error {
        error: why.to_owned(),
        orig,
    }
}

/// The start of a frame that is not JSON, to echo as a string.
fn echo(text: &str) -> Value {
    let mut s = text.to_owned();
    truncate(&mut s, MAX_ECHO_CHARS);
    Value::String(s)
}

fn truncate(s: &mut String, max_chars: usize) {
    if let Some((at, _)) = s.char_indices().nth(max_chars) {
        s.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::rendezvous::RendezvousConfig;
    use serde_json::json;
    use std::sync::Arc;
    use tokio::sync::mpsc;

    fn session(rv: &Rendezvous) -> (Session, mpsc::Receiver<Arc<StoredMessage>>) {
        let (tx, rx) = mpsc::channel(8);
        (Session::new(rv.clone(), tx), rx)
    }

    fn send(s: &mut Session, v: Value) -> Vec<Value> {
        s.handle(&v.to_string())
            .into_iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect()
    }

    fn bind(s: &mut Session, side: &str) {
        let out = send(s, json!({"type": "bind", "appid": "app", "side": side}));
        assert_eq!(out, vec![json!({"type": "ack", "id": null})]);
    }

    #[test]
    fn commands_before_bind_are_refused_with_an_echo() {
        let rv = Rendezvous::default();
        let (mut s, _rx) = session(&rv);
        let claim = json!({"type": "claim", "nameplate": "1", "id": "0001"});
        let out = send(&mut s, claim.clone());
        assert_eq!(out[0], json!({"type": "ack", "id": "0001"}));
        assert_eq!(
            out[1],
            json!({"type": "error", "error": "must bind first", "orig": claim})
        );
        // Ping needs no bind.
        let out = send(&mut s, json!({"type": "ping", "ping": 5}));
        assert_eq!(out[1], json!({"type": "pong", "pong": 5}));
    }

    #[test]
    fn bad_input_is_refused() {
        let rv = Rendezvous::default();
        let (mut s, _rx) = session(&rv);
        let out = send(&mut s, json!(["not", "an", "object"]));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["error"], "message is not a JSON object");
        let out = s.handle("{nope");
        assert!(matches!(&out[..], [ServerMessage::Error { orig, .. }] if orig == "{nope"));
        let out = send(&mut s, json!({"no": "type"}));
        assert_eq!(out[0]["error"], "missing 'type'");
        bind(&mut s, "a");
        let out = send(&mut s, json!({"type": "bind", "appid": "app", "side": "a"}));
        assert_eq!(out[1]["error"], "already bound");
        let out = send(&mut s, json!({"type": "frobnicate"}));
        assert_eq!(out[1]["error"], "unknown type");
        let out = send(&mut s, json!({"type": "claim"}));
        assert!(out[1]["error"].as_str().unwrap().starts_with("malformed"));
        let out = send(&mut s, json!({"type": "claim", "nameplate": "abc"}));
        assert_eq!(out[1]["error"], "invalid nameplate");
        let out = send(&mut s, json!({"type": "add", "phase": "0", "body": "00"}));
        assert_eq!(out[1]["error"], "must open mailbox before adding");
        let out = send(&mut s, json!({"type": "release"}));
        assert_eq!(
            out[1]["error"],
            "release without nameplate must follow claim"
        );
    }

    #[test]
    fn two_sessions_meet_and_the_mailbox_goes_when_both_close() {
        let rv = Rendezvous::default();
        let (mut a, mut ra) = session(&rv);
        let (mut b, mut rb) = session(&rv);
        bind(&mut a, "aaaa");
        bind(&mut b, "bbbb");
        let out = send(&mut a, json!({"type": "allocate"}));
        assert_eq!(out[1], json!({"type": "allocated", "nameplate": "1"}));
        let out = send(&mut a, json!({"type": "list"}));
        assert_eq!(
            out[1],
            json!({"type": "nameplates", "nameplates": [{"id": "1"}]})
        );
        let out = send(&mut a, json!({"type": "claim", "nameplate": "1"}));
        let mailbox = out[1]["mailbox"].clone();
        let out = send(&mut b, json!({"type": "claim", "nameplate": "1"}));
        assert_eq!(out[1]["mailbox"], mailbox);
        send(&mut a, json!({"type": "open", "mailbox": mailbox}));
        let out = send(
            &mut a,
            json!({"type": "add", "phase": "pake", "body": "0a0b", "id": "77"}),
        );
        assert_eq!(out, vec![json!({"type": "ack", "id": "77"})]);
        assert_eq!(ra.try_recv().unwrap().body, vec![10, 11]);
        // A late opener first gets what is already there.
        let out = send(&mut b, json!({"type": "open", "mailbox": mailbox}));
        assert_eq!(out[1]["type"], "message");
        assert_eq!(out[1]["side"], "aaaa");
        assert_eq!(out[1]["body"], "0a0b");
        assert_eq!(out[1]["id"], "77");
        send(
            &mut b,
            json!({"type": "add", "phase": "pake", "body": "ff"}),
        );
        assert_eq!(ra.try_recv().unwrap().side, "bbbb");
        assert_eq!(rb.try_recv().unwrap().side, "bbbb");
        send(&mut a, json!({"type": "release"}));
        send(&mut b, json!({"type": "release", "nameplate": "1"}));
        let out = send(&mut a, json!({"type": "close", "mood": "happy"}));
        assert_eq!(out[1], json!({"type": "closed"}));
        assert_eq!(rv.stats().mailboxes, 1);
        let out = send(
            &mut b,
            json!({"type": "close", "mailbox": mailbox, "mood": "happy"}),
        );
        assert_eq!(out[1], json!({"type": "closed"}));
        assert_eq!(rv.stats(), Default::default());
        let out = send(&mut b, json!({"type": "close"}));
        assert_eq!(out[1]["error"], "only one close per connection");
    }

    #[test]
    fn idle_nameplates_expire_on_the_injected_clock() {
        let config = RendezvousConfig {
            idle_secs: 100,
            sweep_interval_secs: 10,
            ..RendezvousConfig::default()
        };
        let clock = ManualClock::new(5000);
        let rv = Rendezvous::with_clock(config, Arc::new(clock.clone())).unwrap();
        let (mut a, _ra) = session(&rv);
        bind(&mut a, "a");
        let out = send(&mut a, json!({"type": "allocate"}));
        assert_eq!(out[1]["nameplate"], "1");
        clock.advance(99);
        let out = send(&mut a, json!({"type": "list"}));
        assert_eq!(out[1]["nameplates"], json!([{"id": "1"}]));
        // That list swept; the next sweep is due one interval later, and the
        // operation after it sweeps first.
        clock.advance(9);
        let out = send(&mut a, json!({"type": "list"}));
        assert_eq!(out[1]["nameplates"], json!([{"id": "1"}]));
        clock.advance(1);
        let out = send(&mut a, json!({"type": "list"}));
        assert_eq!(out[1]["nameplates"], json!([]));
        assert_eq!(rv.stats(), Default::default());
    }

    #[test]
    fn a_dropped_session_stops_listening() {
        let config = RendezvousConfig {
            idle_secs: 0,
            ..RendezvousConfig::default()
        };
        let rv = Rendezvous::new(config).unwrap();
        let (mut a, _ra) = session(&rv);
        bind(&mut a, "a");
        send(&mut a, json!({"type": "open", "mailbox": "m"}));
        rv.maintain();
        assert_eq!(rv.stats().mailboxes, 1);
        drop(a);
        rv.maintain();
        assert_eq!(rv.stats().mailboxes, 0);
    }
}

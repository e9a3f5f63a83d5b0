//! The mailbox server protocol: JSON objects over a websocket, one per text frame,
//! each with a `"type"`. Both directions are modelled completely, and every type
//! both serialises and deserialises, so a server can be built on the same types.
//!
//! Unknown fields are ignored when reading, as the reference implementations do;
//! fields that are only informational (`server_tx`, `id`) are optional.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A message from a client to the server, with its optional request `id` (the
/// server echoes it in the `ack`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientEnvelope {
    /// Free-form request identifier; the reference client sends four hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The request.
    #[serde(flatten)]
    pub message: ClientMessage,
}

/// Requests a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ClientMessage {
    /// First message: which application and which side of it this client is.
    Bind {
        /// The application id; clients of different applications never meet.
        appid: String,
        /// Random identifier of this client within the mailbox.
        side: String,
        /// Implementation name and version, for the server's statistics.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_version: Option<(String, String)>,
    },
    /// Asks for the nameplates in use (for code completion).
    List,
    /// Asks for a fresh nameplate.
    Allocate,
    /// Claims a nameplate, receiving the mailbox it points to.
    Claim {
        /// The nameplate, e.g. `"7"`.
        nameplate: String,
    },
    /// Gives a claimed nameplate back, so it can be reused.
    Release {
        /// The nameplate; may be left out after a `claim` on this connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nameplate: Option<String>,
    },
    /// Opens a mailbox: the server then sends every message in it, old and new.
    Open {
        /// The mailbox id from `claimed`.
        mailbox: String,
    },
    /// Adds a message to the open mailbox.
    Add {
        /// The phase: `"pake"`, `"version"`, `"0"`, `"1"`, …
        phase: String,
        /// The message body, hex-encoded on the wire.
        body: HexBytes,
    },
    /// Closes the mailbox, saying how things went.
    Close {
        /// The mailbox; may be left out after an `open` on this connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mailbox: Option<String>,
        /// How the exchange ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mood: Option<Mood>,
    },
    /// Asks for a `pong` with the same number.
    Ping {
        /// Echoed back in the `pong`.
        ping: u64,
    },
}

/// A message from the server, with the server's send time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerEnvelope {
    /// Seconds since the Unix epoch when the server sent this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tx: Option<f64>,
    /// The message.
    #[serde(flatten)]
    pub message: ServerMessage,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServerMessage {
    /// Sent as soon as the websocket opens.
    Welcome {
        /// What the server has to say to clients.
        welcome: Welcome,
    },
    /// Receipt for every client message (sent before acting on it).
    Ack {
        /// The `id` of the acknowledged message, if it had one.
        #[serde(default)]
        id: Option<String>,
    },
    /// Answer to `list`.
    Nameplates {
        /// The nameplates in use.
        nameplates: Vec<NameplateEntry>,
    },
    /// Answer to `allocate`.
    Allocated {
        /// The fresh nameplate.
        nameplate: String,
    },
    /// Answer to `claim`.
    Claimed {
        /// The mailbox the nameplate points to.
        mailbox: String,
    },
    /// Answer to `release`.
    Released,
    /// A message in the open mailbox, ours included.
    Message {
        /// The side that added it.
        side: String,
        /// Its phase.
        phase: String,
        /// Its body.
        body: HexBytes,
        /// The `id` of the `add` that carried it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// When the server received it (seconds since the epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_rx: Option<f64>,
    },
    /// Answer to `close`.
    Closed,
    /// The server refused a message.
    Error {
        /// Why, in English.
        error: String,
        /// The refused message, as received.
        #[serde(default)]
        orig: serde_json::Value,
    },
    /// Answer to `ping`.
    Pong {
        /// The number from the `ping`.
        pong: u64,
    },
}

impl ServerMessage {
    /// The `type` of every message the server may send, for telling a message of
    /// an unknown type (ignored, for forward compatibility) from a malformed one.
    pub const TYPES: [&'static str; 10] = [
        "welcome",
        "ack",
        "nameplates",
        "allocated",
        "claimed",
        "released",
        "message",
        "closed",
        "error",
        "pong",
    ];
}

/// The contents of `welcome`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// A message of the day, to show to the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motd: Option<String>,
    /// If present, the server refuses service, and this says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The client version the server recommends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_cli_version: Option<String>,
    /// The address the server sees the client connect from.
    #[serde(
        default,
        rename = "your-address",
        skip_serializing_if = "Option::is_none"
    )]
    pub your_address: Option<serde_json::Value>,
    /// Anything else (for instance permission requirements of newer servers).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One entry of `nameplates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameplateEntry {
    /// The nameplate.
    pub id: String,
}

/// How an exchange ended, reported to the server when closing the mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mood {
    /// Everything worked.
    Happy,
    /// The peer never showed up.
    Lonely,
    /// Something failed locally.
    Errory,
    /// The peer's messages did not decrypt: a wrong code or an attack.
    Scary,
    /// The server refused service in its welcome.
    Unwelcome,
    /// A mood this implementation does not know, kept as sent.
    Other(String),
}

impl Mood {
    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Happy => "happy",
            Self::Lonely => "lonely",
            Self::Errory => "errory",
            Self::Scary => "scary",
            Self::Unwelcome => "unwelcome",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for Mood {
    fn from(s: &str) -> Self {
        match s {
            "happy" => Self::Happy,
            "lonely" => Self::Lonely,
            "errory" => Self::Errory,
            "scary" => Self::Scary,
            "unwelcome" => Self::Unwelcome,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Mood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mood {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Mood {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Self::from(s.as_str()))
    }
}

/// Bytes carried as a hex string (message bodies). Reads either case, writes
/// lower case, as the reference implementation does.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies are ciphertext or a PAKE message; their length is what matters
        // when reading a log.
        write!(f, "HexBytes({} bytes)", self.0.len())
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .map(HexBytes)
            .map_err(|_| serde::de::Error::custom("body is not a hex string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(v: serde_json::Value) -> ClientEnvelope {
        serde_json::from_value(v).unwrap()
    }

    fn server(v: serde_json::Value) -> ServerEnvelope {
        serde_json::from_value(v).unwrap()
    }

    /// Messages as the reference client sends them (`_rendezvous.py`'s `_tx`).
    #[test]
    fn reads_reference_client_messages() {
        let bind = client(json!({"type": "bind", "appid": "a", "side": "0123456789",
            "client_version": ["python", "0.24.0"], "id": "9f3c"}));
        assert_eq!(bind.id.as_deref(), Some("9f3c"));
        assert_eq!(
            bind.message,
            ClientMessage::Bind {
                appid: "a".into(),
                side: "0123456789".into(),
                client_version: Some(("python".into(), "0.24.0".into())),
            }
        );
        let add = client(json!({"type": "add", "phase": "pake", "body": "4A0b", "id": "0001"}));
        assert_eq!(
            add.message,
            ClientMessage::Add {
                phase: "pake".into(),
                body: HexBytes(vec![0x4a, 0x0b])
            }
        );
        let close = client(json!({"type": "close", "mailbox": "m", "mood": "happy"}));
        assert_eq!(
            close.message,
            ClientMessage::Close {
                mailbox: Some("m".into()),
                mood: Some(Mood::Happy)
            }
        );
        assert_eq!(client(json!({"type": "list"})).message, ClientMessage::List);
    }

    /// Messages as the reference server sends them (`server_websocket.py`).
    #[test]
    fn reads_reference_server_messages() {
        let welcome = server(json!({"type": "welcome", "server_tx": 1.5,
            "welcome": {"motd": "hi", "your-address": {"ipv4": "127.0.0.1", "port": 5},
                        "permission-required": {"none": {}}}}));
        assert_eq!(welcome.server_tx, Some(1.5));
        let ServerMessage::Welcome { welcome } = welcome.message else {
            panic!("not a welcome")
        };
        assert_eq!(welcome.motd.as_deref(), Some("hi"));
        assert!(welcome.your_address.is_some());
        assert!(welcome.other.contains_key("permission-required"));

        let ack = server(json!({"type": "ack", "id": null, "server_tx": 2.0}));
        assert_eq!(ack.message, ServerMessage::Ack { id: None });
        let message = server(json!({"type": "message", "side": "s", "phase": "0",
            "body": "00ff", "server_rx": 3.25, "id": null, "server_tx": 3.5}));
        assert_eq!(
            message.message,
            ServerMessage::Message {
                side: "s".into(),
                phase: "0".into(),
                body: HexBytes(vec![0, 255]),
                id: None,
                server_rx: Some(3.25)
            }
        );
        let error = server(json!({"type": "error", "error": "crowded",
            "orig": {"type": "claim", "nameplate": "1"}}));
        assert!(
            matches!(error.message, ServerMessage::Error { ref error, .. } if error == "crowded")
        );
        assert_eq!(
            server(json!({"type": "released"})).message,
            ServerMessage::Released
        );
    }

    #[test]
    fn every_message_round_trips() {
        let clients = vec![
            ClientMessage::Bind {
                appid: "a".into(),
                side: "s".into(),
                client_version: None,
            },
            ClientMessage::List,
            ClientMessage::Allocate,
            ClientMessage::Claim {
                nameplate: "7".into(),
            },
            ClientMessage::Release { nameplate: None },
            ClientMessage::Open {
                mailbox: "m".into(),
            },
            ClientMessage::Add {
                phase: "version".into(),
                body: HexBytes(vec![1, 2, 3]),
            },
            ClientMessage::Close {
                mailbox: None,
                mood: Some(Mood::Other("grumpy".into())),
            },
            ClientMessage::Ping { ping: 7 },
        ];
        for message in clients {
            let envelope = ClientEnvelope {
                id: Some("0001".into()),
                message,
            };
            let text = serde_json::to_string(&envelope).unwrap();
            let back: ClientEnvelope = serde_json::from_str(&text).unwrap();
            assert_eq!(back, envelope, "{text}");
        }
        let servers = vec![
            ServerMessage::Welcome {
                welcome: Welcome {
                    error: Some("go away".into()),
                    ..Welcome::default()
                },
            },
            ServerMessage::Ack {
                id: Some("0001".into()),
            },
            ServerMessage::Nameplates {
                nameplates: vec![NameplateEntry { id: "1".into() }],
            },
            ServerMessage::Allocated {
                nameplate: "1".into(),
            },
            ServerMessage::Claimed {
                mailbox: "m".into(),
            },
            ServerMessage::Released,
            ServerMessage::Message {
                side: "s".into(),
                phase: "pake".into(),
                body: HexBytes(vec![9]),
                id: None,
                server_rx: Some(1.0),
            },
            ServerMessage::Closed,
            ServerMessage::Error {
                error: "e".into(),
                orig: json!({"type": "x"}),
            },
            ServerMessage::Pong { pong: 7 },
        ];
        assert_eq!(servers.len(), ServerMessage::TYPES.len());
        for message in servers {
            let envelope = ServerEnvelope {
                server_tx: Some(10.0),
                message,
            };
            let text = serde_json::to_string(&envelope).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(ServerMessage::TYPES.contains(&value["type"].as_str().unwrap()));
            let back: ServerEnvelope = serde_json::from_str(&text).unwrap();
            assert_eq!(back, envelope, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_bodies() {
        let bad = serde_json::from_value::<ClientEnvelope>(
            json!({"type": "add", "phase": "0", "body": "xyz"}),
        );
        assert!(bad.is_err());
        let missing = serde_json::from_value::<ServerEnvelope>(json!({"type": "claimed"}));
        assert!(missing.is_err());
    }
}

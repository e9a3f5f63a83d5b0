//! One websocket connection to the mailbox server: sending requests, reading
//! answers, and sorting the mailbox's messages by phase so the client can wait for
//! the one it needs while others arrive early.

use std::collections::{HashMap, HashSet};
use std::fmt;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::debug;

use crate::error::WormholeError;
use crate::protocol::{ClientMessage, HexBytes, Mood, ServerEnvelope, ServerMessage, Welcome};

/// The largest websocket message accepted from the server: room for a maximal
/// sealed message, hex-encoded, plus its JSON envelope.
const MAX_FRAME: usize = 2 * (crate::MAX_MESSAGE_LEN + crate::key::SEAL_OVERHEAD) + 4096;
/// How many of the peer's messages may wait for us to ask for them.
const MAX_EARLY_MESSAGES: usize = 32;

/// A connection bound to an application, possibly with a claimed nameplate and
/// an open mailbox.
pub(crate) struct Connection<S> {
    ws: WebSocketStream<S>,
    /// Our random side identifier.
    pub(crate) side: String,
    /// The peer's side, once it has written to the mailbox.
    pub(crate) peer: Option<String>,
    /// The nameplate we hold and have not released yet.
    nameplate: Option<String>,
    /// The open mailbox, once `open` was sent.
    mailbox: Option<String>,
    /// Peer messages received but not yet asked for, by phase.
    early: HashMap<String, Vec<u8>>,
    /// Phases of the peer already received (the server resends on reconnection,
    /// and a phase is never accepted twice).
    seen: HashSet<String>,
    closed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Opens the websocket over `stream`, reads the server's welcome and binds.
    pub(crate) async fn open(stream: S, url: &str, app_id: &str) -> Result<Self, WormholeError> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
        let mut side = [0u8; 5];
        getrandom::fill(&mut side).map_err(|_| WormholeError::Random)?;
        let mut conn = Self {
            ws,
            side: data_encoding::HEXLOWER.encode(&side),
            peer: None,
            nameplate: None,
            mailbox: None,
            early: HashMap::new(),
            seen: HashSet::new(),
            closed: false,
        };
        let welcome = conn
            .wait_for(|m| match m {
                ServerMessage::Welcome { welcome } => Some(welcome),
                _ => None,
            })
            .await?;
        check_welcome(&welcome)?;
        conn.send(ClientMessage::Bind {
            appid: app_id.to_owned(),
            side: conn.side.clone(),
            client_version: Some(("nightjar".into(), env!("CARGO_PKG_VERSION").into())),
        })
        .await?;
        Ok(conn)
    }

    /// Asks for a fresh nameplate.
    pub(crate) async fn allocate(&mut self) -> Result<String, WormholeError> {
        self.send(ClientMessage::Allocate).await?;
        self.wait_for(|m| match m {
            ServerMessage::Allocated { nameplate } => Some(nameplate),
            _ => None,
        })
        .await
    }

    /// Claims `nameplate` and opens the mailbox it points to.
    pub(crate) async fn claim_and_open(&mut self, nameplate: &str) -> Result<(), WormholeError> {
        self.send(ClientMessage::Claim {
            nameplate: nameplate.to_owned(),
        })
        .await?;
        let mailbox = self
            .wait_for(|m| match m {
                ServerMessage::Claimed { mailbox } => Some(mailbox),
                _ => None,
            })
            .await?;
        self.nameplate = Some(nameplate.to_owned());
        self.send(ClientMessage::Open {
            mailbox: mailbox.clone(),
        })
        .await?;
        self.mailbox = Some(mailbox);
        Ok(())
    }

    /// Adds a message to the open mailbox.
    pub(crate) async fn add(&mut self, phase: &str, body: Vec<u8>) -> Result<(), WormholeError> {
        if self.closed {
            return Err(WormholeError::Closed);
        }
        self.send(ClientMessage::Add {
            phase: phase.to_owned(),
            body: HexBytes(body),
        })
        .await
    }

    /// Waits for the peer's message of `phase`, keeping others for later.
    pub(crate) async fn peer_message(&mut self, phase: &str) -> Result<Vec<u8>, WormholeError> {
        loop {
            if self.closed {
                return Err(WormholeError::Closed);
            }
            if let Some(body) = self.early.remove(phase) {
                return Ok(body);
            }
            if let Some(other) = self.pump().await? {
                debug!(
                    kind = message_kind(&other),
                    "ignoring an unexpected server message"
                );
            }
        }
    }

    /// Releases the nameplate if still held, closes the mailbox with `mood` and
    /// the websocket. Doing it twice does nothing.
    pub(crate) async fn close(&mut self, mood: Mood) -> Result<(), WormholeError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.release().await?;
        if let Some(mailbox) = self.mailbox.take() {
            debug!(%mood, "closing the mailbox");
            self.send(ClientMessage::Close {
                mailbox: Some(mailbox),
                mood: Some(mood),
            })
            .await?;
            self.wait_for(|m| matches!(m, ServerMessage::Closed).then_some(()))
                .await?;
        }
        // The mailbox is closed whatever happens to the websocket now.
        let _ = self.ws.close(None).await;
        while let Some(Ok(_)) = self.ws.next().await {}
        Ok(())
    }

    async fn release(&mut self) -> Result<(), WormholeError> {
        if let Some(nameplate) = self.nameplate.take() {
            self.send(ClientMessage::Release {
                nameplate: Some(nameplate),
            })
            .await?;
        }
        Ok(())
    }

    async fn send(&mut self, message: ClientMessage) -> Result<(), WormholeError> {
        let text = serde_json::to_string(&message)
            .map_err(|e| WormholeError::Protocol(format!("cannot encode a request: {e}")))?;
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Reads until `pick` accepts a server message; the mailbox's messages are
    /// sorted away meanwhile.
    async fn wait_for<T>(
        &mut self,
        mut pick: impl FnMut(ServerMessage) -> Option<T>,
    ) -> Result<T, WormholeError> {
        loop {
            if let Some(message) = self.pump().await? {
                let kind = message_kind(&message);
                match pick(message) {
                    Some(t) => return Ok(t),
                    None => debug!(kind, "ignoring an unexpected server message"),
                }
            }
        }
    }

    /// Reads one server message. Mailbox messages, receipts and other chatter are
    /// dealt with here (`None`); anything else is returned.
    async fn pump(&mut self) -> Result<Option<ServerMessage>, WormholeError> {
        let text = loop {
            match self.ws.next().await {
                None => return Err(WormholeError::ConnectionClosed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(text))) => break text,
                Some(Ok(Message::Close(_))) => return Err(WormholeError::ConnectionClosed),
                // Pings are answered by the websocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(_))) => {
                    return Err(WormholeError::Protocol("a binary websocket message".into()));
                }
            }
        };
        let Some(envelope) = parse(text.as_str())? else {
            return Ok(None);
        };
        match envelope.message {
            ServerMessage::Ack { .. } | ServerMessage::Pong { .. } | ServerMessage::Released => {
                Ok(None)
            }
            ServerMessage::Error { error, .. } if error == "crowded" => Err(WormholeError::Crowded),
            ServerMessage::Error { error, .. } => Err(WormholeError::Server(error)),
            ServerMessage::Message {
                side, phase, body, ..
            } => {
                self.sort(side, phase, body.0).await?;
                Ok(None)
            }
            other => Ok(Some(other)),
        }
    }

    /// Files a mailbox message: ours come back as echoes and are dropped; the
    /// peer's first message means it has the code, so the nameplate can go.
    async fn sort(
        &mut self,
        side: String,
        phase: String,
        body: Vec<u8>,
    ) -> Result<(), WormholeError> {
        if side == self.side {
            return Ok(());
        }
        match &self.peer {
            None => {
                debug!("the other side has arrived");
                self.peer = Some(side);
                self.release().await?;
            }
            Some(peer) if *peer != side => {
                // The server lets only two sides into a mailbox; a third is not
                // ours to listen to.
                debug!("ignoring a message from a third side");
                return Ok(());
            }
            Some(_) => {}
        }
        if !self.seen.insert(phase.clone()) {
            return Ok(());
        }
        if self.early.len() >= MAX_EARLY_MESSAGES {
            return Err(WormholeError::Protocol(
                "the other side sent too many messages ahead".into(),
            ));
        }
        debug!(%phase, len = body.len(), "message from the other side");
        self.early.insert(phase, body);
        Ok(())
    }
}

/// Parses a server message; `None` for a type this implementation does not know
/// (ignored, so newer servers can add messages).
fn parse(text: &str) -> Result<Option<ServerEnvelope>, WormholeError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| WormholeError::Protocol("a message that is not JSON".into()))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    if !ServerMessage::TYPES.contains(&kind) {
        debug!(kind, "ignoring a server message of unknown type");
        return Ok(None);
    }
    let kind = kind.to_owned();
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| WormholeError::Protocol(format!("a malformed `{kind}` message: {e}")))
}

fn check_welcome(welcome: &Welcome) -> Result<(), WormholeError> {
    if let Some(error) = &welcome.error {
        return Err(WormholeError::Unwelcome(error.clone()));
    }
    if let Some(motd) = &welcome.motd {
        debug!(motd, "the rendezvous server's message of the day");
    }
    Ok(())
}

fn message_kind(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Welcome { .. } => "welcome",
        ServerMessage::Ack { .. } => "ack",
        ServerMessage::Nameplates { .. } => "nameplates",
        ServerMessage::Allocated { .. } => "allocated",
        ServerMessage::Claimed { .. } => "claimed",
        ServerMessage::Released => "released",
        ServerMessage::Message { .. } => "message",
        ServerMessage::Closed => "closed",
        ServerMessage::Error { .. } => "error",
        ServerMessage::Pong { .. } => "pong",
    }
}

impl<S> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("peer", &self.peer)
            .field("holds_nameplate", &self.nameplate.is_some())
            .field("mailbox_open", &self.mailbox.is_some())
            .field("early_messages", &self.early.len())
            .field("closed", &self.closed)
            .finish()
    }
}

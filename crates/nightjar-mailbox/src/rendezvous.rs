//! The magic-wormhole mailbox ("rendezvous") server, served at `/v1` next to the
//! offline mailbox, so that invite codes can meet on a nightjar mailbox.
//!
//! Clients of the same application id meet on a *nameplate* (the number at the
//! front of a code), which points to a *mailbox*; both sides add messages to
//! the mailbox and the server sends each one to every connection that opened
//! it. Everything is in memory and bounded: nameplates, mailboxes, messages and
//! bytes per mailbox, bytes in total, frame size and connections. Mailboxes
//! nobody listens to expire after an idle time, taking their nameplates along.
//!
//! - `state`: the applications, nameplates and mailboxes, with no I/O;
//! - `session`: one connection's protocol, text frames in, messages out;
//! - [`router`]: the axum websocket glue.

mod session;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxumState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nightjar_wormhole::protocol::{ServerEnvelope, ServerMessage, Welcome};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::MailboxError;
use crate::clock::{Clock, SystemClock};

use session::Session;
pub use state::RendezvousStats;
use state::State;

/// How often an idle connection is sent a websocket ping.
const PING_INTERVAL: Duration = Duration::from_secs(60);
/// A connection that sent nothing, not even a pong, for this long is dropped.
const SILENCE_LIMIT: Duration = Duration::from_secs(600);

/// The limits of the rendezvous server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RendezvousConfig {
    /// Nameplates in use at once, over all applications.
    pub max_nameplates: usize,
    /// Mailboxes at once, over all applications.
    pub max_mailboxes: usize,
    /// Messages one mailbox may hold.
    pub max_messages_per_mailbox: usize,
    /// Bytes one mailbox may hold (bodies and names).
    pub max_mailbox_bytes: usize,
    /// Bytes all mailboxes together may hold.
    pub max_total_bytes: usize,
    /// The largest websocket message accepted; a larger one closes the
    /// connection.
    pub max_frame_bytes: usize,
    /// Websocket connections at once.
    pub max_connections: usize,
    /// A mailbox nobody listens to is deleted after this many seconds without
    /// a change.
    pub idle_secs: u64,
    /// How often expired mailboxes are looked for.
    pub sweep_interval_secs: u64,
}

impl Default for RendezvousConfig {
    fn default() -> Self {
        Self {
            max_nameplates: 10_000,
            max_mailboxes: 10_000,
            max_messages_per_mailbox: 64,
            max_mailbox_bytes: 4 << 20,
            max_total_bytes: 256 << 20,
            // nightjar's client sends up to 256 KiB, hex-encoded in JSON.
            max_frame_bytes: 1 << 20,
            max_connections: 1024,
            idle_secs: 3600,
            sweep_interval_secs: 60,
        }
    }
}

impl RendezvousConfig {
    /// Checks that every limit allows something.
    pub fn validate(&self) -> Result<(), MailboxError> {
        let counts = [
            self.max_nameplates,
            self.max_mailboxes,
            self.max_messages_per_mailbox,
            self.max_mailbox_bytes,
            self.max_total_bytes,
            self.max_connections,
        ];
        if counts.contains(&0) {
            return Err(MailboxError::Config("a rendezvous limit is zero"));
        }
        if self.max_frame_bytes < 1024 {
            return Err(MailboxError::Config(
                "rendezvous frames must be allowed at least 1024 bytes",
            ));
        }
        // Both become tokio semaphore or channel sizes.
        if self.max_connections > Semaphore::MAX_PERMITS
            || self.max_messages_per_mailbox > Semaphore::MAX_PERMITS
        {
            return Err(MailboxError::Config("a rendezvous limit is too large"));
        }
        Ok(())
    }
}

/// The rendezvous server's shared state; clones share it.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RendezvousConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    connections: Arc<Semaphore>,
    next_conn: AtomicU64,
}

impl Default for Rendezvous {
    /// The default limits on the system clock.
    fn default() -> Self {
        Self::build(RendezvousConfig::default(), Arc::new(SystemClock))
    }
}

impl Rendezvous {
    /// An empty rendezvous server on the system clock.
    pub fn new(config: RendezvousConfig) -> Result<Self, MailboxError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// An empty rendezvous server on the given clock.
    pub fn with_clock(
        config: RendezvousConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MailboxError> {
        config.validate()?;
        Ok(Self::build(config, clock))
    }

    fn build(config: RendezvousConfig, clock: Arc<dyn Clock>) -> Self {
        let state = State::new(config.clone(), clock.now());
        let connections = Arc::new(Semaphore::new(config.max_connections));
        Self {
            inner: Arc::new(Inner {
                config,
                clock,
                state: Mutex::new(state),
                connections,
                next_conn: AtomicU64::new(0),
            }),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &RendezvousConfig {
        &self.inner.config
    }

    /// What the server holds now.
    pub fn stats(&self) -> RendezvousStats {
        self.with_state(|s, _| s.stats())
    }

    /// Deletes expired mailboxes now. Operations also do it as they go, once
    /// per sweep interval, so calling this is never required.
    pub fn maintain(&self) {
        self.with_state(|s, now| s.sweep(now));
    }

    /// Runs `f` on the locked state with the time, after a sweep if one is due.
    fn with_state<T>(&self, f: impl FnOnce(&mut State, u64) -> T) -> T {
        let now = self.inner.clock.now();
        // The state is consistent between operations, none of which panics; a
        // poisoned lock would only mean a bug elsewhere, so keep serving.
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.sweep_if_due(now);
        f(&mut state, now)
    }

    fn next_conn_id(&self) -> u64 {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn now(&self) -> f64 {
        self.inner.clock.now() as f64
    }
}

/// The rendezvous server's route: `GET /v1`, a websocket.
pub fn router(rendezvous: Rendezvous) -> Router {
    Router::new()
        .route("/v1", get(upgrade))
        .with_state(rendezvous)
}

async fn upgrade(AxumState(rv): AxumState<Rendezvous>, ws: WebSocketUpgrade) -> Response {
    let Ok(permit) = rv.inner.connections.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    let limit = rv.inner.config.max_frame_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| run(socket, rv, permit))
}

/// Serves one websocket: the welcome, then answers to each client message and
/// the mailbox's messages as they come, until either side hangs up.
async fn run(mut socket: WebSocket, rv: Rendezvous, _permit: OwnedSemaphorePermit) {
    // A connection listens to one mailbox, which holds at most this many
    // messages: the queue never overflows.
    let (tx, mut rx) = mpsc::channel(rv.inner.config.max_messages_per_mailbox);
    let mut session = Session::new(rv.clone(), tx);
    let welcome = ServerMessage::Welcome {
        welcome: Welcome::default(),
    };
    if send(&mut socket, &rv, welcome).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = Instant::now();
    loop {
        let answers = tokio::select! {
            frame = socket.recv() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => session.handle(text.as_str()),
                    Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                        Ok(text) => session.handle(text),
                        Err(_) => session.handle(""),
                    },
                    // Pings are answered by the websocket layer.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                    // A close, an oversized or broken frame, or a hang-up.
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                }
            }
            Some(message) = rx.recv() => vec![session::delivery(&message)],
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::debug!("rendezvous: dropping a silent connection");
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
                Vec::new()
            }
        };
        for answer in answers {
            if send(&mut socket, &rv, answer).await.is_err() {
                return;
            }
        }
    }
}

async fn send(socket: &mut WebSocket, rv: &Rendezvous, message: ServerMessage) -> Result<(), ()> {
    let envelope = ServerEnvelope {
        server_tx: Some(rv.now()),
        message,
    };
    // Our own message types always serialise; should one not, drop the
    // connection rather than send something else.
    let text = serde_json::to_string(&envelope).map_err(|_| ())?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| ())
}

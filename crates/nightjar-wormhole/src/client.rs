//! The client: allocate a code and wait for the peer, or join with a code; then
//! exchange messages in numbered phases.
//!
//! Everything runs over the stream the caller brings, so the caller also decides
//! how long to wait: wrap the futures in a timeout. Nothing here sleeps.

use std::fmt;

use rand_core::CryptoRng;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use crate::code::{self, Code};
use crate::error::WormholeError;
use crate::key::{Pake, SharedKey};
use crate::mailbox::Connection;
use crate::protocol::Mood;

/// The largest message [`Wormhole::send`] accepts and [`Wormhole::receive`]
/// returns.
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

/// Where the mailbox server is, and which application we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The websocket URL, e.g. `ws://example.onion:4000/v1`. The host in it is
    /// only sent as the HTTP `Host`; the connection is the stream given.
    pub url: String,
    /// The application id: clients meet only those with the same one, and it
    /// is bound into the key exchange.
    pub app_id: String,
}

/// The `version` message we send: no application capabilities yet.
const OUR_VERSIONS: &[u8] = br#"{"app_versions": {}}"#;

/// Connects, allocates a nameplate and chooses `words` words with `rng`; returns
/// the code to show, and the wormhole waiting for the peer to type it.
pub async fn allocate<S, R>(
    stream: S,
    config: &Config,
    words: usize,
    rng: &mut R,
) -> Result<(Code, Pending<S>), WormholeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    R: CryptoRng + ?Sized,
{
    let mut conn = Connection::open(stream, &config.url, &config.app_id).await?;
    let nameplate = conn.allocate().await?;
    let code = Code::from_parts(&nameplate, &code::random_words(rng, words))
        .map_err(WormholeError::BadNameplate)?;
    conn.claim_and_open(code.nameplate()).await?;
    let pake = start_pake(&mut conn, &code, &config.app_id).await?;
    debug!(nameplate = code.nameplate(), "allocated a nameplate");
    Ok((code, Pending { conn, pake }))
}

/// Connects and joins the wormhole of `code`, waiting for the peer.
pub async fn join<S>(stream: S, config: &Config, code: &Code) -> Result<Wormhole<S>, WormholeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut conn = Connection::open(stream, &config.url, &config.app_id).await?;
    conn.claim_and_open(code.nameplate()).await?;
    let pake = start_pake(&mut conn, code, &config.app_id).await?;
    Pending { conn, pake }.connect().await
}

async fn start_pake<S>(
    conn: &mut Connection<S>,
    code: &Code,
    app_id: &str,
) -> Result<Pake, WormholeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (pake, body) = Pake::start(code, app_id);
    conn.add("pake", body).await?;
    Ok(pake)
}

/// A wormhole whose code is out, waiting for the peer.
pub struct Pending<S> {
    conn: Connection<S>,
    pake: Pake,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Pending<S> {
    /// Waits for the peer, completes the key exchange and checks that both sides
    /// hold the same key. A peer with another code gives
    /// [`WormholeError::WrongCode`], after the mailbox was closed as `scary`.
    pub async fn connect(self) -> Result<Wormhole<S>, WormholeError> {
        let Self { mut conn, pake } = self;
        let peer_pake = conn.peer_message("pake").await?;
        let key = match pake.finish(&peer_pake) {
            Ok(key) => key,
            Err(_) => return Err(fail(conn, Mood::Scary, WormholeError::BadPeerMessage).await),
        };
        let sealed = seal(&key, &conn.side, "version", OUR_VERSIONS)?;
        conn.add("version", sealed).await?;
        let peer_version = conn.peer_message("version").await?;
        let peer = conn.peer.clone().unwrap_or_default();
        let versions = match key.phase_key(&peer, "version").open(&peer_version) {
            Ok(plain) => plain,
            Err(_) => return Err(fail(conn, Mood::Scary, WormholeError::WrongCode).await),
        };
        if !serde_json::from_slice::<serde_json::Value>(&versions).is_ok_and(|v| v.is_object()) {
            return Err(fail(conn, Mood::Errory, WormholeError::BadPeerMessage).await);
        }
        debug!("the key is confirmed");
        Ok(Wormhole {
            conn,
            peer,
            key,
            next_send: 0,
            next_receive: 0,
        })
    }

    /// Gives up waiting: closes the mailbox as `lonely` and releases the
    /// nameplate.
    pub async fn cancel(mut self) -> Result<(), WormholeError> {
        self.conn.close(Mood::Lonely).await
    }
}

/// Closes the mailbox with `mood` (best effort: the error to report is `error`).
async fn fail<S>(mut conn: Connection<S>, mood: Mood, error: WormholeError) -> WormholeError
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    if let Err(e) = conn.close(mood).await {
        debug!(error = %e, "closing the mailbox after a failure failed too");
    }
    error
}

fn seal(key: &SharedKey, side: &str, phase: &str, data: &[u8]) -> Result<Vec<u8>, WormholeError> {
    key.phase_key(side, phase)
        .seal(data)
        .map_err(|_| WormholeError::Random)
}

/// An open wormhole: both sides hold the same key.
pub struct Wormhole<S> {
    conn: Connection<S>,
    peer: String,
    key: SharedKey,
    next_send: u64,
    next_receive: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Wormhole<S> {
    /// Sends `data` as the next numbered phase.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), WormholeError> {
        if data.len() > MAX_MESSAGE_LEN {
            return Err(WormholeError::TooLarge {
                len: data.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let phase = self.next_send.to_string();
        let sealed = seal(&self.key, &self.conn.side, &phase, data)?;
        self.conn.add(&phase, sealed).await?;
        self.next_send += 1;
        Ok(())
    }

    /// Receives the peer's next message, in the order they were sent. A message
    /// that does not decrypt closes the wormhole as `scary`.
    pub async fn receive(&mut self) -> Result<Vec<u8>, WormholeError> {
        let phase = self.next_receive.to_string();
        let sealed = self.conn.peer_message(&phase).await?;
        let Ok(plain) = self.key.phase_key(&self.peer, &phase).open(&sealed) else {
            if let Err(e) = self.conn.close(Mood::Scary).await {
                debug!(error = %e, "closing the mailbox after a bad message failed too");
            }
            return Err(WormholeError::Tampered);
        };
        if plain.len() > MAX_MESSAGE_LEN {
            return Err(WormholeError::TooLarge {
                len: plain.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        self.next_receive += 1;
        Ok(plain)
    }

    /// The verifier: the same on both sides exactly when they share the key, so
    /// people may compare it (e.g. as hex) to rule out a guessed code.
    pub fn verifier(&self) -> [u8; 32] {
        self.key.verifier()
    }

    /// Derives a key for the application's own use from the shared key, as the
    /// reference client's `derive_key(purpose)` does.
    pub fn derive_key(&self, purpose: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.key.derive(purpose))
    }

    /// Closes the mailbox with `mood` and hangs up.
    pub async fn close(mut self, mood: Mood) -> Result<(), WormholeError> {
        self.conn.close(mood).await
    }
}

impl<S> fmt::Debug for Pending<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for Wormhole<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wormhole")
            .field("conn", &self.conn)
            .field("next_send", &self.next_send)
            .field("next_receive", &self.next_receive)
            .finish_non_exhaustive()
    }
}

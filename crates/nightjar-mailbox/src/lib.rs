//! nightjar's offline mailbox.
//!
//! When a contact is offline, a sender deposits fixed-size opaque blobs in the
//! recipient's mailbox under *slot ids* that both peers derive from their
//! ratchet and that change with every message, so the mailbox cannot link
//! deposits to each other or to a conversation. A slot id is an Ed25519
//! verifying key: the recipient, who derives the matching signing key, lists,
//! fetches and acknowledges the slot's blobs with signed requests; anyone who
//! knows the slot may deposit, paying with proof of work. The mailbox never
//! learns sender or recipient. See `docs/mailbox.md` for the protocol.
//!
//! The same server relays group chats: members of a room post fixed-size
//! cells under a shared room key and read them back by sequence number, also
//! after being offline. The mailbox keeps only a keyed hash of the key and the
//! opaque cells; it never sees names, membership or who posted what.
//!
//! - [`wire`]: identifiers, signed bytes and the request and answer bodies.
//! - [`pow`]: the BLAKE3 proof of work, both sides.
//! - [`client`]: builds requests as `http::Request<Vec<u8>>` and parses
//!   answers; it does no I/O, so any transport (a Tor stream) can carry them.
//! - [`rooms`]: the room relay's table of cells.
//! - [`Mailbox`]: the server's state and operations, free of HTTP.
//! - [`router`] and [`serve`] (feature `server`, on by default): the HTTP server.
//! - [`rendezvous`] (feature `server`): the magic-wormhole rendezvous server at
//!   `/v1`, which [`router`] and [`serve`] include.

pub mod client;
pub mod clock;
mod config;
mod mailbox;
pub mod pow;
#[cfg(feature = "server")]
pub mod rendezvous;
pub mod replay;
pub mod rooms;
#[cfg(feature = "server")]
mod server;
pub mod store;
pub mod wire;

pub use config::{Config, PowConfig};
pub use mailbox::{Mailbox, Refusal, Stats};
#[cfg(feature = "server")]
pub use server::{router, router_with, serve, serve_mailbox};

/// Errors starting or running a mailbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailboxError {
    /// The configuration makes no sense.
    #[error("invalid mailbox configuration: {0}")]
    Config(&'static str),
    /// The system's randomness failed.
    #[error("no randomness available")]
    Random,
    /// The listener failed.
    #[error("mailbox listener failed: {0}")]
    Io(#[from] std::io::Error),
}

//! A client for the magic-wormhole mailbox ("rendezvous") protocol, so two people
//! can exchange a little data after one reads a short code like
//! `7-crossover-clockwork` to the other.
//!
//! The client runs over any byte stream (`AsyncRead + AsyncWrite`): nightjar hands
//! it a Tor stream to an onion mailbox server. It speaks plain `ws://`; the onion
//! address authenticates the server, and the mailbox only ever sees ciphertext and
//! SPAKE2 messages anyway.
//!
//! - [`code`]: parsing, normalising and generating codes;
//! - [`protocol`]: the server protocol's messages, both directions;
//! - [`key`]: SPAKE2, phase keys, the verifier and the secretbox;
//! - [`allocate`] / [`join`] and [`Wormhole`]: the client itself.
//!
//! See `docs/wormhole.md` for what of the protocol is implemented.

pub mod code;
pub mod key;
pub mod protocol;

mod client;
mod error;
mod mailbox;
mod words;

pub use client::{Config, MAX_MESSAGE_LEN, Pending, Wormhole, allocate, join};
pub use code::{Code, CodeError};
pub use error::WormholeError;
pub use protocol::Mood;

//! nightjar's protocol core.
//!
//! Sans-IO: this crate opens no sockets, reads no clock and draws no randomness it
//! is not handed. Every state machine takes bytes (and an RNG where it needs one)
//! and returns bytes and events, so it can be tested, fuzzed and reviewed alone.

pub mod address;
pub mod cell;
pub mod files;
pub mod handshake;
pub mod identity;
pub mod invite;
pub mod locked;
pub mod message;
pub mod offline;
pub mod onion;
pub mod ratchet;
pub mod room;
pub mod session;
pub mod smp;
pub mod wire;

pub use ratchet::{Ratchet, RatchetError};

//! What can go wrong, worded for the person who typed the code.

use tokio_tungstenite::tungstenite;

use crate::code::CodeError;

/// Why a wormhole could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WormholeError {
    /// The websocket to the rendezvous server failed.
    #[error("could not talk to the rendezvous server")]
    Transport(#[source] Box<tungstenite::Error>),
    /// The server hung up.
    #[error("the rendezvous server closed the connection")]
    ConnectionClosed,
    /// The server refuses service, and says why in its welcome.
    #[error("the rendezvous server refuses service: {0}")]
    Unwelcome(String),
    /// The server refused a request.
    #[error("the rendezvous server reported an error: {0}")]
    Server(String),
    /// Two others are already using this code's number.
    #[error("this code is already in use by two others; ask for a new code")]
    Crowded,
    /// The server sent something this client does not understand.
    #[error("the rendezvous server sent something unexpected: {0}")]
    Protocol(String),
    /// The two sides derived different keys.
    #[error("the code was wrong, or someone tried to guess it")]
    WrongCode,
    /// After the keys were confirmed, a message of the peer did not decrypt.
    #[error(
        "a message from the other side did not decrypt: it was altered on the way, or sent by someone else"
    )]
    Tampered,
    /// The peer sent a message that decrypts but makes no sense.
    #[error("the other side sent a malformed message")]
    BadPeerMessage,
    /// A message too large to send through the mailbox.
    #[error("a message of {len} bytes is too large to send (at most {max})")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The largest allowed.
        max: usize,
    },
    /// The wormhole was closed, after an error or by the caller.
    #[error("the wormhole is closed")]
    Closed,
    /// The server handed out a nameplate that does not make a code.
    #[error("the rendezvous server handed out an unusable code")]
    BadNameplate(#[source] CodeError),
    /// The operating system's random number generator failed.
    #[error("the system's random number generator failed")]
    Random,
}

impl From<tungstenite::Error> for WormholeError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Self::ConnectionClosed
            }
            e => Self::Transport(Box::new(e)),
        }
    }
}

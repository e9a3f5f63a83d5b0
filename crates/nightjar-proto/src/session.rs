//! A conversation's encryption state: the double ratchet plus the framing.
//!
//! [`Session::seal`] turns an application message into a frame of whole cells;
//! [`Session::open`] turns a frame back into a message. Together with
//! [`crate::cell::FrameReader`] (fed with [`Session::body_len`]) this is all a
//! stream needs:
//!
//! ```no_run
//! # use nightjar_proto::{cell::FrameReader, session::Session};
//! # fn demo<R: rand_core::CryptoRng>(session: &mut Session, bytes: &[u8], rng: &mut R) {
//! let mut reader = FrameReader::new();
//! reader.push(bytes);
//! while let Ok(Some(frame)) = reader.next_frame(|header| session.body_len(header)) {
//!     let message = session.open(&frame, rng);
//! }
//! # }
//! ```

use core::fmt;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::cell::{self, CellError};
use crate::handshake::{Established, RatchetSeed};
use crate::message::{Message, MessageError};
use crate::ratchet::{Ratchet, RatchetError};
use crate::wire::{Reader, WireError, Writer};

/// Domain label of the associated data bound into every ratchet message.
pub const AD_LABEL: &[u8] = b"nightjar/v1/session";
/// Version byte of [`Session::to_bytes`].
pub const STATE_VERSION: u8 = 1;
/// Length of the handshake's session identifier.
pub const SESSION_ID_LEN: usize = 32;

/// Errors from sealing or opening frames.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The ratchet refused the message; [`RatchetError::Duplicate`] means a replay.
    #[error(transparent)]
    Ratchet(#[from] RatchetError),
    /// The frame's size or padding is wrong.
    #[error(transparent)]
    Cell(#[from] CellError),
    /// The frame decrypted, but its content is not a message we understand.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// Stored session bytes are damaged or from an unknown version.
    #[error("invalid stored session")]
    BadState,
}

impl SessionError {
    /// True for a frame that was already received: harmless, to be ignored. Any
    /// other error on a live stream means it is broken or under attack.
    pub fn is_replay(&self) -> bool {
        matches!(self, Self::Ratchet(RatchetError::Duplicate))
    }
}

/// The ratchet of one conversation, bound to the handshake that created it.
pub struct Session {
    ratchet: Ratchet,
    session_id: [u8; SESSION_ID_LEN],
    ad: [u8; AD_LABEL.len() + SESSION_ID_LEN],
}

impl Session {
    /// Starts the session a completed handshake agreed on.
    pub fn from_handshake<R: CryptoRng + ?Sized>(
        established: Established,
        rng: &mut R,
    ) -> Result<Self, SessionError> {
        let session_id = *established.session_id();
        let ratchet = match established.into_ratchet_seed() {
            RatchetSeed::Initiator {
                root_key,
                header_key_a,
                next_header_key_b,
                responder_ratchet_public,
            } => Ratchet::new_initiator(
                *root_key,
                *header_key_a,
                *next_header_key_b,
                responder_ratchet_public,
                rng,
            )?,
            RatchetSeed::Responder {
                root_key,
                header_key_a,
                next_header_key_b,
                ratchet_secret,
            } => {
                Ratchet::new_responder(*root_key, *header_key_a, *next_header_key_b, ratchet_secret)
            }
        };
        Ok(Self::new(ratchet, session_id))
    }

    fn new(ratchet: Ratchet, session_id: [u8; SESSION_ID_LEN]) -> Self {
        let mut ad = [0u8; AD_LABEL.len() + SESSION_ID_LEN];
        ad[..AD_LABEL.len()].copy_from_slice(AD_LABEL);
        ad[AD_LABEL.len()..].copy_from_slice(&session_id);
        Self {
            ratchet,
            session_id,
            ad,
        }
    }

    /// The handshake transcript hash this session is bound to.
    pub fn session_id(&self) -> &[u8; SESSION_ID_LEN] {
        &self.session_id
    }

    /// Encrypts a message into a frame of whole cells.
    pub fn seal<R: CryptoRng + ?Sized>(
        &mut self,
        message: &Message,
        rng: &mut R,
    ) -> Result<Vec<u8>, SessionError> {
        let payload = Zeroizing::new(message.encode()?);
        self.seal_payload(&payload, rng)
    }

    /// Encrypts raw payload bytes into a frame of whole cells.
    pub fn seal_payload<R: CryptoRng + ?Sized>(
        &mut self,
        payload: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SessionError> {
        let body = cell::pad(payload)?;
        Ok(self.ratchet.encrypt(&body, &self.ad, rng)?)
    }

    /// Like [`Self::seal_payload`], padded to exactly `cells` cells, so that frames
    /// of different payloads (the chunks of one file) look alike; fails if the
    /// payload does not fit.
    pub fn seal_payload_padded<R: CryptoRng + ?Sized>(
        &mut self,
        payload: &[u8],
        cells: usize,
        rng: &mut R,
    ) -> Result<Vec<u8>, SessionError> {
        let body = cell::pad_to(payload, cells)?;
        Ok(self.ratchet.encrypt(&body, &self.ad, rng)?)
    }

    /// The body length announced by a frame's header, for
    /// [`cell::FrameReader::next_frame`]; `None` if no header key opens it.
    pub fn body_len(&self, header: &[u8]) -> Option<usize> {
        self.ratchet.peek_body_len(header, &self.ad).ok()
    }

    /// Decrypts a frame and decodes its message.
    pub fn open<R: CryptoRng + ?Sized>(
        &mut self,
        frame: &[u8],
        rng: &mut R,
    ) -> Result<Message, SessionError> {
        let payload = self.open_payload(frame, rng)?;
        Ok(Message::decode(&payload)?)
    }

    /// Decrypts a frame to its raw payload.
    pub fn open_payload<R: CryptoRng + ?Sized>(
        &mut self,
        frame: &[u8],
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>, SessionError> {
        cell::frame_len(frame.len().saturating_sub(cell::HEADER_LEN))?;
        let body = self.ratchet.decrypt(frame, &self.ad, rng)?;
        Ok(Zeroizing::new(cell::unpad(&body)?.to_vec()))
    }

    /// Serialises the session for encrypted storage.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let ratchet = self.ratchet.to_bytes();
        let mut w = Writer::new();
        w.u8(STATE_VERSION);
        w.bytes(&self.session_id);
        w.var_bytes(&ratchet);
        Zeroizing::new(w.finish())
    }

    /// Restores a session from [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SessionError> {
        let parse = || -> Result<_, WireError> {
            let mut r = Reader::new(bytes);
            if r.u8()? != STATE_VERSION {
                return Err(WireError::InvalidValue);
            }
            let session_id: [u8; SESSION_ID_LEN] = *r.array()?;
            let ratchet = r.var_bytes(bytes.len())?;
            r.finish()?;
            Ok((session_id, ratchet))
        };
        let (session_id, ratchet) = parse().map_err(|_| SessionError::BadState)?;
        let ratchet = Ratchet::from_bytes(ratchet).map_err(|_| SessionError::BadState)?;
        Ok(Self::new(ratchet, session_id))
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

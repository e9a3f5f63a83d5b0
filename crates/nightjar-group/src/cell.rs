//! Room cells: what a room relay stores, all of one size.
//!
//! A room is known by a 32-byte secret its members share. From it come two keys
//! (HKDF-SHA256, salt empty):
//!
//! - the **relay key** (info `nightjar room relay key v1`), the bearer name the
//!   relay files the room's cells under;
//! - the **cell key** (info `nightjar room cell key v1`), an XChaCha20-Poly1305
//!   key for the cells themselves.
//!
//! A message (an MLS message, already end-to-end encrypted) is cut into parts
//! that each fill one cell:
//!
//! ```text
//! cell  (CELL_LEN)   = nonce (24) ‖ XChaCha20-Poly1305(cell key, nonce, frame, AAD = CELL_AAD)
//! frame (FRAME_LEN)  = message id (16) ‖ part (u16 BE) ‖ parts (u16 BE) ‖ length (u16 BE)
//!                      ‖ data (length) ‖ zeros
//! ```
//!
//! The outer layer hides from the relay (and from anyone outside the room) even
//! the MLS framing: the group id, the epoch, and whether a message is a commit or
//! a text. The relay sees cells of one size, and how many there are.

use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use std::collections::HashMap;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::GroupError;

/// The size of every cell a room relay stores.
pub const CELL_LEN: usize = 1024;
/// XChaCha20-Poly1305 nonce length.
const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;
/// The sealed frame inside a cell.
pub const FRAME_LEN: usize = CELL_LEN - NONCE_LEN - TAG_LEN;
/// A message id, chosen at random by the sender.
pub const MESSAGE_ID_LEN: usize = 16;
const PART_HEADER_LEN: usize = MESSAGE_ID_LEN + 2 + 2 + 2;
/// How much of a message one cell carries.
pub const PART_LEN: usize = FRAME_LEN - PART_HEADER_LEN;
/// The most cells one message may take (about 940 KiB): more than any commit or
/// text needs, and a bound on what a reader buffers for one message.
pub const MAX_PARTS: usize = 1024;
/// The most messages a reader holds half-assembled at once.
const MAX_OPEN_MESSAGES: usize = 64;
/// Authenticated data of every cell.
const CELL_AAD: &[u8] = b"nightjar room cell v1";

/// A message's id.
pub type MessageId = [u8; MESSAGE_ID_LEN];

/// The room secret and the keys derived from it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RoomKeys {
    secret: [u8; 32],
    relay: [u8; 32],
    cell: [u8; 32],
}

impl RoomKeys {
    /// A new room.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        Self::from_secret(&secret)
    }

    /// The keys of the room with this secret.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, secret);
        let mut relay = [0u8; 32];
        let mut cell = [0u8; 32];
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(b"nightjar room relay key v1", &mut relay);
        let _ = hk.expand(b"nightjar room cell key v1", &mut cell);
        Self {
            secret: *secret,
            relay,
            cell,
        }
    }

    /// The shared secret (what a new member is given).
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The key the relay files the room under.
    pub fn relay_key(&self) -> &[u8; 32] {
        &self.relay
    }

    /// Cuts `message` into sealed cells under a fresh message id.
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        message: &[u8],
        rng: &mut R,
    ) -> Result<(MessageId, Vec<Vec<u8>>), GroupError> {
        let mut id = [0u8; MESSAGE_ID_LEN];
        rng.fill_bytes(&mut id);
        let parts = message.len().div_ceil(PART_LEN).max(1);
        if parts > MAX_PARTS {
            return Err(GroupError::TooLarge(message.len()));
        }
        let cipher = XChaCha20Poly1305::new((&self.cell).into());
        let mut cells = Vec::with_capacity(parts);
        for index in 0..parts {
            let data = message
                .get(index * PART_LEN..message.len().min((index + 1) * PART_LEN))
                .unwrap_or_default();
            let mut nonce = XNonce::default();
            rng.fill_bytes(&mut nonce);
            let mut cell = Vec::with_capacity(CELL_LEN);
            cell.extend_from_slice(&nonce);
            cell.extend_from_slice(&id);
            for field in [index, parts, data.len()] {
                // All three are below 2^16: parts ≤ MAX_PARTS, data ≤ PART_LEN.
                cell.extend_from_slice(&(field as u16).to_be_bytes());
            }
            cell.extend_from_slice(data);
            cell.resize(NONCE_LEN + FRAME_LEN, 0);
            let tag = cipher
                .encrypt_inout_detached(&nonce, CELL_AAD, cell[NONCE_LEN..].as_mut().into())
                .map_err(|_| GroupError::Sealing)?;
            cell.extend_from_slice(&tag);
            cells.push(cell);
        }
        Ok((id, cells))
    }

    /// Opens one cell: its message id, its place, and its data.
    fn open(&self, cell: &[u8]) -> Result<Part, GroupError> {
        if cell.len() != CELL_LEN {
            return Err(GroupError::BadCell);
        }
        let (nonce, rest) = cell
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(GroupError::BadCell)?;
        let (sealed, tag) = rest
            .split_last_chunk::<TAG_LEN>()
            .ok_or(GroupError::BadCell)?;
        let mut frame = Zeroizing::new(sealed.to_vec());
        XChaCha20Poly1305::new((&self.cell).into())
            .decrypt_inout_detached(
                nonce.into(),
                CELL_AAD,
                frame.as_mut_slice().into(),
                tag.into(),
            )
            .map_err(|_| GroupError::BadCell)?;
        let mut id = [0u8; MESSAGE_ID_LEN];
        id.copy_from_slice(&frame[..MESSAGE_ID_LEN]);
        let field = |at: usize| usize::from(u16::from_be_bytes([frame[at], frame[at + 1]]));
        let (index, parts, len) = (
            field(MESSAGE_ID_LEN),
            field(MESSAGE_ID_LEN + 2),
            field(MESSAGE_ID_LEN + 4),
        );
        if parts == 0 || parts > MAX_PARTS || index >= parts || len > PART_LEN {
            return Err(GroupError::BadCell);
        }
        Ok(Part {
            id,
            index,
            parts,
            data: Zeroizing::new(frame[PART_HEADER_LEN..PART_HEADER_LEN + len].to_vec()),
        })
    }
}

impl std::fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKeys").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Assembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembler")
            .field("open", &self.open.len())
            .finish()
    }
}

struct Part {
    id: MessageId,
    index: usize,
    parts: usize,
    data: Zeroizing<Vec<u8>>,
}

/// A whole message put back together: its id and its bytes.
pub type Whole = (MessageId, Zeroizing<Vec<u8>>);

/// Puts messages back together from cells read in relay order.
#[derive(Default)]
pub struct Assembler {
    open: HashMap<MessageId, Partial>,
    /// Message ids in the order they were opened, for evicting the oldest.
    order: Vec<MessageId>,
}

struct Partial {
    parts: Vec<Option<Zeroizing<Vec<u8>>>>,
    have: usize,
}

impl Assembler {
    /// Takes one cell; returns a whole message once its last part is in.
    pub fn push(&mut self, keys: &RoomKeys, cell: &[u8]) -> Result<Option<Whole>, GroupError> {
        let part = keys.open(cell)?;
        if part.parts == 1 {
            return Ok(Some((part.id, part.data)));
        }
        if !self.open.contains_key(&part.id) {
            if self.open.len() >= MAX_OPEN_MESSAGES
                && let Some(oldest) = (!self.order.is_empty()).then(|| self.order.remove(0))
            {
                self.open.remove(&oldest);
            }
            self.order.push(part.id);
            self.open.insert(
                part.id,
                Partial {
                    parts: vec![None; part.parts],
                    have: 0,
                },
            );
        }
        let Some(partial) = self.open.get_mut(&part.id) else {
            return Ok(None);
        };
        if partial.parts.len() != part.parts {
            return Err(GroupError::BadCell);
        }
        if partial.parts[part.index].is_none() {
            partial.parts[part.index] = Some(part.data);
            partial.have += 1;
        }
        if partial.have < partial.parts.len() {
            return Ok(None);
        }
        let Some(done) = self.open.remove(&part.id) else {
            return Ok(None);
        };
        self.order.retain(|id| *id != part.id);
        let mut message = Zeroizing::new(Vec::new());
        for data in done.parts.into_iter().flatten() {
            message.extend_from_slice(&data);
        }
        Ok(Some((part.id, message)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rng() -> rand::rngs::ThreadRng {
        rand::rng()
    }

    #[test]
    fn messages_of_any_size_come_back_whole_from_cells_of_one_size() {
        let keys = RoomKeys::generate(&mut rng());
        for len in [0, 1, PART_LEN - 1, PART_LEN, PART_LEN + 1, 5 * PART_LEN + 7] {
            let message: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (id, cells) = keys.seal(&message, &mut rng()).unwrap();
            assert_eq!(cells.len(), len.div_ceil(PART_LEN).max(1));
            assert!(cells.iter().all(|c| c.len() == CELL_LEN));
            let mut assembler = Assembler::default();
            let mut out = None;
            // Parts may come in any order.
            for cell in cells.iter().rev() {
                assert!(out.is_none(), "whole before its last part");
                out = assembler.push(&keys, cell).unwrap();
            }
            let (got_id, got) = out.unwrap();
            assert_eq!(got_id, id);
            assert_eq!(got.as_slice(), message.as_slice());
        }
    }

    #[test]
    fn another_rooms_cells_and_altered_cells_do_not_open() {
        let keys = RoomKeys::generate(&mut rng());
        let other = RoomKeys::generate(&mut rng());
        let (_, cells) = keys.seal(b"hello", &mut rng()).unwrap();
        let mut assembler = Assembler::default();
        assert!(matches!(
            assembler.push(&other, &cells[0]),
            Err(GroupError::BadCell)
        ));
        let mut altered = cells[0].clone();
        altered[CELL_LEN - 1] ^= 1;
        assert!(assembler.push(&keys, &altered).is_err());
        assert!(assembler.push(&keys, &cells[0][..100]).is_err());
        assert!(assembler.push(&keys, &cells[0]).unwrap().is_some());
    }

    #[test]
    fn members_derive_the_same_keys_from_the_secret() {
        let keys = RoomKeys::generate(&mut rng());
        let again = RoomKeys::from_secret(keys.secret());
        assert_eq!(keys.relay_key(), again.relay_key());
        assert_ne!(keys.relay_key(), keys.secret());
        let (_, cells) = keys.seal(b"hi", &mut rng()).unwrap();
        assert!(
            Assembler::default()
                .push(&again, &cells[0])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn oversized_messages_are_refused() {
        let keys = RoomKeys::generate(&mut rng());
        let huge = vec![0u8; MAX_PARTS * PART_LEN + 1];
        assert!(matches!(
            keys.seal(&huge, &mut rng()),
            Err(GroupError::TooLarge(_))
        ));
    }
}

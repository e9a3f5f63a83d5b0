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
        let cells = self.seal_as(&id, message, rng)?;
        Ok((id, cells))
    }

    /// Cuts `message` into sealed cells under the message id given. Anyone in
    /// the room can do this with any id: readers never trust an id alone.
    pub fn seal_as<R: CryptoRng + ?Sized>(
        &self,
        id: &MessageId,
        message: &[u8],
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
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
            cell.extend_from_slice(id);
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
        Ok(cells)
    }

    /// The message id a cell of this room carries.
    pub fn message_id(&self, cell: &[u8]) -> Result<MessageId, GroupError> {
        self.open(cell).map(|part| part.id)
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
///
/// The parts of a message are posted one after another, so they lie close
/// together in the room: a message still missing parts [`STALE_AFTER`] cells
/// after its first one never completes (its author gave up, or it was not a
/// real message) and is dropped. At most [`MAX_OPEN_MESSAGES`] are held; past
/// that the oldest goes.
#[derive(Default)]
pub struct Assembler {
    open: HashMap<MessageId, Partial>,
    /// Message ids in the order they were opened.
    order: Vec<MessageId>,
    /// Cells taken so far (the clock that ages open messages).
    taken: u64,
}

/// Cells after its first part within which a message must complete.
pub const STALE_AFTER: u64 = 4 * MAX_PARTS as u64;
/// Most messages held half-assembled at once.
pub const MAX_OPEN_MESSAGES: usize = 1024;

struct Partial {
    parts: Vec<Option<Zeroizing<Vec<u8>>>>,
    have: usize,
    /// The value of `taken` when its first part came.
    opened_at: u64,
}

impl Assembler {
    /// Takes one cell; returns a whole message once its last part is in.
    pub fn push(&mut self, keys: &RoomKeys, cell: &[u8]) -> Result<Option<Whole>, GroupError> {
        self.taken += 1;
        self.drop_stale();
        let part = keys.open(cell)?;
        if part.parts == 1 {
            return Ok(Some((part.id, part.data)));
        }
        if !self.open.contains_key(&part.id) {
            if self.open.len() >= MAX_OPEN_MESSAGES && !self.order.is_empty() {
                let oldest = self.order.remove(0);
                self.open.remove(&oldest);
            }
            self.order.push(part.id);
            self.open.insert(
                part.id,
                Partial {
                    parts: vec![None; part.parts],
                    have: 0,
                    opened_at: self.taken,
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

    fn drop_stale(&mut self) {
        while let Some(oldest) = self.order.first() {
            let stale = self
                .open
                .get(oldest)
                .is_none_or(|p| self.taken - p.opened_at > STALE_AFTER);
            if !stale {
                break;
            }
            let oldest = self.order.remove(0);
            self.open.remove(&oldest);
        }
    }

    /// Appends what is held to `out`, to carry it over a restart.
    pub(crate) fn save(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.taken.to_be_bytes());
        out.extend_from_slice(&(self.order.len() as u32).to_be_bytes());
        for id in &self.order {
            let Some(partial) = self.open.get(id) else {
                continue;
            };
            out.extend_from_slice(id);
            out.extend_from_slice(&partial.opened_at.to_be_bytes());
            out.extend_from_slice(&(partial.parts.len() as u16).to_be_bytes());
            for part in &partial.parts {
                match part {
                    None => out.push(0),
                    Some(data) => {
                        out.push(1);
                        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                        out.extend_from_slice(data);
                    }
                }
            }
        }
    }

    /// The bytes [`Assembler::save`] would append.
    pub(crate) fn saved_len(&self) -> usize {
        12 + self
            .open
            .values()
            .map(|p| {
                26 + p
                    .parts
                    .iter()
                    .map(|d| 1 + d.as_ref().map_or(0, |d| 2 + d.len()))
                    .sum::<usize>()
            })
            .sum::<usize>()
    }

    /// What [`Assembler::save`] wrote, read from the front of `input`;
    /// returns the rest.
    pub(crate) fn restore(input: &[u8]) -> Result<(Self, &[u8]), GroupError> {
        let bad = || GroupError::Malformed("saved room parts".into());
        let mut r = input;
        let mut take = |n: usize| -> Result<&[u8], GroupError> {
            if r.len() < n {
                return Err(bad());
            }
            let (head, rest) = r.split_at(n);
            r = rest;
            Ok(head)
        };
        let mut assembler = Self {
            taken: u64::from_be_bytes(take(8)?.try_into().map_err(|_| bad())?),
            ..Self::default()
        };
        let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad())?);
        if count as usize > MAX_OPEN_MESSAGES {
            return Err(bad());
        }
        for _ in 0..count {
            let id: MessageId = take(MESSAGE_ID_LEN)?.try_into().map_err(|_| bad())?;
            let opened_at = u64::from_be_bytes(take(8)?.try_into().map_err(|_| bad())?);
            let parts = usize::from(u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad())?));
            if !(2..=MAX_PARTS).contains(&parts) || opened_at > assembler.taken {
                return Err(bad());
            }
            let mut partial = Partial {
                parts: Vec::with_capacity(parts),
                have: 0,
                opened_at,
            };
            for _ in 0..parts {
                match take(1)? {
                    [0] => partial.parts.push(None),
                    [1] => {
                        let len = usize::from(u16::from_be_bytes(
                            take(2)?.try_into().map_err(|_| bad())?,
                        ));
                        if len > PART_LEN {
                            return Err(bad());
                        }
                        partial
                            .parts
                            .push(Some(Zeroizing::new(take(len)?.to_vec())));
                        partial.have += 1;
                    }
                    _ => return Err(bad()),
                }
            }
            if partial.have == parts || assembler.open.insert(id, partial).is_some() {
                return Err(bad());
            }
            assembler.order.push(id);
        }
        Ok((assembler, r))
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
    fn half_read_messages_survive_a_restart_and_stale_ones_go() {
        let keys = RoomKeys::generate(&mut rng());
        let message = vec![7u8; 3 * PART_LEN];
        let (id, cells) = keys.seal(&message, &mut rng()).unwrap();
        let mut assembler = Assembler::default();
        assert!(assembler.push(&keys, &cells[0]).unwrap().is_none());
        let mut saved = Vec::new();
        assembler.save(&mut saved);
        assert_eq!(saved.len(), assembler.saved_len());
        saved.extend_from_slice(b"rest");
        let (mut again, rest) = Assembler::restore(&saved).unwrap();
        assert_eq!(rest, b"rest");
        assert!(again.push(&keys, &cells[1]).unwrap().is_none());
        let (got, whole) = again.push(&keys, &cells[2]).unwrap().unwrap();
        assert_eq!((got, whole.as_slice()), (id, message.as_slice()));
        assert!(Assembler::restore(&saved[..saved.len() - 10]).is_err());

        // A message whose other parts never come is dropped in time.
        let (_, orphan) = keys.seal(&message, &mut rng()).unwrap();
        let mut assembler = Assembler::default();
        assembler.push(&keys, &orphan[0]).unwrap();
        let (_, short) = keys.seal(b"x", &mut rng()).unwrap();
        for _ in 0..STALE_AFTER + 1 {
            assembler.push(&keys, &short[0]).unwrap();
        }
        assert!(assembler.open.is_empty());
        assert!(assembler.push(&keys, &orphan[1]).unwrap().is_none());
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

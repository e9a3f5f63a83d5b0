//! Offline delivery: messages sealed into fixed-size blobs for a recipient's
//! mailboxes, under a one-way chain the recipient granted over a live link.
//!
//! The recipient sends a [`DropGrant`] (its mailboxes and a random seed). The sender
//! keeps a [`SendChain`] from it, the recipient the matching [`RecvChain`]. Step `n`
//! of the chain gives the *slot seed* of counter `n` (the Ed25519 seed of the mailbox
//! slot the blobs go to) and the *message key* that seals them. Chain keys only move
//! forward and old ones are deleted, so a stolen state opens nothing already read.
//!
//! # Key derivation
//!
//! HKDF is HKDF-SHA-256 with no salt (RFC 5869: 32 zero bytes); HMAC is
//! HMAC-SHA-256; integers are big-endian.
//!
//! * grant id = HKDF(ikm = seed, info = [`ID_INFO`]), 16 bytes.
//! * chain key 0 = HKDF(ikm = seed, info = [`CHAIN_INFO`]), 32 bytes.
//! * `KDF_CK(ck)`: message key = HMAC(ck, `0x01`), next chain key = HMAC(ck, `0x02`)
//!   (as in the ratchet), slot seed = HMAC(ck, `0x03`) ([`CHAIN_SLOT_SEED_INPUT`]).
//! * part key (32) | part nonce (24) = HKDF(ikm = message key,
//!   info = [`BLOB_INFO`] || part (u16)), 56 bytes.
//!
//! # Blobs
//!
//! A payload is cut into parts of [`PART_CAPACITY`] bytes (the last may be shorter;
//! an empty payload is one empty part), at most [`MAX_PARTS`]. Each part becomes one
//! [`BLOB_LEN`]-byte blob, all in the counter's slot:
//!
//! ```text
//! blob (498)           = XChaCha20-Poly1305(part key, part nonce, plaintext, aad) || tag (16)
//! plaintext (482)      = part (u16) || parts (u16) || len (u16) || data (len) || zeros
//! aad (36)             = "nightjar/v1/drop" || grant id (16) || counter (u32)
//! ```
//!
//! Every part but the last carries exactly [`PART_CAPACITY`] bytes; the last carries
//! at least one, unless the payload is empty. The padding must be zero.
//!
//! # Receiving
//!
//! The receiver looks at its skipped counters and the next [`WINDOW`] counters
//! ([`RecvChain::slots_to_scan`]). Part keys depend on the part number, so a blob
//! whose number is unknown is tried against the part numbers not found yet (the
//! first one to authenticate wins). A slot whose blobs all fail is reported as
//! consumed so that its blobs can be deleted, but its key is kept: anyone who knows
//! a slot id (a mailbox learns the whole window from fetches) may deposit into it,
//! and must not be able to make the receiver give up a message that has not
//! arrived yet.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{AeadInOut, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::cell::CELL_SIZE;
use crate::ratchet::{CHAIN_MESSAGE_KEY_INPUT, CHAIN_NEXT_KEY_INPUT, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::wire::{Reader, WireError};

/// The size of every blob: one cell.
pub const BLOB_LEN: usize = CELL_SIZE;
/// The part header inside a blob: part, parts, len (u16 each).
const PART_HEADER_LEN: usize = 6;
/// A blob's plaintext: the blob without its tag.
const BLOB_PLAINTEXT_LEN: usize = BLOB_LEN - TAG_LEN;
/// Payload bytes one blob carries.
pub const PART_CAPACITY: usize = BLOB_PLAINTEXT_LEN - PART_HEADER_LEN;
/// Most parts (blobs) for one message; a longer payload is refused.
pub const MAX_PARTS: usize = 160;
/// The longest payload one message carries.
pub const MAX_PAYLOAD_LEN: usize = MAX_PARTS * PART_CAPACITY;
/// Counters scanned ahead of the next expected one.
pub const WINDOW: u32 = 64;
/// Skipped counters remembered per receive chain (oldest dropped).
pub const MAX_SKIPPED: usize = 256;
/// Most mailboxes in a grant.
pub const MAX_MAILBOXES: usize = 4;
/// Length of a grant id.
pub const GRANT_ID_LEN: usize = 16;

/// HKDF info of the grant id.
pub const ID_INFO: &[u8] = b"nightjar/v1/drop/id";
/// HKDF info of chain key 0.
pub const CHAIN_INFO: &[u8] = b"nightjar/v1/drop/chain";
/// HKDF info of a part's key and nonce, followed by the part number (u16).
pub const BLOB_INFO: &[u8] = b"nightjar/v1/drop/blob";
/// Start of every blob's associated data, followed by grant id and counter.
pub const BLOB_AAD_PREFIX: &[u8] = b"nightjar/v1/drop";
/// HMAC input of `KDF_CK` that yields the slot seed.
pub const CHAIN_SLOT_SEED_INPUT: u8 = 0x03;
/// Leading byte of [`SendChain::to_bytes`] and [`RecvChain::to_bytes`].
pub const STATE_VERSION: u8 = 1;

const ROLE_SEND: u8 = 1;
const ROLE_RECV: u8 = 2;
const AAD_LEN: usize = 16 + GRANT_ID_LEN + 4;
// In range: checked below.
const MAX_PARTS_U16: u16 = MAX_PARTS as u16;

// Other crates size their storage from these; a change here is a wire change.
const _: () = assert!(BLOB_LEN == 498);
const _: () = assert!(PART_CAPACITY == 476);
const _: () = assert!(MAX_PARTS <= u16::MAX as usize);
// The longest text message, encoded, fits.
const _: () = assert!(crate::message::MAX_TEXT_LEN + 64 <= MAX_PAYLOAD_LEN);
const _: () = assert!(BLOB_AAD_PREFIX.len() == 16);

type Key = [u8; KEY_LEN];

/// Why an offline operation failed. Whatever the error, the chain is unchanged.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfflineError {
    /// The payload needs more than [`MAX_PARTS`] blobs.
    #[error("payload too large for one offline message")]
    TooLarge,
    /// Every counter of the send chain has been used; a new grant is needed.
    #[error("the send chain is exhausted")]
    Exhausted,
    /// Stored state that does not parse, or an `open` call the state cannot answer.
    #[error("invalid offline chain state: {0}")]
    BadState(&'static str),
    /// A grant with no mailbox, too many, or the same one twice.
    #[error("invalid drop grant: {0}")]
    BadGrant(&'static str),
}

/// What a sender needs to leave messages for the recipient in its mailboxes.
#[derive(Clone, PartialEq, Eq, Zeroize)]
pub struct DropGrant {
    /// The recipient's mailboxes: onion service public keys, 1 to [`MAX_MAILBOXES`].
    pub mailboxes: Vec<[u8; 32]>,
    /// The chain seed, random, fresh for every grant.
    pub seed: Zeroizing<[u8; 32]>,
}

impl DropGrant {
    /// A grant with a fresh random seed.
    ///
    /// # Errors
    ///
    /// [`OfflineError::BadGrant`] for no mailbox, more than [`MAX_MAILBOXES`], or a
    /// mailbox listed twice.
    pub fn generate<R: CryptoRng + ?Sized>(
        mailboxes: Vec<[u8; 32]>,
        rng: &mut R,
    ) -> Result<Self, OfflineError> {
        check_mailboxes(&mailboxes).map_err(OfflineError::BadGrant)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut_slice());
        Ok(Self { mailboxes, seed })
    }

    /// The grant's public name: the first 16 bytes of HKDF(seed, [`ID_INFO`]).
    pub fn id(&self) -> [u8; GRANT_ID_LEN] {
        *hkdf::<GRANT_ID_LEN>(self.seed.as_slice(), &[ID_INFO])
    }
}

/// The seed is secret: `Debug` shows only the id and the number of mailboxes.
impl fmt::Debug for DropGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGrant")
            .field("id", &data_encoding::HEXLOWER.encode(&self.id()))
            .field("mailboxes", &self.mailboxes.len())
            .finish_non_exhaustive()
    }
}

/// Checks a mailbox list: 1 to [`MAX_MAILBOXES`] distinct keys.
pub(crate) fn check_mailboxes(mailboxes: &[[u8; 32]]) -> Result<(), &'static str> {
    if mailboxes.is_empty() {
        return Err("no mailbox");
    }
    if mailboxes.len() > MAX_MAILBOXES {
        return Err("too many mailboxes");
    }
    let distinct: BTreeSet<&[u8; 32]> = mailboxes.iter().collect();
    if distinct.len() != mailboxes.len() {
        return Err("a mailbox is listed twice");
    }
    Ok(())
}

/// One message sealed at one counter: the blobs to deposit into its slot.
pub struct SealedMessage {
    /// The chain counter the message was sealed at.
    pub counter: u32,
    /// The Ed25519 seed of the slot the blobs go to.
    pub slot_seed: Zeroizing<[u8; 32]>,
    /// The blobs, in part order.
    pub blobs: Vec<[u8; BLOB_LEN]>,
}

impl fmt::Debug for SealedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedMessage")
            .field("counter", &self.counter)
            .field("blobs", &self.blobs.len())
            .finish_non_exhaustive()
    }
}

/// The sending side of a grant.
pub struct SendChain {
    grant_id: [u8; GRANT_ID_LEN],
    mailboxes: Vec<[u8; 32]>,
    /// The chain key at `next`. Boxed so that moving the chain moves no key bytes.
    chain_key: Box<Zeroizing<Key>>,
    next: u32,
}

impl fmt::Debug for SendChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendChain")
            .field("grant_id", &data_encoding::HEXLOWER.encode(&self.grant_id))
            .field("mailboxes", &self.mailboxes.len())
            .field("next_counter", &self.next)
            .finish_non_exhaustive()
    }
}

impl SendChain {
    /// The chain at counter 0. A grant built by hand with more than
    /// [`MAX_MAILBOXES`] mailboxes keeps the first ones.
    pub fn new(grant: &DropGrant) -> Self {
        Self {
            grant_id: grant.id(),
            mailboxes: grant
                .mailboxes
                .iter()
                .take(MAX_MAILBOXES)
                .copied()
                .collect(),
            chain_key: Box::new(chain_key_0(&grant.seed)),
            next: 0,
        }
    }

    /// The id of the grant this chain follows.
    pub fn grant_id(&self) -> [u8; GRANT_ID_LEN] {
        self.grant_id
    }

    /// The recipient's mailboxes, as granted.
    pub fn mailboxes(&self) -> &[[u8; 32]] {
        &self.mailboxes
    }

    /// The counter the next message will be sealed at.
    pub fn next_counter(&self) -> u32 {
        self.next
    }

    /// Seals `payload` at the next counter and advances, overwriting the old chain
    /// key. Store the new state before any blob leaves, and never seal the same
    /// message twice: resend the stored blobs instead.
    ///
    /// # Errors
    ///
    /// [`OfflineError::TooLarge`] beyond [`MAX_PAYLOAD_LEN`] bytes,
    /// [`OfflineError::Exhausted`] once counter `u32::MAX` is reached. The chain is
    /// unchanged on error.
    pub fn seal(&mut self, payload: &[u8]) -> Result<SealedMessage, OfflineError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(OfflineError::TooLarge);
        }
        let counter = self.next;
        // Counter u32::MAX is never used: the receiver's window ends short of it.
        if counter == u32::MAX {
            return Err(OfflineError::Exhausted);
        }
        let next = counter + 1;
        let mut chain_key = Zeroizing::new(**self.chain_key);
        let keys = chain_step(&mut chain_key);
        let aad = blob_aad(&self.grant_id, counter);

        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![payload]
        } else {
            payload.chunks(PART_CAPACITY).collect()
        };
        let parts = u16::try_from(chunks.len()).map_err(|_| OfflineError::TooLarge)?;
        let mut blobs = Vec::with_capacity(chunks.len());
        for (index, data) in (0..parts).zip(chunks) {
            blobs.push(seal_part(&keys.message_key, &aad, index, parts, data)?);
        }

        **self.chain_key = *chain_key;
        self.next = next;
        Ok(SealedMessage {
            counter,
            slot_seed: Zeroizing::new(keys.slot_seed),
            blobs,
        })
    }

    /// Serializes the chain for storage (see [`SendChain::from_bytes`]).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let len = 2 + GRANT_ID_LEN + KEY_LEN + 4 + 1 + 32 * self.mailboxes.len();
        // Exact capacity: the buffer holds a key and must never reallocate.
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.push(STATE_VERSION);
        out.push(ROLE_SEND);
        out.extend_from_slice(&self.grant_id);
        out.extend_from_slice(self.chain_key.as_slice());
        out.extend_from_slice(&self.next.to_be_bytes());
        // `new` and `from_bytes` keep at most MAX_MAILBOXES.
        out.push(u8::try_from(self.mailboxes.len()).unwrap_or(u8::MAX));
        for mailbox in &self.mailboxes {
            out.extend_from_slice(mailbox);
        }
        out
    }

    /// Restores a chain written by [`SendChain::to_bytes`]:
    ///
    /// ```text
    /// version (u8 = 1) | role (u8 = 1) | grant id (16) | chain key (32) | next (u32)
    /// | mailbox count (u8, <= 4) | mailboxes (32 each)
    /// ```
    ///
    /// # Errors
    ///
    /// [`OfflineError::BadState`] for another version or role, truncation, trailing
    /// bytes or too many mailboxes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OfflineError> {
        let mut r = Reader::new(bytes);
        read_header(&mut r, ROLE_SEND)?;
        let grant_id = *r.array::<GRANT_ID_LEN>().map_err(bad_state)?;
        let chain_key = Box::new(Zeroizing::new(*r.array::<KEY_LEN>().map_err(bad_state)?));
        let next = r.u32().map_err(bad_state)?;
        let count = usize::from(r.u8().map_err(bad_state)?);
        if count > MAX_MAILBOXES {
            return Err(OfflineError::BadState("too many mailboxes"));
        }
        let mailboxes = (0..count)
            .map(|_| r.array::<32>().copied())
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad_state)?;
        r.finish().map_err(bad_state)?;
        Ok(Self {
            grant_id,
            mailboxes,
            chain_key,
            next,
        })
    }
}

/// A slot the receiver should look at.
pub struct SlotToScan {
    /// The chain counter of the slot.
    pub counter: u32,
    /// The Ed25519 seed of the slot.
    pub slot_seed: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SlotToScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotToScan")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// What [`RecvChain::open`] made of a fetch.
#[derive(Default)]
pub struct Opened {
    /// Whole payloads, in counter order, with their counters.
    pub messages: Vec<(u32, Vec<u8>)>,
    /// Counters whose blobs were consumed (opened, or found unreadable and
    /// discarded), in increasing order: the caller acks these slots' blobs after
    /// storing the result.
    pub consumed: Vec<u32>,
}

/// Payloads are plaintext: `Debug` shows only counters and sizes.
impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<(u32, usize)> =
            self.messages.iter().map(|(c, p)| (*c, p.len())).collect();
        f.debug_struct("Opened")
            .field("messages", &messages)
            .field("consumed", &self.consumed)
            .finish()
    }
}

/// The keys of one chain position, on the heap and wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SlotKeys {
    slot_seed: Key,
    message_key: Key,
}

/// The receiving side of a grant.
pub struct RecvChain {
    grant_id: [u8; GRANT_ID_LEN],
    /// The chain key at `next`.
    chain_key: Box<Zeroizing<Key>>,
    next: u32,
    /// Counters below `next` not received yet, with their keys.
    skipped: BTreeMap<u32, Box<SlotKeys>>,
}

impl fmt::Debug for RecvChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvChain")
            .field("grant_id", &data_encoding::HEXLOWER.encode(&self.grant_id))
            .field("next_counter", &self.next)
            .field("skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

/// What the blobs of one slot amount to.
enum Slot {
    /// Every part authenticated: the payload.
    Complete(Zeroizing<Vec<u8>>),
    /// Some parts, or no blob at all: wait for the rest.
    Incomplete,
    /// Blobs, none of which authenticated as a part of this slot.
    Unreadable,
}

impl RecvChain {
    /// The chain at counter 0.
    pub fn new(grant: &DropGrant) -> Self {
        Self {
            grant_id: grant.id(),
            chain_key: Box::new(chain_key_0(&grant.seed)),
            next: 0,
            skipped: BTreeMap::new(),
        }
    }

    /// The id of the grant this chain follows.
    pub fn grant_id(&self) -> [u8; GRANT_ID_LEN] {
        self.grant_id
    }

    /// The lowest counter not opened yet and not skipped.
    pub fn next_counter(&self) -> u32 {
        self.next
    }

    /// The skipped counters (oldest first) then `next..next + WINDOW` (short of
    /// `u32::MAX`, which is never used). Does not change state.
    pub fn slots_to_scan(&self) -> Vec<SlotToScan> {
        let skipped = self.skipped.iter().map(|(counter, keys)| SlotToScan {
            counter: *counter,
            slot_seed: Zeroizing::new(keys.slot_seed),
        });
        let end = self.window_end();
        let (ahead, _) = self.derive_ahead(end - self.next);
        let ahead = (self.next..end)
            .zip(ahead)
            .map(|(counter, keys)| SlotToScan {
                counter,
                slot_seed: Zeroizing::new(keys.slot_seed),
            });
        skipped.chain(ahead).collect()
    }

    /// Opens what a fetch found: for each counter, the blobs its slot held (any
    /// order).
    ///
    /// Transactional: on error the state is unchanged. A slot with fewer parts than
    /// its header says is left for later (not consumed, its key kept). Blobs that
    /// fail to authenticate are dropped, never returned; a slot holding nothing
    /// else is reported in `consumed` (so its blobs get deleted) but keeps its key.
    /// Advances `next` past the highest counter opened; counters between become
    /// skipped (at most [`MAX_SKIPPED`], lowest evicted first). Keys of opened
    /// counters are deleted, so a replay opens nothing; counters below `next` with
    /// no key are ignored.
    ///
    /// # Errors
    ///
    /// [`OfflineError::BadState`] if a counter is listed twice or lies beyond the
    /// scan window ([`RecvChain::slots_to_scan`] never lists one).
    pub fn open(&mut self, found: &[(u32, Vec<Vec<u8>>)]) -> Result<Opened, OfflineError> {
        let end = self.window_end();
        let mut listed = BTreeSet::new();
        for (counter, _) in found {
            if !listed.insert(*counter) {
                return Err(OfflineError::BadState("a counter is listed twice"));
            }
            if *counter >= end {
                return Err(OfflineError::BadState(
                    "a counter lies beyond the scan window",
                ));
            }
        }
        let ahead_count = listed
            .last()
            .map_or(0, |last| last.saturating_add(1).saturating_sub(self.next));
        let (ahead, _) = self.derive_ahead(ahead_count);

        let mut messages = BTreeMap::new();
        let mut unreadable = BTreeSet::new();
        for (counter, blobs) in found {
            let keys = match counter.checked_sub(self.next) {
                Some(offset) => usize::try_from(offset).ok().and_then(|i| ahead.get(i)),
                None => self.skipped.get(counter),
            };
            // Below `next` with no key: opened already, or evicted.
            let Some(keys) = keys else { continue };
            match open_slot(&self.grant_id, *counter, &keys.message_key, blobs) {
                Slot::Complete(payload) => {
                    messages.insert(*counter, payload);
                }
                Slot::Unreadable => {
                    unreadable.insert(*counter);
                }
                Slot::Incomplete => {}
            }
        }
        drop(ahead);

        // Nothing below can fail: commit.
        for counter in messages.keys() {
            self.skipped.remove(counter);
        }
        if let Some(highest) = messages
            .keys()
            .next_back()
            .copied()
            .filter(|c| *c >= self.next)
        {
            let (passed, chain_key) = self.derive_ahead(highest - self.next + 1);
            for (counter, keys) in (self.next..=highest).zip(passed) {
                if !messages.contains_key(&counter) {
                    self.skipped.insert(counter, keys);
                }
            }
            while self.skipped.len() > MAX_SKIPPED {
                self.skipped.pop_first();
            }
            *self.chain_key = chain_key;
            self.next = highest + 1;
        }

        let consumed = messages
            .keys()
            .chain(&unreadable)
            .copied()
            .collect::<BTreeSet<_>>();
        Ok(Opened {
            messages: messages
                .into_iter()
                .map(|(counter, payload)| (counter, payload.to_vec()))
                .collect(),
            consumed: consumed.into_iter().collect(),
        })
    }

    /// Serializes the chain for storage (see [`RecvChain::from_bytes`]).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let len = 2 + GRANT_ID_LEN + KEY_LEN + 4 + 2 + (4 + 2 * KEY_LEN) * self.skipped.len();
        // Exact capacity: the buffer holds keys and must never reallocate.
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.push(STATE_VERSION);
        out.push(ROLE_RECV);
        out.extend_from_slice(&self.grant_id);
        out.extend_from_slice(self.chain_key.as_slice());
        out.extend_from_slice(&self.next.to_be_bytes());
        // At most MAX_SKIPPED entries.
        let count = u16::try_from(self.skipped.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for (counter, keys) in &self.skipped {
            out.extend_from_slice(&counter.to_be_bytes());
            out.extend_from_slice(&keys.slot_seed);
            out.extend_from_slice(&keys.message_key);
        }
        out
    }

    /// Restores a chain written by [`RecvChain::to_bytes`]:
    ///
    /// ```text
    /// version (u8 = 1) | role (u8 = 2) | grant id (16) | chain key (32) | next (u32)
    /// | skipped count (u16, <= 256)
    /// | count x (counter (u32) | slot seed (32) | message key (32))
    /// ```
    ///
    /// Skipped counters are strictly increasing and below `next`.
    ///
    /// # Errors
    ///
    /// [`OfflineError::BadState`] for another version or role, truncation, trailing
    /// bytes, too many skipped counters, or counters out of order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OfflineError> {
        let mut r = Reader::new(bytes);
        read_header(&mut r, ROLE_RECV)?;
        let grant_id = *r.array::<GRANT_ID_LEN>().map_err(bad_state)?;
        let chain_key = Box::new(Zeroizing::new(*r.array::<KEY_LEN>().map_err(bad_state)?));
        let next = r.u32().map_err(bad_state)?;
        let count = usize::from(r.u16().map_err(bad_state)?);
        if count > MAX_SKIPPED {
            return Err(OfflineError::BadState("too many skipped counters"));
        }
        let mut skipped = BTreeMap::new();
        for _ in 0..count {
            let counter = r.u32().map_err(bad_state)?;
            let in_order = skipped
                .last_key_value()
                .is_none_or(|(last, _)| *last < counter);
            if !in_order || counter >= next {
                return Err(OfflineError::BadState("skipped counters out of order"));
            }
            let keys = Box::new(SlotKeys {
                slot_seed: *r.array::<KEY_LEN>().map_err(bad_state)?,
                message_key: *r.array::<KEY_LEN>().map_err(bad_state)?,
            });
            skipped.insert(counter, keys);
        }
        r.finish().map_err(bad_state)?;
        Ok(Self {
            grant_id,
            chain_key,
            next,
            skipped,
        })
    }

    /// One past the last counter scanned: `next + WINDOW`, at most `u32::MAX`
    /// (so that counter is never scanned).
    fn window_end(&self) -> u32 {
        self.next.saturating_add(WINDOW)
    }

    /// The keys of `next..next + count` and the chain key at `next + count`.
    #[expect(
        clippy::vec_box,
        reason = "the keys move into the skipped map, whose nodes move their values"
    )]
    fn derive_ahead(&self, count: u32) -> (Vec<Box<SlotKeys>>, Zeroizing<Key>) {
        let mut chain_key = Zeroizing::new(**self.chain_key);
        let keys = (0..count)
            .map(|_| {
                let step = chain_step(&mut chain_key);
                Box::new(SlotKeys {
                    slot_seed: step.slot_seed,
                    message_key: step.message_key,
                })
            })
            .collect();
        (keys, chain_key)
    }
}

/// Reads and checks the version and role bytes of a stored chain.
fn read_header(r: &mut Reader<'_>, role: u8) -> Result<(), OfflineError> {
    if r.u8().map_err(bad_state)? != STATE_VERSION {
        return Err(OfflineError::BadState("unsupported version"));
    }
    if r.u8().map_err(bad_state)? != role {
        return Err(OfflineError::BadState("state of the other side of a chain"));
    }
    Ok(())
}

fn bad_state(error: WireError) -> OfflineError {
    OfflineError::BadState(match error {
        WireError::Trailing => "trailing bytes",
        _ => "truncated",
    })
}

/// HKDF-SHA-256 without salt: `N` bytes from `ikm` and the concatenated `info`.
fn hkdf<const N: usize>(ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; N]> {
    const { assert!(N <= 255 * 32) };
    let mut okm = Zeroizing::new([0u8; N]);
    // Expansion fails only for outputs longer than 255 hash blocks, which the
    // assertion above rules out at compile time: there is no error to handle.
    let _ = Hkdf::<Sha256>::new(None, ikm).expand_multi_info(info, okm.as_mut_slice());
    okm
}

/// Chain key 0 of a grant.
fn chain_key_0(seed: &[u8; 32]) -> Zeroizing<Key> {
    hkdf::<KEY_LEN>(seed, &[CHAIN_INFO])
}

/// The keys of one chain position.
#[derive(Zeroize, ZeroizeOnDrop)]
struct StepKeys {
    message_key: Key,
    slot_seed: Key,
}

/// `KDF_CK` with the slot seed: returns the keys of the position `chain_key` is at
/// and moves `chain_key` to the next position, in place.
fn chain_step(chain_key: &mut Key) -> StepKeys {
    // HMAC pads a key shorter than the hash block with zeros (RFC 2104); padding it
    // here lets the block-sized constructor take it, which cannot fail.
    let mut block = Zeroizing::new([0u8; 64]);
    for (dst, src) in block.iter_mut().zip(chain_key.iter()) {
        *dst = *src;
    }
    let keyed = <Hmac<Sha256> as KeyInit>::new((&*block).into());
    let derive = |input: u8| -> Key {
        // Cloning the keyed state saves re-deriving the inner and outer pads.
        let mut mac = keyed.clone();
        mac.update(&[input]);
        mac.finalize().into_bytes().into()
    };
    let keys = StepKeys {
        message_key: derive(CHAIN_MESSAGE_KEY_INPUT),
        slot_seed: derive(CHAIN_SLOT_SEED_INPUT),
    };
    *chain_key = derive(CHAIN_NEXT_KEY_INPUT);
    keys
}

/// The associated data of every blob of one counter.
fn blob_aad(grant_id: &[u8; GRANT_ID_LEN], counter: u32) -> [u8; AAD_LEN] {
    let mut aad = [0u8; AAD_LEN];
    let fields = BLOB_AAD_PREFIX
        .iter()
        .chain(grant_id)
        .copied()
        .chain(counter.to_be_bytes());
    for (dst, src) in aad.iter_mut().zip(fields) {
        *dst = src;
    }
    aad
}

/// The cipher and nonce of one part. Derived, not random: every part key seals
/// exactly one blob.
fn part_cipher(message_key: &Key, part: u16) -> (XChaCha20Poly1305, XNonce) {
    let okm = hkdf::<{ KEY_LEN + NONCE_LEN }>(message_key, &[BLOB_INFO, &part.to_be_bytes()]);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    for (dst, src) in key.iter_mut().chain(nonce.iter_mut()).zip(okm.iter()) {
        *dst = *src;
    }
    (XChaCha20Poly1305::new((&*key).into()), XNonce::from(nonce))
}

/// Seals one part into a blob. `data` is at most [`PART_CAPACITY`] bytes.
fn seal_part(
    message_key: &Key,
    aad: &[u8; AAD_LEN],
    part: u16,
    parts: u16,
    data: &[u8],
) -> Result<[u8; BLOB_LEN], OfflineError> {
    let len = u16::try_from(data.len())
        .ok()
        .filter(|len| usize::from(*len) <= PART_CAPACITY)
        .ok_or(OfflineError::TooLarge)?;
    let mut plaintext = Zeroizing::new([0u8; BLOB_PLAINTEXT_LEN]);
    let fields = part
        .to_be_bytes()
        .into_iter()
        .chain(parts.to_be_bytes())
        .chain(len.to_be_bytes())
        .chain(data.iter().copied());
    for (dst, src) in plaintext.iter_mut().zip(fields) {
        *dst = src;
    }
    let (cipher, nonce) = part_cipher(message_key, part);
    // Encryption fails only for inputs of gigabytes.
    let tag = cipher
        .encrypt_inout_detached(&nonce, aad, plaintext.as_mut_slice().into())
        .map_err(|_| OfflineError::TooLarge)?;
    let mut blob = [0u8; BLOB_LEN];
    for (dst, src) in blob.iter_mut().zip(plaintext.iter().chain(tag.iter())) {
        *dst = *src;
    }
    Ok(blob)
}

/// A part that authenticated and parsed.
struct Part {
    parts: u16,
    data: Zeroizing<Vec<u8>>,
}

/// Opens `blob` as part `part`, checking its header and padding.
fn open_part(
    cipher: &(XChaCha20Poly1305, XNonce),
    aad: &[u8; AAD_LEN],
    part: u16,
    blob: &[u8],
) -> Option<Part> {
    let blob: &[u8; BLOB_LEN] = blob.try_into().ok()?;
    let (ciphertext, tag) = blob.split_last_chunk::<TAG_LEN>()?;
    let ciphertext: &[u8; BLOB_PLAINTEXT_LEN] = ciphertext.try_into().ok()?;
    let mut plaintext = Zeroizing::new(*ciphertext);
    let (aead, nonce) = cipher;
    aead.decrypt_inout_detached(nonce, aad, plaintext.as_mut_slice().into(), tag.into())
        .ok()?;

    let (index, rest) = plaintext.split_first_chunk::<2>()?;
    let (parts, rest) = rest.split_first_chunk::<2>()?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let (index, parts) = (u16::from_be_bytes(*index), u16::from_be_bytes(*parts));
    let len = usize::from(u16::from_be_bytes(*len));
    let (data, padding) = rest.split_at_checked(len)?;
    let is_last = index.checked_add(1) == Some(parts);
    let len_ok = if is_last {
        len > 0 || parts == 1
    } else {
        len == PART_CAPACITY
    };
    let valid = index == part
        && index < parts
        && usize::from(parts) <= MAX_PARTS
        && len_ok
        && padding.iter().all(|b| *b == 0);
    valid.then(|| Part {
        parts,
        data: Zeroizing::new(data.to_vec()),
    })
}

/// Sorts the blobs of one slot into parts and assembles the payload.
///
/// A blob's part number is not in clear, so each blob is tried against the part
/// numbers not found yet, lowest first: blobs kept in deposit order open at the
/// first try. Once a part has opened, only numbers below its part count are tried.
fn open_slot(
    grant_id: &[u8; GRANT_ID_LEN],
    counter: u32,
    message_key: &Key,
    blobs: &[Vec<u8>],
) -> Slot {
    let aad = blob_aad(grant_id, counter);
    let mut ciphers: BTreeMap<u16, (XChaCha20Poly1305, XNonce)> = BTreeMap::new();
    let mut found: BTreeMap<u16, Zeroizing<Vec<u8>>> = BTreeMap::new();
    let mut total: Option<u16> = None;
    for blob in blobs {
        let limit = total.unwrap_or(MAX_PARTS_U16);
        for index in (0..limit).filter(|i| !found.contains_key(i)) {
            let cipher = ciphers
                .entry(index)
                .or_insert_with(|| part_cipher(message_key, index));
            let Some(part) = open_part(cipher, &aad, index, blob) else {
                continue;
            };
            // The first part to open fixes the count; an authentic part that
            // disagrees is dropped.
            if *total.get_or_insert(part.parts) == part.parts {
                found.insert(index, part.data);
            }
            break;
        }
    }
    match total {
        None if blobs.is_empty() => Slot::Incomplete,
        None => Slot::Unreadable,
        Some(total) if found.len() == usize::from(total) => {
            let len = found.values().map(|d| d.len()).sum();
            let mut payload = Zeroizing::new(Vec::with_capacity(len));
            for data in found.values() {
                payload.extend_from_slice(data);
            }
            Slot::Complete(payload)
        }
        Some(_) => Slot::Incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{RngExt, SeedableRng};

    const MAILBOX: [u8; 32] = [0x4d; 32];

    fn grant(rng: &mut StdRng) -> DropGrant {
        DropGrant::generate(vec![MAILBOX], rng).unwrap()
    }

    fn pair(seed: u64) -> (SendChain, RecvChain, StdRng) {
        let mut rng = StdRng::seed_from_u64(seed);
        let grant = grant(&mut rng);
        (SendChain::new(&grant), RecvChain::new(&grant), rng)
    }

    fn payload(len: usize, tag: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ tag).collect()
    }

    fn found(sealed: &SealedMessage) -> (u32, Vec<Vec<u8>>) {
        (
            sealed.counter,
            sealed.blobs.iter().map(|b| b.to_vec()).collect(),
        )
    }

    /// Replaces the chain by its stored form read back, checking that the form is
    /// stable.
    fn reload(chain: &mut RecvChain) {
        let bytes = chain.to_bytes();
        let restored = RecvChain::from_bytes(&bytes).unwrap();
        assert_eq!(*restored.to_bytes(), *bytes);
        *chain = restored;
    }

    fn reload_send(chain: &mut SendChain) {
        let bytes = chain.to_bytes();
        let restored = SendChain::from_bytes(&bytes).unwrap();
        assert_eq!(*restored.to_bytes(), *bytes);
        *chain = restored;
    }

    fn counters(slots: &[SlotToScan]) -> Vec<u32> {
        slots.iter().map(|s| s.counter).collect()
    }

    /// Opens, reloads, and returns the result.
    fn open(chain: &mut RecvChain, found: &[(u32, Vec<Vec<u8>>)]) -> Opened {
        let opened = chain.open(found).unwrap();
        reload(chain);
        opened
    }

    #[test]
    fn payloads_of_every_boundary_size_round_trip() {
        let (mut send, mut recv, _) = pair(1);
        let sizes = [
            (0, 1),
            (1, 1),
            (PART_CAPACITY, 1),
            (PART_CAPACITY + 1, 2),
            (2 * PART_CAPACITY, 2),
            (MAX_PARTS * PART_CAPACITY, MAX_PARTS),
        ];
        for (i, (len, parts)) in sizes.into_iter().enumerate() {
            let message = payload(len, i as u8);
            let sealed = send.seal(&message).unwrap();
            reload_send(&mut send);
            assert_eq!(sealed.counter, i as u32);
            assert_eq!(sealed.blobs.len(), parts, "length {len}");
            assert!(sealed.blobs.iter().all(|b| b.len() == BLOB_LEN));
            let opened = open(&mut recv, &[found(&sealed)]);
            assert_eq!(
                opened.messages,
                vec![(sealed.counter, message)],
                "length {len}"
            );
            assert_eq!(opened.consumed, vec![sealed.counter]);
        }
        assert_eq!(recv.next_counter(), sizes.len() as u32);
    }

    #[test]
    fn one_byte_over_the_limit_is_refused_and_changes_nothing() {
        let (mut send, _, _) = pair(2);
        let before = send.to_bytes();
        assert_eq!(
            send.seal(&payload(MAX_PAYLOAD_LEN + 1, 0)).unwrap_err(),
            OfflineError::TooLarge
        );
        assert_eq!(*send.to_bytes(), *before);
        assert_eq!(send.seal(b"x").unwrap().counter, 0);
    }

    #[test]
    fn slot_seeds_differ_per_counter_and_per_grant_and_match_the_receiver() {
        let (mut send, recv, mut rng) = pair(3);
        let other = SendChain::new(&grant(&mut rng)).seal(b"x").unwrap();
        let sealed: Vec<SealedMessage> = (0..WINDOW).map(|_| send.seal(b"x").unwrap()).collect();
        let mut seeds: Vec<[u8; 32]> = sealed.iter().map(|s| *s.slot_seed).collect();
        seeds.push(*other.slot_seed);
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), WINDOW as usize + 1);

        let scan = recv.slots_to_scan();
        assert_eq!(counters(&scan), (0..WINDOW).collect::<Vec<_>>());
        for (slot, sealed) in scan.iter().zip(&sealed) {
            assert_eq!(slot.slot_seed, sealed.slot_seed);
        }
    }

    #[test]
    fn out_of_order_delivery_with_gaps() {
        let (mut send, mut recv, _) = pair(4);
        let sealed: Vec<SealedMessage> = (0..6)
            .map(|i| send.seal(&payload(300 * i, i as u8)).unwrap())
            .collect();
        let message = |i: usize| (i as u32, payload(300 * i, i as u8));

        let opened = open(&mut recv, &[found(&sealed[3])]);
        assert_eq!(opened.messages, vec![message(3)]);
        assert_eq!(recv.next_counter(), 4);
        let scan = counters(&recv.slots_to_scan());
        assert_eq!(scan[..3], [0, 1, 2]);
        assert_eq!(scan[3..], (4..4 + WINDOW).collect::<Vec<_>>()[..]);

        let opened = open(&mut recv, &[found(&sealed[5]), found(&sealed[1])]);
        assert_eq!(opened.messages, vec![message(1), message(5)]);
        assert_eq!(opened.consumed, vec![1, 5]);
        assert_eq!(counters(&recv.slots_to_scan())[..3], [0, 2, 4]);

        let opened = open(
            &mut recv,
            &[found(&sealed[4]), found(&sealed[0]), found(&sealed[2])],
        );
        assert_eq!(opened.messages, vec![message(0), message(2), message(4)]);
        assert_eq!(recv.next_counter(), 6);
        assert_eq!(
            counters(&recv.slots_to_scan()),
            (6..6 + WINDOW).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_replay_opens_nothing() {
        let (mut send, mut recv, _) = pair(5);
        let first = send.seal(b"first").unwrap();
        let second = send.seal(b"second").unwrap();
        open(&mut recv, &[found(&second)]);
        open(&mut recv, &[found(&first)]);
        let before = recv.to_bytes();
        for replay in [&first, &second] {
            let opened = recv.open(&[found(replay)]).unwrap();
            assert!(opened.messages.is_empty() && opened.consumed.is_empty());
            assert_eq!(*recv.to_bytes(), *before);
        }
    }

    #[test]
    fn a_tampered_blob_is_dropped_and_the_others_open() {
        let (mut send, mut recv, _) = pair(6);
        let sealed: Vec<SealedMessage> = (0..3).map(|i| send.seal(&[i; 10]).unwrap()).collect();
        let mut tampered = found(&sealed[1]);
        tampered.1[0][100] ^= 0x01;
        let opened = open(&mut recv, &[found(&sealed[0]), tampered, found(&sealed[2])]);
        assert_eq!(opened.messages, vec![(0, vec![0; 10]), (2, vec![2; 10])]);
        assert_eq!(opened.consumed, vec![0, 1, 2]);
        // Whoever can deposit into the slot cannot make the receiver give up on it.
        assert_eq!(counters(&recv.slots_to_scan())[0], 1);
        let opened = open(&mut recv, &[found(&sealed[1])]);
        assert_eq!(opened.messages, vec![(1, vec![1; 10])]);
    }

    #[test]
    fn blobs_of_the_wrong_length_are_dropped() {
        let (mut send, mut recv, _) = pair(7);
        let sealed = send.seal(b"hi").unwrap();
        let mut blob = sealed.blobs[0].to_vec();
        blob.push(0);
        let opened = open(&mut recv, &[(0, vec![blob, vec![], vec![1; 10]])]);
        assert!(opened.messages.is_empty());
        assert_eq!(opened.consumed, vec![0]);
        assert_eq!(
            open(&mut recv, &[found(&sealed)]).messages,
            vec![(0, b"hi".to_vec())]
        );
    }

    #[test]
    fn an_incomplete_slot_waits_for_its_other_parts() {
        let (mut send, mut recv, mut rng) = pair(8);
        let message = payload(2 * PART_CAPACITY + 5, 9);
        let sealed = send.seal(&message).unwrap();
        assert_eq!(sealed.blobs.len(), 3);
        let (counter, mut blobs) = found(&sealed);
        let before = recv.to_bytes();
        for missing in 0..3 {
            let mut some = blobs.clone();
            some.remove(missing);
            some.reverse();
            let opened = recv.open(&[(counter, some)]).unwrap();
            assert!(opened.messages.is_empty() && opened.consumed.is_empty());
            assert_eq!(*recv.to_bytes(), *before);
        }
        // An empty slot is not consumed either.
        let opened = recv.open(&[(counter, vec![])]).unwrap();
        assert!(opened.consumed.is_empty());
        blobs.shuffle(&mut rng);
        let opened = open(&mut recv, &[(counter, blobs)]);
        assert_eq!(opened.messages, vec![(0, message)]);
    }

    #[test]
    fn duplicate_blobs_in_a_slot_are_harmless() {
        let (mut send, mut recv, _) = pair(9);
        let message = payload(PART_CAPACITY + 1, 3);
        let sealed = send.seal(&message).unwrap();
        let (counter, blobs) = found(&sealed);
        let doubled = vec![
            blobs[1].clone(),
            blobs[1].clone(),
            blobs[0].clone(),
            blobs[0].clone(),
        ];
        let opened = open(&mut recv, &[(counter, doubled)]);
        assert_eq!(opened.messages, vec![(0, message)]);
    }

    #[test]
    fn skipped_counters_are_bounded_oldest_first() {
        let (mut send, mut recv, _) = pair(10);
        let sealed: Vec<SealedMessage> = (0..6 * WINDOW)
            .map(|i| send.seal(&i.to_be_bytes()).unwrap())
            .collect();
        // Each round opens only the last counter of the window: 63 more are skipped.
        let rounds = 5;
        let mut opened_counters = Vec::new();
        for _ in 0..rounds {
            let last = recv.next_counter() + WINDOW - 1;
            opened_counters.push(last);
            open(&mut recv, &[found(&sealed[last as usize])]);
        }
        let skipped: Vec<u32> = (0..rounds * WINDOW)
            .filter(|c| !opened_counters.contains(c))
            .collect();
        assert!(skipped.len() > MAX_SKIPPED);
        let kept = &skipped[skipped.len() - MAX_SKIPPED..];
        let scan = counters(&recv.slots_to_scan());
        assert_eq!(scan[..MAX_SKIPPED], *kept);
        assert_eq!(scan.len(), MAX_SKIPPED + WINDOW as usize);
        // The oldest kept counter still opens...
        let opened = open(&mut recv, &[found(&sealed[kept[0] as usize])]);
        assert_eq!(opened.messages.len(), 1);
        // ...while an evicted one is lost.
        let evicted = skipped[skipped.len() - MAX_SKIPPED - 1];
        let opened = open(&mut recv, &[found(&sealed[evicted as usize])]);
        assert!(opened.messages.is_empty() && opened.consumed.is_empty());
    }

    #[test]
    fn chains_of_two_grants_do_not_open_each_other() {
        let (mut send_a, mut recv_a, mut rng) = pair(11);
        let grant_b = grant(&mut rng);
        let (mut send_b, mut recv_b) = (SendChain::new(&grant_b), RecvChain::new(&grant_b));
        assert_ne!(send_a.grant_id(), send_b.grant_id());
        assert_eq!(recv_b.grant_id(), grant_b.id());
        let a = send_a.seal(b"for a").unwrap();
        let b = send_b.seal(b"for b").unwrap();
        let opened = open(&mut recv_b, &[found(&a)]);
        assert!(opened.messages.is_empty());
        assert_eq!(opened.consumed, vec![0]);
        assert_eq!(recv_b.next_counter(), 0);
        assert!(open(&mut recv_a, &[found(&b)]).messages.is_empty());
        assert_eq!(
            open(&mut recv_a, &[found(&a)]).messages,
            vec![(0, b"for a".to_vec())]
        );
        assert_eq!(
            open(&mut recv_b, &[found(&b)]).messages,
            vec![(0, b"for b".to_vec())]
        );
    }

    /// A blob for counter 0 of `grant` holding exactly `plaintext`, sealed as part
    /// `part`.
    fn forge(grant: &DropGrant, part: u16, plaintext: &[u8; BLOB_PLAINTEXT_LEN]) -> Vec<u8> {
        let mut chain_key = chain_key_0(&grant.seed);
        let keys = chain_step(&mut chain_key);
        let (cipher, nonce) = part_cipher(&keys.message_key, part);
        let mut buf = plaintext.to_vec();
        let tag = cipher
            .encrypt_inout_detached(&nonce, &blob_aad(&grant.id(), 0), buf.as_mut_slice().into())
            .unwrap();
        buf.extend_from_slice(&tag);
        buf
    }

    fn part_plaintext(part: u16, parts: u16, len: u16, data: &[u8]) -> [u8; BLOB_PLAINTEXT_LEN] {
        let mut p = [0u8; BLOB_PLAINTEXT_LEN];
        p[..2].copy_from_slice(&part.to_be_bytes());
        p[2..4].copy_from_slice(&parts.to_be_bytes());
        p[4..6].copy_from_slice(&len.to_be_bytes());
        p[6..6 + data.len()].copy_from_slice(data);
        p
    }

    #[test]
    fn authentic_blobs_with_bad_contents_are_refused() {
        let mut rng = StdRng::seed_from_u64(12);
        let grant = grant(&mut rng);
        let full = [7u8; PART_CAPACITY];
        let mut nonzero_padding = part_plaintext(0, 1, 3, b"abc");
        nonzero_padding[BLOB_PLAINTEXT_LEN - 1] = 1;
        let mut too_long = part_plaintext(0, 1, PART_CAPACITY as u16, &full);
        too_long[4..6].copy_from_slice(&(PART_CAPACITY as u16 + 1).to_be_bytes());
        let bad = [
            (0, nonzero_padding),
            (0, too_long),
            // The header names another part than the key.
            (0, part_plaintext(1, 2, 3, b"abc")),
            (0, part_plaintext(0, 0, 3, b"abc")),
            (
                0,
                part_plaintext(0, MAX_PARTS_U16 + 1, PART_CAPACITY as u16, &full),
            ),
            // Only the last part may be short, and only an empty payload is empty.
            (0, part_plaintext(0, 2, 3, b"abc")),
            (1, part_plaintext(1, 2, 0, b"")),
        ];
        for (i, (part, plaintext)) in bad.iter().enumerate() {
            let mut recv = RecvChain::new(&grant);
            let opened = recv
                .open(&[(0, vec![forge(&grant, *part, plaintext)])])
                .unwrap();
            assert!(opened.messages.is_empty(), "case {i}");
            assert_eq!(opened.consumed, vec![0], "case {i}");
            assert_eq!(recv.next_counter(), 0);
        }
        // The same construction with valid contents opens.
        let mut recv = RecvChain::new(&grant);
        let good = forge(&grant, 0, &part_plaintext(0, 1, 3, b"abc"));
        assert_eq!(
            recv.open(&[(0, vec![good])]).unwrap().messages,
            vec![(0, b"abc".to_vec())]
        );
    }

    #[test]
    fn open_is_transactional() {
        let (mut send, mut recv, _) = pair(13);
        let sealed: Vec<SealedMessage> = (0..3).map(|_| send.seal(b"m").unwrap()).collect();
        open(&mut recv, &[found(&sealed[1])]);
        let before = recv.to_bytes();
        let twice = [found(&sealed[0]), found(&sealed[2]), found(&sealed[0])];
        assert_eq!(
            recv.open(&twice).unwrap_err(),
            OfflineError::BadState("a counter is listed twice")
        );
        assert_eq!(*recv.to_bytes(), *before);
        let beyond = [found(&sealed[2]), (2 + WINDOW, vec![])];
        assert!(matches!(recv.open(&beyond), Err(OfflineError::BadState(_))));
        assert_eq!(*recv.to_bytes(), *before);
        let opened = open(&mut recv, &[found(&sealed[0]), found(&sealed[2])]);
        assert_eq!(opened.consumed, vec![0, 2]);
    }

    /// Both chains placed at counter `next` with the chain key of counter 0, so
    /// that they agree with each other (not with a chain that really got there).
    fn chains_at(grant: &DropGrant, send_next: u32, recv_next: u32) -> (SendChain, RecvChain) {
        let at = |bytes: Zeroizing<Vec<u8>>, next: u32| {
            let mut bytes = bytes.to_vec();
            bytes[2 + GRANT_ID_LEN + KEY_LEN..][..4].copy_from_slice(&next.to_be_bytes());
            bytes
        };
        (
            SendChain::from_bytes(&at(SendChain::new(grant).to_bytes(), send_next)).unwrap(),
            RecvChain::from_bytes(&at(RecvChain::new(grant).to_bytes(), recv_next)).unwrap(),
        )
    }

    #[test]
    fn the_last_counters_of_a_chain() {
        let mut rng = StdRng::seed_from_u64(14);
        let grant = grant(&mut rng);
        let (mut send, recv) = chains_at(&grant, u32::MAX - 1, u32::MAX - 2);
        assert_eq!(
            counters(&recv.slots_to_scan()),
            [u32::MAX - 2, u32::MAX - 1]
        );
        let (_, mut recv) = chains_at(&grant, 0, u32::MAX - 1);
        assert_eq!(counters(&recv.slots_to_scan()), [u32::MAX - 1]);

        let last = send.seal(b"last").unwrap();
        assert_eq!(last.counter, u32::MAX - 1);
        assert_eq!(send.next_counter(), u32::MAX);
        let before = send.to_bytes();
        assert_eq!(send.seal(b"one more").unwrap_err(), OfflineError::Exhausted);
        assert_eq!(*send.to_bytes(), *before);

        let opened = open(&mut recv, &[found(&last)]);
        assert_eq!(opened.messages, vec![(u32::MAX - 1, b"last".to_vec())]);
        assert_eq!(recv.next_counter(), u32::MAX);
        assert!(recv.slots_to_scan().is_empty());
        assert!(recv.open(&[(u32::MAX, vec![])]).is_err());
    }

    #[test]
    fn stored_states_are_read_strictly() {
        let (mut send, mut recv, _) = pair(15);
        let sealed: Vec<SealedMessage> = (0..4).map(|_| send.seal(b"m").unwrap()).collect();
        open(&mut recv, &[found(&sealed[3])]);
        let recv_bytes = recv.to_bytes().to_vec();
        let send_bytes = send.to_bytes().to_vec();
        for cut in 0..recv_bytes.len() {
            assert!(
                RecvChain::from_bytes(&recv_bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        for cut in 0..send_bytes.len() {
            assert!(
                SendChain::from_bytes(&send_bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        for bytes in [&recv_bytes, &send_bytes] {
            let mut longer = bytes.clone();
            longer.push(0);
            let mut version = bytes.clone();
            version[0] = 2;
            for bad in [longer, version] {
                assert!(RecvChain::from_bytes(&bad).is_err());
                assert!(SendChain::from_bytes(&bad).is_err());
            }
        }
        assert!(RecvChain::from_bytes(&send_bytes).is_err());
        assert!(SendChain::from_bytes(&recv_bytes).is_err());

        // Skipped counters 0, 1, 2 start at this offset; swap the first two.
        let entries = 2 + GRANT_ID_LEN + KEY_LEN + 4 + 2;
        let entry = 4 + 2 * KEY_LEN;
        let mut unordered = recv_bytes.clone();
        unordered[entries..entries + 4].copy_from_slice(&1u32.to_be_bytes());
        unordered[entries + entry..entries + entry + 4].copy_from_slice(&0u32.to_be_bytes());
        assert!(RecvChain::from_bytes(&unordered).is_err());
        // A skipped counter at or above `next`.
        let mut ahead = recv_bytes.clone();
        ahead[entries + 2 * entry..entries + 2 * entry + 4].copy_from_slice(&4u32.to_be_bytes());
        assert!(RecvChain::from_bytes(&ahead).is_err());
        let mut too_many = recv_bytes[..entries].to_vec();
        too_many[entries - 2..].copy_from_slice(&(MAX_SKIPPED as u16 + 1).to_be_bytes());
        for i in 0..=MAX_SKIPPED as u32 {
            too_many.extend_from_slice(&i.to_be_bytes());
            too_many.extend_from_slice(&[0; 2 * KEY_LEN]);
        }
        too_many[2 + GRANT_ID_LEN + KEY_LEN..][..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            RecvChain::from_bytes(&too_many).unwrap_err(),
            OfflineError::BadState("too many skipped counters")
        );
        let mut mailboxes = send_bytes[..send_bytes.len() - 33].to_vec();
        mailboxes.push(MAX_MAILBOXES as u8 + 1);
        mailboxes.extend_from_slice(&[9; 32 * (MAX_MAILBOXES + 1)]);
        assert!(SendChain::from_bytes(&mailboxes).is_err());
        assert_eq!(send.mailboxes(), [MAILBOX]);
    }

    #[test]
    fn grants_need_one_to_four_distinct_mailboxes() {
        let mut rng = StdRng::seed_from_u64(16);
        let keys: Vec<[u8; 32]> = (0..5).map(|i| [i; 32]).collect();
        for bad in [vec![], keys.clone(), vec![keys[0], keys[1], keys[0]]] {
            assert!(matches!(
                DropGrant::generate(bad, &mut rng),
                Err(OfflineError::BadGrant(_))
            ));
        }
        let a = DropGrant::generate(keys[..4].to_vec(), &mut rng).unwrap();
        let b = DropGrant::generate(keys[..4].to_vec(), &mut rng).unwrap();
        assert_ne!(a.seed, b.seed);
        assert_ne!(a.id(), b.id());
        assert_eq!(SendChain::new(&a).mailboxes(), &keys[..4]);
    }

    #[test]
    fn debug_output_hides_keys_and_payloads() {
        let (mut send, mut recv, mut rng) = pair(17);
        let grant = grant(&mut rng);
        let sealed = send.seal(b"secret words").unwrap();
        let opened = recv.open(&[found(&sealed)]).unwrap();
        let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);
        let shown = format!(
            "{grant:?} {sealed:?} {send:?} {recv:?} {opened:?} {:?}",
            recv.slots_to_scan()[0]
        );
        for secret in [hex(grant.seed.as_slice()), hex(sealed.slot_seed.as_slice())] {
            assert!(!shown.contains(&secret[..16]), "{shown}");
        }
        assert!(
            !shown.contains("secret") && !shown.contains("115, 101"),
            "{shown}"
        );
        assert!(shown.contains(&hex(&grant.id())), "{shown}");
    }

    /// Independent of the code under test: every step below is written out from
    /// the description in the module documentation, with `hkdf`, `hmac` and the
    /// AEAD called directly. The hex values come from
    /// `tests/vectors/offline_vectors.py`, a Python implementation.
    #[test]
    fn known_answers() {
        use chacha20poly1305::aead::{Aead, Payload};
        use sha2::Digest;

        fn hkdf_ref(ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
            let mut okm = vec![0; len];
            Hkdf::<Sha256>::new(None, ikm)
                .expand(info, &mut okm)
                .unwrap();
            okm
        }
        fn hmac_ref(key: &[u8], input: u8) -> Vec<u8> {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(&[input]);
            mac.finalize().into_bytes().to_vec()
        }
        fn blob_ref(
            mk: &[u8],
            id: &[u8],
            counter: u32,
            part: u16,
            parts: u16,
            data: &[u8],
        ) -> Vec<u8> {
            let mut info = b"nightjar/v1/drop/blob".to_vec();
            info.extend_from_slice(&part.to_be_bytes());
            let okm = hkdf_ref(mk, &info, 56);
            let mut plaintext = Vec::new();
            for field in [part, parts, data.len() as u16] {
                plaintext.extend_from_slice(&field.to_be_bytes());
            }
            plaintext.extend_from_slice(data);
            plaintext.resize(482, 0);
            let mut aad = b"nightjar/v1/drop".to_vec();
            aad.extend_from_slice(id);
            aad.extend_from_slice(&counter.to_be_bytes());
            let cipher = XChaCha20Poly1305::new_from_slice(&okm[..32]).unwrap();
            let nonce = XNonce::try_from(&okm[32..]).unwrap();
            cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: &plaintext,
                        aad: &aad,
                    },
                )
                .unwrap()
        }
        let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);

        let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
        let id = hkdf_ref(&seed, b"nightjar/v1/drop/id", 16);
        let ck0 = hkdf_ref(&seed, b"nightjar/v1/drop/chain", 32);
        let (mk0, slot0, ck1) = (hmac_ref(&ck0, 1), hmac_ref(&ck0, 3), hmac_ref(&ck0, 2));
        let (mk1, slot1) = (hmac_ref(&ck1, 1), hmac_ref(&ck1, 3));
        let second = payload(PART_CAPACITY + 10, 0);
        let blob0 = blob_ref(&mk0, &id, 0, 0, 1, b"nightjar offline");
        let blob1 = blob_ref(&mk1, &id, 1, 1, 2, &second[PART_CAPACITY..]);
        assert_eq!(hex(&id), KAT_GRANT_ID);
        assert_eq!(hex(&slot0), KAT_SLOT_SEED_0);
        assert_eq!(hex(&slot1), KAT_SLOT_SEED_1);
        assert_eq!(hex(&Sha256::digest(&blob0)), KAT_BLOB_0_SHA256);
        assert_eq!(hex(&Sha256::digest(&blob1)), KAT_BLOB_1_PART_1_SHA256);

        let grant = DropGrant {
            mailboxes: vec![MAILBOX],
            seed: Zeroizing::new(seed),
        };
        assert_eq!(grant.id().as_slice(), id);
        let mut send = SendChain::new(&grant);
        let sealed = send.seal(b"nightjar offline").unwrap();
        assert_eq!(sealed.slot_seed.as_slice(), slot0);
        assert_eq!(sealed.blobs, [<[u8; BLOB_LEN]>::try_from(blob0).unwrap()]);
        let sealed = send.seal(&second).unwrap();
        assert_eq!(sealed.slot_seed.as_slice(), slot1);
        assert_eq!(sealed.blobs[1].as_slice(), blob1);
        let scan = RecvChain::new(&grant).slots_to_scan();
        assert_eq!(scan[0].slot_seed.as_slice(), slot0);
        assert_eq!(scan[1].slot_seed.as_slice(), slot1);
    }

    const KAT_GRANT_ID: &str = "08dfca94e38bb3da6094bb776d09804b";
    const KAT_SLOT_SEED_0: &str =
        "b0c2b2377a64534a0510fbe24a7812424a068ead5467159dfd61542e43911bc8";
    const KAT_SLOT_SEED_1: &str =
        "badd856025f9ed497f2dbc0d888d09610898b556bb73b711f2c46ea897ba78d6";
    const KAT_BLOB_0_SHA256: &str =
        "11ff624e3049e45a478ba31775f0366497bcb92c92dbd52ff6472cc36179771d";
    const KAT_BLOB_1_PART_1_SHA256: &str =
        "a9ec29360ba8d241466c6754515ffdfb00e21c8e53f093a6db4c972e45463522";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the delivery order, batching and duplication, every message
        /// opens exactly once with its own payload, and the state survives storage.
        #[test]
        fn any_delivery_opens_each_message_once(
            lens in proptest::collection::vec(0usize..1200, 1..10),
            seed in any::<u64>(),
        ) {
            let (mut send, mut recv, _) = pair(seed);
            let sealed: Vec<SealedMessage> = lens
                .iter()
                .enumerate()
                .map(|(i, len)| send.seal(&payload(*len, i as u8)).unwrap())
                .collect();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut deliveries: Vec<usize> = (0..sealed.len()).chain(0..sealed.len() / 2).collect();
            deliveries.shuffle(&mut rng);
            let batch_len = rng.random_range(1..4);
            let mut got = BTreeMap::new();
            for batch in deliveries.chunks(batch_len) {
                let batch: BTreeSet<usize> = batch.iter().copied().collect();
                let found: Vec<_> = batch.iter().map(|i| found(&sealed[*i])).collect();
                for (counter, message) in open(&mut recv, &found).messages {
                    prop_assert!(got.insert(counter, message).is_none());
                }
            }
            prop_assert_eq!(got.len(), lens.len());
            for (counter, message) in got {
                prop_assert_eq!(message, payload(lens[counter as usize], counter as u8));
            }
        }

        #[test]
        fn stored_noise_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = RecvChain::from_bytes(&bytes);
            let _ = SendChain::from_bytes(&bytes);
        }
    }
}

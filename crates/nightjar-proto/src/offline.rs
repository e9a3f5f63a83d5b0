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
const _: () = assert!(MAX_PARTS <= u16::MAX as usize && PART_CAPACITY <= u16::MAX as usize);
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
        let (ahead, _) = self.derive_ahead(self.window_end() - self.next);
        let ahead = (self.next..).zip(ahead).map(|(counter, keys)| SlotToScan {
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
            for (counter, keys) in (self.next..).zip(passed) {
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

    /// One past the last counter scanned: `next + WINDOW`, short of `u32::MAX`.
    fn window_end(&self) -> u32 {
        self.next.saturating_add(WINDOW).min(u32::MAX)
    }

    /// The keys of `next..next + count` and the chain key at `next + count`.
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
mod tests {}

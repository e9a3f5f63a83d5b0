//! The storage encoding of a [`Ratchet`], version 1.
//!
//! ```text
//! version (u8 = 1) | flags (u8)
//! DHs secret (32) | RK (32) | NHKs (32) | NHKr (32)
//! [DHr (32)]                  if flags & HAS_PEER
//! [CKs (32) | HKs (32)]       if flags & HAS_SENDING
//! [CKr (32) | HKr (32)]       if flags & HAS_RECEIVING
//! Ns (u32) | Nr (u32) | PN (u32)
//! chain count (u16, <= MAX_STORED_CHAINS), oldest first, each:
//!     header key (32) | key count (u16) | key count * (n (u32) | message key (32))
//! ```
//!
//! Integers are big-endian. Message numbers within a chain are strictly increasing,
//! header keys are distinct, and the key total is at most `MAX_SKIPPED_KEYS`.
//! A chain with the current `HKr` can only be the newest. Nothing may follow the
//! last chain. Only three flag values occur: a fresh
//! responder (0), an initiator that has not received yet (`HAS_PEER |
//! HAS_SENDING`), and any state after a DH step (all three).

use std::collections::BTreeMap;

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::kdf::Key;
use super::skipped::{BoxedKey, SkippedKeys};
use super::{
    KEY_LEN, MAX_SKIPPED_KEYS, MAX_STORED_CHAINS, Ratchet, RatchetError, STATE_VERSION, State,
};
use crate::wire::{Reader, WireError};

const HAS_PEER: u8 = 0x01;
const HAS_SENDING: u8 = 0x02;
const HAS_RECEIVING: u8 = 0x04;
const FRESH_RESPONDER: u8 = 0;
const FRESH_INITIATOR: u8 = HAS_PEER | HAS_SENDING;
const RUNNING: u8 = HAS_PEER | HAS_SENDING | HAS_RECEIVING;

const FIXED_LEN: usize = 2 + 4 * KEY_LEN + 3 * 4 + 2;
const CHAIN_LEN: usize = KEY_LEN + 2;
const ENTRY_LEN: usize = 4 + KEY_LEN;

pub(super) fn encode(ratchet: &Ratchet) -> Zeroizing<Vec<u8>> {
    let st = &*ratchet.state;
    let skipped = &ratchet.skipped;
    let optional = [
        st.dhr.as_ref(),
        st.cks.as_ref(),
        st.hks.as_ref(),
        st.ckr.as_ref(),
        st.hkr.as_ref(),
    ];
    let len = FIXED_LEN
        + KEY_LEN * optional.iter().flatten().count()
        + CHAIN_LEN * skipped.chain_count()
        + ENTRY_LEN * skipped.key_count();
    // Exact capacity: the buffer holds secrets and must never reallocate, which
    // would leave an unwiped copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(len));

    let mut flags = 0;
    if st.dhr.is_some() {
        flags |= HAS_PEER;
    }
    if st.cks.is_some() && st.hks.is_some() {
        flags |= HAS_SENDING;
    }
    if st.ckr.is_some() && st.hkr.is_some() {
        flags |= HAS_RECEIVING;
    }
    out.push(STATE_VERSION);
    out.push(flags);
    out.extend_from_slice(st.dhs.as_bytes());
    out.extend_from_slice(&st.rk);
    out.extend_from_slice(&st.nhks);
    out.extend_from_slice(&st.nhkr);
    for key in optional.into_iter().flatten() {
        out.extend_from_slice(key);
    }
    out.extend_from_slice(&st.ns.to_be_bytes());
    out.extend_from_slice(&st.nr.to_be_bytes());
    out.extend_from_slice(&st.pn.to_be_bytes());

    // The store's bounds keep both counts far below u16::MAX.
    out.extend_from_slice(&count_u16(skipped.chain_count()).to_be_bytes());
    for chain in skipped.oldest_first() {
        out.extend_from_slice(chain.header_key());
        out.extend_from_slice(&count_u16(chain.key_count()).to_be_bytes());
        for (n, key) in chain.keys() {
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(key);
        }
    }
    out
}

fn count_u16(count: usize) -> u16 {
    u16::try_from(count).unwrap_or(u16::MAX)
}

pub(super) fn decode(bytes: &[u8]) -> Result<Ratchet, RatchetError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != STATE_VERSION {
        return Err(RatchetError::UnsupportedVersion(version));
    }
    let flags = r.u8()?;
    if ![FRESH_RESPONDER, FRESH_INITIATOR, RUNNING].contains(&flags) {
        return Err(RatchetError::BadState);
    }
    let dhs = StaticSecret::from(*key(&mut r)?);
    // Filled in place so that the keys go straight from the input to the heap.
    let mut st = Box::new(State {
        dhs_public: PublicKey::from(&dhs).to_bytes(),
        dhs,
        dhr: None,
        rk: *key(&mut r)?,
        cks: None,
        ckr: None,
        hks: None,
        hkr: None,
        nhks: *key(&mut r)?,
        nhkr: *key(&mut r)?,
        ns: 0,
        nr: 0,
        pn: 0,
    });
    if flags & HAS_PEER != 0 {
        st.dhr = Some(*key(&mut r)?);
    }
    if flags & HAS_SENDING != 0 {
        st.cks = Some(*key(&mut r)?);
        st.hks = Some(*key(&mut r)?);
    }
    if flags & HAS_RECEIVING != 0 {
        st.ckr = Some(*key(&mut r)?);
        st.hkr = Some(*key(&mut r)?);
    }
    st.ns = r.u32()?;
    st.nr = r.u32()?;
    st.pn = r.u32()?;
    // A chain that does not exist has no position in it.
    if (st.cks.is_none() && (st.ns != 0 || st.pn != 0)) || (st.ckr.is_none() && st.nr != 0) {
        return Err(RatchetError::BadState);
    }

    let skipped = decode_skipped(&mut r)?;
    r.finish()?;
    // Keys skipped in the current receiving chain are always in the newest stored
    // chain; new ones are appended there.
    if let Some(hkr) = &st.hkr
        && skipped
            .position(hkr)
            .is_some_and(|i| i + 1 != skipped.chain_count())
    {
        return Err(RatchetError::BadState);
    }
    Ok(Ratchet { state: st, skipped })
}

fn decode_skipped(r: &mut Reader<'_>) -> Result<SkippedKeys, RatchetError> {
    let chains = usize::from(r.u16()?);
    if chains > MAX_STORED_CHAINS {
        return Err(RatchetError::BadState);
    }
    let mut store = SkippedKeys::default();
    let mut total = 0usize;
    for _ in 0..chains {
        let header_key = key(r)?;
        if store.position(header_key).is_some() {
            return Err(RatchetError::BadState);
        }
        let count = usize::from(r.u16()?);
        total = total.saturating_add(count);
        // Checked before reading, so absurd counts cost nothing.
        if total > MAX_SKIPPED_KEYS {
            return Err(RatchetError::BadState);
        }
        let mut keys = BTreeMap::new();
        let mut previous: Option<u32> = None;
        for _ in 0..count {
            let n = r.u32()?;
            if previous.is_some_and(|p| p >= n) {
                return Err(RatchetError::BadState);
            }
            previous = Some(n);
            keys.insert(n, BoxedKey::new(key(r)?));
        }
        store.push_restored(header_key, keys);
    }
    Ok(store)
}

/// The key at the reader's position.
fn key<'a>(r: &mut Reader<'a>) -> Result<&'a Key, RatchetError> {
    Ok(r.array::<KEY_LEN>()?)
}

/// Any flaw found while reading stored state makes that state invalid.
impl From<WireError> for RatchetError {
    fn from(_: WireError) -> Self {
        Self::BadState
    }
}

//! The blob store: slots of fixed-size blobs in RAM, with global and per-slot
//! bounds and a time to live. Time is passed in; nothing here reads a clock.

use std::collections::HashMap;
use std::mem::size_of;

use zeroize::Zeroize;

use crate::wire::{BlobId, SlotId};

/// Bytes of bookkeeping counted for each blob besides its data: its entry in
/// the slot's vector and the allocator's header of its boxed data.
pub const BLOB_OVERHEAD: usize = size_of::<Stored>() + 16;
/// Bytes of bookkeeping counted for each non-empty slot: its hash-table entry
/// (with a control byte and load-factor slack) and its vector's allocation header.
pub const SLOT_OVERHEAD: usize = (size_of::<(SlotId, Vec<Stored>)>() + 1) * 8 / 7 + 16;

/// The store's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most blobs stored at once.
    pub max_blobs: usize,
    /// Most accounted bytes at once (data plus overheads).
    pub max_bytes: usize,
    /// Most blobs in one slot.
    pub slot_quota: usize,
    /// Seconds a blob lives.
    pub ttl_secs: u64,
}

/// Why a blob was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The store is at its blob or byte bound.
    Full,
    /// The slot is at its quota.
    SlotFull,
}

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The blob is now stored.
    Stored,
    /// The slot already held this blob; nothing changed.
    AlreadyPresent,
}

struct Stored {
    id: BlobId,
    expires_at: u64,
    data: Box<[u8]>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        // Blobs are ciphertext, but there is no reason to leave them in freed memory.
        self.data.zeroize();
    }
}

/// The blob store.
pub struct Store {
    slots: HashMap<SlotId, Vec<Stored>>,
    limits: Limits,
    blobs: usize,
    bytes: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: slot ids are not for logs.
        f.debug_struct("Store")
            .field("slots", &self.slots.len())
            .field("blobs", &self.blobs)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Store {
    /// An empty store.
    pub fn new(limits: Limits) -> Self {
        Store {
            slots: HashMap::new(),
            limits,
            blobs: 0,
            bytes: 0,
        }
    }

    fn blob_cost(data_len: usize) -> usize {
        data_len + BLOB_OVERHEAD
    }

    /// Stores `data` in `slot` under `id` at time `now`. Refused without any
    /// change when a bound would be crossed.
    pub fn insert(
        &mut self,
        slot: SlotId,
        id: BlobId,
        data: &[u8],
        now: u64,
    ) -> Result<Inserted, StoreError> {
        // Expired blobs no longer count against the slot's quota, sweep or not.
        self.remove_where(&slot, |b| b.expires_at <= now);
        let existing = self.slots.get(&slot);
        if let Some(blobs) = existing {
            if blobs.iter().any(|b| b.id == id) {
                return Ok(Inserted::AlreadyPresent);
            }
            if blobs.len() >= self.limits.slot_quota {
                return Err(StoreError::SlotFull);
            }
        }
        let cost = Self::blob_cost(data.len()) + if existing.is_none() { SLOT_OVERHEAD } else { 0 };
        if self.blobs >= self.limits.max_blobs
            || self.bytes.saturating_add(cost) > self.limits.max_bytes
        {
            return Err(StoreError::Full);
        }
        let blob = Stored {
            id,
            expires_at: now.saturating_add(self.limits.ttl_secs),
            data: data.into(),
        };
        self.slots.entry(slot).or_default().push(blob);
        self.blobs += 1;
        self.bytes += cost;
        Ok(Inserted::Stored)
    }

    /// Ids of the live blobs in `slot`, oldest first.
    pub fn list(&self, slot: &SlotId, now: u64) -> Vec<BlobId> {
        self.live(slot, now).map(|b| b.id).collect()
    }

    /// Up to `limit` live blobs of `slot`, oldest first, and whether more remain.
    pub fn fetch(&self, slot: &SlotId, now: u64, limit: usize) -> (Vec<(BlobId, Vec<u8>)>, bool) {
        let mut live = self.live(slot, now);
        let out: Vec<_> = live
            .by_ref()
            .take(limit)
            .map(|b| (b.id, b.data.to_vec()))
            .collect();
        (out, live.next().is_some())
    }

    fn live<'a>(&'a self, slot: &SlotId, now: u64) -> impl Iterator<Item = &'a Stored> + 'a {
        self.slots
            .get(slot)
            .into_iter()
            .flatten()
            .filter(move |b| b.expires_at > now)
    }

    /// Deletes the blobs of `slot` with the given ids; returns how many it held.
    pub fn ack(&mut self, slot: &SlotId, ids: &[BlobId]) -> usize {
        self.remove_where(slot, |b| ids.contains(&b.id))
    }

    fn remove_where(&mut self, slot: &SlotId, mut doomed: impl FnMut(&Stored) -> bool) -> usize {
        let Some(blobs) = self.slots.get_mut(slot) else {
            return 0;
        };
        let before = blobs.len();
        let mut freed = 0;
        blobs.retain(|b| {
            let drop = doomed(b);
            if drop {
                freed += Self::blob_cost(b.data.len());
            }
            !drop
        });
        let removed = before - blobs.len();
        if blobs.is_empty() {
            self.slots.remove(slot);
            freed += SLOT_OVERHEAD;
        }
        self.blobs -= removed;
        self.bytes -= freed;
        removed
    }

    /// Drops every blob that has expired at `now`; returns how many.
    pub fn sweep(&mut self, now: u64) -> usize {
        let mut removed = 0;
        let mut freed = 0;
        self.slots.retain(|_, blobs| {
            let before = blobs.len();
            blobs.retain(|b| {
                let keep = b.expires_at > now;
                if !keep {
                    freed += Self::blob_cost(b.data.len());
                }
                keep
            });
            removed += before - blobs.len();
            if blobs.is_empty() {
                freed += SLOT_OVERHEAD;
            }
            !blobs.is_empty()
        });
        self.blobs -= removed;
        self.bytes -= freed;
        removed
    }

    /// Blobs stored.
    pub fn blob_count(&self) -> usize {
        self.blobs
    }

    /// Accounted bytes stored (data plus overheads).
    pub fn byte_count(&self) -> usize {
        self.bytes
    }

    /// Non-empty slots.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// How full the store is, in thousandths of the tighter of its bounds.
    pub fn fill_permille(&self) -> u32 {
        let by_blobs = self.blobs.saturating_mul(1000) / self.limits.max_blobs.max(1);
        let by_bytes = self.bytes.saturating_mul(1000) / self.limits.max_bytes.max(1);
        u32::try_from(by_blobs.max(by_bytes)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: usize = 10;

    fn limits() -> Limits {
        Limits {
            max_blobs: 5,
            max_bytes: 1 << 20,
            slot_quota: 3,
            ttl_secs: 100,
        }
    }

    fn id(n: u8) -> BlobId {
        BlobId([n; 16])
    }

    fn slot(n: u8) -> SlotId {
        SlotId([n; 32])
    }

    #[test]
    fn insert_list_fetch_ack() {
        let mut s = Store::new(limits());
        assert_eq!(
            s.insert(slot(1), id(1), &[1; SIZE], 0),
            Ok(Inserted::Stored)
        );
        assert_eq!(
            s.insert(slot(1), id(2), &[2; SIZE], 0),
            Ok(Inserted::Stored)
        );
        assert_eq!(s.list(&slot(1), 0), vec![id(1), id(2)]);
        assert!(s.list(&slot(2), 0).is_empty());
        let (blobs, more) = s.fetch(&slot(1), 0, 10);
        assert_eq!(blobs, vec![(id(1), vec![1; SIZE]), (id(2), vec![2; SIZE])]);
        assert!(!more);
        let (blobs, more) = s.fetch(&slot(1), 0, 1);
        assert_eq!(blobs.len(), 1);
        assert!(more);
        assert_eq!(s.ack(&slot(1), &[id(1), id(9)]), 1);
        assert_eq!(s.list(&slot(1), 0), vec![id(2)]);
        assert_eq!(s.ack(&slot(2), &[id(2)]), 0);
        assert_eq!(s.ack(&slot(1), &[id(2)]), 1);
        assert_eq!((s.blob_count(), s.byte_count(), s.slot_count()), (0, 0, 0));
    }

    #[test]
    fn accounting_counts_blobs_and_slots() {
        let mut s = Store::new(limits());
        s.insert(slot(1), id(1), &[0; SIZE], 0).unwrap();
        assert_eq!(s.byte_count(), SIZE + BLOB_OVERHEAD + SLOT_OVERHEAD);
        s.insert(slot(1), id(2), &[0; SIZE], 0).unwrap();
        assert_eq!(s.byte_count(), 2 * (SIZE + BLOB_OVERHEAD) + SLOT_OVERHEAD);
        s.insert(slot(2), id(2), &[0; SIZE], 0).unwrap();
        assert_eq!(
            s.byte_count(),
            3 * (SIZE + BLOB_OVERHEAD) + 2 * SLOT_OVERHEAD
        );
        assert_eq!(s.blob_count(), 3);
    }

    #[test]
    fn repeated_blob_is_not_stored_twice() {
        let mut s = Store::new(limits());
        s.insert(slot(1), id(1), &[0; SIZE], 0).unwrap();
        assert_eq!(
            s.insert(slot(1), id(1), &[0; SIZE], 0),
            Ok(Inserted::AlreadyPresent)
        );
        assert_eq!(s.blob_count(), 1);
    }

    #[test]
    fn slot_quota_and_global_bounds_hold() {
        let mut s = Store::new(limits());
        for n in 0..3 {
            s.insert(slot(1), id(n), &[0; SIZE], 0).unwrap();
        }
        assert_eq!(
            s.insert(slot(1), id(3), &[0; SIZE], 0),
            Err(StoreError::SlotFull)
        );
        s.insert(slot(2), id(3), &[0; SIZE], 0).unwrap();
        s.insert(slot(2), id(4), &[0; SIZE], 0).unwrap();
        let before = (s.blob_count(), s.byte_count());
        assert_eq!(
            s.insert(slot(3), id(5), &[0; SIZE], 0),
            Err(StoreError::Full)
        );
        assert_eq!((s.blob_count(), s.byte_count()), before);
        assert_eq!(s.fill_permille(), 1000);
        // Freeing one makes room again.
        s.ack(&slot(2), &[id(4)]);
        assert_eq!(
            s.insert(slot(3), id(5), &[0; SIZE], 0),
            Ok(Inserted::Stored)
        );
    }

    #[test]
    fn byte_bound_counts_overheads() {
        let one_slot = SIZE + BLOB_OVERHEAD + SLOT_OVERHEAD;
        let mut s = Store::new(Limits {
            max_bytes: one_slot + SIZE + BLOB_OVERHEAD,
            ..limits()
        });
        s.insert(slot(1), id(1), &[0; SIZE], 0).unwrap();
        // A second slot would cost a slot's overhead too: refused...
        assert_eq!(
            s.insert(slot(2), id(2), &[0; SIZE], 0),
            Err(StoreError::Full)
        );
        // ...while a second blob in the same slot fits exactly.
        assert_eq!(
            s.insert(slot(1), id(2), &[0; SIZE], 0),
            Ok(Inserted::Stored)
        );
        assert_eq!(s.byte_count(), s.limits.max_bytes);
        assert_eq!(s.fill_permille(), 1000);
    }

    #[test]
    fn expired_blobs_are_hidden_then_swept() {
        let mut s = Store::new(limits());
        s.insert(slot(1), id(1), &[0; SIZE], 0).unwrap();
        s.insert(slot(1), id(2), &[0; SIZE], 50).unwrap();
        s.insert(slot(2), id(3), &[0; SIZE], 10).unwrap();
        assert_eq!(s.list(&slot(1), 99), vec![id(1), id(2)]);
        // At 100 the first blob's life is over: invisible before any sweep.
        assert_eq!(s.list(&slot(1), 100), vec![id(2)]);
        assert_eq!(s.fetch(&slot(1), 100, 10).0.len(), 1);
        assert_eq!(s.blob_count(), 3);
        assert_eq!(s.sweep(100), 1);
        assert_eq!(s.sweep(110), 1);
        assert_eq!((s.blob_count(), s.slot_count()), (1, 1));
        assert_eq!(s.byte_count(), SIZE + BLOB_OVERHEAD + SLOT_OVERHEAD);
        assert_eq!(s.sweep(150), 1);
        assert_eq!((s.blob_count(), s.byte_count(), s.slot_count()), (0, 0, 0));
    }

    #[test]
    fn expired_blobs_do_not_count_against_the_quota() {
        let mut s = Store::new(limits());
        for n in 0..3 {
            s.insert(slot(1), id(n), &[0; SIZE], 0).unwrap();
        }
        assert_eq!(
            s.insert(slot(1), id(3), &[0; SIZE], 99),
            Err(StoreError::SlotFull)
        );
        assert_eq!(
            s.insert(slot(1), id(3), &[0; SIZE], 100),
            Ok(Inserted::Stored)
        );
        assert_eq!((s.blob_count(), s.slot_count()), (1, 1));
        assert_eq!(s.byte_count(), SIZE + BLOB_OVERHEAD + SLOT_OVERHEAD);
    }
}

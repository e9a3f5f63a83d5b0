//! One locked region of memory for long-term secrets.
//!
//! A profile's identity keys live as long as the program runs. If the system
//! swapped out the memory that holds them, they would be written to disk, where
//! they outlive the process and the profile's encryption. So the key objects
//! the program works with keep their secrets in [`LockedKey`]s: 32-byte slots of
//! one page-aligned region, locked into RAM (`mlock`). The first page is taken
//! by [`reserve`] as the program starts, before anything else (SQLCipher locks
//! its own memory too) can use up the memory-lock limit; the region grows by a
//! page when it is full (128 keys a page; an identity needs two).
//!
//! Locking can be refused (the memory-lock limit, `ulimit -l`, is zero or used
//! up, and the process may not exceed it). The keys are then kept in the region
//! all the same, and [`status`] says why it is not locked, so the program can
//! warn.
//!
//! A key is only ever read inside [`LockedKey::with`]: callers build the
//! short-lived key object they need from the bytes (the dalek types zeroize
//! themselves when dropped). A slot is zeroed when its key is dropped.
//!
//! The pages are never freed: a page of the region lives, locked, until the
//! process ends. Locking needs no `unsafe`: [`region::lock`] takes the address of
//! memory we own, and its guard is kept for good by forgetting it.

use core::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rand_core::CryptoRng;
use zeroize::Zeroize as _;

/// Bytes in one key.
pub const KEY_LEN: usize = 32;
/// Bytes in one page of the region.
pub const PAGE_LEN: usize = 4096;
/// Keys in one page.
const KEYS_PER_PAGE: usize = PAGE_LEN / KEY_LEN;

/// One page of the region, aligned so that it is exactly one page of the
/// system's (4 KiB pages; larger pages hold it whole).
#[repr(C, align(4096))]
struct Page([[u8; KEY_LEN]; KEYS_PER_PAGE]);

/// The region: its pages and which slots are taken.
struct Region {
    pages: Vec<(&'static mut Page, u128)>,
    status: LockStatus,
}

static REGION: Mutex<Region> = Mutex::new(Region {
    pages: Vec::new(),
    status: LockStatus::Empty,
});

fn region() -> MutexGuard<'static, Region> {
    REGION.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the region is locked into RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockStatus {
    /// No key was ever stored.
    Empty,
    /// Every page of the region is locked.
    Locked,
    /// A page could not be locked; the reason, as the system gave it.
    NotLocked(String),
}

impl fmt::Display for LockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockStatus::Empty => f.write_str("no long-term key in memory"),
            LockStatus::Locked => f.write_str("long-term keys are locked in memory"),
            LockStatus::NotLocked(reason) => write!(
                f,
                "long-term keys could not be locked in memory ({reason}); the system may \
                 write them to swap. Raise the memory-lock limit (`ulimit -l`, or \
                 LimitMEMLOCK= for a service)"
            ),
        }
    }
}

/// Whether the region that holds long-term keys is locked into RAM.
pub fn status() -> LockStatus {
    region().status.clone()
}

/// Takes (and locks) the region's first page now, if it has none yet: called
/// first thing, so that the locked memory it needs is not used up by others.
pub fn reserve() {
    let mut region = region();
    if region.pages.is_empty() {
        region.add_page();
    }
}

impl Region {
    /// Takes a free slot, adding (and locking) a page if all are taken.
    fn take(&mut self) -> (usize, usize) {
        let index = match self.pages.iter().position(|(_, used)| *used != u128::MAX) {
            Some(index) => index,
            None => {
                self.add_page();
                self.pages.len() - 1
            }
        };
        let used = &mut self.pages[index].1;
        let slot = used.trailing_ones() as usize;
        *used |= 1 << slot;
        (index, slot)
    }

    /// Adds a page, locked if the system allows.
    fn add_page(&mut self) {
        let page: &'static mut Page = Box::leak(Box::new(Page([[0; KEY_LEN]; KEYS_PER_PAGE])));
        match region::lock(page.0.as_ptr(), PAGE_LEN) {
            // Unlocking would let the page be swapped out while keys still use
            // it; it stays locked until the process ends.
            Ok(guard) => {
                std::mem::forget(guard);
                if self.status == LockStatus::Empty {
                    self.status = LockStatus::Locked;
                }
            }
            Err(e) => self.status = LockStatus::NotLocked(e.to_string()),
        }
        self.pages.push((page, 0));
    }

    fn slot(&mut self, page: usize, slot: usize) -> &mut [u8; KEY_LEN] {
        &mut self.pages[page].0.0[slot]
    }
}

/// A 32-byte secret key kept in the locked region; zeroed when dropped.
pub struct LockedKey {
    page: usize,
    slot: usize,
}

impl LockedKey {
    /// A key whose bytes `fill` writes into its slot (which starts zeroed), so
    /// they are never anywhere else. If `fill` panics, the slot is zeroed and
    /// freed all the same.
    pub fn new(fill: impl FnOnce(&mut [u8; KEY_LEN])) -> Self {
        let (page, slot) = region().take();
        let key = Self { page, slot };
        fill(region().slot(page, slot));
        key
    }

    /// A key of random bytes.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::new(|key| rng.fill_bytes(key))
    }

    /// A copy of `bytes`.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        Self::new(|key| key.copy_from_slice(bytes))
    }

    /// Runs `f` on the key's bytes. Other keys wait meanwhile, so `f` should
    /// only build what it needs from them.
    pub fn with<T>(&self, f: impl FnOnce(&[u8; KEY_LEN]) -> T) -> T {
        let mut region = region();
        f(region.slot(self.page, self.slot))
    }
}

impl Drop for LockedKey {
    fn drop(&mut self) {
        let mut region = region();
        region.slot(self.page, self.slot).zeroize();
        region.pages[self.page].1 &= !(1 << self.slot);
    }
}

impl fmt::Debug for LockedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockedKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_bytes_and_free_their_slots() {
        let first = LockedKey::from_bytes(&[7; KEY_LEN]);
        let many: Vec<LockedKey> = (0..=KEYS_PER_PAGE as u8)
            .map(|i| LockedKey::from_bytes(&[i; KEY_LEN]))
            .collect();
        for (i, key) in many.iter().enumerate() {
            key.with(|bytes| assert_eq!(bytes, &[i as u8; KEY_LEN]));
        }
        first.with(|bytes| assert_eq!(bytes, &[7; KEY_LEN]));
        // More keys than one page holds: the region grew.
        assert!(region().pages.len() >= 2);
        let (page, slot) = (first.page, first.slot);
        drop(first);
        // Another test may have taken the slot since, but never with these bytes.
        assert_ne!(
            region().slot(page, slot),
            &[7; KEY_LEN],
            "a dropped key is zeroed"
        );
        let again = LockedKey::from_bytes(&[9; KEY_LEN]);
        again.with(|bytes| assert_eq!(bytes, &[9; KEY_LEN]));
        assert_ne!(status(), LockStatus::Empty);
    }
}

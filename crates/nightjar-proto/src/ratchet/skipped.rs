//! Message keys of messages that have not arrived yet, grouped by the header key of
//! the receiving chain they belong to (specification, section 4).
//!
//! Grouping by chain means an incoming header is trial-decrypted once per stored
//! chain rather than once per stored key, and a chain's header key can outlive its
//! last message key: that is what lets a replay of an old message be recognised as
//! a duplicate instead of as noise.

use std::collections::{BTreeMap, VecDeque};

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::kdf::Key;
use super::{MAX_SKIPPED_KEYS, MAX_STORED_CHAINS};

/// A key on the heap, wiped on drop. Boxed so that the containers below move
/// pointers around, never the key bytes, and leave no stale copies behind.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct BoxedKey(Box<Key>);

impl BoxedKey {
    pub(super) fn new(key: &Key) -> Self {
        Self(Box::new(*key))
    }

    pub(super) fn as_bytes(&self) -> &Key {
        &self.0
    }
}

/// A past or current receiving chain and the keys still held for it.
pub(super) struct StoredChain {
    header_key: BoxedKey,
    /// Message number -> message key. Ordered, so the oldest key is the first.
    keys: BTreeMap<u32, BoxedKey>,
}

impl StoredChain {
    pub(super) fn header_key(&self) -> &Key {
        self.header_key.as_bytes()
    }

    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = (u32, &Key)> {
        self.keys.iter().map(|(n, k)| (*n, k.as_bytes()))
    }
}

/// The skipped-key store.
///
/// Chains are kept oldest first. Within a chain keys are only ever added in
/// increasing message number, and chains are only ever appended, so "oldest key"
/// is always the first key of the first chain that has any.
#[derive(Default)]
pub(super) struct SkippedKeys {
    chains: VecDeque<StoredChain>,
    total: usize,
}

impl SkippedKeys {
    /// Number of message keys held.
    pub(super) fn key_count(&self) -> usize {
        self.total
    }

    /// Number of chains whose header key is held.
    pub(super) fn chain_count(&self) -> usize {
        self.chains.len()
    }

    /// Chains, newest first, with their index for [`Self::get`] and [`Self::remove`].
    pub(super) fn newest_first(&self) -> impl Iterator<Item = (usize, &StoredChain)> {
        self.chains.iter().enumerate().rev()
    }

    /// Chains, oldest first (serialization order).
    pub(super) fn oldest_first(&self) -> impl Iterator<Item = &StoredChain> {
        self.chains.iter()
    }

    /// Index of the chain with this header key.
    pub(super) fn position(&self, header_key: &Key) -> Option<usize> {
        self.newest_first()
            .find(|(_, c)| bool::from(c.header_key().ct_eq(header_key)))
            .map(|(i, _)| i)
    }

    pub(super) fn get(&self, chain: usize, n: u32) -> Option<&Key> {
        self.chains
            .get(chain)
            .and_then(|c| c.keys.get(&n))
            .map(BoxedKey::as_bytes)
    }

    /// Deletes a used key. The chain itself stays, to recognise replays.
    pub(super) fn remove(&mut self, chain: usize, n: u32) {
        if let Some(c) = self.chains.get_mut(chain)
            && c.keys.remove(&n).is_some()
        {
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Records `keys` (in increasing message number) for the chain with
    /// `header_key`, creating the chain as the newest one if it is not the newest
    /// already, then enforces the bounds.
    ///
    /// Called with no keys when a chain is closed by a DH step, so that its header
    /// key is still around to recognise replays.
    pub(super) fn add(&mut self, header_key: &Key, keys: Vec<(u32, BoxedKey)>) {
        let is_newest = self
            .chains
            .back()
            .is_some_and(|c| bool::from(c.header_key().ct_eq(header_key)));
        if !is_newest {
            self.chains.push_back(StoredChain {
                header_key: BoxedKey::new(header_key),
                keys: BTreeMap::new(),
            });
        }
        if let Some(chain) = self.chains.back_mut() {
            for (n, key) in keys {
                if chain.keys.insert(n, key).is_none() {
                    self.total += 1;
                }
            }
        }
        self.enforce_bounds();
    }

    /// Forgets whole chains beyond [`MAX_STORED_CHAINS`], then single keys, oldest
    /// first, beyond [`MAX_SKIPPED_KEYS`].
    fn enforce_bounds(&mut self) {
        while self.chains.len() > MAX_STORED_CHAINS {
            if let Some(old) = self.chains.pop_front() {
                self.total = self.total.saturating_sub(old.keys.len());
            }
        }
        while self.total > MAX_SKIPPED_KEYS {
            let Some(chain) = self.chains.iter_mut().find(|c| !c.keys.is_empty()) else {
                break;
            };
            chain.keys.pop_first();
            self.total -= 1;
        }
    }

    /// Rebuilds a store from serialized parts. The caller has checked the bounds and
    /// the ordering; this only assembles.
    pub(super) fn push_restored(&mut self, header_key: &Key, keys: BTreeMap<u32, BoxedKey>) {
        self.total += keys.len();
        self.chains.push_back(StoredChain {
            header_key: BoxedKey::new(header_key),
            keys,
        });
    }
}

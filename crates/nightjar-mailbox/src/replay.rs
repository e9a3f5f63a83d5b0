//! Replay protection for signed requests: nonces seen within the time window.

use std::collections::HashMap;

use crate::wire::REQUEST_NONCE_LEN;

/// Why a set of nonces was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceError {
    /// The nonce of the item at this index was seen before.
    Replayed(usize),
    /// The cache is full of nonces still inside the window.
    Busy,
}

/// Nonces of signed request items, each remembered until its timestamp falls
/// out of the window (after which the timestamp check refuses it anyway).
#[derive(Debug)]
pub struct NonceCache {
    seen: HashMap<[u8; REQUEST_NONCE_LEN], u64>,
    capacity: usize,
    /// Pruning walks the whole cache, so a full cache under attack prunes at
    /// most once per second instead of on every request.
    last_prune: u64,
}

impl NonceCache {
    /// An empty cache remembering at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        NonceCache {
            seen: HashMap::new(),
            capacity,
            last_prune: 0,
        }
    }

    /// Records every `(nonce, forget_at)` pair, or none of them if any nonce
    /// was seen before (also earlier in the same list) or there is no room.
    pub fn insert_all(
        &mut self,
        nonces: &[([u8; REQUEST_NONCE_LEN], u64)],
        now: u64,
    ) -> Result<(), NonceError> {
        for (i, (nonce, _)) in nonces.iter().enumerate() {
            let earlier = nonces.get(..i).unwrap_or_default();
            if self.seen.contains_key(nonce) || earlier.iter().any(|(n, _)| n == nonce) {
                return Err(NonceError::Replayed(i));
            }
        }
        if self.seen.len() + nonces.len() > self.capacity {
            self.prune(now);
            if self.seen.len() + nonces.len() > self.capacity {
                return Err(NonceError::Busy);
            }
        }
        self.seen.extend(nonces.iter().copied());
        Ok(())
    }

    /// Forgets nonces whose window has passed, at most once per second.
    pub fn prune(&mut self, now: u64) {
        if now == self.last_prune {
            return;
        }
        self.last_prune = now;
        self.seen.retain(|_, forget_at| *forget_at >= now);
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True if no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_and_nothing_is_recorded() {
        let mut c = NonceCache::new(10);
        c.insert_all(&[([1; 16], 100)], 0).unwrap();
        assert_eq!(
            c.insert_all(&[([2; 16], 100), ([1; 16], 100)], 0),
            Err(NonceError::Replayed(1))
        );
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.insert_all(&[([3; 16], 100), ([3; 16], 100)], 0),
            Err(NonceError::Replayed(1))
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn full_cache_refuses_until_nonces_expire() {
        let mut c = NonceCache::new(2);
        c.insert_all(&[([1; 16], 100), ([2; 16], 200)], 0).unwrap();
        assert_eq!(c.insert_all(&[([3; 16], 300)], 50), Err(NonceError::Busy));
        // At 101 the first nonce's window is over: room for one.
        c.insert_all(&[([3; 16], 300)], 101).unwrap();
        assert_eq!(c.len(), 2);
        // A nonce still remembered is still refused.
        assert_eq!(
            c.insert_all(&[([2; 16], 300)], 101),
            Err(NonceError::Replayed(0))
        );
    }
}

//! The wormhole's keys leave no trace in memory once dropped (see
//! `nightjar_test_support::memscan`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nightjar_test_support::memscan::{Needle, check_zeroized};
use nightjar_wormhole::key::{PhaseKey, SharedKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

const SIDE: &str = "0123456789";
const PHASE: &str = "version";

/// How many copies of a key each case holds. The keys live in small boxes, and
/// the allocator hands freed small chunks out again first (the scan itself
/// allocates some): a few leaked copies could be overwritten before the scan,
/// this many cannot all be.
const COPIES: usize = 64;

/// A shared key from fresh randomness, and its bytes.
fn shared_key() -> (SharedKey, Zeroizing<[u8; 32]>) {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut bytes[..]).unwrap();
    (SharedKey::from_bytes(*bytes), bytes)
}

/// Seals and opens a message with `key`.
fn round_trip(key: &PhaseKey) {
    let sealed = key.seal(b"{\"offer\":{}}").unwrap();
    assert_eq!(key.open(&sealed).unwrap(), b"{\"offer\":{}}");
}

#[test]
fn shared_key_zeroized() {
    check_zeroized(
        "SharedKey",
        || {
            let (key, bytes) = shared_key();
            let mut keys = vec![key];
            keys.extend((1..COPIES).map(|_| SharedKey::from_bytes(*bytes)));
            (keys, Needle::from_secret(&bytes[..]))
        },
        |keys| {
            for key in keys.iter() {
                round_trip(&key.phase_key(SIDE, PHASE));
                assert_eq!(key.verifier(), keys[0].verifier());
            }
        },
    );
}

#[test]
fn phase_key_zeroized() {
    check_zeroized(
        "PhaseKey",
        || {
            let (shared, _) = shared_key();
            // The phase key's bytes, derived as `phase_key` does.
            let mut info = b"wormhole:phase:".to_vec();
            info.extend_from_slice(&Sha256::digest(SIDE.as_bytes()));
            info.extend_from_slice(&Sha256::digest(PHASE.as_bytes()));
            let bytes = Zeroizing::new(shared.derive(&info));
            let keys: Vec<PhaseKey> = (0..COPIES).map(|_| shared.phase_key(SIDE, PHASE)).collect();
            (keys, Needle::from_secret(&bytes[..]))
        },
        |keys| keys.iter().for_each(round_trip),
    );
}

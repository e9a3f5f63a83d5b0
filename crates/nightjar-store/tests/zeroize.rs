//! The profile's secrets leave no trace in memory once the store is dropped (see
//! `nightjar_test_support::memscan`): SQLCipher wipes the decrypted pages it frees.
//!
//! The raw database key has no case of its own: with memory security on, the
//! scan does not find it in this process's private writable memory while the
//! store is open, so the positive control fails and a check after the drop would
//! prove nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use nightjar_store::{KdfParams, ProfileRecord, Store};
use nightjar_test_support::memscan::{Needle, check_zeroized};
use zeroize::Zeroizing;

const CHEAP: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// A random passphrase: a needle of its own would match wherever it was typed.
fn passphrase() -> Zeroizing<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A profile with fresh random secrets.
fn profile() -> ProfileRecord {
    let mut profile = ProfileRecord {
        identity_secret: Zeroizing::new([0; 64]),
        request_seed: Zeroizing::new([0; 32]),
        endpoint_seed: Zeroizing::new([0; 32]),
        created_at_ms: 1_700_000_000_000,
    };
    getrandom::fill(&mut profile.identity_secret[..]).unwrap();
    getrandom::fill(&mut profile.request_seed[..]).unwrap();
    getrandom::fill(&mut profile.endpoint_seed[..]).unwrap();
    profile
}

/// A profile on disk, closed, with its passphrase and secrets.
fn created(dir: &Path) -> (Zeroizing<String>, ProfileRecord) {
    let passphrase = passphrase();
    let profile = profile();
    drop(Store::create(dir, &passphrase, CHEAP, &profile).unwrap());
    (passphrase, profile)
}

#[test]
fn profile_secrets_read_from_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("profile");
    check_zeroized(
        "ProfileRecord read from the store",
        || {
            let (passphrase, profile) = created(&dir);
            let store = Store::open(&dir, &passphrase).unwrap();
            // Read once, so the decrypted page is in SQLCipher's cache.
            let read = store.profile().unwrap();
            assert!(read.identity_secret == profile.identity_secret);
            let needle = Needle::from_secret(&profile.identity_secret[..]);
            (store, needle)
        },
        |store| assert!(store.profile().is_ok()),
    );
}

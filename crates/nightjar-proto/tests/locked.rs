//! Long-term keys live in locked memory, and nowhere else; a system that refuses
//! to lock is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use nightjar_proto::handshake::{Initiator, Responder};
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::locked::{self, LockStatus};
use nightjar_test_support::memscan::{Needle, locked_kib, scan_process, scrub_stack};
use rand::rngs::SysRng;
use rand_core::UnwrapErr;

/// Set in the child process of [`refusal_to_lock_is_reported`].
const CHILD: &str = "NIGHTJAR_LOCKED_TEST_CHILD";

/// Who the child runs as when the test runs as root (root may lock any amount).
const NOBODY: u32 = 65534;

#[inline(never)]
fn identity_and_needle() -> (IdentityKeyPair, Needle) {
    let keys = IdentityKeyPair::generate(&mut UnwrapErr(SysRng));
    let needle = Needle::from_secret(&keys.to_secret_bytes()[..]);
    (keys, needle)
}

/// A handshake with `keys` on each side, so their X25519 half is used too.
#[inline(never)]
fn handshake_both_ways(keys: &IdentityKeyPair) {
    let mut rng = UnwrapErr(SysRng);
    let other = IdentityKeyPair::generate(&mut rng);
    for (initiator, responder) in [(keys, &other), (&other, keys)] {
        let (waiting, msg1) =
            Initiator::start(responder.public().signing_key(), b"locked", &mut rng);
        let (responder_waiting, msg2) =
            Responder::handle_hello(responder, b"locked", &msg1, &mut rng).unwrap();
        let (_, msg3) = waiting.handle_reply(&msg2, initiator).unwrap();
        responder_waiting.handle_finish(&msg3).unwrap();
    }
}

#[test]
fn identity_keys_are_only_in_locked_memory() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let (keys, needle) = identity_and_needle();
    // Use the keys, so any copy the use leaves behind would be found.
    let signature = keys.sign(b"nightjar/test/locked");
    keys.public()
        .signing_key()
        .verify_strict(b"nightjar/test/locked", &signature)
        .unwrap();
    let _ = keys.certificate();
    handshake_both_ways(&keys);
    scrub_stack();

    assert_eq!(locked::status(), LockStatus::Locked);
    let hits = scan_process(&needle).unwrap();
    for piece in 0..needle.pieces() {
        assert!(
            hits.iter().any(|hit| hit.piece == piece),
            "piece {piece} of the live keys was not found; the scan proves nothing"
        );
    }
    for hit in &hits {
        let locked = locked_kib(hit.address).unwrap();
        assert!(
            locked.is_some_and(|kib| kib > 0),
            "a copy of the identity keys is in memory that is not locked: {hit:#x?} ({locked:?} KiB locked)"
        );
    }
    drop(keys);
}

/// The child of [`refusal_to_lock_is_reported`]: run under a memory-lock limit of
/// zero, it must still work, and say why its keys are not locked.
#[test]
fn child_under_a_zero_lock_limit() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let keys = IdentityKeyPair::generate(&mut UnwrapErr(SysRng));
    let signature = keys.sign(b"nightjar/test/locked");
    keys.public()
        .signing_key()
        .verify_strict(b"nightjar/test/locked", &signature)
        .unwrap();
    let status = locked::status();
    assert!(
        matches!(status, LockStatus::NotLocked(_)),
        "locking worked under a zero limit: {status:?}"
    );
    println!("status: {status}");
}

#[test]
fn refusal_to_lock_is_reported() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    // Root may lock beyond any limit: run the child as nobody, from a directory
    // nobody may enter.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("locked-test");
    let built = std::env::current_exe().unwrap();
    if std::fs::hard_link(&built, &exe).is_err() {
        std::fs::copy(&built, &exe).unwrap();
    }
    let mut command = Command::new("prlimit");
    command
        .arg("--memlock=0:0")
        .arg(&exe)
        .args(["--exact", "child_under_a_zero_lock_limit", "--nocapture"])
        .env(CHILD, "1")
        .current_dir("/");
    if rustix::process::geteuid().is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    let output = command.output().expect("prlimit (util-linux) runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("status: long-term keys could not be locked in memory")
            && stdout.contains("ulimit -l"),
        "no clear report: {stdout}"
    );
}

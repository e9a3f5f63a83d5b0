//! The memory scan finds a live secret, finds nothing once it is zeroized, and
//! finds the remains of one freed without zeroizing (so a test built on it can
//! fail).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nightjar_test_support::memscan::{Needle, assert_present, check_zeroized, scan_process};
use zeroize::Zeroizing;

/// Where the secret sits in its buffer, and the buffer's size: an allocation
/// size the scan's own allocations do not use, so the freed chunk is not handed
/// out again before the scan reads it.
const OFFSET: usize = 64;
const BUFFER: usize = 200;

/// A heap buffer with 32 random bytes at [`OFFSET`], and the needle for them.
/// Made here, not in the test's frame, so `scrub_stack` reaches every copy.
#[inline(never)]
fn secret_on_heap() -> (Vec<u8>, Needle) {
    let mut buffer = vec![0u8; BUFFER];
    getrandom::fill(&mut buffer[OFFSET..OFFSET + 32]).unwrap();
    let needle = Needle::from_secret(&buffer[OFFSET..OFFSET + 32]);
    (buffer, needle)
}

#[test]
fn finds_a_live_secret_where_it_is() {
    let (buffer, needle) = secret_on_heap();
    assert_eq!(needle.pieces(), 2);
    let address = buffer.as_ptr() as u64 + OFFSET as u64;
    let hits = scan_process(&needle).unwrap();
    assert!(
        hits.iter()
            .any(|hit| hit.address == address && hit.piece == 0)
    );
    assert!(
        hits.iter()
            .any(|hit| hit.address == address + 16 && hit.piece == 1)
    );
    drop(Zeroizing::new(buffer));
}

#[test]
fn finds_nothing_after_zeroize() {
    check_zeroized(
        "a zeroized buffer",
        || {
            let (buffer, needle) = secret_on_heap();
            (Zeroizing::new(buffer), needle)
        },
        |buffer| assert_eq!(buffer.len(), BUFFER),
    );
}

/// Freeing leaves the bytes where they were, at least past the allocator's
/// pointers at the start of the chunk: the check fails.
#[test]
#[should_panic(expected = "the secret outlived its value")]
fn finds_a_secret_freed_without_zeroize() {
    check_zeroized("a plain buffer", secret_on_heap, |buffer| {
        assert_eq!(buffer.len(), BUFFER);
    });
}

#[test]
fn pieces_cover_the_whole_secret() {
    let secret: Vec<u8> = (1..=40).collect();
    let needle = Needle::from_secret(&secret);
    // 0..16, 16..32 and 24..40.
    assert_eq!(needle.pieces(), 3);
    let buffer = std::hint::black_box(secret.clone());
    assert_present(&needle, "a 40-byte secret");
    drop(buffer);
}

//! Behaviour of the Double Ratchet through its public API.

// Test code: failing loudly is the point. (clippy.toml allows these only inside
// `#[test]` functions, not in the functions they call.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;

use nightjar_proto::ratchet::{
    HEADER_LEN, MAX_SKIP, MESSAGE_OVERHEAD, Ratchet, RatchetError, STATE_VERSION, TAG_LEN,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use x25519_dalek::{PublicKey, StaticSecret};

const AD: &[u8] = b"conversation ad";

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A fresh initiator/responder pair with random shared secrets.
fn pair(rng: &mut StdRng) -> (Ratchet, Ratchet) {
    let root: [u8; 32] = rng.random();
    let hka: [u8; 32] = rng.random();
    let nhkb: [u8; 32] = rng.random();
    let bob_secret = StaticSecret::random_from_rng(rng);
    let bob_public = PublicKey::from(&bob_secret).to_bytes();
    let alice = Ratchet::new_initiator(root, hka, nhkb, bob_public, rng).unwrap();
    let bob = Ratchet::new_responder(root, hka, nhkb, bob_secret);
    (alice, bob)
}

fn send(from: &mut Ratchet, text: &str, rng: &mut StdRng) -> Vec<u8> {
    from.encrypt(text.as_bytes(), AD, rng).unwrap()
}

fn recv(to: &mut Ratchet, message: &[u8], rng: &mut StdRng) -> Result<String, RatchetError> {
    to.decrypt(message, AD, rng)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
}

/// Asserts that decrypting fails with `expected` and leaves the state untouched.
fn assert_rejected(to: &mut Ratchet, message: &[u8], expected: RatchetError, rng: &mut StdRng) {
    let before = to.to_bytes();
    assert_eq!(recv(to, message, rng), Err(expected));
    assert_eq!(to.to_bytes(), before, "state changed by a rejected message");
}

// ---------------------------------------------------------------------------
// Known answers from tests/vectors/ratchet_vectors.py.

/// Hands out a fixed byte sequence, so that a test run is byte-for-byte repeatable.
struct Scripted(std::vec::IntoIter<u8>);

impl rand_core::TryRng for Scripted {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst {
            *d = self.0.next().expect("script exhausted");
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Scripted {}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const KAT_FIRST_MESSAGE: &str = "060606060606060606060606060606060606060606060606957e81f20863bc19376691a765ab252888783163a6a7f44b47d7518d892d1c1658dfa56adeae8a1354093fca632b7140672a27481df7b51c160358bdda80d4021ed0dac606605de7a97161c881c53764b239be4903";
const KAT_REPLY: &str = "08080808080808080808080808080808080808080808080841ef664bc09cfab58de2cb154fbf50b8036e34759d11f3591b86cedf6d2e0922292e2f015ec4d6d244f65ba5f67cd1b12285165562ba45996bc73b2877943628a710ea049b00781c67192db5d00cf5813387edb16df6ca";

#[test]
fn known_answer_first_message_and_reply() {
    let ad = b"nightjar-ad";
    let (root, hka, nhkb) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let bob_secret = StaticSecret::from([4u8; 32]);
    let bob_public = PublicKey::from(&bob_secret).to_bytes();

    let mut alice_rng = Scripted([[5u8; 32].as_slice(), &[6u8; 24]].concat().into_iter());
    let mut alice = Ratchet::new_initiator(root, hka, nhkb, bob_public, &mut alice_rng).unwrap();
    let first = alice.encrypt(b"hello bob", ad, &mut alice_rng).unwrap();
    assert_eq!(first, hex(KAT_FIRST_MESSAGE));

    let mut bob_rng = Scripted([[7u8; 32].as_slice(), &[8u8; 24]].concat().into_iter());
    let mut bob = Ratchet::new_responder(root, hka, nhkb, bob_secret);
    assert_eq!(
        &**bob.decrypt(&first, ad, &mut bob_rng).unwrap(),
        b"hello bob"
    );
    let reply = bob.encrypt(b"hello alice", ad, &mut bob_rng).unwrap();
    assert_eq!(reply, hex(KAT_REPLY));

    let mut unused = Scripted(Vec::new().into_iter());
    // Alice's DH step draws a new ratchet key; give her one.
    let mut alice_rng = Scripted(vec![9u8; 32].into_iter());
    assert_eq!(
        &**alice.decrypt(&reply, ad, &mut alice_rng).unwrap(),
        b"hello alice"
    );
    // Replays are answered without touching the RNG.
    assert_eq!(
        alice.decrypt(&reply, ad, &mut unused).unwrap_err(),
        RatchetError::Duplicate
    );
}

// ---------------------------------------------------------------------------
// Specification behaviour.

#[test]
fn ping_pong_in_order() {
    let mut rng = rng(1);
    let (mut alice, mut bob) = pair(&mut rng);
    for round in 0..20 {
        for i in 0..=(round % 3) {
            let text = format!("a{round}.{i}");
            let m = send(&mut alice, &text, &mut rng);
            assert_eq!(m.len(), text.len() + MESSAGE_OVERHEAD);
            assert_eq!(recv(&mut bob, &m, &mut rng).unwrap(), text);
        }
        for i in 0..=(round % 2) {
            let text = format!("b{round}.{i}");
            let m = send(&mut bob, &text, &mut rng);
            assert_eq!(recv(&mut alice, &m, &mut rng).unwrap(), text);
        }
    }
}

#[test]
fn responder_cannot_send_first() {
    let mut rng = rng(2);
    let (_, mut bob) = pair(&mut rng);
    let before = bob.to_bytes();
    assert_eq!(
        bob.encrypt(b"x", AD, &mut rng),
        Err(RatchetError::CannotSendYet)
    );
    assert_eq!(bob.to_bytes(), before);
}

#[test]
fn out_of_order_within_a_chain() {
    let mut rng = rng(3);
    let (mut alice, mut bob) = pair(&mut rng);
    let msgs: Vec<_> = (0..6)
        .map(|i| send(&mut alice, &format!("m{i}"), &mut rng))
        .collect();
    for i in [4, 1, 0, 5, 3, 2] {
        assert_eq!(recv(&mut bob, &msgs[i], &mut rng).unwrap(), format!("m{i}"));
    }
    for m in &msgs {
        assert_rejected(&mut bob, m, RatchetError::Duplicate, &mut rng);
    }
}

#[test]
fn old_chain_messages_after_a_dh_step() {
    let mut rng = rng(4);
    let (mut alice, mut bob) = pair(&mut rng);
    let a: Vec<_> = (0..4)
        .map(|i| send(&mut alice, &format!("a{i}"), &mut rng))
        .collect();
    assert_eq!(recv(&mut bob, &a[0], &mut rng).unwrap(), "a0");
    let b0 = send(&mut bob, "b0", &mut rng);
    assert_eq!(recv(&mut alice, &b0, &mut rng).unwrap(), "b0");
    // Alice's next chain; Bob steps on it before the rest of her first chain arrives.
    let a_next = send(&mut alice, "a-next", &mut rng);
    assert_eq!(recv(&mut bob, &a_next, &mut rng).unwrap(), "a-next");
    for i in [3, 1, 2] {
        assert_eq!(recv(&mut bob, &a[i], &mut rng).unwrap(), format!("a{i}"));
    }
    // And the other way round, two steps later.
    let b1 = send(&mut bob, "b1", &mut rng);
    let b2 = send(&mut bob, "b2", &mut rng);
    assert_eq!(recv(&mut alice, &b2, &mut rng).unwrap(), "b2");
    let a_last = send(&mut alice, "a-last", &mut rng);
    assert_eq!(recv(&mut bob, &a_last, &mut rng).unwrap(), "a-last");
    let b3 = send(&mut bob, "b3", &mut rng);
    assert_eq!(recv(&mut alice, &b3, &mut rng).unwrap(), "b3");
    assert_eq!(recv(&mut alice, &b1, &mut rng).unwrap(), "b1");
    for m in [&a[0], &a[2], &a_next, &b0, &b1, &b2, &b3] {
        let to = if m == &b0 || m == &b1 || m == &b2 || m == &b3 {
            &mut alice
        } else {
            &mut bob
        };
        assert_rejected(to, m, RatchetError::Duplicate, &mut rng);
    }
}

#[test]
fn max_skip_within_a_chain() {
    let mut rng = rng(5);
    let (mut alice, mut bob) = pair(&mut rng);
    let n = MAX_SKIP as usize + 2;
    let msgs: Vec<_> = (0..n)
        .map(|i| send(&mut alice, &format!("m{i}"), &mut rng))
        .collect();
    // Message MAX_SKIP + 1 would skip MAX_SKIP + 1 keys.
    assert_rejected(
        &mut bob,
        &msgs[n - 1],
        RatchetError::TooManySkipped,
        &mut rng,
    );
    // Exactly MAX_SKIP is allowed, and then everything else still opens.
    assert_eq!(
        recv(&mut bob, &msgs[n - 2], &mut rng).unwrap(),
        format!("m{}", n - 2)
    );
    assert_eq!(
        recv(&mut bob, &msgs[n - 1], &mut rng).unwrap(),
        format!("m{}", n - 1)
    );
    for (i, m) in msgs.iter().enumerate().take(n - 2).rev().step_by(97) {
        assert_eq!(recv(&mut bob, m, &mut rng).unwrap(), format!("m{i}"));
    }
}

#[test]
fn max_skip_across_a_dh_step() {
    let mut rng = rng(6);
    let (mut alice, mut bob) = pair(&mut rng);
    let first = send(&mut alice, "first", &mut rng);
    for i in 0..=MAX_SKIP {
        send(&mut alice, &format!("lost{i}"), &mut rng); // never delivered
    }
    recv(&mut bob, &first, &mut rng).unwrap();
    let reply = send(&mut bob, "reply", &mut rng);
    recv(&mut alice, &reply, &mut rng).unwrap();
    // pn = MAX_SKIP + 2, Bob is at 1: closing the chain would skip MAX_SKIP + 1.
    let next = send(&mut alice, "next", &mut rng);
    assert_rejected(&mut bob, &next, RatchetError::TooManySkipped, &mut rng);
}

// ---------------------------------------------------------------------------
// Replays, tampering, misuse.

#[test]
fn duplicates_are_rejected_without_state_change() {
    let mut rng = rng(7);
    let (mut alice, mut bob) = pair(&mut rng);
    let m0 = send(&mut alice, "m0", &mut rng);
    let m1 = send(&mut alice, "m1", &mut rng);
    let m2 = send(&mut alice, "m2", &mut rng);
    recv(&mut bob, &m0, &mut rng).unwrap(); // step
    assert_rejected(&mut bob, &m0, RatchetError::Duplicate, &mut rng);
    recv(&mut bob, &m2, &mut rng).unwrap(); // skips m1
    assert_rejected(&mut bob, &m2, RatchetError::Duplicate, &mut rng);
    recv(&mut bob, &m1, &mut rng).unwrap(); // from the skipped keys
    assert_rejected(&mut bob, &m1, RatchetError::Duplicate, &mut rng);
    // After Bob's chain has moved on twice, the old ones are still duplicates.
    for _ in 0..2 {
        let b = send(&mut bob, "b", &mut rng);
        recv(&mut alice, &b, &mut rng).unwrap();
        let a = send(&mut alice, "a", &mut rng);
        recv(&mut bob, &a, &mut rng).unwrap();
    }
    for m in [&m0, &m1, &m2] {
        assert_rejected(&mut bob, m, RatchetError::Duplicate, &mut rng);
    }
}

/// Every single bit flip is rejected without state change, and the genuine message
/// still opens afterwards.
fn check_all_bit_flips(to: &mut Ratchet, message: &[u8], text: &str, rng: &mut StdRng) {
    for bit in 0..message.len() * 8 {
        let mut forged = message.to_vec();
        forged[bit / 8] ^= 1 << (bit % 8);
        let expected = if bit / 8 < HEADER_LEN {
            RatchetError::HeaderUndecryptable
        } else {
            RatchetError::BodyAuthentication
        };
        assert_rejected(to, &forged, expected, rng);
    }
    assert_eq!(recv(to, message, rng).unwrap(), text);
}

#[test]
fn every_bit_flip_is_rejected() {
    let mut rng = rng(8);
    let (mut alice, mut bob) = pair(&mut rng);
    // A first message (DH step on receipt) ...
    let m = send(&mut alice, "first message", &mut rng);
    check_all_bit_flips(&mut bob, &m, "first message", &mut rng);
    // ... one in a running chain ...
    let m = send(&mut alice, "second", &mut rng);
    check_all_bit_flips(&mut bob, &m, "second", &mut rng);
    // ... and one opened from a skipped key.
    let late = send(&mut alice, "late", &mut rng);
    let m = send(&mut alice, "early", &mut rng);
    recv(&mut bob, &m, &mut rng).unwrap();
    check_all_bit_flips(&mut bob, &late, "late", &mut rng);
}

#[test]
fn wrong_ad_truncation_and_length_mismatch_are_rejected() {
    let mut rng = rng(9);
    let (mut alice, mut bob) = pair(&mut rng);
    let m = send(&mut alice, "hello", &mut rng);
    let before = bob.to_bytes();
    assert_eq!(
        bob.decrypt(&m, b"other ad", &mut rng).unwrap_err(),
        RatchetError::HeaderUndecryptable
    );
    for len in [0, 1, HEADER_LEN, HEADER_LEN + TAG_LEN - 1] {
        assert_rejected(&mut bob, &m[..len], RatchetError::Malformed, &mut rng);
    }
    assert_rejected(
        &mut bob,
        &m[..m.len() - 1],
        RatchetError::Malformed,
        &mut rng,
    );
    let mut longer = m.clone();
    longer.push(0);
    assert_rejected(&mut bob, &longer, RatchetError::Malformed, &mut rng);
    assert_eq!(bob.to_bytes(), before);
    assert_eq!(recv(&mut bob, &m, &mut rng).unwrap(), "hello");
}

#[test]
fn own_messages_reflected_back_are_rejected() {
    let mut rng = rng(10);
    let (mut alice, mut bob) = pair(&mut rng);
    let a = send(&mut alice, "a", &mut rng);
    assert_rejected(&mut alice, &a, RatchetError::HeaderUndecryptable, &mut rng);
    recv(&mut bob, &a, &mut rng).unwrap();
    let b = send(&mut bob, "b", &mut rng);
    assert_rejected(&mut bob, &b, RatchetError::HeaderUndecryptable, &mut rng);
}

#[test]
fn messages_from_another_conversation_are_rejected() {
    let mut rng = rng(11);
    let (mut alice, mut bob) = pair(&mut rng);
    let (mut carol, _) = pair(&mut rng);
    recv(&mut bob, &send(&mut alice, "hi", &mut rng), &mut rng).unwrap();
    let foreign = send(&mut carol, "hi", &mut rng);
    assert_rejected(
        &mut bob,
        &foreign,
        RatchetError::HeaderUndecryptable,
        &mut rng,
    );
}

#[test]
fn empty_plaintext_round_trips() {
    let mut rng = rng(12);
    let (mut alice, mut bob) = pair(&mut rng);
    let m = alice.encrypt(b"", AD, &mut rng).unwrap();
    assert_eq!(m.len(), MESSAGE_OVERHEAD);
    assert!(bob.decrypt(&m, AD, &mut rng).unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// peek_body_len.

#[test]
fn peek_body_len_agrees_and_changes_nothing() {
    let mut rng = rng(13);
    let (mut alice, mut bob) = pair(&mut rng);
    let mut pending = Vec::new();
    for (i, len) in [0usize, 1, 100, 1024, 5000].into_iter().enumerate() {
        // Alternate senders so that both the next-chain and current-chain keys,
        // and the skipped-key store, get exercised.
        let m = alice.encrypt(&vec![i as u8; len], AD, &mut rng).unwrap();
        let before = bob.to_bytes();
        assert_eq!(bob.peek_body_len(&m[..HEADER_LEN], AD), Ok(len + TAG_LEN));
        assert_eq!(bob.to_bytes(), before);
        if i % 2 == 0 {
            bob.decrypt(&m, AD, &mut rng).unwrap();
        } else {
            pending.push(m);
        }
        if i == 2 {
            let b = bob.encrypt(b"turn", AD, &mut rng).unwrap();
            alice.decrypt(&b, AD, &mut rng).unwrap();
        }
    }
    for m in &pending {
        assert_eq!(
            bob.peek_body_len(&m[..HEADER_LEN], AD),
            Ok(m.len() - HEADER_LEN)
        );
        bob.decrypt(m, AD, &mut rng).unwrap();
        // A header that still opens reports its length, even if the message is a
        // replay: the reader must consume the body to stay in step.
        assert_eq!(
            bob.peek_body_len(&m[..HEADER_LEN], AD),
            Ok(m.len() - HEADER_LEN)
        );
    }
    let m = alice.encrypt(b"x", AD, &mut rng).unwrap();
    let mut bad = m[..HEADER_LEN].to_vec();
    bad[30] ^= 4;
    assert_eq!(
        bob.peek_body_len(&bad, AD),
        Err(RatchetError::HeaderUndecryptable)
    );
    assert_eq!(
        bob.peek_body_len(&m[..HEADER_LEN - 1], AD),
        Err(RatchetError::Malformed)
    );
    assert_eq!(bob.peek_body_len(&m, AD), Err(RatchetError::Malformed));
}

// ---------------------------------------------------------------------------
// Storage.

#[test]
fn serialization_round_trip_mid_conversation() {
    let mut rng = rng(14);
    let (alice, bob) = pair(&mut rng);
    // Fresh states round-trip too.
    let mut alice = Ratchet::from_bytes(&alice.to_bytes()).unwrap();
    let mut bob = Ratchet::from_bytes(&bob.to_bytes()).unwrap();

    let a: Vec<_> = (0..5)
        .map(|i| send(&mut alice, &format!("a{i}"), &mut rng))
        .collect();
    recv(&mut bob, &a[4], &mut rng).unwrap(); // a0..a3 skipped
    let b: Vec<_> = (0..3)
        .map(|i| send(&mut bob, &format!("b{i}"), &mut rng))
        .collect();
    recv(&mut alice, &b[2], &mut rng).unwrap(); // b0, b1 skipped
    let a_next = send(&mut alice, "a-next", &mut rng);
    recv(&mut bob, &a_next, &mut rng).unwrap();

    let bytes = bob.to_bytes();
    assert_eq!(bytes[0], STATE_VERSION);
    let mut bob = Ratchet::from_bytes(&bytes).unwrap();
    assert_eq!(bob.to_bytes(), bytes);
    let mut alice = Ratchet::from_bytes(&alice.to_bytes()).unwrap();

    for i in [1, 3, 0, 2] {
        assert_eq!(recv(&mut bob, &a[i], &mut rng).unwrap(), format!("a{i}"));
    }
    assert_rejected(&mut bob, &a[4], RatchetError::Duplicate, &mut rng);
    for i in [0, 1] {
        assert_eq!(recv(&mut alice, &b[i], &mut rng).unwrap(), format!("b{i}"));
    }
    let b_next = send(&mut bob, "b-next", &mut rng);
    assert_eq!(recv(&mut alice, &b_next, &mut rng).unwrap(), "b-next");
}

#[test]
fn damaged_state_bytes_are_rejected_never_panic() {
    let mut rng = rng(15);
    let (mut alice, mut bob) = pair(&mut rng);
    let a: Vec<_> = (0..3)
        .map(|i| send(&mut alice, &format!("a{i}"), &mut rng))
        .collect();
    recv(&mut bob, &a[2], &mut rng).unwrap();
    let bytes = bob.to_bytes();

    for len in 0..bytes.len() {
        assert!(
            Ratchet::from_bytes(&bytes[..len]).is_err(),
            "prefix {len} accepted"
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(
        Ratchet::from_bytes(&longer).unwrap_err(),
        RatchetError::BadState
    );
    for version in [0, 2, 255] {
        let mut v = bytes.to_vec();
        v[0] = version;
        assert_eq!(
            Ratchet::from_bytes(&v).unwrap_err(),
            RatchetError::UnsupportedVersion(version)
        );
    }
    // Any byte set to any of a few values: accepted or rejected, never a panic.
    for i in 0..bytes.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut v = bytes.to_vec();
            v[i] = value;
            let _ = Ratchet::from_bytes(&v);
        }
    }
}

#[test]
fn absurd_counts_in_state_bytes_are_rejected() {
    let mut rng = rng(16);
    let (_, bob) = pair(&mut rng);
    let bytes = bob.to_bytes(); // fresh responder: no chains, chain count last
    let n = bytes.len();
    assert_eq!(&bytes[n - 2..], &[0, 0]);
    let mut v = bytes.to_vec();
    v[n - 2..].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(Ratchet::from_bytes(&v).unwrap_err(), RatchetError::BadState);
    // One chain announcing u16::MAX keys, with no keys following.
    let mut v = bytes.to_vec();
    v[n - 2..].copy_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&[0xaa; 32]);
    v.extend_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(Ratchet::from_bytes(&v).unwrap_err(), RatchetError::BadState);
    // Unknown flags.
    let mut v = bytes.to_vec();
    v[1] = 0x08;
    assert_eq!(Ratchet::from_bytes(&v).unwrap_err(), RatchetError::BadState);
}

#[test]
fn ratchets_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ratchet>();
    assert_send_sync::<RatchetError>();
}

mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever arrives, decrypting and peeking neither panic nor change state.
        #[test]
        fn garbage_messages_change_nothing(
            seed in any::<u64>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut rng = rng(seed);
            let (mut alice, mut bob) = pair(&mut rng);
            recv(&mut bob, &send(&mut alice, "hi", &mut rng), &mut rng).unwrap();
            let before = bob.to_bytes();
            prop_assert!(bob.decrypt(&bytes, AD, &mut rng).is_err());
            prop_assert!(bob.peek_body_len(&bytes, AD).is_err());
            prop_assert_eq!(bob.to_bytes(), before);
        }

        /// Arbitrary state bytes are rejected or accepted, never a panic; whatever
        /// is accepted encodes back to the same bytes.
        #[test]
        fn arbitrary_state_bytes_never_panic(
            flags in prop::sample::select(vec![0u8, 3, 7, 0xff]),
            tail in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            // A valid version and usually valid flags, to get past the first checks.
            let bytes = [[STATE_VERSION, flags].as_slice(), &tail].concat();
            if let Ok(r) = Ratchet::from_bytes(&bytes) {
                prop_assert_eq!(&**r.to_bytes(), bytes.as_slice());
            }
        }
    }
}

#[test]
fn debug_output_reveals_nothing() {
    let mut rng = rng(17);
    let (alice, _) = pair(&mut rng);
    let text = format!("{alice:?}");
    assert!(text.starts_with("Ratchet {"), "{text}");
    assert!(!text.contains('['), "looks like key bytes: {text}");
    assert!(text.len() < 80, "{text}");
}

// ---------------------------------------------------------------------------
// A long conversation over a network that reorders, drops and duplicates.

mod conversation {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    struct InFlight {
        id: usize,
        bytes: Vec<u8>,
        duplicate: bool,
        /// Deliveries in this direction that overtook this message.
        passed_over: usize,
    }

    #[derive(Default)]
    struct Stats {
        delivered: usize,
        duplicates: usize,
        dropped: usize,
        turns_with_new_chain: usize,
    }

    struct Net {
        /// In-flight messages to Alice (0) and to Bob (1), oldest first.
        queues: [Vec<InFlight>; 2],
        texts: Vec<String>,
        received: HashSet<usize>,
        window: usize,
        drop_percent: u32,
        dup_percent: u32,
        stats: Stats,
    }

    impl Net {
        /// Delivers one message to `to`: picked among the oldest `window` in flight,
        /// except that no message is overtaken more than `window` times, which keeps
        /// reordering inside the ratchet's bounds.
        fn deliver(&mut self, to: usize, parties: &mut [Ratchet; 2], rng: &mut StdRng) {
            let queue = &mut self.queues[to];
            if queue.is_empty() {
                return;
            }
            let pick = if queue[0].passed_over >= self.window {
                0
            } else {
                rng.random_range(0..queue.len().min(self.window))
            };
            let msg = queue.remove(pick);
            for earlier in &mut queue[..pick] {
                earlier.passed_over += 1;
            }
            if !msg.duplicate && rng.random_range(0..100) < self.drop_percent {
                self.stats.dropped += 1;
                return;
            }
            let result = parties[to].decrypt(&msg.bytes, AD, rng);
            if msg.duplicate {
                assert_eq!(
                    result.unwrap_err(),
                    RatchetError::Duplicate,
                    "msg {}",
                    msg.id
                );
                self.stats.duplicates += 1;
                return;
            }
            let plaintext = result.unwrap_or_else(|e| panic!("msg {}: {e:?}", msg.id));
            assert_eq!(&**plaintext, self.texts[msg.id].as_bytes());
            assert!(
                self.received.insert(msg.id),
                "msg {} delivered twice",
                msg.id
            );
            self.stats.delivered += 1;
            if rng.random_range(0..100) < self.dup_percent {
                // Near the front: a replay arrives while its chain is still remembered.
                let at = rng.random_range(0..=queue.len().min(self.window));
                queue.insert(
                    at,
                    InFlight {
                        duplicate: true,
                        passed_over: 0,
                        ..msg
                    },
                );
            }
        }
    }

    fn run(seed: u64, total: usize, window: usize, drop: u32, dup: u32, switch: u32) -> Stats {
        let mut rng = rng(seed);
        let (alice, bob) = pair(&mut rng);
        let mut parties = [alice, bob];
        let mut net = Net {
            queues: [Vec::new(), Vec::new()],
            texts: Vec::new(),
            received: HashSet::new(),
            window,
            drop_percent: drop,
            dup_percent: dup,
            stats: Stats::default(),
        };
        let mut sender = 0usize; // Alice
        let mut received_since_sent = [false; 2];
        while net.texts.len() < total {
            if rng.random_range(0..100) < switch {
                sender = 1 - sender;
            }
            if rng.random_bool(0.5) {
                let id = net.texts.len();
                let text = format!("{id}:{}", "x".repeat(rng.random_range(0..64)));
                match parties[sender].encrypt(text.as_bytes(), AD, &mut rng) {
                    Ok(bytes) => {
                        if received_since_sent[sender] {
                            net.stats.turns_with_new_chain += 1;
                        }
                        received_since_sent[sender] = false;
                        net.texts.push(text);
                        net.queues[1 - sender].push(InFlight {
                            id,
                            bytes,
                            duplicate: false,
                            passed_over: 0,
                        });
                    }
                    Err(RatchetError::CannotSendYet) => sender = 0,
                    Err(e) => panic!("encrypt: {e:?}"),
                }
            } else {
                let to = rng.random_range(0..2);
                let before = net.stats.delivered;
                net.deliver(to, &mut parties, &mut rng);
                if net.stats.delivered > before {
                    received_since_sent[to] = true;
                }
            }
        }
        while !(net.queues[0].is_empty() && net.queues[1].is_empty()) {
            let to = rng.random_range(0..2);
            net.deliver(to, &mut parties, &mut rng);
        }
        let expected = net.texts.len() - net.stats.dropped;
        assert_eq!(net.received.len(), expected);
        net.stats
    }

    /// Few cases by default, as each is a 1,000-message conversation in a debug
    /// build; `PROPTEST_CASES=256 cargo test --release` for a deeper run.
    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8);
        ProptestConfig::with_cases(cases)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn every_message_arrives_once(
            seed in any::<u64>(),
            total in 1000usize..1200,
            window in 1usize..12,
            drop in 0u32..10,
            dup in 0u32..10,
            switch in 2u32..40,
        ) {
            let stats = run(seed, total, window, drop, dup, switch);
            prop_assert!(stats.delivered > 800);
            let steps = stats.turns_with_new_chain;
            prop_assert!(steps > 10, "too few DH steps: {}", steps);
        }
    }

    #[test]
    fn heavy_reordering_drops_and_duplicates() {
        let stats = run(0x5eed, 1500, 11, 9, 9, 30);
        assert!(
            stats.duplicates > 50 && stats.dropped > 50,
            "{}",
            stats.delivered
        );
    }
}

//! Tests that need to reach inside the state: counter limits, forged headers,
//! the skipped-key bounds.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;

const AD: &[u8] = b"ad";

fn pair(rng: &mut StdRng) -> (Ratchet, Ratchet) {
    let (root, hka, nhkb) = (rng.random(), rng.random(), rng.random());
    let bob_secret = StaticSecret::random_from_rng(rng);
    let bob_public = PublicKey::from(&bob_secret).to_bytes();
    let alice = Ratchet::new_initiator(root, hka, nhkb, bob_public, rng).unwrap();
    (alice, Ratchet::new_responder(root, hka, nhkb, bob_secret))
}

/// A message whose header is chosen freely, sealed with `header_key`; the body is
/// junk of the announced length. Enough to reach the checks made before the body.
fn forge(header_key: &Key, header: Header, rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    header.seal(header_key, AD, rng, &mut out).unwrap();
    out.resize(HEADER_LEN + header.body_len as usize, 0);
    out
}

fn assert_rejected(r: &mut Ratchet, msg: &[u8], expected: RatchetError, rng: &mut StdRng) {
    let before = r.to_bytes();
    assert_eq!(r.decrypt(msg, AD, rng).unwrap_err(), expected);
    assert_eq!(r.to_bytes(), before);
}

/// Alice sends `count` messages; Bob receives only the last.
fn skip_chain(from: &mut Ratchet, to: &mut Ratchet, count: usize, rng: &mut StdRng) {
    let mut last = Vec::new();
    for _ in 0..count {
        last = from.encrypt(b"m", AD, rng).unwrap();
    }
    to.decrypt(&last, AD, rng).unwrap();
}

#[test]
fn sending_counter_exhaustion_is_an_error() {
    let mut rng = StdRng::seed_from_u64(1);
    let (mut alice, _) = pair(&mut rng);
    alice.state.ns = u32::MAX - 1;
    alice.encrypt(b"last", AD, &mut rng).unwrap();
    let before = alice.to_bytes();
    assert_eq!(
        alice.encrypt(b"one too many", AD, &mut rng),
        Err(RatchetError::CounterExhausted)
    );
    assert_eq!(alice.to_bytes(), before);
}

#[test]
fn receiving_counter_exhaustion_is_an_error() {
    let mut rng = StdRng::seed_from_u64(2);
    let (mut alice, mut bob) = pair(&mut rng);
    bob.decrypt(&alice.encrypt(b"hi", AD, &mut rng).unwrap(), AD, &mut rng)
        .unwrap();
    bob.state.nr = u32::MAX;
    let header = Header {
        ratchet_public: alice.state.dhs_public,
        pn: 0,
        n: u32::MAX,
        body_len: 16,
    };
    let hkr = bob.state.hkr.unwrap();
    let msg = forge(&hkr, header, &mut rng);
    assert_rejected(&mut bob, &msg, RatchetError::CounterExhausted, &mut rng);
    // The same on the first message of a chain.
    let msg = forge(&bob.state.nhkr.clone(), header, &mut rng);
    assert_rejected(&mut bob, &msg, RatchetError::CounterExhausted, &mut rng);
}

#[test]
fn low_order_ratchet_keys_are_refused() {
    let mut rng = StdRng::seed_from_u64(3);
    // The identity point (u = 0) and the order-2 point (u = 1) are of low order.
    for low in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        assert_eq!(
            Ratchet::new_initiator([1; 32], [2; 32], [3; 32], low, &mut rng).unwrap_err(),
            RatchetError::InvalidRatchetKey
        );
        let (_, mut bob) = pair(&mut rng);
        let header = Header {
            ratchet_public: low,
            pn: 0,
            n: 0,
            body_len: 16,
        };
        let nhkr = bob.state.nhkr;
        let msg = forge(&nhkr, header, &mut rng);
        assert_rejected(&mut bob, &msg, RatchetError::InvalidRatchetKey, &mut rng);
    }
}

#[test]
fn current_chain_header_with_another_ratchet_key_is_malformed() {
    let mut rng = StdRng::seed_from_u64(4);
    let (mut alice, mut bob) = pair(&mut rng);
    bob.decrypt(&alice.encrypt(b"hi", AD, &mut rng).unwrap(), AD, &mut rng)
        .unwrap();
    let header = Header {
        ratchet_public: [9; 32],
        pn: 0,
        n: 1,
        body_len: 16,
    };
    let hkr = bob.state.hkr.unwrap();
    let msg = forge(&hkr, header, &mut rng);
    assert_rejected(&mut bob, &msg, RatchetError::Malformed, &mut rng);
}

#[test]
fn skipped_keys_are_bounded_oldest_first() {
    let mut rng = StdRng::seed_from_u64(5);
    let (mut alice, mut bob) = pair(&mut rng);
    let skip = MAX_SKIP as usize;
    // Chain 1: the first message arrives, then one that skips MAX_SKIP keys.
    let first = alice.encrypt(b"first", AD, &mut rng).unwrap();
    bob.decrypt(&first, AD, &mut rng).unwrap();
    let oldest = alice.encrypt(b"oldest", AD, &mut rng).unwrap();
    skip_chain(&mut alice, &mut bob, skip, &mut rng);
    assert_eq!(bob.skipped.key_count(), skip);
    // Chain 2 and 3, each skipping MAX_SKIP - 1 keys.
    let mut chain2_first = Vec::new();
    for round in 0..2 {
        let b = bob.encrypt(b"b", AD, &mut rng).unwrap();
        alice.decrypt(&b, AD, &mut rng).unwrap();
        let m = alice.encrypt(b"chain start", AD, &mut rng).unwrap();
        if round == 0 {
            chain2_first = m;
        }
        skip_chain(&mut alice, &mut bob, skip - 1, &mut rng);
    }
    assert_eq!(bob.skipped.key_count(), MAX_SKIPPED_KEYS);
    // The oldest keys went first; their chain is still known, so the message reads
    // as a deleted key, not as noise.
    assert_rejected(&mut bob, &oldest, RatchetError::Duplicate, &mut rng);
    assert_eq!(
        &**bob.decrypt(&chain2_first, AD, &mut rng).unwrap(),
        b"chain start"
    );
}

#[test]
fn stored_chains_are_bounded() {
    let mut rng = StdRng::seed_from_u64(6);
    let (mut alice, mut bob) = pair(&mut rng);
    let mut to_bob = Vec::new();
    for _ in 0..MAX_STORED_CHAINS + 5 {
        let a = alice.encrypt(b"a", AD, &mut rng).unwrap();
        bob.decrypt(&a, AD, &mut rng).unwrap();
        to_bob.push(a);
        let b = bob.encrypt(b"b", AD, &mut rng).unwrap();
        alice.decrypt(&b, AD, &mut rng).unwrap();
    }
    assert_eq!(bob.skipped.chain_count(), MAX_STORED_CHAINS);
    assert_eq!(bob.skipped.key_count(), 0);
    // Replays: recent chains are recognised, forgotten ones are noise.
    let recent = &to_bob[to_bob.len() - MAX_STORED_CHAINS];
    assert_rejected(&mut bob, recent, RatchetError::Duplicate, &mut rng);
    assert_rejected(
        &mut bob,
        &to_bob[0],
        RatchetError::HeaderUndecryptable,
        &mut rng,
    );
}

#[test]
fn debug_does_not_print_keys() {
    let mut rng = StdRng::seed_from_u64(7);
    let (alice, _) = pair(&mut rng);
    assert_eq!(
        format!("{alice:?}"),
        "Ratchet { can_send: true, skipped_keys: 0, .. }"
    );
}

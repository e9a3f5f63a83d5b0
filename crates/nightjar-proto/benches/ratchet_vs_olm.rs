//! Our Double Ratchet (with header encryption) against vodozemac's Olm ratchet,
//! measured side by side in one run, as a ratio.
//!
//! Each figure is encrypt + wire encoding + decoding + decrypt of one 1 KiB
//! message, in two scenarios:
//!
//! * steady: many messages in one direction, no DH ratchet step;
//! * ping-pong: every message is answered, so every message costs a DH step.
//!
//! The two implementations run interleaved, in alternating order, over several
//! rounds, and the median per-message time of the rounds is reported, so that
//! frequency scaling or a noisy neighbour hits both alike.
//!
//! Reading the figures: the DH-step case is mostly X25519 (two variable-base
//! and one fixed-base scalar multiplication per message on both sides, from the
//! same curve25519-dalek), so it can only be close. In the steady case Olm
//! re-derives its ratchet public key (a fixed-base multiplication) for every
//! message it encrypts; we cache ours. Our remaining cost is mostly Poly1305,
//! four times per message (header and body, sealed and opened): on x86-64 with
//! AVX2, poly1305 0.9's AVX2 backend is slower than its portable one at these
//! lengths, and building with `RUSTFLAGS='--cfg poly1305_backend="soft"'` makes
//! both of our figures noticeably better.
//!
//! `cargo bench -p nightjar-proto --bench ratchet_vs_olm`

// A measuring harness, not library code: failing loudly is fine here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Instant;

use nightjar_proto::Ratchet;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use vodozemac::olm::{Account, OlmMessage, Session, SessionConfig};
use x25519_dalek::{PublicKey, StaticSecret};

const MESSAGE_LEN: usize = 1024;
const ROUNDS: usize = 21;
const STEADY_PER_ROUND: usize = 2_000;
const PING_PONG_PER_ROUND: usize = 200;
const AD: &[u8] = b"bench ad";

/// A connected pair of endpoints that can pass a message either way.
trait Pair {
    fn new() -> Self;
    /// Encrypts at one end, decrypts at the other; `forward` is initiator ->
    /// responder.
    fn pass(&mut self, forward: bool, plaintext: &[u8]);
}

struct Ours {
    alice: Ratchet,
    bob: Ratchet,
    rng: StdRng,
}

impl Pair for Ours {
    fn new() -> Self {
        let mut rng = StdRng::from_rng(&mut rand::rng());
        let (root, hka, nhkb) = (rng.random(), rng.random(), rng.random());
        let bob_secret = StaticSecret::random_from_rng(&mut rng);
        let bob_public = PublicKey::from(&bob_secret).to_bytes();
        let alice = Ratchet::new_initiator(root, hka, nhkb, bob_public, &mut rng).unwrap();
        let bob = Ratchet::new_responder(root, hka, nhkb, bob_secret);
        let mut pair = Self { alice, bob, rng };
        pair.pass(true, b"hello"); // lets the responder send
        pair
    }

    fn pass(&mut self, forward: bool, plaintext: &[u8]) {
        let (from, to) = if forward {
            (&mut self.alice, &mut self.bob)
        } else {
            (&mut self.bob, &mut self.alice)
        };
        let wire = from.encrypt(plaintext, AD, &mut self.rng).unwrap();
        let received = to.decrypt(black_box(&wire), AD, &mut self.rng).unwrap();
        black_box(&received);
    }
}

struct Olm {
    alice: Session,
    bob: Session,
}

impl Pair for Olm {
    fn new() -> Self {
        let alice_account = Account::new();
        let mut bob_account = Account::new();
        bob_account.generate_one_time_keys(1);
        let one_time_key = *bob_account.one_time_keys().values().next().unwrap();
        bob_account.mark_keys_as_published();
        let config = SessionConfig::version_1();
        let mut alice = alice_account
            .create_outbound_session(config, bob_account.curve25519_key(), one_time_key)
            .unwrap();
        let OlmMessage::PreKey(first) = alice.encrypt(b"hello").unwrap() else {
            panic!("the first Olm message is a pre-key message");
        };
        let bob = bob_account
            .create_inbound_session(config, alice_account.curve25519_key(), &first)
            .unwrap()
            .session;
        let mut pair = Self { alice, bob };
        // Until Alice hears back she sends pre-key messages; make both sides
        // established, as ours are.
        pair.pass(false, b"hello");
        pair
    }

    fn pass(&mut self, forward: bool, plaintext: &[u8]) {
        let (from, to) = if forward {
            (&mut self.alice, &mut self.bob)
        } else {
            (&mut self.bob, &mut self.alice)
        };
        // Through the wire encoding, as ours: bytes out, bytes in.
        let (kind, wire) = from.encrypt(plaintext).unwrap().to_parts();
        let message = OlmMessage::from_parts(kind, black_box(&wire)).unwrap();
        let received = to.decrypt(&message).unwrap();
        black_box(&received);
    }
}

/// Nanoseconds per message for `count` messages, one direction.
fn steady<P: Pair>(pair: &mut P, count: usize, plaintext: &[u8]) -> f64 {
    let start = Instant::now();
    for _ in 0..count {
        pair.pass(true, plaintext);
    }
    start.elapsed().as_nanos() as f64 / count as f64
}

/// Nanoseconds per message for `count` messages, alternating direction.
fn ping_pong<P: Pair>(pair: &mut P, count: usize, plaintext: &[u8]) -> f64 {
    let start = Instant::now();
    for i in 0..count {
        pair.pass(i % 2 == 1, plaintext);
    }
    start.elapsed().as_nanos() as f64 / count as f64
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

struct Samples {
    ours: Vec<f64>,
    olm: Vec<f64>,
}

/// Runs both implementations round by round, alternating which goes first.
fn measure(run_ours: &mut dyn FnMut() -> f64, run_olm: &mut dyn FnMut() -> f64) -> Samples {
    // Warm-up: caches, branch predictors, CPU frequency.
    run_ours();
    run_olm();
    let mut samples = Samples {
        ours: Vec::new(),
        olm: Vec::new(),
    };
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            samples.ours.push(run_ours());
            samples.olm.push(run_olm());
        } else {
            samples.olm.push(run_olm());
            samples.ours.push(run_ours());
        }
    }
    samples
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let plaintext = vec![0x5a_u8; MESSAGE_LEN];

    let (mut ours, mut olm) = (Ours::new(), Olm::new());
    let steady_samples = measure(
        &mut || steady(&mut ours, STEADY_PER_ROUND, &plaintext),
        &mut || steady(&mut olm, STEADY_PER_ROUND, &plaintext),
    );
    let (mut ours, mut olm) = (Ours::new(), Olm::new());
    let ping_pong_samples = measure(
        &mut || ping_pong(&mut ours, PING_PONG_PER_ROUND, &plaintext),
        &mut || ping_pong(&mut olm, PING_PONG_PER_ROUND, &plaintext),
    );

    println!();
    println!(
        "{MESSAGE_LEN}-byte messages, encrypt + decrypt, median of {ROUNDS} interleaved rounds"
    );
    println!(
        "{:<32} {:>14} {:>14} {:>16}",
        "scenario", "ours ns/msg", "olm ns/msg", "ours/olm speed"
    );
    for (name, samples) in [
        ("steady, one direction", steady_samples),
        ("DH step every message", ping_pong_samples),
    ] {
        let (ours, olm) = (median(samples.ours), median(samples.olm));
        println!("{name:<32} {ours:>14.0} {olm:>14.0} {:>15.2}x", olm / ours);
    }
    println!("(speed ratio > 1.00 means ours is faster; ours also encrypts headers)");
}

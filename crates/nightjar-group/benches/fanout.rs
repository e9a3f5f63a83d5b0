//! One text to a group of 5, 20 and 100 members: through an MLS group and its
//! room relay, beside the same text sent pairwise to each member over the
//! contact sessions (our Double Ratchet in 498-byte cells), measured in the same
//! run and printed as ratios.
//!
//! For each size, per text:
//!
//! - **sender's work**: MLS encryption and sealing into room cells, against one
//!   ratchet encryption per other member;
//! - **everyone's work**: the sender's plus every member opening it;
//! - **bytes the sender uploads**: the room cells once, against one frame per
//!   member;
//! - **bytes on the wire in all**: upload plus every member's download.
//!
//! The relay is in memory (a vector of cells, as a room relay keeps them in
//! order); its storage costs nothing worth measuring beside the cryptography,
//! and the Tor transport costs the same per byte on both paths, so bytes are the
//! figure to scale by for the network. The two paths run interleaved, in
//! alternating order, over several rounds; medians are reported.
//!
//! `cargo bench -p nightjar-group --bench fanout`

// A measuring harness, not library code: failing loudly is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use nightjar_group::{Group, Incoming, Joining};
use nightjar_proto::Ratchet;
use nightjar_proto::cell;
use nightjar_proto::identity::IdentityKeyPair;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use x25519_dalek::{PublicKey, StaticSecret};

const SIZES: [usize; 3] = [5, 20, 100];
const ROUNDS: usize = 9;
const TEXTS_PER_ROUND: usize = 20;
const TEXT: &str = "Meeting moved to Thursday, same place, seven o'clock. Bring the notes.";
const AD: &[u8] = b"bench ad";

/// A group of `n` members over an in-memory relay.
struct Room {
    members: Vec<Group>,
    relay: Vec<Vec<u8>>,
}

impl Room {
    fn new(n: usize, rng: &mut StdRng) -> Self {
        let identities: Vec<IdentityKeyPair> =
            (0..n).map(|_| IdentityKeyPair::generate(rng)).collect();
        let mut creator = Group::create(&identities[0], rng).unwrap();
        let mut joining = Vec::new();
        let mut packages = Vec::new();
        for identity in &identities[1..] {
            let (j, package) = Joining::new(identity, rng).unwrap();
            packages.push((identity.public().signing_key().to_bytes(), package));
            joining.push(j);
        }
        let mut relay = creator.invite(&packages, rng).unwrap();
        let mut invitation = None;
        for cell in &relay {
            invitation = invitation.or(creator.receive(cell, rng).unwrap().invitation);
        }
        let invitation = invitation.expect("the change came back");
        let creator_key = identities[0].public().signing_key().to_bytes();
        let mut members = vec![creator];
        for j in joining {
            members.push(j.join(&invitation, &creator_key).unwrap());
        }
        relay.clear();
        Self { members, relay }
    }

    /// Member 0 sends; every other member reads. Returns (sender's time, all).
    fn pass(&mut self, rng: &mut StdRng) -> (Duration, Duration, usize) {
        let start = Instant::now();
        let cells = self.members[0].send(TEXT, rng).unwrap();
        let sent = start.elapsed();
        let count = cells.len();
        self.relay.extend(cells);
        for member in &mut self.members[1..] {
            let mut got = false;
            for cell in &self.relay {
                got |= matches!(
                    member.receive(cell, rng).unwrap().incoming,
                    Incoming::Text { .. }
                );
            }
            assert!(got);
        }
        self.relay.clear();
        (sent, start.elapsed(), count)
    }
}

/// The sender's session with each other member.
struct Pairwise {
    pairs: Vec<(Ratchet, Ratchet)>,
}

impl Pairwise {
    fn new(n: usize, rng: &mut StdRng) -> Self {
        let pairs = (1..n)
            .map(|_| {
                let (root, hka, nhkb) = (rng.random(), rng.random(), rng.random());
                let secret = StaticSecret::random_from_rng(&mut *rng);
                let public = PublicKey::from(&secret).to_bytes();
                let mut alice = Ratchet::new_initiator(root, hka, nhkb, public, rng).unwrap();
                let mut bob = Ratchet::new_responder(root, hka, nhkb, secret);
                let hello = alice.encrypt(b"hello", AD, rng).unwrap();
                bob.decrypt(&hello, AD, rng).unwrap();
                (alice, bob)
            })
            .collect();
        Self { pairs }
    }

    /// The sender seals the padded text once per member; each opens its copy.
    fn pass(&mut self, rng: &mut StdRng) -> (Duration, Duration, usize) {
        let start = Instant::now();
        let padded = cell::pad(TEXT.as_bytes()).unwrap();
        let frames: Vec<Vec<u8>> = self
            .pairs
            .iter_mut()
            .map(|(alice, _)| alice.encrypt(&padded, AD, rng).unwrap())
            .collect();
        let sent = start.elapsed();
        let bytes = frames.iter().map(Vec::len).sum();
        for ((_, bob), frame) in self.pairs.iter_mut().zip(&frames) {
            let body = bob.decrypt(frame, AD, rng).unwrap();
            black_box(cell::unpad(&body).unwrap());
        }
        (sent, start.elapsed(), bytes)
    }
}

/// Per-text times of each round, and the size the last text took.
#[derive(Default)]
struct Samples {
    sent: Vec<Duration>,
    all: Vec<Duration>,
    size: usize,
}

impl Samples {
    /// One round of texts through `pass` (sender's time, everyone's, size).
    fn round(&mut self, mut pass: impl FnMut() -> (Duration, Duration, usize)) {
        let (mut sent, mut all) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..TEXTS_PER_ROUND {
            let (s, a, size) = pass();
            sent += s;
            all += a;
            self.size = size;
        }
        self.sent.push(sent / TEXTS_PER_ROUND as u32);
        self.all.push(all / TEXTS_PER_ROUND as u32);
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let mut rng = StdRng::from_rng(&mut rand::rng());
    println!(
        "one {}-byte text to a group, per text (median of {ROUNDS} rounds):",
        TEXT.len()
    );
    println!(
        "{:>7} | {:>28} | {:>28} | {:>27} | {:>27}",
        "members",
        "sender's work µs (ratio)",
        "everyone's work µs (ratio)",
        "sender uploads B (ratio)",
        "wire in all B (ratio)"
    );
    for n in SIZES {
        let mut room = Room::new(n, &mut rng);
        let mut pairwise = Pairwise::new(n, &mut rng);
        let (mut group, mut pair) = (Samples::default(), Samples::default());
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                group.round(|| room.pass(&mut rng));
                pair.round(|| pairwise.pass(&mut rng));
            } else {
                pair.round(|| pairwise.pass(&mut rng));
                group.round(|| room.pass(&mut rng));
            }
        }
        let (group_cells, pair_bytes) = (group.size, pair.size);
        let (gs, ga) = (median(group.sent), median(group.all));
        let (ps, pa) = (median(pair.sent), median(pair.all));
        let group_up = group_cells * nightjar_group::CELL_LEN;
        let group_wire = group_up * n;
        let pair_wire = pair_bytes * 2;
        println!(
            "{n:>7} | {:>9.0} vs {:>7.0} ({:>4.2}×) | {:>9.0} vs {:>7.0} ({:>4.2}×) | {:>7} vs {:>7} ({:>5.3}×) | {:>7} vs {:>7} ({:>5.3}×)",
            micros(gs),
            micros(ps),
            gs.as_secs_f64() / ps.as_secs_f64(),
            micros(ga),
            micros(pa),
            ga.as_secs_f64() / pa.as_secs_f64(),
            group_up,
            pair_bytes,
            group_up as f64 / pair_bytes as f64,
            group_wire,
            pair_wire,
            group_wire as f64 / pair_wire as f64,
        );
    }
    println!("(group vs pairwise; a ratio below 1 favours the group)");
}

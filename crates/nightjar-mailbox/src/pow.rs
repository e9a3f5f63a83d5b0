//! BLAKE3 proof of work for deposits and room posts.
//!
//! A solution is a nonce such that
//! `BLAKE3(challenge || slot || BLAKE3(blob) || nonce)` has at least
//! `difficulty` leading zero bits. A room post puts its room's
//! [work target](crate::wire::RoomKey::work_target) in the slot's place and
//! its cell in the blob's. The functions here serve both sides; the
//! [`PowState`] is the mailbox's: the rotating challenge, the difficulty that
//! follows load, and the solutions already spent.

use std::collections::HashSet;

use crate::config::PowConfig;
use crate::wire::{CHALLENGE_LEN, Hex, POW_NONCE_LEN, PowParams, SlotId};

/// The proof-of-work digest of a deposit.
pub fn digest(
    challenge: &[u8; CHALLENGE_LEN],
    slot: &SlotId,
    blob_hash: &[u8; 32],
    nonce: &[u8; POW_NONCE_LEN],
) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(challenge);
    h.update(&slot.0);
    h.update(blob_hash);
    h.update(nonce);
    *h.finalize().as_bytes()
}

/// Leading zero bits of a digest read as a big-endian number.
pub fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Searches for a nonce meeting `difficulty`, trying at most `max_attempts`
/// nonces counting up from `start` (which should be random, so that clients
/// do not all walk the same nonces). `None` if none was found.
pub fn solve(
    challenge: &[u8; CHALLENGE_LEN],
    slot: &SlotId,
    blob_hash: &[u8; 32],
    difficulty: u8,
    start: [u8; POW_NONCE_LEN],
    max_attempts: u64,
) -> Option<[u8; POW_NONCE_LEN]> {
    let mut prefix = blake3::Hasher::new();
    prefix.update(challenge);
    prefix.update(&slot.0);
    prefix.update(blob_hash);
    let mut counter = u128::from_le_bytes(start);
    for _ in 0..max_attempts {
        let nonce = counter.to_le_bytes();
        let mut h = prefix.clone();
        h.update(&nonce);
        if leading_zero_bits(h.finalize().as_bytes()) >= u32::from(difficulty) {
            return Some(nonce);
        }
        counter = counter.wrapping_add(1);
    }
    None
}

/// Why a deposit's work was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowError {
    /// The challenge is neither the current nor the previous one in its grace period.
    UnknownChallenge,
    /// Too few leading zero bits.
    Insufficient,
    /// This exact solution was already spent.
    Replayed,
    /// So many solutions were spent on this challenge that the mailbox cannot
    /// remember more until the challenge rotates.
    Busy,
}

/// A solution whose work checked out, not yet spent.
#[derive(Clone, Copy, Debug)]
pub struct Solution {
    current: bool,
    // The digest's trailing half: its leading half is mostly the zero bits
    // the work produced, so the tail is where the entropy is.
    key: [u8; 16],
}

#[derive(Debug)]
struct Generation {
    challenge: [u8; CHALLENGE_LEN],
    spent: HashSet<[u8; 16]>,
}

impl Generation {
    fn new(challenge: [u8; CHALLENGE_LEN]) -> Self {
        Generation {
            challenge,
            spent: HashSet::new(),
        }
    }
}

/// The mailbox side of proof of work. Time is passed in; randomness for new
/// challenges is passed to [`PowState::maintain`].
#[derive(Debug)]
pub struct PowState {
    cfg: PowConfig,
    current: Generation,
    /// The previous challenge and the time until which it is still accepted.
    previous: Option<(Generation, u64)>,
    next_rotation: u64,
    /// Difficulty from the recent deposit rate; the fill ratio may raise the
    /// effective difficulty above it.
    rate_level: u8,
    deposits_this_period: u64,
    next_adjust: u64,
}

impl PowState {
    /// Starts with `challenge` at time `now`, at the minimum difficulty.
    pub fn new(cfg: PowConfig, now: u64, challenge: [u8; CHALLENGE_LEN]) -> Self {
        PowState {
            current: Generation::new(challenge),
            previous: None,
            next_rotation: now.saturating_add(cfg.rotation_secs),
            rate_level: cfg.min_difficulty,
            deposits_this_period: 0,
            next_adjust: now.saturating_add(cfg.adjust_period_secs),
            cfg,
        }
    }

    /// Rotates the challenge when due (calling `fresh` for a new random one),
    /// retires the previous one after its grace period, and moves the rate
    /// difficulty once per elapsed adjustment period.
    pub fn maintain(&mut self, now: u64, mut fresh: impl FnMut() -> [u8; CHALLENGE_LEN]) {
        if now >= self.next_rotation {
            let old = std::mem::replace(&mut self.current, Generation::new(fresh()));
            self.previous = Some((old, now.saturating_add(self.cfg.grace_secs)));
            self.next_rotation = now.saturating_add(self.cfg.rotation_secs);
        }
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| now > *until)
        {
            self.previous = None;
        }
        // Each elapsed period is one step; after a long quiet spell only as
        // many steps as can still change anything are taken.
        let span = u32::from(
            self.cfg
                .max_difficulty
                .saturating_sub(self.cfg.min_difficulty),
        ) + 1;
        let mut steps = 0;
        while now >= self.next_adjust && steps < span {
            self.adjust_step();
            self.next_adjust = self.next_adjust.saturating_add(self.cfg.adjust_period_secs);
            steps += 1;
        }
        if now >= self.next_adjust {
            self.next_adjust = now.saturating_add(self.cfg.adjust_period_secs);
        }
    }

    fn adjust_step(&mut self) {
        let target = self.cfg.target_deposits_per_period.max(1);
        let n = self.deposits_this_period;
        self.deposits_this_period = 0;
        if n > target {
            // One bit (twice the work) per doubling above the target, so a
            // flood is answered within a period or two rather than bit by bit.
            let up = 1 + (n / target).ilog2();
            let up = u8::try_from(up).unwrap_or(u8::MAX);
            self.rate_level = self
                .rate_level
                .saturating_add(up)
                .min(self.cfg.max_difficulty);
        } else if n.saturating_mul(2) < target {
            self.rate_level = self
                .rate_level
                .saturating_sub(1)
                .max(self.cfg.min_difficulty);
        }
    }

    /// The difficulty in force when the store is `fill_permille`/1000 full.
    pub fn difficulty(&self, fill_permille: u32) -> u8 {
        let min = u32::from(self.cfg.min_difficulty);
        let max = u32::from(self.cfg.max_difficulty);
        let threshold = self.cfg.fill_threshold_permille.min(999);
        let fill_level = if fill_permille <= threshold {
            min
        } else {
            let over = fill_permille.min(1000) - threshold;
            min + (over * max.saturating_sub(min)).div_ceil(1000 - threshold)
        };
        let level = fill_level.max(u32::from(self.rate_level)).min(max);
        u8::try_from(level).unwrap_or(self.cfg.max_difficulty)
    }

    /// The puzzle to publish.
    pub fn params(&self, fill_permille: u32) -> PowParams {
        PowParams {
            challenge: Hex(self.current.challenge),
            difficulty: self.difficulty(fill_permille),
        }
    }

    /// Checks a deposit's work given its already computed `digest`. One
    /// comparison per live challenge and a bit count: no allocation, no hashing.
    pub fn check(
        &self,
        challenge: &[u8; CHALLENGE_LEN],
        digest: &[u8; 32],
        fill_permille: u32,
    ) -> Result<Solution, PowError> {
        let current = if *challenge == self.current.challenge {
            true
        } else if self
            .previous
            .as_ref()
            .is_some_and(|(g, _)| g.challenge == *challenge)
        {
            false
        } else {
            return Err(PowError::UnknownChallenge);
        };
        if leading_zero_bits(digest) < u32::from(self.difficulty(fill_permille)) {
            return Err(PowError::Insufficient);
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[16..]);
        let generation = self.generation(current).ok_or(PowError::UnknownChallenge)?;
        if generation.spent.contains(&key) {
            return Err(PowError::Replayed);
        }
        if generation.spent.len() >= self.cfg.max_solutions_per_challenge {
            return Err(PowError::Busy);
        }
        Ok(Solution { current, key })
    }

    /// Marks a checked solution as spent and counts the deposit towards the rate.
    pub fn spend(&mut self, solution: Solution) {
        let generation = if solution.current {
            Some(&mut self.current)
        } else {
            self.previous.as_mut().map(|(g, _)| g)
        };
        if let Some(g) = generation {
            g.spent.insert(solution.key);
        }
        self.deposits_this_period = self.deposits_this_period.saturating_add(1);
    }

    fn generation(&self, current: bool) -> Option<&Generation> {
        if current {
            Some(&self.current)
        } else {
            self.previous.as_ref().map(|(g, _)| g)
        }
    }

    /// Solutions remembered, over both live challenges.
    pub fn remembered(&self) -> usize {
        self.current.spent.len() + self.previous.as_ref().map_or(0, |(g, _)| g.spent.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PowConfig {
        PowConfig {
            min_difficulty: 4,
            max_difficulty: 16,
            rotation_secs: 300,
            grace_secs: 60,
            adjust_period_secs: 10,
            target_deposits_per_period: 100,
            fill_threshold_permille: 500,
            max_solutions_per_challenge: 1000,
        }
    }

    fn challenge_source() -> impl FnMut() -> [u8; 32] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n; 32]
        }
    }

    fn solved(state: &PowState, slot: &SlotId, blob: &[u8], start: u8) -> ([u8; 16], [u8; 32]) {
        let challenge = state.current.challenge;
        let hash = *blake3::hash(blob).as_bytes();
        let d = state.difficulty(0);
        let nonce = solve(&challenge, slot, &hash, d, [start; 16], 1 << 24).unwrap();
        (nonce, digest(&challenge, slot, &hash, &nonce))
    }

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        let mut d = [0u8; 32];
        assert_eq!(leading_zero_bits(&d), 256);
        d[0] = 0x80;
        assert_eq!(leading_zero_bits(&d), 0);
        d[0] = 0;
        d[1] = 0x10;
        assert_eq!(leading_zero_bits(&d), 11);
    }

    #[test]
    fn solve_then_verify_and_refuse_replay() {
        let mut state = PowState::new(cfg(), 1000, [9; 32]);
        let slot = SlotId([5; 32]);
        let (nonce, dg) = solved(&state, &slot, b"blob", 1);
        assert!(leading_zero_bits(&dg) >= 4);
        let sol = state.check(&[9; 32], &dg, 0).unwrap();
        state.spend(sol);
        assert_eq!(
            state.check(&[9; 32], &dg, 0).unwrap_err(),
            PowError::Replayed
        );
        // The same nonce for another blob is a different solution (and most
        // likely not one at all).
        let other = digest(&[9; 32], &slot, blake3::hash(b"other").as_bytes(), &nonce);
        assert_ne!(other, dg);
    }

    #[test]
    fn insufficient_work_and_unknown_challenge_are_refused() {
        let state = PowState::new(cfg(), 1000, [9; 32]);
        let mut weak = [0xffu8; 32];
        weak[0] = 0x01; // 7 zero bits: enough for 4, not for 8
        assert!(state.check(&[9; 32], &weak, 0).is_ok());
        weak[0] = 0x10; // 3 zero bits
        assert_eq!(
            state.check(&[9; 32], &weak, 0).unwrap_err(),
            PowError::Insufficient
        );
        assert_eq!(
            state.check(&[8; 32], &[0; 32], 0).unwrap_err(),
            PowError::UnknownChallenge
        );
    }

    #[test]
    fn previous_challenge_is_accepted_during_grace_only() {
        let mut state = PowState::new(cfg(), 1000, [9; 32]);
        let mut fresh = challenge_source();
        state.maintain(1300, &mut fresh);
        assert_ne!(state.current.challenge, [9; 32]);
        assert!(state.check(&[9; 32], &[0; 32], 0).is_ok());
        state.maintain(1360, &mut fresh);
        assert!(state.check(&[9; 32], &[0; 32], 0).is_ok());
        state.maintain(1361, &mut fresh);
        assert_eq!(
            state.check(&[9; 32], &[0; 32], 0).unwrap_err(),
            PowError::UnknownChallenge
        );
    }

    #[test]
    fn spent_solutions_are_forgotten_with_their_challenge() {
        let mut state = PowState::new(cfg(), 1000, [9; 32]);
        let sol = state.check(&[9; 32], &[0; 32], 0).unwrap();
        state.spend(sol);
        assert_eq!(state.remembered(), 1);
        let mut fresh = challenge_source();
        state.maintain(1300, &mut fresh);
        assert_eq!(state.remembered(), 1);
        state.maintain(1400, &mut fresh);
        assert_eq!(state.remembered(), 0);
    }

    #[test]
    fn remembering_is_bounded() {
        let mut c = cfg();
        c.max_solutions_per_challenge = 3;
        let mut state = PowState::new(c, 1000, [9; 32]);
        for i in 0..3u8 {
            let mut d = [0u8; 32];
            d[31] = i;
            let sol = state.check(&[9; 32], &d, 0).unwrap();
            state.spend(sol);
        }
        let mut d = [0u8; 32];
        d[31] = 99;
        assert_eq!(state.check(&[9; 32], &d, 0).unwrap_err(), PowError::Busy);
    }

    #[test]
    fn difficulty_rises_under_load_and_decays_when_calm() {
        let mut state = PowState::new(cfg(), 0, [9; 32]);
        let mut fresh = challenge_source();
        assert_eq!(state.difficulty(0), 4);
        // 150 deposits in a period with a target of 100: one bit up.
        for _ in 0..150 {
            state.deposits_this_period += 1;
        }
        state.maintain(10, &mut fresh);
        assert_eq!(state.difficulty(0), 5);
        // 450: 4.5 times the target, three bits up.
        state.deposits_this_period = 450;
        state.maintain(20, &mut fresh);
        assert_eq!(state.difficulty(0), 8);
        // A flood far beyond the target is capped at the maximum.
        state.deposits_this_period = 1 << 40;
        state.maintain(30, &mut fresh);
        assert_eq!(state.difficulty(0), 16);
        // Moderate traffic (between half and all of the target) holds it.
        state.deposits_this_period = 80;
        state.maintain(40, &mut fresh);
        assert_eq!(state.difficulty(0), 16);
        // Calm periods decay it one bit each...
        state.maintain(50, &mut fresh);
        assert_eq!(state.difficulty(0), 15);
        // ...and a long quiet spell brings it back to the minimum, not below.
        state.maintain(10_000, &mut fresh);
        assert_eq!(state.difficulty(0), 4);
        state.maintain(20_000, &mut fresh);
        assert_eq!(state.difficulty(0), 4);
    }

    #[test]
    fn spending_counts_towards_the_rate() {
        let mut state = PowState::new(cfg(), 0, [9; 32]);
        let mut fresh = challenge_source();
        for i in 0..=200u32 {
            let mut d = [0u8; 32];
            d[28..].copy_from_slice(&i.to_be_bytes());
            let sol = state.check(&[9; 32], &d, 0).unwrap();
            state.spend(sol);
        }
        state.maintain(10, &mut fresh);
        assert_eq!(state.difficulty(0), 6);
    }

    #[test]
    fn difficulty_follows_the_fill_ratio() {
        let state = PowState::new(cfg(), 0, [9; 32]);
        assert_eq!(state.difficulty(0), 4);
        assert_eq!(state.difficulty(500), 4);
        assert_eq!(state.difficulty(501), 5);
        assert_eq!(state.difficulty(750), 10);
        assert_eq!(state.difficulty(1000), 16);
        assert_eq!(state.difficulty(5000), 16);
    }

    #[test]
    fn solve_gives_up_after_its_budget() {
        let slot = SlotId([5; 32]);
        assert_eq!(solve(&[0; 32], &slot, &[0; 32], 200, [0; 16], 100), None);
    }
}

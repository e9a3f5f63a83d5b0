//! When a link may write: the cell schedule, the jitter of unshaped sends, and
//! the modes a file transfer switches between.
//!
//! With cover on, each direction of a link writes one cell per *slot*, at gaps
//! drawn uniformly from `[T/2, 3T/2]` whatever the traffic: a slot carries the
//! next cell of a real frame if there is one and a cover cell otherwise, so real
//! cells take the place of cover cells and never add to them. Sending a file
//! leaves the schedule (chunks go at full rate); while only receiving one, the
//! schedule speeds up so acknowledgements do not hold the sender back.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use crate::link::{Pacing, os_rng};

/// The mean gap between cells at [`CoverLevel::Low`].
pub const LOW_GAP: Duration = Duration::from_secs(1);
/// The mean gap between cells at [`CoverLevel::Constant`].
pub const CONSTANT_GAP: Duration = Duration::from_millis(100);
/// The mean gap while receiving a file (with cover on), so acks and chat keep
/// up with the sender.
pub(crate) const FAST_GAP: Duration = Duration::from_millis(20);
/// With cover off, a send waits a random delay of up to this long.
pub const JITTER_MAX: Duration = Duration::from_secs(1);
/// How long after the last file chunk arrived (or went) the link counts as
/// receiving (or sending) a file.
const BULK_HOLD: Duration = Duration::from_secs(2);
/// The shortest mean gap accepted (a schedule is not a busy loop).
const MIN_GAP: Duration = Duration::from_millis(1);

/// How much cover traffic a link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverLevel {
    /// No cover: cells go when there is something to send (after a random
    /// delay, unless [`ShapingConfig::low_latency`]).
    Off,
    /// About one cell a second each way ([`LOW_GAP`]).
    Low,
    /// About ten cells a second each way ([`CONSTANT_GAP`]).
    Constant,
    /// One cell per this mean gap each way (at least 1 ms).
    Every(Duration),
}

impl CoverLevel {
    /// The mean gap between cells, or `None` without cover.
    pub fn mean_gap(self) -> Option<Duration> {
        match self {
            Self::Off => None,
            Self::Low => Some(LOW_GAP),
            Self::Constant => Some(CONSTANT_GAP),
            Self::Every(gap) => Some(gap.max(MIN_GAP)),
        }
    }

    /// Bytes of cells per minute in each direction of one idle link.
    pub fn bytes_per_minute(self) -> u64 {
        self.mean_gap().map_or(0, |gap| {
            let cells = Duration::from_secs(60).as_nanos() / gap.as_nanos().max(1);
            u64::try_from(cells).unwrap_or(u64::MAX) * nightjar_proto::cell::CELL_SIZE as u64
        })
    }
}

impl std::fmt::Display for CoverLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Low => f.write_str("low"),
            Self::Constant => f.write_str("constant"),
            Self::Every(gap) => write!(f, "every {} ms", gap.as_millis()),
        }
    }
}

/// How a node shapes the traffic of its links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapingConfig {
    /// Cover traffic on every live link.
    pub cover: CoverLevel,
    /// Send real frames at once instead of on the next slot (or without the
    /// random delay when cover is off): when someone sends then shows.
    pub low_latency: bool,
}

impl ShapingConfig {
    /// No cover and no delays: every frame is written whole as soon as it can
    /// be.
    pub const UNSHAPED: Self = Self {
        cover: CoverLevel::Off,
        low_latency: true,
    };

    /// How links write their set-up: cell by cell on the fast schedule when
    /// cover is on, so the handshake looks like what follows it.
    pub(crate) fn setup_pacing(&self) -> Pacing {
        match self.cover {
            CoverLevel::Off => Pacing::Immediate,
            _ => Pacing::Cells(FAST_GAP),
        }
    }
}

impl Default for ShapingConfig {
    fn default() -> Self {
        Self {
            cover: CoverLevel::Low,
            low_latency: false,
        }
    }
}

/// How the link writes right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Whole frames as soon as they are sealed.
    Unshaped,
    /// Whole frames, each released after a random delay.
    Jitter,
    /// One cell per slot, slots `mean` apart on average; with `eager`, real
    /// frames go at once and slots only carry cover when nothing else went.
    Slots { mean: Duration, eager: bool },
}

/// One link's schedule. Its randomness is its own, so the schedule depends on
/// nothing that is sent.
pub(crate) struct Pacer {
    config: ShapingConfig,
    rng: StdRng,
    next_slot: Instant,
    last_release: Instant,
    bulk_in_until: Option<Instant>,
    bulk_out_until: Option<Instant>,
    /// The mean gap of the schedule in use, if any: entering a schedule (or
    /// changing its pace) starts it afresh.
    slot_mean: Option<Duration>,
}

impl Pacer {
    /// A schedule starting now, seeded from the operating system.
    pub(crate) fn new(config: ShapingConfig) -> Self {
        Self::seeded(config, StdRng::from_rng(&mut os_rng()), Instant::now())
    }

    /// A schedule starting at `start` with the given randomness.
    pub(crate) fn seeded(config: ShapingConfig, rng: StdRng, start: Instant) -> Self {
        let mut pacer = Self {
            config,
            rng,
            next_slot: start,
            last_release: start,
            bulk_in_until: None,
            bulk_out_until: None,
            slot_mean: None,
        };
        if let Some(mean) = config.cover.mean_gap() {
            pacer.next_slot = start + pacer.gap(mean);
            pacer.slot_mean = Some(mean);
        }
        pacer
    }

    /// How to write at `now`. Entering the cell schedule, or changing its pace,
    /// starts it afresh from `now`, so a deadline left from before never fires
    /// at once.
    pub(crate) fn mode(&mut self, now: Instant) -> Mode {
        let mode = self.mode_at(now);
        let mean = match mode {
            Mode::Slots { mean, .. } => Some(mean),
            _ => None,
        };
        if let Some(mean) = mean
            && self.slot_mean != Some(mean)
        {
            self.next_slot = now + self.gap(mean);
        }
        self.slot_mean = mean;
        mode
    }

    fn mode_at(&self, now: Instant) -> Mode {
        // Sending means a chunk went lately, not a transfer being attached: a
        // transfer waiting for credit (a receiver's full disk, or one that
        // never acknowledges) must not keep cover off.
        if self.bulk_out_until.is_some_and(|until| now < until) {
            return Mode::Unshaped;
        }
        let receiving_bulk = self.bulk_in_until.is_some_and(|until| now < until);
        match (self.config.cover.mean_gap(), receiving_bulk) {
            (Some(_), true) => Mode::Slots {
                mean: FAST_GAP,
                eager: self.config.low_latency,
            },
            (Some(mean), false) => Mode::Slots {
                mean,
                eager: self.config.low_latency,
            },
            (None, true) => Mode::Unshaped,
            (None, false) if self.config.low_latency => Mode::Unshaped,
            (None, false) => Mode::Jitter,
        }
    }

    /// When the next slot is due.
    pub(crate) fn next_slot(&self) -> Instant {
        self.next_slot
    }

    /// Moves to the slot after the one due, `mean` later on average. The next
    /// slot counts from the one due, not from `now`, so time spent sealing does
    /// not drift the schedule; after a stall of more than a gap it restarts from
    /// `now` instead of catching up in a burst.
    pub(crate) fn advance(&mut self, now: Instant, mean: Duration) {
        let gap = self.gap(mean);
        self.next_slot += gap;
        if self.next_slot <= now {
            self.next_slot = now + gap;
        }
    }

    /// When a frame queued at `now` may leave in [`Mode::Jitter`]: a random delay
    /// of up to [`JITTER_MAX`], never before an earlier frame, so order is kept.
    pub(crate) fn release_at(&mut self, now: Instant) -> Instant {
        let delay = self.rng.random_range(Duration::ZERO..=JITTER_MAX);
        self.last_release = self.last_release.max(now + delay);
        self.last_release
    }

    /// A file chunk arrived at `now`.
    pub(crate) fn received_bulk(&mut self, now: Instant) {
        self.bulk_in_until = Some(now + BULK_HOLD);
    }

    /// A file chunk was sealed to go at `now`.
    pub(crate) fn sent_bulk(&mut self, now: Instant) {
        self.bulk_out_until = Some(now + BULK_HOLD);
    }

    /// A gap drawn uniformly from `[mean/2, 3·mean/2]`.
    fn gap(&mut self, mean: Duration) -> Duration {
        self.rng.random_range(mean / 2..=mean * 3 / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(config: ShapingConfig, seed: u64) -> (Pacer, Instant) {
        let start = Instant::now();
        (
            Pacer::seeded(config, StdRng::seed_from_u64(seed), start),
            start,
        )
    }

    const LOW: ShapingConfig = ShapingConfig {
        cover: CoverLevel::Low,
        low_latency: false,
    };

    #[test]
    fn gaps_lie_in_the_band_and_average_the_mean() {
        let (mut p, start) = pacer(LOW, 1);
        let mut now = p.next_slot();
        assert!(now >= start + LOW_GAP / 2 && now <= start + LOW_GAP * 3 / 2);
        let draws = 10_000u32;
        let mut total = Duration::ZERO;
        for _ in 0..draws {
            p.advance(now, LOW_GAP);
            let gap = p.next_slot() - now;
            assert!(gap >= LOW_GAP / 2 && gap <= LOW_GAP * 3 / 2, "{gap:?}");
            total += gap;
            now = p.next_slot();
        }
        let mean = total / draws;
        let off = mean.abs_diff(LOW_GAP);
        assert!(off < LOW_GAP / 50, "mean gap {mean:?}");
    }

    #[test]
    fn a_stall_restarts_the_schedule_instead_of_bursting() {
        let (mut p, _) = pacer(LOW, 2);
        let due = p.next_slot();
        let late = due + Duration::from_secs(30);
        p.advance(late, LOW_GAP);
        assert!(p.next_slot() >= late + LOW_GAP / 2);
        // On time, the next slot counts from the one due.
        let due = p.next_slot();
        p.advance(due + Duration::from_millis(3), LOW_GAP);
        assert!(p.next_slot() <= due + LOW_GAP * 3 / 2);
    }

    #[test]
    fn jitter_keeps_order_and_stays_within_the_bound() {
        let off = ShapingConfig {
            cover: CoverLevel::Off,
            low_latency: false,
        };
        let (mut p, start) = pacer(off, 3);
        let mut previous = start;
        for step in 0..1000u32 {
            let now = start + Duration::from_millis(u64::from(step) * 7);
            let at = p.release_at(now);
            assert!(at >= now && at >= previous);
            assert!(at <= now + JITTER_MAX || at == previous);
            previous = at;
        }
    }

    #[test]
    fn modes_follow_cover_latency_and_transfers() {
        let now = Instant::now();
        let cases = [
            (
                CoverLevel::Low,
                false,
                false,
                false,
                Mode::Slots {
                    mean: LOW_GAP,
                    eager: false,
                },
            ),
            (
                CoverLevel::Low,
                true,
                false,
                false,
                Mode::Slots {
                    mean: LOW_GAP,
                    eager: true,
                },
            ),
            (
                CoverLevel::Constant,
                false,
                false,
                false,
                Mode::Slots {
                    mean: CONSTANT_GAP,
                    eager: false,
                },
            ),
            (CoverLevel::Low, false, true, false, Mode::Unshaped),
            (
                CoverLevel::Low,
                false,
                false,
                true,
                Mode::Slots {
                    mean: FAST_GAP,
                    eager: false,
                },
            ),
            (CoverLevel::Off, false, false, false, Mode::Jitter),
            (CoverLevel::Off, true, false, false, Mode::Unshaped),
            (CoverLevel::Off, false, false, true, Mode::Unshaped),
            (CoverLevel::Off, false, true, false, Mode::Unshaped),
        ];
        for (cover, low_latency, sending, receiving, expected) in cases {
            let (mut p, _) = pacer(ShapingConfig { cover, low_latency }, 4);
            if receiving {
                p.received_bulk(now);
            }
            if sending {
                p.sent_bulk(now);
            }
            assert_eq!(
                p.mode(now),
                expected,
                "{cover} low_latency={low_latency} sending={sending} receiving={receiving}"
            );
            // Both end two seconds after the last chunk.
            assert_eq!(
                p.mode(now + BULK_HOLD),
                pacer(ShapingConfig { cover, low_latency }, 4).0.mode(now)
            );
        }
    }

    #[test]
    fn entering_the_schedule_or_changing_its_pace_starts_it_afresh() {
        let (mut p, start) = pacer(LOW, 5);
        assert!(matches!(p.mode(start), Mode::Slots { .. }));
        // A file went for a minute: the old deadline is long past.
        p.sent_bulk(start);
        let later = start + Duration::from_secs(60);
        p.sent_bulk(later - Duration::from_secs(1));
        assert_eq!(p.mode(later), Mode::Unshaped);
        let back = later + BULK_HOLD;
        assert!(matches!(p.mode(back), Mode::Slots { .. }));
        assert!(
            p.next_slot() >= back + LOW_GAP / 2,
            "the first slot came at once"
        );
        // A chunk arrives: the fast schedule starts within its own gap.
        p.received_bulk(back);
        assert_eq!(
            p.mode(back),
            Mode::Slots {
                mean: FAST_GAP,
                eager: false
            }
        );
        assert!(p.next_slot() <= back + FAST_GAP * 3 / 2);
    }

    #[test]
    fn cost_per_level() {
        assert_eq!(CoverLevel::Off.bytes_per_minute(), 0);
        assert_eq!(CoverLevel::Low.bytes_per_minute(), 60 * 498);
        assert_eq!(CoverLevel::Constant.bytes_per_minute(), 600 * 498);
        assert_eq!(
            CoverLevel::Every(Duration::ZERO).mean_gap(),
            Some(Duration::from_millis(1))
        );
    }
}

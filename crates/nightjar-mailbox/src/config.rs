//! The mailbox's bounds and proof-of-work settings.

use crate::MailboxError;

/// Everything a mailbox can be told. The defaults suit a small mailbox on an
/// onion service: about 100 MiB of blobs and 32 MiB of room cells at most,
/// each kept for a week.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Every blob is exactly this many bytes; default one nightjar cell.
    pub blob_size: usize,
    /// Most blobs stored at once.
    pub max_blobs: usize,
    /// Most bytes stored at once, counting each blob's and each slot's
    /// bookkeeping as well as the blob itself (see `docs/mailbox.md`).
    pub max_bytes: usize,
    /// Most blobs in one slot.
    pub slot_quota: usize,
    /// Seconds a blob is kept if nobody acknowledges it.
    pub ttl_secs: u64,
    /// Seconds between sweeps for expired blobs.
    pub sweep_interval_secs: u64,
    /// How far, in seconds, a signed request's timestamp may be from the
    /// mailbox's clock, either way.
    pub request_window_secs: u64,
    /// Most signed-request nonces remembered; when they are all within the
    /// window, signed requests are refused as busy until some expire.
    pub max_request_nonces: usize,
    /// Most items in one list, fetch or ack request.
    pub max_batch: usize,
    /// Most blobs in one fetch answer; slots cut short are marked `more`.
    pub max_fetch_blobs: usize,
    /// Most connections served at once by [`serve`](crate::serve).
    pub max_connections: usize,
    /// Most rooms held at once; a post that would start another is refused.
    pub max_rooms: usize,
    /// Most cells in one room; a post to a full room drops its oldest cell.
    pub room_max_cells: usize,
    /// Most bytes the rooms hold at once, counted like `max_bytes` (cells,
    /// rooms and their bookkeeping); the rooms' share of memory, apart from
    /// the blobs' `max_bytes`.
    pub room_max_bytes: usize,
    /// Seconds a room's cell is kept.
    pub room_ttl_secs: u64,
    /// Most cells in one room read answer; answers cut short say `more`.
    pub room_read_max: usize,
    /// Proof of work for deposits and room posts.
    pub pow: PowConfig,
}

/// Proof-of-work settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PowConfig {
    /// Leading zero bits required when the mailbox is calm.
    pub min_difficulty: u8,
    /// Leading zero bits required at most, however loaded the mailbox is.
    pub max_difficulty: u8,
    /// Seconds between challenge rotations.
    pub rotation_secs: u64,
    /// Seconds the previous challenge stays valid after a rotation.
    pub grace_secs: u64,
    /// Seconds per difficulty adjustment step.
    pub adjust_period_secs: u64,
    /// Deposits and room posts per adjustment period above which the
    /// difficulty rises (one bit per doubling); below half of it, the
    /// difficulty decays one bit.
    pub target_deposits_per_period: u64,
    /// Fill, in thousandths, of the blob store or the rooms (whichever is
    /// fuller) above which the difficulty rises in proportion, reaching
    /// `max_difficulty` when either is full.
    pub fill_threshold_permille: u32,
    /// Most spent solutions remembered per challenge; beyond it deposits are
    /// refused as busy until the challenge rotates.
    pub max_solutions_per_challenge: usize,
}

impl Default for PowConfig {
    fn default() -> Self {
        PowConfig {
            // 2^12 hashes: a few milliseconds on a phone.
            min_difficulty: 12,
            // 2^24 hashes: seconds on a laptop, a real cost for a flood.
            max_difficulty: 24,
            rotation_secs: 300,
            grace_secs: 120,
            adjust_period_secs: 30,
            target_deposits_per_period: 600,
            fill_threshold_permille: 500,
            max_solutions_per_challenge: 200_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            blob_size: nightjar_proto::cell::CELL_SIZE,
            max_blobs: 100_000,
            max_bytes: 96 << 20,
            slot_quota: 256,
            ttl_secs: 7 * 24 * 3600,
            sweep_interval_secs: 60,
            request_window_secs: 120,
            max_request_nonces: 200_000,
            max_batch: 256,
            max_fetch_blobs: 512,
            max_connections: 256,
            max_rooms: 1024,
            room_max_cells: 512,
            room_max_bytes: 32 << 20,
            room_ttl_secs: 7 * 24 * 3600,
            room_read_max: 64,
            pow: PowConfig::default(),
        }
    }
}

impl Config {
    /// Refuses settings that make no sense.
    pub fn validate(&self) -> Result<(), MailboxError> {
        let bad = |why: &'static str| Err(MailboxError::Config(why));
        if self.blob_size == 0 || self.blob_size > 1 << 20 {
            return bad("blob_size must be between 1 byte and 1 MiB");
        }
        if self.max_blobs == 0 || self.max_bytes == 0 || self.slot_quota == 0 {
            return bad("max_blobs, max_bytes and slot_quota must be positive");
        }
        if self.max_batch == 0 || self.max_fetch_blobs == 0 || self.max_connections == 0 {
            return bad("max_batch, max_fetch_blobs and max_connections must be positive");
        }
        if self.max_request_nonces == 0 || self.request_window_secs == 0 {
            return bad("max_request_nonces and request_window_secs must be positive");
        }
        if self.ttl_secs == 0 || self.sweep_interval_secs == 0 {
            return bad("ttl_secs and sweep_interval_secs must be positive");
        }
        if self.max_rooms == 0 || self.room_max_cells == 0 || self.room_max_bytes == 0 {
            return bad("max_rooms, room_max_cells and room_max_bytes must be positive");
        }
        if self.room_ttl_secs == 0 || self.room_read_max == 0 {
            return bad("room_ttl_secs and room_read_max must be positive");
        }
        let p = &self.pow;
        if p.min_difficulty > p.max_difficulty || p.max_difficulty > 128 {
            return bad("pow difficulties must satisfy min <= max <= 128");
        }
        if p.rotation_secs == 0 || p.adjust_period_secs == 0 {
            return bad("pow rotation and adjustment periods must be positive");
        }
        if p.fill_threshold_permille >= 1000 || p.max_solutions_per_challenge == 0 {
            return bad("pow fill threshold must be below 1000 and max solutions positive");
        }
        Ok(())
    }
}

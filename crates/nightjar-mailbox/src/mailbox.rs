//! The mailbox's state and the operations on it, free of HTTP: bytes and typed
//! requests in, typed answers or [`Refusal`]s out.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::StatusCode;

use crate::MailboxError;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::pow::{self, PowError, PowState};
use crate::replay::{NonceCache, NonceError};
use crate::rooms::{RoomError, RoomId, RoomLimits, Rooms};
use crate::store::{Inserted, Limits, Store, StoreError};
use crate::wire::{
    AckResponse, Base64, BatchRequest, BlobId, CHALLENGE_LEN, DepositBody, DepositReceipt,
    FetchResponse, FetchedBlob, Hex, INSTANCE_LEN, Info, ListResponse, Operation, ROOM_CELL_LEN,
    RoomCell, RoomCells, RoomKey, RoomPostBody, RoomPosted, RoomRead, SlotAck, SlotBlobs,
    SlotListing,
};

/// Why a request was refused. Each maps to an HTTP status and a short reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request could not be parsed.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The body is larger than this endpoint accepts.
    #[error("request body too large")]
    TooLarge,
    /// A room post's cell is not exactly [`ROOM_CELL_LEN`] bytes.
    #[error("cell must be exactly {expected} bytes, got {got}")]
    WrongCellSize {
        /// [`ROOM_CELL_LEN`].
        expected: usize,
        /// The size received.
        got: usize,
    },
    /// A deposit's blob is not exactly the configured size.
    #[error("blob must be exactly {expected} bytes, got {got}")]
    WrongBlobSize {
        /// The configured blob size.
        expected: usize,
        /// The size received.
        got: usize,
    },
    /// The slot id is not a valid Ed25519 key, so nobody could ever fetch it.
    #[error("slot is not a valid Ed25519 key")]
    InvalidSlot,
    /// The challenge is unknown or expired; fetch `/v2/info` again.
    #[error("unknown or expired challenge")]
    UnknownChallenge,
    /// The work does not meet the current difficulty.
    #[error("insufficient proof of work")]
    InsufficientWork,
    /// This proof of work, or a signed item's nonce, was already used.
    #[error("replayed request")]
    Replayed,
    /// More items than the mailbox accepts in one request.
    #[error("too many items in one request")]
    TooManyItems,
    /// A signed item's timestamp is outside the window.
    #[error("item {0}: timestamp outside the accepted window")]
    StaleTimestamp(usize),
    /// A signed item's signature does not verify.
    #[error("item {0}: bad signature")]
    BadSignature(usize),
    /// The store is full.
    #[error("mailbox full")]
    StoreFull,
    /// A post would start a room, and the mailbox holds as many as it may.
    #[error("too many rooms")]
    TooManyRooms,
    /// The rooms hold as many bytes as they may.
    #[error("rooms full")]
    RoomsFull,
    /// The slot is at its quota.
    #[error("slot full")]
    SlotFull,
    /// The mailbox cannot remember more replay-protection state right now.
    #[error("mailbox busy, retry later")]
    Busy,
    /// No such endpoint.
    #[error("not found")]
    NotFound,
    /// The endpoint exists, but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl Refusal {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Malformed(_)
            | Refusal::WrongBlobSize { .. }
            | Refusal::WrongCellSize { .. }
            | Refusal::InvalidSlot
            | Refusal::TooManyItems => StatusCode::BAD_REQUEST,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UnknownChallenge
            | Refusal::InsufficientWork
            | Refusal::StaleTimestamp(_)
            | Refusal::BadSignature(_) => StatusCode::FORBIDDEN,
            Refusal::Replayed => StatusCode::CONFLICT,
            Refusal::StoreFull | Refusal::TooManyRooms | Refusal::RoomsFull => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            Refusal::SlotFull => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

/// Counts describing the mailbox, for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Blobs stored.
    pub blobs: usize,
    /// Accounted bytes stored.
    pub bytes: usize,
    /// Non-empty slots.
    pub slots: usize,
    /// Proof-of-work difficulty now in force.
    pub difficulty: u8,
    /// Spent proof-of-work solutions remembered.
    pub spent_solutions: usize,
    /// Signed-request nonces remembered.
    pub request_nonces: usize,
    /// Rooms held.
    pub rooms: usize,
    /// Cells held over all rooms.
    pub room_cells: usize,
    /// Accounted bytes the rooms hold.
    pub room_bytes: usize,
}

impl From<PowError> for Refusal {
    fn from(e: PowError) -> Self {
        match e {
            PowError::UnknownChallenge => Refusal::UnknownChallenge,
            PowError::Insufficient => Refusal::InsufficientWork,
            PowError::Replayed => Refusal::Replayed,
            PowError::Busy => Refusal::Busy,
        }
    }
}

struct State {
    store: Store,
    rooms: Rooms,
    pow: PowState,
    nonces: NonceCache,
    next_sweep: u64,
}

impl State {
    /// The fill that sets the difficulty: of the blobs or the rooms, whichever
    /// is fuller, since either being full is load.
    fn fill_permille(&self) -> u32 {
        self.store.fill_permille().max(self.rooms.fill_permille())
    }
}

struct Inner {
    config: Config,
    /// Chosen at creation: a new `Mailbox` (a restart) has a new one.
    instance: [u8; INSTANCE_LEN],
    /// Keys the hash that names rooms in the table, so the names mean nothing
    /// outside this mailbox's life.
    room_secret: zeroize::Zeroizing<[u8; 32]>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

/// The mailbox: shared state behind a cheap `Clone` handle. Each operation
/// holds the lock only for bookkeeping; hashing and signature checks happen
/// before it is taken.
#[derive(Clone)]
pub struct Mailbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("stats", &self.stats())
            .finish()
    }
}

fn random_challenge() -> Result<[u8; CHALLENGE_LEN], MailboxError> {
    let mut c = [0u8; CHALLENGE_LEN];
    getrandom::fill(&mut c).map_err(|_| MailboxError::Random)?;
    Ok(c)
}

impl Mailbox {
    /// A mailbox on the system clock.
    pub fn new(config: Config) -> Result<Self, MailboxError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A mailbox on the given clock.
    pub fn with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Self, MailboxError> {
        config.validate()?;
        let now = clock.now();
        let state = State {
            store: Store::new(Limits {
                max_blobs: config.max_blobs,
                max_bytes: config.max_bytes,
                slot_quota: config.slot_quota,
                ttl_secs: config.ttl_secs,
            }),
            rooms: Rooms::new(RoomLimits {
                max_rooms: config.max_rooms,
                max_cells: config.room_max_cells,
                max_bytes: config.room_max_bytes,
                ttl_secs: config.room_ttl_secs,
            }),
            pow: PowState::new(config.pow.clone(), now, random_challenge()?),
            nonces: NonceCache::new(config.max_request_nonces),
            next_sweep: now.saturating_add(config.sweep_interval_secs),
        };
        let mut instance = [0u8; INSTANCE_LEN];
        getrandom::fill(&mut instance).map_err(|_| MailboxError::Random)?;
        let mut room_secret = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(room_secret.as_mut()).map_err(|_| MailboxError::Random)?;
        Ok(Mailbox {
            inner: Arc::new(Inner {
                config,
                instance,
                room_secret,
                clock,
                state: Mutex::new(state),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Locks the state after bringing it up to date: challenge rotation,
    /// difficulty steps and, when due, the expiry sweep.
    fn state(&self) -> (MutexGuard<'_, State>, u64) {
        // A panic while holding the lock cannot leave the state half-updated
        // in a way that matters more than losing the mailbox; keep serving.
        let mut st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = self.inner.clock.now();
        // Should the system's randomness fail, keep the current challenge
        // one more period rather than publish a predictable one.
        let mut failed = false;
        let current = st.pow.params(0).challenge.0;
        st.pow.maintain(now, || {
            random_challenge().unwrap_or_else(|_| {
                failed = true;
                current
            })
        });
        if failed {
            #[cfg(feature = "server")]
            tracing::warn!("mailbox: no randomness for a new challenge; kept the old one");
        }
        if now >= st.next_sweep {
            st.store.sweep(now);
            st.rooms.sweep(now);
            st.nonces.prune(now);
            st.next_sweep = now.saturating_add(self.inner.config.sweep_interval_secs);
        }
        (st, now)
    }

    /// Runs the periodic upkeep (rotation, difficulty, sweep) now.
    pub fn maintain(&self) {
        drop(self.state());
    }

    /// Counts describing the mailbox.
    pub fn stats(&self) -> Stats {
        let (st, _) = self.state();
        Stats {
            blobs: st.store.blob_count(),
            bytes: st.store.byte_count(),
            slots: st.store.slot_count(),
            difficulty: st.pow.difficulty(st.fill_permille()),
            spent_solutions: st.pow.remembered(),
            request_nonces: st.nonces.len(),
            rooms: st.rooms.room_count(),
            room_cells: st.rooms.cell_count(),
            room_bytes: st.rooms.byte_count(),
        }
    }

    /// What a client needs to know before depositing or signing.
    pub fn info(&self) -> Info {
        let (st, now) = self.state();
        let c = &self.inner.config;
        Info {
            version: 2,
            blob_size: c.blob_size,
            time: now,
            window_secs: c.request_window_secs,
            max_batch: c.max_batch,
            pow: st.pow.params(st.fill_permille()),
            instance: Hex(self.inner.instance),
        }
    }

    /// Stores a blob from a deposit body (`slot || challenge || nonce || blob`).
    pub fn deposit(&self, body: &[u8]) -> Result<DepositReceipt, Refusal> {
        let expected = self.inner.config.blob_size;
        let d = DepositBody::parse(body).ok_or(Refusal::WrongBlobSize { expected, got: 0 })?;
        if d.blob.len() != expected {
            return Err(Refusal::WrongBlobSize {
                expected,
                got: d.blob.len(),
            });
        }
        // The two hashes happen before the lock; a flood of bad work costs
        // the mailbox exactly these and nothing else.
        let blob_hash = *blake3::hash(d.blob).as_bytes();
        let digest = pow::digest(&d.challenge, &d.slot, &blob_hash, &d.nonce);
        let id = BlobId::from_blob_hash(&blob_hash);
        self.precheck_work(&d.challenge, &digest)?;
        if d.slot.verifying_key().is_none() {
            return Err(Refusal::InvalidSlot);
        }
        let (mut st, now) = self.state();
        // Checked again under this lock: the state may have moved meanwhile.
        let fill = st.fill_permille();
        let solution = match st.pow.check(&d.challenge, &digest, fill) {
            Ok(s) => s,
            Err(PowError::Replayed) if st.store.list(&d.slot, now).contains(&id) => {
                return Ok(DepositReceipt { id, stored: false });
            }
            Err(e) => return Err(e.into()),
        };
        match st.store.insert(d.slot, id, d.blob, now) {
            Ok(Inserted::Stored) => {
                st.pow.spend(solution);
                Ok(DepositReceipt { id, stored: true })
            }
            Ok(Inserted::AlreadyPresent) => Ok(DepositReceipt { id, stored: false }),
            Err(StoreError::Full) => Err(Refusal::StoreFull),
            Err(StoreError::SlotFull) => Err(Refusal::SlotFull),
        }
    }

    /// The first look at a deposit's or post's work, under a short lock of
    /// its own: bad work and unknown challenges end here. Replays and a busy
    /// state are judged under the lock that acts on the request, where a
    /// repeat of a stored blob or cell is told apart from a replay.
    fn precheck_work(
        &self,
        challenge: &[u8; CHALLENGE_LEN],
        digest: &[u8; 32],
    ) -> Result<(), Refusal> {
        let (st, _) = self.state();
        match st.pow.check(challenge, digest, st.fill_permille()) {
            Err(e @ (PowError::UnknownChallenge | PowError::Insufficient)) => Err(e.into()),
            Ok(_) | Err(PowError::Replayed | PowError::Busy) => Ok(()),
        }
    }

    /// Checks every item's shape, timestamp and signature (without the lock),
    /// then records their nonces; on success returns the locked state.
    fn authorize(
        &self,
        req: &BatchRequest,
        op: Operation,
    ) -> Result<(MutexGuard<'_, State>, u64), Refusal> {
        let c = &self.inner.config;
        if req.items.is_empty() {
            return Err(Refusal::Malformed("no items".into()));
        }
        if req.items.len() > c.max_batch {
            return Err(Refusal::TooManyItems);
        }
        let ids: usize = req.items.iter().map(|item| item.ids.len()).sum();
        if ids > c.max_fetch_blobs {
            return Err(Refusal::TooManyItems);
        }
        let now = self.inner.clock.now();
        let window = c.request_window_secs;
        for (i, item) in req.items.iter().enumerate() {
            if op != Operation::Ack && !item.ids.is_empty() {
                return Err(Refusal::Malformed(format!(
                    "item {i}: ids only belong in acks"
                )));
            }
            if item.ids.len() > c.slot_quota {
                return Err(Refusal::Malformed(format!("item {i}: too many ids")));
            }
            if item.timestamp.abs_diff(now) > window {
                return Err(Refusal::StaleTimestamp(i));
            }
        }
        for (i, item) in req.items.iter().enumerate() {
            if !item.verify(op) {
                return Err(Refusal::BadSignature(i));
            }
        }
        let nonces: Vec<_> = req
            .items
            .iter()
            .map(|item| (item.nonce.0, item.timestamp.saturating_add(window)))
            .collect();
        let (mut st, now) = self.state();
        match st.nonces.insert_all(&nonces, now) {
            Ok(()) => Ok((st, now)),
            Err(NonceError::Replayed(_)) => Err(Refusal::Replayed),
            Err(NonceError::Busy) => Err(Refusal::Busy),
        }
    }

    /// Lists the blob ids of each signed slot.
    pub fn list(&self, req: &BatchRequest) -> Result<ListResponse, Refusal> {
        let (st, now) = self.authorize(req, Operation::List)?;
        let slots = req
            .items
            .iter()
            .map(|item| SlotListing {
                slot: item.slot,
                ids: st.store.list(&item.slot, now),
            })
            .collect();
        Ok(ListResponse { slots })
    }

    /// Returns the blobs of each signed slot, at most `max_fetch_blobs` in all.
    pub fn fetch(&self, req: &BatchRequest) -> Result<FetchResponse, Refusal> {
        let (st, now) = self.authorize(req, Operation::Fetch)?;
        let mut budget = self.inner.config.max_fetch_blobs;
        let slots = req
            .items
            .iter()
            .map(|item| {
                let (blobs, more) = st.store.fetch(&item.slot, now, budget);
                budget -= blobs.len();
                SlotBlobs {
                    slot: item.slot,
                    blobs: blobs
                        .into_iter()
                        .map(|(id, data)| FetchedBlob {
                            id,
                            data: Base64(data),
                        })
                        .collect(),
                    more,
                }
            })
            .collect();
        Ok(FetchResponse { slots })
    }

    /// Deletes the acknowledged blobs of each signed slot.
    pub fn ack(&self, req: &BatchRequest) -> Result<AckResponse, Refusal> {
        let (mut st, _) = self.authorize(req, Operation::Ack)?;
        let slots = req
            .items
            .iter()
            .map(|item| SlotAck {
                slot: item.slot,
                deleted: st.store.ack(&item.slot, &item.ids),
            })
            .collect();
        Ok(AckResponse { slots })
    }

    /// The name of a room in the table. Only this keyed hash of the key is
    /// kept; the key itself is wiped with the request that carried it.
    fn room_id(&self, key: &RoomKey) -> RoomId {
        RoomId(*blake3::keyed_hash(&self.inner.room_secret, key.as_bytes()).as_bytes())
    }

    /// Appends a cell to a room from a post body
    /// (`room key || challenge || nonce || cell`), starting the room if it is new.
    pub fn room_post(&self, body: &[u8]) -> Result<RoomPosted, Refusal> {
        let wrong = |got| Refusal::WrongCellSize {
            expected: ROOM_CELL_LEN,
            got,
        };
        let p = RoomPostBody::parse(body).ok_or(wrong(0))?;
        if p.cell.len() != ROOM_CELL_LEN {
            return Err(wrong(p.cell.len()));
        }
        // As for deposits: the hashes before any lock, the work checked twice.
        let cell_hash = *blake3::hash(p.cell).as_bytes();
        let digest = pow::digest(&p.challenge, &p.room.work_target(), &cell_hash, &p.nonce);
        self.precheck_work(&p.challenge, &digest)?;
        let id = self.room_id(&p.room);
        drop(p.room);
        let (mut st, now) = self.state();
        let fill = st.fill_permille();
        let solution = match st.pow.check(&p.challenge, &digest, fill) {
            Ok(s) => s,
            Err(PowError::Replayed) => {
                // The same work again: a retry if its cell is still held.
                return match st.rooms.find(&id, p.cell, now) {
                    Some(seq) => Ok(RoomPosted { seq, stored: false }),
                    None => Err(Refusal::Replayed),
                };
            }
            Err(e) => return Err(e.into()),
        };
        // The same cell posted again with fresh work (its answer was lost):
        // one copy is kept, and the poster learns its number.
        if let Some(seq) = st.rooms.find(&id, p.cell, now) {
            st.pow.spend(solution);
            return Ok(RoomPosted { seq, stored: false });
        }
        match st.rooms.post(id, p.cell, now) {
            Ok(seq) => {
                st.pow.spend(solution);
                Ok(RoomPosted { seq, stored: true })
            }
            Err(RoomError::TooManyRooms) => Err(Refusal::TooManyRooms),
            Err(RoomError::Full) => Err(Refusal::RoomsFull),
        }
    }

    /// Returns a room's cells after `req.after`, at most `req.max` and at most
    /// `room_read_max`. Reading deletes nothing; a room nobody posted to, or a
    /// wrong key, reads as empty.
    pub fn room_read(&self, req: &RoomRead) -> Result<RoomCells, Refusal> {
        if req.max == 0 {
            return Err(Refusal::Malformed("max must be positive".into()));
        }
        let limit = usize::try_from(req.max)
            .unwrap_or(usize::MAX)
            .min(self.inner.config.room_read_max);
        let id = self.room_id(&req.room);
        let (st, now) = self.state();
        let read = st.rooms.read(&id, req.after, limit, now);
        drop(st);
        Ok(RoomCells {
            cells: read
                .cells
                .into_iter()
                .map(|(seq, data)| RoomCell {
                    seq,
                    data: Base64(data),
                })
                .collect(),
            oldest: read.oldest,
            more: read.more,
        })
    }

    /// Every byte the mailbox holds for rooms, in the layout of
    /// [`Rooms::held_bytes`](crate::rooms::Rooms::held_bytes). For inspection
    /// (tests, audits): it shows that the relay keeps opaque cells, their
    /// numbers and expiry times and keyed hashes of room keys, and nothing else.
    pub fn room_bytes_held(&self) -> Vec<u8> {
        let (st, _) = self.state();
        st.rooms.held_bytes()
    }
}

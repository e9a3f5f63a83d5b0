//! File transfer's I/O: reading and hashing a file to offer, the sender's pump
//! and the receiver's sink. Both run on threads of the blocking pool, so disk
//! I/O never stalls the engine or a link; they talk to the engine through
//! channels and reports, and decide nothing about the transfer's state.
//!
//! The receiver writes into a partial file beside the destination
//! (`.nightjar-<id>-<hex>.part`, mode 0600, never following a symlink), in
//! order, feeding a running BLAKE3 hash. Every 8 MiB it syncs the data and
//! reports a checkpoint, which the engine stores: after a crash the partial is
//! cut back to the last checkpoint and its hash rebuilt from what is on disk.
//! At the end the hash must match the offer before the file is moved to its
//! name, which is reserved first so nothing that appeared meanwhile is replaced.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nightjar_proto::files::{
    ACK_EVERY, CHUNK_LEN, CancelReason, FileId, MAX_NAME_LEN, chunk_count, chunk_len,
};
use nightjar_proto::message::Message;
use tokio::sync::{mpsc, oneshot};

use crate::NodeError;
use crate::net::Report;

/// Where received files go and how large they may be.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// The directory accepted files are saved in unless the person names
    /// another; created (mode 0700) when first needed.
    pub downloads: PathBuf,
    /// Offers of larger files are declined without asking.
    pub max_incoming: u64,
}

impl Default for FilesConfig {
    /// `$HOME/Downloads` (or `./Downloads` without a home), and 4 GiB.
    fn default() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self {
            downloads: home.unwrap_or_default().join("Downloads"),
            max_incoming: 4 << 30,
        }
    }
}

/// Data is synced and a checkpoint stored at least this often.
const CHECKPOINT_BYTES: u64 = 8 << 20;
/// Chunks the sender may run ahead of a checkpoint's sync; also the sink's queue.
pub(crate) const SINK_QUEUE: usize = nightjar_proto::files::CREDIT_CHUNKS as usize + 8;

/// A file about to be offered: what the offer says, and how to tell later that
/// it has not changed.
#[derive(Clone)]
pub(crate) struct SourceFile {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub hash: [u8; 32],
    pub mtime_ns: i64,
}

impl std::fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFile")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl SourceFile {
    /// Opens, checks and hashes the file at `path` (blocking).
    pub(crate) fn read(path: &Path) -> Result<Self, NodeError> {
        let bad = |what: &str| NodeError::BadFile(format!("{}: {what}", path.display()));
        let path = std::path::absolute(path).map_err(|e| bad(&e.to_string()))?;
        let mut file = File::open(&path).map_err(|e| bad(&e.to_string()))?;
        let meta = file.metadata().map_err(|e| bad(&e.to_string()))?;
        if !meta.is_file() {
            return Err(bad("not a regular file"));
        }
        if chunk_count(meta.len()).is_none() {
            return Err(bad("too large"));
        }
        let name = path
            .file_name()
            .map(|n| truncate_name(&n.to_string_lossy()))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no file name"))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| bad(&e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            size += n as u64;
        }
        if size != meta.len() {
            return Err(bad("it changed while it was read"));
        }
        Ok(Self {
            path,
            name,
            size,
            hash: *hasher.finalize().as_bytes(),
            mtime_ns: mtime_ns(&meta),
        })
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// The longest prefix of `name` that fits an offer.
fn truncate_name(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.get(..end).unwrap_or_default().to_owned()
}

/// Free bytes for an unprivileged writer in the file system holding `dir`.
pub(crate) fn free_space(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Creates the downloads directory (and parents) private to us, if missing.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The partial file of incoming transfer `transfer`.
pub(crate) fn partial_path(dir: &Path, transfer: i64, file: &FileId) -> PathBuf {
    let tag = data_encoding::HEXLOWER.encode(file.0.get(..6).unwrap_or_default());
    dir.join(format!(".nightjar-{transfer}-{tag}.part"))
}

// ----- progress -------------------------------------------------------------------

/// Bytes over a sliding window: rate and time left.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    samples: VecDeque<(Instant, u64)>,
    last_report: Option<Instant>,
}

impl Meter {
    const WINDOW: Duration = Duration::from_secs(5);
    const REPORT_EVERY: Duration = Duration::from_millis(500);

    pub(crate) fn record(&mut self, now: Instant, bytes: u64) {
        self.samples.push_back((now, bytes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Self::WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window; `None` before two samples.
    pub(crate) fn rate(&self) -> Option<u64> {
        let (&(t0, b0), &(t1, b1)) = (self.samples.front()?, self.samples.back()?);
        let secs = t1.duration_since(t0).as_secs_f64();
        if secs < 0.2 {
            return None;
        }
        Some((b1.saturating_sub(b0) as f64 / secs) as u64)
    }

    /// Seconds until `size` at the current rate.
    pub(crate) fn eta(&self, size: u64) -> Option<u64> {
        let rate = self.rate().filter(|r| *r > 0)?;
        let done = self.samples.back().map_or(0, |(_, b)| *b);
        Some(size.saturating_sub(done).div_ceil(rate))
    }

    /// Whether a progress report is due (at most twice a second).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < Self::REPORT_EVERY)
        {
            return false;
        }
        self.last_report = Some(now);
        true
    }
}

// ----- the sender's pump ----------------------------------------------------------

/// What one pump sends: a file from chunk `from`, as long as credit allows.
pub(crate) struct PumpPlan {
    pub transfer: i64,
    /// Tells this pump's reports from those of an earlier one.
    pub generation: u64,
    pub file: FileId,
    pub attempt: u32,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub from: u32,
    pub credit_until: u32,
}

/// How a pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    /// Every chunk was handed to the link.
    Sent,
    /// The link or the engine let go.
    Stopped,
    /// The source cannot be sent as offered.
    Failed(CancelReason),
}

/// Starts a pump on the blocking pool. It ends when it has sent everything,
/// when `chunks`' receiver (the link) or `credits`' sender (the engine) goes
/// away, or when the file is not what was offered.
pub(crate) fn spawn_pump(
    plan: PumpPlan,
    credits: mpsc::UnboundedReceiver<u32>,
    chunks: mpsc::Sender<Message>,
    reports: mpsc::Sender<Report>,
) {
    tokio::task::spawn_blocking(move || {
        let (transfer, generation) = (plan.transfer, plan.generation);
        let end = pump(&plan, credits, &chunks);
        let _ = reports.blocking_send(Report::PumpEnded {
            transfer,
            generation,
            end,
        });
    });
}

fn pump(
    plan: &PumpPlan,
    mut credits: mpsc::UnboundedReceiver<u32>,
    chunks: &mpsc::Sender<Message>,
) -> PumpEnd {
    let Some(total) = chunk_count(plan.size) else {
        return PumpEnd::Failed(CancelReason::SourceUnreadable);
    };
    let mut file = match File::open(&plan.path) {
        Ok(file) => file,
        Err(e) => {
            tracing::debug!("cannot open a file being sent: {e}");
            return PumpEnd::Failed(CancelReason::SourceUnreadable);
        }
    };
    match file.metadata() {
        Ok(meta) if meta.len() == plan.size && mtime_ns(&meta) == plan.mtime_ns => {}
        Ok(_) => return PumpEnd::Failed(CancelReason::SourceChanged),
        Err(_) => return PumpEnd::Failed(CancelReason::SourceUnreadable),
    }
    let offset = u64::from(plan.from) * CHUNK_LEN as u64;
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return PumpEnd::Failed(CancelReason::SourceUnreadable);
    }
    let mut credit = plan.credit_until;
    for index in plan.from..total {
        loop {
            match credits.try_recv() {
                Ok(more) => credit = credit.max(more),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return PumpEnd::Stopped,
            }
        }
        while index >= credit {
            match credits.blocking_recv() {
                Some(more) => credit = credit.max(more),
                None => return PumpEnd::Stopped,
            }
        }
        let Some(len) = chunk_len(plan.size, index) else {
            return PumpEnd::Failed(CancelReason::SourceUnreadable);
        };
        let mut data = vec![0u8; len];
        match file.read_exact(&mut data) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return PumpEnd::Failed(CancelReason::SourceChanged);
            }
            Err(_) => return PumpEnd::Failed(CancelReason::SourceUnreadable),
        }
        let chunk = Message::FileChunk {
            id: plan.file,
            attempt: plan.attempt,
            index,
            data,
        };
        if chunks.blocking_send(chunk).is_err() {
            return PumpEnd::Stopped;
        }
    }
    PumpEnd::Sent
}

// ----- the receiver's sink --------------------------------------------------------

/// Where and how one incoming file is written.
pub(crate) struct SinkPlan {
    pub transfer: i64,
    /// Tells this sink's reports from those of an earlier one.
    pub generation: u64,
    /// Set when the transfer is cancelled: the sink deletes the partial file
    /// and ends, whatever it was doing.
    pub discard: Arc<AtomicBool>,
    pub dir: PathBuf,
    pub partial: PathBuf,
    pub save_name: String,
    pub overwrite: bool,
    pub size: u64,
    pub hash: [u8; 32],
    /// Chunks known to be synced to the partial file.
    pub checkpoint: u32,
    pub attempt: u32,
}

/// What the engine feeds a sink.
pub(crate) enum SinkInput {
    /// The next chunk, as it arrived.
    Chunk {
        attempt: u32,
        index: u32,
        data: Vec<u8>,
    },
    /// A new accept goes out under `attempt`: say where the file stands.
    Resume { attempt: u32 },
    /// Sync and stop; the answer is the chunks now safely on disk.
    Stop(oneshot::Sender<u32>),
}

/// What a sink tells the engine.
#[derive(Debug)]
pub(crate) enum SinkReport {
    /// Ready for chunks from `from` under `attempt` (answer the offer now).
    Ready { attempt: u32, from: u32 },
    /// Chunks `0..through` are written; acknowledge them.
    Ack { attempt: u32, through: u32 },
    /// Chunks `0..through` are synced to disk.
    Checkpoint { through: u32 },
    /// The file is complete, verified and at this path.
    Saved(PathBuf),
    /// The data did not match the offered hash; the partial is deleted.
    Mismatch,
    /// The sender broke the order of chunks; the partial is deleted.
    Violation,
    /// Writing failed (a full disk, say): the partial is kept up to `through`.
    DiskError { reason: String, through: u32 },
}

/// Starts a sink on the blocking pool.
pub(crate) fn spawn_sink(
    plan: SinkPlan,
    inputs: mpsc::Receiver<SinkInput>,
    reports: mpsc::Sender<Report>,
) {
    tokio::task::spawn_blocking(move || {
        let (transfer, generation) = (plan.transfer, plan.generation);
        let report = |report: SinkReport| {
            reports
                .blocking_send(Report::Sink {
                    transfer,
                    generation,
                    report,
                })
                .is_ok()
        };
        sink(plan, inputs, &report);
    });
}

fn sink(plan: SinkPlan, inputs: mpsc::Receiver<SinkInput>, report: &dyn Fn(SinkReport) -> bool) {
    match Partial::open(&plan) {
        Ok(partial) => write_partial(&plan, partial, inputs, report),
        Err(e) => {
            // Nothing was written: what was synced before still stands.
            report(SinkReport::DiskError {
                reason: e.to_string(),
                through: plan.checkpoint,
            });
        }
    }
}

fn write_partial(
    plan: &SinkPlan,
    mut partial: Partial,
    mut inputs: mpsc::Receiver<SinkInput>,
    report: &dyn Fn(SinkReport) -> bool,
) {
    let total = chunk_count(plan.size).unwrap_or(0);
    let mut attempt = plan.attempt;
    if !report(SinkReport::Ready {
        attempt,
        from: partial.written,
    }) {
        return;
    }
    if partial.written >= total {
        finish(plan, partial, report);
        return;
    }
    while let Some(input) = inputs.blocking_recv() {
        if plan.discard.load(Ordering::Acquire) {
            break;
        }
        match input {
            SinkInput::Chunk {
                attempt: theirs,
                index,
                data,
            } => {
                if theirs != attempt {
                    tracing::debug!("dropped a chunk of an earlier attempt");
                    continue;
                }
                if index != partial.written || chunk_len(plan.size, index) != Some(data.len()) {
                    let _ = std::fs::remove_file(&plan.partial);
                    report(SinkReport::Violation);
                    return;
                }
                if let Err(e) = partial.append(&data) {
                    let through = partial.rewind();
                    report(SinkReport::DiskError {
                        reason: disk_reason(&e),
                        through,
                    });
                    return;
                }
                let done = partial.written >= total;
                if done || partial.written.is_multiple_of(ACK_EVERY) {
                    report(SinkReport::Ack {
                        attempt,
                        through: partial.written,
                    });
                }
                if done {
                    finish(plan, partial, report);
                    return;
                }
                if partial.unsynced >= CHECKPOINT_BYTES {
                    match partial.sync() {
                        Ok(through) => {
                            report(SinkReport::Checkpoint { through });
                        }
                        Err(e) => {
                            let through = partial.rewind();
                            report(SinkReport::DiskError {
                                reason: disk_reason(&e),
                                through,
                            });
                            return;
                        }
                    }
                }
            }
            SinkInput::Resume { attempt: next } => {
                attempt = next;
                if !report(SinkReport::Ready {
                    attempt,
                    from: partial.written,
                }) {
                    return;
                }
            }
            SinkInput::Stop(answer) => {
                let through = partial.sync().unwrap_or_else(|_| partial.rewind());
                let _ = answer.send(through);
                return;
            }
        }
    }
    if plan.discard.load(Ordering::Acquire) {
        drop(partial);
        let _ = std::fs::remove_file(&plan.partial);
        return;
    }
    // The engine let go without a word: keep what is on disk.
    if let Ok(through) = partial.sync() {
        report(SinkReport::Checkpoint { through });
    }
}

fn disk_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() => "disk full".into(),
        Some(code) if code == rustix::io::Errno::DQUOT.raw_os_error() => {
            "disk quota exceeded".into()
        }
        _ => format!("cannot write the file: {e}"),
    }
}

/// The partial file being written, with its running hash.
struct Partial {
    file: File,
    hasher: blake3::Hasher,
    /// Chunks written (not necessarily synced).
    written: u32,
    /// Chunks synced.
    synced: u32,
    unsynced: u64,
}

impl Partial {
    /// Opens the partial file, cut back to the checkpoint, or creates it.
    fn open(plan: &SinkPlan) -> io::Result<Self> {
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
        let existing = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nofollow)
            .open(&plan.partial);
        let (mut file, chunks) = match existing {
            Ok(file) => {
                let meta = file.metadata()?;
                if !meta.is_file() || meta.nlink() != 1 {
                    return Err(io::Error::other(
                        "the partial file is not a regular file of its own",
                    ));
                }
                let on_disk = u32::try_from(meta.len() / CHUNK_LEN as u64).unwrap_or(u32::MAX);
                (file, plan.checkpoint.min(on_disk))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if plan.checkpoint > 0 {
                    tracing::warn!("a partial file was missing; the transfer starts over");
                }
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(nofollow)
                    .open(&plan.partial)?;
                sync_dir(&plan.dir)?;
                (file, 0)
            }
            Err(e) => return Err(e),
        };
        let keep = u64::from(chunks) * CHUNK_LEN as u64;
        file.set_len(keep)?;
        file.seek(SeekFrom::Start(0))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut left = keep;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let part = buf.get_mut(..want).unwrap_or_default();
            file.read_exact(part)?;
            hasher.update(part);
            left -= want as u64;
        }
        Ok(Self {
            file,
            hasher,
            written: chunks,
            synced: chunks,
            unsynced: 0,
        })
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.written += 1;
        self.unsynced += data.len() as u64;
        Ok(())
    }

    /// Syncs the data; returns the chunks now on disk.
    fn sync(&mut self) -> io::Result<u32> {
        self.file.sync_data()?;
        self.synced = self.written;
        self.unsynced = 0;
        Ok(self.synced)
    }

    /// After a failed write: cut back to what was synced, to free space and
    /// leave nothing torn; returns the chunks kept.
    fn rewind(&mut self) -> u32 {
        let keep = u64::from(self.synced) * CHUNK_LEN as u64;
        if self.file.set_len(keep).is_err() {
            tracing::debug!("could not cut a partial file back");
        }
        let _ = self.file.sync_data();
        self.written = self.synced;
        self.synced
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Checks the hash and moves the file to its name.
fn finish(plan: &SinkPlan, mut partial: Partial, report: &dyn Fn(SinkReport) -> bool) {
    if let Err(e) = partial.sync() {
        let through = partial.rewind();
        report(SinkReport::DiskError {
            reason: disk_reason(&e),
            through,
        });
        return;
    }
    if partial.hasher.finalize().as_bytes() != &plan.hash {
        drop(partial);
        let _ = std::fs::remove_file(&plan.partial);
        report(SinkReport::Mismatch);
        return;
    }
    drop(partial);
    if plan.discard.load(Ordering::Acquire) {
        let _ = std::fs::remove_file(&plan.partial);
        return;
    }
    match place(plan) {
        Ok(path) => {
            report(SinkReport::Saved(path));
        }
        Err(e) => {
            report(SinkReport::DiskError {
                reason: format!("cannot move the file into place: {e}"),
                through: chunk_count(plan.size).unwrap_or(0),
            });
        }
    }
}

/// Moves the verified partial to its name. Unless overwriting, the name is
/// first reserved with an exclusive create (which never follows a symlink), and
/// `name (1).ext`, `name (2).ext`, … are tried if it is taken.
fn place(plan: &SinkPlan) -> io::Result<PathBuf> {
    let first = plan.dir.join(&plan.save_name);
    if plan.overwrite {
        std::fs::rename(&plan.partial, &first)?;
        if let Err(e) = sync_dir(&plan.dir) {
            tracing::debug!("could not sync a downloads directory: {e}");
        }
        return Ok(first);
    }
    for n in 0..100u32 {
        let candidate = if n == 0 {
            first.clone()
        } else {
            plan.dir.join(numbered(&plan.save_name, n))
        };
        let reserved = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate);
        match reserved {
            Ok(_) => {
                if let Err(e) = std::fs::rename(&plan.partial, &candidate) {
                    let _ = std::fs::remove_file(&candidate);
                    return Err(e);
                }
                // The file is in place; a failed directory sync only means it
                // might not survive a crash that comes right now.
                if let Err(e) = sync_dir(&plan.dir) {
                    tracing::debug!("could not sync a downloads directory: {e}");
                }
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("every name like it is taken"))
}

/// `name (n).ext` for `name.ext`, the stem shortened if the whole would be
/// longer than a file name may be.
pub(crate) fn numbered(name: &str, n: u32) -> String {
    let (stem, ext) = match name.rfind('.').filter(|&dot| dot > 0) {
        Some(dot) => name.split_at(dot),
        None => (name, ""),
    };
    let tag = format!(" ({n})");
    let mut end = stem
        .len()
        .min(MAX_NAME_LEN.saturating_sub(tag.len() + ext.len()));
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{tag}{ext}", stem.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const SIZE: u64 = 3 * CHUNK_LEN as u64 + 100;

    fn data() -> Vec<u8> {
        (0..SIZE).map(|i| (i % 251) as u8).collect()
    }

    fn plan(dir: &Path, hash: [u8; 32], checkpoint: u32) -> SinkPlan {
        SinkPlan {
            transfer: 1,
            generation: 1,
            discard: Arc::default(),
            dir: dir.to_owned(),
            partial: partial_path(dir, 1, &FileId([9; 16])),
            save_name: "out.bin".into(),
            overwrite: false,
            size: SIZE,
            hash,
            checkpoint,
            attempt: 1,
        }
    }

    fn chunk(data: &[u8], index: u32) -> SinkInput {
        let start = index as usize * CHUNK_LEN;
        let end = (start + CHUNK_LEN).min(data.len());
        SinkInput::Chunk {
            attempt: 1,
            index,
            data: data[start..end].to_vec(),
        }
    }

    /// Runs a sink on `inputs` (then closed) and returns what it reported.
    fn run(plan: SinkPlan, inputs: Vec<SinkInput>) -> Vec<SinkReport> {
        let (tx, rx) = mpsc::channel(64);
        for input in inputs {
            tx.try_send(input).unwrap();
        }
        drop(tx);
        let reports = Mutex::new(Vec::new());
        sink(plan, rx, &|r| {
            reports.lock().unwrap().push(r);
            true
        });
        reports.into_inner().unwrap()
    }

    #[test]
    fn a_sink_writes_in_order_acks_and_saves_the_verified_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let hash = *blake3::hash(&data).as_bytes();
        let reports = run(
            plan(dir.path(), hash, 0),
            (0..4).map(|i| chunk(&data, i)).collect(),
        );
        assert!(matches!(
            reports[0],
            SinkReport::Ready {
                attempt: 1,
                from: 0
            }
        ));
        assert!(matches!(reports[1], SinkReport::Ack { through: 4, .. }));
        let SinkReport::Saved(path) = &reports[2] else {
            panic!("{reports:?}");
        };
        assert_eq!(path, &dir.path().join("out.bin"));
        assert_eq!(std::fs::read(path).unwrap(), data);
        assert!(!plan(dir.path(), hash, 0).partial.exists());

        // The name is taken now: the next file gets a numbered one.
        let reports = run(
            plan(dir.path(), hash, 0),
            (0..4).map(|i| chunk(&data, i)).collect(),
        );
        let SinkReport::Saved(path) = &reports[2] else {
            panic!("{reports:?}");
        };
        assert_eq!(path, &dir.path().join("out (1).bin"));
    }

    #[test]
    fn a_sink_refuses_chunks_out_of_order_or_of_the_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let hash = *blake3::hash(&data).as_bytes();
        let skipped = run(
            plan(dir.path(), hash, 0),
            vec![chunk(&data, 0), chunk(&data, 2)],
        );
        assert!(
            matches!(skipped.last(), Some(SinkReport::Violation)),
            "{skipped:?}"
        );
        assert!(!plan(dir.path(), hash, 0).partial.exists());
        let wrong_length = SinkInput::Chunk {
            attempt: 1,
            index: 0,
            data: vec![0; 10],
        };
        let short = run(plan(dir.path(), hash, 0), vec![wrong_length]);
        assert!(
            matches!(short.last(), Some(SinkReport::Violation)),
            "{short:?}"
        );
    }

    #[test]
    fn chunks_of_an_earlier_attempt_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let hash = *blake3::hash(&data).as_bytes();
        let mut inputs = vec![chunk(&data, 0), SinkInput::Resume { attempt: 2 }];
        inputs.push(chunk(&data, 1)); // still attempt 1: dropped
        for index in 1..4 {
            let SinkInput::Chunk { index, data, .. } = chunk(&data, index) else {
                unreachable!()
            };
            inputs.push(SinkInput::Chunk {
                attempt: 2,
                index,
                data,
            });
        }
        let reports = run(plan(dir.path(), hash, 0), inputs);
        assert!(
            matches!(
                reports[1],
                SinkReport::Ready {
                    attempt: 2,
                    from: 1
                }
            ),
            "{reports:?}"
        );
        assert!(
            matches!(reports.last(), Some(SinkReport::Saved(_))),
            "{reports:?}"
        );
    }

    #[test]
    fn a_mismatch_is_an_error_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let reports = run(
            plan(dir.path(), [0; 32], 0),
            (0..4).map(|i| chunk(&data, i)).collect(),
        );
        assert!(
            matches!(reports.last(), Some(SinkReport::Mismatch)),
            "{reports:?}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_restarted_sink_cuts_the_partial_back_to_its_checkpoint_and_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let hash = *blake3::hash(&data).as_bytes();
        // Three chunks were written, but only two were known to be synced.
        let (answer, synced) = oneshot::channel();
        let stopped = run(
            plan(dir.path(), hash, 0),
            vec![
                chunk(&data, 0),
                chunk(&data, 1),
                chunk(&data, 2),
                SinkInput::Stop(answer),
            ],
        );
        assert_eq!(synced.blocking_recv().unwrap(), 3, "{stopped:?}");
        let reports = run(
            plan(dir.path(), hash, 2),
            vec![chunk(&data, 2), chunk(&data, 3)],
        );
        assert!(
            matches!(reports[0], SinkReport::Ready { from: 2, .. }),
            "{reports:?}"
        );
        let SinkReport::Saved(path) = reports.last().unwrap() else {
            panic!("{reports:?}");
        };
        assert_eq!(std::fs::read(path).unwrap(), data);
    }

    #[test]
    fn a_discarded_sink_deletes_its_partial_and_places_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let plan = plan(dir.path(), *blake3::hash(&data).as_bytes(), 0);
        plan.discard.store(true, Ordering::Release);
        // Even with every chunk already queued.
        let reports = run(plan, (0..4).map(|i| chunk(&data, i)).collect());
        assert!(
            !reports.iter().any(|r| matches!(r, SinkReport::Saved(_))),
            "{reports:?}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_full_disk_keeps_what_was_synced_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let plan = plan(dir.path(), *blake3::hash(&data).as_bytes(), 0);
        // Every write to /dev/full fails as a full disk does.
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let partial = Partial {
            file: full,
            hasher: blake3::Hasher::new(),
            written: 0,
            synced: 0,
            unsynced: 0,
        };
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(chunk(&data, 0)).unwrap();
        drop(tx);
        let reports = Mutex::new(Vec::new());
        write_partial(&plan, partial, rx, &|r| {
            reports.lock().unwrap().push(r);
            true
        });
        let reports = reports.into_inner().unwrap();
        match reports.last() {
            Some(SinkReport::DiskError { reason, through: 0 }) => assert_eq!(reason, "disk full"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_partial_file_that_is_a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"precious").unwrap();
        let plan = plan(dir.path(), [0; 32], 0);
        std::os::unix::fs::symlink(&target, &plan.partial).unwrap();
        let reports = run(plan, vec![]);
        assert!(
            matches!(reports[0], SinkReport::DiskError { .. }),
            "{reports:?}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("photo.jpg", 1), "photo (1).jpg");
        assert_eq!(numbered("archive.tar.gz", 2), "archive.tar (2).gz");
        assert_eq!(numbered("README", 3), "README (3)");
        let long = format!("{}.txt", "a".repeat(251));
        assert_eq!(numbered(&long, 12).len(), MAX_NAME_LEN);
        assert!(numbered(&long, 12).ends_with("a (12).txt"));
    }

    #[test]
    fn the_meter_reports_rate_and_time_left() {
        let mut meter = Meter::default();
        let t0 = Instant::now();
        assert_eq!(meter.rate(), None);
        meter.record(t0, 0);
        meter.record(t0 + Duration::from_secs(1), 1_000_000);
        meter.record(t0 + Duration::from_secs(2), 2_000_000);
        assert_eq!(meter.rate(), Some(1_000_000));
        assert_eq!(meter.eta(5_000_000), Some(3));
        assert!(meter.due(t0));
        assert!(!meter.due(t0 + Duration::from_millis(100)));
        assert!(meter.due(t0 + Duration::from_millis(600)));
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let name = "é".repeat(200);
        let cut = truncate_name(&name);
        assert!(cut.len() <= MAX_NAME_LEN);
        assert!(name.starts_with(&cut));
    }
}

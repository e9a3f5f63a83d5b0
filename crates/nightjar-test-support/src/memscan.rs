//! Looks for a secret's bytes anywhere in this process's writable memory.
//!
//! A zeroization test makes a secret, exports its bytes into a [`Needle`], checks
//! that [`scan_process`] finds them while the secret lives (the scan sees that
//! memory), drops the secret, calls [`scrub_stack`] and checks that the scan finds
//! nothing: [`check_zeroized`] does all of it.
//!
//! Memory is read through `/proc/self/mem`, a file, so no `unsafe` is needed.
//! Every private writable mapping (`rw-p` in `/proc/self/maps`: heap, stacks,
//! anonymous mappings, data sections) is searched for each 16-byte piece of the
//! secret separately: the allocator overwrites the first 16 bytes of a freed
//! chunk with its own pointers, so a search for the whole secret would miss a key
//! that was freed without being zeroized.
//!
//! Scans are serialised: tests in one binary may scan at the same time.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::FileExt as _;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroize as _;

/// The length of the pieces searched for.
pub const PIECE: usize = 16;

/// Held by a running scan.
static SCANNING: Mutex<()> = Mutex::new(());

/// How much memory is read at a time.
const CHUNK: usize = 1 << 20;

/// A secret to look for, kept inverted so that the needle itself never matches.
pub struct Needle {
    /// Each piece inverted, with the index of a byte that is neither 0x00 nor 0xff
    /// (bytes that fill most of memory), where the search anchors.
    pieces: Vec<([u8; PIECE], usize)>,
}

impl Needle {
    /// The needle for `secret`: its consecutive 16-byte pieces (the last one
    /// ending at the secret's end, overlapping the one before if need be).
    ///
    /// # Panics
    ///
    /// If `secret` is shorter than 16 bytes: shorter needles match by chance.
    #[allow(clippy::panic)]
    pub fn from_secret(secret: &[u8]) -> Self {
        if secret.len() < PIECE {
            panic!("a needle needs at least {PIECE} bytes");
        }
        let mut starts: Vec<usize> = (0..=secret.len() - PIECE).step_by(PIECE).collect();
        if !secret.len().is_multiple_of(PIECE) {
            starts.push(secret.len() - PIECE);
        }
        let pieces = starts
            .into_iter()
            .map(|start| {
                let mut piece = [0u8; PIECE];
                for (inverted, byte) in piece.iter_mut().zip(&secret[start..start + PIECE]) {
                    *inverted = !byte;
                }
                let anchor = piece
                    .iter()
                    .position(|b| *b != 0 && *b != 0xff)
                    .unwrap_or(0);
                (piece, anchor)
            })
            .collect();
        Self { pieces }
    }

    /// How many pieces the secret was cut into.
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// Every place in `hay` where a piece starts: (offset, piece index).
    fn find_in(&self, hay: &[u8], found: &mut impl FnMut(usize, usize)) {
        for (index, (piece, anchor)) in self.pieces.iter().enumerate() {
            let first = !piece[*anchor];
            for at in memchr::memchr_iter(first, hay) {
                let Some(start) = at.checked_sub(*anchor) else {
                    continue;
                };
                let Some(window) = hay.get(start..start + PIECE) else {
                    continue;
                };
                if window
                    .iter()
                    .zip(piece)
                    .all(|(m, inverted)| *m == !inverted)
                {
                    found(start, index);
                }
            }
        }
    }
}

impl std::fmt::Debug for Needle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Needle")
            .field("pieces", &self.pieces.len())
            .finish_non_exhaustive()
    }
}

/// Where a piece of a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The address of its first byte.
    pub address: u64,
    /// Which piece of the needle.
    pub piece: usize,
    /// The mapping's name in `/proc/self/maps` (`[heap]`, `[stack]`, a file, or
    /// empty for anonymous memory).
    pub mapping: String,
}

/// A private writable mapping: start, end and name.
struct Mapping {
    start: u64,
    end: u64,
    name: String,
}

/// The start and end of a mapping's `start-end` field (hex), as
/// `/proc/self/maps` and `/proc/self/smaps` write it.
fn address_range(field: &str) -> Option<(u64, u64)> {
    let (start, end) = field.split_once('-')?;
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    ))
}

/// The `rw-p` mappings of this process.
fn writable_mappings() -> std::io::Result<Vec<Mapping>> {
    let maps = BufReader::new(File::open("/proc/self/maps")?);
    let mut found = Vec::new();
    for line in maps.lines() {
        let line = line?;
        let mut fields = line.split_whitespace();
        let (Some(range), Some("rw-p")) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = address_range(range) else {
            continue;
        };
        let name = fields.nth(3).unwrap_or_default().to_owned();
        found.push(Mapping { start, end, name });
    }
    Ok(found)
}

/// Every place in this process's private writable memory holding a piece of the
/// needle's secret.
///
/// The buffer memory is read into is zeroed before it is freed, so a scan leaves
/// no copy for the next one to find. A mapping that cannot be read (one unmapped
/// since the list was taken) is skipped: the positive control of each test shows
/// that the memory it cares about was read.
///
/// # Errors
///
/// If `/proc/self/maps` or `/proc/self/mem` cannot be opened.
pub fn scan_process(needle: &Needle) -> std::io::Result<Vec<Hit>> {
    // One scan at a time: a scan running on another thread holds a copy of
    // whatever it has just read, this secret included, until it ends.
    let _one_at_a_time = SCANNING.lock().unwrap_or_else(PoisonError::into_inner);
    let mappings = writable_mappings()?;
    let mem = File::open("/proc/self/mem")?;
    let mut buffer = vec![0u8; CHUNK];
    let mut hits = Vec::new();
    for mapping in &mappings {
        scan_mapping(&mem, mapping, needle, &mut buffer, &mut hits);
    }
    buffer.zeroize();
    Ok(hits)
}

/// Scans one mapping a chunk at a time; consecutive chunks overlap by a piece's
/// length less one byte, so no piece is missed at a boundary.
fn scan_mapping(
    mem: &File,
    mapping: &Mapping,
    needle: &Needle,
    buffer: &mut [u8],
    hits: &mut Vec<Hit>,
) {
    let step = (buffer.len() - (PIECE - 1)) as u64;
    let mut at = mapping.start;
    while at < mapping.end {
        let want =
            usize::try_from(mapping.end - at).map_or(buffer.len(), |left| left.min(buffer.len()));
        let Ok(read) = mem.read_at(&mut buffer[..want], at) else {
            return;
        };
        if read == 0 {
            return;
        }
        needle.find_in(&buffer[..read], &mut |offset, piece| {
            hits.push(Hit {
                address: at + offset as u64,
                piece,
                mapping: mapping.name.clone(),
            });
        });
        at += step;
    }
}

/// How much of the mapping that holds `address` is locked into RAM, in KiB (the
/// `Locked:` line of `/proc/self/smaps`); `None` if no mapping holds it.
///
/// # Errors
///
/// If `/proc/self/smaps` cannot be read.
pub fn locked_kib(address: u64) -> std::io::Result<Option<u64>> {
    let smaps = BufReader::new(File::open("/proc/self/smaps")?);
    let mut inside = false;
    for line in smaps.lines() {
        let line = line?;
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some((start, end)) = address_range(first) {
            inside = (start..end).contains(&address);
        } else if inside && let Some(kib) = line.strip_prefix("Locked:") {
            let kib = kib.trim().trim_end_matches("kB").trim();
            return Ok(kib.parse().ok());
        }
    }
    Ok(None)
}

/// Overwrites 256 KiB of this thread's stack below the caller with zeros.
///
/// Moving a value leaves its old bytes in dead stack slots; that is not what
/// zeroize-on-drop promises, so a test calls this before its final scan. The
/// caller's own frame is not touched: secrets must have lived in frames of
/// functions the caller called, as [`check_zeroized`] arranges.
#[inline(never)]
pub fn scrub_stack() {
    let mut scratch = [0u8; 256 * 1024];
    std::hint::black_box(&mut scratch);
}

/// Checks the positive control: every piece of the secret is in memory while the
/// value holding it lives.
///
/// # Panics
///
/// If a piece is missing (the scan does not see that memory, or the export was
/// not the secret the value holds), or if memory cannot be read.
#[allow(clippy::panic)]
pub fn assert_present(needle: &Needle, what: &str) {
    let hits = scan(needle);
    let missing: Vec<usize> = (0..needle.pieces())
        .filter(|piece| !hits.iter().any(|hit| hit.piece == *piece))
        .collect();
    if !missing.is_empty() {
        panic!(
            "{what}: pieces {missing:?} of the live secret were not found; the scan proves nothing"
        );
    }
}

/// The whole zeroization check of one type: `make` builds a value from fresh
/// randomness and the needle for the secret it holds; the scan must find the
/// secret while the value lives (the positive control); `use_it` exercises the
/// value; the value is dropped, the stack scrubbed, and the scan must find nothing.
///
/// The value lives only in frames below this one, which [`scrub_stack`] then
/// overwrites: what the scan finds is in the heap or in static memory.
///
/// # Panics
///
/// If the positive control fails, if the secret is found after the drop (with
/// where it was), or if memory cannot be read.
#[allow(clippy::panic)]
pub fn check_zeroized<T>(
    what: &str,
    make: impl FnOnce() -> (T, Needle),
    use_it: impl FnOnce(&mut T),
) {
    let needle = live_then_dropped(what, make, use_it);
    scrub_stack();
    let hits = scan(&needle);
    if !hits.is_empty() {
        panic!("{what}: the secret outlived its value: {hits:#x?}");
    }
}

#[inline(never)]
fn live_then_dropped<T>(
    what: &str,
    make: impl FnOnce() -> (T, Needle),
    use_it: impl FnOnce(&mut T),
) -> Needle {
    let (mut value, needle) = make();
    assert_present(&needle, what);
    use_it(&mut value);
    drop(value);
    needle
}

#[allow(clippy::panic)]
fn scan(needle: &Needle) -> Vec<Hit> {
    scan_process(needle).unwrap_or_else(|e| panic!("cannot read this process's memory: {e}"))
}

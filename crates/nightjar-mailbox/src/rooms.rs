//! The room relay's table: rooms of fixed-size cells in RAM, each named by a
//! keyed hash of its room key, with per-room and global bounds and a lifetime.
//! Time is passed in; nothing here reads a clock.
//!
//! A room comes into being with its first cell and is dropped with its last.
//! Cells are numbered per room: the first cell of a room gets
//! `time × SEQS_PER_SECOND` (or one above the highest number handed out so
//! far, if that is higher) and each later one the next number. So numbers are
//! dense while a room lives (a gap below `oldest` is exactly what a reader
//! missed), are never handed out twice even when a room empties and comes back,
//! and keep rising across a restart as long as the clock does.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;

use zeroize::Zeroize;

/// Bytes of bookkeeping counted for each cell besides its data: its entry in
/// the room's queue and the allocator's header of its boxed data.
pub const CELL_OVERHEAD: usize = size_of::<Cell>() + 16;
/// Bytes of bookkeeping counted for each room: its hash-table entry (with a
/// control byte and load-factor slack) and its queue's allocation header.
pub const ROOM_OVERHEAD: usize = (size_of::<(RoomId, Room)>() + 1) * 8 / 7 + 16;
/// How far a room's first sequence number moves per second of the clock.
/// Below 2^53 until far in the future, so the numbers survive any JSON reader.
pub const SEQS_PER_SECOND: u64 = 1 << 20;

/// The name of a room in the table: a keyed hash of its room key, under a
/// secret the mailbox draws when it starts. The key itself is never kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(pub [u8; 32]);

impl std::fmt::Debug for RoomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomId(..)")
    }
}

/// The table's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomLimits {
    /// Most rooms at once.
    pub max_rooms: usize,
    /// Most cells in one room; a post to a full room drops its oldest cell.
    pub max_cells: usize,
    /// Most accounted bytes at once (data plus overheads).
    pub max_bytes: usize,
    /// Seconds a cell lives.
    pub ttl_secs: u64,
}

/// Why a cell was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomError {
    /// A new room was wanted, and the table holds as many as it may.
    TooManyRooms,
    /// The table is at its byte bound.
    Full,
}

/// What a read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// `(seq, data)` of the cells after the one asked for, oldest first.
    pub cells: Vec<(u64, Vec<u8>)>,
    /// The number of the oldest live cell, if there is one.
    pub oldest: Option<u64>,
    /// Whether more cells wait beyond those returned.
    pub more: bool,
}

struct Cell {
    seq: u64,
    expires_at: u64,
    data: Box<[u8]>,
}

impl Drop for Cell {
    fn drop(&mut self) {
        // Cells are ciphertext, but there is no reason to leave them in freed memory.
        self.data.zeroize();
    }
}

struct Room {
    cells: VecDeque<Cell>,
    next_seq: u64,
}

/// The room table.
pub struct Rooms {
    rooms: HashMap<RoomId, Room>,
    limits: RoomLimits,
    cells: usize,
    bytes: usize,
    /// The highest sequence number handed out, over all rooms.
    highest_seq: u64,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: room ids are not for logs.
        f.debug_struct("Rooms")
            .field("rooms", &self.rooms.len())
            .field("cells", &self.cells)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Rooms {
    /// An empty table.
    pub fn new(limits: RoomLimits) -> Self {
        Rooms {
            rooms: HashMap::new(),
            limits,
            cells: 0,
            bytes: 0,
            highest_seq: 0,
        }
    }

    fn cell_cost(data_len: usize) -> usize {
        data_len + CELL_OVERHEAD
    }

    /// Appends `data` to room `id` at time `now` and returns its sequence
    /// number. A full room drops its oldest cell; a new room past
    /// `max_rooms`, or a cell past the byte bound, is refused without change.
    pub fn post(&mut self, id: RoomId, data: &[u8], now: u64) -> Result<u64, RoomError> {
        // Expired cells no longer count, sweep or not.
        self.expire(&id, now);
        let cost = Self::cell_cost(data.len());
        let limits = self.limits;
        let seq = match self.rooms.get_mut(&id) {
            Some(room) => {
                let evicted = if room.cells.len() >= limits.max_cells {
                    room.cells
                        .front()
                        .map_or(0, |c| Self::cell_cost(c.data.len()))
                } else {
                    0
                };
                if (self.bytes - evicted).saturating_add(cost) > limits.max_bytes {
                    return Err(RoomError::Full);
                }
                if evicted > 0 {
                    room.cells.pop_front();
                    self.cells -= 1;
                    self.bytes -= evicted;
                }
                room.next_seq
            }
            None => {
                if self.rooms.len() >= limits.max_rooms {
                    return Err(RoomError::TooManyRooms);
                }
                if self.bytes.saturating_add(cost + ROOM_OVERHEAD) > limits.max_bytes {
                    return Err(RoomError::Full);
                }
                self.bytes += ROOM_OVERHEAD;
                now.saturating_mul(SEQS_PER_SECOND)
                    .max(self.highest_seq.saturating_add(1))
            }
        };
        let room = self.rooms.entry(id).or_insert_with(|| Room {
            cells: VecDeque::new(),
            next_seq: seq,
        });
        room.cells.push_back(Cell {
            seq,
            expires_at: now.saturating_add(limits.ttl_secs),
            data: data.into(),
        });
        room.next_seq = seq.saturating_add(1);
        self.highest_seq = self.highest_seq.max(seq);
        self.cells += 1;
        self.bytes += cost;
        Ok(seq)
    }

    /// The number of a live cell of room `id` holding exactly `data`, if any.
    pub fn find(&self, id: &RoomId, data: &[u8], now: u64) -> Option<u64> {
        self.live(id, now).find(|c| *c.data == *data).map(|c| c.seq)
    }

    /// Up to `limit` live cells of room `id` numbered above `after`.
    pub fn read(&self, id: &RoomId, after: u64, limit: usize, now: u64) -> Read {
        let oldest = self.live(id, now).next().map(|c| c.seq);
        let mut newer = self.live(id, now).filter(|c| c.seq > after);
        let cells = newer
            .by_ref()
            .take(limit)
            .map(|c| (c.seq, c.data.to_vec()))
            .collect();
        Read {
            cells,
            oldest,
            more: newer.next().is_some(),
        }
    }

    fn live<'a>(&'a self, id: &RoomId, now: u64) -> impl Iterator<Item = &'a Cell> + 'a {
        self.rooms
            .get(id)
            .into_iter()
            .flat_map(|room| room.cells.iter())
            .filter(move |c| c.expires_at > now)
    }

    /// Drops the expired cells of one room, and the room if none are left.
    fn expire(&mut self, id: &RoomId, now: u64) {
        let Some(room) = self.rooms.get_mut(id) else {
            return;
        };
        let (removed, freed) = Self::expire_cells(room, now);
        self.cells -= removed;
        self.bytes -= freed;
        if room.cells.is_empty() {
            self.rooms.remove(id);
            self.bytes -= ROOM_OVERHEAD;
        }
    }

    /// Drops a room's expired cells; returns how many and their accounted bytes.
    fn expire_cells(room: &mut Room, now: u64) -> (usize, usize) {
        let before = room.cells.len();
        let mut freed = 0;
        room.cells.retain(|c| {
            let keep = c.expires_at > now;
            if !keep {
                freed += Self::cell_cost(c.data.len());
            }
            keep
        });
        (before - room.cells.len(), freed)
    }

    /// Drops every cell that has expired at `now`, and the rooms left empty;
    /// returns how many cells.
    pub fn sweep(&mut self, now: u64) -> usize {
        let mut removed = 0;
        let mut freed = 0;
        self.rooms.retain(|_, room| {
            let (r, f) = Self::expire_cells(room, now);
            removed += r;
            freed += f;
            if room.cells.is_empty() {
                freed += ROOM_OVERHEAD;
            }
            !room.cells.is_empty()
        });
        self.cells -= removed;
        self.bytes -= freed;
        removed
    }

    /// Rooms held.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Cells held.
    pub fn cell_count(&self) -> usize {
        self.cells
    }

    /// Accounted bytes held (data plus overheads).
    pub fn byte_count(&self) -> usize {
        self.bytes
    }

    /// How full the table is, in thousandths of the tighter of its bounds.
    pub fn fill_permille(&self) -> u32 {
        let by_rooms = self.rooms.len().saturating_mul(1000) / self.limits.max_rooms.max(1);
        let by_bytes = self.bytes.saturating_mul(1000) / self.limits.max_bytes.max(1);
        u32::try_from(by_rooms.max(by_bytes)).unwrap_or(u32::MAX)
    }

    /// Every byte the table holds for its rooms, for inspection (tests, audits):
    /// per room its id (32 bytes) and next sequence number (u64 BE), then per
    /// cell its sequence number and expiry (u64 BE each) and its data. The
    /// table holds nothing else but counts.
    pub fn held_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes);
        for (id, room) in &self.rooms {
            out.extend_from_slice(&id.0);
            out.extend_from_slice(&room.next_seq.to_be_bytes());
            for cell in &room.cells {
                out.extend_from_slice(&cell.seq.to_be_bytes());
                out.extend_from_slice(&cell.expires_at.to_be_bytes());
                out.extend_from_slice(&cell.data);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: usize = 10;
    const T: u64 = 1000;

    fn limits() -> RoomLimits {
        RoomLimits {
            max_rooms: 2,
            max_cells: 3,
            max_bytes: 1 << 20,
            ttl_secs: 100,
        }
    }

    fn room(n: u8) -> RoomId {
        RoomId([n; 32])
    }

    fn seqs(read: &Read) -> Vec<u64> {
        read.cells.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn posts_are_numbered_densely_from_the_clock() {
        let mut r = Rooms::new(limits());
        let base = T * SEQS_PER_SECOND;
        assert_eq!(r.post(room(1), &[1; SIZE], T), Ok(base));
        assert_eq!(r.post(room(1), &[2; SIZE], T + 5), Ok(base + 1));
        // A second room started in the same second does not reuse a number.
        assert_eq!(r.post(room(2), &[3; SIZE], T), Ok(base + 2));
        let read = r.read(&room(1), 0, 10, T + 5);
        assert_eq!(seqs(&read), vec![base, base + 1]);
        assert_eq!(read.cells[1].1, vec![2; SIZE]);
        assert_eq!((read.oldest, read.more), (Some(base), false));
        assert_eq!(seqs(&r.read(&room(1), base, 10, T + 5)), vec![base + 1]);
        let cut = r.read(&room(1), 0, 1, T + 5);
        assert_eq!((seqs(&cut), cut.more), (vec![base], true));
        let none = r.read(&room(3), 0, 10, T);
        assert_eq!(
            none,
            Read {
                cells: Vec::new(),
                oldest: None,
                more: false
            }
        );
    }

    #[test]
    fn a_full_room_drops_its_oldest_and_accounting_follows() {
        let mut r = Rooms::new(limits());
        for n in 0..5u8 {
            r.post(room(1), &[n; SIZE], T).unwrap();
        }
        let read = r.read(&room(1), 0, 10, T);
        let base = T * SEQS_PER_SECOND;
        assert_eq!(seqs(&read), vec![base + 2, base + 3, base + 4]);
        assert_eq!(read.oldest, Some(base + 2));
        assert_eq!(r.cell_count(), 3);
        assert_eq!(r.byte_count(), 3 * (SIZE + CELL_OVERHEAD) + ROOM_OVERHEAD);
    }

    #[test]
    fn room_and_byte_bounds_refuse_without_change() {
        let mut r = Rooms::new(limits());
        r.post(room(1), &[0; SIZE], T).unwrap();
        r.post(room(2), &[0; SIZE], T).unwrap();
        let before = (r.cell_count(), r.byte_count());
        assert_eq!(r.post(room(3), &[0; SIZE], T), Err(RoomError::TooManyRooms));
        assert_eq!((r.cell_count(), r.byte_count()), before);
        assert_eq!(r.fill_permille(), 1000);

        let one = SIZE + CELL_OVERHEAD + ROOM_OVERHEAD;
        let mut r = Rooms::new(RoomLimits {
            max_bytes: one + SIZE + CELL_OVERHEAD,
            ..limits()
        });
        r.post(room(1), &[0; SIZE], T).unwrap();
        assert_eq!(r.post(room(2), &[0; SIZE], T), Err(RoomError::Full));
        r.post(room(1), &[0; SIZE], T).unwrap();
        assert_eq!(r.byte_count(), r.limits.max_bytes);
        assert_eq!(r.post(room(1), &[0; SIZE], T), Err(RoomError::Full));
    }

    #[test]
    fn expired_cells_are_hidden_then_swept_with_their_rooms() {
        let mut r = Rooms::new(limits());
        r.post(room(1), &[1; SIZE], T).unwrap();
        r.post(room(1), &[2; SIZE], T + 50).unwrap();
        r.post(room(2), &[3; SIZE], T + 10).unwrap();
        assert_eq!(r.read(&room(1), 0, 10, T + 100).cells.len(), 1);
        assert_eq!(
            r.find(&room(1), &[1; SIZE], T + 99),
            Some(T * SEQS_PER_SECOND)
        );
        assert_eq!(r.find(&room(1), &[1; SIZE], T + 100), None);
        assert_eq!(r.cell_count(), 3);
        assert_eq!(r.sweep(T + 110), 2);
        assert_eq!((r.room_count(), r.cell_count()), (1, 1));
        assert_eq!(r.byte_count(), SIZE + CELL_OVERHEAD + ROOM_OVERHEAD);
        assert_eq!(r.sweep(T + 150), 1);
        assert_eq!((r.room_count(), r.cell_count(), r.byte_count()), (0, 0, 0));
        assert!(r.held_bytes().is_empty());
    }

    #[test]
    fn a_room_that_comes_back_never_reuses_a_number() {
        let mut r = Rooms::new(limits());
        let mut last = 0;
        for n in 0..3u8 {
            last = r.post(room(1), &[n; SIZE], T).unwrap();
        }
        // Expiry on the next post empties the room and drops it first.
        let again = r.post(room(1), &[9; SIZE], T + 100).unwrap();
        assert!(again > last);
        // Had some room run ahead of the clock, a new room starts above it.
        let mut r = Rooms::new(limits());
        r.highest_seq = (T + 200) * SEQS_PER_SECOND + 5;
        assert_eq!(
            r.post(room(1), &[0; SIZE], T + 200),
            Ok((T + 200) * SEQS_PER_SECOND + 6)
        );
    }

    #[test]
    fn held_bytes_are_ids_numbers_and_cells() {
        let mut r = Rooms::new(limits());
        r.post(room(7), &[0x55; SIZE], T).unwrap();
        let held = r.held_bytes();
        assert_eq!(held.len(), 32 + 8 + 8 + 8 + SIZE);
        assert_eq!(&held[..32], &[7; 32]);
        assert_eq!(&held[held.len() - SIZE..], &[0x55; SIZE]);
    }
}

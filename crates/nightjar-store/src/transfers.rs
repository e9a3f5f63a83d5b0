//! File transfers, both ways: the offer, where it stands, and where the file came
//! from or went.
//!
//! Paths are stored as the bytes of the operating system's string, so a file
//! whose name is not UTF-8 can still be sent and found again after a restart.
//! Names, paths and hashes say what someone sends; `Debug` output leaves them out.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use crate::rows::{self, TRANSFER_COLUMNS, counter_to_sql, size_to_sql, time_to_sql};
use crate::{ContactId, Store, StoreError, check_contact, query_all, query_one};

/// A transfer's row id.
pub type TransferId = i64;

/// Bytes per chunk on the wire; a finished transfer has all its chunks done.
const CHUNK_LEN: u64 = 65_536;

/// Which way a file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferDirection {
    /// The contact sends it to us.
    Incoming,
    /// We send it to the contact.
    Outgoing,
}

/// Where a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferState {
    /// Offered, not answered yet.
    Offered,
    /// The receiver said yes; no chunk has moved yet on the current link.
    Accepted,
    /// Chunks are moving.
    Active,
    /// Stopped on our side (the reason says why) until resumed.
    Paused,
    /// The whole file arrived and matched its hash.
    Completed,
    /// The receiver said no.
    Declined,
    /// One side called it off.
    Cancelled,
    /// It cannot go on (the reason says why).
    Failed,
}

impl TransferState {
    /// Every state, in the order of their stored codes.
    pub const ALL: [Self; 8] = [
        Self::Offered,
        Self::Accepted,
        Self::Active,
        Self::Paused,
        Self::Completed,
        Self::Declined,
        Self::Cancelled,
        Self::Failed,
    ];

    /// Whether nothing more happens to the transfer.
    pub fn is_final(self) -> bool {
        match self {
            Self::Completed | Self::Declined | Self::Cancelled | Self::Failed => true,
            Self::Offered | Self::Accepted | Self::Active | Self::Paused => false,
        }
    }
}

/// A file transfer, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TransferRecord {
    pub id: TransferId,
    pub contact: ContactId,
    pub direction: TransferDirection,
    /// The sender's random id for the file.
    pub file_id: [u8; 16],
    /// Outgoing: the name offered. Incoming: the name as received.
    pub name: String,
    pub size: u64,
    /// The BLAKE3 hash of the whole file, as offered.
    pub hash: [u8; 32],
    pub state: TransferState,
    /// Why it was declined, cancelled, failed or paused, in plain words.
    pub reason: Option<String>,
    /// Incoming: chunks durably written (the checkpoint). Outgoing: chunks acked.
    pub done_chunks: u32,
    /// Outgoing: the file sent.
    pub source_path: Option<PathBuf>,
    /// Outgoing: the source's modification time when it was offered (ns since the
    /// Unix epoch); a different one means the file changed.
    pub source_mtime_ns: Option<i64>,
    /// Incoming: the directory chosen when it was accepted.
    pub dest_dir: Option<PathBuf>,
    /// Incoming: the name it is saved under.
    pub save_name: Option<String>,
    /// Incoming: an existing file of that name may be replaced.
    pub overwrite: bool,
    /// Incoming, completed: where the file landed.
    pub final_path: Option<PathBuf>,
    /// False while a local decline or cancel has still to be sent to the peer.
    pub peer_told: bool,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// An outgoing transfer about to be stored (see [`Store::add_outgoing_transfer`]).
pub struct NewOutgoing<'a> {
    pub contact: ContactId,
    pub file_id: &'a [u8; 16],
    pub name: &'a str,
    pub size: u64,
    pub hash: &'a [u8; 32],
    pub source_path: &'a Path,
    pub source_mtime_ns: i64,
    pub now_ms: u64,
}

/// The first bytes of a file id, enough to tell transfers apart in a log.
struct ShortId<'a>(&'a [u8; 16]);

impl fmt::Debug for ShortId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Shows neither the names, the paths nor the hash.
impl fmt::Debug for TransferRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferRecord")
            .field("id", &self.id)
            .field("contact", &self.contact)
            .field("direction", &self.direction)
            .field("file_id", &ShortId(&self.file_id))
            .field("size", &self.size)
            .field("state", &self.state)
            .field("reason", &self.reason)
            .field("done_chunks", &self.done_chunks)
            .field("overwrite", &self.overwrite)
            .field("peer_told", &self.peer_told)
            .field("created_at_ms", &self.created_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .finish_non_exhaustive()
    }
}

/// Shows neither the name, the path nor the hash.
impl fmt::Debug for NewOutgoing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewOutgoing")
            .field("contact", &self.contact)
            .field("file_id", &ShortId(self.file_id))
            .field("size", &self.size)
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Stores a file we offer to a contact, in state Offered. `NotFound` if the
    /// contact is unknown; `Corrupt` if this file id was used for an outgoing
    /// transfer to them before (ids are random: that is a bug).
    pub fn add_outgoing_transfer(
        &mut self,
        new: &NewOutgoing<'_>,
    ) -> Result<TransferRecord, StoreError> {
        let now = time_to_sql(new.now_ms)?;
        let tx = self.begin()?;
        check_contact(&tx, new.contact)?;
        let inserted = tx.execute(
            "INSERT INTO transfers (contact, direction, file_id, name, size, hash, state, \
             source_path, source_mtime_ns, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) \
             ON CONFLICT (contact, direction, file_id) DO NOTHING",
            params![
                new.contact,
                rows::transfer_direction_code(TransferDirection::Outgoing),
                new.file_id.as_slice(),
                new.name,
                size_to_sql(new.size)?,
                new.hash.as_slice(),
                rows::transfer_state_code(TransferState::Offered),
                path_to_sql(new.source_path),
                new.source_mtime_ns,
                now,
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::Corrupt(
                "an outgoing file id was used twice".to_owned(),
            ));
        }
        let record = transfer_by_id(&tx, tx.last_insert_rowid())?;
        tx.commit()?;
        Ok(record)
    }

    /// Stores an incoming offer in `state` (Offered, or Declined at once with
    /// `reason`) unless the contact offered this file id before; returns the row
    /// and whether it is new. A known offer is returned as stored, unchanged.
    /// `NotFound` if the contact is unknown.
    #[allow(clippy::too_many_arguments)]
    pub fn put_incoming_offer(
        &mut self,
        contact: ContactId,
        file_id: &[u8; 16],
        name: &str,
        size: u64,
        hash: &[u8; 32],
        state: TransferState,
        reason: Option<&str>,
        now_ms: u64,
    ) -> Result<(TransferRecord, bool), StoreError> {
        let now = time_to_sql(now_ms)?;
        let incoming = TransferDirection::Incoming;
        let tx = self.begin()?;
        check_contact(&tx, contact)?;
        let inserted = tx.execute(
            "INSERT INTO transfers (contact, direction, file_id, name, size, hash, state, \
             reason, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) \
             ON CONFLICT (contact, direction, file_id) DO NOTHING",
            params![
                contact,
                rows::transfer_direction_code(incoming),
                file_id.as_slice(),
                name,
                size_to_sql(size)?,
                hash.as_slice(),
                rows::transfer_state_code(state),
                reason,
                now,
            ],
        )?;
        let record =
            transfer_by_file_id(&tx, contact, incoming, file_id)?.ok_or(StoreError::NotFound)?;
        tx.commit()?;
        Ok((record, inserted > 0))
    }

    /// Accepts an incoming transfer: where it goes, under which name, and whether
    /// an existing file there may be replaced; the state becomes Accepted.
    /// `NotFound` for an unknown id or an outgoing transfer. Whether the transfer
    /// may be accepted in its current state is the caller's to decide.
    pub fn accept_transfer(
        &mut self,
        id: TransferId,
        dest_dir: &Path,
        save_name: &str,
        overwrite: bool,
        now_ms: u64,
    ) -> Result<TransferRecord, StoreError> {
        let now = time_to_sql(now_ms)?;
        self.update_transfer(
            id,
            "UPDATE transfers SET state = ?2, dest_dir = ?3, save_name = ?4, overwrite = ?5, \
             updated_at_ms = ?6 WHERE id = ?1 AND direction = ?7",
            params![
                id,
                rows::transfer_state_code(TransferState::Accepted),
                path_to_sql(dest_dir),
                save_name,
                overwrite,
                now,
                rows::transfer_direction_code(TransferDirection::Incoming),
            ],
        )
    }

    /// Moves a transfer to `state`, with `reason` (None clears an earlier one);
    /// `peer_told` false marks a local decline or cancel that has still to be
    /// sent. `NotFound` for an unknown id.
    pub fn set_transfer_state(
        &mut self,
        id: TransferId,
        state: TransferState,
        reason: Option<&str>,
        peer_told: bool,
        now_ms: u64,
    ) -> Result<TransferRecord, StoreError> {
        let now = time_to_sql(now_ms)?;
        self.update_transfer(
            id,
            "UPDATE transfers SET state = ?2, reason = ?3, peer_told = ?4, updated_at_ms = ?5 \
             WHERE id = ?1",
            params![id, rows::transfer_state_code(state), reason, peer_told, now],
        )
    }

    /// Records how many chunks are done (incoming: durably written; outgoing:
    /// acked). `NotFound` for an unknown id.
    pub fn set_transfer_progress(
        &mut self,
        id: TransferId,
        done_chunks: u32,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let now = time_to_sql(now_ms)?;
        self.update_one(
            "UPDATE transfers SET done_chunks = ?2, updated_at_ms = ?3 WHERE id = ?1",
            params![id, counter_to_sql(done_chunks), now],
        )
    }

    /// The peer has been told of the transfer's last local decline or cancel.
    /// `NotFound` for an unknown id.
    pub fn set_peer_told(&mut self, id: TransferId) -> Result<(), StoreError> {
        self.update_one("UPDATE transfers SET peer_told = 1 WHERE id = ?1", [id])
    }

    /// The transfer is Completed: every chunk done, any earlier reason cleared,
    /// and (incoming) the file at `final_path`. The peer learns of it through
    /// the transfer itself, so nothing is left to tell it. `NotFound` for an
    /// unknown id; `Corrupt` if the stored size has more chunks than a count can
    /// hold.
    pub fn complete_transfer(
        &mut self,
        id: TransferId,
        final_path: Option<&Path>,
        now_ms: u64,
    ) -> Result<TransferRecord, StoreError> {
        let now = time_to_sql(now_ms)?;
        let tx = self.begin()?;
        let record = transfer_by_id(&tx, id)?;
        let chunks = chunk_count(record.size)
            .ok_or_else(|| StoreError::Corrupt(format!("a transfer of {} bytes", record.size)))?;
        tx.execute(
            "UPDATE transfers SET state = ?2, reason = NULL, done_chunks = ?3, final_path = ?4, \
             peer_told = 1, updated_at_ms = ?5 WHERE id = ?1",
            params![
                id,
                rows::transfer_state_code(TransferState::Completed),
                counter_to_sql(chunks),
                final_path.map(path_to_sql),
                now,
            ],
        )?;
        let record = transfer_by_id(&tx, id)?;
        tx.commit()?;
        Ok(record)
    }

    /// `NotFound` for an unknown id.
    pub fn transfer(&self, id: TransferId) -> Result<TransferRecord, StoreError> {
        transfer_by_id(&self.conn, id)
    }

    /// The contact's transfer of `file_id` in that direction, if there is one.
    pub fn transfer_by_file(
        &self,
        contact: ContactId,
        direction: TransferDirection,
        file_id: &[u8; 16],
    ) -> Result<Option<TransferRecord>, StoreError> {
        transfer_by_file_id(&self.conn, contact, direction, file_id)
    }

    /// The transfers of one contact, or of all, oldest first.
    pub fn transfers(&self, contact: Option<ContactId>) -> Result<Vec<TransferRecord>, StoreError> {
        match contact {
            Some(contact) => {
                let sql = format!(
                    "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE contact = ?1 ORDER BY id"
                );
                query_all(&self.conn, &sql, [contact], rows::transfer)
            }
            None => {
                let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers ORDER BY id");
                query_all(&self.conn, &sql, [], rows::transfer)
            }
        }
    }

    /// What a new link with the contact has to deal with, oldest first: the
    /// transfers not over yet, and the finished ones whose decline or cancel the
    /// peer has not been told of.
    pub fn unfinished_transfers(
        &self,
        contact: ContactId,
    ) -> Result<Vec<TransferRecord>, StoreError> {
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers \
             WHERE contact = ?1 AND (state NOT IN (?2, ?3, ?4, ?5) OR peer_told = 0) \
             ORDER BY id"
        );
        let code = rows::transfer_state_code;
        let params = params![
            contact,
            code(TransferState::Completed),
            code(TransferState::Declined),
            code(TransferState::Cancelled),
            code(TransferState::Failed),
        ];
        query_all(&self.conn, &sql, params, rows::transfer)
    }

    /// Runs a one-row change of transfer `id` and reads the row back, in one
    /// transaction; `NotFound` if the change touched nothing.
    fn update_transfer(
        &mut self,
        id: TransferId,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<TransferRecord, StoreError> {
        let tx = self.begin()?;
        if tx.execute(sql, params)? == 0 {
            return Err(StoreError::NotFound);
        }
        let record = transfer_by_id(&tx, id)?;
        tx.commit()?;
        Ok(record)
    }
}

/// Chunks in a file of `size` bytes; None past what a count holds.
fn chunk_count(size: u64) -> Option<u32> {
    u32::try_from(size.div_ceil(CHUNK_LEN)).ok()
}

fn path_to_sql(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

fn transfer_by_id(conn: &Connection, id: TransferId) -> Result<TransferRecord, StoreError> {
    let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?1");
    query_one(conn, &sql, [id], rows::transfer)?.ok_or(StoreError::NotFound)
}

fn transfer_by_file_id(
    conn: &Connection,
    contact: ContactId,
    direction: TransferDirection,
    file_id: &[u8; 16],
) -> Result<Option<TransferRecord>, StoreError> {
    let sql = format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfers \
         WHERE contact = ?1 AND direction = ?2 AND file_id = ?3"
    );
    let params = params![
        contact,
        rows::transfer_direction_code(direction),
        file_id.as_slice()
    ];
    query_one(conn, &sql, params, rows::transfer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states() {
        let finished: Vec<TransferState> = TransferState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finished,
            [
                TransferState::Completed,
                TransferState::Declined,
                TransferState::Cancelled,
                TransferState::Failed
            ]
        );
    }

    #[test]
    fn chunk_counts() {
        assert_eq!(chunk_count(0), Some(0));
        assert_eq!(chunk_count(1), Some(1));
        assert_eq!(chunk_count(65_535), Some(1));
        assert_eq!(chunk_count(65_536), Some(1));
        assert_eq!(chunk_count(65_537), Some(2));
        assert_eq!(chunk_count(3 * 65_536 + 1), Some(4));
        assert_eq!(chunk_count(u64::from(u32::MAX) * CHUNK_LEN), Some(u32::MAX));
        assert_eq!(chunk_count(u64::from(u32::MAX) * CHUNK_LEN + 1), None);
    }
}

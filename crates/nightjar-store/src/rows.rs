//! Between rows and records: column lists, enumeration codes, checked conversions.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rusqlite::Row;
use zeroize::Zeroizing;

use crate::{
    BLOB_LEN, ContactRecord, ContactState, Direction, MessageRecord, MessageState, ProfileRecord,
    RecvChainRecord, RequestDirection, RequestRecord, SealedRecord, StoreError, TransferDirection,
    TransferRecord, TransferState,
};

pub(crate) const PROFILE_COLUMNS: &str =
    "identity_secret, request_seed, endpoint_seed, created_at_ms";
pub(crate) const CONTACT_COLUMNS: &str = "id, name, identity_key, their_endpoint, \
     their_credential, our_credential, state, verified, share_presence, created_at_ms, \
     require_auth";
pub(crate) const REQUEST_COLUMNS: &str = "id, direction, peer_key, peer_request_onion, \
     their_endpoint, their_credential, our_credential, name, greeting, delivered, created_at_ms";
pub(crate) const MESSAGE_COLUMNS: &str =
    "seq, contact, msg_id, direction, body, sent_at_ms, stored_at_ms, state, via_mailbox, direct";
pub(crate) const SEALED_COLUMNS: &str = "message_seq, counter, slot_seed, blobs, mailboxes, \
     deposited_to, instance, deposited_at_ms";
pub(crate) const RECV_CHAIN_COLUMNS: &str = "id, contact, grant_id, state, used, created_at_ms";
pub(crate) const TRANSFER_COLUMNS: &str = "id, contact, direction, file_id, name, size, hash, \
     state, reason, done_chunks, source_path, source_mtime_ns, dest_dir, save_name, overwrite, \
     final_path, peer_told, created_at_ms, updated_at_ms";

/// A time as stored.
pub(crate) fn time_to_sql(ms: u64) -> Result<i64, StoreError> {
    i64::try_from(ms).map_err(|_| StoreError::Corrupt(format!("time {ms} out of range")))
}

fn time_from_sql(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored time {v} out of range")))
}

/// A chain counter as stored.
pub(crate) fn counter_to_sql(counter: u32) -> i64 {
    i64::from(counter)
}

fn counter_from_sql(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored counter {v} out of range")))
}

/// A file size as stored.
pub(crate) fn size_to_sql(size: u64) -> Result<i64, StoreError> {
    i64::try_from(size).map_err(|_| StoreError::Corrupt(format!("file size {size} out of range")))
}

fn size_from_sql(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored file size {v} out of range")))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(crate) fn contact_state_code(state: ContactState) -> i64 {
    match state {
        ContactState::Accepting => 0,
        ContactState::Active => 1,
    }
}

fn contact_state(code: i64) -> Result<ContactState, StoreError> {
    match code {
        0 => Ok(ContactState::Accepting),
        1 => Ok(ContactState::Active),
        _ => Err(corrupt("unknown contact state")),
    }
}

pub(crate) fn request_direction_code(direction: RequestDirection) -> i64 {
    match direction {
        RequestDirection::Incoming => 0,
        RequestDirection::Outgoing => 1,
    }
}

fn request_direction(code: i64) -> Result<RequestDirection, StoreError> {
    match code {
        0 => Ok(RequestDirection::Incoming),
        1 => Ok(RequestDirection::Outgoing),
        _ => Err(corrupt("unknown request direction")),
    }
}

pub(crate) fn direction_code(direction: Direction) -> i64 {
    match direction {
        Direction::Incoming => 0,
        Direction::Outgoing => 1,
    }
}

fn direction(code: i64) -> Result<Direction, StoreError> {
    match code {
        0 => Ok(Direction::Incoming),
        1 => Ok(Direction::Outgoing),
        _ => Err(corrupt("unknown message direction")),
    }
}

pub(crate) fn message_state_code(state: MessageState) -> i64 {
    match state {
        MessageState::Queued => 0,
        MessageState::Sent => 1,
        MessageState::Delivered => 2,
        MessageState::Received => 3,
        MessageState::Deposited => 4,
    }
}

fn message_state(code: i64) -> Result<MessageState, StoreError> {
    match code {
        0 => Ok(MessageState::Queued),
        1 => Ok(MessageState::Sent),
        2 => Ok(MessageState::Delivered),
        3 => Ok(MessageState::Received),
        4 => Ok(MessageState::Deposited),
        _ => Err(corrupt("unknown message state")),
    }
}

pub(crate) fn transfer_direction_code(direction: TransferDirection) -> i64 {
    match direction {
        TransferDirection::Incoming => 0,
        TransferDirection::Outgoing => 1,
    }
}

fn transfer_direction(code: i64) -> Result<TransferDirection, StoreError> {
    match code {
        0 => Ok(TransferDirection::Incoming),
        1 => Ok(TransferDirection::Outgoing),
        _ => Err(corrupt("unknown transfer direction")),
    }
}

pub(crate) fn transfer_state_code(state: TransferState) -> i64 {
    match state {
        TransferState::Offered => 0,
        TransferState::Accepted => 1,
        TransferState::Active => 2,
        TransferState::Paused => 3,
        TransferState::Completed => 4,
        TransferState::Declined => 5,
        TransferState::Cancelled => 6,
        TransferState::Failed => 7,
    }
}

fn transfer_state(code: i64) -> Result<TransferState, StoreError> {
    match code {
        0 => Ok(TransferState::Offered),
        1 => Ok(TransferState::Accepted),
        2 => Ok(TransferState::Active),
        3 => Ok(TransferState::Paused),
        4 => Ok(TransferState::Completed),
        5 => Ok(TransferState::Declined),
        6 => Ok(TransferState::Cancelled),
        7 => Ok(TransferState::Failed),
        _ => Err(corrupt("unknown transfer state")),
    }
}

fn flag(code: i64) -> Result<bool, StoreError> {
    match code {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(corrupt("bad flag")),
    }
}

/// A fixed-size BLOB, copied straight out of SQLite's buffer.
fn array<const N: usize>(row: &Row<'_>, idx: usize) -> Result<[u8; N], StoreError> {
    let mut out = [0u8; N];
    copy_blob(row, idx, &mut out)?;
    Ok(out)
}

/// A fixed-size secret BLOB, copied straight from SQLite's buffer into zeroizing
/// memory, with no intermediate `Vec`.
fn secret<const N: usize>(row: &Row<'_>, idx: usize) -> Result<Zeroizing<[u8; N]>, StoreError> {
    let mut out = Zeroizing::new([0u8; N]);
    copy_blob(row, idx, out.as_mut_slice())?;
    Ok(out)
}

/// A BLOB holding fixed-size items one after the other.
fn array_list<const N: usize>(row: &Row<'_>, idx: usize) -> Result<Vec<[u8; N]>, StoreError> {
    let blob = row
        .get_ref(idx)?
        .as_blob()
        .map_err(|_| corrupt("a list column is not a blob"))?;
    let chunks = blob.chunks_exact(N);
    if !chunks.remainder().is_empty() {
        return Err(corrupt("a list column has a partial item"));
    }
    chunks
        .map(|chunk| <[u8; N]>::try_from(chunk).map_err(|_| corrupt("a list item is misread")))
        .collect()
}

/// A secret BLOB of any length, copied straight from SQLite's buffer into zeroizing
/// memory.
fn secret_vec(row: &Row<'_>, idx: usize) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let blob = row
        .get_ref(idx)?
        .as_blob()
        .map_err(|_| corrupt("a state column is not a blob"))?;
    Ok(Zeroizing::new(blob.to_vec()))
}

/// A secret BLOB on its own, as a query's only column.
pub(crate) fn chain_state(row: &Row<'_>) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    secret_vec(row, 0)
}

/// An onion key on its own, as a query's only column.
pub(crate) fn onion_key(row: &Row<'_>) -> Result<[u8; 32], StoreError> {
    array(row, 0)
}

/// A path stored as the bytes of the operating system's string.
fn path(row: &Row<'_>, idx: usize) -> Result<PathBuf, StoreError> {
    let blob = row
        .get_ref(idx)?
        .as_blob()
        .map_err(|_| corrupt("a path column is not a blob"))?;
    Ok(PathBuf::from(OsString::from_vec(blob.to_vec())))
}

fn copy_blob(row: &Row<'_>, idx: usize, out: &mut [u8]) -> Result<(), StoreError> {
    let blob = row
        .get_ref(idx)?
        .as_blob()
        .map_err(|_| corrupt("a key column is not a blob"))?;
    if blob.len() != out.len() {
        return Err(corrupt("a key column has the wrong length"));
    }
    out.copy_from_slice(blob);
    Ok(())
}

fn optional<T>(
    row: &Row<'_>,
    idx: usize,
    read: impl FnOnce(&Row<'_>, usize) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    if matches!(row.get_ref(idx)?, rusqlite::types::ValueRef::Null) {
        Ok(None)
    } else {
        read(row, idx).map(Some)
    }
}

pub(crate) fn profile(row: &Row<'_>) -> Result<ProfileRecord, StoreError> {
    Ok(ProfileRecord {
        identity_secret: secret(row, 0)?,
        request_seed: secret(row, 1)?,
        endpoint_seed: secret(row, 2)?,
        created_at_ms: time_from_sql(row.get(3)?)?,
    })
}

pub(crate) fn contact(row: &Row<'_>) -> Result<ContactRecord, StoreError> {
    Ok(ContactRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        identity_key: array(row, 2)?,
        their_endpoint: array(row, 3)?,
        their_credential: secret(row, 4)?,
        our_credential: secret(row, 5)?,
        state: contact_state(row.get(6)?)?,
        verified: flag(row.get(7)?)?,
        share_presence: flag(row.get(8)?)?,
        created_at_ms: time_from_sql(row.get(9)?)?,
        require_auth: flag(row.get(10)?)?,
    })
}

pub(crate) fn request(row: &Row<'_>) -> Result<RequestRecord, StoreError> {
    Ok(RequestRecord {
        id: row.get(0)?,
        direction: request_direction(row.get(1)?)?,
        peer_key: array(row, 2)?,
        peer_request_onion: optional(row, 3, array)?,
        their_endpoint: optional(row, 4, array)?,
        their_credential: optional(row, 5, secret)?,
        our_credential: optional(row, 6, secret)?,
        name: row.get(7)?,
        greeting: row.get(8)?,
        delivered: flag(row.get(9)?)?,
        created_at_ms: time_from_sql(row.get(10)?)?,
    })
}

pub(crate) fn message(row: &Row<'_>) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        seq: row.get(0)?,
        contact: row.get(1)?,
        id: array(row, 2)?,
        direction: direction(row.get(3)?)?,
        body: row.get(4)?,
        sent_at_ms: time_from_sql(row.get(5)?)?,
        stored_at_ms: time_from_sql(row.get(6)?)?,
        state: message_state(row.get(7)?)?,
        via_mailbox: flag(row.get(8)?)?,
        direct: flag(row.get(9)?)?,
    })
}

pub(crate) fn sealed(row: &Row<'_>) -> Result<SealedRecord, StoreError> {
    let blobs = array_list::<BLOB_LEN>(row, 3)?;
    if blobs.is_empty() {
        return Err(corrupt("a sealed message without blobs"));
    }
    Ok(SealedRecord {
        message_seq: row.get(0)?,
        counter: counter_from_sql(row.get(1)?)?,
        slot_seed: secret(row, 2)?,
        blobs,
        mailboxes: array_list(row, 4)?,
        deposited_to: optional(row, 5, array)?,
        instance: optional(row, 6, array)?,
        deposited_at_ms: optional(row, 7, |row, idx| time_from_sql(row.get(idx)?))?,
    })
}

pub(crate) fn recv_chain(row: &Row<'_>) -> Result<RecvChainRecord, StoreError> {
    Ok(RecvChainRecord {
        id: row.get(0)?,
        contact: row.get(1)?,
        grant_id: array(row, 2)?,
        state: secret_vec(row, 3)?,
        used: flag(row.get(4)?)?,
        created_at_ms: time_from_sql(row.get(5)?)?,
    })
}

pub(crate) fn transfer(row: &Row<'_>) -> Result<TransferRecord, StoreError> {
    Ok(TransferRecord {
        id: row.get(0)?,
        contact: row.get(1)?,
        direction: transfer_direction(row.get(2)?)?,
        file_id: array(row, 3)?,
        name: row.get(4)?,
        size: size_from_sql(row.get(5)?)?,
        hash: array(row, 6)?,
        state: transfer_state(row.get(7)?)?,
        reason: row.get(8)?,
        done_chunks: counter_from_sql(row.get(9)?)?,
        source_path: optional(row, 10, path)?,
        source_mtime_ns: row.get(11)?,
        dest_dir: optional(row, 12, path)?,
        save_name: row.get(13)?,
        overwrite: flag(row.get(14)?)?,
        final_path: optional(row, 15, path)?,
        peer_told: flag(row.get(16)?)?,
        created_at_ms: time_from_sql(row.get(17)?)?,
        updated_at_ms: time_from_sql(row.get(18)?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in [ContactState::Accepting, ContactState::Active] {
            assert_eq!(contact_state(contact_state_code(s)).unwrap(), s);
        }
        for d in [RequestDirection::Incoming, RequestDirection::Outgoing] {
            assert_eq!(request_direction(request_direction_code(d)).unwrap(), d);
        }
        for d in [Direction::Incoming, Direction::Outgoing] {
            assert_eq!(direction(direction_code(d)).unwrap(), d);
        }
        for s in [
            MessageState::Queued,
            MessageState::Deposited,
            MessageState::Sent,
            MessageState::Delivered,
            MessageState::Received,
        ] {
            assert_eq!(message_state(message_state_code(s)).unwrap(), s);
        }
        // Stored codes never change meaning; a new state takes a new code.
        let codes = [
            MessageState::Queued,
            MessageState::Sent,
            MessageState::Delivered,
            MessageState::Received,
            MessageState::Deposited,
        ]
        .map(message_state_code);
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        for d in [TransferDirection::Incoming, TransferDirection::Outgoing] {
            assert_eq!(transfer_direction(transfer_direction_code(d)).unwrap(), d);
        }
        for s in TransferState::ALL {
            assert_eq!(transfer_state(transfer_state_code(s)).unwrap(), s);
        }
        let codes = TransferState::ALL.map(transfer_state_code);
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert!(matches!(transfer_state(8), Err(StoreError::Corrupt(_))));
        assert!(matches!(transfer_direction(2), Err(StoreError::Corrupt(_))));
        assert!(matches!(contact_state(7), Err(StoreError::Corrupt(_))));
        assert!(matches!(message_state(-1), Err(StoreError::Corrupt(_))));
        assert!(matches!(flag(2), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn times_are_checked() {
        assert_eq!(time_to_sql(0).unwrap(), 0);
        assert_eq!(time_to_sql(i64::MAX as u64).unwrap(), i64::MAX);
        assert!(matches!(time_to_sql(u64::MAX), Err(StoreError::Corrupt(_))));
        assert!(matches!(time_from_sql(-1), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(size_from_sql(size_to_sql(0).unwrap()).unwrap(), 0);
        let top = i64::MAX as u64;
        assert_eq!(size_from_sql(size_to_sql(top).unwrap()).unwrap(), top);
        assert!(matches!(size_to_sql(top + 1), Err(StoreError::Corrupt(_))));
        assert!(matches!(size_from_sql(-1), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn counters_are_checked() {
        assert_eq!(
            counter_from_sql(counter_to_sql(u32::MAX)).unwrap(),
            u32::MAX
        );
        assert!(matches!(counter_from_sql(-1), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            counter_from_sql(i64::from(u32::MAX) + 1),
            Err(StoreError::Corrupt(_))
        ));
    }
}

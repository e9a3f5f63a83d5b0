//! Groups we are in: each group's saved MLS state, where its room is and how far
//! we have read it, and its conversation.
//!
//! The state and the read position move together with the texts a read brought
//! (one transaction), so after a crash a cell is neither read twice nor lost.
//! The state is secret (it holds the group's keys), so it comes back in
//! zeroizing memory; `Debug` output shows no name, text or key.

use std::fmt;

use rusqlite::{Connection, OptionalExtension, Row, params};
use zeroize::Zeroizing;

use crate::rows::time_to_sql;
use crate::{Store, StoreError, query_all, query_one};

/// A group's row id.
pub type GroupRef = i64;

/// A group we are in, as stored.
pub struct GroupRecord {
    pub id: GroupRef,
    /// The MLS group id (random).
    pub group_id: Vec<u8>,
    /// Our local name for it.
    pub name: String,
    /// The room relay's onion key (a mailbox's).
    pub relay: [u8; 32],
    /// The saved MLS state (`nightjar_group::Group::save`).
    pub state: Zeroizing<Vec<u8>>,
    /// The number of the last room cell read.
    pub cursor: u64,
    /// False once we left or were removed (the conversation stays).
    pub active: bool,
    pub created_at_ms: u64,
}

impl fmt::Debug for GroupRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupRecord")
            .field("id", &self.id)
            .field("cursor", &self.cursor)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A text in a group's conversation.
pub struct GroupMessageRecord {
    pub seq: i64,
    pub group: GroupRef,
    /// True for texts we sent.
    pub outgoing: bool,
    /// The author's identity key.
    pub sender: [u8; 32],
    pub body: String,
    /// Outgoing: the room took it.
    pub posted: bool,
    pub at_ms: u64,
}

impl fmt::Debug for GroupMessageRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupMessageRecord")
            .field("seq", &self.seq)
            .field("group", &self.group)
            .field("outgoing", &self.outgoing)
            .field("posted", &self.posted)
            .finish_non_exhaustive()
    }
}

/// A text a room read brought.
#[derive(Clone, Copy)]
pub struct GroupText<'a> {
    pub sender: &'a [u8; 32],
    pub body: &'a str,
    pub at_ms: u64,
}

impl fmt::Debug for GroupText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupText")
            .field("at_ms", &self.at_ms)
            .finish_non_exhaustive()
    }
}

const GROUP_COLUMNS: &str = "id, group_id, name, relay, state, cursor, active, created_at_ms";
const GROUP_MESSAGE_COLUMNS: &str = "seq, group_ref, outgoing, sender, body, posted, at_ms";

fn group(row: &Row<'_>) -> Result<GroupRecord, StoreError> {
    Ok(GroupRecord {
        id: row.get(0)?,
        group_id: row.get(1)?,
        name: row.get(2)?,
        relay: key(row.get(3)?)?,
        state: Zeroizing::new(row.get(4)?),
        cursor: unsigned(row.get(5)?)?,
        active: row.get(6)?,
        created_at_ms: unsigned(row.get(7)?)?,
    })
}

fn group_message(row: &Row<'_>) -> Result<GroupMessageRecord, StoreError> {
    Ok(GroupMessageRecord {
        seq: row.get(0)?,
        group: row.get(1)?,
        outgoing: row.get(2)?,
        sender: key(row.get(3)?)?,
        body: row.get(4)?,
        posted: row.get(5)?,
        at_ms: unsigned(row.get(6)?)?,
    })
}

fn key(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a stored key is not 32 bytes".into()))
}

fn unsigned(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored number {v} out of range")))
}

fn signed(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("number {v} out of range")))
}

fn group_by_id(conn: &Connection, id: GroupRef) -> Result<GroupRecord, StoreError> {
    let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?1");
    query_one(conn, &sql, [id], group)?.ok_or(StoreError::NotFound)
}

impl Store {
    /// Stores a group we created or joined. `NameTaken` if another group has
    /// that name.
    pub fn add_group(
        &mut self,
        group_id: &[u8],
        name: &str,
        relay: &[u8; 32],
        state: &[u8],
        cursor: u64,
        now_ms: u64,
    ) -> Result<GroupRecord, StoreError> {
        let tx = self.begin()?;
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM groups WHERE name = ?1)",
            [name],
            |row| row.get(0),
        )?;
        if taken {
            return Err(StoreError::NameTaken(name.to_owned()));
        }
        tx.execute(
            "INSERT INTO groups (group_id, name, relay, state, cursor, active, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
            params![
                group_id,
                name,
                relay.as_slice(),
                state,
                signed(cursor)?,
                time_to_sql(now_ms)?
            ],
        )?;
        let record = group_by_id(&tx, tx.last_insert_rowid())?;
        tx.commit()?;
        Ok(record)
    }

    /// Every group, in the order they were added.
    pub fn groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY id");
        query_all(&self.conn, &sql, [], group)
    }

    /// The group with this local name.
    pub fn group_named(&self, name: &str) -> Result<GroupRecord, StoreError> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE name = ?1");
        query_one(&self.conn, &sql, [name], group)?.ok_or(StoreError::NotFound)
    }

    /// Records a read of the room: the state after it, how far it went, and the
    /// texts it brought, all at once. A position behind the stored one is a bug.
    pub fn record_group_read(
        &mut self,
        id: GroupRef,
        state: &[u8],
        cursor: u64,
        texts: &[GroupText<'_>],
    ) -> Result<Vec<GroupMessageRecord>, StoreError> {
        let tx = self.begin()?;
        let stored = group_by_id(&tx, id)?;
        if cursor < stored.cursor {
            return Err(StoreError::Corrupt(
                "a group's room read went backwards".into(),
            ));
        }
        tx.execute(
            "UPDATE groups SET state = ?2, cursor = ?3 WHERE id = ?1",
            params![id, state, signed(cursor)?],
        )?;
        let mut added = Vec::with_capacity(texts.len());
        for text in texts {
            added.push(insert_message(&tx, id, false, text, true)?);
        }
        tx.commit()?;
        Ok(added)
    }

    /// Stores the state after a change of ours (a text sealed, a member added);
    /// with `text`, also our text, waiting to be posted.
    pub fn record_group_send(
        &mut self,
        id: GroupRef,
        state: &[u8],
        text: Option<GroupText<'_>>,
    ) -> Result<Option<GroupMessageRecord>, StoreError> {
        let tx = self.begin()?;
        if tx.execute(
            "UPDATE groups SET state = ?2 WHERE id = ?1",
            params![id, state],
        )? == 0
        {
            return Err(StoreError::NotFound);
        }
        let added = match text {
            Some(text) => Some(insert_message(&tx, id, true, &text, false)?),
            None => None,
        };
        tx.commit()?;
        Ok(added)
    }

    /// The room took our text.
    pub fn mark_group_posted(&mut self, seq: i64) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE group_messages SET posted = 1 WHERE seq = ?1 AND outgoing = 1",
            [seq],
        )
    }

    /// We left the group or were removed; its conversation stays.
    pub fn deactivate_group(&mut self, id: GroupRef) -> Result<(), StoreError> {
        self.update_one("UPDATE groups SET active = 0 WHERE id = ?1", [id])
    }

    /// Forgets a group and its conversation.
    pub fn delete_group(&mut self, id: GroupRef) -> Result<(), StoreError> {
        self.update_one("DELETE FROM groups WHERE id = ?1", [id])
    }

    /// A group's conversation, oldest first.
    pub fn group_messages(&self, id: GroupRef) -> Result<Vec<GroupMessageRecord>, StoreError> {
        let sql = format!(
            "SELECT {GROUP_MESSAGE_COLUMNS} FROM group_messages WHERE group_ref = ?1 ORDER BY seq"
        );
        query_all(&self.conn, &sql, [id], group_message)
    }

    /// Our texts the room has not taken yet, oldest first.
    pub fn group_unposted(&self, id: GroupRef) -> Result<Vec<GroupMessageRecord>, StoreError> {
        let sql = format!(
            "SELECT {GROUP_MESSAGE_COLUMNS} FROM group_messages \
             WHERE group_ref = ?1 AND outgoing = 1 AND posted = 0 ORDER BY seq"
        );
        query_all(&self.conn, &sql, [id], group_message)
    }
}

fn insert_message(
    conn: &Connection,
    group: GroupRef,
    outgoing: bool,
    text: &GroupText<'_>,
    posted: bool,
) -> Result<GroupMessageRecord, StoreError> {
    conn.execute(
        "INSERT INTO group_messages (group_ref, outgoing, sender, body, posted, at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            group,
            outgoing,
            text.sender.as_slice(),
            text.body,
            posted,
            time_to_sql(text.at_ms)?
        ],
    )?;
    let sql = format!("SELECT {GROUP_MESSAGE_COLUMNS} FROM group_messages WHERE seq = ?1");
    conn.query_row(&sql, [conn.last_insert_rowid()], |row| {
        Ok(group_message(row))
    })
    .optional()?
    .ok_or(StoreError::NotFound)?
}

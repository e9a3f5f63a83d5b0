//! The database schema and its migrations.
//!
//! `PRAGMA user_version` holds how many steps of [`MIGRATIONS`] a database has
//! had. Each step runs in its own transaction together with the version bump, so a
//! crash leaves the database at one step or the next, never between.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// Step `i` takes a database from version `i` to `i + 1`. Steps are only ever
/// appended; a released step is never edited.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// The schema version this code writes.
pub(crate) const LATEST: u32 = 6;

const _: () = assert!(MIGRATIONS.len() == LATEST as usize);

/// Version 1. Enumerations are stored as small integers (see `rows.rs`), secrets as
/// BLOBs, times as milliseconds since the Unix epoch.
const V1: &str = "
CREATE TABLE profile (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    identity_secret BLOB    NOT NULL CHECK (length(identity_secret) = 64),
    request_seed    BLOB    NOT NULL CHECK (length(request_seed) = 32),
    endpoint_seed   BLOB    NOT NULL CHECK (length(endpoint_seed) = 32),
    created_at_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE contacts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL UNIQUE,
    identity_key     BLOB    NOT NULL UNIQUE CHECK (length(identity_key) = 32),
    their_endpoint   BLOB    NOT NULL CHECK (length(their_endpoint) = 32),
    their_credential BLOB    NOT NULL CHECK (length(their_credential) = 32),
    our_credential   BLOB    NOT NULL CHECK (length(our_credential) = 32),
    state            INTEGER NOT NULL,
    verified         INTEGER NOT NULL,
    share_presence   INTEGER NOT NULL,
    created_at_ms    INTEGER NOT NULL
) STRICT;

CREATE TABLE requests (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    direction          INTEGER NOT NULL,
    peer_key           BLOB    NOT NULL CHECK (length(peer_key) = 32),
    peer_request_onion BLOB,
    their_endpoint     BLOB,
    their_credential   BLOB,
    our_credential     BLOB,
    name               TEXT    UNIQUE,
    greeting           TEXT    NOT NULL,
    delivered          INTEGER NOT NULL,
    created_at_ms      INTEGER NOT NULL
) STRICT;

-- At most one incoming request per peer: a newer one replaces the older.
CREATE UNIQUE INDEX requests_incoming_peer ON requests (peer_key) WHERE direction = 0;

CREATE TABLE messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    contact      INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    msg_id       BLOB    NOT NULL CHECK (length(msg_id) = 16),
    direction    INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    sent_at_ms   INTEGER NOT NULL,
    stored_at_ms INTEGER NOT NULL,
    state        INTEGER NOT NULL,
    -- De-duplication of incoming messages and lookups for receipts.
    UNIQUE (contact, direction, msg_id)
) STRICT;

CREATE INDEX messages_by_contact ON messages (contact, seq);
";

/// Version 2: a contact made from an invite code may require that the shared-secret
/// authentication succeed before any message is sent.
const V2: &str = "
ALTER TABLE contacts ADD COLUMN require_auth INTEGER NOT NULL DEFAULT 0;
";

/// Version 3: offline delivery through mailboxes. Our own mailboxes; per contact
/// the chain we seal messages with and the chains we open theirs with (opaque
/// state, secret); the sealed blobs of outgoing messages until their receipt; and
/// which incoming messages came through a mailbox.
const V3: &str = "
CREATE TABLE mailboxes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    onion_key BLOB    NOT NULL UNIQUE CHECK (length(onion_key) = 32)
) STRICT;

CREATE TABLE drop_send (
    contact INTEGER PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    state   BLOB    NOT NULL
) STRICT;

CREATE TABLE drop_recv (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    contact       INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    grant_id      BLOB    NOT NULL CHECK (length(grant_id) = 16),
    state         BLOB    NOT NULL,
    used          INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX drop_recv_by_contact ON drop_recv (contact, id);

-- blobs: the 498-byte blobs one after the other; mailboxes: 32-byte onion keys
-- likewise. The three deposit columns are set and cleared together.
CREATE TABLE sealed (
    message_seq     INTEGER PRIMARY KEY REFERENCES messages (seq) ON DELETE CASCADE,
    counter         INTEGER NOT NULL CHECK (counter BETWEEN 0 AND 4294967295),
    slot_seed       BLOB    NOT NULL CHECK (length(slot_seed) = 32),
    blobs           BLOB    NOT NULL CHECK (length(blobs) > 0 AND length(blobs) % 498 = 0),
    mailboxes       BLOB    NOT NULL CHECK (length(mailboxes) > 0 AND length(mailboxes) % 32 = 0),
    deposited_to    BLOB    CHECK (length(deposited_to) = 32),
    instance        BLOB    CHECK (length(instance) = 16),
    deposited_at_ms INTEGER,
    CHECK ((deposited_to IS NULL) = (instance IS NULL)
       AND (instance IS NULL) = (deposited_at_ms IS NULL))
) STRICT;

ALTER TABLE messages ADD COLUMN via_mailbox INTEGER NOT NULL DEFAULT 0;
";

/// Version 4: file transfers, both ways. Paths are stored as the bytes of the
/// operating system's string (they need not be UTF-8). `peer_told` is 0 while a
/// local decline or cancel has still to reach the peer.
const V4: &str = "
CREATE TABLE transfers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    contact         INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    direction       INTEGER NOT NULL,
    file_id         BLOB    NOT NULL CHECK (length(file_id) = 16),
    name            TEXT    NOT NULL,
    size            INTEGER NOT NULL CHECK (size >= 0),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    state           INTEGER NOT NULL,
    reason          TEXT,
    done_chunks     INTEGER NOT NULL DEFAULT 0,
    source_path     BLOB,
    source_mtime_ns INTEGER,
    dest_dir        BLOB,
    save_name       TEXT,
    overwrite       INTEGER NOT NULL DEFAULT 0,
    final_path      BLOB,
    peer_told       INTEGER NOT NULL DEFAULT 1,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    UNIQUE (contact, direction, file_id)
) STRICT;

CREATE INDEX transfers_by_contact ON transfers (contact, id);
";

/// Version 5: which way a message went. `direct` is 1 once it crossed a link
/// (written to one, or received over one); `via_mailbox` now also marks an
/// outgoing message left in one of the recipient's mailboxes, and stays after
/// the receipt. Before this version the route of a sent message was not kept:
/// those already delivered keep neither mark (the route is unknown).
const V5: &str = "
ALTER TABLE messages ADD COLUMN direct INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET direct = 1 WHERE direction = 0 AND via_mailbox = 0;
UPDATE messages SET direct = 1 WHERE direction = 1 AND state = 1;
UPDATE messages SET via_mailbox = 1 WHERE direction = 1 AND (state = 4
    OR seq IN (SELECT message_seq FROM sealed WHERE deposited_to IS NOT NULL));
";

/// Version 6: groups we are in (their saved MLS state, room relay and read
/// position) and their conversations.
const V6: &str = "
CREATE TABLE groups (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id      BLOB    NOT NULL UNIQUE,
    name          TEXT    NOT NULL UNIQUE,
    relay         BLOB    NOT NULL CHECK (length(relay) = 32),
    state         BLOB    NOT NULL,
    cursor        INTEGER NOT NULL CHECK (cursor >= 0),
    active        INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE group_messages (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    group_ref INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    outgoing  INTEGER NOT NULL,
    sender    BLOB    NOT NULL CHECK (length(sender) = 32),
    body      TEXT    NOT NULL,
    posted    INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL
) STRICT;

CREATE INDEX group_messages_by_group ON group_messages (group_ref, seq);
";

/// The database's schema version.
pub(crate) fn version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v}")))
}

/// Brings the database up to [`LATEST`]; `TooNew` if it is past it.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current = version(conn)?;
    if current > LATEST {
        return Err(StoreError::TooNew(current));
    }
    for (done, step) in (1u32..).zip(MIGRATIONS).skip(current as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", done)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_reaches_latest() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(version(&conn).unwrap(), 0);
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), LATEST);
        // Running again changes nothing.
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), LATEST);
    }

    /// A database at `version`, holding one contact, bob, made with the columns
    /// of version 1.
    fn bob_at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        for step in &MIGRATIONS[..version] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn.execute(
            "INSERT INTO contacts (name, identity_key, their_endpoint, their_credential, \
             our_credential, state, verified, share_presence, created_at_ms) \
             VALUES ('bob', ?1, ?1, ?1, ?1, 1, 1, 0, 5)",
            [[7u8; 32].as_slice()],
        )
        .unwrap();
        conn
    }

    #[test]
    fn a_version_1_contact_survives_the_step_to_version_2() {
        let mut conn = bob_at_version(1);
        migrate(&mut conn).unwrap();
        let (verified, require_auth): (i64, i64) = conn
            .query_row(
                "SELECT verified, require_auth FROM contacts WHERE name = 'bob'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((verified, require_auth), (1, 0));
    }

    #[test]
    fn a_version_2_conversation_survives_the_step_to_version_3() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(V2).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO contacts (name, identity_key, their_endpoint, their_credential, \
             our_credential, state, verified, share_presence, created_at_ms, require_auth) \
             VALUES ('bob', ?1, ?1, ?1, ?1, 1, 1, 0, 5, 1)",
            [[7u8; 32].as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO messages (contact, msg_id, direction, body, sent_at_ms, \
             stored_at_ms, state) VALUES (1, ?1, 0, 'hello', 6, 7, 3)",
            [[9u8; 16].as_slice()],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), LATEST);
        let (require_auth, body, via_mailbox): (i64, String, i64) = conn
            .query_row(
                "SELECT require_auth, body, via_mailbox FROM contacts \
                 JOIN messages ON messages.contact = contacts.id WHERE name = 'bob'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!((require_auth, body.as_str(), via_mailbox), (1, "hello", 0));
        // The new tables hang off the old rows.
        conn.execute(
            "INSERT INTO sealed (message_seq, counter, slot_seed, blobs, mailboxes) \
             VALUES (1, 0, ?1, zeroblob(498), ?1)",
            [[1u8; 32].as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO drop_send (contact, state) VALUES (1, x'00')",
            [],
        )
        .unwrap();
        conn.execute("DELETE FROM contacts", []).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM sealed) + (SELECT count(*) FROM drop_send)",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn a_version_3_conversation_survives_the_step_to_version_4() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        for step in [V1, V2, V3] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute(
            "INSERT INTO contacts (name, identity_key, their_endpoint, their_credential, \
             our_credential, state, verified, share_presence, created_at_ms, require_auth) \
             VALUES ('bob', ?1, ?1, ?1, ?1, 1, 1, 0, 5, 1)",
            [[7u8; 32].as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO messages (contact, msg_id, direction, body, sent_at_ms, \
             stored_at_ms, state, via_mailbox) VALUES (1, ?1, 0, 'hello', 6, 7, 3, 1)",
            [[9u8; 16].as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO drop_send (contact, state) VALUES (1, x'0102')",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), LATEST);
        let (require_auth, body, via_mailbox, chain): (i64, String, i64, Vec<u8>) = conn
            .query_row(
                "SELECT require_auth, body, via_mailbox, drop_send.state FROM contacts \
                 JOIN messages ON messages.contact = contacts.id \
                 JOIN drop_send ON drop_send.contact = contacts.id WHERE name = 'bob'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            (require_auth, body.as_str(), via_mailbox, chain.as_slice()),
            (1, "hello", 1, &[1u8, 2][..])
        );
        // A transfer hangs off the old contact, with the defaults filled in ...
        conn.execute(
            "INSERT INTO transfers (contact, direction, file_id, name, size, hash, state, \
             created_at_ms, updated_at_ms) VALUES (1, 0, ?1, 'a.txt', 3, ?2, 0, 8, 8)",
            [[1u8; 16].as_slice(), [2u8; 32].as_slice()],
        )
        .unwrap();
        let (done, overwrite, peer_told): (i64, i64, i64) = conn
            .query_row(
                "SELECT done_chunks, overwrite, peer_told FROM transfers",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!((done, overwrite, peer_told), (0, 0, 1));
        // ... and goes with it.
        conn.execute("DELETE FROM contacts", []).unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM transfers", [], |row| row.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn the_step_to_version_5_keeps_what_is_known_of_each_route() {
        let mut conn = bob_at_version(4);
        // (direction, state, via_mailbox): received over a link, received from a
        // mailbox, queued, sent, delivered, deposited, and sent after a deposit.
        let old = [
            (0, 3, 0),
            (0, 3, 1),
            (1, 0, 0),
            (1, 1, 0),
            (1, 2, 0),
            (1, 4, 0),
            (1, 1, 0),
        ];
        for (i, (direction, state, via_mailbox)) in old.into_iter().enumerate() {
            conn.execute(
                "INSERT INTO messages (contact, msg_id, direction, body, sent_at_ms, \
                 stored_at_ms, state, via_mailbox) VALUES (1, ?1, ?2, 'm', 6, 7, ?3, ?4)",
                rusqlite::params![[i as u8; 16].as_slice(), direction, state, via_mailbox],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO sealed (message_seq, counter, slot_seed, blobs, mailboxes, \
             deposited_to, instance, deposited_at_ms) VALUES (7, 0, ?1, ?2, ?1, ?1, ?3, 9)",
            rusqlite::params![
                [1u8; 32].as_slice(),
                [2u8; 498].as_slice(),
                [3u8; 16].as_slice()
            ],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let mut select = conn
            .prepare("SELECT direct, via_mailbox FROM messages ORDER BY seq")
            .unwrap();
        let routes: Vec<(i64, i64)> = select
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // A delivered message's route was not kept: neither.
        assert_eq!(
            routes,
            [(1, 0), (0, 1), (0, 0), (1, 0), (0, 0), (0, 1), (1, 1)]
        );
    }

    #[test]
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::TooNew(v)) if v == LATEST + 1));
    }
}

//! The database schema and its migrations.
//!
//! `PRAGMA user_version` holds how many steps of [`MIGRATIONS`] a database has
//! had. Each step runs in its own transaction together with the version bump, so a
//! crash leaves the database at one step or the next, never between.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// Step `i` takes a database from version `i` to `i + 1`. Steps are only ever
/// appended; a released step is never edited.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this code writes.
pub(crate) const LATEST: u32 = 2;

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

    #[test]
    fn a_version_1_contact_survives_the_step_to_version_2() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO contacts (name, identity_key, their_endpoint, their_credential, \
             our_credential, state, verified, share_presence, created_at_ms) \
             VALUES ('bob', ?1, ?1, ?1, ?1, 1, 1, 0, 5)",
            [[7u8; 32].as_slice()],
        )
        .unwrap();
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
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::TooNew(v)) if v == LATEST + 1));
    }
}

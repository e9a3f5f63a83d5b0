//! Tests that reach inside the store: schema versions and database settings.

use super::*;

const CHEAP: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

fn profile() -> ProfileRecord {
    ProfileRecord {
        identity_secret: Zeroizing::new([1; 64]),
        request_seed: Zeroizing::new([2; 32]),
        endpoint_seed: Zeroizing::new([3; 32]),
        created_at_ms: 1,
    }
}

fn pragma_text(store: &Store, name: &str) -> String {
    store
        .conn
        .pragma_query_value(None, name, |row| row.get::<_, rusqlite::types::Value>(0))
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
}

#[test]
fn fresh_profiles_are_at_the_latest_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path(), "pw", CHEAP, &profile()).unwrap();
    assert_eq!(schema::version(&store.conn).unwrap(), schema::LATEST);
    drop(store);
    let store = Store::open(tmp.path(), "pw").unwrap();
    assert_eq!(schema::version(&store.conn).unwrap(), schema::LATEST);
    let memory = Store::in_memory(&profile()).unwrap();
    assert_eq!(schema::version(&memory.conn).unwrap(), schema::LATEST);
}

#[test]
fn a_newer_schema_is_too_new() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path(), "pw", CHEAP, &profile()).unwrap();
    store
        .conn
        .pragma_update(None, "user_version", schema::LATEST + 1)
        .unwrap();
    drop(store);
    assert!(matches!(
        Store::open(tmp.path(), "pw"),
        Err(StoreError::TooNew(v)) if v == schema::LATEST + 1
    ));
}

#[test]
fn durability_settings_are_in_force() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create(tmp.path(), "pw", CHEAP, &profile()).unwrap();
    assert_eq!(pragma_text(&store, "journal_mode"), "wal");
    // 2 is FULL.
    assert_eq!(pragma_text(&store, "synchronous"), "2");
    assert_eq!(pragma_text(&store, "foreign_keys"), "1");
    // 2 is MEMORY: no temporary files in plain text.
    assert_eq!(pragma_text(&store, "temp_store"), "2");
    drop(store);
    let store = Store::open(tmp.path(), "pw").unwrap();
    assert_eq!(pragma_text(&store, "journal_mode"), "wal");
    assert_eq!(pragma_text(&store, "synchronous"), "2");
    assert_eq!(pragma_text(&store, "foreign_keys"), "1");
}

#[test]
fn incoming_duplicates_are_refused_by_the_schema_itself() {
    let mut store = Store::in_memory(&profile()).unwrap();
    let req = store
        .add_outgoing_request(&[4; 32], &[4; 32], &[4; 32], "a", "hi", 1)
        .unwrap();
    let c = store
        .complete_outgoing(req.id, &[4; 32], &[4; 32], 1)
        .unwrap();
    store.store_incoming(c.id, &[9; 16], "x", 1, 1).unwrap();
    // A plain INSERT, without the ON CONFLICT clause, must hit the constraint.
    let err = store
        .conn
        .execute(
            "INSERT INTO messages (contact, msg_id, direction, body, sent_at_ms, stored_at_ms, \
             state) VALUES (?1, ?2, 0, 'y', 1, 1, 3)",
            params![c.id, [9u8; 16].as_slice()],
        )
        .unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation)
    );
}

#[test]
fn a_damaged_row_is_corrupt_not_a_panic() {
    let mut store = Store::in_memory(&profile()).unwrap();
    let req = store
        .add_outgoing_request(&[4; 32], &[4; 32], &[4; 32], "a", "hi", 1)
        .unwrap();
    let c = store
        .complete_outgoing(req.id, &[4; 32], &[4; 32], 1)
        .unwrap();
    store
        .conn
        .execute("UPDATE contacts SET state = 9", [])
        .unwrap();
    assert!(matches!(store.contact(c.id), Err(StoreError::Corrupt(_))));
    store
        .conn
        .execute("UPDATE contacts SET state = 1, created_at_ms = -5", [])
        .unwrap();
    assert!(matches!(store.contacts(), Err(StoreError::Corrupt(_))));
}

#[test]
fn store_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
    let store = Store::in_memory(&profile()).unwrap();
    let back = std::thread::spawn(move || store.profile().map(|p| p.created_at_ms))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(back, 1);
}

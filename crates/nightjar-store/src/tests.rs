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

// Offline delivery (schema version 3).

/// An in-memory store with the Active contacts `names` (keys 1, 2, ...).
fn with_contacts(names: &[&str]) -> (Store, Vec<ContactId>) {
    let mut store = Store::in_memory(&profile()).unwrap();
    let mut ids = Vec::new();
    for (key, name) in (1u8..).zip(names) {
        let req = store
            .add_outgoing_request(&[key; 32], &[key; 32], &[key; 32], name, "hi", 1)
            .unwrap();
        ids.push(
            store
                .complete_outgoing(req.id, &[key; 32], &[key; 32], 1)
                .unwrap()
                .id,
        );
    }
    (store, ids)
}

fn seal(store: &mut Store, contact: ContactId, seq: i64, counter: u32) {
    let blobs = [[counter as u8; BLOB_LEN], [0xee; BLOB_LEN]];
    let sealed = NewSealed {
        message_seq: seq,
        counter,
        slot_seed: &[counter as u8; 32],
        blobs: &blobs,
        mailboxes: &[[0x30; 32], [0x31; 32]],
    };
    let state = [counter as u8 + 1; 40];
    store.put_sealed(contact, &state, &sealed).unwrap();
}

fn text<'a>(id: &'a [u8; 16], body: &'a str, sent_at_ms: u64) -> IncomingText<'a> {
    IncomingText {
        id,
        body,
        sent_at_ms,
    }
}

fn count(store: &Store, table: &str) -> i64 {
    store
        .conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

fn state_of(store: &Store, contact: ContactId, seq: i64) -> MessageState {
    store
        .history(contact, 100)
        .unwrap()
        .into_iter()
        .find(|m| m.seq == seq)
        .unwrap()
        .state
}

#[test]
fn own_mailboxes_keep_their_order_and_stop_at_four() {
    let mut s = Store::in_memory(&profile()).unwrap();
    assert!(s.mailboxes().unwrap().is_empty());
    for k in [3u8, 1, 2] {
        assert!(s.add_mailbox(&[k; 32]).unwrap());
    }
    assert!(!s.add_mailbox(&[1; 32]).unwrap());
    assert!(s.add_mailbox(&[9; 32]).unwrap());
    // A known one is still "present" at the limit, a new one is too many.
    assert!(!s.add_mailbox(&[9; 32]).unwrap());
    let err = s.add_mailbox(&[5; 32]).unwrap_err();
    assert!(matches!(err, StoreError::TooMany(_)));
    assert_eq!(err.to_string(), "too many mailboxes (at most 4)");
    assert_eq!(s.mailboxes().unwrap(), [[3; 32], [1; 32], [2; 32], [9; 32]]);

    s.remove_mailbox(&[1; 32]).unwrap();
    assert!(matches!(
        s.remove_mailbox(&[1; 32]),
        Err(StoreError::NotFound)
    ));
    assert!(s.add_mailbox(&[5; 32]).unwrap());
    assert_eq!(s.mailboxes().unwrap(), [[3; 32], [2; 32], [9; 32], [5; 32]]);
}

#[test]
fn a_send_chain_is_set_replaced_and_read() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    assert!(s.send_chain(c[0]).unwrap().is_none());
    s.set_send_chain(c[0], &[1, 2, 3]).unwrap();
    assert_eq!(s.send_chain(c[0]).unwrap().unwrap().as_slice(), [1, 2, 3]);
    s.set_send_chain(c[0], &[4; 70]).unwrap();
    assert_eq!(s.send_chain(c[0]).unwrap().unwrap().as_slice(), [4; 70]);
    assert!(s.send_chain(c[1]).unwrap().is_none());
    assert!(matches!(
        s.set_send_chain(999, &[1]),
        Err(StoreError::NotFound)
    ));
    assert_eq!(count(&s, "drop_send"), 1);
}

#[test]
fn put_sealed_stores_the_chain_and_the_blobs_together() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    let m = s.queue_message(c[0], &[1; 16], "hello", 1, 2).unwrap();
    seal(&mut s, c[0], m.seq, 7);
    assert_eq!(s.send_chain(c[0]).unwrap().unwrap().as_slice(), [8; 40]);
    let pending = s.sealed_pending(c[0]).unwrap();
    assert_eq!(pending.len(), 1);
    let r = &pending[0];
    assert_eq!(r.message_seq, m.seq);
    assert_eq!(r.counter, 7);
    assert_eq!(*r.slot_seed, [7; 32]);
    assert_eq!(r.blobs, [[7; BLOB_LEN], [0xee; BLOB_LEN]]);
    assert_eq!(r.mailboxes, [[0x30; 32], [0x31; 32]]);
    assert_eq!(
        (r.deposited_to, r.instance, r.deposited_at_ms),
        (None, None, None)
    );
    assert!(s.sealed_pending(c[1]).unwrap().is_empty());
}

#[test]
fn put_sealed_refuses_wrong_messages_and_changes_nothing() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    let mine = s.queue_message(c[0], &[1; 16], "out", 1, 1).unwrap();
    let theirs = s
        .store_incoming(c[0], &[2; 16], "in", 1, 1)
        .unwrap()
        .unwrap();
    let bens = s.queue_message(c[1], &[3; 16], "to ben", 1, 1).unwrap();
    s.set_send_chain(c[0], &[0xaa; 8]).unwrap();
    fn attempt<'a>(
        seq: i64,
        blobs: &'a [[u8; BLOB_LEN]],
        mailboxes: &'a [[u8; 32]],
    ) -> NewSealed<'a> {
        NewSealed {
            message_seq: seq,
            counter: 0,
            slot_seed: &[1; 32],
            blobs,
            mailboxes,
        }
    }
    let blobs = [[1; BLOB_LEN]];
    let one_mailbox = [[0x30; 32]];
    for seq in [theirs.seq, bens.seq, 999] {
        assert!(matches!(
            s.put_sealed(c[0], &[0xbb; 8], &attempt(seq, &blobs, &one_mailbox)),
            Err(StoreError::NotFound)
        ));
    }
    // Without blobs or mailboxes there is nothing to deposit: the schema refuses it.
    for (b, mb) in [(&[][..], &one_mailbox[..]), (&blobs[..], &[][..])] {
        let err = s
            .put_sealed(c[0], &[0xbb; 8], &attempt(mine.seq, b, mb))
            .unwrap_err();
        assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
    }
    assert_eq!(s.send_chain(c[0]).unwrap().unwrap().as_slice(), [0xaa; 8]);
    assert_eq!(count(&s, "sealed"), 0);

    s.put_sealed(c[0], &[0xcc; 8], &attempt(mine.seq, &blobs, &one_mailbox))
        .unwrap();
    assert!(matches!(
        s.put_sealed(c[0], &[0xdd; 8], &attempt(mine.seq, &blobs, &one_mailbox)),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(s.send_chain(c[0]).unwrap().unwrap().as_slice(), [0xcc; 8]);
    assert!(matches!(
        s.put_sealed(999, &[0xdd; 8], &attempt(mine.seq, &blobs, &one_mailbox)),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn sealed_pending_is_in_message_order_without_delivered_ones() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    let seqs: Vec<i64> = (1..=4u8)
        .map(|i| s.queue_message(c[0], &[i; 16], "m", 1, 1).unwrap().seq)
        .collect();
    let other = s.queue_message(c[1], &[9; 16], "m", 1, 1).unwrap();
    // Sealed out of order; read back in message order.
    for (i, &seq) in [2usize, 0, 3, 1].iter().map(|&i| (i, &seqs[i])) {
        seal(&mut s, c[0], seq, i as u32);
    }
    seal(&mut s, c[1], other.seq, 0);
    let order = |s: &Store| -> Vec<i64> {
        s.sealed_pending(c[0])
            .unwrap()
            .iter()
            .map(|r| r.message_seq)
            .collect()
    };
    assert_eq!(order(&s), seqs);

    // A receipt removes the sealed blobs of a deposited message.
    s.mark_deposited(seqs[1], &[0x30; 32], &[0x44; 16], 5)
        .unwrap();
    assert_eq!(s.mark_delivered(c[0], &[[2; 16]]).unwrap(), [[2; 16]]);
    assert_eq!(order(&s), [seqs[0], seqs[2], seqs[3]]);
    assert_eq!(count(&s, "sealed"), 4);
    // One never deposited stays pending after its receipt (it is deposited all
    // the same, so the recipient's window moves past its counter) ...
    assert_eq!(s.mark_delivered(c[0], &[[4; 16]]).unwrap(), [[4; 16]]);
    assert_eq!(order(&s), [seqs[0], seqs[2], seqs[3]]);
    // ... until it is deposited: then nothing is left to watch.
    s.mark_deposited(seqs[3], &[0x30; 32], &[0x44; 16], 6)
        .unwrap();
    assert_eq!(order(&s), [seqs[0], seqs[2]]);
    assert_eq!(count(&s, "sealed"), 3);
    // A deposited, delivered message whose blobs were somehow left behind is
    // not pending, and the next receipt for it removes them.
    s.mark_deposited(seqs[2], &[0x30; 32], &[0x44; 16], 7)
        .unwrap();
    s.conn
        .execute(
            "UPDATE messages SET state = ?2 WHERE seq = ?1",
            params![seqs[2], rows::message_state_code(MessageState::Delivered)],
        )
        .unwrap();
    assert_eq!(order(&s), [seqs[0]]);
    assert!(s.mark_delivered(c[0], &[[3; 16]]).unwrap().is_empty());
    assert_eq!(count(&s, "sealed"), 2);
    assert_eq!(s.sealed_pending(c[1]).unwrap().len(), 1);
}

#[test]
fn mark_deposited_moves_queued_only() {
    let (mut s, c) = with_contacts(&["ann"]);
    let a = c[0];
    let seqs: Vec<i64> = (1..=3u8)
        .map(|i| s.queue_message(a, &[i; 16], "m", 1, 1).unwrap().seq)
        .collect();
    for (counter, &seq) in (0u32..).zip(&seqs) {
        seal(&mut s, a, seq, counter);
    }
    s.mark_sent(a, &[2; 16]).unwrap();
    // Delivered while the row is still there (the receipt and the deposit raced).
    s.conn
        .execute(
            "UPDATE messages SET state = ?2 WHERE seq = ?1",
            params![seqs[2], rows::message_state_code(MessageState::Delivered)],
        )
        .unwrap();
    for &seq in &seqs {
        s.mark_deposited(seq, &[0x30; 32], &[0x44; 16], 50).unwrap();
    }
    assert_eq!(state_of(&s, a, seqs[0]), MessageState::Deposited);
    assert_eq!(state_of(&s, a, seqs[1]), MessageState::Sent);
    assert_eq!(state_of(&s, a, seqs[2]), MessageState::Delivered);
    let r = &s.sealed_pending(a).unwrap()[0];
    assert_eq!(r.deposited_to, Some([0x30; 32]));
    assert_eq!(r.instance, Some([0x44; 16]));
    assert_eq!(r.deposited_at_ms, Some(50));
    // A second deposit (elsewhere, after a restart) replaces the first.
    s.mark_deposited(seqs[0], &[0x31; 32], &[0x45; 16], 60)
        .unwrap();
    let r = &s.sealed_pending(a).unwrap()[0];
    assert_eq!(
        (r.deposited_to, r.instance, r.deposited_at_ms),
        (Some([0x31; 32]), Some([0x45; 16]), Some(60))
    );
    assert_eq!(state_of(&s, a, seqs[0]), MessageState::Deposited);
    assert!(matches!(
        s.mark_deposited(999, &[0x30; 32], &[0x44; 16], 50),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.mark_deposited(seqs[0], &[0x30; 32], &[0x44; 16], u64::MAX),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn a_lost_deposit_is_cleared() {
    let (mut s, c) = with_contacts(&["ann"]);
    let m = s.queue_message(c[0], &[1; 16], "m", 1, 1).unwrap();
    seal(&mut s, c[0], m.seq, 0);
    s.mark_deposited(m.seq, &[0x30; 32], &[0x44; 16], 50)
        .unwrap();
    s.mark_lost(m.seq).unwrap();
    let r = &s.sealed_pending(c[0]).unwrap()[0];
    assert_eq!(
        (r.deposited_to, r.instance, r.deposited_at_ms),
        (None, None, None)
    );
    // The blobs stay, to be deposited again; the message waits again, and has
    // not gone via a mailbox after all.
    assert_eq!(r.blobs.len(), 2);
    let waiting = &s.undelivered(c[0]).unwrap()[0];
    assert_eq!(
        (waiting.state, waiting.via_mailbox, waiting.direct),
        (MessageState::Queued, false, false)
    );
    assert!(matches!(s.mark_lost(999), Err(StoreError::NotFound)));
    // A message without sealed blobs has no deposit to lose.
    let plain = s.queue_message(c[0], &[2; 16], "m", 1, 1).unwrap();
    assert!(matches!(s.mark_lost(plain.seq), Err(StoreError::NotFound)));
}

#[test]
fn deposited_messages_are_undelivered_and_can_still_be_sent() {
    let (mut s, c) = with_contacts(&["ann"]);
    let a = c[0];
    let seqs: Vec<i64> = (1..=3u8)
        .map(|i| s.queue_message(a, &[i; 16], "m", 1, 1).unwrap().seq)
        .collect();
    seal(&mut s, a, seqs[0], 0);
    seal(&mut s, a, seqs[1], 1);
    s.mark_deposited(seqs[0], &[0x30; 32], &[0x44; 16], 5)
        .unwrap();
    s.mark_deposited(seqs[1], &[0x30; 32], &[0x44; 16], 5)
        .unwrap();
    let undelivered = |s: &Store| -> Vec<(i64, MessageState)> {
        s.undelivered(a)
            .unwrap()
            .iter()
            .map(|m| (m.seq, m.state))
            .collect()
    };
    assert_eq!(
        undelivered(&s),
        [
            (seqs[0], MessageState::Deposited),
            (seqs[1], MessageState::Deposited),
            (seqs[2], MessageState::Queued)
        ]
    );
    // The link came up and it went over it as well.
    s.mark_sent(a, &[1; 16]).unwrap();
    assert_eq!(state_of(&s, a, seqs[0]), MessageState::Sent);
    s.mark_delivered(a, &[[2; 16]]).unwrap();
    // Each message keeps the way it went after delivery.
    let routes: Vec<(MessageState, bool, bool)> = s
        .history(a, 10)
        .unwrap()
        .iter()
        .map(|m| (m.state, m.direct, m.via_mailbox))
        .collect();
    assert_eq!(
        routes,
        [
            (MessageState::Sent, true, true),
            (MessageState::Delivered, false, true),
            (MessageState::Queued, false, false),
        ]
    );
    assert_eq!(
        undelivered(&s),
        [
            (seqs[0], MessageState::Sent),
            (seqs[2], MessageState::Queued)
        ]
    );
    assert!(MessageState::Queued < MessageState::Deposited);
    assert!(MessageState::Deposited < MessageState::Sent);
}

#[test]
fn receive_chains_keep_the_newest_four_per_contact() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    let mut ids = Vec::new();
    for i in 0..5u8 {
        ids.push(
            s.add_recv_chain(c[0], &[i; 16], &[i; 33], 10 + u64::from(i))
                .unwrap(),
        );
        if i == 1 {
            s.add_recv_chain(c[1], &[0xb0; 16], &[0xb0; 3], 5).unwrap();
        }
    }
    let chains = s.recv_chains().unwrap();
    let seen: Vec<(ContactId, [u8; 16])> = chains.iter().map(|r| (r.contact, r.grant_id)).collect();
    assert_eq!(
        seen,
        [
            (c[0], [1; 16]),
            (c[1], [0xb0; 16]),
            (c[0], [2; 16]),
            (c[0], [3; 16]),
            (c[0], [4; 16])
        ]
    );
    let last = chains.last().unwrap();
    assert_eq!(last.id, ids[4]);
    assert_eq!(last.state.as_slice(), [4; 33]);
    assert!(!last.used);
    assert_eq!(last.created_at_ms, 14);
    assert!(chains.windows(2).all(|w| w[0].id < w[1].id));
    assert!(matches!(
        s.add_recv_chain(999, &[0; 16], &[0], 1),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.add_recv_chain(c[0], &[0; 16], &[0], u64::MAX),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(s.recv_chains().unwrap().len(), 5);
}

#[test]
fn store_drained_dedupes_and_marks_the_way_in() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    let chain = s.add_recv_chain(c[0], &[1; 16], &[1; 10], 1).unwrap();
    let other = s.add_recv_chain(c[1], &[2; 16], &[2; 10], 1).unwrap();
    // Already came over a link.
    s.store_incoming(c[0], &[1; 16], "direct", 5, 6).unwrap();
    let texts = [
        text(&[1; 16], "direct again", 5),
        text(&[2; 16], "second", 7),
        text(&[2; 16], "second twice", 7),
        text(&[3; 16], "third", 8),
    ];
    let stored = s.store_drained(chain, &[9; 12], &texts, 20).unwrap();
    type Seen<'a> = Option<(&'a str, bool, MessageState, u64, u64)>;
    let got: Vec<Seen<'_>> = stored
        .iter()
        .map(|m| {
            m.as_ref().map(|m| {
                (
                    m.body.as_str(),
                    m.via_mailbox,
                    m.state,
                    m.sent_at_ms,
                    m.stored_at_ms,
                )
            })
        })
        .collect();
    assert_eq!(
        got,
        [
            None,
            Some(("second", true, MessageState::Received, 7, 20)),
            None,
            Some(("third", true, MessageState::Received, 8, 20)),
        ]
    );
    let history = s.history(c[0], 10).unwrap();
    let ways: Vec<(&str, bool)> = history
        .iter()
        .map(|m| (m.body.as_str(), m.via_mailbox))
        .collect();
    assert_eq!(ways, [("direct", false), ("second", true), ("third", true)]);
    assert!(history.iter().all(|m| m.direction == Direction::Incoming));
    assert!(s.history(c[1], 10).unwrap().is_empty());

    let chains = s.recv_chains().unwrap();
    let mine = chains.iter().find(|r| r.id == chain).unwrap();
    assert_eq!((mine.state.as_slice(), mine.used), (&[9u8; 12][..], true));
    let theirs = chains.iter().find(|r| r.id == other).unwrap();
    assert_eq!(
        (theirs.state.as_slice(), theirs.used),
        (&[2u8; 10][..], false)
    );

    // Nothing new still updates the chain.
    assert!(s.store_drained(chain, &[8; 4], &[], 21).unwrap().is_empty());
    let mine = s
        .recv_chains()
        .unwrap()
        .into_iter()
        .find(|r| r.id == chain)
        .unwrap();
    assert_eq!(mine.state.as_slice(), [8; 4]);
    // Neither a link nor a drain stores it twice later.
    assert!(
        s.store_incoming(c[0], &[3; 16], "third", 8, 30)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_failed_drain_stores_nothing() {
    let (mut s, c) = with_contacts(&["ann"]);
    let chain = s.add_recv_chain(c[0], &[1; 16], &[1; 10], 1).unwrap();
    let texts = [
        text(&[1; 16], "fine", 5),
        text(&[2; 16], "bad clock", u64::MAX),
    ];
    assert!(matches!(
        s.store_drained(chain, &[9; 12], &texts, 20),
        Err(StoreError::Corrupt(_))
    ));
    assert!(s.history(c[0], 10).unwrap().is_empty());
    let r = &s.recv_chains().unwrap()[0];
    assert_eq!((r.state.as_slice(), r.used), (&[1u8; 10][..], false));
    assert!(matches!(
        s.store_drained(999, &[9; 12], &texts[..1], 20),
        Err(StoreError::NotFound)
    ));
    assert!(s.history(c[0], 10).unwrap().is_empty());
}

#[test]
fn deleting_a_contact_deletes_its_chains_and_sealed_blobs() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    for &contact in &c {
        let m = s.queue_message(contact, &[1; 16], "m", 1, 1).unwrap();
        seal(&mut s, contact, m.seq, 0);
        s.add_recv_chain(contact, &[1; 16], &[1; 10], 1).unwrap();
        s.add_recv_chain(contact, &[2; 16], &[2; 10], 1).unwrap();
    }
    s.add_mailbox(&[0x30; 32]).unwrap();
    s.delete_contact(c[0]).unwrap();
    assert!(s.send_chain(c[0]).unwrap().is_none());
    assert!(s.sealed_pending(c[0]).unwrap().is_empty());
    assert!(s.recv_chains().unwrap().iter().all(|r| r.contact == c[1]));
    assert_eq!(
        (
            count(&s, "drop_send"),
            count(&s, "drop_recv"),
            count(&s, "sealed")
        ),
        (1, 2, 1)
    );
    // The schema cascades by itself too.
    s.conn
        .execute("DELETE FROM contacts WHERE id = ?1", [c[1]])
        .unwrap();
    assert_eq!(
        (
            count(&s, "drop_send"),
            count(&s, "drop_recv"),
            count(&s, "sealed")
        ),
        (0, 0, 0)
    );
    // Our own mailboxes belong to no contact.
    assert_eq!(s.mailboxes().unwrap(), [[0x30; 32]]);
}

#[test]
fn a_version_2_profile_opens_at_version_3_with_its_messages() {
    let mut conn = Connection::open_in_memory().unwrap();
    for step in &schema::MIGRATIONS[..2] {
        conn.execute_batch(step).unwrap();
    }
    conn.pragma_update(None, "user_version", 2).unwrap();
    {
        let tx = conn.transaction().unwrap();
        tx.execute(
            &format!("INSERT INTO profile (id, {PROFILE_COLUMNS}) VALUES (1, ?1, ?2, ?2, 1)"),
            params![[1u8; 64].as_slice(), [2u8; 32].as_slice()],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO contacts (name, identity_key, their_endpoint, their_credential, \
             our_credential, state, verified, share_presence, created_at_ms, require_auth) \
             VALUES ('bob', ?1, ?1, ?1, ?1, 1, 1, 0, 5, 0)",
            [[7u8; 32].as_slice()],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO messages (contact, msg_id, direction, body, sent_at_ms, \
             stored_at_ms, state) VALUES (1, ?1, 1, 'queued before', 6, 7, 0), \
             (1, ?2, 0, 'received before', 6, 7, 3)",
            params![[8u8; 16].as_slice(), [9u8; 16].as_slice()],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let mut s = Store::start(conn, None).unwrap();
    assert_eq!(schema::version(&s.conn).unwrap(), schema::LATEST);
    let bob = s.contact_by_name("bob").unwrap().unwrap();
    let history = s.history(bob.id, 10).unwrap();
    let got: Vec<(&str, MessageState, bool, bool)> = history
        .iter()
        .map(|m| (m.body.as_str(), m.state, m.via_mailbox, m.direct))
        .collect();
    assert_eq!(
        got,
        [
            ("queued before", MessageState::Queued, false, false),
            ("received before", MessageState::Received, false, true)
        ]
    );
    // The old queued message can go through a mailbox now.
    seal(&mut s, bob.id, history[0].seq, 0);
    s.mark_deposited(history[0].seq, &[0x30; 32], &[1; 16], 9)
        .unwrap();
    assert_eq!(
        s.undelivered(bob.id).unwrap()[0].state,
        MessageState::Deposited
    );
    // A drained duplicate of the old incoming message is recognised.
    let chain = s.add_recv_chain(bob.id, &[1; 16], &[1], 9).unwrap();
    let again = text(&[9; 16], "received before", 6);
    let stored = s.store_drained(chain, &[2], &[again], 10).unwrap();
    assert!(matches!(stored.as_slice(), [None]));
    assert_eq!(s.history(bob.id, 10).unwrap().len(), 2);
}

#[test]
fn offline_records_hide_their_secrets_in_debug_output() {
    let (mut s, c) = with_contacts(&["ann"]);
    let m = s.queue_message(c[0], &[1; 16], "m", 1, 1).unwrap();
    let blobs = [[0xab; BLOB_LEN]];
    let new = NewSealed {
        message_seq: m.seq,
        counter: 3,
        slot_seed: &[0xab; 32],
        blobs: &blobs,
        mailboxes: &[[0xab; 32]],
    };
    s.put_sealed(c[0], &[0xab; 8], &new).unwrap();
    s.mark_deposited(m.seq, &[0xab; 32], &[0xab; 16], 2)
        .unwrap();
    let sealed = s.sealed_pending(c[0]).unwrap();
    s.add_recv_chain(c[0], &[0xab; 16], &[0xab; 8], 1).unwrap();
    let chains = s.recv_chains().unwrap();
    let text = text(&[0xab; 16], "secretbody", 1);
    let out = format!("{new:?} {sealed:?} {chains:?} {text:?}");
    for hidden in ["171", "ab, ", "secretbody"] {
        assert!(!out.contains(hidden), "{hidden} in {out}");
    }
    assert!(out.contains("counter: 3"), "{out}");
}

// File transfers (schema version 4).

fn raw_transfer(
    store: &Store,
    contact: ContactId,
    direction: i64,
    file_id: &[u8],
) -> rusqlite::Result<usize> {
    store.conn.execute(
        "INSERT INTO transfers (contact, direction, file_id, name, size, hash, state, \
         created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, 'f', 1, ?4, 0, 1, 1)",
        params![contact, direction, file_id, [0u8; 32].as_slice()],
    )
}

#[test]
fn a_transfer_is_unique_per_contact_direction_and_file_id() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    let (first, new) = s
        .put_incoming_offer(
            c[0],
            &[5; 16],
            "f",
            1,
            &[0; 32],
            TransferState::Offered,
            None,
            1,
        )
        .unwrap();
    assert!(new);
    // A plain INSERT, without the ON CONFLICT clause, must hit the constraint.
    let err = raw_transfer(&s, c[0], 0, &[5; 16]).unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation)
    );
    raw_transfer(&s, c[0], 1, &[5; 16]).unwrap();
    raw_transfer(&s, c[1], 0, &[5; 16]).unwrap();
    assert_eq!(count(&s, "transfers"), 3);
    assert_eq!(s.transfer(first.id).unwrap(), first);
    // The schema checks lengths and the contact itself.
    for (contact, file_id) in [(c[0], &[6u8; 15][..]), (999, &[6u8; 16][..])] {
        let err = raw_transfer(&s, contact, 0, file_id).unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(ErrorCode::ConstraintViolation)
        );
    }
    assert_eq!(count(&s, "transfers"), 3);
}

#[test]
fn transfers_go_with_their_contact_in_the_schema_too() {
    let (mut s, c) = with_contacts(&["ann", "ben"]);
    for &contact in &c {
        s.put_incoming_offer(
            contact,
            &[1; 16],
            "f",
            1,
            &[0; 32],
            TransferState::Offered,
            None,
            1,
        )
        .unwrap();
    }
    assert_eq!(pragma_text(&s, "foreign_keys"), "1");
    s.conn
        .execute("DELETE FROM contacts WHERE id = ?1", [c[0]])
        .unwrap();
    let left: Vec<ContactId> = s
        .transfers(None)
        .unwrap()
        .iter()
        .map(|r| r.contact)
        .collect();
    assert_eq!(left, [c[1]]);
}

#[test]
fn a_damaged_transfer_row_is_corrupt_not_a_panic() {
    let (mut s, c) = with_contacts(&["ann"]);
    let (r, _) = s
        .put_incoming_offer(
            c[0],
            &[1; 16],
            "f",
            1,
            &[0; 32],
            TransferState::Offered,
            None,
            1,
        )
        .unwrap();
    for damage in [
        "UPDATE transfers SET state = 8",
        "UPDATE transfers SET state = 0, direction = 2",
        "UPDATE transfers SET direction = 0, done_chunks = -1",
        "UPDATE transfers SET done_chunks = 4294967296",
        "UPDATE transfers SET done_chunks = 0, peer_told = 2",
        "UPDATE transfers SET peer_told = 1, created_at_ms = -1",
        "UPDATE transfers SET created_at_ms = 1, updated_at_ms = -1",
    ] {
        s.conn.execute(damage, []).unwrap();
        assert!(
            matches!(s.transfer(r.id), Err(StoreError::Corrupt(_))),
            "{damage}"
        );
        assert!(
            matches!(s.transfers(None), Err(StoreError::Corrupt(_))),
            "{damage}"
        );
    }
    s.conn
        .execute(
            "UPDATE transfers SET updated_at_ms = 1, size = ?1",
            [i64::MAX],
        )
        .unwrap();
    // Past what a chunk count holds: completion refuses it and changes nothing.
    assert!(matches!(
        s.complete_transfer(r.id, None, 2),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(s.transfer(r.id).unwrap().state, TransferState::Offered);
}

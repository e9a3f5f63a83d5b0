//! Contacts, requests, messages and groups: the rules the store enforces. Run on the
//! in-memory store, which shares all of this code with the on-disk one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nightjar_store::{
    ContactId, ContactState, DirectContact, Direction, GroupText, MessageState, ProfileRecord,
    RequestDirection, Store, StoreError,
};
use zeroize::Zeroizing;

fn store() -> Store {
    Store::in_memory(&ProfileRecord {
        identity_secret: Zeroizing::new([1; 64]),
        request_seed: Zeroizing::new([2; 32]),
        endpoint_seed: Zeroizing::new([3; 32]),
        created_at_ms: 1,
    })
    .unwrap()
}

/// An Active contact named `name` whose identity key is `[key; 32]`.
fn contact(store: &mut Store, name: &str, key: u8) -> ContactId {
    let req = store
        .add_outgoing_request(&[key; 32], &[key; 32], &[key; 32], name, "hi", 1)
        .unwrap();
    store
        .complete_outgoing(req.id, &[key; 32], &[key; 32], 2)
        .unwrap()
        .id
}

#[test]
fn outgoing_request_then_completion() {
    let mut s = store();
    let req = s
        .add_outgoing_request(&[4; 32], &[5; 32], &[6; 32], "carol", "hello carol", 100)
        .unwrap();
    assert_eq!(req.direction, RequestDirection::Outgoing);
    assert_eq!(req.peer_request_onion, Some([5; 32]));
    assert_eq!(req.our_credential.as_deref(), Some(&[6; 32]));
    assert_eq!(req.name.as_deref(), Some("carol"));
    assert!(req.their_endpoint.is_none() && req.their_credential.is_none());
    assert!(!req.delivered);
    assert_eq!(req.created_at_ms, 100);

    s.mark_request_delivered(req.id).unwrap();
    assert!(s.request(req.id).unwrap().delivered);

    let c = s
        .complete_outgoing(req.id, &[7; 32], &[8; 32], 200)
        .unwrap();
    assert_eq!(c.name, "carol");
    assert_eq!(c.identity_key, [4; 32]);
    assert_eq!(c.their_endpoint, [7; 32]);
    assert_eq!(*c.their_credential, [8; 32]);
    assert_eq!(*c.our_credential, [6; 32]);
    assert_eq!(c.state, ContactState::Active);
    assert_eq!(c.created_at_ms, 200);
    // The request is gone and the contact is there: both in the same step.
    assert!(matches!(s.request(req.id), Err(StoreError::NotFound)));
    assert!(s.requests().unwrap().is_empty());
    assert_eq!(s.contacts().unwrap().len(), 1);
    // Completing twice finds nothing.
    assert!(matches!(
        s.complete_outgoing(req.id, &[7; 32], &[8; 32], 200),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn incoming_request_then_acceptance() {
    let mut s = store();
    let req = s
        .put_incoming_request(&[4; 32], &[5; 32], &[6; 32], "let me in", 100)
        .unwrap();
    assert_eq!(req.direction, RequestDirection::Incoming);
    assert!(req.delivered);
    let c = s.accept_incoming(req.id, "dave", &[9; 32], 200).unwrap();
    assert_eq!(c.name, "dave");
    assert_eq!(c.identity_key, [4; 32]);
    assert_eq!(c.their_endpoint, [5; 32]);
    assert_eq!(*c.their_credential, [6; 32]);
    assert_eq!(*c.our_credential, [9; 32]);
    assert_eq!(c.state, ContactState::Accepting);
    assert!(s.requests().unwrap().is_empty());
    assert_eq!(s.contact(c.id).unwrap().state, ContactState::Accepting);
    s.set_contact_state(c.id, ContactState::Active).unwrap();
    assert_eq!(s.contact(c.id).unwrap().state, ContactState::Active);
}

#[test]
fn a_failed_acceptance_changes_nothing() {
    let mut s = store();
    contact(&mut s, "erin", 1);
    let req = s
        .put_incoming_request(&[4; 32], &[5; 32], &[6; 32], "hi", 1)
        .unwrap();
    assert!(matches!(
        s.accept_incoming(req.id, "erin", &[9; 32], 2),
        Err(StoreError::NameTaken(name)) if name == "erin"
    ));
    assert_eq!(s.requests().unwrap().len(), 1);
    assert_eq!(s.contacts().unwrap().len(), 1);
    // An incoming request from someone who is a contact already: refused whole.
    let again = s
        .put_incoming_request(&[1; 32], &[5; 32], &[6; 32], "hi", 1)
        .unwrap();
    assert!(s.accept_incoming(again.id, "frank", &[9; 32], 2).is_err());
    assert_eq!(s.requests().unwrap().len(), 2);
    assert_eq!(s.contacts().unwrap().len(), 1);
}

#[test]
fn requests_of_the_wrong_direction_are_not_found() {
    let mut s = store();
    let incoming = s
        .put_incoming_request(&[4; 32], &[5; 32], &[6; 32], "hi", 1)
        .unwrap();
    let outgoing = s
        .add_outgoing_request(&[7; 32], &[8; 32], &[9; 32], "gina", "hi", 1)
        .unwrap();
    assert!(matches!(
        s.complete_outgoing(incoming.id, &[1; 32], &[1; 32], 2),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.accept_incoming(outgoing.id, "x", &[1; 32], 2),
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.requests().unwrap().len(), 2);
}

#[test]
fn a_newer_incoming_request_replaces_the_older() {
    let mut s = store();
    let first = s
        .put_incoming_request(&[4; 32], &[5; 32], &[6; 32], "first", 1)
        .unwrap();
    let other = s
        .put_incoming_request(&[40; 32], &[5; 32], &[6; 32], "other", 1)
        .unwrap();
    let second = s
        .put_incoming_request(&[4; 32], &[50; 32], &[60; 32], "second", 2)
        .unwrap();
    let all = s.requests().unwrap();
    assert_eq!(all.len(), 2);
    assert!(matches!(s.request(first.id), Err(StoreError::NotFound)));
    let got = s.request(second.id).unwrap();
    assert_eq!(got.greeting, "second");
    assert_eq!(got.their_endpoint, Some([50; 32]));
    assert_eq!(got.their_credential.as_deref(), Some(&[60; 32]));
    assert_eq!(got.created_at_ms, 2);
    assert_eq!(s.request(other.id).unwrap().greeting, "other");
    // An outgoing request to the same key is a different thing and stays.
    s.add_outgoing_request(&[4; 32], &[1; 32], &[1; 32], "h", "hi", 3)
        .unwrap();
    s.put_incoming_request(&[4; 32], &[5; 32], &[6; 32], "third", 4)
        .unwrap();
    assert_eq!(s.requests().unwrap().len(), 3);
}

#[test]
fn names_are_unique_across_contacts_and_outgoing_requests() {
    let mut s = store();
    contact(&mut s, "ivan", 1);
    s.add_outgoing_request(&[2; 32], &[2; 32], &[2; 32], "judy", "hi", 1)
        .unwrap();
    assert!(matches!(
        s.add_outgoing_request(&[3; 32], &[3; 32], &[3; 32], "ivan", "hi", 1),
        Err(StoreError::NameTaken(n)) if n == "ivan"
    ));
    assert!(matches!(
        s.add_outgoing_request(&[3; 32], &[3; 32], &[3; 32], "judy", "hi", 1),
        Err(StoreError::NameTaken(n)) if n == "judy"
    ));
    let req = s
        .put_incoming_request(&[4; 32], &[4; 32], &[4; 32], "hi", 1)
        .unwrap();
    assert!(matches!(
        s.accept_incoming(req.id, "judy", &[4; 32], 1),
        Err(StoreError::NameTaken(_))
    ));
    assert_eq!(s.requests().unwrap().len(), 2);
    // Once a name is free again it can be used.
    let judy = s
        .requests()
        .unwrap()
        .into_iter()
        .find(|r| r.name.is_some())
        .unwrap();
    s.delete_request(judy.id).unwrap();
    s.accept_incoming(req.id, "judy", &[4; 32], 1).unwrap();
}

fn direct<'a>(name: &'a str, key: &'a [u8; 32], require_auth: bool) -> DirectContact<'a> {
    DirectContact {
        name,
        identity_key: key,
        their_endpoint: key,
        their_credential: key,
        our_credential: key,
        require_auth,
    }
}

#[test]
fn a_direct_contact_is_active_and_verified_at_once() {
    let mut s = store();
    // A request to the same person stays until the caller drops it.
    s.add_outgoing_request(&[9; 32], &[9; 32], &[9; 32], "old", "hi", 1)
        .unwrap();
    let c = s
        .add_direct_contact(&direct("dora", &[9; 32], true), 50)
        .unwrap();
    assert_eq!(c.state, ContactState::Active);
    assert!(c.verified && c.require_auth && !c.share_presence);
    assert_eq!(c.created_at_ms, 50);
    assert_eq!(s.requests().unwrap().len(), 1);
    s.drop_requests_with(&[9; 32]).unwrap();
    assert!(s.requests().unwrap().is_empty());

    s.set_require_auth(c.id, false).unwrap();
    assert!(!s.contact(c.id).unwrap().require_auth);

    // The same key again, or the same name, is refused and changes nothing.
    assert!(matches!(
        s.add_direct_contact(&direct("other", &[9; 32], false), 60),
        Err(StoreError::KnownKey(name)) if name == "dora"
    ));
    assert!(matches!(
        s.add_direct_contact(&direct("dora", &[10; 32], false), 60),
        Err(StoreError::NameTaken(_))
    ));
    assert_eq!(s.contacts().unwrap().len(), 1);
}

#[test]
fn contact_flags_and_missing_rows() {
    let mut s = store();
    let id = contact(&mut s, "kim", 1);
    s.set_verified(id, true).unwrap();
    s.set_share_presence(id, true).unwrap();
    let c = s.contact(id).unwrap();
    assert!(c.verified && c.share_presence);
    s.set_share_presence(id, false).unwrap();
    assert!(!s.contact(id).unwrap().share_presence);
    s.set_verified(id, false).unwrap();
    assert!(!s.contact(id).unwrap().verified);

    let missing = id + 1000;
    assert!(matches!(s.contact(missing), Err(StoreError::NotFound)));
    assert!(matches!(
        s.set_verified(missing, true),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_share_presence(missing, true),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_contact_state(missing, ContactState::Active),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_contact(missing),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(s.request(missing), Err(StoreError::NotFound)));
    assert!(matches!(
        s.delete_request(missing),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.mark_request_delivered(missing),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.queue_message(missing, &[1; 16], "x", 1, 1),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.store_incoming(missing, &[1; 16], "x", 1, 1),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn deleting_a_contact_deletes_its_conversation_only() {
    let mut s = store();
    let a = contact(&mut s, "leo", 1);
    let b = contact(&mut s, "mia", 2);
    s.queue_message(a, &[1; 16], "to leo", 1, 1).unwrap();
    s.store_incoming(a, &[2; 16], "from leo", 1, 1).unwrap();
    s.queue_message(b, &[1; 16], "to mia", 1, 1).unwrap();
    s.delete_contact(a).unwrap();
    assert!(matches!(s.contact(a), Err(StoreError::NotFound)));
    assert!(s.history(a, 10).unwrap().is_empty());
    assert_eq!(s.history(b, 10).unwrap().len(), 1);
    // The name is free again.
    contact(&mut s, "leo", 3);
}

#[test]
fn duplicate_incoming_message_is_none() {
    let mut s = store();
    let a = contact(&mut s, "nina", 1);
    let b = contact(&mut s, "omar", 2);
    let first = s
        .store_incoming(a, &[7; 16], "once", 1, 2)
        .unwrap()
        .unwrap();
    assert_eq!(first.state, MessageState::Received);
    assert_eq!(first.direction, Direction::Incoming);
    assert!(
        s.store_incoming(a, &[7; 16], "once again", 1, 3)
            .unwrap()
            .is_none()
    );
    // The same id from another contact, or our own outgoing id, is not a duplicate.
    assert!(
        s.store_incoming(b, &[7; 16], "other", 1, 2)
            .unwrap()
            .is_some()
    );
    s.queue_message(a, &[8; 16], "mine", 1, 2).unwrap();
    assert!(
        s.store_incoming(a, &[8; 16], "theirs", 1, 2)
            .unwrap()
            .is_some()
    );
    let history = s.history(a, 10).unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].body, "once");
}

#[test]
fn outgoing_message_states() {
    let mut s = store();
    let a = contact(&mut s, "pat", 1);
    for i in 1..=4u8 {
        let m = s.queue_message(a, &[i; 16], "m", u64::from(i), 10).unwrap();
        assert_eq!(m.state, MessageState::Queued);
        assert_eq!(m.direction, Direction::Outgoing);
    }
    s.mark_sent(a, &[1; 16]).unwrap();
    s.mark_sent(a, &[2; 16]).unwrap();
    assert!(matches!(
        s.mark_sent(a, &[99; 16]),
        Err(StoreError::NotFound)
    ));

    let changed = s
        .mark_delivered(a, &[[2; 16], [3; 16], [99; 16], [3; 16]])
        .unwrap();
    assert_eq!(changed, vec![[2; 16], [3; 16]]);
    assert!(s.mark_delivered(a, &[[2; 16], [3; 16]]).unwrap().is_empty());
    // Delivered stays Delivered when a late "sent" comes by.
    s.mark_sent(a, &[3; 16]).unwrap();

    let states: Vec<_> = s.history(a, 10).unwrap().iter().map(|m| m.state).collect();
    assert_eq!(
        states,
        [
            MessageState::Sent,
            MessageState::Delivered,
            MessageState::Delivered,
            MessageState::Queued
        ]
    );
    let pending: Vec<_> = s.undelivered(a).unwrap().iter().map(|m| m.id).collect();
    assert_eq!(pending, [[1; 16], [4; 16]]);

    // Incoming messages are never "delivered" by a receipt.
    s.store_incoming(a, &[5; 16], "in", 1, 1).unwrap();
    assert!(s.mark_delivered(a, &[[5; 16]]).unwrap().is_empty());
    // Receipts only count for the conversation they belong to.
    let b = contact(&mut s, "quinn", 2);
    assert!(s.mark_delivered(b, &[[1; 16]]).unwrap().is_empty());
}

#[test]
fn history_is_the_last_messages_oldest_first() {
    let mut s = store();
    let a = contact(&mut s, "rose", 1);
    let b = contact(&mut s, "sam", 2);
    for i in 0..10u8 {
        // Interleaved with another conversation, and with sender clocks out of order.
        s.store_incoming(a, &[i; 16], &format!("a{i}"), 100 - u64::from(i), 1)
            .unwrap();
        s.queue_message(b, &[i; 16], &format!("b{i}"), 1, 1)
            .unwrap();
    }
    let bodies =
        |v: Vec<nightjar_store::MessageRecord>| v.into_iter().map(|m| m.body).collect::<Vec<_>>();
    assert_eq!(bodies(s.history(a, 3).unwrap()), ["a7", "a8", "a9"]);
    assert_eq!(bodies(s.history(a, 100).unwrap()).len(), 10);
    assert_eq!(
        bodies(s.history(a, usize::MAX).unwrap()).first().unwrap(),
        "a0"
    );
    assert!(s.history(a, 0).unwrap().is_empty());
    let all = s.history(a, 10).unwrap();
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(bodies(s.history(b, 2).unwrap()), ["b8", "b9"]);
}

#[test]
fn seq_keeps_rising_after_deletions() {
    let mut s = store();
    let a = contact(&mut s, "tess", 1);
    let last = s.queue_message(a, &[1; 16], "x", 1, 1).unwrap().seq;
    s.delete_contact(a).unwrap();
    let b = contact(&mut s, "uma", 2);
    let next = s.queue_message(b, &[1; 16], "y", 1, 1).unwrap().seq;
    assert!(next > last);
}

#[test]
fn debug_output_hides_secrets_and_text() {
    let mut s = store();
    let req = s
        .add_outgoing_request(
            &[0xab; 32],
            &[0xab; 32],
            &[0xab; 32],
            "secretname",
            "greet",
            1,
        )
        .unwrap();
    let c = s
        .complete_outgoing(req.id, &[0xab; 32], &[0xab; 32], 1)
        .unwrap();
    let m = s.queue_message(c.id, &[1; 16], "secretbody", 1, 1).unwrap();
    let p = s.profile().unwrap();
    let text = format!("{s:?} {req:?} {c:?} {m:?} {p:?}");
    for hidden in ["secretname", "greet", "secretbody", "171", "ab, ", "[1, 1"] {
        assert!(!text.contains(hidden), "{hidden} in {text}");
    }
}

fn text<'a>(sender: &'a [u8; 32], body: &'a str, at_ms: u64) -> GroupText<'a> {
    GroupText {
        sender,
        body,
        at_ms,
    }
}

#[test]
fn a_read_moves_state_position_and_texts_together() {
    let mut s = store();
    let g = s
        .add_group(b"group-one", "book club", &[7; 32], b"state 0", 10, 100)
        .unwrap();
    assert_eq!((g.cursor, g.active), (10, true));
    assert_eq!(g.state.as_slice(), b"state 0");
    assert!(matches!(
        s.add_group(b"group-two", "book club", &[7; 32], b"x", 0, 100),
        Err(StoreError::NameTaken(_))
    ));

    let (ann, bo) = ([1u8; 32], [2u8; 32]);
    let added = s
        .record_group_read(
            g.id,
            b"state 1",
            12,
            &[text(&ann, "hello", 200), text(&bo, "hi ann", 201)],
        )
        .unwrap();
    assert_eq!(added.len(), 2);
    let again = s.group_named("book club").unwrap();
    assert_eq!(
        (again.cursor, again.state.as_slice()),
        (12, &b"state 1"[..])
    );
    let messages = s.group_messages(g.id).unwrap();
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["hello", "hi ann"]);
    assert_eq!(messages[1].sender, bo);
    assert!(messages.iter().all(|m| !m.outgoing && m.posted));

    // A read cannot go backwards, and a failed one changes nothing.
    assert!(matches!(
        s.record_group_read(g.id, b"state 2", 11, &[text(&ann, "lost?", 300)]),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(s.group_messages(g.id).unwrap().len(), 2);
    assert_eq!(
        s.group_named("book club").unwrap().state.as_slice(),
        b"state 1"
    );
}

#[test]
fn our_texts_wait_until_the_room_takes_them() {
    let mut s = store();
    let g = s
        .add_group(b"group-one", "crew", &[7; 32], b"state 0", 0, 100)
        .unwrap();
    let me = [9u8; 32];
    let mine = s
        .record_group_send(g.id, b"state 1", Some(text(&me, "on my way", 150)))
        .unwrap()
        .unwrap();
    assert!(mine.outgoing && !mine.posted);
    assert_eq!(s.group_unposted(g.id).unwrap().len(), 1);
    s.mark_group_posted(mine.seq).unwrap();
    assert!(s.group_unposted(g.id).unwrap().is_empty());
    // A change with no text only saves the state.
    assert!(
        s.record_group_send(g.id, b"state 2", None)
            .unwrap()
            .is_none()
    );
    assert_eq!(s.group_named("crew").unwrap().state.as_slice(), b"state 2");
    assert!(matches!(
        s.record_group_send(999, b"x", None),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn leaving_keeps_the_conversation_and_deleting_drops_it() {
    let mut s = store();
    let g = s
        .add_group(b"group-one", "crew", &[7; 32], b"state", 0, 100)
        .unwrap();
    s.record_group_read(g.id, b"state", 1, &[text(&[1; 32], "bye", 200)])
        .unwrap();
    s.deactivate_group(g.id).unwrap();
    assert!(!s.groups().unwrap()[0].active);
    assert_eq!(s.group_messages(g.id).unwrap().len(), 1);
    s.delete_group(g.id).unwrap();
    assert!(s.groups().unwrap().is_empty());
    assert!(s.group_messages(g.id).unwrap().is_empty());
    assert!(matches!(s.group_named("crew"), Err(StoreError::NotFound)));
}

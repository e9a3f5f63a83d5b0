//! File transfers: what the store keeps of them and the rules it enforces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nightjar_store::{
    ContactId, KdfParams, NewOutgoing, ProfileRecord, Store, StoreError, TransferDirection,
    TransferRecord, TransferState,
};
use zeroize::Zeroizing;

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

/// An in-memory store with the contacts ann and ben.
fn store() -> (Store, ContactId, ContactId) {
    let mut s = Store::in_memory(&profile()).unwrap();
    let ann = contact(&mut s, "ann", 1);
    let ben = contact(&mut s, "ben", 2);
    (s, ann, ben)
}

fn outgoing<'a>(contact: ContactId, file_id: &'a [u8; 16], path: &'a Path) -> NewOutgoing<'a> {
    NewOutgoing {
        contact,
        file_id,
        name: "report.pdf",
        size: 200_000,
        hash: &[0x33; 32],
        source_path: path,
        source_mtime_ns: 1_700_000_000_123_456_789,
        now_ms: 10,
    }
}

/// An incoming offer of `size` bytes, new and Offered.
fn offer(s: &mut Store, contact: ContactId, file_id: u8, size: u64) -> TransferRecord {
    let (record, new) = s
        .put_incoming_offer(
            contact,
            &[file_id; 16],
            "photo.jpg",
            size,
            &[0x44; 32],
            TransferState::Offered,
            None,
            20,
        )
        .unwrap();
    assert!(new);
    record
}

fn ids(records: &[TransferRecord]) -> Vec<i64> {
    records.iter().map(|r| r.id).collect()
}

#[test]
fn an_outgoing_offer_is_stored_as_offered() {
    let (mut s, ann, _) = store();
    let path = Path::new("/home/me/report.pdf");
    let r = s
        .add_outgoing_transfer(&outgoing(ann, &[7; 16], path))
        .unwrap();
    assert_eq!(r.contact, ann);
    assert_eq!(r.direction, TransferDirection::Outgoing);
    assert_eq!(r.file_id, [7; 16]);
    assert_eq!(r.name, "report.pdf");
    assert_eq!(r.size, 200_000);
    assert_eq!(r.hash, [0x33; 32]);
    assert_eq!(r.state, TransferState::Offered);
    assert_eq!(r.reason, None);
    assert_eq!(r.done_chunks, 0);
    assert_eq!(r.source_path.as_deref(), Some(path));
    assert_eq!(r.source_mtime_ns, Some(1_700_000_000_123_456_789));
    assert_eq!((r.dest_dir.as_ref(), r.save_name.as_ref()), (None, None));
    assert!(!r.overwrite);
    assert_eq!(r.final_path, None);
    assert!(r.peer_told);
    assert_eq!((r.created_at_ms, r.updated_at_ms), (10, 10));
    assert_eq!(s.transfer(r.id).unwrap(), r);
    assert_eq!(
        s.transfer_by_file(ann, TransferDirection::Outgoing, &[7; 16])
            .unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        s.transfer_by_file(ann, TransferDirection::Incoming, &[7; 16])
            .unwrap(),
        None
    );
    assert_eq!(s.unfinished_transfers(ann).unwrap(), [r]);
}

#[test]
fn an_outgoing_offer_needs_a_contact_and_a_fresh_id() {
    let (mut s, ann, ben) = store();
    let path = Path::new("/tmp/a");
    assert!(matches!(
        s.add_outgoing_transfer(&outgoing(999, &[7; 16], path)),
        Err(StoreError::NotFound)
    ));
    let first = s
        .add_outgoing_transfer(&outgoing(ann, &[7; 16], path))
        .unwrap();
    let err = s
        .add_outgoing_transfer(&outgoing(ann, &[7; 16], Path::new("/tmp/b")))
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert_eq!(s.transfers(None).unwrap(), [first]);
    // The id is the contact's: another contact, or the other direction, may have it.
    s.add_outgoing_transfer(&outgoing(ben, &[7; 16], path))
        .unwrap();
    offer(&mut s, ann, 7, 1);
    assert_eq!(s.transfers(None).unwrap().len(), 3);
    // Out of range values are refused, and nothing is stored.
    let mut late = outgoing(ann, &[8; 16], path);
    late.now_ms = u64::MAX;
    assert!(matches!(
        s.add_outgoing_transfer(&late),
        Err(StoreError::Corrupt(_))
    ));
    let mut huge = outgoing(ann, &[8; 16], path);
    huge.size = u64::MAX;
    assert!(matches!(
        s.add_outgoing_transfer(&huge),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(s.transfers(None).unwrap().len(), 3);
}

#[test]
fn an_incoming_offer_is_stored_once() {
    let (mut s, ann, ben) = store();
    let first = offer(&mut s, ann, 5, 1000);
    assert_eq!(first.direction, TransferDirection::Incoming);
    assert_eq!(first.state, TransferState::Offered);
    assert_eq!(
        (first.name.as_str(), first.size, first.hash),
        ("photo.jpg", 1000, [0x44; 32])
    );
    assert_eq!(
        (first.source_path.as_ref(), first.source_mtime_ns),
        (None, None)
    );
    assert!(first.peer_told);
    assert_eq!((first.created_at_ms, first.updated_at_ms), (20, 20));
    // Offered again (a new link): the stored row comes back unchanged.
    let (again, new) = s
        .put_incoming_offer(
            ann,
            &[5; 16],
            "other.jpg",
            9,
            &[0x55; 32],
            TransferState::Declined,
            Some("busy"),
            30,
        )
        .unwrap();
    assert!(!new);
    assert_eq!(again, first);
    assert_eq!(
        s.transfers(Some(ann)).unwrap(),
        std::slice::from_ref(&first)
    );
    // From another contact it is another transfer.
    let bens = offer(&mut s, ben, 5, 1000);
    assert_ne!(bens.id, first.id);
    assert!(matches!(
        s.put_incoming_offer(
            999,
            &[5; 16],
            "x",
            1,
            &[0; 32],
            TransferState::Offered,
            None,
            1
        ),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn an_incoming_offer_may_be_declined_at_once() {
    let (mut s, ann, _) = store();
    let (r, new) = s
        .put_incoming_offer(
            ann,
            &[6; 16],
            "big.iso",
            1 << 40,
            &[0x66; 32],
            TransferState::Declined,
            Some("too large"),
            40,
        )
        .unwrap();
    assert!(new);
    assert_eq!(r.state, TransferState::Declined);
    assert_eq!(r.reason.as_deref(), Some("too large"));
    assert_eq!(r.size, 1 << 40);
    // Declined and told: nothing for the next link to do.
    assert!(s.unfinished_transfers(ann).unwrap().is_empty());
    assert_eq!(s.transfers(Some(ann)).unwrap(), [r]);
}

#[test]
fn accepting_sets_where_the_file_goes() {
    let (mut s, ann, _) = store();
    let r = offer(&mut s, ann, 1, 10);
    let a = s
        .accept_transfer(
            r.id,
            Path::new("/home/me/Downloads"),
            "photo (1).jpg",
            true,
            50,
        )
        .unwrap();
    assert_eq!(a.state, TransferState::Accepted);
    assert_eq!(a.dest_dir.as_deref(), Some(Path::new("/home/me/Downloads")));
    assert_eq!(a.save_name.as_deref(), Some("photo (1).jpg"));
    assert!(a.overwrite);
    assert_eq!((a.created_at_ms, a.updated_at_ms), (20, 50));
    assert_eq!(a.name, "photo.jpg");
    assert_eq!(s.transfer(r.id).unwrap(), a);
    // Accepted again with other choices: the last ones count.
    let b = s
        .accept_transfer(r.id, Path::new("/srv"), "p.jpg", false, 60)
        .unwrap();
    assert_eq!(
        (b.dest_dir.as_deref(), b.save_name.as_deref(), b.overwrite),
        (Some(Path::new("/srv")), Some("p.jpg"), false)
    );

    assert!(matches!(
        s.accept_transfer(999, Path::new("/srv"), "p", false, 1),
        Err(StoreError::NotFound)
    ));
    // Only incoming transfers are accepted here.
    let mine = s
        .add_outgoing_transfer(&outgoing(ann, &[2; 16], Path::new("/a")))
        .unwrap();
    assert!(matches!(
        s.accept_transfer(mine.id, Path::new("/srv"), "p", false, 1),
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.transfer(mine.id).unwrap(), mine);
}

#[test]
fn every_state_round_trips_with_its_reason() {
    let (mut s, ann, _) = store();
    let r = offer(&mut s, ann, 1, 10);
    for (i, state) in (100u64..).zip(TransferState::ALL) {
        let reason = format!("reason {i}");
        let changed = s
            .set_transfer_state(r.id, state, Some(&reason), true, i)
            .unwrap();
        assert_eq!(changed.state, state);
        assert_eq!(changed.reason.as_deref(), Some(reason.as_str()));
        assert_eq!(changed.updated_at_ms, i);
        assert_eq!(s.transfer(r.id).unwrap(), changed);
    }
    let cleared = s
        .set_transfer_state(r.id, TransferState::Active, None, true, 200)
        .unwrap();
    assert_eq!(
        (cleared.state, cleared.reason.as_deref()),
        (TransferState::Active, None)
    );
    assert_eq!(cleared.created_at_ms, 20);
    assert!(matches!(
        s.set_transfer_state(999, TransferState::Active, None, true, 1),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_transfer_state(r.id, TransferState::Paused, None, true, u64::MAX),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(s.transfer(r.id).unwrap(), cleared);
}

#[test]
fn progress_is_recorded() {
    let (mut s, ann, _) = store();
    let r = offer(&mut s, ann, 1, 10 * 65_536);
    s.set_transfer_progress(r.id, 4, 70).unwrap();
    let p = s.transfer(r.id).unwrap();
    assert_eq!((p.done_chunks, p.updated_at_ms), (4, 70));
    assert_eq!(p.state, TransferState::Offered);
    s.set_transfer_progress(r.id, u32::MAX, 71).unwrap();
    assert_eq!(s.transfer(r.id).unwrap().done_chunks, u32::MAX);
    assert!(matches!(
        s.set_transfer_progress(999, 1, 1),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn a_local_cancel_waits_until_the_peer_is_told() {
    let (mut s, ann, ben) = store();
    let r = offer(&mut s, ann, 1, 10);
    let cancelled = s
        .set_transfer_state(r.id, TransferState::Cancelled, Some("cancelled"), false, 80)
        .unwrap();
    assert!(!cancelled.peer_told);
    // Final, but still something for the next link: the cancel must go out.
    assert_eq!(s.unfinished_transfers(ann).unwrap(), [cancelled]);
    assert!(s.unfinished_transfers(ben).unwrap().is_empty());
    s.set_peer_told(r.id).unwrap();
    let told = s.transfer(r.id).unwrap();
    assert!(told.peer_told);
    // Telling the peer is not a change of the transfer itself.
    assert_eq!(told.updated_at_ms, 80);
    assert!(s.unfinished_transfers(ann).unwrap().is_empty());
    // Told again: no harm.
    s.set_peer_told(r.id).unwrap();
    assert!(matches!(s.set_peer_told(999), Err(StoreError::NotFound)));
}

#[test]
fn completion_marks_every_chunk_done() {
    let (mut s, ann, _) = store();
    for (key, size, chunks) in [
        (1u8, 0u64, 0u32),
        (2, 1, 1),
        (3, 65_535, 1),
        (4, 65_536, 1),
        (5, 65_537, 2),
        (6, 3 * 65_536 + 1, 4),
    ] {
        let r = offer(&mut s, ann, key, size);
        s.accept_transfer(r.id, Path::new("/d"), "f", false, 30)
            .unwrap();
        s.set_transfer_state(r.id, TransferState::Paused, Some("disk full"), true, 40)
            .unwrap();
        let landed = PathBuf::from(format!("/d/f{key}"));
        let done = s.complete_transfer(r.id, Some(&landed), 90).unwrap();
        assert_eq!(done.state, TransferState::Completed, "size {size}");
        assert_eq!(done.done_chunks, chunks, "size {size}");
        assert_eq!(done.final_path, Some(landed));
        assert_eq!(done.reason, None);
        assert!(done.peer_told);
        assert_eq!(done.updated_at_ms, 90);
        assert_eq!(s.transfer(r.id).unwrap(), done);
    }
    assert!(s.unfinished_transfers(ann).unwrap().is_empty());
    // An outgoing transfer completes without a path of ours.
    let mine = s
        .add_outgoing_transfer(&outgoing(ann, &[9; 16], Path::new("/src")))
        .unwrap();
    let done = s.complete_transfer(mine.id, None, 95).unwrap();
    assert_eq!(
        (done.state, done.done_chunks, done.final_path),
        (TransferState::Completed, 4, None)
    );
    assert_eq!(done.source_path.as_deref(), Some(Path::new("/src")));
    assert!(matches!(
        s.complete_transfer(999, None, 1),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn listings_are_in_id_order() {
    let (mut s, ann, ben) = store();
    let a1 = offer(&mut s, ann, 1, 10);
    let b1 = offer(&mut s, ben, 1, 10);
    let a2 = s
        .add_outgoing_transfer(&outgoing(ann, &[2; 16], Path::new("/x")))
        .unwrap();
    let a3 = offer(&mut s, ann, 3, 10);
    let a4 = offer(&mut s, ann, 4, 10);
    let a5 = offer(&mut s, ann, 5, 10);
    assert_eq!(
        ids(&s.transfers(None).unwrap()),
        [a1.id, b1.id, a2.id, a3.id, a4.id, a5.id]
    );
    assert_eq!(
        ids(&s.transfers(Some(ann)).unwrap()),
        [a1.id, a2.id, a3.id, a4.id, a5.id]
    );
    assert_eq!(ids(&s.transfers(Some(ben)).unwrap()), [b1.id]);
    assert!(s.transfers(Some(999)).unwrap().is_empty());

    // Unfinished: not final, or final with the peer not told.
    s.set_transfer_state(a1.id, TransferState::Paused, Some("disk full"), true, 1)
        .unwrap();
    s.set_transfer_state(a2.id, TransferState::Failed, Some("mismatch"), true, 1)
        .unwrap();
    s.set_transfer_state(a3.id, TransferState::Declined, None, false, 1)
        .unwrap();
    s.complete_transfer(a4.id, Some(Path::new("/d/x")), 1)
        .unwrap();
    s.set_transfer_state(a5.id, TransferState::Active, None, true, 1)
        .unwrap();
    let open = s.unfinished_transfers(ann).unwrap();
    assert_eq!(ids(&open), [a1.id, a3.id, a5.id]);
    assert_eq!(
        open.iter().map(|r| r.state).collect::<Vec<_>>(),
        [
            TransferState::Paused,
            TransferState::Declined,
            TransferState::Active
        ]
    );
    assert_eq!(ids(&s.unfinished_transfers(ben).unwrap()), [b1.id]);
    assert!(s.unfinished_transfers(999).unwrap().is_empty());
}

#[test]
fn paths_that_are_not_utf8_survive_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("profile");
    let source = PathBuf::from(OsStr::from_bytes(b"/home/me/caf\xe9/\xff\xfe.bin"));
    let dest = PathBuf::from(OsStr::from_bytes(b"/home/me/d\x80wn"));
    let landed = PathBuf::from(OsStr::from_bytes(b"/home/me/d\x80wn/caf\xe9 (1).bin"));
    assert!(source.to_str().is_none() && dest.to_str().is_none());
    let (out_id, in_id, ann) = {
        let mut s = Store::create(&dir, "pw", CHEAP, &profile()).unwrap();
        let ann = contact(&mut s, "ann", 1);
        let out = s
            .add_outgoing_transfer(&outgoing(ann, &[1; 16], &source))
            .unwrap();
        assert_eq!(out.source_path.as_ref(), Some(&source));
        let incoming = offer(&mut s, ann, 2, 5);
        s.accept_transfer(incoming.id, &dest, "café.bin", false, 30)
            .unwrap();
        s.complete_transfer(incoming.id, Some(&landed), 40).unwrap();
        (out.id, incoming.id, ann)
    };
    let s = Store::open(&dir, "pw").unwrap();
    let out = s.transfer(out_id).unwrap();
    assert_eq!(out.source_path.as_ref(), Some(&source));
    assert_eq!(out.contact, ann);
    let incoming = s.transfer(in_id).unwrap();
    assert_eq!(incoming.dest_dir.as_ref(), Some(&dest));
    assert_eq!(incoming.final_path.as_ref(), Some(&landed));
    assert_eq!(incoming.save_name.as_deref(), Some("café.bin"));
    assert_eq!(incoming.state, TransferState::Completed);
}

#[test]
fn deleting_a_contact_deletes_their_transfers() {
    let (mut s, ann, ben) = store();
    offer(&mut s, ann, 1, 10);
    s.add_outgoing_transfer(&outgoing(ann, &[2; 16], Path::new("/x")))
        .unwrap();
    let bens = offer(&mut s, ben, 1, 10);
    s.delete_contact(ann).unwrap();
    assert_eq!(s.transfers(None).unwrap(), [bens]);
    assert!(s.transfers(Some(ann)).unwrap().is_empty());
    assert_eq!(
        s.transfer_by_file(ann, TransferDirection::Incoming, &[1; 16])
            .unwrap(),
        None
    );
}

#[test]
fn debug_output_hides_names_paths_and_hashes() {
    let (mut s, ann, _) = store();
    let path = Path::new("/secretdir/secretfile");
    let new = NewOutgoing {
        contact: ann,
        file_id: &[0xab; 16],
        name: "secretname",
        size: 5,
        hash: &[0xcd; 32],
        source_path: path,
        source_mtime_ns: 1,
        now_ms: 1,
    };
    let out = s.add_outgoing_transfer(&new).unwrap();
    let (incoming, _) = s
        .put_incoming_offer(
            ann,
            &[0xab; 16],
            "secretname",
            5,
            &[0xcd; 32],
            TransferState::Offered,
            None,
            1,
        )
        .unwrap();
    let incoming = s
        .accept_transfer(incoming.id, Path::new("/secretdir"), "secretsave", false, 2)
        .unwrap();
    let incoming = s
        .complete_transfer(incoming.id, Some(Path::new("/secretdir/secretsave")), 3)
        .unwrap();
    let text = format!("{new:?} {out:?} {incoming:?}");
    for hidden in ["secret", "205", "cd, ", "cdcd"] {
        assert!(!text.contains(hidden), "{hidden} in {text}");
    }
    // The first bytes of the file id tell transfers apart.
    assert!(text.contains("abababab"), "{text}");
    assert!(!text.contains("ababababab"), "{text}");
    assert!(text.contains("Completed"), "{text}");
}

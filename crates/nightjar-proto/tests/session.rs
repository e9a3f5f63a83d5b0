//! A whole conversation through the public API: handshake, session, cells, messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nightjar_proto::cell::{self, CELL_SIZE, CellError, FrameReader, MAX_FRAME_CELLS};
use nightjar_proto::files::{self, CHUNK_LEN, FileId};
use nightjar_proto::handshake::{Initiator, Responder};
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::{Message, MessageId};
use nightjar_proto::session::{Session, SessionError};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const PROLOGUE: &[u8] = b"session-test";

/// Alice (initiator) and Bob (responder) after a genuine handshake, with Alice's
/// first frame already delivered so that both can send.
fn pair(seed: u64) -> (Session, Session, StdRng) {
    let mut rng = StdRng::seed_from_u64(seed);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let (waiting, msg1) = Initiator::start(bob.public().signing_key(), PROLOGUE, &mut rng);
    let (bob_waiting, msg2) = Responder::handle_hello(&bob, PROLOGUE, &msg1, &mut rng).unwrap();
    let (alice_done, msg3) = waiting.handle_reply(&msg2, &alice).unwrap();
    let bob_done = bob_waiting.handle_finish(&msg3).unwrap();
    assert_eq!(bob_done.peer(), &alice.public());
    let mut a = Session::from_handshake(alice_done, &mut rng).unwrap();
    let mut b = Session::from_handshake(bob_done, &mut rng).unwrap();
    assert_eq!(a.session_id(), b.session_id());
    let hello = a.seal(&Message::Quit, &mut rng).unwrap();
    assert_eq!(b.open(&hello, &mut rng).unwrap(), Message::Quit);
    (a, b, rng)
}

fn text(n: u8, body: &str) -> Message {
    Message::Text {
        id: MessageId([n; 16]),
        sent_at_ms: u64::from(n),
        body: body.to_owned(),
    }
}

#[test]
fn every_payload_length_up_to_four_cells_round_trips_as_whole_cells() {
    let (mut a, mut b, mut rng) = pair(1);
    for len in 0..=4 * CELL_SIZE {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let (sender, receiver) = if len % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let frame = sender.seal_payload(&payload, &mut rng).unwrap();
        assert_eq!(frame.len() % CELL_SIZE, 0, "length {len}");
        assert_eq!(frame.len() / CELL_SIZE, cell::cells_for(len).unwrap());
        let opened = receiver.open_payload(&frame, &mut rng).unwrap();
        assert_eq!(&opened[..], &payload[..], "length {len}");
    }
}

#[test]
fn the_largest_frame_round_trips_and_one_more_byte_is_refused() {
    let (mut a, mut b, mut rng) = pair(2);
    let max = vec![0x5a; cell::payload_capacity(MAX_FRAME_CELLS)];
    let frame = a.seal_payload(&max, &mut rng).unwrap();
    assert_eq!(frame.len(), MAX_FRAME_CELLS * CELL_SIZE);
    assert_eq!(&b.open_payload(&frame, &mut rng).unwrap()[..], &max[..]);
    let over = vec![0; max.len() + 1];
    assert!(a.seal_payload(&over, &mut rng).is_err());
}

#[test]
fn equal_messages_look_unrelated_on_the_wire() {
    let (mut a, _b, mut rng) = pair(3);
    let one = a.seal(&text(1, "same"), &mut rng).unwrap();
    let two = a.seal(&text(1, "same"), &mut rng).unwrap();
    assert_eq!(one.len(), two.len());
    let same = one.iter().zip(&two).filter(|(x, y)| x == y).count();
    assert!(
        same < one.len() / 64,
        "{same} equal bytes out of {}",
        one.len()
    );
}

#[test]
fn a_flipped_bit_anywhere_is_rejected_and_the_genuine_frame_still_opens() {
    let (mut a, mut b, mut rng) = pair(4);
    let message = text(9, &"x".repeat(600));
    let frame = a.seal(&message, &mut rng).unwrap();
    assert_eq!(frame.len(), 2 * CELL_SIZE);
    for byte in 0..frame.len() {
        let mut bad = frame.clone();
        bad[byte] ^= 1 << (byte % 8);
        assert!(
            b.open(&bad, &mut rng).is_err(),
            "flip in byte {byte} accepted"
        );
    }
    assert_eq!(b.open(&frame, &mut rng).unwrap(), message);
}

#[test]
fn a_replayed_frame_is_recognised_as_a_replay() {
    let (mut a, mut b, mut rng) = pair(5);
    let frame = a.seal(&text(1, "once"), &mut rng).unwrap();
    assert_eq!(b.open(&frame, &mut rng).unwrap(), text(1, "once"));
    let err = b.open(&frame, &mut rng).unwrap_err();
    assert!(err.is_replay(), "{err:?}");
    let next = a.seal(&text(2, "twice"), &mut rng).unwrap();
    assert_eq!(b.open(&next, &mut rng).unwrap(), text(2, "twice"));
}

#[test]
fn frames_from_another_conversation_are_rejected() {
    let (mut a, _, mut rng) = pair(6);
    let (_, mut other_b, _) = pair(7);
    let frame = a.seal(&text(1, "not for you"), &mut rng).unwrap();
    let err = other_b.open(&frame, &mut rng).unwrap_err();
    assert!(!err.is_replay());
}

#[test]
fn a_stored_session_continues_the_conversation() {
    let (mut a, mut b, mut rng) = pair(8);
    let early = a
        .seal(&text(1, "sent before the restart"), &mut rng)
        .unwrap();
    let skipped = a.seal(&text(2, "arrives after"), &mut rng).unwrap();
    b.open(&early, &mut rng).unwrap();
    let mut b = Session::from_bytes(&b.to_bytes()).unwrap();
    let mut a = Session::from_bytes(&a.to_bytes()).unwrap();
    let reply = b.seal(&text(3, "reply"), &mut rng).unwrap();
    assert_eq!(a.open(&reply, &mut rng).unwrap(), text(3, "reply"));
    assert_eq!(
        b.open(&skipped, &mut rng).unwrap(),
        text(2, "arrives after")
    );
    let stored = b.to_bytes();
    for cut in 0..stored.len() {
        assert!(Session::from_bytes(&stored[..cut]).is_err());
    }
    let mut longer = stored.to_vec();
    longer.push(0);
    assert!(Session::from_bytes(&longer).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A stream carrying many frames, cut into arbitrary pieces, yields exactly the
    /// messages sent, in order.
    #[test]
    fn a_stream_cut_anywhere_yields_every_message_in_order(
        seed in any::<u64>(),
        lens in proptest::collection::vec(0usize..2000, 1..12),
        cuts in proptest::collection::vec(1usize..1500, 1..30),
    ) {
        let (mut a, mut b, mut rng) = pair(seed);
        let sent: Vec<Message> =
            lens.iter().enumerate().map(|(i, &n)| text(i as u8, &"y".repeat(n))).collect();
        let stream: Vec<u8> =
            sent.iter().flat_map(|m| a.seal(m, &mut rng).unwrap()).collect();
        prop_assert_eq!(stream.len() % CELL_SIZE, 0);
        let mut reader = FrameReader::new();
        let mut received = Vec::new();
        let (mut offset, mut cut) = (0, cuts.iter().cycle());
        while offset < stream.len() {
            let end = (offset + cut.next().unwrap()).min(stream.len());
            reader.push(&stream[offset..end]);
            offset = end;
            while let Some(frame) = reader.next_frame(|h| b.body_len(h)).unwrap() {
                received.push(b.open(&frame, &mut rng).unwrap());
            }
        }
        prop_assert_eq!(received, sent);
    }
}

/// Seals every chunk `index` of a file of `size` bytes as its transfer would and
/// checks the frame's size and what the receiver reads. Returns the cells the
/// chunk would take unpadded.
fn send_chunk(a: &mut Session, b: &mut Session, rng: &mut StdRng, size: u64, index: u32) -> usize {
    let cells = files::chunk_frame_cells(size);
    let len = files::chunk_len(size, index).unwrap();
    let chunk = Message::FileChunk {
        id: FileId([0x24; 16]),
        attempt: 1,
        index,
        data: (0..len).map(|i| (i % 253) as u8).collect(),
    };
    let payload = chunk.encode().unwrap();
    let frame = a.seal_payload_padded(&payload, cells, rng).unwrap();
    assert_eq!(frame.len(), cells * CELL_SIZE, "size {size}, chunk {index}");
    let opened = b.open_payload(&frame, rng).unwrap();
    assert_eq!(&opened[..], &payload[..], "size {size}, chunk {index}");
    assert_eq!(Message::decode(&opened).unwrap(), chunk);
    cell::cells_for(payload.len()).unwrap()
}

#[test]
fn every_chunk_frame_of_a_file_has_the_same_size() {
    let (mut a, mut b, mut rng) = pair(8);
    let full = CHUNK_LEN as u64;
    for size in [
        1,
        363,
        497,
        498,
        499,
        full - 1,
        full,
        full + 1,
        3 * full + 1,
    ] {
        let count = files::chunk_count(size).unwrap();
        // First, one in the middle, last (short unless the size is a multiple).
        let mut indices = vec![0, count / 2, count - 1];
        indices.dedup();
        for index in indices {
            send_chunk(&mut a, &mut b, &mut rng, size, index);
        }
    }
    // The short last chunk would take one cell on its own; padded, it takes as many
    // as the full ones.
    let last = send_chunk(&mut a, &mut b, &mut rng, 3 * full + 1, 3);
    assert_eq!(last, 1);
    assert_eq!(files::chunk_frame_cells(3 * full + 1), 132);
    assert_eq!(files::chunk_frame_cells(1), 1);
    assert_eq!(
        files::chunk_frame_cells(full),
        files::chunk_frame_cells(3 * full + 1)
    );
}

#[test]
fn a_payload_too_large_for_the_padded_size_is_refused() {
    let (mut a, mut b, mut rng) = pair(9);
    let capacity = cell::payload_capacity(2);
    assert_eq!(
        a.seal_payload_padded(&vec![1; capacity + 1], 2, &mut rng),
        Err(SessionError::Cell(CellError::TooLarge))
    );
    assert!(a.seal_payload_padded(b"", 0, &mut rng).is_err());
    assert!(
        a.seal_payload_padded(b"", MAX_FRAME_CELLS + 1, &mut rng)
            .is_err()
    );
    // A failed seal spends nothing: the next frame still opens.
    let frame = a
        .seal_payload_padded(&vec![1; capacity], 2, &mut rng)
        .unwrap();
    assert_eq!(frame.len(), 2 * CELL_SIZE);
    assert_eq!(b.open_payload(&frame, &mut rng).unwrap().len(), capacity);
}

#[test]
fn cover_is_one_cell_like_a_short_text() {
    let (mut a, mut b, mut rng) = pair(9);
    let cover = a.seal(&Message::Cover, &mut rng).unwrap();
    let short = a.seal(&text(1, "k"), &mut rng).unwrap();
    assert_eq!(cover.len(), CELL_SIZE);
    assert_eq!(short.len(), cover.len());
    // Both come out of a stream like any other frame.
    let mut reader = FrameReader::new();
    reader.push(&cover);
    reader.push(&short);
    let mut got = Vec::new();
    while let Some(frame) = reader.next_frame(|h| b.body_len(h)).unwrap() {
        got.push(b.open(&frame, &mut rng).unwrap());
    }
    assert_eq!(got, vec![Message::Cover, text(1, "k")]);
}

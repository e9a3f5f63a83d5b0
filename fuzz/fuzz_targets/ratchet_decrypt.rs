//! Ratchet decryption of arbitrary frames in a genuine session: nothing panics,
//! nothing forged opens, and the state survives, so the genuine next frame still
//! opens afterwards. Stored-state parsing is fuzzed from the same input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nightjar_proto::Ratchet;
use nightjar_proto::handshake::{Initiator, Responder};
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::Message;
use nightjar_proto::session::Session;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Bob's stored session after one frame from Alice, and Alice's next frame.
fn fixture() -> &'static (Vec<u8>, Vec<u8>) {
    static FIXTURE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(1);
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let (waiting, msg1) = Initiator::start(bob.public().signing_key(), b"fuzz", &mut rng);
        let (bob_waiting, msg2) =
            Responder::handle_hello(&bob, b"fuzz", &msg1, &mut rng).expect("msg1");
        let (alice_done, msg3) = waiting.handle_reply(&msg2, &alice).expect("msg2");
        let bob_done = bob_waiting.handle_finish(&msg3).expect("msg3");
        let mut a = Session::from_handshake(alice_done, &mut rng).expect("alice");
        let mut b = Session::from_handshake(bob_done, &mut rng).expect("bob");
        let first = a.seal(&Message::Quit, &mut rng).expect("seal");
        b.open(&first, &mut rng).expect("open");
        let next = a.seal(&Message::Quit, &mut rng).expect("seal");
        (b.to_bytes().to_vec(), next)
    })
}

fuzz_target!(|data: &[u8]| {
    let (stored, genuine) = fixture();
    let mut rng = StdRng::seed_from_u64(2);
    let mut bob = Session::from_bytes(stored).expect("stored session");
    if data != genuine.as_slice() {
        assert!(bob.open_payload(data, &mut rng).is_err(), "forged frame opened");
    }
    assert_eq!(bob.open(genuine, &mut rng).expect("genuine frame"), Message::Quit);
    let _ = Ratchet::from_bytes(data);
    let _ = Session::from_bytes(data);
});

//! Handshake message parsing: each of the three handlers gets arbitrary bytes in a
//! genuine handshake state and must reject them without panicking (forging a valid
//! message by chance is out of reach).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nightjar_proto::handshake::{Initiator, Responder};
use nightjar_proto::identity::IdentityKeyPair;
use rand::SeedableRng;
use rand::rngs::StdRng;

const PROLOGUE: &[u8] = b"fuzz";

/// Long-term identities are not what is fuzzed: make them once.
fn identities() -> &'static (IdentityKeyPair, IdentityKeyPair) {
    static IDS: OnceLock<(IdentityKeyPair, IdentityKeyPair)> = OnceLock::new();
    IDS.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(0);
        (IdentityKeyPair::generate(&mut rng), IdentityKeyPair::generate(&mut rng))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, message)) = data.split_first() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(u64::from(which));
    let (alice, bob) = identities();
    match which % 3 {
        0 => {
            let _ = Responder::handle_hello(bob, PROLOGUE, message, &mut rng);
        }
        1 => {
            let (waiting, _msg1) =
                Initiator::start(bob.public().signing_key(), PROLOGUE, &mut rng);
            assert!(waiting.handle_reply(message, alice).is_err());
        }
        _ => {
            let (_, msg1) = Initiator::start(bob.public().signing_key(), PROLOGUE, &mut rng);
            let (waiting, _msg2) =
                Responder::handle_hello(bob, PROLOGUE, &msg1, &mut rng).expect("genuine msg1");
            assert!(waiting.handle_finish(message).is_err());
        }
    }
});

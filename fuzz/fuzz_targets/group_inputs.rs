//! What a group member parses from others: a key package handed over by a
//! contact, a saved group, and room cells. Arbitrary bytes never panic; a
//! message sealed into cells always comes back whole, whatever its bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nightjar_group::cell::{Assembler, RoomKeys};
use nightjar_group::Group;
use nightjar_proto::identity::IdentityKeyPair;

fn identity() -> &'static IdentityKeyPair {
    static IDENTITY: OnceLock<IdentityKeyPair> = OnceLock::new();
    IDENTITY.get_or_init(|| IdentityKeyPair::from_secret_bytes(&[7; 64]).expect("a valid key"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let mut rng = rand::rng();
    match which % 3 {
        0 => {
            let _ = Group::restore(rest);
        }
        1 => {
            let mut group = Group::create(identity(), &mut rng).expect("a group");
            let _ = group.invite(&[([1; 32], rest.to_vec())], &mut rng);
        }
        _ => {
            let keys = RoomKeys::from_secret(&[3; 32]);
            let (_, cells) = keys.seal(rest, &mut rng).expect("fits in a room");
            let mut assembler = Assembler::default();
            let mut whole = None;
            for cell in &cells {
                whole = assembler.push(&keys, cell).expect("our own cells open");
            }
            assert_eq!(whole.expect("the last part completes it").1.as_slice(), rest);
            let _ = assembler.push(&keys, rest);
        }
    }
});

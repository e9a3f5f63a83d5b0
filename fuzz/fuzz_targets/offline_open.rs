//! Offline receive chains: stored state parsing never panics and re-encodes
//! exactly; opening arbitrary blobs in a genuine chain never panics and never
//! opens anything forged, and the genuine message still opens afterwards.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nightjar_proto::offline::{BLOB_LEN, DropGrant, RecvChain, SendChain, WINDOW};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Bob's stored chain after one message, and the blobs of Alice's next message.
fn fixture() -> &'static (Vec<u8>, u32, Vec<Vec<u8>>) {
    static FIXTURE: OnceLock<(Vec<u8>, u32, Vec<Vec<u8>>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(1);
        let grant = DropGrant::generate(vec![[7; 32]], &mut rng).expect("grant");
        let (mut alice, mut bob) = (SendChain::new(&grant), RecvChain::new(&grant));
        let first = alice.seal(b"first").expect("seal");
        let blobs = first.blobs.iter().map(|b| b.to_vec()).collect();
        bob.open(&[(first.counter, blobs)]).expect("open");
        let next = alice.seal(&[0x5a; 600]).expect("seal");
        let blobs = next.blobs.iter().map(|b| b.to_vec()).collect();
        (bob.to_bytes().to_vec(), next.counter, blobs)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(chain) = RecvChain::from_bytes(data) {
        assert_eq!(chain.to_bytes().as_slice(), data);
        let _ = chain.slots_to_scan();
    }
    let _ = SendChain::from_bytes(data);

    let (stored, counter, genuine) = fixture();
    let mut bob = RecvChain::from_bytes(stored).expect("stored chain");
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    // Arbitrary blobs, mostly of the right length, in a slot of the window.
    let slot = u32::from(*first) % WINDOW;
    let blobs: Vec<Vec<u8>> = rest.chunks(BLOB_LEN).map(<[u8]>::to_vec).collect();
    if let Ok(opened) = bob.open(&[(slot, blobs)]) {
        assert!(opened.messages.is_empty(), "forged blobs opened");
    }
    let opened = bob
        .open(&[(*counter, genuine.clone())])
        .expect("genuine open");
    assert_eq!(opened.messages, vec![(*counter, vec![0x5a; 600])]);
});

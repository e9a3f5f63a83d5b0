//! Secrets leave no trace in memory once the value holding them is dropped.
//!
//! Each case makes a value from fresh randomness, exports its secret bytes into a
//! needle, and lets `check_zeroized` confirm the bytes are found while the value
//! lives and nowhere once it is dropped (see `nightjar_test_support::memscan`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nightjar_proto::handshake::{Initiator, RatchetSeed, Responder};
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::{EndpointGrant, Message, MessageId};
use nightjar_proto::offline::{DropGrant, RecvChain, SendChain};
use nightjar_proto::session::{SESSION_ID_LEN, Session};
use nightjar_proto::smp::{Context, Smp};
use nightjar_test_support::memscan::{Needle, check_zeroized};
use rand::rngs::SysRng;
use rand_core::{Rng as _, UnwrapErr};
use zeroize::Zeroizing;

const PROLOGUE: &[u8] = b"zeroize-test";

/// The operating system's generator: it keeps no buffer of past output that
/// would hold a copy of the secrets made from it.
fn rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// Bytes `range` of `bytes`, as a needle.
fn needle_at(bytes: &[u8], range: std::ops::Range<usize>) -> Needle {
    Needle::from_secret(&bytes[range])
}

#[test]
fn identity_key_pair() {
    check_zeroized(
        "IdentityKeyPair",
        || {
            let keys = IdentityKeyPair::generate(&mut rng());
            let needle = Needle::from_secret(&keys.to_secret_bytes()[..]);
            (keys, needle)
        },
        |keys| {
            let cert = keys.certificate();
            let signature = keys.sign(b"nightjar/test/zeroize");
            keys.public()
                .signing_key()
                .verify_strict(b"nightjar/test/zeroize", &signature)
                .unwrap();
            assert_eq!(cert.identity(), &keys.public());
        },
    );
}

#[test]
fn identity_key_pair_restored() {
    check_zeroized(
        "IdentityKeyPair::from_secret_bytes",
        || {
            let mut secret = Zeroizing::new([0u8; 64]);
            rng().fill_bytes(&mut secret[..]);
            let keys = IdentityKeyPair::from_secret_bytes(&secret[..]).unwrap();
            (keys, Needle::from_secret(&secret[..]))
        },
        |keys| assert_eq!(keys.certificate().identity(), &keys.public()),
    );
}

/// Both ends of a session after a handshake between fresh identities.
fn session_pair() -> (Session, Session) {
    let mut rng = rng();
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let (waiting, msg1) = Initiator::start(bob.public().signing_key(), PROLOGUE, &mut rng);
    let (bob_waiting, msg2) = Responder::handle_hello(&bob, PROLOGUE, &msg1, &mut rng).unwrap();
    let (alice_done, msg3) = waiting.handle_reply(&msg2, &alice).unwrap();
    let bob_done = bob_waiting.handle_finish(&msg3).unwrap();
    let alice = Session::from_handshake(alice_done, &mut rng).unwrap();
    let bob = Session::from_handshake(bob_done, &mut rng).unwrap();
    (alice, bob)
}

/// The three symmetric secrets of a ratchet seed, one after the other.
fn seed_secrets(seed: &RatchetSeed) -> Zeroizing<Vec<u8>> {
    let (RatchetSeed::Initiator {
        root_key,
        header_key_a,
        next_header_key_b,
        ..
    }
    | RatchetSeed::Responder {
        root_key,
        header_key_a,
        next_header_key_b,
        ..
    }) = seed;
    let mut secrets = Zeroizing::new(Vec::with_capacity(96));
    for key in [root_key, header_key_a, next_header_key_b] {
        secrets.extend_from_slice(&key[..]);
    }
    secrets
}

#[test]
fn handshake_established() {
    check_zeroized(
        "Established ratchet seeds",
        || {
            let mut rng = rng();
            let alice = IdentityKeyPair::generate(&mut rng);
            let bob = IdentityKeyPair::generate(&mut rng);
            let (waiting, msg1) = Initiator::start(bob.public().signing_key(), PROLOGUE, &mut rng);
            let (bob_waiting, msg2) =
                Responder::handle_hello(&bob, PROLOGUE, &msg1, &mut rng).unwrap();
            let (alice_done, msg3) = waiting.handle_reply(&msg2, &alice).unwrap();
            let bob_done = bob_waiting.handle_finish(&msg3).unwrap();
            assert_eq!(alice_done.session_id(), bob_done.session_id());
            // Not boxed: a box of a seed's size would take the very chunk a
            // leaked copy of the session keys sits in. The stack is scrubbed.
            let seeds = (alice_done.into_ratchet_seed(), bob_done.into_ratchet_seed());
            let needle = Needle::from_secret(&seed_secrets(&seeds.0));
            (seeds, needle)
        },
        |(initiator, responder)| {
            assert!(matches!(initiator, RatchetSeed::Initiator { .. }));
            assert!(seed_secrets(initiator) == seed_secrets(responder));
        },
    );
}

/// Where the ratchet's root key sits in [`Session::to_bytes`]: version, session
/// id, the ratchet's length, then the ratchet's version, flags and DH secret.
const ROOT_KEY_AT: usize = 1 + SESSION_ID_LEN + 4 + 2 + 32;

#[test]
fn session() {
    check_zeroized(
        "Session",
        || {
            let (alice, bob) = session_pair();
            let state = alice.to_bytes();
            // The DH secret and the root key.
            let needle = needle_at(&state, ROOT_KEY_AT - 32..ROOT_KEY_AT + 32);
            ((alice, bob), needle)
        },
        |(alice, bob)| {
            let mut rng = rng();
            let frame = alice.seal(&Message::Quit, &mut rng).unwrap();
            assert_eq!(bob.open(&frame, &mut rng).unwrap(), Message::Quit);
        },
    );
}

#[test]
fn text_body() {
    check_zeroized(
        "Message::Text body",
        || {
            let mut marker = Zeroizing::new([0u8; 24]);
            rng().fill_bytes(&mut marker[..]);
            let body = data_encoding::HEXLOWER.encode(&marker[..]);
            let needle = Needle::from_secret(body.as_bytes());
            let text = Message::Text {
                id: MessageId([7; 16]),
                sent_at_ms: 1,
                body,
            };
            ((session_pair(), text), needle)
        },
        |((alice, bob), text)| {
            let mut rng = rng();
            let frame = alice.seal(text, &mut rng).unwrap();
            let opened = bob.open(&frame, &mut rng).unwrap();
            assert!(opened == *text);
        },
    );
}

/// A grant for two mailboxes with a fresh seed.
fn grant() -> (DropGrant, Needle) {
    let grant = DropGrant::generate(vec![[1; 32], [2; 32]], &mut rng()).unwrap();
    let needle = Needle::from_secret(grant.seed.as_slice());
    (grant, needle)
}

#[test]
fn drop_grant() {
    check_zeroized("DropGrant", grant, |grant| {
        let encoded = Zeroizing::new(Message::DropGrant(grant.clone()).encode().unwrap());
        let decoded = Message::decode(&encoded).unwrap();
        assert!(decoded == Message::DropGrant(grant.clone()));
    });
}

/// Where the chain key sits in the chains' `to_bytes`: version, role, grant id.
const CHAIN_KEY_AT: usize = 2 + 16;

#[test]
fn send_chain() {
    check_zeroized(
        "SendChain",
        || {
            let (grant, _) = grant();
            let mut chain = SendChain::new(&grant);
            chain.seal(b"first").unwrap();
            let needle = needle_at(&chain.to_bytes(), CHAIN_KEY_AT..CHAIN_KEY_AT + 32);
            (chain, needle)
        },
        |chain| {
            let restored = SendChain::from_bytes(&chain.to_bytes()).unwrap();
            assert_eq!(restored.next_counter(), chain.next_counter());
        },
    );
}

#[test]
fn recv_chain() {
    check_zeroized(
        "RecvChain",
        || {
            let (grant, _) = grant();
            let mut send = SendChain::new(&grant);
            let mut recv = RecvChain::new(&grant);
            let sealed = send.seal(b"offline").unwrap();
            let opened = recv.open(&[(
                sealed.counter,
                sealed.blobs.iter().map(|b| b.to_vec()).collect(),
            )]);
            assert!(opened.is_ok());
            let needle = needle_at(&recv.to_bytes(), CHAIN_KEY_AT..CHAIN_KEY_AT + 32);
            (recv, needle)
        },
        |recv| {
            let restored = RecvChain::from_bytes(&recv.to_bytes()).unwrap();
            assert_eq!(restored.next_counter(), recv.next_counter());
        },
    );
}

#[test]
fn endpoint_grant() {
    check_zeroized(
        "EndpointGrant",
        || {
            let mut grant = EndpointGrant {
                onion_key: [3; 32],
                credential: [0; 32],
            };
            rng().fill_bytes(&mut grant.credential);
            let needle = Needle::from_secret(&grant.credential);
            (Box::new(grant), needle)
        },
        |grant| {
            let accept = Message::Accept {
                grant: (**grant).clone(),
            };
            let encoded = Zeroizing::new(accept.encode().unwrap());
            assert!(Message::decode(&encoded).unwrap() == accept);
        },
    );
}

#[test]
fn smp_secret() {
    check_zeroized(
        "SMP secret",
        || {
            let mut secret = Zeroizing::new(vec![0u8; 32]);
            rng().fill_bytes(&mut secret[..]);
            let needle = Needle::from_secret(&secret);
            let context = |ours: u8, theirs: u8| Context {
                ours: vec![ours; 32],
                theirs: vec![theirs; 32],
                session_id: vec![9; 32],
            };
            let runs: (Smp, Smp) = (Smp::new(context(1, 2)), Smp::new(context(2, 1)));
            ((runs, secret), needle)
        },
        |((alice, bob), secret)| {
            let mut rng = rng();
            let smp1 = alice.start(secret, None, &mut rng).unwrap();
            bob.receive(&smp1, &mut rng).unwrap();
            let smp2 = bob.answer(secret, &mut rng).unwrap();
            alice.receive(&smp2, &mut rng).unwrap();
        },
    );
}

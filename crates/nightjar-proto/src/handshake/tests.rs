//! Handshake tests. `spec` re-derives everything from the formulas in the module
//! documentation with the primitives called directly, so the documentation, the
//! wire format and the implementation cannot drift apart unnoticed.

use super::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const PROLOGUE: &[u8] = b"session\0example.onion";

struct Parties {
    initiator: IdentityKeyPair,
    responder: IdentityKeyPair,
    mallory: IdentityKeyPair,
}

fn parties() -> Parties {
    let mut rng = StdRng::seed_from_u64(0x6e6a);
    Parties {
        initiator: IdentityKeyPair::generate(&mut rng),
        responder: IdentityKeyPair::generate(&mut rng),
        mallory: IdentityKeyPair::generate(&mut rng),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    One,
    Two,
    Three,
}

/// An honest initiator dials an honest responder with randomness from `seed`;
/// `tamper` may edit each message in flight.
fn handshake_with(
    p: &Parties,
    seed: u64,
    mut tamper: impl FnMut(Msg, &mut Vec<u8>),
) -> Result<(Established, Established), HandshakeError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let expected = p.responder.public();
    let (initiator, mut msg1) = Initiator::start(expected.signing_key(), PROLOGUE, &mut rng);
    tamper(Msg::One, &mut msg1);
    let (responder, mut msg2) = Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng)?;
    tamper(Msg::Two, &mut msg2);
    let (initiator, mut msg3) = initiator.handle_reply(&msg2, &p.initiator)?;
    tamper(Msg::Three, &mut msg3);
    let responder = responder.handle_finish(&msg3)?;
    Ok((initiator, responder))
}

/// The three messages of an untampered handshake.
fn transcript(p: &Parties, seed: u64) -> [Vec<u8>; 3] {
    let mut msgs = [Vec::new(), Vec::new(), Vec::new()];
    handshake_with(p, seed, |msg, bytes| msgs[msg as usize] = bytes.clone()).unwrap();
    msgs
}

/// The session secrets, in a form that can be compared.
#[derive(Debug, PartialEq, Eq)]
struct Secrets {
    root_key: [u8; 32],
    header_key_a: [u8; 32],
    next_header_key_b: [u8; 32],
    session_id: [u8; 32],
    responder_ratchet_public: [u8; 32],
}

fn secrets(established: Established) -> Secrets {
    let session_id = *established.session_id();
    match established.into_ratchet_seed() {
        RatchetSeed::Initiator {
            root_key,
            header_key_a,
            next_header_key_b,
            responder_ratchet_public,
        } => Secrets {
            root_key: *root_key,
            header_key_a: *header_key_a,
            next_header_key_b: *next_header_key_b,
            session_id,
            responder_ratchet_public,
        },
        RatchetSeed::Responder {
            root_key,
            header_key_a,
            next_header_key_b,
            ratchet_secret,
        } => Secrets {
            root_key: *root_key,
            header_key_a: *header_key_a,
            next_header_key_b: *next_header_key_b,
            session_id,
            responder_ratchet_public: PublicKey::from(&ratchet_secret).to_bytes(),
        },
    }
}

/// Tampering must end the handshake on one side; it may never complete.
fn assert_fails(result: Result<(Established, Established), HandshakeError>, what: &str) {
    if let Ok((i, r)) = result {
        let (i, r) = (secrets(i), secrets(r));
        assert_ne!(i, r, "{what}: both sides agreed despite tampering");
        panic!("{what}: both sides completed, on different keys");
    }
}

#[test]
fn honest_parties_agree_on_keys_and_learn_each_others_true_identity() {
    let p = parties();
    for seed in 0..32 {
        let (i, r) = handshake_with(&p, seed, |_, _| {}).unwrap();
        assert_eq!(i.role(), Role::Initiator);
        assert_eq!(r.role(), Role::Responder);
        assert_eq!(*i.peer(), p.responder.public());
        assert_eq!(*r.peer(), p.initiator.public());
        assert_eq!(i.session_id(), r.session_id());
        let (i, r) = (secrets(i), secrets(r));
        assert_eq!(i, r, "seed {seed}");
        let distinct = [
            i.root_key,
            i.header_key_a,
            i.next_header_key_b,
            i.session_id,
        ];
        for (n, a) in distinct.iter().enumerate() {
            assert!(
                distinct[n + 1..].iter().all(|b| a != b),
                "seed {seed}: repeated key"
            );
        }
    }
}

#[test]
fn every_handshake_yields_fresh_keys() {
    let p = parties();
    let (a, _) = handshake_with(&p, 1, |_, _| {}).unwrap();
    let (b, _) = handshake_with(&p, 2, |_, _| {}).unwrap();
    assert_ne!(a.session_id(), b.session_id());
    let (a, b) = (secrets(a), secrets(b));
    assert_ne!(a.root_key, b.root_key);
    assert_ne!(a.responder_ratchet_public, b.responder_ratchet_public);
}

#[test]
fn messages_have_their_advertised_fixed_lengths() {
    assert_eq!((MSG1_LEN, MSG2_LEN, MSG3_LEN), (1217, 1329, 176));
    let [msg1, msg2, msg3] = transcript(&parties(), 3);
    assert_eq!(
        (msg1.len(), msg2.len(), msg3.len()),
        (MSG1_LEN, MSG2_LEN, MSG3_LEN)
    );
    assert_eq!((msg1[0], msg2[0]), (VERSION, VERSION));
}

#[test]
fn documented_key_schedule_is_what_the_implementation_computes() {
    let p = parties();
    let mut rng = StdRng::seed_from_u64(4);
    let (initiator, msg1) =
        Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
    let e_i = initiator.ephemeral.to_bytes();
    let (responder, msg2) =
        Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
    let e_r = PublicKey::from(&*responder.ephemeral);
    let ss: [u8; 32] = initiator
        .kem
        .decapsulate((&msg2[33..1121]).try_into().unwrap())
        .into();

    let h1 = spec::hash(&[&spec::hash(&[PROTOCOL_LABEL, PROLOGUE]), &msg1]);
    let h2a = spec::hash(&[&h1, &msg2[..1121]]);
    let ee = spec::x25519(&e_i, &msg2[1..33]);
    let [ck1, k1] = spec::hkdf::<2>(&h2a, &[&ee, &ss], &[LABEL_EE_KEM]);
    let payload = spec::open(&k1, &h2a, &msg2[1121..1297]).expect("k1 opens msg2");
    assert_eq!(payload[..128], p.responder.certificate().to_bytes());
    assert_eq!(
        payload[128..],
        *PublicKey::from(&*responder.ratchet_secret).as_bytes()
    );
    let h2b = spec::hash(&[&h2a, &msg2[1121..1297]]);
    let es = spec::x25519(&e_i, p.responder.public().dh_key().as_bytes());
    let [ck2, mac_key_r, k3] = spec::hkdf::<3>(&ck1, &[&es], &[LABEL_ES]);
    assert_eq!(msg2[1297..], spec::hmac(&mac_key_r, &h2b));
    let h2 = spec::hash(&[&h2b, &msg2[1297..]]);

    let (i_done, msg3) = initiator.handle_reply(&msg2, &p.initiator).unwrap();
    let cert_i = spec::open(&k3, &h2, &msg3[..144]).expect("k3 opens msg3");
    assert_eq!(cert_i, p.initiator.certificate().to_bytes());
    let h3a = spec::hash(&[&h2, &msg3[..144]]);
    let se = spec::x25519(&p.initiator.dh_secret().to_bytes(), e_r.as_bytes());
    let [ck3, mac_key_i] = spec::hkdf::<2>(&ck2, &[&se], &[LABEL_SE]);
    assert_eq!(msg3[144..], spec::hmac(&mac_key_i, &h3a));
    let h = spec::hash(&[&h3a, &msg3[144..]]);
    let [root_key, header_key_a, next_header_key_b, session_id] =
        spec::hkdf::<4>(&ck3, &[], &[LABEL_SESSION, &h]);

    let expected = Secrets {
        root_key,
        header_key_a,
        next_header_key_b,
        session_id,
        responder_ratchet_public: payload[128..].try_into().unwrap(),
    };
    let r_done = responder.handle_finish(&msg3).unwrap();
    assert_eq!(secrets(i_done), expected);
    assert_eq!(secrets(r_done), expected);
}

#[test]
fn wire_format_and_key_schedule_match_the_frozen_vector() {
    // Fixed identities and randomness; any change to the format, the labels, the
    // key schedule or the order in which randomness is drawn changes these digests.
    // A change to the first three needs a new version byte.
    let mut rng = spec::CounterRng::default();
    let initiator_id = IdentityKeyPair::generate(&mut rng);
    let responder_id = IdentityKeyPair::generate(&mut rng);
    let (initiator, msg1) =
        Initiator::start(responder_id.public().signing_key(), b"vector", &mut rng);
    let (responder, msg2) =
        Responder::handle_hello(&responder_id, b"vector", &msg1, &mut rng).unwrap();
    let (i_done, msg3) = initiator.handle_reply(&msg2, &initiator_id).unwrap();
    let r_done = responder.handle_finish(&msg3).unwrap();
    let keys = secrets(i_done);
    assert_eq!(keys, secrets(r_done));
    let wire = spec::hash(&[&msg1, &msg2, &msg3]);
    let session = spec::hash(&[&keys.root_key, &keys.header_key_a, &keys.next_header_key_b]);
    assert_eq!(
        hex(&wire),
        "b8b14633f739b12570683266ac1b1aa98c783190177f3348247034d65bd42045"
    );
    assert_eq!(
        hex(&session),
        "b3c29291a9ca058ac7afaece0cf8ea02bcaaa9e2882c0839f8f2f2b9a724740d"
    );
    assert_eq!(
        hex(&keys.session_id),
        "f973c6f01c5a71759b7371df6c4651819bfafe444d0b79ead86f83d762a07ded"
    );
}

#[test]
fn initiator_rejects_a_responder_other_than_the_one_it_dialled() {
    let p = parties();
    let mut rng = StdRng::seed_from_u64(5);
    let (initiator, msg1) = Initiator::start(p.mallory.public().signing_key(), PROLOGUE, &mut rng);
    let (_, msg2) = Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
    assert_eq!(
        initiator.handle_reply(&msg2, &p.initiator).unwrap_err(),
        HandshakeError::UnexpectedIdentity
    );
}

/// Copies of the states, so one honest run can be continued many times.
fn fork_initiator(s: &InitiatorAwaitingReply) -> InitiatorAwaitingReply {
    InitiatorAwaitingReply {
        transcript: s.transcript.clone(),
        expected_responder: s.expected_responder,
        ephemeral: s.ephemeral.clone(),
        kem: s.kem.clone(),
    }
}

fn fork_responder(s: &ResponderAwaitingFinish) -> ResponderAwaitingFinish {
    ResponderAwaitingFinish {
        transcript: s.transcript.clone(),
        chaining_key: s.chaining_key.clone(),
        finish_key: s.finish_key.clone(),
        ephemeral: s.ephemeral.clone(),
        ratchet_secret: s.ratchet_secret.clone(),
    }
}

/// An honest run stopped before each party handles its last message.
struct Paused {
    initiator: InitiatorAwaitingReply,
    responder: ResponderAwaitingFinish,
    msgs: [Vec<u8>; 3],
}

fn paused(p: &Parties, seed: u64) -> Paused {
    let mut rng = StdRng::seed_from_u64(seed);
    let (initiator, msg1) =
        Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
    let (responder, msg2) =
        Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
    let (_, msg3) = fork_initiator(&initiator)
        .handle_reply(&msg2, &p.initiator)
        .unwrap();
    Paused {
        initiator,
        responder,
        msgs: [msg1, msg2, msg3],
    }
}

/// Flips one bit of every byte of msg1 and msg2 (a different bit position from one
/// byte to the next), and every bit of msg3. Every bit of every message would take
/// minutes in a debug build: each run of msg1 or msg2 costs an ML-KEM operation.
#[test]
fn flipping_a_bit_in_any_byte_of_msg1_makes_the_handshake_fail() {
    let p = parties();
    let run = paused(&p, 6);
    for at in 0..MSG1_LEN {
        let mut msg1 = run.msgs[0].clone();
        msg1[at] ^= 1 << (at % 8);
        let mut rng = StdRng::seed_from_u64(at as u64);
        let result = Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).and_then(
            |(responder, msg2)| {
                let (i, msg3) = fork_initiator(&run.initiator).handle_reply(&msg2, &p.initiator)?;
                Ok((i, responder.handle_finish(&msg3)?))
            },
        );
        assert_fails(result, &format!("msg1 byte {at}"));
    }
}

#[test]
fn flipping_a_bit_in_any_byte_of_msg2_makes_the_handshake_fail() {
    let p = parties();
    let run = paused(&p, 7);
    for at in 0..MSG2_LEN {
        let mut msg2 = run.msgs[1].clone();
        msg2[at] ^= 1 << (at % 8);
        let result = fork_initiator(&run.initiator)
            .handle_reply(&msg2, &p.initiator)
            .and_then(|(i, msg3)| Ok((i, fork_responder(&run.responder).handle_finish(&msg3)?)));
        assert_fails(result, &format!("msg2 byte {at}"));
    }
}

#[test]
fn flipping_any_bit_of_msg3_makes_the_handshake_fail() {
    let p = parties();
    let run = paused(&p, 8);
    for bit in 0..MSG3_LEN * 8 {
        let mut msg3 = run.msgs[2].clone();
        msg3[bit / 8] ^= 1 << (bit % 8);
        let result = fork_responder(&run.responder).handle_finish(&msg3);
        assert!(result.is_err(), "msg3 bit {bit} flipped was accepted");
    }
}

#[test]
fn flipping_the_top_bit_x25519_ignores_still_makes_the_handshake_fail() {
    // X25519 masks bit 255 of a public key, so this flip leaves every DH output
    // unchanged: only the transcript hash notices.
    let p = parties();
    for (target, at) in [(Msg::One, 32), (Msg::Two, 32)] {
        let result = handshake_with(&p, 9, |msg, bytes| {
            if msg == target {
                bytes[at] ^= 0x80;
            }
        });
        assert_fails(result, &format!("{target:?} top bit"));
    }
}

#[test]
fn substituting_any_field_from_another_handshake_makes_it_fail() {
    let p = parties();
    let other = transcript(&p, 8);
    let fields: [(Msg, &str, core::ops::Range<usize>); 9] = [
        (Msg::One, "initiator ephemeral key", 1..33),
        (Msg::One, "ML-KEM encapsulation key", 33..MSG1_LEN),
        (Msg::Two, "responder ephemeral key", 1..33),
        (Msg::Two, "ML-KEM ciphertext", 33..1121),
        (
            Msg::Two,
            "responder certificate and ratchet key",
            1121..1297,
        ),
        (Msg::Two, "responder confirmation", 1297..MSG2_LEN),
        (Msg::Two, "whole reply", 0..MSG2_LEN),
        (Msg::Three, "initiator certificate", 0..144),
        (Msg::Three, "initiator confirmation", 144..MSG3_LEN),
    ];
    for (target, name, range) in fields {
        let result = handshake_with(&p, 9, |msg, bytes| {
            if msg == target {
                bytes[range.clone()].copy_from_slice(&other[msg as usize][range.clone()]);
            }
        });
        assert_fails(result, name);
    }
}

#[test]
fn responder_with_a_certificate_but_not_its_dh_key_fails_confirmation() {
    // Mallory presents the responder's (public) certificate but can only compute
    // Diffie-Hellman with her own key.
    let p = parties();
    let mut rng = StdRng::seed_from_u64(10);
    let (initiator, msg1) =
        Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
    let (_, msg2) = Responder::hello_as(
        &p.responder.certificate(),
        &p.mallory.dh_secret(),
        PROLOGUE,
        &msg1,
        &mut rng,
    )
    .unwrap();
    assert_eq!(
        initiator.handle_reply(&msg2, &p.initiator).unwrap_err(),
        HandshakeError::BadMac
    );
}

#[test]
fn initiator_with_a_certificate_but_not_its_dh_key_fails_confirmation() {
    let p = parties();
    let mut rng = StdRng::seed_from_u64(11);
    let (initiator, msg1) =
        Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
    let (responder, msg2) =
        Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
    let (_, msg3) = initiator
        .reply_as(&msg2, &p.initiator.certificate(), &p.mallory.dh_secret())
        .unwrap();
    assert_eq!(
        responder.handle_finish(&msg3).unwrap_err(),
        HandshakeError::BadMac
    );
}

#[test]
fn man_in_the_middle_cannot_pass_as_the_responder() {
    let p = parties();
    let mut rng = StdRng::seed_from_u64(12);
    let expected = p.responder.public();
    // As herself.
    let (initiator, msg1) = Initiator::start(expected.signing_key(), PROLOGUE, &mut rng);
    let (_, msg2) = Responder::handle_hello(&p.mallory, PROLOGUE, &msg1, &mut rng).unwrap();
    let err = initiator.handle_reply(&msg2, &p.initiator).unwrap_err();
    assert_eq!(err, HandshakeError::UnexpectedIdentity);
    // Relaying the responder's ciphertext and certificate but with her ephemeral key.
    let (initiator, msg1) = Initiator::start(expected.signing_key(), PROLOGUE, &mut rng);
    let (_, honest) = Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
    let (_, forged) = Responder::handle_hello(&p.mallory, PROLOGUE, &msg1, &mut rng).unwrap();
    let mut spliced = honest.clone();
    spliced[1..33].copy_from_slice(&forged[1..33]);
    assert!(initiator.handle_reply(&spliced, &p.initiator).is_err());
}

#[test]
fn man_in_the_middle_cannot_pass_as_the_initiator() {
    let p = parties();
    let mut rng = StdRng::seed_from_u64(13);
    let (mallory, msg1) = Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
    let (responder, msg2) =
        Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
    let (_, msg3) = mallory
        .reply_as(&msg2, &p.initiator.certificate(), &p.mallory.dh_secret())
        .unwrap();
    assert_eq!(
        responder.handle_finish(&msg3).unwrap_err(),
        HandshakeError::BadMac
    );
}

#[test]
fn man_in_the_middle_completes_with_neither_party_under_the_expected_identity() {
    // Mallory sits between the two and runs a handshake with each as herself.
    let p = parties();
    let mut rng = StdRng::seed_from_u64(14);
    let (initiator, msg1) =
        Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
    let (_, to_initiator) = Responder::handle_hello(&p.mallory, PROLOGUE, &msg1, &mut rng).unwrap();

    let (mallory, to_responder) =
        Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
    let (responder, msg2) =
        Responder::handle_hello(&p.responder, PROLOGUE, &to_responder, &mut rng).unwrap();
    let (_, msg3) = mallory.handle_reply(&msg2, &p.mallory).unwrap();

    assert_eq!(
        initiator
            .handle_reply(&to_initiator, &p.initiator)
            .unwrap_err(),
        HandshakeError::UnexpectedIdentity
    );
    let responder = responder.handle_finish(&msg3).unwrap();
    assert_eq!(*responder.peer(), p.mallory.public());
    assert_ne!(*responder.peer(), p.initiator.public());
}

#[test]
fn responder_learns_the_initiators_identity_only_from_msg3() {
    // The same msg1 and msg2 can be finished by any identity: nothing before msg3
    // commits the initiator to one, and the responder's peer is whoever proved it.
    let p = parties();
    for (seed, who) in [(15, &p.initiator), (15, &p.mallory)] {
        let mut rng = StdRng::seed_from_u64(seed);
        let (initiator, msg1) =
            Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
        let (responder, msg2) =
            Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
        assert_eq!(format!("{responder:?}"), "ResponderAwaitingFinish { .. }");
        let (_, msg3) = initiator.handle_reply(&msg2, who).unwrap();
        assert_eq!(
            *responder.handle_finish(&msg3).unwrap().peer(),
            who.public()
        );
    }
}

#[test]
fn no_identity_appears_in_clear_on_the_wire() {
    let p = parties();
    let wire = transcript(&p, 16).concat();
    for id in [&p.initiator, &p.responder] {
        let public = id.public();
        let secret = id.to_secret_bytes();
        for needle in [
            &public.signing_key().as_bytes()[..],
            public.dh_key().as_bytes(),
            &id.certificate().to_bytes()[64..],
            &secret[..32],
            &secret[32..],
        ] {
            assert!(!wire.windows(needle.len()).any(|w| w == needle));
        }
    }
}

#[test]
fn different_prologues_never_agree() {
    let p = parties();
    let mut rng = StdRng::seed_from_u64(17);
    let (initiator, msg1) =
        Initiator::start(p.responder.public().signing_key(), b"session", &mut rng);
    let (_, msg2) = Responder::handle_hello(&p.responder, b"request", &msg1, &mut rng).unwrap();
    assert_eq!(
        initiator.handle_reply(&msg2, &p.initiator).unwrap_err(),
        HandshakeError::Decrypt
    );
}

#[test]
fn messages_of_any_other_length_are_rejected() {
    let p = parties();
    let run = paused(&p, 18);
    let lengths = |len: usize| (0..len).chain([len + 1, len + 64, 2 * len]);
    let resized = |msg: &[u8], len: usize| {
        let mut m = msg.to_vec();
        m.resize(len, 0);
        m
    };
    let [msg1, msg2, msg3] = &run.msgs;
    let mut rng = StdRng::seed_from_u64(18);
    for len in lengths(MSG1_LEN) {
        let err = Responder::handle_hello(&p.responder, PROLOGUE, &resized(msg1, len), &mut rng)
            .unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Length {
                expected: MSG1_LEN,
                actual: len
            }
        );
    }
    for len in lengths(MSG2_LEN) {
        let initiator = fork_initiator(&run.initiator);
        let err = initiator
            .handle_reply(&resized(msg2, len), &p.initiator)
            .unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Length {
                expected: MSG2_LEN,
                actual: len
            }
        );
    }
    for len in lengths(MSG3_LEN) {
        let err = fork_responder(&run.responder)
            .handle_finish(&resized(msg3, len))
            .unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Length {
                expected: MSG3_LEN,
                actual: len
            }
        );
    }
}

#[test]
fn unknown_versions_are_rejected() {
    let p = parties();
    for version in [0x00, 0x02, 0xff] {
        let result = handshake_with(&p, 19, |msg, bytes| {
            if msg == Msg::One {
                bytes[0] = version;
            }
        });
        assert_eq!(
            result.unwrap_err(),
            HandshakeError::UnsupportedVersion(version)
        );
        let result = handshake_with(&p, 19, |msg, bytes| {
            if msg == Msg::Two {
                bytes[0] = version;
            }
        });
        assert_eq!(
            result.unwrap_err(),
            HandshakeError::UnsupportedVersion(version)
        );
    }
}

#[test]
fn invalid_kem_encapsulation_key_is_rejected() {
    let p = parties();
    let result = handshake_with(&p, 20, |msg, bytes| {
        if msg == Msg::One {
            // Coefficients are 12-bit values below q = 3329; 0xfff is not one.
            bytes[33..].fill(0xff);
        }
    });
    assert_eq!(result.unwrap_err(), HandshakeError::InvalidKemKey);
}

/// Encodings of X25519 points whose Diffie-Hellman output is all zero.
const LOW_ORDER_POINTS: [[u8; 32]; 2] = [[0; 32], {
    let mut one = [0; 32];
    one[0] = 1;
    one
}];

#[test]
fn low_order_ephemeral_keys_are_rejected() {
    let p = parties();
    for point in LOW_ORDER_POINTS {
        for target in [Msg::One, Msg::Two] {
            let result = handshake_with(&p, 21, |msg, bytes| {
                if msg == target {
                    bytes[1..33].copy_from_slice(&point);
                }
            });
            assert_eq!(result.unwrap_err(), HandshakeError::WeakKey, "{target:?}");
        }
    }
}

#[test]
fn low_order_identity_and_ratchet_keys_are_rejected() {
    let p = parties();
    let mut rng = StdRng::seed_from_u64(22);
    let responder_cert = p.responder.certificate().to_bytes();
    // A responder whose signed certificate names a low-order X25519 key.
    let weak_cert = spec::cert_for(&p.responder, &LOW_ORDER_POINTS[0]);
    let ratchet = PublicKey::from(&StaticSecret::random_from_rng(&mut rng)).to_bytes();
    let cases = [
        (responder_cert, ratchet, Ok(())),
        (weak_cert, ratchet, Err(HandshakeError::WeakKey)),
        (
            responder_cert,
            LOW_ORDER_POINTS[1],
            Err(HandshakeError::WeakKey),
        ),
    ];
    for (cert, ratchet, expected) in cases {
        let (initiator, msg1) =
            Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
        let msg2 = spec::reply(&msg1, &cert, &ratchet, &p.responder.dh_secret(), &mut rng);
        let result = initiator.handle_reply(&msg2, &p.initiator);
        assert_eq!(result.map(|_| ()), expected);
    }

    // An initiator whose signed certificate names a low-order X25519 key.
    let (_, msg1) = Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
    let (responder, _) = Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
    let weak_cert = spec::cert_for(&p.initiator, &LOW_ORDER_POINTS[0]);
    let mut msg3 = spec::seal(
        &responder.finish_key,
        responder.transcript.hash(),
        &weak_cert,
    );
    msg3.extend_from_slice(&[0; MAC_LEN]);
    assert_eq!(
        responder.handle_finish(&msg3).unwrap_err(),
        HandshakeError::WeakKey
    );
}

#[test]
fn debug_output_shows_no_secrets() {
    let p = parties();
    let (i, r) = handshake_with(&p, 23, |_, _| {}).unwrap();
    let shown = format!("{i:?} {r:?}");
    let session_id = *r.session_id();
    let (i, r) = (i.into_ratchet_seed(), r.into_ratchet_seed());
    let shown = format!("{shown} {i:?} {r:?}");
    let RatchetSeed::Responder {
        root_key,
        ratchet_secret,
        ..
    } = r
    else {
        unreachable!()
    };
    for secret in [*root_key, ratchet_secret.to_bytes(), session_id] {
        assert!(!shown.contains(&hex(&secret[..4])), "{shown}");
    }
    assert!(shown.contains("Initiator") && shown.contains("Responder"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic_any_message_handler(
        bytes in prop::collection::vec(any::<u8>(), 0..1400),
        exact in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let p = parties();
        let mut rng = StdRng::seed_from_u64(seed);
        for len in [MSG1_LEN, MSG2_LEN, MSG3_LEN] {
            let mut bytes = bytes.clone();
            if exact {
                bytes.resize(len, 0x5a);
            }
            let _ = Responder::handle_hello(&p.responder, PROLOGUE, &bytes, &mut rng);
            let (initiator, msg1) =
                Initiator::start(p.responder.public().signing_key(), PROLOGUE, &mut rng);
            let _ = initiator.handle_reply(&bytes, &p.initiator);
            let (responder, _) =
                Responder::handle_hello(&p.responder, PROLOGUE, &msg1, &mut rng).unwrap();
            prop_assert!(responder.handle_finish(&bytes).is_err());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The handshake written out from the module documentation with direct calls to
/// the primitives, independent of `schedule`.
mod spec {
    use chacha20poly1305::aead::{Aead, Payload};
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
    use hmac::{Hmac, Mac};
    use ml_kem::ml_kem_768::EncapsulationKey;
    use ml_kem::{Encapsulate, TryKeyInit};
    use rand_core::{CryptoRng, TryCryptoRng, TryRng};
    use sha2::{Digest, Sha256};
    use x25519_dalek::{PublicKey, StaticSecret};

    use super::{LABEL_EE_KEM, LABEL_ES, PROLOGUE, PROTOCOL_LABEL};
    use crate::identity::{CERT_LABEL, CERT_LEN, IdentityKeyPair};

    pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
        parts
            .iter()
            .fold(Sha256::new(), |h, p| h.chain_update(p))
            .finalize()
            .into()
    }

    pub fn hkdf<const K: usize>(salt: &[u8], ikm: &[&[u8]], info: &[&[u8]]) -> [[u8; 32]; K] {
        let ikm = ikm.concat();
        let info = info.concat();
        let mut okm = vec![0u8; 32 * K];
        hkdf::Hkdf::<Sha256>::new(Some(salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        core::array::from_fn(|n| okm[32 * n..32 * (n + 1)].try_into().unwrap())
    }

    pub fn x25519(secret: &[u8; 32], public: &[u8]) -> [u8; 32] {
        let public: [u8; 32] = public.try_into().unwrap();
        x25519_dalek::x25519(*secret, public)
    }

    pub fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let aead = ChaCha20Poly1305::new(key.into());
        aead.encrypt(
            &Default::default(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap()
    }

    pub fn open(key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        let aead = ChaCha20Poly1305::new(key.into());
        aead.decrypt(
            &Default::default(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
    }

    /// A validly signed certificate of `id`'s signing key for an arbitrary X25519 key.
    pub fn cert_for(id: &IdentityKeyPair, dh: &[u8; 32]) -> [u8; CERT_LEN] {
        let signature = id.sign(&[CERT_LABEL, dh].concat());
        let mut cert = [0u8; CERT_LEN];
        cert[..32].copy_from_slice(id.public().signing_key().as_bytes());
        cert[32..64].copy_from_slice(dh);
        cert[64..].copy_from_slice(&signature.to_bytes());
        cert
    }

    /// msg2 in reply to `msg1`, carrying any certificate and ratchet key, with the
    /// key confirmation computed from `identity_dh`.
    pub fn reply<R: CryptoRng>(
        msg1: &[u8],
        cert: &[u8; CERT_LEN],
        ratchet: &[u8; 32],
        identity_dh: &StaticSecret,
        rng: &mut R,
    ) -> Vec<u8> {
        let e_r = StaticSecret::random_from_rng(rng);
        let ek = EncapsulationKey::new_from_slice(&msg1[33..]).unwrap();
        let (ct, ss) = ek.encapsulate_with_rng(rng);
        let mut msg2 = [&[super::VERSION][..], PublicKey::from(&e_r).as_bytes(), &ct].concat();
        let h1 = hash(&[&hash(&[PROTOCOL_LABEL, PROLOGUE]), msg1]);
        let h2a = hash(&[&h1, &msg2]);
        let ee = x25519(&e_r.to_bytes(), &msg1[1..33]);
        let [ck1, k1] = hkdf::<2>(&h2a, &[&ee, &ss], &[LABEL_EE_KEM]);
        let sealed = seal(&k1, &h2a, &[&cert[..], ratchet].concat());
        let h2b = hash(&[&h2a, &sealed]);
        let es = x25519(&identity_dh.to_bytes(), &msg1[1..33]);
        let [_, mac_key_r, _] = hkdf::<3>(&ck1, &[&es], &[LABEL_ES]);
        msg2.extend_from_slice(&sealed);
        msg2.extend_from_slice(&hmac(&mac_key_r, &h2b));
        msg2
    }

    /// Deterministic bytes for the frozen vector: SHA-256 of a counter, so the vector
    /// does not depend on any RNG crate's algorithm.
    #[derive(Default)]
    pub struct CounterRng(u64);

    impl TryRng for CounterRng {
        type Error = core::convert::Infallible;

        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            let mut b = [0u8; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }

        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }

        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(32) {
                let block = hash(&[b"nightjar test rng", &self.0.to_le_bytes()]);
                self.0 += 1;
                chunk.copy_from_slice(&block[..chunk.len()]);
            }
            Ok(())
        }
    }

    impl TryCryptoRng for CounterRng {}
}

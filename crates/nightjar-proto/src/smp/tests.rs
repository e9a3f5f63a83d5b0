use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::group::Malformed;
use super::*;

const ALICE_FP: &[u8] = b"alice's fingerprint.";
const BOB_FP: &[u8] = b"bob's fingerprint...";
const SESSION: &[u8] = b"session1";

fn ctx(ours: &[u8], theirs: &[u8], session: &[u8]) -> Context {
    Context {
        ours: ours.to_vec(),
        theirs: theirs.to_vec(),
        session_id: session.to_vec(),
    }
}

fn pair<G: Group>() -> (Smp<G>, Smp<G>) {
    (
        Smp::new(ctx(ALICE_FP, BOB_FP, SESSION)),
        Smp::new(ctx(BOB_FP, ALICE_FP, SESSION)),
    )
}

/// Test-only access to a group's raw message layout.
trait Wire: Group + Clone {
    /// Splits an honest message into its kind, question and raw field values.
    fn split(msg: &[u8]) -> (Kind, Option<Vec<u8>>, Vec<Vec<u8>>);
    /// Assembles a message from raw field values.
    fn join(kind: Kind, question: Option<&[u8]>, fields: &[Vec<u8>]) -> Vec<u8>;
    /// Raw field values no element check may accept.
    fn bad_elements() -> Vec<Vec<u8>>;
    /// Raw field values no proof response check may accept.
    fn bad_exponents() -> Vec<Vec<u8>>;
    /// Raw field value of a valid element.
    fn element_field(e: &Self::Element) -> Vec<u8>;
    /// Raw field value of a valid exponent.
    fn scalar_field(s: &Self::Scalar) -> Vec<u8>;
    /// Proptest cases worth their cost.
    const CASES: u32;
}

impl Wire for Ristretto {
    fn split(msg: &[u8]) -> (Kind, Option<Vec<u8>>, Vec<Vec<u8>>) {
        let frame = Self::unframe(msg).unwrap();
        let fields = frame
            .body
            .chunks(ristretto::FIELD_LEN)
            .map(<[u8]>::to_vec)
            .collect();
        (frame.kind, frame.question.map(<[u8]>::to_vec), fields)
    }

    fn join(kind: Kind, question: Option<&[u8]>, fields: &[Vec<u8>]) -> Vec<u8> {
        Self::frame(kind, question, &fields.concat())
    }

    fn bad_elements() -> Vec<Vec<u8>> {
        let mut non_canonical = [0xffu8; 32];
        non_canonical[31] = 0x7f;
        // The identity; a field element ≥ p; a negative (odd) field element.
        vec![vec![0; 32], non_canonical.to_vec(), {
            let mut odd = vec![0; 32];
            odd[0] = 1;
            odd
        }]
    }

    fn bad_exponents() -> Vec<Vec<u8>> {
        // Zero; the group order itself; all ones.
        let order = Scalar::ZERO - Scalar::ONE;
        let mut l = order.to_bytes();
        l[0] = l[0].wrapping_add(1);
        vec![vec![0; 32], l.to_vec(), vec![0xff; 32]]
    }

    fn element_field(e: &Self::Element) -> Vec<u8> {
        e.compress().to_bytes().to_vec()
    }

    fn scalar_field(s: &Self::Scalar) -> Vec<u8> {
        s.to_bytes().to_vec()
    }

    const CASES: u32 = 16;
}

use curve25519_dalek::scalar::Scalar;

/// Both parties' messages and states in an honest run, stopped after message `upto`
/// (1 to 4) was produced and before it was received.
#[derive(Clone)]
struct Run<G: Group> {
    alice: Smp<G>,
    bob: Smp<G>,
    msgs: Vec<Vec<u8>>,
}

impl<G: Group> Run<G> {
    fn upto(n: usize, alice_secret: &[u8], bob_secret: &[u8], question: Option<&str>) -> Self {
        // One seed for every `n`: the first messages of `upto(4)` are those of
        // `upto(n)`, so a message from one fits the states of the other.
        let mut rng = StdRng::seed_from_u64(0x5a9);
        let (mut alice, mut bob) = pair::<G>();
        let mut msgs = vec![alice.start(alice_secret, question, &mut rng).unwrap()];
        if n >= 2 {
            let step = bob.receive(&msgs[0], &mut rng).unwrap();
            assert_eq!(
                step,
                Step::Asked {
                    question: question.map(str::to_owned)
                }
            );
            msgs.push(bob.answer(bob_secret, &mut rng).unwrap());
        }
        if n >= 3 {
            match alice.receive(&msgs[1], &mut rng).unwrap() {
                Step::Send(m) => msgs.push(m),
                other => panic!("expected SMP3, got {other:?}"),
            }
        }
        if n >= 4 {
            match bob.receive(&msgs[2], &mut rng).unwrap() {
                Step::Finished { send: Some(m), .. } => msgs.push(m),
                other => panic!("expected SMP4, got {other:?}"),
            }
        }
        Self { alice, bob, msgs }
    }

    /// The party that receives message `n`.
    fn receiver(&mut self, n: usize) -> &mut Smp<G> {
        if n % 2 == 1 {
            &mut self.bob
        } else {
            &mut self.alice
        }
    }

    fn sender(&mut self, n: usize) -> &mut Smp<G> {
        if n % 2 == 1 {
            &mut self.alice
        } else {
            &mut self.bob
        }
    }

    /// Delivers `msg` in place of message `n` and checks the receiver catches it,
    /// and that its abort ends the sender's run too.
    fn expect_cheated(&mut self, n: usize, msg: &[u8], what: &str) {
        let mut rng = StdRng::seed_from_u64(1000 + n as u64);
        let step = self.receiver(n).receive(msg, &mut rng).unwrap();
        let Step::Finished {
            outcome: Outcome::Cheated,
            send: Some(abort),
        } = step
        else {
            panic!("message {n}, {what}: expected Cheated, got {step:?}");
        };
        assert_eq!(self.receiver(n).outcome(), Some(Outcome::Cheated), "{what}");
        assert_eq!(
            self.receiver(n).receive(msg, &mut rng),
            Err(SmpError::Finished),
            "{what}"
        );
        if self.sender(n).outcome().is_none() {
            let step = self.sender(n).receive(&abort, &mut rng).unwrap();
            assert_eq!(
                step,
                Step::Finished {
                    outcome: Outcome::Aborted,
                    send: None
                },
                "{what}"
            );
        }
    }
}

/// Runs SMP to the end; returns (initiator's, responder's) outcomes.
fn run<G: Group>(
    alice_ctx: Context,
    bob_ctx: Context,
    alice_secret: &[u8],
    bob_secret: &[u8],
    seed: u64,
) -> (Outcome, Outcome) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut alice = Smp::<G>::new(alice_ctx);
    let mut bob = Smp::<G>::new(bob_ctx);
    let m1 = alice.start(alice_secret, None, &mut rng).unwrap();
    assert_eq!(
        bob.receive(&m1, &mut rng).unwrap(),
        Step::Asked { question: None }
    );
    let m2 = bob.answer(bob_secret, &mut rng).unwrap();
    let Step::Send(m3) = alice.receive(&m2, &mut rng).unwrap() else {
        panic!("no SMP3")
    };
    let Step::Finished {
        outcome: bob_outcome,
        send: Some(m4),
    } = bob.receive(&m3, &mut rng).unwrap()
    else {
        panic!("no SMP4")
    };
    let Step::Finished {
        outcome: alice_outcome,
        send: None,
    } = alice.receive(&m4, &mut rng).unwrap()
    else {
        panic!("initiator did not finish")
    };
    assert_eq!(alice.outcome(), Some(alice_outcome));
    assert_eq!(bob.outcome(), Some(bob_outcome));
    (alice_outcome, bob_outcome)
}

fn equal_secrets_succeed<G: Group>() {
    let (a, b) = run::<G>(
        ctx(ALICE_FP, BOB_FP, SESSION),
        ctx(BOB_FP, ALICE_FP, SESSION),
        b"the blue heron",
        b"the blue heron",
        1,
    );
    assert_eq!((a, b), (Outcome::Succeeded, Outcome::Succeeded));
}

fn different_secrets_fail<G: Group>() {
    let (a, b) = run::<G>(
        ctx(ALICE_FP, BOB_FP, SESSION),
        ctx(BOB_FP, ALICE_FP, SESSION),
        b"the blue heron",
        b"the blue herom",
        2,
    );
    assert_eq!((a, b), (Outcome::Failed, Outcome::Failed));
}

fn binding_to_context<G: Group>() {
    let same = b"same secret";
    // Different sessions.
    let outcomes = run::<G>(
        ctx(ALICE_FP, BOB_FP, SESSION),
        ctx(BOB_FP, ALICE_FP, b"session2"),
        same,
        same,
        3,
    );
    assert_eq!(outcomes, (Outcome::Failed, Outcome::Failed));
    // A relay: each side sees a different peer fingerprint.
    let outcomes = run::<G>(
        ctx(ALICE_FP, b"mallory's fingerprint", SESSION),
        ctx(BOB_FP, ALICE_FP, SESSION),
        same,
        same,
        4,
    );
    assert_eq!(outcomes, (Outcome::Failed, Outcome::Failed));
}

fn question_is_delivered<G: Group>() {
    let question = "Where did we first meet? — «café»";
    let mut run = Run::<G>::upto(1, b"s", b"s", Some(question));
    let mut rng = StdRng::seed_from_u64(7);
    let m1 = run.msgs[0].clone();
    assert_eq!(
        run.bob.receive(&m1, &mut rng).unwrap(),
        Step::Asked {
            question: Some(question.to_owned())
        }
    );
    let mut rng = StdRng::seed_from_u64(8);
    let (mut alice, _) = pair::<G>();
    let long = "q".repeat(MAX_QUESTION_LEN + 1);
    assert_eq!(
        alice.start(b"s", Some(&long), &mut rng),
        Err(SmpError::Question)
    );
    assert_eq!(
        alice.start(b"s", Some("a\0b"), &mut rng),
        Err(SmpError::Question)
    );
    let max = "q".repeat(MAX_QUESTION_LEN);
    assert!(alice.start(b"s", Some(&max), &mut rng).is_ok());
}

fn bad_questions_are_cheating<G: Wire>() {
    let run = Run::<G>::upto(1, b"s", b"s", Some("fine"));
    let (kind, _, fields) = G::split(&run.msgs[0]);
    assert_eq!(kind, Kind::Smp1Q);
    let long = vec![b'q'; MAX_QUESTION_LEN + 1];
    for bad in [&[0xff, 0xfe][..], &long[..]] {
        let mut run = Run::<G>::upto(1, b"s", b"s", Some("fine"));
        run.expect_cheated(1, &G::join(Kind::Smp1Q, Some(bad), &fields), "bad question");
    }
}

fn full_run_rejects_misuse<G: Group>() {
    let mut run = Run::<G>::upto(4, b"x", b"x", None);
    let mut rng = StdRng::seed_from_u64(9);
    let m4 = run.msgs[3].clone();
    assert!(matches!(
        run.alice.receive(&m4, &mut rng),
        Ok(Step::Finished {
            outcome: Outcome::Succeeded,
            send: None
        })
    ));
    // A run is used once.
    assert_eq!(run.alice.receive(&m4, &mut rng), Err(SmpError::Finished));
    assert_eq!(
        run.alice.start(b"x", None, &mut rng),
        Err(SmpError::Finished)
    );
    assert_eq!(run.bob.answer(b"x", &mut rng), Err(SmpError::Finished));
    let m1 = run.msgs[0].clone();
    assert_eq!(run.bob.receive(&m1, &mut rng), Err(SmpError::Finished));
    // Caller mistakes before the end.
    let (mut alice, mut bob) = pair::<G>();
    assert_eq!(bob.answer(b"x", &mut rng), Err(SmpError::NotAsked));
    alice.start(b"x", None, &mut rng).unwrap();
    assert_eq!(alice.start(b"x", None, &mut rng), Err(SmpError::InProgress));
    assert_eq!(alice.answer(b"x", &mut rng), Err(SmpError::NotAsked));
}

fn out_of_order_is_cheating<G: Group + Clone>() {
    let runs: Vec<Run<G>> = (1..=4).map(|n| Run::upto(n, b"x", b"x", None)).collect();
    let full = &runs[3];
    // Every message other than the expected one, delivered at each point.
    for n in 1..=4 {
        for (i, wrong) in full.msgs.iter().enumerate() {
            if i + 1 == n {
                continue;
            }
            let mut run = runs[n - 1].clone();
            run.expect_cheated(n, wrong, &format!("message {} at {n}", i + 1));
        }
    }
    // The right kind of message, but from another run.
    let other = {
        let mut rng = StdRng::seed_from_u64(99);
        let (mut a, mut b) = pair::<G>();
        let m1 = a.start(b"x", None, &mut rng).unwrap();
        b.receive(&m1, &mut rng).unwrap();
        let m2 = b.answer(b"x", &mut rng).unwrap();
        let Ok(Step::Send(m3)) = a.receive(&m2, &mut rng) else {
            panic!()
        };
        let Ok(Step::Finished { send: Some(m4), .. }) = b.receive(&m3, &mut rng) else {
            panic!()
        };
        [m1, m2, m3, m4]
    };
    for n in 2..=4 {
        let mut run = runs[n - 1].clone();
        run.expect_cheated(n, &other[n - 1], &format!("message {n} of another run"));
    }
    // While our user is being asked, only an abort may arrive.
    let mut run = runs[1].clone();
    let mut rng = StdRng::seed_from_u64(5);
    let again = run.msgs[0].clone();
    run.expect_cheated(1, &again, "SMP1 while asked");
    assert_eq!(run.bob.answer(b"x", &mut rng), Err(SmpError::Finished));
}

fn abort_at_every_stage<G: Group + Clone>() {
    let runs: Vec<Run<G>> = (1..=4).map(|n| Run::upto(n, b"x", b"x", None)).collect();
    // Before message n is received, either side aborts.
    for n in 1..=4 {
        for sender_aborts in [true, false] {
            let mut run = runs[n - 1].clone();
            let mut rng = StdRng::seed_from_u64(11);
            let (aborting, other) = if sender_aborts {
                (&mut run.alice, &mut run.bob)
            } else {
                (&mut run.bob, &mut run.alice)
            };
            let (aborting, other) = if n % 2 == 1 {
                (aborting, other)
            } else {
                (other, aborting)
            };
            // Only SMP4's sender has finished (successfully) before it is received.
            let finished_before = aborting.outcome();
            let abort = aborting.abort();
            assert_eq!(
                aborting.outcome(),
                finished_before.or(Some(Outcome::Aborted))
            );
            match other.outcome() {
                None => {
                    assert_eq!(
                        other.receive(&abort, &mut rng).unwrap(),
                        Step::Finished {
                            outcome: Outcome::Aborted,
                            send: None
                        }
                    );
                    assert_eq!(other.outcome(), Some(Outcome::Aborted));
                }
                Some(done) => {
                    assert_eq!(other.receive(&abort, &mut rng), Err(SmpError::Finished));
                    assert_eq!(other.outcome(), Some(done));
                }
            }
            // Neither side accepts anything more.
            let msg = run.msgs[n - 1].clone();
            assert_eq!(run.alice.receive(&msg, &mut rng), Err(SmpError::Finished));
            assert_eq!(run.bob.receive(&msg, &mut rng), Err(SmpError::Finished));
        }
    }
    // A peer's abort before anything started.
    let (mut alice, mut bob) = pair::<G>();
    let mut rng = StdRng::seed_from_u64(12);
    let abort = alice.abort();
    assert_eq!(
        bob.receive(&abort, &mut rng).unwrap(),
        Step::Finished {
            outcome: Outcome::Aborted,
            send: None
        }
    );
}

/// Which fields of each message are elements (the rest are exponents).
fn element_fields(n: usize) -> &'static [bool] {
    const E: bool = true;
    const S: bool = false;
    match n {
        1 => &[E, S, S, E, S, S],
        2 => &[E, S, S, E, S, S, E, E, S, S, S],
        3 => &[E, E, S, S, S, E, S, S],
        _ => &[E, S, S],
    }
}

fn every_field_tampered<G: Wire>() {
    let mut rng = StdRng::seed_from_u64(21);
    let runs: Vec<Run<G>> = (1..=4).map(|n| Run::upto(n, b"x", b"x", None)).collect();
    let honest = &runs[3];
    let other_element = G::element_field(&G::exp(&G::generator(), &G::random_exponent(&mut rng)));
    let other_scalar = G::scalar_field(&G::random_exponent(&mut rng));
    for n in 1..=4 {
        let (kind, question, fields) = G::split(&honest.msgs[n - 1]);
        assert_eq!(fields.len(), kind.field_count());
        // The untampered message, re-assembled, is accepted: every rejection
        // below is the tampering's doing.
        let mut run = runs[n - 1].clone();
        let mut rng = StdRng::seed_from_u64(22);
        let msg = G::join(kind, question.as_deref(), &fields);
        assert_eq!(msg, honest.msgs[n - 1]);
        let step = run.receiver(n).receive(&msg, &mut rng).unwrap();
        assert!(
            !matches!(
                step,
                Step::Finished {
                    outcome: Outcome::Cheated | Outcome::Failed,
                    ..
                }
            ),
            "message {n}: {step:?}"
        );
        for (i, &is_element) in element_fields(n).iter().enumerate() {
            let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
            for pos in [0, fields[i].len() / 2, fields[i].len() - 1] {
                let mut f = fields[i].clone();
                f[pos] ^= 0x01;
                variants.push((format!("bit flip at {pos}"), f));
            }
            let (other, bad) = if is_element {
                (other_element.clone(), G::bad_elements())
            } else {
                (other_scalar.clone(), G::bad_exponents())
            };
            variants.push(("another valid value".into(), other));
            variants.extend(bad.into_iter().map(|b| ("invalid value".to_owned(), b)));
            for (what, value) in variants {
                let mut tampered = fields.clone();
                tampered[i] = value;
                let msg = G::join(kind, question.as_deref(), &tampered);
                let mut run = runs[n - 1].clone();
                run.expect_cheated(n, &msg, &format!("field {i}: {what}"));
            }
        }
    }
}

fn truncated_and_extended<G: Wire>() {
    let runs: Vec<Run<G>> = (1..=4).map(|n| Run::upto(n, b"x", b"x", None)).collect();
    for n in 1..=4 {
        let msg = &runs[3].msgs[n - 1];
        for len in [0, 1, 2, 3, 4, 5, msg.len() / 2, msg.len() - 1] {
            let mut run = runs[n - 1].clone();
            run.expect_cheated(n, &msg[..len], &format!("truncated to {len}"));
        }
        let mut longer = msg.clone();
        longer.push(0);
        let mut run = runs[n - 1].clone();
        run.expect_cheated(n, &longer, "trailing byte");
        // One field more or fewer, framed consistently.
        let (kind, question, mut fields) = G::split(msg);
        let mut extra = fields.clone();
        extra.push(fields[0].clone());
        let mut run = runs[n - 1].clone();
        run.expect_cheated(
            n,
            &G::join(kind, question.as_deref(), &extra),
            "extra field",
        );
        fields.pop();
        let mut run = runs[n - 1].clone();
        run.expect_cheated(
            n,
            &G::join(kind, question.as_deref(), &fields),
            "missing field",
        );
    }
    // Garbage where a message is expected.
    let mut run = Run::<G>::upto(1, b"x", b"x", None);
    run.expect_cheated(1, &[0xff; 64], "garbage");
}

fn random_secrets<G: Group>(a: &[u8], b: &[u8], seed: u64) {
    let (oa, ob) = run::<G>(
        ctx(ALICE_FP, BOB_FP, SESSION),
        ctx(BOB_FP, ALICE_FP, SESSION),
        a,
        b,
        seed,
    );
    let expected = if a == b {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    };
    assert_eq!((oa, ob), (expected, expected));
}

fn secrets_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, u64)> {
    (
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(a, b, same, seed)| {
            if same {
                (a.clone(), a, seed)
            } else {
                (a, b, seed)
            }
        })
}

#[test]
fn debug_hides_secrets() {
    let mut rng = StdRng::seed_from_u64(1);
    let (mut alice, _) = pair::<Ristretto>();
    alice.start(b"hunter2", None, &mut rng).unwrap();
    let shown = format!("{alice:?}");
    assert!(shown.contains("AwaitingSmp2"), "{shown}");
    assert!(
        !shown.contains("session1") && !shown.contains("fingerprint"),
        "{shown}"
    );
}

#[test]
fn read_errors_are_malformed() {
    let mut empty: &[u8] = &[];
    assert_eq!(
        <Ristretto as Group>::read_element(&mut empty).err(),
        Some(Malformed)
    );
}

#[test]
fn ristretto_message_sizes() {
    let run = Run::<Ristretto>::upto(4, b"x", b"x", None);
    let sizes: Vec<usize> = run.msgs.iter().map(Vec::len).collect();
    assert_eq!(sizes, [194, 354, 258, 98]);
    for (msg, code) in run.msgs.iter().zip([2, 3, 4, 5]) {
        assert_eq!(msg[..2], [ristretto::VERSION, code]);
    }
    let q = Run::<Ristretto>::upto(1, b"x", b"x", Some("hi?"));
    assert_eq!(q.msgs[0][..7], [1, 7, 0, 3, b'h', b'i', b'?']);
    assert_eq!(q.msgs[0].len(), 196 + 3);
    let (mut alice, _) = pair::<Ristretto>();
    assert_eq!(alice.abort(), [1, 6]);
}

macro_rules! group_tests {
    ($module:ident, $group:ty) => {
        mod $module {
            use super::*;

            #[test]
            fn equal_secrets_succeed() {
                super::equal_secrets_succeed::<$group>();
            }
            #[test]
            fn different_secrets_fail() {
                super::different_secrets_fail::<$group>();
            }
            #[test]
            fn binding_to_context() {
                super::binding_to_context::<$group>();
            }
            #[test]
            fn question_is_delivered() {
                super::question_is_delivered::<$group>();
            }
            #[test]
            fn bad_questions_are_cheating() {
                super::bad_questions_are_cheating::<$group>();
            }
            #[test]
            fn full_run_rejects_misuse() {
                super::full_run_rejects_misuse::<$group>();
            }
            #[test]
            fn out_of_order_is_cheating() {
                super::out_of_order_is_cheating::<$group>();
            }
            #[test]
            fn abort_at_every_stage() {
                super::abort_at_every_stage::<$group>();
            }
            #[test]
            fn every_field_tampered() {
                super::every_field_tampered::<$group>();
            }
            #[test]
            fn truncated_and_extended() {
                super::truncated_and_extended::<$group>();
            }
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(<$group as Wire>::CASES))]
                #[test]
                fn random_secrets((a, b, seed) in secrets_strategy()) {
                    super::random_secrets::<$group>(&a, &b, seed);
                }
            }
        }
    };
}

group_tests!(ristretto255, Ristretto);
#[cfg(feature = "otr3")]
group_tests!(modp1536, Modp1536);

#[cfg(feature = "otr3")]
mod otr3;

//! The Socialist Millionaire Protocol (SMP), as OTR version 3 constructs it.
//!
//! Two people who share a secret (an answer to a question, a passphrase agreed in
//! person) learn whether they typed the same thing, and nothing else: a wrong
//! guess reveals nothing about either secret beyond "different", and a
//! man-in-the-middle who does not know the secret can only make the run fail.
//! Each side proves every step in zero knowledge, so a party who deviates from the
//! protocol is caught ([`Outcome::Cheated`]) rather than learning anything.
//!
//! # What is compared
//!
//! Not the user's secret itself but an exponent hashed from it together with both
//! parties' fingerprints (the initiator's first) and a session identifier
//! ([`Context`]). A success therefore proves that the other side knows the
//! secret *and* sees the same two fingerprints and the same session: an attacker
//! relaying between two sessions compares different values and the run fails.
//!
//! # The protocol
//!
//! `g1` is the group's generator, `x` the initiator's exponent, `y` the
//! responder's; `H_t` is the group's challenge hash with tag `t` (OTR v3's
//! version bytes 1 to 8); every `r` is fresh randomness and every `D = r - e·c
//! mod q` proves knowledge of an exponent `e`.
//!
//! ```text
//! SMP1  A→B  g2a = g1^a2, c2 = H_1(g1^r2), D2       (proves a2)
//!            g3a = g1^a3, c3 = H_2(g1^r3), D3       (proves a3)
//! SMP2  B→A  g2b, c2 = H_3, D2, g3b, c3 = H_4, D3   (proves b2, b3)
//!            g2 = g2a^b2, g3 = g3a^b3
//!            Pb = g3^r4, Qb = g1^r4 · g2^y
//!            cP = H_5(g3^r5, g1^r5 · g2^r6), D5 = r5 - r4·cP, D6 = r6 - y·cP
//! SMP3  A→B  Pa = g3^r4, Qa = g1^r4 · g2^x, cP = H_6(..), D5, D6
//!            Ra = (Qa/Qb)^a3, cR = H_7(g1^r7, (Qa/Qb)^r7), D7 = r7 - a3·cR
//! SMP4  B→A  Rb = (Qa/Qb)^b3, cR = H_8(..), D7
//! Both:      Rab = Ra^b3 = Rb^a3; secrets equal  ⇔  Rab == Pa/Pb
//! ```
//!
//! A receiver checks every element ([`Group::read_element`]) and every proof
//! before using a message. A message that is malformed, fails a check, or arrives
//! out of order ends the run as [`Outcome::Cheated`] and yields an abort message
//! for the peer; an abort from the peer ends it as [`Outcome::Aborted`].
//!
//! # Groups and encodings
//!
//! The protocol is generic over [`Group`]:
//!
//! - [`Ristretto`] (the default): ristretto255 with nightjar's own compact
//!   encoding — a version byte `0x01`, the message type (OTR's TLV type, below),
//!   for SMP1Q a 16-bit big-endian question length and the UTF-8 question, then
//!   the fields in the order above, 32 bytes each (canonical compressed points and
//!   canonical little-endian scalars). The identity and non-canonical encodings
//!   are refused. Challenges are SHA-512 of `"nightjar/v1/smp/proof"`, the tag
//!   and the encoded points, reduced modulo the group order; the compared exponent
//!   is SHA-512 of `"nightjar/v1/smp/secret"` and the four inputs, each with a
//!   32-bit big-endian length.
//! - `Modp1536` (cargo feature `otr3`): OTR v3 bit for bit — the RFC 3526
//!   1536-bit MODP group with generator 2, messages as OTR TLVs (type and length
//!   16-bit big-endian; type 2 SMP1, 3 SMP2, 4 SMP3, 5 SMP4, 6 abort, 7 SMP1Q
//!   whose value starts with the NUL-terminated question), each value a 32-bit
//!   MPI count and then the MPIs (32-bit length, minimal big-endian bytes).
//!   Challenges are SHA-256 of the tag byte and the MPIs; the compared exponent
//!   is `SHA-256(0x01 ‖ initiator fingerprint ‖ responder fingerprint ‖ secure
//!   session id ‖ secret)`.
//!
//! | message | fields | ristretto255 bytes |
//! |---|---|---|
//! | SMP1 (type 2) | 6 | 194 |
//! | SMP1Q (type 7) | 6 | 196 + question |
//! | SMP2 (type 3) | 11 | 354 |
//! | SMP3 (type 4) | 8 | 258 |
//! | SMP4 (type 5) | 3 | 98 |
//! | abort (type 6) | 0 | 2 |
//!
//! # Driving a run
//!
//! ```text
//! initiator                               responder
//! Smp::new(ctx).start(secret, q?) ─SMP1─▶ receive → Step::Asked { question }
//!                                         answer(secret)
//! receive → Step::Send(SMP3)      ◀─SMP2─
//!                                 ─SMP3─▶ receive → Step::Finished { outcome, send: Some(SMP4) }
//! receive → Step::Finished { outcome, send: None } ◀─SMP4─
//! ```
//!
//! A run is used once: after [`Step::Finished`] (or [`Smp::abort`]) every call
//! fails with [`SmpError::Finished`], and a new comparison needs a new [`Smp`].

use core::fmt;
use core::mem;

use rand_core::CryptoRng;
use zeroize::Zeroize;

pub mod group;
#[cfg(feature = "otr3")]
pub mod modp;
pub mod ristretto;
#[cfg(test)]
mod tests;

pub use group::{Group, Kind};
#[cfg(feature = "otr3")]
pub use modp::Modp1536;
pub use ristretto::Ristretto;

use group::Malformed;

/// The longest question, in bytes of UTF-8.
pub const MAX_QUESTION_LEN: usize = 512;

/// What a run is bound to besides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Context {
    /// Our fingerprint.
    pub ours: Vec<u8>,
    /// The peer's fingerprint.
    pub theirs: Vec<u8>,
    /// An identifier both sides share for the session the run belongs to.
    pub session_id: Vec<u8>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides hold the same secret and see the same fingerprints and session.
    Succeeded,
    /// The compared values differ.
    Failed,
    /// The peer sent something malformed, out of order, or with a failing check.
    Cheated,
    /// The peer aborted the run.
    Aborted,
}

/// What the caller does next after [`Smp::receive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The peer started a run: ask our user for the secret (showing the question
    /// if there is one), then call [`Smp::answer`].
    Asked {
        /// The peer's question.
        question: Option<String>,
    },
    /// Send these bytes to the peer; the run goes on.
    Send(Vec<u8>),
    /// The run is over; send `send` to the peer if present.
    Finished {
        /// The result.
        outcome: Outcome,
        /// The last message for the peer (SMP4, or an abort after cheating).
        send: Option<Vec<u8>>,
    },
}

/// Misuse of an [`Smp`] by its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmpError {
    /// [`Smp::start`] on a run that has already started.
    #[error("this SMP run has already started")]
    InProgress,
    /// [`Smp::answer`] without a pending question.
    #[error("no SMP request is waiting for an answer")]
    NotAsked,
    /// The run is over; a new comparison needs a new run.
    #[error("this SMP run is over")]
    Finished,
    /// The question is longer than [`MAX_QUESTION_LEN`] bytes or contains NUL.
    #[error("the SMP question is too long or contains a NUL character")]
    Question,
}

/// An exponent wiped when dropped.
// Tests copy a run midway to try many inputs at one point; nothing else may.
#[cfg_attr(test, derive(Clone))]
struct Secret<S: Zeroize>(S);

impl<S: Zeroize> Drop for Secret<S> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg_attr(test, derive(Clone))]
enum State<G: Group> {
    Idle,
    AwaitingSmp2 {
        x: Secret<G::Scalar>,
        a2: Secret<G::Scalar>,
        a3: Secret<G::Scalar>,
    },
    Asked {
        g2a: G::Element,
        g3a: G::Element,
    },
    AwaitingSmp3 {
        b3: Secret<G::Scalar>,
        g2: G::Element,
        g3: G::Element,
        g3a: G::Element,
        pb: G::Element,
        qb: G::Element,
    },
    AwaitingSmp4 {
        a3: Secret<G::Scalar>,
        g3b: G::Element,
        pa_pb: G::Element,
        qa_qb: G::Element,
    },
    Done(Outcome),
}

impl<G: Group> State<G> {
    fn name(&self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::AwaitingSmp2 { .. } => "AwaitingSmp2",
            Self::Asked { .. } => "Asked",
            Self::AwaitingSmp3 { .. } => "AwaitingSmp3",
            Self::AwaitingSmp4 { .. } => "AwaitingSmp4",
            Self::Done(_) => "Done",
        }
    }
}

/// One run of the Socialist Millionaire Protocol, from either side.
#[cfg_attr(test, derive(Clone))]
pub struct Smp<G: Group = Ristretto> {
    ctx: Context,
    state: State<G>,
}

impl<G: Group> fmt::Debug for Smp<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smp")
            .field("state", &self.state.name())
            .field("outcome", &self.outcome())
            .finish_non_exhaustive()
    }
}

impl<G: Group> Smp<G> {
    /// A run bound to `ctx`, waiting for [`Smp::start`] or a peer's SMP1.
    pub fn new(ctx: Context) -> Self {
        Self {
            ctx,
            state: State::Idle,
        }
    }

    /// Whether `msg` opens a run (SMP1 or SMP1Q): what a node needs to notice a
    /// peer starting anew, or both sides starting at once.
    pub fn is_start(msg: &[u8]) -> bool {
        G::unframe(msg).is_ok_and(|frame| matches!(frame.kind, Kind::Smp1 | Kind::Smp1Q))
    }

    /// How the run ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.state {
            State::Done(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// Starts a run as initiator: returns SMP1, or SMP1Q if there is a question.
    pub fn start<R: CryptoRng + ?Sized>(
        &mut self,
        secret: &[u8],
        question: Option<&str>,
        rng: &mut R,
    ) -> Result<Vec<u8>, SmpError> {
        match self.state {
            State::Idle => {}
            State::Done(_) => return Err(SmpError::Finished),
            _ => return Err(SmpError::InProgress),
        }
        if question.is_some_and(|q| q.len() > MAX_QUESTION_LEN || q.contains('\0')) {
            return Err(SmpError::Question);
        }
        let x = Secret(G::secret_exponent(
            &self.ctx.ours,
            &self.ctx.theirs,
            &self.ctx.session_id,
            secret,
        ));
        let a2 = Secret(G::random_exponent(rng));
        let a3 = Secret(G::random_exponent(rng));
        let mut body = Vec::new();
        write_log_proof::<G, R>(1, &a2.0, rng, &mut body);
        write_log_proof::<G, R>(2, &a3.0, rng, &mut body);
        let kind = if question.is_some() {
            Kind::Smp1Q
        } else {
            Kind::Smp1
        };
        self.state = State::AwaitingSmp2 { x, a2, a3 };
        Ok(G::frame(kind, question.map(str::as_bytes), &body))
    }

    /// Handles any message from the peer, including an abort.
    ///
    /// Fails only when the run is already over; anything the peer sends, however
    /// malformed, becomes a [`Step`].
    pub fn receive<R: CryptoRng + ?Sized>(
        &mut self,
        msg: &[u8],
        rng: &mut R,
    ) -> Result<Step, SmpError> {
        if let State::Done(_) = self.state {
            return Err(SmpError::Finished);
        }
        // Until a message has been fully checked, the run counts as cheated.
        let state = mem::replace(&mut self.state, State::Done(Outcome::Cheated));
        let Ok(frame) = G::unframe(msg) else {
            return Ok(self.cheated());
        };
        let mut body = frame.body;
        let step = match (state, frame.kind) {
            (_, Kind::Abort) => {
                self.state = State::Done(Outcome::Aborted);
                return Ok(Step::Finished {
                    outcome: Outcome::Aborted,
                    send: None,
                });
            }
            (State::Idle, Kind::Smp1 | Kind::Smp1Q) => self.on_smp1(frame.question, &mut body),
            (State::AwaitingSmp2 { x, a2, a3 }, Kind::Smp2) => {
                self.on_smp2(&x.0, &a2.0, a3, &mut body, rng)
            }
            (
                State::AwaitingSmp3 {
                    b3,
                    g2,
                    g3,
                    g3a,
                    pb,
                    qb,
                },
                Kind::Smp3,
            ) => {
                let ours = Smp3Keys {
                    b3: &b3.0,
                    g2: &g2,
                    g3: &g3,
                    g3a: &g3a,
                    pb: &pb,
                    qb: &qb,
                };
                self.on_smp3(&ours, &mut body, rng)
            }
            (
                State::AwaitingSmp4 {
                    a3,
                    g3b,
                    pa_pb,
                    qa_qb,
                },
                Kind::Smp4,
            ) => self.on_smp4(&a3.0, &g3b, &pa_pb, &qa_qb, &mut body),
            _ => Err(Malformed),
        };
        // Trailing bytes make the message malformed whatever it computed.
        match step {
            Ok(step) if body.is_empty() => Ok(step),
            _ => Ok(self.cheated()),
        }
    }

    /// Answers the peer's request with our user's secret: returns SMP2.
    pub fn answer<R: CryptoRng + ?Sized>(
        &mut self,
        secret: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SmpError> {
        let (g2a, g3a) = match &self.state {
            State::Asked { g2a, g3a } => (g2a.clone(), g3a.clone()),
            State::Done(_) => return Err(SmpError::Finished),
            _ => return Err(SmpError::NotAsked),
        };
        // We are the responder: the initiator's fingerprint goes first.
        let y = Secret(G::secret_exponent(
            &self.ctx.theirs,
            &self.ctx.ours,
            &self.ctx.session_id,
            secret,
        ));
        let b2 = Secret(G::random_exponent(rng));
        let b3 = Secret(G::random_exponent(rng));
        let mut body = Vec::new();
        write_log_proof::<G, R>(3, &b2.0, rng, &mut body);
        write_log_proof::<G, R>(4, &b3.0, rng, &mut body);
        let g2 = G::exp(&g2a, &b2.0);
        let g3 = G::exp(&g3a, &b3.0);
        let (pb, qb) = write_pq_proof::<G, R>(5, &g2, &g3, &y.0, rng, &mut body);
        self.state = State::AwaitingSmp3 {
            b3,
            g2,
            g3,
            g3a,
            pb,
            qb,
        };
        Ok(G::frame(Kind::Smp2, None, &body))
    }

    /// Ends the run and returns the abort message for the peer. A run that is
    /// already over keeps its outcome.
    pub fn abort(&mut self) -> Vec<u8> {
        if !matches!(self.state, State::Done(_)) {
            self.state = State::Done(Outcome::Aborted);
        }
        G::frame(Kind::Abort, None, &[])
    }

    /// Ends the run as cheated; the abort tells the peer it is over.
    fn cheated(&mut self) -> Step {
        self.state = State::Done(Outcome::Cheated);
        Step::Finished {
            outcome: Outcome::Cheated,
            send: Some(G::frame(Kind::Abort, None, &[])),
        }
    }

    fn finish(&mut self, rab: &G::Element, pa_pb: &G::Element, send: Option<Vec<u8>>) -> Step {
        let outcome = if G::equal(rab, pa_pb) {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        };
        self.state = State::Done(outcome);
        Step::Finished { outcome, send }
    }

    fn on_smp1(&mut self, question: Option<&[u8]>, body: &mut &[u8]) -> Result<Step, Malformed> {
        let question = match question {
            Some(q) => Some(core::str::from_utf8(q).map_err(|_| Malformed)?.to_owned()),
            None => None,
        };
        let g2a = read_log_proof::<G>(1, body)?;
        let g3a = read_log_proof::<G>(2, body)?;
        self.state = State::Asked { g2a, g3a };
        Ok(Step::Asked { question })
    }

    fn on_smp2<R: CryptoRng + ?Sized>(
        &mut self,
        x: &G::Scalar,
        a2: &G::Scalar,
        a3: Secret<G::Scalar>,
        body: &mut &[u8],
        rng: &mut R,
    ) -> Result<Step, Malformed> {
        let g2b = read_log_proof::<G>(3, body)?;
        let g3b = read_log_proof::<G>(4, body)?;
        let g2 = G::exp(&g2b, a2);
        let g3 = G::exp(&g3b, &a3.0);
        let (pb, qb) = read_pq_proof::<G>(5, &g2, &g3, body)?;
        let mut out = Vec::new();
        let (pa, qa) = write_pq_proof::<G, R>(6, &g2, &g3, x, rng, &mut out);
        let qa_qb = G::div(&qa, &qb);
        let ra = G::exp(&qa_qb, &a3.0);
        G::write_element(&ra, &mut out);
        write_eq_proof::<G, R>(7, &qa_qb, &a3.0, rng, &mut out);
        let pa_pb = G::div(&pa, &pb);
        self.state = State::AwaitingSmp4 {
            a3,
            g3b,
            pa_pb,
            qa_qb,
        };
        Ok(Step::Send(G::frame(Kind::Smp3, None, &out)))
    }

    fn on_smp3<R: CryptoRng + ?Sized>(
        &mut self,
        ours: &Smp3Keys<'_, G>,
        body: &mut &[u8],
        rng: &mut R,
    ) -> Result<Step, Malformed> {
        let (pa, qa) = read_pq_proof::<G>(6, ours.g2, ours.g3, body)?;
        let qa_qb = G::div(&qa, ours.qb);
        let ra = G::read_element(body)?;
        read_eq_proof::<G>(7, &qa_qb, ours.g3a, &ra, body)?;
        let mut out = Vec::new();
        let rb = G::exp(&qa_qb, ours.b3);
        G::write_element(&rb, &mut out);
        write_eq_proof::<G, R>(8, &qa_qb, ours.b3, rng, &mut out);
        let rab = G::exp(&ra, ours.b3);
        let pa_pb = G::div(&pa, ours.pb);
        Ok(self.finish(&rab, &pa_pb, Some(G::frame(Kind::Smp4, None, &out))))
    }

    fn on_smp4(
        &mut self,
        a3: &G::Scalar,
        g3b: &G::Element,
        pa_pb: &G::Element,
        qa_qb: &G::Element,
        body: &mut &[u8],
    ) -> Result<Step, Malformed> {
        let rb = G::read_element(body)?;
        read_eq_proof::<G>(8, qa_qb, g3b, &rb, body)?;
        let rab = G::exp(&rb, a3);
        Ok(self.finish(&rab, pa_pb, None))
    }
}

/// What the responder kept for SMP3.
struct Smp3Keys<'a, G: Group> {
    b3: &'a G::Scalar,
    g2: &'a G::Element,
    g3: &'a G::Element,
    g3a: &'a G::Element,
    pb: &'a G::Element,
    qb: &'a G::Element,
}

/// Writes `g1^e`, `c = H_tag(g1^r)`, `D = r - e·c`: a proof of knowledge of `e`.
fn write_log_proof<G: Group, R: CryptoRng + ?Sized>(
    tag: u8,
    e: &G::Scalar,
    rng: &mut R,
    out: &mut Vec<u8>,
) {
    let r = Secret(G::random_exponent(rng));
    let c = G::challenge(tag, &G::exp(&G::generator(), &r.0), None);
    G::write_element(&G::exp(&G::generator(), e), out);
    G::write_scalar(&c, out);
    G::write_scalar(&G::respond(&r.0, e, &c), out);
}

/// Reads and checks a proof written by [`write_log_proof`]; returns `g1^e`.
fn read_log_proof<G: Group>(tag: u8, input: &mut &[u8]) -> Result<G::Element, Malformed> {
    let public = G::read_element(input)?;
    let c = G::read_challenge(input)?;
    let d = G::read_exponent(input)?;
    let commitment = G::mul(&G::exp(&G::generator(), &d), &G::exp(&public, &c));
    if !G::challenge_eq(&c, &G::challenge(tag, &commitment, None)) {
        return Err(Malformed);
    }
    Ok(public)
}

/// Writes `P = g3^r`, `Q = g1^r · g2^s` and a proof that they are so formed;
/// returns `(P, Q)`.
fn write_pq_proof<G: Group, R: CryptoRng + ?Sized>(
    tag: u8,
    g2: &G::Element,
    g3: &G::Element,
    s: &G::Scalar,
    rng: &mut R,
    out: &mut Vec<u8>,
) -> (G::Element, G::Element) {
    let g1 = G::generator();
    let r = Secret(G::random_exponent(rng));
    let r5 = Secret(G::random_exponent(rng));
    let r6 = Secret(G::random_exponent(rng));
    let p = G::exp(g3, &r.0);
    let q = G::mul(&G::exp(&g1, &r.0), &G::exp(g2, s));
    let c = G::challenge(
        tag,
        &G::exp(g3, &r5.0),
        Some(&G::mul(&G::exp(&g1, &r5.0), &G::exp(g2, &r6.0))),
    );
    G::write_element(&p, out);
    G::write_element(&q, out);
    G::write_scalar(&c, out);
    G::write_scalar(&G::respond(&r5.0, &r.0, &c), out);
    G::write_scalar(&G::respond(&r6.0, s, &c), out);
    (p, q)
}

/// Reads and checks what [`write_pq_proof`] wrote; returns `(P, Q)`.
fn read_pq_proof<G: Group>(
    tag: u8,
    g2: &G::Element,
    g3: &G::Element,
    input: &mut &[u8],
) -> Result<(G::Element, G::Element), Malformed> {
    let p = G::read_element(input)?;
    let q = G::read_element(input)?;
    let c = G::read_challenge(input)?;
    let d5 = G::read_exponent(input)?;
    let d6 = G::read_exponent(input)?;
    let first = G::mul(&G::exp(g3, &d5), &G::exp(&p, &c));
    let second = G::mul(
        &G::mul(&G::exp(&G::generator(), &d5), &G::exp(g2, &d6)),
        &G::exp(&q, &c),
    );
    if !G::challenge_eq(&c, &G::challenge(tag, &first, Some(&second))) {
        return Err(Malformed);
    }
    Ok((p, q))
}

/// Writes `c = H_tag(g1^r, base^r)`, `D = r - e·c`: a proof that `base^e` (sent
/// just before) and `g1^e` (sent earlier) share the exponent `e`.
fn write_eq_proof<G: Group, R: CryptoRng + ?Sized>(
    tag: u8,
    base: &G::Element,
    e: &G::Scalar,
    rng: &mut R,
    out: &mut Vec<u8>,
) {
    let r = Secret(G::random_exponent(rng));
    let c = G::challenge(
        tag,
        &G::exp(&G::generator(), &r.0),
        Some(&G::exp(base, &r.0)),
    );
    G::write_scalar(&c, out);
    G::write_scalar(&G::respond(&r.0, e, &c), out);
}

/// Checks a proof written by [`write_eq_proof`] that `log_g1(g_e) == log_base(r)`.
fn read_eq_proof<G: Group>(
    tag: u8,
    base: &G::Element,
    g_e: &G::Element,
    r: &G::Element,
    input: &mut &[u8],
) -> Result<(), Malformed> {
    let c = G::read_challenge(input)?;
    let d = G::read_exponent(input)?;
    let first = G::mul(&G::exp(&G::generator(), &d), &G::exp(g_e, &c));
    let second = G::mul(&G::exp(base, &d), &G::exp(r, &c));
    if G::challenge_eq(&c, &G::challenge(tag, &first, Some(&second))) {
        Ok(())
    } else {
        Err(Malformed)
    }
}

//! What the protocol needs from a group: a prime-order (sub)group with a generator,
//! exponent arithmetic modulo its order, the two hashes, and a wire encoding.

use rand_core::CryptoRng;
use zeroize::Zeroize;

/// The kinds of SMP message. Their codes are OTR v3's TLV types, used by both
/// encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The initiator's first message.
    Smp1,
    /// The responder's reply.
    Smp2,
    /// The initiator's second message.
    Smp3,
    /// The responder's last message.
    Smp4,
    /// Either side ends the run.
    Abort,
    /// [`Kind::Smp1`] preceded by a question for the responder's user.
    Smp1Q,
}

impl Kind {
    /// OTR v3's TLV type for this kind.
    pub const fn code(self) -> u16 {
        match self {
            Self::Smp1 => 2,
            Self::Smp2 => 3,
            Self::Smp3 => 4,
            Self::Smp4 => 5,
            Self::Abort => 6,
            Self::Smp1Q => 7,
        }
    }

    /// The kind with OTR v3's TLV type `code`.
    pub const fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            2 => Self::Smp1,
            3 => Self::Smp2,
            4 => Self::Smp3,
            5 => Self::Smp4,
            6 => Self::Abort,
            7 => Self::Smp1Q,
            _ => return None,
        })
    }

    /// How many group elements and exponents the message carries.
    pub const fn field_count(self) -> usize {
        match self {
            Self::Smp1 | Self::Smp1Q => 6,
            Self::Smp2 => 11,
            Self::Smp3 => 8,
            Self::Smp4 => 3,
            Self::Abort => 0,
        }
    }
}

/// A received message that does not parse, or carries a value outside the group
/// or the exponent range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// A message split into its kind, its question (only for [`Kind::Smp1Q`]) and its
/// fields, still encoded; the field count has been checked against the kind.
#[derive(Debug)]
pub struct Frame<'a> {
    /// What the message is.
    pub kind: Kind,
    /// The raw question, at most [`super::MAX_QUESTION_LEN`] bytes, not yet
    /// checked to be UTF-8.
    pub question: Option<&'a [u8]>,
    /// The encoded fields, read in order with the `read_*` functions.
    pub body: &'a [u8],
}

/// A group in which SMP runs, with its hashes and wire encoding.
///
/// Exponents are integers modulo the group order `q`; every element produced by
/// [`Group::read_element`] has been checked, so the protocol never works on a
/// value an attacker chose outside the group.
pub trait Group {
    /// An exponent modulo the group order.
    type Scalar: Clone + Zeroize;
    /// A group element.
    type Element: Clone;

    /// The fixed generator `g1`.
    fn generator() -> Self::Element;
    /// A uniformly random exponent in `[1, q)`.
    fn random_exponent<R: CryptoRng + ?Sized>(rng: &mut R) -> Self::Scalar;
    /// `base^e`, in time independent of `e`.
    fn exp(base: &Self::Element, e: &Self::Scalar) -> Self::Element;
    /// `a · b`.
    fn mul(a: &Self::Element, b: &Self::Element) -> Self::Element;
    /// `a / b`.
    fn div(a: &Self::Element, b: &Self::Element) -> Self::Element;
    /// Whether `a == b`, in constant time.
    fn equal(a: &Self::Element, b: &Self::Element) -> bool;
    /// Whether two challenges are equal (they are public).
    fn challenge_eq(a: &Self::Scalar, b: &Self::Scalar) -> bool;
    /// The proof response `r - a·c mod q`.
    fn respond(r: &Self::Scalar, a: &Self::Scalar, c: &Self::Scalar) -> Self::Scalar;
    /// The proof challenge for proof number `tag` (OTR v3's version byte, 1..=8)
    /// over one or two elements.
    fn challenge(tag: u8, first: &Self::Element, second: Option<&Self::Element>) -> Self::Scalar;
    /// The exponent compared by the run, from both fingerprints (the initiator's
    /// first), the session binding and the user's secret.
    fn secret_exponent(
        initiator: &[u8],
        responder: &[u8],
        session_id: &[u8],
        secret: &[u8],
    ) -> Self::Scalar;

    /// Appends the encoding of an element.
    fn write_element(e: &Self::Element, out: &mut Vec<u8>);
    /// Appends the encoding of an exponent or challenge.
    fn write_scalar(s: &Self::Scalar, out: &mut Vec<u8>);
    /// Reads an element and checks that it is a valid, non-trivial group element.
    fn read_element(input: &mut &[u8]) -> Result<Self::Element, Malformed>;
    /// Reads a proof response and checks that it lies in `[1, q)`.
    fn read_exponent(input: &mut &[u8]) -> Result<Self::Scalar, Malformed>;
    /// Reads a proof challenge (a hash output, compared later with a recomputed one).
    fn read_challenge(input: &mut &[u8]) -> Result<Self::Scalar, Malformed>;

    /// Wraps fields written with `write_*` into a whole message.
    fn frame(kind: Kind, question: Option<&[u8]>, body: &[u8]) -> Vec<u8>;
    /// Splits a whole message; the caller reads exactly
    /// [`Kind::field_count`] fields from the body and then requires it empty.
    fn unframe(msg: &[u8]) -> Result<Frame<'_>, Malformed>;
}

/// Takes `n` bytes from the front of `input`.
pub(crate) fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], Malformed> {
    if input.len() < n {
        return Err(Malformed);
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

//! SMP over ristretto255: nightjar's own group, encoding and hashes.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRng;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::MAX_QUESTION_LEN;
use super::group::{Frame, Group, Kind, Malformed, take};

/// Version byte that starts every ristretto255 SMP message.
pub const VERSION: u8 = 1;
/// Bytes of an encoded element or scalar.
pub const FIELD_LEN: usize = 32;

const PROOF_LABEL: &[u8] = b"nightjar/v1/smp/proof";
const SECRET_LABEL: &[u8] = b"nightjar/v1/smp/secret";

/// The ristretto255 group: 32-byte canonical encodings, the identity refused,
/// SHA-512 hashes reduced modulo the group order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ristretto;

fn wide_hash(hash: Sha512) -> Scalar {
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&hash.finalize());
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    s
}

fn update_prefixed(hash: &mut Sha512, data: &[u8]) {
    // Lengths above 4 GiB cannot reach here from a message or a user, but must
    // still never be ambiguous: saturate, which changes the hash input.
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    hash.update(len.to_be_bytes());
    hash.update(data);
}

impl Group for Ristretto {
    type Scalar = Scalar;
    type Element = RistrettoPoint;

    fn generator() -> RistrettoPoint {
        curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT
    }

    fn random_exponent<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
        loop {
            let s = Scalar::random(rng);
            if s != Scalar::ZERO {
                return s;
            }
        }
    }

    fn exp(base: &RistrettoPoint, e: &Scalar) -> RistrettoPoint {
        if base == &Self::generator() {
            RISTRETTO_BASEPOINT_TABLE * e
        } else {
            base * e
        }
    }

    fn mul(a: &RistrettoPoint, b: &RistrettoPoint) -> RistrettoPoint {
        a + b
    }

    fn div(a: &RistrettoPoint, b: &RistrettoPoint) -> RistrettoPoint {
        a - b
    }

    fn equal(a: &RistrettoPoint, b: &RistrettoPoint) -> bool {
        a.ct_eq(b).into()
    }

    fn challenge_eq(a: &Scalar, b: &Scalar) -> bool {
        a.ct_eq(b).into()
    }

    fn respond(r: &Scalar, a: &Scalar, c: &Scalar) -> Scalar {
        r - a * c
    }

    fn challenge(tag: u8, first: &RistrettoPoint, second: Option<&RistrettoPoint>) -> Scalar {
        let mut hash = Sha512::new();
        hash.update(PROOF_LABEL);
        hash.update([tag]);
        hash.update(first.compress().as_bytes());
        if let Some(second) = second {
            hash.update(second.compress().as_bytes());
        }
        wide_hash(hash)
    }

    fn secret_exponent(
        initiator: &[u8],
        responder: &[u8],
        session_id: &[u8],
        secret: &[u8],
    ) -> Scalar {
        let mut hash = Sha512::new();
        hash.update(SECRET_LABEL);
        update_prefixed(&mut hash, initiator);
        update_prefixed(&mut hash, responder);
        update_prefixed(&mut hash, session_id);
        update_prefixed(&mut hash, secret);
        wide_hash(hash)
    }

    fn write_element(e: &RistrettoPoint, out: &mut Vec<u8>) {
        out.extend_from_slice(e.compress().as_bytes());
    }

    fn write_scalar(s: &Scalar, out: &mut Vec<u8>) {
        out.extend_from_slice(s.as_bytes());
    }

    fn read_element(input: &mut &[u8]) -> Result<RistrettoPoint, Malformed> {
        let bytes = take(input, FIELD_LEN)?;
        // Decompression accepts only the canonical encoding of a point.
        let point = CompressedRistretto::from_slice(bytes)
            .map_err(|_| Malformed)?
            .decompress()
            .ok_or(Malformed)?;
        if point.is_identity() {
            return Err(Malformed);
        }
        Ok(point)
    }

    fn read_exponent(input: &mut &[u8]) -> Result<Scalar, Malformed> {
        let s = Self::read_challenge(input)?;
        if s == Scalar::ZERO {
            return Err(Malformed);
        }
        Ok(s)
    }

    fn read_challenge(input: &mut &[u8]) -> Result<Scalar, Malformed> {
        let mut bytes = [0u8; FIELD_LEN];
        bytes.copy_from_slice(take(input, FIELD_LEN)?);
        Option::from(Scalar::from_canonical_bytes(bytes)).ok_or(Malformed)
    }

    fn frame(kind: Kind, question: Option<&[u8]>, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 2 + MAX_QUESTION_LEN + body.len());
        out.push(VERSION);
        // Every code fits a byte.
        out.push(kind.code().to_be_bytes()[1]);
        if let Some(question) = question {
            let len = u16::try_from(question.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(question);
        }
        out.extend_from_slice(body);
        out
    }

    fn unframe(msg: &[u8]) -> Result<Frame<'_>, Malformed> {
        let mut input = msg;
        let header = take(&mut input, 2)?;
        if header[0] != VERSION {
            return Err(Malformed);
        }
        let kind = Kind::from_code(u16::from(header[1])).ok_or(Malformed)?;
        let question = if kind == Kind::Smp1Q {
            let len = take(&mut input, 2)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            if len > MAX_QUESTION_LEN {
                return Err(Malformed);
            }
            Some(take(&mut input, len)?)
        } else {
            None
        };
        if input.len() != kind.field_count() * FIELD_LEN {
            return Err(Malformed);
        }
        Ok(Frame {
            kind,
            question,
            body: input,
        })
    }
}

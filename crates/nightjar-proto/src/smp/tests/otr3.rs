//! OTR v3's group and wire format, byte for byte.

use crypto_bigint::U1536;
use sha2::{Digest, Sha256};

use super::super::modp::{MODULUS_LEN, TLV_HEADER_LEN, p, q};
use super::*;

fn minimal(value: &U1536) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// Splits MPIs off `body`: (length prefix, value) pairs.
fn mpis(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let len = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
        out.push(body[4..4 + len].to_vec());
        body = &body[4 + len..];
    }
    out
}

impl Wire for Modp1536 {
    fn split(msg: &[u8]) -> (Kind, Option<Vec<u8>>, Vec<Vec<u8>>) {
        let frame = Self::unframe(msg).unwrap();
        (
            frame.kind,
            frame.question.map(<[u8]>::to_vec),
            mpis(frame.body),
        )
    }

    fn join(kind: Kind, question: Option<&[u8]>, fields: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        for f in fields {
            body.extend_from_slice(&(f.len() as u32).to_be_bytes());
            body.extend_from_slice(f);
        }
        Self::frame(kind, question, &body)
    }

    fn bad_elements() -> Vec<Vec<u8>> {
        let one = U1536::ONE;
        vec![
            vec![],                           // 0
            minimal(&one),                    // 1
            minimal(&p().wrapping_sub(&one)), // p - 1
            minimal(&p()),                    // p
            vec![0, 2],                       // 2, not minimally encoded
            vec![1; MODULUS_LEN + 1],         // longer than p
        ]
    }

    fn bad_exponents() -> Vec<Vec<u8>> {
        vec![
            vec![],                                  // 0
            minimal(&q()),                           // q
            minimal(&q().wrapping_add(&U1536::ONE)), // q + 1
            minimal(&p()),                           // p
            vec![0, 1],                              // 1, not minimally encoded
            vec![1; MODULUS_LEN + 1],                // longer than p
        ]
    }

    fn element_field(e: &Self::Element) -> Vec<u8> {
        let mut out = Vec::new();
        Self::write_element(e, &mut out);
        out.split_off(4)
    }

    fn scalar_field(s: &Self::Scalar) -> Vec<u8> {
        minimal(s)
    }

    // Each run is a few dozen 1536-bit exponentiations.
    const CASES: u32 = 3;
}

#[test]
fn group_constants() {
    assert_eq!(q(), p().wrapping_sub(&U1536::ONE).shr_vartime(1));
    // 2 generates the subgroup of order q.
    let g = Modp1536::generator();
    let one = Modp1536::div(&g, &g);
    assert!(Modp1536::equal(&Modp1536::exp(&g, &q()), &one));
    assert!(!Modp1536::equal(&g, &one));
}

#[test]
fn tlv_types_and_mpi_counts() {
    let run = Run::<Modp1536>::upto(4, b"x", b"x", None);
    for (msg, (code, count)) in run.msgs.iter().zip([(2u16, 6u32), (3, 11), (4, 8), (5, 3)]) {
        assert_eq!(u16::from_be_bytes([msg[0], msg[1]]), code);
        assert_eq!(
            usize::from(u16::from_be_bytes([msg[2], msg[3]])),
            msg.len() - TLV_HEADER_LEN
        );
        let value = &msg[TLV_HEADER_LEN..];
        assert_eq!(u32::from_be_bytes(value[..4].try_into().unwrap()), count);
        let fields = mpis(&value[4..]);
        assert_eq!(fields.len() as u32, count);
        for f in &fields {
            assert!(!f.is_empty() && f[0] != 0, "MPIs are minimal");
            assert!(f.len() <= MODULUS_LEN);
        }
    }
    let (mut alice, _) = pair::<Modp1536>();
    assert_eq!(alice.abort(), [0, 6, 0, 0]);
}

#[test]
fn smp1q_layout() {
    let run = Run::<Modp1536>::upto(1, b"x", b"x", Some("pet's name?"));
    let msg = &run.msgs[0];
    assert_eq!(msg[..2], [0, 7]);
    let value = &msg[TLV_HEADER_LEN..];
    assert_eq!(&value[..12], b"pet's name?\0");
    assert_eq!(value[12..16], [0, 0, 0, 6]);
    assert_eq!(mpis(&value[16..]).len(), 6);
}

#[test]
fn otr_hashes() {
    // SHA-256(version byte ‖ MPI(2)).
    let c = Modp1536::challenge(1, &Modp1536::generator(), None);
    let digest = Sha256::digest([1, 0, 0, 0, 1, 2]);
    assert_eq!(
        minimal(&c),
        minimal(&U1536::from_be_slice(&{
            let mut b = [0u8; MODULUS_LEN];
            b[MODULUS_LEN - 32..].copy_from_slice(&digest);
            b
        }))
    );
    // SHA-256(0x01 ‖ initiator fingerprint ‖ responder fingerprint ‖ ssid ‖ secret).
    let x = Modp1536::secret_exponent(b"AAAA", b"BBBB", b"sssssss", b"secret");
    let digest = Sha256::digest(b"\x01AAAABBBBssssssssecret");
    let mut b = [0u8; MODULUS_LEN];
    b[MODULUS_LEN - 32..].copy_from_slice(&digest);
    assert_eq!(x, U1536::from_be_slice(&b));
}

#[test]
fn abort_with_a_value_is_cheating() {
    let mut run = Run::<Modp1536>::upto(1, b"x", b"x", None);
    run.expect_cheated(1, &[0, 6, 0, 4, 0, 0, 0, 0], "abort with a count");
}

#[test]
fn wrong_mpi_count_is_cheating() {
    let run = Run::<Modp1536>::upto(1, b"x", b"x", None);
    let mut msg = run.msgs[0].clone();
    msg[TLV_HEADER_LEN + 3] = 7;
    let mut run = Run::<Modp1536>::upto(1, b"x", b"x", None);
    run.expect_cheated(1, &msg, "count 7 with 6 MPIs");
}

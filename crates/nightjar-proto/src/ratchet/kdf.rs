//! The three key derivations of the ratchet: root step, chain step, message key
//! expansion. Every output is written into caller-owned storage so that key bytes
//! are not left behind in temporaries that nobody wipes.

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{
    CHAIN_MESSAGE_KEY_INPUT, CHAIN_NEXT_KEY_INPUT, KEY_LEN, MESSAGE_INFO, NONCE_LEN, ROOT_INFO,
    RatchetError,
};

/// A 32-byte symmetric key.
pub(super) type Key = [u8; KEY_LEN];

/// `KDF_RK`: mixes a Diffie-Hellman output into the root key.
///
/// `root_key` is replaced by the new root key; the new chain key and the next header
/// key are written to `chain_key` and `next_header_key`.
pub(super) fn kdf_rk(
    root_key: &mut Key,
    dh_out: &Key,
    chain_key: &mut Key,
    next_header_key: &mut Key,
) -> Result<(), RatchetError> {
    let hkdf = Hkdf::<Sha256>::new(Some(root_key.as_slice()), dh_out);
    // Three whole SHA-256 blocks; keeping them as separate arrays lets us split the
    // output without slicing arithmetic.
    let mut okm = Zeroizing::new([[0u8; KEY_LEN]; 3]);
    hkdf.expand(ROOT_INFO, okm.as_flattened_mut())
        .map_err(|_| RatchetError::Internal)?;
    let [rk, ck, nhk] = &*okm;
    root_key.copy_from_slice(rk);
    chain_key.copy_from_slice(ck);
    next_header_key.copy_from_slice(nhk);
    Ok(())
}

/// `KDF_CK`: one step of a symmetric chain, in place.
///
/// Writes the message key for the current position to `message_key` and replaces
/// `chain_key` with the chain key for the next position. Callers that may have to
/// roll back run this on a copy.
pub(super) fn kdf_ck(chain_key: &mut Key, message_key: &mut Key) -> Result<(), RatchetError> {
    let keyed =
        Hmac::<Sha256>::new_from_slice(chain_key.as_slice()).map_err(|_| RatchetError::Internal)?;
    // Cloning the keyed state saves re-deriving the inner and outer pads.
    let mut mac = keyed.clone();
    mac.update(&[CHAIN_MESSAGE_KEY_INPUT]);
    message_key.copy_from_slice(&mac.finalize().into_bytes());
    let mut mac = keyed;
    mac.update(&[CHAIN_NEXT_KEY_INPUT]);
    chain_key.copy_from_slice(&mac.finalize().into_bytes());
    Ok(())
}

/// Expands a message key into the body cipher and its nonce.
///
/// The nonce can be derived rather than random because every message key is used
/// for exactly one message.
pub(super) fn message_cipher(
    message_key: &Key,
) -> Result<(XChaCha20Poly1305, XNonce), RatchetError> {
    const OKM_LEN: usize = KEY_LEN + NONCE_LEN;
    let hkdf = Hkdf::<Sha256>::new(Some(&[0u8; KEY_LEN]), message_key);
    let mut okm = Zeroizing::new([0u8; OKM_LEN]);
    hkdf.expand(MESSAGE_INFO, okm.as_mut_slice())
        .map_err(|_| RatchetError::Internal)?;
    let (key, nonce) = okm
        .split_first_chunk::<KEY_LEN>()
        .ok_or(RatchetError::Internal)?;
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| RatchetError::Internal)?;
    Ok((XChaCha20Poly1305::new(key.into()), XNonce::from(*nonce)))
}

#[cfg(test)]
mod tests {
    //! Known answers computed with an independent implementation (Python's
    //! `hmac`/`hashlib`, HKDF per RFC 5869), so that the wire constants cannot drift
    //! unnoticed. See `tests/vectors/ratchet_vectors.py`.
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn kdf_rk_known_answer() {
        let mut rk = [0x11u8; 32];
        let dh = [0x22u8; 32];
        let (mut ck, mut nhk) = ([0u8; 32], [0u8; 32]);
        kdf_rk(&mut rk, &dh, &mut ck, &mut nhk).unwrap();
        assert_eq!(hex(&rk), KAT_RK);
        assert_eq!(hex(&ck), KAT_RK_CK);
        assert_eq!(hex(&nhk), KAT_RK_NHK);
    }

    #[test]
    fn kdf_ck_known_answer() {
        let mut next = [0x33u8; 32];
        let mut mk = [0u8; 32];
        kdf_ck(&mut next, &mut mk).unwrap();
        assert_eq!(hex(&mk), KAT_CK_MK);
        assert_eq!(hex(&next), KAT_CK_NEXT);
    }

    #[test]
    fn message_cipher_known_answer() {
        use chacha20poly1305::aead::Aead;
        let (cipher, nonce) = message_cipher(&[0x44u8; 32]).unwrap();
        assert_eq!(hex(&nonce), KAT_MSG_NONCE);
        // The key is not exposed by the cipher; check it through one encryption.
        let ct = cipher.encrypt(&nonce, b"nightjar".as_slice()).unwrap();
        assert_eq!(hex(&ct), KAT_MSG_CT);
    }

    const KAT_RK: &str = "4fd164b482e8f5020a95d67a498910479233aa8a9068478f8e048841195be777";
    const KAT_RK_CK: &str = "32628f556b23dd543d8136cc85b488d76beec41cfcd6e0d25a212b2b80c20f45";
    const KAT_RK_NHK: &str = "c42c97e0935a812341a90628d9da3be15460837974cff47bb82e256da52bd610";
    const KAT_CK_MK: &str = "da9d2383815d52bf414c540d97e91d0facf9b98729f9a3f437ad4a9b571676a0";
    const KAT_CK_NEXT: &str = "e66a4bfa6a49b2045fe9a7ca29edf7991fc43ce97b9bbfcd467723a8a90f623c";
    const KAT_MSG_NONCE: &str = "5d117f7c2842dcf0c21bcbd0d865af355e9bd168648ddb75";
    const KAT_MSG_CT: &str = "b3b75a442ce6eff90ccdbe67be2a50de6c7dd7eea3a2c65f";
}

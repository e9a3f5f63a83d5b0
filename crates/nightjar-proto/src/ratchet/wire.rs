//! Message layout on the wire: the encrypted header and the body.
//!
//! ```text
//! encrypted header (HEADER_LEN = 84):
//!     nonce (24, random) | XChaCha20-Poly1305(HK, nonce, header plaintext, AAD = ad)
//! header plaintext (44):
//!     ratchet public key (32) | pn (u32 BE) | n (u32 BE) | body_len (u32 BE)
//! body (body_len = plaintext length + 16):
//!     XChaCha20-Poly1305(key and nonce from the message key, plaintext,
//!                        AAD = ad || encrypted header)
//! ```

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::kdf::{Key, message_cipher};
use super::{HEADER_LEN, HEADER_PLAINTEXT_LEN, KEY_LEN, NONCE_LEN, RatchetError, TAG_LEN};

/// The decrypted header of a message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// The sender's current ratchet public key.
    pub(super) ratchet_public: [u8; KEY_LEN],
    /// Length of the sender's previous sending chain.
    pub(super) pn: u32,
    /// Position of this message in the sender's current sending chain.
    pub(super) n: u32,
    /// Length of the body ciphertext that follows the header, tag included.
    pub(super) body_len: u32,
}

impl Header {
    fn encode(&self) -> Zeroizing<[u8; HEADER_PLAINTEXT_LEN]> {
        let mut out = Zeroizing::new([0u8; HEADER_PLAINTEXT_LEN]);
        let fields = self
            .ratchet_public
            .iter()
            .copied()
            .chain(self.pn.to_be_bytes())
            .chain(self.n.to_be_bytes())
            .chain(self.body_len.to_be_bytes());
        // The field widths add up to HEADER_PLAINTEXT_LEN exactly (checked by a
        // const assertion in the parent module), so zip drops nothing.
        for (dst, src) in out.iter_mut().zip(fields) {
            *dst = src;
        }
        out
    }

    fn decode(bytes: &[u8; HEADER_PLAINTEXT_LEN]) -> Option<Self> {
        let (ratchet_public, rest) = bytes.split_first_chunk::<KEY_LEN>()?;
        let (pn, rest) = rest.split_first_chunk::<4>()?;
        let (n, body_len) = rest.split_first_chunk::<4>()?;
        let body_len: &[u8; 4] = body_len.try_into().ok()?;
        Some(Self {
            ratchet_public: *ratchet_public,
            pn: u32::from_be_bytes(*pn),
            n: u32::from_be_bytes(*n),
            body_len: u32::from_be_bytes(*body_len),
        })
    }

    /// Encrypts the header under `header_key` and appends it to `out`.
    pub(super) fn seal<R: CryptoRng + ?Sized>(
        &self,
        header_key: &Key,
        ad: &[u8],
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<(), RatchetError> {
        // Header keys last a whole chain, so the nonce must be random, not derived.
        let mut nonce = XNonce::default();
        rng.fill_bytes(&mut nonce);
        let start = out.len();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(self.encode().as_slice());
        let body = out
            .get_mut(start + NONCE_LEN..)
            .ok_or(RatchetError::Internal)?;
        let tag = XChaCha20Poly1305::new(header_key.into())
            .encrypt_inout_detached(&nonce, ad, body.into())
            .map_err(|_| RatchetError::Internal)?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Tries to decrypt an encrypted header with one header key.
    pub(super) fn open(header_key: &Key, encrypted: &[u8; HEADER_LEN], ad: &[u8]) -> Option<Self> {
        let (nonce, rest) = encrypted.split_first_chunk::<NONCE_LEN>()?;
        let (ciphertext, tag) = rest.split_last_chunk::<TAG_LEN>()?;
        let mut plaintext = Zeroizing::new([0u8; HEADER_PLAINTEXT_LEN]);
        let buf = InOutBuf::new(ciphertext, plaintext.as_mut_slice()).ok()?;
        XChaCha20Poly1305::new(header_key.into())
            .decrypt_inout_detached(nonce.into(), ad, buf, tag.into())
            .ok()?;
        Self::decode(&plaintext)
    }
}

/// Splits a message into its encrypted header and body.
pub(super) fn split_message(message: &[u8]) -> Result<(&[u8; HEADER_LEN], &[u8]), RatchetError> {
    let (header, body) = message
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(RatchetError::Malformed)?;
    if body.len() < TAG_LEN {
        return Err(RatchetError::Malformed);
    }
    Ok((header, body))
}

/// The body's associated data: the caller's `ad` followed by the encrypted header,
/// which binds the body to the exact header bytes it travelled with.
pub(super) fn body_ad(ad: &[u8], encrypted_header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ad.len() + encrypted_header.len());
    out.extend_from_slice(ad);
    out.extend_from_slice(encrypted_header);
    out
}

/// Encrypts `plaintext` under `message_key` and appends the body to `out`.
pub(super) fn seal_body(
    message_key: &Key,
    body_ad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RatchetError> {
    let (cipher, nonce) = message_cipher(message_key)?;
    let start = out.len();
    out.extend_from_slice(plaintext);
    let body = out.get_mut(start..).ok_or(RatchetError::Internal)?;
    let tag = cipher
        .encrypt_inout_detached(&nonce, body_ad, body.into())
        .map_err(|_| RatchetError::MessageTooLong)?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Decrypts a body under `message_key`.
pub(super) fn open_body(
    message_key: &Key,
    body_ad: &[u8],
    body: &[u8],
) -> Result<Zeroizing<Vec<u8>>, RatchetError> {
    let (ciphertext, tag) = body
        .split_last_chunk::<TAG_LEN>()
        .ok_or(RatchetError::Malformed)?;
    let (cipher, nonce) = message_cipher(message_key)?;
    let mut plaintext = Zeroizing::new(vec![0u8; ciphertext.len()]);
    let buf =
        InOutBuf::new(ciphertext, plaintext.as_mut_slice()).map_err(|_| RatchetError::Internal)?;
    cipher
        .decrypt_inout_detached(&nonce, body_ad, buf, tag.into())
        .map_err(|_| RatchetError::BodyAuthentication)?;
    Ok(plaintext)
}

//! The handshake's symmetric machinery: transcript hash, key derivation, the
//! single-use AEAD, key-confirmation MACs and checked Diffie-Hellman.

use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce};
use hkdf::HkdfExtract;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::{HandshakeError, MAC_LEN, PROTOCOL_LABEL, TAG_LEN};

/// A 32-byte secret, boxed so that moving the state that holds it does not leave
/// copies behind, and zeroized on drop.
pub(super) type Secret = Box<Zeroizing<[u8; 32]>>;

/// The running transcript hash `h`.
///
/// It covers only public data (the prologue and the bytes on the wire), so it is not
/// zeroized; it is still never printed, since the prologue may name an address.
#[derive(Clone)]
pub(super) struct Transcript([u8; 32]);

impl Transcript {
    /// `h0 = SHA-256(PROTOCOL_LABEL || prologue)`.
    pub(super) fn new(prologue: &[u8]) -> Self {
        Self(
            Sha256::new()
                .chain_update(PROTOCOL_LABEL)
                .chain_update(prologue)
                .finalize()
                .into(),
        )
    }

    /// `h = SHA-256(h || bytes)`.
    pub(super) fn mix(&mut self, bytes: &[u8]) {
        self.0 = Sha256::new()
            .chain_update(self.0)
            .chain_update(bytes)
            .finalize()
            .into();
    }

    pub(super) fn hash(&self) -> &[u8; 32] {
        &self.0
    }
}

/// HKDF-SHA-256 with the given salt, the concatenation of `ikm` as input keying
/// material and the concatenation of `info` as info, expanded to `K` keys of 32 bytes
/// each, in order.
pub(super) fn derive<const K: usize>(
    salt: &[u8],
    ikm: &[&[u8]],
    info: &[&[u8]],
) -> Result<[Secret; K], HandshakeError> {
    let mut extract = HkdfExtract::<Sha256>::new(Some(salt));
    for part in ikm {
        extract.input_ikm(part);
    }
    let (mut prk, hkdf) = extract.finalize();
    prk.as_mut_slice().zeroize();

    let mut okm = Zeroizing::new(vec![0u8; 32 * K]);
    // Expansion only fails for outputs longer than 255 hash blocks; K is at most 4.
    hkdf.expand_multi_info(info, &mut okm)
        .map_err(|_| HandshakeError::Internal)?;

    let mut keys: [Secret; K] = core::array::from_fn(|_| Box::new(Zeroizing::new([0u8; 32])));
    for (key, chunk) in keys.iter_mut().zip(okm.chunks_exact(32)) {
        key.copy_from_slice(chunk);
    }
    Ok(keys)
}

/// ChaCha20-Poly1305 with an all-zero nonce. That nonce is safe only because every
/// key passed here is derived for, and used on, exactly one message: `k1` for the
/// responder's payload in msg2 and `k3` for the initiator's payload in msg3.
fn cipher(key: &[u8; 32]) -> (ChaCha20Poly1305, Nonce) {
    (ChaCha20Poly1305::new(key.into()), Nonce::default())
}

/// Encrypts `buf` in place under a single-use key and returns the tag.
pub(super) fn seal(
    key: &[u8; 32],
    aad: &[u8; 32],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], HandshakeError> {
    let (aead, nonce) = cipher(key);
    let tag = aead
        .encrypt_inout_detached(&nonce, aad, buf.into())
        .map_err(|_| HandshakeError::Internal)?;
    Ok(tag.into())
}

/// Decrypts `buf` in place under a single-use key, checking `tag`.
pub(super) fn open(
    key: &[u8; 32],
    aad: &[u8; 32],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), HandshakeError> {
    let (aead, nonce) = cipher(key);
    aead.decrypt_inout_detached(&nonce, aad, buf.into(), tag.into())
        .map_err(|_| HandshakeError::Decrypt)
}

/// HMAC-SHA-256 of the transcript hash: the key-confirmation tag.
pub(super) fn confirmation_tag(
    key: &[u8; 32],
    transcript: &[u8; 32],
) -> Result<[u8; MAC_LEN], HandshakeError> {
    // HMAC accepts keys of any length; the error path exists only in the signature.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| HandshakeError::Internal)?;
    mac.update(transcript);
    Ok(mac.finalize().into_bytes().into())
}

/// Checks a key-confirmation tag in constant time.
pub(super) fn check_confirmation(
    key: &[u8; 32],
    transcript: &[u8; 32],
    tag: &[u8; MAC_LEN],
) -> Result<(), HandshakeError> {
    let expected = confirmation_tag(key, transcript)?;
    if bool::from(expected.ct_eq(tag)) {
        Ok(())
    } else {
        Err(HandshakeError::BadMac)
    }
}

/// X25519, refusing outputs that do not depend on our secret (the peer sent a
/// low-order point, so the result would be known to anyone).
pub(super) fn dh(
    secret: &StaticSecret,
    public: &PublicKey,
) -> Result<SharedSecret, HandshakeError> {
    let shared = secret.diffie_hellman(public);
    if shared.was_contributory() {
        Ok(shared)
    } else {
        Err(HandshakeError::WeakKey)
    }
}

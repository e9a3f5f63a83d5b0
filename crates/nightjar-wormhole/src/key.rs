//! The wormhole's cryptography, as magic-wormhole's client protocol defines it:
//!
//! - both sides run symmetric SPAKE2 (Ed25519 group) with the code as password
//!   and the application id as identity, exchanging `{"pake_v1": HEX}` in phase
//!   `pake`;
//! - every later message of phase `P` from side `S` is sealed with
//!   `HKDF-SHA256(ikm = key, salt = none, info = "wormhole:phase:" ‖ SHA256(S) ‖
//!   SHA256(P))`, in NaCl's secretbox (XSalsa20-Poly1305) with a random 24-byte
//!   nonce in front;
//! - the first such message is phase `version`; failing to open the peer's means
//!   the two sides hold different keys: the code was wrong;
//! - the verifier, `HKDF-SHA256(key, "wormhole:verifier")`, lets people compare
//!   that they share the key.

use std::fmt;

use crypto_secretbox::aead::Aead;
use crypto_secretbox::{KeyInit, Nonce, XSalsa20Poly1305};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::code::Code;

/// Length of the nonce in front of every sealed message.
pub const NONCE_LEN: usize = 24;
/// Bytes a sealed message adds to its plaintext: nonce and Poly1305 tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;

/// What went wrong in the key exchange or with a sealed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The peer's `pake` message is not the JSON object with a SPAKE2 message it
    /// should be.
    #[error("the other side's key exchange message is malformed")]
    BadPakeMessage,
    /// A sealed message did not open: wrong key, or altered in transit.
    #[error("a message did not decrypt")]
    Decrypt,
}

/// The `pake` phase body: `{"pake_v1": HEX}`.
#[derive(Serialize, Deserialize)]
struct PakeBody {
    pake_v1: String,
}

/// Our half of a SPAKE2 exchange in progress.
pub struct Pake {
    spake: Spake2<Ed25519Group>,
}

impl Pake {
    /// Starts the exchange; returns the state and the body of our `pake` message.
    /// SPAKE2's scalar comes from the operating system's generator.
    pub fn start(code: &Code, app_id: &str) -> (Self, Vec<u8>) {
        let (spake, message) = Spake2::<Ed25519Group>::start_symmetric(
            &Password::new(code.as_str().as_bytes()),
            &Identity::new(app_id.as_bytes()),
        );
        let body = PakeBody {
            pake_v1: data_encoding::HEXLOWER.encode(&message),
        };
        // Serialising a struct of one string cannot fail; an empty body would be
        // refused by the peer as malformed rather than go unnoticed.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        (Self { spake }, body)
    }

    /// Finishes the exchange with the peer's `pake` body. A wrong code is not
    /// detected here: it yields a key, just not the peer's.
    pub fn finish(self, peer_body: &[u8]) -> Result<SharedKey, KeyError> {
        let body: PakeBody =
            serde_json::from_slice(peer_body).map_err(|_| KeyError::BadPakeMessage)?;
        let message = data_encoding::HEXLOWER_PERMISSIVE
            .decode(body.pake_v1.as_bytes())
            .map_err(|_| KeyError::BadPakeMessage)?;
        let key = Zeroizing::new(
            self.spake
                .finish(&message)
                .map_err(|_| KeyError::BadPakeMessage)?,
        );
        let key: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadPakeMessage)?;
        Ok(SharedKey::from_bytes(key))
    }
}

impl fmt::Debug for Pake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pake").finish_non_exhaustive()
    }
}

/// The key both sides hold after SPAKE2 (if they typed the same code).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedKey(Box<[u8; 32]>);

impl SharedKey {
    /// Wraps 32 key bytes (tests and vectors; normally from [`Pake::finish`]).
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let key = Self(Box::new(bytes));
        bytes.zeroize();
        key
    }

    /// The key sealing messages of `phase` sent by `side`.
    pub fn phase_key(&self, side: &str, phase: &str) -> PhaseKey {
        let mut info = Vec::with_capacity(15 + 64);
        info.extend_from_slice(b"wormhole:phase:");
        info.extend_from_slice(&Sha256::digest(side.as_bytes()));
        info.extend_from_slice(&Sha256::digest(phase.as_bytes()));
        PhaseKey(Box::new(self.derive(&info)))
    }

    /// The verifier: equal on both sides exactly when the keys are equal. Public:
    /// it may be shown to people to compare.
    pub fn verifier(&self) -> [u8; 32] {
        self.derive(b"wormhole:verifier")
    }

    /// HKDF-SHA256 of the key for `purpose`, as the reference client's
    /// `derive_key` computes it (no salt, 32 bytes).
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        // 32 bytes are far below HKDF-SHA256's limit of 255 × 32, so expanding
        // cannot fail; the zero output on a failure would not decrypt anything.
        let _ = Hkdf::<Sha256>::new(None, self.0.as_slice()).expand(purpose, &mut out);
        out
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(<hidden>)")
    }
}

/// The key of one phase from one side.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PhaseKey(Box<[u8; 32]>);

impl PhaseKey {
    /// Seals `plaintext` with a fresh random nonce: `nonce ‖ tag ‖ ciphertext`.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        Ok(self.seal_with_nonce(plaintext, &nonce))
    }

    /// Seals with the given nonce, which must never repeat under this key.
    pub fn seal_with_nonce(&self, plaintext: &[u8], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
        let cipher = XSalsa20Poly1305::new(self.0.as_slice().into());
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(nonce);
        // XSalsa20-Poly1305 has no length limit a message here could reach; an
        // empty ciphertext on failure would not open on the other side.
        let sealed = cipher
            .encrypt(Nonce::from_slice(nonce), plaintext)
            .unwrap_or_default();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a sealed message.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(KeyError::Decrypt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let cipher = XSalsa20Poly1305::new(self.0.as_slice().into());
        cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| KeyError::Decrypt)
    }
}

impl fmt::Debug for PhaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhaseKey(<hidden>)")
    }
}

/// Renders a verifier for people to compare, as the reference CLI shows it.
pub fn verifier_hex(verifier: &[u8; 32]) -> String {
    data_encoding::HEXLOWER.encode(verifier)
}

#[cfg(test)]
mod tests {
    //! The vectors were computed with the reference client's own functions, in the
    //! virtualenv `scripts/setup.sh` creates:
    //!
    //! ```text
    //! ~/.cache/nightjar/python/bin/python -c '
    //! from wormhole._key import derive_phase_key, derive_key
    //! from nacl.secret import SecretBox
    //! key = bytes(range(32))
    //! print(derive_phase_key(key, "aaaaaaaaaa", "version").hex())
    //! print(derive_phase_key(key, "bbbbbbbbbb", "0").hex())
    //! print(derive_key(key, b"wormhole:verifier").hex())
    //! pk = derive_phase_key(key, "aaaaaaaaaa", "0")
    //! print(SecretBox(pk).encrypt(b"{\"offer\": {\"message\": \"hi\"}}", bytes([0x24]*24)).hex())'
    //! ```

    use super::*;

    fn key() -> SharedKey {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        SharedKey::from_bytes(bytes)
    }

    fn hex(bytes: &[u8]) -> String {
        data_encoding::HEXLOWER.encode(bytes)
    }

    const SEALED: &str = "242424242424242424242424242424242424242424242424\
        0640e369e5adfdb00ea4774989736cf7c7de9b3862aadc1e7a5340720cd853bc12751fdf014e4d329960d429";

    #[test]
    fn phase_keys_match_the_reference_client() {
        assert_eq!(
            hex(&key().phase_key("aaaaaaaaaa", "version").0[..]),
            "db65b44c89ebb7f29f964098157cccd4de30e72b26b91fa671f9dfc5d7314c99"
        );
        assert_eq!(
            hex(&key().phase_key("bbbbbbbbbb", "0").0[..]),
            "3e04a26015168a75e14f7742709dd01eebe3f507e078ca18fcec82383a6b640b"
        );
    }

    #[test]
    fn verifier_matches_the_reference_client() {
        assert_eq!(
            verifier_hex(&key().verifier()),
            "116c6e41d0faf2886a5b488079748585db2c4d6d151cca6c580055e1bd176459"
        );
    }

    #[test]
    fn secretbox_matches_the_reference_client() {
        let phase_key = key().phase_key("aaaaaaaaaa", "0");
        let plaintext = br#"{"offer": {"message": "hi"}}"#;
        assert_eq!(
            hex(&phase_key.seal_with_nonce(plaintext, &[0x24; 24])),
            SEALED
        );
        let sealed = data_encoding::HEXLOWER.decode(SEALED.as_bytes()).unwrap();
        assert_eq!(phase_key.open(&sealed).unwrap(), plaintext);
    }

    #[test]
    fn tampering_and_wrong_keys_are_refused() {
        let phase_key = key().phase_key("aaaaaaaaaa", "0");
        let sealed = phase_key.seal(b"contact").unwrap();
        assert_eq!(phase_key.open(&sealed).unwrap(), b"contact");
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 1;
            assert_eq!(phase_key.open(&altered), Err(KeyError::Decrypt));
        }
        let other_side = key().phase_key("bbbbbbbbbb", "0");
        assert_eq!(other_side.open(&sealed), Err(KeyError::Decrypt));
        assert_eq!(
            phase_key.open(&sealed[..SEAL_OVERHEAD - 1]),
            Err(KeyError::Decrypt)
        );
    }

    #[test]
    fn pake_agrees_only_on_the_same_code() {
        let code = Code::parse("7-crossover-clockwork").unwrap();
        let (a, msg_a) = Pake::start(&code, "app");
        let (b, msg_b) = Pake::start(&code, "app");
        let (ka, kb) = (a.finish(&msg_b).unwrap(), b.finish(&msg_a).unwrap());
        assert_eq!(ka.verifier(), kb.verifier());

        let wrong = Code::parse("7-crossover-clockwerk").unwrap();
        let (a, msg_a) = Pake::start(&code, "app");
        let (c, msg_c) = Pake::start(&wrong, "app");
        assert_ne!(
            a.finish(&msg_c).unwrap().verifier(),
            c.finish(&msg_a).unwrap().verifier()
        );

        let (d, _) = Pake::start(&code, "app");
        assert_eq!(d.finish(b"{}").unwrap_err(), KeyError::BadPakeMessage);
        let (e, _) = Pake::start(&code, "app");
        assert_eq!(
            e.finish(br#"{"pake_v1": "00"}"#).unwrap_err(),
            KeyError::BadPakeMessage
        );
    }

    #[test]
    fn debug_hides_keys() {
        let shown = format!("{:?} {:?}", key(), key().phase_key("a", "0"));
        assert!(!shown.contains("0, 1, 2"));
        assert!(shown.contains("hidden"));
    }
}

//! Long-term identity keys.
//!
//! A profile has two long-term keys: an Ed25519 key that *is* the identity (it is what
//! addresses carry and fingerprints show) and an X25519 key used in the handshake's
//! triple Diffie-Hellman. The X25519 key is certified by the Ed25519 key, so that an
//! address only needs to carry 32 bytes of identity. The certificate says nothing
//! about any session, which keeps conversations deniable.

use core::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use sha2::{Digest, Sha512};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::Zeroizing;

use crate::locked::LockedKey;

/// Domain label signed together with the X25519 key in an identity certificate.
pub const CERT_LABEL: &[u8] = b"nightjar/v1/identity-cert";
/// Domain label hashed before the key when computing a fingerprint.
pub const FINGERPRINT_LABEL: &[u8] = b"nightjar/v1/fingerprint";
/// How many times the fingerprint hash is iterated. It makes grinding for a key whose
/// fingerprint matches someone else's in the few groups people actually compare
/// about four thousand times more expensive, at ~1 ms per fingerprint.
pub const FINGERPRINT_ITERATIONS: u32 = 4096;
/// Length of [`IdentityCert::to_bytes`]: signing key, X25519 key, signature.
pub const CERT_LEN: usize = 32 + 32 + 64;
/// Length of [`IdentityKeyPair::to_secret_bytes`].
pub const SECRET_LEN: usize = 64;

/// Errors from identity keys and certificates.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The bytes have the wrong length.
    #[error("identity data has the wrong length ({0} bytes)")]
    Length(usize),
    /// The bytes are not a valid Ed25519 public key.
    #[error("not a valid identity key")]
    BadKey,
    /// The certificate's signature does not verify.
    #[error("identity certificate signature is invalid")]
    BadSignature,
}

/// A profile's long-term secret keys.
///
/// Both live in the locked region ([`crate::locked`]); the key objects that sign
/// and compute Diffie-Hellman are built from them for each use and zeroize
/// themselves when dropped. The public half is kept beside them.
pub struct IdentityKeyPair {
    /// The Ed25519 seed.
    signing: LockedKey,
    /// The X25519 scalar.
    dh: LockedKey,
    public: PublicIdentity,
}

impl IdentityKeyPair {
    /// Generates a fresh identity.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_keys(LockedKey::random(rng), LockedKey::random(rng))
    }

    /// Restores an identity from [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let bytes: &[u8; SECRET_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::Length(bytes.len()))?;
        let (seed, dh) = bytes.split_at(32);
        Ok(Self::from_keys(
            LockedKey::new(|key| key.copy_from_slice(seed)),
            LockedKey::new(|key| key.copy_from_slice(dh)),
        ))
    }

    fn from_keys(signing: LockedKey, dh: LockedKey) -> Self {
        let public = PublicIdentity {
            signing: signing.with(|seed| SigningKey::from_bytes(seed).verifying_key()),
            dh: dh.with(|scalar| X25519Public::from(&StaticSecret::from(*scalar))),
        };
        Self {
            signing,
            dh,
            public,
        }
    }

    /// The secret keys as bytes (Ed25519 seed, then X25519 scalar), for encrypted storage.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        self.signing.with(|seed| out[..32].copy_from_slice(seed));
        self.dh.with(|scalar| out[32..].copy_from_slice(scalar));
        out
    }

    /// The public half, with the X25519 key certified.
    pub fn public(&self) -> PublicIdentity {
        self.public
    }

    /// A certificate binding the X25519 key to the Ed25519 identity.
    pub fn certificate(&self) -> IdentityCert {
        let public = self.public();
        let signature = self.sign(&cert_message(&public.dh));
        IdentityCert { public, signature }
    }

    /// Signs `message` with the identity key. Callers must prefix their own domain
    /// label so a signature made for one purpose is never valid for another.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing
            .with(|seed| SigningKey::from_bytes(seed).sign(message))
    }

    /// The X25519 secret, for the handshake's Diffie-Hellman computations: a
    /// copy on the heap that zeroizes itself when dropped.
    pub(crate) fn dh_secret(&self) -> Box<StaticSecret> {
        self.dh.with(|scalar| Box::new(StaticSecret::from(*scalar)))
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// Someone's public identity: the Ed25519 key and the X25519 key it certified.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicIdentity {
    signing: VerifyingKey,
    dh: X25519Public,
}

impl PublicIdentity {
    /// The Ed25519 identity key.
    pub fn signing_key(&self) -> &VerifyingKey {
        &self.signing
    }

    /// The X25519 key used in handshakes.
    pub fn dh_key(&self) -> &X25519Public {
        &self.dh
    }

    /// The fingerprint people compare to verify this identity.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.signing)
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity({})", self.fingerprint())
    }
}

/// An identity certificate as received from someone: not usable until checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UnverifiedCert {
    signing: [u8; 32],
    dh: [u8; 32],
    signature: [u8; 64],
}

impl UnverifiedCert {
    /// Parses the [`CERT_LEN`]-byte encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let bytes: &[u8; CERT_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::Length(bytes.len()))?;
        let mut cert = Self {
            signing: [0; 32],
            dh: [0; 32],
            signature: [0; 64],
        };
        cert.signing.copy_from_slice(&bytes[..32]);
        cert.dh.copy_from_slice(&bytes[32..64]);
        cert.signature.copy_from_slice(&bytes[64..]);
        Ok(cert)
    }

    /// The Ed25519 key this certificate claims, before any check: only for looking
    /// up which contact it claims to be.
    pub fn claimed_signing_key(&self) -> &[u8; 32] {
        &self.signing
    }

    /// Verifies the signature; only then does the identity become usable.
    pub fn check(self) -> Result<IdentityCert, IdentityError> {
        let signing = VerifyingKey::from_bytes(&self.signing).map_err(|_| IdentityError::BadKey)?;
        if signing.is_weak() {
            return Err(IdentityError::BadKey);
        }
        let dh = X25519Public::from(self.dh);
        let signature = Signature::from_bytes(&self.signature);
        signing
            .verify_strict(&cert_message(&dh), &signature)
            .map_err(|_| IdentityError::BadSignature)?;
        Ok(IdentityCert {
            public: PublicIdentity { signing, dh },
            signature,
        })
    }
}

impl fmt::Debug for UnverifiedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnverifiedCert(..)")
    }
}

/// A checked identity certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityCert {
    public: PublicIdentity,
    signature: Signature,
}

impl IdentityCert {
    /// The identity this certificate proves.
    pub fn identity(&self) -> &PublicIdentity {
        &self.public
    }

    /// The [`CERT_LEN`]-byte encoding.
    pub fn to_bytes(&self) -> [u8; CERT_LEN] {
        let mut out = [0u8; CERT_LEN];
        out[..32].copy_from_slice(self.public.signing.as_bytes());
        out[32..64].copy_from_slice(self.public.dh.as_bytes());
        out[64..].copy_from_slice(&self.signature.to_bytes());
        out
    }
}

impl fmt::Debug for IdentityCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityCert({:?})", self.public)
    }
}

fn cert_message(dh: &X25519Public) -> [u8; CERT_LABEL.len() + 32] {
    let mut msg = [0u8; CERT_LABEL.len() + 32];
    msg[..CERT_LABEL.len()].copy_from_slice(CERT_LABEL);
    msg[CERT_LABEL.len()..].copy_from_slice(dh.as_bytes());
    msg
}

/// Sixty decimal digits derived from an identity key, shown as twelve groups of five,
/// so two people can read them to each other and compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u32; 12]);

impl Fingerprint {
    /// Number of five-digit groups.
    pub const GROUPS: usize = 12;

    /// Computes the fingerprint of an Ed25519 identity key: SHA-512 of the label and
    /// the key, iterated [`FINGERPRINT_ITERATIONS`] times (each round hashes the
    /// previous digest and the key again), then twelve 5-byte big-endian chunks, each
    /// reduced modulo 100000.
    pub fn of(key: &VerifyingKey) -> Self {
        let mut digest = Sha512::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(key.as_bytes())
            .finalize();
        for _ in 1..FINGERPRINT_ITERATIONS {
            digest = Sha512::new()
                .chain_update(digest)
                .chain_update(key.as_bytes())
                .finalize();
        }
        let mut groups = [0u32; Self::GROUPS];
        for (group, chunk) in groups.iter_mut().zip(digest.chunks_exact(5)) {
            let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            // A 40-bit value modulo 100000 always fits in u32.
            *group = u32::try_from(value % 100_000).unwrap_or(0);
        }
        Self(groups)
    }

    /// The twelve groups as numbers below 100000.
    pub fn groups(&self) -> &[u32; 12] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{group:05}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn secret_bytes_round_trip() {
        let id = IdentityKeyPair::generate(&mut rng());
        let restored = IdentityKeyPair::from_secret_bytes(id.to_secret_bytes().as_ref()).unwrap();
        assert_eq!(id.public(), restored.public());
        assert!(IdentityKeyPair::from_secret_bytes(&[0u8; 63]).is_err());
    }

    #[test]
    fn certificate_round_trip_and_tamper() {
        let id = IdentityKeyPair::generate(&mut rng());
        let bytes = id.certificate().to_bytes();
        let cert = UnverifiedCert::from_bytes(&bytes).unwrap().check().unwrap();
        assert_eq!(*cert.identity(), id.public());
        for bit in 0..CERT_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            let parsed = UnverifiedCert::from_bytes(&bad).unwrap();
            assert!(parsed.check().is_err(), "bit {bit} flipped was accepted");
        }
    }

    #[test]
    fn fingerprint_shape_and_stability() {
        let mut r = rng();
        let a = IdentityKeyPair::generate(&mut r).public();
        let b = IdentityKeyPair::generate(&mut r).public();
        let text = a.fingerprint().to_string();
        assert_eq!(text.len(), 12 * 5 + 11);
        assert!(
            text.split(' ')
                .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
        );
        assert_eq!(a.fingerprint(), a.fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn fingerprint_known_answer() {
        // The Ed25519 base point as a fixed key; the expected digits were computed
        // independently with Python's hashlib from the definition in `Fingerprint::of`.
        let mut base = [0x66u8; 32];
        base[0] = 0x58;
        let key = VerifyingKey::from_bytes(&base).unwrap();
        assert_eq!(
            Fingerprint::of(&key).to_string(),
            "80320 23366 74217 06587 05944 89415 04443 11489 33736 31362 73435 71265"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let id = IdentityKeyPair::generate(&mut rng());
        let secret = id.to_secret_bytes();
        let shown = format!("{id:?}");
        let hex: String = secret[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex));
        assert!(shown.contains("PublicIdentity"));
    }
}

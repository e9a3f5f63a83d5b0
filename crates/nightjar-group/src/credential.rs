//! Members' MLS credentials, bound to their nightjar identities.
//!
//! Every group membership has its own Ed25519 signing key (so two groups cannot
//! link a member by it). The MLS basic credential's identity is
//!
//! ```text
//! nightjar identity key (32) ‖ Ed25519 signature by it (64)
//!     over  "nightjar group member v1" ‖ the membership's signing key (32)
//! ```

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use nightjar_proto::identity::IdentityKeyPair;
use openmls::prelude::{BasicCredential, Credential, CredentialWithKey};
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use rand_core::CryptoRng;

use crate::GroupError;

const LABEL: &[u8] = b"nightjar group member v1";

/// A nightjar identity key (Ed25519, 32 bytes), as members are known.
pub type IdentityKey = [u8; 32];

/// The signing key of one membership.
pub(crate) struct MemberKey(SigningKey);

impl MemberKey {
    pub(crate) fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self(SigningKey::from_bytes(&seed))
    }

    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    pub(crate) fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The public half.
    pub(crate) fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The credential that ties this key to `identity`.
    pub(crate) fn credential(&self, identity: &IdentityKeyPair) -> CredentialWithKey {
        let public = self.public();
        let signature = identity.sign(&signed(&public));
        let mut id = identity.public().signing_key().to_bytes().to_vec();
        id.extend_from_slice(&signature.to_bytes());
        CredentialWithKey {
            credential: BasicCredential::new(id).into(),
            signature_key: public.to_vec().into(),
        }
    }
}

impl Signer for MemberKey {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.0.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

fn signed(signing_key: &[u8]) -> Vec<u8> {
    let mut message = LABEL.to_vec();
    message.extend_from_slice(signing_key);
    message
}

/// The identity a credential names, if it proves it: the identity's signature
/// over the membership's signing key must hold.
pub(crate) fn vouched(
    credential: &Credential,
    signing_key: &[u8],
) -> Result<IdentityKey, GroupError> {
    let basic =
        BasicCredential::try_from(credential.clone()).map_err(|_| GroupError::BadCredential)?;
    let (key, signature) = basic
        .identity()
        .split_first_chunk::<32>()
        .ok_or(GroupError::BadCredential)?;
    let signature: &[u8; 64] = signature
        .try_into()
        .map_err(|_| GroupError::BadCredential)?;
    let verifying = VerifyingKey::from_bytes(key).map_err(|_| GroupError::BadCredential)?;
    verifying
        .verify(&signed(signing_key), &Signature::from_bytes(signature))
        .map_err(|_| GroupError::BadCredential)?;
    Ok(*key)
}

/// The identity a credential names, without checking it: for credentials that
/// were checked when their member joined.
pub(crate) fn named(credential: &Credential) -> Option<IdentityKey> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    basic.identity().first_chunk::<32>().copied()
}

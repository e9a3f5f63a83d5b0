//! Conversions between nightjar's key types and Arti's.

use tor_hscrypto::pk::{HsClientDescEncKey, HsClientDescEncSecretKey, HsId, HsIdKeypair};
use tor_llcrypto::pk::{curve25519, ed25519};
use zeroize::Zeroizing;

use crate::{ClientAuthPublic, ClientAuthSecret, OnionAddress, ServiceKey};

/// The service identity keypair for `key`, and the address it gives.
///
/// A seed is expanded as RFC 8032 does (SHA-512, clamped scalar and prefix), which
/// is what C tor stores in `hs_ed25519_secret_key` too, so the same seed gives the
/// same address under either backend.
pub(super) fn service_keypair(key: &ServiceKey) -> (HsIdKeypair, OnionAddress) {
    let seed: Zeroizing<[u8; 32]> = match key {
        ServiceKey::Seed(seed) => seed.clone(),
        ServiceKey::Ephemeral => {
            let kp = ed25519::Keypair::generate(&mut tor_llcrypto::rng::CautiousRng);
            Zeroizing::new(kp.to_bytes())
        }
    };
    let keypair = ed25519::Keypair::from_bytes(&seed);
    let expanded = ed25519::ExpandedKeypair::from(&keypair);
    let address = OnionAddress::from_public_key(expanded.public().to_bytes());
    (HsIdKeypair::from(expanded), address)
}

/// Arti's name for the service at `address`.
pub(super) fn hsid(address: &OnionAddress) -> HsId {
    HsId::from(*address.public_key())
}

/// A client's public key as Arti's restricted-discovery configuration wants it.
pub(super) fn client_public(key: &ClientAuthPublic) -> HsClientDescEncKey {
    HsClientDescEncKey::from(curve25519::PublicKey::from(key.0))
}

/// A client's secret key for Arti's keystore.
pub(super) fn client_secret(key: &ClientAuthSecret) -> HsClientDescEncSecretKey {
    HsClientDescEncSecretKey::from(curve25519::StaticSecret::from(key.0))
}

/// The public half of `key`, to tell which key Arti's keystore holds.
pub(super) fn client_public_of(key: &ClientAuthSecret) -> [u8; 32] {
    let secret = curve25519::StaticSecret::from(key.0);
    curve25519::PublicKey::from(&secret).to_bytes()
}

/// A public key nobody holds the secret of.
///
/// Arti refuses restricted discovery with an empty client list, but "nobody may
/// discover this service" is a state nightjar needs (an endpoint whose last contact
/// was removed). A descriptor encrypted to a key whose secret was thrown away at
/// once is readable by no one.
pub(super) fn nobody() -> ClientAuthPublic {
    let secret = curve25519::StaticSecret::random_from_rng(&mut tor_llcrypto::rng::CautiousRng);
    ClientAuthPublic(curve25519::PublicKey::from(&secret).to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    // RFC 8032, section 7.1, test 1: this secret key has this public key, and
    // tor's test suite gives the address of that public key.
    #[test]
    fn seed_expands_as_rfc8032() {
        let seed = hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let (_, address) = service_keypair(&ServiceKey::Seed(Zeroizing::new(seed)));
        assert_eq!(
            address.public_key(),
            &hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        assert_eq!(
            address.to_string(),
            "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
        );
    }

    #[test]
    fn keypair_and_address_agree() {
        let (keypair, address) = service_keypair(&ServiceKey::Ephemeral);
        let id: HsId = tor_hscrypto::pk::HsIdKey::from(&keypair).id();
        assert_eq!(<[u8; 32]>::from(id), *address.public_key());
        assert_eq!(hsid(&address), id);
    }

    #[test]
    fn ephemeral_keys_differ() {
        let (_, a) = service_keypair(&ServiceKey::Ephemeral);
        let (_, b) = service_keypair(&ServiceKey::Ephemeral);
        assert_ne!(a, b);
        assert_ne!(nobody(), nobody());
    }

    #[test]
    fn client_public_matches_secret() {
        let secret = ClientAuthSecret([7; 32]);
        let public = ClientAuthPublic(client_public_of(&secret));
        let from_secret = HsClientDescEncKey::from(curve25519::PublicKey::from(
            &curve25519::StaticSecret::from(secret.0),
        ));
        assert_eq!(client_public(&public), from_secret);
    }
}

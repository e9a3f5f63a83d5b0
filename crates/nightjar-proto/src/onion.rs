//! Tor v3 onion service addresses.
//!
//! An address is the service's Ed25519 public key with a two-byte checksum and a
//! version byte, in lowercase base32: 56 characters, then `.onion`
//! (rend-spec-v3, "Encoding onion addresses").

use core::fmt;
use core::str::FromStr;

use data_encoding::BASE32_NOPAD;
use sha3::{Digest, Sha3_256};

/// The version byte of v3 onion addresses.
const VERSION: u8 = 3;
/// Length of the base32 part of an address, without `.onion`.
pub const ONION_LEN: usize = 56;

/// Errors from parsing an onion address.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnionError {
    /// Not 56 base32 characters (with or without `.onion`).
    #[error("an onion address has 56 letters and digits, optionally followed by .onion")]
    Length,
    /// A character outside the base32 alphabet.
    #[error("an onion address uses only the letters a-z and the digits 2-7")]
    Alphabet,
    /// The checksum does not match: a typo, most likely.
    #[error("the onion address has a typo (its checksum does not match)")]
    Checksum,
    /// Not a version 3 address.
    #[error("only version 3 onion addresses are supported")]
    Version,
}

/// A v3 onion service address: the service's Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OnionAddress([u8; 32]);

impl OnionAddress {
    /// The address of the service with this Ed25519 public key.
    pub fn from_public_key(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The service's Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 56 base32 characters, without `.onion` (what tor's control port wants).
    pub fn service_id(&self) -> String {
        let mut raw = [0u8; 35];
        raw[..32].copy_from_slice(&self.0);
        raw[32..34].copy_from_slice(&checksum(&self.0));
        raw[34] = VERSION;
        BASE32_NOPAD.encode(&raw).to_ascii_lowercase()
    }
}

fn checksum(key: &[u8; 32]) -> [u8; 2] {
    let digest = Sha3_256::new()
        .chain_update(b".onion checksum")
        .chain_update(key)
        .chain_update([VERSION])
        .finalize();
    [digest[0], digest[1]]
}

impl FromStr for OnionAddress {
    type Err = OnionError;

    /// Accepts `xxxx.onion` or the bare 56 characters, in either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let id = s
            .strip_suffix(".onion")
            .or_else(|| s.strip_suffix(".ONION"))
            .unwrap_or(s);
        if id.len() != ONION_LEN {
            return Err(OnionError::Length);
        }
        let raw = BASE32_NOPAD
            .decode(id.to_ascii_uppercase().as_bytes())
            .map_err(|_| OnionError::Alphabet)?;
        let raw: [u8; 35] = raw.try_into().map_err(|_| OnionError::Length)?;
        if raw[34] != VERSION {
            return Err(OnionError::Version);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[..32]);
        if raw[32..34] != checksum(&key) {
            return Err(OnionError::Checksum);
        }
        Ok(Self(key))
    }
}

impl fmt::Display for OnionAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.onion", self.service_id())
    }
}

/// Onion addresses identify people here, so `Debug` (which ends up in logs) shows
/// only that there is one.
impl fmt::Debug for OnionAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnionAddress([scrubbed])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From tor's own test suite (test_hs_common.c, "build_address"): this key gives
    // this address.
    const KEY_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const ADDR: &str = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion";

    fn key() -> [u8; 32] {
        let bytes = data_encoding::HEXLOWER.decode(KEY_HEX.as_bytes()).unwrap();
        bytes.try_into().unwrap()
    }

    #[test]
    fn matches_tor_test_vector() {
        let addr = OnionAddress::from_public_key(key());
        assert_eq!(addr.to_string(), ADDR);
        assert_eq!(ADDR.parse::<OnionAddress>().unwrap(), addr);
        assert_eq!(ADDR.to_uppercase().parse::<OnionAddress>().unwrap(), addr);
        assert_eq!(addr.service_id().parse::<OnionAddress>().unwrap(), addr);
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        for i in 0..ONION_LEN {
            for c in "abcdefghijklmnopqrstuvwxyz234567".chars() {
                let mut s: Vec<char> = ADDR.chars().collect();
                if s[i] == c {
                    continue;
                }
                s[i] = c;
                let typo: String = s.into_iter().collect();
                assert!(typo.parse::<OnionAddress>().is_err(), "{typo} accepted");
            }
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!("".parse::<OnionAddress>(), Err(OnionError::Length));
        assert_eq!("abc.onion".parse::<OnionAddress>(), Err(OnionError::Length));
        let bad = format!("{}1{}", &ADDR[..10], &ADDR[11..]);
        assert_eq!(bad.parse::<OnionAddress>(), Err(OnionError::Alphabet));
    }

    #[test]
    fn debug_hides_the_address() {
        let addr = OnionAddress::from_public_key(key());
        assert!(!format!("{addr:?}").contains(&ADDR[..10]));
    }
}

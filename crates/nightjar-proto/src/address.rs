//! Contact addresses: what people give each other to get in touch.
//!
//! The canonical form is one bech32m string, `nj1…`, carrying the request onion, the
//! Ed25519 identity key and, optionally, a mailbox onion where offline messages can be
//! left. bech32m's checksum catches every single-character typo (and most others), the
//! alphabet avoids look-alike characters, and the uppercase form fits a QR code's
//! compact alphanumeric mode.
//!
//! Payload bytes, before bech32m encoding with human-readable part `nj`:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `0x01` |
//! | 1 | flags: bit 0 = a mailbox follows; other bits must be zero |
//! | 32 | request onion service public key |
//! | 32 | Ed25519 identity key |
//! | 32 | mailbox onion service public key, only if flag bit 0 |
//!
//! For input we also accept unMessage's form, `name@onion` followed by the identity
//! key (52 base32 or 64 hex characters), where `name` is the sender's suggestion for a
//! local name.

use core::fmt;
use core::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use data_encoding::{BASE32_NOPAD, HEXLOWER_PERMISSIVE};
use ed25519_dalek::VerifyingKey;

use crate::onion::{OnionAddress, OnionError};

/// The human-readable part of a nightjar address.
pub const HRP: &str = "nj";
/// The payload version this code writes.
pub const VERSION: u8 = 1;
const FLAG_MAILBOX: u8 = 0x01;
/// The longest name accepted in the `name@onion` form.
pub const MAX_NAME_LEN: usize = 64;

/// Errors from parsing an address; each says what to tell the user.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Empty input.
    #[error("the address is empty")]
    Empty,
    /// It starts like a nightjar address but its checksum fails.
    #[error("the address has a typo: its checksum does not match (check every character)")]
    Checksum,
    /// Not a nightjar address at all.
    #[error(
        "this is not a nightjar address (it should start with `nj1`, or be name@onion and a key)"
    )]
    NotAnAddress,
    /// Written by a newer nightjar.
    #[error("the address was made by a newer version of nightjar (format {0})")]
    UnsupportedVersion(u8),
    /// The payload has the wrong size or reserved bits set.
    #[error("the address is damaged (wrong length or unknown fields)")]
    Malformed,
    /// The identity key is not a valid Ed25519 key.
    #[error("the address's identity key is invalid")]
    BadIdentityKey,
    /// The onion part of `name@onion` is wrong.
    #[error("the onion address is wrong: {0}")]
    Onion(#[from] OnionError),
    /// The name of `name@onion` is unusable.
    #[error("the name before @ must be 1-{MAX_NAME_LEN} printable characters")]
    BadName,
}

/// A parsed contact address.
#[derive(Clone, PartialEq, Eq)]
pub struct ContactAddress {
    /// Where contact requests go.
    pub request_onion: OnionAddress,
    /// The identity the handshake must prove.
    pub identity: VerifyingKey,
    /// Where to leave messages while the owner is offline.
    pub mailbox: Option<OnionAddress>,
    /// The owner's suggested name, from the `name@onion` form only.
    pub suggested_name: Option<String>,
}

impl ContactAddress {
    /// The canonical `nj1…` form, lowercase.
    pub fn to_bech32(&self) -> String {
        let mut payload = Vec::with_capacity(98);
        payload.push(VERSION);
        payload.push(if self.mailbox.is_some() {
            FLAG_MAILBOX
        } else {
            0
        });
        payload.extend_from_slice(self.request_onion.public_key());
        payload.extend_from_slice(self.identity.as_bytes());
        if let Some(mailbox) = &self.mailbox {
            payload.extend_from_slice(mailbox.public_key());
        }
        // 98 bytes encode to 166 characters, far below bech32m's 1023-character
        // code length, so encoding cannot fail; the fallback is unreachable.
        bech32::encode_lower::<Bech32m>(hrp(), &payload).unwrap_or_default()
    }

    /// The uppercase form, for QR codes (alphanumeric mode is ~40% denser).
    pub fn to_qr_text(&self) -> String {
        self.to_bech32().to_ascii_uppercase()
    }

    /// unMessage's form: `name@onion key`, with the key in base32.
    pub fn to_unmessage_form(&self, name: &str) -> String {
        format!(
            "{name}@{} {}",
            self.request_onion,
            BASE32_NOPAD
                .encode(self.identity.as_bytes())
                .to_ascii_lowercase()
        )
    }

    fn from_bech32(s: &str) -> Result<Self, AddressError> {
        let checked = CheckedHrpstring::new::<Bech32m>(s).map_err(|e| match e {
            bech32::primitives::decode::CheckedHrpstringError::Checksum(_) => {
                AddressError::Checksum
            }
            _ => AddressError::NotAnAddress,
        })?;
        if checked.hrp() != hrp() {
            return Err(AddressError::NotAnAddress);
        }
        let payload: Vec<u8> = checked.byte_iter().collect();
        let (&version, rest) = payload.split_first().ok_or(AddressError::Malformed)?;
        if version != VERSION {
            return Err(AddressError::UnsupportedVersion(version));
        }
        let (&flags, rest) = rest.split_first().ok_or(AddressError::Malformed)?;
        if flags & !FLAG_MAILBOX != 0 {
            return Err(AddressError::Malformed);
        }
        let expected = if flags & FLAG_MAILBOX != 0 { 96 } else { 64 };
        if rest.len() != expected {
            return Err(AddressError::Malformed);
        }
        let (onion, rest) = rest.split_at(32);
        let (identity, mailbox) = rest.split_at(32);
        Ok(Self {
            request_onion: OnionAddress::from_public_key(array32(onion)?),
            identity: identity_key(identity)?,
            mailbox: if mailbox.is_empty() {
                None
            } else {
                Some(OnionAddress::from_public_key(array32(mailbox)?))
            },
            suggested_name: None,
        })
    }

    fn from_unmessage_form(s: &str) -> Result<Self, AddressError> {
        let mut parts = s.split_whitespace();
        let (Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AddressError::NotAnAddress);
        };
        let (name, onion) = id.rsplit_once('@').ok_or(AddressError::NotAnAddress)?;
        if name.is_empty()
            || name.chars().count() > MAX_NAME_LEN
            || name.chars().any(|c| c.is_control())
        {
            return Err(AddressError::BadName);
        }
        let key_bytes = match key.len() {
            52 => BASE32_NOPAD
                .decode(key.to_ascii_uppercase().as_bytes())
                .map_err(|_| AddressError::BadIdentityKey)?,
            64 => HEXLOWER_PERMISSIVE
                .decode(key.as_bytes())
                .map_err(|_| AddressError::BadIdentityKey)?,
            _ => return Err(AddressError::BadIdentityKey),
        };
        Ok(Self {
            request_onion: onion.parse()?,
            identity: identity_key(&key_bytes)?,
            mailbox: None,
            suggested_name: Some(name.to_owned()),
        })
    }
}

fn hrp() -> Hrp {
    Hrp::parse_unchecked(HRP)
}

fn array32(bytes: &[u8]) -> Result<[u8; 32], AddressError> {
    bytes.try_into().map_err(|_| AddressError::Malformed)
}

fn identity_key(bytes: &[u8]) -> Result<VerifyingKey, AddressError> {
    let key =
        VerifyingKey::from_bytes(&array32(bytes)?).map_err(|_| AddressError::BadIdentityKey)?;
    if key.is_weak() {
        return Err(AddressError::BadIdentityKey);
    }
    Ok(key)
}

impl FromStr for ContactAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.contains('@') {
            return Self::from_unmessage_form(s);
        }
        let lower = s.to_ascii_lowercase();
        if !lower.starts_with("nj1") {
            return Err(AddressError::NotAnAddress);
        }
        Self::from_bech32(&lower)
    }
}

impl fmt::Display for ContactAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_bech32())
    }
}

/// Addresses identify people, so `Debug` (which reaches logs) shows none of it.
impl fmt::Debug for ContactAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactAddress")
            .field("mailbox", &self.mailbox.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeyPair;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn sample(seed: u64, mailbox: bool) -> ContactAddress {
        let mut rng = StdRng::seed_from_u64(seed);
        let identity = *IdentityKeyPair::generate(&mut rng).public().signing_key();
        let onion = *IdentityKeyPair::generate(&mut rng)
            .public()
            .signing_key()
            .as_bytes();
        let mbox = *IdentityKeyPair::generate(&mut rng)
            .public()
            .signing_key()
            .as_bytes();
        ContactAddress {
            request_onion: OnionAddress::from_public_key(onion),
            identity,
            mailbox: mailbox.then(|| OnionAddress::from_public_key(mbox)),
            suggested_name: None,
        }
    }

    #[test]
    fn short_enough_to_paste() {
        assert_eq!(sample(1, false).to_bech32().len(), 115);
        assert_eq!(sample(1, true).to_bech32().len(), 166);
    }

    #[test]
    fn round_trips_in_both_cases() {
        for mailbox in [false, true] {
            let addr = sample(2, mailbox);
            let text = addr.to_bech32();
            assert!(text.starts_with("nj1"));
            assert_eq!(text.parse::<ContactAddress>().unwrap(), addr);
            assert_eq!(addr.to_qr_text().parse::<ContactAddress>().unwrap(), addr);
            assert_eq!(
                format!("  {text}\n").parse::<ContactAddress>().unwrap(),
                addr
            );
        }
    }

    #[test]
    fn every_single_character_change_is_detected() {
        const ALPHABET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        for mailbox in [false, true] {
            let text = sample(3, mailbox).to_bech32();
            for i in 3..text.len() {
                for c in ALPHABET.chars() {
                    let mut chars: Vec<char> = text.chars().collect();
                    if chars[i] == c {
                        continue;
                    }
                    chars[i] = c;
                    let typo: String = chars.into_iter().collect();
                    assert_eq!(
                        typo.parse::<ContactAddress>(),
                        Err(AddressError::Checksum),
                        "{typo}"
                    );
                }
            }
        }
    }

    #[test]
    fn swapped_neighbours_are_detected() {
        let text = sample(4, true).to_bech32();
        let chars: Vec<char> = text.chars().collect();
        for i in 3..chars.len() - 1 {
            if chars[i] == chars[i + 1] {
                continue;
            }
            let mut swapped = chars.clone();
            swapped.swap(i, i + 1);
            let typo: String = swapped.into_iter().collect();
            assert!(typo.parse::<ContactAddress>().is_err(), "{typo}");
        }
    }

    #[test]
    fn unmessage_form_is_accepted() {
        let addr = sample(5, false);
        let text = addr.to_unmessage_form("alice");
        let parsed: ContactAddress = text.parse().unwrap();
        assert_eq!(parsed.request_onion, addr.request_onion);
        assert_eq!(parsed.identity, addr.identity);
        assert_eq!(parsed.suggested_name.as_deref(), Some("alice"));
        let hex = HEXLOWER_PERMISSIVE.encode(addr.identity.as_bytes());
        let with_hex = format!("bob@{} {hex}", addr.request_onion.service_id());
        assert_eq!(
            with_hex.parse::<ContactAddress>().unwrap().identity,
            addr.identity
        );
    }

    #[test]
    fn unmessage_form_errors_are_specific() {
        let addr = sample(6, false);
        let key = BASE32_NOPAD.encode(addr.identity.as_bytes());
        let onion = addr.request_onion.to_string();
        let typo_onion = format!("x{}", &onion[1..]);
        assert!(matches!(
            format!("a@{typo_onion} {key}").parse::<ContactAddress>(),
            Err(AddressError::Onion(_))
        ));
        assert_eq!(
            format!("@{onion} {key}").parse::<ContactAddress>(),
            Err(AddressError::BadName)
        );
        assert_eq!(
            format!("a@{onion} {}", &key[1..]).parse::<ContactAddress>(),
            Err(AddressError::BadIdentityKey)
        );
        assert_eq!(
            format!("a@{onion}").parse::<ContactAddress>(),
            Err(AddressError::NotAnAddress)
        );
    }

    #[test]
    fn other_inputs_are_rejected_clearly() {
        assert_eq!("".parse::<ContactAddress>(), Err(AddressError::Empty));
        assert_eq!(
            "hello".parse::<ContactAddress>(),
            Err(AddressError::NotAnAddress)
        );
        // A valid bech32m string with another human-readable part.
        let other = bech32::encode_lower::<Bech32m>(Hrp::parse("bc").unwrap(), &[1; 66]).unwrap();
        assert!(other.parse::<ContactAddress>().is_err());
        // Right checksum, future version.
        let mut payload = vec![2u8, 0];
        payload.extend_from_slice(&[0x11; 64]);
        let future = bech32::encode_lower::<Bech32m>(hrp(), &payload).unwrap();
        assert_eq!(
            future.parse::<ContactAddress>(),
            Err(AddressError::UnsupportedVersion(2))
        );
        // Unknown flag bits.
        payload[0] = 1;
        payload[1] = 0x80;
        let flagged = bech32::encode_lower::<Bech32m>(hrp(), &payload).unwrap();
        assert_eq!(
            flagged.parse::<ContactAddress>(),
            Err(AddressError::Malformed)
        );
    }

    #[test]
    fn debug_reveals_nothing() {
        let addr = sample(7, true);
        let shown = format!("{addr:?}");
        assert!(!shown.contains(&addr.request_onion.service_id()[..8]));
        assert!(!shown.contains(&addr.to_bech32()[4..12]));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = s.parse::<ContactAddress>();
        }

        #[test]
        fn nj1_prefixed_noise_never_panics(s in "[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{0,200}") {
            let _ = format!("nj1{s}").parse::<ContactAddress>();
        }
    }
}

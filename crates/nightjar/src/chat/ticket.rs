//! The connection string: bech32m (BIP 350) with human-readable part `njchat`.
//! Payload:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `0x01` |
//! | 32 | the listener's onion service public key |
//! | 32 | the listener's Ed25519 identity key |
//! | 32 | the X25519 client-authorization secret key for that service |
//!
//! The string holds a secret: whoever has it can find the service and talk to the
//! listener. It is meant to be handed over once, on a channel both trust (or
//! through an invite code's wormhole).

use core::fmt;
use core::str::FromStr;

use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
use bech32::{Bech32m, Hrp};
use ed25519_dalek::VerifyingKey;
use nightjar_tor::{ClientAuthSecret, OnionAddress};
use zeroize::Zeroizing;

/// The human-readable part of a connection string.
pub const HRP: &str = "njchat";
/// The payload version this code writes and reads.
pub const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 32 * 3;

/// What a connection string carries.
#[derive(Clone)]
pub struct Ticket {
    /// The listener's onion service.
    pub onion: OnionAddress,
    /// The identity the listener must prove in the handshake.
    pub identity: VerifyingKey,
    /// The key that lets us discover the service.
    pub client_auth: ClientAuthSecret,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket([scrubbed])")
    }
}

/// Why a connection string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// It starts like a connection string but its checksum fails.
    #[error("the connection string has a typo: its checksum does not match")]
    Checksum,
    /// Not a connection string at all.
    #[error("this is not a chat connection string (it should start with `njchat1`)")]
    NotATicket,
    /// Made by a newer nightjar.
    #[error("the connection string was made by a newer version of nightjar (format {0})")]
    UnsupportedVersion(u8),
    /// Wrong length or invalid keys.
    #[error("the connection string is damaged (wrong length or invalid keys)")]
    Malformed,
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = Zeroizing::new(Vec::with_capacity(PAYLOAD_LEN));
        payload.push(VERSION);
        payload.extend_from_slice(self.onion.public_key());
        payload.extend_from_slice(self.identity.as_bytes());
        payload.extend_from_slice(&self.client_auth.0);
        let hrp = Hrp::parse(HRP).map_err(|_| fmt::Error)?;
        // 97 bytes make 156 characters, far below bech32m's limit.
        let text =
            Zeroizing::new(bech32::encode_lower::<Bech32m>(hrp, &payload).map_err(|_| fmt::Error)?);
        f.write_str(&text)
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, TicketError> {
        let checked = CheckedHrpstring::new::<Bech32m>(s.trim()).map_err(|e| match e {
            CheckedHrpstringError::Checksum(_) => TicketError::Checksum,
            _ => TicketError::NotATicket,
        })?;
        if !checked.hrp().as_str().eq_ignore_ascii_case(HRP) {
            return Err(TicketError::NotATicket);
        }
        let payload = Zeroizing::new(checked.byte_iter().collect::<Vec<u8>>());
        let (&version, rest) = payload.split_first().ok_or(TicketError::Malformed)?;
        if version != VERSION {
            return Err(TicketError::UnsupportedVersion(version));
        }
        if rest.len() != PAYLOAD_LEN - 1 {
            return Err(TicketError::Malformed);
        }
        let key = |i: usize| -> Result<[u8; 32], TicketError> {
            rest.get(i * 32..(i + 1) * 32)
                .and_then(|k| k.try_into().ok())
                .ok_or(TicketError::Malformed)
        };
        let onion = key(0)?;
        if VerifyingKey::from_bytes(&onion).is_err() {
            return Err(TicketError::Malformed);
        }
        let identity = VerifyingKey::from_bytes(&key(1)?).map_err(|_| TicketError::Malformed)?;
        Ok(Self {
            onion: OnionAddress::from_public_key(onion),
            identity,
            client_auth: ClientAuthSecret(key(2)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightjar_node::link::os_rng;
    use nightjar_proto::identity::IdentityKeyPair;

    fn ticket() -> Ticket {
        let listener = IdentityKeyPair::generate(&mut os_rng());
        let onion = IdentityKeyPair::generate(&mut os_rng());
        Ticket {
            onion: OnionAddress::from_public_key(*onion.public().signing_key().as_bytes()),
            identity: *listener.public().signing_key(),
            client_auth: ClientAuthSecret([7; 32]),
        }
    }

    #[test]
    fn round_trip() {
        let t = ticket();
        let text = t.to_string();
        assert!(text.starts_with("njchat1"), "{text}");
        let back: Ticket = text.parse().unwrap();
        assert_eq!(back.onion, t.onion);
        assert_eq!(back.identity, t.identity);
        assert_eq!(back.client_auth.0, t.client_auth.0);
        // Uppercase (as from a QR code) and surrounding blanks are fine.
        let back: Ticket = format!(" {} \n", text.to_ascii_uppercase())
            .parse()
            .unwrap();
        assert_eq!(back.identity, t.identity);
    }

    #[test]
    fn debug_hides_everything() {
        let t = ticket();
        assert_eq!(format!("{t:?}"), "Ticket([scrubbed])");
    }

    #[test]
    fn rejects_typos() {
        let text = ticket().to_string();
        let mut chars: Vec<char> = text.chars().collect();
        let i = 20;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(typo.parse::<Ticket>().unwrap_err(), TicketError::Checksum);
    }

    fn encode(hrp: &str, payload: &[u8]) -> String {
        bech32::encode_lower::<Bech32m>(Hrp::parse(hrp).unwrap(), payload).unwrap()
    }

    #[test]
    fn rejects_malformed() {
        let good = ticket();
        let mut payload = vec![VERSION];
        payload.extend_from_slice(good.onion.public_key());
        payload.extend_from_slice(good.identity.as_bytes());
        payload.extend_from_slice(&[7; 32]);
        assert!(encode(HRP, &payload).parse::<Ticket>().is_ok());

        assert_eq!("".parse::<Ticket>().unwrap_err(), TicketError::NotATicket);
        assert_eq!(
            "hello".parse::<Ticket>().unwrap_err(),
            TicketError::NotATicket
        );
        // A contact address is not a connection string.
        assert_eq!(
            encode("nj", &payload).parse::<Ticket>().unwrap_err(),
            TicketError::NotATicket
        );
        assert_eq!(
            encode(HRP, &payload[..PAYLOAD_LEN - 1])
                .parse::<Ticket>()
                .unwrap_err(),
            TicketError::Malformed
        );
        let mut long = payload.clone();
        long.push(0);
        assert_eq!(
            encode(HRP, &long).parse::<Ticket>().unwrap_err(),
            TicketError::Malformed
        );
        let mut newer = payload.clone();
        newer[0] = 2;
        assert_eq!(
            encode(HRP, &newer).parse::<Ticket>().unwrap_err(),
            TicketError::UnsupportedVersion(2)
        );
        assert_eq!(
            encode(HRP, &[]).parse::<Ticket>().unwrap_err(),
            TicketError::Malformed
        );
    }

    #[test]
    fn rejects_invalid_identity_key() {
        let good = ticket();
        // Not a point on the curve: y = 2 has no x.
        let mut bad_key = [0u8; 32];
        bad_key[0] = 2;
        assert!(VerifyingKey::from_bytes(&bad_key).is_err());
        let mut payload = vec![VERSION];
        payload.extend_from_slice(good.onion.public_key());
        payload.extend_from_slice(&bad_key);
        payload.extend_from_slice(&[7; 32]);
        assert_eq!(
            encode(HRP, &payload).parse::<Ticket>().unwrap_err(),
            TicketError::Malformed
        );
    }
}

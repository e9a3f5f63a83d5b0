//! What two people exchange through an invite code's encrypted channel.
//!
//! An invite code (see `docs/protocol.md`, "Invite codes") gives both sides a
//! channel that only someone who knows the code can have opened. Through it each
//! side sends one [`Invitation`]: who it is and how the other may reach it. Nothing
//! more is needed to become contacts on both sides at once: the identity key is
//! checked again by the handshake on the first link, and the endpoint grant is the
//! one-time token that lets exactly this peer in.
//!
//! Encoding: a version byte ([`VERSION`]), the identity key, the request onion's
//! key, the endpoint grant (onion key, credential) and one flag byte (bit 0: the
//! sender wants a shared-secret authentication before any message). Decoding is
//! strict: other versions, unknown flag bits and trailing bytes are errors.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::message::EndpointGrant;
use crate::wire::{Reader, WireError, Writer};

/// The encoding version this code writes and reads.
pub const VERSION: u8 = 1;
const FLAG_REQUIRE_AUTH: u8 = 0x01;

/// One side's half of an invite exchange.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Invitation {
    /// The sender's Ed25519 identity key.
    pub identity: [u8; 32],
    /// The sender's public request onion key (part of its address).
    pub request_onion: [u8; 32],
    /// The sender's endpoint, authorised for the recipient alone.
    pub grant: EndpointGrant,
    /// The sender asks that a shared-secret authentication succeed before chatting.
    pub require_auth: bool,
}

/// Errors from decoding an invitation.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    /// Written by another version.
    #[error("invitation version {0} is not supported")]
    UnsupportedVersion(u8),
    /// Truncated, trailing bytes or unknown flags.
    #[error("malformed invitation: {0}")]
    Malformed(#[from] WireError),
}

impl Invitation {
    /// The encoded invitation.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        w.bytes(&self.identity);
        w.bytes(&self.request_onion);
        w.bytes(&self.grant.onion_key);
        w.bytes(&self.grant.credential);
        w.u8(if self.require_auth {
            FLAG_REQUIRE_AUTH
        } else {
            0
        });
        w.finish()
    }

    /// Decodes an invitation; the input must be exactly one.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvitationError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(InvitationError::UnsupportedVersion(version));
        }
        let identity = *r.array()?;
        let request_onion = *r.array()?;
        let grant = EndpointGrant {
            onion_key: *r.array()?,
            credential: *r.array()?,
        };
        let flags = r.u8()?;
        if flags & !FLAG_REQUIRE_AUTH != 0 {
            return Err(WireError::InvalidValue.into());
        }
        r.finish()?;
        Ok(Self {
            identity,
            request_onion,
            grant,
            require_auth: flags & FLAG_REQUIRE_AUTH != 0,
        })
    }
}

/// The grant's credential is a secret: `Debug` shows only the flag.
impl core::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Invitation")
            .field("require_auth", &self.require_auth)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(require_auth: bool) -> Invitation {
        Invitation {
            identity: [1; 32],
            request_onion: [2; 32],
            grant: EndpointGrant {
                onion_key: [3; 32],
                credential: [4; 32],
            },
            require_auth,
        }
    }

    #[test]
    fn round_trips_with_both_flags() {
        for flag in [false, true] {
            let bytes = sample(flag).encode();
            assert_eq!(bytes.len(), 1 + 4 * 32 + 1);
            assert_eq!(Invitation::decode(&bytes).unwrap(), sample(flag));
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        let bytes = sample(true).encode();
        for cut in 0..bytes.len() {
            assert!(Invitation::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Invitation::decode(&longer).is_err());
        let mut flags = bytes.clone();
        *flags.last_mut().unwrap() = 0x02;
        assert!(Invitation::decode(&flags).is_err());
        let mut version = bytes;
        version[0] = 2;
        assert_eq!(
            Invitation::decode(&version),
            Err(InvitationError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn debug_hides_the_grant() {
        let shown = format!("{:?}", sample(false));
        assert!(!shown.contains('4') && !shown.contains("credential"));
    }
}

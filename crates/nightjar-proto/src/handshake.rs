//! The handshake: a mutually authenticated, deniable, post-quantum hybrid key
//! agreement between two identities, run once per connection before the ratchet.
//!
//! The pattern is Noise XX with an ML-KEM-768 encapsulation added to the first
//! exchange: three X25519 Diffie-Hellman computations (ephemeral–ephemeral,
//! initiator-ephemeral–responder-identity, initiator-identity–responder-ephemeral)
//! plus the KEM, every key bound to a running hash of the transcript. Nothing about
//! the session is signed, so a transcript proves nothing to a third party; the only
//! signatures are the identity certificates, which say nothing about any session.
//!
//! The initiator dials and knows the Ed25519 identity of whom it dials (from an
//! address or a contact record). The responder may not know who is calling: contact
//! requests come from strangers, so the responder learns the initiator's proven
//! identity only from the last message and its caller decides whether to accept it.
//!
//! Sans-IO and consuming typestate:
//!
//! ```text
//! Initiator::start ──msg1──▶ Responder::handle_hello
//!        │                          │
//! InitiatorAwaitingReply ◀──msg2── ResponderAwaitingFinish
//!        │ handle_reply                     │
//!    Established ─────────msg3────────▶ handle_finish ─▶ Established
//! ```
//!
//! # Wire format
//!
//! All lengths are fixed and parsing is exact: a message of any other length, or
//! with another version byte, is rejected before any cryptography.
//!
//! | message | bytes | field |
//! |---|---|---|
//! | msg1 I→R ([`MSG1_LEN`] = 1217) | 1 | version `0x01` |
//! | | 32 | `e_i`: initiator's ephemeral X25519 public key |
//! | | 1184 | `ek`: initiator's ephemeral ML-KEM-768 encapsulation key |
//! | msg2 R→I ([`MSG2_LEN`] = 1329) | 1 | version `0x01` |
//! | | 32 | `e_r`: responder's ephemeral X25519 public key |
//! | | 1088 | `ct`: ML-KEM-768 ciphertext to `ek` |
//! | | 160 + 16 | ChaCha20-Poly1305 under `k1` of responder certificate (128) ‖ responder's initial ratchet public key (32), then the tag |
//! | | 32 | `mac_r`: responder's key confirmation |
//! | msg3 I→R ([`MSG3_LEN`] = 176) | 128 + 16 | ChaCha20-Poly1305 under `k3` of initiator certificate (128), then the tag |
//! | | 32 | `mac_i`: initiator's key confirmation |
//!
//! Certificates are [`IdentityCert::to_bytes`] ([`CERT_LEN`] bytes: Ed25519 key,
//! X25519 key, signature over [`crate::identity::CERT_LABEL`] ‖ X25519 key).
//!
//! # Transcript and key schedule
//!
//! `H` is SHA-256, `HKDF(salt, ikm, info)` is HKDF-SHA-256 whose output is cut into
//! 32-byte keys in order, `HMAC` is HMAC-SHA-256, `DH` is X25519 and every DH output
//! must be contributory (not the result of a low-order point).
//!
//! ```text
//! h0  = H("nightjar/v1/handshake" || prologue)
//! h1  = H(h0  || msg1)
//! h2a = H(h1  || version || e_r || ct)                      (msg2[0..1121])
//! ck1, k1 = HKDF(h2a, DH(e_i, e_r) || ss, "nightjar/v1/hs/ee+kem")
//! payload_r = AEAD(k1, nonce 0, aad h2a, cert_R || ratchet_R)
//! h2b = H(h2a || payload_r)                                 (msg2[1121..1297])
//! ck2, mac_key_r, k3 = HKDF(ck1, DH(e_i, IK_R), "nightjar/v1/hs/es")
//! mac_r = HMAC(mac_key_r, h2b)
//! h2  = H(h2b || mac_r)                                     (msg2[1297..1329])
//! payload_i = AEAD(k3, nonce 0, aad h2, cert_I)
//! h3a = H(h2  || payload_i)                                 (msg3[0..144])
//! ck3, mac_key_i = HKDF(ck2, DH(IK_I, e_r), "nightjar/v1/hs/se")
//! mac_i = HMAC(mac_key_i, h3a)
//! h   = H(h3a || mac_i)                                     (msg3[144..176])
//! root_key, header_key_a, next_header_key_b, session_id
//!     = HKDF(ck3, "", "nightjar/v1/hs/session" || h)
//! ```
//!
//! `ss` is the ML-KEM-768 shared secret; `IK_R`, `IK_I` are the X25519 identity keys
//! from the certificates. The prologue is never sent: the caller supplies it on both
//! sides (for instance the purpose and the onion address dialled), and any
//! difference makes the handshake fail.
//!
//! # Properties
//!
//! - **Hybrid secrecy.** Every key after msg1 depends on both `DH(e_i, e_r)` and the
//!   ML-KEM secret, so recording the handshake and later breaking either X25519 or
//!   ML-KEM alone reveals nothing. Both certificates travel under keys derived from
//!   the KEM too.
//! - **Authentication and key confirmation.** `mac_r` needs `DH(e_i, IK_R)`: only the
//!   holder of the responder's identity key can produce it, and the initiator also
//!   checks that the certificate is for the Ed25519 key it expected. `mac_i` needs
//!   `DH(IK_I, e_r)`: only the holder of the initiator's identity key can produce
//!   it. Both MACs cover the whole transcript so far.
//! - **Identity hiding.** No identity is sent in clear. The responder's certificate is
//!   readable by whoever sent msg1 (it is only encrypted against passive observers, as
//!   in Noise XX); the initiator's certificate is sent only after the responder has
//!   proven the expected identity, under a key that needs the responder's identity key.
//! - **Deniability.** No signature covers session data; anything either party could
//!   show a judge, the other could have computed alone.
//! - **Forward secrecy.** Ephemeral secrets live only in the typestate values and are
//!   zeroized when they are consumed or dropped.

mod schedule;
#[cfg(test)]
mod tests;

use core::fmt;

use ed25519_dalek::VerifyingKey;
use ml_kem::array::typenum::Unsigned;
use ml_kem::ml_kem_768::{Ciphertext, DecapsulationKey, EncapsulationKey};
use ml_kem::{Decapsulate, Encapsulate, Generate, Kem, KeyExport, KeySizeUser, MlKem768};
use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::identity::{
    CERT_LEN, IdentityCert, IdentityError, IdentityKeyPair, PublicIdentity, UnverifiedCert,
};
use schedule::{Secret, Transcript, check_confirmation, confirmation_tag, derive, dh, open, seal};

/// The version byte that starts msg1 and msg2.
pub const VERSION: u8 = 0x01;
/// Hashed with the prologue into the initial transcript hash `h0`.
pub const PROTOCOL_LABEL: &[u8] = b"nightjar/v1/handshake";
/// HKDF info for the ephemeral–ephemeral DH combined with the ML-KEM secret.
pub const LABEL_EE_KEM: &[u8] = b"nightjar/v1/hs/ee+kem";
/// HKDF info for DH(initiator ephemeral, responder identity).
pub const LABEL_ES: &[u8] = b"nightjar/v1/hs/es";
/// HKDF info for DH(initiator identity, responder ephemeral).
pub const LABEL_SE: &[u8] = b"nightjar/v1/hs/se";
/// HKDF info prefix (followed by the final transcript hash) for the session keys.
pub const LABEL_SESSION: &[u8] = b"nightjar/v1/hs/session";

/// Length of an X25519 public key.
pub const X25519_LEN: usize = 32;
/// Length of an ML-KEM-768 encapsulation key.
pub const KEM_EK_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const KEM_CT_LEN: usize = 1088;
/// Length of a ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of a key-confirmation MAC (HMAC-SHA-256).
pub const MAC_LEN: usize = 32;

/// Plaintext of the responder's encrypted payload: certificate and ratchet key.
const RESPONDER_PAYLOAD_LEN: usize = CERT_LEN + X25519_LEN;
/// Offset in msg2 where the encrypted payload starts (after version, `e_r`, `ct`).
const MSG2_PAYLOAD_AT: usize = 1 + X25519_LEN + KEM_CT_LEN;

/// Length of msg1: version, `e_i`, `ek`.
pub const MSG1_LEN: usize = 1 + X25519_LEN + KEM_EK_LEN;
/// Length of msg2: version, `e_r`, `ct`, encrypted certificate and ratchet key, MAC.
pub const MSG2_LEN: usize = MSG2_PAYLOAD_AT + RESPONDER_PAYLOAD_LEN + TAG_LEN + MAC_LEN;
/// Length of msg3: encrypted certificate, MAC.
pub const MSG3_LEN: usize = CERT_LEN + TAG_LEN + MAC_LEN;

// The wire constants must agree with the ML-KEM implementation.
const _: () = assert!(<EncapsulationKey as KeySizeUser>::KeySize::USIZE == KEM_EK_LEN);
const _: () = assert!(<MlKem768 as Kem>::CiphertextSize::USIZE == KEM_CT_LEN);

/// Why a handshake failed. Any error ends the handshake: the state was consumed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A message has the wrong length.
    #[error("handshake message has the wrong length: expected {expected} bytes, got {actual}")]
    Length {
        /// The only length this message may have.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// The peer speaks a handshake version we do not.
    #[error("unsupported handshake version {0:#04x}")]
    UnsupportedVersion(u8),
    /// The ML-KEM encapsulation key in msg1 is not a valid key.
    #[error("invalid ML-KEM encapsulation key")]
    InvalidKemKey,
    /// A Diffie-Hellman output was not contributory: the peer sent a low-order key.
    #[error("peer sent a weak (low-order) X25519 key")]
    WeakKey,
    /// An encrypted payload did not decrypt: tampering, a different prologue, or a
    /// peer that does not hold the keys it claims.
    #[error("handshake payload failed to decrypt")]
    Decrypt,
    /// The peer's identity certificate is malformed or its signature is invalid.
    #[error("peer's identity certificate is invalid")]
    BadCertificate(#[source] IdentityError),
    /// The responder proved an identity other than the one the initiator dialled.
    #[error("responder is not the expected identity")]
    UnexpectedIdentity,
    /// Key confirmation failed: the peer does not hold the identity key its
    /// certificate names, or the transcript was altered.
    #[error("handshake authentication failed")]
    BadMac,
    /// A primitive reported an error that its inputs rule out.
    #[error("internal handshake error")]
    Internal,
}

/// Which side of the handshake this party played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Dialled the peer and sent msg1 and msg3.
    Initiator,
    /// Was dialled and sent msg2.
    Responder,
}

/// Entry point for the party that dials. Never constructed.
#[derive(Debug)]
pub enum Initiator {}

impl Initiator {
    /// Starts a handshake with the holder of `expected_responder`, returning the
    /// state that waits for msg2 and msg1 to send.
    ///
    /// The initiator's own identity is not needed until msg3; it is passed to
    /// [`InitiatorAwaitingReply::handle_reply`].
    pub fn start<R: CryptoRng + ?Sized>(
        expected_responder: &VerifyingKey,
        prologue: &[u8],
        rng: &mut R,
    ) -> (InitiatorAwaitingReply, Vec<u8>) {
        let ephemeral = Box::new(StaticSecret::random_from_rng(rng));
        let kem = Box::new(<DecapsulationKey as Generate>::generate_from_rng(rng));

        let mut msg1 = Vec::with_capacity(MSG1_LEN);
        msg1.push(VERSION);
        msg1.extend_from_slice(PublicKey::from(&*ephemeral).as_bytes());
        msg1.extend_from_slice(&kem.encapsulation_key().to_bytes());

        let mut transcript = Transcript::new(prologue);
        transcript.mix(&msg1);
        let state = InitiatorAwaitingReply {
            transcript,
            expected_responder: *expected_responder,
            ephemeral,
            kem,
        };
        (state, msg1)
    }
}

/// The initiator after sending msg1, waiting for msg2.
pub struct InitiatorAwaitingReply {
    /// `h1`.
    transcript: Transcript,
    expected_responder: VerifyingKey,
    /// `e_i`, used for both `DH(e_i, e_r)` and `DH(e_i, IK_R)`.
    ephemeral: Box<StaticSecret>,
    kem: Box<DecapsulationKey>,
}

impl InitiatorAwaitingReply {
    /// Processes msg2 (any bytes), authenticates the responder as the expected
    /// identity and returns the established session and msg3 to send.
    pub fn handle_reply(
        self,
        msg2: &[u8],
        identity: &IdentityKeyPair,
    ) -> Result<(Established, Vec<u8>), HandshakeError> {
        self.reply_as(msg2, &identity.certificate(), &identity.dh_secret())
    }

    /// [`Self::handle_reply`] with the certificate and the X25519 secret given
    /// separately, so tests can pair a certificate with the wrong secret.
    fn reply_as(
        self,
        msg2: &[u8],
        own_cert: &IdentityCert,
        own_dh: &StaticSecret,
    ) -> Result<(Established, Vec<u8>), HandshakeError> {
        let reply = Reply::parse(msg2)?;
        let (mut transcript, responder) = self.authenticate(&reply)?;
        let (msg3, ck3) = responder.finish(&mut transcript, &reply.ephemeral, own_cert, own_dh)?;
        let keys = SessionKeys::derive(&ck3, &transcript)?;
        let established = Established {
            role: Role::Initiator,
            peer: *responder.cert.identity(),
            session_id: keys.session_id,
            seed: keys.into_initiator_seed(&responder.ratchet_public),
        };
        Ok((established, msg3))
    }

    /// Decrypts msg2, checks that it comes from the expected identity and that the
    /// responder holds that identity's key. Consumes the ephemeral secrets.
    fn authenticate(
        self,
        reply: &Reply<'_>,
    ) -> Result<(Transcript, AuthenticatedResponder), HandshakeError> {
        let Self {
            mut transcript,
            expected_responder,
            ephemeral,
            kem,
        } = self;
        transcript.mix(reply.cleartext);
        let ss = Zeroizing::new(<[u8; 32]>::from(kem.decapsulate(reply.ct)));
        let ee = dh(&ephemeral, &reply.ephemeral)?;
        let [ck1, k1] = derive(
            transcript.hash(),
            &[&ee.as_bytes()[..], &ss[..]],
            &[LABEL_EE_KEM],
        )?;

        let mut payload = *reply.payload;
        open(&k1, transcript.hash(), &mut payload, reply.payload_tag)?;
        transcript.mix(reply.sealed_payload);
        let (cert, ratchet) = payload.split_at(CERT_LEN);
        let cert = check_cert(cert)?;
        if cert.identity().signing_key() != &expected_responder {
            return Err(HandshakeError::UnexpectedIdentity);
        }
        let ratchet_public = public_key(ratchet)?;

        let es = dh(&ephemeral, cert.identity().dh_key())?;
        let [chaining_key, mac_key_r, finish_key] =
            derive(&ck1[..], &[&es.as_bytes()[..]], &[LABEL_ES])?;
        check_confirmation(&mac_key_r, transcript.hash(), reply.mac)?;
        transcript.mix(reply.mac);
        // The ratchet's first step is DH(new initiator key, this key): refuse a key
        // that would make its output public.
        dh(&ephemeral, &ratchet_public)?;

        let responder = AuthenticatedResponder {
            cert,
            ratchet_public,
            chaining_key,
            finish_key,
        };
        Ok((transcript, responder))
    }
}

/// What the initiator knows once msg2 has checked out.
struct AuthenticatedResponder {
    cert: IdentityCert,
    ratchet_public: PublicKey,
    /// `ck2`.
    chaining_key: Secret,
    /// `k3`.
    finish_key: Secret,
}

impl AuthenticatedResponder {
    /// Builds msg3: our certificate under `k3`, then our key confirmation.
    /// Returns msg3 and `ck3`.
    fn finish(
        &self,
        transcript: &mut Transcript,
        responder_ephemeral: &PublicKey,
        own_cert: &IdentityCert,
        own_dh: &StaticSecret,
    ) -> Result<(Vec<u8>, Secret), HandshakeError> {
        let mut msg3 = Vec::with_capacity(MSG3_LEN);
        msg3.extend_from_slice(&own_cert.to_bytes());
        let tag = seal(&self.finish_key, transcript.hash(), &mut msg3)?;
        msg3.extend_from_slice(&tag);
        transcript.mix(&msg3);

        let se = dh(own_dh, responder_ephemeral)?;
        let [ck3, mac_key_i] = derive(&self.chaining_key[..], &[&se.as_bytes()[..]], &[LABEL_SE])?;
        let mac = confirmation_tag(&mac_key_i, transcript.hash())?;
        msg3.extend_from_slice(&mac);
        transcript.mix(&mac);
        Ok((msg3, ck3))
    }
}

impl fmt::Debug for InitiatorAwaitingReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitiatorAwaitingReply")
            .finish_non_exhaustive()
    }
}

/// Entry point for the party that is dialled. Never constructed.
#[derive(Debug)]
pub enum Responder {}

impl Responder {
    /// Processes msg1 (any bytes) from an unknown caller and returns the state that
    /// waits for msg3 and msg2 to send.
    ///
    /// Nothing about the caller is known yet: its identity is proven only by
    /// [`ResponderAwaitingFinish::handle_finish`], and the state in between has no
    /// way to ask.
    ///
    /// ```compile_fail
    /// # fn f(state: nightjar_proto::handshake::ResponderAwaitingFinish) {
    /// let _ = state.peer(); // the caller is unknown until msg3
    /// # }
    /// ```
    pub fn handle_hello<R: CryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        prologue: &[u8],
        msg1: &[u8],
        rng: &mut R,
    ) -> Result<(ResponderAwaitingFinish, Vec<u8>), HandshakeError> {
        Self::hello_as(
            &identity.certificate(),
            &identity.dh_secret(),
            prologue,
            msg1,
            rng,
        )
    }

    /// [`Self::handle_hello`] with the certificate and the X25519 secret given
    /// separately, so tests can pair a certificate with the wrong secret.
    fn hello_as<R: CryptoRng + ?Sized>(
        own_cert: &IdentityCert,
        own_dh: &StaticSecret,
        prologue: &[u8],
        msg1: &[u8],
        rng: &mut R,
    ) -> Result<(ResponderAwaitingFinish, Vec<u8>), HandshakeError> {
        let hello = Hello::parse(msg1)?;
        let mut transcript = Transcript::new(prologue);
        transcript.mix(msg1);

        let ephemeral = Box::new(StaticSecret::random_from_rng(rng));
        let ratchet_secret = Box::new(StaticSecret::random_from_rng(rng));
        let (ct, ss) = hello.kem.encapsulate_with_rng(rng);
        let ss = Zeroizing::new(<[u8; 32]>::from(ss));
        let ee = dh(&ephemeral, &hello.ephemeral)?;

        let mut msg2 = Vec::with_capacity(MSG2_LEN);
        msg2.push(VERSION);
        msg2.extend_from_slice(PublicKey::from(&*ephemeral).as_bytes());
        msg2.extend_from_slice(&ct);
        transcript.mix(&msg2);
        let [ck1, k1] = derive(
            transcript.hash(),
            &[&ee.as_bytes()[..], &ss[..]],
            &[LABEL_EE_KEM],
        )?;

        let mut payload = [0u8; RESPONDER_PAYLOAD_LEN];
        payload[..CERT_LEN].copy_from_slice(&own_cert.to_bytes());
        payload[CERT_LEN..].copy_from_slice(PublicKey::from(&*ratchet_secret).as_bytes());
        let tag = seal(&k1, transcript.hash(), &mut payload)?;
        msg2.extend_from_slice(&payload);
        msg2.extend_from_slice(&tag);
        transcript.mix(&msg2[MSG2_PAYLOAD_AT..]);

        let es = dh(own_dh, &hello.ephemeral)?;
        let [chaining_key, mac_key_r, finish_key] =
            derive(&ck1[..], &[&es.as_bytes()[..]], &[LABEL_ES])?;
        let mac = confirmation_tag(&mac_key_r, transcript.hash())?;
        msg2.extend_from_slice(&mac);
        transcript.mix(&mac);

        let state = ResponderAwaitingFinish {
            transcript,
            chaining_key,
            finish_key,
            ephemeral,
            ratchet_secret,
        };
        Ok((state, msg2))
    }
}

/// The responder after sending msg2, waiting for msg3. It knows nothing about the
/// initiator yet.
pub struct ResponderAwaitingFinish {
    /// `h2`.
    transcript: Transcript,
    /// `ck2`.
    chaining_key: Secret,
    /// `k3`, the key of the initiator's encrypted certificate.
    finish_key: Secret,
    /// `e_r`, for `DH(IK_I, e_r)`.
    ephemeral: Box<StaticSecret>,
    ratchet_secret: Box<StaticSecret>,
}

impl ResponderAwaitingFinish {
    /// Processes msg3 (any bytes) and authenticates the initiator. The caller then
    /// decides, from [`Established::peer`], whether it wants to talk to them.
    pub fn handle_finish(self, msg3: &[u8]) -> Result<Established, HandshakeError> {
        let Self {
            mut transcript,
            chaining_key,
            finish_key,
            ephemeral,
            ratchet_secret,
        } = self;
        let finish = Finish::parse(msg3)?;

        let mut cert = *finish.payload;
        open(
            &finish_key,
            transcript.hash(),
            &mut cert,
            finish.payload_tag,
        )?;
        transcript.mix(finish.sealed_payload);
        let initiator = check_cert(&cert)?;

        let se = dh(&ephemeral, initiator.identity().dh_key())?;
        drop(ephemeral);
        let [ck3, mac_key_i] = derive(&chaining_key[..], &[&se.as_bytes()[..]], &[LABEL_SE])?;
        check_confirmation(&mac_key_i, transcript.hash(), finish.mac)?;
        transcript.mix(finish.mac);

        let keys = SessionKeys::derive(&ck3, &transcript)?;
        Ok(Established {
            role: Role::Responder,
            peer: *initiator.identity(),
            session_id: keys.session_id,
            seed: keys.into_responder_seed(*ratchet_secret),
        })
    }
}

impl fmt::Debug for ResponderAwaitingFinish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponderAwaitingFinish")
            .finish_non_exhaustive()
    }
}

/// A completed handshake: the peer's proven identity, the session id and the seed
/// for the Double Ratchet.
pub struct Established {
    role: Role,
    peer: PublicIdentity,
    session_id: [u8; 32],
    seed: RatchetSeed,
}

impl Established {
    /// Which side we played.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's identity, proven by key confirmation. For an initiator it is the
    /// identity it dialled; a responder must decide whether to accept it.
    pub fn peer(&self) -> &PublicIdentity {
        &self.peer
    }

    /// An identifier both parties derive for this session; it binds later
    /// protocols (the ratchet's associated data, the Socialist Millionaire Protocol)
    /// to this handshake. It comes out of the key schedule, so an observer of the
    /// transcript cannot compute it, yet it reveals nothing about the session keys.
    pub fn session_id(&self) -> &[u8; 32] {
        &self.session_id
    }

    /// Hands the session's secrets to the ratchet. It consumes the handshake: a
    /// seed must start exactly one ratchet, since two ratchets from one seed would
    /// derive the same message keys.
    pub fn into_ratchet_seed(self) -> RatchetSeed {
        self.seed
    }
}

impl fmt::Debug for Established {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Established")
            .field("role", &self.role)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// What the Double Ratchet with header encryption starts from (Signal's
/// `RatchetInitAliceHE` / `RatchetInitBobHE`): the initiator plays Alice.
///
/// Every secret zeroizes itself on drop.
pub enum RatchetSeed {
    /// The initiator's seed: it sends first, to the responder's ratchet key.
    Initiator {
        /// The ratchet's first root key.
        root_key: Zeroizing<[u8; 32]>,
        /// The header key of the initiator's first sending chain.
        header_key_a: Zeroizing<[u8; 32]>,
        /// The header key of the responder's first sending chain.
        next_header_key_b: Zeroizing<[u8; 32]>,
        /// The responder's initial ratchet public key (X25519), authenticated by
        /// msg2.
        responder_ratchet_public: [u8; 32],
    },
    /// The responder's seed: it holds the ratchet key pair the initiator sends to.
    Responder {
        /// The ratchet's first root key.
        root_key: Zeroizing<[u8; 32]>,
        /// The header key of the initiator's first sending chain.
        header_key_a: Zeroizing<[u8; 32]>,
        /// The header key of the responder's first sending chain.
        next_header_key_b: Zeroizing<[u8; 32]>,
        /// The secret half of the ratchet key sent in msg2.
        ratchet_secret: StaticSecret,
    },
}

impl fmt::Debug for RatchetSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Initiator { .. } => f.write_str("RatchetSeed::Initiator(..)"),
            Self::Responder { .. } => f.write_str("RatchetSeed::Responder(..)"),
        }
    }
}

/// The output of the final HKDF.
struct SessionKeys {
    root_key: Secret,
    header_key_a: Secret,
    next_header_key_b: Secret,
    session_id: [u8; 32],
}

impl SessionKeys {
    fn derive(ck3: &[u8; 32], transcript: &Transcript) -> Result<Self, HandshakeError> {
        let [root_key, header_key_a, next_header_key_b, session_id] =
            derive(ck3, &[], &[LABEL_SESSION, transcript.hash()])?;
        Ok(Self {
            root_key,
            header_key_a,
            next_header_key_b,
            session_id: **session_id,
        })
    }

    fn into_initiator_seed(self, responder_ratchet_public: &PublicKey) -> RatchetSeed {
        RatchetSeed::Initiator {
            root_key: Zeroizing::new(**self.root_key),
            header_key_a: Zeroizing::new(**self.header_key_a),
            next_header_key_b: Zeroizing::new(**self.next_header_key_b),
            responder_ratchet_public: responder_ratchet_public.to_bytes(),
        }
    }

    fn into_responder_seed(self, ratchet_secret: StaticSecret) -> RatchetSeed {
        RatchetSeed::Responder {
            root_key: Zeroizing::new(**self.root_key),
            header_key_a: Zeroizing::new(**self.header_key_a),
            next_header_key_b: Zeroizing::new(**self.next_header_key_b),
            ratchet_secret,
        }
    }
}

/// msg1, parsed.
struct Hello {
    ephemeral: PublicKey,
    kem: EncapsulationKey,
}

impl Hello {
    fn parse(msg: &[u8]) -> Result<Self, HandshakeError> {
        let mut rest = exact::<MSG1_LEN>(msg)?.as_slice();
        check_version(take::<1>(&mut rest)?)?;
        let ephemeral = PublicKey::from(*take::<X25519_LEN>(&mut rest)?);
        let ek = take::<KEM_EK_LEN>(&mut rest)?;
        let kem = EncapsulationKey::new(ek.into()).map_err(|_| HandshakeError::InvalidKemKey)?;
        Ok(Self { ephemeral, kem })
    }
}

/// msg2, split into its fields.
struct Reply<'a> {
    /// Version, `e_r` and `ct`: what is hashed before `k1` is derived.
    cleartext: &'a [u8],
    ephemeral: PublicKey,
    ct: &'a Ciphertext,
    /// The encrypted payload with its tag, as hashed.
    sealed_payload: &'a [u8],
    payload: &'a [u8; RESPONDER_PAYLOAD_LEN],
    payload_tag: &'a [u8; TAG_LEN],
    mac: &'a [u8; MAC_LEN],
}

impl<'a> Reply<'a> {
    fn parse(msg: &'a [u8]) -> Result<Self, HandshakeError> {
        let msg = exact::<MSG2_LEN>(msg)?.as_slice();
        let (cleartext, sealed) = msg.split_at(MSG2_PAYLOAD_AT);
        let (sealed_payload, _) = sealed.split_at(RESPONDER_PAYLOAD_LEN + TAG_LEN);

        let mut rest = msg;
        check_version(take::<1>(&mut rest)?)?;
        let ephemeral = PublicKey::from(*take::<X25519_LEN>(&mut rest)?);
        let ct = take::<KEM_CT_LEN>(&mut rest)?.into();
        let payload = take(&mut rest)?;
        let payload_tag = take(&mut rest)?;
        let mac = take(&mut rest)?;
        Ok(Self {
            cleartext,
            ephemeral,
            ct,
            sealed_payload,
            payload,
            payload_tag,
            mac,
        })
    }
}

/// msg3, split into its fields.
struct Finish<'a> {
    /// The encrypted certificate with its tag, as hashed.
    sealed_payload: &'a [u8],
    payload: &'a [u8; CERT_LEN],
    payload_tag: &'a [u8; TAG_LEN],
    mac: &'a [u8; MAC_LEN],
}

impl<'a> Finish<'a> {
    fn parse(msg: &'a [u8]) -> Result<Self, HandshakeError> {
        let msg = exact::<MSG3_LEN>(msg)?.as_slice();
        let (sealed_payload, _) = msg.split_at(CERT_LEN + TAG_LEN);
        let mut rest = msg;
        let payload = take(&mut rest)?;
        let payload_tag = take(&mut rest)?;
        let mac = take(&mut rest)?;
        Ok(Self {
            sealed_payload,
            payload,
            payload_tag,
            mac,
        })
    }
}

/// The message as an array of exactly `N` bytes, or a length error.
fn exact<const N: usize>(msg: &[u8]) -> Result<&[u8; N], HandshakeError> {
    msg.try_into().map_err(|_| HandshakeError::Length {
        expected: N,
        actual: msg.len(),
    })
}

/// Takes the next `N` bytes. Messages are length-checked first, so running short
/// means the layout constants are wrong: an internal error.
fn take<'a, const N: usize>(rest: &mut &'a [u8]) -> Result<&'a [u8; N], HandshakeError> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or(HandshakeError::Internal)?;
    *rest = tail;
    Ok(head)
}

fn check_version(version: &[u8; 1]) -> Result<(), HandshakeError> {
    match version[0] {
        VERSION => Ok(()),
        other => Err(HandshakeError::UnsupportedVersion(other)),
    }
}

fn check_cert(bytes: &[u8]) -> Result<IdentityCert, HandshakeError> {
    UnverifiedCert::from_bytes(bytes)
        .and_then(UnverifiedCert::check)
        .map_err(HandshakeError::BadCertificate)
}

fn public_key(bytes: &[u8]) -> Result<PublicKey, HandshakeError> {
    let bytes: [u8; X25519_LEN] = bytes.try_into().map_err(|_| HandshakeError::Internal)?;
    Ok(PublicKey::from(bytes))
}

//! The Double Ratchet with header encryption.
//!
//! This follows sections 3 and 4 of Signal's Double Ratchet specification
//! ("Double Ratchet with header encryption"). Headers are encrypted so that a
//! mailbox, or anyone who sees stored or relayed blobs, cannot tell which messages
//! belong to one conversation, nor learn their counters or ratchet keys.
//!
//! # Key derivation
//!
//! * `KDF_RK(rk, dh_out)`: HKDF-SHA256 with salt = `rk`, ikm = `dh_out`,
//!   info = [`ROOT_INFO`], 96 bytes of output split as
//!   new root key (32) | chain key (32) | next header key (32).
//! * `KDF_CK(ck)`: message key = HMAC-SHA256(`ck`, `[0x01]`)
//!   ([`CHAIN_MESSAGE_KEY_INPUT`]), next chain key = HMAC-SHA256(`ck`, `[0x02]`)
//!   ([`CHAIN_NEXT_KEY_INPUT`]).
//! * Message body key: HKDF-SHA256 with salt = 32 zero bytes, ikm = message key,
//!   info = [`MESSAGE_INFO`], 56 bytes split as XChaCha20-Poly1305 key (32) |
//!   nonce (24).
//!
//! # Wire format
//!
//! A message is `encrypted header (HEADER_LEN) || body`:
//!
//! ```text
//! encrypted header (84) = nonce (24, random)
//!                       | XChaCha20-Poly1305(HK, nonce, header plaintext, AAD = ad)
//! header plaintext (44) = ratchet public key (32) | pn (u32 BE) | n (u32 BE)
//!                       | body_len (u32 BE)
//! body (body_len)       = XChaCha20-Poly1305(body key, body nonce, plaintext,
//!                                            AAD = ad || encrypted header)
//! ```
//!
//! `body_len` is the body ciphertext length including its tag (plaintext length +
//! [`TAG_LEN`]); it is inside the encrypted header so that a stream reader can learn
//! where a message ends ([`Ratchet::peek_body_len`]) without anything in clear.
//!
//! # Bounds and replays
//!
//! * At most [`MAX_SKIP`] message keys are skipped in one chain step.
//! * At most [`MAX_SKIPPED_KEYS`] skipped keys are kept in total, oldest evicted first.
//! * The header keys of at most [`MAX_STORED_CHAINS`] receiving chains are kept,
//!   including chains with no skipped key left, so that a replayed message is
//!   reported as [`RatchetError::Duplicate`] rather than as noise. Older chains are
//!   forgotten whole; a message from one of them is indistinguishable from garbage.
//!   The bound also caps the trial decryptions an unreadable header costs at
//!   `MAX_STORED_CHAINS + 2`.
//!
//! Decryption is transactional: on any error the state is exactly as before.

mod kdf;
mod persist;
mod skipped;
mod wire;

use core::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use self::kdf::{Key, kdf_ck, kdf_rk};
use self::skipped::{BoxedKey, SkippedKeys};
use self::wire::{Header, body_ad, open_body, seal_body, split_message};

/// Length of every key in the ratchet (root, chain, header, message keys and
/// X25519 keys).
pub const KEY_LEN: usize = 32;
/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Length of a header before encryption: ratchet public key (32) | pn (4) | n (4) |
/// body_len (4), integers big-endian.
pub const HEADER_PLAINTEXT_LEN: usize = KEY_LEN + 4 + 4 + 4;
/// Length of an encrypted header: nonce | header ciphertext | tag.
pub const HEADER_LEN: usize = NONCE_LEN + HEADER_PLAINTEXT_LEN + TAG_LEN;
/// Bytes a message adds to its plaintext: the encrypted header and the body tag.
pub const MESSAGE_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Most message keys skipped in one chain step (the specification's `MAX_SKIP`).
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys kept in total; beyond it the oldest are deleted.
pub const MAX_SKIPPED_KEYS: usize = 2000;
/// Most receiving chains whose header keys (and skipped keys) are kept.
pub const MAX_STORED_CHAINS: usize = 32;

/// HKDF info of `KDF_RK`.
pub const ROOT_INFO: &[u8] = b"nightjar/v1/ratchet/root";
/// HKDF info of the message body key and nonce.
pub const MESSAGE_INFO: &[u8] = b"nightjar/v1/ratchet/message";
/// HMAC input of `KDF_CK` that yields the message key.
pub const CHAIN_MESSAGE_KEY_INPUT: u8 = 0x01;
/// HMAC input of `KDF_CK` that yields the next chain key.
pub const CHAIN_NEXT_KEY_INPUT: u8 = 0x02;

/// Leading byte of [`Ratchet::to_bytes`].
pub const STATE_VERSION: u8 = 1;

// Other modules size buffers from these; a change here is a wire change.
const _: () = assert!(HEADER_PLAINTEXT_LEN == 44);
const _: () = assert!(HEADER_LEN == 84);

/// Why a ratchet operation failed. Whatever the error, the ratchet's state is
/// unchanged.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RatchetError {
    /// No header key we hold opens the header: garbage, tampering, a message for
    /// another conversation, or one from a chain that has been forgotten.
    #[error("message header cannot be decrypted")]
    HeaderUndecryptable,
    /// The message was already decrypted, or its key has been deleted.
    #[error("message already received or its key was deleted")]
    Duplicate,
    /// Decrypting the message would skip more than [`MAX_SKIP`] message keys.
    #[error("message would skip too many message keys")]
    TooManySkipped,
    /// The message is too short or its header contradicts it.
    #[error("malformed message")]
    Malformed,
    /// The header opened but the body did not authenticate.
    #[error("message body failed authentication")]
    BodyAuthentication,
    /// The responder cannot send before it has received a message.
    #[error("cannot send before the first message has been received")]
    CannotSendYet,
    /// A message counter would overflow; the conversation needs new keys.
    #[error("message counter exhausted")]
    CounterExhausted,
    /// The plaintext is too long for the header's 32-bit length field.
    #[error("message too long")]
    MessageTooLong,
    /// The peer's ratchet public key is of low order and contributes no secret.
    #[error("invalid ratchet public key")]
    InvalidRatchetKey,
    /// The stored state starts with a version this code does not know.
    #[error("unsupported ratchet state version {0}")]
    UnsupportedVersion(u8),
    /// The stored state is truncated, has trailing bytes or is inconsistent.
    #[error("invalid ratchet state")]
    BadState,
    /// A cryptographic library call failed where it cannot fail; a bug.
    #[error("internal error in the ratchet")]
    Internal,
}

/// The scalar part of the state: everything but the skipped keys.
///
/// Names follow the specification. Kept behind one `Box` in [`Ratchet`] so that
/// moving a `Ratchet` moves a pointer, not keys, and so that the DH step can work
/// on a heap copy and commit it by swapping the box.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct State {
    /// Our current ratchet key pair (`DHs`).
    #[zeroize(skip)] // StaticSecret wipes itself on drop.
    dhs: StaticSecret,
    /// Public half of `dhs`, cached: deriving it costs a scalar multiplication.
    dhs_public: Key,
    /// The peer's current ratchet public key (`DHr`).
    dhr: Option<Key>,
    rk: Key,
    cks: Option<Key>,
    ckr: Option<Key>,
    hks: Option<Key>,
    hkr: Option<Key>,
    nhks: Key,
    nhkr: Key,
    ns: u32,
    nr: u32,
    pn: u32,
}

/// One side of a Double Ratchet conversation with header encryption.
pub struct Ratchet {
    state: Box<State>,
    skipped: SkippedKeys,
}

// Every secret field wipes itself on drop: `State` derives it, the skipped keys
// are `BoxedKey`s.
impl ZeroizeOnDrop for Ratchet {}

impl fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counters and ratchet public keys stay out as well: hiding them is the
        // point of header encryption, and debug output ends up in logs.
        f.debug_struct("Ratchet")
            .field("can_send", &self.state.cks.is_some())
            .field("skipped_keys", &self.skipped.key_count())
            .finish_non_exhaustive()
    }
}

/// Which header key opened a header.
enum Opened {
    /// `HKr`: the current receiving chain.
    Current(Header),
    /// `NHKr`: the peer has stepped its ratchet; we must too.
    Next(Header),
    /// The header key of a stored chain (index into the skipped-key store).
    Stored(usize, Header),
}

impl Opened {
    fn header(&self) -> &Header {
        match self {
            Self::Current(h) | Self::Next(h) | Self::Stored(_, h) => h,
        }
    }
}

impl Ratchet {
    /// The initiator ("Alice" in the specification): knows the responder's initial
    /// ratchet public key and can send at once.
    ///
    /// `root_key`, `header_key_a` and `next_header_key_b` come from the handshake;
    /// the initiator's first sending chain uses `header_key_a`, and the
    /// responder's first reply uses `next_header_key_b`.
    ///
    /// # Errors
    ///
    /// [`RatchetError::InvalidRatchetKey`] if `responder_ratchet_public` is of low
    /// order.
    pub fn new_initiator<R: CryptoRng + ?Sized>(
        root_key: [u8; KEY_LEN],
        header_key_a: [u8; KEY_LEN],
        next_header_key_b: [u8; KEY_LEN],
        responder_ratchet_public: [u8; KEY_LEN],
        rng: &mut R,
    ) -> Result<Self, RatchetError> {
        let (root_key, header_key_a, next_header_key_b) = (
            Zeroizing::new(root_key),
            Zeroizing::new(header_key_a),
            Zeroizing::new(next_header_key_b),
        );
        let dhs = StaticSecret::random_from_rng(rng);
        let mut state = Box::new(State {
            dhs_public: PublicKey::from(&dhs).to_bytes(),
            dhs,
            dhr: Some(responder_ratchet_public),
            rk: *root_key,
            cks: None,
            ckr: None,
            hks: Some(*header_key_a),
            hkr: None,
            nhks: [0; KEY_LEN],
            nhkr: *next_header_key_b,
            ns: 0,
            nr: 0,
            pn: 0,
        });
        let dh = diffie_hellman(&state.dhs, &responder_ratchet_public)?;
        let State { rk, cks, nhks, .. } = &mut *state;
        kdf_rk(rk, dh.as_bytes(), cks.insert([0; KEY_LEN]), nhks)?;
        Ok(Self {
            state,
            skipped: SkippedKeys::default(),
        })
    }

    /// The responder ("Bob"): owns the initial ratchet key pair, whose public half
    /// the initiator was given. It can send only after its first message arrives.
    pub fn new_responder(
        root_key: [u8; KEY_LEN],
        header_key_a: [u8; KEY_LEN],
        next_header_key_b: [u8; KEY_LEN],
        ratchet_secret: StaticSecret,
    ) -> Self {
        let (root_key, header_key_a, next_header_key_b) = (
            Zeroizing::new(root_key),
            Zeroizing::new(header_key_a),
            Zeroizing::new(next_header_key_b),
        );
        Self {
            state: Box::new(State {
                dhs_public: PublicKey::from(&ratchet_secret).to_bytes(),
                dhs: ratchet_secret,
                dhr: None,
                rk: *root_key,
                cks: None,
                ckr: None,
                hks: None,
                hkr: None,
                nhks: *next_header_key_b,
                nhkr: *header_key_a,
                ns: 0,
                nr: 0,
                pn: 0,
            }),
            skipped: SkippedKeys::default(),
        }
    }

    /// Encrypts one message; returns `encrypted header || body`, which is
    /// `plaintext.len() + MESSAGE_OVERHEAD` bytes long.
    ///
    /// `ad` is authenticated, not sent; the receiver must pass the same bytes.
    ///
    /// # Errors
    ///
    /// [`RatchetError::CannotSendYet`] for a responder that has not received yet,
    /// [`RatchetError::CounterExhausted`] after 2³² − 1 messages in one chain,
    /// [`RatchetError::MessageTooLong`] for bodies beyond the header's length field.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        ad: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, RatchetError> {
        let st = &mut *self.state;
        let (Some(cks), Some(hks)) = (st.cks.as_mut(), st.hks.as_ref()) else {
            return Err(RatchetError::CannotSendYet);
        };
        let next_ns = st.ns.checked_add(1).ok_or(RatchetError::CounterExhausted)?;
        let body_len = plaintext
            .len()
            .checked_add(TAG_LEN)
            .ok_or(RatchetError::MessageTooLong)?;
        let header = Header {
            ratchet_public: st.dhs_public,
            pn: st.pn,
            n: st.ns,
            body_len: u32::try_from(body_len).map_err(|_| RatchetError::MessageTooLong)?,
        };

        let mut chain_key = Zeroizing::new(*cks);
        let mut message_key = Zeroizing::new([0; KEY_LEN]);
        kdf_ck(&mut chain_key, &mut message_key)?;

        // Exact capacity: the buffer never reallocates while it holds plaintext.
        let mut out = Vec::with_capacity(HEADER_LEN.saturating_add(body_len));
        header.seal(hks, ad, rng, &mut out)?;
        let aad = body_ad(ad, &out);
        seal_body(&message_key, &aad, plaintext, &mut out)?;

        *cks = *chain_key;
        st.ns = next_ns;
        Ok(out)
    }

    /// Finds the header key that opens `encrypted_header` (exactly [`HEADER_LEN`]
    /// bytes, the start of a message) and returns the body length it announces, so
    /// that a stream reader knows how many more bytes make up the message.
    ///
    /// Changes nothing. A header that opens is not yet a message that will decrypt:
    /// [`Ratchet::decrypt`] may still reject it, e.g. as a duplicate.
    ///
    /// # Errors
    ///
    /// [`RatchetError::Malformed`] for a wrong length,
    /// [`RatchetError::HeaderUndecryptable`] if no header key opens it.
    pub fn peek_body_len(&self, encrypted_header: &[u8], ad: &[u8]) -> Result<usize, RatchetError> {
        let encrypted_header: &[u8; HEADER_LEN] = encrypted_header
            .try_into()
            .map_err(|_| RatchetError::Malformed)?;
        let opened = self.open_header(encrypted_header, ad)?;
        usize::try_from(opened.header().body_len).map_err(|_| RatchetError::Malformed)
    }

    /// Decrypts one message (`encrypted header || body`).
    ///
    /// Transactional: on any error the state is exactly as it was, so a forged,
    /// corrupted or replayed message cannot disturb the conversation. `rng` is
    /// used only when the message starts a new chain (a DH ratchet step).
    ///
    /// # Errors
    ///
    /// See [`RatchetError`]; notably [`RatchetError::Duplicate`] for a message
    /// whose key was already used or deleted.
    pub fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        message: &[u8],
        ad: &[u8],
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>, RatchetError> {
        let (encrypted_header, body) = split_message(message)?;
        let opened = self.open_header(encrypted_header, ad)?;
        if usize::try_from(opened.header().body_len).ok() != Some(body.len()) {
            return Err(RatchetError::Malformed);
        }
        let aad = body_ad(ad, encrypted_header);
        match opened {
            Opened::Current(header) => self.decrypt_current(&header, &aad, body),
            Opened::Next(header) => self.decrypt_next(&header, &aad, body, rng),
            Opened::Stored(chain, header) => self.decrypt_stored(chain, header.n, &aad, body),
        }
    }

    /// Serializes the whole state for storage (see [`Ratchet::from_bytes`]).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        persist::encode(self)
    }

    /// Restores a state written by [`Ratchet::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`RatchetError::UnsupportedVersion`] for an unknown leading version byte,
    /// [`RatchetError::BadState`] for truncation, trailing bytes, counts beyond the
    /// bounds, or inconsistent fields.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RatchetError> {
        persist::decode(bytes)
    }

    /// Trial-decrypts a header with the current and the next receiving header key,
    /// then with stored chains' keys, newest first.
    ///
    /// Header keys are independent random values, so at most one of them opens a
    /// given header and the order only affects speed. Once we have sent on our
    /// current chain, the peer's answer will most likely start a new chain, so the
    /// next header key is tried first; otherwise the current one is.
    fn open_header(
        &self,
        encrypted_header: &[u8; HEADER_LEN],
        ad: &[u8],
    ) -> Result<Opened, RatchetError> {
        let st = &*self.state;
        let try_current = || {
            st.hkr
                .as_ref()
                .and_then(|hkr| Header::open(hkr, encrypted_header, ad))
                .map(Opened::Current)
        };
        let try_next = || Header::open(&st.nhkr, encrypted_header, ad).map(Opened::Next);
        let opened = if st.ns > 0 {
            try_next().or_else(try_current)
        } else {
            try_current().or_else(try_next)
        };
        if let Some(opened) = opened {
            return Ok(opened);
        }
        for (index, chain) in self.skipped.newest_first() {
            let is_current = st
                .hkr
                .as_ref()
                .is_some_and(|hkr| bool::from(hkr.ct_eq(chain.header_key())));
            if is_current {
                continue; // tried above
            }
            if let Some(header) = Header::open(chain.header_key(), encrypted_header, ad) {
                return Ok(Opened::Stored(index, header));
            }
        }
        Err(RatchetError::HeaderUndecryptable)
    }

    /// A message of the current receiving chain.
    fn decrypt_current(
        &mut self,
        header: &Header,
        aad: &[u8],
        body: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, RatchetError> {
        let st = &mut *self.state;
        let (Some(ckr), Some(hkr)) = (st.ckr.as_mut(), st.hkr.as_ref()) else {
            return Err(RatchetError::Internal);
        };
        // Every message of a chain carries the ratchet key that started it.
        if st.dhr.as_ref() != Some(&header.ratchet_public) {
            return Err(RatchetError::Malformed);
        }
        if header.n < st.nr {
            // Behind the chain: only a skipped key can open it, else it is a replay.
            let chain = self.skipped.position(hkr).ok_or(RatchetError::Duplicate)?;
            return self.decrypt_stored(chain, header.n, aad, body);
        }
        let next_nr = header
            .n
            .checked_add(1)
            .ok_or(RatchetError::CounterExhausted)?;
        let mut chain_key = Zeroizing::new(*ckr);
        let skipped = skip_message_keys(Some(&mut *chain_key), st.nr, header.n)?;
        let mut message_key = Zeroizing::new([0; KEY_LEN]);
        kdf_ck(&mut chain_key, &mut message_key)?;
        let plaintext = open_body(&message_key, aad, body)?;

        *ckr = *chain_key;
        st.nr = next_nr;
        if !skipped.is_empty() {
            self.skipped.add(hkr, skipped);
        }
        Ok(plaintext)
    }

    /// The first message of a new peer chain: a DH ratchet step, done on a copy of
    /// the state that replaces the original only once the body authenticates.
    fn decrypt_next<R: CryptoRng + ?Sized>(
        &mut self,
        header: &Header,
        aad: &[u8],
        body: &[u8],
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>, RatchetError> {
        let next_nr = header
            .n
            .checked_add(1)
            .ok_or(RatchetError::CounterExhausted)?;
        let mut next = self.state.clone();
        // Keys for the rest of the closing chain: those messages are still in flight.
        let closing = skip_message_keys(next.ckr.as_mut(), next.nr, header.pn)?;
        next.dh_step(&header.ratchet_public, rng)?;
        let opening = skip_message_keys(next.ckr.as_mut(), 0, header.n)?;
        let (Some(ckr), Some(new_hkr)) = (next.ckr.as_mut(), next.hkr.as_ref()) else {
            return Err(RatchetError::Internal);
        };
        let mut message_key = Zeroizing::new([0; KEY_LEN]);
        kdf_ck(ckr, &mut message_key)?;
        next.nr = next_nr;
        let plaintext = open_body(&message_key, aad, body)?;

        // Remember the closing chain even without keys, to recognise its replays.
        if let Some(old_hkr) = &self.state.hkr {
            self.skipped.add(old_hkr, closing);
        }
        if !opening.is_empty() {
            self.skipped.add(new_hkr, opening);
        }
        self.state = next;
        Ok(plaintext)
    }

    /// A message whose key was skipped earlier (or used, or deleted).
    fn decrypt_stored(
        &mut self,
        chain: usize,
        n: u32,
        aad: &[u8],
        body: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, RatchetError> {
        let message_key = self.skipped.get(chain, n).ok_or(RatchetError::Duplicate)?;
        let plaintext = open_body(message_key, aad, body)?;
        // Deleting the key is what makes a replay fail from now on.
        self.skipped.remove(chain, n);
        Ok(plaintext)
    }
}

impl State {
    /// `DHRatchet` of the specification (header-encryption variant).
    fn dh_step<R: CryptoRng + ?Sized>(
        &mut self,
        their_public: &Key,
        rng: &mut R,
    ) -> Result<(), RatchetError> {
        self.pn = self.ns;
        self.ns = 0;
        self.nr = 0;
        self.hks = Some(self.nhks);
        self.hkr = Some(self.nhkr);
        self.dhr = Some(*their_public);
        let dh = diffie_hellman(&self.dhs, their_public)?;
        kdf_rk(
            &mut self.rk,
            dh.as_bytes(),
            self.ckr.insert([0; KEY_LEN]),
            &mut self.nhkr,
        )?;
        self.dhs = StaticSecret::random_from_rng(rng);
        self.dhs_public = PublicKey::from(&self.dhs).to_bytes();
        let dh = diffie_hellman(&self.dhs, their_public)?;
        kdf_rk(
            &mut self.rk,
            dh.as_bytes(),
            self.cks.insert([0; KEY_LEN]),
            &mut self.nhks,
        )
    }
}

/// X25519, refusing low-order public keys: their shared secret is a known
/// constant, so a DH step with one would add nothing secret to the root key.
fn diffie_hellman(secret: &StaticSecret, their_public: &Key) -> Result<SharedSecret, RatchetError> {
    let shared = secret.diffie_hellman(&PublicKey::from(*their_public));
    if shared.was_contributory() {
        Ok(shared)
    } else {
        Err(RatchetError::InvalidRatchetKey)
    }
}

/// `SkipMessageKeys`: advances `chain_key` from position `nr` to `until`,
/// returning the message keys passed over. Without a chain there is nothing to
/// skip, but the bound is still enforced, as in the specification.
fn skip_message_keys(
    chain_key: Option<&mut Key>,
    nr: u32,
    until: u32,
) -> Result<Vec<(u32, BoxedKey)>, RatchetError> {
    if until.saturating_sub(nr) > MAX_SKIP {
        return Err(RatchetError::TooManySkipped);
    }
    let Some(chain_key) = chain_key else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    let mut message_key = Zeroizing::new([0; KEY_LEN]);
    for n in nr..until {
        kdf_ck(chain_key, &mut message_key)?;
        keys.push((n, BoxedKey::new(&message_key)));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;

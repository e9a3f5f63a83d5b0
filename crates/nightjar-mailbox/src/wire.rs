//! What travels between a client and a mailbox: identifiers, the bytes a
//! slot key signs, the binary deposit body and the JSON bodies of the other
//! endpoints. Shared by the server and the client; no I/O here.

use std::fmt;

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Length of a slot id: an Ed25519 verifying key.
pub const SLOT_LEN: usize = 32;
/// Length of a blob id.
pub const BLOB_ID_LEN: usize = 16;
/// Length of a proof-of-work challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Length of a proof-of-work nonce.
pub const POW_NONCE_LEN: usize = 16;
/// Length of a mailbox's instance id.
pub const INSTANCE_LEN: usize = 16;
/// Length of the random nonce in a signed request item.
pub const REQUEST_NONCE_LEN: usize = 16;
/// Bytes in a deposit body before the blob: slot, challenge, proof-of-work nonce.
pub const DEPOSIT_HEADER_LEN: usize = SLOT_LEN + CHALLENGE_LEN + POW_NONCE_LEN;
/// Domain label of every signed request item, so a slot key's signature can
/// never be taken for a signature in any other protocol.
pub const SIGNING_DOMAIN: &[u8] = b"nightjar-mailbox/v2 signed request\0";

/// A mailbox slot. Its bytes are an Ed25519 verifying key: whoever holds the
/// matching signing key may list, fetch and acknowledge the slot's blobs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub [u8; SLOT_LEN]);

/// The id a mailbox gives a stored blob: the first bytes of the blob's BLAKE3
/// hash, so a repeated deposit of the same blob into a slot is recognised.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; BLOB_ID_LEN]);

impl SlotId {
    /// The slot's verifying key, if its bytes are a valid Ed25519 point.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }
}

impl BlobId {
    /// The id of a blob whose BLAKE3 hash is `hash`.
    pub fn from_blob_hash(hash: &[u8; 32]) -> Self {
        let mut id = [0u8; BLOB_ID_LEN];
        id.copy_from_slice(&hash[..BLOB_ID_LEN]);
        BlobId(id)
    }

    /// The id of `blob`.
    pub fn of_blob(blob: &[u8]) -> Self {
        Self::from_blob_hash(blake3::hash(blob).as_bytes())
    }
}

macro_rules! hex_id {
    ($t:ident, $len:expr) => {
        impl $t {
            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                HEXLOWER_PERMISSIVE.encode(&self.0)
            }
            /// Parses hex of exactly the right length.
            pub fn from_hex(s: &str) -> Option<Self> {
                decode_hex::<$len>(s).map($t)
            }
        }
        impl fmt::Debug for $t {
            // Ids are public by design (the mailbox sees them), but a full slot
            // id in a log would let logs be joined with a client's; a prefix is
            // enough to tell ids apart.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let hex = self.to_hex();
                write!(
                    f,
                    concat!(stringify!($t), "({}…)"),
                    hex.get(..8).unwrap_or_default()
                )
            }
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&s)
                    .ok_or_else(|| serde::de::Error::custom(concat!("invalid ", stringify!($t))))
            }
        }
    };
}
hex_id!(SlotId, SLOT_LEN);
hex_id!(BlobId, BLOB_ID_LEN);

/// Decodes hex of exactly `N` bytes.
pub fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let bytes = HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()?;
    bytes.try_into().ok()
}

/// Fixed-length bytes carried as hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hex<const N: usize>(pub [u8; N]);

impl<const N: usize> Serialize for Hex<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&HEXLOWER_PERMISSIVE.encode(&self.0))
    }
}

impl<'de, const N: usize> Deserialize<'de> for Hex<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode_hex::<N>(&s)
            .map(Hex)
            .ok_or_else(|| serde::de::Error::custom(format_args!("expected {N} bytes of hex")))
    }
}

/// Bytes carried as base64 in JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct Base64(pub Vec<u8>);

impl fmt::Debug for Base64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64({} bytes)", self.0.len())
    }
}

impl Serialize for Base64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        BASE64
            .decode(s.as_bytes())
            .map(Base64)
            .map_err(|_| serde::de::Error::custom("invalid base64"))
    }
}

/// What a signed request item asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Operation {
    /// List the ids of a slot's blobs.
    List,
    /// Fetch a slot's blobs.
    Fetch,
    /// Delete blobs of a slot by id, once they are safely received.
    Ack,
}

impl Operation {
    fn label(self) -> u8 {
        match self {
            Operation::List => 1,
            Operation::Fetch => 2,
            Operation::Ack => 3,
        }
    }
}

/// The exact bytes a slot key signs for one request item:
/// `domain || op || slot || timestamp (u64 BE) || nonce || count (u32 BE) || ids`.
/// `ids` is empty except for [`Operation::Ack`].
pub fn signed_bytes(
    op: Operation,
    slot: &SlotId,
    timestamp: u64,
    nonce: &[u8; REQUEST_NONCE_LEN],
    ids: &[BlobId],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(
        SIGNING_DOMAIN.len() + 1 + SLOT_LEN + 8 + REQUEST_NONCE_LEN + 4 + ids.len() * BLOB_ID_LEN,
    );
    m.extend_from_slice(SIGNING_DOMAIN);
    m.push(op.label());
    m.extend_from_slice(&slot.0);
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.extend_from_slice(nonce);
    // A batch never holds anywhere near 2^32 ids; saturating keeps this total.
    let count = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    m.extend_from_slice(&count.to_be_bytes());
    for id in ids {
        m.extend_from_slice(&id.0);
    }
    m
}

/// One signed item of a list, fetch or ack request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedItem {
    /// The slot, which is also the key that made `signature`.
    pub slot: SlotId,
    /// Unix seconds when the item was signed.
    pub timestamp: u64,
    /// Random; the mailbox refuses a nonce it has seen within the time window.
    pub nonce: Hex<REQUEST_NONCE_LEN>,
    /// Blob ids to delete; only in ack requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<BlobId>,
    /// Ed25519 signature over [`signed_bytes`].
    pub signature: Hex<64>,
}

impl SignedItem {
    /// Checks the signature for `op`. Strict verification: small-order keys
    /// and non-canonical signatures are refused.
    pub fn verify(&self, op: Operation) -> bool {
        let Some(key) = self.slot.verifying_key() else {
            return false;
        };
        let sig = Signature::from_bytes(&self.signature.0);
        let msg = signed_bytes(op, &self.slot, self.timestamp, &self.nonce.0, &self.ids);
        key.verify_strict(&msg, &sig).is_ok()
    }
}

/// Body of `POST /v2/list`, `/v2/fetch` and `/v2/ack`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// One item per slot (a slot may appear more than once).
    pub items: Vec<SignedItem>,
}

/// Body of the answer to `GET /v2/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Protocol version (2).
    pub version: u32,
    /// Every blob is exactly this many bytes.
    pub blob_size: usize,
    /// The mailbox's clock, unix seconds, so a client with a skewed clock can
    /// still sign timestamps the mailbox accepts.
    pub time: u64,
    /// How far, in seconds, a signed timestamp may be from `time`.
    pub window_secs: u64,
    /// Most items in one list, fetch or ack request.
    pub max_batch: usize,
    /// The current proof-of-work puzzle.
    pub pow: PowParams,
    /// Random, chosen when the mailbox started. Blobs live in RAM only, so a
    /// sender that finds a different instance than the one it deposited to
    /// knows its deposits were lost and deposits them again.
    pub instance: Hex<INSTANCE_LEN>,
}

/// A proof-of-work puzzle: find a nonce such that
/// `BLAKE3(challenge || slot || BLAKE3(blob) || nonce)` has at least
/// `difficulty` leading zero bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowParams {
    /// Random; rotated every few minutes.
    pub challenge: Hex<CHALLENGE_LEN>,
    /// Leading zero bits required.
    pub difficulty: u8,
}

/// Answer to a deposit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositReceipt {
    /// The blob's id.
    pub id: BlobId,
    /// False if the slot already held this very blob (the deposit was a repeat).
    pub stored: bool,
}

/// Answer to a list request: per item, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    /// One entry per request item.
    pub slots: Vec<SlotListing>,
}

/// The blob ids in one slot, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotListing {
    /// The slot.
    pub slot: SlotId,
    /// Its blobs' ids.
    pub ids: Vec<BlobId>,
}

/// Answer to a fetch request: per item, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    /// One entry per request item.
    pub slots: Vec<SlotBlobs>,
}

/// The blobs of one slot, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotBlobs {
    /// The slot.
    pub slot: SlotId,
    /// Its blobs.
    pub blobs: Vec<FetchedBlob>,
    /// True if the answer was cut short and the slot holds more blobs.
    pub more: bool,
}

/// One fetched blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedBlob {
    /// Its id, to acknowledge it with.
    pub id: BlobId,
    /// Its bytes.
    pub data: Base64,
}

/// Answer to an ack request: per item, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckResponse {
    /// One entry per request item.
    pub slots: Vec<SlotAck>,
}

/// How many blobs an ack deleted from one slot (ids it did not hold are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotAck {
    /// The slot.
    pub slot: SlotId,
    /// Blobs deleted.
    pub deleted: usize,
}

/// Body of every refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A short reason.
    pub error: String,
}

/// A parsed deposit body: `slot || challenge || pow nonce || blob`.
#[derive(Clone, Copy, Debug)]
pub struct DepositBody<'a> {
    /// Where to store the blob.
    pub slot: SlotId,
    /// The challenge the work was done for.
    pub challenge: [u8; CHALLENGE_LEN],
    /// The proof-of-work nonce.
    pub nonce: [u8; POW_NONCE_LEN],
    /// The blob.
    pub blob: &'a [u8],
}

impl<'a> DepositBody<'a> {
    /// Splits a deposit body; `None` if it is shorter than its fixed header.
    pub fn parse(body: &'a [u8]) -> Option<Self> {
        let (slot, rest) = body.split_first_chunk::<SLOT_LEN>()?;
        let (challenge, rest) = rest.split_first_chunk::<CHALLENGE_LEN>()?;
        let (nonce, blob) = rest.split_first_chunk::<POW_NONCE_LEN>()?;
        Some(DepositBody {
            slot: SlotId(*slot),
            challenge: *challenge,
            nonce: *nonce,
            blob,
        })
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(DEPOSIT_HEADER_LEN + self.blob.len());
        v.extend_from_slice(&self.slot.0);
        v.extend_from_slice(&self.challenge);
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(self.blob);
        v
    }
}

/// Length of every cell posted to a room.
pub const ROOM_CELL_LEN: usize = 1024;
/// Length of a room key.
pub const ROOM_KEY_LEN: usize = 32;
/// Bytes in a room post body before the cell: room key, challenge, proof-of-work nonce.
pub const ROOM_POST_HEADER_LEN: usize = ROOM_KEY_LEN + CHALLENGE_LEN + POW_NONCE_LEN;
/// Context of the hash that turns a room key into what a post's work is bound to.
const ROOM_WORK_CONTEXT: &str = "nightjar-mailbox/v2 room post work";

/// The secret that names a room: whoever holds it may post to the room and
/// read it. Members share it; the mailbox hashes it on arrival and keeps only
/// a keyed hash. Boxed so moves leave no copies, wiped on drop, and its
/// `Debug` prints nothing of it.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct RoomKey(Box<[u8; ROOM_KEY_LEN]>);

impl RoomKey {
    /// The room key with these bytes.
    pub fn from_bytes(bytes: &[u8; ROOM_KEY_LEN]) -> Self {
        RoomKey(Box::new(*bytes))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; ROOM_KEY_LEN] {
        &self.0
    }

    /// What a post's proof of work is bound to in place of a deposit's slot: a
    /// one-way hash of the key, so the work buys a post to this room only.
    pub fn work_target(&self) -> SlotId {
        SlotId(blake3::derive_key(ROOM_WORK_CONTEXT, self.as_bytes()))
    }
}

impl fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomKey(..)")
    }
}

impl Serialize for RoomKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = zeroize::Zeroizing::new(HEXLOWER_PERMISSIVE.encode(self.as_bytes()));
        s.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for RoomKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let invalid = || serde::de::Error::custom("expected a 32-byte room key in hex");
        if s.len() != 2 * ROOM_KEY_LEN {
            return Err(invalid());
        }
        // Decoded straight into the box, so no stray copy of the key is left.
        let mut key = RoomKey(Box::new([0; ROOM_KEY_LEN]));
        HEXLOWER_PERMISSIVE
            .decode_mut(s.as_bytes(), key.0.as_mut())
            .map_err(|_| invalid())?;
        Ok(key)
    }
}

/// A parsed room post body: `room key || challenge || pow nonce || cell`.
#[derive(Debug)]
pub struct RoomPostBody<'a> {
    /// The room.
    pub room: RoomKey,
    /// The challenge the work was done for.
    pub challenge: [u8; CHALLENGE_LEN],
    /// The proof-of-work nonce.
    pub nonce: [u8; POW_NONCE_LEN],
    /// The cell.
    pub cell: &'a [u8],
}

impl<'a> RoomPostBody<'a> {
    /// Splits a room post body; `None` if it is shorter than its fixed header.
    pub fn parse(body: &'a [u8]) -> Option<Self> {
        let (room, rest) = body.split_first_chunk::<ROOM_KEY_LEN>()?;
        let (challenge, rest) = rest.split_first_chunk::<CHALLENGE_LEN>()?;
        let (nonce, cell) = rest.split_first_chunk::<POW_NONCE_LEN>()?;
        Some(RoomPostBody {
            room: RoomKey::from_bytes(room),
            challenge: *challenge,
            nonce: *nonce,
            cell,
        })
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ROOM_POST_HEADER_LEN + self.cell.len());
        v.extend_from_slice(self.room.as_bytes());
        v.extend_from_slice(&self.challenge);
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(self.cell);
        v
    }
}

/// Answer to a room post.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPosted {
    /// The cell's sequence number in its room.
    pub seq: u64,
    /// False if this very post was already taken (a retry after a lost answer).
    pub stored: bool,
}

/// Body of `POST /v2/rooms/read`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomRead {
    /// The room.
    pub room: RoomKey,
    /// Only cells with a greater sequence number are returned.
    pub after: u64,
    /// Most cells wanted; the mailbox may return fewer (see `more`).
    pub max: u32,
}

/// Answer to a room read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCells {
    /// The cells after `after`, oldest first.
    pub cells: Vec<RoomCell>,
    /// The sequence number of the oldest cell the room still holds, `None` if
    /// it holds none. A reader whose `after` is below `oldest - 1` may have
    /// missed cells: some were dropped, or the room emptied and came back
    /// with higher numbers (the relay keeps nothing of a dropped room).
    pub oldest: Option<u64>,
    /// True if the answer was cut short and more cells are waiting.
    pub more: bool,
}

/// One cell of a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCell {
    /// Its sequence number.
    pub seq: u64,
    /// Its bytes.
    pub data: Base64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex_and_json() {
        let slot = SlotId([7; 32]);
        assert_eq!(SlotId::from_hex(&slot.to_hex()), Some(slot));
        assert_eq!(SlotId::from_hex("07"), None);
        assert_eq!(SlotId::from_hex(&"zz".repeat(32)), None);
        let json = serde_json::to_string(&slot).unwrap();
        assert_eq!(serde_json::from_str::<SlotId>(&json).unwrap(), slot);
        assert!(format!("{slot:?}").len() < 30);
    }

    #[test]
    fn deposit_body_round_trip() {
        let blob = [9u8; 10];
        let body = DepositBody {
            slot: SlotId([1; 32]),
            challenge: [2; 32],
            nonce: [3; 16],
            blob: &blob,
        };
        let bytes = body.to_bytes();
        let parsed = DepositBody::parse(&bytes).unwrap();
        assert_eq!(parsed.slot, body.slot);
        assert_eq!(parsed.challenge, body.challenge);
        assert_eq!(parsed.nonce, body.nonce);
        assert_eq!(parsed.blob, &blob);
        assert!(DepositBody::parse(&bytes[..DEPOSIT_HEADER_LEN - 1]).is_none());
    }

    #[test]
    fn signed_bytes_bind_every_field() {
        let slot = SlotId([1; 32]);
        let base = signed_bytes(Operation::Ack, &slot, 5, &[0; 16], &[BlobId([1; 16])]);
        assert_ne!(
            base,
            signed_bytes(Operation::Fetch, &slot, 5, &[0; 16], &[BlobId([1; 16])])
        );
        assert_ne!(
            base,
            signed_bytes(
                Operation::Ack,
                &SlotId([2; 32]),
                5,
                &[0; 16],
                &[BlobId([1; 16])]
            )
        );
        assert_ne!(
            base,
            signed_bytes(Operation::Ack, &slot, 6, &[0; 16], &[BlobId([1; 16])])
        );
        assert_ne!(
            base,
            signed_bytes(Operation::Ack, &slot, 5, &[1; 16], &[BlobId([1; 16])])
        );
        assert_ne!(
            base,
            signed_bytes(Operation::Ack, &slot, 5, &[0; 16], &[BlobId([2; 16])])
        );
        assert_ne!(base, signed_bytes(Operation::Ack, &slot, 5, &[0; 16], &[]));
    }

    #[test]
    fn room_post_body_round_trip() {
        let cell = [9u8; ROOM_CELL_LEN];
        let body = RoomPostBody {
            room: RoomKey::from_bytes(&[1; 32]),
            challenge: [2; 32],
            nonce: [3; 16],
            cell: &cell,
        };
        let bytes = body.to_bytes();
        assert_eq!(bytes.len(), ROOM_POST_HEADER_LEN + ROOM_CELL_LEN);
        let parsed = RoomPostBody::parse(&bytes).unwrap();
        assert_eq!(parsed.room.as_bytes(), body.room.as_bytes());
        assert_eq!(parsed.challenge, body.challenge);
        assert_eq!(parsed.nonce, body.nonce);
        assert_eq!(parsed.cell, &cell);
        assert!(RoomPostBody::parse(&bytes[..ROOM_POST_HEADER_LEN - 1]).is_none());
    }

    #[test]
    fn room_keys_travel_as_hex_and_never_print() {
        let key = RoomKey::from_bytes(&[0xab; 32]);
        let read = RoomRead {
            room: key.clone(),
            after: 7,
            max: 3,
        };
        let json = serde_json::to_string(&read).unwrap();
        assert!(json.contains(&"ab".repeat(32)));
        let back: RoomRead = serde_json::from_str(&json).unwrap();
        assert_eq!(back.room.as_bytes(), key.as_bytes());
        assert_eq!((back.after, back.max), (7, 3));
        for bad in ["\"ab\"", "\"zz\"", &format!("\"{}\"", "zz".repeat(32))] {
            assert!(serde_json::from_str::<RoomKey>(bad).is_err(), "{bad}");
        }
        assert!(!format!("{key:?} {read:?}").contains("ab"));
        // The work target is a one-way function of the key, not the key.
        assert_ne!(key.work_target().0, *key.as_bytes());
        assert_ne!(
            key.work_target(),
            RoomKey::from_bytes(&[0xac; 32]).work_target()
        );
    }
}

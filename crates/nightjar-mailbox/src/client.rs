//! A mailbox client without I/O: it builds `http::Request<Vec<u8>>` values
//! (signing them, solving proof of work) and parses `http::Response<Vec<u8>>`
//! values, so the caller can carry them over any transport, such as a Tor
//! stream with hyper's client connection.

use ed25519_dalek::{Signer, SigningKey};
use http::{Method, Request, Response, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pow;
use crate::wire::{
    AckResponse, BatchRequest, BlobId, CHALLENGE_LEN, DepositBody, DepositReceipt, ErrorBody,
    FetchResponse, Hex, Info, ListResponse, Operation, POW_NONCE_LEN, REQUEST_NONCE_LEN,
    ROOM_CELL_LEN, RoomCells, RoomKey, RoomPostBody, RoomPosted, RoomRead, SignedItem, SlotId,
    signed_bytes,
};

/// Errors building requests or reading answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The mailbox refused the request.
    #[error("mailbox refused ({status}): {reason}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The mailbox's reason.
        reason: String,
    },
    /// The answer could not be understood.
    #[error("unexpected answer from the mailbox: {0}")]
    BadResponse(String),
    /// The blob (or room cell) is not the size the mailbox takes.
    #[error("blob must be exactly {expected} bytes, got {got}")]
    WrongBlobSize {
        /// The mailbox's blob size.
        expected: usize,
        /// The blob's size.
        got: usize,
    },
    /// No proof-of-work solution within the attempt budget.
    #[error("no proof-of-work solution within the attempt budget")]
    NoSolution,
    /// A request needs at least one item.
    #[error("empty request")]
    Empty,
    /// The system's randomness failed.
    #[error("no randomness available")]
    Random,
    /// The request could not be built (a bad host name).
    #[error("cannot build request: {0}")]
    Build(String),
}

/// The signing key of a slot. Its verifying key is the slot id. The key is
/// boxed so moves do not leave copies, and wiped on drop.
pub struct SlotKey {
    key: Box<SigningKey>,
    slot: SlotId,
}

impl std::fmt::Debug for SlotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotKey")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl SlotKey {
    /// The slot key with this 32-byte seed (derived from the ratchet by both peers).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = Box::new(SigningKey::from_bytes(seed));
        let slot = SlotId(key.verifying_key().to_bytes());
        SlotKey { key, slot }
    }

    /// A random slot key.
    pub fn random() -> Result<Self, ClientError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| ClientError::Random)?;
        Ok(Self::from_seed(&seed))
    }

    /// The slot this key opens.
    pub fn slot(&self) -> SlotId {
        self.slot
    }

    /// Signs one request item with a given timestamp and nonce.
    pub fn sign(
        &self,
        op: Operation,
        timestamp: u64,
        nonce: [u8; REQUEST_NONCE_LEN],
        ids: Vec<BlobId>,
    ) -> SignedItem {
        let msg = signed_bytes(op, &self.slot, timestamp, &nonce, &ids);
        SignedItem {
            slot: self.slot,
            timestamp,
            nonce: Hex(nonce),
            ids,
            signature: Hex(self.key.sign(&msg).to_bytes()),
        }
    }

    /// Signs one request item at `timestamp` with a fresh random nonce.
    pub fn sign_now(
        &self,
        op: Operation,
        timestamp: u64,
        ids: Vec<BlobId>,
    ) -> Result<SignedItem, ClientError> {
        let mut nonce = [0u8; REQUEST_NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| ClientError::Random)?;
        Ok(self.sign(op, timestamp, nonce, ids))
    }
}

/// Builds requests for one mailbox, named by the `Host` header it is reached
/// under (for an onion service, its `.onion` name).
#[derive(Clone, Debug)]
pub struct Client {
    host: String,
}

impl Client {
    /// A client for the mailbox reached as `host`.
    pub fn new(host: impl Into<String>) -> Result<Self, ClientError> {
        let host = host.into();
        http::HeaderValue::from_str(&host).map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Client { host })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Request<Vec<u8>>, ClientError> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, body.len())
            .body(body)
            .map_err(|e| ClientError::Build(e.to_string()))
    }

    /// `GET /v2/info`; read the answer with [`parse_info`].
    pub fn info_request(&self) -> Result<Request<Vec<u8>>, ClientError> {
        Request::builder()
            .method(Method::GET)
            .uri("/v2/info")
            .header(header::HOST, &self.host)
            .body(Vec::new())
            .map_err(|e| ClientError::Build(e.to_string()))
    }

    /// `POST /v2/deposit` of `blob` into `slot`, with work solved for the
    /// puzzle in `info` (trying at most `max_attempts` nonces). This is the
    /// CPU-heavy step; run it off an async executor's workers.
    pub fn deposit_request(
        &self,
        info: &Info,
        slot: &SlotId,
        blob: &[u8],
        max_attempts: u64,
    ) -> Result<Request<Vec<u8>>, ClientError> {
        if blob.len() != info.blob_size {
            return Err(ClientError::WrongBlobSize {
                expected: info.blob_size,
                got: blob.len(),
            });
        }
        let (challenge, nonce) = solve_work(info, slot, blob, max_attempts)?;
        let body = DepositBody {
            slot: *slot,
            challenge,
            nonce,
            blob,
        };
        self.request(
            Method::POST,
            "/v2/deposit",
            "application/octet-stream",
            body.to_bytes(),
        )
    }

    /// `POST /v2/rooms/post` of one `cell` ([`ROOM_CELL_LEN`] bytes) to the
    /// room named by `room`, with work solved for the puzzle in `info`. As
    /// with deposits, this is the CPU-heavy step.
    pub fn room_post_request(
        &self,
        info: &Info,
        room: &RoomKey,
        cell: &[u8],
        max_attempts: u64,
    ) -> Result<Request<Vec<u8>>, ClientError> {
        if cell.len() != ROOM_CELL_LEN {
            return Err(ClientError::WrongBlobSize {
                expected: ROOM_CELL_LEN,
                got: cell.len(),
            });
        }
        let (challenge, nonce) = solve_work(info, &room.work_target(), cell, max_attempts)?;
        let body = RoomPostBody {
            room: room.clone(),
            challenge,
            nonce,
            cell,
        };
        self.request(
            Method::POST,
            "/v2/rooms/post",
            "application/octet-stream",
            body.to_bytes(),
        )
    }

    /// `POST /v2/rooms/read`: at most `max` cells of the room named by `room`
    /// numbered above `after` (0 for all).
    pub fn room_read_request(
        &self,
        room: &RoomKey,
        after: u64,
        max: u32,
    ) -> Result<Request<Vec<u8>>, ClientError> {
        let req = RoomRead {
            room: room.clone(),
            after,
            max,
        };
        let body = serde_json::to_vec(&req).map_err(|e| ClientError::Build(e.to_string()))?;
        self.request(Method::POST, "/v2/rooms/read", "application/json", body)
    }

    fn batch(&self, path: &str, items: Vec<SignedItem>) -> Result<Request<Vec<u8>>, ClientError> {
        if items.is_empty() {
            return Err(ClientError::Empty);
        }
        let body = serde_json::to_vec(&BatchRequest { items })
            .map_err(|e| ClientError::Build(e.to_string()))?;
        self.request(Method::POST, path, "application/json", body)
    }

    fn signed(keys: &[&SlotKey], op: Operation, now: u64) -> Result<Vec<SignedItem>, ClientError> {
        keys.iter()
            .map(|k| k.sign_now(op, now, Vec::new()))
            .collect()
    }

    /// `POST /v2/list` for the given slots, signed at `now` (the mailbox's
    /// time, as estimated from [`Info::time`]).
    pub fn list_request(
        &self,
        keys: &[&SlotKey],
        now: u64,
    ) -> Result<Request<Vec<u8>>, ClientError> {
        self.batch("/v2/list", Self::signed(keys, Operation::List, now)?)
    }

    /// `POST /v2/fetch` for the given slots, signed at `now`.
    pub fn fetch_request(
        &self,
        keys: &[&SlotKey],
        now: u64,
    ) -> Result<Request<Vec<u8>>, ClientError> {
        self.batch("/v2/fetch", Self::signed(keys, Operation::Fetch, now)?)
    }

    /// `POST /v2/ack` deleting the given blobs of each slot, signed at `now`.
    pub fn ack_request(
        &self,
        acks: &[(&SlotKey, Vec<BlobId>)],
        now: u64,
    ) -> Result<Request<Vec<u8>>, ClientError> {
        let items = acks
            .iter()
            .map(|(k, ids)| k.sign_now(Operation::Ack, now, ids.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch("/v2/ack", items)
    }

    /// Any batch of already signed items to `path` (`/v2/list`, `/v2/fetch`, `/v2/ack`).
    pub fn signed_request(
        &self,
        path: &str,
        items: Vec<SignedItem>,
    ) -> Result<Request<Vec<u8>>, ClientError> {
        self.batch(path, items)
    }
}

/// Solves the puzzle in `info` for `payload` bound to `target` (a slot, or a
/// room's work target), starting from a random nonce.
fn solve_work(
    info: &Info,
    target: &SlotId,
    payload: &[u8],
    max_attempts: u64,
) -> Result<([u8; CHALLENGE_LEN], [u8; POW_NONCE_LEN]), ClientError> {
    let mut start = [0u8; POW_NONCE_LEN];
    getrandom::fill(&mut start).map_err(|_| ClientError::Random)?;
    let challenge = info.pow.challenge.0;
    let hash = *blake3::hash(payload).as_bytes();
    let nonce = pow::solve(
        &challenge,
        target,
        &hash,
        info.pow.difficulty,
        start,
        max_attempts,
    )
    .ok_or(ClientError::NoSolution)?;
    Ok((challenge, nonce))
}

fn parse<T: DeserializeOwned>(resp: &Response<Vec<u8>>) -> Result<T, ClientError> {
    if !resp.status().is_success() {
        let reason = serde_json::from_slice::<ErrorBody>(resp.body())
            .map(|b| b.error)
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(resp.body())
                    .chars()
                    .take(160)
                    .collect()
            });
        return Err(ClientError::Refused {
            status: resp.status(),
            reason,
        });
    }
    serde_json::from_slice(resp.body()).map_err(|e| ClientError::BadResponse(e.to_string()))
}

/// Reads the answer to [`Client::info_request`].
pub fn parse_info(resp: &Response<Vec<u8>>) -> Result<Info, ClientError> {
    parse(resp)
}

/// Reads the answer to [`Client::deposit_request`].
pub fn parse_deposit(resp: &Response<Vec<u8>>) -> Result<DepositReceipt, ClientError> {
    parse(resp)
}

/// Reads the answer to [`Client::list_request`].
pub fn parse_list(resp: &Response<Vec<u8>>) -> Result<ListResponse, ClientError> {
    parse(resp)
}

/// Reads the answer to [`Client::fetch_request`].
pub fn parse_fetch(resp: &Response<Vec<u8>>) -> Result<FetchResponse, ClientError> {
    parse(resp)
}

/// Reads the answer to [`Client::ack_request`].
pub fn parse_ack(resp: &Response<Vec<u8>>) -> Result<AckResponse, ClientError> {
    parse(resp)
}

/// Reads the answer to [`Client::room_post_request`].
pub fn parse_room_post(resp: &Response<Vec<u8>>) -> Result<RoomPosted, ClientError> {
    parse(resp)
}

/// Reads the answer to [`Client::room_read_request`].
pub fn parse_room_read(resp: &Response<Vec<u8>>) -> Result<RoomCells, ClientError> {
    parse(resp)
}

/// Serialises any answer type, for servers other than this crate's.
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(value).map_err(|e| ClientError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CHALLENGE_LEN, PowParams};

    #[test]
    fn signed_items_verify_for_their_operation_only() {
        let key = SlotKey::from_seed(&[3; 32]);
        let item = key.sign(Operation::Fetch, 100, [1; 16], Vec::new());
        assert!(item.verify(Operation::Fetch));
        assert!(!item.verify(Operation::List));
        let mut tampered = item.clone();
        tampered.timestamp += 1;
        assert!(!tampered.verify(Operation::Fetch));
        let ack = key.sign(Operation::Ack, 100, [1; 16], vec![BlobId([1; 16])]);
        let mut other_ids = ack.clone();
        other_ids.ids = vec![BlobId([2; 16])];
        assert!(ack.verify(Operation::Ack));
        assert!(!other_ids.verify(Operation::Ack));
        assert!(!format!("{key:?}").contains("key:"));
    }

    #[test]
    fn deposit_request_carries_valid_work() {
        let info = Info {
            version: 2,
            blob_size: 8,
            time: 0,
            window_secs: 60,
            max_batch: 4,
            pow: PowParams {
                challenge: Hex([7; CHALLENGE_LEN]),
                difficulty: 8,
            },
            instance: Hex([0; 16]),
        };
        let client = Client::new("mailbox.example").unwrap();
        let slot = SlotKey::from_seed(&[1; 32]).slot();
        let req = client
            .deposit_request(&info, &slot, &[5; 8], 1 << 20)
            .unwrap();
        assert_eq!(req.uri().path(), "/v2/deposit");
        let body = DepositBody::parse(req.body()).unwrap();
        let d = pow::digest(
            &body.challenge,
            &body.slot,
            blake3::hash(body.blob).as_bytes(),
            &body.nonce,
        );
        assert!(pow::leading_zero_bits(&d) >= 8);
        assert!(matches!(
            client.deposit_request(&info, &slot, &[5; 9], 1),
            Err(ClientError::WrongBlobSize {
                expected: 8,
                got: 9
            })
        ));
    }

    #[test]
    fn refusals_are_parsed() {
        let resp = Response::builder()
            .status(507)
            .body(br#"{"error":"mailbox full"}"#.to_vec())
            .unwrap();
        match parse_info(&resp) {
            Err(ClientError::Refused { status, reason }) => {
                assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
                assert_eq!(reason, "mailbox full");
            }
            other => panic!("{other:?}"),
        }
        let garbage = Response::builder()
            .status(200)
            .body(b"nope".to_vec())
            .unwrap();
        assert!(matches!(
            parse_info(&garbage),
            Err(ClientError::BadResponse(_))
        ));
    }
}

//! Profile storage: one SQLCipher database per profile, or an in-memory database
//! for ephemeral profiles; the same code runs on both.
//!
//! THIS FILE IS THE CONTRACT: the types and method signatures below are what the
//! node uses. Bodies are to be written.

use std::path::Path;

use zeroize::Zeroizing;

/// A contact's row id.
pub type ContactId = i64;
/// A contact request's row id.
pub type RequestId = i64;

/// Errors, worded for the person using nightjar.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The passphrase does not open this profile.
    #[error("wrong passphrase for this profile")]
    WrongPassphrase,
    /// Another nightjar process has the profile open.
    #[error("the profile is in use by another nightjar process")]
    Locked,
    /// No profile at that place.
    #[error("no profile found at {0}")]
    NoProfile(String),
    /// A profile already exists at that place.
    #[error("a profile already exists at {0}")]
    ProfileExists(String),
    /// A contact with that local name exists already.
    #[error("there is already a contact named {0:?}")]
    NameTaken(String),
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The database was written by a newer nightjar.
    #[error("the profile was written by a newer version of nightjar (schema {0})")]
    TooNew(u32),
    /// The database holds something it should not (a bug or tampering).
    #[error("the profile database is damaged: {0}")]
    Corrupt(String),
    /// SQLite / SQLCipher failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// File-system trouble.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Argon2id cost for turning a passphrase into the database key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// What profiles are created with: 64 MiB, 3 passes, 1 lane (about half a
    /// second on a laptop core).
    pub const DEFAULT: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };
}

/// The profile's own secrets, written once at creation.
pub struct ProfileRecord {
    /// `IdentityKeyPair::to_secret_bytes()`.
    pub identity_secret: Zeroizing<[u8; 64]>,
    /// Ed25519 seed of the public request onion service.
    pub request_seed: Zeroizing<[u8; 32]>,
    /// Ed25519 seed of the private endpoint onion service.
    pub endpoint_seed: Zeroizing<[u8; 32]>,
    /// When the profile was made (ms since the Unix epoch).
    pub created_at_ms: u64,
}

/// Where a contact is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    /// We accepted their request; our `Accept` has not been acknowledged yet.
    Accepting,
    /// Both sides are contacts.
    Active,
}

/// A contact.
#[derive(Clone)]
pub struct ContactRecord {
    pub id: ContactId,
    /// Our local name for them (unique in the profile).
    pub name: String,
    /// Their Ed25519 identity key.
    pub identity_key: [u8; 32],
    /// Their endpoint onion's public key.
    pub their_endpoint: [u8; 32],
    /// The client-authorization secret they issued us for their endpoint.
    pub their_credential: Zeroizing<[u8; 32]>,
    /// The client-authorization secret we issued them for our endpoint (we keep it to
    /// resend our `Accept`, and its public half is on our endpoint's list).
    pub our_credential: Zeroizing<[u8; 32]>,
    pub state: ContactState,
    /// Their fingerprint was confirmed by us.
    pub verified: bool,
    /// We tell them when we go online or offline.
    pub share_presence: bool,
    pub created_at_ms: u64,
}

/// Which way a request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestDirection {
    Incoming,
    Outgoing,
}

/// A contact request, incoming or outgoing.
#[derive(Clone)]
pub struct RequestRecord {
    pub id: RequestId,
    pub direction: RequestDirection,
    /// The other side's Ed25519 identity key.
    pub peer_key: [u8; 32],
    /// Outgoing: their request onion's public key (where we send it). Incoming: None.
    pub peer_request_onion: Option<[u8; 32]>,
    /// Incoming: their endpoint and the credential they issued us. Outgoing: None.
    pub their_endpoint: Option<[u8; 32]>,
    pub their_credential: Option<Zeroizing<[u8; 32]>>,
    /// Outgoing: the credential we issued them for our endpoint. Incoming: None.
    pub our_credential: Option<Zeroizing<[u8; 32]>>,
    /// Outgoing: the local name we gave them. Incoming: None.
    pub name: Option<String>,
    /// The greeting (sent or received).
    pub greeting: String,
    /// Outgoing: the peer confirmed it stored the request. Incoming: always true.
    pub delivered: bool,
    pub created_at_ms: u64,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageState {
    /// Outgoing, stored, not yet written to a link.
    Queued,
    /// Outgoing, written to a link, no receipt yet.
    Sent,
    /// Outgoing, the peer's receipt arrived.
    Delivered,
    /// Incoming, stored.
    Received,
}

/// One message of a conversation.
#[derive(Clone)]
pub struct MessageRecord {
    /// Position in the conversation (increasing in the order we stored them).
    pub seq: i64,
    pub contact: ContactId,
    /// The sender's random id (for receipts and de-duplication).
    pub id: [u8; 16],
    pub direction: Direction,
    pub body: String,
    /// The sender's clock.
    pub sent_at_ms: u64,
    /// Our clock when it was stored.
    pub stored_at_ms: u64,
    pub state: MessageState,
}

/// An open profile.
pub struct Store {
    _private: (),
}

#[allow(unused_variables, clippy::unimplemented)]
const _: () = ();

#[allow(unused_variables)]
impl Store {
    /// Creates a profile in `dir` (made 0700; files in it 0600), keyed by
    /// `passphrase` through Argon2id with `params`, and holds its lock.
    pub fn create(
        dir: &Path,
        passphrase: &str,
        params: KdfParams,
        profile: &ProfileRecord,
    ) -> Result<Self, StoreError> {
        unimplemented!()
    }
    /// Opens the profile in `dir` and holds its lock until dropped.
    pub fn open(dir: &Path, passphrase: &str) -> Result<Self, StoreError> {
        unimplemented!()
    }
    /// An ephemeral profile: an in-memory database, nothing on disk.
    pub fn in_memory(profile: &ProfileRecord) -> Result<Self, StoreError> {
        unimplemented!()
    }
    /// Whether `dir` holds a profile.
    pub fn exists(dir: &Path) -> bool {
        unimplemented!()
    }

    pub fn profile(&self) -> Result<ProfileRecord, StoreError> {
        unimplemented!()
    }

    pub fn contacts(&self) -> Result<Vec<ContactRecord>, StoreError> {
        unimplemented!()
    }
    pub fn contact(&self, id: ContactId) -> Result<ContactRecord, StoreError> {
        unimplemented!()
    }
    pub fn contact_by_name(&self, name: &str) -> Result<Option<ContactRecord>, StoreError> {
        unimplemented!()
    }
    pub fn contact_by_key(
        &self,
        identity_key: &[u8; 32],
    ) -> Result<Option<ContactRecord>, StoreError> {
        unimplemented!()
    }
    pub fn set_contact_state(
        &mut self,
        id: ContactId,
        state: ContactState,
    ) -> Result<(), StoreError> {
        unimplemented!()
    }
    pub fn set_verified(&mut self, id: ContactId, verified: bool) -> Result<(), StoreError> {
        unimplemented!()
    }
    pub fn set_share_presence(&mut self, id: ContactId, on: bool) -> Result<(), StoreError> {
        unimplemented!()
    }
    /// Deletes the contact and its whole conversation.
    pub fn delete_contact(&mut self, id: ContactId) -> Result<(), StoreError> {
        unimplemented!()
    }

    pub fn requests(&self) -> Result<Vec<RequestRecord>, StoreError> {
        unimplemented!()
    }
    pub fn request(&self, id: RequestId) -> Result<RequestRecord, StoreError> {
        unimplemented!()
    }
    /// Stores an incoming request; a newer one from the same identity replaces it.
    pub fn put_incoming_request(
        &mut self,
        peer_key: &[u8; 32],
        their_endpoint: &[u8; 32],
        their_credential: &[u8; 32],
        greeting: &str,
        now_ms: u64,
    ) -> Result<RequestRecord, StoreError> {
        unimplemented!()
    }
    /// Stores an outgoing request (undelivered). Fails with NameTaken if `name` is
    /// a contact's or another outgoing request's name.
    pub fn add_outgoing_request(
        &mut self,
        peer_key: &[u8; 32],
        peer_request_onion: &[u8; 32],
        our_credential: &[u8; 32],
        name: &str,
        greeting: &str,
        now_ms: u64,
    ) -> Result<RequestRecord, StoreError> {
        unimplemented!()
    }
    pub fn mark_request_delivered(&mut self, id: RequestId) -> Result<(), StoreError> {
        unimplemented!()
    }
    pub fn delete_request(&mut self, id: RequestId) -> Result<(), StoreError> {
        unimplemented!()
    }
    /// In one transaction: the incoming request becomes a contact in state Accepting.
    pub fn accept_incoming(
        &mut self,
        id: RequestId,
        name: &str,
        our_credential: &[u8; 32],
        now_ms: u64,
    ) -> Result<ContactRecord, StoreError> {
        unimplemented!()
    }
    /// In one transaction: the outgoing request becomes an Active contact.
    pub fn complete_outgoing(
        &mut self,
        id: RequestId,
        their_endpoint: &[u8; 32],
        their_credential: &[u8; 32],
        now_ms: u64,
    ) -> Result<ContactRecord, StoreError> {
        unimplemented!()
    }

    /// Stores an outgoing message as Queued.
    pub fn queue_message(
        &mut self,
        contact: ContactId,
        id: &[u8; 16],
        body: &str,
        sent_at_ms: u64,
        now_ms: u64,
    ) -> Result<MessageRecord, StoreError> {
        unimplemented!()
    }
    /// Queued -> Sent (Delivered ones stay Delivered).
    pub fn mark_sent(&mut self, contact: ContactId, id: &[u8; 16]) -> Result<(), StoreError> {
        unimplemented!()
    }
    /// -> Delivered; returns the ids that changed (unknown or already delivered ids
    /// are skipped).
    pub fn mark_delivered(
        &mut self,
        contact: ContactId,
        ids: &[[u8; 16]],
    ) -> Result<Vec<[u8; 16]>, StoreError> {
        unimplemented!()
    }
    /// Stores an incoming message; `None` if this id from this contact was stored
    /// before (a duplicate).
    pub fn store_incoming(
        &mut self,
        contact: ContactId,
        id: &[u8; 16],
        body: &str,
        sent_at_ms: u64,
        now_ms: u64,
    ) -> Result<Option<MessageRecord>, StoreError> {
        unimplemented!()
    }
    /// Outgoing messages without a receipt (Queued or Sent), oldest first.
    pub fn undelivered(&self, contact: ContactId) -> Result<Vec<MessageRecord>, StoreError> {
        unimplemented!()
    }
    /// The last `limit` messages of a conversation, oldest first.
    pub fn history(
        &self,
        contact: ContactId,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        unimplemented!()
    }
}

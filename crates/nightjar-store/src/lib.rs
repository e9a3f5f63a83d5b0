//! Profile storage: one SQLCipher database per profile, or an in-memory database
//! for ephemeral profiles; the same code runs on both.
//!
//! A profile on disk is a directory (0700) holding:
//! - `profile.db`, the SQLCipher database, keyed with a raw 256-bit key (plus its
//!   `-wal` and `-shm` files while open);
//! - `profile.kdf`, the Argon2id salt and costs that turn the passphrase into that
//!   key (nothing secret);
//! - `lock`, on which an open [`Store`] holds an exclusive `flock`.
//!
//! Every file is 0600. Every change is one transaction with `synchronous = FULL`, so
//! whatever a method returned `Ok` for survives a crash right after.

mod files;
mod groups;
mod kdf;
mod lock;
mod offline;
mod rows;
mod schema;
mod transfers;

use std::fmt;
use std::fs;
use std::path::Path;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, Params, Row, Transaction, TransactionBehavior, params,
};
use tracing::debug;
use zeroize::Zeroizing;

use crate::files::Layout;
use crate::kdf::{DatabaseKey, KdfFile};
use crate::lock::ProfileLock;
use crate::rows::{
    CONTACT_COLUMNS, MESSAGE_COLUMNS, PROFILE_COLUMNS, REQUEST_COLUMNS, time_to_sql,
};

pub use crate::groups::{GroupMessageRecord, GroupRecord, GroupRef, GroupText};
pub use crate::offline::{IncomingText, NewSealed, RecvChainRecord, SealedRecord};
pub use crate::transfers::{
    NewOutgoing, TransferDirection, TransferId, TransferRecord, TransferState,
};

/// A contact's row id.
pub type ContactId = i64;
/// A contact request's row id.
pub type RequestId = i64;

/// Bytes in one sealed blob (the protocol's cell length).
pub(crate) const BLOB_LEN: usize = 498;

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
    /// The identity key belongs to an existing contact (named here).
    #[error("they are already a contact, named {0:?}")]
    KnownKey(String),
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A limit on how many of something the profile keeps (names what, and the
    /// limit).
    #[error("too many {0}")]
    TooMany(&'static str),
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
    /// No message goes to them until a shared-secret authentication has succeeded
    /// (asked for when the contact was made from an invite code).
    pub require_auth: bool,
}

/// A contact made directly, without a request (see [`Store::add_direct_contact`]).
pub struct DirectContact<'a> {
    pub name: &'a str,
    pub identity_key: &'a [u8; 32],
    pub their_endpoint: &'a [u8; 32],
    pub their_credential: &'a [u8; 32],
    pub our_credential: &'a [u8; 32],
    pub require_auth: bool,
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
    /// Outgoing, left in one of their mailboxes, no receipt yet.
    Deposited,
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
    /// Incoming: it came through one of our mailboxes. Outgoing: a copy was left
    /// in one of theirs (and was not lost there).
    pub via_mailbox: bool,
    /// It crossed a link: received over one, or written to one.
    pub direct: bool,
}

impl fmt::Debug for ProfileRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileRecord")
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// Shows neither keys, credentials nor the name.
impl fmt::Debug for ContactRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactRecord")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("verified", &self.verified)
            .field("share_presence", &self.share_presence)
            .field("require_auth", &self.require_auth)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// Shows neither keys, credentials nor the name.
impl fmt::Debug for DirectContact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectContact")
            .field("require_auth", &self.require_auth)
            .finish_non_exhaustive()
    }
}

/// Shows neither keys, credentials, the name nor the greeting.
impl fmt::Debug for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRecord")
            .field("id", &self.id)
            .field("direction", &self.direction)
            .field("delivered", &self.delivered)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// Shows the body's length only.
impl fmt::Debug for MessageRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageRecord")
            .field("seq", &self.seq)
            .field("contact", &self.contact)
            .field("direction", &self.direction)
            .field("state", &self.state)
            .field("via_mailbox", &self.via_mailbox)
            .field("direct", &self.direct)
            .field("body_len", &self.body.len())
            .field("sent_at_ms", &self.sent_at_ms)
            .field("stored_at_ms", &self.stored_at_ms)
            .finish_non_exhaustive()
    }
}

/// An open profile.
pub struct Store {
    // Declared before the lock so the database is closed before the lock is let go.
    conn: Connection,
    _lock: Option<ProfileLock>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self._lock.is_some() {
            "on disk"
        } else {
            "in memory"
        };
        f.debug_struct("Store").field("kind", &kind).finish()
    }
}

impl Store {
    /// Creates a profile in `dir` (made 0700; files in it 0600), keyed by
    /// `passphrase` through Argon2id with `params`, and holds its lock.
    pub fn create(
        dir: &Path,
        passphrase: &str,
        params: KdfParams,
        profile: &ProfileRecord,
    ) -> Result<Self, StoreError> {
        let layout = Layout::new(dir);
        if layout.profile_exists() {
            return Err(StoreError::ProfileExists(dir.display().to_string()));
        }
        files::ensure_private_dir(dir)?;
        let lock = ProfileLock::acquire(&layout.lock)?;
        if layout.profile_exists() {
            return Err(StoreError::ProfileExists(dir.display().to_string()));
        }
        layout.remove_incomplete()?;
        let kdf = KdfFile::generate(params)?;
        let key = kdf.derive(passphrase)?;
        // Made here rather than by SQLite so it is 0600 from the start; SQLite gives
        // its -wal and -shm files the database file's mode.
        files::create_private_new(&layout.database)?;
        let conn = open_keyed(&layout.database, &key, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let mut store = Self::start(conn, Some(lock))?;
        store.insert_profile(profile)?;
        // Last: until the key parameters are in place there is no profile.
        files::write_atomic(&layout.kdf_tmp, &layout.kdf, dir, &kdf.to_bytes()?)?;
        layout.tighten_files()?;
        debug!("profile created");
        Ok(store)
    }

    /// Opens the profile in `dir` and holds its lock until dropped.
    pub fn open(dir: &Path, passphrase: &str) -> Result<Self, StoreError> {
        let layout = Layout::new(dir);
        if !layout.profile_exists() {
            return Err(StoreError::NoProfile(dir.display().to_string()));
        }
        files::tighten(dir, files::DIR_MODE)?;
        let lock = ProfileLock::acquire(&layout.lock)?;
        if !layout.profile_exists() {
            return Err(StoreError::NoProfile(dir.display().to_string()));
        }
        layout.tighten_files()?;
        let kdf = KdfFile::from_bytes(&fs::read(&layout.kdf)?)?;
        if !layout.database.is_file() {
            return Err(StoreError::Corrupt(
                "the database file is missing".to_owned(),
            ));
        }
        let key = kdf.derive(passphrase)?;
        let conn = open_keyed(&layout.database, &key, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let store = Self::start(conn, Some(lock))?;
        layout.tighten_files()?;
        debug!("profile opened");
        Ok(store)
    }

    /// An ephemeral profile: an in-memory database, nothing on disk.
    pub fn in_memory(profile: &ProfileRecord) -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        let mut store = Self::start(conn, None)?;
        store.insert_profile(profile)?;
        Ok(store)
    }

    /// Whether `dir` holds a profile.
    pub fn exists(dir: &Path) -> bool {
        Layout::new(dir).profile_exists()
    }

    /// Sets up a connection (keyed already, if on disk) and brings its schema up to
    /// date.
    fn start(mut conn: Connection, lock: Option<ProfileLock>) -> Result<Self, StoreError> {
        let on_disk = lock.is_some();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;
             PRAGMA temp_store = MEMORY;",
        )?;
        if on_disk {
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Corrupt(format!(
                    "cannot use write-ahead logging (journal mode {mode})"
                )));
            }
            // FULL: a commit is on disk when it returns, even in WAL mode.
            conn.execute_batch("PRAGMA synchronous = FULL;")?;
        }
        schema::migrate(&mut conn)?;
        Ok(Self { conn, _lock: lock })
    }

    fn insert_profile(&mut self, profile: &ProfileRecord) -> Result<(), StoreError> {
        self.conn.execute(
            &format!("INSERT INTO profile (id, {PROFILE_COLUMNS}) VALUES (1, ?1, ?2, ?3, ?4)"),
            params![
                profile.identity_secret.as_slice(),
                profile.request_seed.as_slice(),
                profile.endpoint_seed.as_slice(),
                time_to_sql(profile.created_at_ms)?,
            ],
        )?;
        Ok(())
    }

    pub fn profile(&self) -> Result<ProfileRecord, StoreError> {
        let sql = format!("SELECT {PROFILE_COLUMNS} FROM profile WHERE id = 1");
        query_one(&self.conn, &sql, [], rows::profile)?
            .ok_or_else(|| StoreError::Corrupt("the profile's own keys are missing".to_owned()))
    }

    pub fn contacts(&self) -> Result<Vec<ContactRecord>, StoreError> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts ORDER BY id");
        query_all(&self.conn, &sql, [], rows::contact)
    }

    pub fn contact(&self, id: ContactId) -> Result<ContactRecord, StoreError> {
        contact_by_id(&self.conn, id)
    }

    pub fn contact_by_name(&self, name: &str) -> Result<Option<ContactRecord>, StoreError> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE name = ?1");
        query_one(&self.conn, &sql, [name], rows::contact)
    }

    pub fn contact_by_key(
        &self,
        identity_key: &[u8; 32],
    ) -> Result<Option<ContactRecord>, StoreError> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE identity_key = ?1");
        query_one(&self.conn, &sql, [identity_key.as_slice()], rows::contact)
    }

    pub fn set_contact_state(
        &mut self,
        id: ContactId,
        state: ContactState,
    ) -> Result<(), StoreError> {
        let code = rows::contact_state_code(state);
        self.update_one(
            "UPDATE contacts SET state = ?2 WHERE id = ?1",
            params![id, code],
        )
    }

    pub fn set_verified(&mut self, id: ContactId, verified: bool) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE contacts SET verified = ?2 WHERE id = ?1",
            params![id, verified],
        )
    }

    pub fn set_share_presence(&mut self, id: ContactId, on: bool) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE contacts SET share_presence = ?2 WHERE id = ?1",
            params![id, on],
        )
    }

    pub fn set_require_auth(&mut self, id: ContactId, on: bool) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE contacts SET require_auth = ?2 WHERE id = ?1",
            params![id, on],
        )
    }

    /// In one transaction: a contact both sides agreed on directly (through an
    /// invite code, whose exchange already proved who is on the other end), so it is
    /// Active and verified at once. Pending requests from or to the same key stay
    /// until [`Store::drop_requests_with`] (the caller decides when the new contact
    /// is confirmed).
    pub fn add_direct_contact(
        &mut self,
        contact: &DirectContact<'_>,
        now_ms: u64,
    ) -> Result<ContactRecord, StoreError> {
        let tx = self.begin()?;
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE identity_key = ?1");
        if let Some(known) = query_one(&tx, &sql, [contact.identity_key.as_slice()], rows::contact)?
        {
            return Err(StoreError::KnownKey(known.name));
        }
        check_name_free(&tx, contact.name)?;
        let record = NewContact {
            name: contact.name,
            identity_key: contact.identity_key,
            their_endpoint: contact.their_endpoint,
            their_credential: contact.their_credential,
            our_credential: contact.our_credential,
            state: ContactState::Active,
            now_ms,
        }
        .insert(&tx)?;
        tx.execute(
            "UPDATE contacts SET verified = 1, require_auth = ?2 WHERE id = ?1",
            params![record.id, contact.require_auth],
        )?;
        let record = contact_by_id(&tx, record.id)?;
        tx.commit()?;
        Ok(record)
    }

    /// Deletes every request from or to `peer_key` (answered another way).
    pub fn drop_requests_with(&mut self, peer_key: &[u8; 32]) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM requests WHERE peer_key = ?1",
            [peer_key.as_slice()],
        )?;
        Ok(())
    }

    /// Deletes the contact, its whole conversation and its file transfers.
    pub fn delete_contact(&mut self, id: ContactId) -> Result<(), StoreError> {
        let tx = self.begin()?;
        // The foreign keys would cascade too; saying it keeps the intent visible.
        tx.execute(
            "DELETE FROM sealed WHERE message_seq IN \
             (SELECT seq FROM messages WHERE contact = ?1)",
            [id],
        )?;
        tx.execute("DELETE FROM messages WHERE contact = ?1", [id])?;
        tx.execute("DELETE FROM drop_send WHERE contact = ?1", [id])?;
        tx.execute("DELETE FROM drop_recv WHERE contact = ?1", [id])?;
        tx.execute("DELETE FROM transfers WHERE contact = ?1", [id])?;
        if tx.execute("DELETE FROM contacts WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit()?;
        Ok(())
    }

    pub fn requests(&self) -> Result<Vec<RequestRecord>, StoreError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests ORDER BY id");
        query_all(&self.conn, &sql, [], rows::request)
    }

    pub fn request(&self, id: RequestId) -> Result<RequestRecord, StoreError> {
        request_by_id(&self.conn, id)
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
        let incoming = rows::request_direction_code(RequestDirection::Incoming);
        let now = time_to_sql(now_ms)?;
        let tx = self.begin()?;
        tx.execute(
            "DELETE FROM requests WHERE direction = ?1 AND peer_key = ?2",
            params![incoming, peer_key.as_slice()],
        )?;
        tx.execute(
            "INSERT INTO requests (direction, peer_key, their_endpoint, their_credential, \
             greeting, delivered, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
            params![
                incoming,
                peer_key.as_slice(),
                their_endpoint.as_slice(),
                their_credential.as_slice(),
                greeting,
                now
            ],
        )?;
        let record = request_by_id(&tx, tx.last_insert_rowid())?;
        tx.commit()?;
        Ok(record)
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
        let outgoing = rows::request_direction_code(RequestDirection::Outgoing);
        let now = time_to_sql(now_ms)?;
        let tx = self.begin()?;
        check_name_free(&tx, name)?;
        tx.execute(
            "INSERT INTO requests (direction, peer_key, peer_request_onion, our_credential, \
             name, greeting, delivered, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
            params![
                outgoing,
                peer_key.as_slice(),
                peer_request_onion.as_slice(),
                our_credential.as_slice(),
                name,
                greeting,
                now
            ],
        )?;
        let record = request_by_id(&tx, tx.last_insert_rowid())?;
        tx.commit()?;
        Ok(record)
    }

    pub fn mark_request_delivered(&mut self, id: RequestId) -> Result<(), StoreError> {
        self.update_one("UPDATE requests SET delivered = 1 WHERE id = ?1", [id])
    }

    pub fn delete_request(&mut self, id: RequestId) -> Result<(), StoreError> {
        self.update_one("DELETE FROM requests WHERE id = ?1", [id])
    }

    /// In one transaction: the incoming request becomes a contact in state Accepting.
    pub fn accept_incoming(
        &mut self,
        id: RequestId,
        name: &str,
        our_credential: &[u8; 32],
        now_ms: u64,
    ) -> Result<ContactRecord, StoreError> {
        let tx = self.begin()?;
        let request = request_by_id(&tx, id)?;
        if request.direction != RequestDirection::Incoming {
            return Err(StoreError::NotFound);
        }
        let (Some(their_endpoint), Some(their_credential)) =
            (request.their_endpoint, request.their_credential.as_ref())
        else {
            return Err(StoreError::Corrupt(
                "an incoming request lacks its endpoint".to_owned(),
            ));
        };
        check_name_free(&tx, name)?;
        tx.execute("DELETE FROM requests WHERE id = ?1", [id])?;
        let contact = NewContact {
            name,
            identity_key: &request.peer_key,
            their_endpoint: &their_endpoint,
            their_credential,
            our_credential,
            state: ContactState::Accepting,
            now_ms,
        };
        let record = contact.insert(&tx)?;
        tx.commit()?;
        Ok(record)
    }

    /// In one transaction: the outgoing request becomes an Active contact.
    pub fn complete_outgoing(
        &mut self,
        id: RequestId,
        their_endpoint: &[u8; 32],
        their_credential: &[u8; 32],
        now_ms: u64,
    ) -> Result<ContactRecord, StoreError> {
        let tx = self.begin()?;
        let request = request_by_id(&tx, id)?;
        if request.direction != RequestDirection::Outgoing {
            return Err(StoreError::NotFound);
        }
        let (Some(name), Some(our_credential)) = (&request.name, &request.our_credential) else {
            return Err(StoreError::Corrupt(
                "an outgoing request lacks its name or credential".to_owned(),
            ));
        };
        tx.execute("DELETE FROM requests WHERE id = ?1", [id])?;
        let contact = NewContact {
            name,
            identity_key: &request.peer_key,
            their_endpoint,
            their_credential,
            our_credential,
            state: ContactState::Active,
            now_ms,
        };
        let record = contact.insert(&tx)?;
        tx.commit()?;
        Ok(record)
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
        let message = NewMessage {
            contact,
            id,
            direction: Direction::Outgoing,
            body,
            sent_at_ms,
            now_ms,
            state: MessageState::Queued,
            via_mailbox: false,
        };
        let tx = self.begin()?;
        let record = message.insert(&tx)?.ok_or_else(|| {
            StoreError::Corrupt("an outgoing message id was used twice".to_owned())
        })?;
        tx.commit()?;
        Ok(record)
    }

    /// Queued or Deposited -> Sent (Delivered ones stay Delivered); either way
    /// the message went direct.
    pub fn mark_sent(&mut self, contact: ContactId, id: &[u8; 16]) -> Result<(), StoreError> {
        let outgoing = rows::direction_code(Direction::Outgoing);
        let tx = self.begin()?;
        tx.execute(
            "UPDATE messages SET direct = 1 WHERE contact = ?1 AND direction = ?2 AND msg_id = ?3",
            params![contact, outgoing, id.as_slice()],
        )?;
        let changed = tx.execute(
            "UPDATE messages SET state = ?4 \
             WHERE contact = ?1 AND direction = ?2 AND msg_id = ?3 AND state IN (?5, ?6)",
            params![
                contact,
                outgoing,
                id.as_slice(),
                rows::message_state_code(MessageState::Sent),
                rows::message_state_code(MessageState::Queued),
                rows::message_state_code(MessageState::Deposited),
            ],
        )?;
        if changed == 0 {
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM messages \
                 WHERE contact = ?1 AND direction = ?2 AND msg_id = ?3)",
                params![contact, outgoing, id.as_slice()],
                |row| row.get(0),
            )?;
            if !known {
                return Err(StoreError::NotFound);
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// -> Delivered; returns the ids that changed (unknown or already delivered ids
    /// are skipped). Their sealed blobs, if any, are no longer needed and go.
    pub fn mark_delivered(
        &mut self,
        contact: ContactId,
        ids: &[[u8; 16]],
    ) -> Result<Vec<[u8; 16]>, StoreError> {
        let delivered = rows::message_state_code(MessageState::Delivered);
        let outgoing = rows::direction_code(Direction::Outgoing);
        let tx = self.begin()?;
        let mut changed = Vec::new();
        {
            let mut update = tx.prepare_cached(
                "UPDATE messages SET state = ?4 \
                 WHERE contact = ?1 AND direction = ?2 AND msg_id = ?3 AND state <> ?4",
            )?;
            let mut unseal = tx.prepare_cached(
                "DELETE FROM sealed WHERE deposited_to IS NOT NULL AND message_seq IN \
                 (SELECT seq FROM messages \
                 WHERE contact = ?1 AND direction = ?2 AND msg_id = ?3 AND state = ?4)",
            )?;
            for id in ids {
                if update.execute(params![contact, outgoing, id.as_slice(), delivered])? > 0 {
                    changed.push(*id);
                }
                unseal.execute(params![contact, outgoing, id.as_slice(), delivered])?;
            }
        }
        tx.commit()?;
        Ok(changed)
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
        let message = NewMessage {
            contact,
            id,
            direction: Direction::Incoming,
            body,
            sent_at_ms,
            now_ms,
            state: MessageState::Received,
            via_mailbox: false,
        };
        let tx = self.begin()?;
        let record = message.insert(&tx)?;
        tx.commit()?;
        Ok(record)
    }

    /// Outgoing messages without a receipt (Queued, Deposited or Sent), oldest first.
    pub fn undelivered(&self, contact: ContactId) -> Result<Vec<MessageRecord>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE contact = ?1 AND direction = ?2 AND state IN (?3, ?4, ?5) ORDER BY seq"
        );
        let params = params![
            contact,
            rows::direction_code(Direction::Outgoing),
            rows::message_state_code(MessageState::Queued),
            rows::message_state_code(MessageState::Deposited),
            rows::message_state_code(MessageState::Sent),
        ];
        query_all(&self.conn, &sql, params, rows::message)
    }

    /// The last `limit` messages of a conversation, oldest first.
    pub fn history(
        &self,
        contact: ContactId,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM (SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE contact = ?1 ORDER BY seq DESC LIMIT ?2) ORDER BY seq"
        );
        query_all(&self.conn, &sql, params![contact, limit], rows::message)
    }

    fn begin(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Runs a one-row change; `NotFound` if it touched nothing.
    fn update_one(&mut self, sql: &str, params: impl Params) -> Result<(), StoreError> {
        match self.conn.execute(sql, params)? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }
}

/// Keys a connection to an on-disk database and proves the key right with a read.
fn open_keyed(path: &Path, key: &DatabaseKey, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // Before the key: SQLCipher then wipes every buffer it frees (the key, the
    // statement that carried it, decrypted pages). The setting is process-wide.
    conn.execute_batch("PRAGMA cipher_memory_security = ON;")?;
    conn.execute_batch(&key.pragma())?;
    // SQLCipher reports a failed page check on stderr by default; a wrong
    // passphrase is an ordinary event here and is reported as an error instead.
    // The level is process-wide and SQLCipher only sets its default once, at
    // library initialisation, which has happened by the time a connection is open.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(conn),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            Err(StoreError::WrongPassphrase)
        }
        Err(e) => Err(e.into()),
    }
}

fn query_one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    match rows.next()? {
        Some(row) => read(row).map(Some),
        None => Ok(None),
    }
}

fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

fn contact_by_id(conn: &Connection, id: ContactId) -> Result<ContactRecord, StoreError> {
    let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ?1");
    query_one(conn, &sql, [id], rows::contact)?.ok_or(StoreError::NotFound)
}

fn request_by_id(conn: &Connection, id: RequestId) -> Result<RequestRecord, StoreError> {
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1");
    query_one(conn, &sql, [id], rows::request)?.ok_or(StoreError::NotFound)
}

/// `NotFound` unless the contact exists: checked before inserting rows that refer
/// to it, so a missing contact reads as such rather than as a foreign key failure.
fn check_contact(conn: &Connection, id: ContactId) -> Result<(), StoreError> {
    let known: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM contacts WHERE id = ?1)",
        [id],
        |row| row.get(0),
    )?;
    if known {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Names are unique across contacts and outgoing requests together, which no single
/// UNIQUE constraint can say; each table's own constraint backs this up.
fn check_name_free(conn: &Connection, name: &str) -> Result<(), StoreError> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM contacts WHERE name = ?1) \
             OR EXISTS (SELECT 1 FROM requests WHERE name = ?1)",
        [name],
        |row| row.get(0),
    )?;
    if taken {
        Err(StoreError::NameTaken(name.to_owned()))
    } else {
        Ok(())
    }
}

/// A contact about to be inserted.
struct NewContact<'a> {
    name: &'a str,
    identity_key: &'a [u8; 32],
    their_endpoint: &'a [u8; 32],
    their_credential: &'a [u8; 32],
    our_credential: &'a [u8; 32],
    state: ContactState,
    now_ms: u64,
}

impl NewContact<'_> {
    /// New contacts are unverified, and presence is opt-in: they do not get ours
    /// until the user says so.
    fn insert(&self, conn: &Connection) -> Result<ContactRecord, StoreError> {
        conn.execute(
            "INSERT INTO contacts (name, identity_key, their_endpoint, their_credential, \
             our_credential, state, verified, share_presence, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, ?7)",
            params![
                self.name,
                self.identity_key.as_slice(),
                self.their_endpoint.as_slice(),
                self.their_credential.as_slice(),
                self.our_credential.as_slice(),
                rows::contact_state_code(self.state),
                time_to_sql(self.now_ms)?,
            ],
        )?;
        contact_by_id(conn, conn.last_insert_rowid())
    }
}

/// A message about to be inserted.
struct NewMessage<'a> {
    contact: ContactId,
    id: &'a [u8; 16],
    direction: Direction,
    body: &'a str,
    sent_at_ms: u64,
    now_ms: u64,
    state: MessageState,
    via_mailbox: bool,
}

impl NewMessage<'_> {
    /// `None` if the conversation already has a message with this id in this
    /// direction: the UNIQUE constraint decides, so a duplicate is caught however
    /// it arrives.
    fn insert(&self, conn: &Connection) -> Result<Option<MessageRecord>, StoreError> {
        check_contact(conn, self.contact)?;
        let inserted = conn.execute(
            "INSERT INTO messages \
             (contact, msg_id, direction, body, sent_at_ms, stored_at_ms, state, via_mailbox, \
              direct) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (contact, direction, msg_id) DO NOTHING",
            params![
                self.contact,
                self.id.as_slice(),
                rows::direction_code(self.direction),
                self.body,
                time_to_sql(self.sent_at_ms)?,
                time_to_sql(self.now_ms)?,
                rows::message_state_code(self.state),
                self.via_mailbox,
                // An outgoing message is direct once written to a link.
                self.direction == Direction::Incoming && !self.via_mailbox,
            ],
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq = ?1");
        query_one(conn, &sql, [conn.last_insert_rowid()], rows::message)?
            .map(Some)
            .ok_or(StoreError::NotFound)
    }
}

#[cfg(test)]
mod tests;

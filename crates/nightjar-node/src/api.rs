//! The node's public types: the handle, what it returns, what it reports.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use zeroize::Zeroizing;

/// Errors, worded for the person using nightjar.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Not a nightjar address.
    #[error("not a valid nightjar address: {0}")]
    BadAddress(String),
    /// No contact by that name.
    #[error("no contact named {0:?}")]
    UnknownContact(String),
    /// No request with that number.
    #[error("no contact request #{0}")]
    UnknownRequest(i64),
    /// The name is in use.
    #[error("the name {0:?} is already in use")]
    NameTaken(String),
    /// Names must be short, printable and without spaces.
    #[error("invalid name {0:?}: use 1 to 32 letters, digits, '-', '_' or '.'")]
    BadName(String),
    /// The request would go to ourselves.
    #[error("that is your own address")]
    OwnAddress,
    /// Already a contact (or a request is pending).
    #[error("{0} is already a contact or has a pending request")]
    AlreadyKnown(String),
    /// The fingerprint given does not match the contact's.
    #[error("the fingerprint does not match {0}'s; do not trust this contact until you know why")]
    FingerprintMismatch(String),
    /// The text is too long or otherwise unsendable.
    #[error("message not sent: {0}")]
    BadMessage(String),
    /// Profile storage failed.
    #[error(transparent)]
    Store(#[from] nightjar_store::StoreError),
    /// Tor failed.
    #[error(transparent)]
    Tor(#[from] nightjar_tor::TorError),
    /// The contact is not connected now (authentication needs a live link).
    #[error("{0} is not connected right now; try again when they are online")]
    NotConnected(String),
    /// Nobody asked us to authenticate.
    #[error("{0} has not asked to authenticate")]
    NoAuthPending(String),
    /// The shared secret is empty or the question too long.
    #[error("authentication not started: {0}")]
    BadSecret(String),
    /// Not an invite code.
    #[error("not an invite code: {0}")]
    BadCode(String),
    /// An invite did not complete; nothing was added on either side.
    #[error("the invite did not complete: {0}")]
    Invite(String),
    /// No file transfer with that number.
    #[error("no file transfer #{0}")]
    UnknownTransfer(i64),
    /// Saving would replace a file that exists.
    #[error("{0} exists already; choose another name or allow overwriting")]
    FileExists(String),
    /// The file cannot be sent (missing, not a regular file, unreadable).
    #[error("cannot send that file: {0}")]
    BadFile(String),
    /// Too little free space where the file would be saved.
    #[error("not enough free space: {0}")]
    NoSpace(String),
    /// The transfer is not in a state that allows this.
    #[error("file transfer #{id} is {state}")]
    WrongState { id: i64, state: String },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// No group by that local name.
    #[error("no group named {0:?}")]
    UnknownGroup(String),
    /// We left the group or were removed from it.
    #[error("you are no longer in that group")]
    NotInGroup,
    /// A group needs a room on a mailbox, and none is named.
    #[error("a group's room is on a mailbox: name one first (/mailbox-add ONION)")]
    NoMailbox,
    /// The group refused (e.g. a change of ours is still on its way).
    #[error("group: {0}")]
    Group(String),
}

/// Our own profile, for showing and sharing.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileInfo {
    /// The address to give people (`nj1…`): request onion and identity key.
    pub address: String,
    /// The same in unMessage's form, `NAME@ONION KEY`-style, for `/onion` and `/key`.
    pub request_onion: String,
    /// The identity key, base32.
    pub identity_key: String,
    /// Our fingerprint: 12 groups of 5 digits.
    pub fingerprint: String,
    /// Whether the profile is ephemeral (nothing on disk).
    pub ephemeral: bool,
}

/// How far a contact is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Key never compared (red).
    Unverified,
    /// Fingerprint confirmed out of band (green); persists.
    Verified,
    /// A shared-secret authentication (SMP) succeeded on the current link (cyan);
    /// falls back when either side disconnects.
    Authenticated,
}

/// How a shared-secret authentication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthOutcome {
    /// Both sides typed the same secret.
    Succeeded,
    /// The secrets differ.
    Failed,
    /// The peer's messages broke the protocol (a failed proof, a malformed or
    /// out-of-order step): someone may be cheating.
    Cheated,
    /// Either side gave up, or the link went down during the run.
    Aborted,
}

/// A contact.
#[derive(Debug, Clone, Serialize)]
pub struct ContactView {
    /// Local name.
    pub name: String,
    /// The trust level now: authenticated while a shared-secret authentication holds,
    /// otherwise verified or unverified.
    pub level: Level,
    /// Their fingerprint was confirmed (persists, whatever `level` says now).
    pub verified: bool,
    /// Their fingerprint.
    pub fingerprint: String,
    /// Their identity key, base32.
    pub identity_key: String,
    /// A link to them is up now.
    pub online: bool,
    /// Their last presence notice, if they share presence with us.
    pub presence: Option<PresenceState>,
    /// We tell them when we go online or offline.
    pub share_presence: bool,
    /// Our acceptance has not reached them yet.
    pub pending: bool,
    /// Messages received since the conversation was last read through `history`.
    pub unread: usize,
    /// Nothing is sent to them until a shared-secret authentication succeeds.
    pub require_auth: bool,
    /// How the last authentication with them ended, since this node started.
    pub last_auth: Option<AuthOutcome>,
    /// What protects what is sent to them now.
    pub guarantees: Guarantees,
}

/// What protects the conversation with a contact now, so that interfaces can
/// show it, and show when something is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guarantees {
    /// With a link up: it was made with the hybrid handshake (X25519 and
    /// ML-KEM-768), so recording it today and breaking X25519 later does not
    /// reveal it. `None` without a link. Mailbox chains are seeded over such a
    /// link.
    pub post_quantum: Option<bool>,
    /// How a message sent now is protected if keys are stolen later.
    pub forward_secrecy: ForwardSecrecy,
    /// Our cover traffic on their link: `off`, `low`, `constant`, or `every N ms`.
    pub our_cover: String,
    /// With a link up: whether cover cells came from them on it (`false`: none
    /// yet, or they send none). `None` without a link.
    pub their_cover: Option<bool>,
}

/// How a message sent now is protected against keys stolen later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardSecrecy {
    /// The link's double ratchet (or the next link's, for messages that wait):
    /// old messages stay safe, and the conversation heals after a compromise.
    Ratchet,
    /// No link: it goes to their mailbox under a one-way chain of keys. Old
    /// messages stay safe, but someone who stole the chain reads what follows
    /// until the next link gives a fresh one.
    MailboxChain,
}

/// An invite code, waiting for the other side to type it.
#[derive(Clone, Serialize)]
pub struct InviteView {
    /// The code to read out, such as `7-crossover-clockwork`.
    pub code: String,
    /// The local name the new contact will have.
    pub name: String,
    /// How long the code waits for the other side, in seconds.
    pub valid_for_s: u64,
}

/// The code opens the way to becoming a contact: `Debug` leaves it out.
impl std::fmt::Debug for InviteView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteView")
            .field("valid_for_s", &self.valid_for_s)
            .finish_non_exhaustive()
    }
}

/// What a contact told us about themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    Online,
    Away,
    Offline,
}

/// Which way a request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestDirection {
    Incoming,
    Outgoing,
}

/// A contact request.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    /// Its number, for accept / decline.
    pub id: i64,
    pub direction: RequestDirection,
    /// Outgoing: the name we gave them.
    pub name: Option<String>,
    /// The other side's fingerprint.
    pub fingerprint: String,
    pub greeting: String,
    /// Outgoing: their node confirmed it has the request.
    pub delivered: bool,
    pub created_at_ms: u64,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageDirection {
    Incoming,
    Outgoing,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Stored, waiting for a link.
    Queued,
    /// In the peer's mailbox, waiting for the peer to come online and fetch it.
    Deposited,
    /// Written to the peer's link.
    Sent,
    /// The peer's receipt arrived.
    Delivered,
    /// Incoming.
    Received,
}

/// One message.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    /// The contact's local name.
    pub contact: String,
    /// The message id, hex.
    pub id: String,
    pub direction: MessageDirection,
    pub body: String,
    /// By the sender's clock.
    pub sent_at_ms: u64,
    pub state: MessageState,
    /// Incoming: it came through one of our mailboxes. Outgoing: a copy was left
    /// in one of theirs (kept after delivery).
    pub via_mailbox: bool,
    /// It crossed a link: received over one, or written to one. An outgoing
    /// message can be both direct and via a mailbox; one sent before routes were
    /// kept may be neither.
    pub direct: bool,
}

/// Which way a file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferDirection {
    Incoming,
    Outgoing,
}

/// Where a file transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Offered; the receiver has not decided yet.
    Offered,
    /// Accepted; data flows when the contact is connected.
    Accepted,
    /// Data is flowing (or will again on the next link).
    Active,
    /// Stopped by the receiver's side (for example its disk is full); the
    /// partial file is kept and `resume_file` continues it.
    Paused,
    /// The whole file arrived, matched its hash and is in place.
    Completed,
    /// The receiver said no.
    Declined,
    /// Either side gave up.
    Cancelled,
    /// It cannot complete (the file changed, or did not match its hash).
    Failed,
}

/// A file transfer, either way.
#[derive(Debug, Clone, Serialize)]
pub struct TransferView {
    /// Its number, for accept / decline / cancel / resume.
    pub id: i64,
    /// The contact's local name.
    pub contact: String,
    pub direction: TransferDirection,
    /// The name as offered, cleaned of control characters for display.
    pub name: String,
    /// Incoming: the name it is (or will be) saved under in its directory.
    pub save_name: Option<String>,
    /// Bytes.
    pub size: u64,
    /// BLAKE3 of the whole file, hex (what `b3sum` prints).
    pub hash: String,
    pub state: TransferState,
    /// Why it was declined, cancelled, paused or failed.
    pub reason: Option<String>,
    /// Bytes received and written (incoming) or acknowledged (outgoing).
    pub bytes_done: u64,
    /// Bytes per second over the last few seconds, while data flows.
    pub rate_bps: Option<u64>,
    /// Seconds left at that rate.
    pub eta_s: Option<u64>,
    /// Incoming and completed: where the file is. Outgoing: the file sent.
    pub path: Option<String>,
    pub created_at_ms: u64,
}

/// How to take an offered file.
#[derive(Debug, Clone, Default)]
pub struct AcceptFile {
    /// Save under this name instead of the offered one (made safe the same way).
    pub save_as: Option<String>,
    /// Save into this directory instead of the profile's downloads directory.
    pub dir: Option<PathBuf>,
    /// Replace a file of that name if one exists.
    pub overwrite: bool,
}

/// What the node reports, in the order it happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// Our onion services are up and published.
    Online,
    /// Someone asked to become a contact.
    RequestReceived { request: RequestView },
    /// Our request reached them; now they decide.
    RequestDelivered { request: RequestView },
    /// A contact exists now on both sides.
    ContactAdded { contact: ContactView },
    /// A link to the contact came up.
    Connected { contact: String },
    /// The link to the contact went down.
    Disconnected { contact: String },
    /// The contact shared a presence change.
    Presence {
        contact: String,
        presence: PresenceState,
    },
    /// A new message arrived.
    MessageReceived { message: MessageView },
    /// One of our messages changed state.
    MessageState {
        contact: String,
        id: String,
        state: MessageState,
    },
    /// The contact started a shared-secret authentication: answer with
    /// [`Node::answer_auth`] (or [`Node::abort_auth`]).
    AuthRequested {
        contact: String,
        question: Option<String>,
    },
    /// A shared-secret authentication ended.
    AuthResult {
        contact: String,
        outcome: AuthOutcome,
    },
    /// The contact is connected, but messages wait until a shared-secret
    /// authentication succeeds (one side asked for it).
    AuthRequired { contact: String },
    /// An invite completed: the contact exists on both sides, verified.
    InviteCompleted { contact: ContactView },
    /// An invite did not complete (wrong code, timeout, …); nothing was added.
    InviteFailed { name: String, reason: String },
    /// The contact left (one-shot chats, or a peer that quit).
    PeerQuit { contact: String },
    /// What protects the conversation changed beyond connecting and
    /// disconnecting (the contact's cover traffic was first seen on the link).
    Guarantees {
        contact: String,
        guarantees: Guarantees,
    },
    /// A contact offers a file: accept it with [`Node::accept_file`] or decline it.
    FileOffered { transfer: TransferView },
    /// A file transfer changed state (either way).
    FileState { transfer: TransferView },
    /// A file transfer moved on; at most twice a second per transfer.
    FileProgress {
        id: i64,
        contact: String,
        direction: TransferDirection,
        bytes: u64,
        size: u64,
        rate_bps: Option<u64>,
        eta_s: Option<u64>,
    },
    /// A text in a group (ours too, once the room took it).
    GroupMessage { message: GroupMessageView },
    /// Who is in a group changed, or something else about it worth a line.
    GroupChanged { group: String, text: String },
    /// A contact added us to a group.
    GroupJoined { group: GroupView, by: String },
    /// Something went wrong in the background that the person should know.
    Warning { text: String },
}

/// A group we are in.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    /// Our local name for it.
    pub name: String,
    /// Its members: "you", contacts by name, others by fingerprint.
    pub members: Vec<String>,
    /// False once we left or were removed.
    pub active: bool,
}

/// A text in a group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupMessageView {
    pub group: String,
    /// "you", a contact's name, or a stranger's fingerprint.
    pub from: String,
    pub body: String,
    pub outgoing: bool,
    /// Ours: the room took it.
    pub posted: bool,
    /// When we stored it (sent, or read from the room).
    pub at_ms: u64,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// Commands for the engine task.
pub(crate) enum Command {
    Info(Reply<ProfileInfo>),
    SendRequest {
        address: String,
        name: String,
        greeting: String,
        reply: Reply<RequestView>,
    },
    Requests(Reply<Vec<RequestView>>),
    Accept {
        id: i64,
        name: String,
        reply: Reply<ContactView>,
    },
    Decline {
        id: i64,
        reply: Reply<()>,
    },
    Contacts(Reply<Vec<ContactView>>),
    Contact {
        name: String,
        reply: Reply<ContactView>,
    },
    SendMessage {
        contact: String,
        text: String,
        reply: Reply<MessageView>,
    },
    History {
        contact: String,
        limit: usize,
        reply: Reply<Vec<MessageView>>,
    },
    SetPresence {
        contact: String,
        on: bool,
        reply: Reply<()>,
    },
    Verify {
        contact: String,
        fingerprint: String,
        reply: Reply<ContactView>,
    },
    Delete {
        contact: String,
        reply: Reply<()>,
    },
    Authenticate {
        contact: String,
        secret: Zeroizing<String>,
        question: Option<String>,
        reply: Reply<()>,
    },
    AnswerAuth {
        contact: String,
        secret: Zeroizing<String>,
        reply: Reply<()>,
    },
    AbortAuth {
        contact: String,
        reply: Reply<()>,
    },
    CreateInvite {
        name: String,
        require_auth: bool,
        reply: Reply<InviteView>,
    },
    JoinInvite {
        code: String,
        name: String,
        require_auth: bool,
        reply: Reply<ContactView>,
    },
    Mailboxes(Reply<Vec<String>>),
    AddMailbox {
        onion: String,
        reply: Reply<Vec<String>>,
    },
    RemoveMailbox {
        onion: String,
        reply: Reply<Vec<String>>,
    },
    SendFile {
        contact: String,
        file: crate::files::SourceFile,
        reply: Reply<TransferView>,
    },
    Transfers {
        contact: Option<String>,
        reply: Reply<Vec<TransferView>>,
    },
    Transfer {
        id: i64,
        reply: Reply<TransferView>,
    },
    AcceptFile {
        id: i64,
        options: AcceptFile,
        reply: Reply<TransferView>,
    },
    DeclineFile {
        id: i64,
        reply: Reply<TransferView>,
    },
    CancelFile {
        id: i64,
        reply: Reply<TransferView>,
    },
    ResumeFile {
        id: i64,
        reply: Reply<TransferView>,
    },
    CreateGroup {
        name: String,
        reply: Reply<GroupView>,
    },
    Groups(Reply<Vec<GroupView>>),
    GroupHistory {
        group: String,
        reply: Reply<Vec<GroupMessageView>>,
    },
    SendGroupMessage {
        group: String,
        text: String,
        reply: Reply<GroupMessageView>,
    },
    InviteToGroup {
        group: String,
        contact: String,
        reply: Reply<()>,
    },
    RemoveFromGroup {
        group: String,
        contact: String,
        reply: Reply<()>,
    },
    LeaveGroup {
        group: String,
        reply: Reply<()>,
    },
    Shutdown(Reply<()>),
}

/// A cloneable handle on a running node.
#[derive(Clone)]
pub struct Node {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<Event>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Node(..)")
    }
}

impl Node {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)?
    }

    /// Events from now on. A receiver that falls behind by more than the buffer
    /// loses the oldest (and learns it from `RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Our address and fingerprint.
    pub async fn info(&self) -> Result<ProfileInfo, NodeError> {
        self.ask(Command::Info).await
    }

    /// Asks the owner of `address` to become a contact, known here as `name`.
    /// Retried in the background, with backoff, until their node confirms it.
    pub async fn send_request(
        &self,
        address: &str,
        name: &str,
        greeting: &str,
    ) -> Result<RequestView, NodeError> {
        let (address, name, greeting) = (address.to_owned(), name.to_owned(), greeting.to_owned());
        self.ask(|reply| Command::SendRequest {
            address,
            name,
            greeting,
            reply,
        })
        .await
    }

    /// Pending requests, both ways.
    pub async fn requests(&self) -> Result<Vec<RequestView>, NodeError> {
        self.ask(Command::Requests).await
    }

    /// Accepts incoming request `id`, naming the new contact `name`.
    pub async fn accept_request(&self, id: i64, name: &str) -> Result<ContactView, NodeError> {
        let name = name.to_owned();
        self.ask(|reply| Command::Accept { id, name, reply }).await
    }

    /// Declines an incoming request (silently: they are not told) or withdraws an
    /// outgoing one.
    pub async fn decline_request(&self, id: i64) -> Result<(), NodeError> {
        self.ask(|reply| Command::Decline { id, reply }).await
    }

    /// All contacts (the conversations).
    pub async fn contacts(&self) -> Result<Vec<ContactView>, NodeError> {
        self.ask(Command::Contacts).await
    }

    /// One contact.
    pub async fn contact(&self, name: &str) -> Result<ContactView, NodeError> {
        let name = name.to_owned();
        self.ask(|reply| Command::Contact { name, reply }).await
    }

    /// Queues a text message; when this returns the message is stored and will be
    /// delivered, across restarts, until the peer's receipt arrives.
    pub async fn send_message(&self, contact: &str, text: &str) -> Result<MessageView, NodeError> {
        let (contact, text) = (contact.to_owned(), text.to_owned());
        self.ask(|reply| Command::SendMessage {
            contact,
            text,
            reply,
        })
        .await
    }

    /// The last `limit` messages with `contact`, oldest first; marks them read.
    pub async fn history(
        &self,
        contact: &str,
        limit: usize,
    ) -> Result<Vec<MessageView>, NodeError> {
        let contact = contact.to_owned();
        self.ask(|reply| Command::History {
            contact,
            limit,
            reply,
        })
        .await
    }

    /// Whether `contact` is told when we go online or offline.
    pub async fn set_presence(&self, contact: &str, on: bool) -> Result<(), NodeError> {
        let contact = contact.to_owned();
        self.ask(|reply| Command::SetPresence { contact, on, reply })
            .await
    }

    /// Marks `contact` verified if `fingerprint` (as read to us out of band; spaces
    /// and dashes ignored) is theirs; otherwise `FingerprintMismatch`.
    pub async fn verify(&self, contact: &str, fingerprint: &str) -> Result<ContactView, NodeError> {
        let (contact, fingerprint) = (contact.to_owned(), fingerprint.to_owned());
        self.ask(|reply| Command::Verify {
            contact,
            fingerprint,
            reply,
        })
        .await
    }

    /// Deletes the contact and the conversation, and revokes their access to our
    /// endpoint.
    pub async fn delete_contact(&self, contact: &str) -> Result<(), NodeError> {
        let contact = contact.to_owned();
        self.ask(|reply| Command::Delete { contact, reply }).await
    }

    /// Starts a shared-secret authentication (the Socialist Millionaire Protocol)
    /// with a connected contact: they are asked for the secret (and shown
    /// `question`), and both sides learn through [`Event::AuthResult`] whether the
    /// secrets matched, without either revealing theirs. If the contact has asked
    /// us already (and waits for our answer), this answers them instead, so both
    /// sides may simply type the secret.
    pub async fn authenticate(
        &self,
        contact: &str,
        secret: &str,
        question: Option<&str>,
    ) -> Result<(), NodeError> {
        let contact = contact.to_owned();
        let secret = Zeroizing::new(secret.to_owned());
        let question = question.map(str::to_owned);
        self.ask(|reply| Command::Authenticate {
            contact,
            secret,
            question,
            reply,
        })
        .await
    }

    /// Answers a contact's [`Event::AuthRequested`] with our secret.
    pub async fn answer_auth(&self, contact: &str, secret: &str) -> Result<(), NodeError> {
        let contact = contact.to_owned();
        let secret = Zeroizing::new(secret.to_owned());
        self.ask(|reply| Command::AnswerAuth {
            contact,
            secret,
            reply,
        })
        .await
    }

    /// Gives up a running authentication (ours or theirs); both sides see
    /// `Aborted`.
    pub async fn abort_auth(&self, contact: &str) -> Result<(), NodeError> {
        let contact = contact.to_owned();
        self.ask(|reply| Command::AbortAuth { contact, reply })
            .await
    }

    /// Makes an invite code for someone to type with [`Node::join_invite`]; the
    /// new contact will be called `name` here. Returns as soon as the code exists;
    /// the outcome arrives as [`Event::InviteCompleted`] or
    /// [`Event::InviteFailed`]. With `require_auth`, no message goes either way
    /// until a shared-secret authentication has succeeded.
    pub async fn create_invite(
        &self,
        name: &str,
        require_auth: bool,
    ) -> Result<InviteView, NodeError> {
        let name = name.to_owned();
        self.ask(|reply| Command::CreateInvite {
            name,
            require_auth,
            reply,
        })
        .await
    }

    /// Uses an invite code someone read out; returns the new contact (verified,
    /// on both sides at once) once the exchange is complete.
    pub async fn join_invite(
        &self,
        code: &str,
        name: &str,
        require_auth: bool,
    ) -> Result<ContactView, NodeError> {
        let (code, name) = (code.to_owned(), name.to_owned());
        self.ask(|reply| Command::JoinInvite {
            code,
            name,
            require_auth,
            reply,
        })
        .await
    }

    /// The mailboxes our contacts leave messages in while we are offline, as
    /// onion addresses.
    pub async fn mailboxes(&self) -> Result<Vec<String>, NodeError> {
        self.ask(Command::Mailboxes).await
    }

    /// Names a mailbox (a `nightjar mailbox` onion: `….onion`, or the
    /// `ws://….onion/v1` it prints) for contacts to leave messages in while we
    /// are offline; contacts learn it on their next link. At most four.
    /// Returns the list.
    pub async fn add_mailbox(&self, onion: &str) -> Result<Vec<String>, NodeError> {
        let onion = onion.to_owned();
        self.ask(|reply| Command::AddMailbox { onion, reply }).await
    }

    /// Stops naming a mailbox; contacts learn the new list on their next link.
    /// It is no longer visited: what contacts leave in it before they have
    /// learnt the new list waits until they reach us over a link. Returns the
    /// list.
    pub async fn remove_mailbox(&self, onion: &str) -> Result<Vec<String>, NodeError> {
        let onion = onion.to_owned();
        self.ask(|reply| Command::RemoveMailbox { onion, reply })
            .await
    }

    /// Offers a file to a contact. The file is read and hashed first (off the
    /// engine, on the blocking pool); the offer then goes out whenever the
    /// contact is connected, again on every new link until they answer, and the
    /// data follows once they accept. A change to the file before it is all
    /// sent fails the transfer rather than sending something else.
    pub async fn send_file(&self, contact: &str, path: &Path) -> Result<TransferView, NodeError> {
        let path = path.to_owned();
        let file = tokio::task::spawn_blocking(move || crate::files::SourceFile::read(&path))
            .await
            .map_err(|_| NodeError::Stopped)??;
        let contact = contact.to_owned();
        self.ask(|reply| Command::SendFile {
            contact,
            file,
            reply,
        })
        .await
    }

    /// File transfers, both ways, oldest first; only those with `contact` if given.
    pub async fn transfers(&self, contact: Option<&str>) -> Result<Vec<TransferView>, NodeError> {
        let contact = contact.map(str::to_owned);
        self.ask(|reply| Command::Transfers { contact, reply })
            .await
    }

    /// Creates a group with us alone in it, its room on our first mailbox.
    pub async fn create_group(&self, name: &str) -> Result<GroupView, NodeError> {
        let name = name.to_owned();
        self.ask(|reply| Command::CreateGroup { name, reply }).await
    }

    /// The groups we are in (and were in).
    pub async fn groups(&self) -> Result<Vec<GroupView>, NodeError> {
        self.ask(Command::Groups).await
    }

    /// A group's texts, oldest first.
    pub async fn group_history(&self, group: &str) -> Result<Vec<GroupMessageView>, NodeError> {
        let group = group.to_owned();
        self.ask(|reply| Command::GroupHistory { group, reply })
            .await
    }

    /// Sends a text to a group: stored at once, posted to its room until the
    /// room takes it ([`Event::GroupMessage`] with `posted` then).
    pub async fn send_group_message(
        &self,
        group: &str,
        text: &str,
    ) -> Result<GroupMessageView, NodeError> {
        let (group, text) = (group.to_owned(), text.to_owned());
        self.ask(|reply| Command::SendGroupMessage { group, text, reply })
            .await
    }

    /// Adds a connected contact to a group: asks them for a key package over
    /// our link, changes the group, and sends them the invitation once the
    /// change is in force ([`Event::GroupChanged`] says so).
    pub async fn invite_to_group(&self, group: &str, contact: &str) -> Result<(), NodeError> {
        let (group, contact) = (group.to_owned(), contact.to_owned());
        self.ask(|reply| Command::InviteToGroup {
            group,
            contact,
            reply,
        })
        .await
    }

    /// Removes a contact from a group; they read nothing sent after.
    pub async fn remove_from_group(&self, group: &str, contact: &str) -> Result<(), NodeError> {
        let (group, contact) = (group.to_owned(), contact.to_owned());
        self.ask(|reply| Command::RemoveFromGroup {
            group,
            contact,
            reply,
        })
        .await
    }

    /// Leaves a group: tells the others, one of whom removes us.
    pub async fn leave_group(&self, group: &str) -> Result<(), NodeError> {
        let group = group.to_owned();
        self.ask(|reply| Command::LeaveGroup { group, reply }).await
    }

    /// One file transfer.
    pub async fn transfer(&self, id: i64) -> Result<TransferView, NodeError> {
        self.ask(|reply| Command::Transfer { id, reply }).await
    }

    /// Accepts an offered file. Nothing is overwritten unless `options` says so;
    /// the data flows when the sender is connected, and the file appears under
    /// its name only once all of it arrived and matched the offered hash.
    pub async fn accept_file(
        &self,
        id: i64,
        options: AcceptFile,
    ) -> Result<TransferView, NodeError> {
        self.ask(|reply| Command::AcceptFile { id, options, reply })
            .await
    }

    /// Declines an offered file; the sender is told.
    pub async fn decline_file(&self, id: i64) -> Result<TransferView, NodeError> {
        self.ask(|reply| Command::DeclineFile { id, reply }).await
    }

    /// Stops a transfer either way, for good; the other side is told, and a
    /// partial file is deleted.
    pub async fn cancel_file(&self, id: i64) -> Result<TransferView, NodeError> {
        self.ask(|reply| Command::CancelFile { id, reply }).await
    }

    /// Continues a paused incoming transfer from where its partial file ends.
    pub async fn resume_file(&self, id: i64) -> Result<TransferView, NodeError> {
        self.ask(|reply| Command::ResumeFile { id, reply }).await
    }

    /// Tells contacts who get our presence that we are leaving, closes links and
    /// services, and stops the engine.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.ask(Command::Shutdown).await
    }
}

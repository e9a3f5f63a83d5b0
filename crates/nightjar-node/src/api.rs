//! The node's public types: the handle, what it returns, what it reports.

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
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
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
    /// Incoming: it came through our mailbox rather than over a link.
    pub via_mailbox: bool,
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
    /// Something went wrong in the background that the person should know.
    Warning { text: String },
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

    /// Tells contacts who get our presence that we are leaving, closes links and
    /// services, and stops the engine.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.ask(Command::Shutdown).await
    }
}

//! The engine: one task that owns a profile's store, its onion services and its
//! links, driven by commands from [`Node`] handles and reports from I/O tasks.
//!
//! Invariants kept here: a message is stored before `send_message` returns; a
//! received message is stored before its receipt is sent; outgoing messages are
//! resent on every new link until their receipt arrives, and receivers drop
//! duplicates by id, so nothing is lost and nothing is delivered twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use nightjar_proto::address::ContactAddress;
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::{EndpointGrant, Message, MessageId, Presence};
use nightjar_proto::onion::OnionAddress;
use nightjar_store::{
    ContactRecord, ContactState, ProfileRecord, RequestDirection, Store, StoreError,
};
use nightjar_tor::{
    BoxStream, ClientAuthPublic, ClientAuthSecret, OnionService, ServiceConfig, ServiceKey,
    Transport,
};
use tokio::sync::{broadcast, mpsc};
use zeroize::Zeroizing;

mod files;
mod groups;
mod invites;
mod offline;
use files::Files;
use groups::Groups;
use invites::Invites;
use offline::Offline;
pub use offline::OfflineConfig;
pub(crate) use offline::{CoverItem, FoundSlot};

use crate::auth::{Action, AuthState, Binding, Resume};
use crate::driver::pace::{Pacer, ShapingConfig};
use crate::files::FilesConfig;
use crate::invite::Rendezvous;
use crate::link::{Link, os_rng};
use crate::net::{self, LinkCommand, LinkId, Report, Target, Written};
use crate::views::{self, Live};
use crate::{
    AuthOutcome, Command, ContactView, Event, ForwardSecrecy, Guarantees, MessageView, Node,
    NodeError, PresenceState, ProfileInfo, Reply, RequestView,
};

/// Everything a node needs to start.
pub struct NodeConfig {
    /// The profile's storage (a SQLCipher file, or in memory for ephemeral profiles).
    pub store: Store,
    /// How to reach Tor.
    pub transport: Arc<dyn Transport>,
    /// Whether the profile is ephemeral (reported by `info`).
    pub ephemeral: bool,
    /// Where invite codes meet.
    pub rendezvous: Rendezvous,
    /// Timers of offline delivery through mailboxes.
    pub offline: OfflineConfig,
    /// Where received files go and how large they may be.
    pub files: FilesConfig,
    /// Cover traffic and send timing on links.
    pub shaping: ShapingConfig,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("ephemeral", &self.ephemeral)
            .finish_non_exhaustive()
    }
}

/// Fresh keys for a new profile, from the operating system's RNG.
pub fn new_profile() -> ProfileRecord {
    let mut rng = os_rng();
    let identity = IdentityKeyPair::generate(&mut rng);
    ProfileRecord {
        identity_secret: identity.to_secret_bytes(),
        request_seed: random_secret(),
        endpoint_seed: random_secret(),
        created_at_ms: now_ms(),
    }
}

fn random_secret() -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    os_rng().fill_bytes_infallible(bytes.as_mut());
    bytes
}

trait FillInfallible {
    fn fill_bytes_infallible(&mut self, dest: &mut [u8]);
}

impl FillInfallible for crate::link::OsRng {
    fn fill_bytes_infallible(&mut self, dest: &mut [u8]) {
        rand_core::Rng::fill_bytes(self, dest);
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Starts the engine: launches the request onion and the private endpoint, and
/// returns the handle once both are launched (publication continues in the
/// background; [`Event::Online`] reports it).
pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
    let NodeConfig {
        store,
        transport,
        ephemeral,
        rendezvous,
        offline,
        files,
        shaping,
    } = config;
    let profile = store.profile()?;
    let identity = IdentityKeyPair::from_secret_bytes(profile.identity_secret.as_ref())
        .map_err(|e| StoreError::Corrupt(format!("identity key: {e}")))?;
    let identity = Arc::new(identity);

    let request_service: Arc<dyn OnionService> = transport
        .launch_service(ServiceConfig {
            nickname: "request".into(),
            key: ServiceKey::Seed(profile.request_seed.clone()),
            virtual_port: net::SERVICE_PORT,
            authorized_clients: None,
        })
        .await?
        .into();
    let endpoint_service: Arc<dyn OnionService> = transport
        .launch_service(ServiceConfig {
            nickname: "endpoint".into(),
            key: ServiceKey::Seed(profile.endpoint_seed.clone()),
            virtual_port: net::SERVICE_PORT,
            authorized_clients: Some(authorized_clients(&store)?),
        })
        .await?
        .into();

    let (commands_tx, commands) = mpsc::channel(64);
    let (events, _) = broadcast::channel(1024);
    let (reports_tx, reports) = mpsc::channel(256);
    let acceptors = vec![
        net::spawn_request_acceptor(
            request_service.clone(),
            identity.clone(),
            reports_tx.clone(),
            shaping.setup_pacing(),
        ),
        net::spawn_endpoint_acceptor(
            endpoint_service.clone(),
            identity.clone(),
            reports_tx.clone(),
            shaping.setup_pacing(),
        ),
    ];
    spawn_online_watch(&request_service, &endpoint_service, events.clone());

    let engine = Engine {
        store,
        transport,
        identity,
        ephemeral,
        request_service,
        endpoint_service,
        events: events.clone(),
        reports_tx,
        links: HashMap::new(),
        next_link: 0,
        contacts_online: HashMap::new(),
        dials: HashMap::new(),
        deliveries: HashMap::new(),
        presence: HashMap::new(),
        unread: HashMap::new(),
        last_auth: HashMap::new(),
        rendezvous,
        invites: Invites::default(),
        offline: Offline::new(offline),
        files: Files::new(files),
        groups: Groups::default(),
        shaping,
        acceptors,
    };
    tokio::spawn(engine.run(commands, reports));
    Ok(Node {
        commands: commands_tx,
        events,
    })
}

/// Reports [`Event::Online`] once both services are published.
fn spawn_online_watch(
    request: &Arc<dyn OnionService>,
    endpoint: &Arc<dyn OnionService>,
    events: broadcast::Sender<Event>,
) {
    let mut watches = [request.status(), endpoint.status()];
    tokio::spawn(async move {
        for watch in &mut watches {
            let published = watch
                .wait_for(|s| matches!(s, nightjar_tor::ServiceStatus::Published))
                .await;
            if published.is_err() {
                return;
            }
        }
        let _ = events.send(Event::Online);
    });
}

/// The public halves of every endpoint credential we issued: to contacts, and to
/// the recipients of our outgoing requests (so they can reach us to accept).
fn authorized_clients(store: &Store) -> Result<Vec<ClientAuthPublic>, NodeError> {
    let contacts = store.contacts()?;
    let requests = store.requests()?;
    let issued = contacts
        .iter()
        .map(|c| c.our_credential.clone())
        .chain(requests.iter().filter_map(|r| r.our_credential.clone()));
    Ok(issued.map(|secret| credential_public(&secret)).collect())
}

fn credential_public(secret: &[u8; 32]) -> ClientAuthPublic {
    let secret = x25519_dalek::StaticSecret::from(*secret);
    ClientAuthPublic(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

/// How long the side that does not dial first waits for the other's link
/// before dialling itself (see `invite_settled`).
const SECOND_DIAL_AFTER: Duration = Duration::from_secs(20);

/// Retry schedule for dials and request deliveries: 2 s doubling to 5 min, or
/// to 1 min while something waits to be delivered (a new contact's onion can
/// take a minute or two to become reachable; five minutes between tries would
/// keep a waiting acceptance or message back for long after).
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    next: Instant,
    in_flight: bool,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(2);
    const CAP: Duration = Duration::from_secs(300);
    const URGENT_CAP: Duration = Duration::from_secs(60);

    fn now() -> Self {
        Self {
            failures: 0,
            next: Instant::now(),
            in_flight: false,
        }
    }

    fn after(delay: Duration) -> Self {
        Self {
            next: Instant::now() + delay,
            ..Self::now()
        }
    }

    fn failed(&mut self) {
        self.failed_capped(Self::CAP);
    }

    fn failed_urgent(&mut self) {
        self.failed_capped(Self::URGENT_CAP);
    }

    fn failed_capped(&mut self, cap: Duration) {
        self.in_flight = false;
        self.failures = self.failures.saturating_add(1);
        let delay = Self::FIRST
            .saturating_mul(1 << self.failures.min(10))
            .min(cap);
        // Up to a quarter of jitter, so many peers do not retry in lockstep.
        let jitter = delay.mul_f64(f64::from(os_rng_u8()) / 1024.0);
        self.next = Instant::now() + delay + jitter;
    }

    fn due(&self, now: Instant) -> bool {
        !self.in_flight && self.next <= now
    }

    /// Something new to deliver: try again soon, without resetting the failures.
    fn hurry(&mut self) {
        let soon = Instant::now() + Self::FIRST;
        if self.next > soon {
            self.next = soon;
        }
    }
}

fn os_rng_u8() -> u8 {
    let mut byte = [0u8; 1];
    os_rng().fill_bytes_infallible(&mut byte);
    byte[0]
}

/// At most this many dials or request deliveries run at once, so many offline
/// contacts cannot exhaust Tor's circuits; the most urgent go first.
const MAX_CONCURRENT_DIALS: usize = 4;

struct LiveLink {
    contact: Option<i64>,
    /// The peer's identity key.
    peer: [u8; 32],
    /// Whether we dialled (for resolving duplicate links).
    dialled_by_us: bool,
    /// The link's session identifier (what authentication binds to).
    session_id: [u8; 32],
    /// Shared-secret authentication on this link.
    auth: AuthState,
    /// Cover cells came from the peer on this link.
    peer_cover: bool,
    commands: mpsc::UnboundedSender<LinkCommand>,
}

struct Engine {
    store: Store,
    transport: Arc<dyn Transport>,
    identity: Arc<IdentityKeyPair>,
    ephemeral: bool,
    request_service: Arc<dyn OnionService>,
    endpoint_service: Arc<dyn OnionService>,
    events: broadcast::Sender<Event>,
    reports_tx: mpsc::Sender<Report>,
    links: HashMap<LinkId, LiveLink>,
    next_link: LinkId,
    /// The one link kept per contact.
    contacts_online: HashMap<i64, LinkId>,
    dials: HashMap<i64, Backoff>,
    deliveries: HashMap<i64, Backoff>,
    presence: HashMap<i64, PresenceState>,
    unread: HashMap<i64, usize>,
    /// How the last authentication with each contact ended, since we started.
    last_auth: HashMap<i64, AuthOutcome>,
    rendezvous: Rendezvous,
    invites: Invites,
    offline: Offline,
    files: Files,
    groups: Groups,
    shaping: ShapingConfig,
    acceptors: Vec<tokio::task::JoinHandle<()>>,
}

impl Engine {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut reports: mpsc::Receiver<Report>,
    ) {
        self.schedule_initial_work();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        self.shutdown().await;
                        // The profile (its lock) is released before the caller
                        // hears we stopped, so it can be opened again at once.
                        drop(self);
                        let _ = reply.send(Ok(()));
                        return;
                    }
                    Some(command) => self.command(command).await,
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(report) = reports.recv() => self.report(report).await,
                _ = tick.tick() => {
                    self.start_due_work();
                    self.start_offline_work();
                    self.start_group_work();
                }
            }
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Tells the person (through the event stream). The text may name a contact,
    /// so the log gets it only at debug level.
    fn warn(&self, text: String) {
        tracing::debug!("warning: {text}");
        self.emit(Event::Warning { text });
    }

    fn schedule_initial_work(&mut self) {
        self.groups_load();
        match (self.store.contacts(), self.store.requests()) {
            (Ok(contacts), Ok(requests)) => {
                for contact in contacts {
                    self.dials.insert(contact.id, Backoff::now());
                }
                for request in requests {
                    if request.direction == RequestDirection::Outgoing && !request.delivered {
                        self.deliveries.insert(request.id, Backoff::now());
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => self.warn(format!("could not read the profile: {e}")),
        }
    }

    // ----- commands -------------------------------------------------------------

    async fn command(&mut self, command: Command) {
        match command {
            Command::Info(reply) => answer(reply, self.info()),
            Command::SendRequest {
                address,
                name,
                greeting,
                reply,
            } => answer(reply, self.send_request(&address, &name, &greeting).await),
            Command::Requests(reply) => answer(reply, self.requests()),
            Command::Accept { id, name, reply } => answer(reply, self.accept(id, &name).await),
            Command::Decline { id, reply } => answer(reply, self.decline(id).await),
            Command::Contacts(reply) => answer(reply, self.contacts()),
            Command::Contact { name, reply } => {
                let view = self.contact_named(&name).map(|c| self.view(&c));
                answer(reply, view);
            }
            Command::SendMessage {
                contact,
                text,
                reply,
            } => answer(reply, self.send_message(&contact, text)),
            Command::History {
                contact,
                limit,
                reply,
            } => answer(reply, self.history(&contact, limit)),
            Command::SetPresence { contact, on, reply } => {
                answer(reply, self.set_presence(&contact, on));
            }
            Command::Verify {
                contact,
                fingerprint,
                reply,
            } => answer(reply, self.verify(&contact, &fingerprint)),
            Command::Delete { contact, reply } => answer(reply, self.delete(&contact).await),
            Command::Authenticate {
                contact,
                secret,
                question,
                reply,
            } => answer(
                reply,
                self.authenticate(&contact, &secret, question.as_deref()),
            ),
            Command::AnswerAuth {
                contact,
                secret,
                reply,
            } => answer(reply, self.answer_auth(&contact, &secret)),
            Command::AbortAuth { contact, reply } => answer(reply, self.abort_auth(&contact)),
            Command::CreateGroup { name, reply } => answer(reply, self.create_group(&name)),
            Command::Groups(reply) => answer(reply, self.groups_list()),
            Command::GroupHistory { group, reply } => answer(reply, self.group_history(&group)),
            Command::SendGroupMessage { group, text, reply } => {
                answer(reply, self.send_group_message(&group, &text));
            }
            Command::InviteToGroup {
                group,
                contact,
                reply,
            } => answer(reply, self.invite_to_group(&group, &contact)),
            Command::RemoveFromGroup {
                group,
                contact,
                reply,
            } => answer(reply, self.remove_from_group(&group, &contact)),
            Command::LeaveGroup { group, reply } => answer(reply, self.leave_group(&group)),
            Command::CreateInvite {
                name,
                require_auth,
                reply,
            } => self.create_invite(&name, require_auth, reply),
            Command::JoinInvite {
                code,
                name,
                require_auth,
                reply,
            } => self.join_invite(&code, &name, require_auth, reply),
            Command::Mailboxes(reply) => answer(reply, self.mailboxes()),
            Command::AddMailbox { onion, reply } => answer(reply, self.add_mailbox(&onion)),
            Command::RemoveMailbox { onion, reply } => {
                answer(reply, self.remove_mailbox(&onion));
            }
            Command::SendFile {
                contact,
                file,
                reply,
            } => answer(reply, self.send_file(&contact, &file)),
            Command::Transfers { contact, reply } => {
                answer(reply, self.transfers(contact.as_deref()));
            }
            Command::Transfer { id, reply } => answer(reply, self.transfer(id)),
            Command::AcceptFile { id, options, reply } => {
                answer(reply, self.accept_file(id, &options));
            }
            Command::DeclineFile { id, reply } => answer(reply, self.decline_file(id)),
            Command::CancelFile { id, reply } => answer(reply, self.cancel_file(id)),
            Command::ResumeFile { id, reply } => answer(reply, self.resume_file(id)),
            Command::Shutdown(reply) => {
                // Handled in `run`; unreachable in practice but harmless.
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn info(&self) -> Result<ProfileInfo, NodeError> {
        let identity = *self.identity.public().signing_key();
        let mailbox = self
            .store
            .mailboxes()?
            .first()
            .map(|key| OnionAddress::from_public_key(*key));
        let address = ContactAddress {
            request_onion: self.request_service.address(),
            identity,
            mailbox,
            suggested_name: None,
        };
        Ok(ProfileInfo {
            address: address.to_bech32(),
            request_onion: self.request_service.address().to_string(),
            identity_key: views::key_text(identity.as_bytes()),
            fingerprint: self.identity.public().fingerprint().to_string(),
            ephemeral: self.ephemeral,
        })
    }

    fn contact_named(&self, name: &str) -> Result<ContactRecord, NodeError> {
        self.store
            .contact_by_name(name)?
            .ok_or_else(|| NodeError::UnknownContact(name.to_owned()))
    }

    fn view(&self, contact: &ContactRecord) -> ContactView {
        views::contact(
            contact,
            Live {
                online: self.contacts_online.contains_key(&contact.id),
                guarantees: self.guarantees(contact),
                authenticated: self
                    .link_of(contact.id)
                    .is_some_and(|l| l.auth.is_authenticated()),
                presence: self.presence.get(&contact.id).copied(),
                unread: self.unread.get(&contact.id).copied().unwrap_or(0),
                last_auth: self.last_auth.get(&contact.id).copied(),
            },
        )
    }

    fn guarantees(&self, contact: &ContactRecord) -> Guarantees {
        let link = self.link_of(contact.id);
        let mailbox = link.is_none()
            && !contact.require_auth
            && self
                .store
                .send_chain(contact.id)
                .is_ok_and(|chain| chain.is_some());
        Guarantees {
            // Every link is made with the hybrid handshake.
            post_quantum: link.map(|_| true),
            forward_secrecy: if mailbox {
                ForwardSecrecy::MailboxChain
            } else {
                ForwardSecrecy::Ratchet
            },
            our_cover: self.shaping.cover.to_string(),
            their_cover: link.map(|l| l.peer_cover),
        }
    }

    fn peer_cover(&mut self, link: LinkId) {
        let Some(live) = self.links.get_mut(&link) else {
            return;
        };
        live.peer_cover = true;
        if let Some(contact) = self.contact_of_link(link)
            && self.contacts_online.get(&contact.id) == Some(&link)
        {
            self.emit(Event::Guarantees {
                contact: contact.name.clone(),
                guarantees: self.guarantees(&contact),
            });
        }
    }

    fn contacts(&self) -> Result<Vec<ContactView>, NodeError> {
        Ok(self
            .store
            .contacts()?
            .iter()
            .map(|c| self.view(c))
            .collect())
    }

    fn requests(&self) -> Result<Vec<RequestView>, NodeError> {
        Ok(self.store.requests()?.iter().map(views::request).collect())
    }

    async fn send_request(
        &mut self,
        address: &str,
        name: &str,
        greeting: &str,
    ) -> Result<RequestView, NodeError> {
        let address: ContactAddress =
            address
                .trim()
                .parse()
                .map_err(|e: nightjar_proto::address::AddressError| {
                    NodeError::BadAddress(e.to_string())
                })?;
        if !views::valid_name(name) {
            return Err(NodeError::BadName(name.to_owned()));
        }
        if greeting.len() > nightjar_proto::message::MAX_GREETING_LEN {
            return Err(NodeError::BadMessage("the greeting is too long".into()));
        }
        let peer = address.identity.to_bytes();
        if peer == self.identity.public().signing_key().to_bytes() {
            return Err(NodeError::OwnAddress);
        }
        let known_request = self
            .store
            .requests()?
            .into_iter()
            .any(|r| r.peer_key == peer && r.direction == RequestDirection::Outgoing);
        if known_request || self.store.contact_by_key(&peer)?.is_some() {
            return Err(NodeError::AlreadyKnown(name.to_owned()));
        }
        let credential = random_secret();
        let record = self
            .store
            .add_outgoing_request(
                &peer,
                address.request_onion.public_key(),
                &credential,
                name,
                greeting,
                now_ms(),
            )
            .map_err(name_taken(name))?;
        self.refresh_authorizations().await;
        self.deliveries.insert(record.id, Backoff::now());
        self.start_due_work();
        Ok(views::request(&record))
    }

    async fn accept(&mut self, id: i64, name: &str) -> Result<ContactView, NodeError> {
        if !views::valid_name(name) {
            return Err(NodeError::BadName(name.to_owned()));
        }
        let request = self
            .store
            .request(id)
            .ok()
            .filter(|r| r.direction == RequestDirection::Incoming)
            .ok_or(NodeError::UnknownRequest(id))?;
        // If we had asked them too, our own request is moot now.
        for mine in self.store.requests()? {
            if mine.direction == RequestDirection::Outgoing && mine.peer_key == request.peer_key {
                self.store.delete_request(mine.id)?;
                self.deliveries.remove(&mine.id);
            }
        }
        let credential = random_secret();
        let contact = self
            .store
            .accept_incoming(id, name, &credential, now_ms())
            .map_err(name_taken(name))?;
        self.refresh_authorizations().await;
        self.dials.insert(contact.id, Backoff::now());
        self.start_due_work();
        Ok(self.view(&contact))
    }

    async fn decline(&mut self, id: i64) -> Result<(), NodeError> {
        self.store
            .request(id)
            .map_err(|_| NodeError::UnknownRequest(id))?;
        self.store.delete_request(id)?;
        self.deliveries.remove(&id);
        self.refresh_authorizations().await;
        Ok(())
    }

    fn send_message(&mut self, contact: &str, text: String) -> Result<MessageView, NodeError> {
        let record = self.contact_named(contact)?;
        if text.is_empty() {
            return Err(NodeError::BadMessage("the message is empty".into()));
        }
        if text.len() > nightjar_proto::message::MAX_TEXT_LEN {
            return Err(NodeError::BadMessage(format!(
                "longer than {} bytes",
                nightjar_proto::message::MAX_TEXT_LEN
            )));
        }
        let mut id = [0u8; 16];
        os_rng().fill_bytes_infallible(&mut id);
        let now = now_ms();
        let stored = self.store.queue_message(record.id, &id, &text, now, now)?;
        if let Some(link) = self.link_of(record.id) {
            if may_send(&record, link) {
                send_text(link, &stored);
            }
        } else {
            if let Some(dial) = self.dials.get_mut(&record.id) {
                dial.hurry();
            }
            self.hurry_deposit(record.id);
        }
        Ok(views::message(&record.name, &stored))
    }

    fn history(&mut self, contact: &str, limit: usize) -> Result<Vec<MessageView>, NodeError> {
        let record = self.contact_named(contact)?;
        let messages = self.store.history(record.id, limit)?;
        self.unread.remove(&record.id);
        Ok(messages
            .iter()
            .map(|m| views::message(&record.name, m))
            .collect())
    }

    fn set_presence(&mut self, contact: &str, on: bool) -> Result<(), NodeError> {
        let record = self.contact_named(contact)?;
        self.store.set_share_presence(record.id, on)?;
        if on && let Some(link) = self.link_of(record.id) {
            send(link, Message::Presence(Presence::Online));
        }
        Ok(())
    }

    fn verify(&mut self, contact: &str, fingerprint: &str) -> Result<ContactView, NodeError> {
        let mut record = self.contact_named(contact)?;
        let theirs = views::fingerprint_digits(&views::fingerprint_of(&record.identity_key));
        if views::fingerprint_digits(fingerprint) != theirs {
            return Err(NodeError::FingerprintMismatch(record.name));
        }
        self.store.set_verified(record.id, true)?;
        record.verified = true;
        Ok(self.view(&record))
    }

    /// The contact's adopted link and what binds an authentication on it.
    fn auth_link(&mut self, contact: &ContactRecord) -> Result<(LinkId, Binding), NodeError> {
        let ours = self.identity.public().signing_key().to_bytes();
        let link = *self
            .contacts_online
            .get(&contact.id)
            .ok_or_else(|| NodeError::NotConnected(contact.name.clone()))?;
        let live = self
            .links
            .get(&link)
            .ok_or_else(|| NodeError::NotConnected(contact.name.clone()))?;
        let binding = Binding {
            ours,
            theirs: live.peer,
            session_id: live.session_id,
        };
        Ok((link, binding))
    }

    fn authenticate(
        &mut self,
        contact: &str,
        secret: &str,
        question: Option<&str>,
    ) -> Result<(), NodeError> {
        if secret.trim().is_empty() {
            return Err(NodeError::BadSecret("the secret is empty".into()));
        }
        let record = self.contact_named(contact)?;
        let (link, binding) = self.auth_link(&record)?;
        let live = self
            .links
            .get_mut(&link)
            .ok_or_else(|| NodeError::NotConnected(record.name.clone()))?;
        let steps = live
            .auth
            .start(&binding, secret.as_bytes(), question)
            .map_err(NodeError::BadSecret)?;
        for step in steps {
            send(live, Message::Smp(step));
        }
        Ok(())
    }

    fn answer_auth(&mut self, contact: &str, secret: &str) -> Result<(), NodeError> {
        if secret.trim().is_empty() {
            return Err(NodeError::BadSecret("the secret is empty".into()));
        }
        let record = self.contact_named(contact)?;
        let (link, _) = self.auth_link(&record)?;
        let live = self
            .links
            .get_mut(&link)
            .ok_or_else(|| NodeError::NotConnected(record.name.clone()))?;
        match live.auth.answer(secret.as_bytes()) {
            Some(Ok(step)) => {
                send(live, Message::Smp(step));
                Ok(())
            }
            Some(Err(e)) => Err(NodeError::BadSecret(e)),
            None => Err(NodeError::NoAuthPending(record.name)),
        }
    }

    fn abort_auth(&mut self, contact: &str) -> Result<(), NodeError> {
        let record = self.contact_named(contact)?;
        let (link, _) = self.auth_link(&record)?;
        if self
            .links
            .get_mut(&link)
            .is_some_and(|live| live.auth.cancel_ready())
        {
            self.auth_finished(link, &record, AuthOutcome::Aborted);
            return Ok(());
        }
        let step = self
            .links
            .get_mut(&link)
            .and_then(|live| live.auth.abort())
            .ok_or_else(|| NodeError::NoAuthPending(record.name.clone()))?;
        if let Some(live) = self.links.get(&link) {
            send(live, Message::Smp(step));
        }
        self.auth_finished(link, &record, AuthOutcome::Aborted);
        Ok(())
    }

    /// An SMP step arrived from the contact on their adopted link.
    fn auth_step(&mut self, link: LinkId, contact: &ContactRecord, step: &[u8]) {
        let Ok((_, binding)) = self.auth_link(contact) else {
            return;
        };
        let Some(live) = self.links.get_mut(&link) else {
            return;
        };
        match live.auth.receive(&binding, step) {
            Action::Nothing => {}
            Action::Send(reply) => send(live, Message::Smp(reply)),
            Action::Ask { question } => self.emit(Event::AuthRequested {
                contact: contact.name.clone(),
                question,
            }),
            Action::Finished {
                outcome,
                send: last,
            } => {
                if let Some(last) = last {
                    send(live, Message::Smp(last));
                }
                self.auth_finished(link, contact, outcome);
            }
        }
    }

    /// Records and reports how a run ended; a success releases messages that
    /// waited for it.
    fn auth_finished(&mut self, link: LinkId, contact: &ContactRecord, outcome: AuthOutcome) {
        self.last_auth.insert(contact.id, outcome);
        self.emit(Event::AuthResult {
            contact: contact.name.clone(),
            outcome,
        });
        if outcome != AuthOutcome::Succeeded {
            return;
        }
        if contact.require_auth
            && let Err(e) = self.store.set_require_auth(contact.id, false)
        {
            self.warn(format!("could not store an authentication: {e}"));
            return;
        }
        // Texts the peer dropped while it waited for this go again (it keeps
        // only one copy of each).
        let released = ContactRecord {
            require_auth: false,
            ..contact.clone()
        };
        self.offer_grant(link, &released);
        self.flush_outbox(link, &released);
        self.files_link_up(link, &released);
    }

    /// Starts a comparison taken off a replaced link again on its successor.
    fn resume_auth(&mut self, link: LinkId, contact: &ContactRecord, resume: Resume) {
        let Ok((_, binding)) = self.auth_link(contact) else {
            return;
        };
        let Some(live) = self.links.get_mut(&link) else {
            return;
        };
        match live.auth.resume(&binding, resume) {
            Ok(steps) => {
                tracing::debug!("authentication moved to the contact's new link");
                for step in steps {
                    send(live, Message::Smp(step));
                }
            }
            Err(e) => {
                tracing::debug!("could not move an authentication: {e}");
                self.auth_interrupted(contact.id, &contact.name);
            }
        }
    }

    /// A run ended with its link: both sides see it aborted.
    fn auth_interrupted(&mut self, contact: i64, name: &str) {
        self.last_auth.insert(contact, AuthOutcome::Aborted);
        self.emit(Event::AuthResult {
            contact: name.to_owned(),
            outcome: AuthOutcome::Aborted,
        });
    }

    async fn delete(&mut self, contact: &str) -> Result<(), NodeError> {
        let record = self.contact_named(contact)?;
        self.remove_contact(record.id).await
    }

    /// Deletes the contact, closes its link and revokes its access.
    async fn remove_contact(&mut self, id: i64) -> Result<(), NodeError> {
        self.files_contact_removed(id);
        self.store.delete_contact(id)?;
        if let Some(link) = self.contacts_online.remove(&id) {
            self.links.remove(&link);
        }
        self.dials.remove(&id);
        self.presence.remove(&id);
        self.unread.remove(&id);
        self.last_auth.remove(&id);
        self.refresh_authorizations().await;
        Ok(())
    }

    /// Tells the endpoint exactly whom to admit; called after every change.
    async fn refresh_authorizations(&mut self) {
        let result = match authorized_clients(&self.store) {
            Ok(list) => self
                .endpoint_service
                .set_authorized_clients(list)
                .await
                .map_err(NodeError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.warn(format!("could not update who may reach this profile: {e}"));
        }
    }

    async fn shutdown(&mut self) {
        self.files_shutdown().await;
        self.stop_cover();
        for (&contact, &link) in &self.contacts_online {
            let shares = self.store.contact(contact).map(|c| c.share_presence);
            if shares.unwrap_or(false)
                && let Some(live) = self.links.get(&link)
            {
                send(live, Message::Presence(Presence::Offline));
            }
        }
        self.contacts_online.clear();
        // Dropping the senders lets each link task write what it has, then close.
        self.links.clear();
        for acceptor in &self.acceptors {
            acceptor.abort();
        }
        // Give the link tasks a moment to flush goodbyes before the services go.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = self.request_service.shutdown().await;
        let _ = self.endpoint_service.shutdown().await;
    }

    // ----- background work ------------------------------------------------------

    fn start_due_work(&mut self) {
        let now = Instant::now();
        let in_flight = self
            .dials
            .values()
            .chain(self.deliveries.values())
            .filter(|b| b.in_flight)
            .count();
        let mut free = MAX_CONCURRENT_DIALS.saturating_sub(in_flight);
        if free == 0 {
            return;
        }
        // Requests and contacts with something to deliver come first.
        let mut due: Vec<(u8, bool, i64)> = Vec::new();
        for (&id, backoff) in &self.deliveries {
            if backoff.due(now) {
                due.push((0, true, id));
            }
        }
        for (&id, backoff) in &self.dials {
            if backoff.due(now) && !self.contacts_online.contains_key(&id) {
                let urgent = self.has_work(id);
                due.push((if urgent { 1 } else { 2 }, false, id));
            }
        }
        due.sort_unstable();
        for (_, is_request, id) in due {
            if free == 0 {
                break;
            }
            let started = if is_request {
                self.start_delivery(id)
            } else {
                self.start_dial(id)
            };
            if started {
                free -= 1;
            }
        }
    }

    fn has_work(&self, contact: i64) -> bool {
        match self.store.contact(contact) {
            Ok(c) if c.state == ContactState::Accepting => true,
            Ok(_) => {
                let texts = self.store.undelivered(contact).map(|m| !m.is_empty());
                let files = self
                    .store
                    .unfinished_transfers(contact)
                    .map(|rows| !rows.is_empty());
                texts.unwrap_or(false) || files.unwrap_or(false)
            }
            Err(_) => false,
        }
    }

    fn start_dial(&mut self, contact: i64) -> bool {
        let Ok(record) = self.store.contact(contact) else {
            self.dials.remove(&contact);
            return false;
        };
        let Ok(identity) = VerifyingKey::from_bytes(&record.identity_key) else {
            self.dials.remove(&contact);
            return false;
        };
        let target = Target {
            onion: OnionAddress::from_public_key(record.their_endpoint),
            identity,
            credential: Some(ClientAuthSecret(*record.their_credential)),
            isolation: format!("contact-{contact}"),
            pacing: self.shaping.setup_pacing(),
        };
        if let Some(b) = self.dials.get_mut(&contact) {
            b.in_flight = true;
        }
        net::spawn_dial(
            self.transport.clone(),
            self.identity.clone(),
            contact,
            target,
            self.reports_tx.clone(),
        );
        true
    }

    fn start_delivery(&mut self, request: i64) -> bool {
        let Ok(record) = self.store.request(request) else {
            self.deliveries.remove(&request);
            return false;
        };
        let (Some(onion), Some(credential), Ok(identity)) = (
            record.peer_request_onion,
            record.our_credential.clone(),
            VerifyingKey::from_bytes(&record.peer_key),
        ) else {
            self.deliveries.remove(&request);
            return false;
        };
        let message = Message::ContactRequest {
            grant: EndpointGrant {
                onion_key: *self.endpoint_service.address().public_key(),
                credential: *credential,
            },
            greeting: record.greeting.clone(),
        };
        let target = Target {
            onion: OnionAddress::from_public_key(onion),
            identity,
            credential: None,
            isolation: format!("request-{request}"),
            pacing: self.shaping.setup_pacing(),
        };
        if let Some(b) = self.deliveries.get_mut(&request) {
            b.in_flight = true;
        }
        net::spawn_request_delivery(
            self.transport.clone(),
            self.identity.clone(),
            request,
            target,
            message,
            self.reports_tx.clone(),
        );
        true
    }

    // ----- reports --------------------------------------------------------------

    async fn report(&mut self, report: Report) {
        match report {
            Report::Dialled { contact, link } => {
                if let Some(b) = self.dials.get_mut(&contact) {
                    b.in_flight = false;
                }
                self.link_up(link, true).await;
            }
            Report::DialFailed { contact, error } => {
                tracing::debug!("dial failed: {error}");
                let urgent = self.has_work(contact);
                if let Some(b) = self.dials.get_mut(&contact) {
                    if urgent {
                        b.failed_urgent();
                    } else {
                        b.failed();
                    }
                }
            }
            Report::Answered { link } => self.link_up(link, false).await,
            Report::GroupRead { group, result } => self.group_read(group, result),
            Report::GroupPosted { group, result } => self.group_posted(group, result),
            Report::RequestArrived {
                peer,
                grant,
                greeting,
                stored,
            } => {
                let ok = self.request_arrived(&peer, &grant, &greeting);
                let _ = stored.send(ok);
            }
            Report::RequestSent { request, result } => self.request_sent(request, result),
            Report::Received { link, message } => self.received(link, message).await,
            Report::Written {
                link,
                what: Written::Text { id, was_queued },
            } => self.written(link, &id, was_queued),
            Report::Written {
                what: Written::Transfer(transfer),
                ..
            } => self.transfer_told(transfer),
            Report::PeerCover { link } => self.peer_cover(link),
            Report::Closed { link, error } => self.closed(link, error),
            Report::InviteExchanged(exchanged) => self.invite_exchanged(*exchanged).await,
            Report::InviteSettled { contact, confirmed } => {
                self.invite_settled(&contact, confirmed).await;
            }
            Report::InviteFinished { name, result } => self.invite_finished(name, result),
            Report::Deposited {
                contact,
                seq,
                id,
                mailbox,
                instance,
            } => self.deposited(contact, seq, id, mailbox, instance),
            Report::DepositLost { contact, seq, id } => self.deposit_lost(contact, seq, id),
            Report::DepositEnded { contact, result } => self.deposit_ended(contact, result),
            Report::CoverEnded {
                contact,
                item,
                taken,
            } => self.cover_ended(contact, *item, taken),
            Report::Drained { found } => self.drained(found),
            Report::PumpEnded {
                transfer,
                generation,
                end,
            } => self.pump_ended(transfer, generation, end),
            Report::Sink {
                transfer,
                generation,
                report,
            } => self.sink_report(transfer, generation, report),
        }
    }

    fn request_arrived(
        &mut self,
        peer: &VerifyingKey,
        grant: &EndpointGrant,
        greeting: &str,
    ) -> bool {
        let key = peer.to_bytes();
        match self.store.contact_by_key(&key) {
            // Already contacts (they lost our confirmation): nothing to ask.
            Ok(Some(_)) => return true,
            Ok(None) => {}
            Err(e) => {
                self.warn(format!("could not store a contact request: {e}"));
                return false;
            }
        }
        let known = self
            .store
            .requests()
            .ok()
            .into_iter()
            .flatten()
            .any(|r| r.direction == RequestDirection::Incoming && r.peer_key == key);
        match self.store.put_incoming_request(
            &key,
            &grant.onion_key,
            &grant.credential,
            greeting,
            now_ms(),
        ) {
            Ok(record) => {
                if !known {
                    self.emit(Event::RequestReceived {
                        request: views::request(&record),
                    });
                }
                true
            }
            Err(e) => {
                self.warn(format!("could not store a contact request: {e}"));
                false
            }
        }
    }

    fn request_sent(&mut self, request: i64, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.deliveries.remove(&request);
                if self.store.mark_request_delivered(request).is_ok()
                    && let Ok(record) = self.store.request(request)
                {
                    self.emit(Event::RequestDelivered {
                        request: views::request(&record),
                    });
                }
            }
            Err(error) => {
                tracing::debug!("contact request not delivered yet: {error}");
                if let Some(b) = self.deliveries.get_mut(&request) {
                    b.failed_urgent();
                }
            }
        }
    }

    /// A link came up: find out who it is, keep one link per contact, and start
    /// sending what waits for them.
    async fn link_up(&mut self, link: Link<BoxStream>, dialled_by_us: bool) {
        let peer = link.peer().signing_key().to_bytes();
        let session_id = link.session_id();
        let contact = match self.store.contact_by_key(&peer) {
            Ok(found) => found,
            Err(e) => {
                self.warn(format!("could not read contacts: {e}"));
                return;
            }
        };
        let awaited = contact.is_none()
            && self
                .store
                .requests()
                .ok()
                .into_iter()
                .flatten()
                .any(|r| r.direction == RequestDirection::Outgoing && r.peer_key == peer);
        if contact.is_none() && !awaited {
            tracing::debug!("dropped a link from a stranger");
            return;
        }
        let id = self.next_link;
        self.next_link += 1;
        tracing::debug!(link = id, dialled_by_us, "link up");
        let (commands, rx) = mpsc::unbounded_channel();
        let pacer = Pacer::new(self.shaping);
        net::spawn_link(id, link, rx, self.reports_tx.clone(), pacer);
        self.links.insert(
            id,
            LiveLink {
                contact: contact.as_ref().map(|c| c.id),
                peer,
                dialled_by_us,
                session_id,
                auth: AuthState::Idle,
                peer_cover: false,
                commands,
            },
        );
        if let Some(contact) = contact {
            self.adopt(id, &contact);
        }
    }

    /// Makes `link` the contact's link, unless it duplicates a better one.
    fn adopt(&mut self, link: LinkId, contact: &ContactRecord) {
        let mut moving = None;
        if let Some(&old) = self.contacts_online.get(&contact.id) {
            if self.keep_old(old, link) {
                tracing::debug!("duplicate link: keeping the older one");
                self.links.remove(&link);
                return;
            }
            tracing::debug!("duplicate link: keeping the newer one");
            // A comparison our user typed a secret for goes on on the new link
            // (the peer, applying the same rule, does the same); otherwise it ends.
            if let Some(mut replaced) = self.links.remove(&old)
                && replaced.auth.is_running()
            {
                match replaced.auth.take_for_move() {
                    Some(resume) => moving = Some(resume),
                    None => self.auth_interrupted(contact.id, &contact.name),
                }
            }
        }
        self.contacts_online.insert(contact.id, link);
        self.dials.insert(
            contact.id,
            Backoff {
                in_flight: self.dials.get(&contact.id).is_some_and(|b| b.in_flight),
                ..Backoff::now()
            },
        );
        let Some(live) = self.links.get(&link) else {
            return;
        };
        if contact.state == ContactState::Accepting {
            if moving.is_some() {
                self.auth_interrupted(contact.id, &contact.name);
            }
            let Some(live) = self.links.get(&link) else {
                return;
            };
            send(
                live,
                Message::Accept {
                    grant: EndpointGrant {
                        onion_key: *self.endpoint_service.address().public_key(),
                        credential: *contact.our_credential,
                    },
                },
            );
            // Messages wait until they confirm.
            return;
        }
        self.emit(Event::Connected {
            contact: contact.name.clone(),
        });
        if contact.share_presence {
            send(live, Message::Presence(Presence::Online));
        }
        if let Some(resume) = moving {
            self.resume_auth(link, contact, resume);
        }
        let Some(live) = self.links.get(&link) else {
            return;
        };
        if !may_send(contact, live) {
            self.emit(Event::AuthRequired {
                contact: contact.name.clone(),
            });
            return;
        }
        // The grant goes first, so anything the contact reads after it on this
        // link was sent after it.
        self.offer_grant(link, contact);
        self.flush_outbox(link, contact);
        self.files_link_up(link, contact);
    }

    /// Sends everything not yet delivered to the contact over `link`.
    fn flush_outbox(&self, link: LinkId, contact: &ContactRecord) {
        let Some(live) = self.links.get(&link) else {
            return;
        };
        match self.store.undelivered(contact.id) {
            Ok(waiting) => {
                for message in &waiting {
                    send_text(live, message);
                }
            }
            Err(e) => self.warn(format!("could not read the outbox: {e}")),
        }
    }

    /// Both sides apply the same rule to two links between them: keep the one
    /// dialled by the side with the smaller identity key; if one side dialled
    /// both, the newer.
    fn keep_old(&self, old: LinkId, new: LinkId) -> bool {
        let (Some(old), Some(new)) = (self.links.get(&old), self.links.get(&new)) else {
            return false;
        };
        if old.dialled_by_us == new.dialled_by_us {
            return false;
        }
        let ours = self.identity.public().signing_key().to_bytes();
        let we_are_smaller = ours < old.peer;
        // Keep the link dialled by the smaller key.
        old.dialled_by_us == we_are_smaller
    }

    fn link_of(&self, contact: i64) -> Option<&LiveLink> {
        self.contacts_online
            .get(&contact)
            .and_then(|id| self.links.get(id))
    }

    fn contact_of_link(&self, link: LinkId) -> Option<ContactRecord> {
        let contact = self.links.get(&link)?.contact?;
        self.store.contact(contact).ok()
    }

    async fn received(&mut self, link: LinkId, message: Message) {
        let Some(live) = self.links.get(&link) else {
            return;
        };
        let peer = live.peer;
        let contact = self.contact_of_link(link);
        let message = match &contact {
            Some(contact) if contact.state == ContactState::Active => {
                let other = match self.file_message(link, contact, message) {
                    Ok(()) => return,
                    Err(other) => other,
                };
                match self.group_message(link, contact, other) {
                    Ok(()) => return,
                    Err(other) => other,
                }
            }
            _ => message,
        };
        match (&message, contact) {
            (Message::Accept { grant }, contact) => {
                self.accepted_by_peer(link, &peer, grant, contact).await;
            }
            (Message::Accepted, Some(contact)) => {
                if contact.state == ContactState::Accepting {
                    if let Err(e) = self
                        .store
                        .set_contact_state(contact.id, ContactState::Active)
                    {
                        self.warn(format!("could not store a contact: {e}"));
                        return;
                    }
                    let active = ContactRecord {
                        state: ContactState::Active,
                        ..contact
                    };
                    self.emit(Event::ContactAdded {
                        contact: self.view(&active),
                    });
                    self.contacts_online.remove(&active.id);
                    self.adopt(link, &active);
                }
            }
            (
                Message::Text {
                    id,
                    sent_at_ms,
                    body,
                },
                Some(contact),
            ) if self.is_adopted(link, &contact) => {
                if self
                    .links
                    .get(&link)
                    .is_some_and(|l| !may_send(&contact, l))
                {
                    // Not before authentication; without a receipt they send it again.
                    tracing::debug!("dropped a message that came before authentication");
                    return;
                }
                let id = *id;
                match self
                    .store
                    .store_incoming(contact.id, &id.0, body, *sent_at_ms, now_ms())
                {
                    Ok(stored) => {
                        if let Some(record) = stored {
                            *self.unread.entry(contact.id).or_default() += 1;
                            self.emit(Event::MessageReceived {
                                message: views::message(&contact.name, &record),
                            });
                        }
                        // Stored (now or before): confirm, so the sender stops resending.
                        if let Some(live) = self.links.get(&link) {
                            send(live, Message::Receipt { ids: vec![id] });
                        }
                    }
                    Err(e) => self.warn(format!("could not store a message: {e}")),
                }
            }
            (Message::Receipt { ids }, Some(contact)) => {
                let ids: Vec<[u8; 16]> = ids.iter().map(|id| id.0).collect();
                match self.store.mark_delivered(contact.id, &ids) {
                    Ok(changed) => {
                        for id in changed {
                            self.emit(Event::MessageState {
                                contact: contact.name.clone(),
                                id: views::id_text(&id),
                                state: crate::MessageState::Delivered,
                            });
                        }
                    }
                    Err(e) => self.warn(format!("could not record a receipt: {e}")),
                }
            }
            (Message::Presence(presence), Some(contact)) => {
                let presence = match *presence {
                    Presence::Online => PresenceState::Online,
                    Presence::Away => PresenceState::Away,
                    Presence::Offline => PresenceState::Offline,
                };
                self.presence.insert(contact.id, presence);
                self.emit(Event::Presence {
                    contact: contact.name,
                    presence,
                });
            }
            (Message::Smp(step), Some(contact)) if self.is_adopted(link, &contact) => {
                self.auth_step(link, &contact, step);
            }
            (Message::DropGrant(grant), Some(contact)) if self.is_adopted(link, &contact) => {
                self.grant_received(contact.id, grant);
            }
            (Message::Quit, Some(contact)) => self.emit(Event::PeerQuit {
                contact: contact.name,
            }),
            (other, _) => tracing::debug!("ignored {other:?} on a link"),
        }
    }

    fn is_adopted(&self, link: LinkId, contact: &ContactRecord) -> bool {
        self.contacts_online.get(&contact.id) == Some(&link)
    }

    /// They accepted our request (or repeat an acceptance we confirmed already).
    async fn accepted_by_peer(
        &mut self,
        link: LinkId,
        peer: &[u8; 32],
        grant: &EndpointGrant,
        contact: Option<ContactRecord>,
    ) {
        let contact = match contact {
            Some(contact) => contact,
            None => {
                let request = self
                    .store
                    .requests()
                    .ok()
                    .into_iter()
                    .flatten()
                    .find(|r| r.direction == RequestDirection::Outgoing && &r.peer_key == peer);
                let Some(request) = request else {
                    return;
                };
                let completed = self.store.complete_outgoing(
                    request.id,
                    &grant.onion_key,
                    &grant.credential,
                    now_ms(),
                );
                let contact = match completed {
                    Ok(contact) => contact,
                    Err(e) => {
                        self.warn(format!("could not store a new contact: {e}"));
                        return;
                    }
                };
                self.deliveries.remove(&request.id);
                // A request they had sent us is answered by this too.
                for theirs in self.store.requests().ok().into_iter().flatten() {
                    if theirs.direction == RequestDirection::Incoming && &theirs.peer_key == peer {
                        let _ = self.store.delete_request(theirs.id);
                    }
                }
                self.refresh_authorizations().await;
                if let Some(live) = self.links.get_mut(&link) {
                    live.contact = Some(contact.id);
                }
                self.emit(Event::ContactAdded {
                    contact: self.view(&contact),
                });
                contact
            }
        };
        if let Some(live) = self.links.get(&link) {
            send(live, Message::Accepted);
        }
        if !self.is_adopted(link, &contact) {
            self.adopt(link, &contact);
        }
    }

    fn written(&mut self, link: LinkId, id: &[u8; 16], was_queued: bool) {
        let Some(contact) = self.contact_of_link(link) else {
            return;
        };
        if let Err(e) = self.store.mark_sent(contact.id, id) {
            self.warn(format!("could not record a sent message: {e}"));
            return;
        }
        if was_queued {
            self.emit(Event::MessageState {
                contact: contact.name,
                id: views::id_text(id),
                state: crate::MessageState::Sent,
            });
        }
    }

    fn closed(&mut self, link: LinkId, error: Option<String>) {
        if let Some(error) = error {
            tracing::debug!("link ended: {error}");
        }
        self.files_link_closed(link);
        let Some(live) = self.links.remove(&link) else {
            return;
        };
        let Some(contact) = live.contact else {
            return;
        };
        if self.contacts_online.get(&contact) == Some(&link) {
            self.contacts_online.remove(&contact);
            if let Ok(record) = self.store.contact(contact) {
                if live.auth.is_running() {
                    self.auth_interrupted(contact, &record.name);
                }
                self.emit(Event::Disconnected {
                    contact: record.name,
                });
            }
            // Try again soon: they may only have restarted.
            self.dials.insert(
                contact,
                Backoff {
                    next: Instant::now() + Backoff::FIRST,
                    ..Backoff::now()
                },
            );
        }
    }
}

/// Whether texts may go to the contact over this link: not before a required
/// authentication has succeeded on it.
fn may_send(contact: &ContactRecord, link: &LiveLink) -> bool {
    !contact.require_auth || link.auth.is_authenticated()
}

fn answer<T>(reply: Reply<T>, result: Result<T, NodeError>) {
    let _ = reply.send(result);
}

fn name_taken(name: &str) -> impl FnOnce(StoreError) -> NodeError + '_ {
    move |e| match e {
        StoreError::NameTaken(_) => NodeError::NameTaken(name.to_owned()),
        other => NodeError::Store(other),
    }
}

fn send(link: &LiveLink, message: Message) {
    let _ = link.commands.send(LinkCommand::Send {
        message,
        written: None,
    });
}

fn send_text(link: &LiveLink, record: &nightjar_store::MessageRecord) {
    let message = Message::Text {
        id: MessageId(record.id),
        sent_at_ms: record.sent_at_ms,
        body: record.body.clone(),
    };
    let was_queued = record.state == nightjar_store::MessageState::Queued;
    let _ = link.commands.send(LinkCommand::Send {
        message,
        written: Some(Written::Text {
            id: record.id,
            was_queued,
        }),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delay a backoff chose, read back from when it is due.
    fn delay(b: &Backoff, before: Instant) -> Duration {
        b.next.saturating_duration_since(before)
    }

    #[test]
    fn retries_double_up_to_their_cap_with_a_little_jitter() {
        let mut normal = Backoff::now();
        let mut urgent = Backoff::now();
        for _ in 0..12 {
            let before = Instant::now();
            normal.failed();
            urgent.failed_urgent();
            assert!(delay(&normal, before) <= Backoff::CAP.mul_f64(1.25));
            assert!(delay(&urgent, before) <= Backoff::URGENT_CAP.mul_f64(1.25));
        }
        let before = Instant::now();
        urgent.failed_urgent();
        assert!(delay(&urgent, before) >= Backoff::URGENT_CAP);
        normal.failed();
        assert!(delay(&normal, before) >= Backoff::CAP);
        assert!(!normal.in_flight && !urgent.in_flight);
    }
}

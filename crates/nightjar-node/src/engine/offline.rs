//! The engine's side of offline delivery through mailboxes.
//!
//! Sending: while a contact is unreachable, every message without a receipt is
//! sealed under the contact's send chain (the chain's new state and the sealed
//! blobs are stored together, before any blob leaves) and deposited into one of
//! the contact's mailboxes, in order, stopping at the first failure. A retry
//! sends the stored bytes again; nothing is ever encrypted twice under one key.
//! A mailbox that reports another instance than the one a blob went to has
//! restarted and lost it, so the blob is deposited again.
//!
//! Receiving: every so often (and at start) the node fetches the slots of all
//! its receive chains from its own mailboxes, stores what opens (with the
//! chain's new state, in one transaction) and only then acknowledges, so the
//! mailbox deletes only what is safely on disk. The same message may also come
//! over a link; the receiver drops the second copy by id, so order and
//! exactly-once delivery hold across both paths.
//!
//! Cover: optionally, dummy messages go to away contacts' mailboxes at random
//! times (see [`cover`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nightjar_mailbox::client::SlotKey;
use nightjar_mailbox::wire::BlobId;
use nightjar_proto::message::{Message, MessageId};
use nightjar_proto::offline::{DropGrant, RecvChain, SendChain};
use nightjar_proto::onion::OnionAddress;
use nightjar_store::{ContactState, IncomingText, NewSealed, SealedRecord, StoreError};
use nightjar_tor::Transport;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::{Backoff, Engine, now_ms, send};
use crate::courier;
use crate::link::os_rng;
use crate::net::{LinkId, Report};
use crate::views;
use crate::{Event, MessageState, NodeError};

mod cover;
pub(crate) use cover::CoverItem;

/// How often the node looks for offline work. The defaults suit people; tests
/// shorten them.
#[derive(Debug, Clone, Copy)]
pub struct OfflineConfig {
    /// How often to drain our mailboxes (also once at start).
    pub drain_every: Duration,
    /// How often to ask the mailboxes holding our undelivered messages whether
    /// they still hold them (a restart loses them).
    pub check_every: Duration,
    /// How long a message may wait for a link before it goes to the contact's
    /// mailbox even though no dial has failed yet.
    pub deposit_after: Duration,
    /// The mean gap between cover deposits into each away contact's mailbox
    /// (exponentially distributed), or `None` for no cover. Each costs a proof
    /// of work and a blob of the mailbox's memory until the contact collects it.
    pub mailbox_cover: Option<Duration>,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        Self {
            drain_every: Duration::from_secs(600),
            check_every: Duration::from_secs(600),
            deposit_after: Duration::from_secs(60),
            mailbox_cover: None,
        }
    }
}

/// Most mailboxes a profile names.
pub(crate) const MAX_MAILBOXES: usize = nightjar_proto::offline::MAX_MAILBOXES;

/// Offline delivery's state in the engine.
#[derive(Debug)]
pub(super) struct Offline {
    config: OfflineConfig,
    /// Per contact: when deposit work may run next, and whether it runs.
    deposits: HashMap<i64, Backoff>,
    next_check: Instant,
    next_drain: Instant,
    draining: bool,
    covers: cover::Covers,
}

impl Offline {
    pub(super) fn new(config: OfflineConfig) -> Self {
        let now = Instant::now();
        Self {
            config,
            deposits: HashMap::new(),
            next_check: now + config.check_every,
            next_drain: now,
            draining: false,
            covers: cover::Covers::default(),
        }
    }
}

/// One message's deposit work: what the task needs of a sealed record.
pub(crate) struct DepositItem {
    seq: i64,
    /// The message's id while it waits for a receipt (None: delivered already).
    id: Option<[u8; 16]>,
    slot_seed: Zeroizing<[u8; 32]>,
    blobs: Vec<[u8; nightjar_proto::offline::BLOB_LEN]>,
    mailboxes: Vec<[u8; 32]>,
    deposited: Option<([u8; 32], [u8; 16])>,
}

/// A slot a drain found non-empty.
pub(crate) struct FoundSlot {
    chain: i64,
    counter: u32,
    mailbox: [u8; 32],
    slot_seed: Zeroizing<[u8; 32]>,
    blobs: Vec<(BlobId, Vec<u8>)>,
}

/// What the engine keeps for one receive chain: the chain, and the grant that
/// made it until the chain is first used (so a grant the contact may have
/// missed can be sent again; before first use it reveals nothing the chain
/// state does not).
struct Receiving {
    chain: RecvChain,
    grant: Option<DropGrant>,
}

impl Receiving {
    const VERSION: u8 = 1;

    fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, NodeError> {
        let grant = match &self.grant {
            Some(grant) => Zeroizing::new(
                Message::DropGrant(grant.clone())
                    .encode()
                    .map_err(|e| NodeError::BadMessage(e.to_string()))?,
            ),
            None => Zeroizing::new(Vec::new()),
        };
        let chain = self.chain.to_bytes();
        let len = u16::try_from(grant.len())
            .map_err(|_| StoreError::Corrupt("drop grant too large".to_owned()))?;
        let mut out = Zeroizing::new(Vec::with_capacity(3 + grant.len() + chain.len()));
        out.push(Self::VERSION);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&grant);
        out.extend_from_slice(&chain);
        Ok(out)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("receive chain: {what}"));
        let (&version, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
        if version != Self::VERSION {
            return Err(corrupt("unknown version"));
        }
        let (len, rest) = rest
            .split_at_checked(2)
            .ok_or_else(|| corrupt("truncated"))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (grant, chain) = rest
            .split_at_checked(len)
            .ok_or_else(|| corrupt("truncated"))?;
        let grant = if grant.is_empty() {
            None
        } else {
            match Message::decode(grant) {
                Ok(Message::DropGrant(ref grant)) => Some(grant.clone()),
                _ => return Err(corrupt("bad grant")),
            }
        };
        let chain = RecvChain::from_bytes(chain).map_err(|e| corrupt(&e.to_string()))?;
        Ok(Self { chain, grant })
    }
}

impl Engine {
    // ----- our mailboxes --------------------------------------------------------

    pub(super) fn mailboxes(&self) -> Result<Vec<String>, NodeError> {
        Ok(self
            .store
            .mailboxes()?
            .into_iter()
            .map(|key| OnionAddress::from_public_key(key).to_string())
            .collect())
    }

    pub(super) fn add_mailbox(&mut self, onion: &str) -> Result<Vec<String>, NodeError> {
        let onion = parse_mailbox(onion)?;
        match self.store.add_mailbox(onion.public_key()) {
            Ok(true) => self.regrant_all(),
            Ok(false) => {}
            Err(StoreError::TooMany(_)) => {
                return Err(NodeError::BadAddress(format!(
                    "a profile names at most {MAX_MAILBOXES} mailboxes"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.mailboxes()
    }

    pub(super) fn remove_mailbox(&mut self, onion: &str) -> Result<Vec<String>, NodeError> {
        let onion = parse_mailbox(onion)?;
        match self.store.remove_mailbox(onion.public_key()) {
            Ok(()) => {}
            Err(StoreError::NotFound) => {
                return Err(NodeError::BadAddress(
                    "not one of this profile's mailboxes".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.regrant_all();
        self.mailboxes()
    }

    /// Our mailboxes changed: contacts online now get a grant naming the new list.
    fn regrant_all(&mut self) {
        let online: Vec<(i64, LinkId)> =
            self.contacts_online.iter().map(|(&c, &l)| (c, l)).collect();
        for (contact, link) in online {
            if let Ok(record) = self.store.contact(contact) {
                self.offer_grant(link, &record);
            }
        }
    }

    // ----- grants ---------------------------------------------------------------

    /// Tells a contact on a new link how to reach us while we are away: the
    /// newest grant if it was never used and names our current mailboxes, or a
    /// fresh one.
    pub(super) fn offer_grant(&mut self, link: LinkId, contact: &nightjar_store::ContactRecord) {
        if contact.state != ContactState::Active || contact.require_auth {
            return;
        }
        if let Err(e) = self.try_offer_grant(link, contact.id) {
            self.warn(format!("could not set up offline delivery: {e}"));
        }
    }

    fn try_offer_grant(&mut self, link: LinkId, contact: i64) -> Result<(), NodeError> {
        let mailboxes = self.store.mailboxes()?;
        if mailboxes.is_empty() {
            return Ok(());
        }
        let newest = self
            .store
            .recv_chains()?
            .into_iter()
            .filter(|r| r.contact == contact)
            .max_by_key(|r| r.id);
        let reusable = match newest {
            Some(record) if !record.used => Receiving::from_bytes(&record.state)?
                .grant
                .filter(|g| g.mailboxes == mailboxes),
            _ => None,
        };
        let grant = match reusable {
            Some(grant) => grant,
            None => {
                let grant = DropGrant::generate(mailboxes, &mut os_rng())
                    .map_err(|e| NodeError::BadAddress(e.to_string()))?;
                let receiving = Receiving {
                    chain: RecvChain::new(&grant),
                    grant: Some(grant.clone()),
                };
                self.store.add_recv_chain(
                    contact,
                    &grant.id(),
                    &receiving.to_bytes()?,
                    now_ms(),
                )?;
                grant
            }
        };
        if let Some(live) = self.links.get(&link) {
            send(live, Message::DropGrant(grant));
        }
        Ok(())
    }

    /// A contact told us how to reach it while it is away.
    pub(super) fn grant_received(&mut self, contact: i64, grant: &DropGrant) {
        let current = match self.store.send_chain(contact) {
            Ok(current) => current,
            Err(e) => {
                self.warn(format!("could not read a send chain: {e}"));
                return;
            }
        };
        let known = current
            .and_then(|bytes| SendChain::from_bytes(&bytes).ok())
            .is_some_and(|chain| chain.grant_id() == grant.id());
        if known {
            // A repeat: keep the counter we reached.
            return;
        }
        let chain = SendChain::new(grant);
        if let Err(e) = self.store.set_send_chain(contact, &chain.to_bytes()) {
            self.warn(format!("could not store a send chain: {e}"));
        }
    }

    // ----- deposits -------------------------------------------------------------

    /// Whether deposits (real or cover) may go to this contact's mailboxes now:
    /// an active contact, needing no authentication first, without a link.
    fn may_deposit(&self, contact: &nightjar_store::ContactRecord) -> bool {
        contact.state == ContactState::Active
            && !contact.require_auth
            && !self.contacts_online.contains_key(&contact.id)
    }

    /// Something new to deliver: look at the contact's deposits soon.
    pub(super) fn hurry_deposit(&mut self, contact: i64) {
        if let Some(b) = self.offline.deposits.get_mut(&contact) {
            b.next = Instant::now();
        }
    }

    /// Starts deposit and drain work that is due.
    pub(super) fn start_offline_work(&mut self) {
        let now = Instant::now();
        let check_due = now >= self.offline.next_check;
        if check_due {
            self.offline.next_check = now + self.offline.config.check_every;
        }
        let contacts = match self.store.contacts() {
            Ok(contacts) => contacts,
            Err(e) => {
                self.warn(format!("could not read contacts: {e}"));
                return;
            }
        };
        let mut away = Vec::new();
        for contact in contacts {
            if !self.may_deposit(&contact) {
                continue;
            }
            away.push(contact.id);
            let backoff = self
                .offline
                .deposits
                .entry(contact.id)
                .or_insert_with(Backoff::now);
            let may_run = backoff.due(now) || (check_due && !backoff.in_flight);
            if !may_run {
                continue;
            }
            match self.deposit_work(contact.id, check_due) {
                Ok(Some(items)) => {
                    if let Some(b) = self.offline.deposits.get_mut(&contact.id) {
                        b.in_flight = true;
                    }
                    tokio::spawn(deposit_task(
                        self.transport.clone(),
                        contact.id,
                        items,
                        self.reports_tx.clone(),
                    ));
                }
                Ok(None) => {
                    if let Some(b) = self.offline.deposits.get_mut(&contact.id) {
                        b.next = now + IDLE_LOOK;
                    }
                }
                Err(e) => {
                    self.warn(format!("could not prepare offline delivery: {e}"));
                    if let Some(b) = self.offline.deposits.get_mut(&contact.id) {
                        b.failed();
                    }
                }
            }
        }
        self.start_cover(&away, now);
        self.start_drain(now);
    }

    /// Seals what needs sealing and returns the deposits to make, if any.
    fn deposit_work(
        &mut self,
        contact: i64,
        check_due: bool,
    ) -> Result<Option<Vec<DepositItem>>, NodeError> {
        let waiting = self.store.undelivered(contact)?;
        let sealed = self.store.sealed_pending(contact)?;
        // Sealed, never deposited, delivered over a link since: deposited all the
        // same, or the contact's window of counters would stop short of what follows.
        let fillers = sealed.iter().any(|s| s.deposited_to.is_none());
        let covers = self.has_cover_deposits(contact);
        if waiting.is_empty() && !fillers && !covers {
            return Ok(None);
        }
        let Some(state) = self.store.send_chain(contact)? else {
            // They never told us where to leave messages.
            tracing::debug!("no mailbox grant from this contact: messages wait for a link");
            return Ok(None);
        };
        let unreachable = self.dials.get(&contact).is_some_and(|b| b.failures > 0);
        let waited = waiting.first().is_some_and(|oldest| {
            now_ms().saturating_sub(oldest.stored_at_ms)
                >= u64::try_from(self.offline.config.deposit_after.as_millis()).unwrap_or(u64::MAX)
        });
        let any_deposited = sealed.iter().any(|s| s.deposited_to.is_some());
        // Away, or time to check that the mailboxes still hold what we left.
        let due = unreachable || waited || (check_due && (any_deposited || fillers || covers));
        if !due {
            return Ok(None);
        }
        let already: HashSet<i64> = sealed.iter().map(|s| s.message_seq).collect();
        let mut chain = SendChain::from_bytes(&state)
            .map_err(|e| StoreError::Corrupt(format!("send chain: {e}")))?;
        for message in waiting.iter().filter(|m| !already.contains(&m.seq)) {
            let payload = Zeroizing::new(
                Message::Text {
                    id: MessageId(message.id),
                    sent_at_ms: message.sent_at_ms,
                    body: message.body.clone(),
                }
                .encode()
                .map_err(|e| NodeError::BadMessage(e.to_string()))?,
            );
            let sealed = chain
                .seal(&payload)
                .map_err(|e| NodeError::BadMessage(e.to_string()))?;
            // The chain's new state is stored with the blobs before any leaves.
            self.store.put_sealed(
                contact,
                &chain.to_bytes(),
                &NewSealed {
                    message_seq: message.seq,
                    counter: sealed.counter,
                    slot_seed: &sealed.slot_seed,
                    blobs: &sealed.blobs,
                    mailboxes: chain.mailboxes(),
                },
            )?;
        }
        let ids: HashMap<i64, [u8; 16]> = waiting.iter().map(|m| (m.seq, m.id)).collect();
        let mut items: Vec<DepositItem> = self
            .store
            .sealed_pending(contact)?
            .into_iter()
            .map(|record| deposit_item(record, &ids))
            .collect();
        items.extend(self.cover_deposit_items(contact));
        let needed = items.iter().any(|i| i.deposited.is_none() || check_due);
        if needed {
            tracing::debug!(
                messages = items.len(),
                unreachable,
                waited,
                check_due,
                "depositing in a contact's mailbox"
            );
        }
        Ok(needed.then_some(items))
    }

    pub(super) fn deposited(
        &mut self,
        contact: i64,
        seq: i64,
        id: Option<[u8; 16]>,
        mailbox: [u8; 32],
        instance: [u8; 16],
    ) {
        if cover::is_cover_seq(seq) {
            self.cover_deposited_again(contact, seq, mailbox, instance);
            return;
        }
        match self
            .store
            .mark_deposited(seq, &mailbox, &instance, now_ms())
        {
            Ok(()) => {}
            // A receipt came meanwhile and nothing is left to watch.
            Err(StoreError::NotFound) => return,
            Err(e) => {
                self.warn(format!("could not record a deposit: {e}"));
                return;
            }
        }
        let (Some(id), Ok(record)) = (id, self.store.contact(contact)) else {
            return;
        };
        // A receipt may have come meanwhile; only report what still waits.
        let waiting = self.store.undelivered(contact).is_ok_and(|w| {
            w.iter()
                .any(|m| m.seq == seq && m.state == nightjar_store::MessageState::Deposited)
        });
        if waiting {
            self.emit(Event::MessageState {
                contact: record.name,
                id: views::id_text(&id),
                state: MessageState::Deposited,
            });
        }
    }

    pub(super) fn deposit_lost(&mut self, contact: i64, seq: i64, id: Option<[u8; 16]>) {
        tracing::debug!("a mailbox restarted and lost a deposit; depositing again");
        if cover::is_cover_seq(seq) {
            // Deposited again at once; nothing was recorded of it.
            return;
        }
        match self.store.mark_lost(seq) {
            Ok(()) => {}
            Err(StoreError::NotFound) => return,
            Err(e) => {
                self.warn(format!("could not record a lost deposit: {e}"));
                return;
            }
        }
        // Reported only if it really waits again (not if it went over a link).
        let queued = self.store.undelivered(contact).is_ok_and(|w| {
            w.iter()
                .any(|m| m.seq == seq && m.state == nightjar_store::MessageState::Queued)
        });
        if let (true, Some(id), Ok(record)) = (queued, id, self.store.contact(contact)) {
            self.emit(Event::MessageState {
                contact: record.name,
                id: views::id_text(&id),
                state: MessageState::Queued,
            });
        }
    }

    pub(super) fn deposit_ended(&mut self, contact: i64, result: Result<(), String>) {
        let Some(b) = self.offline.deposits.get_mut(&contact) else {
            return;
        };
        match result {
            Ok(()) => {
                tracing::debug!("deposits done");
                b.in_flight = false;
                b.failures = 0;
                b.next = Instant::now() + IDLE_LOOK;
            }
            Err(error) => {
                tracing::debug!("deposit failed: {error}");
                b.failed();
            }
        }
    }

    // ----- drains ---------------------------------------------------------------

    fn start_drain(&mut self, now: Instant) {
        if self.offline.draining || now < self.offline.next_drain {
            return;
        }
        self.offline.next_drain = now + self.offline.config.drain_every;
        let work = self.drain_work();
        match work {
            Ok(Some((mailboxes, slots))) => {
                self.offline.draining = true;
                tokio::spawn(drain_task(
                    self.transport.clone(),
                    mailboxes,
                    slots,
                    self.reports_tx.clone(),
                ));
            }
            Ok(None) => {}
            Err(e) => self.warn(format!("could not prepare a mailbox drain: {e}")),
        }
    }

    /// Our mailboxes and the slots to fetch from them, if there are both.
    #[allow(clippy::type_complexity)]
    fn drain_work(&self) -> Result<Option<(Vec<[u8; 32]>, Vec<Wanted>)>, NodeError> {
        let mailboxes = self.store.mailboxes()?;
        if mailboxes.is_empty() {
            return Ok(None);
        }
        let blocked: HashSet<i64> = self
            .store
            .contacts()?
            .into_iter()
            .filter(|c| c.require_auth || c.state != ContactState::Active)
            .map(|c| c.id)
            .collect();
        let mut slots = Vec::new();
        for record in self.store.recv_chains()? {
            if blocked.contains(&record.contact) {
                continue;
            }
            let receiving = Receiving::from_bytes(&record.state)?;
            for slot in receiving.chain.slots_to_scan() {
                slots.push(Wanted {
                    chain: record.id,
                    counter: slot.counter,
                    slot_seed: slot.slot_seed,
                });
            }
        }
        if slots.is_empty() {
            return Ok(None);
        }
        Ok(Some((mailboxes, slots)))
    }

    /// A drain came back: open, store, then acknowledge what is stored.
    pub(super) fn drained(&mut self, found: Vec<FoundSlot>) {
        self.offline.draining = false;
        let mut by_chain: BTreeMap<i64, Vec<FoundSlot>> = BTreeMap::new();
        for slot in found {
            by_chain.entry(slot.chain).or_default().push(slot);
        }
        let mut acks: BTreeMap<[u8; 32], Vec<AckItem>> = BTreeMap::new();
        for (chain, slots) in by_chain {
            match self.open_drained(chain, &slots) {
                Ok(done) => {
                    for slot in slots {
                        if done.contains(&slot.counter) {
                            acks.entry(slot.mailbox).or_default().push(AckItem {
                                slot_seed: slot.slot_seed,
                                ids: slot.blobs.into_iter().map(|(id, _)| id).collect(),
                            });
                        }
                    }
                }
                Err(e) => self.warn(format!("could not store messages from a mailbox: {e}")),
            }
        }
        for (mailbox, items) in acks {
            tokio::spawn(ack_task(self.transport.clone(), mailbox, items));
        }
    }

    /// Opens one chain's slots, stores the messages with the chain's new state,
    /// and returns the counters that may be acknowledged.
    fn open_drained(
        &mut self,
        chain_id: i64,
        slots: &[FoundSlot],
    ) -> Result<HashSet<u32>, NodeError> {
        let Some(record) = self
            .store
            .recv_chains()?
            .into_iter()
            .find(|r| r.id == chain_id)
        else {
            return Ok(HashSet::new());
        };
        let contact = self.store.contact(record.contact)?;
        let mut receiving = Receiving::from_bytes(&record.state)?;
        // The same counter may come from several mailboxes: open each once.
        let mut found: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        for slot in slots {
            let blobs = found.entry(slot.counter).or_default();
            for (_, blob) in &slot.blobs {
                if !blobs.contains(blob) {
                    blobs.push(blob.clone());
                }
            }
        }
        let found: Vec<(u32, Vec<Vec<u8>>)> = found.into_iter().collect();
        let opened = receiving
            .chain
            .open(&found)
            .map_err(|e| StoreError::Corrupt(format!("receive chain: {e}")))?;
        let texts: Vec<(MessageId, u64, String)> = opened
            .messages
            .iter()
            .filter_map(|(_, payload)| match Message::decode(payload) {
                Ok(Message::Text {
                    id,
                    sent_at_ms,
                    ref body,
                }) => Some((id, sent_at_ms, body.clone())),
                // Dropped without a trace; its blobs are acknowledged like any others.
                Ok(Message::Cover) => None,
                Ok(other) => {
                    tracing::debug!("ignored {other:?} from a mailbox");
                    None
                }
                Err(e) => {
                    tracing::debug!("unreadable message from a mailbox: {e}");
                    None
                }
            })
            .collect();
        if !opened.consumed.is_empty() {
            // Used: the grant is not offered again.
            receiving.grant = None;
        }
        let incoming: Vec<IncomingText<'_>> = texts
            .iter()
            .map(|(id, sent_at_ms, body)| IncomingText {
                id: &id.0,
                body,
                sent_at_ms: *sent_at_ms,
            })
            .collect();
        let stored =
            self.store
                .store_drained(chain_id, &receiving.to_bytes()?, &incoming, now_ms())?;
        for record in stored.into_iter().flatten() {
            *self.unread.entry(contact.id).or_default() += 1;
            self.emit(Event::MessageReceived {
                message: views::message(&contact.name, &record),
            });
        }
        if !texts.is_empty()
            && let Some(live) = self.link_of(contact.id)
        {
            send(
                live,
                Message::Receipt {
                    ids: texts.iter().map(|(id, _, _)| *id).collect(),
                },
            );
        }
        // Acknowledge what was consumed (opened, or blobs that do not open: a
        // slot of those keeps its key, for the real message may still come) and
        // every counter the chain no longer wants (consumed through another
        // mailbox before).
        let wanted: HashSet<u32> = receiving
            .chain
            .slots_to_scan()
            .into_iter()
            .map(|s| s.counter)
            .collect();
        Ok(found
            .iter()
            .map(|(counter, _)| *counter)
            .filter(|c| !wanted.contains(c))
            .chain(opened.consumed.iter().copied())
            .collect())
    }
}

/// Before looking again at a contact with nothing to deposit.
const IDLE_LOOK: Duration = Duration::from_secs(5);

/// A slot to fetch: its receive chain, counter and seed.
pub(crate) struct Wanted {
    chain: i64,
    counter: u32,
    slot_seed: Zeroizing<[u8; 32]>,
}

pub(crate) struct AckItem {
    slot_seed: Zeroizing<[u8; 32]>,
    ids: Vec<BlobId>,
}

fn deposit_item(record: SealedRecord, undelivered: &HashMap<i64, [u8; 16]>) -> DepositItem {
    let deposited = record.deposited_to.zip(record.instance);
    DepositItem {
        seq: record.message_seq,
        id: undelivered.get(&record.message_seq).copied(),
        slot_seed: record.slot_seed,
        blobs: record.blobs,
        mailboxes: record.mailboxes,
        deposited,
    }
}

/// Accepts `name.onion`, the bare 56 characters, or what `nightjar mailbox`
/// prints (`ws://….onion/v1`, `http://….onion/`).
fn parse_mailbox(text: &str) -> Result<OnionAddress, NodeError> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.as_str();
    let host = text
        .strip_prefix("ws://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text);
    let host = host.split('/').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host);
    let host = host.strip_suffix(".onion").unwrap_or(host);
    format!("{host}.onion")
        .parse::<OnionAddress>()
        .map_err(|_| NodeError::BadAddress("a mailbox is named by its onion address".into()))
}

fn mailbox_at(key: [u8; 32], isolation: String) -> courier::Mailbox {
    courier::Mailbox {
        onion: OnionAddress::from_public_key(key),
        isolation,
    }
}

/// Deposits `items` in order, each into the first of its mailboxes that takes
/// it, and stops at the first message no mailbox takes.
async fn deposit_task(
    transport: Arc<dyn Transport>,
    contact: i64,
    items: Vec<DepositItem>,
    reports: mpsc::Sender<Report>,
) {
    // Asking whether the mailbox restarted reveals nothing; each deposit goes on
    // a circuit of its own, so the mailbox cannot tell which deposits came
    // together.
    let mut instances: HashMap<[u8; 32], Option<[u8; 16]>> = HashMap::new();
    let mut result = Ok(());
    'items: for item in items {
        if let Some((to, instance)) = item.deposited {
            let current = match instances.get(&to) {
                Some(known) => *known,
                None => {
                    let isolation = format!("mailbox-check-{contact}-{}", mailbox_tag(&to));
                    let info = courier::info(&*transport, &mailbox_at(to, isolation)).await;
                    let current = info.ok().map(|i| i.instance.0);
                    instances.insert(to, current);
                    current
                }
            };
            match current {
                Some(current) if current == instance => continue 'items,
                Some(_) => {
                    let _ = reports
                        .send(Report::DepositLost {
                            contact,
                            seq: item.seq,
                            id: item.id,
                        })
                        .await;
                }
                // Unreachable now: deposit again, where it is taken.
                None => {}
            }
        }
        let isolation = format!("deposit-{}", item.seq);
        match deposit_first(
            &*transport,
            &item.mailboxes,
            &isolation,
            &item.slot_seed,
            &item.blobs,
        )
        .await
        {
            Ok((key, instance)) => {
                instances.insert(key, Some(instance));
                let _ = reports
                    .send(Report::Deposited {
                        contact,
                        seq: item.seq,
                        id: item.id,
                        mailbox: key,
                        instance,
                    })
                    .await;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let _ = reports.send(Report::DepositEnded { contact, result }).await;
}

/// Deposits one message's blobs into the first of `mailboxes` that takes them,
/// on the circuit of `isolation`: that mailbox and its instance, or the last
/// error.
async fn deposit_first(
    transport: &dyn Transport,
    mailboxes: &[[u8; 32]],
    isolation: &str,
    slot_seed: &[u8; 32],
    blobs: &[[u8; nightjar_proto::offline::BLOB_LEN]],
) -> Result<([u8; 32], [u8; 16]), String> {
    let mut last_error = String::from("no mailbox");
    for &key in mailboxes {
        let alone = mailbox_at(key, isolation.to_owned());
        match courier::deposit(transport, &alone, slot_seed, blobs).await {
            Ok(instance) => return Ok((key, instance)),
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(last_error)
}

/// Fetches every slot to scan from every mailbox: the slots of all contacts in
/// one request (split only at the mailbox's batch size), in the order of their
/// ids, which says nothing of which conversation a slot belongs to.
async fn drain_task(
    transport: Arc<dyn Transport>,
    mailboxes: Vec<[u8; 32]>,
    slots: Vec<Wanted>,
    reports: mpsc::Sender<Report>,
) {
    let mut wanted: Vec<(SlotKey, Wanted)> = slots
        .into_iter()
        .map(|w| (SlotKey::from_seed(&w.slot_seed), w))
        .collect();
    wanted.sort_by_key(|(key, _)| key.slot().0);
    let keys: Vec<&SlotKey> = wanted.iter().map(|(key, _)| key).collect();
    let mut found = Vec::new();
    for &mailbox in &mailboxes {
        match courier::fetch(
            &*transport,
            &mailbox_at(mailbox, drain_isolation(&mailbox)),
            &keys,
        )
        .await
        {
            Ok(blobs) => {
                for ((_, w), blobs) in wanted.iter().zip(blobs) {
                    if !blobs.is_empty() {
                        found.push(FoundSlot {
                            chain: w.chain,
                            counter: w.counter,
                            mailbox,
                            slot_seed: w.slot_seed.clone(),
                            blobs,
                        });
                    }
                }
            }
            Err(e) => tracing::debug!("mailbox drain failed: {e}"),
        }
    }
    let _ = reports.send(Report::Drained { found }).await;
}

/// The circuit isolation of drains from a mailbox and their acknowledgements:
/// one per mailbox, so two mailboxes never share a circuit.
fn drain_isolation(mailbox: &[u8; 32]) -> String {
    format!("mailbox-drain-{}", mailbox_tag(mailbox))
}

/// A short local label for a mailbox in isolation keys (which stay in this
/// process: the C tor backend sends tor only a digest of them).
fn mailbox_tag(mailbox: &[u8; 32]) -> String {
    data_encoding::HEXLOWER.encode(mailbox.get(..6).unwrap_or_default())
}

async fn ack_task(transport: Arc<dyn Transport>, mailbox: [u8; 32], items: Vec<AckItem>) {
    let mut keys: Vec<(SlotKey, Vec<BlobId>)> = items
        .into_iter()
        .map(|item| (SlotKey::from_seed(&item.slot_seed), item.ids))
        .collect();
    keys.sort_by_key(|(key, _)| key.slot().0);
    let refs: Vec<(&SlotKey, Vec<BlobId>)> =
        keys.iter().map(|(key, ids)| (key, ids.clone())).collect();
    // A lost ack leaves the blobs in the mailbox until they expire (its time to
    // live); the chain has moved past them, so they are never opened again.
    if let Err(e) = courier::ack(
        &*transport,
        &mailbox_at(mailbox, drain_isolation(&mailbox)),
        &refs,
    )
    .await
    {
        tracing::debug!("mailbox ack failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_names() {
        let key = [7u8; 32];
        let onion = OnionAddress::from_public_key(key).to_string();
        let bare = onion.trim_end_matches(".onion").to_owned();
        for text in [
            onion.clone(),
            bare.clone(),
            format!("ws://{onion}/v1"),
            format!("http://{onion}:80/"),
            format!("  {}  ", onion.to_uppercase()),
        ] {
            assert_eq!(parse_mailbox(&text).unwrap().public_key(), &key, "{text}");
        }
        for bad in ["", "example.com", "ws://127.0.0.1:4000/v1", &bare[1..]] {
            assert!(parse_mailbox(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn receiving_round_trips_with_and_without_grant() {
        let grant = DropGrant::generate(vec![[1u8; 32], [2u8; 32]], &mut os_rng()).unwrap();
        let with = Receiving {
            chain: RecvChain::new(&grant),
            grant: Some(grant.clone()),
        };
        let back = Receiving::from_bytes(&with.to_bytes().unwrap()).unwrap();
        assert_eq!(back.grant.as_ref().map(DropGrant::id), Some(grant.id()));
        assert_eq!(back.chain.grant_id(), grant.id());
        let without = Receiving {
            chain: RecvChain::new(&grant),
            grant: None,
        };
        let bytes = without.to_bytes().unwrap();
        assert!(Receiving::from_bytes(&bytes).unwrap().grant.is_none());
        assert!(Receiving::from_bytes(&bytes[..2]).is_err());
        let mut other = bytes.to_vec();
        other[0] = 9;
        assert!(Receiving::from_bytes(&other).is_err());
    }
}

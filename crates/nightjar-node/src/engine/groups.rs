//! The engine's side of groups: MLS groups (`nightjar_group`) whose rooms are
//! on a mailbox relay, reached over Tor (`crate::rooms`).
//!
//! - **Adding a contact** takes three messages over our link with them: we ask
//!   for a one-time key package, post the change that adds them to the room,
//!   and once the room hands that change back (it is then in force for
//!   everyone) send them the Welcome with the room's secret and the cell to
//!   read from. Only contacts can add us to a group, and only over their link.
//! - **Texts** are stored before they are sealed and posted, and posted again
//!   (sealed anew) after a restart until the room took them.
//! - **Reading** a room stores the group's state, how far the read went and the
//!   texts it brought in one transaction before anything is shown, so a cell is
//!   neither lost nor read twice across a crash.
//! - Each group posts one item at a time, in order, so its own changes and
//!   texts reach the room in the order they were made.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use nightjar_group::{Group, IdentityKey, Incoming, Invitation, Joining};
use nightjar_proto::identity::Fingerprint;
use nightjar_proto::message::{GroupWelcome, MAX_TEXT_LEN, Message};
use nightjar_proto::onion::OnionAddress;
use nightjar_store::{ContactRecord, GroupMessageRecord, GroupRecord, GroupRef, GroupText};
use zeroize::Zeroizing;

use super::{Engine, may_send, now_ms, send};
use crate::link::os_rng;
use crate::net::{LinkId, Report};
use crate::rooms::{RoomCells, RoomError, RoomRelay};
use crate::views;
use crate::{Event, GroupMessageView, GroupView, NodeError};

/// How often each group's room is read.
const READ_EVERY: Duration = Duration::from_secs(3);
/// How long a failed post waits before it is tried again.
const RETRY_POST_AFTER: Duration = Duration::from_secs(10);
/// Key packages we gave out and still hold the keys of, waiting for a Welcome;
/// past this the oldest is forgotten.
const MAX_JOINING: usize = 16;

/// Groups in this process.
#[derive(Default)]
pub(super) struct Groups {
    live: HashMap<GroupRef, LiveGroup>,
    /// Our asks for key packages: what group, and which contact.
    asks: HashMap<[u8; 16], (GroupRef, i64)>,
    /// Key packages we gave out: the ask, who asked, and what to join with.
    joining: VecDeque<([u8; 16], i64, Joining)>,
}

struct LiveGroup {
    group: Group,
    relay: RoomRelay,
    relay_key: [u8; 32],
    name: String,
    cursor: u64,
    reading: bool,
    next_read: Instant,
    posting: bool,
    next_post: Instant,
    outbox: VecDeque<Post>,
    /// Key packages that came while a change of ours was on its way: the
    /// contacts are added together once it has come back.
    waiting: Vec<(IdentityKey, Vec<u8>)>,
}

/// Cells to post, in order; `text` is the stored text they carry, if any.
struct Post {
    text: Option<i64>,
    cells: Vec<Vec<u8>>,
}

impl LiveGroup {
    fn new(group: Group, record: &GroupRecord, relay: RoomRelay) -> Self {
        Self {
            group,
            relay,
            relay_key: record.relay,
            name: record.name.clone(),
            cursor: record.cursor,
            reading: false,
            next_read: Instant::now(),
            posting: false,
            next_post: Instant::now(),
            outbox: VecDeque::new(),
            waiting: Vec::new(),
        }
    }

    /// Adds the contacts whose key packages waited, if no change of ours is on
    /// its way. Returns who could not be added, and why.
    fn invite_waiting(&mut self) -> Option<String> {
        if self.waiting.is_empty() || self.group.change_pending() {
            return None;
        }
        let packages = std::mem::take(&mut self.waiting);
        match self.group.invite(&packages, &mut os_rng()) {
            Ok(cells) => {
                self.outbox.push_back(Post { text: None, cells });
                None
            }
            Err(e) => Some(e.to_string()),
        }
    }
}

/// What one read of a room brought, gathered before it is stored.
#[derive(Default)]
struct ReadOutcome {
    texts: Vec<(IdentityKey, String)>,
    notes: Vec<String>,
    welcomes: Vec<(Invitation, u64)>,
    posts: Vec<Vec<Vec<u8>>>,
    removed_by: Option<IdentityKey>,
}

impl Engine {
    fn relay_for(&self, relay_key: &[u8; 32]) -> RoomRelay {
        RoomRelay::new(
            self.transport.clone(),
            OnionAddress::from_public_key(*relay_key),
            relay_key,
        )
    }

    /// Takes up the groups we are in, and seals again what waited to be posted.
    pub(super) fn groups_load(&mut self) {
        let records = match self.store.groups() {
            Ok(records) => records,
            Err(e) => return self.warn(format!("could not read groups: {e}")),
        };
        for record in records.into_iter().filter(|r| r.active) {
            let group = match Group::restore(&record.state) {
                Ok(group) => group,
                Err(e) => {
                    self.warn(format!("could not read group {}: {e}", record.name));
                    continue;
                }
            };
            let relay = self.relay_for(&record.relay);
            let mut live = LiveGroup::new(group, &record, relay);
            // A change of ours may not have reached the room before we
            // stopped: post it again (the room keeps one copy).
            if let Some(cells) = live.group.pending_cells() {
                let cells = cells.to_vec();
                live.outbox.push_back(Post { text: None, cells });
            }
            let unposted = self.store.group_unposted(record.id).unwrap_or_default();
            for text in unposted {
                match live.group.send(&text.body, &mut os_rng()) {
                    Ok(cells) => live.outbox.push_back(Post {
                        text: Some(text.seq),
                        cells,
                    }),
                    Err(e) => tracing::debug!("could not seal a group text again: {e}"),
                }
            }
            if !live.outbox.is_empty()
                && let Ok(state) = live.group.save()
                && let Err(e) = self.store.record_group_send(record.id, &state, None)
            {
                self.warn(format!("could not store a group: {e}"));
            }
            self.groups.live.insert(record.id, live);
        }
    }

    /// Starts due reads and posts.
    pub(super) fn start_group_work(&mut self) {
        let now = Instant::now();
        for (&id, live) in &mut self.groups.live {
            if !live.reading && now >= live.next_read {
                live.reading = true;
                let (relay, after, reports) =
                    (live.relay.clone(), live.cursor, self.reports_tx.clone());
                tokio::spawn(async move {
                    let result = relay.read(after).await.map_err(|e| e.to_string());
                    let _ = reports.send(Report::GroupRead { group: id, result }).await;
                });
            }
            if !live.posting
                && now >= live.next_post
                && let Some(post) = live.outbox.front()
            {
                live.posting = true;
                let (relay, cells, reports) = (
                    live.relay.clone(),
                    post.cells.clone(),
                    self.reports_tx.clone(),
                );
                tokio::spawn(async move {
                    let result = relay.post(&cells).await;
                    let _ = reports
                        .send(Report::GroupPosted { group: id, result })
                        .await;
                });
            }
        }
    }

    /// A read of a group's room came back.
    pub(super) fn group_read(&mut self, id: GroupRef, result: Result<RoomCells, String>) {
        let Some(live) = self.groups.live.get_mut(&id) else {
            return;
        };
        live.reading = false;
        live.next_read = Instant::now() + READ_EVERY;
        let read = match result {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!("a group's room could not be read: {e}");
                return;
            }
        };
        if read.cells.is_empty() && !read.missed {
            return;
        }
        let mut outcome = ReadOutcome::default();
        if read.missed {
            outcome
                .notes
                .push("some messages were dropped by the room's relay before we read them".into());
        }
        let mut cursor = live.cursor;
        for (seq, cell) in &read.cells {
            let received = match live.group.receive(cell, &mut os_rng()) {
                Ok(received) => received,
                Err(e) => {
                    // Our own state failed: stop before this cell, try again later.
                    tracing::debug!("a group could not take a cell: {e}");
                    break;
                }
            };
            cursor = *seq;
            if !received.post.is_empty() {
                outcome.posts.push(received.post);
            }
            if let Some(invitation) = received.invitation {
                outcome.welcomes.push((invitation, *seq));
            }
            match received.incoming {
                Incoming::Nothing => {}
                Incoming::Text { from, text } => outcome.texts.push((from, text)),
                Incoming::Changed {
                    by,
                    added,
                    removed,
                    ours_dropped,
                } => {
                    outcome.notes.push(change_note(by, &added, &removed));
                    if ours_dropped {
                        outcome
                            .notes
                            .push("a change of yours came too late and was dropped".into());
                    }
                }
                Incoming::Confirmed { added, removed } => {
                    outcome
                        .notes
                        .push(change_note(*live.group.identity(), &added, &removed));
                }
                Incoming::Leaving { who } => {
                    outcome.notes.push(format!("{} is leaving", key_mark(&who)));
                }
                Incoming::Removed { by } => {
                    outcome.removed_by = Some(by);
                    break;
                }
            }
        }
        let state = match live.group.save() {
            Ok(state) => state,
            Err(e) => return self.warn(format!("could not save a group: {e}")),
        };
        let now = now_ms();
        let texts: Vec<GroupText<'_>> = outcome
            .texts
            .iter()
            .map(|(from, body)| GroupText {
                sender: from,
                body,
                at_ms: now,
            })
            .collect();
        let stored = match self.store.record_group_read(id, &state, cursor, &texts) {
            Ok(stored) => stored,
            Err(e) => return self.warn(format!("could not store a group's messages: {e}")),
        };
        live.cursor = cursor;
        for cells in outcome.posts {
            live.outbox.push_back(Post { text: None, cells });
        }
        if read.cells.len() >= 4096 {
            live.next_read = Instant::now();
        }
        let name = live.name.clone();
        for record in &stored {
            let message = self.group_message_view(&name, record);
            self.emit(Event::GroupMessage { message });
        }
        for note in outcome.notes {
            let text = self.named_note(&note);
            self.emit(Event::GroupChanged {
                group: name.clone(),
                text,
            });
        }
        for (invitation, seq) in outcome.welcomes {
            self.send_welcomes(id, &invitation, seq);
        }
        self.add_waiting(id);
        if let Some(by) = outcome.removed_by {
            self.groups.live.remove(&id);
            if let Err(e) = self.store.deactivate_group(id) {
                self.warn(format!("could not store a group: {e}"));
            }
            let by = self.member_name(&by);
            self.emit(Event::GroupChanged {
                group: name,
                text: if by == "you" {
                    "you left the group".into()
                } else {
                    format!("{by} removed you from the group")
                },
            });
        }
    }

    /// A post to a group's room ended.
    pub(super) fn group_posted(&mut self, id: GroupRef, result: Result<Vec<u64>, RoomError>) {
        let Some(live) = self.groups.live.get_mut(&id) else {
            return;
        };
        live.posting = false;
        let done = match result {
            Ok(_) => live.outbox.pop_front(),
            Err(e) => {
                tracing::debug!("a group post failed: {e}");
                // What the room took stays taken; the rest goes again later.
                if let Some(front) = live.outbox.front_mut() {
                    front.cells.drain(..e.posted.len().min(front.cells.len()));
                }
                live.next_post = Instant::now() + RETRY_POST_AFTER;
                None
            }
        };
        // Read soon: our own change takes effect when it comes back.
        live.next_read = Instant::now();
        let name = live.name.clone();
        if let Some(Post {
            text: Some(seq), ..
        }) = done
        {
            match self.store.mark_group_posted(seq) {
                Ok(()) => {
                    if let Some(record) = self
                        .store
                        .group_messages(id)
                        .ok()
                        .and_then(|all| all.into_iter().find(|m| m.seq == seq))
                    {
                        let message = self.group_message_view(&name, &record);
                        self.emit(Event::GroupMessage { message });
                    }
                }
                Err(e) => self.warn(format!("could not store a group text: {e}")),
            }
        }
    }

    /// Sends the Welcome of a change of ours to each contact it added.
    fn send_welcomes(&mut self, id: GroupRef, invitation: &Invitation, seq: u64) {
        let Some(live) = self.groups.live.get(&id) else {
            return;
        };
        let (name, relay) = (live.name.clone(), live.relay_key);
        for invitee in &invitation.invitees {
            let Some(contact) = self.store.contact_by_key(invitee).ok().flatten() else {
                continue;
            };
            let Some(ask) = self
                .groups
                .asks
                .iter()
                .find(|(_, asked)| **asked == (id, contact.id))
                .map(|(ask, _)| *ask)
            else {
                continue;
            };
            self.groups.asks.remove(&ask);
            let welcome = Message::GroupWelcome(Box::new(GroupWelcome {
                ask,
                name: name.clone(),
                relay,
                room_secret: *invitation.room_secret,
                cursor: seq,
                welcome: invitation.welcome.clone(),
            }));
            match self.link_of(contact.id) {
                Some(link) => send(link, welcome),
                None => self.warn(format!(
                    "{} was added to {name} but went offline before the invitation; \
                     remove and add them again",
                    contact.name
                )),
            }
        }
    }

    // ----- messages from contacts ----------------------------------------------

    /// Group messages from a contact; anything else is handed back.
    pub(super) fn group_message(
        &mut self,
        link: LinkId,
        contact: &ContactRecord,
        message: Message,
    ) -> Result<(), Message> {
        if !matches!(
            message,
            Message::GroupAsk { .. } | Message::GroupKeyPackage { .. } | Message::GroupWelcome(_)
        ) {
            return Err(message);
        }
        let allowed = self.is_adopted(link, contact)
            && self.links.get(&link).is_some_and(|l| may_send(contact, l));
        if !allowed {
            tracing::debug!("dropped a group message outside an adopted, permitted link");
            return Ok(());
        }
        let mut message = message;
        match &mut message {
            Message::GroupAsk { ask } => self.asked_for_key_package(link, contact, *ask),
            Message::GroupKeyPackage { ask, key_package } => {
                let (ask, key_package) = (*ask, std::mem::take(key_package));
                self.key_package_arrived(contact, ask, key_package);
            }
            Message::GroupWelcome(welcome) => self.welcomed(contact, welcome),
            _ => {}
        }
        Ok(())
    }

    fn asked_for_key_package(&mut self, link: LinkId, contact: &ContactRecord, ask: [u8; 16]) {
        let (joining, key_package) = match Joining::new(&self.identity, &mut os_rng()) {
            Ok(made) => made,
            Err(e) => return self.warn(format!("could not answer a group invitation: {e}")),
        };
        if self.groups.joining.len() == MAX_JOINING {
            self.groups.joining.pop_front();
        }
        self.groups.joining.push_back((ask, contact.id, joining));
        if let Some(live) = self.links.get(&link) {
            send(live, Message::GroupKeyPackage { ask, key_package });
        }
    }

    fn key_package_arrived(&mut self, contact: &ContactRecord, ask: [u8; 16], package: Vec<u8>) {
        let Some(&(id, asked)) = self.groups.asks.get(&ask) else {
            return;
        };
        if asked != contact.id {
            return;
        }
        let Some(live) = self.groups.live.get_mut(&id) else {
            return;
        };
        live.waiting.push((contact.identity_key, package));
        self.add_waiting(id);
    }

    /// Adds the contacts whose key packages wait, and stores the group.
    fn add_waiting(&mut self, id: GroupRef) {
        let Some(live) = self.groups.live.get_mut(&id) else {
            return;
        };
        let before = live.waiting.len();
        let failed = live.invite_waiting();
        let added = before > live.waiting.len();
        let name = live.name.clone();
        if added
            && let Ok(state) = live.group.save()
            && let Err(e) = self.store.record_group_send(id, &state, None)
        {
            self.warn(format!("could not store a group: {e}"));
        }
        if let Some(e) = failed {
            self.warn(format!("could not add contacts to {name}: {e}"));
        }
    }

    fn welcomed(&mut self, contact: &ContactRecord, welcome: &GroupWelcome) {
        let Some(at) = self
            .groups
            .joining
            .iter()
            .position(|(ask, from, _)| *ask == welcome.ask && *from == contact.id)
        else {
            tracing::debug!("a Welcome for no key package of ours");
            return;
        };
        let Some((_, _, joining)) = self.groups.joining.remove(at) else {
            return;
        };
        let invitation = Invitation {
            room_secret: Zeroizing::new(welcome.room_secret),
            welcome: welcome.welcome.clone(),
            invitees: Vec::new(),
        };
        let group = match joining.join(&invitation, &contact.identity_key) {
            Ok(group) => group,
            Err(e) => {
                return self.warn(format!(
                    "could not join the group {} invited you to: {e}",
                    contact.name
                ));
            }
        };
        let name = self.free_group_name(&welcome.name);
        let stored = group.save().map_err(|e| e.to_string()).and_then(|state| {
            self.store
                .add_group(
                    group.id(),
                    &name,
                    &welcome.relay,
                    &state,
                    welcome.cursor,
                    now_ms(),
                )
                .map_err(|e| e.to_string())
        });
        let record = match stored {
            Ok(record) => record,
            Err(e) => return self.warn(format!("could not store a group: {e}")),
        };
        let relay = self.relay_for(&record.relay);
        let live = LiveGroup::new(group, &record, relay);
        let view = self.group_view_of(&live);
        self.groups.live.insert(record.id, live);
        self.emit(Event::GroupJoined {
            group: view,
            by: contact.name.clone(),
        });
    }

    /// `wanted` if no group has that name and it is a valid one, else a free
    /// variant of it.
    fn free_group_name(&self, wanted: &str) -> String {
        let base: String = wanted
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(24)
            .collect();
        let base = if base.is_empty() {
            "group".into()
        } else {
            base
        };
        let taken = |name: &str| self.store.group_named(name).is_ok();
        if !taken(&base) {
            return base;
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|name| !taken(name))
            .unwrap_or(base)
    }

    // ----- commands ---------------------------------------------------------------

    pub(super) fn create_group(&mut self, name: &str) -> Result<GroupView, NodeError> {
        if !views::valid_name(name) {
            return Err(NodeError::BadName(name.to_owned()));
        }
        if self.store.group_named(name).is_ok() {
            return Err(NodeError::NameTaken(name.to_owned()));
        }
        let relay = *self
            .store
            .mailboxes()?
            .first()
            .ok_or(NodeError::NoMailbox)?;
        let group = Group::create(&self.identity, &mut os_rng()).map_err(group_error)?;
        let state = group.save().map_err(group_error)?;
        let record = self
            .store
            .add_group(group.id(), name, &relay, &state, 0, now_ms())?;
        let live = LiveGroup::new(group, &record, self.relay_for(&relay));
        let view = self.group_view_of(&live);
        self.groups.live.insert(record.id, live);
        Ok(view)
    }

    pub(super) fn groups_list(&self) -> Result<Vec<GroupView>, NodeError> {
        Ok(self
            .store
            .groups()?
            .iter()
            .map(|record| match self.groups.live.get(&record.id) {
                Some(live) => self.group_view_of(live),
                None => GroupView {
                    name: record.name.clone(),
                    members: Vec::new(),
                    active: false,
                },
            })
            .collect())
    }

    pub(super) fn group_history(&self, name: &str) -> Result<Vec<GroupMessageView>, NodeError> {
        let record = self.group_record(name)?;
        Ok(self
            .store
            .group_messages(record.id)?
            .iter()
            .map(|m| self.group_message_view(&record.name, m))
            .collect())
    }

    pub(super) fn send_group_message(
        &mut self,
        name: &str,
        text: &str,
    ) -> Result<GroupMessageView, NodeError> {
        if text.is_empty() || text.len() > MAX_TEXT_LEN {
            return Err(NodeError::BadMessage(format!(
                "a group text is 1 to {MAX_TEXT_LEN} bytes"
            )));
        }
        let record = self.group_record(name)?;
        let ours = self.identity.public().signing_key().to_bytes();
        let live = self.live_group(record.id)?;
        let cells = live.group.send(text, &mut os_rng()).map_err(group_error)?;
        let state = live.group.save().map_err(group_error)?;
        let stored = self
            .store
            .record_group_send(
                record.id,
                &state,
                Some(GroupText {
                    sender: &ours,
                    body: text,
                    at_ms: now_ms(),
                }),
            )?
            .ok_or(NodeError::Stopped)?;
        let live = self.live_group(record.id)?;
        live.outbox.push_back(Post {
            text: Some(stored.seq),
            cells,
        });
        Ok(self.group_message_view(&record.name, &stored))
    }

    pub(super) fn invite_to_group(&mut self, name: &str, contact: &str) -> Result<(), NodeError> {
        let record = self.group_record(name)?;
        let contact = self.contact_named(contact)?;
        self.live_group(record.id)?;
        let link = self
            .link_of(contact.id)
            .filter(|l| may_send(&contact, l))
            .ok_or_else(|| NodeError::NotConnected(contact.name.clone()))?;
        let mut ask = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut ask);
        send(link, Message::GroupAsk { ask });
        self.groups.asks.insert(ask, (record.id, contact.id));
        Ok(())
    }

    pub(super) fn remove_from_group(&mut self, name: &str, contact: &str) -> Result<(), NodeError> {
        let record = self.group_record(name)?;
        let contact = self.contact_named(contact)?;
        let live = self.live_group(record.id)?;
        let cells = live
            .group
            .remove(&[contact.identity_key], &mut os_rng())
            .map_err(group_error)?;
        self.queue_change(record.id, cells)
    }

    pub(super) fn leave_group(&mut self, name: &str) -> Result<(), NodeError> {
        let record = self.group_record(name)?;
        let live = self.live_group(record.id)?;
        let cells = live.group.leave(&mut os_rng()).map_err(group_error)?;
        self.queue_change(record.id, cells)
    }

    fn queue_change(&mut self, id: GroupRef, cells: Vec<Vec<u8>>) -> Result<(), NodeError> {
        let live = self.live_group(id)?;
        live.outbox.push_back(Post { text: None, cells });
        let state = live.group.save().map_err(group_error)?;
        self.store.record_group_send(id, &state, None)?;
        Ok(())
    }

    fn group_record(&self, name: &str) -> Result<GroupRecord, NodeError> {
        self.store
            .group_named(name)
            .map_err(|_| NodeError::UnknownGroup(name.to_owned()))
    }

    fn live_group(&mut self, id: GroupRef) -> Result<&mut LiveGroup, NodeError> {
        self.groups.live.get_mut(&id).ok_or(NodeError::NotInGroup)
    }

    // ----- views --------------------------------------------------------------------

    fn group_view_of(&self, live: &LiveGroup) -> GroupView {
        GroupView {
            name: live.name.clone(),
            members: live
                .group
                .members()
                .iter()
                .map(|key| self.member_name(key))
                .collect(),
            active: live.group.is_active(),
        }
    }

    fn group_message_view(&self, group: &str, record: &GroupMessageRecord) -> GroupMessageView {
        GroupMessageView {
            group: group.to_owned(),
            from: self.member_name(&record.sender),
            body: record.body.clone(),
            outgoing: record.outgoing,
            posted: record.posted,
            at_ms: record.at_ms,
        }
    }

    /// "you", a contact's name, or the start of a stranger's fingerprint.
    fn member_name(&self, key: &IdentityKey) -> String {
        if *key == self.identity.public().signing_key().to_bytes() {
            return "you".into();
        }
        if let Ok(Some(contact)) = self.store.contact_by_key(key) {
            return contact.name;
        }
        stranger(key).unwrap_or_else(|| "someone".into())
    }

    /// A change note with the keys in it turned into names.
    fn named_note(&self, note: &str) -> String {
        let mut out = note.to_owned();
        while let Some(start) = out.find("\u{1}") {
            let Some(end) = out[start + 1..].find('\u{1}').map(|e| start + 1 + e) else {
                break;
            };
            let name = data_encoding::HEXLOWER
                .decode(&out.as_bytes()[start + 1..end])
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .map(|key| self.member_name(&key))
                .unwrap_or_default();
            out.replace_range(start..=end, &name);
        }
        out
    }
}

/// A member's key, marked in a note to be named when the note is shown.
fn key_mark(key: &IdentityKey) -> String {
    format!("\u{1}{}\u{1}", data_encoding::HEXLOWER.encode(key))
}

/// "X added Y and removed Z", with keys marked.
fn change_note(by: IdentityKey, added: &[IdentityKey], removed: &[IdentityKey]) -> String {
    let list = |keys: &[IdentityKey]| keys.iter().map(key_mark).collect::<Vec<_>>().join(", ");
    let by = key_mark(&by);
    match (added.is_empty(), removed.is_empty()) {
        (true, true) => format!("{by} renewed their keys"),
        (false, true) => format!("{by} added {}", list(added)),
        (true, false) => format!("{by} removed {}", list(removed)),
        (false, false) => format!("{by} added {} and removed {}", list(added), list(removed)),
    }
}

/// A stranger in a group, by the first two groups of their fingerprint.
fn stranger(key: &IdentityKey) -> Option<String> {
    let key = VerifyingKey::from_bytes(key).ok()?;
    let groups = Fingerprint::of(&key);
    let groups = groups.groups();
    Some(format!("someone ({:05} {:05})", groups[0], groups[1]))
}

fn group_error(e: nightjar_group::GroupError) -> NodeError {
    NodeError::Group(e.to_string())
}

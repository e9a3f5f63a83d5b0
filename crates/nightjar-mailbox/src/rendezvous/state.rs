//! The rendezvous server's memory: per application, the nameplates and the
//! mailboxes they point to, with the messages in each mailbox and the
//! connections listening to it. No I/O and no clock: every operation is given
//! the time, so expiry is tested by passing numbers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::RendezvousConfig;

/// Identifies one websocket connection among a mailbox's listeners.
pub(crate) type ConnId = u64;

/// Where a listening connection receives the mailbox's new messages.
pub(crate) type Listener = mpsc::Sender<Arc<StoredMessage>>;

/// Longest nameplate accepted, in digits (as the reference server).
const MAX_NAMEPLATE_LEN: usize = 40;
/// Bytes a stored message costs beyond its strings: the bookkeeping around it.
const MESSAGE_OVERHEAD: usize = 64;
/// At most this many sides may claim a nameplate or open a mailbox.
const MAX_SIDES: usize = 2;

/// A message added to a mailbox, as it is sent to every listener.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredMessage {
    pub(crate) side: String,
    pub(crate) phase: String,
    pub(crate) body: Vec<u8>,
    /// The `id` of the `add` that carried it.
    pub(crate) id: Option<String>,
    /// When the server received it, seconds since the epoch.
    pub(crate) server_rx: f64,
}

impl StoredMessage {
    fn cost(&self) -> usize {
        MESSAGE_OVERHEAD
            + self.side.len()
            + self.phase.len()
            + self.body.len()
            + self.id.as_ref().map_or(0, String::len)
    }
}

/// Why an operation was refused; the text is the `error` sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// Two other sides already hold the nameplate or mailbox.
    #[error("crowded")]
    Crowded,
    /// This side released the nameplate before and may not take it back.
    #[error("reclaimed")]
    Reclaimed,
    /// Not a nameplate: digits only, at most 40 of them.
    #[error("invalid nameplate")]
    BadNameplate,
    /// The server holds as many nameplates as it is allowed.
    #[error("too many nameplates in use, try again later")]
    TooManyNameplates,
    /// The server holds as many mailboxes as it is allowed.
    #[error("too many mailboxes in use, try again later")]
    TooManyMailboxes,
    /// The mailbox holds as many messages or bytes as it is allowed.
    #[error("mailbox full")]
    MailboxFull,
    /// All mailboxes together hold as many bytes as allowed.
    #[error("server full, try again later")]
    ServerFull,
    /// The mailbox was closed by every side, or expired.
    #[error("mailbox is gone")]
    MailboxGone,
    /// The system's randomness failed while naming a mailbox.
    #[error("internal error")]
    NoRandomness,
}

#[derive(Debug)]
struct Nameplate {
    mailbox: String,
    /// Each side that claimed it, and whether it still holds it (a side that
    /// released may not claim again).
    sides: HashMap<String, bool>,
}

#[derive(Debug)]
struct Mailbox {
    /// Each side that opened it, and whether it is still open.
    sides: HashMap<String, bool>,
    messages: Vec<Arc<StoredMessage>>,
    bytes: usize,
    listeners: HashMap<ConnId, Listener>,
    updated: u64,
}

impl Mailbox {
    fn new(now: u64) -> Self {
        Self {
            sides: HashMap::new(),
            messages: Vec::new(),
            bytes: 0,
            listeners: HashMap::new(),
            updated: now,
        }
    }

    /// Records `side` as having opened the mailbox, unless two others have.
    fn admit(&mut self, side: &str, now: u64) -> Result<(), Refused> {
        if !self.sides.contains_key(side) {
            if self.sides.len() >= MAX_SIDES {
                return Err(Refused::Crowded);
            }
            self.sides.insert(side.to_owned(), true);
        }
        self.updated = now;
        Ok(())
    }
}

#[derive(Debug, Default)]
struct App {
    /// Ordered so that `list` answers in order without sorting.
    nameplates: BTreeMap<String, Nameplate>,
    mailboxes: HashMap<String, Mailbox>,
}

impl App {
    fn is_empty(&self) -> bool {
        self.nameplates.is_empty() && self.mailboxes.is_empty()
    }
}

/// Counts of what the server holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RendezvousStats {
    /// Applications with at least one nameplate or mailbox.
    pub apps: usize,
    /// Nameplates in use.
    pub nameplates: usize,
    /// Mailboxes in existence.
    pub mailboxes: usize,
    /// Bytes held in messages (bodies, names and bookkeeping).
    pub message_bytes: usize,
}

/// Every application's nameplates and mailboxes, with the totals that bound them.
#[derive(Debug)]
pub(crate) struct State {
    config: RendezvousConfig,
    apps: HashMap<String, App>,
    nameplates: usize,
    mailboxes: usize,
    bytes: usize,
    next_sweep: u64,
}

impl State {
    pub(crate) fn new(config: RendezvousConfig, now: u64) -> Self {
        let next_sweep = now.saturating_add(config.sweep_interval_secs);
        Self {
            config,
            apps: HashMap::new(),
            nameplates: 0,
            mailboxes: 0,
            bytes: 0,
            next_sweep,
        }
    }

    pub(crate) fn stats(&self) -> RendezvousStats {
        RendezvousStats {
            apps: self.apps.len(),
            nameplates: self.nameplates,
            mailboxes: self.mailboxes,
            message_bytes: self.bytes,
        }
    }

    /// The nameplates in use by `app`.
    pub(crate) fn list(&self, app: &str) -> Vec<String> {
        self.apps
            .get(app)
            .map(|a| a.nameplates.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Claims the lowest free nameplate of `app` for `side`.
    pub(crate) fn allocate(&mut self, app: &str, side: &str, now: u64) -> Result<String, Refused> {
        if self.nameplates >= self.config.max_nameplates {
            return Err(Refused::TooManyNameplates);
        }
        let taken = self.apps.get(app).map(|a| &a.nameplates);
        // At most `max_nameplates` are taken, so one of the first
        // `max_nameplates + 1` numbers is free.
        let free = (1u64..)
            .map(|n| n.to_string())
            .find(|n| taken.is_none_or(|t| !t.contains_key(n)))
            .ok_or(Refused::TooManyNameplates)?;
        self.claim(app, &free, side, now)?;
        Ok(free)
    }

    /// Claims `nameplate` for `side`, making it (and its mailbox) if new; returns
    /// the mailbox id. The side is also recorded as having opened the mailbox.
    pub(crate) fn claim(
        &mut self,
        app: &str,
        nameplate: &str,
        side: &str,
        now: u64,
    ) -> Result<String, Refused> {
        if nameplate.is_empty()
            || nameplate.len() > MAX_NAMEPLATE_LEN
            || !nameplate.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Refused::BadNameplate);
        }
        let existing = self.apps.get(app).and_then(|a| a.nameplates.get(nameplate));
        match existing {
            Some(np) => {
                match np.sides.get(side) {
                    Some(false) => return Err(Refused::Reclaimed),
                    Some(true) => {}
                    None if np.sides.len() >= MAX_SIDES => return Err(Refused::Crowded),
                    None => {}
                }
                let mailbox = np.mailbox.clone();
                // The mailbox may be full of sides even when the nameplate is not
                // (a side can open a mailbox without claiming): check before
                // recording the claim.
                self.admit(app, &mailbox, side, now)?;
                if let Some(np) = self.nameplate_mut(app, nameplate) {
                    np.sides.insert(side.to_owned(), true);
                }
                Ok(mailbox)
            }
            None => self.create_nameplate(app, nameplate, side, now),
        }
    }

    fn create_nameplate(
        &mut self,
        app: &str,
        nameplate: &str,
        side: &str,
        now: u64,
    ) -> Result<String, Refused> {
        if self.nameplates >= self.config.max_nameplates {
            return Err(Refused::TooManyNameplates);
        }
        let mailbox = new_mailbox_id()?;
        self.admit(app, &mailbox, side, now)?;
        let np = Nameplate {
            mailbox: mailbox.clone(),
            sides: HashMap::from([(side.to_owned(), true)]),
        };
        self.apps
            .entry(app.to_owned())
            .or_default()
            .nameplates
            .insert(nameplate.to_owned(), np);
        self.nameplates += 1;
        Ok(mailbox)
    }

    fn nameplate_mut(&mut self, app: &str, nameplate: &str) -> Option<&mut Nameplate> {
        self.apps.get_mut(app)?.nameplates.get_mut(nameplate)
    }

    fn mailbox_mut(&mut self, app: &str, mailbox: &str) -> Option<&mut Mailbox> {
        self.apps.get_mut(app)?.mailboxes.get_mut(mailbox)
    }

    /// Records `side` in `mailbox`, making the mailbox if it does not exist.
    fn admit(&mut self, app: &str, mailbox: &str, side: &str, now: u64) -> Result<(), Refused> {
        if let Some(mb) = self.mailbox_mut(app, mailbox) {
            return mb.admit(side, now);
        }
        if self.mailboxes >= self.config.max_mailboxes {
            return Err(Refused::TooManyMailboxes);
        }
        let mut mb = Mailbox::new(now);
        mb.admit(side, now)?;
        self.apps
            .entry(app.to_owned())
            .or_default()
            .mailboxes
            .insert(mailbox.to_owned(), mb);
        self.mailboxes += 1;
        Ok(())
    }

    /// `side` gives `nameplate` back; the nameplate is deleted once no side
    /// holds it. Releasing what one does not hold does nothing.
    pub(crate) fn release(&mut self, app: &str, nameplate: &str, side: &str) {
        let Some(np) = self.nameplate_mut(app, nameplate) else {
            return;
        };
        let Some(held) = np.sides.get_mut(side) else {
            return;
        };
        *held = false;
        if np.sides.values().any(|held| *held) {
            return;
        }
        if let Some(a) = self.apps.get_mut(app) {
            a.nameplates.remove(nameplate);
            self.nameplates -= 1;
        }
        self.drop_app_if_empty(app);
    }

    /// Opens `mailbox` for `side`, making it if needed, and registers `conn` as
    /// a listener; returns the messages already in it.
    pub(crate) fn open(
        &mut self,
        app: &str,
        mailbox: &str,
        side: &str,
        conn: ConnId,
        listener: Listener,
        now: u64,
    ) -> Result<Vec<Arc<StoredMessage>>, Refused> {
        self.admit(app, mailbox, side, now)?;
        let mb = self.mailbox_mut(app, mailbox).ok_or(Refused::MailboxGone)?;
        mb.listeners.insert(conn, listener);
        Ok(mb.messages.clone())
    }

    /// Adds `message` to `mailbox` and sends it to every listener, the sender's
    /// own connection included.
    pub(crate) fn add(
        &mut self,
        app: &str,
        mailbox: &str,
        message: StoredMessage,
        now: u64,
    ) -> Result<(), Refused> {
        let cost = message.cost();
        let room = self.config.max_total_bytes.saturating_sub(self.bytes);
        let (max_messages, max_bytes) = (
            self.config.max_messages_per_mailbox,
            self.config.max_mailbox_bytes,
        );
        let mb = self.mailbox_mut(app, mailbox).ok_or(Refused::MailboxGone)?;
        if mb.messages.len() >= max_messages || mb.bytes.saturating_add(cost) > max_bytes {
            return Err(Refused::MailboxFull);
        }
        if cost > room {
            return Err(Refused::ServerFull);
        }
        let message = Arc::new(message);
        // A listener's queue holds as many messages as a mailbox may, and a
        // connection listens to one mailbox only, so it is never full; were it
        // full or gone, the connection is dropped from the listeners rather
        // than let the mailbox wait for it.
        mb.listeners
            .retain(|_, listener| listener.try_send(message.clone()).is_ok());
        mb.messages.push(message);
        mb.bytes += cost;
        mb.updated = now;
        self.bytes += cost;
        Ok(())
    }

    /// Stops sending `mailbox`'s messages to `conn`.
    pub(crate) fn unlisten(&mut self, app: &str, mailbox: &str, conn: ConnId) {
        if let Some(mb) = self.mailbox_mut(app, mailbox) {
            mb.listeners.remove(&conn);
        }
    }

    /// `side` closes `mailbox`; once every side that opened it has closed it,
    /// the mailbox, its messages and the nameplates pointing to it are deleted.
    /// Closing a mailbox one never opened does nothing.
    pub(crate) fn close(&mut self, app: &str, mailbox: &str, side: &str, conn: ConnId) {
        let Some(mb) = self.mailbox_mut(app, mailbox) else {
            return;
        };
        mb.listeners.remove(&conn);
        let Some(open) = mb.sides.get_mut(side) else {
            return;
        };
        *open = false;
        if mb.sides.values().any(|open| *open) {
            return;
        }
        self.delete_mailbox(app, mailbox);
        self.drop_app_if_empty(app);
    }

    fn delete_mailbox(&mut self, app: &str, mailbox: &str) {
        let Some(a) = self.apps.get_mut(app) else {
            return;
        };
        if let Some(mb) = a.mailboxes.remove(mailbox) {
            self.mailboxes -= 1;
            self.bytes -= mb.bytes;
        }
        let before = a.nameplates.len();
        a.nameplates.retain(|_, np| np.mailbox != mailbox);
        self.nameplates -= before - a.nameplates.len();
    }

    fn drop_app_if_empty(&mut self, app: &str) {
        if self.apps.get(app).is_some_and(App::is_empty) {
            self.apps.remove(app);
        }
    }

    /// Runs [`State::sweep`] if its interval has passed.
    pub(crate) fn sweep_if_due(&mut self, now: u64) {
        if now >= self.next_sweep {
            self.sweep(now);
        }
    }

    /// Deletes every mailbox (and its nameplates) that nobody listens to and
    /// that has not changed for the configured idle time. A mailbox somebody
    /// listens to counts as changed now.
    pub(crate) fn sweep(&mut self, now: u64) {
        self.next_sweep = now.saturating_add(self.config.sweep_interval_secs);
        let idle = self.config.idle_secs;
        let mut expired = Vec::new();
        for (app_id, app) in &mut self.apps {
            for (mailbox_id, mb) in &mut app.mailboxes {
                mb.listeners.retain(|_, l| !l.is_closed());
                if !mb.listeners.is_empty() {
                    mb.updated = now;
                } else if now.saturating_sub(mb.updated) >= idle {
                    expired.push((app_id.clone(), mailbox_id.clone()));
                }
            }
        }
        for (app, mailbox) in expired {
            self.delete_mailbox(&app, &mailbox);
            self.drop_app_if_empty(&app);
        }
    }
}

/// A fresh mailbox id: 64 random bits in lower-case base32, as the reference
/// server makes them.
fn new_mailbox_id() -> Result<String, Refused> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|_| Refused::NoRandomness)?;
    let mut id = data_encoding::BASE32_NOPAD.encode(&raw);
    id.make_ascii_lowercase();
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "example.org/app";

    fn small() -> RendezvousConfig {
        RendezvousConfig {
            max_nameplates: 3,
            max_mailboxes: 4,
            max_messages_per_mailbox: 3,
            max_mailbox_bytes: 1000,
            max_total_bytes: 1500,
            idle_secs: 100,
            sweep_interval_secs: 10,
            ..RendezvousConfig::default()
        }
    }

    fn message(side: &str, phase: &str, len: usize) -> StoredMessage {
        StoredMessage {
            side: side.into(),
            phase: phase.into(),
            body: vec![7; len],
            id: None,
            server_rx: 0.0,
        }
    }

    fn listener() -> (Listener, mpsc::Receiver<Arc<StoredMessage>>) {
        mpsc::channel(8)
    }

    #[test]
    fn allocate_takes_the_lowest_free_number_per_app() {
        let mut s = State::new(small(), 0);
        assert_eq!(s.allocate(APP, "a", 0).unwrap(), "1");
        assert_eq!(s.allocate(APP, "b", 0).unwrap(), "2");
        assert_eq!(s.allocate("other", "c", 0).unwrap(), "1");
        s.release(APP, "1", "a");
        assert_eq!(s.list(APP), vec!["2".to_owned()]);
        assert_eq!(s.list("other"), vec!["1".to_owned()]);
        assert_eq!(s.allocate(APP, "d", 0).unwrap(), "1");
        assert_eq!(s.allocate(APP, "e", 0), Err(Refused::TooManyNameplates));
    }

    #[test]
    fn a_nameplate_admits_two_sides_and_no_reclaim() {
        let mut s = State::new(small(), 0);
        let m = s.claim(APP, "7", "a", 0).unwrap();
        assert_eq!(s.claim(APP, "7", "a", 0).unwrap(), m);
        assert_eq!(s.claim(APP, "7", "b", 0).unwrap(), m);
        assert_eq!(s.claim(APP, "7", "c", 0), Err(Refused::Crowded));
        assert_eq!(s.claim(APP, "x7", "c", 0), Err(Refused::BadNameplate));
        assert_eq!(s.claim(APP, "", "c", 0), Err(Refused::BadNameplate));
        s.release(APP, "7", "a");
        assert_eq!(s.claim(APP, "7", "a", 0), Err(Refused::Reclaimed));
        s.release(APP, "7", "b");
        assert!(s.list(APP).is_empty());
        // The mailbox outlives the nameplate until both sides close it.
        assert_eq!(s.stats().mailboxes, 1);
        s.close(APP, &m, "a", 1);
        assert_eq!(s.stats().mailboxes, 1);
        s.close(APP, &m, "b", 2);
        assert_eq!(s.stats(), RendezvousStats::default());
    }

    #[test]
    fn a_third_side_cannot_open_a_mailbox() {
        let mut s = State::new(small(), 0);
        let m = s.claim(APP, "1", "a", 0).unwrap();
        let (l, _r) = listener();
        s.open(APP, &m, "b", 1, l.clone(), 0).unwrap();
        assert_eq!(s.open(APP, &m, "c", 2, l.clone(), 0), Err(Refused::Crowded));
        // The mailbox is full of sides, so the nameplate is too.
        assert_eq!(s.claim(APP, "1", "c", 0), Err(Refused::Crowded));
    }

    #[test]
    fn messages_reach_every_listener_and_later_openers() {
        let mut s = State::new(small(), 0);
        let m = s.claim(APP, "1", "a", 0).unwrap();
        let (la, mut ra) = listener();
        assert!(s.open(APP, &m, "a", 1, la, 0).unwrap().is_empty());
        s.add(APP, &m, message("a", "pake", 10), 0).unwrap();
        assert_eq!(ra.try_recv().unwrap().phase, "pake");
        let (lb, mut rb) = listener();
        let old = s.open(APP, &m, "b", 2, lb, 0).unwrap();
        assert_eq!(old.len(), 1);
        s.add(APP, &m, message("b", "pake", 10), 0).unwrap();
        assert_eq!(ra.try_recv().unwrap().side, "b");
        assert_eq!(rb.try_recv().unwrap().side, "b");
        s.unlisten(APP, &m, 2);
        s.add(APP, &m, message("a", "0", 10), 0).unwrap();
        assert!(rb.try_recv().is_err());
        assert_eq!(
            s.add(APP, &m, message("a", "1", 10), 0),
            Err(Refused::MailboxFull)
        );
    }

    #[test]
    fn bytes_are_bounded_per_mailbox_and_in_total() {
        let mut s = State::new(small(), 0);
        let m1 = s.claim(APP, "1", "a", 0).unwrap();
        let m2 = s.claim(APP, "2", "a", 0).unwrap();
        assert_eq!(
            s.add(APP, &m1, message("a", "0", 1000), 0),
            Err(Refused::MailboxFull)
        );
        s.add(APP, &m1, message("a", "0", 800), 0).unwrap();
        assert_eq!(
            s.add(APP, &m2, message("a", "0", 800), 0),
            Err(Refused::ServerFull)
        );
        s.close(APP, &m1, "a", 1);
        s.add(APP, &m2, message("a", "0", 800), 0).unwrap();
        assert_eq!(s.stats().nameplates, 1);
        assert!(s.stats().message_bytes > 800);
        assert_eq!(
            s.add(APP, &m1, message("a", "0", 1), 0),
            Err(Refused::MailboxGone)
        );
    }

    #[test]
    fn mailboxes_are_bounded() {
        let mut s = State::new(small(), 0);
        let (l, _r) = listener();
        for (i, m) in ["m1", "m2", "m3", "m4"].iter().enumerate() {
            s.open(APP, m, "a", i as u64, l.clone(), 0).unwrap();
        }
        assert_eq!(
            s.open(APP, "m5", "a", 9, l.clone(), 0),
            Err(Refused::TooManyMailboxes)
        );
        assert_eq!(s.claim(APP, "1", "a", 0), Err(Refused::TooManyMailboxes));
        assert_eq!(s.stats().nameplates, 0);
    }

    #[test]
    fn idle_mailboxes_expire_unless_listened_to() {
        let mut s = State::new(small(), 1000);
        let idle = s.claim(APP, "1", "a", 1000).unwrap();
        let busy = s.claim(APP, "2", "b", 1000).unwrap();
        let (l, _r) = listener();
        s.open(APP, &busy, "b", 1, l, 1000).unwrap();
        s.sweep_if_due(1099);
        assert_eq!(s.stats().mailboxes, 2);
        // Idle long enough, but the next sweep is not due before 1109.
        s.sweep_if_due(1105);
        assert_eq!(s.stats().mailboxes, 2);
        s.sweep_if_due(1109);
        assert_eq!(s.stats().mailboxes, 1);
        assert_eq!(s.list(APP), vec!["2".to_owned()]);
        assert_eq!(
            s.add(APP, &idle, message("a", "0", 1), 1109),
            Err(Refused::MailboxGone)
        );
        // Once its listener hangs up, the busy one expires too.
        s.unlisten(APP, &busy, 1);
        s.sweep(1208);
        assert_eq!(s.stats().mailboxes, 1);
        s.sweep(1209);
        assert_eq!(s.stats(), RendezvousStats::default());
    }
}

//! Cover deposits: with `mailbox_cover` set, the node leaves dummy messages in
//! the mailboxes of contacts that are away, at random times, so that a mailbox
//! operator cannot tell from the deposits into a recipient's slots when, or
//! whether, anyone wrote to them.
//!
//! A cover deposit is a real offline message to the mailbox: the [`Message::Cover`]
//! payload sealed at the next counter of the contact's send chain (one blob, like
//! every short text), the chain's new state stored before the blob leaves, the
//! same proof of work, a circuit of its own. The recipient opens it, drops it
//! without a trace and deletes it from the mailbox like any other.
//!
//! Deposits follow a Poisson process per contact: the gaps are exponentially
//! distributed with the configured mean (cover goes only where real deposits
//! could: a contact with no link, to whom we hold a grant). A cover deposit that
//! no mailbox takes is tried again at the next cover time.
//!
//! After it is taken, a cover deposit is watched like a real one until the
//! contact links with us again: each check of the contact's mailboxes includes
//! it, and a mailbox that restarted (a new instance) gets it again, so that
//! neither the checks nor what comes back after a restart tell real deposits
//! from cover. What is watched lives in memory only: a restart of our node
//! forgets it.
//!
//! # The receiver's window
//!
//! The receiver looks only [`WINDOW`] counters past the lowest it has not
//! opened, so cover must not use up the counters real messages need. What the
//! sender knows of the receiver: on every link the receiver sends a fresh grant
//! once anything came through the old one, and the same grant again otherwise.
//! So while we hold a grant, the receiver may still be at its counter 0, and
//! every counter we used on it counts against the window. Cover takes a counter
//! only while fewer than [`COVER_COUNTERS`] (a quarter of the window) are used,
//! real messages included: at least three quarters of the window stay for real
//! messages, and cover resumes with the next grant.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nightjar_proto::message::Message;
use nightjar_proto::offline::{BLOB_LEN, GRANT_ID_LEN, SendChain, WINDOW};
use nightjar_store::StoreError;
use nightjar_tor::Transport;
use rand::RngExt as _;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::super::Engine;
use super::{DepositItem, deposit_first};
use crate::NodeError;
use crate::link::os_rng;
use crate::net::Report;

/// Counters of one grant that cover may bring the send chain to: a quarter of
/// the receiver's window.
pub(crate) const COVER_COUNTERS: u32 = WINDOW / 4;
const _: () = assert!(COVER_COUNTERS > 0 && COVER_COUNTERS * 4 <= WINDOW);

/// The longest gap drawn (a longer mean is cut to it): far beyond any useful
/// mean, and small enough that `Instant` arithmetic cannot overflow.
const MAX_GAP: Duration = Duration::from_secs(366 * 24 * 3600);

/// Whether a cover deposit may take the next counter of a send chain at
/// `next_counter`: only while the counters used on the grant stay below
/// [`COVER_COUNTERS`].
pub(crate) fn room_for_cover(next_counter: u32) -> bool {
    next_counter < COVER_COUNTERS
}

/// An exponentially distributed gap of mean `mean`, from `uniform` in `[0, 1)`
/// (inverse transform sampling), at most [`MAX_GAP`].
fn exponential_gap(mean: Duration, uniform: f64) -> Duration {
    // ln of (0, 1] is at most zero: its magnitude is the factor.
    let factor = (1.0 - uniform.clamp(0.0, 1.0 - f64::EPSILON)).ln().abs();
    Duration::try_from_secs_f64(mean.as_secs_f64() * factor)
        .unwrap_or(MAX_GAP)
        .min(MAX_GAP)
}

fn random_gap(mean: Duration) -> Duration {
    exponential_gap(mean, os_rng().random::<f64>())
}

/// A cover message sealed for one contact and not yet taken by a mailbox.
pub(crate) struct CoverItem {
    /// The grant it was sealed under: a newer grant makes it moot.
    grant_id: [u8; GRANT_ID_LEN],
    slot_seed: Zeroizing<[u8; 32]>,
    blobs: Vec<[u8; BLOB_LEN]>,
    mailboxes: Vec<[u8; 32]>,
    /// Kept across tries, as a real message keeps its own.
    isolation: String,
}

/// A cover message a mailbox took, watched until the contact links with us.
struct LeftCover {
    /// Random, so that the deposit item it becomes shares no isolation key
    /// with any other deposit, of this run or another.
    id: u32,
    item: CoverItem,
    /// The mailbox that holds it, and that mailbox's instance.
    deposited: ([u8; 32], [u8; 16]),
}

/// One contact's cover schedule.
struct Schedule {
    /// When the next cover deposit is due.
    next: Instant,
    /// The deposit under way.
    task: Option<tokio::task::AbortHandle>,
    /// A cover message no mailbox took yet.
    unsent: Option<CoverItem>,
}

/// Cover deposits' state in the engine: each away contact's schedule, and
/// the cover deposits left with each.
#[derive(Default)]
pub(super) struct Covers {
    schedules: HashMap<i64, Schedule>,
    left: HashMap<i64, Vec<LeftCover>>,
}

/// The deposit items of cover messages have negative sequence numbers (real
/// messages' are positive).
fn cover_seq(id: u32) -> i64 {
    -1 - i64::from(id)
}

/// Whether a deposit item's sequence number is a cover message's.
pub(super) fn is_cover_seq(seq: i64) -> bool {
    seq < 0
}

impl std::fmt::Debug for Covers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Covers")
            .field("contacts", &self.schedules.len())
            .field("left", &self.left.values().map(Vec::len).sum::<usize>())
            .finish()
    }
}

impl Engine {
    /// Starts the cover deposits that are due, for the contacts that are away
    /// now; forgets the schedules of the others, so a contact that comes back
    /// gets a fresh gap when it goes away again.
    pub(super) fn start_cover(&mut self, away: &[i64], now: Instant) {
        if self.offline.config.mailbox_cover.is_none() {
            return;
        }
        self.offline
            .covers
            .schedules
            .retain(|contact, s| s.task.is_some() || away.contains(contact));
        // A contact that linked with us has collected, or will: like real
        // deposits, cover is no longer watched.
        self.offline
            .covers
            .left
            .retain(|contact, _| away.contains(contact));
        for &contact in away {
            self.cover_due(contact, now);
        }
    }

    /// Starts a cover deposit for an away contact if one is due.
    fn cover_due(&mut self, contact: i64, now: Instant) {
        let Some(mean) = self.offline.config.mailbox_cover else {
            return;
        };
        let schedule = self
            .offline
            .covers
            .schedules
            .entry(contact)
            .or_insert_with(|| Schedule {
                next: now + random_gap(mean),
                task: None,
                unsent: None,
            });
        if schedule.task.is_some() || now < schedule.next {
            return;
        }
        schedule.next = now + random_gap(mean);
        let unsent = schedule.unsent.take();
        match self.cover_item(contact, unsent) {
            Ok(Some(item)) => self.spawn_cover(contact, item),
            Ok(None) => {}
            Err(e) => tracing::debug!("no cover deposit: {e}"),
        }
    }

    /// The cover message to deposit now: the one no mailbox took last time if
    /// it is still of the current grant, else a new one if the window allows.
    fn cover_item(
        &mut self,
        contact: i64,
        unsent: Option<CoverItem>,
    ) -> Result<Option<CoverItem>, NodeError> {
        let Some(state) = self.store.send_chain(contact)? else {
            return Ok(None);
        };
        let mut chain = SendChain::from_bytes(&state)
            .map_err(|e| StoreError::Corrupt(format!("send chain: {e}")))?;
        if let Some(item) = unsent.filter(|item| item.grant_id == chain.grant_id()) {
            return Ok(Some(item));
        }
        if !room_for_cover(chain.next_counter()) {
            return Ok(None);
        }
        let payload = Message::Cover
            .encode()
            .map_err(|e| NodeError::BadMessage(e.to_string()))?;
        let sealed = chain
            .seal(&payload)
            .map_err(|e| NodeError::BadMessage(e.to_string()))?;
        // Stored before the blob leaves: a step's keys seal one plaintext only.
        self.store.set_send_chain(contact, &chain.to_bytes())?;
        // Random, so that no other deposit, of this run or another, shares it.
        let tag: u64 = os_rng().random();
        Ok(Some(CoverItem {
            grant_id: chain.grant_id(),
            slot_seed: sealed.slot_seed,
            blobs: sealed.blobs,
            mailboxes: chain.mailboxes().to_vec(),
            isolation: format!("cover-deposit-{tag:016x}"),
        }))
    }

    fn spawn_cover(&mut self, contact: i64, item: CoverItem) {
        let task = tokio::spawn(cover_task(
            self.transport.clone(),
            contact,
            item,
            self.reports_tx.clone(),
        ));
        if let Some(schedule) = self.offline.covers.schedules.get_mut(&contact) {
            schedule.task = Some(task.abort_handle());
        }
    }

    /// A cover deposit ended: one a mailbox took is watched from now on, one
    /// that no mailbox took is kept for the next time. The next one starts at
    /// once if it is due already.
    pub(in crate::engine) fn cover_ended(
        &mut self,
        contact: i64,
        item: CoverItem,
        taken: Option<([u8; 32], [u8; 16])>,
    ) {
        let Some(schedule) = self.offline.covers.schedules.get_mut(&contact) else {
            return;
        };
        schedule.task = None;
        match taken {
            Some(deposited) => {
                self.offline
                    .covers
                    .left
                    .entry(contact)
                    .or_default()
                    .push(LeftCover {
                        id: os_rng().random(),
                        item,
                        deposited,
                    })
            }
            None => schedule.unsent = Some(item),
        }
        let away = self
            .store
            .contact(contact)
            .is_ok_and(|record| self.may_deposit(&record));
        if away {
            self.cover_due(contact, Instant::now());
        }
    }

    /// Whether cover deposits are left with a contact.
    pub(super) fn has_cover_deposits(&self, contact: i64) -> bool {
        self.offline
            .covers
            .left
            .get(&contact)
            .is_some_and(|left| !left.is_empty())
    }

    /// The cover deposits left with a contact, as deposit items: checked with
    /// the real ones, and deposited again where they were lost.
    pub(super) fn cover_deposit_items(&self, contact: i64) -> Vec<DepositItem> {
        let Some(left) = self.offline.covers.left.get(&contact) else {
            return Vec::new();
        };
        left.iter()
            .map(|cover| DepositItem {
                seq: cover_seq(cover.id),
                id: None,
                slot_seed: cover.item.slot_seed.clone(),
                blobs: cover.item.blobs.clone(),
                mailboxes: cover.item.mailboxes.clone(),
                deposited: Some(cover.deposited),
            })
            .collect()
    }

    /// A cover deposit was taken again, after its mailbox lost it.
    pub(super) fn cover_deposited_again(
        &mut self,
        contact: i64,
        seq: i64,
        mailbox: [u8; 32],
        instance: [u8; 16],
    ) {
        let left = self.offline.covers.left.get_mut(&contact);
        if let Some(cover) = left
            .into_iter()
            .flatten()
            .find(|cover| cover_seq(cover.id) == seq)
        {
            cover.deposited = (mailbox, instance);
        }
    }

    /// Stops every cover deposit under way (the node is stopping).
    pub(in crate::engine) fn stop_cover(&mut self) {
        for schedule in self.offline.covers.schedules.values_mut() {
            if let Some(task) = schedule.task.take() {
                task.abort();
            }
        }
    }
}

/// Deposits one cover message into the first of its mailboxes that takes it.
async fn cover_task(
    transport: Arc<dyn Transport>,
    contact: i64,
    item: CoverItem,
    reports: mpsc::Sender<Report>,
) {
    let deposited = deposit_first(
        &*transport,
        &item.mailboxes,
        &item.isolation,
        &item.slot_seed,
        &item.blobs,
    )
    .await;
    let taken = match deposited {
        Ok(taken) => Some(taken),
        Err(e) => {
            tracing::debug!("cover deposit failed: {e}");
            None
        }
    };
    let _ = reports
        .send(Report::CoverEnded {
            contact,
            item: Box::new(item),
            taken,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightjar_proto::offline::{DropGrant, RecvChain};

    #[test]
    fn cover_leaves_three_quarters_of_the_window_to_real_messages() {
        assert!(room_for_cover(0));
        assert!(room_for_cover(COVER_COUNTERS - 1));
        assert!(!room_for_cover(COVER_COUNTERS));
        assert!(!room_for_cover(u32::MAX));
    }

    /// A sender that tries a cover deposit before and after every real message
    /// (and many times after the last): as long as no more real messages wait
    /// than the window leaves them, each still lies in the window of a receiver
    /// that has read nothing, and opens there.
    #[test]
    fn real_messages_after_cover_stay_in_the_window() {
        let grant = DropGrant::generate(vec![[1; 32]], &mut os_rng()).unwrap();
        let mut send = SendChain::new(&grant);
        let cover = Message::Cover.encode().unwrap();
        let try_cover = |send: &mut SendChain, times: usize| {
            let mut sealed = 0;
            for _ in 0..times {
                if room_for_cover(send.next_counter()) {
                    send.seal(&cover).unwrap();
                    sealed += 1;
                }
            }
            sealed
        };
        let mut covers = try_cover(&mut send, 3);
        let mut real = Vec::new();
        for i in 0..WINDOW - COVER_COUNTERS {
            real.push(send.seal(format!("real {i}").as_bytes()).unwrap());
            covers += try_cover(&mut send, 1);
        }
        covers += try_cover(&mut send, 1000);
        // Cover stopped once the chain reached the bound, real messages
        // included.
        assert!(covers > 3 && covers < COVER_COUNTERS as usize, "{covers}");
        assert_eq!(send.next_counter() as usize, covers + real.len());
        let mut recv = RecvChain::new(&grant);
        let scanned: Vec<u32> = recv.slots_to_scan().iter().map(|s| s.counter).collect();
        for sealed in &real {
            assert!(scanned.contains(&sealed.counter), "{}", sealed.counter);
        }
        let found: Vec<(u32, Vec<Vec<u8>>)> = real
            .iter()
            .map(|sealed| (sealed.counter, vec![sealed.blobs[0].to_vec()]))
            .collect();
        assert_eq!(recv.open(&found).unwrap().messages.len(), real.len());

        // Cover first: it stops at the bound, and what follows still fits.
        let mut send = SendChain::new(&grant);
        assert_eq!(try_cover(&mut send, 1000), COVER_COUNTERS as usize);
        for _ in COVER_COUNTERS..WINDOW {
            let sealed = send.seal(b"real").unwrap();
            assert!(sealed.counter < WINDOW);
        }
    }

    #[test]
    fn gaps_are_exponential() {
        let mean = Duration::from_secs(60);
        assert_eq!(exponential_gap(mean, 0.0), Duration::ZERO);
        // The median of an exponential distribution is mean * ln 2.
        let median = exponential_gap(mean, 0.5).as_secs_f64();
        assert!(
            (median - 60.0 * std::f64::consts::LN_2).abs() < 1e-6,
            "{median}"
        );
        let late = exponential_gap(mean, 1.0 - f64::EPSILON);
        assert!(late > mean * 30 && late < mean * 40, "{late:?}");
        assert_eq!(exponential_gap(mean, 1.0), late);
        assert_eq!(exponential_gap(MAX_GAP, 0.99), MAX_GAP);
        assert_eq!(exponential_gap(Duration::MAX, 0.5), MAX_GAP);
        // The sample mean of many draws is near the mean.
        let n = 20_000;
        let sum: f64 = (0..n)
            .map(|_| random_gap(Duration::from_secs(1)).as_secs_f64())
            .sum();
        let sample_mean = sum / f64::from(n);
        assert!((sample_mean - 1.0).abs() < 0.05, "{sample_mean}");
    }

    #[test]
    fn a_cover_message_is_one_blob() {
        let grant = DropGrant::generate(vec![[1; 32]], &mut os_rng()).unwrap();
        let sealed = SendChain::new(&grant)
            .seal(&Message::Cover.encode().unwrap())
            .unwrap();
        assert_eq!(sealed.blobs.len(), 1);
    }
}

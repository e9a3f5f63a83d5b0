//! The engine's side of file transfer: offers, answers, and the bookkeeping of
//! pumps and sinks (crate::files does their I/O).
//!
//! The sender drives resumption: on every link where texts may go it offers
//! each unfinished file again, and the receiver answers from its own state: an
//! accept that says where its partial file stands, `done` for a file it has, or
//! its decline or cancel again. So a broken stream, a restart of either side or
//! a restart of Tor all end the same way: the next link carries on from the
//! receiver's last written chunk (or, after a crash, its last synced one).
//! Chunks and acks pass through here without touching the store; checkpoints
//! and state changes are stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use data_encoding::HEXLOWER;
use nightjar_proto::files::{
    CHUNK_LEN, CREDIT_CHUNKS, CancelReason, DeclineReason, FileId, chunk_count, chunk_frame_cells,
    is_invisible, sanitize_name,
};
use nightjar_proto::message::Message;
use nightjar_store::{
    ContactRecord, NewOutgoing, TransferDirection as Dir, TransferRecord, TransferState as Stored,
};
use tokio::sync::{mpsc, oneshot};

use super::{Engine, may_send, now_ms, send};
use crate::files::{
    self, FilesConfig, Meter, PumpEnd, PumpPlan, SINK_QUEUE, SinkInput, SinkPlan, SinkReport,
    SourceFile,
};
use crate::link::os_rng;
use crate::net::{LinkCommand, LinkId, Written};
use crate::{AcceptFile, Event, NodeError, TransferDirection, TransferState, TransferView};

/// Offers from one contact waiting for a decision beyond which more are
/// declined as busy.
const MAX_WAITING_OFFERS: usize = 16;

/// File transfers running in this process.
pub(super) struct Files {
    config: FilesConfig,
    running: HashMap<i64, Running>,
    next_attempt: u32,
    next_generation: u64,
}

impl Files {
    pub(super) fn new(config: FilesConfig) -> Self {
        Self {
            config,
            running: HashMap::new(),
            next_attempt: 1,
            next_generation: 1,
        }
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

/// A pump or a sink at work for one transfer.
struct Running {
    file: FileId,
    contact: i64,
    /// The file's size in bytes.
    size: u64,
    /// The link it is tied to (a sink outlives links; a pump does not).
    link: Option<LinkId>,
    attempt: u32,
    /// Which pump or sink: reports of an earlier one are not this one's.
    generation: u64,
    task: Task,
    meter: Meter,
    bytes: u64,
}

enum Task {
    /// Credit for the pump; dropping it stops the pump.
    Pump(mpsc::UnboundedSender<u32>),
    Sink {
        inputs: mpsc::Sender<SinkInput>,
        discard: Arc<AtomicBool>,
        /// Chunks from this index on are past the credit we gave.
        credit_until: u32,
    },
}

impl Running {
    /// The receiver granted chunks up to `through` + the window.
    fn raise_credit(&mut self, through: u32) {
        if let Task::Sink { credit_until, .. } = &mut self.task {
            *credit_until = through.saturating_add(CREDIT_CHUNKS);
        }
    }
}

fn is_file_message(message: &Message) -> bool {
    matches!(
        message,
        Message::FileOffer { .. }
            | Message::FileAccept { .. }
            | Message::FileDecline { .. }
            | Message::FileChunk { .. }
            | Message::FileAck { .. }
            | Message::FileCancel { .. }
            | Message::FileDone { .. }
    )
}

fn view_state(state: Stored) -> TransferState {
    match state {
        Stored::Offered => TransferState::Offered,
        Stored::Accepted => TransferState::Accepted,
        Stored::Active => TransferState::Active,
        Stored::Paused => TransferState::Paused,
        Stored::Completed => TransferState::Completed,
        Stored::Declined => TransferState::Declined,
        Stored::Cancelled => TransferState::Cancelled,
        Stored::Failed => TransferState::Failed,
    }
}

fn state_word(state: Stored) -> String {
    format!("{:?}", view_state(state)).to_lowercase()
}

/// Offered names are shown without control or invisible formatting characters.
fn display_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .collect()
}

fn chunk_bytes(size: u64, chunks: u32) -> u64 {
    (u64::from(chunks) * CHUNK_LEN as u64).min(size)
}

impl Engine {
    pub(super) fn transfer_record(&self, id: i64) -> Result<TransferRecord, NodeError> {
        self.store
            .transfer(id)
            .map_err(|_| NodeError::UnknownTransfer(id))
    }

    /// Incoming transfer `id`, if it is in `state`.
    fn incoming_in(&self, id: i64, state: Stored) -> Result<TransferRecord, NodeError> {
        let row = self.transfer_record(id)?;
        if row.direction != Dir::Incoming {
            return Err(NodeError::WrongState {
                id,
                state: "a file you send".into(),
            });
        }
        if row.state != state {
            return Err(NodeError::WrongState {
                id,
                state: state_word(row.state),
            });
        }
        Ok(row)
    }

    fn transfer_view(&self, row: &TransferRecord) -> TransferView {
        let contact = self
            .store
            .contact(row.contact)
            .map(|c| c.name)
            .unwrap_or_default();
        let running = self.files.running.get(&row.id);
        let bytes_done = match (row.state, running) {
            (Stored::Completed, _) => row.size,
            (_, Some(run)) => run.bytes,
            _ => chunk_bytes(row.size, row.done_chunks),
        };
        let flowing = row.state == Stored::Active;
        let path = match row.direction {
            Dir::Incoming => row.final_path.as_ref(),
            Dir::Outgoing => row.source_path.as_ref(),
        };
        TransferView {
            id: row.id,
            contact,
            direction: match row.direction {
                Dir::Incoming => TransferDirection::Incoming,
                Dir::Outgoing => TransferDirection::Outgoing,
            },
            name: display_name(&row.name),
            save_name: row.save_name.clone().or_else(|| {
                (row.direction == Dir::Incoming)
                    .then(|| sanitize_name(&row.name, &FileId(row.file_id)))
            }),
            size: row.size,
            hash: HEXLOWER.encode(&row.hash),
            state: view_state(row.state),
            reason: row.reason.clone(),
            bytes_done,
            rate_bps: running.filter(|_| flowing).and_then(|r| r.meter.rate()),
            eta_s: running
                .filter(|_| flowing)
                .and_then(|r| r.meter.eta(row.size)),
            path: path.map(|p| p.display().to_string()),
            created_at_ms: row.created_at_ms,
        }
    }

    fn emit_state(&self, row: &TransferRecord) {
        self.emit(Event::FileState {
            transfer: self.transfer_view(row),
        });
    }

    /// Stores a state change and reports it.
    fn set_state(
        &mut self,
        id: i64,
        state: Stored,
        reason: Option<&str>,
        peer_told: bool,
    ) -> Option<TransferRecord> {
        match self
            .store
            .set_transfer_state(id, state, reason, peer_told, now_ms())
        {
            Ok(row) => {
                self.emit_state(&row);
                Some(row)
            }
            Err(e) => {
                self.warn(format!("could not store a file transfer: {e}"));
                None
            }
        }
    }

    /// The contact's adopted link, if texts (and so files) may go over it.
    fn file_link(&self, contact: i64) -> Option<LinkId> {
        let link = *self.contacts_online.get(&contact)?;
        let live = self.links.get(&link)?;
        let record = self.store.contact(contact).ok()?;
        may_send(&record, live).then_some(link)
    }

    fn send_on(&self, link: LinkId, message: Message) {
        if let Some(live) = self.links.get(&link) {
            send(live, message);
        }
    }

    fn cancel_on(&self, link: LinkId, id: FileId, reason: CancelReason) {
        self.send_on(link, Message::FileCancel { id, reason });
    }

    fn decline_on(&self, link: LinkId, id: FileId, reason: DeclineReason) {
        self.send_on(link, Message::FileDecline { id, reason });
    }

    /// Sends a decline or cancel the peer must hear of; `false` if no link
    /// could take it (it goes at the next one).
    fn send_told(&self, contact: i64, transfer: i64, message: Message) -> bool {
        let Some(live) = self.file_link(contact).and_then(|l| self.links.get(&l)) else {
            return false;
        };
        live.commands
            .send(LinkCommand::Send {
                message,
                written: Some(Written::Transfer(transfer)),
            })
            .is_ok()
    }

    pub(super) fn transfer_told(&mut self, id: i64) {
        if let Err(e) = self.store.set_peer_told(id) {
            tracing::debug!("could not record a told transfer: {e}");
        }
    }

    /// Stops the transfer's pump or sink for good; an unfinished incoming
    /// file's partial is deleted (by its sink, if one is writing it).
    fn stop_and_discard(&mut self, row: &TransferRecord) {
        match self.files.running.remove(&row.id).map(|r| r.task) {
            Some(Task::Sink { discard, .. }) => discard.store(true, Ordering::Release),
            Some(Task::Pump(_)) => {}
            None if row.direction == Dir::Incoming && !row.state.is_final() => {
                self.remove_partial(row);
            }
            None => {}
        }
    }

    /// Deletes the partial file of an incoming transfer no sink is writing.
    fn remove_partial(&self, row: &TransferRecord) {
        if let Some(dir) = &row.dest_dir {
            let _ = std::fs::remove_file(files::partial_path(dir, row.id, &FileId(row.file_id)));
        }
    }

    // ----- commands -------------------------------------------------------------

    pub(super) fn send_file(
        &mut self,
        contact: &str,
        file: &SourceFile,
    ) -> Result<TransferView, NodeError> {
        let record = self.contact_named(contact)?;
        let mut file_id = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut file_id);
        let row = self.store.add_outgoing_transfer(&NewOutgoing {
            contact: record.id,
            file_id: &file_id,
            name: &file.name,
            size: file.size,
            hash: &file.hash,
            source_path: &file.path,
            source_mtime_ns: file.mtime_ns,
            now_ms: now_ms(),
        })?;
        if let Some(link) = self.file_link(record.id) {
            self.send_on(link, offer(&row));
        } else if let Some(dial) = self.dials.get_mut(&record.id) {
            dial.hurry();
        }
        Ok(self.transfer_view(&row))
    }

    pub(super) fn transfers(&self, contact: Option<&str>) -> Result<Vec<TransferView>, NodeError> {
        let contact = contact.map(|c| self.contact_named(c)).transpose()?;
        let rows = self.store.transfers(contact.map(|c| c.id))?;
        Ok(rows.iter().map(|row| self.transfer_view(row)).collect())
    }

    pub(super) fn transfer(&self, id: i64) -> Result<TransferView, NodeError> {
        Ok(self.transfer_view(&self.transfer_record(id)?))
    }

    pub(super) fn accept_file(
        &mut self,
        id: i64,
        options: &AcceptFile,
    ) -> Result<TransferView, NodeError> {
        let row = self.incoming_in(id, Stored::Offered)?;
        let dir = options
            .dir
            .clone()
            .unwrap_or_else(|| self.files.config.downloads.clone());
        let dir = std::path::absolute(&dir).map_err(|e| NodeError::BadFile(e.to_string()))?;
        files::ensure_dir(&dir).map_err(|e| {
            NodeError::BadFile(format!("cannot use the directory {}: {e}", dir.display()))
        })?;
        let file_id = FileId(row.file_id);
        let save_name = sanitize_name(options.save_as.as_deref().unwrap_or(&row.name), &file_id);
        let target = dir.join(&save_name);
        if !options.overwrite && target.symlink_metadata().is_ok() {
            return Err(NodeError::FileExists(target.display().to_string()));
        }
        let free = files::free_space(&dir).map_err(|e| NodeError::NoSpace(e.to_string()))?;
        if free < row.size {
            return Err(NodeError::NoSpace(format!(
                "{} needs {} bytes, {} are free",
                dir.display(),
                row.size,
                free
            )));
        }
        let row = self
            .store
            .accept_transfer(id, &dir, &save_name, options.overwrite, now_ms())?;
        if let Some(link) = self.file_link(row.contact) {
            self.start_sink(&row, link);
        }
        Ok(self.transfer_view(&row))
    }

    pub(super) fn decline_file(&mut self, id: i64) -> Result<TransferView, NodeError> {
        let row = self.incoming_in(id, Stored::Offered)?;
        // Told only once the frame is written (`transfer_told`).
        self.send_told(
            row.contact,
            id,
            Message::FileDecline {
                id: FileId(row.file_id),
                reason: DeclineReason::Declined,
            },
        );
        let row = self.store.set_transfer_state(
            id,
            Stored::Declined,
            Some("declined"),
            false,
            now_ms(),
        )?;
        Ok(self.transfer_view(&row))
    }

    pub(super) fn cancel_file(&mut self, id: i64) -> Result<TransferView, NodeError> {
        let row = self.transfer_record(id)?;
        if row.state.is_final() {
            return Err(NodeError::WrongState {
                id,
                state: state_word(row.state),
            });
        }
        let reason = match row.direction {
            Dir::Incoming => CancelReason::ByReceiver,
            Dir::Outgoing => CancelReason::BySender,
        };
        self.stop_and_discard(&row);
        self.send_told(
            row.contact,
            id,
            Message::FileCancel {
                id: FileId(row.file_id),
                reason,
            },
        );
        // Told only once the frame is written (`transfer_told`).
        let row = self.store.set_transfer_state(
            id,
            Stored::Cancelled,
            Some("cancelled"),
            false,
            now_ms(),
        )?;
        Ok(self.transfer_view(&row))
    }

    pub(super) fn resume_file(&mut self, id: i64) -> Result<TransferView, NodeError> {
        self.incoming_in(id, Stored::Paused)?;
        let row = self
            .store
            .set_transfer_state(id, Stored::Accepted, None, true, now_ms())?;
        if let Some(link) = self.file_link(row.contact) {
            self.start_sink(&row, link);
        }
        Ok(self.transfer_view(&row))
    }

    // ----- links ----------------------------------------------------------------

    /// A link where texts may go is up: offer our unfinished files again and
    /// tell what the peer missed.
    pub(super) fn files_link_up(&mut self, link: LinkId, contact: &ContactRecord) {
        let rows = match self.store.unfinished_transfers(contact.id) {
            Ok(rows) => rows,
            Err(e) => {
                self.warn(format!("could not read file transfers: {e}"));
                return;
            }
        };
        for row in rows {
            let file = FileId(row.file_id);
            let message = match (row.direction, row.state) {
                (Dir::Outgoing, Stored::Offered | Stored::Accepted | Stored::Active) => {
                    Some(offer(&row))
                }
                (Dir::Outgoing, Stored::Cancelled | Stored::Failed) if !row.peer_told => {
                    Some(Message::FileCancel {
                        id: file,
                        reason: CancelReason::BySender,
                    })
                }
                (Dir::Incoming, Stored::Declined) if !row.peer_told => Some(Message::FileDecline {
                    id: file,
                    reason: DeclineReason::Declined,
                }),
                (Dir::Incoming, Stored::Cancelled | Stored::Failed) if !row.peer_told => {
                    Some(Message::FileCancel {
                        id: file,
                        reason: CancelReason::ByReceiver,
                    })
                }
                _ => None,
            };
            if let Some(message) = message
                && let Some(live) = self.links.get(&link)
            {
                let written = (!row.peer_told).then_some(Written::Transfer(row.id));
                let _ = live.commands.send(LinkCommand::Send { message, written });
            }
        }
    }

    /// A link ended: its pumps stop (the next link's accept restarts them),
    /// and what they got acknowledged is kept for showing.
    pub(super) fn files_link_closed(&mut self, link: LinkId) {
        let ended: Vec<(i64, u64)> = self
            .files
            .running
            .iter()
            .filter(|(_, run)| matches!(run.task, Task::Pump(_)) && run.link == Some(link))
            .map(|(id, run)| (*id, run.bytes))
            .collect();
        for (id, bytes) in ended {
            self.files.running.remove(&id);
            let chunks = u32::try_from(bytes / CHUNK_LEN as u64).unwrap_or(u32::MAX);
            if let Err(e) = self.store.set_transfer_progress(id, chunks, now_ms()) {
                tracing::debug!("could not store a transfer's progress: {e}");
            }
        }
    }

    /// The contact is being deleted: stop their transfers and remove partials.
    pub(super) fn files_contact_removed(&mut self, contact: i64) {
        let rows = self.store.transfers(Some(contact)).unwrap_or_default();
        for row in rows {
            self.stop_and_discard(&row);
        }
    }

    /// Stopping: sinks sync and their checkpoints are stored; an ephemeral
    /// profile keeps no partial files, since nothing could resume them.
    pub(super) async fn files_shutdown(&mut self) {
        let running: Vec<(i64, Running)> = self.files.running.drain().collect();
        // Every sink syncs at once; together they get a few seconds.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut stopping = Vec::new();
        for (id, run) in running {
            let Task::Sink {
                inputs, discard, ..
            } = run.task
            else {
                continue;
            };
            if self.ephemeral {
                discard.store(true, Ordering::Release);
                continue;
            }
            let (answer, synced) = oneshot::channel();
            let asked = tokio::time::timeout_at(deadline, inputs.send(SinkInput::Stop(answer)));
            if matches!(asked.await, Ok(Ok(()))) {
                stopping.push((id, synced));
            }
        }
        for (id, synced) in stopping {
            let wait = tokio::time::timeout_at(deadline, synced).await;
            if let Ok(Ok(through)) = wait
                && let Err(e) = self.store.set_transfer_progress(id, through, now_ms())
            {
                tracing::debug!("could not store a checkpoint: {e}");
            }
        }
        if self.ephemeral {
            for row in self.store.transfers(None).unwrap_or_default() {
                if row.direction == Dir::Incoming && !row.state.is_final() {
                    self.remove_partial(&row);
                }
            }
        }
    }

    // ----- messages -------------------------------------------------------------

    /// Handles a file message, or gives back any other.
    pub(super) fn file_message(
        &mut self,
        link: LinkId,
        contact: &ContactRecord,
        message: Message,
    ) -> Result<(), Message> {
        if !is_file_message(&message) {
            return Err(message);
        }
        let allowed = self.is_adopted(link, contact)
            && self.links.get(&link).is_some_and(|l| may_send(contact, l));
        if !allowed {
            tracing::debug!("dropped a file message outside an adopted, permitted link");
            return Ok(());
        }
        let mut message = message;
        match &mut message {
            Message::FileOffer {
                id,
                size,
                hash,
                name,
            } => {
                let (id, size, hash, name) = (*id, *size, *hash, std::mem::take(name));
                self.offered(link, contact, id, size, hash, &name);
            }
            &mut Message::FileAccept {
                id,
                attempt,
                resume_from,
                credit_until,
            } => self.accepted(link, contact, id, attempt, resume_from, credit_until),
            &mut Message::FileDecline { id, reason } => self.declined(contact, id, reason),
            Message::FileChunk {
                id,
                attempt,
                index,
                data,
            } => {
                let (id, attempt, index, data) = (*id, *attempt, *index, std::mem::take(data));
                self.chunk(contact, id, attempt, index, data);
            }
            &mut Message::FileAck {
                id,
                attempt,
                through,
                credit_until,
            } => self.acked(contact, id, attempt, through, credit_until),
            &mut Message::FileCancel { id, reason } => self.cancelled_by_peer(contact, id, reason),
            &mut Message::FileDone { id } => self.done(contact, id),
            _ => {}
        }
        Ok(())
    }

    fn row_by_file(&self, contact: i64, direction: Dir, id: FileId) -> Option<TransferRecord> {
        self.store
            .transfer_by_file(contact, direction, &id.0)
            .ok()
            .flatten()
    }

    fn offered(
        &mut self,
        link: LinkId,
        contact: &ContactRecord,
        id: FileId,
        size: u64,
        hash: [u8; 32],
        name: &str,
    ) {
        if let Some(row) = self.row_by_file(contact.id, Dir::Incoming, id) {
            if row.size != size || row.hash != hash {
                self.cancel_on(link, id, CancelReason::Protocol);
                return;
            }
            match row.state {
                Stored::Offered | Stored::Paused => {}
                Stored::Accepted | Stored::Active => self.start_sink(&row, link),
                Stored::Completed => self.send_on(link, Message::FileDone { id }),
                Stored::Declined => self.decline_on(link, id, DeclineReason::Declined),
                Stored::Cancelled | Stored::Failed => {
                    self.cancel_on(link, id, cancel_reason_of(&row));
                }
            }
            return;
        }
        // Refusals are answered, not stored: a contact cannot fill the profile
        // with offers.
        let limit = self.files.config.max_incoming;
        if size > limit {
            self.decline_on(link, id, DeclineReason::TooLarge);
            self.warn(format!(
                "{} offered a file of {size} bytes, more than the limit of {limit}; it was declined",
                contact.name
            ));
            return;
        }
        let waiting = self
            .store
            .transfers(Some(contact.id))
            .map(|rows| {
                rows.iter()
                    .filter(|r| r.direction == Dir::Incoming && r.state == Stored::Offered)
                    .count()
            })
            .unwrap_or(0);
        if waiting >= MAX_WAITING_OFFERS {
            self.decline_on(link, id, DeclineReason::Busy);
            return;
        }
        let stored = self.store.put_incoming_offer(
            contact.id,
            &id.0,
            name,
            size,
            &hash,
            Stored::Offered,
            None,
            now_ms(),
        );
        match stored {
            Ok((row, _)) => self.emit(Event::FileOffered {
                transfer: self.transfer_view(&row),
            }),
            Err(e) => self.warn(format!("could not store a file offer: {e}")),
        }
    }

    /// Starts the transfer's sink, or asks the running one where it stands;
    /// either answers with `Ready`, and the accept goes out then.
    fn start_sink(&mut self, row: &TransferRecord, link: LinkId) {
        let attempt = self.files.next_attempt;
        self.files.next_attempt = self.files.next_attempt.wrapping_add(1);
        if let Some(run) = self.files.running.get_mut(&row.id)
            && let Task::Sink { inputs, .. } = &run.task
        {
            if inputs.try_send(SinkInput::Resume { attempt }).is_ok() {
                run.link = Some(link);
                run.attempt = attempt;
            }
            return;
        }
        let generation = self.files.generation();
        let discard = Arc::new(AtomicBool::new(false));
        let Some(dir) = row.dest_dir.clone() else {
            return;
        };
        let file = FileId(row.file_id);
        let plan = SinkPlan {
            transfer: row.id,
            generation,
            discard: discard.clone(),
            partial: files::partial_path(&dir, row.id, &file),
            dir,
            save_name: row
                .save_name
                .clone()
                .unwrap_or_else(|| sanitize_name(&row.name, &file)),
            overwrite: row.overwrite,
            size: row.size,
            hash: row.hash,
            checkpoint: row.done_chunks,
            attempt,
        };
        let (inputs, rx) = mpsc::channel(SINK_QUEUE);
        files::spawn_sink(plan, rx, self.reports_tx.clone());
        self.files.running.insert(
            row.id,
            Running {
                file,
                contact: row.contact,
                size: row.size,
                link: Some(link),
                attempt,
                generation,
                task: Task::Sink {
                    inputs,
                    discard,
                    credit_until: 0,
                },
                meter: Meter::default(),
                bytes: chunk_bytes(row.size, row.done_chunks),
            },
        );
    }

    fn accepted(
        &mut self,
        link: LinkId,
        contact: &ContactRecord,
        id: FileId,
        attempt: u32,
        resume_from: u32,
        credit_until: u32,
    ) {
        let Some(row) = self.row_by_file(contact.id, Dir::Outgoing, id) else {
            tracing::debug!("an accept for no file of ours");
            return;
        };
        match row.state {
            Stored::Offered | Stored::Accepted | Stored::Active => {}
            Stored::Completed => return,
            _ => {
                self.cancel_on(link, id, CancelReason::BySender);
                return;
            }
        }
        let total = chunk_count(row.size).unwrap_or(0);
        if resume_from > total {
            self.cancel_on(link, id, CancelReason::Protocol);
            return;
        }
        let row = if row.state == Stored::Active {
            row
        } else {
            match self.set_state(row.id, Stored::Active, None, true) {
                Some(row) => row,
                None => return,
            }
        };
        self.files.running.remove(&row.id);
        let (Some(path), Some(mtime_ns)) = (row.source_path.clone(), row.source_mtime_ns) else {
            return;
        };
        let (chunk_tx, chunk_rx) = mpsc::channel(2);
        let (credit_tx, credit_rx) = mpsc::unbounded_channel();
        if let Some(live) = self.links.get(&link) {
            let _ = live.commands.send(LinkCommand::Bulk {
                file: id,
                cells: chunk_frame_cells(row.size),
                chunks: chunk_rx,
            });
        }
        let generation = self.files.generation();
        files::spawn_pump(
            PumpPlan {
                transfer: row.id,
                generation,
                file: id,
                attempt,
                path,
                size: row.size,
                mtime_ns,
                from: resume_from,
                credit_until,
            },
            credit_rx,
            chunk_tx,
            self.reports_tx.clone(),
        );
        let bytes = chunk_bytes(row.size, resume_from);
        let mut meter = Meter::default();
        meter.record(Instant::now(), bytes);
        self.files.running.insert(
            row.id,
            Running {
                file: id,
                contact: contact.id,
                size: row.size,
                link: Some(link),
                attempt,
                generation,
                task: Task::Pump(credit_tx),
                meter,
                bytes,
            },
        );
    }

    fn declined(&mut self, contact: &ContactRecord, id: FileId, reason: DeclineReason) {
        let Some(row) = self.row_by_file(contact.id, Dir::Outgoing, id) else {
            return;
        };
        if row.state.is_final() {
            return;
        }
        self.files.running.remove(&row.id);
        self.set_state(row.id, Stored::Declined, Some(&reason.to_string()), true);
    }

    fn chunk(
        &mut self,
        contact: &ContactRecord,
        id: FileId,
        attempt: u32,
        index: u32,
        data: Vec<u8>,
    ) {
        let Some(transfer) = self.running_for(contact.id, id, Dir::Incoming) else {
            tracing::debug!("dropped a chunk no transfer waits for");
            return;
        };
        let refused = match self.files.running.get(&transfer) {
            Some(Running {
                attempt: current,
                task:
                    Task::Sink {
                        inputs,
                        credit_until,
                        ..
                    },
                ..
            }) => {
                // Past the credit we gave (or more than the queue holds): the
                // sender is broken or hostile.
                (attempt == *current && index >= *credit_until)
                    || inputs
                        .try_send(SinkInput::Chunk {
                            attempt,
                            index,
                            data,
                        })
                        .is_err()
            }
            _ => false,
        };
        if refused {
            self.fail(transfer, CancelReason::Protocol);
        }
    }

    fn acked(
        &mut self,
        contact: &ContactRecord,
        id: FileId,
        attempt: u32,
        through: u32,
        credit_until: u32,
    ) {
        // Acks come every few chunks: the running pump answers them, not the store.
        let Some(transfer) = self.running_for(contact.id, id, Dir::Outgoing) else {
            return;
        };
        let Some(run) = self.files.running.get_mut(&transfer) else {
            return;
        };
        if run.attempt != attempt {
            return;
        }
        if let Task::Pump(credits) = &run.task {
            let _ = credits.send(credit_until);
        }
        let now = Instant::now();
        let size = run.size;
        run.bytes = chunk_bytes(size, through);
        run.meter.record(now, run.bytes);
        let report = run.meter.due(now).then(|| Event::FileProgress {
            id: transfer,
            contact: contact.name.clone(),
            direction: TransferDirection::Outgoing,
            bytes: run.bytes,
            size,
            rate_bps: run.meter.rate(),
            eta_s: run.meter.eta(size),
        });
        if let Some(event) = report {
            self.emit(event);
        }
        if credit_until == through && through < chunk_count(size).unwrap_or(0) {
            tracing::debug!("the receiver paused a transfer");
        }
    }

    fn cancelled_by_peer(&mut self, contact: &ContactRecord, id: FileId, reason: CancelReason) {
        let row = self
            .row_by_file(contact.id, Dir::Incoming, id)
            .or_else(|| self.row_by_file(contact.id, Dir::Outgoing, id));
        let Some(row) = row else {
            return;
        };
        if row.state.is_final() {
            return;
        }
        self.stop_and_discard(&row);
        let (state, text) = match reason {
            CancelReason::BySender | CancelReason::ByReceiver => {
                (Stored::Cancelled, format!("cancelled by {}", contact.name))
            }
            other => (Stored::Failed, other.to_string()),
        };
        self.set_state(row.id, state, Some(&text), true);
    }

    fn done(&mut self, contact: &ContactRecord, id: FileId) {
        let Some(row) = self.row_by_file(contact.id, Dir::Outgoing, id) else {
            return;
        };
        if row.state.is_final() {
            return;
        }
        self.files.running.remove(&row.id);
        match self.store.complete_transfer(row.id, None, now_ms()) {
            Ok(row) => self.emit_state(&row),
            Err(e) => self.warn(format!("could not store a file transfer: {e}")),
        }
    }

    // ----- reports --------------------------------------------------------------

    /// The transfer whose pump (outgoing) or sink (incoming) is at work on
    /// this contact's file.
    fn running_for(&self, contact: i64, file: FileId, direction: Dir) -> Option<i64> {
        self.files
            .running
            .iter()
            .find(|(_, r)| {
                r.contact == contact
                    && r.file == file
                    && match direction {
                        Dir::Incoming => matches!(r.task, Task::Sink { .. }),
                        Dir::Outgoing => matches!(r.task, Task::Pump(_)),
                    }
            })
            .map(|(transfer, _)| *transfer)
    }

    /// Whether `generation` is the pump or sink now at work on `transfer`.
    fn is_current(&self, transfer: i64, generation: u64) -> bool {
        self.files
            .running
            .get(&transfer)
            .is_some_and(|r| r.generation == generation)
    }

    pub(super) fn pump_ended(&mut self, transfer: i64, generation: u64, end: PumpEnd) {
        // Sent or stopped: the receiver's acks and `done` finish the story.
        if let PumpEnd::Failed(reason) = end
            && self.is_current(transfer, generation)
        {
            self.fail(transfer, reason);
        }
    }

    /// The transfer cannot complete: stop it and tell the peer why.
    fn fail(&mut self, transfer: i64, reason: CancelReason) {
        let Ok(row) = self.transfer_record(transfer) else {
            return;
        };
        if row.state.is_final() {
            return;
        }
        self.stop_and_discard(&row);
        self.send_told(
            row.contact,
            transfer,
            Message::FileCancel {
                id: FileId(row.file_id),
                reason,
            },
        );
        self.set_state(transfer, Stored::Failed, Some(&reason.to_string()), false);
    }

    pub(super) fn sink_report(&mut self, transfer: i64, generation: u64, report: SinkReport) {
        let Ok(row) = self.transfer_record(transfer) else {
            return;
        };
        let file = FileId(row.file_id);
        if !self.is_current(transfer, generation) || row.state.is_final() {
            // An earlier sink, or one overtaken by a cancel: only its last
            // checkpoint still counts, and a file it placed meanwhile goes.
            match report {
                SinkReport::Checkpoint { through } if !row.state.is_final() => {
                    self.store_checkpoint(transfer, through);
                }
                SinkReport::Saved(path) if row.state != Stored::Completed => {
                    tracing::debug!("a cancelled transfer's file was removed after all");
                    let _ = std::fs::remove_file(path);
                }
                _ => {}
            }
            return;
        }
        match report {
            SinkReport::Ready { attempt, from } => {
                let Some(run) = self.files.running.get(&transfer) else {
                    return;
                };
                if run.attempt != attempt {
                    return;
                }
                let Some(link) = run.link.filter(|l| self.is_linked(row.contact, *l)) else {
                    return;
                };
                if row.state == Stored::Accepted {
                    self.set_state(transfer, Stored::Active, None, true);
                }
                if let Some(run) = self.files.running.get_mut(&transfer) {
                    run.raise_credit(from);
                    run.bytes = chunk_bytes(row.size, from);
                    run.meter = Meter::default();
                    run.meter.record(Instant::now(), run.bytes);
                }
                self.send_on(
                    link,
                    Message::FileAccept {
                        id: file,
                        attempt,
                        resume_from: from,
                        credit_until: from.saturating_add(CREDIT_CHUNKS),
                    },
                );
            }
            SinkReport::Ack { attempt, through } => {
                let Some(run) = self.files.running.get_mut(&transfer) else {
                    return;
                };
                let now = Instant::now();
                run.bytes = chunk_bytes(row.size, through);
                run.meter.record(now, run.bytes);
                let progress = run
                    .meter
                    .due(now)
                    .then(|| (run.meter.rate(), run.meter.eta(row.size), run.bytes));
                let link = run.link;
                if run.attempt == attempt {
                    run.raise_credit(through);
                }
                if run.attempt == attempt
                    && let Some(link) = link.filter(|l| self.is_linked(row.contact, *l))
                {
                    self.send_on(
                        link,
                        Message::FileAck {
                            id: file,
                            attempt,
                            through,
                            credit_until: through.saturating_add(CREDIT_CHUNKS),
                        },
                    );
                }
                if let Some((rate_bps, eta_s, bytes)) = progress {
                    let contact = self
                        .store
                        .contact(row.contact)
                        .map(|c| c.name)
                        .unwrap_or_default();
                    self.emit(Event::FileProgress {
                        id: transfer,
                        contact,
                        direction: TransferDirection::Incoming,
                        bytes,
                        size: row.size,
                        rate_bps,
                        eta_s,
                    });
                }
            }
            SinkReport::Checkpoint { through } => self.store_checkpoint(transfer, through),
            SinkReport::Saved(path) => {
                let link = self.files.running.remove(&transfer).and_then(|r| r.link);
                match self
                    .store
                    .complete_transfer(transfer, Some(&path), now_ms())
                {
                    Ok(row) => self.emit_state(&row),
                    Err(e) => {
                        self.warn(format!("could not store a file transfer: {e}"));
                        return;
                    }
                }
                if let Some(link) = link.filter(|l| self.is_linked(row.contact, *l)) {
                    self.send_on(link, Message::FileDone { id: file });
                }
            }
            SinkReport::Mismatch => self.fail(transfer, CancelReason::Mismatch),
            SinkReport::Violation => self.fail(transfer, CancelReason::Protocol),
            SinkReport::DiskError { reason, through } => {
                let run = self.files.running.remove(&transfer);
                self.store_checkpoint(transfer, through);
                self.set_state(transfer, Stored::Paused, Some(&reason), true);
                // A closed window holds the sender until `resume_file`.
                if let Some(run) = run
                    && let Some(link) = run.link.filter(|l| self.is_linked(row.contact, *l))
                {
                    self.send_on(
                        link,
                        Message::FileAck {
                            id: file,
                            attempt: run.attempt,
                            through,
                            credit_until: through,
                        },
                    );
                }
            }
        }
    }

    fn store_checkpoint(&mut self, transfer: i64, through: u32) {
        if let Err(e) = self
            .store
            .set_transfer_progress(transfer, through, now_ms())
        {
            tracing::debug!("could not store a checkpoint: {e}");
        }
    }

    /// Whether `link` is still the contact's adopted link.
    fn is_linked(&self, contact: i64, link: LinkId) -> bool {
        self.contacts_online.get(&contact) == Some(&link)
    }
}

/// Why a transfer ended, as the peer is told again: the reason stored in
/// words if it is one of the protocol's, else plain cancelling by our side.
fn cancel_reason_of(row: &TransferRecord) -> CancelReason {
    let stored = row.reason.as_deref().unwrap_or_default();
    (1..=7)
        .map(CancelReason::from_code)
        .find(|r| r.to_string() == stored && row.state == Stored::Failed)
        .unwrap_or(match row.direction {
            Dir::Incoming => CancelReason::ByReceiver,
            Dir::Outgoing => CancelReason::BySender,
        })
}

fn offer(row: &TransferRecord) -> Message {
    Message::FileOffer {
        id: FileId(row.file_id),
        size: row.size,
        hash: row.hash,
        name: row.name.clone(),
    }
}

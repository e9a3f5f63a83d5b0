//! File transfers on the main screen: the Files window (F8), the form that sends a
//! file (F9), and the list of transfers, kept current by the node's events.

use crossterm::event::{KeyCode, KeyEvent};
use nightjar_node::{Event, TransferDirection, TransferState, TransferView};

use super::{App, Dialog, Effect, Field, Form, FormKey, Note};
use crate::cli::clean;
use crate::cli::files::{state_text, state_word};

/// What to do with a transfer that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAction {
    /// Take an offered file, under another name if given.
    Accept {
        save_as: Option<String>,
    },
    Decline,
    Cancel,
    /// Continue a paused incoming file.
    Resume,
}

/// Why the node refused a file request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRefusal {
    pub text: String,
    /// A file of that name is already where the offered one would be saved.
    pub name_taken: bool,
}

/// The Files window: every transfer, newest first.
#[derive(Debug, Default)]
pub struct FilesDialog {
    /// The transfer chosen, by number; the newest when none is.
    pub selected: Option<i64>,
    pub note: Option<Note>,
    /// The ticket of the request under way, and the transfer it is about.
    pub pending: Option<(u64, i64)>,
    /// Cancelling this transfer waits for `y`.
    pub confirm_cancel: Option<i64>,
    /// Another name to save an offered file under, after its own was taken.
    pub save_as: Option<(i64, Form)>,
}

/// The form that offers a file to a contact.
#[derive(Debug)]
pub struct SendFileDialog {
    /// The contact, and the path of the file.
    pub form: Form,
    /// Opened from the Files window, which comes back once the file is offered.
    pub from_files: bool,
}

/// Whether nothing more happens to it.
pub fn finished(state: TransferState) -> bool {
    matches!(
        state,
        TransferState::Completed
            | TransferState::Declined
            | TransferState::Cancelled
            | TransferState::Failed
    )
}

/// An offered file that waits for us.
pub fn waits_for_us(t: &TransferView) -> bool {
    t.direction == TransferDirection::Incoming && t.state == TransferState::Offered
}

/// One status-log line about where a transfer is: the line interface's.
pub fn transfer_line(t: &TransferView) -> String {
    state_text(t, &clean(&t.contact))
}

fn send_form(contact: Option<String>) -> Form {
    let mut to = Field::text("To (a contact's name)");
    let known = contact.is_some();
    if let (Some(name), super::FieldKind::Text(input)) = (contact, &mut to.kind) {
        input.set_text(&name);
    }
    let mut form = Form::new(vec![
        to,
        Field::text("Path of the file (~/ and relative paths work)"),
    ]);
    if known {
        form.focus = 1;
    }
    form
}

fn save_as_form(name: &str) -> Form {
    let mut field = Field::text("Save as");
    if let super::FieldKind::Text(input) = &mut field.kind {
        input.set_text(name);
    }
    Form::new(vec![field])
}

impl App {
    /// Offered files that wait for an answer.
    pub fn offers_waiting(&self) -> usize {
        self.transfers.iter().filter(|t| waits_for_us(t)).count()
    }

    /// Whether `contact` offers a file that waits for an answer.
    pub fn offers_from(&self, contact: &str) -> bool {
        self.transfers
            .iter()
            .any(|t| waits_for_us(t) && t.contact == contact)
    }

    /// The transfers in the order the Files window lists them: newest first.
    pub fn transfers_shown(&self) -> impl Iterator<Item = &TransferView> {
        self.transfers.iter().rev()
    }

    /// The transfer chosen in the Files window. Until one is chosen, the newest
    /// offer waiting, which is what the window is most likely opened for.
    pub fn chosen_transfer(&self, dialog: &FilesDialog) -> Option<&TransferView> {
        let chosen = dialog
            .selected
            .and_then(|id| self.transfers.iter().find(|t| t.id == id));
        chosen
            .or_else(|| self.transfers_shown().find(|t| waits_for_us(t)))
            .or_else(|| self.transfers_shown().next())
    }

    pub(super) fn open_files(&mut self) -> Vec<Effect> {
        self.dialog = Some(Dialog::Files(FilesDialog::default()));
        vec![Effect::LoadTransfers]
    }

    pub(super) fn open_send_file(
        &mut self,
        contact: Option<String>,
        from_files: bool,
    ) -> Vec<Effect> {
        self.dialog = Some(Dialog::SendFile(SendFileDialog {
            form: send_form(contact),
            from_files,
        }));
        Vec::new()
    }

    /// Takes a transfer as the node reports it now.
    fn remember(&mut self, transfer: &TransferView) {
        match self.transfers.iter_mut().find(|t| t.id == transfer.id) {
            Some(known) => *known = transfer.clone(),
            None => self.transfers.push(transfer.clone()),
        }
    }

    /// The node's file events; false for other events.
    pub(super) fn on_file_event(&mut self, event: &Event) -> bool {
        match event {
            Event::FileOffered { transfer } => {
                self.remember(transfer);
                self.notice = Some(format!(
                    "{} offers a file: F8 to accept or decline it",
                    clean(&transfer.contact)
                ));
            }
            Event::FileState { transfer } => self.remember(transfer),
            Event::FileProgress {
                id,
                bytes,
                size,
                rate_bps,
                eta_s,
                ..
            } => {
                if let Some(t) = self.transfers.iter_mut().find(|t| t.id == *id) {
                    t.bytes_done = *bytes;
                    t.size = *size;
                    t.rate_bps = *rate_bps;
                    t.eta_s = *eta_s;
                    if t.state == TransferState::Accepted {
                        t.state = TransferState::Active;
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// The transfers as the node listed them.
    pub(super) fn transfers_loaded(&mut self, transfers: Vec<TransferView>) {
        self.transfers = transfers;
    }

    /// Shows the answer to a file request in the window that asked, or else in
    /// the status log.
    pub(super) fn file_answer(&mut self, ticket: u64, result: Result<TransferView, FileRefusal>) {
        let line = match &result {
            Ok(t) => transfer_line(t),
            Err(e) => format!("error: {}", clean(&e.text)),
        };
        if let Ok(t) = &result
            && !self.transfers.iter().any(|known| known.id == t.id)
        {
            // A new offer of ours. Known ones follow the events, which may
            // already be further along than this answer.
            self.transfers.push(t.clone());
        }
        match self.dialog.take() {
            Some(Dialog::Files(mut d)) if d.pending.is_some_and(|(t, _)| t == ticket) => {
                let id = d.pending.take().map(|(_, id)| id).unwrap_or_default();
                match result {
                    Ok(t) => {
                        d.note = Some(Note::Success(transfer_line(&t)));
                        d.save_as = None;
                    }
                    Err(e) => {
                        if e.name_taken && d.save_as.is_none() {
                            let name = self
                                .transfers
                                .iter()
                                .find(|t| t.id == id)
                                .map(|t| clean(t.save_name.as_deref().unwrap_or(&t.name)))
                                .unwrap_or_default();
                            d.save_as = Some((id, save_as_form(&name)));
                        } else if !e.name_taken {
                            d.save_as = None;
                        }
                        d.note = Some(Note::Error(e.text));
                    }
                }
                self.dialog = Some(Dialog::Files(d));
            }
            Some(Dialog::SendFile(mut s)) if s.form.waits_for(ticket) => match result {
                Ok(t) if s.from_files => {
                    self.dialog = Some(Dialog::Files(FilesDialog {
                        selected: Some(t.id),
                        note: Some(Note::Success(transfer_line(&t))),
                        ..FilesDialog::default()
                    }));
                }
                result => {
                    s.form.answered(result.map_err(|e| e.text), |t| {
                        format!("{}; F8 follows it (Esc closes)", transfer_line(&t))
                    });
                    self.dialog = Some(Dialog::SendFile(s));
                }
            },
            other => {
                self.dialog = other;
                self.push_log(vec![line]);
            }
        }
    }

    pub(super) fn files_key(&mut self, mut d: FilesDialog, key: KeyEvent) -> Vec<Effect> {
        let effects = if let Some((id, form)) = d.save_as.take() {
            self.save_as_key(&mut d, id, form, key)
        } else if let Some(id) = d.confirm_cancel.take() {
            if key.code == KeyCode::Char('y') && d.pending.is_none() {
                self.file_request(&mut d, id, FileAction::Cancel, format!("cancelling #{id}…"))
            } else {
                d.note = None;
                Vec::new()
            }
        } else {
            match key.code {
                KeyCode::Esc => return Vec::new(),
                KeyCode::Char('s') => {
                    let contact = self
                        .chosen_transfer(&d)
                        .map(|t| t.contact.clone())
                        .or_else(|| self.selected_name());
                    return self.open_send_file(contact, true);
                }
                KeyCode::Up | KeyCode::Down => {
                    self.move_transfer(&mut d, key.code == KeyCode::Down);
                    Vec::new()
                }
                KeyCode::Char(c @ ('a' | 'd' | 'c' | 'r')) => self.transfer_key(&mut d, c),
                _ => Vec::new(),
            }
        };
        self.dialog = Some(Dialog::Files(d));
        effects
    }

    fn move_transfer(&self, d: &mut FilesDialog, down: bool) {
        let ids: Vec<i64> = self.transfers_shown().map(|t| t.id).collect();
        let at = self
            .chosen_transfer(d)
            .and_then(|c| ids.iter().position(|id| *id == c.id))
            .unwrap_or(0);
        let next = if down {
            (at + 1).min(ids.len().saturating_sub(1))
        } else {
            at.saturating_sub(1)
        };
        d.selected = ids.get(next).copied();
        d.note = None;
    }

    /// `a`, `d`, `c` or `r` on the chosen transfer.
    fn transfer_key(&mut self, d: &mut FilesDialog, key: char) -> Vec<Effect> {
        if d.pending.is_some() {
            return Vec::new();
        }
        let Some((id, offered, state)) = self
            .chosen_transfer(d)
            .map(|t| (t.id, waits_for_us(t), t.state))
        else {
            return Vec::new();
        };
        let refuse = |d: &mut FilesDialog, why: String| {
            d.note = Some(Note::Error(why));
            Vec::new()
        };
        let word = state_word(state);
        match key {
            'a' if offered => self.file_request(
                d,
                id,
                FileAction::Accept { save_as: None },
                format!("accepting #{id}…"),
            ),
            'd' if offered => {
                self.file_request(d, id, FileAction::Decline, format!("declining #{id}…"))
            }
            'a' | 'd' => refuse(
                d,
                format!("#{id} is {word}: only a file offered to you is accepted or declined"),
            ),
            'r' if state == TransferState::Paused => {
                self.file_request(d, id, FileAction::Resume, format!("resuming #{id}…"))
            }
            'r' => refuse(d, format!("#{id} is {word}: only a paused file is resumed")),
            _ if finished(state) => refuse(d, format!("#{id} is {word} already")),
            _ => {
                d.confirm_cancel = Some(id);
                d.note = Some(Note::Working(format!(
                    "cancel #{id} for good (a partial file is deleted)? y cancels it, any other \
                     key keeps it"
                )));
                Vec::new()
            }
        }
    }

    fn file_request(
        &mut self,
        d: &mut FilesDialog,
        id: i64,
        action: FileAction,
        working: String,
    ) -> Vec<Effect> {
        let ticket = self.ticket();
        d.pending = Some((ticket, id));
        d.note = Some(Note::Working(working));
        vec![Effect::FileAction { ticket, id, action }]
    }

    fn save_as_key(
        &mut self,
        d: &mut FilesDialog,
        id: i64,
        mut form: Form,
        key: KeyEvent,
    ) -> Vec<Effect> {
        match form.key(key) {
            FormKey::Cancel => {
                d.note = None;
                return Vec::new();
            }
            FormKey::Handled => {}
            FormKey::Submit if d.pending.is_some() => {}
            FormKey::Submit => {
                let name = form.value(0).to_owned();
                if name.is_empty() {
                    d.note = Some(Note::Error("a name to save the file under".into()));
                } else {
                    let working = format!("accepting #{id} as \"{}\"…", clean(&name));
                    let action = FileAction::Accept {
                        save_as: Some(name),
                    };
                    d.save_as = Some((id, form));
                    return self.file_request(d, id, action, working);
                }
            }
        }
        d.save_as = Some((id, form));
        Vec::new()
    }

    pub(super) fn send_file_key(&mut self, mut s: SendFileDialog, key: KeyEvent) -> Vec<Effect> {
        match s.form.key(key) {
            FormKey::Cancel if s.from_files => {
                self.dialog = Some(Dialog::Files(FilesDialog::default()));
                Vec::new()
            }
            FormKey::Cancel => Vec::new(),
            // Enter once the file is offered closes the window.
            FormKey::Handled
                if key.code == KeyCode::Enter && matches!(s.form.note, Some(Note::Success(_))) =>
            {
                Vec::new()
            }
            FormKey::Handled => {
                self.dialog = Some(Dialog::SendFile(s));
                Vec::new()
            }
            FormKey::Submit => {
                let contact = s.form.value(0).to_owned();
                let path = s.form.value(1).to_owned();
                if contact.is_empty() || path.is_empty() {
                    s.form.note = Some(Note::Error(
                        "a contact's name and the path of a file".into(),
                    ));
                    self.dialog = Some(Dialog::SendFile(s));
                    return Vec::new();
                }
                let ticket = self.ticket();
                s.form.sent(
                    ticket,
                    "reading the file and offering it (large files take a while)…",
                );
                self.dialog = Some(Dialog::SendFile(s));
                vec![Effect::SendFile {
                    ticket,
                    contact,
                    path,
                }]
            }
        }
    }
}

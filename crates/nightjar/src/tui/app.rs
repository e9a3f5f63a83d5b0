//! The main screen's state: what is shown, and what each key does.
//!
//! Nothing here touches the node or the terminal. Keys and node events go in;
//! [`Effect`]s come out for the driver to carry out, and their results come back
//! as [`Done`]. That keeps every screen and dialog testable on its own.
//!
//! A dialog's request carries a ticket; its answer is shown in the dialog only if
//! that dialog is still open and waiting for that ticket. Any other answer goes to
//! the status log, so nothing is lost when a window was closed meanwhile.

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use nightjar_node::{
    AuthOutcome, ContactView, Event, InviteView, MessageView, ProfileInfo, RequestDirection,
    RequestView, TransferView,
};
use zeroize::Zeroizing;

use super::complete::Tab;
use super::input::{InputHistory, InputOutcome, LineInput};
use crate::cli::clean;

mod files;

pub use files::{FileAction, FileRefusal, FilesDialog, SendFileDialog};

/// How many messages of a conversation are loaded.
pub const HISTORY_LOADED: usize = 500;

/// How many lines of the status log are kept.
const LOG_KEPT: usize = 1000;

/// Text that may hold a secret (a typed line, a shared secret, an invite code):
/// wiped when dropped, and never shown by `Debug`.
pub struct Secret(pub Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    fn new(text: &str) -> Self {
        Self(Zeroizing::new(text.to_owned()))
    }
}

/// What the driver should do.
#[derive(Debug)]
pub enum Effect {
    /// Fetch the contacts and requests again.
    Refresh,
    /// Fetch a conversation (which also marks it read).
    LoadHistory(String),
    /// Run a line of the line interface, with `current` as the peer lines
    /// without a slash go to.
    RunLine {
        line: Secret,
        current: Option<String>,
    },
    SendRequest {
        ticket: u64,
        address: String,
        name: String,
        greeting: String,
    },
    Accept {
        ticket: u64,
        id: i64,
        name: String,
    },
    Decline {
        ticket: u64,
        id: i64,
    },
    CreateInvite {
        ticket: u64,
        name: String,
        require_auth: bool,
    },
    JoinInvite {
        ticket: u64,
        code: Secret,
        name: String,
        require_auth: bool,
    },
    Authenticate {
        ticket: u64,
        name: String,
        secret: Secret,
        question: Option<String>,
    },
    AbortAuth(String),
    Verify {
        ticket: u64,
        name: String,
        fingerprint: String,
    },
    /// Fetch every file transfer.
    LoadTransfers,
    /// Offer the file at `path` (as typed) to `contact`.
    SendFile {
        ticket: u64,
        contact: String,
        path: String,
    },
    /// Accept, decline, cancel or resume transfer `id`.
    FileAction {
        ticket: u64,
        id: i64,
        action: FileAction,
    },
    /// Leave: stop the node (telling contacts) and restore the terminal.
    Quit,
}

/// The answer to a dialog's request.
#[derive(Debug)]
pub enum Answer {
    RequestSent(Result<RequestView, String>),
    Accepted(Result<ContactView, String>),
    Declined(Result<i64, String>),
    InviteCreated(Result<InviteView, String>),
    Joined(Result<ContactView, String>),
    AuthStarted(Result<(), String>),
    Verified(Result<ContactView, String>),
    /// A file offered, accepted, declined, cancelled or resumed.
    File(Result<TransferView, FileRefusal>),
}

impl Answer {
    /// The answer as a status-log line, for when its window is gone.
    fn log_line(&self) -> String {
        let result = |r: Result<String, &String>| match r {
            Ok(text) => text,
            Err(e) => format!("error: {}", clean(e)),
        };
        match self {
            Self::RequestSent(r) => result(r.as_ref().map(|r| format!("request #{} sent", r.id))),
            Self::Accepted(r) => result(
                r.as_ref()
                    .map(|c| format!("request accepted: {}", clean(&c.name))),
            ),
            Self::Declined(r) => result(r.as_ref().map(|id| format!("request #{id} declined"))),
            Self::InviteCreated(r) => result(r.as_ref().map(invite_line)),
            Self::Joined(r) => result(
                r.as_ref()
                    .map(|c| format!("invite joined: {} is verified", clean(&c.name))),
            ),
            Self::AuthStarted(r) => result(
                r.as_ref()
                    .map(|()| "authentication started; waiting for the result".to_owned()),
            ),
            Self::Verified(r) => result(
                r.as_ref()
                    .map(|c| format!("{} is verified", clean(&c.name))),
            ),
            Self::File(r) => match r {
                Ok(t) => files::transfer_line(t),
                Err(e) => format!("error: {}", clean(&e.text)),
            },
        }
    }
}

/// How the line interface reports a new invite code.
fn invite_line(invite: &InviteView) -> String {
    format!(
        "invite code for {}: {} (valid {} minutes; they type /join {} NAME)",
        clean(&invite.name),
        invite.code,
        invite.valid_for_s / 60,
        invite.code
    )
}

/// What the driver reports back.
#[derive(Debug)]
pub enum Done {
    Info(ProfileInfo),
    Contacts(Vec<ContactView>),
    Requests(Vec<RequestView>),
    History(String, Vec<MessageView>),
    /// Every file transfer, oldest first.
    Transfers(Vec<TransferView>),
    /// Lines the line interface printed about events.
    Log(Vec<String>),
    /// Lines a command typed on the input line printed.
    Output(Vec<String>),
    /// A line has run. It was sent with `sent_with` as the current peer; the line
    /// interface's current peer is now `current` (`/peer` and `/delete` change it).
    LineRan {
        sent_with: Option<String>,
        current: Option<String>,
    },
    /// The answer to the dialog request with this ticket.
    Answer {
        ticket: u64,
        answer: Answer,
    },
}

/// Which conversation is on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The status log: what the line interface prints.
    Status,
    Contact(String),
}

/// One field of a form.
#[derive(Debug)]
pub struct Field {
    pub label: &'static str,
    pub kind: FieldKind,
}

#[derive(Debug)]
pub enum FieldKind {
    Text(LineInput),
    /// A yes/no choice, toggled with Space.
    Toggle(bool),
}

impl Field {
    fn text(label: &'static str) -> Self {
        Self {
            label,
            kind: FieldKind::Text(LineInput::new()),
        }
    }

    fn secret(label: &'static str) -> Self {
        Self {
            label,
            kind: FieldKind::Text(LineInput::masked()),
        }
    }

    fn toggle(label: &'static str) -> Self {
        Self {
            label,
            kind: FieldKind::Toggle(false),
        }
    }

    fn value(&self) -> &str {
        match &self.kind {
            FieldKind::Text(input) => input.text().trim(),
            FieldKind::Toggle(_) => "",
        }
    }

    fn on(&self) -> bool {
        matches!(self.kind, FieldKind::Toggle(true))
    }
}

/// A few fields, one of them focused; Enter on the last one submits.
#[derive(Debug)]
pub struct Form {
    pub fields: Vec<Field>,
    pub focus: usize,
    /// Why the last submission was refused, or what is happening.
    pub note: Option<Note>,
    /// The ticket of the request this form is waiting for.
    pub pending: Option<u64>,
}

/// A line under a form: an error, progress, or good news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Error(String),
    Working(String),
    Success(String),
}

/// What a key did to a form.
#[derive(Debug, PartialEq, Eq)]
enum FormKey {
    Submit,
    Cancel,
    Handled,
}

impl Form {
    fn new(fields: Vec<Field>) -> Self {
        Self {
            fields,
            focus: 0,
            note: None,
            pending: None,
        }
    }

    /// Sent, or done: Enter does not send it again.
    fn settled(&self) -> bool {
        self.pending.is_some() || matches!(self.note, Some(Note::Success(_)))
    }

    fn key(&mut self, key: KeyEvent) -> FormKey {
        let last = self.fields.len().saturating_sub(1);
        match key.code {
            KeyCode::Esc => return FormKey::Cancel,
            KeyCode::Tab | KeyCode::Down => {
                self.focus = (self.focus + 1).min(last);
                return FormKey::Handled;
            }
            KeyCode::BackTab | KeyCode::Up => {
                self.focus = self.focus.saturating_sub(1);
                return FormKey::Handled;
            }
            KeyCode::Enter if self.settled() => return FormKey::Handled,
            KeyCode::Enter if self.focus < last => {
                self.focus += 1;
                return FormKey::Handled;
            }
            KeyCode::Enter => return FormKey::Submit,
            _ => {}
        }
        if self.settled() {
            return FormKey::Handled;
        }
        let Some(field) = self.fields.get_mut(self.focus) else {
            return FormKey::Handled;
        };
        match &mut field.kind {
            FieldKind::Toggle(on) => {
                if key.code == KeyCode::Char(' ') {
                    *on = !*on;
                }
            }
            FieldKind::Text(input) => {
                // Enter and Esc were handled above.
                let _ = input.handle(key);
            }
        }
        FormKey::Handled
    }

    /// Marks the form sent, waiting for `ticket`.
    fn sent(&mut self, ticket: u64, working: &str) {
        self.pending = Some(ticket);
        self.note = Some(Note::Working(working.to_owned()));
    }

    /// Shows the answer to the request it waited for.
    fn answered<T>(&mut self, result: Result<T, String>, success: impl FnOnce(T) -> String) {
        self.pending = None;
        self.note = Some(match result {
            Ok(value) => Note::Success(success(value)),
            Err(e) => Note::Error(e),
        });
    }

    fn waits_for(&self, ticket: u64) -> bool {
        self.pending == Some(ticket)
    }

    fn value(&self, index: usize) -> &str {
        self.fields.get(index).map(Field::value).unwrap_or_default()
    }

    fn on(&self, index: usize) -> bool {
        self.fields.get(index).is_some_and(Field::on)
    }

    fn secret(&self, index: usize) -> Secret {
        Secret::new(self.value(index))
    }
}

/// Invite codes: make one to read out, or type one read to you.
#[derive(Debug)]
pub enum InviteDialog {
    /// Choosing between the two.
    Choose { join: bool },
    /// Name (and whether to require authentication) for a code we make.
    Show(Form),
    /// The code is made; waiting for the other side.
    Waiting {
        invite: InviteView,
        outcome: Option<Note>,
    },
    /// Code, name, require authentication.
    Join(Form),
}

/// Where a shared-secret authentication is.
#[derive(Debug)]
pub struct AuthDialog {
    pub contact: String,
    /// The contact asked us, with this question (if any).
    pub asked: Option<Option<String>>,
    /// Question (when we ask) and secret.
    pub form: Form,
    pub outcome: Option<AuthOutcome>,
}

/// Comparing fingerprints with a contact.
#[derive(Debug)]
pub struct VerifyDialog {
    pub contact: String,
    pub mine: String,
    pub theirs: String,
    /// What they read out to us.
    pub form: Form,
}

/// The requests list; Enter accepts (after naming), `d` declines.
#[derive(Debug)]
pub struct RequestsDialog {
    pub selected: usize,
    /// Naming the contact of request `id` before accepting it.
    pub naming: Option<(i64, Form)>,
    pub note: Option<Note>,
    /// The ticket of the accept or decline under way.
    pub pending: Option<u64>,
}

/// A window over the main screen.
#[derive(Debug)]
pub enum Dialog {
    /// Ask someone to become a contact: address, name, greeting.
    AddContact(Form),
    Invite(InviteDialog),
    Auth(AuthDialog),
    Verify(VerifyDialog),
    /// Our address, fingerprint and QR code.
    Address,
    Requests(RequestsDialog),
    /// File transfers both ways: accept, decline, cancel, resume.
    Files(FilesDialog),
    /// Offer a file to a contact.
    SendFile(SendFileDialog),
    /// Keys and commands, scrolled down this many lines.
    Help {
        scroll: u16,
    },
    /// What a command printed, when its conversation hides the status log.
    Output(Vec<String>),
}

/// One line of the status log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine(pub String);

/// The main screen.
pub struct App {
    /// "profile NAME" or "ephemeral profile".
    pub profile: String,
    pub info: Option<ProfileInfo>,
    pub contacts: Vec<ContactView>,
    pub requests: Vec<RequestView>,
    /// File transfers both ways, oldest first.
    pub transfers: Vec<TransferView>,
    pub selection: Selection,
    /// Loaded conversations, oldest first.
    pub conversations: HashMap<String, Vec<MessageView>>,
    pub log: Vec<LogLine>,
    /// Log lines not seen yet (the status log is not on screen).
    pub unseen_log: usize,
    pub input: LineInput,
    pub tab: Tab,
    pub history: InputHistory,
    /// How many lines the conversation is scrolled up from its end.
    pub scroll: usize,
    pub dialog: Option<Dialog>,
    /// Contacts that asked us to authenticate, with their question.
    pub asked: HashMap<String, Option<String>>,
    /// Whether the node reported its services published.
    pub online: bool,
    /// The newest thing worth a glance, in the bottom bar.
    pub notice: Option<String>,
    /// Lines sent to the line interface and not finished yet.
    pub running: usize,
    /// The last ticket given to a dialog's request.
    tickets: u64,
}

/// Conversations and typed lines are not for logs.
impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("contacts", &self.contacts.len())
            .field("dialog", &self.dialog.is_some())
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(profile: String) -> Self {
        Self {
            profile,
            info: None,
            contacts: Vec::new(),
            requests: Vec::new(),
            transfers: Vec::new(),
            selection: Selection::Status,
            conversations: HashMap::new(),
            log: Vec::new(),
            unseen_log: 0,
            input: LineInput::new(),
            tab: Tab::new(),
            history: InputHistory::new(),
            scroll: 0,
            dialog: None,
            asked: HashMap::new(),
            online: false,
            notice: None,
            running: 0,
            tickets: 0,
        }
    }

    fn ticket(&mut self) -> u64 {
        self.tickets += 1;
        self.tickets
    }

    /// The contact on screen, if any.
    pub fn selected_contact(&self) -> Option<&ContactView> {
        match &self.selection {
            Selection::Contact(name) => self.contacts.iter().find(|c| &c.name == name),
            Selection::Status => None,
        }
    }

    fn selected_name(&self) -> Option<String> {
        match &self.selection {
            Selection::Contact(name) => Some(name.clone()),
            Selection::Status => None,
        }
    }

    /// Incoming requests, which wait for us.
    pub fn incoming(&self) -> impl Iterator<Item = &RequestView> {
        self.requests
            .iter()
            .filter(|r| r.direction == RequestDirection::Incoming)
    }

    fn contact_names(&self) -> Vec<String> {
        self.contacts.iter().map(|c| c.name.clone()).collect()
    }

    fn select(&mut self, selection: Selection) -> Vec<Effect> {
        if self.selection == selection {
            return Vec::new();
        }
        self.selection = selection;
        self.scroll = 0;
        match &self.selection {
            Selection::Contact(name) => vec![Effect::LoadHistory(name.clone())],
            Selection::Status => {
                self.unseen_log = 0;
                Vec::new()
            }
        }
    }

    /// The conversations in the order the contacts pane shows them: the status
    /// log first, then contacts.
    fn entries(&self) -> Vec<Selection> {
        std::iter::once(Selection::Status)
            .chain(
                self.contacts
                    .iter()
                    .map(|c| Selection::Contact(c.name.clone())),
            )
            .collect()
    }

    fn move_selection(&mut self, down: bool) -> Vec<Effect> {
        let entries = self.entries();
        let at = entries
            .iter()
            .position(|e| *e == self.selection)
            .unwrap_or(0);
        let next = if down {
            (at + 1) % entries.len()
        } else {
            (at + entries.len() - 1) % entries.len()
        };
        match entries.into_iter().nth(next) {
            Some(selection) => self.select(selection),
            None => Vec::new(),
        }
    }

    fn push_log(&mut self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        if let Some(last) = lines.last() {
            self.notice = Some(last.clone());
        }
        if self.selection != Selection::Status {
            self.unseen_log += lines.len();
        }
        self.log.extend(lines.into_iter().map(LogLine));
        let excess = self.log.len().saturating_sub(LOG_KEPT);
        self.log.drain(..excess);
    }

    /// How many lines the view on screen has (an upper bound for scrolling).
    fn lines_on_screen(&self) -> usize {
        match &self.selection {
            Selection::Status => self.log.len(),
            Selection::Contact(_) => self.conversation().len(),
        }
    }

    /// A key pressed on the main screen or in a dialog.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q')) {
            return vec![Effect::Quit];
        }
        if let Some(dialog) = self.dialog.take() {
            return self.dialog_key(dialog, key);
        }
        if key.code != KeyCode::Tab {
            self.tab.reset();
        }
        match key.code {
            KeyCode::F(1) => return self.open(Dialog::Help { scroll: 0 }),
            // On the status log lines are commands, which never start with '?'.
            KeyCode::Char('?') if self.input.is_empty() && self.selection == Selection::Status => {
                return self.open(Dialog::Help { scroll: 0 });
            }
            KeyCode::F(2) => return self.open(Dialog::AddContact(add_contact_form())),
            KeyCode::F(3) => {
                return self.open(Dialog::Invite(InviteDialog::Choose { join: false }));
            }
            KeyCode::F(4) => return self.open_auth(),
            KeyCode::F(5) => return self.open_verify(),
            KeyCode::F(6) => return self.open(Dialog::Address),
            KeyCode::F(7) => return self.open_requests(),
            KeyCode::F(8) => return self.open_files(),
            KeyCode::F(9) => return self.open_send_file(self.selected_name(), false),
            KeyCode::Char('n') if ctrl => return self.move_selection(true),
            KeyCode::Char('p') if ctrl => return self.move_selection(false),
            KeyCode::Down if key.modifiers.contains(KeyModifiers::ALT) => {
                return self.move_selection(true);
            }
            KeyCode::Up if key.modifiers.contains(KeyModifiers::ALT) => {
                return self.move_selection(false);
            }
            KeyCode::PageUp => {
                self.scroll = (self.scroll + 10).min(self.lines_on_screen());
                return Vec::new();
            }
            KeyCode::PageDown => {
                self.scroll = self.scroll.saturating_sub(10);
                return Vec::new();
            }
            KeyCode::Up => {
                if let Some(line) = self.history.up(self.input.text()) {
                    self.input.set_text(&line);
                }
                return Vec::new();
            }
            KeyCode::Down => {
                if let Some(line) = self.history.down() {
                    self.input.set_text(&line);
                }
                return Vec::new();
            }
            KeyCode::Tab => {
                let names = self.contact_names();
                let line = self.tab.press(self.input.text(), &names);
                self.input.set_text(&line);
                return Vec::new();
            }
            _ => {}
        }
        match self.input.handle(key) {
            InputOutcome::Submit(line) => self.submit(&line),
            InputOutcome::Cancel => {
                self.input.clear();
                Vec::new()
            }
            InputOutcome::Edited | InputOutcome::Ignored => Vec::new(),
        }
    }

    fn open(&mut self, dialog: Dialog) -> Vec<Effect> {
        let refresh = matches!(dialog, Dialog::Requests(_));
        self.dialog = Some(dialog);
        if refresh {
            vec![Effect::Refresh]
        } else {
            Vec::new()
        }
    }

    fn open_requests(&mut self) -> Vec<Effect> {
        self.open(Dialog::Requests(RequestsDialog {
            selected: 0,
            naming: None,
            note: None,
            pending: None,
        }))
    }

    fn open_auth(&mut self) -> Vec<Effect> {
        let Some(contact) = self.selected_name() else {
            self.notice = Some("choose a contact first (Ctrl-N / Ctrl-P)".into());
            return Vec::new();
        };
        let asked = self.asked.get(&contact).cloned();
        let fields = if asked.is_some() {
            vec![Field::secret("Secret")]
        } else {
            vec![Field::text("Question (optional)"), Field::secret("Secret")]
        };
        self.open(Dialog::Auth(AuthDialog {
            contact,
            asked,
            form: Form::new(fields),
            outcome: None,
        }))
    }

    fn open_verify(&mut self) -> Vec<Effect> {
        let Some(contact) = self.selected_contact().cloned() else {
            self.notice = Some("choose a contact first (Ctrl-N / Ctrl-P)".into());
            return Vec::new();
        };
        let mine = self
            .info
            .as_ref()
            .map(|i| i.fingerprint.clone())
            .unwrap_or_default();
        self.open(Dialog::Verify(VerifyDialog {
            contact: contact.name,
            mine,
            theirs: contact.fingerprint,
            form: Form::new(vec![Field::text("Fingerprint they read to you")]),
        }))
    }

    /// A line typed on the main screen.
    fn submit(&mut self, line: &str) -> Vec<Effect> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        let word = line.split_whitespace().next().unwrap_or_default();
        // Lines that hold a secret are not kept for Up.
        if !matches!(word, "/auth" | "/join") {
            self.history.push(line);
        }
        self.scroll = 0;
        let bare = !line.contains(char::is_whitespace);
        match word {
            "/help" => return self.open(Dialog::Help { scroll: 0 }),
            "/quit" | "/exit" => return vec![Effect::Quit],
            // Commands that have a window open it when typed alone.
            "/req-send" if bare => return self.open(Dialog::AddContact(add_contact_form())),
            "/invite" if bare => {
                return self.open(Dialog::Invite(InviteDialog::Show(invite_form())));
            }
            "/join" if bare => return self.open(Dialog::Invite(InviteDialog::Join(join_form()))),
            "/auth" if bare => return self.open_auth(),
            "/verify" if bare => return self.open_verify(),
            "/requests" if bare => return self.open_requests(),
            "/files" if bare => return self.open_files(),
            "/send-file" if bare => return self.open_send_file(self.selected_name(), false),
            _ => {}
        }
        if !line.starts_with('/') && self.selection == Selection::Status {
            self.notice =
                Some("choose a contact (Ctrl-N / Ctrl-P) to talk to, or type a /command".into());
            return Vec::new();
        }
        self.running += 1;
        vec![Effect::RunLine {
            line: Secret::new(line),
            current: self.selected_name(),
        }]
    }

    fn dialog_key(&mut self, dialog: Dialog, key: KeyEvent) -> Vec<Effect> {
        match dialog {
            Dialog::Help { scroll } => {
                let scroll = match key.code {
                    KeyCode::Down => scroll.saturating_add(1),
                    KeyCode::Up => scroll.saturating_sub(1),
                    KeyCode::PageDown | KeyCode::Char(' ') => scroll.saturating_add(10),
                    KeyCode::PageUp => scroll.saturating_sub(10),
                    // Any other key closes it.
                    _ => return Vec::new(),
                };
                self.dialog = Some(Dialog::Help { scroll });
                Vec::new()
            }
            // Any key closes them.
            Dialog::Address | Dialog::Output(_) => Vec::new(),
            Dialog::AddContact(mut form) => match form.key(key) {
                FormKey::Cancel => Vec::new(),
                // Enter after the request went out closes the window.
                FormKey::Handled
                    if key.code == KeyCode::Enter
                        && matches!(form.note, Some(Note::Success(_))) =>
                {
                    Vec::new()
                }
                FormKey::Handled => {
                    self.dialog = Some(Dialog::AddContact(form));
                    Vec::new()
                }
                FormKey::Submit => {
                    let (address, name) = (form.value(0).to_owned(), form.value(1).to_owned());
                    let greeting = form.value(2).to_owned();
                    if address.is_empty() || name.is_empty() {
                        form.note = Some(Note::Error(
                            "an address (nj1…) and a name are needed".into(),
                        ));
                        self.dialog = Some(Dialog::AddContact(form));
                        return Vec::new();
                    }
                    let ticket = self.ticket();
                    form.sent(ticket, "sending the request…");
                    self.dialog = Some(Dialog::AddContact(form));
                    vec![Effect::SendRequest {
                        ticket,
                        address,
                        name,
                        greeting,
                    }]
                }
            },
            Dialog::Invite(invite) => self.invite_key(invite, key),
            Dialog::Auth(mut auth) => {
                if auth.outcome.is_some() {
                    return Vec::new();
                }
                match auth.form.key(key) {
                    FormKey::Cancel => {
                        // Closing the window while waiting gives up the run.
                        if matches!(auth.form.note, Some(Note::Working(_))) {
                            vec![Effect::AbortAuth(auth.contact)]
                        } else {
                            Vec::new()
                        }
                    }
                    FormKey::Handled => {
                        self.dialog = Some(Dialog::Auth(auth));
                        Vec::new()
                    }
                    FormKey::Submit => {
                        let (question, secret) = if auth.asked.is_some() {
                            (None, auth.form.secret(0))
                        } else {
                            let q = auth.form.value(0);
                            ((!q.is_empty()).then(|| q.to_owned()), auth.form.secret(1))
                        };
                        if secret.0.is_empty() {
                            auth.form.note =
                                Some(Note::Error("type the secret you both know".into()));
                            self.dialog = Some(Dialog::Auth(auth));
                            return Vec::new();
                        }
                        let ticket = self.ticket();
                        let working = format!("waiting for {}… (Esc gives up)", auth.contact);
                        auth.form.sent(ticket, &working);
                        let name = auth.contact.clone();
                        self.dialog = Some(Dialog::Auth(auth));
                        vec![Effect::Authenticate {
                            ticket,
                            name,
                            secret,
                            question,
                        }]
                    }
                }
            }
            Dialog::Verify(mut verify) => match verify.form.key(key) {
                FormKey::Cancel => Vec::new(),
                FormKey::Handled => {
                    self.dialog = Some(Dialog::Verify(verify));
                    Vec::new()
                }
                FormKey::Submit => {
                    let fingerprint = verify.form.value(0).to_owned();
                    let name = verify.contact.clone();
                    let ticket = self.ticket();
                    verify.form.sent(ticket, "checking…");
                    self.dialog = Some(Dialog::Verify(verify));
                    vec![Effect::Verify {
                        ticket,
                        name,
                        fingerprint,
                    }]
                }
            },
            Dialog::Requests(requests) => self.requests_key(requests, key),
            Dialog::Files(files) => self.files_key(files, key),
            Dialog::SendFile(send) => self.send_file_key(send, key),
        }
    }

    fn invite_key(&mut self, invite: InviteDialog, key: KeyEvent) -> Vec<Effect> {
        match invite {
            InviteDialog::Choose { join } => {
                let next = match key.code {
                    KeyCode::Esc => return Vec::new(),
                    KeyCode::Up | KeyCode::Down | KeyCode::Tab | KeyCode::BackTab => {
                        InviteDialog::Choose { join: !join }
                    }
                    KeyCode::Char('s') => InviteDialog::Show(invite_form()),
                    KeyCode::Char('j') => InviteDialog::Join(join_form()),
                    KeyCode::Enter if join => InviteDialog::Join(join_form()),
                    KeyCode::Enter => InviteDialog::Show(invite_form()),
                    _ => InviteDialog::Choose { join },
                };
                self.dialog = Some(Dialog::Invite(next));
                Vec::new()
            }
            InviteDialog::Show(mut form) => match form.key(key) {
                FormKey::Cancel => Vec::new(),
                FormKey::Handled => {
                    self.dialog = Some(Dialog::Invite(InviteDialog::Show(form)));
                    Vec::new()
                }
                FormKey::Submit => {
                    let name = form.value(0).to_owned();
                    let require_auth = form.on(1);
                    if name.is_empty() {
                        form.note = Some(Note::Error(
                            "the name the new contact will have here".into(),
                        ));
                        self.dialog = Some(Dialog::Invite(InviteDialog::Show(form)));
                        return Vec::new();
                    }
                    let ticket = self.ticket();
                    form.sent(ticket, "making a code at the rendezvous server…");
                    self.dialog = Some(Dialog::Invite(InviteDialog::Show(form)));
                    vec![Effect::CreateInvite {
                        ticket,
                        name,
                        require_auth,
                    }]
                }
            },
            InviteDialog::Waiting { invite, outcome } => {
                // The code is shown until the window is closed on purpose (it is
                // also in the status log); closing it does not cancel the invite.
                if key.code != KeyCode::Esc {
                    self.dialog = Some(Dialog::Invite(InviteDialog::Waiting { invite, outcome }));
                }
                Vec::new()
            }
            InviteDialog::Join(mut form) => match form.key(key) {
                FormKey::Cancel => Vec::new(),
                FormKey::Handled => {
                    self.dialog = Some(Dialog::Invite(InviteDialog::Join(form)));
                    Vec::new()
                }
                FormKey::Submit => {
                    let code = form.secret(0);
                    let name = form.value(1).to_owned();
                    let require_auth = form.on(2);
                    if code.0.is_empty() || name.is_empty() {
                        form.note = Some(Note::Error(
                            "the code read to you, and a name for them".into(),
                        ));
                        self.dialog = Some(Dialog::Invite(InviteDialog::Join(form)));
                        return Vec::new();
                    }
                    let ticket = self.ticket();
                    form.sent(ticket, "joining through the rendezvous server (over Tor)…");
                    self.dialog = Some(Dialog::Invite(InviteDialog::Join(form)));
                    vec![Effect::JoinInvite {
                        ticket,
                        code,
                        name,
                        require_auth,
                    }]
                }
            },
        }
    }

    fn requests_key(&mut self, mut dialog: RequestsDialog, key: KeyEvent) -> Vec<Effect> {
        if let Some((id, mut form)) = dialog.naming.take() {
            match form.key(key) {
                FormKey::Cancel => {}
                FormKey::Handled => dialog.naming = Some((id, form)),
                FormKey::Submit => {
                    let name = form.value(0).to_owned();
                    if name.is_empty() {
                        form.note = Some(Note::Error("a name for the new contact".into()));
                        dialog.naming = Some((id, form));
                    } else {
                        let ticket = self.ticket();
                        dialog.pending = Some(ticket);
                        dialog.note = Some(Note::Working(format!("accepting #{id}…")));
                        self.dialog = Some(Dialog::Requests(dialog));
                        return vec![Effect::Accept { ticket, id, name }];
                    }
                }
            }
            self.dialog = Some(Dialog::Requests(dialog));
            return Vec::new();
        }
        let count = self.incoming().count();
        let selected = self.incoming().nth(dialog.selected).map(|r| r.id);
        let idle = dialog.pending.is_none();
        let mut effects = Vec::new();
        match key.code {
            KeyCode::Esc => return Vec::new(),
            KeyCode::Down => dialog.selected = (dialog.selected + 1).min(count.saturating_sub(1)),
            KeyCode::Up => dialog.selected = dialog.selected.saturating_sub(1),
            KeyCode::Enter | KeyCode::Char('a') if idle => {
                if let Some(id) = selected {
                    let form = Form::new(vec![Field::text("Name for this contact")]);
                    dialog.naming = Some((id, form));
                }
            }
            KeyCode::Char('d') | KeyCode::Delete if idle => {
                if let Some(id) = selected {
                    let ticket = self.ticket();
                    dialog.pending = Some(ticket);
                    dialog.note = Some(Note::Working(format!("declining #{id}…")));
                    effects.push(Effect::Decline { ticket, id });
                }
            }
            _ => {}
        }
        self.dialog = Some(Dialog::Requests(dialog));
        effects
    }

    /// Something the node reported.
    pub fn on_event(&mut self, event: &Event) -> Vec<Effect> {
        if self.on_file_event(event) {
            return Vec::new();
        }
        match event {
            Event::Online => {
                self.online = true;
                Vec::new()
            }
            Event::RequestReceived { .. } => {
                self.notice = Some("a contact request arrived: F7 to answer it".into());
                vec![Effect::Refresh]
            }
            Event::RequestDelivered { .. }
            | Event::ContactAdded { .. }
            | Event::Connected { .. }
            | Event::Presence { .. }
            | Event::AuthRequired { .. }
            | Event::Guarantees { .. }
            | Event::PeerQuit { .. } => vec![Effect::Refresh],
            Event::Disconnected { contact } => {
                self.asked.remove(contact);
                vec![Effect::Refresh]
            }
            Event::MessageReceived { message } => {
                if self.selection == Selection::Contact(message.contact.clone()) {
                    // Loading it again marks it read.
                    vec![Effect::LoadHistory(message.contact.clone())]
                } else {
                    vec![Effect::Refresh]
                }
            }
            Event::MessageState { contact, id, state } => {
                let known = self
                    .conversations
                    .get_mut(contact)
                    .and_then(|c| c.iter_mut().find(|m| &m.id == id));
                match known {
                    Some(m) => {
                        m.state = *state;
                        Vec::new()
                    }
                    // Sent after the conversation was loaded: load it again.
                    None if self.selection == Selection::Contact(contact.clone()) => {
                        vec![Effect::LoadHistory(contact.clone())]
                    }
                    None => Vec::new(),
                }
            }
            Event::AuthRequested { contact, question } => {
                self.asked.insert(contact.clone(), question.clone());
                self.notice = Some(format!(
                    "{} asks to authenticate: choose them and press F4",
                    clean(contact)
                ));
                Vec::new()
            }
            Event::AuthResult { contact, outcome } => {
                self.asked.remove(contact);
                if let Some(Dialog::Auth(auth)) = &mut self.dialog
                    && &auth.contact == contact
                {
                    auth.outcome = Some(*outcome);
                }
                vec![Effect::Refresh]
            }
            Event::InviteCompleted { contact } => {
                if let Some(Dialog::Invite(InviteDialog::Waiting { invite, outcome })) =
                    &mut self.dialog
                    && invite.name == contact.name
                {
                    *outcome = Some(Note::Success(format!(
                        "{} is now a verified contact",
                        contact.name
                    )));
                }
                vec![Effect::Refresh]
            }
            Event::GroupMessage { .. } | Event::GroupChanged { .. } | Event::GroupJoined { .. } => {
                if let Some(line) = crate::cli::group_event_line(event) {
                    self.push_log(vec![line]);
                }
                Vec::new()
            }
            Event::InviteFailed { name, reason } => {
                if let Some(Dialog::Invite(InviteDialog::Waiting { invite, outcome })) =
                    &mut self.dialog
                    && &invite.name == name
                {
                    *outcome = Some(Note::Error(reason.clone()));
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A result from the driver.
    pub fn on_done(&mut self, done: Done) -> Vec<Effect> {
        match done {
            Done::Info(info) => self.info = Some(info),
            Done::Contacts(contacts) => self.contacts = contacts,
            Done::Requests(requests) => {
                self.requests = requests;
                let count = self.incoming().count();
                if let Some(Dialog::Requests(d)) = &mut self.dialog {
                    d.selected = d.selected.min(count.saturating_sub(1));
                }
            }
            Done::History(name, messages) => {
                self.conversations.insert(name, messages);
                // Reading marked it read.
                return vec![Effect::Refresh];
            }
            Done::Transfers(transfers) => self.transfers_loaded(transfers),
            Done::Log(lines) => self.push_log(lines),
            Done::Output(lines) => {
                // In a conversation the status log is hidden: show what the
                // command printed in a window (one line fits the bottom bar).
                if self.selection != Selection::Status && lines.len() > 1 && self.dialog.is_none() {
                    self.dialog = Some(Dialog::Output(lines.clone()));
                }
                self.push_log(lines);
            }
            Done::LineRan { sent_with, current } => {
                self.running = self.running.saturating_sub(1);
                let mut effects = vec![Effect::Refresh];
                if current != sent_with {
                    // `/peer` chose someone else, or `/delete` removed them.
                    let selection = current.map_or(Selection::Status, Selection::Contact);
                    effects.extend(self.select(selection));
                } else if let Some(name) = current
                    && self.selection == Selection::Contact(name.clone())
                {
                    effects.push(Effect::LoadHistory(name));
                }
                return effects;
            }
            Done::Answer { ticket, answer } => return self.answer(ticket, answer),
        }
        Vec::new()
    }

    /// Shows an answer in the window that asked for it, or else in the log.
    fn answer(&mut self, ticket: u64, answer: Answer) -> Vec<Effect> {
        if let Answer::File(result) = answer {
            self.file_answer(ticket, result);
            return Vec::new();
        }
        let mut effects = vec![Effect::Refresh];
        if let Answer::InviteCreated(Ok(invite)) = &answer {
            // The code must not be lost with its window.
            self.push_log(vec![invite_line(invite)]);
        }
        let line = answer.log_line();
        // A new contact comes on screen once the window has its answer.
        let mut new_contact = None;
        // A code made for the invite window on screen.
        let mut made = None;
        let shown = match (&mut self.dialog, answer) {
            (Some(Dialog::AddContact(form)), Answer::RequestSent(r)) if form.waits_for(ticket) => {
                form.answered(r, |r| {
                    format!(
                        "request #{} sent; they become a contact when they accept (Enter closes)",
                        r.id
                    )
                });
                true
            }
            (Some(Dialog::Requests(d)), Answer::Accepted(r)) if d.pending == Some(ticket) => {
                d.pending = None;
                d.note = Some(match &r {
                    Ok(c) => Note::Success(format!("{} is a contact now", clean(&c.name))),
                    Err(e) => Note::Error(e.clone()),
                });
                new_contact = r.ok().map(|c| c.name);
                true
            }
            (Some(Dialog::Requests(d)), Answer::Declined(r)) if d.pending == Some(ticket) => {
                d.pending = None;
                d.note = Some(match r {
                    Ok(id) => Note::Success(format!("request #{id} declined")),
                    Err(e) => Note::Error(e),
                });
                true
            }
            (Some(Dialog::Invite(InviteDialog::Show(form))), Answer::InviteCreated(r))
                if form.waits_for(ticket) =>
            {
                match r {
                    Ok(invite) => made = Some(invite),
                    Err(e) => form.answered(Err::<(), _>(e), |()| String::new()),
                }
                true
            }
            (Some(Dialog::Invite(InviteDialog::Join(form))), Answer::Joined(r))
                if form.waits_for(ticket) =>
            {
                new_contact = r.as_ref().ok().map(|c| c.name.clone());
                form.answered(r, |c| {
                    format!("{} is now a verified contact (Esc closes)", clean(&c.name))
                });
                true
            }
            (Some(Dialog::Auth(auth)), Answer::AuthStarted(r)) if auth.form.waits_for(ticket) => {
                // Success is the result event's to show; keep waiting for it.
                match r {
                    Ok(()) => auth.form.pending = None,
                    Err(e) => auth.form.answered(Err::<(), _>(e), |()| String::new()),
                }
                true
            }
            (Some(Dialog::Verify(v)), Answer::Verified(r)) if v.form.waits_for(ticket) => {
                v.form.answered(r, |c| {
                    format!("{} is verified (Esc closes)", clean(&c.name))
                });
                true
            }
            (_, Answer::InviteCreated(Ok(_))) => true,
            _ => false,
        };
        if !shown {
            self.push_log(vec![line]);
        }
        if let Some(invite) = made {
            self.dialog = Some(Dialog::Invite(InviteDialog::Waiting {
                invite,
                outcome: None,
            }));
        }
        if let Some(name) = new_contact {
            effects.extend(self.select(Selection::Contact(name)));
        }
        effects
    }

    /// The conversation on screen, oldest first.
    pub fn conversation(&self) -> &[MessageView] {
        match &self.selection {
            Selection::Contact(name) => self
                .conversations
                .get(name)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            Selection::Status => &[],
        }
    }
}

fn add_contact_form() -> Form {
    Form::new(vec![
        Field::text("Their address (nj1…)"),
        Field::text("Name for them"),
        Field::text("Greeting (optional)"),
    ])
}

fn invite_form() -> Form {
    Form::new(vec![
        Field::text("Name for the new contact"),
        Field::toggle("Require authentication (SMP) before messages"),
    ])
}

fn join_form() -> Form {
    Form::new(vec![
        // Read aloud, so shown as typed: a typo must be visible.
        Field::text("Code read to you"),
        Field::text("Name for them"),
        Field::toggle("Require authentication (SMP) before messages"),
    ])
}

//! `nightjar cli`: the line interface, with unMessage's slash commands.
//!
//! Commands are read from stdin one line at a time, so the same program serves a
//! person at a terminal and a script piping commands in. What the node reports
//! (requests, messages, receipts, presence) is printed as it happens, one line
//! each, with a timestamp.

pub(crate) mod files;

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use nightjar_node::{
    AcceptFile, AuthOutcome, ContactView, Event, ForwardSecrecy, Guarantees, Level,
    MessageDirection, MessageState, MessageView, Node, PresenceState, RequestDirection,
    RequestView, TransferView,
};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::broadcast::error::RecvError;
use zeroize::Zeroizing;

use self::files::Progress;
use crate::startup::{self, ProfileArgs};

/// Options of `nightjar cli`.
#[derive(Debug, Args)]
#[command(after_help = OUTPUT_HELP)]
pub struct CliArgs {
    #[command(flatten)]
    profile: ProfileArgs,
    /// After the end of input, keep running up to SECS seconds until every
    /// message and request we sent has been delivered.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    linger: u64,
}

pub(crate) const OUTPUT_HELP: &str = "\
Commands (one per line on stdin):
  /help                         this list
  /address                      your address (nj1…), to give to people
  /onion                        your request onion address
  /key                          your identity key
  /fingerprint [NAME]           your fingerprint, or NAME's
  /invite NAME [--auth]         make a short code (7-crossover-clockwork) to read to
                                someone; when they /join it, they become NAME here,
                                verified. --auth: no messages until /auth succeeds
  /join CODE NAME [--auth]      use a code someone read to you; they become NAME
  /req-send ADDRESS NAME [GREETING]
                                ask the owner of ADDRESS to be a contact, named NAME
  /requests                     pending requests, both ways
  /req-accept ID NAME           accept request ID, naming the contact NAME
  /req-decline ID               decline (or withdraw) request ID
  /convs                        your contacts
  /peer NAME                    show NAME and talk to them: lines without / go to NAME
  /msg NAME TEXT                send TEXT to NAME
  /history NAME [N]             the last N (default 20) messages with NAME
  /send-file NAME PATH          offer the file at PATH to NAME (the rest of the line
                                is the path, spaces and all; ~/ is your home)
  /files [NAME]                 file transfers both ways (only those with NAME)
  /accept-file ID [SAVE-AS] [--overwrite]
                                save file ID in the downloads directory, under its
                                own name or SAVE-AS; a file there is replaced only
                                with --overwrite
  /decline-file ID              say no to file ID
  /cancel-file ID               stop file transfer ID for good, either way
  /resume-file ID               continue file ID after it paused (disk full)
  /pres-on NAME, /pres-off NAME tell NAME (or stop telling) when you come and go
  /verify NAME FINGERPRINT      mark NAME verified if FINGERPRINT is theirs
  /auth NAME SECRET [QUESTION]  authenticate NAME with a secret you both know (SMP);
                                NAME is asked QUESTION; neither secret is revealed.
                                Also answers NAME's request to authenticate
  /auth-abort NAME              give up an authentication in progress
  /delete NAME                  delete NAME and your conversation
  /mailbox                      the mailboxes contacts leave messages in while you
                                are offline
  /mailbox-add ONION            name a mailbox (what `nightjar mailbox` prints:
                                ….onion or ws://….onion/v1); contacts learn it on
                                their next link. At most four
  /mailbox-remove ONION         stop naming a mailbox
  /groups                       the groups you are in
  /group-create GROUP           make a group (its room is on your first mailbox)
  /group-invite GROUP NAME      add contact NAME (connected) to GROUP
  /group-remove GROUP NAME      remove NAME from GROUP; they read nothing after
  /group-leave GROUP            leave GROUP
  /gmsg GROUP TEXT              send TEXT to everyone in GROUP
  /ghistory GROUP               GROUP's messages
  /quit                         leave (also: end of input)

Output (stable; one line each, stdout, flushed per line):
  address: nj1…    onion: ….onion    key: …    fingerprint: …
  [HH:MM:SS] request #ID from FINGERPRINT: \"GREETING\" (accept with /req-accept ID NAME)
  [HH:MM:SS] request #ID to NAME sent | delivered
  [HH:MM:SS] request #ID accepted: NAME | request #ID declined
  [HH:MM:SS] contact NAME added
  [HH:MM:SS] NAME connected | disconnected | is online | is away | is offline | left
  [HH:MM:SS] <NAME> TEXT [(via mailbox)]
                                      a message from NAME (through your mailbox)
  [HH:MM:SS] -> NAME: TEXT (id ID)    a message you sent, queued
  [HH:MM:SS] ✓ sent | delivered | via mailbox | queued NAME (id ID)
                                      via mailbox: NAME is offline; it waits in
                                      their mailbox (queued again if it was lost)
  [HH:MM:SS] NAME asks to authenticate[: \"QUESTION\"] (answer with /auth NAME SECRET)
  [HH:MM:SS] authentication with NAME succeeded | failed: … | aborted
  [HH:MM:SS] NAME connected; messages wait until you authenticate …
  [HH:MM:SS] invite code for NAME: CODE (valid N minutes)
  [HH:MM:SS] invite for NAME completed: NAME is verified | invite for NAME failed: …
  [HH:MM:SS] file #ID from NAME: \"FILE\" (SIZE, blake3 HASH…) — /accept-file ID or /decline-file ID
  [HH:MM:SS] file #ID to NAME: \"FILE\" offered | accepted | declined (REASON) |
             cancelled by NAME | failed: REASON | delivered
  [HH:MM:SS] file #ID from NAME: \"FILE\" saved to PATH | cancelled … | failed: REASON |
             paused: REASON (/resume-file ID)
  [HH:MM:SS] file #ID 40% (20.0 of 50.0 MB, 5.1 MB/s, ETA 6 s)
                                      every 10 %; a bar instead on a terminal
  [HH:MM:SS] [GROUP] <NAME> TEXT     a group message (NAME: a contact, or
                                      \"someone (FINGERPRINT…)\")
  [HH:MM:SS] [GROUP] -> TEXT (posted) your group message, once its room took it
  [HH:MM:SS] [GROUP] NAME added NAME | NAME removed NAME | NAME is leaving | …
  [HH:MM:SS] NAME added you to group GROUP (members: …)
  [HH:MM:SS] warning: TEXT
  NAME is verified    NAME deleted    talking to NAME: …
  /peer: name: NAME, level: authenticated|verified|unverified, fingerprint: …, online: yes|no
  /convs: NAME authenticated|verified|unverified online|offline [(N unread)]
  /history: [HH:MM:SS] <NAME> TEXT [(via mailbox)]
            [HH:MM:SS] -> NAME: TEXT (queued|via mailbox|sent|delivered)
  /mailbox: mailbox: ….onion (one line each) | no mailbox
  /files:   #ID -> NAME \"FILE\" SIZE STATE [PCT% RATE ETA]   (<- for incoming)
  /groups:  GROUP: NAME, NAME, … | GROUP (left) | no groups
  error: SENTENCE                     a command failed; the next line is read
Names are coloured by trust (red: unverified, green: verified, cyan:
authenticated in this session) on a terminal, unless NO_COLOR is set.";

/// What a line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Peer(Option<String>),
    Onion,
    Key,
    Address,
    ReqSend {
        address: String,
        name: String,
        greeting: String,
    },
    ReqAccept {
        id: i64,
        name: String,
    },
    ReqDecline(i64),
    Requests,
    Convs,
    Msg {
        name: String,
        text: String,
    },
    History {
        name: String,
        limit: usize,
    },
    Presence {
        name: String,
        on: bool,
    },
    Verify {
        name: String,
        fingerprint: String,
    },
    Fingerprint(Option<String>),
    Auth {
        name: String,
        secret: Zeroizing<String>,
        question: Option<String>,
    },
    AuthAbort(String),
    Invite {
        name: String,
        require_auth: bool,
    },
    Join {
        code: String,
        name: String,
        require_auth: bool,
    },
    Delete(String),
    Mailboxes,
    MailboxAdd(String),
    MailboxRemove(String),
    SendFile {
        name: String,
        /// As typed: `~` and relative paths are resolved when it runs.
        path: String,
    },
    Files(Option<String>),
    AcceptFile {
        id: i64,
        save_as: Option<String>,
        overwrite: bool,
    },
    DeclineFile(i64),
    CancelFile(i64),
    ResumeFile(i64),
    Groups,
    GroupCreate(String),
    GroupInvite {
        group: String,
        name: String,
    },
    GroupRemove {
        group: String,
        name: String,
    },
    GroupLeave(String),
    GroupMsg {
        group: String,
        text: String,
    },
    GroupHistory(String),
    Quit,
    /// Nothing (a blank line).
    Nothing,
}

/// How many messages `/history` shows by default.
pub const DEFAULT_HISTORY: usize = 20;

/// Parses one input line. `current` is the peer chosen with `/peer`, to whom a line
/// without a slash goes.
pub fn parse(line: &str, current: Option<&str>) -> Result<Command, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Command::Nothing);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return match current {
            Some(name) => Ok(Command::Msg {
                name: name.to_owned(),
                text: line.to_owned(),
            }),
            None => Err(
                "commands start with '/': use /msg NAME TEXT, or /peer NAME to talk to NAME \
                 (/help lists the commands)"
                    .into(),
            ),
        };
    };
    let (word, args) = split_word(rest);
    let usage = |u: &str| format!("usage: /{word} {u}");
    let one_name = |args: &str, u: &str| -> Result<String, String> {
        match split_word(args) {
            (name, "") if !name.is_empty() => Ok(name.to_owned()),
            _ => Err(usage(u)),
        }
    };
    let command = match word {
        "help" => Command::Help,
        "quit" | "exit" => Command::Quit,
        "onion" => Command::Onion,
        "key" => Command::Key,
        "address" => Command::Address,
        "requests" => Command::Requests,
        "convs" => Command::Convs,
        "peer" if args.is_empty() => Command::Peer(None),
        "peer" => Command::Peer(Some(one_name(args, "NAME")?)),
        "fingerprint" if args.is_empty() => Command::Fingerprint(None),
        "fingerprint" => Command::Fingerprint(Some(one_name(args, "[NAME]")?)),
        "req-send" => {
            let (address, rest) = split_word(args);
            let (name, greeting) = split_word(rest);
            if name.is_empty() {
                return Err(usage("ADDRESS NAME [GREETING]"));
            }
            Command::ReqSend {
                address: address.to_owned(),
                name: name.to_owned(),
                greeting: greeting.to_owned(),
            }
        }
        "req-accept" => match split_word(args) {
            (id, name) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                Command::ReqAccept {
                    id: request_id(id)?,
                    name: name.to_owned(),
                }
            }
            _ => return Err(usage("ID NAME")),
        },
        "req-decline" => Command::ReqDecline(request_id(&one_name(args, "ID")?)?),
        "msg" => match split_word(args) {
            (name, text) if !text.is_empty() => Command::Msg {
                name: name.to_owned(),
                text: text.to_owned(),
            },
            _ => return Err(usage("NAME TEXT")),
        },
        "history" => match split_word(args) {
            (name, "") if !name.is_empty() => Command::History {
                name: name.to_owned(),
                limit: DEFAULT_HISTORY,
            },
            (name, n) if !name.is_empty() => Command::History {
                name: name.to_owned(),
                limit: n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| usage("NAME [N], N a positive number"))?,
            },
            _ => return Err(usage("NAME [N]")),
        },
        "pres-on" | "pres-off" => Command::Presence {
            name: one_name(args, "NAME")?,
            on: word == "pres-on",
        },
        "verify" => match split_word(args) {
            (name, fingerprint) if !fingerprint.is_empty() => Command::Verify {
                name: name.to_owned(),
                fingerprint: fingerprint.to_owned(),
            },
            _ => return Err(usage("NAME FINGERPRINT")),
        },
        "auth" => {
            let (name, rest) = split_word(args);
            let (secret, question) = split_word(rest);
            if secret.is_empty() {
                return Err(usage("NAME SECRET [QUESTION]"));
            }
            Command::Auth {
                name: name.to_owned(),
                secret: Zeroizing::new(secret.to_owned()),
                question: (!question.is_empty()).then(|| question.to_owned()),
            }
        }
        "auth-abort" => Command::AuthAbort(one_name(args, "NAME")?),
        "invite" | "join" => {
            let mut words: Vec<&str> = args.split_whitespace().collect();
            let before = words.len();
            words.retain(|w| *w != "--auth");
            let require_auth = words.len() < before;
            match (word, words.as_slice()) {
                ("invite", [name]) => Command::Invite {
                    name: (*name).to_owned(),
                    require_auth,
                },
                ("join", [code, name]) => Command::Join {
                    code: (*code).to_owned(),
                    name: (*name).to_owned(),
                    require_auth,
                },
                ("invite", _) => return Err(usage("NAME [--auth]")),
                _ => return Err(usage("CODE NAME [--auth]")),
            }
        }
        "delete" => Command::Delete(one_name(args, "NAME")?),
        "mailbox" if args.is_empty() => Command::Mailboxes,
        "mailbox-add" => Command::MailboxAdd(one_name(args, "ONION")?),
        "mailbox-remove" => Command::MailboxRemove(one_name(args, "ONION")?),
        "send-file" => match split_word(args) {
            (name, path) if !path.is_empty() => Command::SendFile {
                name: name.to_owned(),
                path: path.to_owned(),
            },
            _ => return Err(usage("NAME PATH")),
        },
        "files" if args.is_empty() => Command::Files(None),
        "files" => Command::Files(Some(one_name(args, "[NAME]")?)),
        "accept-file" => {
            let (id, rest) = split_word(args);
            if id.is_empty() {
                return Err(usage("ID [SAVE-AS] [--overwrite]"));
            }
            let (save_as, overwrite) = overwrite_flag(rest);
            Command::AcceptFile {
                id: transfer_id(id)?,
                save_as: (!save_as.is_empty()).then(|| save_as.to_owned()),
                overwrite,
            }
        }
        "decline-file" => Command::DeclineFile(transfer_id(&one_name(args, "ID")?)?),
        "cancel-file" => Command::CancelFile(transfer_id(&one_name(args, "ID")?)?),
        "resume-file" => Command::ResumeFile(transfer_id(&one_name(args, "ID")?)?),
        "groups" if args.is_empty() => Command::Groups,
        "group-create" => Command::GroupCreate(one_name(args, "GROUP")?),
        "group-leave" => Command::GroupLeave(one_name(args, "GROUP")?),
        "ghistory" => Command::GroupHistory(one_name(args, "GROUP")?),
        "group-invite" | "group-remove" => match split_word(args) {
            (group, name) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                let (group, name) = (group.to_owned(), name.to_owned());
                if word == "group-invite" {
                    Command::GroupInvite { group, name }
                } else {
                    Command::GroupRemove { group, name }
                }
            }
            _ => return Err(usage("GROUP NAME")),
        },
        "gmsg" => match split_word(args) {
            (group, text) if !text.is_empty() => Command::GroupMsg {
                group: group.to_owned(),
                text: text.to_owned(),
            },
            _ => return Err(usage("GROUP TEXT")),
        },
        _ => {
            return Err(format!(
                "unknown command /{word} (/help lists the commands)"
            ));
        }
    };
    Ok(command)
}

/// How a group event is shown, here and in the terminal interface.
pub(crate) fn group_event_line(event: &Event) -> Option<String> {
    match event {
        Event::GroupMessage { message } => Some(group_line(message)),
        Event::GroupChanged { group, text } => Some(format!("[{}] {}", clean(group), clean(text))),
        Event::GroupJoined { group, by } => Some(format!(
            "{} added you to group {} (members: {})",
            clean(by),
            clean(&group.name),
            clean(&group.members.join(", "))
        )),
        _ => None,
    }
}

/// A group message: someone's, or ours once its room took it.
fn group_line(m: &nightjar_node::GroupMessageView) -> String {
    let group = clean(&m.group);
    if m.outgoing {
        let state = if m.posted { "posted" } else { "waiting" };
        format!("[{group}] -> {} ({state})", clean(&m.body))
    } else {
        format!("[{group}] <{}> {}", clean(&m.from), clean(&m.body))
    }
}

/// The first word and the rest, trimmed.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (s, ""),
    }
}

fn request_id(s: &str) -> Result<i64, String> {
    s.trim_start_matches('#')
        .parse()
        .map_err(|_| format!("{s:?} is not a request number (see /requests)"))
}

fn transfer_id(s: &str) -> Result<i64, String> {
    s.trim_start_matches('#')
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| format!("{s:?} is not a file transfer number (see /files)"))
}

/// `--overwrite` at either end of what follows the id, and the rest: the name
/// to save as, spaces and all.
fn overwrite_flag(rest: &str) -> (&str, bool) {
    const FLAG: &str = "--overwrite";
    if rest == FLAG {
        return ("", true);
    }
    if let Some(name) = rest
        .strip_suffix(FLAG)
        .filter(|n| n.ends_with(char::is_whitespace))
    {
        return (name.trim(), true);
    }
    if let Some(name) = rest
        .strip_prefix(FLAG)
        .filter(|n| n.starts_with(char::is_whitespace))
    {
        return (name.trim(), true);
    }
    (rest, false)
}

/// Where output goes, and how it looks.
struct Screen<W> {
    out: W,
    colour: bool,
    /// Whether each contact is verified, to colour names.
    verified: HashMap<String, bool>,
    /// Contacts authenticated on the current link.
    authenticated: HashSet<String>,
    /// File transfers on the move.
    progress: Progress,
}

impl<W: Write> Screen<W> {
    fn line(&mut self, text: &str) {
        // A closed stdout (the reading end of a pipe went away) is not worth
        // dying over; the node still shuts down cleanly at the end of input.
        let out = &mut self.out;
        self.progress.around(|| {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        });
    }

    fn event(&mut self, text: &str) {
        let now = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
        self.line(&format!("[{now}] {text}"));
    }

    fn error(&mut self, text: &str) {
        self.line(&format!("error: {text}"));
    }

    /// A contact's name, coloured by trust when on a terminal.
    fn name(&self, name: &str) -> String {
        let name = clean(name);
        if !self.colour {
            return name;
        }
        if self.authenticated.contains(&name) {
            return format!("\x1b[36m{name}\x1b[0m");
        }
        match self.verified.get(&name) {
            Some(true) => format!("\x1b[32m{name}\x1b[0m"),
            Some(false) => format!("\x1b[31m{name}\x1b[0m"),
            None => name,
        }
    }

    fn learn(&mut self, contact: &ContactView) {
        self.verified.insert(contact.name.clone(), contact.verified);
        if contact.level == Level::Authenticated {
            self.authenticated.insert(contact.name.clone());
        } else {
            self.authenticated.remove(&contact.name);
        }
    }

    fn forget(&mut self, name: &str) {
        self.verified.remove(name);
        self.authenticated.remove(name);
    }
}

/// Text from others on one line: control characters (a peer could move the cursor
/// or forge lines) become spaces, and invisible format characters (bidirectional
/// overrides that reorder what follows, zero-width characters) are dropped.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !nightjar_proto::files::is_invisible(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

pub(crate) fn clock(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "--:--:--".into())
}

/// How much a guarantee shown to the person holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holds {
    /// In force.
    Yes,
    /// In force, in a weaker form.
    Weaker,
    /// Missing.
    No,
}

/// The guarantees of a conversation in short marks (for a title), each with
/// how much it holds: the post-quantum handshake (with a link), the kind of
/// forward secrecy, our cover, and the contact's (with a link).
pub(crate) fn guarantee_marks(g: &Guarantees) -> Vec<(String, Holds)> {
    let mut marks = Vec::new();
    match g.post_quantum {
        Some(true) => marks.push(("PQ ✓".to_owned(), Holds::Yes)),
        Some(false) => marks.push(("no PQ".to_owned(), Holds::No)),
        None => {}
    }
    marks.push(match g.forward_secrecy {
        ForwardSecrecy::Ratchet => ("FS ✓".to_owned(), Holds::Yes),
        ForwardSecrecy::MailboxChain => ("FS: mailbox chain".to_owned(), Holds::Weaker),
    });
    marks.push(if g.our_cover == "off" {
        ("no cover (ours)".to_owned(), Holds::No)
    } else {
        (format!("cover {}", g.our_cover), Holds::Yes)
    });
    match g.their_cover {
        Some(true) => marks.push(("theirs ✓".to_owned(), Holds::Yes)),
        Some(false) => marks.push(("no cover (theirs)".to_owned(), Holds::Weaker)),
        None => {}
    }
    marks
}

/// The guarantees of a conversation in words, for a line.
pub(crate) fn guarantee_words(g: &Guarantees) -> String {
    let mut words = Vec::new();
    match g.post_quantum {
        Some(true) => words.push("post-quantum handshake".to_owned()),
        Some(false) => words.push("NO post-quantum handshake".to_owned()),
        None => words.push("no link now".to_owned()),
    }
    words.push(match g.forward_secrecy {
        ForwardSecrecy::Ratchet => "forward secrecy (double ratchet)".to_owned(),
        ForwardSecrecy::MailboxChain => {
            "forward secrecy through a mailbox chain (it does not heal after a theft)".to_owned()
        }
    });
    words.push(if g.our_cover == "off" {
        "NO cover traffic from us".to_owned()
    } else {
        format!("our cover traffic: {}", g.our_cover)
    });
    match g.their_cover {
        Some(true) => words.push("their cover traffic: yes".to_owned()),
        Some(false) => words.push("their cover traffic: none seen".to_owned()),
        None => {}
    }
    words.join(", ")
}

pub(crate) fn level_word(level: Level) -> &'static str {
    match level {
        Level::Authenticated => "authenticated",
        Level::Verified => "verified",
        Level::Unverified => "unverified",
    }
}

fn presence_word(p: PresenceState) -> &'static str {
    match p {
        PresenceState::Online => "online",
        PresenceState::Away => "away",
        PresenceState::Offline => "offline",
    }
}

/// Which way a message went, where that is worth saying: a mailbox gives weaker
/// forward secrecy than a link. Nothing for a message that went direct only,
/// nor for one whose state already says "via mailbox".
pub(crate) fn route_words(m: &MessageView) -> Option<&'static str> {
    match (m.direction, m.direct, m.via_mailbox) {
        (_, _, false) => None,
        (MessageDirection::Outgoing, _, true) if m.state == MessageState::Deposited => None,
        (MessageDirection::Outgoing, true, true) => Some("direct and via mailbox"),
        (_, _, true) => Some("via mailbox"),
    }
}

/// [`route_words`] in brackets after a space, or nothing.
pub(crate) fn mailbox_note(m: &MessageView) -> String {
    route_words(m)
        .map(|w| format!(" ({w})"))
        .unwrap_or_default()
}

pub(crate) fn state_word(s: MessageState) -> &'static str {
    match s {
        MessageState::Queued => "queued",
        MessageState::Deposited => "via mailbox",
        MessageState::Sent => "sent",
        MessageState::Delivered => "delivered",
        MessageState::Received => "received",
    }
}

/// What happens after a line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Quit,
}

/// The session: the node, the screen, the current peer.
pub(crate) struct Session<W> {
    node: Node,
    screen: Screen<W>,
    current: Option<String>,
    /// Contacts waiting for our answer to their authentication.
    asked: HashSet<String>,
}

impl Session<Vec<u8>> {
    /// A session whose output is collected rather than printed: the terminal
    /// interface runs the same commands and shows the same lines.
    pub(crate) fn collecting(node: Node) -> Self {
        Self {
            node,
            screen: Screen {
                out: Vec::new(),
                colour: false,
                verified: HashMap::new(),
                authenticated: HashSet::new(),
                progress: Progress::lines(),
            },
            current: None,
            asked: HashSet::new(),
        }
    }

    /// The lines printed since the last call.
    pub(crate) fn take_lines(&mut self) -> Vec<String> {
        let out = std::mem::take(&mut self.screen.out);
        String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl<W: Write> Session<W> {
    /// The peer lines without a slash go to.
    pub(crate) fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    pub(crate) fn set_current(&mut self, current: Option<String>) {
        self.current = current;
    }

    pub(crate) fn show_event(&mut self, event: &Event) {
        let s = &mut self.screen;
        match event {
            Event::Online => s.event("online: your onion services are published"),
            Event::RequestReceived { request } => s.event(&format!(
                "request #{} from {}: \"{}\" (accept with /req-accept {} NAME)",
                request.id,
                request.fingerprint,
                clean(&request.greeting),
                request.id
            )),
            Event::RequestDelivered { request } => {
                let to = request
                    .name
                    .as_deref()
                    .map(|n| s.name(n))
                    .unwrap_or_default();
                s.event(&format!("request #{} to {to} delivered", request.id));
            }
            Event::ContactAdded { contact } => {
                s.learn(contact);
                let name = s.name(&contact.name);
                s.event(&format!("contact {name} added"));
            }
            Event::Connected { contact } => {
                let name = s.name(contact);
                s.event(&format!("{name} connected"));
            }
            Event::Disconnected { contact } => {
                // Authentication lasts as long as the link.
                s.authenticated.remove(contact);
                let name = s.name(contact);
                s.event(&format!("{name} disconnected"));
            }
            Event::Presence { contact, presence } => {
                let name = s.name(contact);
                s.event(&format!("{name} is {}", presence_word(*presence)));
            }
            Event::MessageReceived { message } => {
                let name = s.name(&message.contact);
                s.event(&format!(
                    "<{name}> {}{}",
                    clean(&message.body),
                    mailbox_note(message)
                ));
            }
            Event::MessageState { contact, id, state } => {
                let name = s.name(contact);
                s.event(&format!(
                    "✓ {} {name} (id {})",
                    state_word(*state),
                    short_id(id)
                ));
            }
            Event::PeerQuit { contact } => {
                let name = s.name(contact);
                s.event(&format!("{name} left"));
            }
            Event::AuthRequested { contact, question } => {
                let name = s.name(contact);
                let asked = question
                    .as_deref()
                    .map(|q| format!(": \"{}\"", clean(q)))
                    .unwrap_or_default();
                s.event(&format!(
                    "{name} asks to authenticate{asked} (answer with /auth {} SECRET)",
                    clean(contact)
                ));
                self.asked.insert(contact.clone());
            }
            Event::AuthResult { contact, outcome } => {
                self.asked.remove(contact);
                if *outcome == AuthOutcome::Succeeded {
                    self.screen.authenticated.insert(contact.clone());
                }
                let s = &mut self.screen;
                let name = s.name(contact);
                let plain = clean(contact);
                s.event(&match outcome {
                    AuthOutcome::Succeeded => {
                        format!("authentication with {name} succeeded: {name} is authenticated")
                    }
                    AuthOutcome::Failed => format!(
                        "authentication with {name} failed: the secrets differ. Try again with \
                         /auth {plain} SECRET, or leave with /delete {plain}"
                    ),
                    AuthOutcome::Cheated => format!(
                        "authentication with {name} failed: their side broke the protocol; do \
                         not trust this conversation (/delete {plain} to leave)"
                    ),
                    _ => format!("authentication with {name} aborted"),
                });
            }
            Event::AuthRequired { contact } => {
                let name = s.name(contact);
                s.event(&format!(
                    "{name} connected; messages wait until you authenticate: /auth {} SECRET",
                    clean(contact)
                ));
            }
            Event::InviteCompleted { contact } => {
                s.learn(contact);
                let name = s.name(&contact.name);
                s.event(&format!(
                    "invite for {name} completed: {name} is verified{}",
                    if contact.require_auth {
                        "; messages wait until you authenticate (/auth)"
                    } else {
                        ""
                    }
                ));
            }
            Event::InviteFailed { name, reason } => {
                let name = s.name(name);
                s.event(&format!("invite for {name} failed: {}", clean(reason)));
            }
            Event::FileOffered { transfer } => {
                let from = s.name(&transfer.contact);
                s.event(&files::offer_text(transfer, &from));
            }
            Event::FileState { transfer } => {
                s.progress.state(transfer);
                let who = s.name(&transfer.contact);
                s.event(&files::state_text(transfer, &who));
            }
            Event::FileProgress {
                id,
                bytes,
                size,
                rate_bps,
                eta_s,
                ..
            } => {
                if let Some(line) = s.progress.update(*id, *bytes, *size, *rate_bps, *eta_s) {
                    s.event(&line);
                }
            }
            Event::GroupMessage { .. } | Event::GroupChanged { .. } | Event::GroupJoined { .. } => {
                if let Some(line) = group_event_line(event) {
                    s.event(&line);
                }
            }
            Event::Warning { text } => s.event(&format!("warning: {}", clean(text))),
            _ => tracing::debug!("an event this version does not show"),
        }
    }

    pub(crate) async fn handle(&mut self, line: &str) -> Flow {
        match parse(line, self.current.as_deref()) {
            Ok(Command::Quit) => Flow::Quit,
            Ok(command) => {
                if let Err(e) = self.run(command).await {
                    self.screen.error(&e.to_string());
                }
                Flow::Continue
            }
            Err(hint) => {
                self.screen.error(&hint);
                Flow::Continue
            }
        }
    }

    async fn run(&mut self, command: Command) -> Result<(), nightjar_node::NodeError> {
        let node = self.node.clone();
        match command {
            Command::Nothing | Command::Quit => {}
            Command::Help => {
                for l in OUTPUT_HELP.lines() {
                    self.screen.line(l);
                }
            }
            Command::Address => {
                let info = node.info().await?;
                self.screen.line(&format!("address: {}", info.address));
            }
            Command::Onion => {
                let info = node.info().await?;
                self.screen.line(&format!("onion: {}", info.request_onion));
            }
            Command::Key => {
                let info = node.info().await?;
                self.screen.line(&format!("key: {}", info.identity_key));
            }
            Command::Fingerprint(None) => {
                let info = node.info().await?;
                self.screen
                    .line(&format!("fingerprint: {}", info.fingerprint));
            }
            Command::Fingerprint(Some(name)) => {
                let c = node.contact(&name).await?;
                self.screen.learn(&c);
                let shown = self.screen.name(&c.name);
                self.screen
                    .line(&format!("fingerprint of {shown}: {}", c.fingerprint));
            }
            Command::Peer(None) => match self.current.clone() {
                Some(name) => self.show_contact(&name).await?,
                None => self
                    .screen
                    .line("no current peer: choose one with /peer NAME"),
            },
            Command::Peer(Some(name)) => {
                self.show_contact(&name).await?;
                self.screen.line(&format!(
                    "talking to {}: lines without / go to them",
                    self.screen.name(&name)
                ));
                self.current = Some(name);
            }
            Command::ReqSend {
                address,
                name,
                greeting,
            } => {
                let request = node.send_request(&address, &name, &greeting).await?;
                let shown = self.screen.name(&name);
                self.screen
                    .event(&format!("request #{} to {shown} sent", request.id));
            }
            Command::Requests => {
                let requests = node.requests().await?;
                if requests.is_empty() {
                    self.screen.line("no pending requests");
                }
                for r in &requests {
                    let text = self.request_line(r);
                    self.screen.line(&text);
                }
            }
            Command::ReqAccept { id, name } => {
                let contact = node.accept_request(id, &name).await?;
                self.screen.learn(&contact);
                let shown = self.screen.name(&contact.name);
                self.screen
                    .event(&format!("request #{id} accepted: {shown}"));
            }
            Command::ReqDecline(id) => {
                node.decline_request(id).await?;
                self.screen.event(&format!("request #{id} declined"));
            }
            Command::Convs => {
                let contacts = node.contacts().await?;
                if contacts.is_empty() {
                    self.screen.line("no contacts yet");
                }
                for c in &contacts {
                    self.screen.learn(c);
                    let text = self.contact_line(c);
                    self.screen.line(&text);
                }
            }
            Command::Msg { name, text } => {
                let message = node.send_message(&name, &text).await?;
                let shown = self.screen.name(&name);
                self.screen.event(&format!(
                    "-> {shown}: {} (id {})",
                    clean(&message.body),
                    short_id(&message.id)
                ));
            }
            Command::History { name, limit } => {
                let messages = node.history(&name, limit).await?;
                if messages.is_empty() {
                    self.screen.line("no messages yet");
                }
                for m in &messages {
                    let text = self.history_line(m);
                    self.screen.line(&text);
                }
            }
            Command::Presence { name, on } => {
                node.set_presence(&name, on).await?;
                let shown = self.screen.name(&name);
                self.screen.line(&if on {
                    format!("{shown} will be told when you come and go")
                } else {
                    format!("{shown} will no longer be told when you come and go")
                });
            }
            Command::Verify { name, fingerprint } => {
                let contact = node.verify(&name, &fingerprint).await?;
                self.screen.learn(&contact);
                let shown = self.screen.name(&contact.name);
                self.screen.line(&format!("{shown} is verified"));
            }
            Command::Auth {
                name,
                secret,
                question,
            } => {
                let shown = self.screen.name(&name);
                let answering = self.asked.remove(&name);
                node.authenticate(&name, &secret, question.as_deref())
                    .await?;
                self.screen.line(&if answering {
                    format!("answered {shown}; waiting for the result")
                } else {
                    format!("asked {shown} to authenticate; waiting for them")
                });
            }
            Command::Invite { name, require_auth } => {
                let invite = node.create_invite(&name, require_auth).await?;
                let shown = self.screen.name(&name);
                self.screen.event(&format!(
                    "invite code for {shown}: {} (valid {} minutes; they type /join {} NAME)",
                    invite.code,
                    invite.valid_for_s / 60,
                    invite.code
                ));
            }
            Command::Join {
                code,
                name,
                require_auth,
            } => {
                self.screen
                    .line("joining through the rendezvous server (over Tor)…");
                let contact = node.join_invite(&code, &name, require_auth).await?;
                self.screen.learn(&contact);
            }
            Command::AuthAbort(name) => {
                node.abort_auth(&name).await?;
                self.asked.remove(&name);
            }
            Command::Delete(name) => {
                node.delete_contact(&name).await?;
                self.screen.forget(&name);
                if self.current.as_deref() == Some(name.as_str()) {
                    self.current = None;
                }
                self.screen.line(&format!("{} deleted", clean(&name)));
            }
            Command::Mailboxes => {
                let list = node.mailboxes().await?;
                self.show_mailboxes(&list);
            }
            Command::MailboxAdd(onion) => {
                let list = node.add_mailbox(&onion).await?;
                self.show_mailboxes(&list);
            }
            Command::MailboxRemove(onion) => {
                let list = node.remove_mailbox(&onion).await?;
                self.show_mailboxes(&list);
            }
            Command::Groups => {
                let groups = node.groups().await?;
                if groups.is_empty() {
                    self.screen.line("no groups");
                }
                for g in &groups {
                    let line = if g.active {
                        format!("{}: {}", clean(&g.name), clean(&g.members.join(", ")))
                    } else {
                        format!("{} (left)", clean(&g.name))
                    };
                    self.screen.line(&line);
                }
            }
            Command::GroupCreate(group) => {
                let view = node.create_group(&group).await?;
                self.screen.line(&format!(
                    "group {} made; add contacts with /group-invite",
                    clean(&view.name)
                ));
            }
            Command::GroupInvite { group, name } => {
                node.invite_to_group(&group, &name).await?;
                self.screen.line(&format!(
                    "asking {} to join {} (a line follows once they are in)",
                    self.screen.name(&name),
                    clean(&group)
                ));
            }
            Command::GroupRemove { group, name } => {
                node.remove_from_group(&group, &name).await?;
                self.screen.line(&format!(
                    "removing {} from {}",
                    self.screen.name(&name),
                    clean(&group)
                ));
            }
            Command::GroupLeave(group) => {
                node.leave_group(&group).await?;
                self.screen.line(&format!(
                    "leaving {}: the others are told, and one of them removes you",
                    clean(&group)
                ));
            }
            Command::GroupMsg { group, text } => {
                node.send_group_message(&group, &text).await?;
            }
            Command::GroupHistory(group) => {
                let messages = node.group_history(&group).await?;
                if messages.is_empty() {
                    self.screen.line("no messages");
                }
                for m in &messages {
                    self.screen.line(&group_line(m));
                }
            }
            Command::SendFile { name, path } => {
                let home = std::env::var_os("HOME").map(PathBuf::from);
                let cwd = std::env::current_dir().unwrap_or_default();
                let path = files::resolve_path(&path, home.as_deref(), &cwd);
                let transfer = node.send_file(&name, &path).await?;
                self.show_transfer(&transfer);
            }
            Command::Files(name) => {
                let transfers = node.transfers(name.as_deref()).await?;
                if transfers.is_empty() {
                    self.screen.line("no file transfers");
                }
                for t in &transfers {
                    let who = self.screen.name(&t.contact);
                    self.screen.line(&files::list_line(t, &who));
                }
            }
            Command::AcceptFile {
                id,
                save_as,
                overwrite,
            } => {
                let options = AcceptFile {
                    save_as,
                    dir: None,
                    overwrite,
                };
                let transfer = node.accept_file(id, options).await?;
                self.show_transfer(&transfer);
            }
            Command::DeclineFile(id) => {
                let transfer = node.decline_file(id).await?;
                self.show_transfer(&transfer);
            }
            Command::CancelFile(id) => {
                let transfer = node.cancel_file(id).await?;
                self.screen.progress.state(&transfer);
                self.show_transfer(&transfer);
            }
            Command::ResumeFile(id) => {
                let transfer = node.resume_file(id).await?;
                let who = self.screen.name(&transfer.contact);
                self.screen.event(&files::resumed_text(&transfer, &who));
            }
        }
        Ok(())
    }

    /// A transfer's line after a command changed it.
    fn show_transfer(&mut self, t: &TransferView) {
        let who = self.screen.name(&t.contact);
        self.screen.event(&files::state_text(t, &who));
    }

    async fn show_contact(&mut self, name: &str) -> Result<(), nightjar_node::NodeError> {
        let c = self.node.contact(name).await?;
        self.screen.learn(&c);
        let shown = self.screen.name(&c.name);
        let level = level_word(c.level);
        self.screen.line(&format!("name: {shown}"));
        self.screen.line(&format!("level: {level}"));
        self.screen.line(&format!("fingerprint: {}", c.fingerprint));
        self.screen
            .line(&format!("online: {}", if c.online { "yes" } else { "no" }));
        self.screen
            .line(&format!("protection: {}", guarantee_words(&c.guarantees)));
        Ok(())
    }

    fn contact_line(&self, c: &ContactView) -> String {
        let level = level_word(c.level);
        let mut text = format!(
            "{} {level} {}",
            self.screen.name(&c.name),
            if c.online { "online" } else { "offline" }
        );
        if c.pending {
            text.push_str(" (acceptance not delivered yet)");
        }
        if c.require_auth {
            text.push_str(" (waiting for authentication)");
        }
        match c.last_auth {
            Some(AuthOutcome::Failed) => text.push_str(" (authentication failed)"),
            Some(AuthOutcome::Cheated) => text.push_str(" (authentication broke: distrust)"),
            _ => {}
        }
        if c.unread > 0 {
            text.push_str(&format!(" ({} unread)", c.unread));
        }
        text
    }

    fn request_line(&self, r: &RequestView) -> String {
        match r.direction {
            RequestDirection::Incoming => format!(
                "#{} from {}: \"{}\"",
                r.id,
                r.fingerprint,
                clean(&r.greeting)
            ),
            RequestDirection::Outgoing => format!(
                "#{} to {} ({})",
                r.id,
                r.name
                    .as_deref()
                    .map(|n| self.screen.name(n))
                    .unwrap_or_default(),
                if r.delivered {
                    "delivered, waiting for them to accept"
                } else {
                    "not delivered yet"
                }
            ),
        }
    }

    fn show_mailboxes(&mut self, list: &[String]) {
        if list.is_empty() {
            self.screen
                .line("no mailbox: messages to you wait until you are online");
        }
        for onion in list {
            self.screen.line(&format!("mailbox: {onion}"));
        }
    }

    fn history_line(&self, m: &MessageView) -> String {
        let when = clock(m.sent_at_ms);
        match m.direction {
            MessageDirection::Incoming => format!(
                "[{when}] <{}> {}{}",
                self.screen.name(&m.contact),
                clean(&m.body),
                mailbox_note(m)
            ),
            MessageDirection::Outgoing => format!(
                "[{when}] -> {}: {} ({}{})",
                self.screen.name(&m.contact),
                clean(&m.body),
                state_word(m.state),
                route_words(m).map(|w| format!(", {w}")).unwrap_or_default()
            ),
        }
    }

    /// Whether anything we sent still waits for the other side: messages
    /// without a receipt, requests not delivered, acceptances not delivered.
    async fn outbox_empty(&self) -> Result<bool, nightjar_node::NodeError> {
        let requests = self.node.requests().await?;
        if requests
            .iter()
            .any(|r| r.direction == RequestDirection::Outgoing && !r.delivered)
        {
            return Ok(false);
        }
        for c in self.node.contacts().await? {
            if c.pending {
                return Ok(false);
            }
            let history = self.node.history(&c.name, OUTBOX_SCAN).await?;
            if history.iter().any(|m| {
                m.direction == MessageDirection::Outgoing
                    && matches!(
                        m.state,
                        MessageState::Queued | MessageState::Deposited | MessageState::Sent
                    )
            }) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// How far back `--linger` looks for undelivered messages in each conversation.
const OUTBOX_SCAN: usize = 1000;

/// Runs `nightjar cli`.
pub async fn run(args: CliArgs) -> Result<()> {
    let running = startup::start_node(&args.profile).await?;
    let node = running.node.clone();
    let mut events = node.subscribe();
    let stdout = std::io::stdout();
    let colour = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut session = Session {
        node,
        screen: Screen {
            out: stdout.lock(),
            colour,
            verified: HashMap::new(),
            authenticated: HashSet::new(),
            progress: if stdout.is_terminal() {
                Progress::bars()
            } else {
                Progress::lines()
            },
        },
        current: None,
        asked: HashSet::new(),
    };
    if let Ok(contacts) = session.node.contacts().await {
        for c in &contacts {
            session.screen.learn(c);
        }
    }
    let who = match &running.profile {
        Some(name) => format!("profile {name:?}"),
        None => "an ephemeral profile".into(),
    };
    eprintln!("nightjar: {who} is running; /help lists the commands");

    let ended_by_input = read_commands(&mut session, &mut events).await;
    if ended_by_input && args.linger > 0 {
        linger(&mut session, &mut events, Duration::from_secs(args.linger)).await;
    }
    drop(session);
    running.shutdown().await
}

/// Reads and runs commands, printing events meanwhile. True when input ended
/// (rather than `/quit`).
async fn read_commands<W: Write>(
    session: &mut Session<W>,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
) -> bool {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if session.handle(&line).await == Flow::Quit {
                        return false;
                    }
                }
                Ok(None) => return true,
                Err(e) => {
                    session.screen.error(&format!("reading input failed: {e}"));
                    return true;
                }
            },
            event = events.recv() => if !show(session, event) {
                return false;
            },
        }
    }
}

/// Prints one event; false when the node has stopped.
fn show<W: Write>(session: &mut Session<W>, event: Result<Event, RecvError>) -> bool {
    match event {
        Ok(event) => session.show_event(&event),
        Err(RecvError::Lagged(n)) => session.screen.event(&format!(
            "warning: {n} events were missed (output too slow)"
        )),
        Err(RecvError::Closed) => {
            session.screen.error("the node has stopped");
            return false;
        }
    }
    true
}

/// Keeps printing events until the outbox is empty or `limit` has passed.
async fn linger<W: Write>(
    session: &mut Session<W>,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                eprintln!("nightjar: not everything was delivered before --linger ran out");
                return;
            }
            _ = poll.tick() => match session.outbox_empty().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    session.screen.error(&e.to_string());
                    return;
                }
            },
            event = events.recv() => if !show(session, event) {
                return;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line, None).unwrap()
    }

    fn err(line: &str) -> String {
        parse(line, None).unwrap_err()
    }

    #[test]
    fn the_route_of_a_message_is_said_where_a_mailbox_carried_it() {
        let message = |direction, state, direct, via_mailbox| MessageView {
            contact: "bob".into(),
            id: "00".into(),
            direction,
            body: "hi".into(),
            sent_at_ms: 0,
            state,
            via_mailbox,
            direct,
        };
        use MessageDirection::{Incoming, Outgoing};
        use MessageState::{Delivered, Deposited, Received, Sent};
        let cases = [
            (message(Incoming, Received, true, false), None),
            (
                message(Incoming, Received, false, true),
                Some("via mailbox"),
            ),
            (message(Outgoing, Delivered, true, false), None),
            (message(Outgoing, Sent, true, false), None),
            // The state says it already.
            (message(Outgoing, Deposited, false, true), None),
            (
                message(Outgoing, Delivered, false, true),
                Some("via mailbox"),
            ),
            (
                message(Outgoing, Delivered, true, true),
                Some("direct and via mailbox"),
            ),
            (
                message(Outgoing, Sent, true, true),
                Some("direct and via mailbox"),
            ),
            // Sent before routes were kept.
            (message(Outgoing, Delivered, false, false), None),
        ];
        for (m, words) in cases {
            assert_eq!(route_words(&m), words, "{m:?}");
        }
        assert_eq!(
            mailbox_note(&message(Incoming, Received, false, true)),
            " (via mailbox)"
        );
    }

    #[test]
    fn simple_commands() {
        assert_eq!(ok("/help"), Command::Help);
        assert_eq!(ok("/quit"), Command::Quit);
        assert_eq!(ok("/onion"), Command::Onion);
        assert_eq!(ok("/key"), Command::Key);
        assert_eq!(ok("/address"), Command::Address);
        assert_eq!(ok("/requests"), Command::Requests);
        assert_eq!(ok("/convs"), Command::Convs);
        assert_eq!(ok("  /convs  "), Command::Convs);
        assert_eq!(ok(""), Command::Nothing);
        assert_eq!(ok("   "), Command::Nothing);
    }

    #[test]
    fn commands_with_names() {
        assert_eq!(ok("/peer bob"), Command::Peer(Some("bob".into())));
        assert_eq!(ok("/peer"), Command::Peer(None));
        assert_eq!(ok("/fingerprint"), Command::Fingerprint(None));
        assert_eq!(
            ok("/fingerprint bob"),
            Command::Fingerprint(Some("bob".into()))
        );
        assert_eq!(ok("/delete bob"), Command::Delete("bob".into()));
        assert_eq!(
            ok("/pres-on bob"),
            Command::Presence {
                name: "bob".into(),
                on: true
            }
        );
        assert_eq!(
            ok("/pres-off bob"),
            Command::Presence {
                name: "bob".into(),
                on: false
            }
        );
    }

    #[test]
    fn requests() {
        assert_eq!(
            ok("/req-send nj1abc bob hello there, it's me"),
            Command::ReqSend {
                address: "nj1abc".into(),
                name: "bob".into(),
                greeting: "hello there, it's me".into()
            }
        );
        assert_eq!(
            ok("/req-send nj1abc bob"),
            Command::ReqSend {
                address: "nj1abc".into(),
                name: "bob".into(),
                greeting: String::new()
            }
        );
        assert_eq!(
            ok("/req-accept 3 alice"),
            Command::ReqAccept {
                id: 3,
                name: "alice".into()
            }
        );
        assert_eq!(
            ok("/req-accept #3 alice"),
            Command::ReqAccept {
                id: 3,
                name: "alice".into()
            }
        );
        assert_eq!(ok("/req-decline 4"), Command::ReqDecline(4));
    }

    #[test]
    fn messages_and_history() {
        assert_eq!(
            ok("/msg bob hi  there "),
            Command::Msg {
                name: "bob".into(),
                text: "hi  there".into()
            }
        );
        assert_eq!(
            ok("/history bob"),
            Command::History {
                name: "bob".into(),
                limit: DEFAULT_HISTORY
            }
        );
        assert_eq!(
            ok("/history bob 5"),
            Command::History {
                name: "bob".into(),
                limit: 5
            }
        );
    }

    #[test]
    fn verify_takes_the_rest_of_the_line() {
        assert_eq!(
            ok("/verify bob 12345 67890 11111"),
            Command::Verify {
                name: "bob".into(),
                fingerprint: "12345 67890 11111".into()
            }
        );
    }

    #[test]
    fn missing_arguments_say_how() {
        for (line, usage) in [
            ("/peer a b", "usage: /peer NAME"),
            ("/req-send", "usage: /req-send ADDRESS NAME [GREETING]"),
            (
                "/req-send nj1abc",
                "usage: /req-send ADDRESS NAME [GREETING]",
            ),
            ("/req-accept", "usage: /req-accept ID NAME"),
            ("/req-accept 3", "usage: /req-accept ID NAME"),
            ("/req-accept 3 two words", "usage: /req-accept ID NAME"),
            ("/req-decline", "usage: /req-decline ID"),
            ("/msg", "usage: /msg NAME TEXT"),
            ("/msg bob", "usage: /msg NAME TEXT"),
            ("/history", "usage: /history NAME [N]"),
            (
                "/history bob many",
                "usage: /history NAME [N], N a positive number",
            ),
            (
                "/history bob 0",
                "usage: /history NAME [N], N a positive number",
            ),
            ("/pres-on", "usage: /pres-on NAME"),
            ("/pres-off", "usage: /pres-off NAME"),
            ("/verify bob", "usage: /verify NAME FINGERPRINT"),
            ("/auth", "usage: /auth NAME SECRET [QUESTION]"),
            ("/auth bob", "usage: /auth NAME SECRET [QUESTION]"),
            ("/auth-abort", "usage: /auth-abort NAME"),
            ("/invite", "usage: /invite NAME [--auth]"),
            ("/invite a b", "usage: /invite NAME [--auth]"),
            ("/join 7-a-b", "usage: /join CODE NAME [--auth]"),
            ("/delete", "usage: /delete NAME"),
            ("/fingerprint a b", "usage: /fingerprint [NAME]"),
        ] {
            assert_eq!(err(line), usage, "{line}");
        }
        assert!(err("/req-accept x alice").contains("not a request number"));
        assert!(err("/req-decline x").contains("not a request number"));
    }

    #[test]
    fn file_commands() {
        assert_eq!(
            ok("/send-file bob ~/My Documents/tax return 2025.pdf"),
            Command::SendFile {
                name: "bob".into(),
                path: "~/My Documents/tax return 2025.pdf".into()
            }
        );
        assert_eq!(
            ok("/send-file bob   notes.txt  "),
            Command::SendFile {
                name: "bob".into(),
                path: "notes.txt".into()
            }
        );
        assert_eq!(ok("/files"), Command::Files(None));
        assert_eq!(ok("/files bob"), Command::Files(Some("bob".into())));
        assert_eq!(
            ok("/accept-file 3"),
            Command::AcceptFile {
                id: 3,
                save_as: None,
                overwrite: false
            }
        );
        assert_eq!(
            ok("/accept-file 3 new.txt --overwrite"),
            Command::AcceptFile {
                id: 3,
                save_as: Some("new.txt".into()),
                overwrite: true
            }
        );
        assert_eq!(
            ok("/accept-file #3 --overwrite"),
            Command::AcceptFile {
                id: 3,
                save_as: None,
                overwrite: true
            }
        );
        assert_eq!(
            ok("/accept-file 3 --overwrite my notes.txt"),
            Command::AcceptFile {
                id: 3,
                save_as: Some("my notes.txt".into()),
                overwrite: true
            }
        );
        // Only the flag as a word of its own.
        assert_eq!(
            ok("/accept-file 3 keep--overwrite"),
            Command::AcceptFile {
                id: 3,
                save_as: Some("keep--overwrite".into()),
                overwrite: false
            }
        );
        assert_eq!(ok("/decline-file 4"), Command::DeclineFile(4));
        assert_eq!(ok("/cancel-file #5"), Command::CancelFile(5));
        assert_eq!(ok("/resume-file 6"), Command::ResumeFile(6));
    }

    #[test]
    fn bad_file_commands() {
        for (line, usage) in [
            ("/send-file", "usage: /send-file NAME PATH"),
            ("/send-file bob", "usage: /send-file NAME PATH"),
            ("/files a b", "usage: /files [NAME]"),
            (
                "/accept-file",
                "usage: /accept-file ID [SAVE-AS] [--overwrite]",
            ),
            ("/decline-file", "usage: /decline-file ID"),
            ("/cancel-file 3 4", "usage: /cancel-file ID"),
            ("/resume-file", "usage: /resume-file ID"),
        ] {
            assert_eq!(err(line), usage, "{line}");
        }
        for line in [
            "/accept-file x",
            "/accept-file 0",
            "/accept-file -3 name",
            "/decline-file three",
            "/cancel-file 1.5",
            "/resume-file 99999999999999999999",
        ] {
            assert!(
                err(line).contains("is not a file transfer number (see /files)"),
                "{line}"
            );
        }
    }

    #[test]
    fn group_commands() {
        assert_eq!(ok("/groups"), Command::Groups);
        assert_eq!(
            ok("/group-create crew"),
            Command::GroupCreate("crew".into())
        );
        assert_eq!(ok("/group-leave crew"), Command::GroupLeave("crew".into()));
        assert_eq!(ok("/ghistory crew"), Command::GroupHistory("crew".into()));
        assert_eq!(
            ok("/group-invite crew bob"),
            Command::GroupInvite {
                group: "crew".into(),
                name: "bob".into()
            }
        );
        assert_eq!(
            ok("/group-remove crew bob"),
            Command::GroupRemove {
                group: "crew".into(),
                name: "bob".into()
            }
        );
        assert_eq!(
            ok("/gmsg crew see you  at nine"),
            Command::GroupMsg {
                group: "crew".into(),
                text: "see you  at nine".into()
            }
        );
        for (line, usage) in [
            ("/group-create", "usage: /group-create GROUP"),
            ("/group-create a b", "usage: /group-create GROUP"),
            ("/group-invite crew", "usage: /group-invite GROUP NAME"),
            (
                "/group-remove crew bob carol",
                "usage: /group-remove GROUP NAME",
            ),
            ("/group-leave", "usage: /group-leave GROUP"),
            ("/gmsg crew", "usage: /gmsg GROUP TEXT"),
            ("/ghistory", "usage: /ghistory GROUP"),
        ] {
            assert_eq!(err(line), usage, "{line}");
        }
        for word in [
            "group-create",
            "group-invite",
            "group-remove",
            "group-leave",
            "gmsg",
            "ghistory",
        ] {
            assert!(OUTPUT_HELP.contains(&format!("/{word} ")), "{word}");
        }
    }

    #[test]
    fn auth_takes_a_secret_and_an_optional_question() {
        assert_eq!(
            ok("/auth bob hunter2"),
            Command::Auth {
                name: "bob".into(),
                secret: Zeroizing::new("hunter2".into()),
                question: None,
            }
        );
        assert_eq!(
            ok("/auth bob hunter2 where did we first meet?"),
            Command::Auth {
                name: "bob".into(),
                secret: Zeroizing::new("hunter2".into()),
                question: Some("where did we first meet?".into()),
            }
        );
        assert_eq!(ok("/auth-abort bob"), Command::AuthAbort("bob".into()));
    }

    #[test]
    fn invites_and_joins() {
        assert_eq!(
            ok("/invite bob"),
            Command::Invite {
                name: "bob".into(),
                require_auth: false
            }
        );
        assert_eq!(
            ok("/invite --auth bob"),
            Command::Invite {
                name: "bob".into(),
                require_auth: true
            }
        );
        assert_eq!(
            ok("/join 7-crossover-clockwork alice --auth"),
            Command::Join {
                code: "7-crossover-clockwork".into(),
                name: "alice".into(),
                require_auth: true
            }
        );
    }

    #[test]
    fn unknown_command() {
        assert_eq!(
            err("/frobnicate"),
            "unknown command /frobnicate (/help lists the commands)"
        );
        assert_eq!(err("/"), "unknown command / (/help lists the commands)");
    }

    #[test]
    fn plain_text_needs_a_current_peer() {
        assert!(err("hello").starts_with("commands start with '/'"));
        assert_eq!(
            parse("hello bob", Some("bob")).unwrap(),
            Command::Msg {
                name: "bob".into(),
                text: "hello bob".into()
            }
        );
        // Commands still work with a current peer.
        assert_eq!(parse("/convs", Some("bob")).unwrap(), Command::Convs);
    }

    #[test]
    fn every_command_in_help_parses() {
        for word in [
            "help",
            "address",
            "onion",
            "key",
            "fingerprint",
            "requests",
            "convs",
            "peer",
            "files",
            "groups",
            "quit",
        ] {
            assert!(parse(&format!("/{word}"), None).is_ok(), "{word}");
            assert!(OUTPUT_HELP.contains(&format!("/{word}")), "{word}");
        }
    }

    #[test]
    fn names_coloured_only_when_asked() {
        let mut screen = Screen {
            out: Vec::new(),
            colour: false,
            verified: HashMap::new(),
            authenticated: HashSet::new(),
            progress: Progress::lines(),
        };
        screen.verified.insert("bob".into(), true);
        screen.verified.insert("eve".into(), false);
        screen.authenticated.insert("cyd".into());
        assert_eq!(screen.name("bob"), "bob");
        screen.colour = true;
        assert_eq!(screen.name("bob"), "\x1b[32mbob\x1b[0m");
        assert_eq!(screen.name("eve"), "\x1b[31meve\x1b[0m");
        assert_eq!(screen.name("cyd"), "\x1b[36mcyd\x1b[0m");
        assert_eq!(screen.name("unknown"), "unknown");
    }

    #[test]
    fn event_lines_are_stamped() {
        let mut screen = Screen {
            out: Vec::new(),
            colour: false,
            verified: HashMap::new(),
            authenticated: HashSet::new(),
            progress: Progress::lines(),
        };
        screen.event("<bob> hi");
        let text = String::from_utf8(screen.out).unwrap();
        let (stamp, rest) = text.split_at(11);
        assert_eq!(rest, "<bob> hi\n");
        let digits: Vec<bool> = stamp.chars().map(|c| c.is_ascii_digit()).collect();
        assert_eq!(
            digits,
            [
                false, true, true, false, true, true, false, true, true, false, false
            ],
            "{stamp:?}"
        );
        assert!(stamp.starts_with('[') && stamp.ends_with("] "), "{stamp:?}");
    }

    /// Waits (with a guard against hangs) for the event `pick` accepts, showing
    /// every event in `session` as the line interface does.
    async fn shown_until<T>(
        session: &mut Session<Vec<u8>>,
        events: &mut tokio::sync::broadcast::Receiver<Event>,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let event = events.recv().await.unwrap();
                session.show_event(&event);
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
        })
        .await
        .expect("the event never came")
    }

    async fn loopback_node(
        net: &nightjar_tor::loopback::LoopbackNetwork,
        downloads: std::path::PathBuf,
    ) -> Node {
        let store = nightjar_store::Store::in_memory(&nightjar_node::new_profile()).unwrap();
        nightjar_node::start(nightjar_node::NodeConfig {
            store,
            transport: net.transport(),
            ephemeral: true,
            rendezvous: nightjar_node::Rendezvous::default(),
            offline: nightjar_node::OfflineConfig::default(),
            files: nightjar_node::FilesConfig {
                downloads,
                max_incoming: 1 << 30,
            },
            shaping: nightjar_node::ShapingConfig::UNSHAPED,
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_through_two_sessions() {
        let net = nightjar_tor::loopback::LoopbackNetwork::new();
        let dir = tempfile::tempdir().unwrap();
        let downloads = dir.path().join("bob downloads");
        let alice = loopback_node(&net, dir.path().join("alice downloads")).await;
        let bob = loopback_node(&net, downloads.clone()).await;
        let (mut alice_events, mut bob_events) = (alice.subscribe(), bob.subscribe());
        let (mut a, mut b) = (
            Session::collecting(alice.clone()),
            Session::collecting(bob.clone()),
        );
        let address = bob.info().await.unwrap().address;
        a.handle(&format!("/req-send {address} bob")).await;
        let request = shown_until(&mut b, &mut bob_events, |e| match e {
            Event::RequestReceived { request } => Some(request.id),
            _ => None,
        })
        .await;
        b.handle(&format!("/req-accept {request} alice")).await;
        shown_until(&mut a, &mut alice_events, |e| {
            matches!(e, Event::ContactAdded { .. }).then_some(())
        })
        .await;
        a.take_lines();
        b.take_lines();

        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let source = dir.path().join("a file.bin");
        std::fs::write(&source, &data).unwrap();
        a.handle(&format!("/send-file bob {}", source.display()))
            .await;
        let lines = a.take_lines();
        assert!(
            lines
                .last()
                .is_some_and(|l| l.ends_with("] file #1 to bob: \"a file.bin\" offered")),
            "{lines:?}"
        );

        let id = shown_until(&mut b, &mut bob_events, |e| match e {
            Event::FileOffered { transfer } => Some(transfer.id),
            _ => None,
        })
        .await;
        let lines = b.take_lines();
        let offer = format!("] file #{id} from alice: \"a file.bin\" (195.3 KB, blake3 ");
        let answer = format!("…) — /accept-file {id} or /decline-file {id}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&offer) && l.ends_with(&answer)),
            "{lines:?}"
        );

        b.handle("/accept-file 999").await;
        assert_eq!(b.take_lines(), ["error: no file transfer #999"]);
        b.handle(&format!("/accept-file {id} kept copy.bin")).await;
        let lines = b.take_lines();
        assert!(
            lines.last().is_some_and(|l| l.ends_with(&format!(
                "] file #{id} from alice: \"a file.bin\" accepted; it will be saved as \
                 \"kept copy.bin\""
            ))),
            "{lines:?}"
        );
        shown_until(&mut b, &mut bob_events, |e| match e {
            Event::FileState { transfer }
                if transfer.state == nightjar_node::TransferState::Completed =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
        let saved = downloads.join("kept copy.bin");
        let lines = b.take_lines();
        assert!(
            lines.last().is_some_and(|l| l.ends_with(&format!(
                "] file #{id} from alice: \"a file.bin\" saved to {}",
                saved.display()
            ))),
            "{lines:?}"
        );
        assert_eq!(std::fs::read(&saved).unwrap(), data);
        b.handle("/files alice").await;
        assert_eq!(
            b.take_lines(),
            [format!(
                "#{id} <- alice \"a file.bin\" 195.3 KB completed ({})",
                saved.display()
            )]
        );

        shown_until(&mut a, &mut alice_events, |e| match e {
            Event::FileState { transfer }
                if transfer.state == nightjar_node::TransferState::Completed =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
        let lines = a.take_lines();
        assert!(
            lines
                .last()
                .is_some_and(|l| l.ends_with("] file #1 to bob: \"a file.bin\" delivered")),
            "{lines:?}"
        );
        a.handle("/cancel-file 1").await;
        assert_eq!(a.take_lines(), ["error: file transfer #1 is completed"]);

        alice.shutdown().await.unwrap();
        bob.shutdown().await.unwrap();
    }

    #[test]
    fn text_from_others_stays_on_one_line() {
        assert_eq!(clean("a\nb\x1b[2J"), "a b [2J");
        // A right-to-left override would show "gpj.exe" backwards; zero-width
        // characters hide in names.
        assert_eq!(clean("photo\u{202E}gpj.exe"), "photogpj.exe");
        assert_eq!(clean("b\u{200B}ob\u{FEFF}"), "bob");
    }
}

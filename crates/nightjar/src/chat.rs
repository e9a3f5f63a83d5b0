//! `nightjar chat`: a one-shot conversation between two people, with no profile
//! and nothing on disk.
//!
//! `nightjar chat --listen` makes a throwaway identity and a throwaway onion
//! service with restricted discovery (one fresh client-authorization key), prints a
//! connection string ([`Ticket`]) and waits for one peer. `nightjar chat STRING`
//! reaches that service with the key from the string and runs the link handshake
//! expecting the identity from the string. `--invite` and `--join CODE` do the
//! same, but the string travels through a wormhole opened by a short code
//! ([`invite`]). Then both sides send what they type and print what they receive;
//! `/quit` or the end of input ends the chat for both.
//!
//! # Authentication
//!
//! The first message each side sends on the link is its *opening*: `smp` holding
//! one byte, `0x01` when that side requires shared-secret authentication before
//! chatting (`--auth`), `0x00` when not (SMP steps are never one byte long). Each
//! side waits for the other's opening before anything else. When either requires
//! it, both are asked for the secret and no text is sent or shown until an SMP
//! run ([`nightjar_node::auth`]) succeeds; a failed run can be retried or the chat left. In any
//! chat, `/auth SECRET [QUESTION]` runs SMP on demand.

mod invite;
mod ticket;

use std::io::Write;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use nightjar_node::link::{Link, Pacing};
use nightjar_proto::message::Message;
use nightjar_tor::Transport;
use nightjar_wormhole::Code;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite};

pub use self::ticket::Ticket;
use crate::oneshot::{self, Console, LinkUp, Next, status, text_message};
use crate::startup::TorArgs;
use nightjar_node::AuthOutcome as Outcome;
use nightjar_node::auth::{Action, AuthState, Binding};

/// Options of `nightjar chat`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: the listener prints the connection string (with --invite, the code) alone \
on one line of stdout; received messages are printed to stdout as `<peer> TEXT`, \
one per line. Progress, authentication and the end of the chat (`peer left`) go to \
stderr. Exit status 0 when either side quit, 1 when the connection was lost or \
could not be made, or the code was wrong.\n\n\
In the chat: /quit to leave; /auth SECRET [QUESTION] to check that the other side \
knows SECRET (the question is shown to them).")]
pub struct ChatArgs {
    /// Wait for someone to connect, and print the string they need.
    #[arg(long, conflicts_with_all = ["string", "invite", "join"])]
    listen: bool,
    /// Wait for someone to connect, and print a short code for them to type with
    /// --join (it is sent through the rendezvous server).
    #[arg(long, conflicts_with_all = ["string", "join"])]
    invite: bool,
    /// Connect with the code printed by `nightjar chat --invite`.
    #[arg(long, value_name = "CODE", conflicts_with = "string")]
    join: Option<String>,
    /// Require shared-secret authentication (SMP) before chatting; the other side
    /// is asked for the secret too.
    #[arg(long)]
    auth: bool,
    /// The connection string (`njchat1…`) printed by `nightjar chat --listen`.
    #[arg(value_name = "STRING", required_unless_present_any = ["listen", "invite", "join"])]
    string: Option<String>,
    #[command(flatten)]
    tor: TorArgs,
}

const PROLOGUE: &[u8] = b"nightjar/v1/link chat";
/// Opening bytes: whether the sender requires authentication.
const OPENING_PLAIN: u8 = 0x00;
const OPENING_AUTH: u8 = 0x01;

/// How a chat ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// We quit (`/quit` or end of input); the peer was told.
    WeQuit,
    /// The peer quit.
    PeerLeft,
    /// The stream ended without a goodbye.
    Lost,
}

/// How the listener hands over its connection string.
enum Handover<'a> {
    Print,
    Invite(&'a nightjar_node::Rendezvous),
}

/// Runs `nightjar chat`.
pub async fn run(args: ChatArgs) -> Result<()> {
    // A bad string or code is refused before Tor starts.
    let ticket = match &args.string {
        Some(s) => Some(s.parse::<Ticket>()?),
        None => None,
    };
    let code = match &args.join {
        Some(c) => Some(Code::parse(c).context("this is not an invite code")?),
        None => None,
    };
    let ending = oneshot::with_tor(&args.tor, async |transport: &dyn Transport| {
        let mut link_up = match (ticket, code) {
            (Some(ticket), _) => dial(transport, &ticket).await?,
            (None, Some(code)) => {
                status("opening the wormhole …");
                let ticket = invite::receive_ticket(transport, &args.tor.rendezvous, &code).await?;
                dial(transport, &ticket).await?
            }
            (None, None) if args.invite => {
                listen(transport, Handover::Invite(&args.tor.rendezvous)).await?
            }
            (None, None) => listen(transport, Handover::Print).await?,
        };
        converse(&mut link_up, args.auth).await
    })
    .await?;
    match ending {
        Ending::WeQuit | Ending::PeerLeft => Ok(()),
        Ending::Lost => bail!("the connection was lost"),
    }
}

async fn listen(
    tor: &dyn Transport,
    handover: Handover<'_>,
) -> Result<LinkUp<nightjar_tor::BoxStream>> {
    let oneshot::Published {
        service,
        identity,
        ticket,
    } = oneshot::publish(tor, "chat").await?;
    match handover {
        Handover::Print => {
            status("give this string to the one person you want to talk to:");
            oneshot::print_ticket(&ticket);
        }
        Handover::Invite(rendezvous) => {
            status("asking the rendezvous server for a code …");
            let (code, pending) = invite::allocate(tor, rendezvous).await?;
            status(
                "tell this code to the one person you want to talk to; they run `nightjar chat --join CODE`:",
            );
            println!("{}", code.as_str());
            let _ = std::io::stdout().flush();
            status("waiting for them to type the code …");
            invite::send_ticket(pending, &ticket).await?;
        }
    }
    drop(ticket);
    status("waiting for them to connect …");
    let link = loop {
        let stream = service
            .accept()
            .await
            .context("the onion service stopped accepting")?;
        match Link::answer(stream, &identity, PROLOGUE, Pacing::Immediate).await {
            Ok(link) => break link,
            Err(e) => tracing::debug!("dropped an incoming stream: {e}"),
        }
    };
    // One peer only: nobody else may connect from now on.
    if let Err(e) = service.shutdown().await {
        tracing::debug!("service shutdown: {e}");
    }
    Ok(LinkUp { link, identity })
}

async fn dial(tor: &dyn Transport, ticket: &Ticket) -> Result<LinkUp<nightjar_tor::BoxStream>> {
    oneshot::dial(tor, ticket, "chat", PROLOGUE).await
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    up: &mut LinkUp<S>,
    require_auth: bool,
) -> Result<Ending> {
    status("connected, end-to-end encrypted.");
    let mut console = oneshot::std_console();
    let ours = *up.identity.public().signing_key().as_bytes();
    let ending = chat_loop(&mut up.link, &mut console, ours, require_auth).await?;
    match ending {
        Ending::PeerLeft => status("peer left"),
        Ending::Lost => status("the connection was lost"),
        Ending::WeQuit => status("you left"),
    }
    Ok(ending)
}

/// A chat's state besides the link.
struct Chat {
    auth: AuthState,
    binding: Binding,
    /// Either side requires a successful authentication before texts.
    required: bool,
    authenticated: bool,
}

impl Chat {
    fn texts_allowed(&self) -> bool {
        !self.required || self.authenticated
    }
}

/// Sends our opening and waits for the peer's; returns whether the peer requires
/// authentication, and a first message that was not an opening (from a peer
/// that sends none), to be handled as usual.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut Link<S>,
    require_auth: bool,
) -> Result<Option<(bool, Option<Message>)>> {
    let byte = if require_auth {
        OPENING_AUTH
    } else {
        OPENING_PLAIN
    };
    link.send(&Message::Smp(vec![byte]))
        .await
        .context("the connection failed")?;
    let first = link.recv().await.context("the connection failed")?;
    let opening = match &first {
        None => return Ok(None),
        Some(Message::Smp(b)) if b.len() == 1 => Some(b.first() == Some(&OPENING_AUTH)),
        Some(_) => None,
    };
    Ok(Some(match opening {
        Some(theirs) => (theirs, None),
        None => (false, first),
    }))
}

/// The conversation: lines from the console go to the peer as texts, texts from
/// the peer are written to its `out` as `<peer> TEXT`. Ends on `/quit` or the end
/// of input (telling the peer), on the peer's quit, or when the stream ends.
/// `ours` is our identity key; `require_auth` asks for authentication before any
/// text.
pub async fn chat_loop<S, R, W, E>(
    link: &mut Link<S>,
    console: &mut Console<R, W, E>,
    ours: [u8; 32],
    require_auth: bool,
) -> Result<Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
    W: Write,
    E: Write,
{
    let Some((theirs_require, first)) = open(link, require_auth).await? else {
        return Ok(Ending::Lost);
    };
    let binding = Binding {
        ours,
        theirs: *link.peer().signing_key().as_bytes(),
        session_id: link.session_id(),
    };
    let mut chat = Chat {
        auth: AuthState::Idle,
        binding,
        required: require_auth || theirs_require,
        authenticated: false,
    };
    if theirs_require {
        console.note("the other side asks for a shared secret; type it:")?;
    } else if require_auth {
        console.note("you asked for a shared secret; type it:")?;
    }
    if chat.required {
        console.note(
            "(or /auth SECRET QUESTION to ask them a question; nothing is sent before it matches)",
        )?;
    } else {
        console.note("Type a message and press Enter; /quit to leave.")?;
    }
    if let Some(message) = first
        && let Some(ending) = on_message(link, console, &mut chat, message).await?
    {
        return Ok(ending);
    }
    let mut input_open = true;
    loop {
        let ending = match oneshot::next(link, &mut console.input, &mut input_open).await? {
            Next::Closed => return Ok(Ending::Lost),
            Next::Received(message) => on_message(link, console, &mut chat, message).await?,
            Next::Typed(line) => {
                let line = line.as_deref().map(String::as_str);
                on_line(link, console, &mut chat, line).await?
            }
        };
        if let Some(ending) = ending {
            return Ok(ending);
        }
    }
}

/// A message from the peer; `Some` when it ends the chat.
async fn on_message<S, R, W, E>(
    link: &mut Link<S>,
    console: &mut Console<R, W, E>,
    chat: &mut Chat,
    message: Message,
) -> Result<Option<Ending>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: Write,
    E: Write,
{
    match &message {
        Message::Text { body, .. } if chat.texts_allowed() => console.said("peer", body)?,
        Message::Text { .. } => {
            tracing::debug!("dropped a text that came before authentication");
        }
        Message::Quit => {
            // Hanging up tells the leaver its goodbye arrived.
            let _ = link.finish().await;
            return Ok(Some(Ending::PeerLeft));
        }
        // A late opening changes nothing.
        Message::Smp(step) if step.len() == 1 => {}
        Message::Smp(step) => match chat.auth.receive(&chat.binding, step) {
            Action::Nothing => {}
            Action::Send(reply) => send_step(link, reply).await?,
            Action::Ask { question } => {
                if let Some(q) = question {
                    console.note(&format!("the other side asks: {}", crate::cli::clean(&q)))?;
                }
                if chat.required && !chat.authenticated {
                    console.note("the other side asks for a shared secret; type it:")?;
                } else {
                    console.note(
                        "the other side asks for a shared secret; answer with /auth SECRET",
                    )?;
                }
            }
            Action::Finished { outcome, send } => {
                if let Some(reply) = send {
                    send_step(link, reply).await?;
                }
                report(console, chat, outcome)?;
            }
        },
        _ => {}
    }
    Ok(None)
}

fn report<R, W, E: Write>(
    console: &mut Console<R, W, E>,
    chat: &mut Chat,
    outcome: Outcome,
) -> Result<()> {
    let why = match outcome {
        Outcome::Succeeded => {
            chat.authenticated = true;
            console.note("authenticated")?;
            if chat.required {
                console.note("Type a message and press Enter; /quit to leave.")?;
            }
            return Ok(());
        }
        Outcome::Failed => "the secrets do not match",
        Outcome::Cheated => "the other side broke the protocol",
        Outcome::Aborted => "the other side gave up",
    };
    console.note(why)?;
    console.note("authentication failed; /auth to try again or /quit to leave")
}

async fn send_step<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut Link<S>,
    step: Vec<u8>,
) -> Result<()> {
    link.send(&Message::Smp(step))
        .await
        .context("the connection failed")?;
    Ok(())
}

/// A line our user typed (`None`: the end of input); `Some` when it ends the
/// chat.
async fn on_line<S, R, W, E>(
    link: &mut Link<S>,
    console: &mut Console<R, W, E>,
    chat: &mut Chat,
    line: Option<&str>,
) -> Result<Option<Ending>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Write,
{
    let line = line.map(str::trim_end);
    match line {
        None | Some("/quit") => {
            oneshot::say_goodbye(link).await?;
            return Ok(Some(Ending::WeQuit));
        }
        Some("") => {}
        Some(command) if command == "/auth" || command.starts_with("/auth ") => {
            let rest = command.trim_start_matches("/auth").trim();
            let (secret, question) = match rest.split_once(char::is_whitespace) {
                Some((secret, question)) => (secret, Some(question.trim())),
                None => (rest, None),
            };
            if secret.is_empty() {
                console.note("usage: /auth SECRET [QUESTION]")?;
            } else {
                authenticate(link, console, chat, secret, question).await?;
            }
        }
        Some(text) if chat.texts_allowed() => {
            link.send(&text_message(text))
                .await
                .context("the connection failed")?;
        }
        // Before a required authentication, a line is the secret.
        Some(_) if chat.auth.is_waiting() => {
            console.note("waiting for the other side to type the secret …")?;
        }
        Some(secret) => authenticate(link, console, chat, secret, None).await?,
    }
    Ok(None)
}

async fn authenticate<S, R, W, E>(
    link: &mut Link<S>,
    console: &mut Console<R, W, E>,
    chat: &mut Chat,
    secret: &str,
    question: Option<&str>,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Write,
{
    let answering = chat.auth.is_asked();
    match chat.auth.start(&chat.binding, secret.as_bytes(), question) {
        Ok(steps) => {
            for step in steps {
                send_step(link, step).await?;
            }
            if !answering {
                console.note("checking the secret with the other side …")?;
            }
        }
        Err(e) => console.note(&e)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use nightjar_node::link::os_rng;
    use nightjar_proto::identity::IdentityKeyPair;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, DuplexStream};
    use tokio::sync::mpsc;

    type Key = [u8; 32];

    /// Both ends of a link over an in-memory pipe, with each side's identity key.
    async fn linked() -> ((Link<DuplexStream>, Key), (Link<DuplexStream>, Key)) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let listener = IdentityKeyPair::generate(&mut os_rng());
        let dialler = IdentityKeyPair::generate(&mut os_rng());
        let expected = *listener.public().signing_key();
        let (answered, dialled) = tokio::join!(
            Link::answer(a, &listener, PROLOGUE, Pacing::Immediate),
            Link::dial(b, &dialler, &expected, PROLOGUE, Pacing::Immediate)
        );
        (
            (
                answered.unwrap(),
                *listener.public().signing_key().as_bytes(),
            ),
            (dialled.unwrap(), *dialler.public().signing_key().as_bytes()),
        )
    }

    /// A writer that hands over each complete line.
    struct Tap(mpsc::UnboundedSender<String>, Vec<u8>);

    impl Write for Tap {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.1.extend_from_slice(buf);
            while let Some(end) = self.1.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.1.drain(..=end).collect();
                let _ = self
                    .0
                    .send(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// One side of a chat run in a task: its keyboard, its stdout and its notes.
    struct Side {
        keys: DuplexStream,
        out: mpsc::UnboundedReceiver<String>,
        notes: mpsc::UnboundedReceiver<String>,
        end: tokio::task::JoinHandle<Result<Ending>>,
    }

    fn spawn(link: Link<DuplexStream>, key: Key, require_auth: bool) -> Side {
        let (keys, typed) = tokio::io::duplex(1024);
        let (out_tx, out) = mpsc::unbounded_channel();
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let end = tokio::spawn(async move {
            let mut link = link;
            let mut console = Console {
                input: BufReader::new(typed).lines(),
                out: Tap(out_tx, Vec::new()),
                notes: Tap(notes_tx, Vec::new()),
            };
            chat_loop(&mut link, &mut console, key, require_auth).await
        });
        Side {
            keys,
            out,
            notes,
            end,
        }
    }

    impl Side {
        async fn type_line(&mut self, line: &str) {
            self.keys
                .write_all(format!("{line}\n").as_bytes())
                .await
                .unwrap();
        }

        /// Waits (with a hang guard) for a note; returns the notes before it.
        async fn note(&mut self, wanted: &str) -> Vec<String> {
            let mut before = Vec::new();
            loop {
                let note = tokio::time::timeout(Duration::from_secs(30), self.notes.recv())
                    .await
                    .expect("hang guard")
                    .unwrap_or_else(|| panic!("no note {wanted:?} after {before:?}"));
                if note == wanted {
                    return before;
                }
                before.push(note);
            }
        }

        async fn line(&mut self) -> String {
            tokio::time::timeout(Duration::from_secs(30), self.out.recv())
                .await
                .expect("hang guard")
                .expect("output ended")
        }
    }

    #[tokio::test]
    async fn texts_cross_and_quit_ends_both() {
        let ((a, a_key), (b, b_key)) = linked().await;
        let mut a = spawn(a, a_key, false);
        let mut b = spawn(b, b_key, false);
        a.type_line("hello").await;
        a.type_line("").await;
        a.type_line("second line").await;
        assert_eq!(b.line().await, "<peer> hello");
        assert_eq!(b.line().await, "<peer> second line");
        b.type_line("back").await;
        assert_eq!(a.line().await, "<peer> back");
        // One write: the chat stops reading at /quit.
        a.type_line("/quit\nnot sent").await;
        assert_eq!(a.end.await.unwrap().unwrap(), Ending::WeQuit);
        assert_eq!(b.end.await.unwrap().unwrap(), Ending::PeerLeft);
        assert!(b.out.recv().await.is_none());
    }

    #[tokio::test]
    async fn end_of_input_quits() {
        let ((a, a_key), (b, b_key)) = linked().await;
        let mut a = spawn(a, a_key, false);
        let mut b = spawn(b, b_key, false);
        a.type_line("bye").await;
        drop(a.keys);
        assert_eq!(b.line().await, "<peer> bye");
        assert_eq!(a.end.await.unwrap().unwrap(), Ending::WeQuit);
        assert_eq!(b.end.await.unwrap().unwrap(), Ending::PeerLeft);
    }

    #[tokio::test]
    async fn stream_closed_without_goodbye_is_lost() {
        let ((mut a, _), (b, b_key)) = linked().await;
        a.send(&Message::Smp(vec![OPENING_PLAIN])).await.unwrap();
        a.finish().await.unwrap();
        let b = spawn(b, b_key, false);
        assert_eq!(b.end.await.unwrap().unwrap(), Ending::Lost);
        drop(a);
    }

    #[tokio::test]
    async fn required_authentication_gates_texts_until_secrets_match() {
        let ((a, a_key), (b, b_key)) = linked().await;
        // Only A requires it; B learns so from A's opening.
        let mut a = spawn(a, a_key, true);
        let mut b = spawn(b, b_key, false);
        a.note("you asked for a shared secret; type it:").await;
        b.note("the other side asks for a shared secret; type it:")
            .await;
        // Both type at once: the runs cross, and one of them decides.
        a.type_line("tulip").await;
        b.type_line("rose").await;
        let failed = "authentication failed; /auth to try again or /quit to leave";
        assert!(
            a.note(failed)
                .await
                .contains(&"the secrets do not match".to_owned())
        );
        assert!(
            b.note(failed)
                .await
                .contains(&"the secrets do not match".to_owned())
        );
        // Lines are secrets until it matches: nothing reached either screen.
        a.type_line("tulip").await;
        b.type_line("tulip").await;
        a.note("authenticated").await;
        b.note("authenticated").await;
        b.type_line("hi").await;
        assert_eq!(a.line().await, "<peer> hi");
        a.type_line("/quit").await;
        assert_eq!(a.end.await.unwrap().unwrap(), Ending::WeQuit);
        assert_eq!(b.end.await.unwrap().unwrap(), Ending::PeerLeft);
        assert!(a.out.recv().await.is_none());
        assert!(b.out.recv().await.is_none());
    }

    #[tokio::test]
    async fn auth_on_demand_with_a_question() {
        let ((a, a_key), (b, b_key)) = linked().await;
        let mut a = spawn(a, a_key, false);
        let mut b = spawn(b, b_key, false);
        a.type_line("before").await;
        assert_eq!(b.line().await, "<peer> before");
        a.type_line("/auth tulip which flower did we plant?").await;
        b.note("the other side asks: which flower did we plant?")
            .await;
        b.note("the other side asks for a shared secret; answer with /auth SECRET")
            .await;
        b.type_line("/auth tulip").await;
        a.note("authenticated").await;
        b.note("authenticated").await;
        // A mismatch on demand is reported too, and the chat goes on.
        b.type_line("/auth rose").await;
        a.note("the other side asks for a shared secret; answer with /auth SECRET")
            .await;
        a.type_line("/auth tulip").await;
        a.note("authentication failed; /auth to try again or /quit to leave")
            .await;
        b.note("authentication failed; /auth to try again or /quit to leave")
            .await;
        b.type_line("after").await;
        assert_eq!(a.line().await, "<peer> after");
        drop(b.keys);
        assert_eq!(b.end.await.unwrap().unwrap(), Ending::WeQuit);
        assert_eq!(a.end.await.unwrap().unwrap(), Ending::PeerLeft);
    }
}

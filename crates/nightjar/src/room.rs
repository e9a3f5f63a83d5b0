//! `nightjar room`: a one-shot group room for several people, with no profile
//! and nothing on disk.
//!
//! `nightjar room --listen` makes a throwaway identity and onion service with
//! restricted discovery, exactly as `nightjar chat --listen` does
//! ([`crate::oneshot`]), prints the same kind of connection string ([`Ticket`])
//! and accepts up to `--max` participants. Each participant dials with
//! `nightjar room STRING` and runs the link handshake (prologue
//! `"nightjar/v1/link room"`), so every link has its own double ratchet. The host
//! keeps one task per link ([`member`]) and one loop that owns who is in the room
//! ([`host_loop`]); it relays each participant's text to everyone else and takes
//! part itself.
//!
//! # Wire
//!
//! On each link, the participant's first message is a room `hello` with the nick
//! it wants; the host answers with `welcome` (its final nick, made unique with a
//! `-N` suffix, and who else is present) or `full`. Then the participant sends
//! ordinary `text` messages; the host sends `said` (someone's text, with their
//! nick), `joined` and `left`. `quit` leaves; the host's `quit` ends the room.
//! The encoding is [`nightjar_proto::room`]'s.
//!
//! The host sees every text: links are encrypted to the host, not between
//! participants.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use nightjar_node::link::{Link, Pacing, os_rng};
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::{MAX_TEXT_LEN, Message};
use nightjar_proto::room::{Nick, RoomMessage};
use nightjar_tor::Transport;
use rand_core::Rng as _;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::chat::Ticket;
use crate::oneshot::{self, Console, GOODBYE_WAIT, Next, status, text_message};
use crate::startup::TorArgs;

/// Options of `nightjar room`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: the host prints the connection string alone on one line of stdout. Texts \
are printed to stdout as `<NICK> TEXT`, one per line (never your own); joins and \
leaves (`* NICK joined`, `* NICK left`) and progress go to stderr. Exit status 0 \
when you left or the host ended the room, 1 when the connection was lost or could \
not be made, or the room was full.\n\n\
In the room: /who lists who is here; /quit leaves. The host's /quit ends the room \
for everyone.\n\n\
Privacy: each participant's link is end-to-end encrypted to the host, not between \
participants: the host relays every text, so the host reads them all. There is no \
forward secrecy beyond each link's own ratchet. Nothing is written to disk; \
whoever holds the string can join, so give it only to the people you want in the \
room.")]
pub struct RoomArgs {
    /// Open a room: print the string the others need, and wait for them.
    #[arg(long, conflicts_with = "string")]
    listen: bool,
    /// The nick shown to the others (at most 32 characters, no spaces); the host
    /// adds a suffix if it is taken. Default: guest-NNNN.
    #[arg(long, value_name = "NICK", value_parser = parse_nick)]
    name: Option<Nick>,
    /// With --listen: the most participants at once, besides you; more are
    /// refused.
    #[arg(long, value_name = "N", default_value_t = 16, requires = "listen",
          value_parser = clap::value_parser!(u16).range(1..=MAX_PARTICIPANTS))]
    max: u16,
    /// The connection string (`njchat1…`) printed by `nightjar room --listen`.
    #[arg(value_name = "STRING", required_unless_present = "listen")]
    string: Option<String>,
    #[command(flatten)]
    tor: TorArgs,
}

const PROLOGUE: &[u8] = b"nightjar/v1/link room";
/// The largest `--max`: a welcome lists everyone, host included.
const MAX_PARTICIPANTS: i64 = 128;
/// How long a new connection may take to finish the handshake and say hello.
const ARRIVAL_LIMIT: Duration = Duration::from_secs(60);
/// Messages waiting for one participant; one who falls this far behind is
/// dropped from the room rather than let the host's memory grow.
const QUEUE_LEN: usize = 256;
const TYPE_HINT: &str = "Type a message and press Enter; /who to see who is here, /quit to leave.";

fn parse_nick(text: &str) -> Result<Nick, String> {
    Nick::new(text).map_err(|e| e.to_string())
}

fn guest() -> Result<Nick> {
    let n = os_rng().next_u32() % 10_000;
    Nick::new(&format!("guest-{n:04}")).context("the default nick")
}

/// How a participant's stay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// We left (`/quit` or end of input); the host was told.
    WeLeft,
    /// The host ended the room.
    HostEnded,
    /// The host refused us: the room is full.
    Full,
    /// The stream ended without a goodbye.
    Lost,
}

/// Runs `nightjar room`.
pub async fn run(args: RoomArgs) -> Result<()> {
    // A bad string is refused before Tor starts.
    let ticket = match &args.string {
        Some(s) => Some(s.parse::<Ticket>()?),
        None => None,
    };
    let nick = match args.name.clone() {
        Some(nick) => nick,
        None => guest()?,
    };
    let max = usize::from(args.max);
    oneshot::with_tor(&args.tor, async |tor: &dyn Transport| match &ticket {
        Some(ticket) => join(tor, ticket, nick).await,
        None => host(tor, nick, max).await,
    })
    .await
}

async fn join(tor: &dyn Transport, ticket: &Ticket, nick: Nick) -> Result<()> {
    let mut up = oneshot::dial(tor, ticket, "room", PROLOGUE).await?;
    status("connected to the host, encrypted to the host.");
    let mut console = oneshot::std_console();
    match participant_loop(&mut up.link, &mut console, nick).await? {
        Ending::WeLeft => status("you left"),
        Ending::HostEnded => status("the host ended the room"),
        Ending::Full => bail!("the room is full"),
        Ending::Lost => bail!("the connection was lost"),
    }
    Ok(())
}

/// `here: a, b (you), c`.
fn who(me: &Nick, present: &[Nick]) -> String {
    let mut names: Vec<String> = present.iter().map(ToString::to_string).collect();
    names.push(format!("{me} (you)"));
    format!("here: {}", names.join(", "))
}

/// A line our user typed, as far as both sides read it alike.
enum Typed<'a> {
    Quit,
    Who,
    Nothing,
    Text(&'a str),
}

fn typed<'a, E: Write, R, W>(
    line: Option<&'a Zeroizing<String>>,
    console: &mut Console<R, W, E>,
) -> Result<Typed<'a>> {
    Ok(match line.map(|l| l.trim_end()) {
        None | Some("/quit") => Typed::Quit,
        Some("/who") => Typed::Who,
        Some("") => Typed::Nothing,
        Some(text) if text.len() > MAX_TEXT_LEN => {
            console.note(&format!(
                "not sent: a text has at most {MAX_TEXT_LEN} bytes"
            ))?;
            Typed::Nothing
        }
        Some(text) => Typed::Text(text),
    })
}

/// A participant's side: says hello with `nick`, then sends what is typed and
/// shows what the host relays, until we leave, the host ends the room or the
/// stream ends.
pub async fn participant_loop<S, R, W, E>(
    link: &mut Link<S>,
    console: &mut Console<R, W, E>,
    nick: Nick,
) -> Result<Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
    W: Write,
    E: Write,
{
    link.send(&Message::Room(RoomMessage::Hello { nick }))
        .await
        .context("the connection failed")?;
    let Some(first) = link.recv().await.context("the connection failed")? else {
        return Ok(Ending::Lost);
    };
    let (me, mut present) = match &first {
        Message::Room(RoomMessage::Welcome { nick, present }) => (nick.clone(), present.clone()),
        Message::Room(RoomMessage::Full) => return Ok(Ending::Full),
        Message::Quit => return Ok(Ending::HostEnded),
        _ => bail!("the other side is not a room host"),
    };
    console.note(&format!("you are {me} in the room"))?;
    console.note(&who(&me, &present))?;
    console.note(TYPE_HINT)?;
    let mut input_open = true;
    loop {
        match oneshot::next(link, &mut console.input, &mut input_open).await? {
            Next::Closed => return Ok(Ending::Lost),
            Next::Received(message) => match &message {
                Message::Room(RoomMessage::Said { nick, body }) => {
                    console.said(nick.as_str(), body)?;
                }
                Message::Room(RoomMessage::Joined { nick }) => {
                    console.note(&format!("* {nick} joined"))?;
                    present.push(nick.clone());
                }
                Message::Room(RoomMessage::Left { nick }) => {
                    console.note(&format!("* {nick} left"))?;
                    present.retain(|n| n != nick);
                }
                Message::Quit => {
                    // Hanging up tells the host its goodbye arrived.
                    let _ = link.finish().await;
                    return Ok(Ending::HostEnded);
                }
                _ => {}
            },
            Next::Typed(line) => match typed(line.as_ref(), console)? {
                Typed::Quit => {
                    oneshot::say_goodbye(link).await?;
                    return Ok(Ending::WeLeft);
                }
                Typed::Who => console.note(&who(&me, &present))?,
                Typed::Nothing => {}
                Typed::Text(text) => {
                    link.send(&text_message(text))
                        .await
                        .context("the connection failed")?;
                }
            },
        }
    }
}

async fn host(tor: &dyn Transport, nick: Nick, max: usize) -> Result<()> {
    let oneshot::Published {
        service,
        identity,
        ticket,
    } = oneshot::publish(tor, "room").await?;
    status("give this string to everyone you want in the room:");
    oneshot::print_ticket(&ticket);
    drop(ticket);
    let (arrivals, mut incoming) = mpsc::channel(8);
    let accept = async {
        loop {
            match service.accept().await {
                Ok(stream) => {
                    if arrivals.send(stream).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!("the service stopped accepting: {e}");
                    break;
                }
            }
        }
        // Without a service the room goes on with whoever is in it.
        std::future::pending::<()>().await;
    };
    let mut console = oneshot::std_console();
    let result = tokio::select! {
        result = host_loop(&mut incoming, Arc::new(identity), &mut console, nick, max) => result,
        () = accept => Ok(()),
    };
    if let Err(e) = service.shutdown().await {
        tracing::debug!("service shutdown: {e}");
    }
    status("you ended the room");
    result
}

/// What a participant's task tells the host's loop.
enum Event {
    /// A participant finished the handshake and said hello; `queue` reaches its
    /// link.
    Arrived {
        id: u64,
        nick: Nick,
        queue: mpsc::Sender<Message>,
    },
    /// A participant typed a text.
    Text { id: u64, body: Zeroizing<String> },
    /// A participant's link ended (it left, or was lost).
    Gone { id: u64 },
}

/// The host's side: accepts participants from `incoming`, relays and shows what
/// they say, sends what is typed, and on `/quit` (or the end of input) ends the
/// room for everyone.
pub async fn host_loop<S, R, W, E>(
    incoming: &mut mpsc::Receiver<S>,
    identity: Arc<IdentityKeyPair>,
    console: &mut Console<R, W, E>,
    nick: Nick,
    max: usize,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: AsyncBufRead + Unpin,
    W: Write,
    E: Write,
{
    let (events_tx, mut events) = mpsc::channel(64);
    let mut tasks = JoinSet::new();
    let mut room = Room::new(nick, max);
    let mut next_id = 0u64;
    console.note(&format!("the room is open; you are {}", room.host))?;
    console
        .note("Type a message and press Enter; /who to see who is here, /quit to end the room.")?;
    let mut input_open = true;
    loop {
        tokio::select! {
            Some(stream) = incoming.recv() => {
                while tasks.try_join_next().is_some() {}
                // Room for those who are in, plus as many again on their way in
                // (or to be told that the room is full).
                if tasks.len() >= 2 * max {
                    tracing::debug!("dropped an incoming stream: too many connections");
                    continue;
                }
                next_id += 1;
                tasks.spawn(member(stream, Arc::clone(&identity), next_id, events_tx.clone()));
            }
            Some(event) = events.recv() => room.on_event(event, console)?,
            line = oneshot::next_line(&mut console.input, &mut input_open), if input_open => {
                match typed(line.as_ref(), console)? {
                    Typed::Quit => break,
                    Typed::Who => console.note(&who(&room.host, &room.others(None)))?,
                    Typed::Nothing => {}
                    Typed::Text(text) => {
                        let said = RoomMessage::Said { nick: room.host.clone(), body: text.to_owned() };
                        room.broadcast(None, &said, console)?;
                    }
                }
            }
        }
    }
    // Everyone is told; each task waits for its participant to hang up.
    room.close();
    drop(events);
    let _ = tokio::time::timeout(GOODBYE_WAIT + Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

struct Member {
    nick: Nick,
    queue: mpsc::Sender<Message>,
}

/// Who is in the room, in the order they came; owned by the host's loop.
struct Room {
    host: Nick,
    members: BTreeMap<u64, Member>,
    max: usize,
}

impl Room {
    fn new(host: Nick, max: usize) -> Self {
        Self {
            host,
            members: BTreeMap::new(),
            max,
        }
    }

    fn taken(&self, nick: &Nick) -> bool {
        *nick == self.host || self.members.values().any(|m| m.nick == *nick)
    }

    /// `wanted`, or with the smallest suffix `-2`, `-3`, … that nobody has.
    fn unique(&self, wanted: Nick) -> Nick {
        if !self.taken(&wanted) {
            return wanted;
        }
        let mut n = 2;
        loop {
            let candidate = wanted.with_suffix(n);
            if !self.taken(&candidate) {
                return candidate;
            }
            n += 1;
        }
    }

    /// Everyone but the participant `except`, host first.
    fn others(&self, except: Option<u64>) -> Vec<Nick> {
        let mut nicks = Vec::with_capacity(self.members.len() + 1);
        if except.is_some() {
            nicks.push(self.host.clone());
        }
        nicks.extend(
            self.members
                .iter()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(_, m)| m.nick.clone()),
        );
        nicks
    }

    fn on_event<R, W: Write, E: Write>(
        &mut self,
        event: Event,
        console: &mut Console<R, W, E>,
    ) -> Result<()> {
        match event {
            Event::Arrived { id, nick, queue } => {
                if self.members.len() >= self.max {
                    tracing::debug!("refused a participant: the room is full");
                    // Dropping the queue after this ends the link.
                    let _ = queue.try_send(Message::Room(RoomMessage::Full));
                    return Ok(());
                }
                let nick = self.unique(nick);
                let welcome = RoomMessage::Welcome {
                    nick: nick.clone(),
                    present: self.others(Some(id)),
                };
                if queue.try_send(Message::Room(welcome)).is_err() {
                    return Ok(());
                }
                self.broadcast(None, &RoomMessage::Joined { nick: nick.clone() }, console)?;
                console.note(&format!("* {nick} joined"))?;
                self.members.insert(id, Member { nick, queue });
            }
            Event::Text { id, body } => {
                if let Some(nick) = self.members.get(&id).map(|m| m.nick.clone()) {
                    console.said(nick.as_str(), &body)?;
                    let said = RoomMessage::Said {
                        nick,
                        body: body.to_string(),
                    };
                    self.broadcast(Some(id), &said, console)?;
                }
            }
            Event::Gone { id } => self.remove(id, console)?,
        }
        Ok(())
    }

    /// Removes a participant (if still in) and tells everyone.
    fn remove<R, W, E: Write>(&mut self, id: u64, console: &mut Console<R, W, E>) -> Result<()> {
        if let Some(member) = self.members.remove(&id) {
            console.note(&format!("* {} left", member.nick))?;
            let left = RoomMessage::Left {
                nick: member.nick.clone(),
            };
            self.broadcast(None, &left, console)?;
        }
        Ok(())
    }

    /// Queues `message` for every participant but `except`. One whose queue is
    /// full has fallen too far behind and is dropped.
    fn broadcast<R, W, E: Write>(
        &mut self,
        except: Option<u64>,
        message: &RoomMessage,
        console: &mut Console<R, W, E>,
    ) -> Result<()> {
        let behind: Vec<u64> = self
            .members
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .filter(|(_, m)| m.queue.try_send(Message::Room(message.clone())).is_err())
            .map(|(id, _)| *id)
            .collect();
        for id in behind {
            tracing::debug!("dropped a participant who fell behind");
            self.remove(id, console)?;
        }
        Ok(())
    }

    /// Tells everyone the room is over; their tasks send it and hang up.
    fn close(&mut self) {
        for member in std::mem::take(&mut self.members).into_values() {
            let _ = member.queue.try_send(Message::Quit);
        }
    }
}

/// One participant's connection on the host: the handshake and hello, then
/// between its link and the host's loop until either ends.
async fn member<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    identity: Arc<IdentityKeyPair>,
    id: u64,
    events: mpsc::Sender<Event>,
) {
    let (mut link, nick) =
        match tokio::time::timeout(ARRIVAL_LIMIT, arrive(stream, &identity)).await {
            Ok(Ok(arrived)) => arrived,
            Ok(Err(e)) => {
                tracing::debug!("dropped an incoming stream: {e:#}");
                return;
            }
            Err(_) => {
                tracing::debug!("dropped an incoming stream: no hello in time");
                return;
            }
        };
    let (queue, mut outgoing) = mpsc::channel(QUEUE_LEN);
    if events
        .send(Event::Arrived { id, nick, queue })
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            received = link.recv() => {
                let message = match received {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!("a participant's link failed: {e}");
                        break;
                    }
                };
                match &message {
                    Message::Text { body, .. } => {
                        let body = Zeroizing::new(body.clone());
                        if events.send(Event::Text { id, body }).await.is_err() {
                            break;
                        }
                    }
                    Message::Quit => {
                        let _ = link.finish().await;
                        break;
                    }
                    _ => {}
                }
            }
            out = outgoing.recv() => {
                let Some(message) = out else {
                    // Refused or dropped by the host's loop.
                    let _ = link.finish().await;
                    return;
                };
                if let Err(e) = link.send(&message).await {
                    tracing::debug!("a participant's link failed: {e}");
                    break;
                }
                if message == Message::Quit {
                    let drained = async { while let Ok(Some(_)) = link.recv().await {} };
                    let _ = tokio::time::timeout(GOODBYE_WAIT, drained).await;
                    return;
                }
            }
        }
    }
    let _ = events.send(Event::Gone { id }).await;
}

async fn arrive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    identity: &IdentityKeyPair,
) -> Result<(Link<S>, Nick)> {
    let mut link = Link::answer(stream, identity, PROLOGUE, Pacing::Immediate).await?;
    let first = link.recv().await?;
    match &first {
        Some(Message::Room(RoomMessage::Hello { nick })) => Ok((link, nick.clone())),
        _ => bail!("the first message was not a hello"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    fn member(room: &mut Room, id: u64, name: &str) {
        let (queue, _) = mpsc::channel(1);
        room.members.insert(
            id,
            Member {
                nick: nick(name),
                queue,
            },
        );
    }

    #[test]
    fn taken_nicks_get_the_smallest_free_suffix() {
        let mut room = Room::new(nick("ann"), 16);
        assert_eq!(room.unique(nick("bob")), nick("bob"));
        assert_eq!(room.unique(nick("ann")), nick("ann-2"));
        member(&mut room, 1, "bob");
        member(&mut room, 2, "bob-2");
        assert_eq!(room.unique(nick("bob")), nick("bob-3"));
        let long = "x".repeat(32);
        member(&mut room, 3, &long);
        let unique = room.unique(nick(&long));
        assert_eq!(unique.as_str(), format!("{}-2", "x".repeat(30)));
        assert!(!room.taken(&unique));
    }

    #[test]
    fn who_lists_the_host_first_and_marks_us() {
        let mut room = Room::new(nick("ann"), 16);
        member(&mut room, 1, "bob");
        member(&mut room, 2, "cy");
        assert_eq!(room.others(Some(2)), vec![nick("ann"), nick("bob")]);
        assert_eq!(
            who(&nick("cy"), &room.others(Some(2))),
            "here: ann, bob, cy (you)"
        );
        assert_eq!(
            who(&room.host, &room.others(None)),
            "here: bob, cy, ann (you)"
        );
    }
}

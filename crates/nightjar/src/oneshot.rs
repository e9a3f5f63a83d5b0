//! What `nightjar chat` and `nightjar room` share: Tor started without state, a
//! throwaway identity and onion service with restricted discovery, its connection
//! string ([`Ticket`]), links to and from that service, and how a one-shot
//! conversation reads lines and writes what happens. Nothing here touches the
//! disk.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use nightjar_node::link::{Link, Pacing, os_rng};
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::{Message, MessageId};
use nightjar_tor::{
    BoxStream, ClientAuthPublic, ClientAuthSecret, ConnectOptions, IsolationKey, OnionService,
    ServiceConfig, ServiceKey, ServiceStatus, Transport,
};
use rand_core::Rng as _;
use tokio::io::{AsyncRead, AsyncWrite, Lines};
use zeroize::Zeroizing;

use crate::chat::Ticket;
use crate::startup::{self, TorArgs, TorState};

/// The port a throwaway service answers on.
pub const PORT: u16 = 7000;
/// How long the dialling side keeps trying to reach the service.
const DIAL_LIMIT: Duration = Duration::from_secs(180);
/// How long a leaver waits for the peer to confirm, by hanging up, that it got
/// the goodbye.
pub const GOODBYE_WAIT: Duration = Duration::from_secs(10);

/// Starts Tor with scratch state, runs `body` over it, and shuts Tor down
/// whatever `body` returned.
pub async fn with_tor<T>(
    args: &TorArgs,
    body: impl AsyncFnOnce(&dyn Transport) -> Result<T>,
) -> Result<T> {
    let tor = startup::start_tor(args, TorState::Scratch).await?;
    let result = body(tor.transport.as_ref()).await;
    if let Err(e) = tor.shutdown().await {
        tracing::debug!("{e:#}");
    }
    result
}

/// A link and the identity we hold on it.
pub struct LinkUp<S> {
    /// The link.
    pub link: Link<S>,
    /// Our throwaway identity.
    pub identity: IdentityKeyPair,
}

/// A published throwaway service, the identity it proves, and the string that
/// leads to it.
pub struct Published {
    /// The service; dropping or shutting it down ends it.
    pub service: Box<dyn OnionService>,
    /// The throwaway identity the service's links prove.
    pub identity: IdentityKeyPair,
    /// What a dialler needs: the address, the identity and the one
    /// client-authorization key.
    pub ticket: Ticket,
}

/// Makes a throwaway identity and an ephemeral onion service that only holders
/// of one fresh client-authorization key can discover, and waits until it is
/// published.
pub async fn publish(tor: &dyn Transport, nickname: &str) -> Result<Published> {
    let identity = IdentityKeyPair::generate(&mut os_rng());
    let mut secret = Zeroizing::new([0u8; 32]);
    os_rng().fill_bytes(secret.as_mut());
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret));
    let service = tor
        .launch_service(ServiceConfig {
            nickname: nickname.into(),
            key: ServiceKey::Ephemeral,
            virtual_port: PORT,
            authorized_clients: Some(vec![ClientAuthPublic(public.to_bytes())]),
        })
        .await
        .context("the onion service did not start")?;
    status("publishing the onion service …");
    // Only publication or a breakdown ends the wait: a backend may pass through
    // other states (Arti reports "stopped" before its service first starts).
    let mut published = service.status();
    let state = published
        .wait_for(|s| matches!(s, ServiceStatus::Published | ServiceStatus::Broken(_)))
        .await
        .map(|s| s.clone())
        .unwrap_or(ServiceStatus::Stopped);
    match state {
        ServiceStatus::Published => {}
        ServiceStatus::Broken(why) => bail!("the onion service could not be published: {why}"),
        _ => bail!("the onion service stopped before it was published"),
    }
    let ticket = Ticket {
        onion: service.address(),
        identity: *identity.public().signing_key(),
        client_auth: ClientAuthSecret(*secret),
    };
    Ok(Published {
        service,
        identity,
        ticket,
    })
}

/// Prints the connection string alone on one line of stdout.
pub fn print_ticket(ticket: &Ticket) {
    println!("{ticket}");
    let _ = std::io::stdout().flush();
}

/// Reaches the service in `ticket` with a fresh throwaway identity and runs the
/// link handshake, expecting the identity from the string.
pub async fn dial(
    tor: &dyn Transport,
    ticket: &Ticket,
    isolation: &str,
    prologue: &[u8],
) -> Result<LinkUp<BoxStream>> {
    let identity = IdentityKeyPair::generate(&mut os_rng());
    status("reaching the other side through Tor …");
    let options = ConnectOptions {
        isolation: IsolationKey(isolation.into()),
        client_auth: Some(ticket.client_auth.clone()),
    };
    let stream = tokio::time::timeout(DIAL_LIMIT, async {
        let mut last = None;
        for _ in 0..10 {
            match tor.connect(&ticket.onion, PORT, &options).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    tracing::debug!("connect failed: {e}");
                    last = Some(e);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
        Err(last.map_or_else(|| anyhow::anyhow!("no attempt made"), anyhow::Error::from))
    })
    .await
    .context("the other side could not be reached in time")?
    .context("the other side could not be reached (it may have left)")?;
    let link = Link::dial(
        stream,
        &identity,
        &ticket.identity,
        prologue,
        Pacing::Immediate,
    )
    .await
    .context("the other side could not prove it holds the key in the connection string")?;
    Ok(LinkUp { link, identity })
}

/// Sends `quit`, then waits until the peer hangs up (or [`GOODBYE_WAIT`]):
/// tearing Tor down at once could drop the goodbye on its way.
pub async fn say_goodbye<S: AsyncRead + AsyncWrite + Unpin>(link: &mut Link<S>) -> Result<()> {
    link.send(&Message::Quit)
        .await
        .context("the connection failed")?;
    let drained = async { while let Ok(Some(_)) = link.recv().await {} };
    let _ = tokio::time::timeout(GOODBYE_WAIT, drained).await;
    Ok(())
}

/// Where a conversation reads its lines and writes what happens.
pub struct Console<R, W, E> {
    /// What our user types.
    pub input: Lines<R>,
    /// Received texts, as `<nick> TEXT`.
    pub out: W,
    /// Everything else, for the person at the keyboard.
    pub notes: E,
}

impl<R, W, E: Write> Console<R, W, E> {
    /// Writes a note (stderr, for a real console).
    pub fn note(&mut self, text: &str) -> Result<()> {
        writeln!(self.notes, "{text}")?;
        self.notes.flush()?;
        Ok(())
    }
}

impl<R, W: Write, E> Console<R, W, E> {
    /// Writes a received text as `<nick> TEXT`, both cleaned of control and
    /// invisible characters.
    pub fn said(&mut self, nick: &str, text: &str) -> Result<()> {
        writeln!(
            self.out,
            "<{}> {}",
            crate::cli::clean(nick),
            crate::cli::clean(text)
        )?;
        self.out.flush()?;
        Ok(())
    }
}

/// The console of a real terminal (or pipes): stdin, stdout and stderr.
pub type StdConsole =
    Console<tokio::io::BufReader<tokio::io::Stdin>, std::io::Stdout, std::io::Stderr>;

/// Stdin, stdout and stderr as a console.
pub fn std_console() -> StdConsole {
    use tokio::io::AsyncBufReadExt as _;
    Console {
        input: tokio::io::BufReader::new(tokio::io::stdin()).lines(),
        out: std::io::stdout(),
        notes: std::io::stderr(),
    }
}

/// Reads the next typed line; a read error counts as the end of input (after
/// which `open` is false and nothing more is read).
pub async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    input: &mut Lines<R>,
    open: &mut bool,
) -> Option<Zeroizing<String>> {
    match input.next_line().await {
        Ok(line) => {
            *open = line.is_some();
            line.map(Zeroizing::new)
        }
        Err(e) => {
            tracing::debug!("reading input failed: {e}");
            *open = false;
            None
        }
    }
}

/// What happened next in a conversation.
pub enum Next {
    /// A message arrived on the link.
    Received(Message),
    /// The link ended without a goodbye.
    Closed,
    /// Our user typed a line (`None`: the end of input).
    Typed(Option<Zeroizing<String>>),
}

/// Waits for a message on the link or a typed line, whichever comes first;
/// once the input has ended (`input_open` false) only for the link.
pub async fn next<S, R>(
    link: &mut Link<S>,
    input: &mut Lines<R>,
    input_open: &mut bool,
) -> Result<Next>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: tokio::io::AsyncBufRead + Unpin,
{
    let reading = *input_open;
    // `recv` is cancel-safe (it only awaits a read into a local buffer), so
    // losing the race to a typed line loses nothing.
    tokio::select! {
        received = link.recv() => Ok(match received.context("the connection failed")? {
            Some(message) => Next::Received(message),
            None => Next::Closed,
        }),
        line = next_line(input, input_open), if reading => Ok(Next::Typed(line)),
    }
}

/// A text message with a fresh id and our clock's time.
pub fn text_message(text: &str) -> Message {
    let mut id = [0u8; 16];
    os_rng().fill_bytes(&mut id);
    Message::Text {
        id: MessageId(id),
        sent_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        body: text.to_owned(),
    }
}

/// Progress, for the person at the keyboard.
pub fn status(text: &str) {
    eprintln!("{text}");
}

//! `nightjar chat`: a one-shot conversation between two people, with no profile
//! and nothing on disk.
//!
//! `nightjar chat --listen` makes a throwaway identity and a throwaway onion
//! service with restricted discovery (one fresh client-authorization key), prints a
//! connection string and waits for one peer. `nightjar chat STRING` reaches that
//! service with the key from the string and runs the link handshake expecting the
//! identity from the string. Then both sides send what they type and print what
//! they receive; `/quit` or the end of input ends the chat for both.
//!
//! # Connection string
//!
//! bech32m (BIP 350) with human-readable part `njchat`. Payload:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `0x01` |
//! | 32 | the listener's onion service public key |
//! | 32 | the listener's Ed25519 identity key |
//! | 32 | the X25519 client-authorization secret key for that service |
//!
//! The string holds a secret: whoever has it can find the service and talk to the
//! listener. It is meant to be handed over once, on a channel both trust.

use core::fmt;
use core::str::FromStr;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
use bech32::{Bech32m, Hrp};
use clap::Args;
use ed25519_dalek::VerifyingKey;
use nightjar_node::link::{Link, os_rng};
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::{Message, MessageId};
use nightjar_tor::{
    ClientAuthPublic, ClientAuthSecret, ConnectOptions, IsolationKey, OnionAddress, ServiceConfig,
    ServiceKey, ServiceStatus, Transport,
};
use rand_core::Rng as _;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, AsyncWrite, Lines};
use zeroize::Zeroizing;

use crate::startup::{self, TorArgs, TorState};

/// Options of `nightjar chat`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: the listener prints the connection string alone on one line of stdout; \
received messages are printed to stdout as `<peer> TEXT`, one per line. Progress \
and the end of the chat (`peer left`) go to stderr. Exit status 0 when either side \
quit, 1 when the connection was lost or could not be made.")]
pub struct ChatArgs {
    /// Wait for someone to connect, and print the string they need.
    #[arg(long, conflicts_with = "string")]
    listen: bool,
    /// The connection string (`njchat1…`) printed by `nightjar chat --listen`.
    #[arg(value_name = "STRING", required_unless_present = "listen")]
    string: Option<String>,
    #[command(flatten)]
    tor: TorArgs,
}

/// The human-readable part of a connection string.
pub const HRP: &str = "njchat";
/// The payload version this code writes and reads.
pub const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 32 * 3;
/// The port the listener's service answers on.
pub const PORT: u16 = 7000;
const PROLOGUE: &[u8] = b"nightjar/v1/link chat";
/// How long the dialling side keeps trying to reach the listener.
const DIAL_LIMIT: Duration = Duration::from_secs(180);

/// What a connection string carries.
#[derive(Clone)]
pub struct Ticket {
    /// The listener's onion service.
    pub onion: OnionAddress,
    /// The identity the listener must prove in the handshake.
    pub identity: VerifyingKey,
    /// The key that lets us discover the service.
    pub client_auth: ClientAuthSecret,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket([scrubbed])")
    }
}

/// Why a connection string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// It starts like a connection string but its checksum fails.
    #[error("the connection string has a typo: its checksum does not match")]
    Checksum,
    /// Not a connection string at all.
    #[error("this is not a chat connection string (it should start with `njchat1`)")]
    NotATicket,
    /// Made by a newer nightjar.
    #[error("the connection string was made by a newer version of nightjar (format {0})")]
    UnsupportedVersion(u8),
    /// Wrong length or invalid keys.
    #[error("the connection string is damaged (wrong length or invalid keys)")]
    Malformed,
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = Zeroizing::new(Vec::with_capacity(PAYLOAD_LEN));
        payload.push(VERSION);
        payload.extend_from_slice(self.onion.public_key());
        payload.extend_from_slice(self.identity.as_bytes());
        payload.extend_from_slice(&self.client_auth.0);
        let hrp = Hrp::parse(HRP).map_err(|_| fmt::Error)?;
        // 97 bytes make 156 characters, far below bech32m's limit.
        let text =
            Zeroizing::new(bech32::encode_lower::<Bech32m>(hrp, &payload).map_err(|_| fmt::Error)?);
        f.write_str(&text)
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, TicketError> {
        let checked = CheckedHrpstring::new::<Bech32m>(s.trim()).map_err(|e| match e {
            CheckedHrpstringError::Checksum(_) => TicketError::Checksum,
            _ => TicketError::NotATicket,
        })?;
        if !checked.hrp().as_str().eq_ignore_ascii_case(HRP) {
            return Err(TicketError::NotATicket);
        }
        let payload = Zeroizing::new(checked.byte_iter().collect::<Vec<u8>>());
        let (&version, rest) = payload.split_first().ok_or(TicketError::Malformed)?;
        if version != VERSION {
            return Err(TicketError::UnsupportedVersion(version));
        }
        if rest.len() != PAYLOAD_LEN - 1 {
            return Err(TicketError::Malformed);
        }
        let key = |i: usize| -> Result<[u8; 32], TicketError> {
            rest.get(i * 32..(i + 1) * 32)
                .and_then(|k| k.try_into().ok())
                .ok_or(TicketError::Malformed)
        };
        let onion = key(0)?;
        if VerifyingKey::from_bytes(&onion).is_err() {
            return Err(TicketError::Malformed);
        }
        let identity = VerifyingKey::from_bytes(&key(1)?).map_err(|_| TicketError::Malformed)?;
        Ok(Self {
            onion: OnionAddress::from_public_key(onion),
            identity,
            client_auth: ClientAuthSecret(key(2)?),
        })
    }
}

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

/// Runs `nightjar chat`.
pub async fn run(args: ChatArgs) -> Result<()> {
    // A bad string is refused before Tor starts.
    let ticket = match &args.string {
        Some(s) => Some(s.parse::<Ticket>()?),
        None => None,
    };
    let tor = startup::start_tor(&args.tor, TorState::Scratch).await?;
    let result = match ticket {
        Some(ticket) => dial(tor.transport.as_ref(), &ticket).await,
        None => listen(tor.transport.as_ref()).await,
    };
    if let Err(e) = tor.shutdown().await {
        tracing::debug!("{e:#}");
    }
    match result? {
        Ending::WeQuit | Ending::PeerLeft => Ok(()),
        Ending::Lost => bail!("the connection was lost"),
    }
}

async fn listen(tor: &dyn Transport) -> Result<Ending> {
    let identity = IdentityKeyPair::generate(&mut os_rng());
    let mut secret = Zeroizing::new([0u8; 32]);
    os_rng().fill_bytes(secret.as_mut());
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret));
    let service = tor
        .launch_service(ServiceConfig {
            nickname: "chat".into(),
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
    status("give this string to the one person you want to talk to:");
    println!("{ticket}");
    let _ = std::io::stdout().flush();
    drop(ticket);
    status("waiting for them to connect …");
    let mut link = loop {
        let stream = service
            .accept()
            .await
            .context("the onion service stopped accepting")?;
        match Link::answer(stream, &identity, PROLOGUE).await {
            Ok(link) => break link,
            Err(e) => tracing::debug!("dropped an incoming stream: {e}"),
        }
    };
    // One peer only: nobody else may connect from now on.
    if let Err(e) = service.shutdown().await {
        tracing::debug!("service shutdown: {e}");
    }
    converse(&mut link).await
}

async fn dial(tor: &dyn Transport, ticket: &Ticket) -> Result<Ending> {
    let identity = IdentityKeyPair::generate(&mut os_rng());
    status("reaching the other side through Tor …");
    let options = ConnectOptions {
        isolation: IsolationKey("chat".into()),
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
    let mut link = Link::dial(stream, &identity, &ticket.identity, PROLOGUE)
        .await
        .context("the other side could not prove it holds the key in the connection string")?;
    converse(&mut link).await
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(link: &mut Link<S>) -> Result<Ending> {
    status("connected, end-to-end encrypted. Type a message and press Enter; /quit to leave.");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let ending = chat_loop(link, &mut lines, &mut std::io::stdout()).await?;
    match ending {
        Ending::PeerLeft => status("peer left"),
        Ending::Lost => status("the connection was lost"),
        Ending::WeQuit => status("you left"),
    }
    Ok(ending)
}

/// How long a leaver waits for the peer to confirm, by hanging up, that it got
/// the goodbye.
const GOODBYE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The conversation: lines from `input` go to the peer as texts, texts from the
/// peer are written to `out` as `<peer> TEXT`. Ends on `/quit` or the end of
/// `input` (telling the peer), on the peer's quit, or when the stream ends.
pub async fn chat_loop<S, R, W>(
    link: &mut Link<S>,
    input: &mut Lines<R>,
    out: &mut W,
) -> Result<Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
    W: Write,
{
    let mut input_open = true;
    loop {
        // `recv` is cancel-safe (it only awaits a read into a local buffer), so
        // losing the race to a typed line loses nothing.
        tokio::select! {
            received = link.recv() => match &received.context("the connection failed")? {
                Some(Message::Text { body, .. }) => {
                    writeln!(out, "<peer> {}", crate::cli::clean(body))?;
                    out.flush()?;
                }
                Some(Message::Quit) => {
                    // Hanging up tells the leaver its goodbye arrived.
                    let _ = link.finish().await;
                    return Ok(Ending::PeerLeft);
                }
                Some(_) => {}
                None => return Ok(Ending::Lost),
            },
            line = input.next_line(), if input_open => {
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        tracing::debug!("reading input failed: {e}");
                        input_open = false;
                        None
                    }
                };
                match line.as_deref().map(str::trim_end) {
                    None | Some("/quit") => {
                        link.send(&Message::Quit).await.context("the connection failed")?;
                        // Tearing Tor down at once could drop the goodbye on its
                        // way: wait until the peer hangs up (or a few seconds).
                        let drained = async { while let Ok(Some(_)) = link.recv().await {} };
                        let _ = tokio::time::timeout(GOODBYE_WAIT, drained).await;
                        return Ok(Ending::WeQuit);
                    }
                    Some("") => {}
                    Some(text) => {
                        link.send(&text_message(text)).await.context("the connection failed")?;
                    }
                }
            }
        }
    }
}

fn text_message(text: &str) -> Message {
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

fn status(text: &str) {
    eprintln!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        let listener = IdentityKeyPair::generate(&mut os_rng());
        let onion = IdentityKeyPair::generate(&mut os_rng());
        Ticket {
            onion: OnionAddress::from_public_key(*onion.public().signing_key().as_bytes()),
            identity: *listener.public().signing_key(),
            client_auth: ClientAuthSecret([7; 32]),
        }
    }

    #[test]
    fn round_trip() {
        let t = ticket();
        let text = t.to_string();
        assert!(text.starts_with("njchat1"), "{text}");
        let back: Ticket = text.parse().unwrap();
        assert_eq!(back.onion, t.onion);
        assert_eq!(back.identity, t.identity);
        assert_eq!(back.client_auth.0, t.client_auth.0);
        // Uppercase (as from a QR code) and surrounding blanks are fine.
        let back: Ticket = format!(" {} \n", text.to_ascii_uppercase())
            .parse()
            .unwrap();
        assert_eq!(back.identity, t.identity);
    }

    #[test]
    fn debug_hides_everything() {
        let t = ticket();
        assert_eq!(format!("{t:?}"), "Ticket([scrubbed])");
    }

    #[test]
    fn rejects_typos() {
        let text = ticket().to_string();
        let mut chars: Vec<char> = text.chars().collect();
        let i = 20;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(typo.parse::<Ticket>().unwrap_err(), TicketError::Checksum);
    }

    fn encode(hrp: &str, payload: &[u8]) -> String {
        bech32::encode_lower::<Bech32m>(Hrp::parse(hrp).unwrap(), payload).unwrap()
    }

    #[test]
    fn rejects_malformed() {
        let good = ticket();
        let mut payload = vec![VERSION];
        payload.extend_from_slice(good.onion.public_key());
        payload.extend_from_slice(good.identity.as_bytes());
        payload.extend_from_slice(&[7; 32]);
        assert!(encode(HRP, &payload).parse::<Ticket>().is_ok());

        assert_eq!("".parse::<Ticket>().unwrap_err(), TicketError::NotATicket);
        assert_eq!(
            "hello".parse::<Ticket>().unwrap_err(),
            TicketError::NotATicket
        );
        // A contact address is not a connection string.
        assert_eq!(
            encode("nj", &payload).parse::<Ticket>().unwrap_err(),
            TicketError::NotATicket
        );
        assert_eq!(
            encode(HRP, &payload[..PAYLOAD_LEN - 1])
                .parse::<Ticket>()
                .unwrap_err(),
            TicketError::Malformed
        );
        let mut long = payload.clone();
        long.push(0);
        assert_eq!(
            encode(HRP, &long).parse::<Ticket>().unwrap_err(),
            TicketError::Malformed
        );
        let mut newer = payload.clone();
        newer[0] = 2;
        assert_eq!(
            encode(HRP, &newer).parse::<Ticket>().unwrap_err(),
            TicketError::UnsupportedVersion(2)
        );
        assert_eq!(
            encode(HRP, &[]).parse::<Ticket>().unwrap_err(),
            TicketError::Malformed
        );
    }

    #[test]
    fn rejects_invalid_identity_key() {
        let good = ticket();
        // Not a point on the curve: y = 2 has no x.
        let mut bad_key = [0u8; 32];
        bad_key[0] = 2;
        assert!(VerifyingKey::from_bytes(&bad_key).is_err());
        let mut payload = vec![VERSION];
        payload.extend_from_slice(good.onion.public_key());
        payload.extend_from_slice(&bad_key);
        payload.extend_from_slice(&[7; 32]);
        assert_eq!(
            encode(HRP, &payload).parse::<Ticket>().unwrap_err(),
            TicketError::Malformed
        );
    }

    /// Both ends of a link over an in-memory pipe.
    async fn linked() -> (Link<tokio::io::DuplexStream>, Link<tokio::io::DuplexStream>) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let listener = IdentityKeyPair::generate(&mut os_rng());
        let dialler = IdentityKeyPair::generate(&mut os_rng());
        let expected = *listener.public().signing_key();
        let (answered, dialled) = tokio::join!(
            Link::answer(a, &listener, PROLOGUE),
            Link::dial(b, &dialler, &expected, PROLOGUE)
        );
        (answered.unwrap(), dialled.unwrap())
    }

    fn lines(text: &'static str) -> Lines<tokio::io::BufReader<&'static [u8]>> {
        tokio::io::BufReader::new(text.as_bytes()).lines()
    }

    #[tokio::test]
    async fn texts_cross_and_quit_ends_both() {
        let (mut a, mut b) = linked().await;
        // A types two lines then /quit; B's input stays open until A leaves.
        let (pipe_in, _pipe_keep) = tokio::io::duplex(16);
        let mut b_input = tokio::io::BufReader::new(pipe_in).lines();
        let mut a_out = Vec::new();
        let mut b_out = Vec::new();
        let mut a_input = lines("hello\n\nsecond line\n/quit\nnot sent\n");
        let (a_end, b_end) = tokio::join!(
            chat_loop(&mut a, &mut a_input, &mut a_out),
            chat_loop(&mut b, &mut b_input, &mut b_out)
        );
        assert_eq!(a_end.unwrap(), Ending::WeQuit);
        assert_eq!(b_end.unwrap(), Ending::PeerLeft);
        assert_eq!(
            String::from_utf8(b_out).unwrap(),
            "<peer> hello\n<peer> second line\n"
        );
        assert!(a_out.is_empty());
    }

    #[tokio::test]
    async fn end_of_input_quits() {
        let (mut a, mut b) = linked().await;
        let (pipe_in, _pipe_keep) = tokio::io::duplex(16);
        let mut b_input = tokio::io::BufReader::new(pipe_in).lines();
        let mut a_input = lines("bye");
        let (mut a_out, mut b_out) = (Vec::new(), Vec::new());
        let (a_end, b_end) = tokio::join!(
            chat_loop(&mut a, &mut a_input, &mut a_out),
            chat_loop(&mut b, &mut b_input, &mut b_out)
        );
        assert_eq!(a_end.unwrap(), Ending::WeQuit);
        assert_eq!(b_end.unwrap(), Ending::PeerLeft);
        assert_eq!(String::from_utf8(b_out).unwrap(), "<peer> bye\n");
    }

    #[tokio::test]
    async fn stream_closed_without_goodbye_is_lost() {
        let (a, mut b) = linked().await;
        a.close().await.unwrap();
        let (pipe_in, _pipe_keep) = tokio::io::duplex(16);
        let mut b_input = tokio::io::BufReader::new(pipe_in).lines();
        let end = chat_loop(&mut b, &mut b_input, &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(end, Ending::Lost);
    }
}

//! A small client for tor's control port (control-spec): cookie authentication,
//! typed commands for what nightjar needs, and asynchronous events.
//!
//! One task writes commands and one reads replies; the reader hands each reply
//! to the oldest waiting command (tor answers in order) and events (code 650) to
//! the [`EventReceiver`]. Commands are cancel-safe: a command whose caller gave
//! up is still written whole and its reply discarded. Dropping every
//! [`Controller`] clone closes the connection, and tor then removes the onion
//! services added on it (and exits, after `TAKEOWNERSHIP`).

mod auth;
mod events;
mod reply;

use core::fmt;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::sync::{mpsc, oneshot, watch};
use zeroize::Zeroizing;

pub use events::{BootstrapEvent, Event, HsDescAction, HsDescEvent};
pub use reply::{Args, ParseError, Reply, ReplyLine, quote, unquote};

use crate::{ClientAuthPublic, ClientAuthSecret, TorError};

/// Where tor's control port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAddr {
    /// A TCP port; loopback only.
    Tcp(SocketAddr),
    /// A unix socket.
    Unix(PathBuf),
}

impl fmt::Display for ControlAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Events from one control connection, once subscribed with
/// [`Controller::set_events`]. Ends when the connection closes.
pub type EventReceiver = mpsc::UnboundedReceiver<Event>;

type Reader = BufReader<Box<dyn AsyncRead + Send + Unpin>>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Commands waiting for their replies, in the order they were written.
#[derive(Default)]
struct Pending {
    queue: VecDeque<oneshot::Sender<Reply>>,
    closed: Option<String>,
}

struct Inner {
    commands: mpsc::UnboundedSender<(Zeroizing<Vec<u8>>, oneshot::Sender<Reply>)>,
    pending: Arc<Mutex<Pending>>,
    closed: watch::Receiver<Option<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A connection to tor's control port. Clones share the connection.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("closed", &self.closed_reason())
            .finish()
    }
}

fn lock(p: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    // A panic while holding this lock cannot leave the queue inconsistent.
    p.lock().unwrap_or_else(|e| e.into_inner())
}

fn closed_error(reason: &str) -> TorError {
    TorError::Protocol(format!("the control connection to tor closed ({reason})"))
}

impl Controller {
    /// Connects (without authenticating; see [`Controller::authenticate`]).
    pub async fn connect(addr: &ControlAddr) -> Result<(Self, EventReceiver), TorError> {
        let (r, w): (Box<dyn AsyncRead + Send + Unpin>, Writer) = match addr {
            ControlAddr::Tcp(a) => {
                if !a.ip().is_loopback() {
                    return Err(TorError::Config(
                        "tor's control port must be on this machine (a loopback address)".into(),
                    ));
                }
                let s = tokio::net::TcpStream::connect(a).await?;
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            ControlAddr::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await?;
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
        };
        Ok(Self::from_halves(r, w))
    }

    /// A controller over any byte stream (tests use an in-memory pipe).
    pub fn from_stream<S>(stream: S) -> (Self, EventReceiver)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        Self::from_halves(Box::new(r), Box::new(w))
    }

    fn from_halves(r: Box<dyn AsyncRead + Send + Unpin>, w: Writer) -> (Self, EventReceiver) {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(None);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(
            BufReader::new(r),
            pending.clone(),
            events_tx,
            closed_tx,
        ));
        tokio::spawn(write_loop(w, cmd_rx, pending.clone()));
        let inner = Inner {
            commands: cmd_tx,
            pending,
            closed: closed_rx,
            reader,
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            events_rx,
        )
    }

    /// Why the connection closed, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.inner.closed.borrow().clone()
    }

    /// Waits until the connection is closed (tor exited, or a protocol error).
    pub async fn closed(&self) -> String {
        let mut rx = self.inner.closed.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "the reader stopped".into();
            }
        }
    }

    /// Sends one command line and returns tor's reply, whatever its code.
    pub async fn request(&self, command: &str) -> Result<Reply, TorError> {
        self.request_secret(Zeroizing::new(command.to_owned()))
            .await
    }

    /// [`Controller::request`] for a command holding a secret: the buffers that
    /// held it are wiped.
    async fn request_secret(&self, command: Zeroizing<String>) -> Result<Reply, TorError> {
        if command.contains(['\r', '\n']) {
            return Err(TorError::Config(
                "a control command argument contains a line break".into(),
            ));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(command.len() + 2));
        bytes.extend_from_slice(command.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let (tx, rx) = oneshot::channel();
        if let Some(reason) = self.closed_reason() {
            return Err(closed_error(&reason));
        }
        self.inner
            .commands
            .send((bytes, tx))
            .map_err(|_| closed_error("the writer stopped"))?;
        rx.await.map_err(|_| {
            closed_error(
                &lock(&self.inner.pending)
                    .closed
                    .clone()
                    .unwrap_or_else(|| "no reply".into()),
            )
        })
    }

    /// Sends a command and fails with tor's message unless it succeeded (2xx).
    pub async fn command(&self, command: &str) -> Result<Reply, TorError> {
        check(self.request(command).await?, keyword(command))
    }

    async fn command_secret(&self, command: Zeroizing<String>) -> Result<Reply, TorError> {
        let kw = keyword(&command).to_owned();
        check(self.request_secret(command).await?, &kw)
    }

    /// Authenticates with the best method tor offers (SAFECOOKIE, COOKIE, NULL).
    /// `cookie_file` overrides the path tor names (for a tor whose file system
    /// view differs from ours).
    pub async fn authenticate(&self, cookie_file: Option<&Path>) -> Result<(), TorError> {
        let info = auth::ProtocolInfo::parse(&self.command("PROTOCOLINFO 1").await?)?;
        tracing::debug!(version = ?info.tor_version, methods = ?info.methods, "control port");
        let cookie_path = cookie_file.map(Path::to_owned).or(info.cookie_file.clone());
        if info.has("SAFECOOKIE") || info.has("COOKIE") {
            let path = cookie_path.ok_or_else(|| {
                TorError::Protocol(
                    "tor offers cookie authentication but names no cookie file".into(),
                )
            })?;
            let cookie = auth::read_cookie(&path).await?;
            let answer = if info.has("SAFECOOKIE") {
                let mut nonce = [0u8; 32];
                getrandom::fill(&mut nonce)
                    .map_err(|e| TorError::Io(std::io::Error::other(e.to_string())))?;
                let challenge = self
                    .command(&format!(
                        "AUTHCHALLENGE SAFECOOKIE {}",
                        data_encoding::HEXUPPER.encode(&nonce)
                    ))
                    .await?;
                auth::safecookie_response(&challenge, &cookie, &nonce)?
            } else {
                Zeroizing::new(data_encoding::HEXUPPER.encode(&cookie))
            };
            let mut cmd = Zeroizing::new(String::from("AUTHENTICATE "));
            cmd.push_str(&answer);
            self.command_secret(cmd).await?;
        } else if info.has("NULL") {
            self.command("AUTHENTICATE").await?;
        } else {
            return Err(TorError::Config(
                "tor's control port accepts only a password; enable CookieAuthentication".into(),
            ));
        }
        Ok(())
    }

    /// `GETINFO key`: the value, or tor's error.
    pub async fn get_info(&self, key: &str) -> Result<String, TorError> {
        check_word(key)?;
        let reply = self.command(&format!("GETINFO {key}")).await?;
        let prefix = format!("{key}=");
        reply
            .lines
            .iter()
            .find_map(|l| {
                let value = l.text.strip_prefix(&prefix)?;
                Some(l.data.clone().unwrap_or_else(|| value.to_owned()))
            })
            .ok_or_else(|| TorError::Protocol(format!("GETINFO {key}: no value in the reply")))
    }

    /// `SETEVENTS`: replaces the set of events sent to the [`EventReceiver`].
    pub async fn set_events(&self, events: &[&str]) -> Result<(), TorError> {
        for e in events {
            check_word(e)?;
        }
        self.command(&format!("SETEVENTS {}", events.join(" ")))
            .await
            .map(drop)
    }

    /// `SIGNAL name` (`NEWNYM`, `SHUTDOWN`, ...).
    pub async fn signal(&self, name: &str) -> Result<(), TorError> {
        check_word(name)?;
        self.command(&format!("SIGNAL {name}")).await.map(drop)
    }

    /// `TAKEOWNERSHIP`: tor exits when this connection closes.
    pub async fn take_ownership(&self) -> Result<(), TorError> {
        self.command("TAKEOWNERSHIP").await.map(drop)
    }

    /// `SETCONF key=value ...`; values are quoted.
    pub async fn set_conf(&self, settings: &[(&str, &str)]) -> Result<(), TorError> {
        let mut cmd = String::from("SETCONF");
        for (k, v) in settings {
            check_word(k)?;
            cmd.push(' ');
            cmd.push_str(k);
            cmd.push('=');
            cmd.push_str(&quote(v));
        }
        self.command(&cmd).await.map(drop)
    }

    /// `ADD_ONION`: launches an onion service tied to this connection.
    pub async fn add_onion(&self, req: &AddOnion) -> Result<AddedOnion, TorError> {
        let reply = self.command_secret(req.command()?).await?;
        let mut service_id = None;
        let mut private_key = None;
        for line in &reply.lines {
            if let Some(id) = line.text.strip_prefix("ServiceID=") {
                service_id = Some(id.to_owned());
            } else if let Some(key) = line.text.strip_prefix("PrivateKey=") {
                private_key = Some(decode_expanded_key(key)?);
            }
        }
        let service_id = service_id
            .ok_or_else(|| TorError::Protocol("ADD_ONION: no ServiceID in the reply".into()))?;
        check_service_id(&service_id)?;
        Ok(AddedOnion {
            service_id,
            private_key,
        })
    }

    /// `DEL_ONION id`.
    pub async fn del_onion(&self, service_id: &str) -> Result<(), TorError> {
        check_service_id(service_id)?;
        self.command(&format!("DEL_ONION {service_id}"))
            .await
            .map(drop)
    }

    /// `ONION_CLIENT_AUTH_ADD`: use this key (in memory only) for the service.
    pub async fn onion_client_auth_add(
        &self,
        service_id: &str,
        secret: &ClientAuthSecret,
    ) -> Result<(), TorError> {
        check_service_id(service_id)?;
        let mut cmd = Zeroizing::new(format!("ONION_CLIENT_AUTH_ADD {service_id} x25519:"));
        cmd.push_str(&Zeroizing::new(data_encoding::BASE64.encode(&secret.0)));
        self.command_secret(cmd).await.map(drop)
    }

    /// `ONION_CLIENT_AUTH_REMOVE`.
    pub async fn onion_client_auth_remove(&self, service_id: &str) -> Result<(), TorError> {
        check_service_id(service_id)?;
        self.command(&format!("ONION_CLIENT_AUTH_REMOVE {service_id}"))
            .await
            .map(drop)
    }
}

/// Which key an `ADD_ONION` uses.
pub enum OnionKeyRequest {
    /// tor makes a new key; with `discard` it never tells us (`DiscardPK`), so
    /// the service cannot be re-created after it is removed.
    New {
        /// Set `Flags=DiscardPK`.
        discard: bool,
    },
    /// This expanded Ed25519 secret key (scalar, then PRF secret: tor's
    /// `ED25519-V3` format).
    Expanded(Zeroizing<[u8; 64]>),
}

impl fmt::Debug for OnionKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::New { discard } => write!(f, "New {{ discard: {discard} }}"),
            Self::Expanded(_) => f.write_str("Expanded([secret])"),
        }
    }
}

/// An `ADD_ONION` request.
#[derive(Debug)]
pub struct AddOnion {
    /// The key.
    pub key: OnionKeyRequest,
    /// Virtual port and where tor forwards its streams.
    pub ports: Vec<(u16, SocketAddr)>,
    /// Restricted discovery (`Flags=V3Auth`): only these clients can decrypt
    /// the descriptor. Empty: anyone who knows the address.
    pub client_auth: Vec<ClientAuthPublic>,
    /// Keep the service after this connection closes (`Flags=Detach`).
    pub detach: bool,
}

impl AddOnion {
    fn command(&self) -> Result<Zeroizing<String>, TorError> {
        let mut cmd = Zeroizing::new(String::from("ADD_ONION "));
        let mut flags = Vec::new();
        match &self.key {
            OnionKeyRequest::New { discard } => {
                cmd.push_str("NEW:ED25519-V3");
                if *discard {
                    flags.push("DiscardPK");
                }
            }
            OnionKeyRequest::Expanded(key) => {
                cmd.push_str("ED25519-V3:");
                cmd.push_str(&Zeroizing::new(data_encoding::BASE64.encode(&key[..])));
            }
        }
        if self.detach {
            flags.push("Detach");
        }
        // tor 0.4.9 refuses ClientAuthV3 keys without this flag ("512 No auth
        // type specified").
        if !self.client_auth.is_empty() {
            flags.push("V3Auth");
        }
        if !flags.is_empty() {
            cmd.push_str(" Flags=");
            cmd.push_str(&flags.join(","));
        }
        if self.ports.is_empty() {
            return Err(TorError::Config("an onion service needs a port".into()));
        }
        for (virt, target) in &self.ports {
            cmd.push_str(&format!(" Port={virt},{target}"));
        }
        for client in &self.client_auth {
            cmd.push_str(" ClientAuthV3=");
            cmd.push_str(&data_encoding::BASE32_NOPAD.encode(&client.0));
        }
        Ok(cmd)
    }
}

/// What `ADD_ONION` answered.
pub struct AddedOnion {
    /// The service's address without `.onion`.
    pub service_id: String,
    /// The key tor made, when asked to make one without `DiscardPK`.
    pub private_key: Option<Zeroizing<[u8; 64]>>,
}

impl fmt::Debug for AddedOnion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddedOnion")
            .field("service_id", &"[scrubbed]")
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "[secret]"),
            )
            .finish()
    }
}

fn decode_expanded_key(blob: &str) -> Result<Zeroizing<[u8; 64]>, TorError> {
    let b64 = blob
        .strip_prefix("ED25519-V3:")
        .ok_or_else(|| TorError::Protocol("ADD_ONION returned a key of another type".into()))?;
    let bytes = Zeroizing::new(
        data_encoding::BASE64
            .decode(b64.as_bytes())
            .map_err(|_| TorError::Protocol("ADD_ONION returned a malformed key".into()))?,
    );
    let mut key = Zeroizing::new([0u8; 64]);
    if bytes.len() != 64 {
        return Err(TorError::Protocol(
            "ADD_ONION returned a key of the wrong size".into(),
        ));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Fails with tor's own message unless the reply is a success.
fn check(reply: Reply, what: &str) -> Result<Reply, TorError> {
    if reply.is_ok() {
        Ok(reply)
    } else {
        Err(TorError::Protocol(format!("{what}: {reply}")))
    }
}

fn keyword(command: &str) -> &str {
    command.split(' ').next().unwrap_or("")
}

/// A bare word (key, event or signal name): no spaces, quotes or line breaks,
/// so it cannot smuggle in other arguments.
fn check_word(word: &str) -> Result<(), TorError> {
    let ok = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.:@[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TorError::Config(format!(
            "not a control-port word: {word:?}"
        )))
    }
}

fn check_service_id(id: &str) -> Result<(), TorError> {
    id.parse::<crate::OnionAddress>()
        .map(drop)
        .map_err(|e| TorError::Protocol(format!("not an onion service id: {e}")))
}

async fn write_loop(
    mut w: Writer,
    mut commands: mpsc::UnboundedReceiver<(Zeroizing<Vec<u8>>, oneshot::Sender<Reply>)>,
    pending: Arc<Mutex<Pending>>,
) {
    while let Some((bytes, reply_tx)) = commands.recv().await {
        {
            let mut p = lock(&pending);
            if p.closed.is_some() {
                // Dropping reply_tx tells the caller.
                continue;
            }
            p.queue.push_back(reply_tx);
        }
        let written = async {
            w.write_all(&bytes).await?;
            w.flush().await
        }
        .await;
        if let Err(e) = written {
            let mut p = lock(&pending);
            p.closed
                .get_or_insert_with(|| format!("writing failed: {e}"));
            p.queue.clear();
            break;
        }
    }
    let _ = w.shutdown().await;
}

async fn read_loop(
    mut r: Reader,
    pending: Arc<Mutex<Pending>>,
    events: mpsc::UnboundedSender<Event>,
    closed: watch::Sender<Option<String>>,
) {
    let mut parser = reply::ReplyParser::new();
    let reason = loop {
        let reply = match read_reply(&mut r, &mut parser).await {
            Ok(reply) => reply,
            Err(reason) => break reason,
        };
        if reply.is_event() {
            let _ = events.send(Event::from_reply(reply));
            continue;
        }
        let waiter = lock(&pending).queue.pop_front();
        match waiter {
            // The caller may have given up; the reply is simply dropped then.
            Some(tx) => drop(tx.send(reply)),
            None => break "tor sent a reply to no command".to_owned(),
        }
    };
    tracing::debug!(%reason, "control connection closed");
    {
        let mut p = lock(&pending);
        p.closed.get_or_insert_with(|| reason.clone());
        p.queue.clear();
    }
    let _ = closed.send(Some(reason));
}

/// Reads lines until a reply is complete. Every line must end in CRLF.
async fn read_reply(r: &mut Reader, parser: &mut reply::ReplyParser) -> Result<Reply, String> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let limit = reply::MAX_REPLY as u64;
        let n = (&mut *r)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| format!("reading failed: {e}"))?;
        if n == 0 {
            return Err("tor closed the connection".into());
        }
        let Some(line) = buf.strip_suffix(b"\r\n") else {
            return Err("a line from tor did not end in CRLF".into());
        };
        let line = String::from_utf8_lossy(line);
        if let Some(reply) = parser.push_line(&line).map_err(|e| e.to_string())? {
            return Ok(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid";

    /// A fake tor: answers each command line with the canned reply for its
    /// keyword, and records what it was sent.
    async fn fake_tor(
        script: Vec<(&'static str, String)>,
    ) -> (
        Controller,
        EventReceiver,
        tokio::task::JoinHandle<Vec<String>>,
    ) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (ctl, events) = Controller::from_stream(ours);
        let task = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(theirs);
            let mut lines = tokio::io::BufReader::new(r).lines();
            let mut seen = Vec::new();
            for (expect, answer) in script {
                let line = lines.next_line().await.unwrap().unwrap();
                assert!(line.starts_with(expect), "{line:?} is not {expect:?}");
                seen.push(line);
                w.write_all(answer.as_bytes()).await.unwrap();
            }
            seen
        });
        (ctl, events, task)
    }

    #[tokio::test]
    async fn getinfo_events_and_errors() {
        let (ctl, mut events, task) = fake_tor(vec![
            (
                "GETINFO status/bootstrap-phase",
                "650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors \
                 SUMMARY=\"Loading relay descriptors\"\r\n\
                 250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=50 \
                 TAG=loading_descriptors SUMMARY=\"Loading relay descriptors\"\r\n250 OK\r\n"
                    .into(),
            ),
            (
                "GETINFO config-text",
                "250+config-text=\r\nSocksPort 0\r\n.\r\n250 OK\r\n".into(),
            ),
            ("GETINFO nope", "552 Unrecognized key \"nope\"\r\n".into()),
        ])
        .await;
        let phase = ctl.get_info("status/bootstrap-phase").await.unwrap();
        assert_eq!(
            BootstrapEvent::parse_phase(&phase).unwrap().summary,
            "Loading relay descriptors"
        );
        assert!(matches!(events.recv().await, Some(Event::Bootstrap(b)) if b.progress == 50));
        assert_eq!(ctl.get_info("config-text").await.unwrap(), "SocksPort 0");
        let err = ctl.get_info("nope").await.unwrap_err().to_string();
        assert!(err.contains("552 Unrecognized key"), "{err}");
        task.await.unwrap();
        // The fake tor hung up: commands now fail, they do not hang.
        assert!(ctl.get_info("version").await.is_err());
        assert!(ctl.closed().await.contains("closed"));
    }

    #[tokio::test]
    async fn add_onion_with_a_key_and_client_auth() {
        let key = Zeroizing::new([9u8; 64]);
        let key_b64 = data_encoding::BASE64.encode(&key[..]);
        let (ctl, _events, task) = fake_tor(vec![
            (
                "ADD_ONION ",
                // Recorded from tor 0.4.9.11 (the address aside): with V3Auth
                // tor repeats the client keys.
                format!(
                    "250-ServiceID={ADDR}\r\n\
                     250-ClientAuthV3=AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQTCQKRMFYYDENBWHA5DYPQ\r\n\
                     250 OK\r\n"
                ),
            ),
            (
                "ADD_ONION NEW:ED25519-V3 Port",
                format!(
                    "250-ServiceID={ADDR}\r\n250-PrivateKey=ED25519-V3:{key_b64}\r\n250 OK\r\n"
                ),
            ),
            ("DEL_ONION", "552 Unknown Onion Service id\r\n".into()),
            (
                "ONION_CLIENT_AUTH_ADD",
                "251 Client for onion existed and replaced\r\n".into(),
            ),
            (
                "ONION_CLIENT_AUTH_ADD",
                "553 Invalid private key \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\r\n"
                    .into(),
            ),
            (
                "ONION_CLIENT_AUTH_REMOVE",
                format!("251 No credentials for \"{ADDR}\"\r\n"),
            ),
        ])
        .await;
        let target: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let added = ctl
            .add_onion(&AddOnion {
                key: OnionKeyRequest::Expanded(key.clone()),
                ports: vec![(80, target)],
                client_auth: vec![ClientAuthPublic([1; 32]), ClientAuthPublic([2; 32])],
                detach: false,
            })
            .await
            .unwrap();
        assert_eq!(added.service_id, ADDR);
        assert!(added.private_key.is_none());
        let added = ctl
            .add_onion(&AddOnion {
                key: OnionKeyRequest::New { discard: false },
                ports: vec![(80, target)],
                client_auth: vec![],
                detach: false,
            })
            .await
            .unwrap();
        assert_eq!(added.private_key.as_deref(), Some(&*key));
        let err = ctl.del_onion(ADDR).await.unwrap_err().to_string();
        assert!(err.contains("552 Unknown Onion Service id"), "{err}");
        ctl.onion_client_auth_add(ADDR, &ClientAuthSecret([3; 32]))
            .await
            .unwrap();
        let err = ctl
            .onion_client_auth_add(ADDR, &ClientAuthSecret([0; 32]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("553 Invalid private key"), "{err}");
        // 251 is a success code: nothing to remove is not an error.
        ctl.onion_client_auth_remove(ADDR).await.unwrap();
        let seen = task.await.unwrap();
        let b32 = |b: u8| data_encoding::BASE32_NOPAD.encode(&[b; 32]);
        assert_eq!(
            seen[0],
            format!(
                "ADD_ONION ED25519-V3:{key_b64} Flags=V3Auth Port=80,127.0.0.1:4000 \
                 ClientAuthV3={} ClientAuthV3={}",
                b32(1),
                b32(2)
            )
        );
        assert_eq!(seen[1], "ADD_ONION NEW:ED25519-V3 Port=80,127.0.0.1:4000");
        assert_eq!(
            seen[3],
            format!(
                "ONION_CLIENT_AUTH_ADD {ADDR} x25519:{}",
                data_encoding::BASE64.encode(&[3; 32])
            )
        );
    }

    #[tokio::test]
    async fn arguments_cannot_inject_commands() {
        let (ctl, _events, _task) = fake_tor(vec![]).await;
        assert!(ctl.get_info("version\r\nSIGNAL HALT").await.is_err());
        assert!(ctl.signal("NEWNYM HALT").await.is_err());
        assert!(ctl.del_onion("not-an-onion").await.is_err());
        assert!(ctl.request("GETINFO a\nb").await.is_err());
    }

    #[tokio::test]
    async fn a_cancelled_command_does_not_shift_replies() {
        let (ctl, _events, task) = fake_tor(vec![
            (
                "GETINFO version",
                "250-version=0.4.9.11\r\n250 OK\r\n".into(),
            ),
            (
                "GETINFO process/pid",
                "250-process/pid=42\r\n250 OK\r\n".into(),
            ),
        ])
        .await;
        // Abandon the first command before its reply can arrive.
        let first = ctl.get_info("version");
        drop(tokio::time::timeout(std::time::Duration::ZERO, first).await);
        assert_eq!(ctl.get_info("process/pid").await.unwrap(), "42");
        task.await.unwrap();
    }
}

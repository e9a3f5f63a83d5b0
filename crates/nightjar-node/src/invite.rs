//! Invite codes: a contact made from a short code such as `7-crossover-clockwork`,
//! spoken out of band.
//!
//! The code opens a magic-wormhole channel (`nightjar-wormhole`) through a
//! rendezvous server reached over Tor. Only someone who knows the code can be on
//! the other end, so what each side sends through it is trusted as it stands:
//!
//! 1. each side sends its [`Invitation`] (identity key, request onion, and an
//!    endpoint grant issued for the other side alone);
//! 2. each side stores the other as a verified contact and sends `ok` (or `no`,
//!    when it could not, e.g. because they were already a contact);
//! 3. a side that hears `no`, or nothing, removes the contact it just made.
//!
//! So a wrong code, a guess by someone else or a failure on either side leaves no
//! contact behind on either side.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use data_encoding::HEXLOWER;
use nightjar_proto::invite::Invitation;
use nightjar_proto::onion::OnionAddress;
use nightjar_tor::{BoxStream, ConnectOptions, IsolationKey, Transport};
use nightjar_wormhole::{Code, Config, Mood, Wormhole, WormholeError};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::link::os_rng;
use crate::net::Report;
use crate::{ContactView, InviteView, NodeError, Reply};

/// The application id: only nightjar invites meet each other.
pub const APP_ID: &str = "nightjar/v1/invite";
/// The public magic-wormhole rendezvous server, reached through a Tor exit.
pub const DEFAULT_RENDEZVOUS: &str = "ws://relay.magic-wormhole.io:4000/v1";
/// Words after the number in a new code (`7-crossover-clockwork`): 16 bits, so a
/// guesser gets one try in 65536, and a failed guess is seen by both sides.
const CODE_WORDS: usize = 2;
/// How long the side that made a code waits for the other to type it.
pub const INVITE_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long each exchange after that may take.
const STEP_WAIT: Duration = Duration::from_secs(120);

const VERDICT_OK: &[u8] = b"ok";
const VERDICT_NO: &[u8] = b"no";

/// Where invite codes meet: a magic-wormhole rendezvous server, by `ws://` URL,
/// at an onion address or on the open internet (reached through a Tor exit).
#[derive(Clone, PartialEq, Eq)]
pub struct Rendezvous {
    url: String,
    host: Host,
    port: u16,
}

#[derive(Clone, PartialEq, Eq)]
enum Host {
    Onion(OnionAddress),
    Name(String),
}

impl Rendezvous {
    /// The URL it was made from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens a stream to the server through Tor, on a circuit of its own.
    pub async fn connect(&self, tor: &dyn Transport) -> Result<BoxStream, NodeError> {
        let mut tag = [0u8; 8];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut tag);
        let options = ConnectOptions {
            isolation: IsolationKey(format!("rendezvous-{}", HEXLOWER.encode(&tag))),
            client_auth: None,
        };
        let stream = match &self.host {
            Host::Onion(onion) => tor.connect(onion, self.port, &options).await?,
            Host::Name(name) => tor.connect_host(name, self.port, &options).await?,
        };
        Ok(stream)
    }

    fn config(&self) -> Config {
        Config {
            url: self.url.clone(),
            app_id: APP_ID.to_owned(),
        }
    }
}

impl Default for Rendezvous {
    fn default() -> Self {
        DEFAULT_RENDEZVOUS
            .parse()
            .unwrap_or_else(|_| unreachable_default())
    }
}

/// The default URL is a constant that parses (a unit test checks it).
#[cold]
fn unreachable_default() -> Rendezvous {
    Rendezvous {
        url: DEFAULT_RENDEZVOUS.to_owned(),
        host: Host::Name("relay.magic-wormhole.io".to_owned()),
        port: 4000,
    }
}

/// The host is an onion address or a public server; `Debug` shows no more than
/// whether it is an onion.
impl fmt::Debug for Rendezvous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.host {
            Host::Onion(_) => "onion",
            Host::Name(_) => "exit",
        };
        f.debug_struct("Rendezvous")
            .field("via", &kind)
            .finish_non_exhaustive()
    }
}

/// Why a rendezvous URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable rendezvous URL ({0}); expected ws://HOST[:PORT]/PATH")]
pub struct BadRendezvous(&'static str);

impl FromStr for Rendezvous {
    type Err = BadRendezvous;

    fn from_str(url: &str) -> Result<Self, BadRendezvous> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or(BadRendezvous("it must start with ws://"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "ws" => {}
            "wss" => {
                return Err(BadRendezvous(
                    "wss:// is not supported; use ws:// (Tor already encrypts the way)",
                ));
            }
            _ => return Err(BadRendezvous("it must start with ws://")),
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => return Err(BadRendezvous("it needs a path, such as /v1")),
        };
        if authority.starts_with('[') {
            return Err(BadRendezvous(
                "IPv6 addresses are not supported; use a host name or an onion address",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                Some(port)
                    .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p != 0)
                    .ok_or(BadRendezvous("the port is not a number from 1 to 65535"))?,
            ),
            None => (authority, 80),
        };
        let host = host.to_ascii_lowercase();
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
        if host.is_empty() || !host.chars().all(plain) || path.chars().any(char::is_whitespace) {
            return Err(BadRendezvous("the host is not a name or an address"));
        }
        if is_local(&host) {
            return Err(BadRendezvous(
                "a loopback or private address cannot be reached through Tor; publish the \
                 server as an onion service (as `nightjar mailbox` does) and use that",
            ));
        }
        let host = if host.ends_with(".onion") {
            Host::Onion(
                host.parse()
                    .map_err(|_| BadRendezvous("the onion address is invalid"))?,
            )
        } else {
            Host::Name(host)
        };
        Ok(Self {
            url: url.to_owned(),
            host,
            port,
        })
    }
}

/// Whether `host` names this machine or a private network, which a Tor exit would
/// not (and must not) reach.
fn is_local(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified(),
        Err(_) => false,
    }
}

/// What the engine hands an invite task.
pub(crate) struct InviteTask {
    pub tor: std::sync::Arc<dyn Transport>,
    pub rendezvous: Rendezvous,
    pub ours: Invitation,
    /// The local name for the new contact.
    pub name: String,
    pub reports: mpsc::Sender<Report>,
}

/// What an invite task asks of the engine once both invitations are known.
pub(crate) struct Exchanged {
    pub name: String,
    pub ours: Invitation,
    pub theirs: Invitation,
    /// The stored contact, or why not.
    pub stored: oneshot::Sender<Result<ContactView, NodeError>>,
}

/// Hosts an invite: allocates a code, answers `code_ready` with it, waits for the
/// other side, exchanges invitations.
pub(crate) async fn host(
    task: InviteTask,
    code_ready: Reply<InviteView>,
) -> Result<ContactView, NodeError> {
    let opened = async {
        let stream = task.rendezvous.connect(task.tor.as_ref()).await?;
        let config = task.rendezvous.config();
        step(nightjar_wormhole::allocate(
            stream,
            &config,
            CODE_WORDS,
            &mut os_rng(),
        ))
        .await
    };
    let (code, pending) = match opened.await {
        Ok(opened) => opened,
        Err(e) => {
            // The caller gets the error; the event that follows, its reason.
            let reason = reason(&e);
            let _ = code_ready.send(Err(e));
            return Err(NodeError::Invite(reason));
        }
    };
    let view = InviteView {
        code: code.as_str().to_owned(),
        name: task.name.clone(),
        valid_for_s: INVITE_WAIT.as_secs(),
    };
    if code_ready.send(Ok(view)).is_err() {
        let _ = pending.cancel().await;
        return Err(NodeError::Stopped);
    }
    let wormhole = match tokio::time::timeout(INVITE_WAIT, pending.connect()).await {
        Ok(connected) => connected.map_err(invite_error)?,
        Err(_) => {
            return Err(NodeError::Invite(format!(
                "nobody used the code within {} minutes",
                INVITE_WAIT.as_secs() / 60
            )));
        }
    };
    exchange(wormhole, task).await
}

/// Joins an invite with the code the other side read out.
pub(crate) async fn join(task: InviteTask, code: Code) -> Result<ContactView, NodeError> {
    let stream = task.rendezvous.connect(task.tor.as_ref()).await?;
    let wormhole = step(nightjar_wormhole::join(
        stream,
        &task.rendezvous.config(),
        &code,
    ))
    .await?;
    exchange(wormhole, task).await
}

/// Why an invite failed, in words for its `invite_failed` event.
pub(crate) fn reason(e: &NodeError) -> String {
    match e {
        NodeError::Invite(why) => why.clone(),
        other => other.to_string(),
    }
}

fn rendezvous_silent() -> NodeError {
    NodeError::Invite("the rendezvous server or the other side did not answer in time".into())
}

fn invite_error(e: WormholeError) -> NodeError {
    NodeError::Invite(e.to_string())
}

/// Steps 1 to 3 of the module's description, over an open wormhole.
async fn exchange(
    mut wormhole: Wormhole<BoxStream>,
    task: InviteTask,
) -> Result<ContactView, NodeError> {
    let result = settle(&mut wormhole, &task).await;
    let mood = if result.is_ok() {
        Mood::Happy
    } else {
        Mood::Errory
    };
    let _ = tokio::time::timeout(STEP_WAIT, wormhole.close(mood)).await;
    result
}

async fn settle(
    wormhole: &mut Wormhole<BoxStream>,
    task: &InviteTask,
) -> Result<ContactView, NodeError> {
    // Both carry an endpoint credential: wiped once read.
    let ours = Zeroizing::new(task.ours.encode());
    step(wormhole.send(&ours)).await?;
    let theirs = Zeroizing::new(step(wormhole.receive()).await?);
    let theirs = Invitation::decode(&theirs)
        .map_err(|e| NodeError::Invite(format!("the other side sent a bad invitation: {e}")))?;
    let (stored, outcome) = oneshot::channel();
    let exchanged = Exchanged {
        name: task.name.clone(),
        ours: task.ours.clone(),
        theirs,
        stored,
    };
    task.reports
        .send(Report::InviteExchanged(Box::new(exchanged)))
        .await
        .map_err(|_| NodeError::Stopped)?;
    let stored = outcome.await.map_err(|_| NodeError::Stopped)?;
    let verdict = if stored.is_ok() {
        VERDICT_OK
    } else {
        VERDICT_NO
    };
    let sent = step(wormhole.send(verdict)).await;
    let contact = stored?;
    let confirmed = match sent {
        Ok(()) => step(wormhole.receive()).await,
        Err(e) => Err(e),
    };
    let failure = match confirmed.as_deref() {
        Ok(VERDICT_OK) => None,
        Ok(_) => Some("the other side could not add you as a contact".to_owned()),
        Err(e) => Some(format!(
            "the other side did not confirm the new contact: {e}"
        )),
    };
    let settled = Report::InviteSettled {
        contact: contact.name.clone(),
        confirmed: failure.is_none(),
    };
    task.reports
        .send(settled)
        .await
        .map_err(|_| NodeError::Stopped)?;
    match failure {
        None => Ok(contact),
        Some(why) => Err(NodeError::Invite(why)),
    }
}

/// One exchange through the wormhole, bounded in time.
async fn step<T>(
    exchange: impl std::future::Future<Output = Result<T, WormholeError>>,
) -> Result<T, NodeError> {
    match tokio::time::timeout(STEP_WAIT, exchange).await {
        Ok(done) => done.map_err(invite_error),
        Err(_) => Err(rendezvous_silent()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_default_parses_as_a_public_host() {
        let default = Rendezvous::default();
        assert_eq!(default.url(), DEFAULT_RENDEZVOUS);
        assert_eq!(default.port, 4000);
        assert!(matches!(&default.host, Host::Name(name) if name == "relay.magic-wormhole.io"));
        assert_eq!(DEFAULT_RENDEZVOUS.parse::<Rendezvous>().unwrap(), default);
    }

    #[test]
    fn onion_urls_and_ports() {
        let onion = "ws://2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion/v1";
        let r: Rendezvous = onion.parse().unwrap();
        assert!(matches!(r.host, Host::Onion(_)));
        assert_eq!(r.port, 80);
        let upper = onion.replace("ws://", "WS://").replace("/v1", "/V1");
        assert_eq!(upper.parse::<Rendezvous>().unwrap().port, 80);
        let r: Rendezvous = "ws://example.org:4000/v1".parse().unwrap();
        assert_eq!(r.port, 4000);
    }

    #[test]
    fn unusable_urls_say_why() {
        for bad in [
            "",
            "relay.example.org/v1",
            "http://example.org/v1",
            "wss://example.org/v1",
            "ws://example.org",
            "ws://example.org:/v1",
            "ws://example.org:+80/v1",
            "ws://example.org:0/v1",
            "ws://example.org:65536/v1",
            "ws://[::1]:8080/v1",
            "ws://user@example.org/v1",
            "ws://127.0.0.1:8080/v1",
            "ws://10.1.2.3/v1",
            "ws://localhost:4000/v1",
            "ws://notanonion.onion/v1",
            "ws://exa mple.org/v1",
        ] {
            assert!(bad.parse::<Rendezvous>().is_err(), "{bad:?} was accepted");
        }
    }
}

//! The node's I/O tasks: accepting on our two onion services, dialling contacts,
//! delivering contact requests, and one task per live link. They own streams and
//! nothing else; every decision and every write to the store is the engine's.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::{EndpointGrant, Message};
use nightjar_proto::onion::OnionAddress;
use nightjar_tor::{
    BoxStream, ClientAuthSecret, ConnectOptions, IsolationKey, OnionService, Transport,
};
use tokio::sync::{mpsc, oneshot};

use crate::ContactView;
use crate::driver::pace::Pacer;
use crate::driver::{self, LinkEvent};
use crate::link::{Link, LinkError, Pacing};

/// The virtual port of both onion services.
pub(crate) const SERVICE_PORT: u16 = 7300;
/// Binds a handshake to the request onion.
pub(crate) const REQUEST_PROLOGUE: &[u8] = b"nightjar/v1/request";
/// Binds a handshake to a private endpoint.
pub(crate) const ENDPOINT_PROLOGUE: &[u8] = b"nightjar/v1/endpoint";
/// How long a handshake or a request exchange may take before we give up on it.
pub(crate) const EXCHANGE_LIMIT: Duration = Duration::from_secs(90);

/// Identifies one live link, so late reports from a replaced link are ignored.
pub(crate) type LinkId = u64;

/// What the I/O tasks report to the engine.
pub(crate) enum Report {
    /// We dialled a contact's endpoint and the handshake succeeded.
    Dialled { contact: i64, link: Link<BoxStream> },
    /// Dialling a contact failed.
    DialFailed { contact: i64, error: String },
    /// Someone dialled our endpoint and proved an identity.
    Answered { link: Link<BoxStream> },
    /// A contact request arrived; the engine stores it and answers whether the
    /// sender may consider it delivered.
    RequestArrived {
        peer: VerifyingKey,
        grant: EndpointGrant,
        greeting: String,
        stored: oneshot::Sender<bool>,
    },
    /// Our request reached its recipient (or failed to).
    RequestSent {
        request: i64,
        result: Result<(), String>,
    },
    /// A message arrived on a link.
    Received { link: LinkId, message: Message },
    /// A read of a group's room came back.
    GroupRead {
        group: i64,
        result: Result<crate::rooms::RoomCells, String>,
    },
    /// A post to a group's room ended.
    GroupPosted {
        group: i64,
        result: Result<Vec<u64>, crate::rooms::RoomError>,
    },
    /// A frame the engine asked about was written to a link.
    Written { link: LinkId, what: Written },
    /// The peer sends cover traffic on this link.
    PeerCover { link: LinkId },
    /// A link ended.
    Closed { link: LinkId, error: Option<String> },
    /// An invite's two invitations are known: store the contact.
    InviteExchanged(Box<crate::invite::Exchanged>),
    /// The other side of an invite confirmed (or did not) that it stored us.
    InviteSettled { contact: String, confirmed: bool },
    /// An invite ended.
    InviteFinished {
        name: String,
        result: Result<ContactView, String>,
    },
    /// A sealed message went into a mailbox.
    Deposited {
        contact: i64,
        seq: i64,
        id: Option<[u8; 16]>,
        mailbox: [u8; 32],
        instance: [u8; 16],
    },
    /// The mailbox a message went to restarted and no longer holds it.
    DepositLost {
        contact: i64,
        seq: i64,
        id: Option<[u8; 16]>,
    },
    /// A round of deposits for a contact ended (at the first failure, if any).
    DepositEnded {
        contact: i64,
        result: Result<(), String>,
    },
    /// A cover deposit ended: the mailbox that took it and its instance, or
    /// none if no mailbox did.
    CoverEnded {
        contact: i64,
        item: Box<crate::engine::CoverItem>,
        taken: Option<([u8; 32], [u8; 16])>,
    },
    /// A file's pump ended.
    PumpEnded {
        transfer: i64,
        generation: u64,
        end: crate::files::PumpEnd,
    },
    /// A file's sink has news.
    Sink {
        transfer: i64,
        generation: u64,
        report: crate::files::SinkReport,
    },
    /// A drain of our mailboxes found these non-empty slots.
    Drained {
        found: Vec<crate::engine::FoundSlot>,
    },
}

pub(crate) use crate::driver::{LinkCommand, Written};

/// Serves every stream `service` accepts with `serve`, each in its own task and
/// under [`EXCHANGE_LIMIT`], until the service stops.
fn spawn_acceptor<F, Fut>(
    service: Arc<dyn OnionService>,
    identity: Arc<IdentityKeyPair>,
    reports: mpsc::Sender<Report>,
    serve: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(BoxStream, Arc<IdentityKeyPair>, mpsc::Sender<Report>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), LinkError>> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok(stream) = service.accept().await {
            let exchange = serve(stream, identity.clone(), reports.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(EXCHANGE_LIMIT, exchange).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!("incoming stream dropped: {e}"),
                    Err(_) => tracing::debug!("incoming stream timed out"),
                }
            });
        }
    })
}

/// Accepts streams on the request onion: each must deliver one contact request.
pub(crate) fn spawn_request_acceptor(
    service: Arc<dyn OnionService>,
    identity: Arc<IdentityKeyPair>,
    reports: mpsc::Sender<Report>,
    pacing: Pacing,
) -> tokio::task::JoinHandle<()> {
    spawn_acceptor(
        service,
        identity,
        reports,
        move |stream, identity, reports| async move {
            take_request(stream, &identity, &reports, pacing).await
        },
    )
}

/// Accepts streams on our private endpoint and hands proven links to the engine.
pub(crate) fn spawn_endpoint_acceptor(
    service: Arc<dyn OnionService>,
    identity: Arc<IdentityKeyPair>,
    reports: mpsc::Sender<Report>,
    pacing: Pacing,
) -> tokio::task::JoinHandle<()> {
    spawn_acceptor(
        service,
        identity,
        reports,
        move |stream, identity, reports| async move {
            let link = Link::answer(stream, &identity, ENDPOINT_PROLOGUE, pacing).await?;
            let _ = reports.send(Report::Answered { link }).await;
            Ok(())
        },
    )
}

async fn take_request(
    stream: BoxStream,
    identity: &IdentityKeyPair,
    reports: &mpsc::Sender<Report>,
    pacing: Pacing,
) -> Result<(), LinkError> {
    let mut link = Link::answer(stream, identity, REQUEST_PROLOGUE, pacing).await?;
    let first = link.recv().await?;
    let Some(Message::ContactRequest { grant, greeting }) = &first else {
        return Err(LinkError::Protocol("expected a contact request"));
    };
    let (stored, answer) = oneshot::channel();
    let peer = *link.peer().signing_key();
    let arrived = Report::RequestArrived {
        peer,
        grant: grant.clone(),
        greeting: greeting.clone(),
        stored,
    };
    if reports.send(arrived).await.is_err() || !answer.await.unwrap_or(false) {
        return Ok(());
    }
    link.send(&Message::RequestReceived).await?;
    // Wait for the requester to hang up, so our confirmation is not cut off.
    let _ = link.recv().await;
    Ok(())
}

/// Where and how to reach one peer.
pub(crate) struct Target {
    pub onion: OnionAddress,
    pub identity: VerifyingKey,
    pub credential: Option<ClientAuthSecret>,
    pub isolation: String,
    /// How the link's set-up cells are written.
    pub pacing: Pacing,
}

async fn open_link(
    transport: &dyn Transport,
    identity: &IdentityKeyPair,
    target: &Target,
    prologue: &[u8],
) -> Result<Link<BoxStream>, String> {
    let options = ConnectOptions {
        isolation: IsolationKey(target.isolation.clone()),
        client_auth: target.credential.clone(),
    };
    let stream = transport
        .connect(&target.onion, SERVICE_PORT, &options)
        .await
        .map_err(|e| e.to_string())?;
    Link::dial(stream, identity, &target.identity, prologue, target.pacing)
        .await
        .map_err(|e| e.to_string())
}

/// Dials a contact's endpoint once.
pub(crate) fn spawn_dial(
    transport: Arc<dyn Transport>,
    identity: Arc<IdentityKeyPair>,
    contact: i64,
    target: Target,
    reports: mpsc::Sender<Report>,
) {
    tokio::spawn(async move {
        let dial = open_link(&*transport, &identity, &target, ENDPOINT_PROLOGUE);
        let report = match tokio::time::timeout(EXCHANGE_LIMIT, dial).await {
            Ok(Ok(link)) => Report::Dialled { contact, link },
            Ok(Err(error)) => Report::DialFailed { contact, error },
            Err(_) => Report::DialFailed {
                contact,
                error: "timed out".into(),
            },
        };
        let _ = reports.send(report).await;
    });
}

/// Delivers one contact request once.
pub(crate) fn spawn_request_delivery(
    transport: Arc<dyn Transport>,
    identity: Arc<IdentityKeyPair>,
    request: i64,
    target: Target,
    message: Message,
    reports: mpsc::Sender<Report>,
) {
    tokio::spawn(async move {
        let deliver = async {
            let mut link = open_link(&*transport, &identity, &target, REQUEST_PROLOGUE).await?;
            link.send(&message).await.map_err(|e| e.to_string())?;
            match link.recv().await {
                Ok(Some(Message::RequestReceived)) => {
                    let _ = link.close().await;
                    Ok(())
                }
                Ok(_) => Err("the recipient did not confirm the request".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        };
        let result = tokio::time::timeout(EXCHANGE_LIMIT, deliver)
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        let _ = reports.send(Report::RequestSent { request, result }).await;
    });
}

/// Runs one live link: writes what the engine sends, reports what arrives. Ends
/// when either side closes, or when the engine drops the command sender (after
/// writing everything it sent before).
pub(crate) fn spawn_link(
    id: LinkId,
    link: Link<BoxStream>,
    commands: mpsc::UnboundedReceiver<LinkCommand>,
    reports: mpsc::Sender<Report>,
    pacer: Pacer,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let deliver = |event: LinkEvent| {
            let reports = reports.clone();
            async move {
                let report = match event {
                    LinkEvent::Received(message) => Report::Received { link: id, message },
                    LinkEvent::Written(what) => Report::Written { link: id, what },
                    LinkEvent::PeerCover => Report::PeerCover { link: id },
                };
                reports.send(report).await.is_ok()
            }
        };
        let error = driver::drive(link.into_parts(), commands, deliver, pacer)
            .await
            .err()
            .map(|e| e.to_string());
        let _ = reports.send(Report::Closed { link: id, error }).await;
    })
}

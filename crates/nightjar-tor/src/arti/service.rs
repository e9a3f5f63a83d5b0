//! Onion services hosted by the embedded Arti.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arti_client::config::onion_service::{OnionServiceConfig, OnionServiceConfigBuilder};
use arti_client::{DataStream, TorClient};
use async_trait::async_trait;
use futures::{Stream as FutStream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tor_cell::relaycell::msg::{Connected, End, EndReason};
use tor_config::Reconfigure;
use tor_error::ErrorReport;
use tor_hscrypto::pk::HsIdKeypair;
use tor_hsservice::status::{OnionServiceStatus, Problem, State};
use tor_hsservice::{
    HsIdKeypairSpecifier, HsNickname, RendRequest, RunningOnionService, StreamRequest,
};
use tor_keymgr::KeystoreSelector;
use tor_persist::state_dir::StateDirectory;
use tor_proto::stream::IncomingStreamRequest;
use tor_rtcompat::PreferredRuntime;
use tracing::{debug, info};

use super::error::service_error;
use super::keys;
use crate::{BoxStream, ClientAuthPublic, OnionAddress, OnionService, ServiceStatus, TorError};

/// How many accepted streams may wait for [`OnionService::accept`] before the
/// service stops answering new ones.
const ACCEPT_QUEUE: usize = 32;

/// What a service launch needs besides the client.
pub(super) struct Launch {
    /// Arti's name for the service: unique within one backend instance.
    pub nickname: HsNickname,
    /// The caller's label, for logs.
    pub label: String,
    pub keypair: HsIdKeypair,
    pub address: OnionAddress,
    pub virtual_port: u16,
    pub authorized_clients: Option<Vec<ClientAuthPublic>>,
    pub state_dir: PathBuf,
}

/// A running Arti onion service.
pub struct ArtiService {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ArtiService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtiService")
            .field("label", &self.shared.label)
            .finish_non_exhaustive()
    }
}

pub(super) struct Shared {
    address: OnionAddress,
    nickname: HsNickname,
    label: String,
    restricted: bool,
    state_dir: PathBuf,
    mistrust: fs_mistrust::Mistrust,
    running: Mutex<Option<Arc<RunningOnionService>>>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<DataStream>>,
    status_tx: watch::Sender<ServiceStatus>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The latest client list given, and how many times a list was applied
    /// (part of the clients' local names, so that applying the same list again
    /// is a change to Arti). Changed and applied under this one lock, so a
    /// list is never applied after a newer one.
    clients: Mutex<(u64, Vec<ClientAuthPublic>)>,
}

/// How long after a change of authorised clients the list is applied once more.
/// Arti marks its descriptors dirty on a change, but an upload still in flight
/// (a young service's first one, or the previous change's) marks them clean
/// when it completes, with the old list; its next upload would then come only
/// with the hourly re-publication. Applying the list again after Arti's
/// one-upload-a-minute limit has passed forces one more upload, of the new list.
const REAPPLY_CLIENTS_AFTER: Duration = Duration::from_secs(70);

/// Launches a service; the caller has checked that the nickname is free.
pub(super) fn launch(
    client: &TorClient<PreferredRuntime>,
    mistrust: fs_mistrust::Mistrust,
    launch: Launch,
) -> Result<ArtiService, TorError> {
    let Launch {
        nickname,
        label,
        keypair,
        address,
        virtual_port,
        authorized_clients,
        state_dir,
    } = launch;

    purge_state(&state_dir, &mistrust, &nickname)?;

    let keymgr = client.keymgr().map_err(|e| service_error(&e))?;
    keymgr
        .insert(
            keypair,
            &HsIdKeypairSpecifier::new(nickname.clone()),
            KeystoreSelector::Primary,
            true,
        )
        .map_err(|e| service_error(&e))?;

    let config = service_config(&nickname, authorized_clients.as_deref(), 0)?;
    let (running, rend_requests) = client
        .launch_onion_service(config)
        .map_err(|e| service_error(&e))?
        .ok_or_else(|| TorError::Service("the service is disabled in its configuration".into()))?;

    if running.onion_address().map(<[u8; 32]>::from) != Some(*address.public_key()) {
        return Err(TorError::Service(
            "Arti launched the service under a different key".into(),
        ));
    }
    info!(service = %label, "onion service launched");
    debug!(service = %label, address = %address, "onion service address");

    let (stream_tx, stream_rx) = mpsc::channel(ACCEPT_QUEUE);
    let (status_tx, _) = watch::channel(ServiceStatus::Starting);
    let accept_task = tokio::spawn(accept_loop(rend_requests, virtual_port, stream_tx));
    let status_task = tokio::spawn(status_loop(
        running.status_events(),
        status_tx.clone(),
        label.clone(),
    ));

    Ok(ArtiService {
        shared: Arc::new(Shared {
            address,
            nickname,
            label,
            restricted: authorized_clients.is_some(),
            state_dir,
            mistrust,
            running: Mutex::new(Some(running)),
            incoming: tokio::sync::Mutex::new(stream_rx),
            status_tx,
            tasks: Mutex::new(vec![accept_task, status_task]),
            clients: Mutex::new((0, authorized_clients.clone().unwrap_or_default())),
        }),
    })
}

impl ArtiService {
    /// A handle the backend keeps to stop the service when it shuts down.
    pub(super) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }
}

/// Removes what an earlier run of a service of this name left in the state
/// directory. Those records name introduction points whose keys lived in the
/// previous run's in-memory keystore; Arti would otherwise find the records,
/// miss the keys, and complain before making new ones.
fn purge_state(
    state_dir: &std::path::Path,
    mistrust: &fs_mistrust::Mistrust,
    nickname: &HsNickname,
) -> Result<(), TorError> {
    let dir = StateDirectory::new(state_dir, mistrust).map_err(|e| service_error(&e))?;
    let instance = dir.acquire_instance(nickname).map_err(|e| {
        TorError::Service(format!(
            "another service with this name is running ({})",
            e.report()
        ))
    })?;
    instance.purge().map_err(|e| service_error(&e))
}

/// Arti's configuration for a service: restricted discovery iff `clients` is set.
fn service_config(
    nickname: &HsNickname,
    clients: Option<&[ClientAuthPublic]>,
    generation: u64,
) -> Result<OnionServiceConfig, TorError> {
    let mut b = OnionServiceConfigBuilder::default();
    b.nickname(nickname.clone());
    if let Some(clients) = clients {
        let mut unique: Vec<ClientAuthPublic> = Vec::with_capacity(clients.len().max(1));
        for c in clients {
            if !unique.contains(c) {
                unique.push(*c);
            }
        }
        if unique.is_empty() {
            unique.push(keys::nobody());
        }
        let rd = b.restricted_discovery();
        rd.enabled(true);
        for (i, client) in unique.iter().enumerate() {
            // Client names are local labels in Arti's configuration; ours carry
            // nothing about who the client is.
            let name = format!("client-{generation}-{i}")
                .parse()
                .map_err(|e: tor_persist::slug::BadSlug| TorError::Config(e.to_string()))?;
            rd.static_keys()
                .access()
                .push((name, keys::client_public(client)));
        }
    }
    b.build().map_err(|e| TorError::Config(e.to_string()))
}

/// Answers rendezvous requests and hands streams to the configured virtual port
/// to `accept`; streams to any other port are refused as tor does (END, DONE).
async fn accept_loop(
    rend_requests: impl FutStream<Item = RendRequest> + Send + 'static,
    virtual_port: u16,
    tx: mpsc::Sender<DataStream>,
) {
    tor_hsservice::handle_rend_requests(rend_requests)
        .for_each_concurrent(None, |request| {
            let tx = tx.clone();
            async move { answer(request, virtual_port, tx).await }
        })
        .await;
}

async fn answer(request: StreamRequest, virtual_port: u16, tx: mpsc::Sender<DataStream>) {
    let wanted =
        matches!(request.request(), IncomingStreamRequest::Begin(b) if b.port() == virtual_port);
    if !wanted {
        if let Err(e) = request.reject(End::new_with_reason(EndReason::DONE)).await {
            debug!(error = %e.report(), "refusing a stream failed");
        }
        return;
    }
    match request.accept(Connected::new_empty()).await {
        Ok(stream) => {
            // A closed receiver means the service is shutting down.
            let _ = tx.send(stream).await;
        }
        Err(e) => debug!(error = %e.report(), "accepting a stream failed"),
    }
}

/// Follows Arti's status and maps it onto [`ServiceStatus`].
async fn status_loop(
    mut events: tor_hsservice::status::OnionServiceStatusStream,
    tx: watch::Sender<ServiceStatus>,
    label: String,
) {
    let mut published = false;
    while let Some(status) = events.next().await {
        let next = match map_status(&status, published) {
            Some(next) => next,
            None => continue,
        };
        if next == ServiceStatus::Published && !published {
            published = true;
            info!(service = %label, "onion service descriptor published");
        }
        tx.send_if_modified(|cur| {
            let changed = *cur != next;
            *cur = next;
            changed
        });
    }
}

/// What one Arti status means for us, or `None` to keep the current one.
///
/// "Published" latches: once a descriptor is out, clients can connect even while
/// Arti is busy with new introduction points or the next time period's
/// descriptor, during which its overall state drops back to "bootstrapping".
fn map_status(status: &OnionServiceStatus, published: bool) -> Option<ServiceStatus> {
    match status.state() {
        State::Running | State::DegradedReachable => Some(ServiceStatus::Published),
        // Arti's publisher reports "degraded, unreachable" when a descriptor is up
        // for the current time period but not for the next one. That is the
        // normal state on a young network (no shared random value yet), and
        // clients reach the service fine. With failed uploads it reports the
        // failure as a problem.
        State::DegradedUnreachable => {
            if matches!(status.current_problem(), Some(Problem::DescriptorUpload(_))) {
                None
            } else {
                Some(ServiceStatus::Published)
            }
        }
        State::Broken => Some(ServiceStatus::Broken(problem_text(status))),
        State::Shutdown => Some(ServiceStatus::Stopped),
        _ if published => None,
        _ => Some(ServiceStatus::Starting),
    }
}

fn problem_text(status: &OnionServiceStatus) -> String {
    match status.current_problem() {
        Some(Problem::Runtime(e)) => e.report().to_string(),
        Some(Problem::DescriptorUpload(_)) => "its descriptor could not be uploaded".into(),
        Some(Problem::Ipt(_)) => "no introduction point could be established".into(),
        _ => "Arti reported the service as broken".into(),
    }
}

impl Shared {
    /// Gives Arti the client list (`new`, else the latest one) under a new
    /// generation of local names, which it takes as a change: it re-reads the
    /// list, marks every descriptor dirty and uploads new ones. With
    /// `only_after`, nothing happens unless that generation is still the
    /// latest. Returns the latest generation.
    fn apply_clients(
        &self,
        running: &RunningOnionService,
        new: Option<Vec<ClientAuthPublic>>,
        only_after: Option<u64>,
    ) -> Result<u64, TorError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if only_after.is_some_and(|g| g != clients.0) {
            return Ok(clients.0);
        }
        if let Some(new) = new {
            clients.1 = new;
        }
        let generation = clients.0 + 1;
        let config = service_config(&self.nickname, Some(&clients.1), generation)?;
        running
            .reconfigure(config, Reconfigure::AllOrNothing)
            .map_err(|e| service_error(&e))?;
        clients.0 = generation;
        Ok(generation)
    }

    /// Stops publishing, stops accepting and forgets the service's state.
    pub(super) fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if running.is_none() {
            return;
        }
        // Dropping Arti's handle stops publication and introductions; streams
        // already open stay up until their users close them.
        drop(running);
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        self.status_tx.send_replace(ServiceStatus::Stopped);
        // Best effort: Arti may still hold the state lock for a moment, and the
        // next launch under this name purges again anyway.
        if let Err(e) = purge_state(&self.state_dir, &self.mistrust, &self.nickname) {
            debug!(service = %self.label, error = %e, "could not purge service state");
        }
        info!(service = %self.label, "onion service stopped");
    }
}

#[async_trait]
impl OnionService for ArtiService {
    fn address(&self) -> OnionAddress {
        self.shared.address
    }

    fn status(&self) -> watch::Receiver<ServiceStatus> {
        self.shared.status_tx.subscribe()
    }

    async fn accept(&self) -> Result<BoxStream, TorError> {
        let mut incoming = self.shared.incoming.lock().await;
        match incoming.recv().await {
            Some(stream) => Ok(Box::new(stream)),
            None => Err(TorError::Shutdown),
        }
    }

    async fn set_authorized_clients(&self, clients: Vec<ClientAuthPublic>) -> Result<(), TorError> {
        if !self.shared.restricted {
            return Err(TorError::Service(
                "the service was launched without client authorization".into(),
            ));
        }
        let running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(TorError::Shutdown)?;
        let generation = self.shared.apply_clients(&running, Some(clients), None)?;
        debug!(service = %self.shared.label, "authorized clients replaced");
        drop(running);
        // See REAPPLY_CLIENTS_AFTER. Only the latest list is applied again, and
        // only if no change came since.
        let shared = Arc::downgrade(&self.shared);
        let reapply = tokio::spawn(async move {
            tokio::time::sleep(REAPPLY_CLIENTS_AFTER).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let running = shared
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(running) = running
                && let Err(e) = shared.apply_clients(&running, None, Some(generation))
            {
                debug!(service = %shared.label, error = %e, "could not apply the client list again");
            }
        });
        let mut tasks = self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(reapply);
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), TorError> {
        self.shared.stop();
        Ok(())
    }
}

impl Drop for ArtiService {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

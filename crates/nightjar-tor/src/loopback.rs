//! An in-process stand-in for the Tor network, so the node's logic can be tested
//! in every `cargo test`, fast and without tor.
//!
//! A [`LoopbackNetwork`] holds the onion services that are live on it; each
//! [`LoopbackNetwork::transport`] is one independent "tor client" with services
//! of its own. What it keeps of Tor's semantics:
//!
//! - an address comes from the service key exactly as the real backends derive
//!   it (RFC 8032 expansion of the seed), so a node has the same address here as
//!   on Tor, and one address is live at most once;
//! - streams reach a service only at its address and virtual port;
//! - restricted discovery: a service with an authorized-client list is reachable
//!   only with a client-authorization key on that list, and a new list applies to
//!   the next stream;
//! - a stopped service is unreachable, but streams it already accepted stay open;
//!   a transport's shutdown (or the drop of its last handle) stops its services
//!   and closes every stream it opened or accepted, as a dead tor process takes
//!   its streams with it: their peers read EOF.
//!
//! What it does not model: bootstrapping, descriptor publication delay, latency,
//! bandwidth, circuits (so circuit isolation and refreshing have no effect), and
//! stream acceptance (a stream is open as soon as it is queued for the service,
//! even if the service never accepts it; each direction buffers 64 KiB).

mod stream;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use zeroize::Zeroizing;

use self::stream::Registry;
use crate::{
    BootstrapStatus, BoxStream, ClientAuthPublic, ClientAuthSecret, ConnectOptions, OnionAddress,
    OnionService, ServiceConfig, ServiceKey, ServiceStatus, TorError, Transport,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An in-memory Tor network. Cloning it gives another handle to the same network.
#[derive(Clone, Default)]
pub struct LoopbackNetwork {
    inner: Arc<Network>,
}

#[derive(Default)]
struct Network {
    /// The live services, by address.
    services: Mutex<HashMap<OnionAddress, Arc<ServiceShared>>>,
}

impl fmt::Debug for LoopbackNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackNetwork")
            .field("live_services", &lock(&self.inner.services).len())
            .finish()
    }
}

impl LoopbackNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new client of this network, with no services yet. It is bootstrapped
    /// from the start. Dropping it has the effect of [`Transport::shutdown`].
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(LoopbackTransport {
            network: Arc::clone(&self.inner),
            bootstrap: watch::Sender::new(BootstrapStatus {
                percent: 100,
                summary: "loopback network: nothing to bootstrap".into(),
                blocked: None,
            }),
            streams: Arc::new(Registry::default()),
            services: Mutex::new(OwnServices::default()),
        })
    }
}

/// One client of a [`LoopbackNetwork`].
struct LoopbackTransport {
    network: Arc<Network>,
    bootstrap: watch::Sender<BootstrapStatus>,
    /// Every stream end this transport opened or accepted.
    streams: Arc<Registry>,
    services: Mutex<OwnServices>,
}

/// The services a transport launched.
#[derive(Default)]
struct OwnServices {
    /// Weak: a service whose handle was dropped is gone already.
    list: Vec<Weak<ServiceShared>>,
    /// Set by [`Transport::shutdown`]; nothing may be launched or opened after.
    shut_down: bool,
}

impl LoopbackTransport {
    fn is_shut_down(&self) -> bool {
        lock(&self.services).shut_down
    }

    /// Stops its services and closes its streams, as a tor process exiting does.
    fn stop(&self) {
        let services = {
            let mut own = lock(&self.services);
            own.shut_down = true;
            std::mem::take(&mut own.list)
        };
        for service in services.iter().filter_map(Weak::upgrade) {
            service.stop();
        }
        self.streams.close();
    }
}

/// Dropping the last handle to a transport shuts it down, as dropping a real
/// backend ends its tor.
impl Drop for LoopbackTransport {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address `key` gives: the Ed25519 public key of the seed expanded as
/// RFC 8032 does, which is what both real backends publish.
fn service_address(key: &ServiceKey) -> Result<OnionAddress, TorError> {
    let seed = match key {
        ServiceKey::Seed(seed) => seed.clone(),
        ServiceKey::Ephemeral => {
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::fill(seed.as_mut())
                .map_err(|e| TorError::Service(format!("no randomness for a new key: {e}")))?;
            seed
        }
    };
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    Ok(OnionAddress::from_public_key(public))
}

/// The public key of a client-authorization secret.
fn client_public(secret: &ClientAuthSecret) -> ClientAuthPublic {
    let secret = x25519_dalek::StaticSecret::from(secret.0);
    ClientAuthPublic(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

#[async_trait]
impl Transport for LoopbackTransport {
    fn bootstrap_status(&self) -> watch::Receiver<BootstrapStatus> {
        self.bootstrap.subscribe()
    }

    async fn launch_service(
        &self,
        config: ServiceConfig,
    ) -> Result<Box<dyn OnionService>, TorError> {
        if self.is_shut_down() {
            return Err(TorError::Shutdown);
        }
        let address = service_address(&config.key)?;
        let shared = Arc::new(ServiceShared {
            address,
            port: config.virtual_port,
            authorized: Mutex::new(config.authorized_clients),
            queue: Mutex::new(Queue::default()),
            arrived: Notify::new(),
            status: watch::Sender::new(ServiceStatus::Published),
            streams: Arc::clone(&self.streams),
            network: Arc::downgrade(&self.network),
        });
        {
            let mut live = lock(&self.network.services);
            if live.contains_key(&address) {
                return Err(TorError::Service(
                    "this onion address is already live on the network".into(),
                ));
            }
            let mut own = lock(&self.services);
            if own.shut_down {
                return Err(TorError::Shutdown);
            }
            own.list.retain(|s| s.strong_count() > 0);
            own.list.push(Arc::downgrade(&shared));
            live.insert(address, Arc::clone(&shared));
        }
        tracing::debug!(nickname = %config.nickname, "loopback service launched");
        Ok(Box::new(LoopbackService { shared }))
    }

    /// Opens a stream at once; the isolation key is ignored, as there are no
    /// circuits to keep apart.
    async fn connect(
        &self,
        target: &OnionAddress,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError> {
        if self.is_shut_down() {
            return Err(TorError::Shutdown);
        }
        let service = lock(&self.network.services)
            .get(target)
            .cloned()
            .ok_or_else(|| TorError::ServiceUnreachable("no such service is online".into()))?;
        service.check_client(options.client_auth.as_ref())?;
        if service.port != port {
            return Err(TorError::ServiceUnreachable(
                "the service does not listen on that port".into(),
            ));
        }
        let (client_end, service_end) = stream::pair();
        // The service's transport refusing the stream means it is shutting down:
        // to us, the service just went offline.
        let service_end = service
            .streams
            .adopt(service_end)
            .map_err(|_| TorError::ServiceUnreachable("the service went offline".into()))?;
        let client_end = self.streams.adopt(client_end)?;
        service.offer(service_end)?;
        Ok(client_end)
    }

    /// Does nothing: there are no circuits to refresh.
    async fn refresh_circuits(&self) -> Result<(), TorError> {
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), TorError> {
        self.stop();
        Ok(())
    }
}

/// A service's state, shared by its handle and the network.
struct ServiceShared {
    address: OnionAddress,
    port: u16,
    authorized: Mutex<Option<Vec<ClientAuthPublic>>>,
    queue: Mutex<Queue>,
    /// Wakes `accept` when a stream arrives or the service stops.
    arrived: Notify,
    status: watch::Sender<ServiceStatus>,
    /// The registry of the transport that launched the service.
    streams: Arc<Registry>,
    network: Weak<Network>,
}

/// Streams waiting for `accept`.
#[derive(Default)]
struct Queue {
    streams: VecDeque<BoxStream>,
    stopped: bool,
}

impl ServiceShared {
    /// What a Tor client would learn from the descriptor: whether `secret`
    /// lets it reach a service with restricted discovery.
    fn check_client(&self, secret: Option<&ClientAuthSecret>) -> Result<(), TorError> {
        let authorized = lock(&self.authorized);
        let Some(list) = authorized.as_ref() else {
            return Ok(());
        };
        let secret = secret.ok_or(TorError::ClientAuthRequired)?;
        if list.contains(&client_public(secret)) {
            Ok(())
        } else {
            Err(TorError::ClientAuthRejected)
        }
    }

    /// Queues a new stream for `accept`.
    fn offer(&self, stream: BoxStream) -> Result<(), TorError> {
        {
            let mut queue = lock(&self.queue);
            if queue.stopped {
                return Err(TorError::ServiceUnreachable(
                    "the service went offline".into(),
                ));
            }
            queue.streams.push_back(stream);
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    /// Takes the service off the network. Streams it accepted stay open; streams
    /// it had not accepted yet are dropped, so their clients read EOF.
    fn stop(self: &Arc<Self>) {
        if let Some(network) = self.network.upgrade() {
            let mut live = lock(&network.services);
            if live
                .get(&self.address)
                .is_some_and(|s| Arc::ptr_eq(s, self))
            {
                live.remove(&self.address);
            }
        }
        let unaccepted = {
            let mut queue = lock(&self.queue);
            queue.stopped = true;
            std::mem::take(&mut queue.streams)
        };
        drop(unaccepted);
        self.arrived.notify_waiters();
        self.status.send_replace(ServiceStatus::Stopped);
    }
}

/// The handle of a loopback service; dropping it takes the service down.
struct LoopbackService {
    shared: Arc<ServiceShared>,
}

impl Drop for LoopbackService {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

#[async_trait]
impl OnionService for LoopbackService {
    fn address(&self) -> OnionAddress {
        self.shared.address
    }

    fn status(&self) -> watch::Receiver<ServiceStatus> {
        self.shared.status.subscribe()
    }

    async fn accept(&self) -> Result<BoxStream, TorError> {
        loop {
            // Registered before looking, so a stream offered in between still
            // wakes us.
            let arrived = self.shared.arrived.notified();
            let mut arrived = std::pin::pin!(arrived);
            arrived.as_mut().enable();
            {
                let mut queue = lock(&self.shared.queue);
                if let Some(stream) = queue.streams.pop_front() {
                    return Ok(stream);
                }
                if queue.stopped {
                    return Err(TorError::Shutdown);
                }
            }
            arrived.await;
        }
    }

    /// Replaces the client list; the next stream is checked against it (streams
    /// already open stay open, as on Tor).
    async fn set_authorized_clients(&self, clients: Vec<ClientAuthPublic>) -> Result<(), TorError> {
        if lock(&self.shared.queue).stopped {
            return Err(TorError::Shutdown);
        }
        let mut authorized = lock(&self.shared.authorized);
        match authorized.as_mut() {
            Some(list) => {
                *list = clients;
                Ok(())
            }
            None => Err(TorError::Config(
                "this onion service was launched without restricted discovery".into(),
            )),
        }
    }

    async fn shutdown(&self) -> Result<(), TorError> {
        self.shared.stop();
        Ok(())
    }
}

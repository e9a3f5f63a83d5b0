//! The embedded Arti backend.
//!
//! Arti runs inside the process: no tor binary, no control port. What it keeps:
//!
//! - **Keys** always in Arti's in-memory keystore. Service keys come from the
//!   caller at each launch (a profile keeps the seed in its own encrypted
//!   database), client-authorization keys come with each connect. Nothing of
//!   either is written by Arti.
//! - **State** (guards, circuit timing, each service's introduction-point and
//!   replay records) and the **directory cache** in the directories of
//!   [`Storage`]. In ephemeral mode these are a temporary directory on tmpfs,
//!   removed at shutdown; Arti offers no way to keep them in memory only.
//!
//! Circuit isolation: every [`IsolationKey`] maps to one Arti `IsolationToken`;
//! [`Transport::refresh_circuits`] starts a new generation of tokens, so new
//! streams build new circuits while open streams keep theirs.

mod bootstrap;
mod config;
mod error;
mod keys;
mod service;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};
use std::time::Duration;

use arti_client::{BootstrapBehavior, DataStream, IsolationToken, StreamPrefs, TorClient};
use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tor_config::BoolOrAuto;
use tor_error::ErrorReport;
use tor_hsservice::HsNickname;
use tor_keymgr::KeystoreSelector;
use tor_rtcompat::PreferredRuntime;
use tracing::{debug, info, warn};

pub use config::{ArtiConfig, Authority, Fallback, Network, PrivateNetwork, Storage};
pub use service::ArtiService;

use crate::{
    BootstrapStatus, BoxStream, ConnectOptions, IsolationKey, OnionAddress, OnionService,
    ServiceConfig, TorError, Transport,
};

type Client = TorClient<PreferredRuntime>;

/// How long shutdown waits for Arti to let go of its state directory before the
/// temporary one is removed. Arti has no shutdown call: its background tasks end
/// when they next notice the client is gone, which after a failed bootstrap can
/// be never, so this is a courtesy, not a guarantee.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The embedded Arti backend.
pub struct Arti {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Arti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arti").finish_non_exhaustive()
    }
}

struct Inner {
    client: Mutex<Option<Arc<Client>>>,
    status_tx: watch::Sender<BootstrapStatus>,
    config: ArtiConfig,
    state_dir: PathBuf,
    mistrust: fs_mistrust::Mistrust,
    /// Kept so the ephemeral directory lives exactly as long as the backend.
    temp_dir: Mutex<Option<tempfile::TempDir>>,
    isolation: Mutex<HashMap<IsolationKey, IsolationToken>>,
    /// Which client-authorization key (its public half) Arti's keystore holds
    /// for each service, so a connect changes the keystore only when needed.
    discovery_keys: Mutex<HashMap<[u8; 32], [u8; 32]>>,
    /// How often each caller nickname was launched, so every launch gets its own
    /// name in Arti's keystore and state.
    nicknames: Mutex<HashMap<String, u32>>,
    services: Mutex<Vec<Weak<service::Shared>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Arti's TLS goes through rustls, which panics at the first handshake unless a
/// process-wide crypto provider is installed.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means the application installed one already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Arti {
    /// Creates the client without touching the network. Follow with
    /// [`Arti::bootstrap`]; [`Transport::bootstrap_status`] reports progress.
    pub async fn create(config: ArtiConfig) -> Result<Self, TorError> {
        install_crypto_provider();
        let (temp_dir, state_dir, cache_dir) = match &config.storage {
            Storage::Ephemeral => {
                let dir = config::ephemeral_dir()?;
                let state = dir.path().join("state");
                let cache = dir.path().join("cache");
                (Some(dir), state, cache)
            }
            Storage::Persistent {
                state_dir,
                cache_dir,
            } => (None, state_dir.clone(), cache_dir.clone()),
        };
        let tor_config = config::tor_client_config(&config.network, &state_dir, &cache_dir)?;
        let mistrust = tor_config.fs_mistrust().clone();
        let client = TorClient::builder()
            .config(tor_config)
            .bootstrap_behavior(BootstrapBehavior::OnDemand)
            .create_unbootstrapped_async()
            .await
            .map_err(|e| error::bootstrap_error(&e))?;

        let (status_tx, _) = watch::channel(BootstrapStatus {
            percent: 0,
            summary: "starting".into(),
            blocked: None,
        });
        let forwarder = bootstrap::forward(&client, status_tx.clone());
        let inner = Arc::new(Inner {
            client: Mutex::new(Some(client)),
            status_tx,
            state_dir,
            mistrust,
            temp_dir: Mutex::new(temp_dir),
            isolation: Mutex::new(HashMap::new()),
            discovery_keys: Mutex::new(HashMap::new()),
            nicknames: Mutex::new(HashMap::new()),
            services: Mutex::new(Vec::new()),
            tasks: Mutex::new(vec![forwarder]),
            config,
        });
        if let Some(every) = inner.config.circuit_refresh {
            let task = tokio::spawn(refresh_schedule(Arc::downgrade(&inner), every));
            lock(&inner.tasks).push(task);
        }
        Ok(Self { inner })
    }

    /// Joins the network; fails with [`TorError::BootstrapStalled`] when progress
    /// stops for longer than [`ArtiConfig::bootstrap_stall_timeout`].
    pub async fn bootstrap(&self) -> Result<(), TorError> {
        let client = self.inner.client()?;
        let started = std::time::Instant::now();
        bootstrap::run(
            &client,
            self.inner.status_tx.subscribe(),
            self.inner.config.bootstrap_stall_timeout,
        )
        .await?;
        // The event stream may lag behind the moment bootstrap returns.
        self.inner
            .status_tx
            .send_replace(bootstrap::convert(&client.bootstrap_status()));
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Arti bootstrapped"
        );
        Ok(())
    }

    /// [`Arti::create`] and [`Arti::bootstrap`].
    pub async fn launch(config: ArtiConfig) -> Result<Self, TorError> {
        let arti = Self::create(config).await?;
        arti.bootstrap().await?;
        Ok(arti)
    }

    /// The service-launching half of [`Transport::launch_service`], with Arti's
    /// own service type.
    pub async fn launch_arti_service(
        &self,
        config: ServiceConfig,
    ) -> Result<ArtiService, TorError> {
        let client = self.inner.client()?;
        let nickname = self.inner.arti_nickname(&config.nickname)?;
        let (keypair, address) = keys::service_keypair(&config.key);
        let service = service::launch(
            &client,
            self.inner.mistrust.clone(),
            service::Launch {
                nickname,
                label: config.nickname,
                keypair,
                address,
                virtual_port: config.virtual_port,
                authorized_clients: config.authorized_clients,
                state_dir: self.inner.state_dir.clone(),
            },
        )?;
        let mut services = lock(&self.inner.services);
        services.retain(|s| s.strong_count() > 0);
        services.push(Arc::downgrade(&service.shared()));
        Ok(service)
    }

    /// [`Transport::connect`], with Arti's own stream type (which can tell which
    /// circuit carries it: see [`circuit_id`]).
    pub async fn connect_data_stream(
        &self,
        target: &OnionAddress,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<DataStream, TorError> {
        let client = self.inner.client()?;
        self.inner.set_discovery_key(&client, target, options)?;
        let mut prefs = StreamPrefs::new();
        prefs.connect_to_onion_services(BoolOrAuto::Explicit(true));
        prefs.set_isolation(self.inner.isolation_token(&options.isolation));
        let host = target.to_string();

        let attempts = self.inner.config.connect_attempts.max(1);
        let mut pause = self.inner.config.connect_backoff;
        let mut attempt = 1;
        let timeout = self.inner.config.connect_timeout;
        loop {
            let result = tokio::time::timeout(
                timeout,
                client.connect_with_prefs((host.as_str(), port), &prefs),
            )
            .await;
            let retry = match &result {
                Ok(Ok(_)) => false,
                Ok(Err(e)) => error::is_retryable(e),
                Err(_) => true,
            };
            if !retry || attempt >= attempts {
                return match result {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(e)) => Err(error::connect_error(&e)),
                    Err(_) => Err(TorError::ServiceUnreachable(format!(
                        "no answer within {} s",
                        timeout.as_secs()
                    ))),
                };
            }
            match &result {
                Ok(Err(e)) => {
                    let kind = arti_client::HasKind::kind(e);
                    debug!(attempt, ?kind, error = %e.report(), "onion connect failed; retrying");
                }
                _ => debug!(attempt, "onion connect timed out; retrying"),
            }
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
            attempt += 1;
        }
    }
}

/// A process-unique name of the circuit (tunnel) that carries `stream`, for
/// checking isolation; `None` once the circuit is gone.
pub fn circuit_id(stream: &DataStream) -> Option<String> {
    use tor_proto::client::stream::ClientStreamCtrl as _;
    let tunnel = stream.client_stream_ctrl()?.tunnel()?;
    Some(tunnel.unique_id().to_string())
}

impl Inner {
    fn client(&self) -> Result<Arc<Client>, TorError> {
        lock(&self.client).clone().ok_or(TorError::Shutdown)
    }

    fn arti_nickname(&self, label: &str) -> Result<HsNickname, TorError> {
        let mut uses = lock(&self.nicknames);
        let n = uses.entry(label.to_owned()).or_insert(0);
        let name = if *n == 0 {
            label.to_owned()
        } else {
            format!("{label}-{n}")
        };
        let nickname = HsNickname::new(name).map_err(|e| {
            TorError::Config(format!(
                "service nickname {label:?} is not usable ({e}); use letters, digits, '-' and '_'"
            ))
        })?;
        *n += 1;
        Ok(nickname)
    }

    fn isolation_token(&self, key: &IsolationKey) -> IsolationToken {
        *lock(&self.isolation)
            .entry(key.clone())
            .or_insert_with(IsolationToken::new)
    }

    /// Makes Arti's keystore hold exactly the key `options` brings for `target`
    /// (or none), so the connect uses it.
    ///
    /// Arti reads the keystore when a connect starts; two concurrent connects to
    /// one service with different keys could see each other's. The node uses one
    /// key per contact, so that does not arise.
    fn set_discovery_key(
        &self,
        client: &Client,
        target: &OnionAddress,
        options: &ConnectOptions,
    ) -> Result<(), TorError> {
        let id = *target.public_key();
        let wanted = options.client_auth.as_ref().map(keys::client_public_of);
        let mut held = lock(&self.discovery_keys);
        if held.get(&id).copied() == wanted {
            return Ok(());
        }
        let hsid = keys::hsid(target);
        let map = |e: arti_client::Error| TorError::Config(e.report().to_string());
        if held.remove(&id).is_some() {
            client
                .remove_service_discovery_key(KeystoreSelector::Primary, hsid)
                .map_err(map)?;
        }
        if let (Some(secret), Some(public)) = (&options.client_auth, wanted) {
            client
                .insert_service_discovery_key(
                    KeystoreSelector::Primary,
                    hsid,
                    keys::client_secret(secret),
                )
                .map_err(map)?;
            held.insert(id, public);
        }
        Ok(())
    }

    fn refresh(&self) -> Result<(), TorError> {
        let client = self.client()?;
        // New tokens: every isolation key gets circuits of its own again, and
        // circuits made for the old tokens are used only by streams already on them.
        lock(&self.isolation).clear();
        // Also drop the pre-built onion-service circuits, which new onion
        // connections would otherwise start from.
        if let Ok(pool) = client.hs_circ_pool()
            && let Err(e) = pool.retire_all_circuits()
        {
            debug!(error = %e, "could not retire pooled circuits");
        }
        info!("circuits refreshed");
        Ok(())
    }

    async fn shutdown(&self) {
        let services: Vec<_> = lock(&self.services).drain(..).collect();
        for service in services.iter().filter_map(Weak::upgrade) {
            service.stop();
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        let client = lock(&self.client).take();
        let temp_dir = lock(&self.temp_dir).take();
        if let Some(client) = client {
            let stopped = client.wait_for_stop();
            drop(client);
            if temp_dir.is_some() && tokio::time::timeout(STOP_GRACE, stopped).await.is_err() {
                debug!("Arti still running; removing its temporary files anyway");
            }
        }
        if let Some(dir) = temp_dir {
            remove_temp_dir(dir);
        }
    }
}

/// Removes the ephemeral directory. Arti may still be writing into it (its tasks
/// outlive the client for a while), so a removal that meets a file created
/// meanwhile is tried again.
fn remove_temp_dir(dir: tempfile::TempDir) {
    let path = dir.keep();
    let mut last = None;
    for _ in 0..5 {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(e) = last {
        warn!(error = %e, "could not remove Arti's temporary directory");
    }
}

async fn refresh_schedule(inner: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    // The first tick fires at once; circuits are fresh then anyway.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.refresh().is_err() {
            return;
        }
    }
}

#[async_trait]
impl Transport for Arti {
    fn bootstrap_status(&self) -> watch::Receiver<BootstrapStatus> {
        self.inner.status_tx.subscribe()
    }

    async fn launch_service(
        &self,
        config: ServiceConfig,
    ) -> Result<Box<dyn OnionService>, TorError> {
        Ok(Box::new(self.launch_arti_service(config).await?))
    }

    async fn connect(
        &self,
        target: &OnionAddress,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError> {
        Ok(Box::new(
            self.connect_data_stream(target, port, options).await?,
        ))
    }

    async fn connect_host(
        &self,
        host: &str,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError> {
        let client = self.inner.client()?;
        let mut prefs = StreamPrefs::new();
        prefs.set_isolation(self.inner.isolation_token(&options.isolation));
        let timeout = self.inner.config.connect_timeout;
        let unreachable = |why: String| TorError::HostUnreachable(host.to_owned(), why);
        match tokio::time::timeout(timeout, client.connect_with_prefs((host, port), &prefs)).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable(format!(
                "no answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    async fn refresh_circuits(&self) -> Result<(), TorError> {
        self.inner.refresh()
    }

    async fn shutdown(&self) -> Result<(), TorError> {
        self.inner.shutdown().await;
        Ok(())
    }
}

impl Drop for Arti {
    fn drop(&mut self) {
        for service in lock(&self.inner.services)
            .drain(..)
            .filter_map(|s| s.upgrade())
        {
            service.stop();
        }
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
        lock(&self.inner.client).take();
        let temp_dir = lock(&self.inner.temp_dir).take();
        if let Some(dir) = temp_dir {
            remove_temp_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private network whose only fallback does not answer: bootstrap must give
    /// up with a readable reason instead of hanging.
    fn unreachable_network() -> Network {
        // Bind and drop a listener to get a loopback port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Network::Private(PrivateNetwork {
            authorities: vec![Authority { v3ident: [1; 20] }],
            fallbacks: vec![Fallback {
                rsa_identity: [2; 20],
                ed_identity: [3; 32],
                or_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            }],
            time_period: Duration::from_secs(8 * 60),
            allow_local_addrs: true,
        })
    }

    #[tokio::test]
    async fn bootstrap_stall_is_reported_and_ephemeral_dir_removed() {
        let arti = Arti::create(ArtiConfig {
            network: unreachable_network(),
            bootstrap_stall_timeout: Duration::from_secs(3),
            ..ArtiConfig::default()
        })
        .await
        .unwrap();
        let dir = lock(&arti.inner.temp_dir)
            .as_ref()
            .unwrap()
            .path()
            .to_owned();
        assert!(dir.exists());
        if std::path::Path::new("/dev/shm").is_dir() {
            assert!(dir.starts_with("/dev/shm"));
        }
        let err = arti.bootstrap().await.unwrap_err();
        assert!(matches!(err, TorError::BootstrapStalled(_)), "{err:?}");
        assert!(!err.to_string().is_empty());
        assert!(!arti.bootstrap_status().borrow().is_ready());

        arti.shutdown().await.unwrap();
        assert!(!dir.exists());
        let err = arti
            .connect(
                &keys::service_keypair(&crate::ServiceKey::Ephemeral).1,
                80,
                &ConnectOptions {
                    isolation: IsolationKey("x".into()),
                    client_auth: None,
                },
            )
            .await
            .err()
            .unwrap();
        assert!(matches!(err, TorError::Shutdown), "{err:?}");
    }

    #[tokio::test]
    async fn nicknames_are_unique_per_launch_and_validated() {
        let arti = Arti::create(ArtiConfig {
            network: unreachable_network(),
            ..ArtiConfig::default()
        })
        .await
        .unwrap();
        let a = arti.inner.arti_nickname("endpoint").unwrap();
        let b = arti.inner.arti_nickname("endpoint").unwrap();
        assert_ne!(a, b);
        assert!(matches!(
            arti.inner.arti_nickname("no spaces"),
            Err(TorError::Config(_))
        ));
        arti.shutdown().await.unwrap();
    }

    #[test]
    fn private_network_needs_authorities_and_fallbacks() {
        let net = Network::Private(PrivateNetwork {
            authorities: vec![],
            fallbacks: vec![],
            time_period: Duration::from_secs(480),
            allow_local_addrs: false,
        });
        let dir = tempfile::tempdir().unwrap();
        let err = config::tor_client_config(&net, dir.path(), dir.path()).unwrap_err();
        assert!(matches!(err, TorError::Config(_)));
        assert!(config::tor_client_config(&unreachable_network(), dir.path(), dir.path()).is_ok());
    }
}

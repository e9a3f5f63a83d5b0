//! The system C tor backend: a tor we launch as a child with a hardened torrc, or
//! a running tor we attach to through its control port.
//!
//! One supervisor task per backend reads tor's events (bootstrap progress,
//! descriptor uploads) and, when the control connection drops, relaunches our
//! tor (or reconnects to an attached one) and restores what lived on the old
//! connection: client-authorization keys and every onion service whose key we
//! kept. Streams go through tor's SOCKS port with the isolation key as
//! credentials, so `IsolateSOCKSAuth` keeps contacts on separate circuits.

mod launch;
mod service;
mod socks;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use launch::{TorProcessConfig, TransportPlugin, verify_config};
pub use socks::SocksAddr;

use crate::control::{
    AddOnion, BootstrapEvent, ControlAddr, Controller, Event, EventReceiver, HsDescAction,
    OnionKeyRequest, unquote,
};
use crate::testnet::NetworkDescription;
use crate::{
    BootstrapStatus, BoxStream, ClientAuthSecret, ConnectOptions, IsolationKey, OnionAddress,
    OnionService, ServiceConfig, ServiceKey, ServiceStatus, TorError, Transport,
};
use launch::{LogTail, Ports};
use service::{CTorService, ServiceState};

/// Behaviour common to launched and attached tors.
#[derive(Debug, Clone)]
pub struct CTorOptions {
    /// Bootstrapping that makes no progress for this long is reported as stalled
    /// ([`TorError::BootstrapStalled`]).
    pub bootstrap_stall_timeout: Duration,
    /// Also switch to fresh circuits for new streams this often (see
    /// [`Transport::refresh_circuits`]).
    pub circuit_refresh: Option<Duration>,
    /// Tries per [`Transport::connect`] while the target is not reachable yet
    /// (a fresh service needs a few seconds to publish its descriptor).
    pub connect_attempts: u32,
    /// Give up one try after this long (tor itself waits up to two minutes,
    /// e.g. on a stale descriptor, before answering).
    pub connect_timeout: Duration,
}

impl Default for CTorOptions {
    fn default() -> Self {
        Self {
            bootstrap_stall_timeout: Duration::from_secs(120),
            circuit_refresh: Some(crate::CIRCUIT_REFRESH),
            connect_attempts: 6,
            connect_timeout: Duration::from_secs(45),
        }
    }
}

impl TorProcessConfig {
    /// A client of the private test network described by `net`.
    pub fn for_test_network(net: &NetworkDescription) -> Self {
        Self {
            extra_torrc: net.client_torrc.clone(),
            ..Self::default()
        }
    }
}

/// How often at most [`Shared::forget_failed_lookups`] sends `NEWNYM`: it also
/// empties tor's descriptor cache, so streams to every other service pay one
/// descriptor fetch afterwards.
const LOOKUP_RESET_INTERVAL: Duration = Duration::from_secs(30);

/// tor acts on at most one `NEWNYM` per 10 seconds and *delays* the others; a
/// delayed one would purge client-authorization keys after we restored them, so
/// we never send them closer together (circuits that new are fresh anyway).
const NEWNYM_INTERVAL: Duration = Duration::from_secs(11);

/// The control connection in use and where tor's SOCKS port is.
pub(crate) struct Conn {
    pub ctl: Controller,
    pub socks: SocksAddr,
}

enum Mode {
    Owned {
        config: TorProcessConfig,
        ports: Ports,
        torrc_path: PathBuf,
        tail: LogTail,
    },
    Attached {
        control: ControlAddr,
        cookie_file: Option<PathBuf>,
    },
}

/// State shared by the backend handle, its services and its tasks.
pub(crate) struct Shared {
    mode: Mode,
    options: CTorOptions,
    /// `None` while tor is (re)starting.
    conn: watch::Sender<Option<Arc<Conn>>>,
    bootstrap: watch::Sender<BootstrapStatus>,
    /// When bootstrap progress last changed, and tor's last warning.
    progress: Mutex<(tokio::time::Instant, Option<String>)>,
    services: Mutex<HashMap<String, Weak<ServiceState>>>,
    /// Descriptor uploads seen for services not registered yet (the event can
    /// overtake the `ADD_ONION` reply's processing).
    early_uploads: Mutex<HashSet<String>>,
    client_auth: Mutex<HashMap<String, ClientAuthSecret>>,
    /// When [`Shared::forget_failed_lookups`] last reset tor's lookup memory.
    lookup_reset: Mutex<Option<tokio::time::Instant>>,
    /// When we last sent `NEWNYM`.
    newnym_at: Mutex<Option<tokio::time::Instant>>,
    /// Mixed into every SOCKS username; a new generation puts new streams on
    /// new circuits.
    circuit_generation: AtomicU64,
    shutdown: watch::Sender<bool>,
    restarts: watch::Sender<u64>,
    /// Declared before `temp_dir` so tor is gone before its directory is removed.
    child: Mutex<Option<tokio::process::Child>>,
    temp_dir: Option<tempfile::TempDir>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.start_kill();
            // Wait (briefly) so the data directory is not removed under tor.
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(dir) = self.temp_dir.take() {
            let _ = dir.close();
        }
    }
}

impl Shared {
    fn is_shutdown(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The connection, if one is up right now.
    pub(crate) fn current_conn_now(&self) -> Option<Arc<Conn>> {
        self.conn
            .borrow()
            .as_ref()
            .filter(|c| c.ctl.closed_reason().is_none())
            .cloned()
    }

    /// The connection, waiting (up to the stall timeout) while tor restarts.
    pub(crate) async fn current_conn(&self) -> Result<Arc<Conn>, TorError> {
        let mut rx = self.conn.subscribe();
        let mut down = self.shutdown.subscribe();
        let wait = rx.wait_for(|c| c.as_ref().is_some_and(|c| c.ctl.closed_reason().is_none()));
        tokio::select! {
            r = tokio::time::timeout(self.options.bootstrap_stall_timeout, wait) => match r {
                Ok(Ok(c)) => c.clone().ok_or(TorError::Shutdown),
                Ok(Err(_)) => Err(TorError::Shutdown),
                Err(_) => Err(TorError::BootstrapStalled("tor is not running".into())),
            },
            _ = down.wait_for(|d| *d) => Err(TorError::Shutdown),
        }
    }

    /// tor asks each HSDir for a given descriptor at most once per 15 minutes;
    /// once every responsible HSDir said "not found" (a contact offline, or a
    /// service not yet published), the address stays unreachable for that long
    /// even after it comes up. `NEWNYM` clears that memory (along with cached
    /// descriptors, and moves new streams to fresh circuits; open streams keep
    /// theirs), so after repeated misses we send it, at most once per
    /// [`LOOKUP_RESET_INTERVAL`].
    async fn forget_failed_lookups(&self, conn: &Conn) {
        {
            let mut last = lock(&self.lookup_reset);
            if last.is_some_and(|t| t.elapsed() < LOOKUP_RESET_INTERVAL) {
                return;
            }
            *last = Some(tokio::time::Instant::now());
        }
        if let Err(e) = self.newnym(conn).await {
            tracing::debug!(error = %e, "NEWNYM after failed descriptor lookups");
        }
    }

    /// `SIGNAL NEWNYM`: new streams get fresh circuits. tor also drops the
    /// client-authorization keys we added (in memory only, on purpose), so they
    /// are added again at once.
    async fn newnym(&self, conn: &Conn) -> Result<(), TorError> {
        {
            let mut last = lock(&self.newnym_at);
            if last.is_some_and(|t| t.elapsed() < NEWNYM_INTERVAL) {
                return Ok(());
            }
            *last = Some(tokio::time::Instant::now());
        }
        // tor purges synchronously before answering, so the keys restored
        // below stay.
        conn.ctl.signal("NEWNYM").await?;
        self.restore_client_auth(&conn.ctl).await
    }

    /// New streams from now on get new circuits.
    fn refresh(&self) {
        self.circuit_generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The SOCKS username for streams under `isolation` in this generation.
    fn socks_username(&self, isolation: &IsolationKey) -> String {
        socks_username(self.circuit_generation.load(Ordering::Relaxed), isolation)
    }

    /// Gives tor every client-authorization key we were handed.
    async fn restore_client_auth(&self, ctl: &Controller) -> Result<(), TorError> {
        let keys: Vec<(String, ClientAuthSecret)> = lock(&self.client_auth)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, secret) in keys {
            ctl.onion_client_auth_add(&id, &secret).await?;
        }
        Ok(())
    }

    /// Makes sure tor has this key for the service (`force`: add it again even
    /// if we think tor has it). Recorded first, so a concurrent `NEWNYM`
    /// restores it too.
    async fn ensure_client_auth(
        &self,
        conn: &Conn,
        service_id: &str,
        secret: &ClientAuthSecret,
        force: bool,
    ) -> Result<(), TorError> {
        let known = {
            let mut keys = lock(&self.client_auth);
            let known = keys.get(service_id).is_some_and(|s| s.0 == secret.0);
            if !known {
                keys.insert(service_id.to_owned(), secret.clone());
            }
            known
        };
        if known && !force {
            return Ok(());
        }
        let added = conn.ctl.onion_client_auth_add(service_id, secret).await;
        if added.is_err() {
            // tor refused it (a malformed key): do not restore it later either.
            lock(&self.client_auth).remove(service_id);
        }
        added
    }

    pub(crate) fn forget_service(&self, service_id: &str) {
        lock(&self.services).remove(service_id);
    }

    fn live_services(&self) -> Vec<Arc<ServiceState>> {
        let mut map = lock(&self.services);
        map.retain(|_, w| w.strong_count() > 0);
        map.values().filter_map(Weak::upgrade).collect()
    }

    fn set_bootstrap(&self, percent: u8, summary: &str) {
        self.bootstrap.send_if_modified(|s| {
            let changed = s.percent != percent || s.summary != summary || s.blocked.is_some();
            s.percent = percent;
            s.summary = summary.to_owned();
            s.blocked = None;
            changed
        });
        let mut p = lock(&self.progress);
        p.0 = tokio::time::Instant::now();
    }

    fn on_event(&self, event: Event) {
        match event {
            Event::Bootstrap(b) => self.on_bootstrap(&b),
            Event::HsDesc(h) if h.action == HsDescAction::Uploaded => {
                let svc = lock(&self.services).get(&h.address).and_then(Weak::upgrade);
                match svc {
                    Some(svc) => {
                        svc.status.send_if_modified(|s| {
                            let starting = *s == ServiceStatus::Starting;
                            if starting {
                                *s = ServiceStatus::Published;
                            }
                            starting
                        });
                    }
                    None => {
                        let mut early = lock(&self.early_uploads);
                        if early.len() < 64 {
                            early.insert(h.address);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_bootstrap(&self, b: &BootstrapEvent) {
        if let Some(w) = &b.warning {
            // tor retries by itself; the warning only explains a stall later.
            lock(&self.progress).1 = Some(format!("{w} ({})", b.summary));
            return;
        }
        let moved = self.bootstrap.borrow().percent != b.progress;
        if moved || b.progress == 100 {
            self.set_bootstrap(b.progress, &b.summary);
        }
    }

    /// Marks bootstrap as blocked once it made no progress for too long.
    fn check_stall(&self) {
        let (since, warning) = {
            let p = lock(&self.progress);
            (p.0, p.1.clone())
        };
        let stalled = since.elapsed() > self.options.bootstrap_stall_timeout;
        self.bootstrap.send_if_modified(|s| {
            if s.percent >= 100 || !stalled || s.blocked.is_some() {
                return false;
            }
            let mut reason = format!(
                "no progress for {} s at {}% ({})",
                self.options.bootstrap_stall_timeout.as_secs(),
                s.percent,
                s.summary
            );
            if let Some(w) = &warning {
                reason.push_str("; tor's last warning: ");
                reason.push_str(w);
            }
            s.blocked = Some(reason);
            true
        });
    }

    /// Starts our tor, or reconnects to the attached one, and restores state.
    async fn start(&self) -> Result<EventReceiver, TorError> {
        match &self.mode {
            Mode::Owned {
                config,
                ports,
                torrc_path,
                tail,
            } => {
                let old = lock(&self.child).take();
                if let Some(mut old) = old {
                    let _ = old.start_kill();
                    let _ = old.wait().await;
                }
                launch::remove_stale(ports);
                let mut child = launch::spawn(&config.tor, torrc_path, tail)?;
                let addr =
                    launch::wait_for_control(&mut child, ports, tail, Duration::from_secs(60))
                        .await;
                *lock(&self.child) = Some(child);
                self.connect_and_restore(&addr?, None, true).await
            }
            Mode::Attached {
                control,
                cookie_file,
            } => {
                self.connect_and_restore(control, cookie_file.as_deref(), false)
                    .await
            }
        }
    }

    async fn connect_and_restore(
        &self,
        addr: &ControlAddr,
        cookie_file: Option<&std::path::Path>,
        own: bool,
    ) -> Result<EventReceiver, TorError> {
        let (ctl, events) = Controller::connect(addr).await?;
        ctl.authenticate(cookie_file).await?;
        if own {
            ctl.take_ownership().await?;
        }
        ctl.set_events(&["STATUS_CLIENT", "HS_DESC"]).await?;
        let phase = ctl.get_info("status/bootstrap-phase").await?;
        if let Some(b) = BootstrapEvent::parse_phase(&phase) {
            self.set_bootstrap(b.progress, &b.summary);
        }
        let socks = socks_listener(&ctl).await?;
        self.restore_client_auth(&ctl).await?;
        for svc in self.live_services() {
            let _one_at_a_time = svc.republish.lock().await;
            if let Err(e) = svc.publish(&ctl).await {
                tracing::warn!(error = %e, "an onion service could not be restored");
            }
        }
        self.conn.send_replace(Some(Arc::new(Conn { ctl, socks })));
        Ok(events)
    }
}

async fn socks_listener(ctl: &Controller) -> Result<SocksAddr, TorError> {
    let value = ctl.get_info("net/listeners/socks").await?;
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (item, after) = if rest.starts_with('"') {
            unquote(rest).map_err(|e| TorError::Protocol(e.to_string()))?
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (rest[..end].to_owned(), &rest[end..])
        };
        if let Some(addr) = SocksAddr::parse_listener(&item) {
            let usable = match &addr {
                SocksAddr::Tcp(a) => a.ip().is_loopback(),
                SocksAddr::Unix(_) => true,
            };
            if usable {
                return Ok(addr);
            }
        }
        rest = after.trim_start();
    }
    Err(TorError::Config(
        "tor has no SOCKS port on this machine".into(),
    ))
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The system C tor backend.
pub struct CTor {
    shared: Arc<Shared>,
    _tasks: Vec<AbortOnDrop>,
}

impl std::fmt::Debug for CTor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CTor")
            .field("bootstrap", &*self.shared.bootstrap.borrow())
            .finish_non_exhaustive()
    }
}

impl CTor {
    /// Launches tor as our child and connects to it. Returns once its control
    /// port answers; bootstrapping goes on in the background
    /// ([`CTor::wait_bootstrapped`]).
    pub async fn launch(config: TorProcessConfig, options: CTorOptions) -> Result<Self, TorError> {
        config.validate()?;
        let (data_dir, temp_dir) = match &config.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let t = tempfile::Builder::new().prefix("nightjar-tor-").tempdir()?;
                (t.path().to_owned(), Some(t))
            }
        };
        launch::private_dir(&data_dir)?;
        let ports = Ports::for_dir(&data_dir);
        let torrc_path = data_dir.join("torrc");
        std::fs::write(
            &torrc_path,
            config.torrc(&data_dir, &ports, std::process::id()),
        )?;
        let mode = Mode::Owned {
            config,
            ports,
            torrc_path,
            tail: LogTail::default(),
        };
        Self::start(mode, options, temp_dir).await
    }

    /// Uses a running tor through its control port (cookie authentication; a
    /// cookie path overrides the one tor names). Onion services added through
    /// this backend live as long as its control connection.
    pub async fn attach(
        control: ControlAddr,
        cookie_file: Option<PathBuf>,
        options: CTorOptions,
    ) -> Result<Self, TorError> {
        let mode = Mode::Attached {
            control,
            cookie_file,
        };
        Self::start(mode, options, None).await
    }

    async fn start(
        mode: Mode,
        options: CTorOptions,
        temp_dir: Option<tempfile::TempDir>,
    ) -> Result<Self, TorError> {
        let shared = Arc::new(Shared {
            mode,
            options,
            conn: watch::channel(None).0,
            bootstrap: watch::channel(BootstrapStatus {
                percent: 0,
                summary: "starting tor".into(),
                blocked: None,
            })
            .0,
            progress: Mutex::new((tokio::time::Instant::now(), None)),
            services: Mutex::new(HashMap::new()),
            early_uploads: Mutex::new(HashSet::new()),
            client_auth: Mutex::new(HashMap::new()),
            lookup_reset: Mutex::new(None),
            newnym_at: Mutex::new(None),
            circuit_generation: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
            restarts: watch::channel(0).0,
            child: Mutex::new(None),
            temp_dir,
        });
        let events = shared.start().await?;
        let mut tasks = vec![AbortOnDrop(tokio::spawn(supervise(shared.clone(), events)))];
        tasks.push(AbortOnDrop(tokio::spawn(watch_stall(Arc::downgrade(
            &shared,
        )))));
        if let Some(every) = shared.options.circuit_refresh {
            tasks.push(AbortOnDrop(tokio::spawn(refresh_periodically(
                Arc::downgrade(&shared),
                every,
            ))));
        }
        Ok(Self {
            shared,
            _tasks: tasks,
        })
    }

    /// Waits until tor can open streams; fails if bootstrapping stalls.
    pub async fn wait_bootstrapped(&self) -> Result<(), TorError> {
        let mut rx = self.shared.bootstrap.subscribe();
        let status = rx
            .wait_for(|s| s.is_ready() || s.blocked.is_some())
            .await
            .map_err(|_| TorError::Shutdown)?;
        match &status.blocked {
            Some(reason) => Err(TorError::BootstrapStalled(reason.clone())),
            None => Ok(()),
        }
    }

    /// `GETINFO key` on the current control connection (diagnostics and tests:
    /// `circuit-status`, `stream-status`, ...).
    pub async fn get_info(&self, key: &str) -> Result<String, TorError> {
        self.shared.current_conn().await?.ctl.get_info(key).await
    }

    /// The process id of the tor we launched (none when attached).
    pub fn tor_pid(&self) -> Option<u32> {
        lock(&self.shared.child).as_ref().and_then(|c| c.id())
    }

    /// How many times tor was restarted or reconnected since launch; changes are
    /// announced on the returned channel.
    pub fn restarts(&self) -> watch::Receiver<u64> {
        self.shared.restarts.subscribe()
    }
}

/// Reads events; when the connection drops, brings tor back.
async fn supervise(shared: Arc<Shared>, mut events: EventReceiver) {
    loop {
        while let Some(event) = events.recv().await {
            shared.on_event(event);
        }
        if shared.is_shutdown() {
            return;
        }
        tracing::warn!("lost the connection to tor; restarting it");
        shared.conn.send_replace(None);
        shared.set_bootstrap(0, "tor stopped; restarting it");
        for svc in shared.live_services() {
            svc.status.send_if_modified(|s| {
                let was_up = *s == ServiceStatus::Published;
                if was_up {
                    *s = ServiceStatus::Starting;
                }
                was_up
            });
        }
        let mut delay = Duration::from_millis(500);
        events = loop {
            if shared.is_shutdown() {
                return;
            }
            match shared.start().await {
                Ok(ev) => break ev,
                Err(e) => {
                    tracing::warn!(error = %e, "restarting tor failed; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        };
        shared.restarts.send_modify(|n| *n += 1);
    }
}

async fn watch_stall(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.check_stall();
    }
}

async fn refresh_periodically(shared: Weak<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.refresh();
    }
}

/// The SOCKS username for an isolation key: a digest, so contact labels never
/// reach tor, and never starting with `<torS0X>` (tor's extended SOCKS
/// parameters). `generation` changes with every circuit refresh.
fn socks_username(generation: u64, isolation: &IsolationKey) -> String {
    let digest = Sha256::new()
        .chain_update(generation.to_be_bytes())
        .chain_update(isolation.0.as_bytes())
        .finalize();
    format!("nj-{}", data_encoding::HEXLOWER.encode(&digest[..16]))
}

#[async_trait]
impl Transport for CTor {
    fn bootstrap_status(&self) -> watch::Receiver<BootstrapStatus> {
        self.shared.bootstrap.subscribe()
    }

    async fn launch_service(
        &self,
        config: ServiceConfig,
    ) -> Result<Box<dyn OnionService>, TorError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let restricted = config.authorized_clients.is_some();
        let (key_request, kept_key, expected) = match &config.key {
            ServiceKey::Seed(seed) => {
                let (expanded, address) = service::expand_seed(seed);
                (
                    OnionKeyRequest::Expanded(expanded.clone()),
                    Some(expanded),
                    Some(address),
                )
            }
            // Restricted discovery needs re-publishing with the same key when
            // the client list changes, so tor must hand the key to us.
            ServiceKey::Ephemeral => (
                OnionKeyRequest::New {
                    discard: !restricted,
                },
                None,
                None,
            ),
        };
        let conn = self.shared.current_conn().await?;
        let added = conn
            .ctl
            .add_onion(&AddOnion {
                key: key_request,
                ports: vec![(config.virtual_port, local)],
                client_auth: service::auth_list(config.authorized_clients.clone())?,
                detach: false,
            })
            .await?;
        let address: OnionAddress = added
            .service_id
            .parse()
            .map_err(|e| TorError::Protocol(format!("ADD_ONION: {e}")))?;
        if expected.is_some_and(|e| e != address) {
            return Err(TorError::Service(
                "tor derived another address from our key".into(),
            ));
        }
        let state = Arc::new(ServiceState {
            nickname: config.nickname,
            address,
            service_id: added.service_id.clone(),
            status: watch::channel(ServiceStatus::Starting).0,
            virtual_port: config.virtual_port,
            local,
            key: kept_key.or(added.private_key),
            clients: Mutex::new(config.authorized_clients),
            republish: tokio::sync::Mutex::new(()),
        });
        lock(&self.shared.services).insert(added.service_id.clone(), Arc::downgrade(&state));
        if lock(&self.shared.early_uploads).remove(&added.service_id) {
            state.status.send_replace(ServiceStatus::Published);
        }
        tracing::debug!(nickname = %state.nickname, "onion service launched");
        Ok(Box::new(CTorService {
            state,
            listener,
            shared: self.shared.clone(),
        }))
    }

    async fn connect_host(
        &self,
        host: &str,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError> {
        self.wait_bootstrapped().await?;
        let conn = self.shared.current_conn().await?;
        let username = self.shared.socks_username(&options.isolation);
        let timeout = self.shared.options.connect_timeout;
        let unreachable = |why: String| TorError::HostUnreachable(host.to_owned(), why);
        match tokio::time::timeout(
            timeout,
            socks::connect(&conn.socks, host, port, &username, "nightjar"),
        )
        .await
        {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(unreachable(e.into_tor_error().to_string())),
            Err(_) => Err(unreachable(format!(
                "no answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    async fn connect(
        &self,
        target: &OnionAddress,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError> {
        self.wait_bootstrapped().await?;
        let service_id = target.service_id();
        let host = format!("{service_id}.onion");
        let username = self.shared.socks_username(&options.isolation);
        let attempts = self.shared.options.connect_attempts.max(1);
        let mut delay = Duration::from_millis(500);
        let mut attempt = 0;
        let mut readd_key = false;
        loop {
            attempt += 1;
            let conn = self.shared.current_conn().await?;
            if let Some(secret) = &options.client_auth {
                self.shared
                    .ensure_client_auth(&conn, &service_id, secret, readd_key)
                    .await?;
            }
            let attempt_timeout = self.shared.options.connect_timeout;
            let opened = tokio::time::timeout(
                attempt_timeout,
                socks::connect(&conn.socks, &host, port, &username, "nightjar"),
            )
            .await;
            let e = match opened {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => e,
                // Dropping the SOCKS connection makes tor give up the stream.
                Err(_) => socks::SocksFailure::Reply(0x06),
            };
            // "Missing client authorization" although we gave tor a key means
            // tor lost it (a NEWNYM, ours or another controller's, purges
            // them): add it again and retry.
            let key_lost = e.is_missing_client_auth() && options.client_auth.is_some();
            let retry = e.is_transient() || key_lost || matches!(e, socks::SocksFailure::Io(_));
            if !retry || attempt >= attempts {
                return Err(e.into_tor_error());
            }
            tracing::debug!(attempt, error = %e, "onion connect failed; retrying");
            readd_key = key_lost;
            // A descriptor still missing after a retry, or introduction and
            // rendezvous failing (a stale cached descriptor: the service came
            // back with new introduction points), are both cured by forgetting
            // what tor cached and whom it already asked.
            if (e.is_descriptor_not_found() && attempt >= 2) || e.is_stale_descriptor_symptom() {
                self.shared.forget_failed_lookups(&conn).await;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(4));
        }
    }

    /// A new generation of SOCKS usernames: tor's `IsolateSOCKSAuth` puts new
    /// streams on new circuits, and open streams keep theirs. Unlike `NEWNYM`,
    /// cached descriptors and client-authorization keys stay, so a refresh does
    /// not make every contact's next connection look up its onion again.
    async fn refresh_circuits(&self) -> Result<(), TorError> {
        self.shared.refresh();
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), TorError> {
        self.shared.shutdown.send_replace(true);
        for svc in self.shared.live_services() {
            svc.status.send_replace(ServiceStatus::Stopped);
        }
        let conn = self.shared.conn.send_replace(None);
        match &self.shared.mode {
            Mode::Owned { .. } => {
                if let Some(conn) = &conn {
                    let _ = conn.ctl.signal("SHUTDOWN").await;
                }
                let child = lock(&self.shared.child).take();
                if let Some(mut child) = child {
                    let exited = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                    if exited.is_err() {
                        let _ = child.kill().await;
                    }
                }
            }
            Mode::Attached { .. } => {
                // Our services die with our control connection; dropping the
                // last handle to it closes it.
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks_usernames_separate_keys_and_generations_and_hide_them() {
        let a = socks_username(0, &IsolationKey("alice".into()));
        let b = socks_username(0, &IsolationKey("bob".into()));
        assert_ne!(a, b);
        assert_eq!(a, socks_username(0, &IsolationKey("alice".into())));
        assert_ne!(a, socks_username(1, &IsolationKey("alice".into())));
        assert!(!a.contains("alice"));
        assert!(a.len() <= 255);
    }
}

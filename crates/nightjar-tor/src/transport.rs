//! The transport contract between the node and a Tor backend.

use core::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::OnionAddress;

/// A byte stream to or from an onion service.
///
/// Writers must `flush` after each message: Arti holds written bytes until a
/// relay cell fills or the stream is flushed (a C tor SOCKS stream sends at once,
/// so code that forgets works over one backend and hangs over the other).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A boxed [`Stream`], so backends can hand out their own stream types.
pub type BoxStream = Box<dyn Stream>;

/// How far Tor has come in joining the network, for progress bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapStatus {
    /// 0 to 100.
    pub percent: u8,
    /// What tor is doing now, in its own words (no addresses).
    pub summary: String,
    /// Why progress stopped, if it did (clock skew, no network, ...).
    pub blocked: Option<String>,
}

impl BootstrapStatus {
    /// True once streams can be opened.
    pub fn is_ready(&self) -> bool {
        self.percent >= 100 && self.blocked.is_none()
    }
}

/// Where an onion service is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceStatus {
    /// Launched; no descriptor uploaded yet.
    Starting,
    /// At least one descriptor was uploaded: clients can reach the service.
    Published,
    /// The service failed and will not recover by itself.
    Broken(String),
    /// Shut down.
    Stopped,
}

/// Which key an onion service uses, and so which address it has.
pub enum ServiceKey {
    /// A key made for this launch only and never written anywhere (a new address).
    Ephemeral,
    /// The 32-byte Ed25519 seed of the service key, so a profile keeps its address
    /// across restarts. Backends expand it as RFC 8032 does.
    Seed(Zeroizing<[u8; 32]>),
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ephemeral => f.write_str("Ephemeral"),
            Self::Seed(_) => f.write_str("Seed([secret])"),
        }
    }
}

/// The public half of a v3 client-authorization key (X25519): a service with
/// restricted discovery encrypts its descriptor to these keys, so only their holders
/// can even learn that it is online.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAuthPublic(pub [u8; 32]);

impl fmt::Debug for ClientAuthPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientAuthPublic(..)")
    }
}

/// The secret half of a client-authorization key (X25519 scalar).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ClientAuthSecret(pub [u8; 32]);

impl fmt::Debug for ClientAuthSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientAuthSecret([secret])")
    }
}

/// What to launch.
#[derive(Debug)]
pub struct ServiceConfig {
    /// A local label for logs and for backends that name services (never published).
    pub nickname: String,
    /// The service key.
    pub key: ServiceKey,
    /// The port clients connect to on the onion address.
    pub virtual_port: u16,
    /// `None`: anyone who knows the address can connect. `Some(list)`: restricted
    /// discovery (v3 client authorization) for exactly these clients; an empty list
    /// means nobody.
    pub authorized_clients: Option<Vec<ClientAuthPublic>>,
}

/// Streams with equal keys may share circuits; streams with different keys never
/// do. The node uses one key per contact and per mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IsolationKey(pub String);

/// How to open a stream.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Circuit isolation.
    pub isolation: IsolationKey,
    /// The key to use if the target has restricted discovery.
    pub client_auth: Option<ClientAuthSecret>,
}

/// Errors, worded for the person using nightjar.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TorError {
    /// The tor program is not installed or not where it was said to be.
    #[error(
        "tor was not found ({0}); install it (e.g. `apt-get install tor`) or use the embedded backend"
    )]
    TorNotFound(PathBuf),
    /// Joining the Tor network stopped making progress.
    #[error("could not connect to the Tor network: {0}")]
    BootstrapStalled(String),
    /// The onion service could not be reached (offline, or not published yet).
    #[error("the onion service is unreachable right now ({0})")]
    ServiceUnreachable(String),
    /// The target needs client authorization and we have no key for it.
    #[error("the onion service requires authorization we do not have")]
    ClientAuthRequired,
    /// The target refused our client-authorization key.
    #[error("the onion service did not accept our authorization key")]
    ClientAuthRejected,
    /// Launching or running an onion service failed.
    #[error("onion service failed: {0}")]
    Service(String),
    /// The backend's configuration is invalid.
    #[error("invalid Tor configuration: {0}")]
    Config(String),
    /// A protocol error talking to tor (control port, SOCKS).
    #[error("unexpected answer from tor: {0}")]
    Protocol(String),
    /// The transport is shutting down.
    #[error("the Tor connection is shutting down")]
    Shutdown,
    /// A host on the open internet could not be reached through a Tor exit.
    #[error("could not reach {0} through Tor: {1}")]
    HostUnreachable(String, String),
    /// This transport reaches onion services only.
    #[error("this Tor transport cannot reach hosts outside onion services")]
    OnionOnly,
    /// Local I/O failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A Tor backend.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Bootstrap progress; the current value is always available.
    fn bootstrap_status(&self) -> watch::Receiver<BootstrapStatus>;

    /// Launches an onion service and returns its handle.
    async fn launch_service(
        &self,
        config: ServiceConfig,
    ) -> Result<Box<dyn OnionService>, TorError>;

    /// Opens a stream to `target:port`.
    async fn connect(
        &self,
        target: &OnionAddress,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError>;

    /// Opens a stream to `host:port` on the open internet, through a Tor exit
    /// (for services without an onion address, such as a public rendezvous
    /// server). `host` is a DNS name or an IP address; tor resolves names at the
    /// exit, so no DNS query leaves this machine.
    async fn connect_host(
        &self,
        host: &str,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError> {
        let _ = (host, port, options);
        Err(TorError::OnionOnly)
    }

    /// New streams from now on use fresh circuits; open streams are left alone.
    async fn refresh_circuits(&self) -> Result<(), TorError>;

    /// Stops all services and streams and, where we own it, tor itself.
    async fn shutdown(&self) -> Result<(), TorError>;
}

/// A running onion service.
#[async_trait]
pub trait OnionService: Send + Sync {
    /// The service's address.
    fn address(&self) -> OnionAddress;

    /// Publication status; wait on it to learn when the service becomes reachable.
    fn status(&self) -> watch::Receiver<ServiceStatus>;

    /// Waits for the next incoming stream.
    async fn accept(&self) -> Result<BoxStream, TorError>;

    /// Replaces the list of clients allowed to discover the service (restricted
    /// discovery only). Takes effect with the next descriptor.
    async fn set_authorized_clients(&self, clients: Vec<ClientAuthPublic>) -> Result<(), TorError>;

    /// Takes the service down.
    async fn shutdown(&self) -> Result<(), TorError>;
}

//! nightjar's Tor layer.
//!
//! Everything nightjar sends travels through onion services. The node talks to Tor
//! only through the [`Transport`] trait, so the same node runs over embedded Arti,
//! a system tor, the private test network, or an in-process loopback.

#[cfg(feature = "arti")]
pub mod arti;
mod backend;
pub mod control;
pub mod ctor;
pub mod forward;
pub mod loopback;
pub mod scratch;
pub mod tap;
pub mod testnet;
mod transport;

pub use backend::Backend;
pub use loopback::LoopbackNetwork;
pub use nightjar_proto::onion::OnionAddress;
pub use transport::{
    BootstrapStatus, BoxStream, ClientAuthPublic, ClientAuthSecret, ConnectOptions, IsolationKey,
    OnionService, ServiceConfig, ServiceKey, ServiceStatus, Stream, TorError, Transport,
};

/// How often both backends move new streams to fresh circuits by default (as
/// tor's `MaxCircuitDirtiness` does for circuits of its own choosing): a
/// contact's link that lasts for days still gets new circuits for its next
/// connection, and what one circuit carried stops there.
pub const CIRCUIT_REFRESH: std::time::Duration = std::time::Duration::from_secs(10 * 60);

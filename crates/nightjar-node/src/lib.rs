//! nightjar's engine: one task per profile owns its state (store, links, outbox);
//! UIs drive it through the cloneable [`Node`] handle and watch its [`Event`]s.
//!
//! The handle is the whole public API: the line CLI, the JSON-RPC daemon and the
//! TUI use nothing else.

pub mod link;

mod api;
pub use api::*;

// CONTRACT (engine.rs, to be written):
// pub struct NodeConfig { pub store: nightjar_store::Store, pub transport: Arc<dyn nightjar_tor::Transport>, pub ephemeral: bool }
// pub fn new_profile() -> nightjar_store::ProfileRecord;           // fresh keys from the OS RNG
// pub async fn start(config: NodeConfig) -> Result<Node, NodeError>; // launches both onion services, spawns the engine

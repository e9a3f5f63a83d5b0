//! nightjar's engine: one task per profile owns its state (store, links, outbox);
//! UIs drive it through the cloneable [`Node`] handle and watch its [`Event`]s.
//!
//! The handle is the whole public API: the line CLI, the JSON-RPC daemon and the
//! TUI use nothing else.

pub mod link;

mod api;
pub use api::*;

pub mod auth;
mod courier;
mod driver;
mod engine;
mod files;
pub mod invite;
mod net;
pub mod rooms;
mod views;
pub use driver::pace::{CoverLevel, ShapingConfig};
pub use engine::{NodeConfig, OfflineConfig, new_profile, start};
pub use files::FilesConfig;
pub use invite::Rendezvous;

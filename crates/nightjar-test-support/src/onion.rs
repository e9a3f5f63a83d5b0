//! A local TCP service published as an onion service on the private network, by a
//! tor of its own (as a mailbox or rendezvous server would be run).

use std::net::SocketAddr;
use std::sync::Arc;

use nightjar_tor::forward::Forward;
use nightjar_tor::testnet::TestNetwork;
use nightjar_tor::{Backend, OnionAddress, ServiceConfig, ServiceKey, ServiceStatus, Transport};

/// The virtual port the onion answers on.
pub const PORT: u16 = 80;

/// A published service; dropping it takes the onion and its tor down.
pub struct PublishedOnion {
    forward: Forward,
    _tor: Arc<dyn Transport>,
}

impl std::fmt::Debug for PublishedOnion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedOnion").finish_non_exhaustive()
    }
}

impl PublishedOnion {
    /// Starts a system tor on `net`, publishes `target` (a loopback address) as a
    /// new onion on port [`PORT`], and waits until its descriptor is uploaded.
    pub async fn start(net: &TestNetwork, target: SocketAddr) -> Result<Self, String> {
        let tor = Backend::CTor
            .launch_on_testnet(net.description(), crate::tor_program())
            .await
            .map_err(|e| format!("could not start tor: {e}"))?;
        let config = ServiceConfig {
            nickname: "published".into(),
            key: ServiceKey::Ephemeral,
            virtual_port: PORT,
            authorized_clients: None,
        };
        let forward = Forward::start(tor.as_ref(), config, target)
            .await
            .map_err(|e| format!("could not publish the onion: {e}"))?;
        let mut status = forward.service().status();
        loop {
            match status.borrow_and_update().clone() {
                ServiceStatus::Published => break,
                ServiceStatus::Broken(why) => return Err(format!("the onion broke: {why}")),
                ServiceStatus::Stopped => return Err("the onion stopped".into()),
                _ => {}
            }
            status
                .changed()
                .await
                .map_err(|_| "the onion's tor went away".to_owned())?;
        }
        Ok(Self { forward, _tor: tor })
    }

    /// The onion address.
    pub fn address(&self) -> OnionAddress {
        self.forward.address()
    }

    /// A `ws://` URL for the magic-wormhole protocol at `/v1` behind the onion.
    pub fn rendezvous_url(&self) -> String {
        format!("ws://{}/v1", self.address())
    }
}

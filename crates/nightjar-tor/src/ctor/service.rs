//! Onion services on our tor: a loopback listener behind `ADD_ONION`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sha2::{Digest as _, Sha512};
use tokio::net::TcpListener;
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::Shared;
use crate::control::{AddOnion, Controller, OnionKeyRequest};
use crate::{BoxStream, ClientAuthPublic, OnionAddress, OnionService, ServiceStatus, TorError};

/// Expands an Ed25519 seed the way RFC 8032 (and tor) do: SHA-512, then the
/// first half clamped is the secret scalar and the second half the PRF secret.
/// Returns tor's 64-byte `ED25519-V3` key and the service's address.
pub(crate) fn expand_seed(seed: &[u8; 32]) -> (Zeroizing<[u8; 64]>, OnionAddress) {
    let mut expanded = Zeroizing::new([0u8; 64]);
    expanded.copy_from_slice(&Sha512::digest(seed));
    expanded[0] &= 248;
    expanded[31] &= 127;
    expanded[31] |= 64;
    let public = ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes();
    (expanded, OnionAddress::from_public_key(public))
}

/// What the backend remembers about a service, to re-publish it (new client
/// list, or after tor restarted) and to route its events.
pub(crate) struct ServiceState {
    pub nickname: String,
    pub address: OnionAddress,
    pub service_id: String,
    pub status: watch::Sender<ServiceStatus>,
    pub virtual_port: u16,
    pub local: SocketAddr,
    /// The expanded key, kept only when the service may have to be published
    /// again: persistent (seeded) services, and ephemeral ones with restricted
    /// discovery. A public ephemeral service's key lives in tor alone
    /// (`DiscardPK`), so it cannot come back after tor restarts.
    pub key: Option<Zeroizing<[u8; 64]>>,
    /// `None`: public. `Some`: restricted discovery for these clients.
    pub clients: Mutex<Option<Vec<ClientAuthPublic>>>,
    /// One re-publication at a time.
    pub republish: tokio::sync::Mutex<()>,
}

impl ServiceState {
    fn clients(&self) -> Option<Vec<ClientAuthPublic>> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `ADD_ONION` with the kept key, on a (new) control connection.
    pub(crate) async fn publish(&self, ctl: &Controller) -> Result<(), TorError> {
        let Some(key) = &self.key else {
            let why =
                "tor restarted, and this service's key was never kept (DiscardPK); launch it again";
            self.status.send_replace(ServiceStatus::Broken(why.into()));
            return Err(TorError::Service(why.into()));
        };
        self.status.send_replace(ServiceStatus::Starting);
        let added = ctl
            .add_onion(&AddOnion {
                key: OnionKeyRequest::Expanded(key.clone()),
                ports: vec![(self.virtual_port, self.local)],
                client_auth: auth_list(self.clients())?,
                detach: false,
            })
            .await?;
        if added.service_id != self.service_id {
            return Err(TorError::Service(
                "tor derived another address from the same key".into(),
            ));
        }
        Ok(())
    }
}

/// The `ClientAuthV3` keys for a client list. An empty list must still mean
/// "restricted": tor publishes a public descriptor when given no key, so a key
/// nobody holds the secret for stands in.
pub(crate) fn auth_list(
    clients: Option<Vec<ClientAuthPublic>>,
) -> Result<Vec<ClientAuthPublic>, TorError> {
    match clients {
        None => Ok(Vec::new()),
        Some(list) if list.is_empty() => {
            let mut nobody = [0u8; 32];
            getrandom::fill(&mut nobody)
                .map_err(|e| TorError::Io(std::io::Error::other(e.to_string())))?;
            Ok(vec![ClientAuthPublic(nobody)])
        }
        Some(list) => Ok(list),
    }
}

/// A running onion service of the C tor backend.
pub(crate) struct CTorService {
    pub state: Arc<ServiceState>,
    pub listener: TcpListener,
    pub shared: Arc<Shared>,
}

impl CTorService {
    async fn remove(&self) -> Result<(), TorError> {
        self.shared.forget_service(&self.state.service_id);
        let was_stopped = matches!(
            self.state.status.send_replace(ServiceStatus::Stopped),
            ServiceStatus::Stopped
        );
        if was_stopped {
            return Ok(());
        }
        match self.shared.current_conn_now() {
            Some(conn) => conn.ctl.del_onion(&self.state.service_id).await,
            // tor is gone or restarting: the service went with its connection.
            None => Ok(()),
        }
    }
}

impl Drop for CTorService {
    fn drop(&mut self) {
        self.shared.forget_service(&self.state.service_id);
        let prev = self.state.status.send_replace(ServiceStatus::Stopped);
        if prev == ServiceStatus::Stopped {
            return;
        }
        // Take the service off tor now rather than when the control connection
        // closes; best effort, as Drop cannot wait.
        if let (Some(conn), Ok(rt)) = (
            self.shared.current_conn_now(),
            tokio::runtime::Handle::try_current(),
        ) {
            let id = self.state.service_id.clone();
            rt.spawn(async move {
                let _ = conn.ctl.del_onion(&id).await;
            });
        }
    }
}

#[async_trait]
impl OnionService for CTorService {
    fn address(&self) -> OnionAddress {
        self.state.address
    }

    fn status(&self) -> watch::Receiver<ServiceStatus> {
        self.state.status.subscribe()
    }

    async fn accept(&self) -> Result<BoxStream, TorError> {
        let mut status = self.state.status.subscribe();
        tokio::select! {
            r = self.listener.accept() => {
                let (stream, _) = r?;
                stream.set_nodelay(true)?;
                Ok(Box::new(stream))
            }
            _ = status.wait_for(|s| *s == ServiceStatus::Stopped) => Err(TorError::Shutdown),
        }
    }

    async fn set_authorized_clients(&self, clients: Vec<ClientAuthPublic>) -> Result<(), TorError> {
        let _one_at_a_time = self.state.republish.lock().await;
        if self.state.clients().is_none() {
            return Err(TorError::Config(
                "this onion service was launched without restricted discovery".into(),
            ));
        }
        if *self.state.status.borrow() == ServiceStatus::Stopped {
            return Err(TorError::Shutdown);
        }
        let conn = self.shared.current_conn().await?;
        *self.state.clients.lock().unwrap_or_else(|e| e.into_inner()) = Some(clients);
        // A descriptor lists its clients, so a new list means a new descriptor:
        // take the service down and publish it again under the same key. Its
        // introduction circuits are rebuilt, so a removed client's cached
        // descriptor stops working too.
        if let Err(e) = conn.ctl.del_onion(&self.state.service_id).await {
            tracing::debug!(error = %e, "DEL_ONION before re-publishing");
        }
        tracing::debug!(nickname = %self.state.nickname, "re-publishing with a new client list");
        self.state.publish(&conn.ctl).await
    }

    async fn shutdown(&self) -> Result<(), TorError> {
        self.remove().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_expansion_matches_rfc8032() {
        // RFC 8032, section 7.1, test 1: this seed has the public key of tor's
        // address test vector.
        let seed: [u8; 32] = data_encoding::HEXLOWER
            .decode(b"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
        let (expanded, address) = expand_seed(&seed);
        assert_eq!(
            address.to_string(),
            "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
        );
        assert_eq!(expanded[0] & 7, 0);
        assert_eq!(expanded[31] & 0xC0, 0x40);
        assert_eq!(&expanded[32..], &Sha512::digest(seed)[32..]);
    }

    #[test]
    fn an_empty_client_list_still_restricts() {
        assert!(auth_list(None).unwrap().is_empty());
        assert_eq!(auth_list(Some(vec![])).unwrap().len(), 1);
        let one = vec![ClientAuthPublic([5; 32])];
        assert_eq!(auth_list(Some(one.clone())).unwrap(), one);
    }
}

//! Publishing a local TCP service as an onion service: each stream that reaches
//! the onion is joined to a fresh connection to a loopback address (what tor's
//! `HiddenServicePort` does, for any backend, including embedded Arti).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::{OnionAddress, OnionService, ServiceConfig, TorError, Transport};

/// A local service published as an onion; dropping it takes the onion down.
pub struct Forward {
    service: Arc<dyn OnionService>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward").finish_non_exhaustive()
    }
}

impl Forward {
    /// Launches `config`'s onion service on `tor` and forwards every stream to
    /// `target`, which must be a loopback address (nothing else is ever a target).
    pub async fn start(
        tor: &dyn Transport,
        config: ServiceConfig,
        target: SocketAddr,
    ) -> Result<Self, TorError> {
        if !target.ip().is_loopback() {
            return Err(TorError::Config(format!(
                "an onion service forwards to loopback addresses only, not {target}"
            )));
        }
        let service: Arc<dyn OnionService> = tor.launch_service(config).await?.into();
        let accepting = service.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok(mut incoming) = accepting.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    match TcpStream::connect(target).await {
                        Ok(mut local) => {
                            let _ = tokio::io::copy_bidirectional(&mut incoming, &mut local).await;
                        }
                        Err(e) => tracing::debug!("the forwarded service refused: {e}"),
                    }
                });
            }
        });
        Ok(Self { service, accept })
    }

    /// The onion address.
    pub fn address(&self) -> OnionAddress {
        self.service.address()
    }

    /// The service, to follow its publication.
    pub fn service(&self) -> &Arc<dyn OnionService> {
        &self.service
    }

    /// Takes the onion down.
    pub async fn shutdown(self) -> Result<(), TorError> {
        self.accept.abort();
        self.service.shutdown().await
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::{ConnectOptions, IsolationKey, LoopbackNetwork, ServiceKey};

    #[tokio::test]
    async fn streams_reach_the_local_service_and_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            buf.reverse();
            s.write_all(&buf).await.unwrap();
        });
        let net = LoopbackNetwork::new();
        let tor = net.transport();
        let config = ServiceConfig {
            nickname: "forward".into(),
            key: ServiceKey::Ephemeral,
            virtual_port: 80,
            authorized_clients: None,
        };
        let forward = Forward::start(tor.as_ref(), config, target).await.unwrap();
        let options = ConnectOptions {
            isolation: IsolationKey("t".into()),
            client_auth: None,
        };
        let mut stream = tor.connect(&forward.address(), 80, &options).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"olleh");
        forward.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn only_loopback_targets() {
        let net = LoopbackNetwork::new();
        let config = ServiceConfig {
            nickname: "forward".into(),
            key: ServiceKey::Ephemeral,
            virtual_port: 80,
            authorized_clients: None,
        };
        let outside: SocketAddr = "192.0.2.1:80".parse().unwrap();
        assert!(matches!(
            Forward::start(net.transport().as_ref(), config, outside).await,
            Err(TorError::Config(_))
        ));
    }
}

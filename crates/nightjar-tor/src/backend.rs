//! Choosing and starting a Tor backend.

use core::fmt;
use core::str::FromStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::ctor::{CTor, CTorOptions, TorProcessConfig};
use crate::testnet::NetworkDescription;
use crate::{BootstrapStatus, TorError, Transport};

/// Which Tor implementation carries nightjar's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Embedded Arti: nothing to install.
    #[cfg(feature = "arti")]
    Arti,
    /// The system's C tor, launched as a child process.
    CTor,
}

impl Backend {
    /// Every backend this build has.
    pub const ALL: &[Self] = &[
        #[cfg(feature = "arti")]
        Self::Arti,
        Self::CTor,
    ];

    /// The short name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "arti")]
            Self::Arti => "arti",
            Self::CTor => "ctor",
        }
    }

    /// A few words for people.
    pub fn describe(self) -> &'static str {
        match self {
            #[cfg(feature = "arti")]
            Self::Arti => "embedded Arti",
            Self::CTor => "system tor",
        }
    }

    /// Starts this backend as a client of the public Tor network and waits until it
    /// has bootstrapped. `data_dir` keeps Tor's state between runs (guards, directory
    /// cache); `None` uses a temporary directory removed at shutdown. `tor` is the C
    /// tor program (unused by Arti). `progress`, when given, follows the bootstrap.
    pub async fn launch(
        self,
        data_dir: Option<PathBuf>,
        tor: PathBuf,
        progress: Option<&watch::Sender<BootstrapStatus>>,
    ) -> Result<Arc<dyn Transport>, TorError> {
        match self {
            #[cfg(feature = "arti")]
            Self::Arti => {
                use crate::arti::{Arti, ArtiConfig};
                let arti = Arti::create(ArtiConfig {
                    storage: arti_storage(data_dir),
                    ..ArtiConfig::default()
                })
                .await?;
                observed(arti.bootstrap_status(), progress, arti.bootstrap()).await?;
                Ok(Arc::new(arti))
            }
            Self::CTor => {
                let config = TorProcessConfig {
                    tor,
                    data_dir,
                    ..TorProcessConfig::default()
                };
                let tor = CTor::launch(config, CTorOptions::default()).await?;
                observed(tor.bootstrap_status(), progress, tor.wait_bootstrapped()).await?;
                Ok(Arc::new(tor))
            }
        }
    }

    /// Starts this backend as a client of a private test network and waits until
    /// it has bootstrapped, with its state in a temporary directory. `tor` is the C
    /// tor program (unused by Arti).
    pub async fn launch_on_testnet(
        self,
        net: &NetworkDescription,
        tor: PathBuf,
    ) -> Result<Arc<dyn Transport>, TorError> {
        self.launch_on_testnet_in(net, tor, None, None).await
    }

    /// [`Backend::launch_on_testnet`], with Tor's state in `data_dir` when given
    /// (a profile's own directory, or one on tmpfs for an ephemeral profile), and
    /// the bootstrap followed on `progress` when given.
    pub async fn launch_on_testnet_in(
        self,
        net: &NetworkDescription,
        tor: PathBuf,
        data_dir: Option<PathBuf>,
        progress: Option<&watch::Sender<BootstrapStatus>>,
    ) -> Result<Arc<dyn Transport>, TorError> {
        match self {
            #[cfg(feature = "arti")]
            Self::Arti => {
                use crate::arti::{Arti, ArtiConfig, Network, PrivateNetwork};
                let arti = Arti::create(ArtiConfig {
                    storage: arti_storage(data_dir),
                    network: Network::Private(PrivateNetwork::from_testnet(net)?),
                    // A young private network takes a while to publish fresh services.
                    connect_attempts: 8,
                    connect_timeout: Duration::from_secs(20),
                    ..ArtiConfig::default()
                })
                .await?;
                observed(arti.bootstrap_status(), progress, arti.bootstrap()).await?;
                Ok(Arc::new(arti))
            }
            Self::CTor => {
                let config = TorProcessConfig {
                    tor,
                    data_dir,
                    ..TorProcessConfig::for_test_network(net)
                };
                let options = CTorOptions {
                    connect_attempts: 12,
                    ..CTorOptions::default()
                };
                let tor = CTor::launch(config, options).await?;
                observed(tor.bootstrap_status(), progress, tor.wait_bootstrapped()).await?;
                Ok(Arc::new(tor))
            }
        }
    }
}

/// Runs `work` (a bootstrap), copying each `status` it goes through to `progress`.
async fn observed<T>(
    mut status: watch::Receiver<BootstrapStatus>,
    progress: Option<&watch::Sender<BootstrapStatus>>,
    work: impl Future<Output = T>,
) -> T {
    let Some(progress) = progress else {
        return work.await;
    };
    let mut work = std::pin::pin!(work);
    loop {
        progress.send_replace(status.borrow_and_update().clone());
        tokio::select! {
            done = &mut work => {
                progress.send_replace(status.borrow().clone());
                return done;
            }
            changed = status.changed() => if changed.is_err() {
                return work.await;
            },
        }
    }
}

#[cfg(feature = "arti")]
fn arti_storage(data_dir: Option<PathBuf>) -> crate::arti::Storage {
    match data_dir {
        Some(dir) => crate::arti::Storage::Persistent {
            state_dir: dir.join("state"),
            cache_dir: dir.join("cache"),
        },
        None => crate::arti::Storage::Ephemeral,
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|b| b.name()).collect();
                format!("unknown Tor backend `{s}` (choose {})", names.join(" or "))
            })
    }
}

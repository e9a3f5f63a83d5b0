//! Configuration of the embedded Arti backend, and its translation into Arti's own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arti_client::TorClientConfig;
use arti_client::config::TorClientConfigBuilder;
use arti_client::config::dir::{AuthorityContacts, FallbackDir};
use tor_config::ExplicitOrAuto;
use tor_keymgr::config::ArtiKeystoreKind;

use crate::TorError;

/// Where Arti keeps its state (guards, circuit timing, onion-service records) and
/// its directory cache.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Both directories live in a fresh temporary directory on tmpfs
    /// (`/dev/shm` when present, else the system temporary directory) that is
    /// removed when the backend shuts down or is dropped.
    Ephemeral,
    /// A persistent profile: the caller's directories, created 0700 if missing.
    Persistent {
        /// Guards, circuit timing, onion-service records.
        state_dir: PathBuf,
        /// Downloaded directory documents.
        cache_dir: PathBuf,
    },
}

/// Which Tor network to join.
#[derive(Debug, Clone)]
pub enum Network {
    /// The public Tor network, with Arti's built-in authorities and fallbacks.
    Public,
    /// A private network (the loopback test network).
    Private(PrivateNetwork),
}

/// A directory authority of a private network.
#[derive(Debug, Clone)]
pub struct Authority {
    /// The authority's v3 identity: the RSA-1024 fingerprint of its authority
    /// identity key (tor's `V3AuthIdentityKey`, 20 bytes).
    pub v3ident: [u8; 20],
}

/// A relay that serves directory documents to a client that has none yet.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// The relay's RSA identity fingerprint.
    pub rsa_identity: [u8; 20],
    /// The relay's Ed25519 identity.
    pub ed_identity: [u8; 32],
    /// Its OR port.
    pub or_addr: SocketAddr,
}

/// What Arti needs to know to join a private network.
#[derive(Debug, Clone)]
pub struct PrivateNetwork {
    /// The authorities whose signatures make a consensus valid.
    pub authorities: Vec<Authority>,
    /// Where to fetch the first consensus.
    pub fallbacks: Vec<Fallback>,
    /// The network's onion-service time period (tor: 24 voting intervals).
    /// Arti takes it from the `hsdir_interval` consensus parameter, which a test
    /// network does not publish; a wrong value makes services unreachable.
    pub time_period: Duration,
    /// Let streams go to loopback and private addresses through the network's
    /// exits (test networks only).
    pub allow_local_addrs: bool,
}

/// Settings of the Arti backend.
#[derive(Debug, Clone)]
pub struct ArtiConfig {
    /// Where state and cache go.
    pub storage: Storage,
    /// Which network to join.
    pub network: Network,
    /// Bootstrap fails when its progress has not moved for this long.
    pub bootstrap_stall_timeout: Duration,
    /// How often `connect` tries a service whose descriptor is not found yet
    /// (a freshly launched service takes a moment to publish).
    pub connect_attempts: u32,
    /// The first pause between such attempts; it doubles each time.
    pub connect_backoff: Duration,
    /// One attempt is abandoned after this long. Arti has been seen to wait
    /// indefinitely on a service whose introduction points were not yet up.
    pub connect_timeout: Duration,
    /// Refresh circuits on this schedule (see [`crate::Transport::refresh_circuits`]).
    pub circuit_refresh: Option<Duration>,
}

impl Default for ArtiConfig {
    fn default() -> Self {
        Self {
            storage: Storage::Ephemeral,
            network: Network::Public,
            bootstrap_stall_timeout: Duration::from_secs(120),
            connect_attempts: 5,
            connect_backoff: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(60),
            circuit_refresh: Some(crate::CIRCUIT_REFRESH),
        }
    }
}

/// A temporary directory for ephemeral mode, on a tmpfs or ramfs so that nothing
/// Arti writes reaches a disk; without one, ephemeral mode does not start.
pub(super) fn ephemeral_dir() -> Result<tempfile::TempDir, TorError> {
    crate::scratch::ram_dir("nightjar-arti-").map_err(|e| TorError::Config(e.to_string()))
}

/// Builds Arti's configuration.
///
/// The keystore is always Arti's in-memory one: service keys come from the
/// caller (a profile keeps its seed in its encrypted database), client
/// authorization keys come with each connect, and Arti's on-disk keystore would
/// otherwise hold plaintext copies of both.
pub(super) fn tor_client_config(
    network: &Network,
    state_dir: &Path,
    cache_dir: &Path,
) -> Result<TorClientConfig, TorError> {
    let mut b = TorClientConfigBuilder::from_directories(state_dir, cache_dir);
    b.storage()
        .keystore()
        .primary()
        .kind(ExplicitOrAuto::Explicit(ArtiKeystoreKind::Ephemeral));
    if let Network::Private(net) = network {
        private_network(&mut b, net)?;
    }
    b.build().map_err(|e| TorError::Config(e.to_string()))
}

fn private_network(b: &mut TorClientConfigBuilder, net: &PrivateNetwork) -> Result<(), TorError> {
    if net.authorities.is_empty() || net.fallbacks.is_empty() {
        return Err(TorError::Config(
            "a private network needs at least one authority and one fallback relay".into(),
        ));
    }
    let mut authorities = AuthorityContacts::builder();
    for a in &net.authorities {
        authorities.v3idents().push(a.v3ident.into());
    }
    *b.tor_network().authorities() = authorities;

    let fallbacks = net
        .fallbacks
        .iter()
        .map(|f| {
            let mut fb = FallbackDir::builder();
            fb.rsa_identity(f.rsa_identity.into())
                .ed_identity(f.ed_identity.into());
            fb.orports().push(f.or_addr);
            fb
        })
        .collect();
    b.tor_network().set_fallback_caches(fallbacks);

    // All relays of a loopback network share 127.0.0.1; with the default /16
    // "family" rule no path of three distinct relays would exist. A prefix longer
    // than 32 bits treats no two IPv4 addresses as related.
    b.path_rules().ipv4_subnet_family_prefix(33);

    let minutes = net.time_period.as_secs().div_ceil(60).max(1);
    let minutes = i32::try_from(minutes)
        .map_err(|_| TorError::Config("the network's time period is too long".into()))?;
    b.override_net_params()
        .insert("hsdir_interval".to_owned(), minutes);

    b.address_filter().allow_local_addrs(net.allow_local_addrs);
    Ok(())
}

/// Decodes a tor-printed identity: hex RSA fingerprint or unpadded base64 Ed25519.
pub(super) fn decode_rsa_identity(hex: &str) -> Result<[u8; 20], TorError> {
    data_encoding::HEXUPPER_PERMISSIVE
        .decode(hex.trim().as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TorError::Config(format!("not an RSA identity fingerprint: {hex}")))
}

pub(super) fn decode_ed_identity(b64: &str) -> Result<[u8; 32], TorError> {
    let s = b64.trim().trim_end_matches('=');
    data_encoding::BASE64_NOPAD
        .decode(s.as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TorError::Config(format!("not an Ed25519 identity: {b64}")))
}

impl PrivateNetwork {
    /// The private loopback network described by `description` (see
    /// [`crate::testnet`]): its authorities, every directory-serving node as a
    /// fallback, its time period, and permission to reach loopback targets.
    pub fn from_testnet(
        description: &crate::testnet::NetworkDescription,
    ) -> Result<Self, TorError> {
        let authorities = description
            .authorities
            .iter()
            .map(|a| {
                Ok(Authority {
                    v3ident: decode_rsa_identity(&a.v3_identity)?,
                })
            })
            .collect::<Result<Vec<_>, TorError>>()?;
        let fallbacks = description
            .fallback_caches()
            .map(|n| {
                let or_addr = n
                    .or_addr()
                    .parse()
                    .map_err(|_| TorError::Config(format!("bad OR address {}", n.or_addr())))?;
                Ok(Fallback {
                    rsa_identity: decode_rsa_identity(&n.rsa_identity)?,
                    ed_identity: decode_ed_identity(&n.ed25519_identity)?,
                    or_addr,
                })
            })
            .collect::<Result<Vec<_>, TorError>>()?;
        Ok(Self {
            authorities,
            fallbacks,
            time_period: Duration::from_secs(description.hsdir_interval_secs),
            allow_local_addrs: true,
        })
    }
}

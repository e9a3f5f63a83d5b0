//! The Tor layer's secrets leave no trace in memory once the value holding them
//! is dropped (see `nightjar_test_support::memscan`).
//!
//! Each case uses its key through the in-process loopback network, on a runtime
//! of the test's own thread, so that whatever the backend copies lives in memory
//! the final scan reads and in stack frames it scrubs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use nightjar_test_support::memscan::{Needle, check_zeroized};
use nightjar_tor::{
    ClientAuthPublic, ClientAuthSecret, ConnectOptions, IsolationKey, LoopbackNetwork,
    OnionAddress, ServiceConfig, ServiceKey,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use zeroize::Zeroizing;

const PORT: u16 = 443;

/// A value behind padding that puts its box in a size class little else uses,
/// so that memory the value leaked is not handed out again before the scan.
struct Padded<T> {
    _padding: [u8; 480],
    value: T,
}

fn padded<T>(value: T) -> Box<Padded<T>> {
    Box::new(Padded {
        _padding: [0; 480],
        value,
    })
}

/// 32 fresh random bytes.
fn random_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut key[..]).unwrap();
    key
}

/// Runs `f` to completion on this thread, failing rather than hanging.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), f).await })
        .expect("timed out")
}

fn config(key: ServiceKey, authorized_clients: Option<Vec<ClientAuthPublic>>) -> ServiceConfig {
    ServiceConfig {
        nickname: "zeroize".into(),
        key,
        virtual_port: PORT,
        authorized_clients,
    }
}

/// Launches `config` on a fresh loopback network, connects to it with
/// `client_auth` and passes a byte through; returns the service's address.
async fn launch_and_connect(
    config: ServiceConfig,
    client_auth: Option<ClientAuthSecret>,
) -> OnionAddress {
    let network = LoopbackNetwork::new();
    let (host, guest) = (network.transport(), network.transport());
    let service = host.launch_service(config).await.unwrap();
    let address = service.address();
    let options = ConnectOptions {
        isolation: IsolationKey("zeroize".into()),
        client_auth,
    };
    let mut client = guest.connect(&address, PORT, &options).await.unwrap();
    let mut accepted = service.accept().await.unwrap();
    client.write_all(b"x").await.unwrap();
    client.flush().await.unwrap();
    let mut byte = [0u8; 1];
    accepted.read_exact(&mut byte).await.unwrap();
    assert_eq!(&byte, b"x");
    service.shutdown().await.unwrap();
    address
}

#[test]
fn client_auth_secret() {
    check_zeroized(
        "ClientAuthSecret",
        || {
            let secret = padded(ClientAuthSecret(*random_key()));
            let needle = Needle::from_secret(&secret.value.0);
            (secret, needle)
        },
        |secret| {
            let secret = &secret.value;
            let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret.0));
            let authorized = Some(vec![ClientAuthPublic(public.to_bytes())]);
            block_on(launch_and_connect(
                config(ServiceKey::Ephemeral, authorized),
                Some(secret.clone()),
            ));
        },
    );
}

#[test]
fn service_key_seed() {
    check_zeroized(
        "ServiceKey::Seed",
        || {
            let seed = random_key();
            let needle = Needle::from_secret(&seed[..]);
            (padded(ServiceKey::Seed(seed)), needle)
        },
        |key| {
            let ServiceKey::Seed(seed) = &key.value else {
                unreachable!("made as a seed")
            };
            let public = ed25519_dalek::SigningKey::from_bytes(seed)
                .verifying_key()
                .to_bytes();
            // The backend gets a key of its own, as the node's are made per launch.
            let launched = ServiceKey::Seed(seed.clone());
            let address = block_on(launch_and_connect(config(launched, None), None));
            assert_eq!(address, OnionAddress::from_public_key(public));
        },
    );
}

//! The Arti backend on the private Tor network (one network per test binary).
//!
//! No timed assertions: every wait is a bounded number of tries.

// Helpers of a test binary may fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use nightjar_tor::arti::{Arti, ArtiConfig, Network, PrivateNetwork, Storage, circuit_id};
use nightjar_tor::{
    BoxStream, ClientAuthPublic, ClientAuthSecret, ConnectOptions, IsolationKey, OnionAddress,
    OnionService, ServiceConfig, ServiceKey, TorError, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

const PORT: u16 = 80;

async fn network_config() -> Network {
    let net = nightjar_test_support::shared_network().await;
    Network::Private(PrivateNetwork::from_testnet(net.description()).unwrap())
}

async fn arti_with(storage: Storage) -> Arti {
    let network = network_config().await;
    Arti::launch(ArtiConfig {
        storage,
        network,
        ..ArtiConfig::default()
    })
    .await
    .unwrap()
}

async fn arti() -> Arti {
    arti_with(Storage::Ephemeral).await
}

fn options(isolation: &str, client_auth: Option<ClientAuthSecret>) -> ConnectOptions {
    ConnectOptions {
        isolation: IsolationKey(isolation.into()),
        client_auth,
    }
}

fn service(
    nickname: &str,
    key: ServiceKey,
    clients: Option<Vec<ClientAuthPublic>>,
) -> ServiceConfig {
    ServiceConfig {
        nickname: nickname.into(),
        key,
        virtual_port: PORT,
        authorized_clients: clients,
    }
}

/// An X25519 client-authorization keypair from a fixed seed.
fn client_key(seed: u8) -> (ClientAuthSecret, ClientAuthPublic) {
    let secret = x25519_dalek::StaticSecret::from([seed; 32]);
    let public = x25519_dalek::PublicKey::from(&secret);
    (
        ClientAuthSecret(secret.to_bytes()),
        ClientAuthPublic(public.to_bytes()),
    )
}

/// Echoes every stream the service accepts until the service stops.
fn spawn_echo(service: std::sync::Arc<dyn OnionService>) {
    tokio::spawn(async move {
        while let Ok(stream) = service.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
}

/// How long a young network may keep a fresh descriptor out of reach (fetches
/// fail while the HSDirs settle); only a guard against hangs.
const UNREACHABLE_FOR: Duration = Duration::from_secs(300);

/// Connects, trying again while the service is unreachable, up to
/// [`UNREACHABLE_FOR`].
async fn connect(
    client: &dyn Transport,
    target: &OnionAddress,
    opts: &ConnectOptions,
) -> Result<BoxStream, TorError> {
    let give_up = tokio::time::Instant::now() + UNREACHABLE_FOR;
    loop {
        match client.connect(target, PORT, opts).await {
            Err(TorError::ServiceUnreachable(_)) if tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}

/// [`Arti::connect_data_stream`], tried again while the service's descriptor
/// cannot be fetched (on a young network, descriptor fetches fail for a while).
async fn data_stream(
    client: &Arti,
    target: &OnionAddress,
    opts: &ConnectOptions,
) -> arti_client::DataStream {
    let give_up = tokio::time::Instant::now() + UNREACHABLE_FOR;
    while tokio::time::Instant::now() < give_up {
        match client.connect_data_stream(target, PORT, opts).await {
            Err(TorError::ServiceUnreachable(_)) => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => return other.unwrap(),
        }
    }
    client
        .connect_data_stream(target, PORT, opts)
        .await
        .unwrap()
}

/// Sends `len` bytes and checks that the same bytes come back.
async fn echo_check(stream: BoxStream, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let (mut r, mut w) = tokio::io::split(stream);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.flush().await.unwrap();
        w
    });
    let mut back = vec![0u8; len];
    r.read_exact(&mut back).await.unwrap();
    let _w = writer.await.unwrap();
    assert!(back == data, "echoed bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_service_echoes_one_mebibyte() {
    let host = arti().await;
    let client = arti().await;
    let svc: std::sync::Arc<dyn OnionService> = host
        .launch_service(service("echo", ServiceKey::Ephemeral, None))
        .await
        .unwrap()
        .into();
    let addr = svc.address();
    spawn_echo(svc.clone());

    let stream = connect(&client, &addr, &options("a", None)).await.unwrap();
    echo_check(stream, 1 << 20).await;

    // Only the configured port answers.
    let other = client.connect(&addr, PORT + 1, &options("a", None)).await;
    assert!(other.is_err(), "a stream to another port was accepted");

    svc.shutdown().await.unwrap();
    assert_eq!(*svc.status().borrow(), nightjar_tor::ServiceStatus::Stopped);
    host.shutdown().await.unwrap();
    client.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_authorization() {
    let (secret_a, public_a) = client_key(1);
    let (secret_b, public_b) = client_key(2);
    let (secret_c, _) = client_key(3);
    let host = arti().await;
    let svc: std::sync::Arc<dyn OnionService> = host
        .launch_service(service(
            "private",
            ServiceKey::Ephemeral,
            Some(vec![public_a, public_b]),
        ))
        .await
        .unwrap()
        .into();
    let addr = svc.address();
    spawn_echo(svc.clone());

    let client = arti().await;
    let stream = connect(&client, &addr, &options("a", Some(secret_a.clone())))
        .await
        .unwrap();
    echo_check(stream, 4096).await;

    // The same client without a key, and with a key the service does not know.
    let none = connect(&client, &addr, &options("n", None)).await;
    assert!(
        matches!(none, Err(TorError::ClientAuthRequired)),
        "{:?}",
        none.err()
    );
    let wrong = connect(&client, &addr, &options("w", Some(secret_c))).await;
    assert!(
        matches!(wrong, Err(TorError::ClientAuthRejected)),
        "{:?}",
        wrong.err()
    );
    client.shutdown().await.unwrap();

    // Remove A. A client that fetches the new descriptor is refused; B still gets
    // in. Arti uploads a service's descriptor at most once a minute, so the new
    // one may take that long to appear.
    svc.set_authorized_clients(vec![public_b]).await.unwrap();
    let mut refused = false;
    for _ in 0..60 {
        let fresh = arti().await;
        let result = connect(&fresh, &addr, &options("a", Some(secret_a.clone()))).await;
        refused = match result {
            Err(TorError::ClientAuthRejected) => true,
            // The old descriptor is still being served: try again.
            Ok(stream) => {
                drop(stream);
                false
            }
            // No descriptor could be fetched this time (a young network): the
            // question is still open, try again.
            Err(TorError::ServiceUnreachable(_)) => false,
            Err(e) => panic!("unexpected error after removal: {e:?} ({e})"),
        };
        fresh.shutdown().await.unwrap();
        if refused {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(refused, "a removed client could still discover the service");
    let fresh = arti().await;
    let stream = connect(&fresh, &addr, &options("b", Some(secret_b)))
        .await
        .unwrap();
    echo_check(stream, 4096).await;

    fresh.shutdown().await.unwrap();
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_service_keeps_its_address_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::Persistent {
        state_dir: dir.path().join("state"),
        cache_dir: dir.path().join("cache"),
    };
    let seed = [42u8; 32];

    let host = arti_with(storage.clone()).await;
    let svc = host
        .launch_service(service(
            "profile",
            ServiceKey::Seed(Zeroizing::new(seed)),
            None,
        ))
        .await
        .unwrap();
    let first = svc.address();
    svc.shutdown().await.unwrap();
    drop(svc);
    host.shutdown().await.unwrap();
    drop(host);

    let host = arti_with(storage).await;
    let svc: std::sync::Arc<dyn OnionService> = host
        .launch_service(service(
            "profile",
            ServiceKey::Seed(Zeroizing::new(seed)),
            None,
        ))
        .await
        .unwrap()
        .into();
    assert_eq!(svc.address(), first);
    spawn_echo(svc.clone());

    let client = arti().await;
    let stream = connect(&client, &first, &options("a", None)).await.unwrap();
    echo_check(stream, 4096).await;
    client.shutdown().await.unwrap();
    host.shutdown().await.unwrap();
}

/// An Arti running a public echo service, and the service's address.
async fn echo_host(nickname: &str) -> (Arti, OnionAddress) {
    let host = arti().await;
    let svc: std::sync::Arc<dyn OnionService> = host
        .launch_service(service(nickname, ServiceKey::Ephemeral, None))
        .await
        .unwrap()
        .into();
    let addr = svc.address();
    spawn_echo(svc);
    (host, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuits_are_refreshed_on_schedule() {
    let (host, addr) = echo_host("fresh").await;
    // Without the schedule Arti keeps a key's circuit for ten minutes; with
    // it, a new stream of the same key soon gets a circuit of its own.
    let client = Arti::launch(ArtiConfig {
        storage: Storage::Ephemeral,
        network: network_config().await,
        circuit_refresh: Some(Duration::from_secs(2)),
        ..ArtiConfig::default()
    })
    .await
    .unwrap();
    let first = data_stream(&client, &addr, &options("alice", None)).await;
    let first_circuit = circuit_id(&first).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let next = data_stream(&client, &addr, &options("alice", None)).await;
        if circuit_id(&next).unwrap() != first_circuit {
            echo_check(Box::new(next), 4096).await;
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every stream of the key stayed on its first circuit"
        );
    }
    // The old stream still works.
    echo_check(Box::new(first), 4096).await;
    client.shutdown().await.unwrap();
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_keys_get_separate_circuits() {
    let (host, addr) = echo_host("iso").await;
    let client = arti().await;

    // Wait until the service answers at all.
    drop(
        connect(&client, &addr, &options("warm-up", None))
            .await
            .unwrap(),
    );

    let a1 = data_stream(&client, &addr, &options("alice", None)).await;
    let b = data_stream(&client, &addr, &options("bob", None)).await;
    let a2 = data_stream(&client, &addr, &options("alice", None)).await;
    let (id_a1, id_b, id_a2) = (
        circuit_id(&a1).unwrap(),
        circuit_id(&b).unwrap(),
        circuit_id(&a2).unwrap(),
    );
    assert_ne!(id_a1, id_b, "different isolation keys shared a circuit");
    assert_eq!(id_a1, id_a2, "one isolation key did not reuse its circuit");

    // After a refresh, new streams get new circuits and old streams keep working.
    client.refresh_circuits().await.unwrap();
    let a3 = data_stream(&client, &addr, &options("alice", None)).await;
    assert_ne!(
        circuit_id(&a3).unwrap(),
        id_a1,
        "refresh reused the old circuit"
    );
    echo_check(Box::new(a1), 4096).await;
    echo_check(Box::new(a3), 4096).await;

    client.shutdown().await.unwrap();
    host.shutdown().await.unwrap();
}

// Interoperability with the C tor backend on the same network.

async fn ctor() -> nightjar_tor::ctor::CTor {
    use nightjar_tor::ctor::{CTor, CTorOptions, TorProcessConfig};
    let net = nightjar_test_support::shared_network().await;
    let tor = CTor::launch(
        TorProcessConfig {
            tor: nightjar_test_support::tor_program(),
            ..TorProcessConfig::for_test_network(net.description())
        },
        CTorOptions {
            connect_attempts: 10,
            ..CTorOptions::default()
        },
    )
    .await
    .unwrap();
    tor.wait_bootstrapped().await.unwrap();
    tor
}

/// A public and a restricted service on `host`, each reached from `client`; the
/// restricted one refuses `client` until it has the key.
async fn interop(host: &dyn Transport, client: &dyn Transport) {
    let (secret, public) = client_key(9);
    let open: std::sync::Arc<dyn OnionService> = host
        .launch_service(service("interop-open", ServiceKey::Ephemeral, None))
        .await
        .unwrap()
        .into();
    let closed: std::sync::Arc<dyn OnionService> = host
        .launch_service(service(
            "interop-closed",
            ServiceKey::Ephemeral,
            Some(vec![public]),
        ))
        .await
        .unwrap()
        .into();
    spawn_echo(open.clone());
    spawn_echo(closed.clone());

    let stream = connect(client, &open.address(), &options("open", None))
        .await
        .unwrap();
    echo_check(stream, 256 * 1024).await;

    // Refusal first: a C tor client keeps a key it was given for later streams.
    let refused = connect(client, &closed.address(), &options("nokey", None)).await;
    assert!(
        matches!(
            refused,
            Err(TorError::ClientAuthRequired | TorError::ClientAuthRejected)
        ),
        "{:?}",
        refused.err()
    );
    let stream = connect(client, &closed.address(), &options("closed", Some(secret)))
        .await
        .unwrap();
    echo_check(stream, 4096).await;

    open.shutdown().await.unwrap();
    closed.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arti_client_reaches_ctor_service() {
    let host = ctor().await;
    let client = arti().await;
    interop(&host, &client).await;
    client.shutdown().await.unwrap();
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctor_client_reaches_arti_service() {
    let host = arti().await;
    let client = ctor().await;
    interop(&host, &client).await;
    client.shutdown().await.unwrap();
    host.shutdown().await.unwrap();
}

/// A C tor client that fetched a descriptor before the service authorised it
/// (what a contact request's answer races against) gets in once the service
/// publishes the descriptor that includes it, instead of keeping the cached
/// one for tor's 15-minute HSDir back-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctor_client_gets_in_once_an_arti_service_authorises_it() {
    let (_, public_a) = client_key(11);
    let (secret_b, public_b) = client_key(12);
    let host = arti().await;
    let svc: std::sync::Arc<dyn OnionService> = host
        .launch_service(service(
            "authorised-later",
            ServiceKey::Ephemeral,
            Some(vec![public_a]),
        ))
        .await
        .unwrap()
        .into();
    spawn_echo(svc.clone());
    let client = ctor().await;
    let before = connect(
        &client,
        &svc.address(),
        &options("b", Some(secret_b.clone())),
    )
    .await;
    assert!(
        matches!(before, Err(TorError::ClientAuthRejected)),
        "{:?}",
        before.err()
    );

    svc.set_authorized_clients(vec![public_a, public_b])
        .await
        .unwrap();
    // Arti uploads the new descriptor within a minute; each try below is one
    // `connect` of the backend (a few attempts of its own).
    let mut stream = None;
    for _ in 0..40 {
        match connect(
            &client,
            &svc.address(),
            &options("b", Some(secret_b.clone())),
        )
        .await
        {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(TorError::ClientAuthRejected) => {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => panic!("unexpected error after authorisation: {e:?} ({e})"),
        }
    }
    let stream = stream.expect("the newly authorised client never got in");
    echo_check(stream, 4096).await;

    svc.shutdown().await.unwrap();
    client.shutdown().await.unwrap();
    host.shutdown().await.unwrap();
}

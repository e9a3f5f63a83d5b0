//! The in-process loopback network keeps the `Transport` contract.

// Test code: functions outside #[test] fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nightjar_tor::{
    BoxStream, ClientAuthPublic, ClientAuthSecret, ConnectOptions, IsolationKey, LoopbackNetwork,
    OnionAddress, OnionService, ServiceConfig, ServiceKey, ServiceStatus, TorError, Transport,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use zeroize::Zeroizing;

const PORT: u16 = 443;

/// Fails the test instead of hanging it.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

fn seeded(byte: u8) -> ServiceKey {
    ServiceKey::Seed(Zeroizing::new([byte; 32]))
}

fn config(key: ServiceKey, authorized_clients: Option<Vec<ClientAuthPublic>>) -> ServiceConfig {
    ServiceConfig {
        nickname: "test".into(),
        key,
        virtual_port: PORT,
        authorized_clients,
    }
}

fn open() -> ConnectOptions {
    ConnectOptions {
        isolation: IsolationKey("a".into()),
        client_auth: None,
    }
}

fn with_key(secret: &ClientAuthSecret) -> ConnectOptions {
    ConnectOptions {
        client_auth: Some(secret.clone()),
        ..open()
    }
}

/// A client-authorization key pair, computed as tor does (X25519).
fn client_key(byte: u8) -> (ClientAuthSecret, ClientAuthPublic) {
    let secret = x25519_dalek::StaticSecret::from([byte; 32]);
    let public = x25519_dalek::PublicKey::from(&secret);
    (
        ClientAuthSecret([byte; 32]),
        ClientAuthPublic(public.to_bytes()),
    )
}

async fn launch(transport: &Arc<dyn Transport>, key: ServiceKey) -> Box<dyn OnionService> {
    within(transport.launch_service(config(key, None)))
        .await
        .unwrap()
}

async fn connect(
    transport: &Arc<dyn Transport>,
    service: &dyn OnionService,
    options: &ConnectOptions,
) -> Result<BoxStream, TorError> {
    within(transport.connect(&service.address(), PORT, options)).await
}

/// Opens a stream from `client` to `service` and accepts it.
async fn stream_pair(
    client: &Arc<dyn Transport>,
    service: &dyn OnionService,
) -> (BoxStream, BoxStream) {
    let client_end = connect(client, service, &open()).await.unwrap();
    let service_end = within(service.accept()).await.unwrap();
    (client_end, service_end)
}

/// Sends `message` one way and checks it arrives.
async fn carries(from: &mut BoxStream, to: &mut BoxStream, message: &[u8]) {
    from.write_all(message).await.unwrap();
    from.flush().await.unwrap();
    let mut got = vec![0u8; message.len()];
    within(to.read_exact(&mut got)).await.unwrap();
    assert_eq!(got, message);
}

/// Reads until EOF, which must come.
async fn reads_eof(stream: &mut BoxStream) {
    let mut buf = [0u8; 16];
    assert_eq!(within(stream.read(&mut buf)).await.unwrap(), 0);
}

/// Lets spawned tasks run until they wait (test runtimes have one thread).
async fn let_others_run() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

fn hex32(s: &str) -> [u8; 32] {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

#[tokio::test]
async fn a_transport_is_ready_at_once() {
    let transport = LoopbackNetwork::new().transport();
    assert!(transport.bootstrap_status().borrow().is_ready());
    transport.refresh_circuits().await.unwrap();
    let service = launch(&transport, ServiceKey::Ephemeral).await;
    assert_eq!(*service.status().borrow(), ServiceStatus::Published);
}

#[tokio::test]
async fn bytes_go_both_ways() {
    let network = LoopbackNetwork::new();
    let (a, b) = (network.transport(), network.transport());
    let service = launch(&a, seeded(1)).await;
    let (mut client, mut server) = stream_pair(&b, service.as_ref()).await;
    carries(&mut client, &mut server, b"ping").await;
    carries(&mut server, &mut client, b"pong").await;
    client.shutdown().await.unwrap();
    reads_eof(&mut server).await;
}

#[tokio::test]
async fn more_than_the_buffer_flows_through() {
    let network = LoopbackNetwork::new();
    let transport = network.transport();
    let service = launch(&transport, seeded(2)).await;
    let (mut client, mut server) = stream_pair(&transport, service.as_ref()).await;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    // Writer and reader in different tasks, so each must wake the other.
    let sent = data.clone();
    let send = tokio::spawn(async move {
        client.write_all(&sent).await.unwrap();
        client.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    within(server.read_to_end(&mut got)).await.unwrap();
    within(send).await.unwrap();
    assert_eq!(got, data);
}

#[tokio::test]
async fn isolation_keys_do_not_matter() {
    let network = LoopbackNetwork::new();
    let transport = network.transport();
    let service = launch(&transport, seeded(3)).await;
    for key in ["one", "two"] {
        let options = ConnectOptions {
            isolation: IsolationKey(key.into()),
            client_auth: None,
        };
        let mut client = connect(&transport, service.as_ref(), &options)
            .await
            .unwrap();
        let mut server = within(service.accept()).await.unwrap();
        carries(&mut client, &mut server, key.as_bytes()).await;
    }
}

#[tokio::test]
async fn a_seed_gives_the_address_tor_gives_it() {
    let transport = LoopbackNetwork::new().transport();

    // RFC 8032, section 7.1, test 1, and the address tor's test suite gives it.
    let seed = hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let service = launch(&transport, ServiceKey::Seed(Zeroizing::new(seed))).await;
    assert_eq!(
        service.address().public_key(),
        &hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    );
    assert_eq!(
        service.address().to_string(),
        "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
    );

    let seed = [0x42; 32];
    let service = launch(&transport, ServiceKey::Seed(Zeroizing::new(seed))).await;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    assert_eq!(service.address(), OnionAddress::from_public_key(public));
}

#[tokio::test]
async fn ephemeral_services_get_new_addresses() {
    let network = LoopbackNetwork::new();
    let transport = network.transport();
    let a = launch(&transport, ServiceKey::Ephemeral).await;
    let b = launch(&transport, ServiceKey::Ephemeral).await;
    assert_ne!(a.address(), b.address());
    let (mut client, mut server) = stream_pair(&transport, b.as_ref()).await;
    carries(&mut client, &mut server, b"hi").await;
}

#[tokio::test]
async fn an_address_is_live_once() {
    let network = LoopbackNetwork::new();
    let (a, b) = (network.transport(), network.transport());
    let first = launch(&a, seeded(4)).await;
    for transport in [&a, &b] {
        let again = within(transport.launch_service(config(seeded(4), None))).await;
        assert!(matches!(again, Err(TorError::Service(_))));
    }
    // The refusals did not disturb the live service.
    let (mut client, mut server) = stream_pair(&b, first.as_ref()).await;
    carries(&mut client, &mut server, b"still here").await;

    first.shutdown().await.unwrap();
    let second = launch(&b, seeded(4)).await;
    assert_eq!(second.address(), first.address());
    stream_pair(&a, second.as_ref()).await;
}

#[tokio::test]
async fn unknown_addresses_and_wrong_ports_are_unreachable() {
    let network = LoopbackNetwork::new();
    let transport = network.transport();
    let service = launch(&transport, seeded(5)).await;
    let nowhere = OnionAddress::from_public_key([9; 32]);
    let unknown = within(transport.connect(&nowhere, PORT, &open())).await;
    assert!(matches!(unknown, Err(TorError::ServiceUnreachable(_))));
    let wrong_port = within(transport.connect(&service.address(), PORT + 1, &open())).await;
    assert!(matches!(wrong_port, Err(TorError::ServiceUnreachable(_))));
}

#[tokio::test]
async fn restricted_discovery_admits_only_listed_clients() {
    let network = LoopbackNetwork::new();
    let (host, guest) = (network.transport(), network.transport());
    let (alice, alice_public) = client_key(1);
    let (bob, bob_public) = client_key(2);
    let service = within(host.launch_service(config(seeded(6), Some(vec![alice_public]))))
        .await
        .unwrap();

    let none = connect(&guest, service.as_ref(), &open()).await;
    assert!(matches!(none, Err(TorError::ClientAuthRequired)));
    let wrong = connect(&guest, service.as_ref(), &with_key(&bob)).await;
    assert!(matches!(wrong, Err(TorError::ClientAuthRejected)));
    let mut alices = connect(&guest, service.as_ref(), &with_key(&alice))
        .await
        .unwrap();
    let mut served = within(service.accept()).await.unwrap();

    // Alice is removed and Bob added: the next streams see the new list, and
    // Alice's open stream stays open.
    within(service.set_authorized_clients(vec![bob_public]))
        .await
        .unwrap();
    let removed = connect(&guest, service.as_ref(), &with_key(&alice)).await;
    assert!(matches!(removed, Err(TorError::ClientAuthRejected)));
    let mut bobs = connect(&guest, service.as_ref(), &with_key(&bob))
        .await
        .unwrap();
    let mut served_bob = within(service.accept()).await.unwrap();
    carries(&mut bobs, &mut served_bob, b"bob").await;
    carries(&mut alices, &mut served, b"alice").await;

    // An empty list admits nobody.
    within(service.set_authorized_clients(Vec::new()))
        .await
        .unwrap();
    let nobody = connect(&guest, service.as_ref(), &with_key(&bob)).await;
    assert!(matches!(nobody, Err(TorError::ClientAuthRejected)));
}

#[tokio::test]
async fn an_open_service_takes_any_key_but_no_client_list() {
    let network = LoopbackNetwork::new();
    let transport = network.transport();
    let (alice, alice_public) = client_key(1);
    let service = launch(&transport, seeded(7)).await;
    connect(&transport, service.as_ref(), &with_key(&alice))
        .await
        .unwrap();
    let set = within(service.set_authorized_clients(vec![alice_public])).await;
    assert!(matches!(set, Err(TorError::Config(_))));
}

#[tokio::test]
async fn a_stopped_service_is_unreachable_but_its_streams_stay_open() {
    let network = LoopbackNetwork::new();
    let (host, guest) = (network.transport(), network.transport());
    let service: Arc<dyn OnionService> = Arc::from(launch(&host, seeded(8)).await);
    let (mut client, mut server) = stream_pair(&guest, service.as_ref()).await;
    let mut status = service.status();

    // An `accept` already waiting in another task wakes up.
    let waiting = tokio::spawn({
        let service = Arc::clone(&service);
        async move { service.accept().await.map(drop) }
    });
    let_others_run().await;
    service.shutdown().await.unwrap();
    assert!(matches!(
        within(waiting).await.unwrap(),
        Err(TorError::Shutdown)
    ));
    assert!(matches!(
        within(service.accept()).await,
        Err(TorError::Shutdown)
    ));
    within(status.wait_for(|s| *s == ServiceStatus::Stopped))
        .await
        .unwrap();
    let refused = connect(&guest, service.as_ref(), &open()).await;
    assert!(matches!(refused, Err(TorError::ServiceUnreachable(_))));
    let set = within(service.set_authorized_clients(Vec::new())).await;
    assert!(matches!(set, Err(TorError::Shutdown)));

    carries(&mut client, &mut server, b"after").await;
    carries(&mut server, &mut client, b"still").await;
}

#[tokio::test]
async fn streams_never_accepted_end_with_the_service() {
    let network = LoopbackNetwork::new();
    let (host, guest) = (network.transport(), network.transport());
    let service = launch(&host, seeded(17)).await;
    let mut unaccepted = connect(&guest, service.as_ref(), &open()).await.unwrap();
    service.shutdown().await.unwrap();
    reads_eof(&mut unaccepted).await;
    assert!(matches!(
        within(service.accept()).await,
        Err(TorError::Shutdown)
    ));
}

#[tokio::test]
async fn dropping_the_handle_stops_the_service() {
    let network = LoopbackNetwork::new();
    let transport = network.transport();
    let service = launch(&transport, seeded(9)).await;
    let address = service.address();
    drop(service);
    let refused = within(transport.connect(&address, PORT, &open())).await;
    assert!(matches!(refused, Err(TorError::ServiceUnreachable(_))));
    let again = launch(&transport, seeded(9)).await;
    assert_eq!(again.address(), address);
}

#[tokio::test]
async fn a_transport_shutdown_takes_its_services_and_streams_down() {
    let network = LoopbackNetwork::new();
    let (host, guest) = (network.transport(), network.transport());
    let service = launch(&host, seeded(10)).await;
    let (mut client, mut server) = stream_pair(&guest, service.as_ref()).await;
    // A stream the host opened, to a service of the guest.
    let guest_service = launch(&guest, seeded(11)).await;
    let (mut outgoing, mut incoming) = stream_pair(&host, guest_service.as_ref()).await;

    // A read already waiting on the host's own end, in another task, ends too.
    let waiting = tokio::spawn(async move { server.read(&mut [0u8; 8]).await.unwrap() });
    let_others_run().await;
    host.shutdown().await.unwrap();
    assert_eq!(within(waiting).await.unwrap(), 0);

    // The peers see the streams end.
    reads_eof(&mut client).await;
    reads_eof(&mut incoming).await;
    assert!(client.write_all(b"x").await.is_err());
    // The host's own ends are dead.
    reads_eof(&mut outgoing).await;
    assert!(outgoing.write_all(b"x").await.is_err());

    // Its service is gone, and it takes no new work.
    assert!(matches!(
        within(service.accept()).await,
        Err(TorError::Shutdown)
    ));
    assert_eq!(*service.status().borrow(), ServiceStatus::Stopped);
    let refused = connect(&guest, service.as_ref(), &open()).await;
    assert!(matches!(refused, Err(TorError::ServiceUnreachable(_))));
    let launch_after = within(host.launch_service(config(seeded(12), None))).await;
    assert!(matches!(launch_after, Err(TorError::Shutdown)));
    let connect_after = connect(&host, guest_service.as_ref(), &open()).await;
    assert!(matches!(connect_after, Err(TorError::Shutdown)));
    host.shutdown().await.unwrap();

    // The guest is untouched.
    let (mut client, mut server) = stream_pair(&guest, guest_service.as_ref()).await;
    carries(&mut client, &mut server, b"fine").await;
}

#[tokio::test]
async fn a_client_shutdown_closes_the_streams_it_opened() {
    let network = LoopbackNetwork::new();
    let (host, guest) = (network.transport(), network.transport());
    let service = launch(&host, seeded(13)).await;
    let (_client, mut server) = stream_pair(&guest, service.as_ref()).await;
    guest.shutdown().await.unwrap();
    reads_eof(&mut server).await;
    // The service itself lives on for others.
    let other = network.transport();
    stream_pair(&other, service.as_ref()).await;
}

#[tokio::test]
async fn dropping_a_transport_shuts_it_down() {
    let network = LoopbackNetwork::new();
    let (host, guest) = (network.transport(), network.transport());
    let service = launch(&host, seeded(18)).await;
    let (mut client, _server) = stream_pair(&guest, service.as_ref()).await;
    drop(host);
    reads_eof(&mut client).await;
    let refused = connect(&guest, service.as_ref(), &open()).await;
    assert!(matches!(refused, Err(TorError::ServiceUnreachable(_))));
    assert!(matches!(
        within(service.accept()).await,
        Err(TorError::Shutdown)
    ));
}

#[tokio::test]
async fn two_clients_reach_each_others_services() {
    let network = LoopbackNetwork::new();
    let (a, b) = (network.transport(), network.clone().transport());
    let service_a = launch(&a, seeded(14)).await;
    let service_b = launch(&b, seeded(15)).await;
    let (mut a_to_b, mut b_from_a) = stream_pair(&a, service_b.as_ref()).await;
    let (mut b_to_a, mut a_from_b) = stream_pair(&b, service_a.as_ref()).await;
    carries(&mut a_to_b, &mut b_from_a, b"a to b").await;
    carries(&mut b_from_a, &mut a_to_b, b"b answers").await;
    carries(&mut b_to_a, &mut a_from_b, b"b to a").await;
    carries(&mut a_from_b, &mut b_to_a, b"a answers").await;
}

#[tokio::test]
async fn networks_are_separate() {
    let (one, two) = (LoopbackNetwork::new(), LoopbackNetwork::new());
    let transport = one.transport();
    let service = launch(&transport, seeded(16)).await;
    let other = two.transport();
    let refused = connect(&other, service.as_ref(), &open()).await;
    assert!(matches!(refused, Err(TorError::ServiceUnreachable(_))));
    // The same address may be live on each.
    let twin = launch(&other, seeded(16)).await;
    assert_eq!(twin.address(), service.address());
    stream_pair(&other, twin.as_ref()).await;
}

//! The C tor backend end to end on the private Tor network (one network shared
//! by every test in this binary).

// Test code: functions outside #[test] fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use nightjar_test_support::{shared_network, tor_program};
use nightjar_tor::control::ControlAddr;
use nightjar_tor::ctor::{CTor, CTorOptions, TorProcessConfig};
use nightjar_tor::{
    BoxStream, ClientAuthPublic, ClientAuthSecret, ConnectOptions, IsolationKey, OnionAddress,
    OnionService, ServiceConfig, ServiceKey, ServiceStatus, TorError, Transport,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use zeroize::Zeroizing;

const PORT: u16 = 80;

async fn tor() -> CTor {
    tor_refreshing(CTorOptions::default().circuit_refresh).await
}

/// A tor client whose circuits are refreshed every `circuit_refresh`.
async fn tor_refreshing(circuit_refresh: Option<Duration>) -> CTor {
    let net = shared_network().await;
    let options = CTorOptions {
        circuit_refresh,
        // A fresh service takes a few seconds to publish on this network.
        connect_attempts: 10,
        // A healthy connect takes a few seconds here; a stuck one (a stale
        // descriptor) is abandoned and retried on fresh state.
        connect_timeout: Duration::from_secs(12),
        bootstrap_stall_timeout: Duration::from_secs(60),
    };
    let config = TorProcessConfig {
        tor: tor_program(),
        ..TorProcessConfig::for_test_network(net.description())
    };
    let tor = CTor::launch(config, options).await.unwrap();
    tor.wait_bootstrapped().await.unwrap();
    tor
}

fn public(nickname: &str, key: ServiceKey) -> ServiceConfig {
    ServiceConfig {
        nickname: nickname.into(),
        key,
        virtual_port: PORT,
        authorized_clients: None,
    }
}

fn opts(isolation: &str) -> ConnectOptions {
    ConnectOptions {
        isolation: IsolationKey(isolation.into()),
        client_auth: None,
    }
}

/// Echoes every stream the service accepts, until the service stops.
fn echo(service: std::sync::Arc<Box<dyn OnionService>>) {
    tokio::spawn(async move {
        while let Ok(mut stream) = service.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
}

async fn launch_echo(host: &CTor, config: ServiceConfig) -> std::sync::Arc<Box<dyn OnionService>> {
    let service = std::sync::Arc::new(host.launch_service(config).await.unwrap());
    echo(service.clone());
    service
}

async fn ping(stream: &mut BoxStream) {
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
}

/// Connects, retrying (bounded) while the error is one a restart or a fresh
/// descriptor explains.
async fn connect_eventually(
    client: &CTor,
    target: &OnionAddress,
    options: &ConnectOptions,
) -> BoxStream {
    let mut last = None;
    for _ in 0..6 {
        match client.connect(target, PORT, options).await {
            Ok(s) => return s,
            Err(e) => {
                eprintln!("connect failed, retrying: {e}");
                last = Some(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    panic!("never connected: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_service_echoes_a_megabyte() {
    let (host, client) = tokio::join!(tor(), tor());
    let service = launch_echo(&host, public("echo", ServiceKey::Ephemeral)).await;
    let started = Instant::now();
    let mut stream = client
        .connect(&service.address(), PORT, &opts("echo"))
        .await
        .unwrap();
    let first_connect = started.elapsed();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let started = Instant::now();
    let (mut r, mut w) = tokio::io::split(&mut stream);
    let send = async {
        w.write_all(&data).await.unwrap();
        w.flush().await.unwrap();
    };
    let mut back = vec![0u8; data.len()];
    let recv = r.read_exact(&mut back);
    let ((), got) = tokio::join!(send, recv);
    got.unwrap();
    assert!(back == data, "the echo differs from what was sent");
    eprintln!(
        "first connect after launch: {:.2} s; 1 MB echo: {:.2} s",
        first_connect.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    // The descriptor was uploaded, and the status said so.
    let mut status = service.status();
    status
        .wait_for(|s| *s == ServiceStatus::Published)
        .await
        .unwrap();
}

fn client_key(byte: u8) -> (ClientAuthSecret, ClientAuthPublic) {
    let secret = x25519_dalek::StaticSecret::from([byte; 32]);
    let public = x25519_dalek::PublicKey::from(&secret);
    (
        ClientAuthSecret(secret.to_bytes()),
        ClientAuthPublic(public.to_bytes()),
    )
}

fn is_refusal(e: &TorError) -> bool {
    matches!(
        e,
        TorError::ClientAuthRequired | TorError::ClientAuthRejected
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_discovery_admits_only_authorised_clients() {
    let (host, alice, mallory) = tokio::join!(tor(), tor(), tor());
    let (alice_secret, alice_public) = client_key(1);
    let (_, bob_public) = client_key(2);
    let service = launch_echo(
        &host,
        ServiceConfig {
            authorized_clients: Some(vec![alice_public, bob_public]),
            ..public("endpoint", ServiceKey::Ephemeral)
        },
    )
    .await;
    let address = service.address();
    let with_key = ConnectOptions {
        isolation: IsolationKey("alice-1".into()),
        client_auth: Some(alice_secret.clone()),
    };
    let mut stream = alice.connect(&address, PORT, &with_key).await.unwrap();
    ping(&mut stream).await;
    // A circuit refresh keeps the client-authorization keys, and the open
    // stream keeps working.
    alice.refresh_circuits().await.unwrap();
    ping(&mut stream).await;
    let again = ConnectOptions {
        isolation: IsolationKey("alice-2".into()),
        ..with_key.clone()
    };
    let mut second = alice.connect(&address, PORT, &again).await.unwrap();
    ping(&mut second).await;
    drop((stream, second));

    // Without a key the descriptor cannot even be read.
    let err = mallory
        .connect(&address, PORT, &opts("mallory"))
        .await
        .err()
        .expect("an unauthorised client got through");
    assert!(is_refusal(&err), "unexpected error: {err}");
    eprintln!("without a key: {err}");

    // Alice is removed: once re-published, her key no longer opens the
    // descriptor. A new isolation key makes her tor use fresh circuits, as a
    // new conversation would.
    service
        .set_authorized_clients(vec![bob_public])
        .await
        .unwrap();
    let mut refused = None;
    for attempt in 0..5 {
        let options = ConnectOptions {
            isolation: IsolationKey(format!("alice-after-{attempt}")),
            ..with_key.clone()
        };
        match alice.connect(&address, PORT, &options).await {
            Err(e) if is_refusal(&e) => {
                refused = Some(e);
                break;
            }
            Err(e) => eprintln!("not refused yet: {e}"),
            Ok(_) => panic!("a removed client connected after re-publishing"),
        }
    }
    let refused = refused.expect("the removed client was never refused");
    eprintln!("after removal: {refused}");
    // The re-published service is announced again.
    let mut status = service.status();
    status
        .wait_for(|s| *s == ServiceStatus::Published)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_service_keeps_its_address_across_restarts() {
    let client = tor().await;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let mut addresses = Vec::new();
    for _run in 0..2 {
        let host = tor().await;
        let service = launch_echo(
            &host,
            public("profile", ServiceKey::Seed(Zeroizing::new(seed))),
        )
        .await;
        addresses.push(service.address());
        let mut stream = connect_eventually(&client, &service.address(), &opts("p")).await;
        ping(&mut stream).await;
        host.shutdown().await.unwrap();
    }
    assert_eq!(addresses[0], addresses[1]);
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    assert_eq!(addresses[0], OnionAddress::from_public_key(public));
}

/// The circuit each open stream to `target` uses, from `GETINFO stream-status`
/// (`StreamID StreamStatus CircuitID Target` per line).
async fn circuits_to(client: &CTor, target: &OnionAddress) -> Vec<String> {
    let status = client.get_info("stream-status").await.unwrap();
    let host = format!("{}:{PORT}", target);
    status
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() >= 4 && f[3] == host && f[1] == "SUCCEEDED").then(|| f[2].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_isolation_keys_use_different_circuits() {
    let (host, client) = tokio::join!(tor(), tor());
    let service = launch_echo(&host, public("iso", ServiceKey::Ephemeral)).await;
    let target = service.address();
    let mut a = client
        .connect(&target, PORT, &opts("contact-a"))
        .await
        .unwrap();
    ping(&mut a).await;
    let mut b = client
        .connect(&target, PORT, &opts("contact-b"))
        .await
        .unwrap();
    ping(&mut b).await;
    let two = circuits_to(&client, &target).await;
    assert_eq!(two.len(), 2, "stream-status: {two:?}");
    assert_ne!(two[0], two[1], "two isolation keys shared a circuit");
    // The same key again may share a circuit: a third stream adds no new one.
    let mut a2 = client
        .connect(&target, PORT, &opts("contact-a"))
        .await
        .unwrap();
    ping(&mut a2).await;
    let three = circuits_to(&client, &target).await;
    assert_eq!(three.len(), 3);
    let distinct: std::collections::HashSet<_> = three.iter().collect();
    assert_eq!(distinct.len(), 2, "stream-status: {three:?}");
    // A refresh leaves open streams alone, and puts the next stream of the
    // same key on a circuit of its own.
    client.refresh_circuits().await.unwrap();
    ping(&mut a).await;
    ping(&mut b).await;
    let mut a3 = client
        .connect(&target, PORT, &opts("contact-a"))
        .await
        .unwrap();
    ping(&mut a3).await;
    let four = circuits_to(&client, &target).await;
    assert_eq!(four.len(), 4, "stream-status: {four:?}");
    let distinct: std::collections::HashSet<_> = four.iter().collect();
    assert_eq!(distinct.len(), 3, "a refresh reused a circuit: {four:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuits_are_refreshed_on_schedule() {
    // Without the schedule tor would keep a key's circuit for ten minutes
    // (MaxCircuitDirtiness); with it, a new stream of the same key soon gets a
    // circuit of its own, while the old stream keeps working.
    let (host, client) = tokio::join!(tor(), tor_refreshing(Some(Duration::from_secs(2))));
    let service = launch_echo(&host, public("fresh", ServiceKey::Ephemeral)).await;
    let target = service.address();
    let mut first = connect_eventually(&client, &target, &opts("contact-a")).await;
    ping(&mut first).await;
    let before = circuits_to(&client, &target).await;
    assert_eq!(before.len(), 1, "stream-status: {before:?}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut later = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut next = connect_eventually(&client, &target, &opts("contact-a")).await;
        ping(&mut next).await;
        let now = circuits_to(&client, &target).await;
        later.push(next);
        if now.iter().any(|circuit| *circuit != before[0]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every stream of the key stayed on its first circuit: {now:?}"
        );
    }
    ping(&mut first).await;
    drop(later);
    host.shutdown().await.unwrap();
    client.shutdown().await.unwrap();
}

fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

async fn wait_restarted(tor: &CTor, before: u64) {
    let mut restarts = tor.restarts();
    tokio::time::timeout(Duration::from_secs(60), restarts.wait_for(|n| *n > before))
        .await
        .expect("tor was not restarted")
        .unwrap();
    tor.wait_bootstrapped().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tor_is_restarted_and_streams_work_again() {
    let (host, client) = tokio::join!(tor(), tor());
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let service = launch_echo(
        &host,
        public("survivor", ServiceKey::Seed(Zeroizing::new(seed))),
    )
    .await;
    let target = service.address();
    let mut stream = client.connect(&target, PORT, &opts("r")).await.unwrap();
    ping(&mut stream).await;
    drop(stream);

    // The service's tor dies: it comes back and re-publishes the service.
    let before = *host.restarts().borrow();
    kill(host.tor_pid().unwrap());
    wait_restarted(&host, before).await;
    let mut stream = connect_eventually(&client, &target, &opts("r2")).await;
    ping(&mut stream).await;
    drop(stream);

    // The client's tor dies: connecting works again once it is back.
    let before = *client.restarts().borrow();
    kill(client.tor_pid().unwrap());
    wait_restarted(&client, before).await;
    let mut stream = connect_eventually(&client, &target, &opts("r3")).await;
    ping(&mut stream).await;
}

/// A tor someone else runs, with TCP control and SOCKS ports on loopback.
async fn foreign_tor(dir: &std::path::Path) -> (tokio::process::Child, std::net::SocketAddr) {
    use std::os::unix::fs::PermissionsExt as _;
    let net = shared_network().await;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let port_file = dir.join("control.port");
    let mut torrc = net.client_torrc_lines().join("\n");
    torrc.push_str(&format!(
        "\nDataDirectory {d}\nControlPort 127.0.0.1:auto\nControlPortWriteToFile {p}\n\
         CookieAuthentication 1\nSocksPort 127.0.0.1:auto IsolateSOCKSAuth ExtendedErrors\n\
         ClientUseIPv6 0\nLog notice file {d}/notice.log\n__OwningControllerProcess {pid}\n",
        d = dir.display(),
        p = port_file.display(),
        pid = std::process::id()
    ));
    std::fs::write(dir.join("torrc"), torrc).unwrap();
    let child = tokio::process::Command::new(tor_program())
        .arg("-f")
        .arg(dir.join("torrc"))
        .args(["--defaults-torrc", "/dev/null"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&port_file)
            && let Some(addr) = text.lines().find_map(|l| l.strip_prefix("PORT="))
        {
            return (child, addr.parse().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the foreign tor never opened its control port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_to_a_running_tor_over_loopback_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, control) = foreign_tor(dir.path()).await;
    let options = CTorOptions {
        connect_attempts: 10,
        ..CTorOptions::default()
    };
    let attached = CTor::attach(ControlAddr::Tcp(control), None, options)
        .await
        .unwrap();
    assert!(attached.tor_pid().is_none());
    attached.wait_bootstrapped().await.unwrap();
    let client = tor().await;
    // A service on the attached tor, and a stream from it through its TCP
    // SOCKS port to another.
    let hosted = launch_echo(&attached, public("attached", ServiceKey::Ephemeral)).await;
    let mut s = client
        .connect(&hosted.address(), PORT, &opts("a"))
        .await
        .unwrap();
    ping(&mut s).await;
    let other = launch_echo(&client, public("other", ServiceKey::Ephemeral)).await;
    let mut s = attached
        .connect(&other.address(), PORT, &opts("b"))
        .await
        .unwrap();
    ping(&mut s).await;
}

//! The C tor backend's configuration and failure paths, without a network.

// Test code: functions outside #[test] fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use nightjar_tor::ctor::{CTor, CTorOptions, TorProcessConfig, TransportPlugin, verify_config};
use nightjar_tor::{TorError, Transport as _};

/// Bridge lines in the format of published ones, on documentation addresses:
/// `--verify-config` only parses them.
const OBFS4: &str = "obfs4 192.0.2.10:443 0123456789ABCDEF0123456789ABCDEF01234567 \
    cert=ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw iat-mode=0";
const SNOWFLAKE: &str = "snowflake 192.0.2.3:80 2B280B23E1107BB62ABFC40DDCC8824814F80A72 \
    fingerprint=2B280B23E1107BB62ABFC40DDCC8824814F80A72 url=https://broker.example/ \
    front=cdn.example ice=stun:stun.example:3478";

#[tokio::test]
async fn bridges_and_pluggable_transports_pass_tors_own_check() {
    let config = TorProcessConfig {
        bridges: vec![OBFS4.into(), SNOWFLAKE.into()],
        transport_plugins: vec![TransportPlugin::obfs4(), TransportPlugin::snowflake()],
        ..TorProcessConfig::default()
    };
    verify_config(&config).await.unwrap();
}

#[tokio::test]
async fn a_broken_bridge_line_is_reported_in_tors_words() {
    let config = TorProcessConfig {
        bridges: vec!["obfs4 not-an-address".into()],
        transport_plugins: vec![TransportPlugin::obfs4()],
        ..TorProcessConfig::default()
    };
    let err = verify_config(&config).await.unwrap_err();
    assert!(
        matches!(err, TorError::Config(ref m) if m.contains("Bridge")),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_tor_is_named() {
    let config = TorProcessConfig {
        tor: "/nonexistent/tor".into(),
        ..TorProcessConfig::default()
    };
    let err = CTor::launch(config, CTorOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TorError::TorNotFound(_)), "{err}");
    assert!(err.to_string().contains("apt-get install tor"));
}

#[tokio::test]
async fn a_network_that_never_answers_stalls_with_a_reason() {
    // An authority on a loopback port nobody listens on: tor retries forever.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = TorProcessConfig {
        extra_torrc: vec![
            format!(
                "DirAuthority nowhere orport={port} no-v2 \
                 v3ident=0123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:{port} \
                 0123456789ABCDEF0123456789ABCDEF01234567"
            ),
            "TestingTorNetwork 1".into(),
        ],
        ..TorProcessConfig::default()
    };
    let options = CTorOptions {
        bootstrap_stall_timeout: Duration::from_secs(4),
        ..CTorOptions::default()
    };
    let tor = CTor::launch(config, options).await.unwrap();
    let err = tor.wait_bootstrapped().await.unwrap_err();
    let TorError::BootstrapStalled(reason) = &err else {
        panic!("expected a stall, got {err}");
    };
    assert!(reason.contains("no progress"), "{reason}");
    assert!(!tor.bootstrap_status().borrow().is_ready());
}

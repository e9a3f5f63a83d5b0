//! The shared network starts once per binary and describes itself.

// Test code: functions outside #[test] fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nightjar_test_support::{NetworkDescription, TestNetwork, shared_network};

#[tokio::test]
async fn shared_network_is_started_once_and_described() {
    let (a, b) = tokio::join!(shared_network(), shared_network());
    assert!(std::ptr::eq(a, b));
    let d = a.description();
    assert_eq!(d.authorities.len(), 3);
    assert_eq!(d.hsdir_interval_secs, 24 * d.voting_interval_secs);
    assert!(
        d.client_torrc
            .iter()
            .filter(|l| l.starts_with("DirAuthority "))
            .count()
            == 3
    );
    let on_disk = NetworkDescription::load(a.dir()).unwrap();
    assert_eq!(&on_disk, d);
    // Joining a running network works from its directory alone.
    let attached = TestNetwork::attach(a.dir()).unwrap();
    assert_eq!(attached.description(), d);
}

//! A group of five nodes over the private Tor network, its room on a mailbox
//! onion: one member is offline while the others talk and catches up when it
//! comes back, a removed member reads nothing sent after, and the mailbox holds
//! none of the texts nor any member's identity.

// Test code: helpers outside #[test] fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{mailbox_onion, next_over_tor, start_on_disk, test_ctor};
use nightjar_node::{Event, Node};
use nightjar_tor::Transport;
use nightjar_tor::ctor::CTor;
use tokio::sync::broadcast;

type Events = broadcast::Receiver<Event>;

/// A node on an on-disk profile under `root/who`, its own or an existing one.
async fn start(root: &Path, who: &str, tor: &Arc<CTor>) -> (Node, Events) {
    start_on_disk(root, who, tor.clone(), 1 << 20).await
}

/// `alice` asks `other` to be a contact, named `name` on her side; `other`
/// accepts, naming her "alice".
async fn befriend(alice: &(Node, Events), other: &mut (Node, Events), name: &str) {
    let address = other.0.info().await.unwrap().address;
    alice.0.send_request(&address, name, "hi").await.unwrap();
    let request = next_over_tor(&mut other.1, |e| match e {
        Event::RequestReceived { request } => Some(request.id),
        _ => None,
    })
    .await;
    other.0.accept_request(request, "alice").await.unwrap();
}

/// Waits until every one of `names` is connected to `node`.
async fn all_connected(node: &Node, events: &mut Events, names: &[&str]) {
    let mut waiting = Vec::new();
    for name in names {
        // Not yet a contact (the acceptance is on its way) counts as offline.
        if !node.contact(name).await.is_ok_and(|c| c.online) {
            waiting.push(name.to_string());
        }
    }
    while !waiting.is_empty() {
        let who = next_over_tor(events, |e| match e {
            Event::Connected { contact } => Some(contact.clone()),
            _ => None,
        })
        .await;
        waiting.retain(|n| *n != who);
    }
}

/// The next `n` texts others wrote in the group, in the order read, with
/// their authors as shown.
async fn texts(events: &mut Events, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        got.push(
            next_over_tor(events, |e| match e {
                Event::GroupMessage { message } if !message.outgoing => {
                    Some((message.from.clone(), message.body.clone()))
                }
                _ => None,
            })
            .await,
        );
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn five_members_over_tor_one_offline_one_removed() {
    nightjar_test_support::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    // Start right after the network's onion-service period turns (every few
    // minutes here): around a turn services are hard to reach for a while.
    let net = nightjar_test_support::shared_network().await;
    let left = net
        .description()
        .until_period_turn(std::time::SystemTime::now());
    if left < Duration::from_secs(240) {
        tokio::time::sleep(left + Duration::from_secs(30)).await;
    }
    let tor = test_ctor().await;
    let (relay, relay_onion) = mailbox_onion(tor.as_ref()).await;

    let mut alice = start(dir.path(), "alice", &tor).await;
    let names = ["bob", "carol", "dave", "erin"];
    let mut others = Vec::new();
    for name in names {
        others.push(start(dir.path(), name, &tor).await);
    }
    for (other, name) in others.iter_mut().zip(names) {
        befriend(&alice, other, name).await;
    }
    all_connected(&alice.0, &mut alice.1, &names).await;

    alice
        .0
        .add_mailbox(&relay_onion.address().to_string())
        .await
        .unwrap();
    alice.0.create_group("five").await.unwrap();
    for name in names {
        alice.0.invite_to_group("five", name).await.unwrap();
    }
    for other in &mut others {
        next_over_tor(&mut other.1, |e| {
            matches!(e, Event::GroupJoined { .. }).then_some(())
        })
        .await;
    }

    // Erin goes offline; the others talk.
    let (erin, _) = others.pop().unwrap();
    erin.shutdown().await.unwrap();
    alice
        .0
        .send_group_message("five", "from alice")
        .await
        .unwrap();
    others[0]
        .0
        .send_group_message("five", "from bob")
        .await
        .unwrap();
    for other in &mut others[1..] {
        let mut got = texts(&mut other.1, 2).await;
        got.sort();
        assert_eq!(got[0], ("alice".into(), "from alice".into()));
        // Bob is not their contact: shown by his fingerprint.
        assert!(got[1].0.starts_with("someone ("), "{got:?}");
        assert_eq!(got[1].1, "from bob");
    }
    assert_eq!(
        texts(&mut alice.1, 1).await,
        [("bob".to_owned(), "from bob".to_owned())]
    );

    // Alice removes Dave; Bob writes after reading the change.
    alice.0.remove_from_group("five", "dave").await.unwrap();
    let bob_events = &mut others[0].1;
    next_over_tor(bob_events, |e| {
        matches!(e, Event::GroupChanged { text, .. } if text.contains("removed")).then_some(())
    })
    .await;
    others[0]
        .0
        .send_group_message("five", "dave is out")
        .await
        .unwrap();
    assert_eq!(
        texts(&mut alice.1, 1).await,
        [("bob".to_owned(), "dave is out".to_owned())]
    );
    let dave = &mut others[2];
    next_over_tor(&mut dave.1, |e| {
        matches!(e, Event::GroupChanged { text, .. } if text.contains("removed you")).then_some(())
    })
    .await;

    // Erin comes back and reads all she missed, in order.
    let mut erin = start(dir.path(), "erin", &tor).await;
    let got: Vec<String> = texts(&mut erin.1, 3)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(got, ["from alice", "from bob", "dave is out"]);

    // Dave never read Bob's text after his removal.
    let dave_history = others[2].0.group_history("five").await.unwrap();
    assert!(dave_history.iter().all(|m| m.body != "dave is out"));

    // The mailbox holds cells: no text, no member identity.
    let held = relay.room_bytes_held();
    assert!(held.len() > 4 * 1024);
    let mut needles: Vec<Vec<u8>> = ["from alice", "from bob", "dave is out"]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
    for node in [&alice.0, &erin.0]
        .into_iter()
        .chain(others.iter().map(|o| &o.0))
    {
        let key = node.info().await.unwrap().identity_key;
        let key = data_encoding::BASE32_NOPAD
            .decode(key.to_ascii_uppercase().as_bytes())
            .unwrap();
        needles.extend(key.windows(8).map(<[u8]>::to_vec));
    }
    for needle in &needles {
        assert!(
            !held.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the mailbox holds {needle:?}"
        );
    }

    for (node, _) in others.into_iter().chain([alice, erin]) {
        node.shutdown().await.unwrap();
    }
    relay_onion.shutdown().await.unwrap();
    tor.shutdown().await.unwrap();
}

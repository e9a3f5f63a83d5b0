//! Cover traffic as an observer of one side's Tor connection would measure it:
//! the times between the cells a link writes, idle and during a conversation.
//!
//! Loopback transport, so the measurement is of our own schedule, not of Tor's
//! noise. Nothing here is timed: the assertions are about distributions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ShapedPair, befriend, next_matching, shaped_pair, start_shaped, until_online};
use nightjar_node::{CoverLevel, Event, ForwardSecrecy, ShapingConfig};
use nightjar_proto::cell::CELL_SIZE;
use nightjar_tor::loopback::LoopbackNetwork;
use nightjar_tor::tap::{TapLog, Unit};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rv::misc::{KsAlternative, KsMode, ks_two_sample};

/// The mean gap of the schedule under test: fast, so the test is short.
const GAP: Duration = Duration::from_millis(20);
/// Gaps measured per sample.
const GAPS: usize = 600;
/// The port nightjar's links use.
const LINK_PORT: u16 = 7300;

/// Alice's outgoing link cells since `from`: the times between consecutive
/// ones, in milliseconds, and every write's size.
fn gaps_since(log: &TapLog, from: Duration) -> (Vec<f64>, Vec<usize>) {
    let units: Vec<Unit> = log
        .units()
        .into_iter()
        .filter(|u| u.out && u.port == LINK_PORT && u.at >= from)
        .collect();
    // The link in use is the stream with the most writes (a second one may
    // have been opened and dropped while both sides dialled).
    let busiest = units
        .iter()
        .map(|u| u.stream)
        .max_by_key(|s| units.iter().filter(|u| u.stream == *s).count());
    let link: Vec<&Unit> = units.iter().filter(|u| Some(u.stream) == busiest).collect();
    let gaps = link
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64() * 1000.0)
        .collect();
    (gaps, link.iter().map(|u| u.len).collect())
}

/// Waits until Alice's link has written `count` more cells after `from`.
async fn until_gaps(log: &TapLog, from: Duration, count: usize) {
    while gaps_since(log, from).0.len() < count {
        tokio::time::sleep(GAP * 10).await;
    }
}

/// Two contacts whose links are shaped by `shaping`; Alice's transport is
/// recorded. Measures `GAPS` gaps of Alice's cells with the link idle, then
/// `GAPS` while both chat, and returns both samples and every size written.
async fn measure(shaping: ShapingConfig) -> (Vec<f64>, Vec<f64>, Vec<usize>) {
    let ShapedPair {
        net: _net,
        alice_wire: log,
        alice,
        bob,
        mut bob_events,
        ..
    } = shaped_pair(shaping).await;

    let idle_from = log.units().last().map_or(Duration::ZERO, |u| u.at);
    until_gaps(&log, idle_from, GAPS).await;
    let (mut idle, mut sizes) = gaps_since(&log, idle_from);
    idle.truncate(GAPS);

    // A conversation: Alice writes texts of one to three cells after
    // exponential pauses (mean three slots); Bob answers every third.
    let busy_from = log.units().last().map_or(Duration::ZERO, |u| u.at);
    let mut rng = StdRng::seed_from_u64(3);
    let chat = async {
        let mut sent = 0;
        while gaps_since(&log, busy_from).0.len() < GAPS {
            let pause: f64 = -(1.0 - rng.random::<f64>()).ln() * 3.0;
            tokio::time::sleep(GAP.mul_f64(pause)).await;
            let text = "w".repeat(rng.random_range(1..1300));
            alice.send_message("bob", &text).await.unwrap();
            sent += 1;
            if sent % 3 == 0 {
                bob.send_message("alice", "ok").await.unwrap();
            }
        }
        sent
    };
    let sent = chat.await;
    let (mut busy, busy_sizes) = gaps_since(&log, busy_from);
    busy.truncate(GAPS);
    sizes.extend(busy_sizes);
    // The conversation really happened: Bob got Alice's texts.
    let mut got = 0;
    while got < sent {
        next_matching(&mut bob_events, |e| {
            matches!(e, Event::MessageReceived { .. }).then_some(())
        })
        .await;
        got += 1;
    }
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
    (idle, busy, sizes)
}

/// The two-sided Kolmogorov-Smirnov statistic D and p-value.
fn ks(a: &[f64], b: &[f64]) -> (f64, f64) {
    ks_two_sample(a, b, KsMode::Asymptotic, KsAlternative::TwoSided).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_chat_look_alike_on_the_wire() {
    let shaping = ShapingConfig {
        cover: CoverLevel::Every(GAP),
        low_latency: false,
    };
    // p is uniform when the two samples come from one distribution, so a
    // correct schedule fails one measurement in twenty: a failure is measured
    // again, and only two in a row fail the test (one run in 400).
    let mut results = Vec::new();
    for _ in 0..2 {
        let (idle, busy, sizes) = measure(shaping).await;
        assert!(
            sizes.iter().all(|&len| len == CELL_SIZE),
            "a write was not one cell: {:?}",
            sizes
                .iter()
                .filter(|&&l| l != CELL_SIZE)
                .collect::<Vec<_>>()
        );
        let (d, p) = ks(&idle, &busy);
        eprintln!(
            "idle vs chat: D = {d:.4}, p = {p:.3} ({} + {} gaps)",
            idle.len(),
            busy.len()
        );
        results.push((d, p));
        if p > 0.05 {
            return;
        }
    }
    panic!("idle and chat told apart: (D, p) = {results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_low_latency_chat_is_told_apart() {
    // The test above has power: sending at once is seen.
    let shaping = ShapingConfig {
        cover: CoverLevel::Every(GAP),
        low_latency: true,
    };
    let (idle, busy, _) = measure(shaping).await;
    let (d, p) = ks(&idle, &busy);
    eprintln!("idle vs chat, low latency: D = {d:.4}, p = {p:.2e}");
    assert!(p < 0.001, "low latency not told apart: D = {d}, p = {p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarantees_follow_the_link_and_the_peers_cover() {
    let net = LoopbackNetwork::new();
    let shaped = ShapingConfig {
        cover: CoverLevel::Every(GAP),
        low_latency: false,
    };
    let (alice, mut alice_events) = start_shaped(net.transport(), shaped).await;
    let (bob, mut bob_events) = start_shaped(net.transport(), ShapingConfig::UNSHAPED).await;
    befriend(&alice, &mut alice_events, &bob, &mut bob_events).await;
    until_online(&alice, &mut alice_events, "bob").await;
    until_online(&bob, &mut bob_events, "alice").await;

    // Alice sends cover; Bob sees it on the link (the first cover cell may
    // come before Bob is told of the contact, so ask). Bob sends none.
    let seen = tokio::time::timeout(common::PATIENCE, async {
        loop {
            let view = bob.contact("alice").await.unwrap().guarantees;
            if view.their_cover == Some(true) {
                return view;
            }
            tokio::time::sleep(GAP * 5).await;
        }
    })
    .await
    .expect("Bob never saw Alice's cover");
    assert_eq!(seen.their_cover, Some(true));
    assert_eq!(seen.post_quantum, Some(true));
    assert_eq!(seen.our_cover, "off");
    let at_alice = alice.contact("bob").await.unwrap().guarantees;
    assert_eq!(at_alice.post_quantum, Some(true));
    assert_eq!(at_alice.forward_secrecy, ForwardSecrecy::Ratchet);
    assert_eq!(at_alice.our_cover, "every 20 ms");
    assert_eq!(at_alice.their_cover, Some(false));

    // Without a link there is nothing to say about the link.
    bob.shutdown().await.unwrap();
    next_matching(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    let offline = alice.contact("bob").await.unwrap().guarantees;
    assert_eq!(offline.post_quantum, None);
    assert_eq!(offline.their_cover, None);
    alice.shutdown().await.unwrap();
}

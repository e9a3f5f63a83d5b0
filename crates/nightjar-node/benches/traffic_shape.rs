//! What cover traffic costs and hides, per level, on the in-process loopback
//! transport (our own writes, before Tor adds its 16 bytes per cell):
//!
//! - bandwidth: bytes a link writes per minute while idle, per cover level,
//!   beside the bytes the same link writes for a scripted conversation without
//!   cover (the reference: what talking costs anyway), measured in the same run;
//! - timing: the Kolmogorov-Smirnov test of the gaps between cells, idle vs
//!   during a conversation, at each level with cover (D, p and the sample sizes).
//!
//! ```text
//! cargo bench -p nightjar-node --bench traffic_shape -- [--seconds 60]
//! ```

// A benchmark binary: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{ShapedPair, shaped_pair};
use nightjar_node::{CoverLevel, ShapingConfig};
use nightjar_tor::tap::TapLog;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rv::misc::{KsAlternative, KsMode, ks_two_sample};

const LINK_PORT: u16 = 7300;

fn main() {
    let mut seconds = 60u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--seconds N")
            }
            // Flags cargo bench passes to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(Duration::from_secs(seconds)));
}

/// Alice's writes on her link to Bob between `from` and `to` (log times).
fn link_writes(log: &TapLog, from: Duration, to: Duration) -> Vec<(Duration, usize)> {
    log.units()
        .into_iter()
        .filter(|u| u.out && u.port == LINK_PORT && u.at >= from && u.at < to)
        .map(|u| (u.at, u.len))
        .collect()
}

fn gaps_ms(writes: &[(Duration, usize)]) -> Vec<f64> {
    writes
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64() * 1000.0)
        .collect()
}

struct Measured {
    idle: Vec<(Duration, usize)>,
    chat: Vec<(Duration, usize)>,
}

/// Two contacts shaped by `shaping`: Alice's writes during `span` idle, then
/// during `span` of conversation (a text of 1–3 cells every 3 s on average,
/// Bob answering every third).
async fn measure(shaping: ShapingConfig, span: Duration) -> Measured {
    let ShapedPair {
        net: _net,
        alice_wire: log,
        alice,
        bob,
        ..
    } = shaped_pair(shaping).await;
    // Let set-up finish before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let clock = tokio::time::Instant::now();
    let base = log.units().last().map_or(Duration::ZERO, |u| u.at);
    tokio::time::sleep(span).await;
    let idle_end = base + clock.elapsed();
    let mut rng = StdRng::seed_from_u64(5);
    let mut sent = 0;
    while clock.elapsed() < span * 2 {
        let pause = -(1.0 - rng.random::<f64>()).ln() * 3.0;
        tokio::time::sleep(Duration::from_secs_f64(pause)).await;
        let text = "w".repeat(rng.random_range(1..1300));
        alice.send_message("bob", &text).await.unwrap();
        sent += 1;
        if sent % 3 == 0 {
            bob.send_message("alice", "ok").await.unwrap();
        }
    }
    let end = base + clock.elapsed();
    let measured = Measured {
        idle: link_writes(&log, base, idle_end),
        chat: link_writes(&log, idle_end, end),
    };
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
    measured
}

fn kb_per_minute(writes: &[(Duration, usize)], span: Duration) -> f64 {
    let bytes: usize = writes.iter().map(|w| w.1).sum();
    bytes as f64 / 1000.0 / span.as_secs_f64() * 60.0
}

async fn run(span: Duration) {
    println!(
        "traffic_shape: {} s idle then {} s of conversation per level, loopback transport",
        span.as_secs(),
        span.as_secs()
    );
    let reference = measure(ShapingConfig::UNSHAPED, span).await;
    let talk = kb_per_minute(&reference.chat, span);
    println!(
        "reference, no cover: idle {:.1} KB/min, conversation {talk:.1} KB/min",
        kb_per_minute(&reference.idle, span)
    );
    for (name, cover) in [
        ("off (jitter)", CoverLevel::Off),
        ("low", CoverLevel::Low),
        ("constant", CoverLevel::Constant),
    ] {
        let shaping = ShapingConfig {
            cover,
            low_latency: false,
        };
        let m = measure(shaping, span).await;
        let idle = kb_per_minute(&m.idle, span);
        let sizes: std::collections::BTreeSet<usize> =
            m.idle.iter().chain(&m.chat).map(|w| w.1).collect();
        print!(
            "cover {name:<12} idle {idle:>6.1} KB/min ({:.2}x the conversation without cover), \
             write sizes {sizes:?}",
            idle / talk
        );
        let (idle_gaps, chat_gaps) = (gaps_ms(&m.idle), gaps_ms(&m.chat));
        if cover != CoverLevel::Off && idle_gaps.len() > 8 && chat_gaps.len() > 8 {
            let (d, p) = ks_two_sample(
                &idle_gaps,
                &chat_gaps,
                KsMode::Asymptotic,
                KsAlternative::TwoSided,
            )
            .unwrap();
            print!(
                ", gaps idle vs conversation: KS D = {d:.3}, p = {p:.3} (n = {} + {})",
                idle_gaps.len(),
                chat_gaps.len()
            );
        }
        println!();
    }
}

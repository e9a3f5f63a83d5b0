//! Onion-stream round-trip latency and throughput on the private Tor network,
//! for each pair of backends (service host → connecting client), printed side by
//! side with ratios against the C tor → C tor row. Figures from one run on one
//! machine compare backends; they say little about the real network.
//!
//! ```text
//! cargo bench -p nightjar-tor --bench onion_stream -- [--pairs ctor-ctor] [--pings 50] [--mib 16]
//! ```
//!
//! `NIGHTJAR_TESTNET=DIR` reuses a network from `nightjar testnet up`. A backend
//! joins the matrix by getting a `nightjar_tor::Backend` variant; everything else
//! works on `dyn Transport`.

// A benchmark binary: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nightjar_test_support::{TestNetwork, shared_network, tor_program};
use nightjar_tor::{
    Backend, BoxStream, ConnectOptions, IsolationKey, OnionService, ServiceConfig, ServiceKey,
    Transport,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PORT: u16 = 80;
const PING: usize = 64;

/// A bootstrapped backend on the private network.
async fn start(backend: Backend, net: &TestNetwork) -> Arc<dyn Transport> {
    backend
        .launch_on_testnet(net.description(), tor_program())
        .await
        .unwrap()
}

struct Args {
    pairs: Vec<(Backend, Backend)>,
    pings: usize,
    mib: usize,
}

fn args() -> Args {
    let mut a = Args {
        pairs: vec![
            (Backend::CTor, Backend::CTor),
            (Backend::Arti, Backend::Arti),
            (Backend::CTor, Backend::Arti),
            (Backend::Arti, Backend::CTor),
        ],
        pings: 50,
        mib: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--pairs" => {
                let list = it.next().expect("--pairs host-client,...");
                a.pairs = list
                    .split(',')
                    .map(|p| {
                        let (h, c) = p.split_once('-').expect("a pair is host-client");
                        let parse =
                            |s: &str| s.parse::<Backend>().unwrap_or_else(|e| panic!("{e}"));
                        (parse(h), parse(c))
                    })
                    .collect();
            }
            "--pings" => a.pings = it.next().and_then(|n| n.parse().ok()).expect("--pings N"),
            "--mib" => a.mib = it.next().and_then(|n| n.parse().ok()).expect("--mib N"),
            // cargo bench passes --bench; other harness flags are ignored too.
            _ => {}
        }
    }
    a
}

/// Serves the benchmark protocol: `P` then pings echoed until EOF, or `T` + a
/// big-endian u64 length, that many bytes swallowed, then one byte back.
fn serve(service: Arc<Box<dyn OnionService>>) {
    tokio::spawn(async move {
        while let Ok(mut s) = service.accept().await {
            tokio::spawn(async move {
                let mut mode = [0u8; 1];
                if s.read_exact(&mut mode).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; 256 * 1024];
                if mode[0] == b'P' {
                    let mut ping = [0u8; PING];
                    while s.read_exact(&mut ping).await.is_ok() {
                        // Streams may buffer writes until flushed (Arti keeps up
                        // to a relay cell's worth); a ping must go out at once.
                        if s.write_all(&ping).await.is_err() || s.flush().await.is_err() {
                            return;
                        }
                    }
                } else {
                    let mut len = [0u8; 8];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut left = u64::from_be_bytes(len);
                    while left > 0 {
                        let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
                        match s.read(&mut buf[..want]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => left -= n as u64,
                        }
                    }
                    let _ = s.write_all(b"k").await;
                    let _ = s.flush().await;
                }
            });
        }
    });
}

struct Row {
    pair: String,
    first_connect: Duration,
    median: Duration,
    p90: Duration,
    mbytes_per_s: f64,
}

async fn connect(client: &dyn Transport, service: &dyn OnionService, iso: &str) -> BoxStream {
    let options = ConnectOptions {
        isolation: IsolationKey(iso.into()),
        client_auth: None,
    };
    let mut last = None;
    for _ in 0..5 {
        match client.connect(&service.address(), PORT, &options).await {
            Ok(s) => return s,
            Err(e) => last = Some(e),
        }
    }
    panic!("could not connect: {last:?}");
}

/// Measures one host → client pair on any two backends.
async fn measure(host: &dyn Transport, client: &dyn Transport, args: &Args) -> Row {
    let service: Arc<Box<dyn OnionService>> = Arc::new(
        host.launch_service(ServiceConfig {
            nickname: "bench".into(),
            key: ServiceKey::Ephemeral,
            virtual_port: PORT,
            authorized_clients: None,
        })
        .await
        .unwrap(),
    );
    serve(service.clone());
    let started = Instant::now();
    let mut s = connect(client, service.as_ref().as_ref(), "ping").await;
    let first_connect = started.elapsed();

    s.write_all(b"P").await.unwrap();
    s.flush().await.unwrap();
    let ping = [0x5au8; PING];
    let mut back = [0u8; PING];
    let mut rtts = Vec::with_capacity(args.pings);
    for _ in 0..args.pings {
        let t = Instant::now();
        s.write_all(&ping).await.unwrap();
        s.flush().await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let pct = |p: usize| rtts[(rtts.len() * p / 100).min(rtts.len() - 1)];

    let mut t = connect(client, service.as_ref().as_ref(), "throughput").await;
    let total = args.mib * 1024 * 1024;
    let chunk = vec![0xa5u8; 64 * 1024];
    let started = Instant::now();
    t.write_all(b"T").await.unwrap();
    t.write_all(&(total as u64).to_be_bytes()).await.unwrap();
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        t.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    t.flush().await.unwrap();
    let mut ack = [0u8; 1];
    t.read_exact(&mut ack).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    service.shutdown().await.unwrap();
    Row {
        pair: String::new(),
        first_connect,
        median: pct(50),
        p90: pct(90),
        mbytes_per_s: total as f64 / secs / 1e6,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print(rows: &[Row], args: &Args) {
    let base = rows.iter().find(|r| r.pair == "ctor→ctor");
    println!();
    println!(
        "{:<12} {:>14} {:>16} {:>13} {:>18} {:>22}",
        "host→client",
        "first connect",
        format!("ping median ({})", args.pings),
        "ping p90",
        format!("throughput {} MiB", args.mib),
        "vs ctor→ctor (lat/thr)"
    );
    for r in rows {
        let ratio = match base {
            Some(b) => format!(
                "{:.2}× / {:.2}×",
                ms(r.median) / ms(b.median),
                r.mbytes_per_s / b.mbytes_per_s
            ),
            None => "-".into(),
        };
        println!(
            "{:<12} {:>12.2} s {:>13.1} ms {:>10.1} ms {:>13.2} MB/s {:>22}",
            r.pair,
            r.first_connect.as_secs_f64(),
            ms(r.median),
            ms(r.p90),
            r.mbytes_per_s,
            ratio
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let net = shared_network().await;
    let mut rows = Vec::new();
    for (h, c) in &args.pairs {
        let (host, client) = tokio::join!(start(*h, net), start(*c, net));
        let mut row = measure(host.as_ref(), client.as_ref(), &args).await;
        row.pair = format!("{}→{}", h.name(), c.name());
        eprintln!("measured {}", row.pair);
        rows.push(row);
        host.shutdown().await.unwrap();
        client.shutdown().await.unwrap();
    }
    print(&rows, &args);
}

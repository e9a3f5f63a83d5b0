//! Mailbox throughput and memory, as ratios against references measured in
//! the same run: deposits/s and fetches/s over loopback HTTP against a plain
//! axum echo endpoint taking the same request bodies on the same listener
//! setup, at 1 and 16 concurrent clients; and memory per stored blob against
//! the blob's own size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use nightjar_mailbox::client::{Client, SlotKey};
use nightjar_mailbox::wire::DepositBody;
use nightjar_mailbox::{Config, Mailbox, serve_mailbox};
use tokio::net::{TcpListener, TcpStream};

const DEPOSITS: usize = 4000;
const FETCHES: usize = 2000;
const STORED: usize = 50_000;

fn config() -> Config {
    let mut c = Config::default();
    c.max_blobs = 1_000_000;
    c.max_bytes = 1 << 30;
    c.max_request_nonces = 1_000_000;
    c.pow.min_difficulty = 4;
    c.pow.max_difficulty = 4;
    c
}

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/echo", post(|body: Bytes| async move { body }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn mailbox_server(mailbox: Mailbox) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_mailbox(listener, mailbox, std::future::pending()));
    addr
}

/// Sends `requests` split over `clients` connections; returns requests per second.
async fn run(addr: SocketAddr, requests: Vec<http::Request<Vec<u8>>>, clients: usize) -> f64 {
    let mut per_client: Vec<Vec<_>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, r) in requests.into_iter().enumerate() {
        per_client[i % clients].push(r);
    }
    let total: usize = per_client.iter().map(Vec::len).sum();
    let mut senders = Vec::new();
    for _ in 0..clients {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        senders.push(sender);
    }
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(per_client)
        .map(|(mut sender, reqs)| {
            tokio::spawn(async move {
                for req in reqs {
                    sender.ready().await.unwrap();
                    let resp = sender
                        .send_request(req.map(|b| Full::new(Bytes::from(b))))
                        .await
                        .unwrap();
                    assert!(resp.status().is_success(), "{}", resp.status());
                    resp.into_body().collect().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn echo_of(requests: &[http::Request<Vec<u8>>]) -> Vec<http::Request<Vec<u8>>> {
    requests
        .iter()
        .map(|r| {
            http::Request::post("/echo")
                .header("host", "bench")
                .body(r.body().clone())
                .unwrap()
        })
        .collect()
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn memory() {
    let mut c = config();
    c.pow.min_difficulty = 0;
    c.pow.max_difficulty = 0;
    let mailbox = Mailbox::new(c).unwrap();
    let info = mailbox.info();
    // Rotating slots mean one blob per slot: the costliest layout.
    let slots: Vec<_> = (0..STORED as u64)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            SlotKey::from_seed(&seed).slot()
        })
        .collect();
    let mut blob = vec![0u8; info.blob_size];
    let rss_before = rss_bytes();
    for (i, slot) in slots.iter().enumerate() {
        blob[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let body = DepositBody {
            slot: *slot,
            challenge: info.pow.challenge.0,
            nonce: [0; 16],
            blob: &blob,
        };
        mailbox.deposit(&body.to_bytes()).unwrap();
    }
    let rss_after = rss_bytes();
    let stats = mailbox.stats();
    let accounted = stats.bytes as f64 / stats.blobs as f64;
    println!(
        "memory, {} blobs of {} bytes in as many slots: accounted {:.0} bytes/blob ({:.2}x the blob)",
        stats.blobs,
        info.blob_size,
        accounted,
        accounted / info.blob_size as f64
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        let rss = a.abs_diff(b) as f64 / stats.blobs as f64;
        println!(
            "memory, RSS growth: {:.0} bytes/blob ({:.2}x the blob, {:.2}x the accounting)",
            rss,
            rss / info.blob_size as f64,
            rss / accounted
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let echo = echo_server().await;
        let mailbox = Mailbox::new(config()).unwrap();
        let addr = mailbox_server(mailbox.clone()).await;
        let client = Client::new("bench").unwrap();
        let info = mailbox.info();
        for clients in [1, 16] {
            // Work is solved before the clock starts: this measures the mailbox.
            let deposits: Vec<_> = (0..DEPOSITS)
                .map(|i| {
                    let slot = SlotKey::random().unwrap().slot();
                    let mut blob = vec![clients as u8; info.blob_size];
                    blob[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    client.deposit_request(&info, &slot, &blob, 1 << 20).unwrap()
                })
                .collect();
            let echo_reqs = echo_of(&deposits);
            let reference = run(echo, echo_reqs, clients).await;
            let measured = run(addr, deposits, clients).await;
            println!(
                "deposit, {clients:>2} client(s): {measured:>8.0}/s vs echo {reference:>8.0}/s: ratio {:.2}",
                measured / reference
            );

            let keys: Vec<_> = (0..FETCHES).map(|_| SlotKey::random().unwrap()).collect();
            for (i, k) in keys.iter().enumerate() {
                let mut blob = vec![0xf0; info.blob_size];
                blob[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let body = client.deposit_request(&info, &k.slot(), &blob, 1 << 20).unwrap();
                mailbox.deposit(body.body()).unwrap();
            }
            let now = mailbox.info().time;
            let fetches: Vec<_> = keys.iter().map(|k| client.fetch_request(&[k], now).unwrap()).collect();
            let echo_reqs = echo_of(&fetches);
            let reference = run(echo, echo_reqs, clients).await;
            let measured = run(addr, fetches, clients).await;
            println!(
                "fetch,   {clients:>2} client(s): {measured:>8.0}/s vs echo {reference:>8.0}/s: ratio {:.2}",
                measured / reference
            );
        }
    });
    memory();
}

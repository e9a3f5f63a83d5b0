//! Mailbox throughput and memory, as ratios against references measured in
//! the same run: deposits/s and fetches/s over loopback HTTP against a plain
//! axum echo endpoint taking the same request bodies on the same listener
//! setup, at 1 and 16 concurrent clients; and memory per stored blob against
//! the blob's own size.
//!
//! The same figures for kkv, a RAM-only mailbox server published as a crate,
//! run in this process on loopback with the same proof-of-work cost (both use
//! BLAKE3 and count leading zero bits, so the same bits mean the same expected
//! number of hashes), are printed beside ours as ratios nightjar/kkv. Memory
//! is measured in a fresh process for each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Instant;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use data_encoding::{HEXLOWER, HEXLOWER_PERMISSIVE};
use ed25519_dalek::{Signer, SigningKey};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use nightjar_mailbox::client::{Client, SlotKey};
use nightjar_mailbox::wire::DepositBody;
use nightjar_mailbox::{Config, Mailbox, serve_mailbox};
use tokio::net::{TcpListener, TcpStream};
use x25519_dalek::{X25519_BASEPOINT_BYTES, x25519};

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

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Splits `jobs` over `clients` connections, each working through its share in
/// order with `step`; returns the results and jobs per second. Connections are
/// opened before the clock starts.
async fn spread<J, R, F, Fut>(
    addr: SocketAddr,
    jobs: Vec<J>,
    clients: usize,
    step: F,
) -> (Vec<R>, f64)
where
    J: Send + 'static,
    R: Send + 'static,
    F: Fn(Sender, J) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = (Sender, R)> + Send,
{
    let mut per_client: Vec<Vec<J>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        per_client[i % clients].push(job);
    }
    let total: usize = per_client.iter().map(Vec::len).sum();
    let mut senders = Vec::new();
    for _ in 0..clients {
        senders.push(connect(addr).await);
    }
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(per_client)
        .map(|(mut sender, jobs)| {
            tokio::spawn(async move {
                let mut results = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let (s, r) = step(sender, job).await;
                    sender = s;
                    results.push(r);
                }
                results
            })
        })
        .collect();
    let mut results = Vec::with_capacity(total);
    for t in tasks {
        results.extend(t.await.unwrap());
    }
    (results, total as f64 / start.elapsed().as_secs_f64())
}

/// Sends one request; panics unless it succeeds. Returns the answer's body.
async fn send_ok(mut sender: Sender, req: http::Request<Vec<u8>>) -> (Sender, Bytes) {
    sender.ready().await.unwrap();
    let resp = sender
        .send_request(req.map(|b| Full::new(Bytes::from(b))))
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (sender, body)
}

/// Sends `requests` split over `clients` connections; returns requests per second.
async fn run(addr: SocketAddr, requests: Vec<http::Request<Vec<u8>>>, clients: usize) -> f64 {
    spread(addr, requests, clients, send_ok).await.1
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
        println!("{RSS_MARK}{rss}");
    }
}

// kkv: a RAM-only mailbox server published as a crate. Its `server` function
// is what its `kkv` binary runs (after asking for a password on the terminal);
// it binds 127.0.0.1 on a fixed port and serves until dropped. A deposit there
// takes three requests: `/pow` hands out a signed challenge, `/exchange_keys`
// takes the solved work and an X25519 key, `/msg` takes the message sealed
// with ChaCha20-Poly1305 and signed with Ed25519. Only its owner reads, with
// `/get_msg` and the password in `Authorization`, ten messages a page.

const KKV_PASSWORD: &str = "nightjar-bench";
/// Every kkv read verifies the password with Argon2, so fewer reads suffice.
const KKV_FETCHES: usize = 200;
/// Seconds a kkv challenge (and the key exchange after it) stays valid.
const KKV_EXPECTED_TIME: u64 = 3600;
const KKV_PAGE: usize = 10;

fn kkv_addr() -> SocketAddr {
    format!("127.0.0.1:{}", kkv::server::PORT).parse().unwrap()
}

/// The password hash kkv's binary would make: Argon2 with default parameters.
fn kkv_password_hash() -> String {
    let salt = SaltString::encode_b64(b"nightjar bench salt").unwrap();
    Argon2::default()
        .hash_password(KKV_PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// Starts kkv's server in this runtime; `None` if its fixed port is taken.
async fn kkv_server(cost: u32, max_messages: usize) -> Option<tokio::task::JoinHandle<()>> {
    std::net::TcpListener::bind(kkv_addr()).ok()?;
    let hash = kkv_password_hash();
    let handle = tokio::spawn(async move {
        let _ = kkv::server::server(max_messages, cost, KKV_EXPECTED_TIME, hash).await;
    });
    for _ in 0..250 {
        if handle.is_finished() {
            return None;
        }
        if TcpStream::connect(kkv_addr()).await.is_ok() {
            let get = http::Request::get("/get_domain_pk")
                .header("host", "bench")
                .body(Vec::new())
                .unwrap();
            let (_, key) = send_ok(connect(kkv_addr()).await, get).await;
            assert_eq!(key.len(), 64, "not kkv's answer");
            return Some(handle);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    handle.abort();
    None
}

fn kkv_form(path: &str, body: String) -> http::Request<Vec<u8>> {
    http::Request::post(path)
        .header("host", "bench")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", KKV_PASSWORD)
        .body(body.into_bytes())
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

fn unhex(text: &str) -> Vec<u8> {
    HEXLOWER_PERMISSIVE.decode(text.as_bytes()).unwrap()
}

/// Which deposit to prepare: a sender key and message per `(round, index)`.
#[derive(Clone, Copy)]
struct KkvJob {
    round: usize,
    index: usize,
    body_len: usize,
    cost: u32,
}

impl KkvJob {
    fn derive(&self, label: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(label.as_bytes());
        h.update(&(self.round as u64).to_le_bytes());
        h.update(&(self.index as u64).to_le_bytes());
        *h.finalize().as_bytes()
    }
}

/// A deposit whose work is solved; what is left is what kkv's client does
/// once the work is done: exchange keys, then send the sealed message.
struct KkvDeposit {
    key: SigningKey,
    dh_secret: [u8; 32],
    exchange: String,
    /// signature over the text ‖ the text, as kkv's client seals it
    sealed: Vec<u8>,
}

/// Fetches a challenge from `/pow` and solves it.
async fn kkv_prepare(sender: Sender, job: KkvJob) -> (Sender, KkvDeposit) {
    let key = SigningKey::from_bytes(&job.derive("kkv sender"));
    let public = hex(key.verifying_key().as_bytes());
    let (sender, body) = send_ok(sender, kkv_form("/pow", format!("bytes={public}"))).await;
    let pow: kkv::types::PoW = serde_json::from_slice(&body).unwrap();
    // challenge (32) ‖ cost (u32 LE) ‖ sender key (32) ‖ deadline (u64 LE)
    let challenge = unhex(&pow.get_bytes());
    assert_eq!(challenge.len(), 76, "kkv refused the challenge request");
    let cost = u32::from_le_bytes(challenge[32..36].try_into().unwrap());
    assert_eq!(cost, job.cost);
    let nonce = blake3_pow::search(&challenge[..32], cost).unwrap();
    let dh_secret = job.derive("kkv exchange");
    let dh_public = x25519(dh_secret, X25519_BASEPOINT_BYTES);
    let dh_signature = key.sign(&[&dh_public[..], &nonce[..]].concat());
    let exchange = format!(
        "ed25519_pubkey={public}&nonce={}&pow={}&pow_sig={}&diffie_hellman={}&diffie_hellman_sig={}",
        hex(&nonce),
        pow.get_bytes(),
        pow.get_signature(),
        hex(&dh_public),
        hex(&dh_signature.to_bytes()),
    );
    let mut text = format!("{:08}-{:08}-", job.round, job.index).into_bytes();
    text.resize(job.body_len, b'm');
    let mut sealed = key.sign(&text).to_bytes().to_vec();
    sealed.extend_from_slice(&text);
    let deposit = KkvDeposit {
        key,
        dh_secret,
        exchange,
        sealed,
    };
    (sender, deposit)
}

async fn kkv_deposit(sender: Sender, d: KkvDeposit) -> (Sender, ()) {
    let (sender, body) = send_ok(sender, kkv_form("/exchange_keys", d.exchange)).await;
    let answer: kkv::types::KeyExchange = serde_json::from_slice(&body).unwrap();
    // A refused exchange is answered 200 with empty fields.
    let server_dh: [u8; 32] = unhex(&answer.get_diffie_hellman())
        .try_into()
        .expect("kkv refused the key exchange");
    let shared = x25519(d.dh_secret, server_dh);
    let nonce: [u8; 12] = shared[..12].try_into().unwrap();
    let sealed = ChaCha20Poly1305::new(&shared.into())
        .encrypt(&nonce.into(), d.sealed.as_slice())
        .unwrap();
    let signature = d.key.sign(&sealed);
    let msg = format!(
        "pubkey={}&chiphertext={}&signature={}",
        hex(d.key.verifying_key().as_bytes()),
        hex(&sealed),
        hex(&signature.to_bytes())
    );
    let (sender, _) = send_ok(sender, kkv_form("/msg", msg)).await;
    (sender, ())
}

async fn kkv_store(sender: Sender, job: KkvJob) -> (Sender, ()) {
    let (sender, deposit) = kkv_prepare(sender, job).await;
    kkv_deposit(sender, deposit).await
}

/// Reads one page of ten messages; returns how many kkv says it holds.
async fn kkv_fetch(sender: Sender, page: usize) -> (Sender, usize) {
    let (sender, body) = send_ok(sender, kkv_form("/get_msg", format!("index={page}"))).await;
    let answer: kkv::types::DataCollection = serde_json::from_slice(&body).unwrap();
    // A refused read is answered 200 with nothing in it.
    assert_eq!(answer.get_items().len(), KKV_PAGE, "kkv refused the read");
    (sender, answer.get_size())
}

fn kkv_jobs(round: usize, count: usize, body_len: usize, cost: u32) -> Vec<KkvJob> {
    (0..count)
        .map(|index| KkvJob {
            round,
            index,
            body_len,
            cost,
        })
        .collect()
}

struct Rates {
    clients: usize,
    deposits: f64,
    fetches: f64,
}

/// kkv's deposits and reads per second at the same clients and work cost as
/// ours; `None` if its server could not be started.
async fn kkv_throughput(body_len: usize, cost: u32) -> Option<(Vec<Rates>, usize)> {
    let server = kkv_server(cost, 1_000_000).await?;
    let addr = kkv_addr();
    let mut rates = Vec::new();
    let mut held = 0;
    for (round, clients) in [1, 16].into_iter().enumerate() {
        // As for ours, work is solved before the clock starts; kkv's challenge
        // is per deposit, so fetching it is left out of the clock too.
        let jobs = kkv_jobs(round, DEPOSITS, body_len, cost);
        let (deposits, _) = spread(addr, jobs, 16, kkv_prepare).await;
        let (_, deposit_rate) = spread(addr, deposits, clients, kkv_deposit).await;
        held += DEPOSITS;
        let pages: Vec<_> = (0..KKV_FETCHES).map(|i| i % (held / KKV_PAGE)).collect();
        let (sizes, fetch_rate) = spread(addr, pages, clients, kkv_fetch).await;
        assert!(sizes.iter().all(|&n| n == held));
        rates.push(Rates {
            clients,
            deposits: deposit_rate,
            fetches: fetch_rate,
        });
    }
    server.abort();
    Some((rates, held))
}

/// Memory per stored message in a fresh kkv server: process RSS growth over
/// `STORED` messages of `blob_size` bytes of text, deposited over loopback.
fn kkv_memory() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let body_len = Config::default().blob_size;
    rt.block_on(async {
        let Some(server) = kkv_server(0, 2 * STORED).await else {
            println!("memory, kkv: not measured, port {} taken", kkv::server::PORT);
            return;
        };
        // Warm up connections, worker threads and their allocator arenas.
        spread(kkv_addr(), kkv_jobs(0, 2000, body_len, 0), 16, kkv_store).await;
        let before = rss_bytes();
        spread(kkv_addr(), kkv_jobs(1, STORED, body_len, 0), 16, kkv_store).await;
        let after = rss_bytes();
        server.abort();
        if let (Some(a), Some(b)) = (before, after) {
            let rss = a.abs_diff(b) as f64 / STORED as f64;
            println!(
                "memory, kkv, {STORED} messages of {body_len} bytes: RSS growth {rss:.0} bytes/message ({:.2}x the message)",
                rss / body_len as f64
            );
            println!("{RSS_MARK}{rss}");
        }
    });
}

/// Runs one memory measurement in a fresh process, so that memory freed by
/// the throughput runs cannot hide growth; echoes its report and returns its
/// RSS growth per stored item.
fn memory_in_child(which: &str) -> Option<f64> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(MEMORY_ENV, which)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "memory run for {which} failed");
    let mut rss = None;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        match line.strip_prefix(RSS_MARK) {
            Some(v) => rss = v.parse().ok(),
            None => println!("{line}"),
        }
    }
    rss
}

const MEMORY_ENV: &str = "NIGHTJAR_MAILBOX_BENCH_MEMORY";
const RSS_MARK: &str = "rss-per-item ";

fn main() {
    match std::env::var(MEMORY_ENV).as_deref() {
        Ok("nightjar") => return memory(),
        Ok("kkv") => return kkv_memory(),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ours, kkv) = rt.block_on(async {
        let echo = echo_server().await;
        let mailbox = Mailbox::new(config()).unwrap();
        let addr = mailbox_server(mailbox.clone()).await;
        let client = Client::new("bench").unwrap();
        let info = mailbox.info();
        let mut ours = Vec::new();
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
            let deposit_rate = run(addr, deposits, clients).await;
            println!(
                "deposit, {clients:>2} client(s): {deposit_rate:>8.0}/s vs echo {reference:>8.0}/s: ratio {:.2}",
                deposit_rate / reference
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
            let fetch_rate = run(addr, fetches, clients).await;
            println!(
                "fetch,   {clients:>2} client(s): {fetch_rate:>8.0}/s vs echo {reference:>8.0}/s: ratio {:.2}",
                fetch_rate / reference
            );
            ours.push(Rates {
                clients,
                deposits: deposit_rate,
                fetches: fetch_rate,
            });
        }
        let kkv = kkv_throughput(info.blob_size, u32::from(info.pow.difficulty)).await;
        (ours, kkv)
    });
    // Ends kkv's connections and frees its port for the memory run.
    drop(rt);
    compare_throughput(&ours, kkv);
    let ours = memory_in_child("nightjar");
    let kkv = memory_in_child("kkv");
    if let (Some(ours), Some(kkv)) = (ours, kkv) {
        println!(
            "memory, RSS per stored item: nightjar {ours:.0} bytes, kkv {kkv:.0} bytes: nightjar/kkv {:.2}",
            ours / kkv
        );
    }
}

fn compare_throughput(ours: &[Rates], kkv: Option<(Vec<Rates>, usize)>) {
    let Some((kkv, held)) = kkv else {
        println!("kkv: not measured, port {} taken", kkv::server::PORT);
        return;
    };
    println!(
        "kkv: same work (BLAKE3, {} leading zero bits); a kkv deposit is /exchange_keys + /msg, a kkv fetch one /get_msg page of {KKV_PAGE} ({held} held at the end)",
        config().pow.min_difficulty
    );
    for (o, k) in ours.iter().zip(&kkv) {
        let clients = o.clients;
        assert_eq!(clients, k.clients);
        println!(
            "deposit, {clients:>2} client(s): nightjar {:>8.0}/s vs kkv {:>8.0}/s: nightjar/kkv {:.2}",
            o.deposits,
            k.deposits,
            o.deposits / k.deposits
        );
        println!(
            "fetch,   {clients:>2} client(s): nightjar {:>8.0}/s vs kkv {:>8.0}/s: nightjar/kkv {:.2}",
            o.fetches,
            k.fetches,
            o.fetches / k.fetches
        );
    }
}

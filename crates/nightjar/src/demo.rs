//! `nightjar demo`: two people talk over a private Tor network on this machine.
//!
//! It shows what exists end to end: a private Tor network on loopback, both Tor
//! backends, an onion service, a contact address, the hybrid handshake over a Tor
//! stream, and ratchet-encrypted messages in fixed-size cells.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use nightjar_proto::address::ContactAddress;
use nightjar_proto::cell::CELL_SIZE;
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::message::{Message, MessageId};
use nightjar_tor::testnet::{TestNetwork, TestNetworkOptions};
use nightjar_tor::{
    Backend, ConnectOptions, IsolationKey, OnionAddress, ServiceConfig, ServiceKey, Transport,
};
use rand_core::Rng as _;
use tokio::sync::watch;

use nightjar_node::link::{Link, os_rng};

/// Options of `nightjar demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Tor backend for Alice, who dials: `ctor` (the system's tor) or `arti`
    /// (embedded).
    #[arg(long, default_value = "ctor")]
    alice: Backend,
    /// Tor backend for Bob, who hosts the onion service.
    #[arg(long, default_value = "arti")]
    bob: Backend,
    /// Join the private network already running in this directory (from `nightjar
    /// testnet up`) instead of starting one.
    #[arg(long, value_name = "DIR", env = "NIGHTJAR_TESTNET")]
    testnet: Option<std::path::PathBuf>,
}

const PORT: u16 = 7000;
/// How long Alice may take to reach Bob and finish the handshake.
const DIAL_LIMIT: Duration = Duration::from_secs(180);
const PROLOGUE: &[u8] = b"nightjar/v1/link demo";

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    println!("nightjar demo: Alice and Bob talk over a private Tor network on this machine.\n");

    step(1, "A private Tor network on loopback");
    let started = Instant::now();
    let net = match &args.testnet {
        Some(dir) => {
            let net = TestNetwork::attach(dir)?;
            detail(format!("joined the network running in {}", dir.display()));
            net
        }
        None => {
            detail("starting 3 directory authorities and 5 relays, all on 127.0.0.1 ...");
            let net = TestNetwork::start(TestNetworkOptions::default()).await?;
            detail(format!(
                "a consensus lists all {} tors after {:.1} s",
                net.description().node_count(),
                started.elapsed().as_secs_f64()
            ));
            net
        }
    };

    step(2, "Alice and Bob each start Tor");
    let (alice_tor, bob_tor) = tokio::try_join!(
        start_tor("Alice", args.alice, &net),
        start_tor("Bob  ", args.bob, &net)
    )?;

    step(
        3,
        "Bob opens an onion service and shares his contact address",
    );
    let bob = IdentityKeyPair::generate(&mut os_rng());
    let service = bob_tor
        .launch_service(ServiceConfig {
            nickname: "demo-bob".into(),
            key: ServiceKey::Ephemeral,
            virtual_port: PORT,
            authorized_clients: None,
        })
        .await
        .context("Bob's onion service did not start")?;
    let address = ContactAddress {
        request_onion: service.address(),
        identity: *bob.public().signing_key(),
        mailbox: None,
        suggested_name: None,
    };
    detail(format!("address:     {address}"));
    detail(format!("fingerprint: {}", bob.public().fingerprint()));

    step(4, "Alice adds Bob from that text and dials him through Tor");
    let alice = IdentityKeyPair::generate(&mut os_rng());
    let parsed: ContactAddress = address.to_string().parse()?;
    let mut bob_side = tokio::spawn(async move {
        // A stream that fails its handshake (an abandoned attempt, a prober) is
        // dropped; Bob keeps listening.
        loop {
            let stream = service
                .accept()
                .await
                .context("Bob's service stopped accepting")?;
            match Link::answer(stream, &bob, PROLOGUE).await {
                Ok(link) => break anyhow::Ok((link, service)),
                Err(e) => tracing::debug!("dropped an incoming stream: {e:#}"),
            }
        }
    });
    let dialled = Instant::now();
    let alice_side = async {
        let stream = connect_with_retry(alice_tor.as_ref(), &parsed.request_onion).await?;
        detail(format!(
            "stream open after {:.1} s (3 hops each way, rendezvous in the middle)",
            dialled.elapsed().as_secs_f64()
        ));
        anyhow::Ok(Link::dial(stream, &alice, &parsed.identity, PROLOGUE).await?)
    };
    // Whichever side fails first ends the demo with its reason.
    let (mut alice_link, (mut bob_link, service)) = tokio::time::timeout(DIAL_LIMIT, async {
        tokio::select! {
            alice = alice_side => {
                let alice = alice?;
                anyhow::Ok((alice, (&mut bob_side).await??))
            }
            bob = &mut bob_side => {
                bob??;
                anyhow::bail!("Bob's side finished before Alice's")
            }
        }
    })
    .await
    .context("Alice could not reach Bob within the time limit")??;
    detail("handshake: 3 × X25519 + ML-KEM-768 (post-quantum hybrid), keys confirmed");
    detail(format!(
        "Alice checked Bob's proof:  {}",
        alice_link.peer().fingerprint()
    ));
    detail(format!(
        "Bob learned Alice's identity: {}",
        bob_link.peer().fingerprint()
    ));

    step(
        5,
        "They talk; an observer of the stream sees only whole 498-byte cells",
    );
    let long = "All work and no play makes Jack a dull boy. ".repeat(30);
    let script = [
        (
            true,
            "Hi Bob! It's Alice. Is this really going through Tor?".to_owned(),
        ),
        (
            false,
            "It is: three relays on your side, three on mine.".to_owned(),
        ),
        (true, long),
        (false, "Got all of it. Bye for now!".to_owned()),
    ];
    for (n, (from_alice, text)) in script.into_iter().enumerate() {
        let mut id = [0u8; 16];
        os_rng().fill_bytes(&mut id);
        let message = Message::Text {
            id: MessageId(id),
            sent_at_ms: 0,
            body: text.clone(),
        };
        let (sender, receiver) = if from_alice {
            (&mut alice_link, &mut bob_link)
        } else {
            (&mut bob_link, &mut alice_link)
        };
        let cells = sender.send(&message).await?;
        let received = receiver.recv().await?.context("stream closed")?;
        anyhow::ensure!(received == message, "message {n} arrived altered");
        let arrow = if from_alice {
            "Alice → Bob "
        } else {
            "Bob → Alice "
        };
        let shown = if text.len() > 60 {
            format!("({} characters of text)", text.len())
        } else {
            format!("\"{text}\"")
        };
        detail(format!(
            "{arrow} {shown:<62} {cells} cell{} ({} bytes)",
            if cells == 1 { "" } else { "s" },
            cells * CELL_SIZE
        ));
    }

    step(6, "Alice says goodbye; both shut down");
    alice_link.send(&Message::Quit).await?;
    let goodbye = bob_link.recv().await?;
    detail(match goodbye {
        Some(Message::Quit) => "Bob's side saw Alice leave",
        _ => "Bob's side saw the stream end",
    });
    let stats = alice_link.stats();
    detail(format!(
        "on the wire, Alice sent {} cells and received {}: every one {} bytes",
        stats.cells_sent, stats.cells_received, CELL_SIZE
    ));
    alice_link.close().await?;
    // Streams keep their Tor client alive: let them go before shutting down.
    drop(bob_link);
    service.shutdown().await?;
    alice_tor.shutdown().await?;
    bob_tor.shutdown().await?;
    drop(net);
    println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
    Ok(())
}

async fn start_tor(who: &str, kind: Backend, net: &TestNetwork) -> Result<Arc<dyn Transport>> {
    let started = Instant::now();
    let tor = kind
        .launch_on_testnet(net.description(), "tor".into())
        .await
        .with_context(|| format!("{} could not start Tor", who.trim()))?;
    follow_bootstrap(who, kind, tor.bootstrap_status()).await;
    detail(format!(
        "{who} ({}) joined the network in {:.1} s",
        kind.describe(),
        started.elapsed().as_secs_f64()
    ));
    Ok(tor)
}

/// Waits for bootstrap to finish; progress goes to the log at debug level.
async fn follow_bootstrap(
    who: &str,
    kind: Backend,
    mut status: watch::Receiver<nightjar_tor::BootstrapStatus>,
) {
    loop {
        let now = status.borrow_and_update().clone();
        tracing::debug!(who, ?kind, percent = now.percent, summary = %now.summary, "bootstrap");
        if now.is_ready() || status.changed().await.is_err() {
            return;
        }
    }
}

/// A fresh service needs a few seconds before its descriptor can be fetched.
async fn connect_with_retry(
    tor: &dyn Transport,
    onion: &OnionAddress,
) -> Result<nightjar_tor::BoxStream> {
    let options = ConnectOptions {
        isolation: IsolationKey("demo-bob".into()),
        client_auth: None,
    };
    let mut last = None;
    for attempt in 0..20 {
        match tor.connect(onion, PORT, &options).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                tracing::debug!(attempt, "connect failed: {e}");
                last = Some(e);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no attempt made"), anyhow::Error::from))
        .context("could not reach Bob's onion service")
}

fn step(n: u32, title: &str) {
    println!("[{n}/6] {title}");
}

fn detail(text: impl AsRef<str>) {
    println!("      {}", text.as_ref());
    let _ = std::io::stdout().flush();
}

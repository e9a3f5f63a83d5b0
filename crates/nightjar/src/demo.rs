//! `nightjar demo`: two people become contacts and talk over a private Tor
//! network on this machine.
//!
//! Everything runs through the same node engine the CLI and the daemon use: two
//! ephemeral profiles, each with its request onion and its private endpoint, a
//! contact request and its acceptance, messages with delivery receipts, key
//! verification, authentication with a shared secret, a contact made from an
//! invite code (through a nightjar mailbox server on its own onion), presence, and
//! a goodbye.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use nightjar_node::{AuthOutcome, Event, Level, Node, NodeConfig, Rendezvous};
use nightjar_store::Store;
use nightjar_tor::forward::Forward;
use nightjar_tor::tap::TapTransport;
use nightjar_tor::testnet::{TestNetwork, TestNetworkOptions};
use nightjar_tor::{Backend, ServiceConfig, ServiceKey, Transport};
use tokio::sync::{broadcast, watch};

/// Options of `nightjar demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Tor backend for Alice: `ctor` (the system's tor) or `arti` (embedded).
    #[arg(long, default_value = "ctor")]
    alice: Backend,
    /// Tor backend for Bob.
    #[arg(long, default_value = "arti")]
    bob: Backend,
    /// Join the private network already running in this directory (from `nightjar
    /// testnet up`) instead of starting one.
    #[arg(long, value_name = "DIR", env = "NIGHTJAR_TESTNET")]
    testnet: Option<std::path::PathBuf>,
    /// Record the size and time of every write and read on Alice's and Bob's
    /// Tor streams (never their contents) and write them to FILE as JSON lines,
    /// for measuring what an observer of each side sees.
    #[arg(long, value_name = "FILE", hide = true)]
    wire_log: Option<std::path::PathBuf>,
}

const STEPS: u32 = 10;
/// How long any one step may wait for the network (a young private network can
/// take a minute or two to make new onion services reachable).
const STEP_LIMIT: Duration = Duration::from_secs(300);
/// The demo starts only with this long left in the network's onion-service
/// period (it takes about one to three minutes).
const QUIET_BEFORE_TURN: Duration = Duration::from_secs(300);
/// After a turn, time for services to publish for the new period.
const SETTLE_AFTER_TURN: Duration = Duration::from_secs(30);

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    println!("nightjar demo: Alice and Bob become contacts and talk over a private Tor network.\n");

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

    // On a private network the onion-service period turns every few minutes,
    // and services are hard to reach for a while around the turn: start
    // right after one rather than just before.
    let left = net
        .description()
        .until_period_turn(std::time::SystemTime::now());
    if left < QUIET_BEFORE_TURN {
        let wait = left + SETTLE_AFTER_TURN;
        detail(format!(
            "waiting {} s for the network's onion-service period to turn (here every {} minutes; \
             once a day on the public network)",
            wait.as_secs(),
            net.description().hsdir_interval_secs / 60
        ));
        tokio::time::sleep(wait).await;
    }

    step(
        2,
        "Alice and Bob each start Tor and a profile (Alice's ephemeral, Bob's on disk)",
    );
    let (alice_tor, bob_tor) = tokio::try_join!(
        start_tor("Alice", args.alice, &net),
        start_tor("Bob  ", args.bob, &net)
    )?;
    let mut wire_logs = Vec::new();
    let (alice_tor, bob_tor) = if args.wire_log.is_some() {
        let (alice_tapped, alice_log) = TapTransport::wrap(alice_tor);
        let (bob_tapped, bob_log) = TapTransport::wrap(bob_tor);
        wire_logs.push(("alice", alice_log));
        wire_logs.push(("bob", bob_log));
        (alice_tapped, bob_tapped)
    } else {
        (alice_tor, bob_tor)
    };
    let (mailbox, rendezvous) = start_mailbox(alice_tor.as_ref()).await?;
    let (alice, mut alice_events) = start_node(alice_tor.clone(), &rendezvous, None).await?;
    // Bob's profile is kept (in a temporary directory) so that he can come back.
    let bob_home = tempfile::tempdir()?;
    let bob_store = Store::create(
        bob_home.path(),
        BOB_PASSPHRASE,
        nightjar_store::KdfParams::DEFAULT,
        &nightjar_node::new_profile(),
    )?;
    let (bob, mut bob_events) = start_node(bob_tor.clone(), &rendezvous, Some(bob_store)).await?;
    detail("each profile: an identity key, a public request onion, and a private endpoint");
    detail("onion that only accepted contacts can even see (v3 client authorization)");
    detail("and a nightjar mailbox server (RAM only) on its own onion, where invite codes meet");

    step(3, "Bob shares his address; Alice sends a contact request");
    let bob_info = bob.info().await?;
    detail(format!("Bob's address:     {}", bob_info.address));
    detail(format!("Bob's fingerprint: {}", bob_info.fingerprint));
    let asked = Instant::now();
    alice
        .send_request(
            &bob_info.address,
            "bob",
            "Hi Bob, it's Alice from the book club.",
        )
        .await?;
    let request = wait_for(
        &mut bob_events,
        "Alice's request to reach Bob",
        |e| match e {
            Event::RequestReceived { request } => Some(request.clone()),
            _ => None,
        },
    )
    .await?;
    detail(format!(
        "Bob got request #{} after {:.1} s: \"{}\"",
        request.id,
        asked.elapsed().as_secs_f64(),
        request.greeting
    ));
    detail(format!("  from fingerprint {}", request.fingerprint));

    step(
        4,
        "Bob accepts; each side authorises the other on its private endpoint",
    );
    let accepted = Instant::now();
    bob.accept_request(request.id, "alice").await?;
    wait_for(&mut alice_events, "Bob's acceptance to reach Alice", |e| {
        matches!(e, Event::ContactAdded { .. }).then_some(())
    })
    .await?;
    wait_for(&mut bob_events, "Alice's confirmation to reach Bob", |e| {
        matches!(e, Event::ContactAdded { .. }).then_some(())
    })
    .await?;
    detail(format!(
        "contacts on both sides after {:.1} s (Bob dialled Alice's private endpoint)",
        accepted.elapsed().as_secs_f64()
    ));

    step(5, "They talk; every message is confirmed by a receipt");
    let long = "All work and no play makes Jack a dull boy. ".repeat(30);
    let script: [(bool, &str); 4] = [
        (true, "Hi Bob! Is this really going through Tor?"),
        (
            false,
            "It is: onion services on both ends, no server in between.",
        ),
        (true, &long),
        (false, "Got all of it. Let me check your key."),
    ];
    for (from_alice, text) in script {
        let (sender, sender_events, receiver_events, to) = if from_alice {
            (&alice, &mut alice_events, &mut bob_events, "bob")
        } else {
            (&bob, &mut bob_events, &mut alice_events, "alice")
        };
        let sent_at = Instant::now();
        let message = sender.send_message(to, text).await?;
        wait_for(receiver_events, "a message to arrive", |e| match e {
            Event::MessageReceived { message: m } if m.id == message.id => Some(()),
            _ => None,
        })
        .await?;
        let arrived = sent_at.elapsed();
        wait_for(sender_events, "a delivery receipt", |e| match e {
            Event::MessageState { id, state, .. }
                if *id == message.id && *state == nightjar_node::MessageState::Delivered =>
            {
                Some(())
            }
            _ => None,
        })
        .await?;
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
            "{arrow} {shown:<62} arrived {:>4} ms, receipt back {:>4} ms",
            arrived.as_millis(),
            sent_at.elapsed().as_millis()
        ));
    }

    step(6, "Alice verifies Bob's key, read to her over the phone");
    let wrong = alice.info().await?.fingerprint;
    match alice.verify("bob", &wrong).await {
        Err(e) => detail(format!("a wrong fingerprint is refused: {e}")),
        Ok(_) => anyhow::bail!("a wrong fingerprint was accepted"),
    }
    let verified = alice.verify("bob", &bob_info.fingerprint).await?;
    anyhow::ensure!(
        verified.level == Level::Verified,
        "verification did not stick"
    );
    detail("the right one marks Bob as verified (shown in green), for good");

    step(
        7,
        "They authenticate with a secret they share (SMP): first a wrong answer",
    );
    let question = "Where did we meet?";
    for (bobs_answer, expected) in [
        ("the library", AuthOutcome::Failed),
        ("the book club", AuthOutcome::Succeeded),
    ] {
        let run_started = Instant::now();
        alice
            .authenticate("bob", "the book club", Some(question))
            .await?;
        let asked = wait_for(&mut bob_events, "Alice's question", |e| match e {
            Event::AuthRequested { question, .. } => Some(question.clone()),
            _ => None,
        })
        .await?;
        detail(format!(
            "Bob is asked \"{}\" and answers \"{bobs_answer}\"",
            asked.unwrap_or_default()
        ));
        bob.answer_auth("alice", bobs_answer).await?;
        let outcome = |e: &Event| match e {
            Event::AuthResult { outcome, .. } => Some(*outcome),
            _ => None,
        };
        let alice_saw = wait_for(&mut alice_events, "the result for Alice", outcome).await?;
        let bob_saw = wait_for(&mut bob_events, "the result for Bob", outcome).await?;
        anyhow::ensure!(
            alice_saw == expected && bob_saw == expected,
            "authentication ended {alice_saw:?} / {bob_saw:?}, not {expected:?}"
        );
        let level = alice.contact("bob").await?.level;
        detail(format!(
            "both sides learn: {} after {:.1} s; for Alice, Bob is now {}",
            match expected {
                AuthOutcome::Succeeded => "the secrets match",
                _ => "the secrets differ (and nothing more)",
            },
            run_started.elapsed().as_secs_f64(),
            match level {
                Level::Authenticated => "authenticated (cyan) until one of them disconnects",
                Level::Verified => "still only verified (green)",
                Level::Unverified => "unverified (red)",
            }
        ));
    }

    step(
        8,
        "Alice invites Carol with a code read over the phone; Carol wants a secret first",
    );
    let (carol, mut carol_events) = start_node(bob_tor.clone(), &rendezvous, None).await?;
    let invited = Instant::now();
    let invite = alice.create_invite("carol", false).await?;
    detail(format!(
        "Alice reads out \"{}\"; Carol types it, asking for authentication first",
        invite.code
    ));
    let alice_seen = carol.join_invite(&invite.code, "alice", true).await?;
    wait_for(&mut alice_events, "the invite to complete", |e| {
        matches!(e, Event::InviteCompleted { .. }).then_some(())
    })
    .await?;
    detail(format!(
        "contacts on both sides after {:.1} s, already verified (the code proved who is who): {:?}",
        invited.elapsed().as_secs_f64(),
        alice_seen.level
    ));
    let early = carol.send_message("alice", "Hi Alice, Carol here.").await?;
    for events in [&mut carol_events, &mut alice_events] {
        wait_for(events, "the link between Alice and Carol", |e| {
            matches!(e, Event::AuthRequired { .. }).then_some(())
        })
        .await?;
    }
    detail("Carol's first message waits: no message goes before the secret is checked");
    let (a, c) = tokio::join!(
        alice.authenticate("carol", "the blue door", None),
        carol.authenticate("alice", "the blue door", None),
    );
    a?;
    c?;
    let outcome = wait_for(&mut carol_events, "the authentication", |e| match e {
        Event::AuthResult { outcome, .. } => Some(*outcome),
        _ => None,
    })
    .await?;
    anyhow::ensure!(
        outcome == AuthOutcome::Succeeded,
        "Carol's authentication ended {outcome:?}"
    );
    let arrived = wait_for(&mut alice_events, "Carol's message", |e| match e {
        Event::MessageReceived { message } if message.id == early.id => Some(message.body.clone()),
        _ => None,
    })
    .await?;
    detail(format!(
        "both typed the same secret: authenticated; then Alice got \"{arrived}\""
    ));
    carol.shutdown().await?;

    step(
        9,
        "Bob names the mailbox for messages sent while he is away, shares his presence, leaves",
    );
    bob.add_mailbox(&mailbox.address().to_string()).await?;
    detail("Bob's contacts learn it over their link, with a fresh chain of slot keys for each");
    bob.set_presence("alice", true).await?;
    let presence = |e: &Event| match e {
        Event::Presence { presence, .. } => Some(*presence),
        _ => None,
    };
    let now = wait_for(&mut alice_events, "Bob's presence", presence).await?;
    detail(format!("Alice sees Bob: {now:?}"));
    bob.shutdown().await?;
    let now = wait_for(&mut alice_events, "Bob's goodbye", presence).await?;
    detail(format!("Bob quit; Alice sees Bob: {now:?}"));
    bob_tor.shutdown().await?;

    step(
        10,
        "While Bob is away, Alice's messages wait in his mailbox; he gets them on return",
    );
    let away = [
        "Bob, are you there?",
        "The meeting moved to Thursday.",
        "Bring the blue folder.",
    ];
    let left = Instant::now();
    let mut ids = Vec::new();
    for text in away {
        ids.push(alice.send_message("bob", text).await?.id);
    }
    for id in &ids {
        wait_for(
            &mut alice_events,
            "a deposit in Bob's mailbox",
            |e| match e {
                Event::MessageState { id: got, state, .. }
                    if got == id && *state == nightjar_node::MessageState::Deposited =>
                {
                    Some(())
                }
                _ => None,
            },
        )
        .await?;
    }
    detail(format!(
        "Bob's onion is gone: after {:.1} s each message is a 498-byte blob in his mailbox,",
        left.elapsed().as_secs_f64()
    ));
    detail("under a slot id only Bob can derive; the mailbox cannot tell whose they are");
    alice.shutdown().await?;
    detail("Alice closes nightjar too; Bob comes back later on a new Tor client");
    let bob_tor = start_tor("Bob  ", args.bob, &net).await?;
    let back = Instant::now();
    let bob_store = Store::open(bob_home.path(), BOB_PASSPHRASE)?;
    let (bob, mut bob_events) = start_node(bob_tor.clone(), &rendezvous, Some(bob_store)).await?;
    for text in away {
        let message = wait_for(&mut bob_events, "a message from the mailbox", |e| match e {
            Event::MessageReceived { message } => Some(message.clone()),
            _ => None,
        })
        .await?;
        anyhow::ensure!(
            message.body == text,
            "expected \"{text}\" next, got \"{}\"",
            message.body
        );
        detail(format!(
            "Bob ← Alice  \"{}\"{} after {:.1} s",
            message.body,
            if message.via_mailbox {
                " (via mailbox)"
            } else {
                ""
            },
            back.elapsed().as_secs_f64()
        ));
    }
    detail("in order, each once; Alice's node will resend until Bob's receipts reach it,");
    detail("and Bob's drops the copies it already has");
    bob.shutdown().await?;
    mailbox.shutdown().await?;
    alice_tor.shutdown().await?;
    bob_tor.shutdown().await?;
    drop(net);
    if let Some(path) = &args.wire_log {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("could not create {}", path.display()))?,
        );
        for (who, log) in &wire_logs {
            log.write_jsonl(who, &mut out)?;
        }
        out.flush()?;
    }
    println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// A mailbox server on loopback, published as an onion: where invite codes meet.
async fn start_mailbox(tor: &dyn Transport) -> Result<(Forward, Rendezvous)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(nightjar_mailbox::serve(
        listener,
        nightjar_mailbox::Config::default(),
        std::future::pending(),
    ));
    let config = ServiceConfig {
        nickname: "mailbox".into(),
        key: ServiceKey::Ephemeral,
        virtual_port: 80,
        authorized_clients: None,
    };
    let forward = Forward::start(tor, config, addr).await?;
    let rendezvous = format!("ws://{}/v1", forward.address()).parse()?;
    Ok((forward, rendezvous))
}

/// The passphrase of Bob's profile (a throwaway, in a temporary directory).
const BOB_PASSPHRASE: &str = "nightjar demo";

/// Starts a node on `store`, or on a new ephemeral profile.
async fn start_node(
    tor: Arc<dyn Transport>,
    rendezvous: &Rendezvous,
    store: Option<Store>,
) -> Result<(Node, broadcast::Receiver<Event>)> {
    let ephemeral = store.is_none();
    let store = match store {
        Some(store) => store,
        None => Store::in_memory(&nightjar_node::new_profile())?,
    };
    let node = nightjar_node::start(NodeConfig {
        store,
        transport: tor,
        ephemeral,
        rendezvous: rendezvous.clone(),
        // A demo does not wait ten minutes: the mailbox is visited often, and a
        // message goes to it after a few seconds without a link.
        offline: nightjar_node::OfflineConfig {
            drain_every: Duration::from_secs(5),
            check_every: Duration::from_secs(5),
            deposit_after: Duration::from_secs(5),
            mailbox_cover: None,
        },
        files: nightjar_node::FilesConfig::default(),
        // What everyone gets: cover at the default level.
        shaping: nightjar_node::ShapingConfig::default(),
    })
    .await?;
    let events = node.subscribe();
    Ok((node, events))
}

/// Waits for the first event `pick` accepts; warnings are shown on the way.
async fn wait_for<T>(
    events: &mut broadcast::Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Result<T> {
    tokio::time::timeout(STEP_LIMIT, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return Ok(found);
                    }
                    if let Event::Warning { text } = &event {
                        detail(format!("warning: {text}"));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    anyhow::bail!("a node stopped while waiting for {what}")
                }
            }
        }
    })
    .await
    .with_context(|| format!("gave up waiting for {what}"))?
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

fn step(n: u32, title: &str) {
    println!("[{n}/{STEPS}] {title}");
}

fn detail(text: impl AsRef<str>) {
    println!("      {}", text.as_ref());
    let _ = std::io::stdout().flush();
}

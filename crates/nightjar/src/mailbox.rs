//! `nightjar mailbox`: a mailbox server anyone can run for their friends, RAM only.
//!
//! It keeps fixed-size encrypted blobs for people who are offline (`/v2`, with proof
//! of work per deposit and signed requests to read them) and is a magic-wormhole
//! rendezvous server (`/v1`) where invite codes meet. By default it starts Tor and
//! publishes itself as an onion service with a new address; `--listen` serves on a
//! loopback address only (for tests, or behind a tor you configure yourself).

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use nightjar_tor::forward::Forward;
use nightjar_tor::{ServiceConfig, ServiceKey, ServiceStatus};

use crate::startup::{self, TorArgs, TorState};

/// Options of `nightjar mailbox`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: `onion: ADDRESS.onion` and `rendezvous: ws://ADDRESS.onion/v1` on stdout once \
the onion is published (with --listen: `listening: ADDR`; publish that yourself as an \
onion service and use ws://YOUR.onion/v1). Give the rendezvous URL to your friends' nightjar (--rendezvous, or \
NIGHTJAR_RENDEZVOUS) so invite codes meet here. Everything is kept in memory only and \
is gone when the server stops (Ctrl-C or SIGTERM).")]
pub struct MailboxArgs {
    /// Serve on this loopback address (e.g. 127.0.0.1:8080) without publishing an
    /// onion service.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    tor: TorArgs,
}

/// The port the onion service answers on.
const ONION_PORT: u16 = 80;

/// Runs the server until `stop` resolves.
pub async fn run(args: MailboxArgs, stop: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let config = nightjar_mailbox::Config::default();
    if let Some(addr) = args.listen {
        if !addr.ip().is_loopback() {
            bail!("--listen takes a loopback address (such as 127.0.0.1:8080), not {addr}");
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        println!("listening: {addr}");
        return nightjar_mailbox::serve(listener, config, stop)
            .await
            .context("the mailbox server failed");
    }

    // The stop signal is wanted twice: by the server, and while waiting for the
    // onion to be published.
    let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stopped_tx.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let local = listener.local_addr()?;
    let tor = startup::start_tor(&args.tor, TorState::Scratch).await?;
    let service = ServiceConfig {
        nickname: "mailbox".into(),
        key: ServiceKey::Ephemeral,
        virtual_port: ONION_PORT,
        authorized_clients: None,
    };
    let forward = match Forward::start(tor.transport.as_ref(), service, local).await {
        Ok(forward) => forward,
        Err(e) => {
            tor.shutdown().await.ok();
            return Err(e.into());
        }
    };
    let served = tokio::spawn(nightjar_mailbox::serve(
        listener,
        config,
        until_stopped(stopped.clone()),
    ));
    eprintln!("nightjar: publishing the mailbox's onion service…");
    let published = tokio::select! {
        published = published(&forward) => published,
        () = until_stopped(stopped.clone()) => Ok(false),
    };
    if let Ok(true) = published {
        let onion = forward.address();
        println!("onion: {onion}");
        println!("rendezvous: ws://{onion}/v1");
    }
    let result = match published {
        Ok(_) => served
            .await
            .context("the mailbox server stopped unexpectedly")
            .and_then(|r| r.context("the mailbox server failed")),
        Err(e) => {
            served.abort();
            Err(e)
        }
    };
    forward.shutdown().await.ok();
    tor.shutdown().await?;
    result
}

/// Waits until the onion's descriptor is uploaded (true), or fails.
async fn published(forward: &Forward) -> Result<bool> {
    let mut status = forward.service().status();
    loop {
        match status.borrow_and_update().clone() {
            ServiceStatus::Published => return Ok(true),
            ServiceStatus::Broken(why) => bail!("the onion service failed: {why}"),
            ServiceStatus::Stopped => bail!("the onion service stopped"),
            _ => {}
        }
        if status.changed().await.is_err() {
            bail!("Tor stopped before the onion service was published");
        }
    }
}

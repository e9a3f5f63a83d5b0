//! Invite codes for a chat: the connection string travels through a
//! magic-wormhole channel opened by a short code, through a rendezvous server
//! reached over Tor.
//!
//! The inviting side allocates the code and, once the other side has typed it,
//! sends the connection string as the wormhole's one message; the joining side
//! receives it and both close the wormhole. A wrong code fails the key
//! confirmation on both sides, so neither learns anything and both give up.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use nightjar_node::Rendezvous;
use nightjar_node::link::os_rng;
use nightjar_tor::{BoxStream, Transport};
use nightjar_wormhole::{Code, Config, Mood, Pending, Wormhole, WormholeError};
use zeroize::Zeroizing;

use super::Ticket;

/// The application id: chat codes meet only chat codes, never a node's invites.
pub const APP_ID: &str = "nightjar/v1/chat";
/// Words after the number (`7-crossover-clockwork`): one guess in 65536, and a
/// failed guess ends the code for both sides.
const CODE_WORDS: usize = 2;
/// How long the inviting side waits for the code to be typed.
const INVITE_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long each exchange with the rendezvous server may take.
const STEP_WAIT: Duration = Duration::from_secs(120);

fn config(rendezvous: &Rendezvous) -> Config {
    Config {
        url: rendezvous.url().to_owned(),
        app_id: APP_ID.to_owned(),
    }
}

async fn reach(tor: &dyn Transport, rendezvous: &Rendezvous) -> Result<BoxStream> {
    rendezvous
        .connect(tor)
        .await
        .context("the rendezvous server could not be reached")
}

/// One exchange with the rendezvous server (or the peer through it), bounded in
/// time.
async fn step<T>(
    wait: Duration,
    exchange: impl Future<Output = Result<T, WormholeError>>,
) -> Result<T> {
    match tokio::time::timeout(wait, exchange).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(anyhow!(
            "the rendezvous server or the other side did not answer in time"
        )),
    }
}

/// Allocates a code; the wormhole then waits for the peer.
pub async fn allocate(
    tor: &dyn Transport,
    rendezvous: &Rendezvous,
) -> Result<(Code, Pending<BoxStream>)> {
    let stream = reach(tor, rendezvous).await?;
    step(
        STEP_WAIT,
        nightjar_wormhole::allocate(stream, &config(rendezvous), CODE_WORDS, &mut os_rng()),
    )
    .await
}

/// Waits for the peer to type the code, then hands it the connection string.
pub async fn send_ticket(pending: Pending<BoxStream>, ticket: &Ticket) -> Result<()> {
    let mut wormhole = match tokio::time::timeout(INVITE_WAIT, pending.connect()).await {
        Ok(connected) => connected?,
        Err(_) => {
            return Err(anyhow!(
                "nobody used the code within {} minutes",
                INVITE_WAIT.as_secs() / 60
            ));
        }
    };
    let text = Zeroizing::new(ticket.to_string());
    let sent = step(STEP_WAIT, wormhole.send(text.as_bytes())).await;
    close(wormhole, sent.is_ok()).await;
    sent
}

/// Opens the wormhole of `code` and receives the connection string.
pub async fn receive_ticket(
    tor: &dyn Transport,
    rendezvous: &Rendezvous,
    code: &Code,
) -> Result<Ticket> {
    let stream = reach(tor, rendezvous).await?;
    let mut wormhole = step(
        STEP_WAIT,
        nightjar_wormhole::join(stream, &config(rendezvous), code),
    )
    .await?;
    let received = step(STEP_WAIT, wormhole.receive()).await.and_then(|bytes| {
        let bytes = Zeroizing::new(bytes);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow!("the other side sent something that is not a chat"))?;
        text.parse::<Ticket>()
            .context("the other side sent a bad connection string")
    });
    close(wormhole, received.is_ok()).await;
    received
}

/// Closes the mailbox, telling the server how it went (best effort).
async fn close(wormhole: Wormhole<BoxStream>, happy: bool) {
    let mood = if happy { Mood::Happy } else { Mood::Errory };
    match tokio::time::timeout(STEP_WAIT, wormhole.close(mood)).await {
        Ok(Err(e)) => tracing::debug!("closing the wormhole: {e}"),
        Err(_) => tracing::debug!("closing the wormhole timed out"),
        Ok(Ok(())) => {}
    }
}

//! Bootstrap progress: Arti's status events into the transport's watch channel,
//! and stall detection.

use std::time::Duration;

use arti_client::TorClient;
use arti_client::status::BootstrapStatus as ArtiStatus;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tor_rtcompat::PreferredRuntime;

use super::error::bootstrap_error;
use crate::{BootstrapStatus, TorError};

/// Our view of one Arti status.
pub(super) fn convert(status: &ArtiStatus) -> BootstrapStatus {
    let ready = status.ready_for_traffic();
    // Arti's fraction can round to 100 % while it still waits for the last
    // microdescriptors; only "ready for traffic" counts as done.
    let percent = if ready {
        100
    } else {
        ((status.as_frac() * 100.0).round() as u8).min(99)
    };
    // Arti renders "NN%: what it is doing"; the percentage is ours to show.
    let text = status.to_string();
    let summary = match text.split_once("%: ") {
        Some((_, rest)) => rest.to_owned(),
        None => text,
    };
    BootstrapStatus {
        percent,
        summary,
        blocked: status.blocked().map(|b| b.to_string()),
    }
}

/// Copies Arti's bootstrap events into `tx` until the client goes away.
pub(super) fn forward(
    client: &TorClient<PreferredRuntime>,
    tx: watch::Sender<BootstrapStatus>,
) -> JoinHandle<()> {
    let mut events = client.bootstrap_events();
    tx.send_replace(convert(&client.bootstrap_status()));
    tokio::spawn(async move {
        while let Some(status) = events.next().await {
            tx.send_replace(convert(&status));
        }
    })
}

/// Bootstraps `client`, failing once progress has not moved for `stall`.
pub(super) async fn run(
    client: &TorClient<PreferredRuntime>,
    mut progress: watch::Receiver<BootstrapStatus>,
    stall: Duration,
) -> Result<(), TorError> {
    let bootstrap = client.bootstrap();
    tokio::pin!(bootstrap);
    let mut best = progress.borrow().percent;
    let mut deadline = Instant::now() + stall;
    let mut watching = true;
    loop {
        tokio::select! {
            result = &mut bootstrap => {
                return result.map_err(|e| bootstrap_error(&e));
            }
            changed = progress.changed(), if watching => {
                if changed.is_err() {
                    // The forwarder ended; the deadline still applies.
                    watching = false;
                    continue;
                }
                let percent = progress.borrow_and_update().percent;
                if percent > best {
                    best = percent;
                    deadline = Instant::now() + stall;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(TorError::BootstrapStalled(stall_reason(&progress.borrow(), stall)));
            }
        }
    }
}

fn stall_reason(status: &BootstrapStatus, stall: Duration) -> String {
    match &status.blocked {
        Some(why) => format!("stuck at {}%: {why}", status.percent),
        None => format!(
            "no progress for {} s at {}% ({})",
            stall.as_secs(),
            status.percent,
            status.summary
        ),
    }
}

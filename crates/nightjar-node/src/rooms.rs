//! Group rooms on a mailbox relay (`/v2/rooms`): posting a group's sealed cells
//! and reading them back in the relay's order, over Tor.
//!
//! The cells come from `nightjar_group`; the relay sees only cells of one size
//! under a bearer key derived from the room's secret. Each room is reached on
//! circuits of its own (its isolation key), so a relay cannot tie one member's
//! rooms together by circuit, nor to its contacts' mailboxes.

use std::sync::Arc;

use nightjar_mailbox::wire::RoomKey;
use nightjar_proto::onion::OnionAddress;
use nightjar_tor::Transport;

use crate::courier::{self, Mailbox};

/// Why a room operation failed. The text may name the relay's onion address,
/// so it is for debug logs only.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct RoomError {
    reason: String,
    /// The numbers of the cells the room took before the failure (a post goes
    /// on with the cells after them).
    pub posted: Vec<u64>,
}

/// What a read brought.
#[derive(Debug, Default)]
pub struct RoomCells {
    /// The cells after the position asked for, with their numbers, oldest first.
    pub cells: Vec<(u64, Vec<u8>)>,
    /// Cells were dropped by the relay (its bound or their lifetime) before we
    /// read them: what they held is lost to us.
    pub missed: bool,
}

/// One room on one relay.
#[derive(Clone)]
pub struct RoomRelay {
    transport: Arc<dyn Transport>,
    mailbox: Mailbox,
    room: RoomKey,
}

impl RoomRelay {
    /// The room filed under `relay_key` on the mailbox at `onion`.
    pub fn new(transport: Arc<dyn Transport>, onion: OnionAddress, relay_key: &[u8; 32]) -> Self {
        let room = RoomKey::from_bytes(relay_key);
        // Circuits are kept apart per room, under a name that says nothing of
        // the room's key (isolation names may end up in Tor's own records).
        let name = blake3::derive_key("nightjar room circuits v1", relay_key);
        let isolation = format!("room-{}", data_encoding::HEXLOWER.encode(&name[..8]));
        Self {
            transport,
            mailbox: Mailbox { onion, isolation },
            room,
        }
    }

    /// Posts cells in order; returns their numbers.
    pub async fn post(&self, cells: &[Vec<u8>]) -> Result<Vec<u64>, RoomError> {
        match courier::room_post(self.transport.as_ref(), &self.mailbox, &self.room, cells).await {
            (seqs, None) => Ok(seqs),
            (posted, Some(e)) => Err(RoomError {
                reason: e.to_string(),
                posted,
            }),
        }
    }

    /// Reads the cells numbered above `after` (at most a few thousand at a
    /// time: read again from the last one for more).
    pub async fn read(&self, after: u64) -> Result<RoomCells, RoomError> {
        let (cells, oldest) =
            courier::room_read(self.transport.as_ref(), &self.mailbox, &self.room, after)
                .await
                .map_err(|e| RoomError {
                    reason: e.to_string(),
                    posted: Vec::new(),
                })?;
        let missed = after > 0 && oldest.is_some_and(|oldest| oldest > after + 1);
        Ok(RoomCells { cells, missed })
    }
}

impl std::fmt::Debug for RoomRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomRelay").finish_non_exhaustive()
    }
}

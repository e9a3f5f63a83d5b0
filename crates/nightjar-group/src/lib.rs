//! Group chat for nightjar: MLS groups (RFC 9420, through `openmls`) whose
//! messages travel as fixed-size sealed cells through a room relay.
//!
//! - [`cell`]: the room secret, the keys derived from it, and the cells the
//!   relay stores (one size, sealed again so the relay sees not even MLS framing).
//! - [`Group`]: one member's side of a group: creating it, inviting (the MLS
//!   Welcome goes to the new member over the pairwise session, not the relay),
//!   removing, leaving, key updates, and reading the room in relay order.
//!
//! Each member's MLS credential names its nightjar identity key and carries that
//! key's signature over the member's MLS signing key, so every member checks
//! for itself whom a newcomer is, whoever added them.
//!
//! Sans-IO: the node posts the cells this crate makes and feeds it the cells it
//! reads, in the relay's order. That order settles races: of two changes made in
//! the same epoch, the one the relay stored first wins, and the other's author
//! is told its change was dropped.

pub mod cell;
mod credential;
mod group;

pub use cell::{CELL_LEN, RoomKeys};
pub use credential::IdentityKey;
pub use group::{Group, Incoming, Invitation, Joining, Received};

/// What can go wrong in a group.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// A cell that is not one of this room's, or was altered.
    #[error("a cell that does not belong to this room")]
    BadCell,
    /// A message too large for the room.
    #[error("a message of {0} bytes is too large for a room")]
    TooLarge(usize),
    /// Sealing a cell failed (not expected to happen).
    #[error("could not seal a cell")]
    Sealing,
    /// A key package, Welcome or saved group that does not parse or check.
    #[error("malformed group data: {0}")]
    Malformed(String),
    /// A newcomer's credential does not carry a valid signature of the identity
    /// it names, or names another identity than the one expected.
    #[error("a member's credential does not prove its identity")]
    BadCredential,
    /// The identity is not a member of the group.
    #[error("not a member of the group")]
    NotMember,
    /// We are no longer a member of the group.
    #[error("we are no longer a member of this group")]
    Evicted,
    /// One of our changes waits for the relay to order it; one at a time.
    #[error("a change to the group is still on its way")]
    ChangePending,
    /// The MLS library refused an operation.
    #[error("group operation failed: {0}")]
    Mls(String),
}

impl GroupError {
    fn mls(e: impl std::fmt::Display) -> Self {
        Self::Mls(e.to_string())
    }
}

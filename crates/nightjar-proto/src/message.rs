//! Application messages: what travels inside the encrypted, padded frames.
//!
//! Encoding: a version byte ([`VERSION`]), a kind byte, then the kind's fields, all
//! integers big-endian, strings as a `u32` length and UTF-8 bytes. Decoding is strict:
//! unknown versions and kinds, invalid UTF-8, oversized fields and trailing bytes are
//! errors. To add a kind: a variant, a `KIND_*` byte, an arm in `encode` and in
//! `decode`, and a case in the round-trip test.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::files::{self, CHUNK_LEN, CancelReason, DeclineReason, FileId, MAX_NAME_LEN};
use crate::offline::{self, DropGrant, MAX_MAILBOXES};
use crate::room::RoomMessage;
use crate::wire::{Reader, WireError, Writer};

/// The encoding version this code writes and reads.
pub const VERSION: u8 = 1;
/// The longest text message, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 64 * 1024;
/// The most message ids one receipt may acknowledge.
pub const MAX_RECEIPT_IDS: usize = 256;

const KIND_TEXT: u8 = 0x01;
const KIND_RECEIPT: u8 = 0x02;
const KIND_PRESENCE: u8 = 0x03;
const KIND_QUIT: u8 = 0x04;
const KIND_CONTACT_REQUEST: u8 = 0x05;
const KIND_REQUEST_RECEIVED: u8 = 0x06;
const KIND_ACCEPT: u8 = 0x07;
const KIND_ACCEPTED: u8 = 0x08;
const KIND_SMP: u8 = 0x09;
const KIND_DROP_GRANT: u8 = 0x0A;
const KIND_FILE_OFFER: u8 = 0x0B;
const KIND_FILE_ACCEPT: u8 = 0x0C;
const KIND_FILE_DECLINE: u8 = 0x0D;
const KIND_FILE_CHUNK: u8 = 0x0E;
const KIND_FILE_ACK: u8 = 0x0F;
const KIND_FILE_CANCEL: u8 = 0x10;
const KIND_FILE_DONE: u8 = 0x11;
const KIND_COVER: u8 = 0x12;
const KIND_ROOM: u8 = 0x13;
const KIND_GROUP_ASK: u8 = 0x20;
const KIND_GROUP_KEY_PACKAGE: u8 = 0x21;
const KIND_GROUP_WELCOME: u8 = 0x22;
/// The longest MLS key package a message may carry.
pub const MAX_KEY_PACKAGE_LEN: usize = 8 * 1024;
/// The longest MLS Welcome a message may carry (a group of a few hundred; a
/// frame holds at most about 120 KiB).
pub const MAX_WELCOME_LEN: usize = 96 * 1024;
/// The longest group name, in bytes of UTF-8.
pub const MAX_GROUP_NAME_LEN: usize = 64;
/// The longest SMP step a message may carry, in bytes (the largest, SMP2, is 353
/// bytes in the production group).
pub const MAX_SMP_LEN: usize = 4096;
/// The longest greeting a contact request may carry, in bytes of UTF-8.
pub const MAX_GREETING_LEN: usize = 1024;

/// A random 16-byte message identifier, chosen by the sender; receipts refer to it
/// and receivers use it to drop duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Zeroize)]
pub struct MessageId(pub [u8; 16]);

/// Whether someone is available, as they chose to share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Zeroize)]
pub enum Presence {
    /// Available.
    Online,
    /// Connected but away.
    Away,
    /// Going offline now.
    Offline,
}

/// What a peer needs to reach one of our private endpoints: its onion service's
/// public key and the client-authorization secret we issued to that peer alone.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct EndpointGrant {
    /// The endpoint onion service's Ed25519 public key (its address).
    pub onion_key: [u8; 32],
    /// The X25519 client-authorization secret for the peer to present.
    pub credential: [u8; 32],
}

/// One application message.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
#[non_exhaustive]
pub enum Message {
    /// A text message.
    Text {
        /// Identifier for receipts and de-duplication.
        id: MessageId,
        /// When the sender wrote it, milliseconds since the Unix epoch, by the
        /// sender's clock (shown, never trusted for ordering).
        sent_at_ms: u64,
        /// The text.
        body: String,
    },
    /// The listed messages were received and stored.
    Receipt {
        /// What was received.
        ids: Vec<MessageId>,
    },
    /// A presence update (only sent by people who opted in).
    Presence(Presence),
    /// The sender is leaving the conversation now.
    Quit,
    /// Sent to a request onion: "let us be contacts", with what the recipient needs
    /// to reach the sender's private endpoint once it accepts.
    ContactRequest {
        /// The sender's endpoint, authorised for the recipient.
        grant: EndpointGrant,
        /// A short note shown with the request.
        greeting: String,
    },
    /// The contact request was stored; the sender can stop retrying.
    RequestReceived,
    /// Sent to the requester's endpoint: the request was accepted, and here is how
    /// to reach the accepting side.
    Accept {
        /// The accepting side's endpoint, authorised for the requester.
        grant: EndpointGrant,
    },
    /// The acceptance was stored; both sides are now contacts.
    Accepted,
    /// One step of a shared-secret authentication ([`crate::smp`]), opaque here.
    Smp(Vec<u8>),
    /// Where and how to leave messages for the sender while it is offline
    /// ([`crate::offline`]).
    DropGrant(DropGrant),
    /// "I would like to send you this file" ([`crate::files`]). Sent again on every
    /// new link until the receiver answers.
    FileOffer {
        /// The transfer's identifier.
        id: FileId,
        /// The file's length in bytes (at most `u32::MAX` chunks).
        size: u64,
        /// BLAKE3 of the whole file, checked before the file is moved into place.
        hash: [u8; 32],
        /// The sender's name for it, at most [`MAX_NAME_LEN`] bytes; the receiver
        /// cleans it with [`files::sanitize_name`].
        name: String,
    },
    /// Send the chunks from `resume_from` on, up to (not including) `credit_until`.
    FileAccept {
        /// The transfer.
        id: FileId,
        /// Counts the receiver's accepts of this transfer, so chunks sent for an
        /// older one can be told apart.
        attempt: u32,
        /// The first chunk the receiver does not have.
        resume_from: u32,
        /// The first chunk the sender may not send yet (at least `resume_from`).
        credit_until: u32,
    },
    /// The offer is declined; nothing will be sent.
    FileDecline {
        /// The transfer.
        id: FileId,
        /// Why.
        reason: DeclineReason,
    },
    /// One chunk of a file.
    FileChunk {
        /// The transfer.
        id: FileId,
        /// The accept this chunk answers.
        attempt: u32,
        /// Which chunk.
        index: u32,
        /// Its bytes: 1 to [`CHUNK_LEN`].
        data: Vec<u8>,
    },
    /// Chunks before `through` are written; more credit.
    FileAck {
        /// The transfer.
        id: FileId,
        /// The accept this answers.
        attempt: u32,
        /// Chunks `0..through` are written.
        through: u32,
        /// The first chunk the sender may not send yet (at least `through`).
        credit_until: u32,
    },
    /// The transfer is abandoned by either side.
    FileCancel {
        /// The transfer.
        id: FileId,
        /// Why.
        reason: CancelReason,
    },
    /// The whole file arrived, matched its hash and is in place.
    FileDone {
        /// The transfer.
        id: FileId,
    },
    /// Cover: sent on the cell schedule when there is nothing real to send, and
    /// dropped by the receiver without any effect. Sealed, it is one cell like
    /// any short message.
    Cover,
    /// What a one-shot group room says on a participant's link ([`crate::room`]).
    Room(RoomMessage),
    /// "I am adding you to a group": asks for a one-time MLS key package.
    GroupAsk {
        /// Chosen by the asker; the answer and the Welcome refer to it.
        ask: [u8; 16],
    },
    /// A one-time MLS key package, answering a [`Message::GroupAsk`].
    GroupKeyPackage {
        /// The ask it answers.
        ask: [u8; 16],
        /// The key package (MLS wire format), at most [`MAX_KEY_PACKAGE_LEN`].
        key_package: Vec<u8>,
    },
    /// You are in a group now: its MLS Welcome, and where its room is.
    GroupWelcome(Box<GroupWelcome>),
}

/// What a new member of a group gets from the contact who added it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct GroupWelcome {
    /// The ask whose key package the Welcome is for.
    pub ask: [u8; 16],
    /// The inviter's name for the group, at most [`MAX_GROUP_NAME_LEN`].
    pub name: String,
    /// The room relay's onion key (a mailbox).
    pub relay: [u8; 32],
    /// The room's secret (names the room at the relay, seals its cells).
    pub room_secret: [u8; 32],
    /// Read the room after this cell number (the change that added you).
    pub cursor: u64,
    /// The Welcome (MLS wire format), at most [`MAX_WELCOME_LEN`].
    pub welcome: Vec<u8>,
}

/// Shows neither the name, the room secret nor the Welcome.
impl core::fmt::Debug for GroupWelcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroupWelcome")
            .field("cursor", &self.cursor)
            .field("welcome_len", &self.welcome.len())
            .finish_non_exhaustive()
    }
}

/// Errors from decoding a message.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Written by a newer version.
    #[error("message encoding version {0} is not supported")]
    UnsupportedVersion(u8),
    /// A kind this version does not know (the sender may be newer).
    #[error("unknown message kind {0:#04x}")]
    UnknownKind(u8),
    /// A field exceeds its limit.
    #[error("message field too large")]
    TooLarge,
    /// Text that is not UTF-8.
    #[error("message text is not valid UTF-8")]
    BadText,
    /// Truncated, trailing bytes, or an invalid value.
    #[error("malformed message: {0}")]
    Malformed(#[from] WireError),
}

impl Message {
    /// Encodes the message; fails only if a field exceeds its limit
    /// ([`MAX_TEXT_LEN`], [`MAX_RECEIPT_IDS`], [`MAX_NAME_LEN`], [`CHUNK_LEN`], a
    /// file of more than `u32::MAX` chunks), a drop grant does not list 1 to
    /// [`MAX_MAILBOXES`] distinct mailboxes, a chunk is empty, or a credit ends
    /// before the chunks it follows; callers should check these first.
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let mut w = Writer::new();
        w.u8(VERSION);
        match self {
            Self::Text {
                id,
                sent_at_ms,
                body,
            } => {
                if body.len() > MAX_TEXT_LEN {
                    return Err(MessageError::TooLarge);
                }
                w.u8(KIND_TEXT);
                w.bytes(&id.0);
                w.u64(*sent_at_ms);
                w.var_bytes(body.as_bytes());
            }
            Self::Receipt { ids } => {
                let count = u16::try_from(ids.len())
                    .ok()
                    .filter(|n| usize::from(*n) <= MAX_RECEIPT_IDS)
                    .ok_or(MessageError::TooLarge)?;
                w.u8(KIND_RECEIPT);
                w.u16(count);
                for id in ids {
                    w.bytes(&id.0);
                }
            }
            Self::Presence(presence) => {
                w.u8(KIND_PRESENCE);
                w.u8(match presence {
                    Presence::Online => 1,
                    Presence::Away => 2,
                    Presence::Offline => 3,
                });
            }
            Self::Quit => w.u8(KIND_QUIT),
            Self::Cover => w.u8(KIND_COVER),
            Self::Room(room) => {
                w.u8(KIND_ROOM);
                room.write(&mut w)?;
            }
            Self::ContactRequest { grant, greeting } => {
                if greeting.len() > MAX_GREETING_LEN {
                    return Err(MessageError::TooLarge);
                }
                w.u8(KIND_CONTACT_REQUEST);
                grant.write(&mut w);
                w.var_bytes(greeting.as_bytes());
            }
            Self::RequestReceived => w.u8(KIND_REQUEST_RECEIVED),
            Self::Accept { grant } => {
                w.u8(KIND_ACCEPT);
                grant.write(&mut w);
            }
            Self::Accepted => w.u8(KIND_ACCEPTED),
            Self::Smp(step) => {
                if step.len() > MAX_SMP_LEN {
                    return Err(MessageError::TooLarge);
                }
                w.u8(KIND_SMP);
                w.var_bytes(step);
            }
            Self::DropGrant(grant) => {
                if grant.mailboxes.len() > MAX_MAILBOXES {
                    return Err(MessageError::TooLarge);
                }
                offline::check_mailboxes(&grant.mailboxes)
                    .map_err(|_| MessageError::Malformed(WireError::InvalidValue))?;
                w.u8(KIND_DROP_GRANT);
                // At most MAX_MAILBOXES, checked above.
                w.u8(u8::try_from(grant.mailboxes.len()).unwrap_or(u8::MAX));
                for mailbox in &grant.mailboxes {
                    w.bytes(mailbox);
                }
                w.bytes(grant.seed.as_slice());
            }
            Self::FileOffer {
                id,
                size,
                hash,
                name,
            } => {
                if name.len() > MAX_NAME_LEN || files::chunk_count(*size).is_none() {
                    return Err(MessageError::TooLarge);
                }
                w.u8(KIND_FILE_OFFER);
                w.bytes(&id.0);
                w.u64(*size);
                w.bytes(hash);
                w.var_bytes(name.as_bytes());
            }
            Self::FileAccept {
                id,
                attempt,
                resume_from,
                credit_until,
            } => {
                check_credit(*resume_from, *credit_until)?;
                w.u8(KIND_FILE_ACCEPT);
                w.bytes(&id.0);
                w.u32(*attempt);
                w.u32(*resume_from);
                w.u32(*credit_until);
            }
            Self::FileDecline { id, reason } => {
                w.u8(KIND_FILE_DECLINE);
                w.bytes(&id.0);
                w.u8(reason.code());
            }
            Self::FileChunk {
                id,
                attempt,
                index,
                data,
            } => {
                if data.len() > CHUNK_LEN {
                    return Err(MessageError::TooLarge);
                }
                if data.is_empty() {
                    return Err(WireError::InvalidValue.into());
                }
                w.u8(KIND_FILE_CHUNK);
                w.bytes(&id.0);
                w.u32(*attempt);
                w.u32(*index);
                w.var_bytes(data);
            }
            Self::FileAck {
                id,
                attempt,
                through,
                credit_until,
            } => {
                check_credit(*through, *credit_until)?;
                w.u8(KIND_FILE_ACK);
                w.bytes(&id.0);
                w.u32(*attempt);
                w.u32(*through);
                w.u32(*credit_until);
            }
            Self::FileCancel { id, reason } => {
                w.u8(KIND_FILE_CANCEL);
                w.bytes(&id.0);
                w.u8(reason.code());
            }
            Self::FileDone { id } => {
                w.u8(KIND_FILE_DONE);
                w.bytes(&id.0);
            }
            Self::GroupAsk { ask } => {
                w.u8(KIND_GROUP_ASK);
                w.bytes(ask);
            }
            Self::GroupKeyPackage { ask, key_package } => {
                if key_package.len() > MAX_KEY_PACKAGE_LEN {
                    return Err(MessageError::TooLarge);
                }
                w.u8(KIND_GROUP_KEY_PACKAGE);
                w.bytes(ask);
                w.var_bytes(key_package);
            }
            Self::GroupWelcome(group) => {
                let GroupWelcome {
                    ask,
                    name,
                    relay,
                    room_secret,
                    cursor,
                    welcome,
                } = &**group;
                if name.len() > MAX_GROUP_NAME_LEN || welcome.len() > MAX_WELCOME_LEN {
                    return Err(MessageError::TooLarge);
                }
                w.u8(KIND_GROUP_WELCOME);
                w.bytes(ask);
                w.var_bytes(name.as_bytes());
                w.bytes(relay);
                w.bytes(room_secret);
                w.u64(*cursor);
                w.var_bytes(welcome);
            }
        }
        Ok(w.finish())
    }

    /// Decodes a message; the whole input must be exactly one message.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(MessageError::UnsupportedVersion(version));
        }
        let message = match r.u8()? {
            KIND_TEXT => {
                let id = MessageId(*r.array()?);
                let sent_at_ms = r.u64()?;
                let body = read_text(&mut r, MAX_TEXT_LEN)?;
                Self::Text {
                    id,
                    sent_at_ms,
                    body,
                }
            }
            KIND_RECEIPT => {
                let count = usize::from(r.u16()?);
                if count > MAX_RECEIPT_IDS {
                    return Err(MessageError::TooLarge);
                }
                let ids = (0..count)
                    .map(|_| r.array().map(|id| MessageId(*id)))
                    .collect::<Result<_, _>>()?;
                Self::Receipt { ids }
            }
            KIND_PRESENCE => Self::Presence(match r.u8()? {
                1 => Presence::Online,
                2 => Presence::Away,
                3 => Presence::Offline,
                _ => return Err(WireError::InvalidValue.into()),
            }),
            KIND_QUIT => Self::Quit,
            KIND_COVER => Self::Cover,
            KIND_ROOM => Self::Room(RoomMessage::read(&mut r)?),
            KIND_CONTACT_REQUEST => Self::ContactRequest {
                grant: EndpointGrant::read(&mut r)?,
                greeting: read_text(&mut r, MAX_GREETING_LEN)?,
            },
            KIND_REQUEST_RECEIVED => Self::RequestReceived,
            KIND_ACCEPT => Self::Accept {
                grant: EndpointGrant::read(&mut r)?,
            },
            KIND_ACCEPTED => Self::Accepted,
            KIND_SMP => Self::Smp(read_bytes(&mut r, MAX_SMP_LEN)?.to_vec()),
            KIND_DROP_GRANT => Self::DropGrant(read_drop_grant(&mut r)?),
            KIND_FILE_OFFER => read_file_offer(&mut r)?,
            KIND_FILE_ACCEPT => {
                let id = FileId(*r.array()?);
                let attempt = r.u32()?;
                let resume_from = r.u32()?;
                let credit_until = r.u32()?;
                check_credit(resume_from, credit_until)?;
                Self::FileAccept {
                    id,
                    attempt,
                    resume_from,
                    credit_until,
                }
            }
            KIND_FILE_DECLINE => Self::FileDecline {
                id: FileId(*r.array()?),
                reason: DeclineReason::from_code(r.u8()?),
            },
            KIND_FILE_CHUNK => {
                let id = FileId(*r.array()?);
                let attempt = r.u32()?;
                let index = r.u32()?;
                let data = read_bytes(&mut r, CHUNK_LEN)?;
                if data.is_empty() {
                    return Err(WireError::InvalidValue.into());
                }
                Self::FileChunk {
                    id,
                    attempt,
                    index,
                    data: data.to_vec(),
                }
            }
            KIND_FILE_ACK => {
                let id = FileId(*r.array()?);
                let attempt = r.u32()?;
                let through = r.u32()?;
                let credit_until = r.u32()?;
                check_credit(through, credit_until)?;
                Self::FileAck {
                    id,
                    attempt,
                    through,
                    credit_until,
                }
            }
            KIND_FILE_CANCEL => Self::FileCancel {
                id: FileId(*r.array()?),
                reason: CancelReason::from_code(r.u8()?),
            },
            KIND_FILE_DONE => Self::FileDone {
                id: FileId(*r.array()?),
            },
            KIND_GROUP_ASK => Self::GroupAsk { ask: *r.array()? },
            KIND_GROUP_KEY_PACKAGE => Self::GroupKeyPackage {
                ask: *r.array()?,
                key_package: read_bytes(&mut r, MAX_KEY_PACKAGE_LEN)?.to_vec(),
            },
            KIND_GROUP_WELCOME => Self::GroupWelcome(Box::new(GroupWelcome {
                ask: *r.array()?,
                name: read_text(&mut r, MAX_GROUP_NAME_LEN)?,
                relay: *r.array()?,
                room_secret: *r.array()?,
                cursor: r.u64()?,
                welcome: read_bytes(&mut r, MAX_WELCOME_LEN)?.to_vec(),
            })),
            other => return Err(MessageError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(message)
    }
}

fn read_bytes<'a>(r: &mut Reader<'a>, max: usize) -> Result<&'a [u8], MessageError> {
    r.var_bytes(max).map_err(|e| match e {
        WireError::TooLong => MessageError::TooLarge,
        other => other.into(),
    })
}

/// A drop grant: count (u8, 1..=4) · count × mailbox (32) · seed (32). Duplicate
/// mailboxes are refused too.
fn read_drop_grant(r: &mut Reader<'_>) -> Result<DropGrant, MessageError> {
    let count = usize::from(r.u8()?);
    if count > MAX_MAILBOXES {
        return Err(MessageError::TooLarge);
    }
    let mailboxes = (0..count)
        .map(|_| r.array::<32>().copied())
        .collect::<Result<Vec<_>, _>>()?;
    offline::check_mailboxes(&mailboxes).map_err(|_| WireError::InvalidValue)?;
    let seed = Zeroizing::new(*r.array::<32>()?);
    Ok(DropGrant { mailboxes, seed })
}

/// A file offer: id (16) · size (u64, at most `u32::MAX` chunks) · hash (32) ·
/// name (u32 length, UTF-8, at most [`MAX_NAME_LEN`] bytes).
fn read_file_offer(r: &mut Reader<'_>) -> Result<Message, MessageError> {
    let id = FileId(*r.array()?);
    let size = r.u64()?;
    if files::chunk_count(size).is_none() {
        return Err(MessageError::TooLarge);
    }
    let hash = *r.array()?;
    let name = read_text(r, MAX_NAME_LEN)?;
    Ok(Message::FileOffer {
        id,
        size,
        hash,
        name,
    })
}

/// A credit window must not end before the chunks it follows.
fn check_credit(from: u32, until: u32) -> Result<(), MessageError> {
    if until < from {
        return Err(WireError::InvalidValue.into());
    }
    Ok(())
}

fn read_text(r: &mut Reader<'_>, max: usize) -> Result<String, MessageError> {
    String::from_utf8(read_bytes(r, max)?.to_vec()).map_err(|_| MessageError::BadText)
}

impl EndpointGrant {
    fn write(&self, w: &mut Writer) {
        w.bytes(&self.onion_key);
        w.bytes(&self.credential);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            onion_key: *r.array()?,
            credential: *r.array()?,
        })
    }
}

/// The credential is a secret: `Debug` shows neither field.
impl core::fmt::Debug for EndpointGrant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("EndpointGrant(..)")
    }
}

/// Message contents are plaintext: `Debug` shows only the kind, sizes and
/// positions, never a text, a file name or file data.
impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Text { body, .. } => write!(f, "Text({} bytes)", body.len()),
            Self::Receipt { ids } => write!(f, "Receipt({} ids)", ids.len()),
            Self::Presence(p) => write!(f, "Presence({p:?})"),
            Self::Quit => f.write_str("Quit"),
            Self::Cover => f.write_str("Cover"),
            Self::Room(room) => write!(f, "Room({room:?})"),
            Self::ContactRequest { greeting, .. } => {
                write!(f, "ContactRequest({} bytes)", greeting.len())
            }
            Self::RequestReceived => f.write_str("RequestReceived"),
            Self::Accept { .. } => f.write_str("Accept"),
            Self::Accepted => f.write_str("Accepted"),
            Self::Smp(step) => write!(f, "Smp({} bytes)", step.len()),
            Self::DropGrant(grant) => write!(f, "{grant:?}"),
            Self::FileOffer { id, size, name, .. } => {
                write!(
                    f,
                    "FileOffer({id:?}, {size} bytes, name {} bytes)",
                    name.len()
                )
            }
            Self::FileAccept {
                id,
                attempt,
                resume_from,
                credit_until,
            } => write!(
                f,
                "FileAccept({id:?}, attempt {attempt}, from {resume_from}, credit until {credit_until})"
            ),
            Self::FileDecline { id, reason } => write!(f, "FileDecline({id:?}, {reason:?})"),
            Self::FileChunk {
                id,
                attempt,
                index,
                data,
            } => write!(
                f,
                "FileChunk({id:?}, attempt {attempt}, index {index}, {} bytes)",
                data.len()
            ),
            Self::FileAck {
                id,
                attempt,
                through,
                credit_until,
            } => write!(
                f,
                "FileAck({id:?}, attempt {attempt}, through {through}, credit until {credit_until})"
            ),
            Self::FileCancel { id, reason } => write!(f, "FileCancel({id:?}, {reason:?})"),
            Self::FileDone { id } => write!(f, "FileDone({id:?})"),
            Self::GroupAsk { .. } => f.write_str("GroupAsk"),
            Self::GroupKeyPackage { key_package, .. } => {
                write!(f, "GroupKeyPackage({} bytes)", key_package.len())
            }
            Self::GroupWelcome(group) => {
                write!(f, "GroupWelcome({} bytes)", group.welcome.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Text {
                id: MessageId([7; 16]),
                sent_at_ms: 1_763_900_000_000,
                body: "hello, nightjar — ünïcödé ✓".into(),
            },
            Message::Text {
                id: MessageId([0; 16]),
                sent_at_ms: 0,
                body: String::new(),
            },
            Message::Receipt {
                ids: vec![MessageId([1; 16]), MessageId([2; 16])],
            },
            Message::Receipt { ids: vec![] },
            Message::Presence(Presence::Online),
            Message::Presence(Presence::Away),
            Message::Presence(Presence::Offline),
            Message::Quit,
            Message::Cover,
            Message::Room(crate::room::RoomMessage::Full),
            Message::ContactRequest {
                grant: EndpointGrant {
                    onion_key: [3; 32],
                    credential: [4; 32],
                },
                greeting: "hi, it's me".into(),
            },
            Message::RequestReceived,
            Message::Accept {
                grant: EndpointGrant {
                    onion_key: [5; 32],
                    credential: [6; 32],
                },
            },
            Message::Accepted,
            Message::Smp(vec![0x5a; 353]),
            Message::Smp(vec![]),
            Message::DropGrant(drop_grant(1)),
            Message::DropGrant(drop_grant(MAX_MAILBOXES)),
            Message::GroupAsk { ask: [8; 16] },
            Message::GroupKeyPackage {
                ask: [8; 16],
                key_package: vec![0x3c; 300],
            },
            Message::GroupWelcome(Box::new(GroupWelcome {
                ask: [8; 16],
                name: "book club ✓".into(),
                relay: [9; 32],
                room_secret: [10; 32],
                cursor: u64::MAX,
                welcome: vec![0x11; MAX_WELCOME_LEN],
            })),
        ]
        .into_iter()
        .chain(file_samples())
        .collect()
    }

    const FID: FileId = FileId([0x42; 16]);

    fn file_samples() -> Vec<Message> {
        let top = CHUNK_LEN as u64 * u64::from(u32::MAX);
        vec![
            offer(0, "empty"),
            offer(12_345, "photo.jpg"),
            offer(top, &"é".repeat(127)),
            offer(1, ""),
            Message::FileAccept {
                id: FID,
                attempt: 1,
                resume_from: 0,
                credit_until: 32,
            },
            Message::FileAccept {
                id: FID,
                attempt: u32::MAX,
                resume_from: u32::MAX,
                credit_until: u32::MAX,
            },
            Message::FileDecline {
                id: FID,
                reason: DeclineReason::Declined,
            },
            Message::FileDecline {
                id: FID,
                reason: DeclineReason::TooLarge,
            },
            Message::FileDecline {
                id: FID,
                reason: DeclineReason::Busy,
            },
            chunk(vec![0xc3]),
            chunk(vec![0x17; CHUNK_LEN]),
            Message::FileAck {
                id: FID,
                attempt: 2,
                through: 4,
                credit_until: 36,
            },
            Message::FileAck {
                id: FID,
                attempt: 0,
                through: 7,
                credit_until: 7,
            },
            Message::FileCancel {
                id: FID,
                reason: CancelReason::BySender,
            },
            Message::FileCancel {
                id: FID,
                reason: CancelReason::ReceiverDisk,
            },
            Message::FileDone { id: FID },
        ]
    }

    fn offer(size: u64, name: &str) -> Message {
        Message::FileOffer {
            id: FID,
            size,
            hash: [0x99; 32],
            name: name.into(),
        }
    }

    fn chunk(data: Vec<u8>) -> Message {
        Message::FileChunk {
            id: FID,
            attempt: 3,
            index: 9,
            data,
        }
    }

    fn drop_grant(mailboxes: usize) -> DropGrant {
        DropGrant {
            mailboxes: (1..=mailboxes).map(|i| [i as u8; 32]).collect(),
            seed: Zeroizing::new([0xee; 32]),
        }
    }

    /// A drop grant's encoding with `count` as its count and `mailboxes` keys.
    fn drop_grant_bytes(count: u8, mailboxes: &[u8]) -> Vec<u8> {
        let mut bytes = vec![1, KIND_DROP_GRANT, count];
        for i in mailboxes {
            bytes.extend_from_slice(&[*i; 32]);
        }
        bytes.extend_from_slice(&[0xee; 32]);
        bytes
    }

    #[test]
    fn drop_grant_encoding_is_exact() {
        let bytes = Message::DropGrant(drop_grant(2)).encode().unwrap();
        assert_eq!(bytes, drop_grant_bytes(2, &[1, 2]));
        assert_eq!(bytes.len(), 3 + 2 * 32 + 32);
        assert_eq!(
            Message::decode(&bytes).unwrap(),
            Message::DropGrant(drop_grant(2))
        );
    }

    #[test]
    fn drop_grant_decoding_is_strict() {
        assert_eq!(
            Message::decode(&drop_grant_bytes(0, &[])),
            Err(MessageError::Malformed(WireError::InvalidValue))
        );
        assert_eq!(
            Message::decode(&drop_grant_bytes(5, &[1, 2, 3, 4, 5])),
            Err(MessageError::TooLarge)
        );
        assert_eq!(
            Message::decode(&drop_grant_bytes(2, &[7, 7])),
            Err(MessageError::Malformed(WireError::InvalidValue))
        );
        // A count that promises more mailboxes than follow.
        let mut short = drop_grant_bytes(3, &[1, 2]);
        assert_eq!(
            Message::decode(&short),
            Err(MessageError::Malformed(WireError::Truncated))
        );
        short.truncate(short.len() - 1);
        assert!(Message::decode(&short).is_err());
        let mut long = drop_grant_bytes(1, &[1]);
        long.push(0);
        assert_eq!(
            Message::decode(&long),
            Err(MessageError::Malformed(WireError::Trailing))
        );
    }

    #[test]
    fn invalid_drop_grants_are_refused_when_encoding() {
        assert_eq!(
            Message::DropGrant(drop_grant(MAX_MAILBOXES + 1)).encode(),
            Err(MessageError::TooLarge)
        );
        assert!(Message::DropGrant(drop_grant(0)).encode().is_err());
        let mut twice = drop_grant(2);
        twice.mailboxes[1] = twice.mailboxes[0];
        assert!(Message::DropGrant(twice).encode().is_err());
    }

    #[test]
    fn debug_hides_the_drop_seed() {
        let shown = format!("{:?}", Message::DropGrant(drop_grant(3)));
        assert!(shown.contains("mailboxes: 3"), "{shown}");
        assert!(
            !shown.contains("ee, ee") && !shown.contains("238"),
            "{shown}"
        );
    }

    #[test]
    fn every_kind_round_trips() {
        for message in samples() {
            assert_eq!(
                Message::decode(&message.encode().unwrap()).unwrap(),
                message
            );
        }
    }

    #[test]
    fn known_encoding() {
        let quit = Message::Quit.encode().unwrap();
        assert_eq!(quit, [1, KIND_QUIT]);
        assert_eq!(Message::Cover.encode().unwrap(), [1, KIND_COVER]);
        assert_eq!(
            Message::decode(&[1, KIND_COVER, 0]),
            Err(MessageError::Malformed(WireError::Trailing))
        );
        let text = Message::Text {
            id: MessageId([0xab; 16]),
            sent_at_ms: 0x0102,
            body: "hi".into(),
        }
        .encode()
        .unwrap();
        let mut expected = vec![1, KIND_TEXT];
        expected.extend_from_slice(&[0xab; 16]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        expected.extend_from_slice(&[0, 0, 0, 2, b'h', b'i']);
        assert_eq!(text, expected);
    }

    #[test]
    fn known_file_encodings() {
        let ack = Message::FileAck {
            id: FID,
            attempt: 0x0102_0304,
            through: 8,
            credit_until: 40,
        }
        .encode()
        .unwrap();
        let mut expected = vec![1, 0x0F];
        expected.extend_from_slice(&[0x42; 16]);
        expected.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 8, 0, 0, 0, 40]);
        assert_eq!(ack, expected);

        let offer = Message::FileOffer {
            id: FID,
            size: 0x0001_0000_0001,
            hash: [0x99; 32],
            name: "a.b".into(),
        }
        .encode()
        .unwrap();
        let mut expected = vec![1, 0x0B];
        expected.extend_from_slice(&[0x42; 16]);
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0x99; 32]);
        expected.extend_from_slice(&[0, 0, 0, 3, b'a', b'.', b'b']);
        assert_eq!(offer, expected);

        let cancel = Message::FileCancel {
            id: FID,
            reason: CancelReason::Mismatch,
        };
        let mut expected = vec![1, 0x10];
        expected.extend_from_slice(&[0x42; 16]);
        expected.push(4);
        assert_eq!(cancel.encode().unwrap(), expected);

        // The chunk header length the frame size is computed from.
        let one = chunk(vec![0xc3]).encode().unwrap();
        assert_eq!(one.len(), files::CHUNK_HEADER_LEN + 1);
        assert_eq!(&one[..2], &[1, 0x0E]);
        assert_eq!(&one[18..], &[0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 1, 0xc3]);
    }

    #[test]
    fn file_limits_are_refused_both_ways() {
        // A name of 256 bytes.
        let long = offer(1, &"n".repeat(MAX_NAME_LEN + 1));
        assert_eq!(long.encode(), Err(MessageError::TooLarge));
        let mut bytes = offer(1, &"n".repeat(MAX_NAME_LEN)).encode().unwrap();
        assert!(Message::decode(&bytes).is_ok());
        let len_at = 2 + 16 + 8 + 32;
        bytes[len_at..len_at + 4].copy_from_slice(&256u32.to_be_bytes());
        bytes.push(b'n');
        assert_eq!(Message::decode(&bytes), Err(MessageError::TooLarge));

        // A name that is not UTF-8.
        let mut bytes = offer(1, "ab").encode().unwrap();
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        assert_eq!(Message::decode(&bytes), Err(MessageError::BadText));

        // A size past u32::MAX chunks.
        let too_big = CHUNK_LEN as u64 * u64::from(u32::MAX) + 1;
        assert_eq!(offer(too_big, "x").encode(), Err(MessageError::TooLarge));
        let mut bytes = offer(1, "x").encode().unwrap();
        bytes[18..26].copy_from_slice(&too_big.to_be_bytes());
        assert_eq!(Message::decode(&bytes), Err(MessageError::TooLarge));
        bytes[18..26].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(Message::decode(&bytes), Err(MessageError::TooLarge));

        // Chunks of 0 and 65537 bytes.
        assert!(chunk(vec![]).encode().is_err());
        assert_eq!(
            chunk(vec![0; CHUNK_LEN + 1]).encode(),
            Err(MessageError::TooLarge)
        );
        let mut empty = chunk(vec![1]).encode().unwrap();
        empty.pop();
        let n = empty.len();
        empty[n - 4..].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            Message::decode(&empty),
            Err(MessageError::Malformed(WireError::InvalidValue))
        );
        let mut over = chunk(vec![7; CHUNK_LEN]).encode().unwrap();
        over[26..30].copy_from_slice(&(CHUNK_LEN as u32 + 1).to_be_bytes());
        over.push(7);
        assert_eq!(Message::decode(&over), Err(MessageError::TooLarge));

        // Credit that ends before the chunks it follows.
        let ack = Message::FileAck {
            id: FID,
            attempt: 1,
            through: 8,
            credit_until: 7,
        };
        assert!(ack.encode().is_err());
        let accept = Message::FileAccept {
            id: FID,
            attempt: 1,
            resume_from: 8,
            credit_until: 7,
        };
        assert!(accept.encode().is_err());
        for kind in [KIND_FILE_ACK, KIND_FILE_ACCEPT] {
            let mut bytes = vec![1, kind];
            bytes.extend_from_slice(&[0x42; 16]);
            bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 7]);
            assert_eq!(
                Message::decode(&bytes),
                Err(MessageError::Malformed(WireError::InvalidValue)),
                "{kind}"
            );
        }
    }

    #[test]
    fn unknown_reasons_are_read_as_the_general_ones() {
        let mut decline = vec![1, KIND_FILE_DECLINE];
        decline.extend_from_slice(&[0x42; 16]);
        decline.push(0xee);
        assert_eq!(
            Message::decode(&decline).unwrap(),
            Message::FileDecline {
                id: FID,
                reason: DeclineReason::Declined
            }
        );
        let mut cancel = vec![1, KIND_FILE_CANCEL];
        cancel.extend_from_slice(&[0x42; 16]);
        cancel.push(0);
        assert_eq!(
            Message::decode(&cancel).unwrap(),
            Message::FileCancel {
                id: FID,
                reason: CancelReason::Protocol
            }
        );
    }

    #[test]
    fn debug_hides_file_names_and_data() {
        let shown = format!("{:?}", offer(5, "secret-plans.pdf"));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("5 bytes"), "{shown}");
        let shown = format!("{:?}", chunk(b"classified".to_vec()));
        assert!(
            !shown.contains("classified") && !shown.contains("99, 108"),
            "{shown}"
        );
        assert!(
            shown.contains("index 9") && shown.contains("10 bytes"),
            "{shown}"
        );
        let shown = format!("{:?}", chunk(vec![0xab; 4]));
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        for message in samples() {
            let bytes = message.encode().unwrap();
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "{message:?} cut at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::decode(&longer).is_err());
        }
    }

    #[test]
    fn bad_inputs_get_specific_errors() {
        assert_eq!(
            Message::decode(&[2, KIND_QUIT]),
            Err(MessageError::UnsupportedVersion(2))
        );
        assert_eq!(
            Message::decode(&[1, 0x7f]),
            Err(MessageError::UnknownKind(0x7f))
        );
        let mut bad_utf8 = vec![1, KIND_TEXT];
        bad_utf8.extend_from_slice(&[0; 24]);
        bad_utf8.extend_from_slice(&[0, 0, 0, 1, 0xff]);
        assert_eq!(Message::decode(&bad_utf8), Err(MessageError::BadText));
        let mut huge = vec![1, KIND_TEXT];
        huge.extend_from_slice(&[0; 24]);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Message::decode(&huge), Err(MessageError::TooLarge));
        let too_many = [1, KIND_RECEIPT, 0x01, 0x01];
        assert_eq!(Message::decode(&too_many), Err(MessageError::TooLarge));
        assert!(Message::decode(&[1, KIND_PRESENCE, 9]).is_err());
    }

    #[test]
    fn oversized_messages_are_refused_when_encoding() {
        let long = Message::Text {
            id: MessageId([0; 16]),
            sent_at_ms: 0,
            body: "x".repeat(MAX_TEXT_LEN + 1),
        };
        assert_eq!(long.encode(), Err(MessageError::TooLarge));
        let many = Message::Receipt {
            ids: vec![MessageId([0; 16]); MAX_RECEIPT_IDS + 1],
        };
        assert_eq!(many.encode(), Err(MessageError::TooLarge));
        let smp = Message::Smp(vec![0; MAX_SMP_LEN + 1]);
        assert_eq!(smp.encode(), Err(MessageError::TooLarge));
        let package = Message::GroupKeyPackage {
            ask: [0; 16],
            key_package: vec![0; MAX_KEY_PACKAGE_LEN + 1],
        };
        assert_eq!(package.encode(), Err(MessageError::TooLarge));
        let welcome = |name: String, len: usize| {
            Message::GroupWelcome(Box::new(GroupWelcome {
                ask: [0; 16],
                name,
                relay: [0; 32],
                room_secret: [0; 32],
                cursor: 0,
                welcome: vec![0; len],
            }))
        };
        let long_name = "g".repeat(MAX_GROUP_NAME_LEN + 1);
        assert_eq!(welcome(long_name, 1).encode(), Err(MessageError::TooLarge));
        let big = welcome("g".into(), MAX_WELCOME_LEN + 1);
        assert_eq!(big.encode(), Err(MessageError::TooLarge));
        // The largest Welcome still fits in one frame.
        let largest = welcome("g".repeat(MAX_GROUP_NAME_LEN), MAX_WELCOME_LEN);
        assert!(crate::cell::pad(&largest.encode().unwrap()).is_ok());
    }

    #[test]
    fn debug_hides_text() {
        let shown = format!("{:?}", samples()[0]);
        assert!(!shown.contains("hello"));
    }

    proptest! {
        #[test]
        fn text_round_trips(id in any::<[u8; 16]>(), at in any::<u64>(), body in "\\PC{0,300}") {
            let m = Message::Text { id: MessageId(id), sent_at_ms: at, body };
            prop_assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
        }

        #[test]
        fn file_messages_round_trip(
            id in any::<[u8; 16]>(),
            a in any::<u32>(),
            b in any::<u32>(),
            c in any::<u32>(),
            size in any::<u64>(),
            data in proptest::collection::vec(any::<u8>(), 1..600),
            name in "(?s:.){0,60}",
        ) {
            let id = FileId(id);
            let (lo, hi) = (b.min(c), b.max(c));
            let size = size % (CHUNK_LEN as u64 * u64::from(u32::MAX) + 1);
            for m in [
                Message::FileOffer { id, size, hash: [a as u8; 32], name: name.clone() },
                Message::FileAccept { id, attempt: a, resume_from: lo, credit_until: hi },
                Message::FileChunk { id, attempt: a, index: b, data: data.clone() },
                Message::FileAck { id, attempt: a, through: lo, credit_until: hi },
            ] {
                prop_assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
            }
        }

        #[test]
        fn decoding_noise_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Message::decode(&bytes);
        }
    }
}

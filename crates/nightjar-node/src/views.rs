//! Turning stored records into the views the handle returns.

use data_encoding::{BASE32_NOPAD, HEXLOWER};
use ed25519_dalek::VerifyingKey;
use nightjar_proto::identity::Fingerprint;
use nightjar_store::{
    ContactRecord, ContactState, MessageRecord, RequestDirection as StoredDirection, RequestRecord,
};

use crate::{
    AuthOutcome, ContactView, Guarantees, Level, MessageDirection, MessageState, MessageView,
    PresenceState, RequestDirection, RequestView,
};

pub(crate) fn fingerprint_of(key: &[u8; 32]) -> String {
    VerifyingKey::from_bytes(key)
        .map(|k| Fingerprint::of(&k).to_string())
        .unwrap_or_else(|_| "(invalid key)".into())
}

pub(crate) fn key_text(key: &[u8; 32]) -> String {
    BASE32_NOPAD.encode(key).to_ascii_lowercase()
}

pub(crate) fn id_text(id: &[u8; 16]) -> String {
    HEXLOWER.encode(id)
}

pub(crate) struct Live {
    pub online: bool,
    pub guarantees: Guarantees,
    pub authenticated: bool,
    pub presence: Option<PresenceState>,
    pub unread: usize,
    pub last_auth: Option<AuthOutcome>,
}

pub(crate) fn contact(record: &ContactRecord, live: Live) -> ContactView {
    ContactView {
        name: record.name.clone(),
        level: if live.authenticated {
            Level::Authenticated
        } else if record.verified {
            Level::Verified
        } else {
            Level::Unverified
        },
        verified: record.verified,
        fingerprint: fingerprint_of(&record.identity_key),
        identity_key: key_text(&record.identity_key),
        online: live.online,
        presence: live.presence,
        share_presence: record.share_presence,
        pending: record.state == ContactState::Accepting,
        unread: live.unread,
        require_auth: record.require_auth,
        last_auth: live.last_auth,
        guarantees: live.guarantees,
    }
}

pub(crate) fn request(record: &RequestRecord) -> RequestView {
    RequestView {
        id: record.id,
        direction: match record.direction {
            StoredDirection::Incoming => RequestDirection::Incoming,
            StoredDirection::Outgoing => RequestDirection::Outgoing,
        },
        name: record.name.clone(),
        fingerprint: fingerprint_of(&record.peer_key),
        greeting: record.greeting.clone(),
        delivered: record.delivered,
        created_at_ms: record.created_at_ms,
    }
}

pub(crate) fn message(contact: &str, record: &MessageRecord) -> MessageView {
    MessageView {
        contact: contact.to_owned(),
        id: id_text(&record.id),
        direction: match record.direction {
            nightjar_store::Direction::Incoming => MessageDirection::Incoming,
            nightjar_store::Direction::Outgoing => MessageDirection::Outgoing,
        },
        body: record.body.clone(),
        sent_at_ms: record.sent_at_ms,
        state: state(record.state),
        via_mailbox: record.via_mailbox,
        direct: record.direct,
    }
}

pub(crate) fn state(state: nightjar_store::MessageState) -> MessageState {
    match state {
        nightjar_store::MessageState::Queued => MessageState::Queued,
        nightjar_store::MessageState::Deposited => MessageState::Deposited,
        nightjar_store::MessageState::Sent => MessageState::Sent,
        nightjar_store::MessageState::Delivered => MessageState::Delivered,
        nightjar_store::MessageState::Received => MessageState::Received,
    }
}

/// Local names: short, printable, no spaces, so commands can take them as words.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The digits of a fingerprint as people read it out (spaces, dashes ignored).
pub(crate) fn fingerprint_digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("bob"));
        assert!(valid_name("alice.smith-2_x"));
        assert!(!valid_name(""));
        assert!(!valid_name("has space"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(33)));
    }

    #[test]
    fn fingerprint_digits_ignore_separators() {
        assert_eq!(fingerprint_digits("12345 67890-11111"), "123456789011111");
    }
}

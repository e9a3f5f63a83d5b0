//! Offline delivery through mailboxes: our own mailboxes, the chains messages are
//! sealed and opened with, and the sealed blobs kept until their receipt.
//!
//! Chain states are opaque bytes here (the protocol crate reads and writes them);
//! they are secret, so they come back in zeroizing memory.

use std::fmt;

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::rows::{self, RECV_CHAIN_COLUMNS, SEALED_COLUMNS, time_to_sql};
use crate::{
    BLOB_LEN, ContactId, Direction, MessageRecord, MessageState, NewMessage, Store, StoreError,
    check_contact, query_all, query_one,
};

/// Most mailboxes of our own (what one drop grant can name).
const MAX_MAILBOXES: usize = 4;
/// Receive chains kept per contact; older ones are dropped.
const MAX_RECV_CHAINS: usize = 4;

/// An outgoing message sealed for a mailbox, about to be stored.
pub struct NewSealed<'a> {
    /// The outgoing message it carries.
    pub message_seq: i64,
    /// Its step on the send chain.
    pub counter: u32,
    /// The Ed25519 seed of its mailbox slot.
    pub slot_seed: &'a [u8; 32],
    /// Its parts, in order; all go into the same slot.
    pub blobs: &'a [[u8; BLOB_LEN]],
    /// The mailboxes it may go to (the recipient's, from their grant).
    pub mailboxes: &'a [[u8; 32]],
}

/// A sealed outgoing message, as stored.
pub struct SealedRecord {
    pub message_seq: i64,
    pub counter: u32,
    pub slot_seed: Zeroizing<[u8; 32]>,
    pub blobs: Vec<[u8; BLOB_LEN]>,
    pub mailboxes: Vec<[u8; 32]>,
    /// The mailbox it was last deposited to, if the deposit still stands.
    pub deposited_to: Option<[u8; 32]>,
    /// That mailbox's instance id at the time: a different one means it restarted
    /// and lost the blobs.
    pub instance: Option<[u8; 16]>,
    pub deposited_at_ms: Option<u64>,
}

/// A chain we open a contact's sealed messages with (one per drop grant we gave).
pub struct RecvChainRecord {
    pub id: i64,
    pub contact: ContactId,
    pub grant_id: [u8; 16],
    /// The protocol's serialized receive chain.
    pub state: Zeroizing<Vec<u8>>,
    /// Something has been drained through it.
    pub used: bool,
    pub created_at_ms: u64,
}

/// A text taken out of a mailbox, about to be stored.
pub struct IncomingText<'a> {
    /// The sender's random id (for receipts and de-duplication).
    pub id: &'a [u8; 16],
    pub body: &'a str,
    /// The sender's clock.
    pub sent_at_ms: u64,
}

/// Shows neither the slot seed, the blobs nor the mailboxes.
impl fmt::Debug for NewSealed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSealed")
            .field("message_seq", &self.message_seq)
            .field("counter", &self.counter)
            .field("blobs", &self.blobs.len())
            .field("mailboxes", &self.mailboxes.len())
            .finish_non_exhaustive()
    }
}

/// Shows neither the slot seed, the blobs nor the mailboxes.
impl fmt::Debug for SealedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedRecord")
            .field("message_seq", &self.message_seq)
            .field("counter", &self.counter)
            .field("blobs", &self.blobs.len())
            .field("mailboxes", &self.mailboxes.len())
            .field("deposited", &self.deposited_to.is_some())
            .field("deposited_at_ms", &self.deposited_at_ms)
            .finish_non_exhaustive()
    }
}

/// Shows neither the state nor the grant.
impl fmt::Debug for RecvChainRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvChainRecord")
            .field("id", &self.id)
            .field("contact", &self.contact)
            .field("used", &self.used)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// Shows the body's length only.
impl fmt::Debug for IncomingText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingText")
            .field("body_len", &self.body.len())
            .field("sent_at_ms", &self.sent_at_ms)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Our own mailboxes' onion keys, in the order they were added.
    pub fn mailboxes(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        query_all(
            &self.conn,
            "SELECT onion_key FROM mailboxes ORDER BY id",
            [],
            rows::onion_key,
        )
    }

    /// Adds one of our mailboxes; `false` if it is there already, `TooMany` if
    /// four are.
    pub fn add_mailbox(&mut self, onion_key: &[u8; 32]) -> Result<bool, StoreError> {
        let tx = self.begin()?;
        let (present, count): (bool, i64) = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE onion_key = ?1), \
             (SELECT count(*) FROM mailboxes)",
            [onion_key.as_slice()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        if present {
            return Ok(false);
        }
        if !usize::try_from(count).is_ok_and(|n| n < MAX_MAILBOXES) {
            return Err(StoreError::TooMany("mailboxes (at most 4)"));
        }
        tx.execute(
            "INSERT INTO mailboxes (onion_key) VALUES (?1)",
            [onion_key.as_slice()],
        )?;
        tx.commit()?;
        Ok(true)
    }

    pub fn remove_mailbox(&mut self, onion_key: &[u8; 32]) -> Result<(), StoreError> {
        self.update_one(
            "DELETE FROM mailboxes WHERE onion_key = ?1",
            [onion_key.as_slice()],
        )
    }

    /// The chain we seal messages to `contact` with, if they gave us a grant.
    pub fn send_chain(&self, contact: ContactId) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        query_one(
            &self.conn,
            "SELECT state FROM drop_send WHERE contact = ?1",
            [contact],
            rows::chain_state,
        )
    }

    /// Sets (or replaces, for a newer grant) the chain we seal messages to
    /// `contact` with.
    pub fn set_send_chain(&mut self, contact: ContactId, state: &[u8]) -> Result<(), StoreError> {
        let tx = self.begin()?;
        put_send_chain(&tx, contact, state)?;
        tx.commit()?;
        Ok(())
    }

    /// In one transaction: the advanced send chain and the message sealed with the
    /// step it advanced past. Both are on disk before any blob leaves, so a step's
    /// keys are never used for a second plaintext. The message must be an outgoing
    /// one of `contact`'s, not sealed before.
    pub fn put_sealed(
        &mut self,
        contact: ContactId,
        state: &[u8],
        sealed: &NewSealed<'_>,
    ) -> Result<(), StoreError> {
        let tx = self.begin()?;
        let (owner, direction, already): (ContactId, i64, bool) = tx
            .query_row(
                "SELECT contact, direction, \
                 EXISTS (SELECT 1 FROM sealed WHERE message_seq = seq) \
                 FROM messages WHERE seq = ?1",
                [sealed.message_seq],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?
            .ok_or(StoreError::NotFound)?;
        if owner != contact || direction != rows::direction_code(Direction::Outgoing) {
            return Err(StoreError::NotFound);
        }
        if already {
            return Err(StoreError::Corrupt(
                "an outgoing message was sealed twice".to_owned(),
            ));
        }
        put_send_chain(&tx, contact, state)?;
        tx.execute(
            "INSERT INTO sealed (message_seq, counter, slot_seed, blobs, mailboxes) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                sealed.message_seq,
                rows::counter_to_sql(sealed.counter),
                sealed.slot_seed.as_slice(),
                sealed.blobs.concat(),
                sealed.mailboxes.concat(),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The contact's sealed messages to deposit or keep an eye on, in message
    /// order: those whose message has no receipt yet, and those never deposited
    /// although their message was delivered another way (deposited all the same,
    /// so the recipient's window of counters moves past them).
    pub fn sealed_pending(&self, contact: ContactId) -> Result<Vec<SealedRecord>, StoreError> {
        let sql = format!(
            "SELECT {SEALED_COLUMNS} FROM sealed JOIN messages ON messages.seq = message_seq \
             WHERE messages.contact = ?1 AND (messages.state <> ?2 OR deposited_to IS NULL) \
             ORDER BY message_seq"
        );
        let delivered = rows::message_state_code(MessageState::Delivered);
        query_all(&self.conn, &sql, params![contact, delivered], rows::sealed)
    }

    /// Records that the sealed message was deposited to `mailbox`, whose instance
    /// was `instance`: the message went via a mailbox, and if it was Queued it
    /// becomes Deposited (one already Sent or Delivered stays so).
    pub fn mark_deposited(
        &mut self,
        message_seq: i64,
        mailbox: &[u8; 32],
        instance: &[u8; 16],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let now = time_to_sql(now_ms)?;
        self.update_deposit(
            message_seq,
            "UPDATE sealed SET deposited_to = ?2, instance = ?3, deposited_at_ms = ?4 \
             WHERE message_seq = ?1",
            params![message_seq, mailbox.as_slice(), instance.as_slice(), now],
            (MessageState::Queued, MessageState::Deposited),
            true,
        )?;
        // Delivered another way meanwhile: nothing more to watch.
        self.conn.execute(
            "DELETE FROM sealed WHERE message_seq = ?1 AND EXISTS \
             (SELECT 1 FROM messages WHERE seq = ?1 AND state = ?2)",
            params![
                message_seq,
                rows::message_state_code(MessageState::Delivered)
            ],
        )?;
        Ok(())
    }

    /// The mailbox lost the sealed message (it restarted): it is no longer
    /// deposited anywhere (nor did it go via a mailbox), and a Deposited message
    /// is Queued again.
    pub fn mark_lost(&mut self, message_seq: i64) -> Result<(), StoreError> {
        self.update_deposit(
            message_seq,
            "UPDATE sealed SET deposited_to = NULL, instance = NULL, deposited_at_ms = NULL \
             WHERE message_seq = ?1",
            params![message_seq],
            (MessageState::Deposited, MessageState::Queued),
            false,
        )
    }

    /// Runs `sealed_update` on the message's sealed row (`NotFound` without one),
    /// sets whether the outgoing message went via a mailbox, and moves it from one
    /// state to another if it is in the first, in one transaction.
    fn update_deposit(
        &mut self,
        message_seq: i64,
        sealed_update: &str,
        params: impl rusqlite::Params,
        (from, to): (MessageState, MessageState),
        via_mailbox: bool,
    ) -> Result<(), StoreError> {
        let tx = self.begin()?;
        if tx.execute(sealed_update, params)? == 0 {
            return Err(StoreError::NotFound);
        }
        tx.execute(
            "UPDATE messages SET via_mailbox = ?2 WHERE seq = ?1 AND direction = ?3",
            params![
                message_seq,
                via_mailbox,
                rows::direction_code(Direction::Outgoing)
            ],
        )?;
        tx.execute(
            "UPDATE messages SET state = ?2 WHERE seq = ?1 AND direction = ?3 AND state = ?4",
            params![
                message_seq,
                rows::message_state_code(to),
                rows::direction_code(Direction::Outgoing),
                rows::message_state_code(from),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every receive chain, of all contacts, oldest first.
    pub fn recv_chains(&self) -> Result<Vec<RecvChainRecord>, StoreError> {
        let sql = format!("SELECT {RECV_CHAIN_COLUMNS} FROM drop_recv ORDER BY id");
        query_all(&self.conn, &sql, [], rows::recv_chain)
    }

    /// Stores a receive chain for a grant we gave `contact`, unused; of the
    /// contact's chains only the newest four are kept. Returns its id.
    pub fn add_recv_chain(
        &mut self,
        contact: ContactId,
        grant_id: &[u8; 16],
        state: &[u8],
        now_ms: u64,
    ) -> Result<i64, StoreError> {
        let now = time_to_sql(now_ms)?;
        let keep = i64::try_from(MAX_RECV_CHAINS).unwrap_or(i64::MAX);
        let tx = self.begin()?;
        check_contact(&tx, contact)?;
        tx.execute(
            "INSERT INTO drop_recv (contact, grant_id, state, used, created_at_ms) \
             VALUES (?1, ?2, ?3, 0, ?4)",
            params![contact, grant_id.as_slice(), state, now],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "DELETE FROM drop_recv WHERE contact = ?1 AND id NOT IN \
             (SELECT id FROM drop_recv WHERE contact = ?1 ORDER BY id DESC LIMIT ?2)",
            params![contact, keep],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// In one transaction: the texts drained through receive chain `chain`, stored
    /// as incoming from its contact and marked as having come through a mailbox,
    /// and the chain's new state (marked used). Per text, like
    /// [`Store::store_incoming`]: `None` if its id was stored before, by either
    /// way.
    pub fn store_drained(
        &mut self,
        chain: i64,
        state: &[u8],
        messages: &[IncomingText<'_>],
        now_ms: u64,
    ) -> Result<Vec<Option<MessageRecord>>, StoreError> {
        let tx = self.begin()?;
        let contact: ContactId = tx
            .query_row(
                "SELECT contact FROM drop_recv WHERE id = ?1",
                [chain],
                |row| row.get(0),
            )
            .optional()?
            .ok_or(StoreError::NotFound)?;
        let mut stored = Vec::with_capacity(messages.len());
        for text in messages {
            let message = NewMessage {
                contact,
                id: text.id,
                direction: Direction::Incoming,
                body: text.body,
                sent_at_ms: text.sent_at_ms,
                now_ms,
                state: MessageState::Received,
                via_mailbox: true,
            };
            stored.push(message.insert(&tx)?);
        }
        tx.execute(
            "UPDATE drop_recv SET state = ?2, used = 1 WHERE id = ?1",
            params![chain, state],
        )?;
        tx.commit()?;
        Ok(stored)
    }
}

fn put_send_chain(conn: &Connection, contact: ContactId, state: &[u8]) -> Result<(), StoreError> {
    check_contact(conn, contact)?;
    conn.execute(
        "INSERT INTO drop_send (contact, state) VALUES (?1, ?2) \
         ON CONFLICT (contact) DO UPDATE SET state = excluded.state",
        params![contact, state],
    )?;
    Ok(())
}

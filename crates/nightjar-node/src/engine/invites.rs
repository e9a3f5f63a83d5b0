//! The engine's side of invite codes: starting the tasks that talk to the
//! rendezvous server, and storing (or undoing) the contact they agree on.

use std::collections::{HashMap, HashSet};

use nightjar_proto::invite::Invitation;
use nightjar_proto::message::EndpointGrant;
use nightjar_store::{DirectContact, StoreError};
use nightjar_wormhole::Code;

use super::{Backoff, Engine, SECOND_DIAL_AFTER, name_taken, random_secret};
use crate::invite::{self, Exchanged, InviteTask};
use crate::net::Report;
use crate::views;
use crate::{ContactView, Event, InviteView, NodeError, Reply};

/// Invites in progress, by the name the new contact will get.
#[derive(Debug, Default)]
pub(super) struct Invites {
    names: HashSet<String>,
    /// Contacts stored by an invite whose other side has not confirmed yet, by
    /// name: (contact id, their identity key).
    unconfirmed: HashMap<String, (i64, [u8; 32])>,
}

impl Engine {
    /// Checks `name` for a new contact and builds our half of the exchange.
    fn prepare_invite(&mut self, name: &str, require_auth: bool) -> Result<InviteTask, NodeError> {
        if !views::valid_name(name) {
            return Err(NodeError::BadName(name.to_owned()));
        }
        let taken = self.store.contact_by_name(name)?.is_some()
            || self.invites.names.contains(name)
            || self
                .store
                .requests()?
                .iter()
                .any(|r| r.name.as_deref() == Some(name));
        if taken {
            return Err(NodeError::NameTaken(name.to_owned()));
        }
        let ours = Invitation {
            identity: self.identity.public().signing_key().to_bytes(),
            request_onion: *self.request_service.address().public_key(),
            grant: EndpointGrant {
                onion_key: *self.endpoint_service.address().public_key(),
                credential: *random_secret(),
            },
            require_auth,
        };
        self.invites.names.insert(name.to_owned());
        Ok(InviteTask {
            tor: self.transport.clone(),
            rendezvous: self.rendezvous.clone(),
            ours,
            name: name.to_owned(),
            reports: self.reports_tx.clone(),
        })
    }

    pub(super) fn create_invite(
        &mut self,
        name: &str,
        require_auth: bool,
        reply: Reply<InviteView>,
    ) {
        let task = match self.prepare_invite(name, require_auth) {
            Ok(task) => task,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let (name, reports) = (task.name.clone(), task.reports.clone());
        tokio::spawn(async move {
            let result = invite::host(task, reply).await;
            let result = result.map_err(|e| invite::reason(&e));
            let _ = reports.send(Report::InviteFinished { name, result }).await;
        });
    }

    pub(super) fn join_invite(
        &mut self,
        code: &str,
        name: &str,
        require_auth: bool,
        reply: Reply<ContactView>,
    ) {
        let prepared = Code::parse(code)
            .map_err(|e| NodeError::BadCode(e.to_string()))
            .and_then(|code| Ok((code, self.prepare_invite(name, require_auth)?)));
        let (code, task) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let (name, reports) = (task.name.clone(), task.reports.clone());
        tokio::spawn(async move {
            let result = invite::join(task, code).await;
            let finished = Report::InviteFinished {
                name,
                result: result.as_ref().map(Clone::clone).map_err(invite::reason),
            };
            let _ = reports.send(finished).await;
            let _ = reply.send(result);
        });
    }

    /// Both invitations are known: store the contact (not yet announced: the
    /// other side has to confirm it stored us too).
    pub(super) async fn invite_exchanged(&mut self, exchanged: Exchanged) {
        let Exchanged {
            name,
            ours,
            theirs,
            stored,
        } = exchanged;
        let result = if theirs.identity == ours.identity {
            Err(NodeError::Invite("that is your own invite code".into()))
        } else {
            self.store
                .add_direct_contact(
                    &DirectContact {
                        name: &name,
                        identity_key: &theirs.identity,
                        their_endpoint: &theirs.grant.onion_key,
                        their_credential: &theirs.grant.credential,
                        our_credential: &ours.grant.credential,
                        require_auth: ours.require_auth || theirs.require_auth,
                    },
                    super::now_ms(),
                )
                .map_err(|e| match e {
                    StoreError::KnownKey(known) => NodeError::AlreadyKnown(known),
                    other => name_taken(&name)(other),
                })
        };
        let result = match result {
            Ok(record) => {
                self.invites
                    .unconfirmed
                    .insert(name.clone(), (record.id, record.identity_key));
                // Let them in before they try.
                self.refresh_authorizations().await;
                Ok(self.view(&record))
            }
            Err(e) => Err(e),
        };
        let _ = stored.send(result);
    }

    /// The other side confirmed the contact (it exists on both sides now), or did
    /// not (ours is removed again).
    pub(super) async fn invite_settled(&mut self, name: &str, confirmed: bool) {
        let Some((id, key)) = self.invites.unconfirmed.remove(name) else {
            return;
        };
        if !confirmed {
            if let Err(e) = self.remove_contact(id).await {
                self.warn(format!("could not undo an invite: {e}"));
            }
            return;
        }
        // Requests between us are answered by the invite.
        if let Err(e) = self.store.drop_requests_with(&key) {
            self.warn(format!("could not update requests: {e}"));
        }
        match self.store.contact(id) {
            Ok(record) => {
                // Both sides know each other at once, and the link both keep
                // is the one dialled by the smaller identity key: that side
                // dials now, the other only if no link came after a while, so
                // two links (and an authentication cut short by the switch
                // from one to the other) are rare.
                let ours = self.identity.public().signing_key().to_bytes();
                let backoff = if ours < record.identity_key {
                    Backoff::now()
                } else {
                    Backoff::after(SECOND_DIAL_AFTER)
                };
                self.dials.insert(record.id, backoff);
                self.emit(Event::ContactAdded {
                    contact: self.view(&record),
                });
            }
            Err(e) => self.warn(format!("could not read contacts: {e}")),
        }
    }

    pub(super) fn invite_finished(&mut self, name: String, result: Result<ContactView, String>) {
        self.invites.names.remove(&name);
        match result {
            Ok(contact) => self.emit(Event::InviteCompleted { contact }),
            Err(reason) => self.emit(Event::InviteFailed { name, reason }),
        }
    }
}

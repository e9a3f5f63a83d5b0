//! One member's side of a group.

use std::collections::VecDeque;

use nightjar_proto::identity::IdentityKeyPair;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    Ciphersuite, GroupId, KeyPackage, KeyPackageIn, LeafNodeIndex, LeafNodeParameters, MlsGroup,
    MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    PURE_CIPHERTEXT_WIRE_FORMAT_POLICY, ProcessedMessageContent, ProtocolVersion, Sender,
    SenderRatchetConfiguration, StagedWelcome,
};
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::GroupError;
use crate::cell::{Assembler, MessageId, RoomKeys};
use crate::credential::{IdentityKey, MemberKey, named, vouched};

/// Every nightjar group's ciphersuite.
const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;

/// How many of our own recent messages we recognise when the relay hands them back.
const OWN_REMEMBERED: usize = 4096;

/// Texts tolerated out of order within an epoch, and how far ahead a sender's
/// chain may run (a member offline for a while reads everything in order, so
/// these bound only a sender's messages lost or reordered at the relay).
const OUT_OF_ORDER: u32 = 64;
const MAX_FORWARD: u32 = 10_000;
/// Earlier epochs whose texts still open: a member that sent before it read a
/// change is still read by the others.
const PAST_EPOCHS: usize = 4;

/// What a member posts to the room inside MLS application messages.
const KIND_TEXT: u8 = 1;
const KIND_LEAVING: u8 = 2;

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(OUT_OF_ORDER, MAX_FORWARD))
        .max_past_epochs(PAST_EPOCHS)
        .use_ratchet_tree_extension(true)
        .build()
}

/// What a new member receives over its pairwise session with the inviter.
pub struct Invitation {
    /// The room's secret (names the room at the relay and seals its cells).
    pub room_secret: Zeroizing<[u8; 32]>,
    /// The MLS Welcome.
    pub welcome: Vec<u8>,
    /// Whom it is for.
    pub invitees: Vec<IdentityKey>,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("welcome_len", &self.welcome.len())
            .finish_non_exhaustive()
    }
}

/// A key package given to an inviter, waiting for the Welcome it will bring.
pub struct Joining {
    provider: OpenMlsRustCrypto,
    key: MemberKey,
    identity: IdentityKey,
}

impl Joining {
    /// Makes a one-time key package (what an inviter needs to add us).
    pub fn new<R: CryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), GroupError> {
        let provider = OpenMlsRustCrypto::default();
        let key = MemberKey::generate(rng);
        let bundle = KeyPackage::builder()
            .build(CIPHERSUITE, &provider, &key, key.credential(identity))
            .map_err(GroupError::mls)?;
        let bytes = tls(bundle.key_package())?;
        let joining = Self {
            provider,
            key,
            identity: identity.public().signing_key().to_bytes(),
        };
        Ok((joining, bytes))
    }

    /// Joins with the Welcome the inviter sent. Every member's credential is
    /// checked, and so is the inviter's identity (`inviter`: the contact the
    /// invitation came from).
    pub fn join(self, invitation: &Invitation, inviter: &IdentityKey) -> Result<Group, GroupError> {
        let MlsMessageBodyIn::Welcome(welcome) =
            MlsMessageIn::tls_deserialize_exact(invitation.welcome.as_slice())
                .map_err(GroupError::mls)?
                .extract()
        else {
            return Err(GroupError::Malformed("not a Welcome".into()));
        };
        let staged = StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
            .map_err(GroupError::mls)?;
        let mut inviter_is_member = false;
        for member in staged.members() {
            let who = vouched(&member.credential, &member.signature_key)?;
            inviter_is_member |= who == *inviter;
        }
        if !inviter_is_member {
            return Err(GroupError::BadCredential);
        }
        let mls = staged.into_group(&self.provider).map_err(GroupError::mls)?;
        Ok(Group {
            provider: self.provider,
            key: self.key,
            identity: self.identity,
            mls,
            room: RoomKeys::from_secret(&invitation.room_secret),
            assembler: Assembler::default(),
            ours: VecDeque::new(),
            pending: None,
        })
    }
}

impl std::fmt::Debug for Joining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joining").finish_non_exhaustive()
    }
}

/// Our change to the group, posted and waiting for the relay to order it.
struct Pending {
    id: MessageId,
    welcome: Option<Vec<u8>>,
    added: Vec<IdentityKey>,
}

/// One member's state of one group.
pub struct Group {
    provider: OpenMlsRustCrypto,
    key: MemberKey,
    identity: IdentityKey,
    mls: MlsGroup,
    room: RoomKeys,
    assembler: Assembler,
    /// Ids of what we posted, to skip it when the relay hands it back.
    ours: VecDeque<MessageId>,
    pending: Option<Pending>,
}

/// What a cell read from the room meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Nothing to show: a part of a longer message, our own message, a stale
    /// change that lost a race.
    Nothing,
    /// A member's text.
    Text { from: IdentityKey, text: String },
    /// A member changed who is in the group.
    Changed {
        by: IdentityKey,
        added: Vec<IdentityKey>,
        removed: Vec<IdentityKey>,
    },
    /// Our own change came back first and is now in force. Its Welcome, if it
    /// added anyone, is in [`Received::invitation`].
    Confirmed {
        added: Vec<IdentityKey>,
        removed: Vec<IdentityKey>,
    },
    /// Another change in the same epoch came first; ours was dropped (make it
    /// again if it is still wanted).
    Superseded,
    /// A member said it leaves (it is removed once a member commits that).
    Leaving { who: IdentityKey },
    /// We were removed from the group (or our leaving went through).
    Removed { by: IdentityKey },
}

/// The result of reading one cell.
#[derive(Debug)]
pub struct Received {
    pub incoming: Incoming,
    /// Cells to post in answer (a member's leaving, committed by us).
    pub post: Vec<Vec<u8>>,
    /// The Welcome of a change of ours that added members: send it to them.
    pub invitation: Option<Invitation>,
}

impl Received {
    fn only(incoming: Incoming) -> Self {
        Self {
            incoming,
            post: Vec::new(),
            invitation: None,
        }
    }
}

impl Group {
    /// Creates a group with us as its only member, in a new room.
    pub fn create<R: CryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<Self, GroupError> {
        let provider = OpenMlsRustCrypto::default();
        let key = MemberKey::generate(rng);
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
            .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                OUT_OF_ORDER,
                MAX_FORWARD,
            ))
            .max_past_epochs(PAST_EPOCHS)
            .use_ratchet_tree_extension(true)
            .build();
        let mls = MlsGroup::new(&provider, &key, &config, key.credential(identity))
            .map_err(GroupError::mls)?;
        Ok(Self {
            provider,
            key,
            identity: identity.public().signing_key().to_bytes(),
            mls,
            room: RoomKeys::generate(rng),
            assembler: Assembler::default(),
            ours: VecDeque::new(),
            pending: None,
        })
    }

    /// The room: its relay key, and the secret a new member gets.
    pub fn room(&self) -> &RoomKeys {
        &self.room
    }

    /// Our identity key.
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    /// The group's members' identities, ourselves included.
    pub fn members(&self) -> Vec<IdentityKey> {
        self.mls
            .members()
            .filter_map(|m| named(&m.credential))
            .collect()
    }

    /// How many changes the group has been through.
    pub fn epoch(&self) -> u64 {
        self.mls.epoch().as_u64()
    }

    /// Whether we are still a member.
    pub fn is_active(&self) -> bool {
        self.mls.is_active()
    }

    /// Whether a change of ours waits for the relay.
    pub fn change_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Seals a text for the room: the cells to post.
    pub fn send<R: CryptoRng + ?Sized>(
        &mut self,
        text: &str,
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        let mut body = Zeroizing::new(Vec::with_capacity(1 + text.len()));
        body.push(KIND_TEXT);
        body.extend_from_slice(text.as_bytes());
        self.application(&body, rng)
    }

    /// Tells the group we leave. A remaining member removes us (the one with
    /// the lowest place in the tree, when it reads this); until then we still
    /// read the room.
    pub fn leave<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        self.application(&[KIND_LEAVING], rng)
    }

    fn application<R: CryptoRng + ?Sized>(
        &mut self,
        body: &[u8],
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        if !self.mls.is_active() {
            return Err(GroupError::Evicted);
        }
        let message = self
            .mls
            .create_message(&self.provider, &self.key, body)
            .map_err(GroupError::mls)?;
        self.post_own(&message, rng)
    }

    /// Adds members from their key packages, each of which must name the
    /// identity given with it (the contact it came from). Returns the cells of
    /// the change; the Welcome follows in [`Received::invitation`] once the
    /// relay has ordered the change.
    pub fn invite<R: CryptoRng + ?Sized>(
        &mut self,
        key_packages: &[(IdentityKey, Vec<u8>)],
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        self.ready_for_change()?;
        let mut packages = Vec::with_capacity(key_packages.len());
        let mut added = Vec::with_capacity(key_packages.len());
        for (expected, bytes) in key_packages {
            let package = KeyPackageIn::tls_deserialize_exact(bytes.as_slice())
                .map_err(GroupError::mls)?
                .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                .map_err(GroupError::mls)?;
            let leaf = package.leaf_node();
            let who = vouched(leaf.credential(), leaf.signature_key().as_slice())?;
            if who != *expected {
                return Err(GroupError::BadCredential);
            }
            if self.members().contains(&who) {
                return Err(GroupError::Malformed("already a member".into()));
            }
            packages.push(package);
            added.push(who);
        }
        let (commit, welcome, _) = self
            .mls
            .add_members(&self.provider, &self.key, &packages)
            .map_err(GroupError::mls)?;
        let welcome = tls(&welcome)?;
        self.post_change(&commit, Some(welcome), added, rng)
    }

    /// Removes members. They can read nothing sent after the change.
    pub fn remove<R: CryptoRng + ?Sized>(
        &mut self,
        members: &[IdentityKey],
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        self.ready_for_change()?;
        let leaves = members
            .iter()
            .map(|who| self.leaf_of(who).ok_or(GroupError::NotMember))
            .collect::<Result<Vec<_>, _>>()?;
        let (commit, _, _) = self
            .mls
            .remove_members(&self.provider, &self.key, &leaves)
            .map_err(GroupError::mls)?;
        self.post_change(&commit, None, Vec::new(), rng)
    }

    /// Replaces our keys in the group (post-compromise security).
    pub fn update<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        self.ready_for_change()?;
        let bundle = self
            .mls
            .self_update(&self.provider, &self.key, LeafNodeParameters::default())
            .map_err(GroupError::mls)?;
        let (commit, _, _) = bundle.into_contents();
        self.post_change(&commit, None, Vec::new(), rng)
    }

    fn ready_for_change(&self) -> Result<(), GroupError> {
        if !self.mls.is_active() {
            return Err(GroupError::Evicted);
        }
        if self.pending.is_some() {
            return Err(GroupError::ChangePending);
        }
        Ok(())
    }

    fn leaf_of(&self, who: &IdentityKey) -> Option<LeafNodeIndex> {
        self.mls
            .members()
            .find(|m| named(&m.credential).as_ref() == Some(who))
            .map(|m| m.index)
    }

    fn post_own<R: CryptoRng + ?Sized>(
        &mut self,
        message: &MlsMessageOut,
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        let bytes = Zeroizing::new(tls(message)?);
        let (id, cells) = self.room.seal(&bytes, rng)?;
        if self.ours.len() == OWN_REMEMBERED {
            self.ours.pop_front();
        }
        self.ours.push_back(id);
        Ok(cells)
    }

    fn post_change<R: CryptoRng + ?Sized>(
        &mut self,
        commit: &MlsMessageOut,
        welcome: Option<Vec<u8>>,
        added: Vec<IdentityKey>,
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        let bytes = tls(commit)?;
        let (id, cells) = self.room.seal(&bytes, rng)?;
        self.pending = Some(Pending { id, welcome, added });
        Ok(cells)
    }

    /// Reads one cell from the room, in the relay's order.
    pub fn receive<R: CryptoRng + ?Sized>(
        &mut self,
        cell: &[u8],
        rng: &mut R,
    ) -> Result<Received, GroupError> {
        let Some((id, bytes)) = self.assembler.push(&self.room, cell)? else {
            return Ok(Received::only(Incoming::Nothing));
        };
        if self.pending.as_ref().is_some_and(|p| p.id == id) {
            return self.confirm();
        }
        if self.ours.contains(&id) || !self.mls.is_active() {
            return Ok(Received::only(Incoming::Nothing));
        }
        let message = MlsMessageIn::tls_deserialize_exact(bytes.as_slice())
            .map_err(GroupError::mls)?
            .try_into_protocol_message()
            .map_err(GroupError::mls)?;
        if message.group_id() != self.mls.group_id() {
            return Ok(Received::only(Incoming::Nothing));
        }
        let processed = match self.mls.process_message(&self.provider, message) {
            Ok(processed) => processed,
            Err(e) => {
                // A change that lost a race to another in its epoch, or a text
                // from further back than the epochs we keep.
                tracing::debug!("a room message did not process: {e}");
                return Ok(Received::only(Incoming::Nothing));
            }
        };
        let Some(from) = named(processed.credential()) else {
            return Ok(Received::only(Incoming::Nothing));
        };
        let sender = match processed.sender() {
            Sender::Member(leaf) => Some(*leaf),
            _ => None,
        };
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(message) => {
                let body = Zeroizing::new(message.into_bytes());
                self.application_received(from, sender, &body, rng)
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let mut added = Vec::new();
                for add in staged.add_proposals() {
                    let leaf = add.add_proposal().key_package().leaf_node();
                    added.push(vouched(leaf.credential(), leaf.signature_key().as_slice())?);
                }
                let removed: Vec<IdentityKey> = staged
                    .remove_proposals()
                    .filter_map(|r| self.mls.member(r.remove_proposal().removed()))
                    .filter_map(named)
                    .collect();
                let self_removed = staged.self_removed();
                // A change of ours in this epoch can no longer happen.
                let superseded = self.pending.take().is_some();
                self.mls
                    .merge_staged_commit(&self.provider, *staged)
                    .map_err(GroupError::mls)?;
                if self_removed {
                    return Ok(Received::only(Incoming::Removed { by: from }));
                }
                if superseded {
                    tracing::debug!("a change of ours lost to another in the same epoch");
                }
                Ok(Received::only(if superseded {
                    Incoming::Superseded
                } else {
                    Incoming::Changed {
                        by: from,
                        added,
                        removed,
                    }
                }))
            }
            ProcessedMessageContent::OwnPendingCommit => self.confirm(),
            ProcessedMessageContent::ProposalMessage(_)
            | ProcessedMessageContent::ExternalJoinProposalMessage(_)
            | ProcessedMessageContent::OwnPrivateMessage => {
                // Members change the group by commits only.
                Ok(Received::only(Incoming::Nothing))
            }
        }
    }

    fn application_received<R: CryptoRng + ?Sized>(
        &mut self,
        from: IdentityKey,
        sender: Option<LeafNodeIndex>,
        body: &[u8],
        rng: &mut R,
    ) -> Result<Received, GroupError> {
        match body.split_first() {
            Some((&KIND_TEXT, text)) => match std::str::from_utf8(text) {
                Ok(text) => Ok(Received::only(Incoming::Text {
                    from,
                    text: text.to_owned(),
                })),
                Err(_) => Ok(Received::only(Incoming::Nothing)),
            },
            Some((&KIND_LEAVING, [])) => {
                let mut received = Received::only(Incoming::Leaving { who: from });
                let Some(leaver) = sender else {
                    return Ok(received);
                };
                // The remaining member lowest in the tree commits the removal.
                let committer = self
                    .mls
                    .members()
                    .map(|m| m.index)
                    .filter(|&index| index != leaver)
                    .min();
                if committer == Some(self.mls.own_leaf_index()) && self.pending.is_none() {
                    received.post = self.remove(&[from], rng)?;
                }
                Ok(received)
            }
            _ => Ok(Received::only(Incoming::Nothing)),
        }
    }

    /// Our pending change came back first: it takes effect.
    fn confirm(&mut self) -> Result<Received, GroupError> {
        let Some(pending) = self.pending.take() else {
            return Ok(Received::only(Incoming::Nothing));
        };
        let removed: Vec<IdentityKey> = self
            .mls
            .pending_commit()
            .map(|staged| {
                staged
                    .remove_proposals()
                    .filter_map(|r| self.mls.member(r.remove_proposal().removed()))
                    .filter_map(named)
                    .collect()
            })
            .unwrap_or_default();
        self.mls
            .merge_pending_commit(&self.provider)
            .map_err(GroupError::mls)?;
        let invitation = pending.welcome.map(|welcome| Invitation {
            room_secret: Zeroizing::new(*self.room.secret()),
            welcome,
            invitees: pending.added.clone(),
        });
        Ok(Received {
            incoming: Incoming::Confirmed {
                added: pending.added,
                removed,
            },
            post: Vec::new(),
            invitation,
        })
    }

    /// The group's id (random; what the saved state is filed under).
    pub fn id(&self) -> &[u8] {
        self.mls.group_id().as_slice()
    }

    /// Everything needed to carry on after a restart, to be kept encrypted:
    /// the MLS state, our membership key, the room secret.
    /// A change of ours still on its way is saved with it (MLS keeps its
    /// pending commit in the state), so it takes effect when it comes back
    /// after a restart.
    pub fn save(&self) -> Result<Zeroizing<Vec<u8>>, GroupError> {
        let mut out = Zeroizing::new(Vec::new());
        out.push(SAVE_VERSION);
        out.extend_from_slice(self.key.seed().as_slice());
        out.extend_from_slice(self.room.secret());
        out.extend_from_slice(&self.identity);
        put(&mut out, self.mls.group_id().as_slice());
        match &self.pending {
            None => out.push(0),
            Some(pending) => {
                out.push(1);
                out.extend_from_slice(&pending.id);
                put(&mut out, pending.welcome.as_deref().unwrap_or_default());
                put(&mut out, pending.added.concat().as_slice());
            }
        }
        let values = self
            .provider
            .storage()
            .values
            .read()
            .map_err(|_| GroupError::Mls("storage lock poisoned".into()))?;
        out.extend_from_slice(&(values.len() as u32).to_be_bytes());
        for (key, value) in values.iter() {
            put(&mut out, key);
            put(&mut out, value);
        }
        Ok(out)
    }

    /// A group saved by [`Group::save`].
    pub fn restore(saved: &[u8]) -> Result<Self, GroupError> {
        let mut r = Reader(saved);
        if r.take(1)? != [SAVE_VERSION] {
            return Err(GroupError::Malformed("unknown saved group version".into()));
        }
        let key = MemberKey::from_seed(r.array()?);
        let room = RoomKeys::from_secret(r.array()?);
        let identity = *r.array()?;
        let group_id = GroupId::from_slice(r.field()?);
        let pending = match r.take(1)? {
            [0] => None,
            [1] => {
                let id = *r.array()?;
                let welcome = r.field()?;
                let added = r.field()?;
                if added.len() % 32 != 0 {
                    return Err(GroupError::Malformed("saved invitees".into()));
                }
                Some(Pending {
                    id,
                    welcome: (!welcome.is_empty()).then(|| welcome.to_vec()),
                    added: added
                        .chunks_exact(32)
                        .filter_map(|k| k.try_into().ok())
                        .collect(),
                })
            }
            _ => return Err(GroupError::Malformed("saved change".into())),
        };
        let provider = OpenMlsRustCrypto::default();
        {
            let mut values = provider
                .storage()
                .values
                .write()
                .map_err(|_| GroupError::Mls("storage lock poisoned".into()))?;
            let count = u32::from_be_bytes(*r.array()?);
            for _ in 0..count {
                let key = r.field()?.to_vec();
                let value = r.field()?.to_vec();
                values.insert(key, value);
            }
        }
        let mls = MlsGroup::load(provider.storage(), &group_id)
            .map_err(GroupError::mls)?
            .ok_or_else(|| GroupError::Malformed("no group in the saved state".into()))?;
        Ok(Self {
            provider,
            key,
            identity,
            mls,
            room,
            assembler: Assembler::default(),
            ours: VecDeque::new(),
            pending,
        })
    }
}

const SAVE_VERSION: u8 = 1;

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GroupError> {
        if self.0.len() < n {
            return Err(GroupError::Malformed("saved group cut short".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], GroupError> {
        self.take(N)?
            .try_into()
            .map_err(|_| GroupError::Malformed("saved group cut short".into()))
    }

    fn field(&mut self) -> Result<&'a [u8], GroupError> {
        let len = u32::from_be_bytes(*self.array()?) as usize;
        self.take(len)
    }
}

fn tls(value: &impl openmls::prelude::tls_codec::Serialize) -> Result<Vec<u8>, GroupError> {
    value.tls_serialize_detached().map_err(GroupError::mls)
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

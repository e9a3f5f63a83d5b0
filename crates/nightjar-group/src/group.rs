//! One member's side of a group.

use std::collections::VecDeque;

use nightjar_proto::identity::IdentityKeyPair;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    Ciphersuite, GroupId, KeyPackage, KeyPackageIn, LeafNodeIndex, LeafNodeParameters, MlsGroup,
    MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    PURE_CIPHERTEXT_WIRE_FORMAT_POLICY, ProcessedMessageContent, Proposal, ProtocolVersion, Sender,
    SenderRatchetConfiguration, StagedCommit, StagedWelcome,
};
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::GroupError;
use crate::cell::{Assembler, CELL_LEN, MessageId, RoomKeys};
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
    /// SHA-256 of the change's bytes.
    digest: [u8; 32],
    welcome: Option<Vec<u8>>,
    added: Vec<IdentityKey>,
    /// Its cells, to post again after a restart (the relay keeps one copy of
    /// a cell posted twice).
    cells: Vec<Vec<u8>>,
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
    /// A member changed who is in the group (or only its own keys).
    Changed {
        by: IdentityKey,
        added: Vec<IdentityKey>,
        removed: Vec<IdentityKey>,
        /// A change of ours in the same epoch came after this one and was
        /// dropped (make it again if it is still wanted).
        ours_dropped: bool,
    },
    /// Our own change came back first and is now in force. Its Welcome, if it
    /// added anyone, is in [`Received::invitation`].
    Confirmed {
        added: Vec<IdentityKey>,
        removed: Vec<IdentityKey>,
    },
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

    /// The cells of a change of ours still on its way (to post again after a
    /// restart, in case they never reached the relay).
    pub fn pending_cells(&self) -> Option<&[Vec<u8>]> {
        self.pending.as_ref().map(|p| p.cells.as_slice())
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
        let leaves = members
            .iter()
            .map(|who| self.leaf_of(who).ok_or(GroupError::NotMember))
            .collect::<Result<Vec<_>, _>>()?;
        self.remove_leaves(&leaves, rng)
    }

    fn remove_leaves<R: CryptoRng + ?Sized>(
        &mut self,
        leaves: &[LeafNodeIndex],
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, GroupError> {
        self.ready_for_change()?;
        let (commit, _, _) = self
            .mls
            .remove_members(&self.provider, &self.key, leaves)
            .map_err(GroupError::mls)?;
        self.post_change(&commit, None, Vec::new(), rng)
    }

    /// Gives up a change of ours that will not come back (its cells were not
    /// all taken by the relay, or were lost there): the group stays as it was,
    /// and another change can be made.
    pub fn abandon_change(&mut self) -> Result<(), GroupError> {
        if self.pending.take().is_some() {
            self.mls
                .clear_pending_commit(self.provider.storage())
                .map_err(GroupError::mls)?;
        }
        Ok(())
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
        self.pending = Some(Pending {
            id,
            digest: digest(&bytes),
            welcome,
            added,
            cells: cells.clone(),
        });
        Ok(cells)
    }

    /// Reads one cell from the room, in the relay's order. What other members
    /// post never makes this fail: a cell or message that does not open or
    /// check is skipped (and logged at debug level) as [`Incoming::Nothing`].
    /// An error means our own state could not be updated.
    pub fn receive<R: CryptoRng + ?Sized>(
        &mut self,
        cell: &[u8],
        rng: &mut R,
    ) -> Result<Received, GroupError> {
        let (id, bytes) = match self.assembler.push(&self.room, cell) {
            Ok(Some(whole)) => whole,
            Ok(None) => return Ok(Received::only(Incoming::Nothing)),
            Err(e) => {
                tracing::debug!("skipped a room cell: {e}");
                return Ok(Received::only(Incoming::Nothing));
            }
        };
        // Our change, byte for byte: anyone holding the room secret could reuse
        // its message id, but not forge its content.
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.id == id && p.digest == digest(&bytes))
        {
            return self.confirm();
        }
        if self.ours.contains(&id) || !self.mls.is_active() {
            return Ok(Received::only(Incoming::Nothing));
        }
        match self.process(&bytes, rng) {
            Ok(received) => Ok(received),
            Err(Skip(why)) => {
                tracing::debug!("skipped a room message: {why}");
                Ok(Received::only(Incoming::Nothing))
            }
        }
    }

    fn process<R: CryptoRng + ?Sized>(
        &mut self,
        bytes: &[u8],
        rng: &mut R,
    ) -> Result<Received, Skip> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(Skip::from)?
            .try_into_protocol_message()
            .map_err(Skip::from)?;
        if message.group_id() != self.mls.group_id() {
            return Err(Skip("another group's message".into()));
        }
        // A change that lost a race to another in its epoch, or a text from
        // further back than the epochs we keep, fails here.
        let processed = self
            .mls
            .process_message(&self.provider, message)
            .map_err(Skip::from)?;
        let Sender::Member(leaf) = *processed.sender() else {
            return Err(Skip("not from a member".into()));
        };
        let from = named(processed.credential()).ok_or_else(|| Skip("no identity".into()))?;
        // Texts of earlier epochs still open, but only from someone who is
        // still in the group, at the same place, as the same identity.
        let current = self.mls.member_at(leaf);
        if current.as_ref().map(|m| &m.credential) != Some(processed.credential()) {
            return Err(Skip("from someone no longer in the group".into()));
        }
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(message) => {
                let body = Zeroizing::new(message.into_bytes());
                self.application_received(from, leaf, &body, rng)
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let (added, removed) = self.check_change(&staged, &from)?;
                let self_removed = staged.self_removed();
                // A change of ours in this epoch can no longer happen.
                let superseded = self.pending.take().is_some();
                self.mls
                    .merge_staged_commit(&self.provider, *staged)
                    .map_err(Skip::from)?;
                if self_removed {
                    return Ok(Received::only(Incoming::Removed { by: from }));
                }
                if superseded {
                    tracing::debug!("a change of ours lost to another in the same epoch");
                }
                Ok(Received::only(Incoming::Changed {
                    by: from,
                    added,
                    removed,
                    ours_dropped: superseded,
                }))
            }
            ProcessedMessageContent::OwnPendingCommit => {
                self.confirm().map_err(|e| Skip(e.to_string()))
            }
            ProcessedMessageContent::ProposalMessage(_)
            | ProcessedMessageContent::ExternalJoinProposalMessage(_)
            | ProcessedMessageContent::OwnPrivateMessage => {
                Err(Skip("members change the group by commits only".into()))
            }
        }
    }

    /// A member's change may only add and remove, every newcomer's credential
    /// must prove its identity (and not be someone already in), and the author
    /// keeps its own identity in its new keys. Returns who comes and who goes.
    fn check_change(
        &self,
        staged: &StagedCommit,
        author_identity: &IdentityKey,
    ) -> Result<(Vec<IdentityKey>, Vec<IdentityKey>), Skip> {
        let members = self.members();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for proposal in staged.queued_proposals() {
            match proposal.proposal() {
                Proposal::Add(add) => {
                    let leaf = add.key_package().leaf_node();
                    let who = vouched(leaf.credential(), leaf.signature_key().as_slice())
                        .map_err(Skip::from)?;
                    if members.contains(&who) || added.contains(&who) {
                        return Err(Skip("adds someone already in".into()));
                    }
                    added.push(who);
                }
                Proposal::Remove(remove) => {
                    let who = self
                        .mls
                        .member(remove.removed())
                        .and_then(named)
                        .ok_or_else(|| Skip("removes no one".into()))?;
                    removed.push(who);
                }
                _ => return Err(Skip("a change other than adding or removing".into())),
            }
        }
        if let Some(leaf) = staged.update_path_leaf_node() {
            let who =
                vouched(leaf.credential(), leaf.signature_key().as_slice()).map_err(Skip::from)?;
            if who != *author_identity {
                return Err(Skip("a member took another identity".into()));
            }
        }
        Ok((added, removed))
    }

    fn application_received<R: CryptoRng + ?Sized>(
        &mut self,
        from: IdentityKey,
        leaver: LeafNodeIndex,
        body: &[u8],
        rng: &mut R,
    ) -> Result<Received, Skip> {
        match body.split_first() {
            Some((&KIND_TEXT, text)) => {
                let text = std::str::from_utf8(text).map_err(Skip::from)?;
                Ok(Received::only(Incoming::Text {
                    from,
                    text: text.to_owned(),
                }))
            }
            Some((&KIND_LEAVING, [])) => {
                let mut received = Received::only(Incoming::Leaving { who: from });
                // The remaining member lowest in the tree commits the removal.
                let committer = self
                    .mls
                    .members()
                    .map(|m| m.index)
                    .filter(|&index| index != leaver)
                    .min();
                if committer == Some(self.mls.own_leaf_index()) && self.pending.is_none() {
                    received.post = self.remove_leaves(&[leaver], rng).map_err(Skip::from)?;
                }
                Ok(received)
            }
            _ => Err(Skip("an unknown kind of application message".into())),
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
        let values = self
            .provider
            .storage()
            .values
            .read()
            .map_err(|_| GroupError::Mls("storage lock poisoned".into()))?;
        // Sized up front: a growing buffer would leave unwiped copies behind.
        let pending_len = self.pending.as_ref().map_or(0, |p| {
            60 + p.welcome.as_ref().map_or(0, Vec::len)
                + 32 * p.added.len()
                + CELL_LEN * p.cells.len()
        });
        let values_len: usize = values.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let group_id = self.mls.group_id().as_slice();
        let mut out = Zeroizing::new(Vec::with_capacity(
            1 + 96
                + 4
                + group_id.len()
                + 1
                + pending_len
                + self.assembler.saved_len()
                + 4
                + values_len,
        ));
        out.push(SAVE_VERSION);
        out.extend_from_slice(self.key.seed().as_slice());
        out.extend_from_slice(self.room.secret());
        out.extend_from_slice(&self.identity);
        put(&mut out, group_id);
        match &self.pending {
            None => out.push(0),
            Some(pending) => {
                out.push(1);
                out.extend_from_slice(&pending.id);
                out.extend_from_slice(&pending.digest);
                put(&mut out, pending.welcome.as_deref().unwrap_or_default());
                put(&mut out, pending.added.concat().as_slice());
                put(&mut out, pending.cells.concat().as_slice());
            }
        }
        self.assembler.save(&mut out);
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
                let digest = *r.array()?;
                let welcome = r.field()?;
                let added = r.field()?;
                let cells = r.field()?;
                if added.len() % 32 != 0 || cells.len() % CELL_LEN != 0 {
                    return Err(GroupError::Malformed("saved change".into()));
                }
                Some(Pending {
                    id,
                    digest,
                    welcome: (!welcome.is_empty()).then(|| welcome.to_vec()),
                    added: added
                        .chunks_exact(32)
                        .filter_map(|k| k.try_into().ok())
                        .collect(),
                    cells: cells.chunks_exact(CELL_LEN).map(<[u8]>::to_vec).collect(),
                })
            }
            _ => return Err(GroupError::Malformed("saved change".into())),
        };
        let (assembler, rest) = Assembler::restore(r.0)?;
        r.0 = rest;
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
        if !r.0.is_empty() {
            return Err(GroupError::Malformed(
                "trailing bytes after a saved group".into(),
            ));
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
            assembler,
            ours: VecDeque::new(),
            pending,
        })
    }
}

/// Why a message from the room was skipped (for debug logs).
struct Skip(String);

impl<E: std::fmt::Display> From<E> for Skip {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

/// What our own change is recognised by when it comes back.
fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(bytes).into()
}

const SAVE_VERSION: u8 = 2;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use openmls::prelude::{BasicCredential, CredentialWithKey};

    use super::*;

    /// Three members: 0 created the group and added 1 and 2; every cell they
    /// post is in `relay`, and each has read it all.
    fn three() -> (Vec<Group>, Vec<Vec<u8>>, Vec<IdentityKey>) {
        let mut rng = rand::rng();
        let ids: Vec<IdentityKeyPair> = (0..3)
            .map(|_| IdentityKeyPair::generate(&mut rng))
            .collect();
        let keys: Vec<IdentityKey> = ids
            .iter()
            .map(|i| i.public().signing_key().to_bytes())
            .collect();
        let mut creator = Group::create(&ids[0], &mut rng).unwrap();
        let (j1, p1) = Joining::new(&ids[1], &mut rng).unwrap();
        let (j2, p2) = Joining::new(&ids[2], &mut rng).unwrap();
        let relay = creator
            .invite(&[(keys[1], p1), (keys[2], p2)], &mut rng)
            .unwrap();
        let invitation = relay
            .iter()
            .find_map(|cell| creator.receive(cell, &mut rng).unwrap().invitation)
            .unwrap();
        let one = j1.join(&invitation, &keys[0]).unwrap();
        let two = j2.join(&invitation, &keys[0]).unwrap();
        (vec![creator, one, two], relay, keys)
    }

    #[test]
    fn a_member_cannot_take_another_s_identity_in_a_key_update() {
        let mut rng = rand::rng();
        let (mut members, _, keys) = three();
        // Member 1 updates its keys with a credential naming member 2.
        let mut claimed = keys[2].to_vec();
        claimed.extend_from_slice(&[0; 64]);
        let forged = CredentialWithKey {
            credential: BasicCredential::new(claimed).into(),
            signature_key: members[1].key.public().to_vec().into(),
        };
        let liar = &mut members[1];
        let bundle = liar
            .mls
            .self_update(
                &liar.provider,
                &liar.key,
                LeafNodeParameters::builder()
                    .with_credential_with_key(forged)
                    .build(),
            )
            .unwrap();
        let (commit, _, _) = bundle.into_contents();
        let bytes = tls(&commit).unwrap();
        let (_, cells) = liar.room.seal(&bytes, &mut rng).unwrap();
        let before = members[0].epoch();
        for cell in &cells {
            let received = members[0].receive(cell, &mut rng).unwrap();
            assert_eq!(received.incoming, Incoming::Nothing);
        }
        assert_eq!(members[0].epoch(), before, "the change was refused");
        let mut names = members[0].members();
        names.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(names, expected);
    }
}

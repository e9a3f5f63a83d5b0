//! Groups through a real room relay: a mailbox server on the in-process
//! loopback network, reached the way nodes reach it (HTTP over onion streams,
//! proof of work per post): MLS groups whose members post and read there, and
//! nodes that make and use groups.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use nightjar_group::{Group, IdentityKey, Incoming, Joining, Received};
use nightjar_node::rooms::RoomRelay;
use nightjar_node::{Event, Node};
use nightjar_proto::identity::IdentityKeyPair;
use nightjar_proto::onion::OnionAddress;
use nightjar_tor::Transport;
use nightjar_tor::forward::Forward;
use nightjar_tor::loopback::LoopbackNetwork;
use tokio::sync::broadcast;

/// A mailbox server with cheap work, published on the loopback network.
struct Relay {
    mailbox: nightjar_mailbox::Mailbox,
    onion: OnionAddress,
    _forward: Forward,
    _tor: Arc<dyn Transport>,
}

async fn relay(net: &LoopbackNetwork) -> Relay {
    let tor = net.transport();
    let (mailbox, forward) = mailbox_onion(tor.as_ref()).await;
    Relay {
        mailbox,
        onion: forward.address(),
        _forward: forward,
        _tor: tor,
    }
}

struct Member {
    identity: IdentityKeyPair,
    tor: Arc<dyn Transport>,
    group: Option<Group>,
    room: Option<RoomRelay>,
    /// The number of the last cell read.
    read: u64,
}

impl Member {
    fn new(net: &LoopbackNetwork) -> Self {
        Self {
            identity: IdentityKeyPair::generate(&mut rand::rng()),
            tor: net.transport(),
            group: None,
            room: None,
            read: 0,
        }
    }

    fn key(&self) -> IdentityKey {
        self.identity.public().signing_key().to_bytes()
    }

    fn group(&mut self) -> &mut Group {
        self.group.as_mut().unwrap()
    }

    fn enter(&mut self, group: Group, onion: &OnionAddress) {
        self.room = Some(RoomRelay::new(
            self.tor.clone(),
            *onion,
            group.room().relay_key(),
        ));
        self.group = Some(group);
    }

    async fn post(&mut self, cells: Vec<Vec<u8>>) -> Vec<u64> {
        self.room.as_ref().unwrap().post(&cells).await.unwrap()
    }

    async fn say(&mut self, text: &str) {
        let cells = self.group().send(text, &mut rand::rng()).unwrap();
        self.post(cells).await;
    }

    /// Reads everything new in order, posting what the group asks to post.
    async fn catch_up(&mut self) -> Vec<Received> {
        let read = self.room.as_ref().unwrap().read(self.read).await.unwrap();
        assert!(!read.missed);
        let mut seen = Vec::new();
        for (seq, cell) in read.cells {
            self.read = seq;
            let received = self.group().receive(&cell, &mut rand::rng()).unwrap();
            if !received.post.is_empty() {
                self.post(received.post.clone()).await;
            }
            seen.push(received);
        }
        seen
    }

    async fn texts(&mut self) -> Vec<(IdentityKey, String)> {
        self.catch_up()
            .await
            .into_iter()
            .filter_map(|r| match r.incoming {
                Incoming::Text { from, text } => Some((from, text)),
                _ => None,
            })
            .collect()
    }
}

/// Member 0 creates the group and adds the others in one change; key packages
/// and the Welcome would travel over the pairwise sessions.
async fn group_of(net: &LoopbackNetwork, relay: &Relay, n: usize) -> Vec<Member> {
    let mut members: Vec<Member> = (0..n).map(|_| Member::new(net)).collect();
    let group = Group::create(&members[0].identity, &mut rand::rng()).unwrap();
    members[0].enter(group, &relay.onion);
    let mut joining = Vec::new();
    let mut packages = Vec::new();
    for m in &members[1..] {
        let (j, package) = Joining::new(&m.identity, &mut rand::rng()).unwrap();
        packages.push((m.key(), package));
        joining.push(j);
    }
    let cells = members[0]
        .group()
        .invite(&packages, &mut rand::rng())
        .unwrap();
    let seqs = members[0].post(cells).await;
    let invitation = members[0]
        .catch_up()
        .await
        .into_iter()
        .find_map(|r| r.invitation)
        .expect("the change came back from the relay");
    let creator = members[0].key();
    for (m, j) in members[1..].iter_mut().zip(joining) {
        let group = j.join(&invitation, &creator).unwrap();
        m.enter(group, &relay.onion);
        m.read = *seqs.last().unwrap();
    }
    members
}

#[tokio::test]
async fn five_members_through_a_relay_one_catching_up_one_removed() {
    let net = LoopbackNetwork::new();
    let relay = relay(&net).await;
    let mut members = group_of(&net, &relay, 5).await;

    // Member 4 is away while the others talk.
    for (n, m) in members.iter_mut().enumerate().take(4) {
        m.say(&format!("hello from {n}")).await;
    }
    for (n, m) in members.iter_mut().enumerate().take(4) {
        assert_eq!(m.texts().await.len(), 3, "member {n} reads the others");
    }
    let back = members[4].texts().await;
    let bodies: Vec<&str> = back.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "hello from 0",
            "hello from 1",
            "hello from 2",
            "hello from 3"
        ]
    );
    assert_eq!(back[1].0, members[1].key());

    // Member 0 removes member 2, who keeps a copy of its state from before.
    let before = Group::restore(&members[2].group().save().unwrap()).unwrap();
    let removed = members[2].key();
    let cells = members[0]
        .group()
        .remove(&[removed], &mut rand::rng())
        .unwrap();
    let removal = members[0].post(cells).await;
    members[1].catch_up().await;
    members[1].say("the plan is on").await;

    let seen = members[2].catch_up().await;
    assert!(
        seen.iter()
            .any(|r| matches!(r.incoming, Incoming::Removed { .. }))
    );
    assert!(
        seen.iter()
            .all(|r| !matches!(r.incoming, Incoming::Text { .. })),
        "the removed member read a text sent after its removal"
    );
    let mut stale = before;
    let after = members[2]
        .room
        .as_ref()
        .unwrap()
        .read(*removal.last().unwrap())
        .await
        .unwrap();
    assert!(!after.cells.is_empty());
    for (_, cell) in &after.cells {
        let received = stale.receive(cell, &mut rand::rng()).unwrap();
        assert_eq!(received.incoming, Incoming::Nothing);
    }
    for m in [0usize, 3, 4] {
        let texts = members[m].texts().await;
        assert_eq!(texts, [(members[1].key(), "the plan is on".to_owned())]);
        assert!(!members[m].group().members().contains(&removed));
    }

    // The relay holds cells, and in them no text and no member's identity.
    let held = relay.mailbox.room_bytes_held();
    assert!(held.len() > 6 * nightjar_group::CELL_LEN);
    // The search finds what is there: the nonce opening a cell read above.
    let nonce = &after.cells[0].1[..24];
    assert!(held.windows(nonce.len()).any(|w| w == nonce));
    let mut needles: Vec<Vec<u8>> = ["hello from", "the plan is on"]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
    for m in &members {
        needles.extend(m.key().windows(8).map(<[u8]>::to_vec));
    }
    for needle in &needles {
        assert!(
            !held.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the relay holds {needle:?}"
        );
    }
}

/// Waits for a group text from `from` in `group`.
async fn group_text(events: &mut broadcast::Receiver<Event>, group: &str, from: &str) -> String {
    next_matching(events, |e| match e {
        Event::GroupMessage { message }
            if message.group == group && message.from == from && !message.outgoing =>
        {
            Some(message.body.clone())
        }
        _ => None,
    })
    .await
}

/// Waits until `node` is in a group (named by it) that a contact added it to.
async fn joined(events: &mut broadcast::Receiver<Event>) -> (String, String) {
    next_matching(events, |e| match e {
        Event::GroupJoined { group, by } => Some((group.name.clone(), by.clone())),
        _ => None,
    })
    .await
}

async fn group_note(events: &mut broadcast::Receiver<Event>, group: &str, wanted: &str) {
    next_matching(events, |e| match e {
        Event::GroupChanged { group: g, text } if g == group && text.contains(wanted) => Some(()),
        _ => None,
    })
    .await;
}

async fn members(node: &Node, group: &str) -> Vec<String> {
    let all = node.groups().await.unwrap();
    let mut members = all.into_iter().find(|g| g.name == group).unwrap().members;
    members.sort();
    members
}

#[tokio::test]
async fn nodes_make_a_group_talk_in_it_and_remove_a_member() {
    let net = LoopbackNetwork::new();
    let relay = relay(&net).await;
    let (alice, mut ae) = ephemeral(&net).await;
    let (bob, mut be) = ephemeral(&net).await;
    let (carol, mut ce) = ephemeral(&net).await;
    befriend_as(&alice, &mut ae, "bob", &bob, &mut be, "alice").await;
    befriend_as(&alice, &mut ae, "carol", &carol, &mut ce, "alice").await;
    until_online(&alice, &mut ae, "bob").await;
    until_online(&alice, &mut ae, "carol").await;

    // A group's room is on a mailbox: none named yet.
    assert!(matches!(
        alice.create_group("crew").await,
        Err(nightjar_node::NodeError::NoMailbox)
    ));
    alice.add_mailbox(&relay.onion.to_string()).await.unwrap();
    let crew = alice.create_group("crew").await.unwrap();
    assert_eq!(crew.members, ["you"]);

    alice.invite_to_group("crew", "bob").await.unwrap();
    assert_eq!(joined(&mut be).await, ("crew".into(), "alice".into()));
    alice.invite_to_group("crew", "carol").await.unwrap();
    assert_eq!(joined(&mut ce).await, ("crew".into(), "alice".into()));
    group_note(&mut ae, "crew", "you added carol").await;
    assert_eq!(members(&alice, "crew").await, ["bob", "carol", "you"]);

    alice
        .send_group_message("crew", "hello both")
        .await
        .unwrap();
    assert_eq!(group_text(&mut be, "crew", "alice").await, "hello both");
    assert_eq!(group_text(&mut ce, "crew", "alice").await, "hello both");
    // Carol does not know Bob: she sees him by his fingerprint.
    bob.send_group_message("crew", "hi from bob").await.unwrap();
    assert_eq!(group_text(&mut ae, "crew", "bob").await, "hi from bob");
    let stranger = next_matching(&mut ce, |e| match e {
        Event::GroupMessage { message } if message.body == "hi from bob" => {
            Some(message.from.clone())
        }
        _ => None,
    })
    .await;
    assert!(stranger.starts_with("someone ("), "{stranger}");

    alice.remove_from_group("crew", "carol").await.unwrap();
    group_note(&mut ce, "crew", "alice removed you").await;
    group_note(&mut be, "crew", "alice removed").await;
    bob.send_group_message("crew", "carol is gone")
        .await
        .unwrap();
    assert_eq!(group_text(&mut ae, "crew", "bob").await, "carol is gone");
    let history = carol.group_history("crew").await.unwrap();
    assert!(history.iter().all(|m| m.body != "carol is gone"));
    assert!(!carol.groups().await.unwrap()[0].active);
    assert!(matches!(
        carol.send_group_message("crew", "hello?").await,
        Err(nightjar_node::NodeError::NotInGroup)
    ));
    assert_eq!(members(&bob, "crew").await, ["alice", "you"]);
    // The relay holds none of it in the clear.
    let held = relay.mailbox.room_bytes_held();
    for text in ["hello both", "hi from bob", "carol is gone"] {
        assert!(!held.windows(text.len()).any(|w| w == text.as_bytes()));
    }
}

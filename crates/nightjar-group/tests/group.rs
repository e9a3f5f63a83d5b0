//! Groups end to end over an in-memory relay that keeps every cell in order, as
//! a room relay does: members post, read from where they stopped, and may be
//! away for a while.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nightjar_group::{CELL_LEN, Group, GroupError, IdentityKey, Incoming, Joining, Received};
use nightjar_proto::identity::IdentityKeyPair;

/// The relay: every cell ever posted, in order.
#[derive(Default)]
struct Relay {
    cells: Vec<Vec<u8>>,
}

impl Relay {
    fn post(&mut self, cells: Vec<Vec<u8>>) {
        assert!(cells.iter().all(|c| c.len() == CELL_LEN));
        self.cells.extend(cells);
    }
}

struct Member {
    identity: IdentityKeyPair,
    group: Option<Group>,
    /// How many of the relay's cells this member has read.
    read: usize,
}

impl Member {
    fn new() -> Self {
        Self {
            identity: IdentityKeyPair::generate(&mut rand::rng()),
            group: None,
            read: 0,
        }
    }

    fn key(&self) -> IdentityKey {
        self.identity.public().signing_key().to_bytes()
    }

    fn group(&mut self) -> &mut Group {
        self.group.as_mut().expect("a member")
    }

    /// Reads everything new, posting what the group asks to post.
    fn catch_up(&mut self, relay: &mut Relay) -> Vec<Received> {
        let mut seen = Vec::new();
        while self.read < relay.cells.len() {
            let cell = relay.cells[self.read].clone();
            self.read += 1;
            let received = self.group().receive(&cell, &mut rand::rng()).unwrap();
            relay.post(received.post.clone());
            seen.push(received);
        }
        seen
    }

    fn texts(&mut self, relay: &mut Relay) -> Vec<(IdentityKey, String)> {
        self.catch_up(relay)
            .into_iter()
            .filter_map(|r| match r.incoming {
                Incoming::Text { from, text } => Some((from, text)),
                _ => None,
            })
            .collect()
    }
}

/// `inviter` adds `invitees`: key packages and the Welcome go pairwise; the
/// change goes through the relay.
fn invite(relay: &mut Relay, members: &mut [Member], inviter: usize, invitees: &[usize]) {
    let mut joining = Vec::new();
    let mut packages = Vec::new();
    for &i in invitees {
        let (j, package) = Joining::new(&members[i].identity, &mut rand::rng()).unwrap();
        packages.push((members[i].key(), package));
        joining.push((i, j));
    }
    let cells = members[inviter]
        .group()
        .invite(&packages, &mut rand::rng())
        .unwrap();
    relay.post(cells);
    let invitation = members[inviter]
        .catch_up(relay)
        .into_iter()
        .find_map(|r| r.invitation)
        .expect("the change came back with its Welcome");
    let inviter_key = members[inviter].key();
    for (i, j) in joining {
        members[i].group = Some(j.join(&invitation, &inviter_key).unwrap());
        // A new member reads from the change that added it on.
        members[i].read = relay.cells.len();
    }
}

fn five() -> (Relay, Vec<Member>) {
    let mut relay = Relay::default();
    let mut members: Vec<Member> = (0..5).map(|_| Member::new()).collect();
    members[0].group = Some(Group::create(&members[0].identity, &mut rand::rng()).unwrap());
    invite(&mut relay, &mut members, 0, &[1, 2]);
    for m in members.iter_mut().take(3) {
        m.catch_up(&mut relay);
    }
    invite(&mut relay, &mut members, 1, &[3, 4]);
    for m in &mut members {
        m.catch_up(&mut relay);
    }
    (relay, members)
}

#[test]
fn five_members_talk_and_one_away_catches_up() {
    let (mut relay, mut members) = five();
    let everyone: Vec<IdentityKey> = members.iter().map(Member::key).collect();
    for m in &mut members {
        let mut seen = m.group().members();
        seen.sort();
        let mut expected = everyone.clone();
        expected.sort();
        assert_eq!(seen, expected, "every member sees the same five");
    }
    let epoch = members[0].group().epoch();
    assert!(members.iter_mut().all(|m| m.group().epoch() == epoch));

    // Member 4 is away while the others talk and one of them updates its keys.
    for (n, m) in members.iter_mut().take(4).enumerate() {
        let cells = m
            .group()
            .send(&format!("hello from {n}"), &mut rand::rng())
            .unwrap();
        relay.post(cells);
    }
    let update = members[2].group().update(&mut rand::rng()).unwrap();
    relay.post(update);
    let long = "a long text ".repeat(300);
    let cells = members[3].group().send(&long, &mut rand::rng()).unwrap();
    assert!(cells.len() > 1, "a long text takes several cells");
    relay.post(cells);
    for (n, m) in members.iter_mut().enumerate().take(4) {
        let texts = m.texts(&mut relay);
        // Each reads the others' texts, not its own.
        let expected = if n == 3 { 3 } else { 4 };
        assert_eq!(texts.len(), expected, "member {n}");
    }
    // Back: it reads everything in order, across the key update.
    let texts = members[4].texts(&mut relay);
    let bodies: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "hello from 0",
            "hello from 1",
            "hello from 2",
            "hello from 3",
            long.as_str()
        ]
    );
    assert_eq!(texts[0].0, members[0].key(), "the sender is known");
    let epoch = members[0].group().epoch();
    assert!(members.iter_mut().all(|m| m.group().epoch() == epoch));
}

#[test]
fn a_removed_member_reads_nothing_sent_after() {
    let (mut relay, mut members) = five();
    // The member to be removed keeps a copy of its state from before.
    let before = Group::restore(&members[3].group().save().unwrap()).unwrap();
    let removed = members[3].key();
    let cells = members[0]
        .group()
        .remove(&[removed], &mut rand::rng())
        .unwrap();
    relay.post(cells);
    // The sender has read the removal (a node reads the room before it sends).
    members[1].catch_up(&mut relay);
    let text = members[1]
        .group()
        .send("secret plans", &mut rand::rng())
        .unwrap();
    relay.post(text.clone());

    let seen = members[3].catch_up(&mut relay);
    assert!(
        matches!(seen[0].incoming, Incoming::Removed { by } if by == members[0].key()),
        "{:?}",
        seen[0]
    );
    assert!(
        seen.iter()
            .all(|r| !matches!(r.incoming, Incoming::Text { .. })),
        "the removed member read a text sent after its removal"
    );
    assert!(!members[3].group().is_active());
    assert!(matches!(
        members[3].group().send("still here?", &mut rand::rng()),
        Err(GroupError::Evicted)
    ));
    // Even the state it had before the removal opens nothing: the text is
    // sealed under the next epoch's keys.
    let mut stale = before;
    for cell in &text {
        let received = stale.receive(cell, &mut rand::rng()).unwrap();
        assert_eq!(received.incoming, Incoming::Nothing);
    }
    for m in [0usize, 2, 4] {
        let texts = members[m].texts(&mut relay);
        assert_eq!(texts, [(members[1].key(), "secret plans".to_owned())]);
        assert_eq!(members[m].group().members().len(), 4);
        assert!(!members[m].group().members().contains(&removed));
    }
}

#[test]
fn a_member_who_leaves_is_removed_by_the_others() {
    let (mut relay, mut members) = five();
    let leaver = members[2].key();
    let cells = members[2].group().leave(&mut rand::rng()).unwrap();
    relay.post(cells);
    // Member 0, lowest in the tree, commits the removal as it reads the notice.
    let seen = members[0].catch_up(&mut relay);
    assert!(matches!(seen[0].incoming, Incoming::Leaving { who } if who == leaver));
    assert!(!seen[0].post.is_empty());
    for m in [0usize, 1, 3, 4] {
        members[m].catch_up(&mut relay);
        assert!(!members[m].group().members().contains(&leaver));
    }
    let seen = members[2].catch_up(&mut relay);
    assert!(
        seen.iter()
            .any(|r| matches!(r.incoming, Incoming::Removed { .. }))
    );
}

#[test]
fn of_two_changes_in_one_epoch_the_first_at_the_relay_wins() {
    let (mut relay, mut members) = five();
    let first = members[1].group().update(&mut rand::rng()).unwrap();
    let fifth = members[4].key();
    let second = members[2]
        .group()
        .remove(&[fifth], &mut rand::rng())
        .unwrap();
    relay.post(first);
    relay.post(second);
    let seen = members[2].catch_up(&mut relay);
    assert!(
        matches!(
            &seen[0].incoming,
            Incoming::Changed { by, ours_dropped: true, .. } if *by == members[1].key()
        ),
        "{:?}",
        seen[0]
    );
    // Member 2's removal was dropped by everyone: member 4 is still in.
    for m in &mut members {
        m.catch_up(&mut relay);
        assert_eq!(m.group().members().len(), 5);
    }
    let epoch = members[0].group().epoch();
    assert!(members.iter_mut().all(|m| m.group().epoch() == epoch));
    // And it can make the change again.
    let again = members[2]
        .group()
        .remove(&[fifth], &mut rand::rng())
        .unwrap();
    relay.post(again);
    for m in members.iter_mut().take(4) {
        m.catch_up(&mut relay);
        assert_eq!(m.group().members().len(), 4);
    }
}

#[test]
fn a_key_package_must_name_the_contact_it_came_from() {
    let mut relay = Relay::default();
    let mut alice = Member::new();
    let bob = Member::new();
    let mallory = Member::new();
    alice.group = Some(Group::create(&alice.identity, &mut rand::rng()).unwrap());
    let (_, package) = Joining::new(&mallory.identity, &mut rand::rng()).unwrap();
    assert!(matches!(
        alice
            .group()
            .invite(&[(bob.key(), package)], &mut rand::rng()),
        Err(GroupError::BadCredential)
    ));
    assert!(relay.cells.is_empty());
    relay.post(Vec::new());
}

#[test]
fn the_relay_holds_no_text_and_no_member_identity() {
    let (mut relay, mut members) = five();
    let text = "meet at the old mill at nine";
    let cells = members[0].group().send(text, &mut rand::rng()).unwrap();
    relay.post(cells);
    for m in &mut members {
        m.catch_up(&mut relay);
    }
    let stored: Vec<u8> = relay.cells.concat();
    assert!(!relay.cells.is_empty());
    let mut needles: Vec<Vec<u8>> = vec![text.as_bytes().to_vec(), b"old mill".to_vec()];
    for m in &members {
        let key = m.key();
        needles.push(key.to_vec());
        // Any 8-byte window of an identity key.
        needles.extend(key.windows(8).map(<[u8]>::to_vec));
    }
    for needle in &needles {
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the relay's bytes hold {needle:?}"
        );
    }
}

#[test]
fn a_saved_group_carries_on_after_a_restart() {
    let (mut relay, mut members) = five();
    let saved = members[4].group().save().unwrap();
    members[4].group = Some(Group::restore(&saved).unwrap());
    let cells = members[0]
        .group()
        .send("still there?", &mut rand::rng())
        .unwrap();
    relay.post(cells);
    let texts = members[4].texts(&mut relay);
    assert_eq!(texts, [(members[0].key(), "still there?".to_owned())]);
    let cells = members[4].group().send("yes", &mut rand::rng()).unwrap();
    relay.post(cells);
    assert_eq!(members[0].texts(&mut relay).len(), 1);
    assert!(Group::restore(&saved[..saved.len() / 2]).is_err());
}

/// The cells of member 0's change that removes member 4.
fn member_0_removes_member_4(members: &mut [Member]) -> Vec<Vec<u8>> {
    let fifth = members[4].key();
    members[0]
        .group()
        .remove(&[fifth], &mut rand::rng())
        .unwrap()
}

/// Members 0 to 3 read everything and agree on a group of four (4 removed).
fn the_four_left_agree(relay: &mut Relay, members: &mut [Member]) {
    for m in members.iter_mut().take(4) {
        m.catch_up(relay);
        assert_eq!(m.group().members().len(), 4);
    }
    let epoch = members[0].group().epoch();
    assert!(
        members
            .iter_mut()
            .take(4)
            .all(|m| m.group().epoch() == epoch)
    );
}

#[test]
fn a_change_saved_on_its_way_takes_effect_after_a_restart() {
    let (mut relay, mut members) = five();
    let cells = member_0_removes_member_4(&mut members);
    // Member 0 stops before its change comes back, and starts again.
    let saved = members[0].group().save().unwrap();
    members[0].group = Some(Group::restore(&saved).unwrap());
    assert!(members[0].group().change_pending());
    // The change's cells come back with it, to be posted again.
    assert_eq!(members[0].group().pending_cells(), Some(cells.as_slice()));
    relay.post(cells);
    let seen = members[0].catch_up(&mut relay);
    assert!(matches!(seen[0].incoming, Incoming::Confirmed { .. }));
    the_four_left_agree(&mut relay, &mut members);
}

#[test]
fn a_member_reusing_our_change_s_id_cannot_confirm_it() {
    let (mut relay, mut members) = five();
    let cells = member_0_removes_member_4(&mut members);
    // Member 1 reads the id off the cell and posts something else under it first.
    let room = members[1].group().room().clone();
    let id = room.message_id(&cells[0]).unwrap();
    let forged = room
        .seal_as(&id, b"not the change", &mut rand::rng())
        .unwrap();
    relay.post(forged);
    relay.post(cells);
    let seen = members[0].catch_up(&mut relay);
    assert_eq!(
        seen[0].incoming,
        Incoming::Nothing,
        "the forgery is not our change"
    );
    assert!(matches!(
        seen.last().unwrap().incoming,
        Incoming::Confirmed { .. }
    ));
    the_four_left_agree(&mut relay, &mut members);
}

#[test]
fn a_removed_member_s_old_keys_post_nothing_anyone_reads() {
    let (mut relay, mut members) = five();
    let mut stale = Group::restore(&members[3].group().save().unwrap()).unwrap();
    let removed = members[3].key();
    let cells = members[0]
        .group()
        .remove(&[removed], &mut rand::rng())
        .unwrap();
    relay.post(cells);
    for m in members.iter_mut() {
        m.catch_up(&mut relay);
    }
    // Sealed under the epoch before its removal, which the others still keep.
    let late = stale.send("still listening", &mut rand::rng()).unwrap();
    relay.post(late);
    for m in [0usize, 1, 2, 4] {
        assert!(
            members[m].texts(&mut relay).is_empty(),
            "member {m} read it"
        );
    }
}

#[test]
fn a_message_half_read_before_a_restart_is_read_whole_after() {
    let (mut relay, mut members) = five();
    let long = "a long text ".repeat(300);
    let cells = members[0].group().send(&long, &mut rand::rng()).unwrap();
    assert!(cells.len() > 2);
    relay.post(cells);
    // Member 1 reads one cell, stops, and starts again from its saved state.
    let first = relay.cells[members[1].read].clone();
    members[1].read += 1;
    let received = members[1]
        .group()
        .receive(&first, &mut rand::rng())
        .unwrap();
    assert_eq!(received.incoming, Incoming::Nothing);
    let saved = members[1].group().save().unwrap();
    members[1].group = Some(Group::restore(&saved).unwrap());
    let texts = members[1].texts(&mut relay);
    assert_eq!(texts, [(members[0].key(), long)]);
}

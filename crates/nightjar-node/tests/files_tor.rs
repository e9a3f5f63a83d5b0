//! File transfer between two nodes over the private Tor network (C tor clients,
//! on-disk profiles): sizes around the cell boundary and a large file of random
//! bytes arrive with the hash the test computed, and a transfer survives the
//! sender's tor being killed in the middle.

// Test code: helpers outside #[test] fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{TOR_PATIENCE, next_over_tor, start_on_disk, test_ctor};
use nightjar_node::{AcceptFile, Event, MessageState, Node, TransferState, TransferView};
use nightjar_tor::Transport;
use nightjar_tor::ctor::CTor;
use tokio::sync::broadcast;

type Events = broadcast::Receiver<Event>;

struct Side {
    tor: Arc<CTor>,
    node: Node,
    events: Events,
}

/// Two befriended nodes, each on its own tor, with a message delivered each
/// way so the link is up.
struct Pair {
    dir: tempfile::TempDir,
    alice: Side,
    bob: Side,
}

impl Pair {
    async fn new() -> Self {
        nightjar_test_support::init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let (alice_tor, bob_tor) = tokio::join!(test_ctor(), test_ctor());
        let mut alice = start(dir.path(), "alice", alice_tor).await;
        let mut bob = start(dir.path(), "bob", bob_tor).await;

        let address = bob.node.info().await.unwrap().address;
        alice
            .node
            .send_request(&address, "bob", "hello over tor")
            .await
            .unwrap();
        let request = next_over_tor(&mut bob.events, |e| match e {
            Event::RequestReceived { request } => Some(request.id),
            _ => None,
        })
        .await;
        bob.node.accept_request(request, "alice").await.unwrap();
        next_over_tor(&mut alice.events, |e| {
            matches!(e, Event::ContactAdded { .. }).then_some(())
        })
        .await;
        for (side, to) in [(&mut alice, "bob"), (&mut bob, "alice")] {
            let sent = side.node.send_message(to, "hi").await.unwrap();
            next_over_tor(&mut side.events, |e| match e {
                Event::MessageState {
                    id,
                    state: MessageState::Delivered,
                    ..
                } if *id == sent.id => Some(()),
                _ => None,
            })
            .await;
        }
        Self { dir, alice, bob }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Alice offers `source`; Bob accepts it. Returns both sides' ids.
    async fn offer_and_accept(&mut self, source: &Path) -> (i64, i64) {
        let sent = self.alice.node.send_file("bob", source).await.unwrap();
        let offer = next_over_tor(&mut self.bob.events, |e| match e {
            Event::FileOffered { transfer } => Some(transfer.clone()),
            _ => None,
        })
        .await;
        assert_eq!(offer.hash, sent.hash);
        assert_eq!(offer.size, sent.size);
        self.bob
            .node
            .accept_file(offer.id, AcceptFile::default())
            .await
            .unwrap();
        (sent.id, offer.id)
    }

    async fn stop(self) {
        self.alice.node.shutdown().await.unwrap();
        self.bob.node.shutdown().await.unwrap();
        self.alice.tor.shutdown().await.unwrap();
        self.bob.tor.shutdown().await.unwrap();
    }
}

async fn start(root: &Path, who: &str, tor: Arc<CTor>) -> Side {
    let (node, events) = start_on_disk(root, who, tor.clone(), 1 << 30).await;
    Side { tor, node, events }
}

/// Waits for transfer `id` to reach `state`; fails if it ends otherwise.
async fn reaches(node: &Node, events: &mut Events, id: i64, state: TransferState) -> TransferView {
    let now = node.transfer(id).await.unwrap();
    if now.state == state {
        return now;
    }
    next_over_tor(events, |e| match e {
        Event::FileState { transfer } if transfer.id == id => {
            let ended = matches!(
                transfer.state,
                TransferState::Completed
                    | TransferState::Declined
                    | TransferState::Cancelled
                    | TransferState::Failed
            );
            if transfer.state == state {
                Some(transfer.clone())
            } else if ended {
                panic!(
                    "transfer #{id} ended {:?}: {:?}",
                    transfer.state, transfer.reason
                )
            } else {
                None
            }
        }
        _ => None,
    })
    .await
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand_core::Rng::fill_bytes(&mut nightjar_node::link::os_rng(), &mut data);
    data
}

/// BLAKE3 of a file, read in pieces.
fn hash_file(path: &Path) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::fs::File::open(path).unwrap())
        .unwrap();
    hasher.finalize()
}

fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_large_files_arrive_intact_over_tor() {
    let mut p = Pair::new().await;
    for size in [0usize, 1, 497, 498, 499, 50_000_000] {
        let source = p.path(&format!("random-{size}.bin"));
        let data = random_bytes(size);
        let expected = blake3::hash(&data);
        std::fs::write(&source, &data).unwrap();
        drop(data);
        let (sent, received) = p.offer_and_accept(&source).await;
        let done = reaches(
            &p.bob.node,
            &mut p.bob.events,
            received,
            TransferState::Completed,
        )
        .await;
        reaches(
            &p.alice.node,
            &mut p.alice.events,
            sent,
            TransferState::Completed,
        )
        .await;
        assert_eq!(done.size, size as u64);
        assert_eq!(done.hash, expected.to_hex().as_str(), "size {size}");
        let saved = PathBuf::from(done.path.expect("a completed file has a path"));
        assert_eq!(
            saved,
            p.path("bob-downloads").join(format!("random-{size}.bin"))
        );
        assert_eq!(std::fs::metadata(&saved).unwrap().len(), size as u64);
        assert_eq!(hash_file(&saved), expected, "size {size}");
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_survives_the_senders_tor_being_killed() {
    let mut p = Pair::new().await;
    let size = 40 << 20;
    let source = p.path("survivor.bin");
    let data = random_bytes(size);
    let expected = blake3::hash(&data);
    std::fs::write(&source, &data).unwrap();
    drop(data);
    let (sent, received) = p.offer_and_accept(&source).await;
    next_over_tor(&mut p.bob.events, |e| match e {
        Event::FileProgress { id, bytes, .. } if *id == received && *bytes >= 1 << 20 => Some(()),
        Event::FileState { transfer } if transfer.id == received => {
            assert_ne!(
                transfer.state,
                TransferState::Completed,
                "finished before tor could be killed"
            );
            None
        }
        _ => None,
    })
    .await;

    let before = *p.alice.tor.restarts().borrow();
    kill(p.alice.tor.tor_pid().expect("a tor we launched"));
    let mut restarts = p.alice.tor.restarts();
    tokio::time::timeout(TOR_PATIENCE, restarts.wait_for(|n| *n > before))
        .await
        .expect("tor was not restarted")
        .unwrap();

    let done = reaches(
        &p.bob.node,
        &mut p.bob.events,
        received,
        TransferState::Completed,
    )
    .await;
    reaches(
        &p.alice.node,
        &mut p.alice.events,
        sent,
        TransferState::Completed,
    )
    .await;
    let saved = PathBuf::from(done.path.expect("a completed file has a path"));
    assert_eq!(hash_file(&saved), expected);
    let partials = std::fs::read_dir(p.path("bob-downloads"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .count();
    assert_eq!(partials, 0, "a partial file was left behind");
    p.stop().await;
}

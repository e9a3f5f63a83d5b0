//! File transfer between two nodes on the loopback transport: sizes around every
//! boundary, hostile names, no overwriting, declines and cancels from either
//! side, the size limit, resumption after either side restarts, and chat that
//! keeps flowing during a transfer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{befriend, create_profile, next_matching, start_with_files, until_online};
use nightjar_node::{AcceptFile, Event, FilesConfig, Node, NodeError, TransferState, TransferView};
use nightjar_store::Store;
use nightjar_tor::loopback::LoopbackNetwork;
use tokio::sync::broadcast;

type Events = broadcast::Receiver<Event>;

struct Pair {
    net: LoopbackNetwork,
    dir: tempfile::TempDir,
    alice: Node,
    alice_events: Events,
    bob: Node,
    bob_events: Events,
}

impl Pair {
    async fn new(bob_limit: Option<u64>) -> Self {
        nightjar_test_support::init_tracing();
        let net = LoopbackNetwork::new();
        let dir = tempfile::tempdir().unwrap();
        let (alice, mut alice_events) = start_with_files(
            create_profile(&dir.path().join("alice")),
            net.transport(),
            files_config(dir.path(), "alice", None),
        )
        .await;
        let (bob, mut bob_events) = start_with_files(
            create_profile(&dir.path().join("bob")),
            net.transport(),
            files_config(dir.path(), "bob", bob_limit),
        )
        .await;
        befriend(&alice, &mut alice_events, &bob, &mut bob_events).await;
        until_online(&alice, &mut alice_events, "bob").await;
        until_online(&bob, &mut bob_events, "alice").await;
        Self {
            net,
            dir,
            alice,
            alice_events,
            bob,
            bob_events,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Alice offers `source` to Bob, who accepts it as offered.
    async fn send_accepted(&mut self, source: &Path) -> (TransferView, TransferView) {
        let sent = self.alice.send_file("bob", source).await.unwrap();
        let offer = offered(&mut self.bob_events).await;
        self.bob
            .accept_file(offer.id, AcceptFile::default())
            .await
            .unwrap();
        (sent, offer)
    }

    fn downloads(&self) -> PathBuf {
        self.path("bob-downloads")
    }
}

fn files_config(root: &Path, who: &str, limit: Option<u64>) -> FilesConfig {
    FilesConfig {
        downloads: root.join(format!("{who}-downloads")),
        max_incoming: limit.unwrap_or(1 << 30),
    }
}

/// Deterministic bytes that differ from chunk to chunk.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(u64::from(seed)) as u8
        })
        .map(|b| b ^ ((len % 251) as u8))
        .collect()
}

async fn offered(events: &mut Events) -> TransferView {
    next_matching(events, |e| match e {
        Event::FileOffered { transfer } => Some(transfer.clone()),
        _ => None,
    })
    .await
}

/// Waits for transfer `id` to reach `state` (as reported by an event).
async fn reaches(events: &mut Events, id: i64, state: TransferState) -> TransferView {
    next_matching(events, |e| match e {
        Event::FileState { transfer } if transfer.id == id && transfer.state == state => {
            Some(transfer.clone())
        }
        _ => None,
    })
    .await
}

fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".part"))
        .collect()
}

fn no_partials(dir: &Path) {
    let left = partials(dir);
    assert!(left.is_empty(), "partial files were left: {left:?}");
}

/// A cancelled sink deletes its partial file on its own thread, just after the
/// cancel: wait for that (the patience is only a guard against hangs).
async fn partials_go(dir: &Path) {
    tokio::time::timeout(common::PATIENCE, async {
        while !partials(dir).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("partial files were left: {:?}", partials(dir)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_every_boundary_size_arrive_intact() {
    let mut p = Pair::new(None).await;
    let sizes = [
        0usize,
        1,
        363,
        364,
        497,
        498,
        499,
        65_535,
        65_536,
        65_537,
        3 * 1024 * 1024 + 7,
    ];
    for (n, size) in sizes.into_iter().enumerate() {
        let source = p.path(&format!("file-{size}.bin"));
        let data = content(size, n as u8);
        std::fs::write(&source, &data).unwrap();
        let sent = p.alice.send_file("bob", &source).await.unwrap();
        assert_eq!(sent.state, TransferState::Offered);
        assert_eq!(sent.hash, blake3::hash(&data).to_hex().to_string());
        let offer = offered(&mut p.bob_events).await;
        assert_eq!(
            (offer.size, offer.hash.as_str()),
            (size as u64, sent.hash.as_str())
        );
        assert_eq!(offer.name, format!("file-{size}.bin"));
        p.bob
            .accept_file(offer.id, AcceptFile::default())
            .await
            .unwrap();
        let done = reaches(&mut p.bob_events, offer.id, TransferState::Completed).await;
        reaches(&mut p.alice_events, sent.id, TransferState::Completed).await;
        let saved = PathBuf::from(done.path.unwrap());
        assert_eq!(saved, p.downloads().join(format!("file-{size}.bin")));
        assert_eq!(std::fs::read(&saved).unwrap(), data, "size {size}");
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "size {size}");
        assert_eq!(done.bytes_done, size as u64);
    }
    no_partials(&p.downloads());
    let listed = p.bob.transfers(Some("alice")).await.unwrap();
    assert_eq!(listed.len(), sizes.len());
    assert!(listed.iter().all(|t| t.state == TransferState::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_land_only_in_the_downloads_directory_and_nothing_is_overwritten() {
    let mut p = Pair::new(None).await;
    let names = [
        ("..\\..\\escaped.txt", "escaped.txt"),
        (".bashrc", "bashrc"),
        ("-rf", "rf"),
        ("photo\u{202E}gpj.exe", "photogpj.exe"),
        ("line\nbreak", "linebreak"),
        ("CON", "_CON"),
        ("C:\\Windows\\evil.dll", "evil.dll"),
    ];
    let outside = p.dir.path().to_owned();
    for (offered_name, expected) in names {
        let source_dir = p.path(&format!("src-{}", expected));
        std::fs::create_dir_all(&source_dir).unwrap();
        let source = source_dir.join(offered_name);
        std::fs::write(&source, expected.as_bytes()).unwrap();
        p.alice.send_file("bob", &source).await.unwrap();
        let offer = offered(&mut p.bob_events).await;
        assert_eq!(
            offer.save_name.as_deref(),
            Some(expected),
            "{offered_name:?}"
        );
        p.bob
            .accept_file(offer.id, AcceptFile::default())
            .await
            .unwrap();
        let done = reaches(&mut p.bob_events, offer.id, TransferState::Completed).await;
        let saved = PathBuf::from(done.path.unwrap());
        assert_eq!(saved.parent().unwrap(), p.downloads());
        assert_eq!(std::fs::read(&saved).unwrap(), expected.as_bytes());
    }
    assert!(!outside.join("escaped.txt").exists());

    // A file of that name exists: accepting refuses unless told another name
    // or to overwrite; a symlink there is never followed.
    let victim = p.path("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::os::unix::fs::symlink(&victim, p.downloads().join("report.txt")).unwrap();
    let source = p.path("report.txt");
    std::fs::write(&source, b"new report").unwrap();
    p.alice.send_file("bob", &source).await.unwrap();
    let offer = offered(&mut p.bob_events).await;
    let refused = p.bob.accept_file(offer.id, AcceptFile::default()).await;
    assert!(
        matches!(refused, Err(NodeError::FileExists(_))),
        "{refused:?}"
    );
    let renamed = AcceptFile {
        save_as: Some("../report-2.txt".into()),
        ..AcceptFile::default()
    };
    let accepted = p.bob.accept_file(offer.id, renamed).await.unwrap();
    assert_eq!(accepted.save_name.as_deref(), Some("report-2.txt"));
    let done = reaches(&mut p.bob_events, offer.id, TransferState::Completed).await;
    assert_eq!(
        PathBuf::from(done.path.unwrap()),
        p.downloads().join("report-2.txt")
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");

    // Overwriting replaces the link itself, not what it points to.
    p.alice.send_file("bob", &source).await.unwrap();
    let offer = offered(&mut p.bob_events).await;
    let overwrite = AcceptFile {
        overwrite: true,
        ..AcceptFile::default()
    };
    p.bob.accept_file(offer.id, overwrite).await.unwrap();
    reaches(&mut p.bob_events, offer.id, TransferState::Completed).await;
    assert_eq!(
        std::fs::read(p.downloads().join("report.txt")).unwrap(),
        b"new report"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    no_partials(&p.downloads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_cancels_and_the_size_limit_reach_the_other_side() {
    let mut p = Pair::new(Some(100_000)).await;
    let small = p.path("small.txt");
    std::fs::write(&small, b"hello").unwrap();
    let big = p.path("big.bin");
    std::fs::write(&big, content(200_000, 7)).unwrap();

    // Over the receiver's limit: declined without asking.
    let sent = p.alice.send_file("bob", &big).await.unwrap();
    let declined = reaches(&mut p.alice_events, sent.id, TransferState::Declined).await;
    assert_eq!(declined.reason.as_deref(), Some("too large"));

    // Declined by the person.
    let sent = p.alice.send_file("bob", &small).await.unwrap();
    let offer = offered(&mut p.bob_events).await;
    p.bob.decline_file(offer.id).await.unwrap();
    reaches(&mut p.alice_events, sent.id, TransferState::Declined).await;
    let again = p.bob.accept_file(offer.id, AcceptFile::default()).await;
    assert!(
        matches!(again, Err(NodeError::WrongState { .. })),
        "{again:?}"
    );

    // Cancelled by the sender before an answer.
    let sent = p.alice.send_file("bob", &small).await.unwrap();
    let offer = offered(&mut p.bob_events).await;
    p.alice.cancel_file(sent.id).await.unwrap();
    let cancelled = reaches(&mut p.bob_events, offer.id, TransferState::Cancelled).await;
    assert_eq!(cancelled.reason.as_deref(), Some("cancelled by alice"));

    // Cancelled by the receiver after accepting; the sender hears it.
    let sent = p.bob.send_file("alice", &big).await.unwrap();
    let offer = offered(&mut p.alice_events).await;
    p.alice
        .accept_file(offer.id, AcceptFile::default())
        .await
        .unwrap();
    p.alice.cancel_file(offer.id).await.unwrap();
    let state = next_matching(&mut p.bob_events, |e| match e {
        Event::FileState { transfer } if transfer.id == sent.id => match transfer.state {
            TransferState::Cancelled | TransferState::Completed => Some(transfer.clone()),
            _ => None,
        },
        _ => None,
    })
    .await;
    // The cancel may cross the last chunk; either way both sides agree.
    if state.state == TransferState::Cancelled {
        assert_eq!(state.reason.as_deref(), Some("cancelled by alice"));
    }
    let cancel_again = p.alice.cancel_file(offer.id).await;
    assert!(matches!(cancel_again, Err(NodeError::WrongState { .. })));
    partials_go(&p.path("alice-downloads")).await;

    // Unknown numbers are refused with a clear error.
    assert!(matches!(
        p.bob.accept_file(999, AcceptFile::default()).await,
        Err(NodeError::UnknownTransfer(999))
    ));
    // Directories and missing files are not sent.
    assert!(matches!(
        p.alice.send_file("bob", p.dir.path()).await,
        Err(NodeError::BadFile(_))
    ));
    assert!(matches!(
        p.alice.send_file("bob", &p.path("missing")).await,
        Err(NodeError::BadFile(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_keeps_flowing_while_a_file_transfers() {
    let mut p = Pair::new(None).await;
    let source = p.path("large.bin");
    let data = content(40 << 20, 3);
    std::fs::write(&source, &data).unwrap();
    let (sent, offer) = p.send_accepted(&source).await;
    next_matching(&mut p.bob_events, |e| {
        matches!(e, Event::FileProgress { id, .. } if *id == offer.id).then_some(())
    })
    .await;

    // Both ways, while chunks flow: the receipts come before the file completes.
    let to_bob = p.alice.send_message("bob", "still here?").await.unwrap();
    let to_alice = p.bob.send_message("alice", "yes").await.unwrap();
    for (events, id) in [
        (&mut p.alice_events, &to_bob.id),
        (&mut p.bob_events, &to_alice.id),
    ] {
        let first = next_matching(events, |e| match e {
            Event::MessageState { id: got, state, .. }
                if got == id && *state == nightjar_node::MessageState::Delivered =>
            {
                Some(true)
            }
            Event::FileState { transfer } if transfer.state == TransferState::Completed => {
                Some(false)
            }
            _ => None,
        })
        .await;
        assert!(first, "a message waited for the whole file");
    }
    reaches(&mut p.bob_events, offer.id, TransferState::Completed).await;
    reaches(&mut p.alice_events, sent.id, TransferState::Completed).await;
    let saved = p.downloads().join("large.bin");
    assert_eq!(
        blake3::hash(&std::fs::read(saved).unwrap()),
        blake3::hash(&data)
    );
}

/// Stops `who` after the receiver reported at least `at_least` bytes, starts
/// it again on its profile and checks the transfer resumes, not restarts.
async fn resumes_after_a_restart(restart_sender: bool) {
    let mut p = Pair::new(None).await;
    let source = p.path("resume.bin");
    let data = content(24 << 20, 9);
    std::fs::write(&source, &data).unwrap();
    let (sent, offer) = p.send_accepted(&source).await;
    let before = next_matching(&mut p.bob_events, |e| match e {
        Event::FileProgress { id, bytes, .. } if *id == offer.id && *bytes >= 2 << 20 => {
            Some(*bytes)
        }
        Event::FileState { transfer } if transfer.id == offer.id => {
            assert_ne!(
                transfer.state,
                TransferState::Completed,
                "finished too soon to test"
            );
            None
        }
        _ => None,
    })
    .await;
    let root = p.dir.path().to_owned();
    if restart_sender {
        p.alice.shutdown().await.unwrap();
        let (alice, events) = start_with_files(
            Store::open(&root.join("alice"), "pass").unwrap(),
            p.net.transport(),
            files_config(&root, "alice", None),
        )
        .await;
        (p.alice, p.alice_events) = (alice, events);
    } else {
        p.bob.shutdown().await.unwrap();
        let partial = std::fs::read_dir(p.downloads())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .expect("the partial file stays while the receiver is down");
        let kept = partial.metadata().unwrap().len();
        assert!(kept >= before, "the partial holds {kept} of {before} bytes");
        let (bob, events) = start_with_files(
            Store::open(&root.join("bob"), "pass").unwrap(),
            p.net.transport(),
            files_config(&root, "bob", None),
        )
        .await;
        (p.bob, p.bob_events) = (bob, events);
    }
    // The first progress after the restart starts from where it stood.
    let after = next_matching(&mut p.bob_events, |e| match e {
        Event::FileProgress { id, bytes, .. } if *id == offer.id => Some(*bytes),
        Event::FileState { transfer }
            if transfer.id == offer.id && transfer.state == TransferState::Completed =>
        {
            Some(transfer.size)
        }
        _ => None,
    })
    .await;
    assert!(
        after >= before,
        "restarted from {after} after reaching {before}"
    );
    let done = reaches(&mut p.bob_events, offer.id, TransferState::Completed).await;
    let saved = std::fs::read(done.path.unwrap()).unwrap();
    assert_eq!(blake3::hash(&saved), blake3::hash(&data));
    let alice_side = p.alice.transfer(sent.id).await.unwrap();
    if alice_side.state != TransferState::Completed {
        reaches(&mut p.alice_events, sent.id, TransferState::Completed).await;
    }
    no_partials(&p.downloads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_resumes_after_the_sender_restarts() {
    resumes_after_a_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_resumes_after_the_receiver_restarts() {
    resumes_after_a_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_source_fails_the_transfer_instead_of_sending_something_else() {
    let mut p = Pair::new(None).await;
    let source = p.path("changing.txt");
    std::fs::write(&source, b"the original").unwrap();
    let sent = p.alice.send_file("bob", &source).await.unwrap();
    let offer = offered(&mut p.bob_events).await;
    std::fs::write(&source, b"something else entirely").unwrap();
    p.bob
        .accept_file(offer.id, AcceptFile::default())
        .await
        .unwrap();
    let failed = reaches(&mut p.alice_events, sent.id, TransferState::Failed).await;
    assert_eq!(
        failed.reason.as_deref(),
        Some("the file changed at the sender")
    );
    let theirs = reaches(&mut p.bob_events, offer.id, TransferState::Failed).await;
    assert!(theirs.reason.is_some());
    partials_go(&p.downloads()).await;
}

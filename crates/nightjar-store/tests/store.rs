//! The profile store through its public interface, on disk and in memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use nightjar_store::{
    ContactState, Direction, KdfParams, MessageState, ProfileRecord, RequestDirection, Store,
    StoreError,
};
use zeroize::Zeroizing;

/// Cheap enough for tests; real profiles use `KdfParams::DEFAULT`.
const CHEAP: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

const PASS: &str = "correct horse battery staple";

fn profile() -> ProfileRecord {
    ProfileRecord {
        identity_secret: Zeroizing::new([1; 64]),
        request_seed: Zeroizing::new([2; 32]),
        endpoint_seed: Zeroizing::new([3; 32]),
        created_at_ms: 1_700_000_000_000,
    }
}

fn profile_dir(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    tmp.path().join("profile")
}

fn create(dir: &Path) -> Store {
    Store::create(dir, PASS, CHEAP, &profile()).unwrap()
}

/// A contact made through an outgoing request, with one message each way.
fn populate(store: &mut Store) {
    let req = store
        .add_outgoing_request(&[10; 32], &[11; 32], &[12; 32], "alice", "hi alice", 5)
        .unwrap();
    let alice = store
        .complete_outgoing(req.id, &[13; 32], &[14; 32], 6)
        .unwrap();
    store
        .put_incoming_request(&[20; 32], &[21; 32], &[22; 32], "hello from bob", 7)
        .unwrap();
    store
        .queue_message(alice.id, &[1; 16], "to alice", 8, 9)
        .unwrap();
    store
        .store_incoming(alice.id, &[2; 16], "from alice", 10, 11)
        .unwrap()
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_then_open_round_trips_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    assert!(!Store::exists(&dir));
    {
        let mut store = create(&dir);
        populate(&mut store);
    }
    assert!(Store::exists(&dir));
    let store = Store::open(&dir, PASS).unwrap();

    let p = store.profile().unwrap();
    assert_eq!(*p.identity_secret, [1; 64]);
    assert_eq!(*p.request_seed, [2; 32]);
    assert_eq!(*p.endpoint_seed, [3; 32]);
    assert_eq!(p.created_at_ms, 1_700_000_000_000);

    let contacts = store.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    let alice = &contacts[0];
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.identity_key, [10; 32]);
    assert_eq!(alice.their_endpoint, [13; 32]);
    assert_eq!(*alice.their_credential, [14; 32]);
    assert_eq!(*alice.our_credential, [12; 32]);
    assert_eq!(alice.state, ContactState::Active);
    assert!(!alice.verified);
    assert!(!alice.share_presence, "presence is opt-in");
    assert_eq!(alice.created_at_ms, 6);
    assert_eq!(store.contact(alice.id).unwrap().name, "alice");
    assert_eq!(
        store.contact_by_name("alice").unwrap().unwrap().id,
        alice.id
    );
    assert_eq!(
        store.contact_by_key(&[10; 32]).unwrap().unwrap().id,
        alice.id
    );
    assert!(store.contact_by_name("nobody").unwrap().is_none());
    assert!(store.contact_by_key(&[99; 32]).unwrap().is_none());

    let requests = store.requests().unwrap();
    assert_eq!(requests.len(), 1);
    let bob = &requests[0];
    assert_eq!(bob.direction, RequestDirection::Incoming);
    assert_eq!(bob.peer_key, [20; 32]);
    assert_eq!(bob.their_endpoint, Some([21; 32]));
    assert_eq!(bob.their_credential.as_deref(), Some(&[22; 32]));
    assert!(bob.our_credential.is_none());
    assert!(bob.peer_request_onion.is_none());
    assert!(bob.name.is_none());
    assert_eq!(bob.greeting, "hello from bob");
    assert!(bob.delivered);
    assert_eq!(bob.created_at_ms, 7);
    assert_eq!(store.request(bob.id).unwrap().greeting, "hello from bob");

    let history = store.history(alice.id, 10).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id, [1; 16]);
    assert_eq!(history[0].direction, Direction::Outgoing);
    assert_eq!(history[0].state, MessageState::Queued);
    assert_eq!(history[0].body, "to alice");
    assert_eq!((history[0].sent_at_ms, history[0].stored_at_ms), (8, 9));
    assert_eq!(history[1].id, [2; 16]);
    assert_eq!(history[1].direction, Direction::Incoming);
    assert_eq!(history[1].state, MessageState::Received);
    assert_eq!(history[1].body, "from alice");
    assert_eq!((history[1].sent_at_ms, history[1].stored_at_ms), (10, 11));
    assert_eq!(history[1].contact, alice.id);
    assert!(history[0].seq < history[1].seq);
}

#[test]
fn create_refuses_an_existing_profile_and_open_a_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    assert!(matches!(
        Store::open(&dir, PASS),
        Err(StoreError::NoProfile(_))
    ));
    assert!(!dir.exists(), "open must not create anything");
    drop(create(&dir));
    assert!(matches!(
        Store::create(&dir, PASS, CHEAP, &profile()),
        Err(StoreError::ProfileExists(_))
    ));
    // The refused creation left the profile as it was.
    Store::open(&dir, PASS).unwrap();
}

#[test]
fn leftovers_of_an_interrupted_creation_do_not_count_as_a_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    drop(create(&dir));
    // A creation that stopped before writing the key parameters.
    fs::remove_file(dir.join("profile.kdf")).unwrap();
    assert!(!Store::exists(&dir));
    assert!(matches!(
        Store::open(&dir, PASS),
        Err(StoreError::NoProfile(_))
    ));
    let store = create(&dir);
    assert!(store.contacts().unwrap().is_empty());
}

#[test]
fn wrong_passphrase_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    drop(create(&dir));
    assert!(matches!(
        Store::open(&dir, "not it"),
        Err(StoreError::WrongPassphrase)
    ));
    // The failed attempt let go of the lock.
    Store::open(&dir, PASS).unwrap();
}

const CHILD_ENV: &str = "NIGHTJAR_STORE_WRONG_PASSPHRASE_DIR";

/// Runs the wrong-passphrase open in a child process (this same test binary), so
/// its stderr can be inspected: SQLCipher must not print anything.
#[test]
fn wrong_passphrase_prints_nothing() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let result = Store::open(Path::new(&dir), "not it");
        assert!(matches!(result, Err(StoreError::WrongPassphrase)));
        println!("child saw WrongPassphrase");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    drop(create(&dir));
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wrong_passphrase_prints_nothing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains("child saw WrongPassphrase"),
        "child did not run: {stdout}"
    );
    assert!(
        stderr.trim().is_empty(),
        "something printed to stderr: {stderr:?}"
    );
}

#[test]
fn second_open_is_locked_until_the_first_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    let first = create(&dir);
    assert!(matches!(Store::open(&dir, PASS), Err(StoreError::Locked)));
    // Locked wins over a wrong passphrase: nothing is derived while locked.
    assert!(matches!(
        Store::open(&dir, "not it"),
        Err(StoreError::Locked)
    ));
    drop(first);
    let second = Store::open(&dir, PASS).unwrap();
    assert!(matches!(Store::open(&dir, PASS), Err(StoreError::Locked)));
    drop(second);
    Store::open(&dir, PASS).unwrap();
}

#[test]
fn directory_is_0700_and_files_are_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    let check = |dir: &Path| {
        assert_eq!(mode(dir), 0o700);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            names.push(entry.file_name().into_string().unwrap());
            assert_eq!(mode(&entry.path()), 0o600, "{:?}", entry.path());
        }
        names.sort();
        names
    };
    let mut store = create(&dir);
    populate(&mut store);
    let names = check(&dir);
    for expected in ["lock", "profile.db", "profile.kdf"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    // WAL mode: the log files exist while the store is open, and are private too.
    assert!(names.iter().any(|n| n == "profile.db-wal"), "{names:?}");
    drop(store);

    // Loosened by someone else: open narrows everything again.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["profile.db", "profile.kdf", "lock"] {
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let store = Store::open(&dir, PASS).unwrap();
    check(&dir);
    drop(store);
}

#[test]
fn create_narrows_an_existing_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    drop(create(&dir));
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn nothing_readable_on_disk() {
    const BODY: &str = "MARKER-BODY-7f3a9c";
    const NAME: &str = "MARKER-NAME-51be02";
    const GREETING: &str = "MARKER-GREETING-c81d";
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    let mut store = create(&dir);
    let req = store
        .add_outgoing_request(&[10; 32], &[11; 32], &[12; 32], NAME, GREETING, 1)
        .unwrap();
    let contact = store
        .complete_outgoing(req.id, &[13; 32], &[14; 32], 2)
        .unwrap();
    for i in 0..50u8 {
        store
            .queue_message(contact.id, &[i; 16], BODY, 3, 4)
            .unwrap();
    }
    store
        .add_outgoing_request(&[30; 32], &[31; 32], &[32; 32], "x", GREETING, 5)
        .unwrap();
    // Read while open (data in the WAL) and after closing (checkpointed).
    let scan = |dir: &Path| {
        let mut seen_bytes = 0;
        for entry in fs::read_dir(dir).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            seen_bytes += bytes.len();
            for marker in [BODY, NAME, GREETING] {
                assert!(
                    !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                    "{marker} found in plain text"
                );
            }
            // The profile's secrets in their raw form.
            assert!(!bytes.windows(64).any(|w| w == [1u8; 64]));
        }
        assert!(
            seen_bytes > 50 * BODY.len(),
            "the data was not written at all"
        );
    };
    scan(&dir);
    drop(store);
    scan(&dir);
    // And it is all still there.
    let store = Store::open(&dir, PASS).unwrap();
    assert_eq!(store.history(contact.id, 100).unwrap().len(), 50);
}

#[test]
fn in_memory_store_works_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd_before = fs::read_dir(tmp.path()).unwrap().count();
    let mut store = Store::in_memory(&profile()).unwrap();
    populate(&mut store);
    assert_eq!(*store.profile().unwrap().identity_secret, [1; 64]);
    let alice = store.contact_by_name("alice").unwrap().unwrap();
    assert_eq!(store.history(alice.id, 10).unwrap().len(), 2);
    assert_eq!(store.requests().unwrap().len(), 1);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), cwd_before);
    // Two in-memory stores are independent.
    let other = Store::in_memory(&profile()).unwrap();
    assert!(other.contacts().unwrap().is_empty());
}

#[test]
fn default_kdf_params_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    drop(Store::create(&dir, PASS, KdfParams::DEFAULT, &profile()).unwrap());
    let store = Store::open(&dir, PASS).unwrap();
    assert_eq!(*store.profile().unwrap().endpoint_seed, [3; 32]);
}

#[test]
fn unusable_kdf_params_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    let bad = KdfParams {
        memory_kib: 256,
        iterations: 0,
        parallelism: 1,
    };
    assert!(matches!(
        Store::create(&dir, PASS, bad, &profile()),
        Err(StoreError::Io(_))
    ));
    assert!(!Store::exists(&dir));
}

#[test]
fn damaged_kdf_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = profile_dir(&tmp);
    drop(create(&dir));
    fs::write(dir.join("profile.kdf"), b"{\"version\": 1}").unwrap();
    assert!(matches!(
        Store::open(&dir, PASS),
        Err(StoreError::Corrupt(_))
    ));
    fs::write(dir.join("profile.kdf"), b"{\"version\": 9}").unwrap();
    assert!(matches!(
        Store::open(&dir, PASS),
        Err(StoreError::TooNew(9))
    ));
}

#[test]
fn timestamps_beyond_i64_are_refused() {
    let mut store = Store::in_memory(&profile()).unwrap();
    let err = store
        .put_incoming_request(&[1; 32], &[2; 32], &[3; 32], "hi", u64::MAX)
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)));
    assert!(store.requests().unwrap().is_empty());
}

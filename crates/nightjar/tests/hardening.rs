//! The process hardening of `harden.rs`, seen from outside: a running nightjar has
//! no core dumps and is not dumpable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Only a guard against a hang: the server prints its address at once.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The user the server runs as when the test runs as root: the owner of
/// `/proc/<pid>/mem` then tells a dumpable process (its own uid) from a
/// non-dumpable one (root).
const NOBODY: u32 = 65534;

/// Kills the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary where another user may run it: a link in a directory anyone can
/// enter (the target directory may be private), a copy if linking fails.
fn binary_for_anyone(dir: &Path) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("nightjar");
    let built = Path::new(env!("CARGO_BIN_EXE_nightjar"));
    if std::fs::hard_link(built, &exe).is_err() {
        std::fs::copy(built, &exe).unwrap();
    }
    exe
}

/// Starts `nightjar mailbox --listen 127.0.0.1:0` and waits until it listens.
/// `debug_dumpable` sets `NIGHTJAR_DEBUG_DUMPABLE=1`.
fn start_mailbox(exe: &Path, as_root: bool, debug_dumpable: bool) -> Server {
    let mut command = Command::new(exe);
    command.args(["mailbox", "--listen", "127.0.0.1:0"]);
    if debug_dumpable {
        command.env("NIGHTJAR_DEBUG_DUMPABLE", "1");
    } else {
        command.env_remove("NIGHTJAR_DEBUG_DUMPABLE");
    }
    command
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if as_root {
        command.uid(NOBODY).gid(NOBODY);
    }
    let mut server = Server(command.spawn().unwrap());
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(HANG_GUARD)
        .expect("the mailbox did not start");
    assert!(
        line.starts_with("listening: "),
        "unexpected output: {line:?}"
    );
    server
}

/// The first two values of a line of a `/proc/<pid>/` table (`limits`: soft and
/// hard; `status`, `Uid:`: real and effective).
fn limit(limits: &str, name: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} in {limits}"));
    let mut values = line[name.len()..].split_whitespace();
    let soft = values.next().unwrap().to_owned();
    let hard = values.next().unwrap().to_owned();
    (soft, hard)
}

/// The owner of `/proc/<pid>/mem`, after checking that the server runs as the
/// user it was started as.
fn mem_owner(server: &Server, as_root: bool) -> u32 {
    let proc_dir = PathBuf::from(format!("/proc/{}", server.0.id()));
    // The real uid, from the contents of `status` (its owner is subject to the
    // same rule as `mem`).
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap();
    let uid = limit(&status, "Uid:").0;
    let expected_uid = if as_root {
        NOBODY
    } else {
        rustix::process::geteuid().as_raw()
    };
    assert_eq!(
        uid,
        expected_uid.to_string(),
        "the server runs as another user"
    );
    std::fs::metadata(proc_dir.join("mem")).unwrap().uid()
}

#[test]
fn process_is_not_dumpable() {
    let dir = tempfile::tempdir().unwrap();
    let exe = binary_for_anyone(dir.path());
    let as_root = rustix::process::geteuid().is_root();
    let server = start_mailbox(&exe, as_root, false);

    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.0.id())).unwrap();
    assert_eq!(
        limit(&limits, "Max core file size"),
        ("0".to_owned(), "0".to_owned()),
        "core dumps are still possible"
    );
    assert_eq!(
        mem_owner(&server, as_root),
        0,
        "/proc/<pid>/mem belongs to the process's user: it is dumpable"
    );
}

/// Debug builds can be left dumpable for a debugger; release builds cannot.
#[test]
fn debug_dumpable_only_in_debug_builds() {
    let dir = tempfile::tempdir().unwrap();
    let exe = binary_for_anyone(dir.path());
    let as_root = rustix::process::geteuid().is_root();
    let server = start_mailbox(&exe, as_root, true);
    let owner = mem_owner(&server, as_root);
    if cfg!(debug_assertions) {
        assert_ne!(owner, 0, "NIGHTJAR_DEBUG_DUMPABLE=1 was ignored");
    } else {
        assert_eq!(owner, 0, "a release build honoured NIGHTJAR_DEBUG_DUMPABLE");
    }
}

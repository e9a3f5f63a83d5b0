//! Starting and stopping the private network's tor processes.
//!
//! Each tor writes a pid file into its own directory, so a network started by one
//! command (`nightjar testnet up`) can be stopped by another (`down`), and a
//! network started by a test binary is stopped when that binary exits.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::TestnetError;

/// Starts `tor -f torrc` with its output in `dir/stdout.log`. A `detached` tor
/// gets its own process group so that a Ctrl-C in the terminal that ran
/// `testnet up` does not reach it.
pub(super) fn spawn_tor(
    tor: &Path,
    dir: &Path,
    torrc: &Path,
    detached: bool,
) -> Result<Child, TestnetError> {
    let log = File::create(dir.join("stdout.log"))
        .map_err(|e| TestnetError::io("creating a tor log file", e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| TestnetError::io("creating a tor log file", e))?;
    let mut cmd = Command::new(tor);
    // An explicit defaults file: the distribution's (/etc/tor/torrc-defaults,
    // tor-service-defaults-torrc) must not leak in.
    cmd.arg("-f")
        .arg(torrc)
        .args(["--defaults-torrc", "/dev/null"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    if detached {
        cmd.process_group(0);
    }
    cmd.spawn().map_err(|e| TestnetError::spawn(tor, e))
}

/// The last lines of a tor's output and log, to explain why it stopped.
pub(super) fn log_tail(dir: &Path) -> String {
    let mut tail = Vec::new();
    for name in ["stdout.log", "notice.log"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            let lines: Vec<&str> = text.lines().collect();
            tail.extend(
                lines[lines.len().saturating_sub(6)..]
                    .iter()
                    .map(|l| l.to_string()),
            );
        }
    }
    tail.join("\n")
}

/// The pid in `dir/pid`, if that process is still a tor started with
/// `dir/torrc` (so a stale pid file never makes us signal someone else's
/// process).
pub(super) fn running_pid(dir: &Path) -> Option<Pid> {
    let pid: i32 = std::fs::read_to_string(dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let torrc = dir.join("torrc");
    let torrc = torrc.to_string_lossy();
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == torrc.as_bytes());
    if ours { Pid::from_raw(pid) } else { None }
}

/// Stops the tors of every node directory under `network_dir` and waits until
/// they are gone (SIGKILL after `grace`).
pub(super) fn stop_all(network_dir: &Path, grace: Duration) -> Vec<PathBuf> {
    let nodes = node_dirs(network_dir);
    let mut pids: Vec<Pid> = nodes.iter().filter_map(|d| running_pid(d)).collect();
    for pid in &pids {
        let _ = rustix::process::kill_process(*pid, Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    while !pids.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        pids.retain(|p| alive(*p));
    }
    for pid in &pids {
        let _ = rustix::process::kill_process(*pid, Signal::KILL);
    }
    nodes
}

/// True while the process exists and is not a zombie we could reap.
fn alive(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !matches!(
        state.and_then(|s| s.chars().next()),
        Some('Z') | Some('X') | None
    )
}

/// The node directories (`auth0`, `relay3`, ...) of a network directory.
pub(super) fn node_dirs(network_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(network_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("torrc").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Starts a small watcher, in its own process group so a Ctrl-C does not stop
/// it, that waits for `owner` to exit, then stops the network's tors and removes
/// its directory. Tor's `__OwningControllerProcess` stops the tors by itself too,
/// but only within its polling period and never removes files. The watcher finds
/// the tors by their command line (`-f DIR/<node>/torrc`), so a tor that had not
/// yet written its pid file is stopped as well; one that ignores SIGTERM gets
/// SIGKILL after five seconds.
pub(super) fn spawn_reaper(owner: u32, network_dir: &Path) -> Result<(), TestnetError> {
    const SCRIPT: &str = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        pids=""
        for p in /proc/[0-9]*; do
            case "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" in
                *" $2/"*"/torrc "*) pids="$pids ${p#/proc/}" ;;
            esac
        done
        alive=""
        if [ -n "$pids" ]; then
            kill $pids 2>/dev/null
            for i in 1 2 3 4 5 6 7 8 9 10; do
                alive=""
                for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
                [ -z "$alive" ] && break
                sleep 0.5
            done
        fi
        [ -n "$alive" ] && kill -9 $alive 2>/dev/null
        rm -rf -- "$2"
    "#;
    Command::new("sh")
        .args(["-c", SCRIPT, "nightjar-testnet-reaper"])
        .arg(owner.to_string())
        .arg(network_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| TestnetError::spawn(Path::new("sh"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_pid_file_names_no_process_of_ours() {
        let dir = tempfile::tempdir().unwrap();
        // Our own pid: alive, but not a tor with this torrc.
        std::fs::write(dir.path().join("pid"), std::process::id().to_string()).unwrap();
        assert!(running_pid(dir.path()).is_none());
        std::fs::write(dir.path().join("pid"), "not a pid").unwrap();
        assert!(running_pid(dir.path()).is_none());
    }

    #[test]
    fn liveness_of_this_process() {
        let me = Pid::from_raw(std::process::id() as i32).unwrap();
        assert!(alive(me));
    }
}

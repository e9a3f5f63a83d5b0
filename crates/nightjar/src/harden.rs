//! Process hardening, applied before anything else runs.
//!
//! A core dump or a debugger attached by another process of the same user would
//! read keys and plaintext straight out of memory. So: no core files at all
//! (`RLIMIT_CORE` 0, soft and hard, so the limit cannot be raised again), and the
//! process is made non-dumpable, which also denies `ptrace` attach and hands the
//! files under `/proc/<pid>/` (`mem`, `environ`, `maps`, ...) to root.
//!
//! Child processes (tor) are not affected: `execve` resets dumpability.

use anyhow::Context as _;
use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};

/// In debug builds, `NIGHTJAR_DEBUG_DUMPABLE=1` leaves the process dumpable so a
/// developer can attach a debugger. Release builds ignore it.
const DEBUG_DUMPABLE: &str = "NIGHTJAR_DEBUG_DUMPABLE";

/// Turns core dumps off and makes the process non-dumpable.
///
/// Neither call can fail on Linux short of a seccomp filter; if one does, nightjar
/// refuses to run rather than run without it.
pub fn process() -> anyhow::Result<()> {
    if cfg!(debug_assertions) && std::env::var_os(DEBUG_DUMPABLE).is_some_and(|v| v == "1") {
        return Ok(());
    }
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, none).context("cannot turn core dumps off")?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .context("cannot make the process non-dumpable")?;
    Ok(())
}

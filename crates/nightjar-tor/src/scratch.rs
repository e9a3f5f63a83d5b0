//! Directories held in memory, for state that must never reach a disk.
//!
//! An ephemeral profile promises that nothing of it outlives the process; Tor's
//! state (guards, consensus, descriptors, keys of the services it hosts) is part
//! of it. Such state goes in a fresh directory on a tmpfs or ramfs, and where the
//! system has none, starting fails rather than falling back to a disk.

use std::io;
use std::path::{Path, PathBuf};

/// `TMPFS_MAGIC` from `linux/magic.h`: what `statfs` reports for a tmpfs.
pub const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `RAMFS_MAGIC` from `linux/magic.h`.
pub const RAMFS_MAGIC: u32 = 0x8584_58f6;

/// Why no directory in memory could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScratchError {
    /// None of the candidate directories is on a tmpfs or ramfs.
    #[error("no RAM-backed directory for Tor's state: mount a tmpfs or point TMPDIR at one")]
    NoRamDirectory,
    /// A RAM-backed directory was found, but a directory could not be made in it.
    #[error("could not create a directory in {}: {source}", dir.display())]
    Create {
        /// Where it was tried.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// A fresh private directory (mode 0700, removed on drop) whose name starts
/// with `prefix`, in the first of `$XDG_RUNTIME_DIR`, `/dev/shm` and `$TMPDIR`
/// that is on a tmpfs or ramfs.
pub fn ram_dir(prefix: &str) -> Result<tempfile::TempDir, ScratchError> {
    ram_dir_among(candidates(), prefix)
}

/// The directories [`ram_dir`] considers, in order.
pub fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(PathBuf::from("/dev/shm"));
    if let Some(dir) = std::env::var_os("TMPDIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

/// [`ram_dir`] over an explicit list of candidates.
pub fn ram_dir_among(
    candidates: impl IntoIterator<Item = PathBuf>,
    prefix: &str,
) -> Result<tempfile::TempDir, ScratchError> {
    use std::os::unix::fs::PermissionsExt as _;
    let base = first_ram_backed(candidates).ok_or(ScratchError::NoRamDirectory)?;
    // Private from the start: tor refuses a data directory others can read,
    // and the keys of the services it hosts are kept there.
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&base)
        .map_err(|source| ScratchError::Create { dir: base, source })
}

/// The first of `candidates` that is a directory on a tmpfs or ramfs.
pub fn first_ram_backed(candidates: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    candidates
        .into_iter()
        .find(|dir| dir.is_dir() && is_ram_backed(dir))
}

/// Whether `path` lies on a tmpfs or ramfs. A path that cannot be examined is
/// not.
pub fn is_ram_backed(path: &Path) -> bool {
    let Ok(stat) = rustix::fs::statfs(path) else {
        return false;
    };
    // `f_type`'s width differs between architectures; the magic numbers are 32
    // bits wide, and a 32-bit signed field holds ramfs's as a negative number.
    let kind = i128::from(stat.f_type) & 0xffff_ffff;
    kind == i128::from(TMPFS_MAGIC) || kind == i128::from(RAMFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory on the same file system as the sources: a disk on any
    /// machine that builds nightjar from a checkout.
    fn on_disk() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn dev_shm_is_ram_backed_and_the_sources_are_not() {
        assert!(is_ram_backed(Path::new("/dev/shm")));
        assert!(!is_ram_backed(&on_disk()));
        assert!(!is_ram_backed(Path::new("/no/such/directory")));
    }

    #[test]
    fn a_disk_is_skipped_for_the_next_ram_backed_candidate() {
        let first = first_ram_backed([on_disk(), PathBuf::from("/dev/shm")]);
        assert_eq!(first, Some(PathBuf::from("/dev/shm")));
    }

    #[test]
    fn candidates_are_taken_in_order() {
        let outer = tempfile::tempdir_in("/dev/shm").unwrap();
        let first = first_ram_backed([outer.path().to_owned(), PathBuf::from("/dev/shm")]);
        assert_eq!(first.as_deref(), Some(outer.path()));
    }

    #[test]
    fn the_directory_is_made_in_memory_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = ram_dir_among([on_disk(), PathBuf::from("/dev/shm")], "nightjar-test-").unwrap();
        let path = dir.path().to_owned();
        assert!(path.starts_with("/dev/shm"));
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("nightjar-test-")
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn without_a_ram_backed_directory_there_is_no_fallback_to_disk() {
        let missing = PathBuf::from("/no/such/directory");
        let err = ram_dir_among([on_disk(), missing], "nightjar-test-").unwrap_err();
        assert!(matches!(err, ScratchError::NoRamDirectory));
        assert_eq!(
            err.to_string(),
            "no RAM-backed directory for Tor's state: mount a tmpfs or point TMPDIR at one"
        );
    }

    #[test]
    fn dev_shm_is_always_a_candidate() {
        assert!(candidates().contains(&PathBuf::from("/dev/shm")));
    }
}

//! The listening socket: private from its first moment, never stolen from a
//! running daemon, and removed only if it is still ours.

use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, bail};
use tokio::net::{UnixListener, UnixStream};
use tracing::debug;

/// The socket's permissions: its owner only.
pub(crate) const SOCKET_MODE: u32 = 0o600;

/// A socket bound at a path, with the identity of the file it made there.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) listener: UnixListener,
    path: PathBuf,
    /// Device and inode of our socket file, so cleanup never removes a file that
    /// someone else put at the path in the meantime.
    file: (u64, u64),
}

/// Binds at `path` with mode 0600.
///
/// The socket is made inside a fresh 0700 directory next to `path`, given its
/// mode there, and renamed into place: at no moment can anyone else connect, and
/// the process umask does not matter. A socket file with no daemon behind it is
/// replaced; a live one is not.
pub(crate) async fn bind(path: &Path) -> anyhow::Result<Bound> {
    clear_stale(path).await?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let private = make_private_dir(parent)?;
    let result = bind_in(&private, path);
    if let Err(e) = std::fs::remove_dir(&private) {
        debug!("could not remove the socket's staging directory: {e}");
    }
    result
}

fn bind_in(private: &Path, path: &Path) -> anyhow::Result<Bound> {
    let staged = private.join("s");
    let listener = UnixListener::bind(&staged)
        .with_context(|| format!("cannot create a socket in {}", private.display()))?;
    let placed = std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(SOCKET_MODE))
        .and_then(|()| std::fs::rename(&staged, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staged);
        return Err(e).with_context(|| format!("cannot create the socket {}", path.display()));
    }
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("the socket {} vanished", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.file_type().is_socket() || mode != SOCKET_MODE {
        bail!(
            "{} is not a socket of mode {SOCKET_MODE:o} (mode {mode:o}); refusing to serve",
            path.display()
        );
    }
    Ok(Bound {
        listener,
        path: path.to_owned(),
        file: (meta.dev(), meta.ino()),
    })
}

/// Removes a socket file nobody listens on; refuses a live one and anything that
/// is not a socket.
async fn clear_stale(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot examine {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; not replacing it",
            path.display()
        );
    }
    match UnixStream::connect(path).await {
        Ok(_) => bail!("a daemon is already listening on {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            debug!("removing a stale socket file");
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot check the socket {}", path.display())),
    }
}

fn make_private_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    // Unique within the process by the counter, across processes by the pid; a
    // name someone else took already is simply skipped (create never reuses).
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut last_error = None;
    for _ in 0..16 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(".nj{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create a directory in {}", parent.display()));
            }
        }
    }
    Err(anyhow::anyhow!(
        "cannot create a private directory in {}: {:?}",
        parent.display(),
        last_error
    ))
}

impl Bound {
    /// Stops listening and removes the socket file if it is still the one we made.
    pub(crate) fn remove(self) {
        drop(self.listener);
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.file => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    debug!("could not remove the socket file: {e}");
                }
            }
            _ => debug!("the socket file was replaced or removed; leaving the path alone"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[tokio::test]
    async fn the_socket_is_private_whatever_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.path().join("d.sock");
        let bound = bind(&path).await.unwrap();
        assert_eq!(mode(&path), 0o600);
        // Only the socket is left in the directory.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("d.sock")]);
        // It is the socket we listen on.
        let (_client, accepted) = tokio::join!(UnixStream::connect(&path), bound.listener.accept());
        accepted.unwrap();
        bound.remove();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_live_socket_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let first = bind(&path).await.unwrap();
        let e = bind(&path).await.unwrap_err();
        assert!(e.to_string().contains("already listening"), "{e}");
        let (_client, accepted) = tokio::join!(UnixStream::connect(&path), first.listener.accept());
        accepted.unwrap();
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let bound = bind(&path).await.unwrap();
        assert_eq!(mode(&path), 0o600);
        bound.remove();
    }

    #[tokio::test]
    async fn other_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes");
        std::fs::write(&path, b"keep me").unwrap();
        let e = bind(&path).await.unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }

    #[tokio::test]
    async fn a_replaced_socket_file_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let bound = bind(&path).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        bound.remove();
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    }
}

//! The profile lock: one open `Store` per profile, across processes.

use std::fs::File;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::StoreError;
use crate::files;

/// An exclusive `flock` on the profile's `lock` file, released when dropped (the
/// file is closed). A second lock on the same file fails even inside one process,
/// because `flock` locks belong to the open file, not to the process.
#[derive(Debug)]
pub(crate) struct ProfileLock {
    _file: File,
}

impl ProfileLock {
    pub(crate) fn acquire(path: &Path) -> Result<Self, StoreError> {
        let file = files::open_private(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file }),
            Err(e) if e == Errno::WOULDBLOCK => Err(StoreError::Locked),
            Err(e) => Err(StoreError::Io(e.into())),
        }
    }
}

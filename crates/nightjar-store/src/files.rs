//! Where a profile's files live, and keeping them private to their owner.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the profile directory.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of every file in it.
pub(crate) const FILE_MODE: u32 = 0o600;

/// The files of one profile.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) database: PathBuf,
    pub(crate) kdf: PathBuf,
    pub(crate) kdf_tmp: PathBuf,
    pub(crate) lock: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            database: dir.join("profile.db"),
            kdf: dir.join("profile.kdf"),
            kdf_tmp: dir.join("profile.kdf.tmp"),
            lock: dir.join("lock"),
        }
    }

    /// SQLite's companions of the database file (WAL mode and rollback journal).
    pub(crate) fn database_companions(&self) -> [PathBuf; 3] {
        let with_suffix = |suffix: &str| {
            let mut name = self.database.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        [
            with_suffix("-wal"),
            with_suffix("-shm"),
            with_suffix("-journal"),
        ]
    }

    /// The kdf file is written last, in one rename, so its presence is what makes a
    /// profile.
    pub(crate) fn profile_exists(&self) -> bool {
        self.kdf.is_file()
    }

    /// Leftovers of a creation that stopped before the kdf file was in place: a
    /// database nobody can open, because its salt was never stored.
    pub(crate) fn remove_incomplete(&self) -> io::Result<()> {
        let mut paths = vec![self.database.clone(), self.kdf_tmp.clone()];
        paths.extend(self.database_companions());
        for path in paths {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sets every existing file of the profile to 0600.
    pub(crate) fn tighten_files(&self) -> io::Result<()> {
        let mut paths = vec![self.database.clone(), self.kdf.clone(), self.lock.clone()];
        paths.extend(self.database_companions());
        for path in paths {
            tighten(&path, FILE_MODE)?;
        }
        Ok(())
    }
}

/// Makes `dir` (and missing parents) with mode 0700, or narrows an existing one to
/// 0700 if others could read it.
pub(crate) fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    tighten(dir, DIR_MODE)
}

/// Narrows `path` to `mode` if it allows more; a missing path is left alone.
pub(crate) fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.permissions().mode() & 0o777 & !mode != 0 {
        fs::set_permissions(path, Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Opens (creating if needed) a file readable and writable by its owner only.
pub(crate) fn open_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    tighten(path, FILE_MODE)?;
    Ok(file)
}

/// Creates an empty file with mode 0600 that must not exist yet.
pub(crate) fn create_private_new(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    Ok(())
}

/// Writes `contents` to `dest` durably and atomically: a 0600 temporary file,
/// synced, renamed over `dest`, and the directory synced so the rename survives a
/// crash.
pub(crate) fn write_atomic(tmp: &Path, dest: &Path, dir: &Path, contents: &[u8]) -> io::Result<()> {
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(tmp)?;
        tighten(tmp, FILE_MODE)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    fs::rename(tmp, dest)?;
    File::open(dir)?.sync_all()
}

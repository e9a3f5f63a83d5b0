//! Turning the passphrase into the database key, and the small file beside the
//! database that says how.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{KdfParams, StoreError};

/// Version of the kdf file this code writes and reads.
const FORMAT_VERSION: u32 = 1;
const ALGORITHM: &str = "argon2id-v19";
pub(crate) const SALT_LEN: usize = 16;
pub(crate) const KEY_LEN: usize = 32;

/// More memory than this (4 GiB) is refused, so that a damaged or hostile kdf file
/// cannot make opening a profile exhaust the machine.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Likewise for passes and lanes.
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 16;

/// What `profile.kdf` holds: nothing secret, only what is needed to derive the key
/// again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KdfFile {
    pub(crate) version: u32,
    pub(crate) algorithm: String,
    pub(crate) memory_kib: u32,
    pub(crate) iterations: u32,
    pub(crate) parallelism: u32,
    /// Hex.
    pub(crate) salt: String,
}

/// Only the version, read first so a newer file is reported as such rather than as
/// damage.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// The database key, raw.
pub(crate) struct DatabaseKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseKey(..)")
    }
}

impl DatabaseKey {
    /// The statement that keys a SQLCipher connection with this raw key. The `x'..'`
    /// form makes SQLCipher use the key as is instead of running its own PBKDF2.
    pub(crate) fn pragma(&self) -> Zeroizing<String> {
        const PREFIX: &str = "PRAGMA key = \"x'";
        const SUFFIX: &str = "'\";";
        // Sized up front so the string never reallocates and leaves copies behind.
        let mut sql = Zeroizing::new(String::with_capacity(
            PREFIX.len() + 2 * KEY_LEN + SUFFIX.len(),
        ));
        sql.push_str(PREFIX);
        push_hex(&mut sql, self.0.as_slice());
        sql.push_str(SUFFIX);
        sql
    }
}

impl KdfFile {
    /// Parameters for a new profile, with a fresh random salt.
    pub(crate) fn generate(params: KdfParams) -> Result<Self, StoreError> {
        check_params(params).map_err(|why| {
            StoreError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, why))
        })?;
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)
            .map_err(|e| StoreError::Io(std::io::Error::other(format!("no randomness: {e}"))))?;
        let mut salt_hex = String::with_capacity(2 * SALT_LEN);
        push_hex(&mut salt_hex, &salt);
        Ok(Self {
            version: FORMAT_VERSION,
            algorithm: ALGORITHM.to_owned(),
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
            salt: salt_hex,
        })
    }

    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, StoreError> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode the key parameters: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad =
            |e: serde_json::Error| StoreError::Corrupt(format!("bad key parameter file: {e}"));
        let version: VersionOnly = serde_json::from_slice(bytes).map_err(bad)?;
        if version.version > FORMAT_VERSION {
            return Err(StoreError::TooNew(version.version));
        }
        let file: Self = serde_json::from_slice(bytes).map_err(bad)?;
        if file.version != FORMAT_VERSION || file.algorithm != ALGORITHM {
            return Err(StoreError::Corrupt(
                "unknown key derivation in the key parameter file".to_owned(),
            ));
        }
        check_params(file.params()).map_err(|why| StoreError::Corrupt(why.to_owned()))?;
        file.salt_bytes()?;
        Ok(file)
    }

    pub(crate) fn params(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        }
    }

    fn salt_bytes(&self) -> Result<[u8; SALT_LEN], StoreError> {
        parse_hex(&self.salt)
            .ok_or_else(|| StoreError::Corrupt("bad salt in the key parameter file".to_owned()))
    }

    /// Argon2id over the passphrase and the salt.
    pub(crate) fn derive(&self, passphrase: &str) -> Result<DatabaseKey, StoreError> {
        let salt = self.salt_bytes()?;
        let p = self.params();
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, Some(KEY_LEN))
            .map_err(|e| StoreError::Corrupt(format!("bad key derivation parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, key.as_mut_slice())
            .map_err(|e| StoreError::Corrupt(format!("key derivation failed: {e}")))?;
        Ok(DatabaseKey(key))
    }
}

fn check_params(p: KdfParams) -> Result<(), &'static str> {
    if p.parallelism == 0 || p.parallelism > MAX_PARALLELISM {
        return Err("Argon2 lanes out of range");
    }
    if p.iterations == 0 || p.iterations > MAX_ITERATIONS {
        return Err("Argon2 passes out of range");
    }
    // Argon2 needs at least 8 KiB per lane.
    if p.memory_kib < 8 * p.parallelism || p.memory_kib > MAX_MEMORY_KIB {
        return Err("Argon2 memory out of range");
    }
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |d: u8| {
        char::from(d)
            .to_digit(16)
            .and_then(|v| u8::try_from(v).ok())
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *byte = (value(*hi)? << 4) | value(*lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn file_round_trip() {
        let file = KdfFile::generate(CHEAP).unwrap();
        let back = KdfFile::from_bytes(&file.to_bytes().unwrap()).unwrap();
        assert_eq!(file, back);
        assert_eq!(back.params(), CHEAP);
    }

    #[test]
    fn salts_differ() {
        let a = KdfFile::generate(CHEAP).unwrap();
        let b = KdfFile::generate(CHEAP).unwrap();
        assert_ne!(a.salt, b.salt);
    }

    #[test]
    fn derivation_depends_on_passphrase_and_salt() {
        let file = KdfFile::generate(CHEAP).unwrap();
        let a = file.derive("one").unwrap();
        assert_eq!(*a.0, *file.derive("one").unwrap().0);
        assert_ne!(*a.0, *file.derive("two").unwrap().0);
        let other = KdfFile::generate(CHEAP).unwrap();
        assert_ne!(*a.0, *other.derive("one").unwrap().0);
    }

    #[test]
    fn pragma_is_raw_hex_key() {
        let key = DatabaseKey(Zeroizing::new([0xab; KEY_LEN]));
        let sql = key.pragma();
        assert_eq!(
            *sql,
            format!("PRAGMA key = \"x'{}'\";", "ab".repeat(KEY_LEN))
        );
        assert_eq!(format!("{key:?}"), "DatabaseKey(..)");
    }

    #[test]
    fn newer_version_is_too_new() {
        let mut file = KdfFile::generate(CHEAP).unwrap();
        file.version = FORMAT_VERSION + 1;
        let bytes = serde_json::to_vec(&file).unwrap();
        assert!(matches!(
            KdfFile::from_bytes(&bytes),
            Err(StoreError::TooNew(2))
        ));
    }

    #[test]
    fn damaged_files_are_corrupt() {
        let good = KdfFile::generate(CHEAP).unwrap();
        let mut bad_salt = good.clone();
        bad_salt.salt = "zz".repeat(SALT_LEN);
        let mut short_salt = good.clone();
        short_salt.salt.truncate(10);
        let mut huge = good.clone();
        huge.memory_kib = u32::MAX;
        let mut algorithm = good.clone();
        algorithm.algorithm = "scrypt".to_owned();
        for file in [bad_salt, short_salt, huge, algorithm] {
            let bytes = serde_json::to_vec(&file).unwrap();
            assert!(matches!(
                KdfFile::from_bytes(&bytes),
                Err(StoreError::Corrupt(_))
            ));
        }
        assert!(matches!(
            KdfFile::from_bytes(b"{"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 4] = [0x00, 0x7f, 0x80, 0xff];
        let mut s = String::new();
        push_hex(&mut s, &bytes);
        assert_eq!(s, "007f80ff");
        assert_eq!(parse_hex::<4>(&s), Some(bytes));
        assert_eq!(parse_hex::<4>("007F80FF"), Some(bytes));
        assert_eq!(parse_hex::<4>("007f80f"), None);
        assert_eq!(parse_hex::<4>("007f80fg"), None);
    }
}

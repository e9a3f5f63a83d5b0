//! Received file names: whatever a peer offers, the cleaned name is non-empty, at
//! most 255 bytes, a single component without control characters, neither hidden
//! nor an option, and cleaning it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nightjar_proto::files::{FileId, MAX_NAME_LEN, sanitize_name};

fuzz_target!(|data: &[u8]| {
    let (id, rest) = data.split_at(data.len().min(16));
    let mut id_bytes = [0u8; 16];
    id_bytes[..id.len()].copy_from_slice(id);
    let id = FileId(id_bytes);
    let Ok(offered) = std::str::from_utf8(rest) else {
        return;
    };
    let name = sanitize_name(offered, &id);
    assert!(!name.is_empty());
    assert!(name.len() <= MAX_NAME_LEN);
    assert!(!name.contains(['/', '\\', '\0']));
    assert!(!name.chars().any(char::is_control));
    assert!(!name.starts_with(['.', '-']));
    assert_eq!(sanitize_name(&name, &id), name);
});

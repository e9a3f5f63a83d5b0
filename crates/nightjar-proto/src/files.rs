//! File transfer: chunk arithmetic, reasons, and making received names safe.
//!
//! A file travels as [`crate::message::Message`] kinds inside a contact's link
//! session: an offer (size, BLAKE3 hash, name), an accept with a credit window,
//! chunks of [`CHUNK_LEN`] bytes, acks, and a final done. Every chunk frame of one
//! transfer is padded to the same number of cells ([`chunk_frame_cells`]), so the
//! short last chunk does not stand out on the wire.

use core::fmt;

use zeroize::Zeroize;

use crate::cell;

/// Bytes per chunk; the last chunk of a file may be shorter.
pub const CHUNK_LEN: usize = 65_536;
/// The longest file name on the wire, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;
/// The receiver's window: how many chunks past the acknowledged ones it lets come.
pub const CREDIT_CHUNKS: u32 = 32;
/// The receiver acknowledges every this many chunks (and at the end).
pub const ACK_EVERY: u32 = 4;

/// The longest extension [`sanitize_name`] keeps when it shortens a name, in bytes
/// with its dot.
const MAX_EXTENSION_LEN: usize = 16;

/// Bytes of a chunk message before its data: version, kind, id, attempt, index and
/// the data's length prefix (see [`crate::message`]).
pub(crate) const CHUNK_HEADER_LEN: usize = 1 + 1 + 16 + 4 + 4 + 4;

// A full chunk must fit in one frame.
const _: () =
    assert!(CHUNK_HEADER_LEN + CHUNK_LEN <= cell::payload_capacity(cell::MAX_FRAME_CELLS));

/// A random 16-byte transfer identifier, chosen by the sender.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Zeroize)]
pub struct FileId(pub [u8; 16]);

/// Shows only the first four bytes: enough to tell transfers apart in a log.
impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileId(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

/// How many chunks a file of `size` bytes takes; `None` past `u32::MAX` chunks.
pub fn chunk_count(size: u64) -> Option<u32> {
    u32::try_from(size.div_ceil(CHUNK_LEN as u64)).ok()
}

/// Length of chunk `index` of a file of `size` bytes (`None` if out of range).
pub fn chunk_len(size: u64, index: u32) -> Option<usize> {
    if index >= chunk_count(size)? {
        return None;
    }
    let start = u64::from(index) * CHUNK_LEN as u64;
    let len = (size - start).min(CHUNK_LEN as u64);
    usize::try_from(len).ok()
}

/// Cells every chunk frame of a file of this size is padded to: enough for the
/// chunk message carrying `min(size, CHUNK_LEN)` data bytes. 0 for an empty file,
/// which has no chunks.
pub fn chunk_frame_cells(size: u64) -> usize {
    if size == 0 {
        return 0;
    }
    let data = usize::try_from(size).map_or(CHUNK_LEN, |s| s.min(CHUNK_LEN));
    // Cannot fail: a full chunk fits in one frame (asserted above).
    cell::cells_for(CHUNK_HEADER_LEN + data).unwrap_or(cell::MAX_FRAME_CELLS)
}

/// Why an offer was declined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Zeroize)]
pub enum DeclineReason {
    /// The receiver said no.
    Declined,
    /// Over the receiver's size limit.
    TooLarge,
    /// The receiver has too many offers waiting.
    Busy,
}

impl DeclineReason {
    /// The byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::Declined => 1,
            Self::TooLarge => 2,
            Self::Busy => 3,
        }
    }

    /// From the byte on the wire; a code this version does not know (from a newer
    /// peer) is a plain decline.
    pub fn from_code(code: u8) -> Self {
        match code {
            2 => Self::TooLarge,
            3 => Self::Busy,
            _ => Self::Declined,
        }
    }
}

impl fmt::Display for DeclineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Declined => "declined",
            Self::TooLarge => "too large",
            Self::Busy => "busy",
        })
    }
}

/// Why a transfer was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Zeroize)]
pub enum CancelReason {
    /// The sender cancelled it.
    BySender,
    /// The receiver cancelled it.
    ByReceiver,
    /// The file changed at the sender after it was offered.
    SourceChanged,
    /// The received file does not match the offered hash.
    Mismatch,
    /// A message broke the transfer's rules.
    Protocol,
    /// The sender can no longer read the file.
    SourceUnreadable,
    /// The receiver cannot write the file.
    ReceiverDisk,
}

impl CancelReason {
    /// The byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::BySender => 1,
            Self::ByReceiver => 2,
            Self::SourceChanged => 3,
            Self::Mismatch => 4,
            Self::Protocol => 5,
            Self::SourceUnreadable => 6,
            Self::ReceiverDisk => 7,
        }
    }

    /// From the byte on the wire; a code this version does not know (from a newer
    /// peer) counts as a protocol failure.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::BySender,
            2 => Self::ByReceiver,
            3 => Self::SourceChanged,
            4 => Self::Mismatch,
            6 => Self::SourceUnreadable,
            7 => Self::ReceiverDisk,
            _ => Self::Protocol,
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BySender => "cancelled by the sender",
            Self::ByReceiver => "cancelled by the receiver",
            Self::SourceChanged => "the file changed at the sender",
            Self::Mismatch => "the received file did not match its hash",
            Self::Protocol => "protocol error",
            Self::SourceUnreadable => "the sender could not read the file",
            Self::ReceiverDisk => "the receiver could not write the file",
        })
    }
}

/// A received file name made safe to create in a downloads directory.
///
/// Keeps the last non-empty path component (splitting on `/` and `\`), drops
/// control and invisible formatting characters, replaces characters Windows
/// forbids with `_`, trims whitespace, leading `.` and `-` and trailing `.`,
/// prefixes `_` to Windows device names, and shortens to [`MAX_NAME_LEN`] bytes
/// keeping a short extension. A name with nothing left becomes
/// `file-<first 8 hex digits of id>`. The result is never empty, never a hidden
/// file or an option, and cleaning it again changes nothing.
pub fn sanitize_name(offered: &str, id: &FileId) -> String {
    let component = offered
        .split(['/', '\\'])
        .rfind(|part| !part.is_empty())
        .unwrap_or("");
    let cleaned: String = component
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .map(|c| if is_forbidden(c) { '_' } else { c })
        .collect();
    let mut name = cut(trim(&cleaned));
    // After cutting: shortening `con` + spaces + more can leave a device name.
    if is_device_name(&name) {
        name.insert(0, '_');
        name = cut(&name);
    }
    if name.is_empty() {
        let hex: String = id.0[..4].iter().map(|b| format!("{b:02x}")).collect();
        return format!("file-{hex}");
    }
    name
}

/// Invisible formatting characters that can disguise a name or any other text a
/// peer sends (the bidirectional overrides turn `photo<RLO>gpj.exe` into what
/// looks like `photoexe.jpg`); what shows peer text should drop them.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}')
}

/// Characters Windows does not allow in names.
fn is_forbidden(c: char) -> bool {
    matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|')
}

/// Strips what may not start a name (whitespace, `.`, `-`) or end it (whitespace,
/// `.`). One pass reaches the fixed point, as both sets include whitespace.
fn trim(name: &str) -> &str {
    name.trim_start_matches(|c: char| c.is_whitespace() || c == '.' || c == '-')
        .trim_end_matches(|c: char| c.is_whitespace() || c == '.')
}

/// Windows device names (`CON`, `com1.txt`, `aux.tar.gz`, ...): whatever the
/// extension, such a name opens the device instead of a file. Windows also ignores
/// trailing spaces before the extension.
fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end();
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => match upper
            .strip_prefix("COM")
            .or_else(|| upper.strip_prefix("LPT"))
        {
            Some(digit) => matches!(
                digit,
                "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
            ),
            None => false,
        },
    }
}

/// Shortens a trimmed name to at most [`MAX_NAME_LEN`] bytes at a character
/// boundary, keeping the longest suffix that starts with a `.` (not the first
/// character) and spans at most [`MAX_EXTENSION_LEN`] bytes, and re-trims the end.
fn cut(name: &str) -> String {
    if name.len() <= MAX_NAME_LEN {
        return name.to_owned();
    }
    let ext_start = name
        .char_indices()
        .find(|&(i, c)| c == '.' && i > 0 && name.len() - i <= MAX_EXTENSION_LEN)
        .map(|(i, _)| i);
    match ext_start {
        Some(start) => {
            // The name is over 255 bytes and the extension at most 16, so the stem
            // keeps well over 200 bytes, including the name's first character.
            let (stem, ext) = name.split_at(start);
            let mut short = floor_boundary(stem, MAX_NAME_LEN - ext.len()).to_owned();
            short.push_str(ext);
            short
        }
        None => trim(floor_boundary(name, MAX_NAME_LEN)).to_owned(),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends at a char boundary.
fn floor_boundary(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: FileId = FileId([
        0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);

    /// What every sanitised name must satisfy.
    fn check_invariants(offered: &str, name: &str) {
        assert!(!name.is_empty(), "{offered:?}");
        assert!(name.len() <= MAX_NAME_LEN, "{offered:?} -> {name:?}");
        assert!(
            !name.contains(['/', '\\', '\0']) && !name.chars().any(char::is_control),
            "{offered:?} -> {name:?}"
        );
        assert!(!name.starts_with(['.', '-']), "{offered:?} -> {name:?}");
        assert!(!name.chars().any(is_invisible), "{offered:?} -> {name:?}");
        assert!(!is_device_name(name), "{offered:?} -> {name:?}");
        assert_eq!(
            sanitize_name(name, &ID),
            name,
            "not idempotent: {offered:?}"
        );
    }

    #[test]
    fn hostile_names() {
        let long_tar = format!("{}.tar.gz", "b".repeat(300 - 7));
        let cases: Vec<(String, String)> = vec![
            ("".into(), "file-0a1b2c3d".into()),
            (".".into(), "file-0a1b2c3d".into()),
            ("..".into(), "file-0a1b2c3d".into()),
            ("../x".into(), "x".into()),
            ("/etc/passwd".into(), "passwd".into()),
            ("a/../../b".into(), "b".into()),
            ("C:\\Windows\\x.dll".into(), "x.dll".into()),
            ("dir/".into(), "dir".into()),
            (".bashrc".into(), "bashrc".into()),
            ("...".into(), "file-0a1b2c3d".into()),
            ("-rf".into(), "rf".into()),
            ("--.-x".into(), "x".into()),
            ("photo\u{202E}gpj.exe".into(), "photogpj.exe".into()),
            (
                "a\u{200B}b\u{FEFF}c\u{2066}d\u{061C}e".into(),
                "abcde".into(),
            ),
            ("CON".into(), "_CON".into()),
            ("con.txt".into(), "_con.txt".into()),
            ("aux.tar.gz".into(), "_aux.tar.gz".into()),
            ("Com7.log".into(), "_Com7.log".into()),
            ("lpt1".into(), "_lpt1".into()),
            ("nul .txt".into(), "_nul .txt".into()),
            ("COM10".into(), "COM10".into()),
            ("console".into(), "console".into()),
            ("x\0y".into(), "xy".into()),
            ("x\ny".into(), "xy".into()),
            ("a\u{7f}b\u{85}c\u{9f}d".into(), "abcd".into()),
            ("  spaced  ".into(), "spaced".into()),
            ("file.".into(), "file".into()),
            ("what?: <x>|\"y\"*".into(), "what__ _x___y__".into()),
            (". .hidden".into(), "hidden".into()),
            ("a".repeat(300), "a".repeat(255)),
            // 'é' is two bytes: 255 would split one.
            ("é".repeat(300), "é".repeat(127)),
            (long_tar, format!("{}.tar.gz", "b".repeat(255 - 7))),
            (
                format!("{}.{}", "a".repeat(254), "b".repeat(45)),
                "a".repeat(254),
            ),
            (format!("con{}z", " ".repeat(300)), "_con".into()),
            (
                format!("con{}.txt", " ".repeat(300)),
                format!("_con{}.txt", " ".repeat(255 - 8)),
            ),
        ];
        for (offered, expected) in cases {
            let name = sanitize_name(&offered, &ID);
            assert_eq!(name, expected, "{offered:?}");
            check_invariants(&offered, &name);
        }
    }

    #[test]
    fn chunk_arithmetic() {
        let full = CHUNK_LEN as u64;
        assert_eq!(chunk_count(0), Some(0));
        assert_eq!(chunk_count(1), Some(1));
        assert_eq!(chunk_count(full), Some(1));
        assert_eq!(chunk_count(full + 1), Some(2));
        assert_eq!(chunk_count(full * u64::from(u32::MAX)), Some(u32::MAX));
        assert_eq!(chunk_count(full * u64::from(u32::MAX) + 1), None);
        assert_eq!(chunk_count(u64::MAX), None);

        assert_eq!(chunk_len(0, 0), None);
        assert_eq!(chunk_len(1, 0), Some(1));
        assert_eq!(chunk_len(1, 1), None);
        assert_eq!(chunk_len(full, 0), Some(CHUNK_LEN));
        assert_eq!(chunk_len(3 * full + 5, 2), Some(CHUNK_LEN));
        assert_eq!(chunk_len(3 * full + 5, 3), Some(5));
        assert_eq!(chunk_len(3 * full + 5, 4), None);
        let top = full * u64::from(u32::MAX);
        assert_eq!(chunk_len(top, u32::MAX - 1), Some(CHUNK_LEN));
        assert_eq!(chunk_len(u64::MAX, 0), None);
    }

    #[test]
    fn chunk_frames() {
        // Header: version, kind, id, attempt, index, data length.
        assert_eq!(CHUNK_HEADER_LEN, 30);
        assert_eq!(chunk_frame_cells(0), 0);
        // 30 + 364 = 394 bytes: the capacity of one cell.
        assert_eq!(chunk_frame_cells(1), 1);
        assert_eq!(chunk_frame_cells(364), 1);
        assert_eq!(chunk_frame_cells(365), 2);
        // (30 + 65536 + 104) / 498 rounded up.
        assert_eq!(chunk_frame_cells(CHUNK_LEN as u64), 132);
        assert_eq!(chunk_frame_cells(CHUNK_LEN as u64 + 1), 132);
        assert_eq!(chunk_frame_cells(u64::MAX), 132);
        assert!(chunk_frame_cells(u64::MAX) <= cell::MAX_FRAME_CELLS);
    }

    #[test]
    fn reason_codes() {
        for reason in [
            DeclineReason::Declined,
            DeclineReason::TooLarge,
            DeclineReason::Busy,
        ] {
            assert_eq!(DeclineReason::from_code(reason.code()), reason);
        }
        assert_eq!(DeclineReason::TooLarge.code(), 2);
        assert_eq!(DeclineReason::from_code(0), DeclineReason::Declined);
        assert_eq!(DeclineReason::from_code(200), DeclineReason::Declined);
        assert_eq!(DeclineReason::TooLarge.to_string(), "too large");

        let all = [
            CancelReason::BySender,
            CancelReason::ByReceiver,
            CancelReason::SourceChanged,
            CancelReason::Mismatch,
            CancelReason::Protocol,
            CancelReason::SourceUnreadable,
            CancelReason::ReceiverDisk,
        ];
        for (code, reason) in (1..).zip(all) {
            assert_eq!(reason.code(), code);
            assert_eq!(CancelReason::from_code(code), reason);
            assert!(!reason.to_string().is_empty());
        }
        assert_eq!(CancelReason::from_code(0), CancelReason::Protocol);
        assert_eq!(CancelReason::from_code(8), CancelReason::Protocol);
        assert_eq!(
            CancelReason::BySender.to_string(),
            "cancelled by the sender"
        );
    }

    #[test]
    fn file_id_debug_shows_four_bytes() {
        let shown = format!("{ID:?}");
        assert_eq!(shown, "FileId(0a1b2c3d…)");
        assert!(!shown.contains("4e"));
    }

    proptest! {
        #[test]
        fn any_name_is_made_safe(offered in "(?s:.){0,300}") {
            let name = sanitize_name(&offered, &ID);
            check_invariants(&offered, &name);
        }

        #[test]
        fn names_of_hostile_pieces_are_made_safe(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just("."), Just(".."), Just("/"), Just("\\"), Just("-"), Just(" "),
                    Just("\u{202E}"), Just("\u{200B}"), Just("\0"), Just("\n"), Just("\u{85}"),
                    Just("con"), Just("LPT9"), Just(":"), Just("é"), Just("x"), Just(".gz"),
                    Just("\u{3000}"), Just("abcdefghij"),
                ],
                0..80,
            )
        ) {
            let offered = pieces.concat();
            let name = sanitize_name(&offered, &ID);
            check_invariants(&offered, &name);
        }

        #[test]
        fn plain_names_are_kept(name in "[a-zA-Z0-9_][a-zA-Z0-9_ ()-]{0,40}[a-zA-Z0-9_]\\.[a-z]{1,5}") {
            prop_assume!(!is_device_name(&name));
            prop_assert_eq!(sanitize_name(&name, &ID), name);
        }

        #[test]
        fn chunks_cover_the_file(size in 0u64..(CHUNK_LEN as u64 * 40)) {
            let count = chunk_count(size).unwrap();
            let total: u64 = (0..count).map(|i| chunk_len(size, i).unwrap() as u64).sum();
            prop_assert_eq!(total, size);
            prop_assert_eq!(chunk_len(size, count), None);
            for i in 0..count {
                let data = chunk_len(size, i).unwrap();
                prop_assert!(data >= 1);
                prop_assert!(cell::cells_for(CHUNK_HEADER_LEN + data).unwrap() <= chunk_frame_cells(size));
            }
        }
    }
}

//! Room messages: what a one-shot group room (`nightjar room`) sends on each
//! participant's link to the host, inside a `room` application message
//! ([`crate::message::Message::Room`]).
//!
//! The host holds one link to every participant and relays; participants never
//! talk to each other directly. A participant's texts go to the host as ordinary
//! `text` messages; everything the room itself says is one of these:
//!
//! | kind | name | fields | direction |
//! |---|---|---|---|
//! | `0x01` | hello | nick | participant → host, its first message: the nick it would like |
//! | `0x02` | welcome | nick · count (u16) · count × nick | host → participant: its final nick, and who else is present |
//! | `0x03` | full | — | host → participant: refused, the room is full |
//! | `0x04` | said | nick · text | host → participant: someone's text |
//! | `0x05` | joined | nick | host → participant: someone came in |
//! | `0x06` | left | nick | host → participant: someone went |
//!
//! A nick is a `u32` length and UTF-8 bytes, valid by [`Nick::new`]; a text is a
//! `u32` length and at most [`MAX_TEXT_LEN`] bytes of UTF-8. Decoding is strict:
//! an invalid nick, a list of more than [`MAX_PRESENT`] nicks, an unknown kind or
//! trailing bytes are errors. Leaving is the link's `quit`.

use core::fmt;

use zeroize::Zeroize;

use crate::message::{MAX_TEXT_LEN, MessageError};
use crate::wire::{Reader, WireError, Writer};

/// The longest nick, in characters.
pub const MAX_NICK_CHARS: usize = 32;
/// The longest nick, in bytes of UTF-8 (32 characters of at most 4 bytes).
pub const MAX_NICK_LEN: usize = MAX_NICK_CHARS * 4;
/// The most nicks a welcome may list.
pub const MAX_PRESENT: usize = 256;

const KIND_HELLO: u8 = 0x01;
const KIND_WELCOME: u8 = 0x02;
const KIND_FULL: u8 = 0x03;
const KIND_SAID: u8 = 0x04;
const KIND_JOINED: u8 = 0x05;
const KIND_LEFT: u8 = 0x06;

/// A name shown for a participant: 1 to [`MAX_NICK_CHARS`] characters, none of
/// them whitespace, control or invisible (format, bidirectional-override) characters,
/// so it prints on one line, reads unambiguously in `<nick> text` and
/// `* nick joined`, and cannot disguise itself as another.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Zeroize)]
pub struct Nick(String);

/// Why a nick was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NickError {
    /// No characters.
    #[error("a nick cannot be empty")]
    Empty,
    /// More than [`MAX_NICK_CHARS`] characters.
    #[error("a nick has at most {MAX_NICK_CHARS} characters")]
    TooLong,
    /// Whitespace, control or invisible characters.
    #[error("a nick cannot hold spaces, control or invisible characters")]
    BadCharacter,
}

impl Nick {
    /// Checks `nick` against the rules above.
    pub fn new(nick: &str) -> Result<Self, NickError> {
        if nick.is_empty() {
            return Err(NickError::Empty);
        }
        if nick.chars().count() > MAX_NICK_CHARS {
            return Err(NickError::TooLong);
        }
        if nick
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || crate::files::is_invisible(c))
        {
            return Err(NickError::BadCharacter);
        }
        Ok(Self(nick.to_owned()))
    }

    /// The nick with `-N` appended, shortened first where needed so the result
    /// stays within [`MAX_NICK_CHARS`]; how a host makes a taken nick unique.
    #[must_use]
    pub fn with_suffix(&self, n: u32) -> Self {
        let suffix = format!("-{n}");
        let keep = MAX_NICK_CHARS.saturating_sub(suffix.chars().count());
        let mut nick: String = self.0.chars().take(keep).collect();
        nick.push_str(&suffix);
        Self(nick)
    }

    /// The nick as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names stay out of logs.
        f.write_str("Nick([scrubbed])")
    }
}

/// One room message.
#[derive(Clone, PartialEq, Eq, Zeroize)]
#[non_exhaustive]
pub enum RoomMessage {
    /// The participant's first message: the nick it would like.
    Hello {
        /// The wanted nick.
        nick: Nick,
    },
    /// The participant is in: under which nick, and who else is present.
    Welcome {
        /// Its final nick (the wanted one, with a suffix if it was taken).
        nick: Nick,
        /// Everyone else in the room, host included.
        present: Vec<Nick>,
    },
    /// The participant is refused: the room is full.
    Full,
    /// Someone's text.
    Said {
        /// Who wrote it.
        nick: Nick,
        /// The text.
        body: String,
    },
    /// Someone came in.
    Joined {
        /// Who.
        nick: Nick,
    },
    /// Someone went.
    Left {
        /// Who.
        nick: Nick,
    },
}

impl fmt::Debug for RoomMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hello { .. } => f.write_str("Hello"),
            Self::Welcome { present, .. } => write!(f, "Welcome({} present)", present.len()),
            Self::Full => f.write_str("Full"),
            Self::Said { body, .. } => write!(f, "Said({} bytes)", body.len()),
            Self::Joined { .. } => f.write_str("Joined"),
            Self::Left { .. } => f.write_str("Left"),
        }
    }
}

impl RoomMessage {
    /// Writes the message; fails only for a text over [`MAX_TEXT_LEN`] or a
    /// welcome listing more than [`MAX_PRESENT`] nicks.
    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), MessageError> {
        match self {
            Self::Hello { nick } => {
                w.u8(KIND_HELLO);
                write_nick(w, nick);
            }
            Self::Welcome { nick, present } => {
                let count = u16::try_from(present.len())
                    .ok()
                    .filter(|n| usize::from(*n) <= MAX_PRESENT)
                    .ok_or(MessageError::TooLarge)?;
                w.u8(KIND_WELCOME);
                write_nick(w, nick);
                w.u16(count);
                for other in present {
                    write_nick(w, other);
                }
            }
            Self::Full => w.u8(KIND_FULL),
            Self::Said { nick, body } => {
                if body.len() > MAX_TEXT_LEN {
                    return Err(MessageError::TooLarge);
                }
                w.u8(KIND_SAID);
                write_nick(w, nick);
                w.var_bytes(body.as_bytes());
            }
            Self::Joined { nick } => {
                w.u8(KIND_JOINED);
                write_nick(w, nick);
            }
            Self::Left { nick } => {
                w.u8(KIND_LEFT);
                write_nick(w, nick);
            }
        }
        Ok(())
    }

    /// Reads one message; the caller checks that nothing follows.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, MessageError> {
        Ok(match r.u8()? {
            KIND_HELLO => Self::Hello {
                nick: read_nick(r)?,
            },
            KIND_WELCOME => {
                let nick = read_nick(r)?;
                let count = usize::from(r.u16()?);
                if count > MAX_PRESENT {
                    return Err(MessageError::TooLarge);
                }
                let present = (0..count).map(|_| read_nick(r)).collect::<Result<_, _>>()?;
                Self::Welcome { nick, present }
            }
            KIND_FULL => Self::Full,
            KIND_SAID => Self::Said {
                nick: read_nick(r)?,
                body: read_text(r, MAX_TEXT_LEN)?,
            },
            KIND_JOINED => Self::Joined {
                nick: read_nick(r)?,
            },
            KIND_LEFT => Self::Left {
                nick: read_nick(r)?,
            },
            _ => return Err(WireError::InvalidValue.into()),
        })
    }
}

fn write_nick(w: &mut Writer, nick: &Nick) {
    w.var_bytes(nick.0.as_bytes());
}

fn read_nick(r: &mut Reader<'_>) -> Result<Nick, MessageError> {
    let text = read_text(r, MAX_NICK_LEN)?;
    Nick::new(&text).map_err(|_| MessageError::Malformed(WireError::InvalidValue))
}

fn read_text(r: &mut Reader<'_>, max: usize) -> Result<String, MessageError> {
    let bytes = r.var_bytes(max).map_err(|e| match e {
        WireError::TooLong => MessageError::TooLarge,
        other => other.into(),
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| MessageError::BadText)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn unhex(hex: &str) -> Vec<u8> {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(core::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn nick(s: &str) -> Nick {
        Nick::new(s).unwrap()
    }

    #[test]
    fn nick_rules() {
        assert_eq!(nick("alice").as_str(), "alice");
        assert_eq!(nick("ünï-çödé_✓").as_str(), "ünï-çödé_✓");
        assert_eq!(Nick::new(""), Err(NickError::Empty));
        assert!(Nick::new(&"é".repeat(32)).is_ok());
        assert_eq!(Nick::new(&"a".repeat(33)), Err(NickError::TooLong));
        for bad in [
            "a b",
            "tab\there",
            "nl\n",
            "bell\u{7}",
            "rtl\u{202e}x",
            "zw\u{200b}j",
        ] {
            assert_eq!(Nick::new(bad), Err(NickError::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn suffix_keeps_the_length_bound() {
        assert_eq!(nick("bob").with_suffix(2).as_str(), "bob-2");
        let long = nick(&"x".repeat(32)).with_suffix(12);
        assert_eq!(long.as_str().chars().count(), 32);
        assert!(long.as_str().ends_with("x-12"));
        assert!(Nick::new(long.as_str()).is_ok());
    }

    fn samples() -> Vec<RoomMessage> {
        vec![
            RoomMessage::Hello {
                nick: nick("guest-0042"),
            },
            RoomMessage::Welcome {
                nick: nick("bob-2"),
                present: vec![nick("host"), nick("bob")],
            },
            RoomMessage::Welcome {
                nick: nick("solo"),
                present: vec![],
            },
            RoomMessage::Full,
            RoomMessage::Said {
                nick: nick("carol"),
                body: "hello, room — ✓".into(),
            },
            RoomMessage::Said {
                nick: nick("carol"),
                body: String::new(),
            },
            RoomMessage::Joined { nick: nick("dave") },
            RoomMessage::Left { nick: nick("dave") },
        ]
    }

    #[test]
    fn round_trip() {
        for sample in samples() {
            let message = Message::Room(sample);
            let bytes = message.encode().unwrap();
            assert_eq!(Message::decode(&bytes).unwrap(), message);
        }
    }

    /// Checked-in encodings: version, the `room` kind, then the room message.
    #[test]
    fn vectors() {
        let cases: [(RoomMessage, &str); 4] = [
            (
                RoomMessage::Hello { nick: nick("ann") },
                "0113 01 00000003 616e6e",
            ),
            (
                RoomMessage::Welcome {
                    nick: nick("bo"),
                    present: vec![nick("h")],
                },
                "0113 02 00000002 626f 0001 00000001 68",
            ),
            (RoomMessage::Full, "0113 03"),
            (
                RoomMessage::Said {
                    nick: nick("h"),
                    body: "hi".into(),
                },
                "0113 04 00000001 68 00000002 6869",
            ),
        ];
        for (message, hex) in cases {
            let expected = unhex(hex);
            let message = Message::Room(message);
            assert_eq!(message.encode().unwrap(), expected, "{message:?}");
            assert_eq!(Message::decode(&expected).unwrap(), message);
        }
    }

    #[test]
    fn strict_decoding() {
        let refused = [
            // A nick with a space, an empty nick, an unknown kind, trailing bytes.
            "0113 01 00000003 6120 62",
            "0113 05 00000000",
            "0113 07",
            "0113 03 00",
            // A welcome claiming more nicks than it holds.
            "0113 02 00000001 68 0002 00000001 68",
        ];
        for hex in refused {
            let bytes = unhex(hex);
            assert!(Message::decode(&bytes).is_err(), "{hex}");
        }
        let too_many = RoomMessage::Welcome {
            nick: nick("h"),
            present: vec![nick("x"); MAX_PRESENT + 1],
        };
        assert_eq!(
            Message::Room(too_many).encode(),
            Err(MessageError::TooLarge)
        );
    }
}

//! Wormhole codes such as `7-crossover-clockwork`: a nameplate (decimal digits the
//! server hands out) followed by words. The whole string is the SPAKE2 password;
//! the nameplate alone tells the server which mailbox to use.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::words::{EVEN, ODD};

/// The longest nameplate the reference server accepts.
pub const MAX_NAMEPLATE_LEN: usize = 40;
/// Codes longer than this are refused: nobody types them, and the whole code
/// ends up in memory and in a SPAKE2 hash.
pub const MAX_CODE_LEN: usize = 200;
/// At most this many words are generated or accepted.
pub const MAX_WORDS: usize = 16;

/// Why a string is not a wormhole code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Nothing was typed.
    #[error("the code is empty")]
    Empty,
    /// Longer than [`MAX_CODE_LEN`].
    #[error("the code is too long (at most {MAX_CODE_LEN} characters)")]
    TooLong,
    /// The part before the first `-` is not a number.
    #[error("a code starts with a number, like the 7 in 7-crossover-clockwork")]
    BadNameplate,
    /// Only a number was given.
    #[error("the code needs words after the number, like 7-crossover-clockwork")]
    NoWords,
    /// More than [`MAX_WORDS`] words.
    #[error("the code has too many words (at most {MAX_WORDS})")]
    TooManyWords,
    /// A word is empty or holds something other than letters and digits.
    #[error(
        "word {position} of the code is not a word: use letters, separated by dashes, like 7-crossover-clockwork"
    )]
    BadWord {
        /// 1-based position of the word after the number.
        position: usize,
    },
}

/// A wormhole code: nameplate and words, lower-case, joined by `-`.
///
/// `Display` prints the whole code, which is meant to be read out to the peer;
/// `Debug` shows only the nameplate, because the words are the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    /// The normalised code, e.g. `7-crossover-clockwork`.
    text: String,
    /// Length of the nameplate prefix of `text`.
    nameplate_len: usize,
}

impl Code {
    /// Builds a code from a nameplate and words, checking both as [`Code::parse`]
    /// would.
    pub fn from_parts<W: AsRef<str>>(nameplate: &str, words: &[W]) -> Result<Self, CodeError> {
        let mut text = String::from(nameplate);
        for word in words {
            text.push('-');
            text.push_str(word.as_ref());
        }
        let code = Self::parse(&text);
        text.zeroize();
        code
    }

    /// Parses what a person typed: surrounding whitespace is ignored, letters may
    /// be in any case, and words may be separated by spaces instead of dashes
    /// (`7 Crossover clockwork` is `7-crossover-clockwork`).
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(CodeError::Empty);
        }
        if trimmed.len() > MAX_CODE_LEN {
            return Err(CodeError::TooLong);
        }
        let mut parts = trimmed
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty());
        let nameplate = parts.next().ok_or(CodeError::Empty)?;
        if nameplate.len() > MAX_NAMEPLATE_LEN || !nameplate.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::BadNameplate);
        }
        let mut text = String::from(nameplate);
        let mut count = 0;
        for (i, word) in parts.enumerate() {
            if !word.bytes().all(|b| b.is_ascii_alphanumeric()) {
                text.zeroize();
                return Err(CodeError::BadWord { position: i + 1 });
            }
            count += 1;
            if count > MAX_WORDS {
                text.zeroize();
                return Err(CodeError::TooManyWords);
            }
            text.push('-');
            text.push_str(&word.to_ascii_lowercase());
        }
        if count == 0 {
            return Err(CodeError::NoWords);
        }
        // Empty parts were skipped above: a doubled dash (`7--a`) is a typo, and
        // generated codes never hold one.
        Ok(Self {
            text,
            nameplate_len: nameplate.len(),
        })
    }

    /// The nameplate: the digits before the first `-`, which the server sees.
    pub fn nameplate(&self) -> &str {
        &self.text[..self.nameplate_len]
    }

    /// The whole code, e.g. `7-crossover-clockwork`: the SPAKE2 password.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether every word comes from the PGP word list in the alternation a
    /// generated code has. Codes typed by hand (`42-some-words`) are valid codes
    /// too; this only tells a user interface whether to suspect a typo.
    pub fn is_from_word_list(&self) -> bool {
        self.text[self.nameplate_len..]
            .split('-')
            .skip(1)
            .enumerate()
            .all(|(i, word)| word_list(i).contains(&word))
    }
}

/// Chooses `count` words from the PGP word list, alternating odd and even lists as
/// magic-wormhole does (the first word from the odd list). Each word carries
/// eight bits of `rng`'s output.
pub fn random_words<R: CryptoRng + ?Sized>(rng: &mut R, count: usize) -> Vec<&'static str> {
    (0..count)
        .map(|i| {
            let mut byte = [0u8; 1];
            rng.fill_bytes(&mut byte);
            word_list(i)[usize::from(byte[0])]
        })
        .collect()
}

/// The list the word at `index` (0-based, after the nameplate) comes from.
fn word_list(index: usize) -> &'static [&'static str; 256] {
    if index.is_multiple_of(2) { &ODD } else { &EVEN }
}

impl FromStr for Code {
    type Err = CodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Code")
            .field("nameplate", &self.nameplate())
            .field("words", &"<hidden>")
            .finish()
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_normalises() {
        let code = Code::parse("  7-Crossover-CLOCKWORK \n").unwrap();
        assert_eq!(code.to_string(), "7-crossover-clockwork");
        assert_eq!(code.nameplate(), "7");
        assert!(code.is_from_word_list());
        let spaced: Code = "7 crossover  clockwork".parse().unwrap();
        assert_eq!(spaced, code);
        let hand = Code::parse("42-some-words").unwrap();
        assert_eq!(hand.as_str(), "42-some-words");
        assert!(!hand.is_from_word_list());
        // Right words, wrong alternation: valid, but flagged.
        assert!(
            !Code::parse("7-clockwork-crossover")
                .unwrap()
                .is_from_word_list()
        );
    }

    #[test]
    fn rejects_bad_codes() {
        assert_eq!(Code::parse(""), Err(CodeError::Empty));
        assert_eq!(Code::parse("   "), Err(CodeError::Empty));
        assert_eq!(Code::parse("seven-a-b"), Err(CodeError::BadNameplate));
        assert_eq!(Code::parse("-a-b"), Err(CodeError::BadNameplate));
        assert_eq!(Code::parse("7x-a-b"), Err(CodeError::BadNameplate));
        assert_eq!(Code::parse("7"), Err(CodeError::NoWords));
        assert_eq!(Code::parse("7-"), Err(CodeError::NoWords));
        assert_eq!(
            Code::parse("7-cross_over-clockwork"),
            Err(CodeError::BadWord { position: 1 })
        );
        assert_eq!(
            Code::parse("7-crossover-clöckwork"),
            Err(CodeError::BadWord { position: 2 })
        );
        let long_nameplate = "1".repeat(MAX_NAMEPLATE_LEN + 1) + "-a";
        assert_eq!(Code::parse(&long_nameplate), Err(CodeError::BadNameplate));
        let many = format!("1{}", "-a".repeat(MAX_WORDS + 1));
        assert_eq!(Code::parse(&many), Err(CodeError::TooManyWords));
        let long = format!("1-{}", "a".repeat(MAX_CODE_LEN));
        assert_eq!(Code::parse(&long), Err(CodeError::TooLong));
    }

    #[test]
    fn debug_hides_the_words() {
        let code = Code::parse("7-crossover-clockwork").unwrap();
        let debug = format!("{code:?}");
        assert!(debug.contains("\"7\""));
        assert!(!debug.contains("crossover"));
    }

    #[test]
    fn generated_words_alternate_lists() {
        let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
        for count in 1..=MAX_WORDS {
            let words = random_words(&mut rng, count);
            assert_eq!(words.len(), count);
            let code = Code::from_parts("7", &words).unwrap();
            assert!(code.is_from_word_list(), "{code}");
        }
    }

    #[test]
    fn word_lists_are_distinct_and_lower_case() {
        let mut all: Vec<&str> = EVEN.iter().chain(ODD.iter()).copied().collect();
        assert!(
            all.iter()
                .all(|w| w.bytes().all(|b| b.is_ascii_lowercase()))
        );
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 512);
    }

    proptest! {
        #[test]
        fn display_parses_back(nameplate in 0u32..100_000, picks in proptest::collection::vec(any::<u8>(), 1..6)) {
            let words: Vec<&str> = picks.iter().enumerate()
                .map(|(i, b)| word_list(i)[usize::from(*b)]).collect();
            let code = Code::from_parts(&nameplate.to_string(), &words).unwrap();
            let again = Code::parse(&code.to_string()).unwrap();
            prop_assert_eq!(&again, &code);
            prop_assert_eq!(again.nameplate(), nameplate.to_string());
            prop_assert!(again.is_from_word_list());
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,60}") {
            if let Ok(code) = Code::parse(&input) {
                prop_assert_eq!(Code::parse(code.as_str()).unwrap(), code);
            }
        }
    }
}

//! Replies on tor's control port (control-spec section 2.3), parsed strictly.
//!
//! A reply is any number of `NNN-text` (mid) and `NNN+text` (data) lines, then one
//! `NNN text` (end) line, all with the same three-digit code. A data line is
//! followed by lines of data ending with a lone `.`; data lines starting with a
//! dot have it doubled. Code 650 marks an asynchronous event.

use core::fmt;

/// The longest line we accept. tor's longest (a consensus in a data block) is
/// split into lines; no single line of a sane reply comes near this.
const MAX_LINE: usize = 256 * 1024;
/// The largest reply we accept (GETINFO of a whole consensus fits).
pub(crate) const MAX_REPLY: usize = 32 * 1024 * 1024;

/// One line of a reply, with its data block if it had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    /// The text after the code and separator.
    pub text: String,
    /// For `NNN+` lines: the data block, unescaped, lines joined by `\n`.
    pub data: Option<String>,
}

/// A complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code, e.g. 250, 552, 650.
    pub code: u16,
    /// All lines, the end line last.
    pub lines: Vec<ReplyLine>,
}

impl Reply {
    /// 2xx.
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 650: an asynchronous event.
    pub fn is_event(&self) -> bool {
        self.code == 650
    }

    /// The first line's text (an event's keyword and arguments; a command's
    /// first answer).
    pub fn first(&self) -> &str {
        self.lines.first().map(|l| l.text.as_str()).unwrap_or("")
    }

    /// The end line's text (`OK`, or tor's error message).
    pub fn last(&self) -> &str {
        self.lines.last().map(|l| l.text.as_str()).unwrap_or("")
    }
}

impl fmt::Display for Reply {
    /// `NNN message` as tor sent it (the end line), for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.last())
    }
}

/// A malformed reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed control-port reply: {0}")]
pub struct ParseError(pub(crate) String);

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Start,
    /// Inside a reply, after at least one mid or data line.
    Mid { code: u16, lines: Vec<ReplyLine> },
    /// Inside a data block.
    Data {
        code: u16,
        lines: Vec<ReplyLine>,
        text: String,
        data: String,
    },
}

/// Assembles replies from lines. Feed it lines without their CRLF.
#[derive(Debug, Default)]
pub struct ReplyParser {
    state: State,
    size: usize,
}

impl ReplyParser {
    /// A parser at the start of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one line (without CRLF); returns a reply once its end line arrives.
    pub fn push_line(&mut self, line: &str) -> Result<Option<Reply>, ParseError> {
        if line.len() > MAX_LINE {
            return err("line too long");
        }
        self.size += line.len() + 2;
        if self.size > MAX_REPLY {
            return err("reply too long");
        }
        if line.contains(['\r', '\n', '\0']) {
            return err("control character inside a line");
        }
        match core::mem::take(&mut self.state) {
            State::Data {
                code,
                lines,
                text,
                mut data,
            } => {
                if line == "." {
                    let mut lines = lines;
                    lines.push(ReplyLine {
                        text,
                        data: Some(data),
                    });
                    self.state = State::Mid { code, lines };
                } else {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    // A leading dot is doubled so a lone "." can end the block.
                    data.push_str(line.strip_prefix('.').unwrap_or(line));
                    self.state = State::Data {
                        code,
                        lines,
                        text,
                        data,
                    };
                }
                Ok(None)
            }
            State::Start => self.status_line(line, None, Vec::new()),
            State::Mid { code, lines } => self.status_line(line, Some(code), lines),
        }
    }

    fn status_line(
        &mut self,
        line: &str,
        expected: Option<u16>,
        mut lines: Vec<ReplyLine>,
    ) -> Result<Option<Reply>, ParseError> {
        let bytes = line.as_bytes();
        if bytes.len() < 4 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return err(format!("no status code in {:?}", truncate(line)));
        }
        let code: u16 = line[..3]
            .parse()
            .map_err(|_| ParseError("bad status code".into()))?;
        if expected.is_some_and(|c| c != code) {
            return err(format!("status code changed inside a reply ({code})"));
        }
        let text = line[4..].to_owned();
        match bytes[3] {
            b' ' => {
                lines.push(ReplyLine { text, data: None });
                self.size = 0;
                Ok(Some(Reply { code, lines }))
            }
            b'-' => {
                lines.push(ReplyLine { text, data: None });
                self.state = State::Mid { code, lines };
                Ok(None)
            }
            b'+' => {
                self.state = State::Data {
                    code,
                    lines,
                    text,
                    data: String::new(),
                };
                Ok(None)
            }
            _ => err(format!("bad separator in {:?}", truncate(line))),
        }
    }
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(40).map(|(i, _)| i).unwrap_or(s.len());
    &s[..end]
}

/// Arguments of a reply or event line: positional words, then `KEY=VALUE`
/// pairs whose values may be quoted strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// Words without `=`, in order (only those before the first pair).
    pub positional: Vec<String>,
    /// `KEY=VALUE` pairs, in order, values unquoted.
    pub pairs: Vec<(String, String)>,
}

impl Args {
    /// Splits `text` into words and pairs.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut args = Args::default();
        let mut rest = text.trim_start_matches(' ');
        while !rest.is_empty() {
            let word_end = rest.find([' ', '=']).unwrap_or(rest.len());
            if rest[word_end..].starts_with('=') {
                let key = rest[..word_end].to_owned();
                let after = &rest[word_end + 1..];
                let (value, remaining) = if after.starts_with('"') {
                    unquote(after)?
                } else {
                    let end = after.find(' ').unwrap_or(after.len());
                    (after[..end].to_owned(), &after[end..])
                };
                args.pairs.push((key, value));
                rest = remaining;
            } else {
                if args.pairs.is_empty() {
                    args.positional.push(rest[..word_end].to_owned());
                }
                rest = &rest[word_end..];
            }
            if !rest.is_empty() && !rest.starts_with(' ') {
                return err("arguments not separated by spaces");
            }
            rest = rest.trim_start_matches(' ');
        }
        Ok(args)
    }

    /// The value of the first pair named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a quoted string at the start of `s`; returns it unescaped and the rest.
pub fn unquote(s: &str) -> Result<(String, &str), ParseError> {
    let mut chars = s.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return err("quoted string expected");
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    break;
                };
                match e {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    '0'..='7' => {
                        // Three octal digits, as C and tor's escaper write them.
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match chars.next().and_then(|(_, d)| d.to_digit(8)) {
                                Some(d) => v = v * 8 + d,
                                None => return err("short octal escape"),
                            }
                        }
                        match u8::try_from(v) {
                            Ok(b) => out.push(char::from(b)),
                            Err(_) => return err("octal escape out of range"),
                        }
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    err("unterminated quoted string")
}

/// Quotes a string for a command argument.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &str) -> Result<Vec<Reply>, ParseError> {
        let mut p = ReplyParser::new();
        let mut out = Vec::new();
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            if let Some(r) = p.push_line(line)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    // Recorded from tor 0.4.9.11.
    const PROTOCOLINFO: &str = "250-PROTOCOLINFO 1\r\n\
        250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/tmp/nj/control_auth_cookie\"\r\n\
        250-VERSION Tor=\"0.4.9.11\"\r\n\
        250 OK\r\n";

    #[test]
    fn multi_line_reply() {
        let r = parse_all(PROTOCOLINFO).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, 250);
        assert_eq!(r[0].lines.len(), 4);
        assert_eq!(r[0].first(), "PROTOCOLINFO 1");
        assert_eq!(r[0].last(), "OK");
        let auth = Args::parse(&r[0].lines[1].text).unwrap();
        assert_eq!(auth.positional, ["AUTH"]);
        assert_eq!(auth.get("METHODS"), Some("COOKIE,SAFECOOKIE"));
        assert_eq!(auth.get("COOKIEFILE"), Some("/tmp/nj/control_auth_cookie"));
    }

    #[test]
    fn data_block_with_dot_stuffing() {
        let text = "250+config-text=\r\n\
            SocksPort 0\r\n\
            ..hidden\r\n\
            .\r\n\
            250 OK\r\n";
        let r = parse_all(text).unwrap();
        assert_eq!(r[0].lines[0].text, "config-text=");
        assert_eq!(r[0].lines[0].data.as_deref(), Some("SocksPort 0\n.hidden"));
        assert_eq!(r[0].last(), "OK");
    }

    #[test]
    fn events_and_errors() {
        let text = "650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n\
            552 Unrecognized key \"nope\"\r\n\
            650-HS_DESC UPLOADED abc UNKNOWN $AAAA\r\n\
            650 OK\r\n";
        let r = parse_all(text).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r[0].is_event());
        assert!(!r[1].is_ok());
        assert_eq!(r[1].to_string(), "552 Unrecognized key \"nope\"");
        assert_eq!(r[2].lines.len(), 2);
        let a = Args::parse(r[0].first()).unwrap();
        assert_eq!(a.positional, ["STATUS_CLIENT", "NOTICE", "BOOTSTRAP"]);
        assert_eq!(a.get("SUMMARY"), Some("Done"));
    }

    #[test]
    fn malformed_replies_are_rejected() {
        for bad in ["25 OK", "abc OK", "250*OK", "250-a\r\n251 OK", "250"] {
            assert!(parse_all(bad).is_err(), "{bad:?} accepted");
        }
        let mut p = ReplyParser::new();
        assert!(p.push_line(&"2".repeat(MAX_LINE + 1)).is_err());
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(
            unquote(r#""a \"b\" \\ \n \101" rest"#).unwrap(),
            ("a \"b\" \\ \n A".to_owned(), " rest")
        );
        assert!(unquote(r#""open"#).is_err());
        assert!(unquote(r#""\1""#).is_err());
        for s in ["plain", "with \"quotes\" and \\", "tab\tnl\n"] {
            assert_eq!(unquote(&quote(s)).unwrap().0, s);
        }
        assert!(Args::parse(r#"A="x"B=1"#).is_err());
    }
}

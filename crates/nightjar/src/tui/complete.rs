//! Slash commands: their help, and completion of the input line.
//!
//! The input line takes exactly the commands of the line interface
//! (`crate::cli::parse`), so the list here mirrors its help text; a test keeps the
//! two in step.

/// Every slash command: its word, its arguments as shown to people, and one line
/// of help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHelp {
    /// The word after the slash.
    pub word: &'static str,
    /// Its arguments, in capitals, optional ones in brackets ("" if none).
    pub args: &'static str,
    /// What it does.
    pub about: &'static str,
}

const fn command(word: &'static str, args: &'static str, about: &'static str) -> CommandHelp {
    CommandHelp { word, args, about }
}

/// Every command the input line accepts, in the order of the line interface's help.
pub const COMMANDS: &[CommandHelp] = &[
    command("help", "", "the list of commands"),
    command("address", "", "your address (nj1…), to give to people"),
    command("onion", "", "your request onion address"),
    command("key", "", "your identity key"),
    command("fingerprint", "[NAME]", "your fingerprint, or NAME's"),
    command(
        "invite",
        "NAME [--auth]",
        "make a short code to read to someone; when they /join it, they become NAME here, verified",
    ),
    command(
        "join",
        "CODE NAME [--auth]",
        "use a code someone read to you; they become NAME",
    ),
    command(
        "req-send",
        "ADDRESS NAME [GREETING]",
        "ask the owner of ADDRESS to be a contact, named NAME",
    ),
    command("requests", "", "pending requests, both ways"),
    command(
        "req-accept",
        "ID NAME",
        "accept request ID, naming the contact NAME",
    ),
    command("req-decline", "ID", "decline (or withdraw) request ID"),
    command("convs", "", "your contacts"),
    command(
        "peer",
        "NAME",
        "show NAME and talk to them: lines without / go to NAME",
    ),
    command("msg", "NAME TEXT", "send TEXT to NAME"),
    command(
        "history",
        "NAME [N]",
        "the last N (default 20) messages with NAME",
    ),
    command(
        "send-file",
        "NAME PATH",
        "offer the file at PATH to NAME (~/ is your home)",
    ),
    command(
        "files",
        "[NAME]",
        "file transfers both ways (only those with NAME)",
    ),
    command(
        "accept-file",
        "ID [SAVE-AS] [--overwrite]",
        "save file ID in the downloads directory, under its own name or SAVE-AS",
    ),
    command("decline-file", "ID", "say no to file ID"),
    command(
        "cancel-file",
        "ID",
        "stop file transfer ID for good, either way",
    ),
    command("resume-file", "ID", "continue file ID after it paused"),
    command("pres-on", "NAME", "tell NAME when you come and go"),
    command("pres-off", "NAME", "stop telling NAME when you come and go"),
    command(
        "verify",
        "NAME FINGERPRINT",
        "mark NAME verified if FINGERPRINT is theirs",
    ),
    command(
        "auth",
        "NAME SECRET [QUESTION]",
        "authenticate NAME with a secret you both know; NAME is asked QUESTION",
    ),
    command(
        "auth-abort",
        "NAME",
        "give up an authentication in progress",
    ),
    command("delete", "NAME", "delete NAME and your conversation"),
    command(
        "mailbox",
        "",
        "the mailboxes contacts leave messages in while you are offline",
    ),
    command("mailbox-add", "ONION", "name a mailbox (at most four)"),
    command("mailbox-remove", "ONION", "stop naming a mailbox"),
    command("groups", "", "the groups you are in"),
    command(
        "group-create",
        "GROUP",
        "make a group (its room on your first mailbox)",
    ),
    command(
        "group-invite",
        "GROUP NAME",
        "add contact NAME (connected) to GROUP",
    ),
    command("group-remove", "GROUP NAME", "remove NAME from GROUP"),
    command("group-leave", "GROUP", "leave GROUP"),
    command("gmsg", "GROUP TEXT", "send TEXT to everyone in GROUP"),
    command("ghistory", "GROUP", "GROUP's messages"),
    command("quit", "", "leave"),
];

/// Commands whose first argument is a contact's name.
const NAME_FIRST: &[&str] = &[
    "peer",
    "fingerprint",
    "msg",
    "history",
    "send-file",
    "files",
    "pres-on",
    "pres-off",
    "verify",
    "auth",
    "auth-abort",
    "delete",
];

/// The candidates for the word at the end of an input line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// Byte offset in the line where the word being completed begins.
    pub start: usize,
    /// Whole words that could replace it, sorted; empty if there is nothing to
    /// complete.
    pub candidates: Vec<String>,
}

/// Completion of the input line at its end. `contacts` are local contact names.
///
/// - "/" and part of a word: the command words starting with it;
/// - a command whose next argument is a contact's name, with the line ending in
///   that argument: the contacts whose names start with what is typed of it;
/// - anything else: no candidates.
pub fn complete(line: &str, contacts: &[String]) -> Completion {
    let Some(rest) = line.strip_prefix('/') else {
        return Completion::default();
    };
    let Some((word, args)) = rest.split_once(char::is_whitespace) else {
        let mut candidates: Vec<String> = COMMANDS
            .iter()
            .filter(|c| c.word.starts_with(rest))
            .map(|c| c.word.to_owned())
            .collect();
        candidates.sort();
        return Completion {
            start: 1,
            candidates,
        };
    };
    let partial = args.trim_start();
    if !NAME_FIRST.contains(&word) || partial.contains(char::is_whitespace) {
        return Completion::default();
    }
    let mut candidates: Vec<String> = contacts
        .iter()
        .filter(|name| name.starts_with(partial))
        .cloned()
        .collect();
    candidates.sort();
    candidates.dedup();
    Completion {
        start: line.len() - partial.len(),
        candidates,
    }
}

/// What Tab does, cycling: holds the candidates of the first Tab, and each further
/// Tab replaces the word with the next candidate. Any other key resets it.
#[derive(Debug, Clone, Default)]
pub struct Tab {
    cycle: Option<Cycle>,
}

/// The state between Tab presses.
#[derive(Debug, Clone)]
struct Cycle {
    /// The line before the word being completed.
    head: String,
    candidates: Vec<String>,
    /// The candidate shown now; `None` while the line shows their common prefix.
    shown: Option<usize>,
    /// The line the last press produced: if the line is anything else, the user
    /// typed in between, and a Tab starts afresh.
    produced: String,
}

impl Cycle {
    /// The line with candidate `index` in place of the word. A lone candidate is
    /// followed by a space, ready for what comes next.
    fn line_with(&self, index: usize) -> String {
        let mut line = self.head.clone();
        if let Some(candidate) = self.candidates.get(index) {
            line.push_str(candidate);
        }
        if self.candidates.len() == 1 {
            line.push(' ');
        }
        line
    }
}

impl Tab {
    /// No completion under way.
    pub fn new() -> Self {
        Self::default()
    }

    /// The new line after one Tab press (unchanged if there is nothing to complete).
    ///
    /// One candidate: it is completed and followed by a space. Several: the first
    /// Tab completes to their longest common prefix if that is longer than what
    /// was typed, else to the first candidate; further Tabs cycle.
    pub fn press(&mut self, line: &str, contacts: &[String]) -> String {
        if let Some(cycle) = &mut self.cycle
            && cycle.produced == line
        {
            let next = cycle
                .shown
                .map_or(0, |i| (i + 1) % cycle.candidates.len().max(1));
            cycle.shown = Some(next);
            cycle.produced = cycle.line_with(next);
            return cycle.produced.clone();
        }
        self.cycle = None;
        let Completion { start, candidates } = complete(line, contacts);
        let (Some(head), Some(typed)) = (line.get(..start), line.get(start..)) else {
            return line.to_owned();
        };
        if candidates.is_empty() {
            return line.to_owned();
        }
        let mut cycle = Cycle {
            head: head.to_owned(),
            candidates,
            shown: None,
            produced: String::new(),
        };
        let prefix = common_prefix(&cycle.candidates);
        cycle.produced = if cycle.candidates.len() > 1 && prefix.len() > typed.len() {
            format!("{}{prefix}", cycle.head)
        } else {
            cycle.shown = Some(0);
            cycle.line_with(0)
        };
        let produced = cycle.produced.clone();
        self.cycle = Some(cycle);
        produced
    }

    /// Forgets the candidates: the next Tab completes the line afresh.
    pub fn reset(&mut self) {
        self.cycle = None;
    }

    /// The current candidates, for showing under the input line.
    pub fn candidates(&self) -> &[String] {
        self.cycle.as_ref().map_or(&[], |c| c.candidates.as_slice())
    }
}

/// The longest prefix all `words` share, cut at a character boundary.
fn common_prefix(words: &[String]) -> &str {
    let Some((first, rest)) = words.split_first() else {
        return "";
    };
    let mut end = first.len();
    for word in rest {
        end = first
            .char_indices()
            .zip(word.chars())
            .find(|((_, a), b)| a != b)
            .map_or(end.min(word.len()), |((i, _), _)| i.min(end));
    }
    first.get(..end).unwrap_or("")
}

/// A usage hint for the command being typed: "/msg NAME TEXT — send TEXT to NAME",
/// or `None` if the line is not a known command.
pub fn hint(line: &str) -> Option<String> {
    let rest = line.strip_prefix('/')?;
    let word = rest.split(char::is_whitespace).next().unwrap_or(rest);
    let help = COMMANDS.iter().find(|c| c.word == word)?;
    Some(if help.args.is_empty() {
        format!("/{} — {}", help.word, help.about)
    } else {
        format!("/{} {} — {}", help.word, help.args, help.about)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;

    fn contacts() -> Vec<String> {
        ["bob", "bea", "carol"].map(String::from).to_vec()
    }

    fn words(c: &Completion) -> Vec<&str> {
        c.candidates.iter().map(String::as_str).collect()
    }

    /// A line each command accepts.
    fn plausible(c: &CommandHelp) -> String {
        let args: Vec<&str> = c
            .args
            .split_whitespace()
            .map(|a| match a.trim_matches(['[', ']']) {
                "NAME" => "bob",
                "CODE" => "7-crossover-clockwork",
                "ADDRESS" => "nj1qqqq",
                "ID" => "3",
                "N" => "5",
                "ONION" => "abcdefghijklmnop.onion",
                "--auth" => "--auth",
                _ => "some-words",
            })
            .collect();
        format!("/{} {}", c.word, args.join(" "))
    }

    #[test]
    fn every_command_parses() {
        for c in COMMANDS {
            let line = plausible(c);
            assert!(cli::parse(&line, None).is_ok(), "{line}");
            let bare = cli::parse(&format!("/{}", c.word), None);
            assert!(
                !bare.is_err_and(|e| e.starts_with("unknown command")),
                "{}",
                c.word
            );
        }
    }

    /// The commands of the line interface's help, with their argument words.
    fn commands_in_cli_help() -> Vec<(String, String)> {
        let commands = cli::OUTPUT_HELP
            .split("\nOutput")
            .next()
            .unwrap_or_default();
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        for line in commands.lines().filter(|l| l.starts_with("  /")) {
            for token in line.split_whitespace() {
                let token = token.trim_end_matches(',');
                if let Some(word) = token.strip_prefix('/') {
                    found.push((word.to_owned(), Vec::new()));
                } else if token.starts_with('[')
                    || token.chars().all(|c| c.is_ascii_uppercase() || c == '-')
                {
                    if let Some((_, args)) = found.last_mut() {
                        args.push(token.to_owned());
                    }
                } else {
                    break;
                }
            }
        }
        found
            .into_iter()
            .map(|(word, args)| (word, args.join(" ")))
            .collect()
    }

    #[test]
    fn the_commands_are_those_of_the_line_interface() {
        let help = commands_in_cli_help();
        assert_eq!(help.len(), 38, "{help:?}");
        let ours: Vec<(String, String)> = COMMANDS
            .iter()
            .map(|c| (c.word.to_owned(), c.args.to_owned()))
            .collect();
        assert_eq!(ours, help);
    }

    #[test]
    fn command_words() {
        assert_eq!(words(&complete("/he", &[])), ["help"]);
        let m = complete("/m", &contacts());
        assert_eq!(m.start, 1);
        assert_eq!(
            words(&m),
            ["mailbox", "mailbox-add", "mailbox-remove", "msg"]
        );
        assert_eq!(complete("/", &[]).candidates.len(), COMMANDS.len());
        assert!(complete("/zz", &[]).candidates.is_empty());
    }

    #[test]
    fn contact_names() {
        let c = complete("/msg b", &contacts());
        assert_eq!(c.start, 5);
        assert_eq!(words(&c), ["bea", "bob"]);
        assert_eq!(
            words(&complete("/peer ", &contacts())),
            ["bea", "bob", "carol"]
        );
        let c = complete("/verify  ca", &contacts());
        assert_eq!((c.start, words(&c)), (9, vec!["carol"]));
        for command in NAME_FIRST {
            assert_eq!(
                words(&complete(&format!("/{command} c"), &contacts())),
                ["carol"],
                "{command}"
            );
        }
    }

    #[test]
    fn nothing_to_complete() {
        for line in [
            "",
            "hello b",
            "b",
            "/msg bob hel",
            "/msg bob ",
            "/invite b",
            "/req-accept 3 b",
            "/unknown b",
        ] {
            assert_eq!(complete(line, &contacts()), Completion::default(), "{line}");
        }
    }

    #[test]
    fn one_candidate_completes_with_a_space() {
        let mut tab = Tab::new();
        assert_eq!(tab.press("/he", &[]), "/help ");
        assert_eq!(tab.press("/msg c", &contacts()), "/msg carol ");
        assert_eq!(tab.candidates(), ["carol"]);
        // Nothing more to complete after the space.
        assert_eq!(tab.press("/msg carol hi", &contacts()), "/msg carol hi");
        assert!(tab.candidates().is_empty());
    }

    #[test]
    fn tab_cycles_through_candidates() {
        let mut tab = Tab::new();
        let list = contacts();
        let first = tab.press("/msg b", &list);
        assert_eq!(first, "/msg bea");
        assert_eq!(tab.candidates(), ["bea", "bob"]);
        let second = tab.press(&first, &list);
        assert_eq!(second, "/msg bob");
        assert_eq!(tab.press(&second, &list), "/msg bea");
        // Typing in between starts afresh.
        tab.reset();
        assert_eq!(tab.press("/msg bo", &list), "/msg bob ");
    }

    #[test]
    fn tab_goes_to_the_common_prefix_first() {
        let mut tab = Tab::new();
        // The candidates share no more than was typed: the first of them.
        assert_eq!(tab.press("/mailbox-", &[]), "/mailbox-add");
        let mut tab = Tab::new();
        let line = tab.press("/ma", &[]);
        assert_eq!(line, "/mailbox");
        assert_eq!(
            tab.candidates(),
            ["mailbox", "mailbox-add", "mailbox-remove"]
        );
        let line = tab.press(&line, &[]);
        assert_eq!(line, "/mailbox");
        let line = tab.press(&line, &[]);
        assert_eq!(line, "/mailbox-add");
        let line = tab.press(&line, &[]);
        assert_eq!(line, "/mailbox-remove");
        assert_eq!(tab.press(&line, &[]), "/mailbox");
        // A changed line is completed afresh even without a reset.
        assert_eq!(tab.press("/pres", &[]), "/pres-o");
        assert_eq!(tab.candidates(), ["pres-off", "pres-on"]);
    }

    #[test]
    fn common_prefix_stays_on_char_boundaries() {
        let names = ["émile", "éloïse", "élan"].map(String::from);
        assert_eq!(common_prefix(&names), "é");
        let names = ["日本", "日曜"].map(String::from);
        assert_eq!(common_prefix(&names), "日");
        let names = ["ab", "abc"].map(String::from);
        assert_eq!(common_prefix(&names), "ab");
        assert_eq!(common_prefix(&[]), "");
        let mut tab = Tab::new();
        let list = ["émile".to_owned(), "éloïse".to_owned()];
        assert_eq!(tab.press("/msg ", &list), "/msg é");
        assert_eq!(tab.press("/msg é", &list), "/msg éloïse");
    }

    #[test]
    fn plain_text_is_left_alone() {
        let mut tab = Tab::new();
        assert_eq!(tab.press("hello b", &contacts()), "hello b");
        assert!(tab.candidates().is_empty());
    }

    #[test]
    fn hints() {
        assert_eq!(
            hint("/msg bo").as_deref(),
            Some("/msg NAME TEXT — send TEXT to NAME")
        );
        assert_eq!(hint("/convs").as_deref(), Some("/convs — your contacts"));
        assert_eq!(hint("/ms"), None);
        assert_eq!(hint("msg bob"), None);
        assert_eq!(hint("/"), None);
    }
}

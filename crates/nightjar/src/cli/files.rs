//! File transfers in the line interface: how they read (sizes, states, the
//! `/files` list), how progress shows (a bar per transfer on a terminal, a line
//! every 10 % elsewhere), and where `/send-file` looks for a path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use nightjar_node::{TransferDirection, TransferState, TransferView};

use super::clean;

/// Sizes as people read them, in steps of 1024: `498 B`, `1.5 KB`, `20.0 MB`.
pub(crate) fn human_size(bytes: u64) -> String {
    let (value, unit) = scaled(bytes, bytes);
    match unit {
        "B" => format!("{bytes} B"),
        _ => format!("{value:.1} {unit}"),
    }
}

/// `bytes` in the unit `reference` is shown in.
fn scaled(bytes: u64, reference: u64) -> (f64, &'static str) {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && reference >= 1024u64 << (10 * unit) {
        unit += 1;
    }
    // Exact enough for one decimal, whatever the size.
    #[allow(clippy::cast_precision_loss)]
    let value = bytes as f64 / (1u64 << (10 * unit)) as f64;
    (value, UNITS.get(unit).copied().unwrap_or("B"))
}

/// `20.0 of 50.0 MB`: both in the unit of the whole.
pub(crate) fn amount_of(bytes: u64, size: u64) -> String {
    let (done, unit) = scaled(bytes, size);
    let (whole, _) = scaled(size, size);
    match unit {
        "B" => format!("{bytes} of {size} B"),
        _ => format!("{done:.1} of {whole:.1} {unit}"),
    }
}

/// `6 s`, `4 min 10 s`, `2 h 5 min`.
pub(crate) fn duration_words(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// Whole percent done; an empty file is done at once.
pub(crate) fn percent(bytes: u64, size: u64) -> u64 {
    if size == 0 {
        return 100;
    }
    u64::try_from(u128::from(bytes.min(size)) * 100 / u128::from(size)).unwrap_or(100)
}

/// `40% (20.0 of 50.0 MB, 5.1 MB/s, ETA 6 s)`; the rate and time left only when
/// the node knows them.
pub(crate) fn progress_text(
    bytes: u64,
    size: u64,
    rate_bps: Option<u64>,
    eta_s: Option<u64>,
) -> String {
    let mut text = format!("{}% ({}", percent(bytes, size), amount_of(bytes, size));
    if let Some(rate) = rate_bps {
        text.push_str(&format!(", {}/s", human_size(rate)));
    }
    if let Some(eta) = eta_s {
        text.push_str(&format!(", ETA {}", duration_words(eta)));
    }
    text.push(')');
    text
}

/// Which tenth of the file `bytes` reached (0 to 10).
fn tenth(bytes: u64, size: u64) -> u64 {
    percent(bytes, size) / 10
}

/// The tenth to report, if `bytes` passed a new one since `shown` (the last tenth
/// reported, if any). Nothing is reported at 0 %, nor at 100 %: the end of a
/// transfer has its own line.
pub(crate) fn next_tenth(shown: Option<u64>, bytes: u64, size: u64) -> Option<u64> {
    let now = tenth(bytes, size);
    (now > shown.unwrap_or(0) && now < 10).then_some(now)
}

/// An incoming offer: what it is and how to answer.
pub(crate) fn offer_text(t: &TransferView, from: &str) -> String {
    let hash: String = t.hash.chars().take(16).collect();
    format!(
        "file #{id} from {from}: \"{name}\" ({size}, blake3 {hash}…) — /accept-file {id} or \
         /decline-file {id}",
        id = t.id,
        name = clean(&t.name),
        size = human_size(t.size),
    )
}

/// What happened to a transfer, for its line: `file #ID to NAME: "FILE" WHAT`.
pub(crate) fn state_text(t: &TransferView, who: &str) -> String {
    let (way, what) = match t.direction {
        TransferDirection::Outgoing => ("to", outgoing_state(t)),
        TransferDirection::Incoming => ("from", incoming_state(t)),
    };
    format!("file #{} {way} {who}: \"{}\" {what}", t.id, clean(&t.name))
}

/// A paused transfer continues: `file #ID from NAME: "FILE" resumed at PCT%`.
pub(crate) fn resumed_text(t: &TransferView, who: &str) -> String {
    format!(
        "file #{} from {who}: \"{}\" resumed at {}%",
        t.id,
        clean(&t.name),
        percent(t.bytes_done, t.size)
    )
}

fn outgoing_state(t: &TransferView) -> String {
    match t.state {
        TransferState::Offered => "offered".into(),
        TransferState::Accepted => "accepted".into(),
        TransferState::Active if t.bytes_done == 0 => "accepted".into(),
        TransferState::Active => format!("sending again from {}%", percent(t.bytes_done, t.size)),
        TransferState::Paused => format!("paused: {}", reason(t)),
        TransferState::Completed => "delivered".into(),
        TransferState::Declined => declined(t),
        TransferState::Cancelled => cancelled(t),
        TransferState::Failed => format!("failed: {}", reason(t)),
    }
}

fn incoming_state(t: &TransferView) -> String {
    match t.state {
        TransferState::Offered => "offered".into(),
        TransferState::Accepted => match &t.save_name {
            Some(save) => format!("accepted; it will be saved as \"{}\"", clean(save)),
            None => "accepted".into(),
        },
        TransferState::Active if t.bytes_done == 0 => "receiving".into(),
        TransferState::Active => {
            format!("receiving again from {}%", percent(t.bytes_done, t.size))
        }
        TransferState::Paused => format!("paused: {} (/resume-file {})", reason(t), t.id),
        TransferState::Completed => match &t.path {
            Some(path) => format!("saved to {}", clean(path)),
            None => "saved".into(),
        },
        TransferState::Declined => declined(t),
        TransferState::Cancelled => cancelled(t),
        TransferState::Failed => format!("failed: {}", reason(t)),
    }
}

fn reason(t: &TransferView) -> String {
    t.reason
        .as_deref()
        .map_or_else(|| "no reason given".into(), clean)
}

/// `declined`, or `declined (too large)` when there is more to say.
fn declined(t: &TransferView) -> String {
    match t.reason.as_deref() {
        None | Some("declined") => "declined".into(),
        Some(why) => format!("declined ({})", clean(why)),
    }
}

/// `cancelled by bob`, `cancelled`, or `cancelled: WHY`.
fn cancelled(t: &TransferView) -> String {
    match t.reason.as_deref() {
        None => "cancelled".into(),
        Some(why) if why.starts_with("cancelled") => clean(why),
        Some(why) => format!("cancelled: {}", clean(why)),
    }
}

/// A transfer's state in one word, as `/files` lists it.
pub(crate) fn state_word(s: TransferState) -> &'static str {
    match s {
        TransferState::Offered => "offered",
        TransferState::Accepted => "accepted",
        TransferState::Active => "active",
        TransferState::Paused => "paused",
        TransferState::Completed => "completed",
        TransferState::Declined => "declined",
        TransferState::Cancelled => "cancelled",
        TransferState::Failed => "failed",
    }
}

/// One line of `/files`: `#ID -> NAME "FILE" SIZE STATE [PCT% RATE ETA]`, `<-`
/// for incoming; a reason after the state when there is one.
pub(crate) fn list_line(t: &TransferView, who: &str) -> String {
    let arrow = match t.direction {
        TransferDirection::Outgoing => "->",
        TransferDirection::Incoming => "<-",
    };
    let mut line = format!(
        "#{} {arrow} {who} \"{}\" {} {}",
        t.id,
        clean(&t.name),
        human_size(t.size),
        state_word(t.state)
    );
    if matches!(t.state, TransferState::Active | TransferState::Paused) {
        line.push_str(&format!(" {}%", percent(t.bytes_done, t.size)));
        if let Some(rate) = t.rate_bps {
            line.push_str(&format!(" {}/s", human_size(rate)));
        }
        if let Some(eta) = t.eta_s {
            line.push_str(&format!(" ETA {}", duration_words(eta)));
        }
    }
    line.push_str(&state_note(t));
    line
}

/// What follows a listed transfer's state: `: WHY` when it stopped for a reason
/// other than its state word, ` (PATH)` where a received file was saved, or
/// nothing.
pub(crate) fn state_note(t: &TransferView) -> String {
    match t.state {
        TransferState::Declined
        | TransferState::Cancelled
        | TransferState::Failed
        | TransferState::Paused => t
            .reason
            .as_deref()
            .map(|why| match why.strip_prefix(state_word(t.state)) {
                // "cancelled by bob" after "cancelled": only the rest.
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => clean(rest),
                _ => format!(": {}", clean(why)),
            })
            .unwrap_or_default(),
        TransferState::Completed if t.direction == TransferDirection::Incoming => t
            .path
            .as_deref()
            .map(|path| format!(" ({})", clean(path)))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The path `/send-file` means: `~` and `~/…` in the home directory, a relative
/// path from `cwd`, quotes around the whole dropped.
pub(crate) fn resolve_path(text: &str, home: Option<&Path>, cwd: &Path) -> PathBuf {
    let text = text.trim();
    let text = ['"', '\'']
        .iter()
        .find_map(|q| text.strip_prefix(*q)?.strip_suffix(*q))
        .unwrap_or(text);
    let expanded = match (text.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_owned(),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(text),
    };
    cwd.join(expanded)
}

/// How progress shows: bars, or a line each tenth.
pub(crate) struct Progress {
    /// On a terminal: the bars, drawn on stdout; other output goes through it.
    bars: Option<MultiProgress>,
    shown: HashMap<i64, Shown>,
}

enum Shown {
    Bar(ProgressBar),
    /// The last tenth reported as a line.
    Tenth(u64),
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("bars", &self.bars.is_some())
            .field("transfers", &self.shown.len())
            .finish()
    }
}

impl Progress {
    /// A line every 10 %: for pipes, files and the terminal interface.
    pub(crate) fn lines() -> Self {
        Self {
            bars: None,
            shown: HashMap::new(),
        }
    }

    /// Bars on stdout, which must be a terminal.
    pub(crate) fn bars() -> Self {
        Self {
            bars: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stdout())),
            shown: HashMap::new(),
        }
    }

    /// Runs `print` with the bars out of the way, so a line does not tear them.
    pub(crate) fn around<T>(&self, print: impl FnOnce() -> T) -> T {
        match &self.bars {
            Some(bars) if !self.shown.is_empty() => bars.suspend(print),
            _ => print(),
        }
    }

    /// Transfer `id` moved on: its bar moves, or the line to print if it passed
    /// a tenth.
    pub(crate) fn update(
        &mut self,
        id: i64,
        bytes: u64,
        size: u64,
        rate_bps: Option<u64>,
        eta_s: Option<u64>,
    ) -> Option<String> {
        let text = || progress_text(bytes, size, rate_bps, eta_s);
        if let Some(bars) = &self.bars {
            let shown = self
                .shown
                .entry(id)
                .or_insert_with(|| Shown::Bar(new_bar(bars, id, size)));
            if let Shown::Bar(bar) = shown {
                bar.set_position(bytes.min(size));
                bar.set_message(text());
            }
            return None;
        }
        let last = match self.shown.get(&id) {
            Some(Shown::Tenth(t)) => Some(*t),
            _ => None,
        };
        let tenth = next_tenth(last, bytes, size)?;
        self.shown.insert(id, Shown::Tenth(tenth));
        Some(format!("file #{id} {}", text()))
    }

    /// Transfer `id` changed state: a bar goes once it stops moving; a resumed
    /// one counts tenths from where it stands.
    pub(crate) fn state(&mut self, t: &TransferView) {
        match t.state {
            TransferState::Active if self.bars.is_none() => {
                self.shown
                    .insert(t.id, Shown::Tenth(tenth(t.bytes_done, t.size)));
            }
            TransferState::Active | TransferState::Accepted | TransferState::Offered => {}
            _ => {
                if let Some(Shown::Bar(bar)) = self.shown.remove(&t.id) {
                    bar.finish_and_clear();
                    if let Some(bars) = &self.bars {
                        bars.remove(&bar);
                    }
                }
            }
        }
    }
}

fn new_bar(bars: &MultiProgress, id: i64, size: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("file #{prefix} [{bar:30}] {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = bars.add(ProgressBar::new(size));
    bar.set_style(style);
    bar.set_prefix(id.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(direction: TransferDirection, state: TransferState) -> TransferView {
        TransferView {
            id: 3,
            contact: "bob".into(),
            direction,
            name: "notes.pdf".into(),
            save_name: None,
            size: 1_572_864,
            hash: "9a4f0c1d2e3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f".into(),
            state,
            reason: None,
            bytes_done: 0,
            rate_bps: None,
            eta_s: None,
            path: None,
            created_at_ms: 0,
        }
    }

    fn with(mut t: TransferView, change: impl FnOnce(&mut TransferView)) -> TransferView {
        change(&mut t);
        t
    }

    #[test]
    fn sizes_read_like_sizes() {
        for (bytes, text) in [
            (0, "0 B"),
            (498, "498 B"),
            (1023, "1023 B"),
            (1024, "1.0 KB"),
            (1536, "1.5 KB"),
            (1_572_864, "1.5 MB"),
            (52_428_800, "50.0 MB"),
            (4 << 30, "4.0 GB"),
            (3 << 40, "3.0 TB"),
            (5 << 50, "5120.0 TB"),
            (u64::MAX, "16777216.0 TB"),
        ] {
            assert_eq!(human_size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_words(0), "0 s");
        assert_eq!(duration_words(59), "59 s");
        assert_eq!(duration_words(250), "4 min 10 s");
        assert_eq!(duration_words(7500), "2 h 5 min");
    }

    #[test]
    fn progress_reads_in_the_unit_of_the_whole() {
        assert_eq!(
            progress_text(20 << 20, 50 << 20, Some(5_347_738), Some(6)),
            "40% (20.0 of 50.0 MB, 5.1 MB/s, ETA 6 s)"
        );
        assert_eq!(progress_text(300, 498, None, None), "60% (300 of 498 B)");
        assert_eq!(
            progress_text(512, 3 << 30, Some(100), None),
            "0% (0.0 of 3.0 GB, 100 B/s)"
        );
        assert_eq!(progress_text(0, 0, None, None), "100% (0 of 0 B)");
        // A report past the end does not go past 100 %.
        assert_eq!(progress_text(600, 498, None, None), "100% (600 of 498 B)");
    }

    #[test]
    fn a_line_each_tenth() {
        let size = 50 << 20;
        let mut shown = None;
        let mut reported = Vec::new();
        // Reports as the node sends them: uneven, sometimes several per tenth,
        // sometimes skipping one.
        for bytes in [
            0,
            1 << 20,
            5 << 20,
            6 << 20,
            11 << 20,
            25 << 20,
            26 << 20,
            49 << 20,
            50 << 20,
        ] {
            if let Some(t) = next_tenth(shown, bytes, size) {
                shown = Some(t);
                reported.push(t);
            }
        }
        assert_eq!(reported, [1, 2, 5, 9]);
        assert_eq!(next_tenth(None, 0, 0), None);
        assert_eq!(next_tenth(Some(4), 10, 100), None);
    }

    #[test]
    fn progress_lines_without_a_terminal() {
        let mut progress = Progress::lines();
        let size = 100 << 20;
        let lines: Vec<String> = [5, 10, 15, 20, 95, 100]
            .into_iter()
            .filter_map(|mb| progress.update(7, mb << 20, size, Some(1 << 20), Some(3)))
            .collect();
        assert_eq!(
            lines,
            [
                "file #7 10% (10.0 of 100.0 MB, 1.0 MB/s, ETA 3 s)",
                "file #7 20% (20.0 of 100.0 MB, 1.0 MB/s, ETA 3 s)",
                "file #7 95% (95.0 of 100.0 MB, 1.0 MB/s, ETA 3 s)",
            ]
        );
        // Another transfer counts on its own.
        assert!(progress.update(8, 30 << 20, size, None, None).is_some());
        // Resumed from 60 %: the next line comes at 70 %.
        let resumed = with(
            transfer(TransferDirection::Incoming, TransferState::Active),
            |t| {
                t.id = 9;
                t.size = size;
                t.bytes_done = 60 << 20;
            },
        );
        progress.state(&resumed);
        assert_eq!(progress.update(9, 65 << 20, size, None, None), None);
        assert!(progress.update(9, 70 << 20, size, None, None).is_some());
    }

    #[test]
    fn offers_say_how_to_answer() {
        let t = with(
            transfer(TransferDirection::Incoming, TransferState::Offered),
            |t| t.name = "notes\u{202E}fdp.exe\n".into(),
        );
        assert_eq!(
            offer_text(&t, "alice"),
            "file #3 from alice: \"notesfdp.exe \" (1.5 MB, blake3 9a4f0c1d2e3b4a59…) — \
             /accept-file 3 or /decline-file 3"
        );
    }

    #[test]
    fn every_outgoing_state() {
        let out = |state, change: fn(&mut TransferView)| {
            state_text(
                &with(transfer(TransferDirection::Outgoing, state), change),
                "bob",
            )
        };
        let prefix = "file #3 to bob: \"notes.pdf\" ";
        for (text, what) in [
            (out(TransferState::Offered, |_| {}), "offered"),
            (out(TransferState::Accepted, |_| {}), "accepted"),
            (out(TransferState::Active, |_| {}), "accepted"),
            (
                out(TransferState::Active, |t| t.bytes_done = 786_432),
                "sending again from 50%",
            ),
            (out(TransferState::Completed, |_| {}), "delivered"),
            (
                out(TransferState::Declined, |t| {
                    t.reason = Some("declined".into())
                }),
                "declined",
            ),
            (
                out(TransferState::Declined, |t| {
                    t.reason = Some("too large".into())
                }),
                "declined (too large)",
            ),
            (
                out(TransferState::Cancelled, |t| {
                    t.reason = Some("cancelled by bob".into());
                }),
                "cancelled by bob",
            ),
            (
                out(TransferState::Cancelled, |t| {
                    t.reason = Some("cancelled".into())
                }),
                "cancelled",
            ),
            (
                out(TransferState::Failed, |t| {
                    t.reason = Some("the file changed at the sender".into());
                }),
                "failed: the file changed at the sender",
            ),
            (
                out(TransferState::Paused, |t| {
                    t.reason = Some("disk full".into())
                }),
                "paused: disk full",
            ),
        ] {
            assert_eq!(text, format!("{prefix}{what}"));
        }
    }

    #[test]
    fn every_incoming_state() {
        let inc = |state, change: fn(&mut TransferView)| {
            state_text(
                &with(transfer(TransferDirection::Incoming, state), change),
                "alice",
            )
        };
        let prefix = "file #3 from alice: \"notes.pdf\" ";
        for (text, what) in [
            (
                inc(TransferState::Accepted, |t| {
                    t.save_name = Some("notes (1).pdf".into())
                }),
                "accepted; it will be saved as \"notes (1).pdf\"",
            ),
            (inc(TransferState::Active, |_| {}), "receiving"),
            (
                inc(TransferState::Active, |t| t.bytes_done = 157_287),
                "receiving again from 10%",
            ),
            (
                inc(TransferState::Completed, |t| {
                    t.path = Some("/home/b/Downloads/notes.pdf".into());
                }),
                "saved to /home/b/Downloads/notes.pdf",
            ),
            (
                inc(TransferState::Cancelled, |t| {
                    t.reason = Some("cancelled by alice".into());
                }),
                "cancelled by alice",
            ),
            (
                inc(TransferState::Failed, |t| {
                    t.reason = Some("the received file did not match its hash".into());
                }),
                "failed: the received file did not match its hash",
            ),
            (
                inc(TransferState::Paused, |t| {
                    t.reason = Some("no space left on device".into());
                }),
                "paused: no space left on device (/resume-file 3)",
            ),
            (
                inc(TransferState::Declined, |t| {
                    t.reason = Some("larger than this profile accepts".into());
                }),
                "declined (larger than this profile accepts)",
            ),
        ] {
            assert_eq!(text, format!("{prefix}{what}"));
        }
    }

    #[test]
    fn resumed() {
        let t = with(
            transfer(TransferDirection::Incoming, TransferState::Accepted),
            |t| t.bytes_done = 786_432,
        );
        assert_eq!(
            resumed_text(&t, "alice"),
            "file #3 from alice: \"notes.pdf\" resumed at 50%"
        );
    }

    #[test]
    fn peer_text_in_state_lines_is_cleaned() {
        let t = with(
            transfer(TransferDirection::Incoming, TransferState::Failed),
            |t| {
                t.name = "a\x1b[2Jb".into();
                t.reason = Some("x\ny".into());
            },
        );
        assert_eq!(
            state_text(&t, "alice"),
            "file #3 from alice: \"a [2Jb\" failed: x y"
        );
    }

    #[test]
    fn the_files_list() {
        let t = transfer(TransferDirection::Outgoing, TransferState::Offered);
        assert_eq!(
            list_line(&t, "bob"),
            "#3 -> bob \"notes.pdf\" 1.5 MB offered"
        );
        let t = with(
            transfer(TransferDirection::Incoming, TransferState::Active),
            |t| {
                t.bytes_done = 629_146;
                t.rate_bps = Some(131_072);
                t.eta_s = Some(7);
            },
        );
        assert_eq!(
            list_line(&t, "alice"),
            "#3 <- alice \"notes.pdf\" 1.5 MB active 40% 128.0 KB/s ETA 7 s"
        );
        let t = with(
            transfer(TransferDirection::Incoming, TransferState::Paused),
            |t| {
                t.bytes_done = 786_432;
                t.reason = Some("disk full".into());
            },
        );
        assert_eq!(
            list_line(&t, "alice"),
            "#3 <- alice \"notes.pdf\" 1.5 MB paused 50%: disk full"
        );
        let t = with(
            transfer(TransferDirection::Incoming, TransferState::Completed),
            |t| t.path = Some("/dl/notes.pdf".into()),
        );
        assert_eq!(
            list_line(&t, "alice"),
            "#3 <- alice \"notes.pdf\" 1.5 MB completed (/dl/notes.pdf)"
        );
        let t = with(
            transfer(TransferDirection::Outgoing, TransferState::Cancelled),
            |t| t.reason = Some("cancelled".into()),
        );
        assert_eq!(
            list_line(&t, "bob"),
            "#3 -> bob \"notes.pdf\" 1.5 MB cancelled"
        );
        let t = with(
            transfer(TransferDirection::Outgoing, TransferState::Declined),
            |t| t.reason = Some("busy".into()),
        );
        assert_eq!(
            list_line(&t, "bob"),
            "#3 -> bob \"notes.pdf\" 1.5 MB declined: busy"
        );
    }

    #[test]
    fn paths_for_send_file() {
        let home = Path::new("/home/a");
        let cwd = Path::new("/work");
        for (text, path) in [
            ("~/My Files/a b.txt", "/home/a/My Files/a b.txt"),
            ("~", "/home/a"),
            ("notes.txt", "/work/notes.txt"),
            ("sub dir/x y", "/work/sub dir/x y"),
            ("/etc/hosts", "/etc/hosts"),
            ("\"/tmp/quoted name.txt\"", "/tmp/quoted name.txt"),
            ("'~/q.txt'", "/home/a/q.txt"),
            // Another user's home is not looked up.
            ("~bob/x", "/work/~bob/x"),
        ] {
            assert_eq!(
                resolve_path(text, Some(home), cwd),
                Path::new(path),
                "{text}"
            );
        }
        assert_eq!(resolve_path("~/x", None, cwd), Path::new("/work/~/x"));
    }
}

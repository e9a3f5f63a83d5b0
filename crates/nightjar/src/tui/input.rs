//! A one-line editor, and the history of what was typed in it.

use std::collections::VecDeque;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};
use zeroize::Zeroizing;

/// What a masked line shows for each character.
const BULLET: char = '•';

/// Room reserved for a line up front. Growing a `String` copies it and frees the
/// old buffer without wiping it, so a secret's buffer is grown only by hand (see
/// [`LineInput::reserve`]); this makes that rare.
const INITIAL_CAPACITY: usize = 64;

/// A line being typed. The text lives in a `Zeroizing<String>`, wiped when it is
/// dropped or cleared; a masked line (a secret) is drawn as one '•' per character.
pub struct LineInput {
    text: Zeroizing<String>,
    /// Byte offset of the cursor in `text`, always on a character boundary.
    cursor: usize,
    masked: bool,
}

/// What a key did to a [`LineInput`].
pub enum InputOutcome {
    /// The text or the cursor changed.
    Edited,
    /// Enter: the line as typed; the editor is empty again.
    Submit(Zeroizing<String>),
    /// Esc.
    Cancel,
    /// A key the editor does not handle (Up, Down, Tab, …): the caller's to handle.
    Ignored,
}

impl fmt::Debug for InputOutcome {
    /// Never shows the submitted text: it may be a secret or a message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited => f.write_str("Edited"),
            Self::Submit(text) => write!(f, "Submit({} bytes)", text.len()),
            Self::Cancel => f.write_str("Cancel"),
            Self::Ignored => f.write_str("Ignored"),
        }
    }
}

impl fmt::Debug for LineInput {
    /// Shows the text only of a line that is not masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("LineInput");
        if self.masked {
            s.field(
                "text",
                &format_args!("<{} hidden chars>", self.char_count()),
            );
        } else {
            s.field("text", &self.text.as_str());
        }
        s.field("cursor", &self.cursor)
            .field("masked", &self.masked)
            .finish()
    }
}

impl Default for LineInput {
    fn default() -> Self {
        Self::new()
    }
}

impl LineInput {
    /// An empty line, drawn as typed.
    pub fn new() -> Self {
        Self {
            text: Zeroizing::new(String::with_capacity(INITIAL_CAPACITY)),
            cursor: 0,
            masked: false,
        }
    }

    /// An empty line for a secret, drawn as bullets.
    pub fn masked() -> Self {
        Self {
            masked: true,
            ..Self::new()
        }
    }

    /// A line holding `text`, the cursor at its end.
    #[cfg(test)]
    pub fn with_text(text: &str) -> Self {
        let mut input = Self::new();
        input.set_text(text);
        input
    }

    /// The text typed so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Replaces the text; the cursor goes to its end.
    pub fn set_text(&mut self, text: &str) {
        self.text.clear();
        self.reserve(text.len());
        self.text.push_str(text);
        self.cursor = self.text.len();
    }

    /// Empties the line.
    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }

    /// Whether nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The cursor's position in characters from the start of the line.
    pub fn cursor_chars(&self) -> usize {
        self.before().chars().count()
    }

    fn char_count(&self) -> usize {
        self.text.chars().count()
    }

    fn before(&self) -> &str {
        self.text.get(..self.cursor).unwrap_or_default()
    }

    fn after(&self) -> &str {
        self.text.get(self.cursor..).unwrap_or_default()
    }

    /// Makes room for `more` bytes without letting `String` reallocate: the text
    /// moves to a larger buffer, and the old one is wiped as it drops.
    fn reserve(&mut self, more: usize) {
        let needed = self.text.len() + more;
        if needed <= self.text.capacity() {
            return;
        }
        let capacity = needed.max(2 * self.text.capacity());
        let mut larger = Zeroizing::new(String::with_capacity(capacity));
        larger.push_str(&self.text);
        self.text = larger;
    }

    /// Handles a key: printable characters go in at the cursor; Backspace, Delete,
    /// Left, Right, Home/Ctrl-A, End/Ctrl-E, Ctrl-U (delete to the start), Ctrl-K
    /// (to the end), Ctrl-W or Alt-Backspace (the word before the cursor),
    /// Alt-Left/Right or Ctrl-Left/Right (by word); Enter submits the text and
    /// empties the line; Esc cancels; anything else (Up, Down, Tab, …) is
    /// ignored, for the caller to handle. Edits whole characters, never bytes.
    pub fn handle(&mut self, key: KeyEvent) -> InputOutcome {
        if key.kind == KeyEventKind::Release {
            return InputOutcome::Ignored;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let by_word = ctrl || alt;
        let cursor = match key.code {
            KeyCode::Enter => return self.submit(),
            KeyCode::Esc => return InputOutcome::Cancel,
            KeyCode::Char(c) if ctrl => match c {
                'a' => 0,
                'e' => self.text.len(),
                'u' => {
                    self.delete(0..self.cursor);
                    0
                }
                'k' => {
                    self.delete(self.cursor..self.text.len());
                    self.cursor
                }
                'w' => self.delete_word_before(),
                _ => return InputOutcome::Ignored,
            },
            KeyCode::Char(c) if !alt && !c.is_control() => {
                self.insert(c);
                self.cursor
            }
            KeyCode::Backspace if alt => self.delete_word_before(),
            KeyCode::Backspace => {
                let start = self.char_before();
                self.delete(start..self.cursor);
                start
            }
            KeyCode::Delete => {
                let end = self.char_after();
                self.delete(self.cursor..end);
                self.cursor
            }
            KeyCode::Left if by_word => self.word_before(),
            KeyCode::Right if by_word => self.word_after(),
            KeyCode::Left => self.char_before(),
            KeyCode::Right => self.char_after(),
            KeyCode::Home => 0,
            KeyCode::End => self.text.len(),
            _ => return InputOutcome::Ignored,
        };
        self.cursor = cursor;
        InputOutcome::Edited
    }

    fn submit(&mut self) -> InputOutcome {
        let fresh = Zeroizing::new(String::with_capacity(INITIAL_CAPACITY));
        let text = std::mem::replace(&mut self.text, fresh);
        self.cursor = 0;
        InputOutcome::Submit(text)
    }

    fn insert(&mut self, c: char) {
        self.reserve(c.len_utf8());
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    /// Removes a byte range whose ends are character boundaries. `drain` moves the
    /// tail within the same buffer, so nothing of a secret is copied elsewhere.
    fn delete(&mut self, range: std::ops::Range<usize>) {
        if self.text.is_char_boundary(range.start)
            && self.text.is_char_boundary(range.end)
            && range.start <= range.end
        {
            self.text.drain(range);
        }
    }

    fn delete_word_before(&mut self) -> usize {
        let start = self.word_before();
        self.delete(start..self.cursor);
        start
    }

    /// Where the character before the cursor begins.
    fn char_before(&self) -> usize {
        self.before().char_indices().last().map_or(0, |(i, _)| i)
    }

    /// Where the character after the cursor ends.
    fn char_after(&self) -> usize {
        self.after()
            .chars()
            .next()
            .map_or(self.cursor, |c| self.cursor + c.len_utf8())
    }

    /// The start of the word before the cursor (spaces before the cursor skipped).
    fn word_before(&self) -> usize {
        let before = self.before().trim_end();
        before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8())
    }

    /// The end of the word after the cursor (spaces after the cursor skipped).
    fn word_after(&self) -> usize {
        let after = self.after();
        let word = after.trim_start();
        let skipped = after.len() - word.len();
        let len = word.find(char::is_whitespace).unwrap_or(word.len());
        self.cursor + skipped + len
    }

    /// Draws the line in `area` (its first row), scrolled sideways so the cursor
    /// is visible, and returns the cursor's screen position for
    /// `Frame::set_cursor_position`.
    pub fn render(&self, area: Rect, buf: &mut Buffer, style: Style) -> Position {
        let row = Rect { height: 1, ..area }.intersection(buf.area);
        if row.is_empty() {
            return Position::new(area.x, area.y);
        }
        buf.set_stringn(
            row.x,
            row.y,
            " ".repeat(usize::from(row.width)),
            usize::from(row.width),
            style,
        );
        let columns = usize::from(row.width);
        let (shown, cursor_column) = if self.masked {
            // One bullet per character: widths say nothing of the secret.
            let chars = self.char_count();
            let cursor = self.cursor_chars();
            let first = (cursor + 1).saturating_sub(columns);
            let shown: String = std::iter::repeat_n(BULLET, chars.saturating_sub(first)).collect();
            (Zeroizing::new(shown), cursor - first)
        } else {
            let first = self.first_shown(columns);
            let shown = self.text.get(first..).unwrap_or_default();
            let cursor_column = self
                .text
                .get(first..self.cursor)
                .unwrap_or_default()
                .width();
            (Zeroizing::new(shown.to_owned()), cursor_column)
        };
        buf.set_stringn(row.x, row.y, shown.as_str(), columns, style);
        let x = u16::try_from(cursor_column)
            .unwrap_or(u16::MAX)
            .min(row.width - 1);
        Position::new(row.x + x, row.y)
    }

    /// The byte offset of the first character shown in `columns` cells: the start
    /// of the line if the cursor fits, else as far right as puts the cursor in the
    /// last cell (with room for a wide character under it).
    fn first_shown(&self, columns: usize) -> usize {
        let under_cursor = self
            .after()
            .chars()
            .next()
            .and_then(|c| c.width())
            .unwrap_or(1);
        let room = columns.saturating_sub(under_cursor.max(1));
        let mut width = self.before().width();
        let mut first = 0;
        for c in self.before().chars() {
            if width <= room {
                break;
            }
            width = width.saturating_sub(c.width().unwrap_or(0));
            first += c.len_utf8();
        }
        first
    }
}

/// How many lines [`InputHistory`] keeps.
const HISTORY_LIMIT: usize = 100;

/// Previously submitted lines, for Up and Down in the chat input (never for a
/// masked input: secrets are not kept).
#[derive(Debug, Clone, Default)]
pub struct InputHistory {
    /// Oldest first.
    lines: VecDeque<String>,
    /// The line shown by Up/Down, if any.
    position: Option<usize>,
    /// What was typed before the first Up, given back by Down past the newest line.
    draft: String,
}

impl InputHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers a submitted line (not a blank one, nor the newest again), and
    /// goes back to the newest end.
    pub fn push(&mut self, line: &str) {
        self.position = None;
        self.draft.clear();
        if line.trim().is_empty() || self.lines.back().is_some_and(|last| last == line) {
            return;
        }
        if self.lines.len() == HISTORY_LIMIT {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }

    /// Up: the line before the one shown; `current` is what is being typed, kept
    /// for Down to give back. `None` when there is nothing older.
    pub fn up(&mut self, current: &str) -> Option<String> {
        let position = match self.position {
            None => {
                let newest = self.lines.len().checked_sub(1)?;
                current.clone_into(&mut self.draft);
                newest
            }
            Some(position) => position.checked_sub(1)?,
        };
        self.position = Some(position);
        self.lines.get(position).cloned()
    }

    /// Down: the line after the one shown, or past the newest what was being typed
    /// before Up. `None` when not going through the history.
    pub fn down(&mut self) -> Option<String> {
        let position = self.position?;
        if position + 1 < self.lines.len() {
            self.position = Some(position + 1);
            self.lines.get(position + 1).cloned()
        } else {
            self.position = None;
            Some(std::mem::take(&mut self.draft))
        }
    }

    /// How many lines are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn type_text(input: &mut LineInput, text: &str) {
        for c in text.chars() {
            assert!(matches!(
                input.handle(key(KeyCode::Char(c))),
                InputOutcome::Edited
            ));
        }
    }

    fn press(input: &mut LineInput, code: KeyCode) {
        assert!(matches!(input.handle(key(code)), InputOutcome::Edited));
    }

    /// The text of a buffer row, leaving out the cells a wide character covers.
    fn row(buf: &Buffer, y: u16) -> String {
        let mut text = String::new();
        let mut x = buf.area.x;
        while x < buf.area.right() {
            let symbol = buf[(x, y)].symbol();
            text.push_str(symbol);
            x += u16::try_from(symbol.width().max(1)).unwrap();
        }
        text
    }

    #[test]
    fn typing_and_moving() {
        let mut input = LineInput::new();
        type_text(&mut input, "hllo");
        press(&mut input, KeyCode::Home);
        press(&mut input, KeyCode::Right);
        type_text(&mut input, "e");
        assert_eq!(input.text(), "hello");
        assert_eq!(input.cursor_chars(), 2);
        press(&mut input, KeyCode::End);
        type_text(&mut input, "!");
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Backspace);
        assert_eq!(input.text(), "hell!");
        press(&mut input, KeyCode::Delete);
        assert_eq!(input.text(), "hell");
        // At the ends, moves and deletes do nothing.
        press(&mut input, KeyCode::Delete);
        press(&mut input, KeyCode::Right);
        assert_eq!((input.text(), input.cursor_chars()), ("hell", 4));
        press(&mut input, KeyCode::Home);
        press(&mut input, KeyCode::Backspace);
        press(&mut input, KeyCode::Left);
        assert_eq!((input.text(), input.cursor_chars()), ("hell", 0));
        // Shifted letters are typed.
        input.handle(KeyEvent::new(KeyCode::Char('H'), KeyModifiers::SHIFT));
        assert_eq!(input.text(), "Hhell");
    }

    #[test]
    fn control_keys() {
        let mut input = LineInput::with_text("one two three");
        assert!(matches!(input.handle(ctrl('a')), InputOutcome::Edited));
        assert_eq!(input.cursor_chars(), 0);
        input.handle(ctrl('e'));
        assert_eq!(input.cursor_chars(), 13);
        input.handle(ctrl('w'));
        assert_eq!(input.text(), "one two ");
        input.handle(ctrl('w'));
        assert_eq!(input.text(), "one ");
        input.set_text("one two three");
        for _ in 0..4 {
            press(&mut input, KeyCode::Left);
        }
        input.handle(ctrl('k'));
        assert_eq!(input.text(), "one two t");
        press(&mut input, KeyCode::Left);
        input.handle(ctrl('u'));
        assert_eq!((input.text(), input.cursor_chars()), ("t", 0));
        // Other control keys are the caller's.
        assert!(matches!(input.handle(ctrl('x')), InputOutcome::Ignored));
        assert_eq!(input.text(), "t");
    }

    #[test]
    fn word_moves() {
        let mut input = LineInput::with_text("  ab  cd ");
        let alt_left = KeyEvent::new(KeyCode::Left, KeyModifiers::ALT);
        let ctrl_left = KeyEvent::new(KeyCode::Left, KeyModifiers::CONTROL);
        let alt_right = KeyEvent::new(KeyCode::Right, KeyModifiers::ALT);
        let ctrl_right = KeyEvent::new(KeyCode::Right, KeyModifiers::CONTROL);
        input.handle(alt_left);
        assert_eq!(input.cursor_chars(), 6);
        input.handle(ctrl_left);
        assert_eq!(input.cursor_chars(), 2);
        input.handle(alt_left);
        assert_eq!(input.cursor_chars(), 0);
        input.handle(ctrl_right);
        assert_eq!(input.cursor_chars(), 4);
        input.handle(alt_right);
        assert_eq!(input.cursor_chars(), 8);
        input.handle(alt_right);
        assert_eq!(input.cursor_chars(), 9);
        input.handle(KeyEvent::new(KeyCode::Backspace, KeyModifiers::ALT));
        assert_eq!(input.text(), "  ab  ");
    }

    #[test]
    fn enter_escape_and_the_rest() {
        let mut input = LineInput::with_text("hi there");
        match input.handle(key(KeyCode::Enter)) {
            InputOutcome::Submit(text) => assert_eq!(text.as_str(), "hi there"),
            other => panic!("{other:?}"),
        }
        assert!(input.is_empty());
        assert_eq!(input.cursor_chars(), 0);
        assert!(matches!(
            input.handle(key(KeyCode::Esc)),
            InputOutcome::Cancel
        ));
        for code in [KeyCode::Up, KeyCode::Down, KeyCode::Tab, KeyCode::F(2)] {
            assert!(matches!(input.handle(key(code)), InputOutcome::Ignored));
        }
        let mut release = key(KeyCode::Char('x'));
        release.kind = KeyEventKind::Release;
        assert!(matches!(input.handle(release), InputOutcome::Ignored));
        assert!(input.is_empty());
        input.set_text("abc");
        input.clear();
        assert!(input.is_empty());
    }

    #[test]
    fn multibyte_characters() {
        let mut input = LineInput::new();
        type_text(&mut input, "é日本🦀x");
        assert_eq!(input.cursor_chars(), 5);
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Backspace);
        assert_eq!(input.text(), "é日本x");
        press(&mut input, KeyCode::Left);
        assert_eq!(input.cursor_chars(), 2);
        press(&mut input, KeyCode::Delete);
        assert_eq!(input.text(), "é日x");
        type_text(&mut input, "🦀");
        assert_eq!(input.text(), "é日🦀x");
        press(&mut input, KeyCode::Home);
        press(&mut input, KeyCode::Delete);
        assert_eq!(input.text(), "日🦀x");
        press(&mut input, KeyCode::End);
        input.handle(ctrl('w'));
        assert!(input.is_empty());
        input.set_text("naïve café");
        input.handle(KeyEvent::new(KeyCode::Left, KeyModifiers::CONTROL));
        assert_eq!(input.cursor_chars(), 6);
        input.handle(ctrl('k'));
        assert_eq!(input.text(), "naïve ");
    }

    #[test]
    fn long_secrets_grow_without_losing_text() {
        let mut input = LineInput::masked();
        let text = "correct horse battery staple ".repeat(10);
        type_text(&mut input, &text);
        assert_eq!(input.text(), text);
    }

    #[test]
    fn wide_characters_put_the_cursor_right() {
        let area = Rect::new(2, 1, 20, 1);
        let mut buf = Buffer::empty(Rect::new(0, 0, 24, 3));
        let mut input = LineInput::with_text("a日本🦀");
        let cursor = input.render(area, &mut buf, Style::default());
        // a (1) + 日 (2) + 本 (2) + 🦀 (2)
        assert_eq!(cursor, Position::new(2 + 7, 1));
        assert!(row(&buf, 1).starts_with("  a日本🦀"));
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Left);
        let cursor = input.render(area, &mut buf, Style::default());
        assert_eq!(cursor, Position::new(2 + 3, 1));
    }

    #[test]
    fn masked_lines_show_bullets_only() {
        let secret = "hunter2 日本é🦀";
        let mut input = LineInput::masked();
        type_text(&mut input, secret);
        let area = Rect::new(0, 0, 30, 1);
        let mut buf = Buffer::empty(area);
        let cursor = input.render(area, &mut buf, Style::default());
        let count = secret.chars().count();
        assert_eq!(cursor, Position::new(u16::try_from(count).unwrap(), 0));
        for cell in buf.content() {
            let symbol = cell.symbol();
            assert!(symbol == "•" || symbol == " ", "{symbol:?}");
            assert!(!secret.contains(symbol) || symbol == " ");
        }
        assert_eq!(row(&buf, 0).trim_end(), "•".repeat(count));
        assert!(!format!("{input:?}").contains("hunter"));
        match input.handle(key(KeyCode::Enter)) {
            submitted @ InputOutcome::Submit(_) => {
                assert!(!format!("{submitted:?}").contains("hunter"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_masked_lines_scroll() {
        let mut input = LineInput::masked();
        type_text(&mut input, "abcdefghijklmnop");
        let area = Rect::new(0, 0, 10, 1);
        let mut buf = Buffer::empty(area);
        let cursor = input.render(area, &mut buf, Style::default());
        assert_eq!(cursor, Position::new(9, 0));
        assert_eq!(row(&buf, 0), format!("{} ", "•".repeat(9)));
        input.handle(ctrl('a'));
        let cursor = input.render(area, &mut buf, Style::default());
        assert_eq!(cursor, Position::new(0, 0));
        assert_eq!(row(&buf, 0), "•".repeat(10));
    }

    #[test]
    fn long_lines_scroll_to_keep_the_cursor_visible() {
        let area = Rect::new(0, 0, 10, 1);
        let mut buf = Buffer::empty(area);
        let mut input = LineInput::with_text("0123456789abcdef");
        let cursor = input.render(area, &mut buf, Style::default());
        assert_eq!(cursor, Position::new(9, 0));
        assert_eq!(row(&buf, 0), "789abcdef ");
        input.handle(ctrl('a'));
        let cursor = input.render(area, &mut buf, Style::default());
        assert_eq!(cursor, Position::new(0, 0));
        assert_eq!(row(&buf, 0), "0123456789");
        // Every position keeps the cursor inside the area, on the character it is
        // before.
        let text: Vec<char> = "0123456789abcdef".chars().collect();
        for i in 0..=text.len() {
            let cursor = input.render(area, &mut buf, Style::default());
            assert!(cursor.x < 10);
            let under = buf[(cursor.x, 0)].symbol().to_owned();
            let expected = text.get(i).map_or(" ".to_owned(), char::to_string);
            assert_eq!(under, expected, "at {i}");
            input.handle(key(KeyCode::Right));
        }
    }

    #[test]
    fn wide_characters_scroll_whole() {
        let area = Rect::new(0, 0, 10, 1);
        let mut buf = Buffer::empty(area);
        let input = LineInput::with_text("日本語のテキストです");
        let cursor = input.render(area, &mut buf, Style::default());
        assert_eq!(cursor, Position::new(8, 0));
        assert_eq!(row(&buf, 0).trim_end(), "ストです");
        // With the cursor before a wide character, all of it is visible.
        let mut input = LineInput::with_text("abcdefghi日");
        press(&mut input, KeyCode::Left);
        let cursor = input.render(area, &mut buf, Style::default());
        assert_eq!(cursor, Position::new(8, 0));
        assert_eq!(buf[(8, 0)].symbol(), "日");
    }

    #[test]
    fn rendering_fills_the_row_and_clips() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 2));
        buf.set_string(0, 0, "xxxxxx", Style::default());
        buf.set_string(0, 1, "yyyyyy", Style::default());
        let input = LineInput::with_text("ab");
        let cursor = input.render(Rect::new(1, 0, 4, 2), &mut buf, Style::default());
        assert_eq!(cursor, Position::new(3, 0));
        assert_eq!(row(&buf, 0), "xab  x");
        assert_eq!(row(&buf, 1), "yyyyyy");
        let cursor = input.render(Rect::new(1, 0, 0, 1), &mut buf, Style::default());
        assert_eq!(cursor, Position::new(1, 0));
    }

    #[test]
    fn history_up_and_down() {
        let mut history = InputHistory::new();
        assert_eq!(history.up("typed"), None);
        assert_eq!(history.down(), None);
        history.push("one");
        history.push("two");
        history.push("two");
        history.push("  ");
        history.push("three");
        assert_eq!(history.len(), 3);
        assert_eq!(history.up("draft").as_deref(), Some("three"));
        assert_eq!(history.up("three").as_deref(), Some("two"));
        assert_eq!(history.up("two").as_deref(), Some("one"));
        assert_eq!(history.up("one"), None);
        assert_eq!(history.down().as_deref(), Some("two"));
        assert_eq!(history.down().as_deref(), Some("three"));
        assert_eq!(history.down().as_deref(), Some("draft"));
        assert_eq!(history.down(), None);
        // Pushing goes back to the newest end.
        history.up("");
        history.push("four");
        assert_eq!(history.up("").as_deref(), Some("four"));
    }

    #[test]
    fn history_is_bounded() {
        let mut history = InputHistory::new();
        for i in 0..150 {
            history.push(&i.to_string());
        }
        assert_eq!(history.len(), HISTORY_LIMIT);
        let mut oldest = None;
        while let Some(line) = history.up("") {
            oldest = Some(line);
        }
        assert_eq!(oldest.as_deref(), Some("50"));
    }
}

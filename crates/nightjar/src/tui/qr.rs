//! A QR code drawn in the terminal, two modules to a cell.
//!
//! Each cell shows a top and a bottom module with the half-block characters
//! '▀', '▄', '█' and ' ', always black on white: a scanner needs dark modules on a
//! light background, and a terminal with a dark theme would otherwise invert it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::Widget;

/// Light modules around the code, on each side. The standard asks for four; phone
/// scanners read two without trouble, and the code must fit a small terminal.
const QUIET: usize = 2;

/// What a window too small for the code shows instead.
const TOO_SMALL: &str = "enlarge the window to see the QR code";

/// Why a QR code could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The text needs more room than the largest QR code has.
    #[error("too long to fit a QR code")]
    TooLong,
    /// The encoder refused the text for another reason.
    #[error("cannot make a QR code: {0}")]
    Encoding(String),
}

/// A QR code of a text, drawn with half-block characters: each terminal cell holds
/// two modules (top and bottom), dark modules black on a white background whatever
/// the terminal's theme, with a quiet zone of two modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrCode {
    /// Modules per side, without the quiet zone.
    width: usize,
    /// Row after row, `true` for a dark module.
    modules: Vec<bool>,
}

impl QrCode {
    /// Encodes `text` at error-correction level M.
    pub fn new(text: &str) -> Result<QrCode, QrError> {
        let code =
            qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).map_err(|e| {
                match e {
                    qrcode::types::QrError::DataTooLong => QrError::TooLong,
                    other => QrError::Encoding(other.to_string()),
                }
            })?;
        let width = code.width();
        let modules = code
            .to_colors()
            .into_iter()
            .map(|c| c == qrcode::Color::Dark)
            .collect();
        Ok(QrCode { width, modules })
    }

    /// Modules per side, quiet zone included.
    fn side(&self) -> usize {
        self.width + 2 * QUIET
    }

    /// Whether the module at (`x`, `y`), counted from the outer corner of the quiet
    /// zone, is dark. Anything outside the code is light.
    fn dark(&self, x: usize, y: usize) -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(QUIET), y.checked_sub(QUIET)) else {
            return false;
        };
        x < self.width && y < self.width && self.modules.get(y * self.width + x) == Some(&true)
    }

    /// Size in terminal cells (width, height) including the quiet zone.
    pub fn size(&self) -> (u16, u16) {
        let side = self.side();
        let width = u16::try_from(side).unwrap_or(u16::MAX);
        let height = u16::try_from(side.div_ceil(2)).unwrap_or(u16::MAX);
        (width, height)
    }

    /// The character of the cell at column `x`, row `y`: dark modules filled.
    fn cell(&self, x: usize, y: usize) -> char {
        match (self.dark(x, 2 * y), self.dark(x, 2 * y + 1)) {
            (true, true) => '█',
            (true, false) => '▀',
            (false, true) => '▄',
            (false, false) => ' ',
        }
    }

    /// The same drawing as plain lines of text ('█', '▀', '▄', ' '), dark = filled,
    /// for a terminal without colours and for tests.
    pub fn lines(&self) -> Vec<String> {
        let side = self.side();
        (0..side.div_ceil(2))
            .map(|y| (0..side).map(|x| self.cell(x, y)).collect())
            .collect()
    }
}

impl Widget for &QrCode {
    /// Draws the code at the area's top-left corner; if it does not fit, only a
    /// one-line message asking for a larger window.
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (width, height) = self.size();
        if area.width < width || area.height < height {
            if area.height > 0 {
                buf.set_stringn(
                    area.x,
                    area.y,
                    TOO_SMALL,
                    usize::from(area.width),
                    Style::default(),
                );
            }
            return;
        }
        let style = Style::default().fg(Color::Black).bg(Color::White);
        for (y, line) in (area.y..).zip(self.lines()) {
            for (x, c) in (area.x..).zip(line.chars()) {
                if let Some(cell) = buf.cell_mut((x, y)) {
                    cell.set_char(c).set_style(style);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bech32 address of the length nightjar's are.
    const ADDRESS: &str = "nj1qv9xk2rz8h0m3wdq5ly7t4cgu6fan8ej2sp0r3kd9xw5hq7mz4c6tgl2vy8nfu3a0e5rk7sd9wq2x4jh6cm8pl0tgy3ze5v7n2qh7sdm3xf";

    /// Decodes a grid of modules (quiet zone included), each scaled to 4×4 pixels.
    fn decode(grid: &[Vec<bool>]) -> String {
        const SCALE: usize = 4;
        let h = grid.len();
        let w = grid[0].len();
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(w * SCALE, h * SCALE, |x, y| {
                if grid[y / SCALE][x / SCALE] { 0 } else { 255 }
            });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the picture");
        grids[0].decode().unwrap().1
    }

    /// Rebuilds the module grid from half-block characters.
    fn modules_from_chars<'a>(rows: impl Iterator<Item = Vec<&'a str>>) -> Vec<Vec<bool>> {
        let mut grid = Vec::new();
        for row in rows {
            let top = row.iter().map(|s| matches!(*s, "█" | "▀")).collect();
            let bottom = row.iter().map(|s| matches!(*s, "█" | "▄")).collect();
            for s in &row {
                assert!(matches!(*s, "█" | "▀" | "▄" | " "), "{s:?}");
            }
            grid.push(top);
            grid.push(bottom);
        }
        grid
    }

    fn render(code: &QrCode, area: Rect) -> Buffer {
        let mut buf = Buffer::empty(area);
        code.render(area, &mut buf);
        buf
    }

    fn round_trip_through_buffer(text: &str) {
        let code = QrCode::new(text).unwrap();
        let (w, h) = code.size();
        // A larger buffer with an offset area: the code must start at its corner.
        let area = Rect::new(3, 1, w + 5, h + 2);
        let buf = render(&code, area);
        let rows = (area.y..area.y + h).map(|y| {
            (area.x..area.x + w)
                .map(|x| {
                    let cell = &buf[(x, y)];
                    assert_eq!(cell.fg, Color::Black);
                    assert_eq!(cell.bg, Color::White);
                    cell.symbol()
                })
                .collect::<Vec<_>>()
        });
        let grid = modules_from_chars(rows);
        assert_eq!(decode(&grid), text);
        // Nothing is drawn right of or below the code.
        for y in area.y..area.y + area.height {
            for x in area.x..area.x + area.width {
                if x >= area.x + w || y >= area.y + h {
                    assert_eq!(buf[(x, y)].symbol(), " ");
                    assert_eq!(buf[(x, y)].bg, Color::Reset);
                }
            }
        }
    }

    #[test]
    fn an_address_decodes_from_the_buffer() {
        assert_eq!(ADDRESS.len(), 110);
        round_trip_through_buffer(ADDRESS);
    }

    #[test]
    fn a_short_text_decodes_from_the_buffer() {
        round_trip_through_buffer("hi");
    }

    #[test]
    fn lines_decode_and_match_the_size() {
        for text in [ADDRESS, "hi"] {
            let code = QrCode::new(text).unwrap();
            let lines = code.lines();
            let (w, h) = code.size();
            assert_eq!(lines.len(), usize::from(h));
            let chars: Vec<Vec<String>> = lines
                .iter()
                .map(|l| l.chars().map(String::from).collect())
                .collect();
            for row in &chars {
                assert_eq!(row.len(), usize::from(w));
            }
            let grid = modules_from_chars(
                chars
                    .iter()
                    .map(|row| row.iter().map(String::as_str).collect()),
            );
            assert_eq!(decode(&grid), text);
        }
    }

    #[test]
    fn the_quiet_zone_is_light() {
        let code = QrCode::new(ADDRESS).unwrap();
        let lines = code.lines();
        // Two modules: the whole first cell row and the first two columns.
        assert!(lines[0].chars().all(|c| c == ' '));
        for line in &lines {
            assert!(line.starts_with("  ") && line.ends_with("  "), "{line:?}");
        }
        // The finder pattern begins right after the quiet zone.
        assert_eq!(lines[1].chars().nth(QUIET), Some('█'));
    }

    #[test]
    fn too_small_an_area_shows_a_message_and_no_modules() {
        let code = QrCode::new(ADDRESS).unwrap();
        let (w, h) = code.size();
        for area in [Rect::new(0, 0, w - 1, h), Rect::new(0, 0, w + 10, h - 1)] {
            let buf = render(&code, area);
            let first: String = (0..area.width).map(|x| buf[(x, 0)].symbol()).collect();
            assert_eq!(first.trim_end(), TOO_SMALL);
            for cell in buf.content() {
                assert!(!matches!(cell.symbol(), "█" | "▀" | "▄"));
                assert_eq!(cell.bg, Color::Reset);
            }
            let rest = &buf.content()[usize::from(area.width)..];
            assert!(rest.iter().all(|c| c.symbol() == " "));
        }
        // A narrow window cuts the message rather than spilling over.
        let buf = render(&code, Rect::new(0, 0, 10, 3));
        let first: String = (0..10).map(|x| buf[(x, 0)].symbol()).collect();
        assert_eq!(first, &TOO_SMALL[..10]);
        // No room at all: nothing.
        let area = Rect::new(0, 0, 5, 0);
        let mut buf = Buffer::empty(Rect::new(0, 0, 5, 1));
        code.render(area, &mut buf);
        assert!(buf.content().iter().all(|c| c.symbol() == " "));
    }

    #[test]
    fn too_long_a_text_is_refused() {
        let text = "x".repeat(4000);
        assert_eq!(QrCode::new(&text), Err(QrError::TooLong));
        assert_eq!(QrError::TooLong.to_string(), "too long to fit a QR code");
    }
}

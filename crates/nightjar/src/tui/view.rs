//! Drawing: the start screens, the main screen and its dialogs.

use nightjar_node::{Level, MessageDirection, MessageState, MessageView, PresenceState};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize as _};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Wrap};

use super::app::{
    App, AuthDialog, Dialog, Field, FieldKind, FilesDialog, Form, InviteDialog, Note,
    RequestsDialog, Selection, VerifyDialog,
};
use super::complete;
use super::qr::QrCode;
use super::start::Start;
use crate::cli::files::{self as transfer, amount_of, duration_words, human_size};
use crate::cli::{Holds, clean, clock, level_word, state_word};

/// The colour of a trust level: red, green, cyan (the line interface's).
pub fn level_colour(level: Level) -> Color {
    match level {
        Level::Unverified => Color::Red,
        Level::Verified => Color::Green,
        Level::Authenticated => Color::Cyan,
    }
}

/// A mark beside the colour, so trust does not rest on colour alone.
fn level_mark(level: Level) -> &'static str {
    match level {
        Level::Unverified => "?",
        Level::Verified => "✓",
        Level::Authenticated => "★",
    }
}

/// The keys in the bottom bar; F8 with the number of offered files waiting.
fn keys(offers: usize) -> String {
    let files = match offers {
        0 => "F8 files".to_owned(),
        n => format!("F8 files ({n})"),
    };
    format!(
        "F1 help  F2 add  F3 invite  F4 auth  F5 verify  F6 address  F7 requests  {files}  \
         F9 send  Ctrl-N/P switch  Ctrl-Q quit"
    )
}

/// The start: picking a profile, the passphrase, Tor's bootstrap.
pub fn draw_start(frame: &mut Frame<'_>, start: &Start) {
    let area = frame.area();
    let title = Line::from(" nightjar ".bold());
    frame.render_widget(Block::bordered().title(title), area);
    let inner = area.inner(ratatui::layout::Margin::new(2, 1));
    match start {
        Start::Pick(pick) => {
            let mut lines = vec![Line::from("Which profile?".bold()), Line::from("")];
            for (i, choice) in pick.choices().iter().enumerate() {
                let marker = if i == pick.selected { "▸ " } else { "  " };
                let style = if i == pick.selected {
                    Style::new().add_modifier(Modifier::REVERSED)
                } else {
                    Style::new()
                };
                lines.push(Line::from(vec![
                    Span::raw(marker),
                    Span::styled(choice.label(), style),
                ]));
            }
            lines.push(Line::from(""));
            lines.push(Line::from("↑/↓ choose · Enter open · Esc quit".dark_gray()));
            let height = lines.len() as u16;
            frame.render_widget(Paragraph::new(lines), inner);
            if let Some(naming) = &pick.naming {
                let y = (inner.y + height + 1).min(inner.bottom().saturating_sub(2));
                frame.render_widget(
                    Paragraph::new("Name of the new profile (letters, digits, - _ .):".bold()),
                    Rect::new(inner.x, y, inner.width, 1),
                );
                frame.render_widget(Paragraph::new("> "), Rect::new(inner.x, y + 1, 2, 1));
                let row = Rect::new(inner.x + 2, y + 1, inner.width.saturating_sub(2), 1);
                let cursor = naming.render(row, frame.buffer_mut(), Style::new().underlined());
                frame.set_cursor_position(cursor);
            }
            if let Some(e) = &pick.error {
                let row = Rect::new(inner.x, inner.bottom().saturating_sub(1), inner.width, 1);
                frame.render_widget(Paragraph::new(e.as_str().red()), row);
            }
        }
        Start::Passphrase(p) => {
            let question = if p.creating && p.first.is_some() {
                "The same passphrase again:"
            } else if p.creating {
                "New profile: choose a passphrase (it protects everything on disk)"
            } else {
                "Passphrase:"
            };
            let [head, _, field, _, note] = inner.layout(&Layout::vertical([
                Constraint::Length(1),
                Constraint::Length(1),
                Constraint::Length(1),
                Constraint::Length(1),
                Constraint::Length(2),
            ]));
            frame.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::raw(format!("Profile {:?}. ", p.profile)),
                    Span::raw(question).bold(),
                ])),
                head,
            );
            let prefix = Rect::new(field.x, field.y, 2, 1);
            frame.render_widget(Paragraph::new("> "), prefix);
            let rest = Rect::new(field.x + 2, field.y, field.width.saturating_sub(2), 1);
            let cursor = p.input.render(rest, frame.buffer_mut(), Style::new());
            frame.set_cursor_position(cursor);
            let hint = match &p.error {
                Some(e) => Line::from(e.as_str().red()),
                None => Line::from("Enter to continue · Esc to quit".dark_gray()),
            };
            frame.render_widget(Paragraph::new(hint).wrap(Wrap { trim: true }), note);
        }
        Start::Unlocking { profile } => {
            frame.render_widget(
                Paragraph::new(format!("unlocking profile {profile:?}…")),
                inner,
            );
        }
        Start::Bootstrap(b) => {
            let [head, gauge, detail] = inner.layout(&Layout::vertical([
                Constraint::Length(2),
                Constraint::Length(1),
                Constraint::Length(3),
            ]));
            frame.render_widget(
                Paragraph::new(format!("Joining the Tor network ({})…", b.backend).bold()),
                head,
            );
            frame.render_widget(
                Gauge::default()
                    .gauge_style(Style::new().fg(Color::Magenta))
                    .percent(u16::from(b.status.percent.min(100)))
                    .label(format!("{}%", b.status.percent)),
                gauge,
            );
            let mut lines = vec![Line::from(format!(
                "{} · {} s",
                clean(&b.status.summary),
                b.seconds
            ))];
            if let Some(blocked) = &b.status.blocked {
                lines.push(Line::from(format!("blocked: {}", clean(blocked)).red()));
            }
            lines.push(Line::from("Esc quits".dark_gray()));
            frame.render_widget(Paragraph::new(lines), detail);
        }
    }
}

/// The main screen, and the dialog on top if there is one.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    let [top, middle, input, hints, bar] = area.layout(&Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ]));
    draw_top(frame, top, app);
    let [left, right] = middle.layout(&Layout::horizontal([
        Constraint::Length(26),
        Constraint::Min(20),
    ]));
    draw_contacts(frame, left, app);
    draw_conversation(frame, right, app);
    let cursor = draw_input(frame, input, app);
    draw_hints(frame, hints, app);
    draw_bar(frame, bar, app);
    match &app.dialog {
        Some(dialog) => draw_dialog(frame, area, app, dialog),
        None => frame.set_cursor_position(cursor),
    }
}

fn draw_top(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let state = if app.online {
        Span::styled("online", Style::new().fg(Color::Green))
    } else {
        Span::styled("publishing…", Style::new().fg(Color::Yellow))
    };
    let mut spans = vec![
        Span::styled(" nightjar ", Style::new().bold().reversed()),
        Span::raw(format!(" {} · ", app.profile)),
        state,
    ];
    if let Some(info) = &app.info {
        spans.push(Span::raw(format!(" · you: {}", info.fingerprint)).dark_gray());
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_contacts(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut lines = Vec::new();
    let status = format!(
        "status{}",
        if app.unseen_log > 0 {
            format!(" ({})", app.unseen_log)
        } else {
            String::new()
        }
    );
    lines.push(entry_line(
        app.selection == Selection::Status,
        vec![Span::raw("  "), Span::raw(status).italic()],
    ));
    for c in &app.contacts {
        let selected = app.selection == Selection::Contact(c.name.clone());
        let presence = match (c.online, c.presence) {
            (true, Some(PresenceState::Away)) => Span::styled("◐ ", Style::new().fg(Color::Yellow)),
            (true, _) => Span::styled("● ", Style::new().fg(Color::Green)),
            (false, _) => Span::styled("○ ", Style::new().dark_gray()),
        };
        let mut spans = vec![
            presence,
            Span::styled(
                format!("{} {}", level_mark(c.level), clean(&c.name)),
                Style::new().fg(level_colour(c.level)),
            ),
        ];
        if c.unread > 0 {
            spans.push(Span::styled(
                format!(" ({})", c.unread),
                Style::new().bold(),
            ));
        }
        if app.asked.contains_key(&c.name) {
            spans.push(Span::styled(" auth?", Style::new().fg(Color::Yellow)));
        }
        if app.offers_from(&c.name) {
            spans.push(Span::styled(" file?", Style::new().fg(Color::Yellow)));
        }
        if c.pending {
            spans.push(Span::raw(" …").dark_gray());
        }
        lines.push(entry_line(selected, spans));
    }
    let incoming = app.incoming().count();
    let offers = app.offers_waiting();
    if incoming > 0 || offers > 0 {
        lines.push(Line::from(""));
    }
    if incoming > 0 {
        lines.push(Line::from(
            format!(
                "{incoming} request{} · F7",
                if incoming == 1 { "" } else { "s" }
            )
            .yellow(),
        ));
    }
    if offers > 0 {
        lines.push(Line::from(
            format!("{offers} file offer{} · F8", plural(offers)).yellow(),
        ));
    }
    let block = Block::new()
        .borders(Borders::RIGHT)
        .title(Line::from(" Contacts ".bold()));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn entry_line(selected: bool, mut spans: Vec<Span<'static>>) -> Line<'static> {
    spans.insert(0, Span::raw(if selected { "▸" } else { " " }));
    let line = Line::from(spans);
    if selected {
        line.patch_style(Style::new().add_modifier(Modifier::BOLD))
    } else {
        line
    }
}

/// The conversation's guarantees for its title: those in force plain, weaker
/// ones yellow, missing ones red (and in words, not by colour alone).
fn guarantee_spans(g: &nightjar_node::Guarantees) -> Vec<Span<'static>> {
    crate::cli::guarantee_marks(g)
        .into_iter()
        .map(|(mark, holds)| {
            let span = Span::raw(format!("· {mark} "));
            match holds {
                Holds::Yes => span,
                Holds::Weaker => span.yellow(),
                Holds::No => span.red().bold(),
            }
        })
        .collect()
}

fn draw_conversation(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let (title, lines) = match app.selected_contact() {
        Some(c) => {
            let title = Line::from(
                vec![
                    Span::styled(
                        format!(" {} {} ", level_mark(c.level), clean(&c.name)),
                        Style::new().fg(level_colour(c.level)).bold(),
                    ),
                    Span::raw(format!(
                        "{} · {} ",
                        level_word(c.level),
                        if c.online { "online" } else { "offline" }
                    )),
                    Span::raw(if c.require_auth {
                        "· messages wait for authentication "
                    } else {
                        ""
                    })
                    .yellow(),
                ]
                .into_iter()
                .chain(guarantee_spans(&c.guarantees))
                .collect::<Vec<_>>(),
            );
            let lines: Vec<Line<'static>> = app
                .conversation()
                .iter()
                .map(|m| message_line(m, c.level))
                .collect();
            (title, lines)
        }
        None => {
            let title = Line::from(" status ".bold());
            let lines = app.log.iter().map(|l| Line::from(l.0.clone())).collect();
            (title, lines)
        }
    };
    let block = Block::new().borders(Borders::BOTTOM).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let empty = lines.is_empty();
    let paragraph = Paragraph::new(Text::from(lines)).wrap(Wrap { trim: false });
    // Stick to the end, less what was scrolled back.
    let total = paragraph.line_count(inner.width);
    let height = usize::from(inner.height);
    let bottom_offset = total.saturating_sub(height);
    let offset = bottom_offset.saturating_sub(app.scroll);
    let offset = u16::try_from(offset).unwrap_or(u16::MAX);
    if empty {
        let hint = match app.selection {
            Selection::Status => {
                "What nightjar reports appears here. F2 adds a contact by address, F3 makes or \
                 joins an invite code, F6 shows your address. Type /help or press F1 for more."
            }
            Selection::Contact(_) => "No messages yet: type one and press Enter.",
        };
        frame.render_widget(
            Paragraph::new(hint.dark_gray()).wrap(Wrap { trim: true }),
            inner,
        );
    } else {
        frame.render_widget(paragraph.scroll((offset, 0)), inner);
    }
}

fn message_line(m: &MessageView, level: Level) -> Line<'static> {
    let when = Span::raw(format!("[{}] ", clock(m.sent_at_ms))).dark_gray();
    let mut spans = match m.direction {
        MessageDirection::Incoming => vec![
            when,
            Span::styled(
                format!("<{}> ", clean(&m.contact)),
                Style::new().fg(level_colour(level)),
            ),
            Span::raw(clean(&m.body)),
        ],
        MessageDirection::Outgoing => {
            let state = match m.state {
                MessageState::Delivered => Span::raw(" ✓✓ delivered").green(),
                MessageState::Sent => Span::raw(" ✓ sent").dark_gray(),
                MessageState::Deposited => Span::raw(" ✉ via mailbox").blue(),
                MessageState::Queued => Span::raw(" … queued").yellow(),
                other => Span::raw(format!(" {}", state_word(other))),
            };
            vec![
                when,
                Span::raw("me: ").bold(),
                Span::raw(clean(&m.body)),
                state,
            ]
        }
    };
    let route = crate::cli::mailbox_note(m);
    if !route.is_empty() {
        spans.push(Span::raw(route).dark_gray());
    }
    Line::from(spans)
}

fn draw_input(frame: &mut Frame<'_>, area: Rect, app: &App) -> Position {
    let prompt = match app.selected_contact() {
        Some(c) => format!("{}> ", clean(&c.name)),
        None => "> ".into(),
    };
    let width = u16::try_from(prompt.chars().count())
        .unwrap_or(2)
        .min(area.width / 2);
    frame.render_widget(
        Paragraph::new(prompt).bold(),
        Rect::new(area.x, area.y, width, 1),
    );
    let rest = Rect::new(area.x + width, area.y, area.width.saturating_sub(width), 1);
    app.input.render(rest, frame.buffer_mut(), Style::new())
}

fn draw_hints(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let line = if !app.tab.candidates().is_empty() {
        // Command words are shown as typed, with their slash.
        let text = app.input.text();
        let slash = if text.starts_with('/') && !text.trim_end().contains(' ') {
            "/"
        } else {
            ""
        };
        let shown: Vec<String> = app
            .tab
            .candidates()
            .iter()
            .map(|c| format!("{slash}{c}"))
            .collect();
        Line::from(format!("Tab: {}", shown.join("  "))).cyan()
    } else if let Some(hint) = complete::hint(app.input.text()) {
        Line::from(hint).dark_gray()
    } else if app.running > 0 {
        Line::from("working…").yellow()
    } else {
        Line::from("")
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_bar(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let line = match &app.notice {
        Some(notice) => Line::from(vec![
            Span::raw(clean(notice)),
            Span::raw("  ·  F1 help").dark_gray(),
        ]),
        None => Line::from(keys(app.offers_waiting()).dark_gray()),
    };
    frame.render_widget(Paragraph::new(line).reversed(), area);
}

/// A centred window of `width` x `height` cells, cleared, with a title.
fn window(frame: &mut Frame<'_>, area: Rect, title: &str, width: u16, height: u16) -> Rect {
    let rect = area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    );
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .title(Line::from(format!(" {title} ").bold()))
        .title_bottom(Line::from(" Esc closes ").dark_gray());
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    inner
}

fn draw_dialog(frame: &mut Frame<'_>, area: Rect, app: &App, dialog: &Dialog) {
    match dialog {
        Dialog::Help { scroll } => draw_help(frame, area, *scroll),
        Dialog::Output(lines) => {
            let height = u16::try_from(lines.len())
                .unwrap_or(u16::MAX)
                .saturating_add(2);
            let inner = window(frame, area, "Output", 100, height);
            let text: Vec<Line<'static>> = lines.iter().map(|l| Line::from(clean(l))).collect();
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
        }
        Dialog::Address => draw_address(frame, area, app),
        Dialog::AddContact(form) => {
            let inner = window(frame, area, "Add a contact", 72, 14);
            let [intro, rest] = inner.layout(&Layout::vertical([
                Constraint::Length(2),
                Constraint::Min(1),
            ]));
            frame.render_widget(
                Paragraph::new("Ask someone to become a contact with the address they gave you.")
                    .wrap(Wrap { trim: true }),
                intro,
            );
            draw_form(frame, rest, form);
        }
        Dialog::Invite(invite) => draw_invite(frame, area, invite),
        Dialog::Auth(auth) => draw_auth(frame, area, auth),
        Dialog::Verify(verify) => draw_verify(frame, area, verify),
        Dialog::Requests(requests) => draw_requests(frame, area, app, requests),
        Dialog::Files(files) => draw_files(frame, area, app, files),
        Dialog::SendFile(send) => {
            let inner = window(frame, area, "Send a file", 72, 12);
            let [intro, rest] = inner.layout(&Layout::vertical([
                Constraint::Length(2),
                Constraint::Min(1),
            ]));
            frame.render_widget(
                Paragraph::new(
                    "The contact is asked first; the file goes once they accept, whenever \
                     you are both online.",
                )
                .wrap(Wrap { trim: true }),
                intro,
            );
            draw_form(frame, rest, &send.form);
        }
    }
}

/// Labels, inputs and the note; sets the cursor on the focused input.
fn draw_form(frame: &mut Frame<'_>, area: Rect, form: &Form) {
    let mut y = area.y;
    let mut cursor = None;
    for (i, field) in form.fields.iter().enumerate() {
        if y >= area.bottom() {
            break;
        }
        let focused = i == form.focus;
        let label_style = if focused {
            Style::new().fg(Color::Yellow).bold()
        } else {
            Style::new()
        };
        match &field.kind {
            FieldKind::Toggle(on) => {
                let mark = if *on { "[x] " } else { "[ ] " };
                let row = Rect::new(area.x, y, area.width, 1);
                frame.render_widget(
                    Paragraph::new(Line::from(vec![
                        Span::styled(format!("{mark}{}", field.label), label_style),
                        Span::raw(if focused { "  (Space toggles)" } else { "" }).dark_gray(),
                    ])),
                    row,
                );
                y += 2;
            }
            FieldKind::Text(input) => {
                frame.render_widget(
                    Paragraph::new(Span::styled(field_label(field), label_style)),
                    Rect::new(area.x, y, area.width, 1),
                );
                y += 1;
                if y >= area.bottom() {
                    break;
                }
                frame.render_widget(Paragraph::new("> "), Rect::new(area.x, y, 2, 1));
                let row = Rect::new(area.x + 2, y, area.width.saturating_sub(2), 1);
                let at = input.render(row, frame.buffer_mut(), Style::new().underlined());
                if focused {
                    cursor = Some(at);
                }
                y += 2;
            }
        }
    }
    if let Some(note) = &form.note
        && y < area.bottom()
    {
        let rest = Rect::new(area.x, y, area.width, area.bottom() - y);
        frame.render_widget(
            Paragraph::new(note_line(note)).wrap(Wrap { trim: true }),
            rest,
        );
    }
    if let Some(at) = cursor {
        frame.set_cursor_position(at);
    }
}

fn field_label(field: &Field) -> String {
    format!("{}:", field.label)
}

fn note_line(note: &Note) -> Line<'static> {
    match note {
        Note::Error(e) => Line::from(clean(e)).red(),
        Note::Working(w) => Line::from(clean(w)).yellow(),
        Note::Success(s) => Line::from(clean(s)).green(),
    }
}

fn draw_help(frame: &mut Frame<'_>, area: Rect, scroll: u16) {
    let mut lines = vec![
        Line::from("Keys".bold()),
        Line::from("  Enter          send the line (to the contact on screen, or a /command)"),
        Line::from("  Tab            complete a /command or a contact's name"),
        Line::from("  Ctrl-N, Ctrl-P next / previous conversation (also Alt-↓, Alt-↑)"),
        Line::from("  PgUp, PgDn     scroll the conversation     ↑, ↓  lines typed before"),
        Line::from("  F2 add a contact by address     F3 invite code (make or join)"),
        Line::from("  F4 authenticate (shared secret) F5 verify a fingerprint"),
        Line::from("  F6 your address and QR code     F7 contact requests"),
        Line::from("  F8 file transfers: a accept, d decline, c cancel, r resume, s send"),
        Line::from("  F9 send a file to the contact on screen"),
        Line::from("  ? or F1        this help       Ctrl-Q  quit (contacts are told)"),
        Line::from(""),
        Line::from(vec![
            Span::raw("Trust: "),
            Span::styled("? unverified", Style::new().fg(Color::Red)),
            Span::raw("  "),
            Span::styled("✓ verified", Style::new().fg(Color::Green)),
            Span::raw("  "),
            Span::styled("★ authenticated", Style::new().fg(Color::Cyan)),
            Span::raw("   ● online  ○ offline"),
        ]),
        Line::from(""),
        Line::from("Commands (as in `nightjar cli`)".bold()),
    ];
    for c in complete::COMMANDS {
        lines.push(Line::from(vec![
            Span::raw(format!("  {:<34}", format!("/{} {}", c.word, c.args))).cyan(),
            Span::raw(c.about),
        ]));
    }
    let height = u16::try_from(lines.len())
        .unwrap_or(u16::MAX)
        .saturating_add(2);
    let inner = window(frame, area, "Help (↑/↓ scroll)", 110, height);
    let scroll = scroll.min(height.saturating_sub(2).saturating_sub(inner.height));
    frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
}

fn draw_address(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(info) = &app.info else {
        let inner = window(frame, area, "Your address", 60, 5);
        frame.render_widget(Paragraph::new("not known yet…"), inner);
        return;
    };
    let qr = QrCode::new(&info.address).ok();
    let (qw, qh) = qr.as_ref().map(QrCode::size).unwrap_or((0, 0));
    let width = qw.max(70) + 4;
    let height = qh + 9;
    let inner = window(frame, area, "Your address", width, height);
    let [text, code] = inner.layout(&Layout::vertical([
        Constraint::Length(6),
        Constraint::Min(1),
    ]));
    frame.render_widget(
        Paragraph::new(vec![
            Line::from("Give this address to people who should be able to ask you:"),
            Line::from(info.address.clone()).bold(),
            Line::from(""),
            Line::from(format!("Fingerprint: {}", info.fingerprint)),
            Line::from(if info.ephemeral {
                "Ephemeral: this address is forgotten when you quit."
            } else {
                ""
            })
            .yellow(),
        ])
        .wrap(Wrap { trim: false }),
        text,
    );
    if let Some(qr) = &qr {
        let x = code.x + code.width.saturating_sub(qw) / 2;
        let rect = Rect::new(x, code.y, qw.min(code.width), code.height);
        frame.render_widget(qr, rect);
    }
}

fn draw_invite(frame: &mut Frame<'_>, area: Rect, invite: &InviteDialog) {
    match invite {
        InviteDialog::Choose { join } => {
            let inner = window(frame, area, "Invite code", 64, 9);
            let choice = |selected: bool, text: &'static str| {
                if selected {
                    Line::from(format!("▸ {text}")).reversed()
                } else {
                    Line::from(format!("  {text}"))
                }
            };
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from("A short code you read to someone (by phone, in person)."),
                    Line::from(""),
                    choice(!join, "Make a code to read out (s)"),
                    choice(*join, "Type a code read to me (j)"),
                    Line::from(""),
                    Line::from("↑/↓ and Enter".dark_gray()),
                ]),
                inner,
            );
        }
        InviteDialog::Show(form) => {
            let inner = window(frame, area, "Make an invite code", 64, 10);
            draw_form(frame, inner, form);
        }
        InviteDialog::Waiting { invite, outcome } => {
            let inner = window(frame, area, "Invite code", 64, 11);
            let mut lines = vec![
                Line::from(format!("Read this code to {}:", clean(&invite.name))),
                Line::from(""),
                Line::from(format!("    {}", invite.code))
                    .bold()
                    .fg(Color::Yellow),
                Line::from(""),
                Line::from(format!(
                    "They type it in their nightjar (F3, or /join CODE NAME). It is valid for \
                     {} minutes.",
                    invite.valid_for_s / 60
                )),
            ];
            lines.push(match outcome {
                Some(note) => note_line(note),
                None => Line::from("waiting for them…").yellow(),
            });
            frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), inner);
        }
        InviteDialog::Join(form) => {
            let inner = window(frame, area, "Join with a code", 64, 12);
            draw_form(frame, inner, form);
        }
    }
}

fn draw_auth(frame: &mut Frame<'_>, area: Rect, auth: &AuthDialog) {
    let inner = window(frame, area, "Authenticate with a shared secret", 70, 15);
    let name = clean(&auth.contact);
    let intro = match &auth.asked {
        Some(Some(q)) => format!("{name} asks you to authenticate: \"{}\"", clean(q)),
        Some(None) => format!("{name} asks you to authenticate with a secret you both know."),
        None => {
            format!("Ask {name} to prove they know a secret you share (neither side reveals it).")
        }
    };
    let [head, rest] = inner.layout(&Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(1),
    ]));
    frame.render_widget(Paragraph::new(intro).wrap(Wrap { trim: true }), head);
    match auth.outcome {
        Some(outcome) => {
            let line = match outcome {
                nightjar_node::AuthOutcome::Succeeded => {
                    Line::from(format!("Succeeded: {name} is authenticated (★).")).cyan()
                }
                nightjar_node::AuthOutcome::Failed => {
                    Line::from("Failed: the secrets differ.").red()
                }
                nightjar_node::AuthOutcome::Cheated => Line::from(
                    "Failed: their side broke the protocol. Do not trust this conversation.",
                )
                .red(),
                _ => Line::from("Aborted.").yellow(),
            };
            frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), rest);
        }
        None => draw_form(frame, rest, &auth.form),
    }
}

fn draw_verify(frame: &mut Frame<'_>, area: Rect, verify: &VerifyDialog) {
    let inner = window(frame, area, "Verify a fingerprint", 80, 14);
    let name = clean(&verify.contact);
    let [head, rest] = inner.layout(&Layout::vertical([
        Constraint::Length(6),
        Constraint::Min(1),
    ]));
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(format!(
                "Compare over a channel you trust (in person, a call): read yours to {name}, \
                 and type what they read to you."
            )),
            Line::from(""),
            Line::from(format!("yours:              {}", verify.mine)),
            Line::from(format!("{name}'s, as seen here: {}", verify.theirs)),
        ])
        .wrap(Wrap { trim: true }),
        head,
    );
    draw_form(frame, rest, &verify.form);
}

fn draw_requests(frame: &mut Frame<'_>, area: Rect, app: &App, dialog: &RequestsDialog) {
    let inner = window(frame, area, "Contact requests", 80, 18);
    let mut lines = Vec::new();
    let incoming: Vec<_> = app.incoming().collect();
    if incoming.is_empty() {
        lines.push(Line::from("No request waits for you."));
    } else {
        lines.push(Line::from(
            "Waiting for you (Enter accepts, d declines):".bold(),
        ));
    }
    for (i, r) in incoming.iter().enumerate() {
        let line = Line::from(format!(
            "#{} from {}: \"{}\"",
            r.id,
            r.fingerprint,
            clean(&r.greeting)
        ));
        lines.push(if i == dialog.selected {
            line.reversed()
        } else {
            line
        });
    }
    let outgoing: Vec<_> = app
        .requests
        .iter()
        .filter(|r| r.direction == nightjar_node::RequestDirection::Outgoing)
        .collect();
    if !outgoing.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from("Sent by you:".bold()));
        for r in outgoing {
            lines.push(Line::from(format!(
                "#{} to {} ({})",
                r.id,
                clean(r.name.as_deref().unwrap_or_default()),
                if r.delivered {
                    "delivered, waiting for them"
                } else {
                    "not delivered yet"
                }
            )));
        }
    }
    if let Some(note) = &dialog.note {
        lines.push(Line::from(""));
        lines.push(note_line(note));
    }
    let height = u16::try_from(lines.len()).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), inner);
    if let Some(naming) = &dialog.naming {
        let y = (inner.y + height + 1).min(inner.bottom().saturating_sub(3));
        let rect = Rect::new(inner.x, y, inner.width, inner.bottom().saturating_sub(y));
        draw_form(frame, rect, &naming.1);
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The colour of a transfer's state; its word is always shown beside it.
fn transfer_colour(state: nightjar_node::TransferState) -> Color {
    use nightjar_node::TransferState as S;
    match state {
        S::Offered | S::Paused => Color::Yellow,
        S::Accepted | S::Active => Color::Cyan,
        S::Completed => Color::Green,
        S::Declined | S::Cancelled | S::Failed => Color::Red,
    }
}

/// Whether a transfer gets a progress bar under its line.
fn has_gauge(t: &nightjar_node::TransferView) -> bool {
    use nightjar_node::TransferState as S;
    matches!(t.state, S::Active | S::Paused) || (t.state == S::Accepted && t.bytes_done > 0)
}

/// One line of the Files window.
fn transfer_row(t: &nightjar_node::TransferView, selected: bool) -> Line<'static> {
    use nightjar_node::TransferDirection;
    let arrow = match t.direction {
        TransferDirection::Incoming => "<- from",
        TransferDirection::Outgoing => "-> to",
    };
    let state = format!(
        "{}{}",
        transfer::state_word(t.state),
        transfer::state_note(t)
    );
    let line = Line::from(vec![
        Span::raw(if selected { "▸ " } else { "  " }),
        Span::raw(format!("#{} {arrow} {} ", t.id, clean(&t.contact))),
        Span::raw(format!("\"{}\" ", clean(&t.name))).bold(),
        Span::raw(format!("{} ", human_size(t.size))),
        Span::styled(state, Style::new().fg(transfer_colour(t.state))),
    ]);
    if selected { line.reversed() } else { line }
}

/// The progress bar of a transfer: percent, rate and time left in words.
fn transfer_gauge(t: &nightjar_node::TransferView) -> Gauge<'static> {
    let pct = transfer::percent(t.bytes_done, t.size);
    let mut label = format!("{pct}% ({})", amount_of(t.bytes_done, t.size));
    if t.state == nightjar_node::TransferState::Paused {
        label.push_str(" · paused");
    } else {
        if let Some(rate) = t.rate_bps {
            label.push_str(&format!(" · {}/s", human_size(rate)));
        }
        if let Some(eta) = t.eta_s {
            label.push_str(&format!(" · ETA {}", duration_words(eta)));
        }
    }
    Gauge::default()
        .gauge_style(Style::new().fg(transfer_colour(t.state)))
        .percent(u16::try_from(pct).unwrap_or(100))
        .label(label)
}

fn draw_files(frame: &mut Frame<'_>, area: Rect, app: &App, dialog: &FilesDialog) {
    let offers = app.offers_waiting();
    let title = match offers {
        0 => "Files".to_owned(),
        n => format!("Files · {n} offer{} waiting", plural(n)),
    };
    let inner = window(frame, area, &title, 100, 24);
    let note_height = if dialog.note.is_some() { 2 } else { 0 };
    let form_height = if dialog.save_as.is_some() { 3 } else { 0 };
    let [list, note, form, help] = inner.layout(&Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(note_height),
        Constraint::Length(form_height),
        Constraint::Length(1),
    ]));
    draw_transfers(frame, list, app, dialog);
    if let Some(n) = &dialog.note {
        frame.render_widget(Paragraph::new(note_line(n)).wrap(Wrap { trim: true }), note);
    }
    if let Some((_, save_as)) = &dialog.save_as {
        draw_form(frame, form, save_as);
    }
    frame.render_widget(
        Paragraph::new(
            "↑/↓ choose · a accept · d decline · c cancel · r resume · s send a file".dark_gray(),
        ),
        help,
    );
}

/// The transfers, newest first, scrolled so that the chosen one shows.
fn draw_transfers(frame: &mut Frame<'_>, area: Rect, app: &App, dialog: &FilesDialog) {
    let shown: Vec<_> = app.transfers_shown().collect();
    if shown.is_empty() {
        frame.render_widget(
            Paragraph::new("No file transfers yet. s sends a file (F9 on the main screen).")
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let chosen = app.chosen_transfer(dialog).map(|t| t.id);
    let heights: Vec<u16> = shown.iter().map(|t| 1 + u16::from(has_gauge(t))).collect();
    let at = shown.iter().position(|t| Some(t.id) == chosen).unwrap_or(0);
    // The first one shown: as early as leaves the chosen one in view.
    let mut first = at;
    let mut used = heights.get(at).copied().unwrap_or(1);
    while first > 0 && used + heights[first - 1] <= area.height {
        first -= 1;
        used += heights[first];
    }
    let mut y = area.y;
    for t in &shown[first..] {
        if y >= area.bottom() {
            break;
        }
        let row = Rect::new(area.x, y, area.width, 1);
        frame.render_widget(Paragraph::new(transfer_row(t, Some(t.id) == chosen)), row);
        y += 1;
        if has_gauge(t) && y < area.bottom() {
            let bar = Rect::new(area.x + 4, y, area.width.saturating_sub(4), 1);
            frame.render_widget(transfer_gauge(t), bar);
            y += 1;
        }
    }
}

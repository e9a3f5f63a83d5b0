//! Every screen and dialog drawn on ratatui's test backend, and what keys and
//! node events do to the state behind them.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use nightjar_node::{
    AuthOutcome, ContactView, Event, ForwardSecrecy, Guarantees, InviteView, Level,
    MessageDirection, MessageState, MessageView, PresenceState, ProfileInfo, RequestDirection,
    RequestView, TransferDirection, TransferState, TransferView,
};
use nightjar_tor::BootstrapStatus;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

use super::app::{Answer, App, Dialog, Done, Effect, FileAction, FileRefusal, Selection};
use super::start::{Bootstrap, Passphrase, Pick, Start};
use super::view;

const ADDRESS: &str = "nj1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0jqgezqstfbrpl\
                       c8sxy2xg7clk5r9exqgq6d4v0h";

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn type_text(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars()
        .flat_map(|c| app.on_key(key(KeyCode::Char(c))))
        .collect()
}

fn contact(name: &str, level: Level, online: bool, unread: usize) -> ContactView {
    ContactView {
        name: name.into(),
        level,
        verified: level != Level::Unverified,
        fingerprint: "12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890"
            .into(),
        identity_key: "key".into(),
        online,
        presence: online.then_some(PresenceState::Online),
        share_presence: true,
        pending: false,
        unread,
        require_auth: false,
        last_auth: None,
        guarantees: Guarantees {
            post_quantum: online.then_some(true),
            forward_secrecy: ForwardSecrecy::Ratchet,
            our_cover: "low".into(),
            their_cover: online.then_some(true),
        },
    }
}

fn message(contact: &str, incoming: bool, body: &str, state: MessageState) -> MessageView {
    MessageView {
        contact: contact.into(),
        id: format!("{:032x}", body.len()),
        direction: if incoming {
            MessageDirection::Incoming
        } else {
            MessageDirection::Outgoing
        },
        body: body.into(),
        sent_at_ms: 1_700_000_000_000,
        state,
        via_mailbox: false,
        direct: !matches!(state, MessageState::Queued | MessageState::Deposited),
    }
}

fn request(id: i64, incoming: bool) -> RequestView {
    RequestView {
        id,
        direction: if incoming {
            RequestDirection::Incoming
        } else {
            RequestDirection::Outgoing
        },
        name: (!incoming).then(|| "dave".into()),
        fingerprint: "55555 66666 77777".into(),
        greeting: "it's carol from the library".into(),
        delivered: true,
        created_at_ms: 0,
    }
}

/// Alice's screen: bob (verified, online, 2 unread), carol (authenticated),
/// eve (unverified, offline), one incoming request.
fn app() -> App {
    let mut app = App::new("profile alice".into());
    app.on_done(Done::Info(ProfileInfo {
        address: ADDRESS.into(),
        request_onion: "x.onion".into(),
        identity_key: "k".into(),
        fingerprint: "11111 22222 33333 44444 55555 66666 77777 88888 99999 00000 11111 22222"
            .into(),
        ephemeral: false,
    }));
    app.on_event(&Event::Online);
    app.on_done(Done::Contacts(vec![
        contact("bob", Level::Verified, true, 2),
        contact("carol", Level::Authenticated, true, 0),
        contact("eve", Level::Unverified, false, 0),
    ]));
    app.on_done(Done::Requests(vec![request(7, true), request(8, false)]));
    app
}

fn with_bob(mut app: App) -> App {
    let effects = app.on_key(ctrl('n'));
    assert!(matches!(&effects[..], [Effect::LoadHistory(n)] if n == "bob"));
    app.on_done(Done::History(
        "bob".into(),
        vec![
            message("bob", true, "are you there?", MessageState::Received),
            message("bob", false, "yes, here", MessageState::Delivered),
            message("bob", false, "sending now", MessageState::Sent),
            message("bob", false, "still waiting", MessageState::Queued),
            message("bob", false, "while you were away", MessageState::Deposited),
        ],
    ));
    app
}

/// The ticket a dialog's effect carries.
fn ticket_of(effects: &[Effect]) -> u64 {
    match effects {
        [
            Effect::SendRequest { ticket, .. }
            | Effect::Accept { ticket, .. }
            | Effect::Decline { ticket, .. }
            | Effect::CreateInvite { ticket, .. }
            | Effect::JoinInvite { ticket, .. }
            | Effect::Authenticate { ticket, .. }
            | Effect::Verify { ticket, .. }
            | Effect::SendFile { ticket, .. }
            | Effect::FileAction { ticket, .. },
        ] => *ticket,
        other => panic!("no ticket in {other:?}"),
    }
}

fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view::draw(f, app)).unwrap();
    terminal.backend().buffer().clone()
}

fn draw_start(start: &Start) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    terminal.draw(|f| view::draw_start(f, start)).unwrap();
    terminal.backend().buffer().clone()
}

fn text(buf: &Buffer) -> String {
    let area = buf.area;
    (area.top()..area.bottom())
        .map(|y| {
            (area.left()..area.right())
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The foreground colour of the first cell of `needle` on screen.
fn colour_of(buf: &Buffer, needle: &str) -> Color {
    let area = buf.area;
    for y in area.top()..area.bottom() {
        let row: Vec<&str> = (area.left()..area.right())
            .map(|x| buf[(x, y)].symbol())
            .collect();
        let line: String = row.concat();
        if let Some(byte) = line.find(needle) {
            // Cells hold one char each here (no wide chars in names).
            let column = line[..byte].chars().count();
            return buf[(area.left() + column as u16, y)].fg;
        }
    }
    panic!("{needle:?} is not on screen:\n{}", text(buf));
}

#[test]
fn start_screens() {
    let pick = Start::Pick(Pick::new(vec!["home".into(), "work".into()]));
    let screen = text(&draw_start(&pick));
    for want in [
        "Which profile?",
        "home",
        "work",
        "+ new profile",
        "ephemeral",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }

    let mut prompt = Passphrase::new("work".into(), true);
    for c in "hunter22".chars() {
        prompt.key(key(KeyCode::Char(c)));
    }
    let screen = text(&draw_start(&Start::Passphrase(prompt)));
    assert!(screen.contains("choose a passphrase"), "{screen}");
    assert!(screen.contains("••••••••"), "{screen}");
    assert!(
        !screen.contains("hunter"),
        "the passphrase shows:\n{screen}"
    );

    let mut refused = Passphrase::new("work".into(), false);
    refused.refused("wrong passphrase for profile \"work\"".into());
    let screen = text(&draw_start(&Start::Passphrase(refused)));
    assert!(screen.contains("wrong passphrase"), "{screen}");

    let screen = text(&draw_start(&Start::Unlocking {
        profile: "work".into(),
    }));
    assert!(screen.contains("unlocking profile \"work\""), "{screen}");

    let screen = text(&draw_start(&Start::Bootstrap(Bootstrap {
        backend: "system tor",
        status: BootstrapStatus {
            percent: 45,
            summary: "Loading relay descriptors".into(),
            blocked: None,
        },
        seconds: 12,
    })));
    for want in [
        "Joining the Tor network (system tor)",
        "45%",
        "Loading relay descriptors",
        "12 s",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
}

#[test]
fn main_screen_shows_contacts_by_trust_and_presence() {
    let app = app();
    let buf = draw(&app, 100, 30);
    let screen = text(&buf);
    for want in [
        "profile alice",
        "online",
        "● ✓ bob (2)",
        "● ★ carol",
        "○ ? eve",
        "1 request · F7",
        "status",
        "F2 adds a contact",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
    assert_eq!(colour_of(&buf, "✓ bob"), Color::Green);
    assert_eq!(colour_of(&buf, "★ carol"), Color::Cyan);
    assert_eq!(colour_of(&buf, "? eve"), Color::Red);
}

#[test]
fn a_conversation_shows_times_and_delivery_states() {
    let app = with_bob(app());
    let screen = text(&draw(&app, 100, 30));
    for want in [
        "✓ bob verified · online",
        "<bob> are you there?",
        "me: yes, here ✓✓ delivered",
        "me: sending now ✓ sent",
        "me: still waiting … queued",
        "me: while you were away ✉ via mailbox",
        "bob> ",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
    // A time stamp on every message.
    assert_eq!(screen.matches("] ").count(), 5, "{screen}");
}

#[test]
fn the_conversation_title_shows_its_guarantees_and_what_is_missing() {
    let app = with_bob(app());
    let buf = draw(&app, 120, 30);
    let screen = text(&buf);
    assert!(
        screen.contains("· PQ ✓ · FS ✓ · cover low · theirs ✓"),
        "{screen}"
    );
    assert_eq!(colour_of(&buf, "FS ✓"), Color::Reset);

    // Offline with a mailbox, cover off on our side, none from them.
    let mut app = app;
    let mut bob = contact("bob", Level::Verified, true, 0);
    bob.guarantees = Guarantees {
        post_quantum: Some(true),
        forward_secrecy: ForwardSecrecy::MailboxChain,
        our_cover: "off".into(),
        their_cover: Some(false),
    };
    app.on_done(Done::Contacts(vec![bob]));
    let buf = draw(&app, 140, 30);
    assert_eq!(colour_of(&buf, "FS: mailbox chain"), Color::Yellow);
    assert_eq!(colour_of(&buf, "no cover (ours)"), Color::Red);
    assert_eq!(colour_of(&buf, "no cover (theirs)"), Color::Yellow);
}

#[test]
fn scrollback_and_a_receipt_arriving() {
    let mut app = with_bob(app());
    let long: Vec<MessageView> = (0..60)
        .map(|i| message("bob", true, &format!("line {i:02}"), MessageState::Received))
        .collect();
    app.on_done(Done::History("bob".into(), long));
    let screen = text(&draw(&app, 100, 20));
    assert!(
        screen.contains("line 59") && !screen.contains("line 40"),
        "{screen}"
    );
    app.on_key(key(KeyCode::PageUp));
    app.on_key(key(KeyCode::PageUp));
    let screen = text(&draw(&app, 100, 20));
    assert!(
        !screen.contains("line 59") && screen.contains("line 30"),
        "{screen}"
    );
    app.on_key(key(KeyCode::PageDown));
    app.on_key(key(KeyCode::PageDown));
    assert!(text(&draw(&app, 100, 20)).contains("line 59"));

    let mut app = with_bob(self::app());
    let id = app.conversation()[3].id.clone();
    app.on_event(&Event::MessageState {
        contact: "bob".into(),
        id,
        state: MessageState::Delivered,
    });
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("still waiting ✓✓ delivered"), "{screen}");
}

#[test]
fn typing_runs_lines_of_the_line_interface() {
    let mut app = app();
    // Nobody chosen: plain text is refused with a hint.
    type_text(&mut app, "hello");
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    assert!(app.notice.as_deref().unwrap().contains("choose a contact"));
    // A slash command goes to the line interface.
    type_text(&mut app, "/convs");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::RunLine { line, current: None }] if line.0.as_str() == "/convs"),
        "{effects:?}"
    );
    app.on_done(Done::Output(vec!["bob verified online (2 unread)".into()]));
    let screen = text(&draw(&app, 100, 30));
    assert!(
        screen.contains("bob verified online (2 unread)"),
        "{screen}"
    );
    // With bob chosen, plain text goes to him.
    let mut app = with_bob(app);
    type_text(&mut app, "hi bob");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::RunLine { line, current: Some(c) }] if line.0.as_str() == "hi bob" && c == "bob"),
        "{effects:?}"
    );
    // `/peer carol` in the line interface moves the screen to carol.
    let effects = app.on_done(Done::LineRan {
        sent_with: Some("bob".into()),
        current: Some("carol".into()),
    });
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadHistory(n) if n == "carol"))
    );
    assert_eq!(app.selection, Selection::Contact("carol".into()));
    // Up brings back what was typed.
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "hi bob");
    // Quit, by key or by command.
    assert!(matches!(&app.on_key(ctrl('q'))[..], [Effect::Quit]));
    app.input.clear();
    type_text(&mut app, "/quit");
    assert!(matches!(
        &app.on_key(key(KeyCode::Enter))[..],
        [Effect::Quit]
    ));
}

#[test]
fn tab_completes_and_shows_candidates() {
    let mut app = app();
    type_text(&mut app, "/pe");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "/peer ");
    type_text(&mut app, "c");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.input.text(), "/peer carol ");
    app.input.clear();
    type_text(&mut app, "/m");
    app.on_key(key(KeyCode::Tab));
    let screen = text(&draw(&app, 120, 30));
    assert!(screen.contains("Tab: "), "{screen}");
    assert!(screen.contains("/msg"), "{screen}");
    app.input.clear();
    type_text(&mut app, "/msg ");
    let screen = text(&draw(&app, 120, 30));
    assert!(screen.contains("/msg NAME TEXT"), "{screen}");
}

#[test]
fn help_overlay_lists_keys_and_every_command() {
    let mut app = app();
    app.on_key(key(KeyCode::Char('?')));
    assert!(matches!(app.dialog, Some(Dialog::Help { .. })));
    let screen = text(&draw(&app, 120, 50));
    for want in [
        "Help",
        "Ctrl-Q",
        "/req-send",
        "/auth",
        "/mailbox-add",
        "★ authenticated",
        "F8 file transfers: a accept, d decline, c cancel, r resume, s send",
        "F9 send a file",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
    // Arrows scroll it; any other key closes it; '?' in the middle of a line is
    // just a character.
    app.on_key(key(KeyCode::Down));
    assert!(matches!(app.dialog, Some(Dialog::Help { scroll: 1 })));
    app.on_key(key(KeyCode::Esc));
    assert!(app.dialog.is_none());
    type_text(&mut app, "/msg bob really?");
    assert!(app.dialog.is_none());
    assert_eq!(app.input.text(), "/msg bob really?");
}

#[test]
fn address_dialog_draws_the_qr_code() {
    let mut app = app();
    app.on_key(key(KeyCode::F(6)));
    let buf = draw(&app, 120, 45);
    let screen = text(&buf);
    assert!(screen.contains("Your address"), "{screen}");
    assert!(screen.contains("11111 22222"), "{screen}");
    assert!(screen.contains('▀') || screen.contains('▄'), "{screen}");
    // Too small a window says so instead of drawing half a code.
    let screen = text(&draw(&app, 80, 24));
    assert!(screen.contains("enlarge the window"), "{screen}");
}

#[test]
fn add_contact_dialog() {
    let mut app = app();
    app.on_key(key(KeyCode::F(2)));
    // Submitting empty fields is refused.
    app.on_key(key(KeyCode::Enter));
    app.on_key(key(KeyCode::Enter));
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    let screen = text(&draw(&app, 100, 30));
    assert!(
        screen.contains("an address (nj1…) and a name are needed"),
        "{screen}"
    );
    // Fill it in.
    app.on_key(key(KeyCode::Up));
    app.on_key(key(KeyCode::Up));
    type_text(&mut app, "nj1abc");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "dave");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "hello dave");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::SendRequest { address, name, greeting, .. }]
            if address == "nj1abc" && name == "dave" && greeting == "hello dave"),
        "{effects:?}"
    );
    let ticket = ticket_of(&effects);
    // Enter while it is on its way does not send it twice.
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    app.on_done(Done::Answer {
        ticket,
        answer: Answer::RequestSent(Err("not a valid nightjar address: nj1abc".into())),
    });
    let buf = draw(&app, 100, 30);
    assert_eq!(colour_of(&buf, "not a valid nightjar address"), Color::Red);
}

#[test]
fn invite_dialogs_make_and_join_codes() {
    let mut app = app();
    app.on_key(key(KeyCode::F(3)));
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("Make a code to read out"), "{screen}");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "frank");
    app.on_key(key(KeyCode::Tab));
    app.on_key(key(KeyCode::Char(' ')));
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("[x] Require authentication"), "{screen}");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::CreateInvite { name, require_auth: true, .. }] if name == "frank"),
        "{effects:?}"
    );
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::InviteCreated(Ok(InviteView {
            code: "7-crossover-clockwork".into(),
            name: "frank".into(),
            valid_for_s: 600,
        })),
    });
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("7-crossover-clockwork"), "{screen}");
    assert!(screen.contains("valid for 10 minutes"), "{screen}");
    assert!(screen.contains("waiting for them"), "{screen}");
    app.on_event(&Event::InviteCompleted {
        contact: contact("frank", Level::Verified, true, 0),
    });
    let screen = text(&draw(&app, 100, 30));
    assert!(
        screen.contains("frank is now a verified contact"),
        "{screen}"
    );

    // Joining.
    app.on_key(key(KeyCode::Esc));
    app.on_key(key(KeyCode::F(3)));
    app.on_key(key(KeyCode::Char('j')));
    type_text(&mut app, "3-bison-ukulele");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "gina");
    app.on_key(key(KeyCode::Enter));
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::JoinInvite { code, name, require_auth: false, .. }]
            if code.0.as_str() == "3-bison-ukulele" && name == "gina"),
        "{effects:?}"
    );
    let screen = text(&draw(&app, 100, 30));
    assert!(
        screen.contains("joining through the rendezvous server"),
        "{screen}"
    );
    // The code read aloud is shown as typed.
    assert!(screen.contains("3-bison-ukulele"), "{screen}");
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::Joined(Err("the invite did not complete: wrong code".into())),
    });
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("wrong code"), "{screen}");
}

#[test]
fn authentication_dialog_asks_and_answers() {
    // Without a contact on screen, F4 says what to do.
    let mut app = app();
    app.on_key(key(KeyCode::F(4)));
    assert!(app.dialog.is_none());
    assert!(app.notice.as_deref().unwrap().contains("choose a contact"));

    let mut app = with_bob(self::app());
    app.on_key(key(KeyCode::F(4)));
    type_text(&mut app, "where did we meet?");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "the lighthouse");
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("Ask bob to prove"), "{screen}");
    assert!(
        !screen.contains("lighthouse"),
        "the secret shows:\n{screen}"
    );
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::Authenticate { name, secret, question: Some(q), .. }]
            if name == "bob" && secret.0.as_str() == "the lighthouse" && q == "where did we meet?"),
        "{effects:?}"
    );
    assert!(text(&draw(&app, 100, 30)).contains("waiting for bob"));
    app.on_event(&Event::AuthResult {
        contact: "bob".into(),
        outcome: AuthOutcome::Succeeded,
    });
    let buf = draw(&app, 100, 30);
    assert!(text(&buf).contains("Succeeded: bob is authenticated"));

    // bob asks us: his question shows and only the secret is asked.
    let mut app = with_bob(self::app());
    app.on_event(&Event::AuthRequested {
        contact: "bob".into(),
        question: Some("our first pet?".into()),
    });
    assert!(text(&draw(&app, 100, 30)).contains("auth?"));
    app.on_key(key(KeyCode::F(4)));
    let screen = text(&draw(&app, 100, 30));
    assert!(
        screen.contains("bob asks you to authenticate: \"our first pet?\""),
        "{screen}"
    );
    type_text(&mut app, "rex");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::Authenticate { question: None, .. }]),
        "{effects:?}"
    );
    app.on_event(&Event::AuthResult {
        contact: "bob".into(),
        outcome: AuthOutcome::Failed,
    });
    assert!(text(&draw(&app, 100, 30)).contains("Failed: the secrets differ"));
}

#[test]
fn verify_dialog_compares_fingerprints() {
    let mut app = with_bob(app());
    app.on_key(key(KeyCode::F(5)));
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("yours:"), "{screen}");
    assert!(screen.contains("11111 22222 33333"), "{screen}");
    assert!(screen.contains("12345 67890 12345"), "{screen}");
    type_text(&mut app, "12345 67890");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::Verify { name, fingerprint, .. }] if name == "bob" && fingerprint == "12345 67890"),
        "{effects:?}"
    );
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::Verified(Err(
            "the fingerprint does not match bob's; do not trust this contact until you know why"
                .into(),
        )),
    });
    let buf = draw(&app, 100, 30);
    assert_eq!(
        colour_of(&buf, "the fingerprint does not match"),
        Color::Red
    );
}

#[test]
fn requests_dialog_accepts_and_declines() {
    let mut app = app();
    let effects = app.on_key(key(KeyCode::F(7)));
    assert!(matches!(&effects[..], [Effect::Refresh]));
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("#7 from 55555 66666 77777"), "{screen}");
    assert!(screen.contains("it's carol from the library"), "{screen}");
    assert!(
        screen.contains("#8 to dave (delivered, waiting for them)"),
        "{screen}"
    );
    app.on_key(key(KeyCode::Enter));
    let screen = text(&draw(&app, 100, 30));
    assert!(screen.contains("Name for this contact"), "{screen}");
    type_text(&mut app, "carol2");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::Accept { id: 7, name, .. }] if name == "carol2"),
        "{effects:?}"
    );
    // Nothing else is sent while the answer is on its way.
    assert!(app.on_key(key(KeyCode::Char('d'))).is_empty());
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::Accepted(Err("no contact request #7".into())),
    });
    let effects = app.on_key(key(KeyCode::Char('d')));
    assert!(
        matches!(&effects[..], [Effect::Decline { id: 7, .. }]),
        "{effects:?}"
    );
}

#[test]
fn any_size_draws_without_panicking() {
    let mut app = with_bob(app());
    for (w, h) in [(1, 1), (10, 3), (30, 8), (80, 24), (200, 60)] {
        draw(&app, w, h);
    }
    for k in [
        KeyCode::F(1),
        KeyCode::F(2),
        KeyCode::F(3),
        KeyCode::F(5),
        KeyCode::F(6),
        KeyCode::F(7),
        KeyCode::F(8),
        KeyCode::F(9),
    ] {
        app.on_key(key(k));
        for (w, h) in [(1, 1), (12, 4), (40, 10), (80, 24)] {
            draw(&app, w, h);
        }
        app.on_key(key(KeyCode::Esc));
        app.dialog = None;
    }
    for start in [
        Start::Pick(Pick::new(vec![])),
        Start::Passphrase(Passphrase::new("x".into(), false)),
    ] {
        let mut terminal = Terminal::new(TestBackend::new(5, 2)).unwrap();
        terminal.draw(|f| view::draw_start(f, &start)).unwrap();
    }
}

#[test]
fn events_refresh_what_they_change() {
    let mut app = with_bob(app());
    // A message for the conversation on screen is loaded (and so read).
    let effects = app.on_event(&Event::MessageReceived {
        message: message("bob", true, "new", MessageState::Received),
    });
    assert!(matches!(&effects[..], [Effect::LoadHistory(n)] if n == "bob"));
    // For another, the unread counts are fetched again.
    let effects = app.on_event(&Event::MessageReceived {
        message: message("carol", true, "new", MessageState::Received),
    });
    assert!(matches!(&effects[..], [Effect::Refresh]));
    let effects = app.on_event(&Event::RequestReceived {
        request: request(9, true),
    });
    assert!(matches!(&effects[..], [Effect::Refresh]));
    assert!(app.notice.as_deref().unwrap().contains("F7"));
    // `/delete bob` leaves the status log on screen.
    app.on_done(Done::LineRan {
        sent_with: Some("bob".into()),
        current: None,
    });
    assert_eq!(app.selection, Selection::Status);
}

/// F3, make a code for frank; the request's ticket.
fn ask_for_a_code(app: &mut App) -> u64 {
    app.on_key(key(KeyCode::F(3)));
    app.on_key(key(KeyCode::Enter));
    type_text(app, "frank");
    app.on_key(key(KeyCode::Enter));
    ticket_of(&app.on_key(key(KeyCode::Enter)))
}

#[test]
fn answers_for_closed_windows_go_to_the_status_log() {
    let mut app = app();
    // A code made after its window was closed is still shown, in the log.
    let made = ask_for_a_code(&mut app);
    app.on_key(key(KeyCode::Esc));
    // A join started meanwhile does not get the other window's answer.
    app.on_key(key(KeyCode::F(3)));
    app.on_key(key(KeyCode::Char('j')));
    type_text(&mut app, "9-zulu");
    app.on_done(Done::Answer {
        ticket: made,
        answer: Answer::InviteCreated(Ok(InviteView {
            code: "4-apple-banana".into(),
            name: "frank".into(),
            valid_for_s: 600,
        })),
    });
    assert!(matches!(
        app.dialog,
        Some(Dialog::Invite(super::app::InviteDialog::Join(_)))
    ));
    assert!(
        app.log
            .iter()
            .any(|l| l.0.contains("invite code for frank: 4-apple-banana")),
        "{:?}",
        app.log
    );
    // A refused verification whose window is gone is not lost either.
    app.on_key(key(KeyCode::Esc));
    app.on_done(Done::Answer {
        ticket: 99,
        answer: Answer::Verified(Err("the fingerprint does not match bob's".into())),
    });
    assert!(
        app.log
            .iter()
            .any(|l| l.0.contains("error: the fingerprint does not match"))
    );
}

#[test]
fn the_made_code_stays_until_closed_on_purpose() {
    let mut app = app();
    let ticket = ask_for_a_code(&mut app);
    app.on_done(Done::Answer {
        ticket,
        answer: Answer::InviteCreated(Ok(InviteView {
            code: "4-apple-banana".into(),
            name: "frank".into(),
            valid_for_s: 600,
        })),
    });
    app.on_key(key(KeyCode::Char('x')));
    app.on_key(key(KeyCode::Enter));
    assert!(text(&draw(&app, 100, 30)).contains("4-apple-banana"));
    app.on_key(key(KeyCode::Esc));
    assert!(app.dialog.is_none());
}

#[test]
fn a_finished_command_does_not_move_the_screen() {
    let mut app = with_bob(app());
    type_text(&mut app, "/history bob 5");
    app.on_key(key(KeyCode::Enter));
    // Meanwhile the person moved to carol.
    app.on_key(ctrl('n'));
    assert_eq!(app.selection, Selection::Contact("carol".into()));
    app.on_done(Done::LineRan {
        sent_with: Some("bob".into()),
        current: Some("bob".into()),
    });
    assert_eq!(app.selection, Selection::Contact("carol".into()));
}

#[test]
fn secrets_typed_on_the_line_are_not_kept_for_up() {
    let mut app = with_bob(app());
    type_text(&mut app, "hello");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "/auth bob heron where did we meet?");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "/join 7-crossover-clockwork dave");
    app.on_key(key(KeyCode::Enter));
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input.text(), "hello");
    assert!(!format!("{:?}", app.on_key(key(KeyCode::Enter))).contains("hello"));
}

#[test]
fn command_output_in_a_conversation_opens_a_window() {
    let mut app = with_bob(app());
    app.on_done(Done::Output(vec![
        "#7 from 55555: \"hi\"".into(),
        "#8 to dave (not delivered yet)".into(),
    ]));
    let screen = text(&draw(&app, 100, 30));
    assert!(
        screen.contains("Output") && screen.contains("#8 to dave"),
        "{screen}"
    );
    app.on_key(key(KeyCode::Esc));
    assert!(app.dialog.is_none());
    // Bare commands that have a window open it.
    type_text(&mut app, "/invite");
    app.on_key(key(KeyCode::Enter));
    assert!(matches!(
        app.dialog,
        Some(Dialog::Invite(super::app::InviteDialog::Show(_)))
    ));
}

fn transfer(
    id: i64,
    contact: &str,
    incoming: bool,
    name: &str,
    state: TransferState,
) -> TransferView {
    TransferView {
        id,
        contact: contact.into(),
        direction: if incoming {
            TransferDirection::Incoming
        } else {
            TransferDirection::Outgoing
        },
        name: name.into(),
        save_name: incoming.then(|| name.into()),
        size: 50_000_000,
        hash: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262".into(),
        state,
        reason: None,
        bytes_done: 0,
        rate_bps: None,
        eta_s: None,
        path: None,
        created_at_ms: 1_700_000_000_000,
    }
}

/// Four transfers, oldest first: #1 offered by bob, #2 to carol 40 % through,
/// #3 from eve saved, #4 to bob failed.
fn transfers() -> Vec<TransferView> {
    let offered = transfer(1, "bob", true, "report.pdf", TransferState::Offered);
    let mut active = transfer(2, "carol", false, "holiday.mp4", TransferState::Active);
    active.bytes_done = 20_000_000;
    active.rate_bps = Some(5_100_000);
    active.eta_s = Some(6);
    let mut done = transfer(3, "eve", true, "notes.txt", TransferState::Completed);
    done.size = 498;
    done.bytes_done = 498;
    done.path = Some("/home/alice/Downloads/notes.txt".into());
    let mut failed = transfer(4, "bob", false, "draft.odt", TransferState::Failed);
    failed.reason = Some("the file changed while it was sent".into());
    vec![offered, active, done, failed]
}

/// F8 opened on the four transfers, with the node's list loaded.
fn with_files() -> App {
    let mut app = app();
    let effects = app.on_key(key(KeyCode::F(8)));
    assert!(
        matches!(&effects[..], [Effect::LoadTransfers]),
        "{effects:?}"
    );
    app.on_done(Done::Transfers(transfers()));
    app
}

/// Moves the Files window's choice to transfer `id`.
fn choose(app: &mut App, id: i64) {
    for _ in 0..10 {
        app.on_key(key(KeyCode::Up));
    }
    for _ in 0..10 {
        let Some(Dialog::Files(d)) = &app.dialog else {
            panic!("the Files window is closed");
        };
        if app.chosen_transfer(d).map(|t| t.id) == Some(id) {
            return;
        }
        app.on_key(key(KeyCode::Down));
    }
    panic!("no transfer #{id}");
}

#[test]
fn files_window_shows_each_state() {
    let app = with_files();
    let buf = draw(&app, 120, 40);
    let screen = text(&buf);
    for want in [
        "Files · 1 offer waiting",
        "#1 <- from bob \"report.pdf\" 47.7 MB offered",
        "#2 -> to carol \"holiday.mp4\" 47.7 MB active",
        "40% (19.1 of 47.7 MB) · 4.9 MB/s · ETA 6 s",
        "#3 <- from eve \"notes.txt\" 498 B completed (/home/alice/Downloads/notes.txt)",
        "#4 -> to bob \"draft.odt\" 47.7 MB failed: the file changed while it was sent",
        "a accept · d decline · c cancel · r resume",
    ] {
        assert!(screen.contains(want), "{want:?} missing:\n{screen}");
    }
    // Newest first; the offer waiting is chosen when the window opens.
    let at = |s: &str| screen.find(s).unwrap();
    assert!(at("#4 ->") < at("#3 <-") && at("#2 ->") < at("#1 <-"));
    assert!(screen.contains("▸ #1 <- from bob"), "{screen}");
    // Colour is never the only signal: the state's word is beside it.
    assert_eq!(colour_of(&buf, "failed: the file"), Color::Red);
    assert_eq!(colour_of(&buf, "completed (/home"), Color::Green);
    assert_eq!(colour_of(&buf, "offered"), Color::Yellow);
}

#[test]
fn files_window_keys_ask_the_node() {
    let mut app = with_files();
    // The offer from bob: accepted with nothing asked.
    choose(&mut app, 1);
    let effects = app.on_key(key(KeyCode::Char('a')));
    assert!(
        matches!(
            &effects[..],
            [Effect::FileAction {
                id: 1,
                action: FileAction::Accept { save_as: None },
                ..
            }]
        ),
        "{effects:?}"
    );
    // Nothing else goes while the answer is on its way.
    assert!(app.on_key(key(KeyCode::Char('d'))).is_empty());
    let mut accepted = transfers().remove(0);
    accepted.state = TransferState::Accepted;
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Ok(accepted)),
    });
    let buf = draw(&app, 120, 40);
    assert_eq!(
        colour_of(&buf, "file #1 from bob: \"report.pdf\" accepted"),
        Color::Green
    );

    // Declining an offer.
    let mut app = with_files();
    choose(&mut app, 1);
    let effects = app.on_key(key(KeyCode::Char('d')));
    assert!(
        matches!(
            &effects[..],
            [Effect::FileAction {
                id: 1,
                action: FileAction::Decline,
                ..
            }]
        ),
        "{effects:?}"
    );

    // Cancelling the active one asks first; only `y` cancels.
    let mut app = with_files();
    choose(&mut app, 2);
    assert!(app.on_key(key(KeyCode::Char('c'))).is_empty());
    assert!(text(&draw(&app, 120, 40)).contains("cancel #2 for good"));
    assert!(app.on_key(key(KeyCode::Char('n'))).is_empty());
    assert!(app.on_key(key(KeyCode::Char('c'))).is_empty());
    let effects = app.on_key(key(KeyCode::Char('y')));
    assert!(
        matches!(
            &effects[..],
            [Effect::FileAction {
                id: 2,
                action: FileAction::Cancel,
                ..
            }]
        ),
        "{effects:?}"
    );

    // Keys that do not fit the chosen transfer say why instead.
    let mut app = with_files();
    choose(&mut app, 3);
    for (k, why) in [
        (
            'a',
            "#3 is completed: only a file offered to you is accepted or declined",
        ),
        (
            'd',
            "#3 is completed: only a file offered to you is accepted or declined",
        ),
        ('c', "#3 is completed already"),
        ('r', "#3 is completed: only a paused file is resumed"),
    ] {
        assert!(app.on_key(key(KeyCode::Char(k))).is_empty(), "{k}");
        let buf = draw(&app, 120, 40);
        assert_eq!(colour_of(&buf, why), Color::Red);
    }

    // A paused one resumes.
    let mut app = self::app();
    let mut paused = transfer(5, "bob", true, "big.iso", TransferState::Paused);
    paused.reason = Some("not enough free space".into());
    paused.bytes_done = 10_000_000;
    app.on_done(Done::Transfers(vec![paused]));
    app.on_key(key(KeyCode::F(8)));
    let screen = text(&draw(&app, 120, 40));
    assert!(
        screen.contains("paused: not enough free space")
            && screen.contains("20% (9.5 of 47.7 MB) · paused"),
        "{screen}"
    );
    let effects = app.on_key(key(KeyCode::Char('r')));
    assert!(
        matches!(
            &effects[..],
            [Effect::FileAction {
                id: 5,
                action: FileAction::Resume,
                ..
            }]
        ),
        "{effects:?}"
    );
    // Esc closes; the answer then goes to the status log.
    app.on_key(key(KeyCode::Esc));
    assert!(app.dialog.is_none());
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Err(FileRefusal {
            text: "file transfer #5 is completed".into(),
            name_taken: false,
        })),
    });
    assert!(
        app.log
            .iter()
            .any(|l| l.0 == "error: file transfer #5 is completed"),
        "{:?}",
        app.log
    );
}

#[test]
fn a_name_taken_asks_for_another() {
    let mut app = with_files();
    let effects = app.on_key(key(KeyCode::Char('a')));
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Err(FileRefusal {
            text: "report.pdf exists already; choose another name or allow overwriting".into(),
            name_taken: true,
        })),
    });
    let buf = draw(&app, 120, 40);
    let screen = text(&buf);
    assert_eq!(colour_of(&buf, "report.pdf exists already"), Color::Red);
    assert!(screen.contains("Save as:"), "{screen}");
    assert!(screen.contains("> report.pdf"), "{screen}");
    // The offered name is there to edit.
    for _ in 0.."pdf".len() {
        app.on_key(key(KeyCode::Backspace));
    }
    type_text(&mut app, "2.pdf");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::FileAction { id: 1, action: FileAction::Accept { save_as: Some(n) }, .. }] if n == "report.2.pdf"),
        "{effects:?}"
    );
    // Taken too: the field stays, with the new refusal.
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Err(FileRefusal {
            text: "report.2.pdf exists already; choose another name or allow overwriting".into(),
            name_taken: true,
        })),
    });
    let screen = text(&draw(&app, 120, 40));
    assert!(
        screen.contains("report.2.pdf exists already") && screen.contains("> report.2.pdf"),
        "{screen}"
    );
    type_text(&mut app, "x");
    let effects = app.on_key(key(KeyCode::Enter));
    let mut accepted = transfers().remove(0);
    accepted.state = TransferState::Accepted;
    accepted.save_name = Some("report.2.pdfx".into());
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Ok(accepted)),
    });
    let screen = text(&draw(&app, 120, 40));
    assert!(!screen.contains("Save as:"), "{screen}");
    assert!(screen.contains("accepted"), "{screen}");
    // Esc closes the field alone, then the window.
    let mut app = with_files();
    let effects = app.on_key(key(KeyCode::Char('a')));
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Err(FileRefusal {
            text: "report.pdf exists already".into(),
            name_taken: true,
        })),
    });
    app.on_key(key(KeyCode::Esc));
    assert!(matches!(&app.dialog, Some(Dialog::Files(d)) if d.save_as.is_none()));
    app.on_key(key(KeyCode::Esc));
    assert!(app.dialog.is_none());
}

#[test]
fn progress_events_move_the_gauge() {
    let mut app = with_files();
    assert!(text(&draw(&app, 120, 40)).contains("40% (19.1 of 47.7 MB)"));
    app.on_event(&Event::FileProgress {
        id: 2,
        contact: "carol".into(),
        direction: TransferDirection::Outgoing,
        bytes: 40_000_000,
        size: 50_000_000,
        rate_bps: Some(4_000_000),
        eta_s: Some(125),
    });
    let screen = text(&draw(&app, 120, 40));
    assert!(
        screen.contains("80% (38.1 of 47.7 MB) · 3.8 MB/s · ETA 2 min 5 s"),
        "{screen}"
    );
    // The end of it comes as a state change.
    let mut done = transfers().remove(1);
    done.state = TransferState::Completed;
    done.bytes_done = done.size;
    app.on_event(&Event::FileState { transfer: done });
    let screen = text(&draw(&app, 120, 40));
    assert!(
        screen.contains("\"holiday.mp4\" 47.7 MB completed") && !screen.contains("80%"),
        "{screen}"
    );
}

#[test]
fn an_offer_marks_its_contact_and_shows_in_the_status_log() {
    let mut app = app();
    let screen = text(&draw(&app, 100, 30));
    assert!(!screen.contains("file?"), "{screen}");
    let offer = transfer(
        1,
        "bob",
        true,
        "report\u{202e}fdp.exe",
        TransferState::Offered,
    );
    app.on_event(&Event::FileOffered {
        transfer: offer.clone(),
    });
    let buf = draw(&app, 100, 30);
    let screen = text(&buf);
    assert!(screen.contains("● ✓ bob (2) file?"), "{screen}");
    assert!(screen.contains("1 file offer · F8"), "{screen}");
    assert!(screen.contains("bob offers a file: F8"), "{screen}");
    assert_eq!(colour_of(&buf, "file?"), Color::Yellow);
    // The bottom bar counts it once the notice is gone.
    app.notice = None;
    assert!(text(&draw(&app, 200, 30)).contains("F8 files (1)"));

    // The status log shows what the line interface prints for it.
    let ours = vec![crate::cli::files::offer_text(&offer, "bob")];
    app.on_done(Done::Log(ours));
    let screen = text(&draw(&app, 140, 30));
    assert!(screen.contains("blake3 af1349b9f5f9a1a6…"), "{screen}");

    // Answered: the mark goes.
    let mut declined = transfer(1, "bob", true, "report.pdf", TransferState::Declined);
    declined.reason = Some("declined by you".into());
    app.on_event(&Event::FileState { transfer: declined });
    let screen = text(&draw(&app, 100, 30));
    assert!(!screen.contains("file?"), "{screen}");
}

#[test]
fn sending_a_file() {
    // F9 with bob on screen: his name is there, the path is asked.
    let mut app = with_bob(app());
    app.on_key(key(KeyCode::F(9)));
    let screen = text(&draw(&app, 100, 30));
    assert!(
        screen.contains("Send a file") && screen.contains("> bob"),
        "{screen}"
    );
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(effects.is_empty());
    assert!(text(&draw(&app, 100, 30)).contains("a contact's name and the path of a file"));
    type_text(&mut app, "~/Pictures/cat photo.jpg");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::SendFile { contact, path, .. }]
            if contact == "bob" && path == "~/Pictures/cat photo.jpg"),
        "{effects:?}"
    );
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    let sent = transfer(9, "bob", false, "cat photo.jpg", TransferState::Offered);
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Ok(sent)),
    });
    let buf = draw(&app, 100, 30);
    assert_eq!(
        colour_of(&buf, "file #9 to bob: \"cat photo.jpg\" offered"),
        Color::Green
    );
    // It is in the list now, and no offer waits for us.
    assert_eq!(app.transfers.len(), 1);
    assert_eq!(app.offers_waiting(), 0);
    app.on_key(key(KeyCode::Enter));
    assert!(app.dialog.is_none());

    // From F8 with `s`: the chosen transfer's contact; back to the list after.
    let mut app = with_files();
    choose(&mut app, 2);
    app.on_key(key(KeyCode::Char('s')));
    assert!(text(&draw(&app, 100, 30)).contains("> carol"));
    type_text(&mut app, "/tmp/x");
    let effects = app.on_key(key(KeyCode::Enter));
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Ok(transfer(
            10,
            "carol",
            false,
            "x",
            TransferState::Offered,
        ))),
    });
    let screen = text(&draw(&app, 120, 40));
    assert!(screen.contains("▸ #10 -> to carol \"x\""), "{screen}");
    // A refusal stays in the form.
    app.on_key(key(KeyCode::Char('s')));
    type_text(&mut app, "/nowhere");
    let effects = app.on_key(key(KeyCode::Enter));
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Err(FileRefusal {
            text: "cannot send that file: /nowhere: not found".into(),
            name_taken: false,
        })),
    });
    let buf = draw(&app, 100, 30);
    assert_eq!(colour_of(&buf, "cannot send that file"), Color::Red);
    // Esc goes back to the list.
    app.on_key(key(KeyCode::Esc));
    assert!(matches!(app.dialog, Some(Dialog::Files(_))));

    // Typed alone, the commands open the windows.
    let mut app = self::app();
    type_text(&mut app, "/files");
    assert!(matches!(
        &app.on_key(key(KeyCode::Enter))[..],
        [Effect::LoadTransfers]
    ));
    assert!(matches!(app.dialog, Some(Dialog::Files(_))));
    app.on_key(key(KeyCode::Esc));
    type_text(&mut app, "/send-file");
    app.on_key(key(KeyCode::Enter));
    assert!(matches!(app.dialog, Some(Dialog::SendFile(_))));
}

#[test]
fn any_size_draws_the_files_windows() {
    let mut app = with_files();
    let mut paused = transfer(5, "bob", true, "big.iso", TransferState::Paused);
    paused.bytes_done = 1;
    app.on_event(&Event::FileState { transfer: paused });
    let effects = app.on_key(key(KeyCode::Char('a')));
    app.on_done(Done::Answer {
        ticket: ticket_of(&effects),
        answer: Answer::File(Err(FileRefusal {
            text: "exists".into(),
            name_taken: true,
        })),
    });
    for (w, h) in [
        (1, 1),
        (5, 2),
        (12, 4),
        (30, 8),
        (40, 10),
        (80, 24),
        (200, 60),
    ] {
        draw(&app, w, h);
    }
    // Many transfers: the chosen one stays in view at the end of the list.
    let many: Vec<TransferView> = (1..=40)
        .map(|i| {
            let mut t = transfer(
                i,
                "carol",
                false,
                &format!("f{i:02}"),
                TransferState::Active,
            );
            t.bytes_done = 10;
            t
        })
        .collect();
    app.on_done(Done::Transfers(many));
    app.on_key(key(KeyCode::Esc));
    app.on_key(key(KeyCode::Esc));
    app.on_key(key(KeyCode::F(8)));
    for _ in 0..45 {
        app.on_key(key(KeyCode::Down));
    }
    let screen = text(&draw(&app, 100, 24));
    assert!(screen.contains("▸ #1 -> to carol \"f01\""), "{screen}");
    assert!(!screen.contains("\"f40\""), "{screen}");
    for (w, h) in [(1, 1), (12, 4), (40, 10), (80, 24)] {
        draw(&app, w, h);
    }
    app.on_key(key(KeyCode::Char('s')));
    for (w, h) in [(1, 1), (12, 4), (40, 10), (80, 24)] {
        draw(&app, w, h);
    }
}

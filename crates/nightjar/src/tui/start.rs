//! The screens before the main one: which profile, its passphrase, Tor's bootstrap.

use crossterm::event::{KeyCode, KeyEvent};
use nightjar_tor::BootstrapStatus;
use zeroize::Zeroizing;

use super::input::{InputOutcome, LineInput};

/// Where the start is.
#[derive(Debug)]
pub enum Start {
    Pick(Pick),
    Passphrase(Passphrase),
    /// Deriving the key from the passphrase (Argon2id takes a moment).
    Unlocking {
        profile: String,
    },
    Bootstrap(Bootstrap),
}

/// Esc, or Ctrl-C (raw mode turns it into a key): leave.
pub fn quits(key: &KeyEvent) -> bool {
    key.code == KeyCode::Esc
        || (key.code == KeyCode::Char('c')
            && key
                .modifiers
                .contains(crossterm::event::KeyModifiers::CONTROL))
}

/// One line of the profile list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Profile(String),
    New,
    Ephemeral,
}

impl Choice {
    pub fn label(&self) -> String {
        match self {
            Self::Profile(name) => name.clone(),
            Self::New => "+ new profile…".into(),
            Self::Ephemeral => "ephemeral (a throwaway identity; nothing is saved)".into(),
        }
    }
}

/// What the person chose.
#[derive(Debug, PartialEq, Eq)]
pub enum Picked {
    Profile(String),
    Ephemeral,
}

/// The profile list.
#[derive(Debug)]
pub struct Pick {
    pub profiles: Vec<String>,
    pub selected: usize,
    /// Typing the name of a new profile.
    pub naming: Option<LineInput>,
    pub error: Option<String>,
}

/// What a key did on a start screen.
#[derive(Debug, PartialEq, Eq)]
pub enum StartKey<T> {
    Continue,
    Done(T),
    Quit,
}

impl Pick {
    pub fn new(profiles: Vec<String>) -> Self {
        Self {
            profiles,
            selected: 0,
            naming: None,
            error: None,
        }
    }

    pub fn choices(&self) -> Vec<Choice> {
        self.profiles
            .iter()
            .cloned()
            .map(Choice::Profile)
            .chain([Choice::New, Choice::Ephemeral])
            .collect()
    }

    pub fn key(&mut self, key: KeyEvent) -> StartKey<Picked> {
        if quits(&key) && (self.naming.is_none() || key.code != KeyCode::Esc) {
            return StartKey::Quit;
        }
        if let Some(naming) = &mut self.naming {
            match naming.handle(key) {
                InputOutcome::Submit(name) => {
                    let name = name.trim().to_owned();
                    if let Err(e) = crate::startup::check_profile_name(&name) {
                        self.error = Some(e.to_string());
                        naming.set_text(&name);
                        return StartKey::Continue;
                    }
                    if self.profiles.contains(&name) {
                        self.error = Some(format!("profile {name:?} exists already"));
                        naming.set_text(&name);
                        return StartKey::Continue;
                    }
                    return StartKey::Done(Picked::Profile(name));
                }
                InputOutcome::Cancel => {
                    self.naming = None;
                    self.error = None;
                }
                InputOutcome::Edited | InputOutcome::Ignored => {}
            }
            return StartKey::Continue;
        }
        let count = self.choices().len();
        match key.code {
            KeyCode::Char('q') => return StartKey::Quit,
            KeyCode::Down | KeyCode::Tab => self.selected = (self.selected + 1) % count,
            KeyCode::Up | KeyCode::BackTab => self.selected = (self.selected + count - 1) % count,
            KeyCode::Enter => match self.choices().into_iter().nth(self.selected) {
                Some(Choice::Profile(name)) => return StartKey::Done(Picked::Profile(name)),
                Some(Choice::Ephemeral) => return StartKey::Done(Picked::Ephemeral),
                Some(Choice::New) => {
                    self.error = None;
                    self.naming = Some(LineInput::new());
                }
                None => {}
            },
            _ => {}
        }
        StartKey::Continue
    }
}

/// Typing a passphrase (twice for a new profile).
#[derive(Debug)]
pub struct Passphrase {
    pub profile: String,
    pub creating: bool,
    /// The first of the two, when creating.
    pub first: Option<Zeroizing<String>>,
    pub input: LineInput,
    pub error: Option<String>,
}

impl Passphrase {
    pub fn new(profile: String, creating: bool) -> Self {
        Self {
            profile,
            creating,
            first: None,
            input: LineInput::masked(),
            error: None,
        }
    }

    pub fn key(&mut self, key: KeyEvent) -> StartKey<Zeroizing<String>> {
        if quits(&key) {
            return StartKey::Quit;
        }
        match self.input.handle(key) {
            InputOutcome::Submit(text) => {
                if text.is_empty() {
                    self.error = Some("an empty passphrase is not allowed".into());
                    return StartKey::Continue;
                }
                if !self.creating {
                    return StartKey::Done(text);
                }
                match self.first.take() {
                    None => {
                        self.first = Some(text);
                        self.error = None;
                        StartKey::Continue
                    }
                    Some(first) if *first == *text => StartKey::Done(text),
                    Some(_) => {
                        self.error = Some("the two passphrases differ; choose one again".into());
                        StartKey::Continue
                    }
                }
            }
            InputOutcome::Cancel => StartKey::Quit,
            InputOutcome::Edited | InputOutcome::Ignored => StartKey::Continue,
        }
    }

    /// Back to the first question, saying why.
    pub fn refused(&mut self, why: String) {
        self.first = None;
        self.input.clear();
        self.error = Some(why);
    }
}

/// Tor joining the network.
#[derive(Debug)]
pub struct Bootstrap {
    pub backend: &'static str,
    pub status: BootstrapStatus,
    pub seconds: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed<T>(keys: &mut dyn FnMut(KeyEvent) -> StartKey<T>, text: &str) {
        for c in text.chars() {
            let _ = keys(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn picking_a_profile_new_or_ephemeral() {
        let mut pick = Pick::new(vec!["work".into()]);
        assert_eq!(
            pick.key(key(KeyCode::Enter)),
            StartKey::Done(Picked::Profile("work".into()))
        );
        pick.key(key(KeyCode::Down));
        pick.key(key(KeyCode::Down));
        assert_eq!(
            pick.key(key(KeyCode::Enter)),
            StartKey::Done(Picked::Ephemeral)
        );
        // New: a bad name is refused and kept for correcting.
        pick.key(key(KeyCode::Up));
        assert_eq!(pick.key(key(KeyCode::Enter)), StartKey::Continue);
        typed(&mut |k| pick.key(k), "../x");
        assert_eq!(pick.key(key(KeyCode::Enter)), StartKey::Continue);
        assert!(
            pick.error
                .as_deref()
                .unwrap()
                .contains("invalid profile name")
        );
        typed(&mut |k| pick.key(k), "");
        for _ in 0..4 {
            pick.key(key(KeyCode::Backspace));
        }
        typed(&mut |k| pick.key(k), "work");
        assert_eq!(pick.key(key(KeyCode::Enter)), StartKey::Continue);
        assert!(pick.error.as_deref().unwrap().contains("exists"));
        for _ in 0..4 {
            pick.key(key(KeyCode::Backspace));
        }
        typed(&mut |k| pick.key(k), "home");
        assert_eq!(
            pick.key(key(KeyCode::Enter)),
            StartKey::Done(Picked::Profile("home".into()))
        );
        assert_eq!(pick.key(key(KeyCode::Esc)), StartKey::Continue);
        assert_eq!(pick.key(key(KeyCode::Esc)), StartKey::Quit);
    }

    #[test]
    fn a_new_passphrase_is_asked_twice() {
        let mut p = Passphrase::new("home".into(), true);
        assert_eq!(p.key(key(KeyCode::Enter)), StartKey::Continue);
        assert!(p.error.is_some());
        typed(&mut |k| p.key(k), "correct horse");
        assert_eq!(p.key(key(KeyCode::Enter)), StartKey::Continue);
        typed(&mut |k| p.key(k), "correct hose");
        assert_eq!(p.key(key(KeyCode::Enter)), StartKey::Continue);
        assert!(p.error.as_deref().unwrap().contains("differ"));
        typed(&mut |k| p.key(k), "battery staple");
        assert_eq!(p.key(key(KeyCode::Enter)), StartKey::Continue);
        typed(&mut |k| p.key(k), "battery staple");
        match p.key(key(KeyCode::Enter)) {
            StartKey::Done(secret) => assert_eq!(secret.as_str(), "battery staple"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_existing_profile_asks_once() {
        let mut p = Passphrase::new("work".into(), false);
        typed(&mut |k| p.key(k), "pw");
        assert!(matches!(p.key(key(KeyCode::Enter)), StartKey::Done(_)));
        assert_eq!(p.key(key(KeyCode::Esc)), StartKey::Quit);
    }
}

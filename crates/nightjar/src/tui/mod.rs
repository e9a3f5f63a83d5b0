//! `nightjar tui` (and `nightjar` alone): the terminal interface.
//!
//! It runs the node through the same public handle as the line interface and the
//! daemon, and takes every slash command of the line interface, run by the same
//! code. The screens and dialogs are plain state ([`app`], [`start`]) drawn by
//! [`view`]; [`driver`] carries out what they ask of the node.

pub mod app;
pub mod complete;
pub mod driver;
pub mod input;
pub mod qr;
pub mod start;
pub mod view;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use crossterm::event::{Event as TermEvent, EventStream, KeyEvent, KeyEventKind};
use futures::StreamExt as _;
use nightjar_store::Store;
use ratatui::DefaultTerminal;
use tokio::sync::{broadcast, watch};
use zeroize::Zeroizing;

use crate::startup::{self, Opened, ProfileArgs, Running};
use app::{App, Effect};
use start::{Bootstrap, Passphrase, Pick, Picked, Start, StartKey};

/// Options of `nightjar tui`.
#[derive(Debug, Args)]
#[command(after_help = KEYS_HELP)]
pub struct TuiArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Write the log to FILE (the terminal belongs to the interface). RUST_LOG
    /// chooses what is logged.
    #[arg(long, value_name = "FILE", env = "NIGHTJAR_LOG_FILE")]
    pub log_file: Option<PathBuf>,
}

const KEYS_HELP: &str = "\
Keys:
  Enter  send the line: text to the contact on screen, or any /command of
         `nightjar cli` (Tab completes commands and names)
  Ctrl-N, Ctrl-P  next / previous conversation     PgUp, PgDn  scroll
  F1 or ?  help      F2 add a contact      F3 invite code (make or join)
  F4 authenticate    F5 verify a fingerprint      F6 your address and QR code
  F7 contact requests      F8 file transfers      F9 send a file
  Ctrl-Q  quit (contacts who get your presence are told)";

/// Runs the terminal interface. `pick` shows the profile list first (no
/// `--profile` or `--ephemeral` was given).
pub async fn run(mut args: TuiArgs, pick: bool) -> Result<()> {
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(e) => {
            // Raw mode may be on already.
            ratatui::restore();
            return Err(e).context("this terminal cannot be used");
        }
    };
    let result = session(&mut terminal, &mut args.profile, pick).await;
    ratatui::restore();
    result
}

/// A key press (terminals may also report repeats and releases).
fn pressed(event: &TermEvent) -> Option<KeyEvent> {
    match event {
        TermEvent::Key(key) if key.kind != KeyEventKind::Release => Some(*key),
        _ => None,
    }
}

/// From the profile list to quitting.
async fn session(terminal: &mut DefaultTerminal, args: &mut ProfileArgs, pick: bool) -> Result<()> {
    let mut keys = EventStream::new();
    if pick && !choose_profile(terminal, &mut keys, args).await? {
        return Ok(());
    }
    let Some(opened) = unlock(terminal, &mut keys, args).await? else {
        return Ok(());
    };
    let Some(tor) = bootstrap(terminal, &mut keys, args, &opened).await? else {
        return Ok(());
    };
    let label = match &args.ephemeral {
        true => "ephemeral profile".to_owned(),
        false => format!("profile {}", args.profile),
    };
    let created = opened
        .created
        .as_ref()
        .map(|dir| format!("created profile {:?} in {}", args.profile, dir.display()));
    let running = startup::run_node(args, opened, tor).await?;
    let first: Vec<String> = created
        .into_iter()
        .chain(startup::memory_lock_warning())
        .collect();
    let result = main_screen(terminal, &mut keys, &running, label, first).await;
    draw_leaving(terminal, "leaving: telling contacts, stopping Tor…");
    let stopped = running.shutdown().await;
    result?;
    stopped
}

/// One line on a cleared screen while leaving. The terminal may be gone already;
/// leaving properly matters more than saying so.
fn draw_leaving(terminal: &mut DefaultTerminal, text: &str) {
    let _ = terminal.draw(|f| {
        let area = f.area();
        f.render_widget(ratatui::widgets::Clear, area);
        f.render_widget(ratatui::widgets::Paragraph::new(text), area);
    });
}

/// The next key press, or `None` when the terminal has no more input.
async fn next_key(keys: &mut EventStream) -> Option<Result<Option<KeyEvent>>> {
    let event = keys.next().await?;
    Some(
        event
            .map(|e| pressed(&e))
            .context("reading the terminal failed"),
    )
}

/// The profile list. False when the person quit.
async fn choose_profile(
    terminal: &mut DefaultTerminal,
    keys: &mut EventStream,
    args: &mut ProfileArgs,
) -> Result<bool> {
    let profiles = existing_profiles(args)?;
    let mut screen = Start::Pick(Pick::new(profiles));
    loop {
        terminal.draw(|f| view::draw_start(f, &screen))?;
        let Some(key) = next_key(keys).await.transpose()? else {
            return Ok(false);
        };
        let (Some(key), Start::Pick(pick)) = (key, &mut screen) else {
            continue;
        };
        match pick.key(key) {
            StartKey::Continue => {}
            StartKey::Quit => return Ok(false),
            StartKey::Done(Picked::Ephemeral) => {
                args.ephemeral = true;
                return Ok(true);
            }
            StartKey::Done(Picked::Profile(name)) => {
                args.profile = name;
                return Ok(true);
            }
        }
    }
}

/// The profiles in the data directory, by name.
fn existing_profiles(args: &ProfileArgs) -> Result<Vec<String>> {
    let dir = startup::profiles_dir(args.data_dir.as_deref())?;
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| Store::exists(&e.path()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| startup::check_profile_name(name).is_ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    Ok(names)
}

/// Opens the profile, asking for its passphrase on screen unless a file or the
/// environment gives it. `None` when the person quit.
async fn unlock(
    terminal: &mut DefaultTerminal,
    keys: &mut EventStream,
    args: &ProfileArgs,
) -> Result<Option<Opened>> {
    if args.ephemeral {
        return startup::open_profile(args, None).await.map(Some);
    }
    startup::check_profile_name(&args.profile)?;
    let dir = startup::profile_dir(args.data_dir.as_deref(), &args.profile)?;
    let given = startup::given_passphrase(args)?;
    let mut screen = Start::Passphrase(Passphrase::new(args.profile.clone(), !Store::exists(&dir)));
    loop {
        let passphrase: Zeroizing<String> = match &given {
            Some(p) => p.clone(),
            None => loop {
                terminal.draw(|f| view::draw_start(f, &screen))?;
                let Some(key) = next_key(keys).await.transpose()? else {
                    return Ok(None);
                };
                let (Some(key), Start::Passphrase(prompt)) = (key, &mut screen) else {
                    continue;
                };
                match prompt.key(key) {
                    StartKey::Continue => {}
                    StartKey::Quit => return Ok(None),
                    StartKey::Done(p) => break p,
                }
            },
        };
        let unlocking = Start::Unlocking {
            profile: args.profile.clone(),
        };
        terminal.draw(|f| view::draw_start(f, &unlocking))?;
        match startup::open_profile(args, Some(passphrase)).await {
            Ok(opened) => return Ok(Some(opened)),
            // A passphrase from a file or the environment is not asked again.
            Err(e) if given.is_some() => return Err(e),
            Err(e) => {
                if let Start::Passphrase(prompt) = &mut screen {
                    prompt.refused(format!("{e:#}"));
                }
            }
        }
    }
}

/// Starts Tor with a progress bar. `None` when the person quit.
async fn bootstrap(
    terminal: &mut DefaultTerminal,
    keys: &mut EventStream,
    args: &ProfileArgs,
    opened: &Opened,
) -> Result<Option<startup::Tor>> {
    let (progress, mut status) = watch::channel(startup::starting());
    let tor_args = args.tor.clone();
    let state = opened.tor_state();
    let mut launch =
        tokio::spawn(async move { startup::launch(&tor_args, state, &progress).await });
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let screen = Start::Bootstrap(Bootstrap {
            backend: args.tor.backend.describe(),
            status: status.borrow_and_update().clone(),
            seconds: started.elapsed().as_secs(),
        });
        terminal.draw(|f| view::draw_start(f, &screen))?;
        tokio::select! {
            done = &mut launch => {
                return done.context("starting Tor was interrupted")?.map(Some);
            }
            _ = status.changed() => {}
            _ = tick.tick() => {}
            key = next_key(keys) => {
                let quit = match key.transpose()? {
                    None => true,
                    Some(Some(key)) => start::quits(&key),
                    Some(None) => false,
                };
                if quit {
                    launch.abort();
                    // A Tor that started anyway is shut down properly.
                    if let Ok(Ok(tor)) = launch.await {
                        let _ = tor.shutdown().await;
                    }
                    return Ok(None);
                }
            }
        }
    }
}

/// The main screen until the person quits or the node stops.
async fn main_screen(
    terminal: &mut DefaultTerminal,
    keys: &mut EventStream,
    running: &Running,
    label: String,
    first: Vec<String>,
) -> Result<()> {
    let mut app = App::new(label);
    app.on_done(app::Done::Log(first));
    let mut events = running.node.subscribe();
    let (driver, mut done) = driver::Driver::start(running.node.clone());
    driver.execute(Effect::Refresh);
    driver.execute(Effect::LoadTransfers);
    loop {
        terminal.draw(|f| view::draw(f, &app))?;
        let effects = tokio::select! {
            key = next_key(keys) => match key.transpose()? {
                None => vec![Effect::Quit],
                Some(Some(key)) => app.on_key(key),
                // A resize or another event: drawing again is enough.
                Some(None) => Vec::new(),
            },
            event = events.recv() => match event {
                Ok(event) => app.on_event(&event),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    vec![Effect::Refresh, Effect::LoadTransfers]
                }
                Err(broadcast::error::RecvError::Closed) => {
                    anyhow::bail!("the node has stopped");
                }
            },
            Some(result) = done.recv() => app.on_done(result),
            () = crate::stop_signal() => vec![Effect::Quit],
        };
        for effect in effects {
            if matches!(effect, Effect::Quit) {
                if app.running > 0 {
                    draw_leaving(terminal, "leaving: sending what you typed…");
                }
                driver.finish().await;
                return Ok(());
            }
            driver.execute(effect);
        }
    }
}

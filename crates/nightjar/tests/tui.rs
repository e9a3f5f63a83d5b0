//! The terminal interface as a person meets it, driven inside tmux on the private
//! Tor network: `nightjar` alone shows the profile list; a new profile is named
//! and its passphrase typed (twice, never shown); Tor's bootstrap runs; a contact
//! request goes to a `nightjar cli` node; a message typed on screen reaches it, and
//! its reply appears on screen, with the receipt.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{HANG_GUARD, Person};
use nightjar_test_support::shared_network;

/// A tmux server of the test's own, with one window running `nightjar`.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(testnet: &Path, data: &Path, log: &Path) -> Self {
        let socket = format!("nightjar-tui-test-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "120", "-y", "40", "-s", "alice"])
            .args(["-e", &format!("NIGHTJAR_TESTNET={}", testnet.display())])
            .args(["-e", &format!("NIGHTJAR_DATA_DIR={}", data.display())])
            .args(["-e", "NIGHTJAR_TOR_BACKEND=ctor"])
            .args(["-e", &format!("NIGHTJAR_LOG_FILE={}", log.display())])
            .args(["-e", "RUST_LOG=info"])
            .args(["-e", "TERM=xterm-256color"])
            // The program alone, as a newcomer starts it; the pane stays open
            // after it ends so what it printed can be read.
            .arg(format!("{}; sleep 600", env!("CARGO_BIN_EXE_nightjar")))
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux did not start");
        Self { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "alice", "-l", text]);
    }

    /// Presses keys by tmux's names (Enter, Down, F6, C-q…).
    fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "alice"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "alice"])
    }

    /// Waits until the screen shows `needle`; returns the screen.
    async fn expect(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + HANG_GUARD;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("the screen never showed {needle:?}; it shows:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_typed_in_the_terminal_interface_arrives_and_the_reply_shows() {
    let net = shared_network().await;
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("tui.log");
    let mut bob = Person::start("bob", "ctor", net.dir(), &[]);
    bob.say("/address").await;
    let bob_address = bob
        .expect("address: ")
        .await
        .trim_start_matches("address: ")
        .to_owned();

    let tui = Tmux::start(net.dir(), data.path(), &log);
    // No profile yet: the list offers a new one first.
    tui.expect("Which profile?").await;
    tui.expect("+ new profile").await;
    tui.press(&["Enter"]);
    tui.expect("Name of the new profile").await;
    tui.type_text("alice");
    tui.press(&["Enter"]);
    tui.expect("choose a passphrase").await;
    let secret = "tui-secret-words";
    tui.type_text(secret);
    let screen = tui.expect("••••").await;
    assert!(!screen.contains(secret), "the passphrase showed:\n{screen}");
    tui.press(&["Enter"]);
    tui.expect("The same passphrase again").await;
    tui.type_text(secret);
    tui.press(&["Enter"]);
    tui.expect("Joining the Tor network").await;
    tui.expect("profile alice").await;
    tui.expect("· online").await;

    // A contact request, typed as in the line interface.
    tui.type_text(&format!("/req-send {bob_address} bob hello from the tui"));
    tui.press(&["Enter"]);
    let request = bob.expect("hello from the tui").await;
    let id = request
        .split_once('#')
        .and_then(|(_, rest)| rest.split_once(' '))
        .map(|(id, _)| id.to_owned())
        .expect("a request number");
    bob.say(&format!("/req-accept {id} alice")).await;
    tui.expect("? bob").await;

    // Choose bob (Tab completes his name) and talk.
    tui.type_text("/peer b");
    tui.press(&["Tab"]);
    tui.press(&["Enter"]);
    // (capture-pane drops the blanks after the prompt)
    tui.expect("bob>").await;
    tui.type_text("a message typed on screen");
    tui.press(&["Enter"]);
    bob.expect("<alice> a message typed on screen").await;
    tui.expect("a message typed on screen ✓✓ delivered").await;
    bob.say("/msg alice and a reply from the line interface")
        .await;
    let screen = tui
        .expect("<bob> and a reply from the line interface")
        .await;
    assert!(screen.contains("? bob"), "{screen}");

    // The address dialog draws the QR code; any key closes it.
    tui.press(&["F6"]);
    tui.expect("Your address").await;
    tui.expect("▀").await;
    tui.press(&["Escape"]);

    // Quitting tells bob and ends the program.
    tui.press(&["C-q"]);
    bob.expect("alice disconnected").await;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !log_text.contains(secret) && !log_text.contains("a message typed on screen"),
        "the log holds secrets:\n{log_text}"
    );
    bob.say("/quit").await;
    let status = tokio::time::timeout(HANG_GUARD, bob.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

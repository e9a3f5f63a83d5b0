//! What several test programs share: a person driving `nightjar cli` through pipes,
//! and daemons driven through their sockets.

// Each test program uses the part it needs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod daemon;
pub mod oneshot;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Generous: Tor start-up, publication and request retries on a young network.
pub const HANG_GUARD: Duration = Duration::from_secs(300);

pub struct Person {
    pub name: &'static str,
    pub child: Child,
    pub input: ChildStdin,
    pub output: Lines<BufReader<ChildStdout>>,
    pub seen: Vec<String>,
}

impl Person {
    pub fn start(
        name: &'static str,
        backend: &str,
        testnet: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        let mut args = vec!["--ephemeral"];
        args.extend_from_slice(extra);
        Self::start_with(name, backend, testnet, &args)
    }

    /// With a persistent profile called `name` under `data`.
    pub fn start_persistent(
        name: &'static str,
        backend: &str,
        testnet: &std::path::Path,
        data: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        let mut args = vec!["--profile", name, "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::start_with(name, backend, testnet, &args)
    }

    pub fn start_with(
        name: &'static str,
        backend: &str,
        testnet: &std::path::Path,
        args: &[&str],
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nightjar"))
            .args(["cli", "--tor", backend, "--testnet"])
            .arg(testnet)
            .args(args)
            .env_remove("NIGHTJAR_TESTNET")
            .env("NIGHTJAR_PASSPHRASE", "a long enough test passphrase")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self {
            name,
            input: child.stdin.take().unwrap(),
            output: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            seen: Vec::new(),
        }
    }

    pub async fn say(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads output until a line contains `needle`; returns that line.
    pub async fn expect(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(HANG_GUARD, async {
            while let Some(line) = self.output.next_line().await.unwrap() {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "{} never printed {needle:?}; it printed:\n{}",
                self.name,
                self.seen.join("\n")
            ),
        }
    }
}

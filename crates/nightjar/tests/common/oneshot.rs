//! A `nightjar chat` or `nightjar room` process driven through its pipes.

use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

use super::HANG_GUARD;

/// One `nightjar chat` or `nightjar room` process: its stdin, its stdout lines,
/// and its stderr lines (also echoed, tagged with `name`, for whoever reads the
/// test's output).
pub struct OneShot {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: mpsc::UnboundedReceiver<String>,
}

impl OneShot {
    /// Starts `nightjar COMMAND ARGS` on `backend`, attached to the network at
    /// `testnet`.
    pub fn start(
        command: &str,
        name: &'static str,
        args: &[&str],
        backend: &str,
        testnet: &std::path::Path,
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nightjar"))
            .arg(command)
            .args(args)
            .args(["--tor", backend, "--testnet"])
            .arg(testnet)
            .env_remove("NIGHTJAR_TESTNET")
            .env_remove("NIGHTJAR_RENDEZVOUS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, stderr) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{name}] {line}");
                let _ = tx.send(line);
            }
        });
        Self {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            stderr,
        }
    }

    pub async fn next_line(&mut self) -> String {
        tokio::time::timeout(HANG_GUARD, self.stdout.next_line())
            .await
            .expect("no output in time")
            .unwrap()
            .expect("output ended")
    }

    pub async fn type_line(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Waits for a line on stderr.
    pub async fn note(&mut self, wanted: &str) {
        self.note_where(wanted, |line| line == wanted).await;
    }

    /// Waits for a line on stderr that starts with `prefix`; returns it.
    pub async fn note_starting(&mut self, prefix: &str) -> String {
        self.note_where(prefix, |line| line.starts_with(prefix))
            .await
    }

    async fn note_where(&mut self, wanted: &str, fits: impl Fn(&str) -> bool) -> String {
        tokio::time::timeout(HANG_GUARD, async {
            while let Some(line) = self.stderr.recv().await {
                if fits(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .expect("no such note in time")
        .unwrap_or_else(|| panic!("stderr ended before {wanted:?}"))
    }

    /// Waits for the exit; returns the status and the error sentence, the one
    /// line on stderr that starts with `nightjar: `.
    pub async fn exit(mut self) -> (ExitStatus, Option<String>) {
        let status = tokio::time::timeout(HANG_GUARD, self.child.wait())
            .await
            .expect("did not exit in time")
            .unwrap();
        let mut errors = Vec::new();
        while let Some(line) = self.stderr.recv().await {
            if line.starts_with("nightjar: ") {
                errors.push(line);
            }
        }
        assert!(errors.len() <= 1, "more than one error: {errors:?}");
        (status, errors.pop())
    }
}

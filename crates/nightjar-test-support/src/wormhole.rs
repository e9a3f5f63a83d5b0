//! The reference magic-wormhole mailbox server and command-line client, for tests
//! of nightjar's own wormhole client.
//!
//! Both come from the Python virtualenv `scripts/setup.sh` creates, found in
//! `$NIGHTJAR_PYTHON_BIN` (default `$HOME/.cache/nightjar/python/bin`), else on
//! `PATH`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Names the directory holding `twist` and `wormhole`.
pub const PYTHON_BIN_VAR: &str = "NIGHTJAR_PYTHON_BIN";

/// How long the server may take to start listening (Twisted imports take a
/// second or two on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `twist wormhole-mailbox` on a loopback port; killed when dropped.
#[derive(Debug)]
pub struct MailboxServer {
    child: Child,
    port: u16,
    // Holds the server's database; removed after the server is gone.
    _dir: tempfile::TempDir,
}

impl MailboxServer {
    /// Starts a server on a free loopback port and waits until it accepts
    /// connections. Blocks for up to a minute.
    pub fn start() -> Result<Self, String> {
        Self::start_with(&[])
    }

    /// [`MailboxServer::start`] with extra `twist wormhole-mailbox` options, e.g.
    /// `--signal-error=MESSAGE`.
    pub fn start_with(options: &[&str]) -> Result<Self, String> {
        let twist = python_program("twist")?;
        // Another process may take the port between our probe and the server's
        // bind; a few attempts make that harmless.
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
            let port = free_port()?;
            let child = Command::new(&twist)
                .arg("wormhole-mailbox")
                .arg(format!("--port=tcp:{port}:interface=127.0.0.1"))
                .arg(format!(
                    "--channel-db={}",
                    dir.path().join("relay.sqlite").display()
                ))
                .args(options)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", twist.display()))?;
            let mut server = Self {
                child,
                port,
                _dir: dir,
            };
            // A failed server is killed when `server` drops.
            match server.wait_until_listening() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// The port the server listens on, at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's websocket URL, as clients are given it.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1", self.port)
    }

    /// The socket address to open a TCP stream to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the mailbox server exited at start ({status})"));
            }
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the mailbox server did not start listening within a minute".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for MailboxServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference command-line client, `wormhole`.
pub fn wormhole_program() -> Result<PathBuf, String> {
    python_program("wormhole")
}

/// Finds `name` in `$NIGHTJAR_PYTHON_BIN` (or its default), else on `PATH`.
pub fn python_program(name: &str) -> Result<PathBuf, String> {
    let dir = match std::env::var_os(PYTHON_BIN_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".cache/nightjar/python/bin"),
    };
    let candidate = dir.join(name);
    if candidate.is_file() {
        return Ok(candidate);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        format!(
            "`{name}` (magic-wormhole's reference implementation) was found neither in {} nor on PATH; \
             run scripts/setup.sh to install it, or point {PYTHON_BIN_VAR} at its directory",
            dir.display()
        )
    })
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let err = python_program("nightjar-no-such-program").unwrap_err();
        assert!(err.contains("scripts/setup.sh"), "{err}");
        assert!(err.contains(PYTHON_BIN_VAR), "{err}");
    }

    #[test]
    fn the_server_starts_and_stops() {
        let server = MailboxServer::start().unwrap();
        let addr = server.addr();
        assert!(server.url().starts_with("ws://127.0.0.1:"));
        TcpStream::connect(addr).unwrap();
        drop(server);
        assert!(TcpStream::connect(addr).is_err());
    }
}

//! A recording wrapper around a transport, for measuring what an observer of
//! our side of each stream sees: the size and time of every write (one *unit*
//! per flush) and of every read, and the isolation key of every connect.
//!
//! Used by tests, benchmarks and the demo's hidden `--wire-log`; it records
//! lengths, times, ports and isolation keys (which carry row ids only), never
//! payload bytes except the first few of writes that read as a text request
//! line (`POST /v2/…`), which tell mailbox requests apart.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{
    BootstrapStatus, BoxStream, ClientAuthPublic, ConnectOptions, OnionAddress, OnionService,
    ServiceConfig, ServiceStatus, TorError, Transport,
};

/// How many leading bytes of a write are kept when they read as text.
const HEAD_LEN: usize = 16;

/// One write (up to a flush) or one read on a recorded stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// Which stream, numbered from 0 in the order they were opened.
    pub stream: u64,
    /// The onion-service port of the stream.
    pub port: u16,
    /// Written by us (`true`) or read (`false`).
    pub out: bool,
    /// Bytes.
    pub len: usize,
    /// When, since the log started.
    pub at: Duration,
    /// The first bytes of a write, if they are printable ASCII (a request line).
    pub head: Option<String>,
}

/// One stream we opened, and the isolation key we asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opened {
    /// The stream's number in [`Unit::stream`].
    pub stream: u64,
    /// The port connected to.
    pub port: u16,
    /// The isolation key of the connect.
    pub isolation: String,
}

#[derive(Default)]
struct Records {
    units: Vec<Unit>,
    opened: Vec<Opened>,
}

/// What a tapped transport recorded; cheap to clone, all clones share it.
#[derive(Clone)]
pub struct TapLog {
    start: Instant,
    next_stream: Arc<AtomicU64>,
    records: Arc<Mutex<Records>>,
}

impl Default for TapLog {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for TapLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapLog").finish_non_exhaustive()
    }
}

impl TapLog {
    /// An empty log whose clock starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            next_stream: Arc::new(AtomicU64::new(0)),
            records: Arc::new(Mutex::new(Records::default())),
        }
    }

    /// Every unit so far, in the order they happened.
    pub fn units(&self) -> Vec<Unit> {
        self.lock().units.clone()
    }

    /// Every stream we opened so far.
    pub fn opened(&self) -> Vec<Opened> {
        self.lock().opened.clone()
    }

    /// Wraps a stream on `port` so its traffic is recorded here.
    pub fn wrap<S>(&self, inner: S, port: u16) -> TapStream<S> {
        TapStream {
            inner,
            log: self.clone(),
            stream: self.next_stream.fetch_add(1, Ordering::Relaxed),
            port,
            pending: 0,
            head: None,
        }
    }

    /// Writes the opened streams and the units as JSON lines, each with
    /// `"side": side` (`{"side":…,"opened":{…}}`, `{"side":…,"unit":{…}}`).
    pub fn write_jsonl(&self, side: &str, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let records = self.lock();
        for opened in &records.opened {
            let line = serde_json::json!({ "side": side, "opened": opened });
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        for unit in &records.units {
            let line = serde_json::json!({ "side": side, "unit": unit });
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn record(&self, unit: Unit) {
        self.lock().units.push(unit);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stream whose writes and reads are recorded in a [`TapLog`].
pub struct TapStream<S> {
    inner: S,
    log: TapLog,
    stream: u64,
    port: u16,
    /// Bytes written since the last flush.
    pending: usize,
    head: Option<String>,
}

impl<S> std::fmt::Debug for TapStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapStream")
            .field("stream", &self.stream)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl<S> TapStream<S> {
    fn unit(&self, out: bool, len: usize, head: Option<String>) -> Unit {
        Unit {
            stream: self.stream,
            port: self.port,
            out,
            len,
            at: self.log.start.elapsed(),
            head,
        }
    }
}

/// The start of `bytes` if it reads as text.
fn printable_head(bytes: &[u8]) -> Option<String> {
    let head = bytes.get(..HEAD_LEN.min(bytes.len()))?;
    (!head.is_empty() && head.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
        .then(|| String::from_utf8_lossy(head).into_owned())
}

impl<S: AsyncRead + Unpin> AsyncRead for TapStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled().len() - before;
        if matches!(read, Poll::Ready(Ok(()))) && got > 0 {
            let unit = self.unit(false, got, None);
            self.log.record(unit);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TapStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            if self.pending == 0 {
                self.head = printable_head(buf.get(..n).unwrap_or_default());
            }
            self.pending += n;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) && self.pending > 0 {
            let head = self.head.take();
            let unit = self.unit(true, self.pending, head);
            self.log.record(unit);
            self.pending = 0;
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A transport whose streams, both the ones it opens and the ones its services
/// accept, are recorded.
pub struct TapTransport {
    inner: Arc<dyn Transport>,
    log: TapLog,
}

impl std::fmt::Debug for TapTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapTransport").finish_non_exhaustive()
    }
}

impl TapTransport {
    /// Wraps `inner`; returns the recording transport and its log.
    pub fn wrap(inner: Arc<dyn Transport>) -> (Arc<dyn Transport>, TapLog) {
        let log = TapLog::new();
        let tapped = Arc::new(Self {
            inner,
            log: log.clone(),
        });
        (tapped, log)
    }
}

#[async_trait]
impl Transport for TapTransport {
    fn bootstrap_status(&self) -> watch::Receiver<BootstrapStatus> {
        self.inner.bootstrap_status()
    }

    async fn launch_service(
        &self,
        config: ServiceConfig,
    ) -> Result<Box<dyn OnionService>, TorError> {
        let port = config.virtual_port;
        let inner = self.inner.launch_service(config).await?;
        Ok(Box::new(TapService {
            inner,
            log: self.log.clone(),
            port,
        }))
    }

    async fn connect(
        &self,
        target: &OnionAddress,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError> {
        let stream = self.inner.connect(target, port, options).await?;
        Ok(Box::new(self.opened(stream, port, options)))
    }

    async fn connect_host(
        &self,
        host: &str,
        port: u16,
        options: &ConnectOptions,
    ) -> Result<BoxStream, TorError> {
        let stream = self.inner.connect_host(host, port, options).await?;
        Ok(Box::new(self.opened(stream, port, options)))
    }

    async fn refresh_circuits(&self) -> Result<(), TorError> {
        self.inner.refresh_circuits().await
    }

    async fn shutdown(&self) -> Result<(), TorError> {
        self.inner.shutdown().await
    }
}

impl TapTransport {
    fn opened(
        &self,
        stream: BoxStream,
        port: u16,
        options: &ConnectOptions,
    ) -> TapStream<BoxStream> {
        let tapped = self.log.wrap(stream, port);
        self.log.lock().opened.push(Opened {
            stream: tapped.stream,
            port,
            isolation: options.isolation.0.clone(),
        });
        tapped
    }
}

struct TapService {
    inner: Box<dyn OnionService>,
    log: TapLog,
    port: u16,
}

#[async_trait]
impl OnionService for TapService {
    fn address(&self) -> OnionAddress {
        self.inner.address()
    }

    fn status(&self) -> watch::Receiver<ServiceStatus> {
        self.inner.status()
    }

    async fn accept(&self) -> Result<BoxStream, TorError> {
        let stream = self.inner.accept().await?;
        Ok(Box::new(self.log.wrap(stream, self.port)))
    }

    async fn set_authorized_clients(&self, clients: Vec<ClientAuthPublic>) -> Result<(), TorError> {
        self.inner.set_authorized_clients(clients).await
    }

    async fn shutdown(&self) -> Result<(), TorError> {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn units_are_cut_at_flushes_and_reads_are_counted() {
        let log = TapLog::new();
        let (a, mut b) = tokio::io::duplex(4096);
        let mut tapped = log.wrap(a, 7300);
        tapped.write_all(&[1u8; 300]).await.unwrap();
        tapped.write_all(&[2u8; 198]).await.unwrap();
        tapped.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        tapped
            .write_all(b"POST /v2/deposit HTTP/1.1")
            .await
            .unwrap();
        tapped.flush().await.unwrap();
        // A flush with nothing written is not a unit.
        tapped.flush().await.unwrap();
        b.write_all(&[3u8; 10]).await.unwrap();
        let mut got = [0u8; 10];
        tapped.read_exact(&mut got).await.unwrap();

        let units = log.units();
        let lens: Vec<(bool, usize)> = units.iter().map(|u| (u.out, u.len)).collect();
        assert_eq!(lens, vec![(true, 498), (true, 25), (false, 10)]);
        assert_eq!(units[0].head, None);
        assert_eq!(units[1].head.as_deref(), Some("POST /v2/deposit"));
        assert_eq!(units[1].at - units[0].at, Duration::from_millis(250));
        assert!(units.iter().all(|u| u.stream == 0 && u.port == 7300));
        let mut jsonl = Vec::new();
        log.write_jsonl("alice", &mut jsonl).unwrap();
        assert_eq!(jsonl.iter().filter(|b| **b == b'\n').count(), 3);
    }
}

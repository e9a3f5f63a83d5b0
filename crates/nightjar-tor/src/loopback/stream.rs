//! Loopback streams, and the per-transport registry that lets a shutdown close them.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::{BoxStream, TorError};

/// How many bytes each direction of a stream buffers before a writer waits.
const BUFFER: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One end of a stream, shared between the handle given out and the registry of
/// the transport that owns it, so the transport can close it while the handle is
/// idle somewhere in the node.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// `None` once the owning transport shut down.
    stream: Option<DuplexStream>,
    /// Tasks waiting on this end, woken when it is closed under them: the
    /// duplex pipe wakes the *other* end when one end is dropped, not this one.
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl Slot {
    fn new(stream: DuplexStream) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SlotState {
                stream: Some(stream),
                ..SlotState::default()
            }),
        })
    }

    /// Drops this end, so the peer reads EOF and fails to write, and wakes
    /// whoever waits on this end so they see it closed too.
    fn close(&self) {
        let (stream, read, write) = {
            let mut state = lock(&self.state);
            (
                state.stream.take(),
                state.read_waker.take(),
                state.write_waker.take(),
            )
        };
        drop(stream);
        for waker in [read, write].into_iter().flatten() {
            waker.wake();
        }
    }
}

fn remember(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the Tor connection was shut down",
    )
}

/// One end of a loopback stream.
///
/// After the owning transport shut down, reads return EOF and writes fail with
/// `BrokenPipe`, as they would on a stream whose tor process died.
struct LoopbackStream {
    slot: Arc<Slot>,
}

impl AsyncRead for LoopbackStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = lock(&self.slot.state);
        let SlotState {
            stream, read_waker, ..
        } = &mut *state;
        let Some(stream) = stream.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let poll = Pin::new(stream).poll_read(cx, buf);
        if poll.is_pending() {
            remember(read_waker, cx);
        }
        poll
    }
}

impl LoopbackStream {
    /// Polls the writing half, or fails if it was closed.
    fn poll_writing<T>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut DuplexStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut state = lock(&self.slot.state);
        let SlotState {
            stream,
            write_waker,
            ..
        } = &mut *state;
        let Some(stream) = stream.as_mut() else {
            return Poll::Ready(Err(closed()));
        };
        let poll = op(Pin::new(stream), cx);
        if poll.is_pending() {
            remember(write_waker, cx);
        }
        poll
    }
}

impl AsyncWrite for LoopbackStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_writing(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_writing(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if lock(&self.slot.state).stream.is_none() {
            // Already as shut as it gets.
            return Poll::Ready(Ok(()));
        }
        self.poll_writing(cx, |s, cx| s.poll_shutdown(cx))
    }
}

/// The stream ends a transport opened or accepted, so its shutdown can close them.
#[derive(Default)]
pub(super) struct Registry {
    inner: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    /// Weak, so a stream the node dropped is freed at once.
    slots: Vec<Weak<Slot>>,
    /// Forget dropped streams when `slots` grows past this.
    prune_at: usize,
    closed: bool,
}

impl Registry {
    /// Wraps `stream` as an end owned by this registry's transport, or refuses
    /// once the transport shut down.
    pub(super) fn adopt(&self, stream: DuplexStream) -> Result<BoxStream, TorError> {
        let slot = Slot::new(stream);
        {
            let mut state = lock(&self.inner);
            if state.closed {
                return Err(TorError::Shutdown);
            }
            if state.slots.len() >= state.prune_at {
                state.slots.retain(|s| s.strong_count() > 0);
                state.prune_at = (state.slots.len() * 2).max(64);
            }
            state.slots.push(Arc::downgrade(&slot));
        }
        Ok(Box::new(LoopbackStream { slot }))
    }

    /// Closes every stream end this registry holds, and every one it is given
    /// from now on.
    pub(super) fn close(&self) {
        let slots = {
            let mut state = lock(&self.inner);
            state.closed = true;
            std::mem::take(&mut state.slots)
        };
        for slot in slots.iter().filter_map(Weak::upgrade) {
            slot.close();
        }
    }
}

/// The two ends of a new stream, to be adopted by the registries of the
/// transports that own them.
pub(super) fn pair() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(BUFFER)
}

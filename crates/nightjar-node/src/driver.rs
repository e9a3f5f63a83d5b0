//! The task that runs one established link: it reads and writes at once, and
//! decides at the last moment which frame goes next.
//!
//! Two classes of frames share the link. *Control* frames (texts, receipts,
//! presence, authentication, file offers and acks) go out in the order the engine
//! sent them, and always before the next *bulk* frame. Bulk frames are file
//! chunks, pulled from the sources attached to the link, which take turns one
//! frame each. A frame is sealed only when the previous one is fully written, so
//! the ratchet's order is the wire order, and a chat message waits for at most
//! the rest of the one chunk frame being written.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use nightjar_proto::cell::FrameReader;
use nightjar_proto::files::FileId;
use nightjar_proto::message::Message;
use nightjar_proto::session::Session;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::link::{LinkError, LinkParts, OsRng};

/// How much is read from the stream at once.
const READ_BUFFER: usize = 64 * 1024;

/// What the engine wants to hear about once a frame is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Written {
    /// A text, and whether it was still queued.
    Text { id: [u8; 16], was_queued: bool },
    /// A file decline or cancel the peer had not been told about.
    Transfer(i64),
}

/// What the engine asks of a link task.
pub(crate) enum LinkCommand {
    /// Send a message (control class), and report it written if asked.
    Send {
        message: Message,
        written: Option<Written>,
    },
    /// Attach a source of file chunks (bulk class). Each is sealed padded to
    /// `cells` cells, so every chunk frame of a file has the same size. The
    /// source ends when its sender is dropped.
    Bulk {
        file: FileId,
        cells: usize,
        chunks: mpsc::Receiver<Message>,
    },
}

/// What the link task tells its owner.
pub(crate) enum LinkEvent {
    /// A message arrived.
    Received(Message),
    /// A frame the engine asked about was fully written to the stream.
    Written(Written),
}

struct BulkSource {
    file: FileId,
    cells: usize,
    chunks: mpsc::Receiver<Message>,
}

/// A sealed frame on its way out.
struct Outgoing {
    frame: Vec<u8>,
    done: usize,
    written: Option<Written>,
}

/// Runs the link until either side closes it. Ends with `Ok(())` when the peer
/// closed its side, or when `commands` closed and everything sent before was
/// written (then our side is closed too).
pub(crate) async fn drive<S, F, Fut>(
    parts: LinkParts<S>,
    mut commands: mpsc::UnboundedReceiver<LinkCommand>,
    mut deliver: F,
) -> Result<(), LinkError>
where
    S: AsyncRead + AsyncWrite,
    F: FnMut(LinkEvent) -> Fut,
    Fut: Future<Output = bool>,
{
    let LinkParts {
        stream,
        mut session,
        reader: mut frames,
        mut rng,
    } = parts;
    let (mut read_half, mut write_half) = tokio::io::split(stream);
    let mut control: VecDeque<(Message, Option<Written>)> = VecDeque::new();
    let mut bulk: Vec<BulkSource> = Vec::new();
    let mut turn = 0usize;
    let mut out: Option<Outgoing> = None;
    let mut closing = false;
    let mut buf = vec![0u8; READ_BUFFER];
    // The handshake may have read frames that came right after it.
    while let Some(message) = next_message(&mut frames, &mut session, &mut rng)? {
        if !deliver(LinkEvent::Received(message)).await {
            return Ok(());
        }
    }
    loop {
        if out.is_none()
            && let Some((message, written)) = control.pop_front()
        {
            out = Some(seal(&mut session, &mut rng, &message, None, written)?);
        }
        if closing && out.is_none() {
            write_half.shutdown().await?;
            return Ok(());
        }
        let want_bulk = out.is_none() && !closing && !bulk.is_empty();
        // No branch is preferred: which frame goes next is decided above, when
        // sealing, not by which future is ready first.
        tokio::select! {
            command = commands.recv(), if !closing => match command {
                Some(LinkCommand::Send { message, written }) => control.push_back((message, written)),
                Some(LinkCommand::Bulk { file, cells, chunks }) => {
                    bulk.retain(|s| s.file != file);
                    bulk.push(BulkSource { file, cells, chunks });
                }
                None => closing = true,
            },
            done = write_some(&mut write_half, &mut out) => {
                if done? && let Some(sent) = out.take()
                    && let Some(written) = sent.written
                    && !deliver(LinkEvent::Written(written)).await
                {
                    return Ok(());
                }
            }
            read = read_half.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    if frames.buffered() > 0 {
                        return Err(LinkError::Protocol("stream closed in the middle of a frame"));
                    }
                    return Ok(());
                }
                frames.push(buf.get(..n).unwrap_or_default());
                while let Some(message) = next_message(&mut frames, &mut session, &mut rng)? {
                    if !deliver(LinkEvent::Received(message)).await {
                        return Ok(());
                    }
                }
            }
            (cells, chunk) = NextBulk { sources: &mut bulk, turn: &mut turn }, if want_bulk => {
                out = Some(seal(&mut session, &mut rng, &chunk, Some(cells), None)?);
            }
        }
    }
}

fn seal(
    session: &mut Session,
    rng: &mut OsRng,
    message: &Message,
    cells: Option<usize>,
    written: Option<Written>,
) -> Result<Outgoing, LinkError> {
    let payload = Zeroizing::new(message.encode()?);
    let frame = match cells {
        Some(cells) => session.seal_payload_padded(&payload, cells, rng),
        None => session.seal_payload(&payload, rng),
    }
    .map_err(|_| LinkError::Protocol("frame too large to seal"))?;
    Ok(Outgoing {
        frame,
        done: 0,
        written,
    })
}

/// Writes some of the frame on its way out; `true` once all of it is written
/// and flushed. Cancel-safe: what was written is counted before it returns, and
/// a flush cut short is simply started again. Never ready without a frame.
async fn write_some<W: AsyncWrite>(
    writer: &mut WriteHalf<W>,
    out: &mut Option<Outgoing>,
) -> Result<bool, LinkError> {
    let Some(sending) = out.as_mut() else {
        return std::future::pending().await;
    };
    if let Some(rest) = sending.frame.get(sending.done..)
        && !rest.is_empty()
    {
        let n = writer.write(rest).await?;
        if n == 0 {
            return Err(LinkError::Io(std::io::ErrorKind::WriteZero.into()));
        }
        sending.done += n;
        return Ok(false);
    }
    writer.flush().await?;
    Ok(true)
}

/// The next readable message in what has arrived, skipping replays and
/// messages we cannot read.
fn next_message(
    frames: &mut FrameReader,
    session: &mut Session,
    rng: &mut OsRng,
) -> Result<Option<Message>, LinkError> {
    loop {
        let next = {
            let session = &*session;
            frames.next_frame(|header| session.body_len(header))
        };
        let Some(frame) = next.map_err(|_| LinkError::Corrupt)? else {
            return Ok(None);
        };
        let payload = match session.open_payload(&frame, rng) {
            Ok(payload) => payload,
            Err(e) if e.is_replay() => {
                tracing::debug!("dropped a replayed frame");
                continue;
            }
            Err(_) => return Err(LinkError::Corrupt),
        };
        match Message::decode(&payload) {
            Ok(message) => return Ok(Some(message)),
            Err(e) => tracing::debug!("ignoring a message we cannot read: {e}"),
        }
    }
}

/// The next chunk from the bulk sources, taking them in turn; sources whose
/// sender is gone are dropped.
struct NextBulk<'a> {
    sources: &'a mut Vec<BulkSource>,
    turn: &'a mut usize,
}

impl Future for NextBulk<'_> {
    type Output = (usize, Message);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let count = this.sources.len();
        let mut ended = Vec::new();
        let mut found = None;
        for k in 0..count {
            let i = (*this.turn + k) % count;
            let Some(source) = this.sources.get_mut(i) else {
                continue;
            };
            match source.chunks.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => {
                    *this.turn = i + 1;
                    found = Some((source.cells, chunk));
                    break;
                }
                Poll::Ready(None) => ended.push(source.file),
                Poll::Pending => {}
            }
        }
        this.sources.retain(|s| !ended.contains(&s.file));
        match found {
            Some(next) => Poll::Ready(next),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use nightjar_proto::identity::IdentityKeyPair;
    use nightjar_proto::message::MessageId;

    use super::*;
    use crate::link::{Link, os_rng};

    fn chunk(index: u32) -> Message {
        Message::FileChunk {
            id: FileId([7; 16]),
            attempt: 1,
            index,
            data: vec![index as u8; 60_000],
        }
    }

    fn text(n: u8) -> Message {
        Message::Text {
            id: MessageId([n; 16]),
            sent_at_ms: 1,
            body: format!("text {n}"),
        }
    }

    /// Two drivers over an in-memory stream; returns the command senders and
    /// what each side received, in order.
    async fn pair() -> (
        [mpsc::UnboundedSender<LinkCommand>; 2],
        [mpsc::UnboundedReceiver<Message>; 2],
    ) {
        let alice = IdentityKeyPair::generate(&mut os_rng());
        let bob = IdentityKeyPair::generate(&mut os_rng());
        let bob_key = *bob.public().signing_key();
        // A small pipe, so writers block and readers must keep up.
        let (a, b) = tokio::io::duplex(8 * 1024);
        let answer = tokio::spawn(async move { Link::answer(b, &bob, b"test").await });
        let alice_link = Link::dial(a, &alice, &bob_key, b"test").await.unwrap();
        let bob_link = answer.await.unwrap().unwrap();
        let mut commands = Vec::new();
        let mut received = Vec::new();
        for link in [alice_link, bob_link] {
            let (tx, rx) = mpsc::unbounded_channel();
            let (got_tx, got_rx) = mpsc::unbounded_channel();
            tokio::spawn(drive(link.into_parts(), rx, move |event| {
                let got_tx = got_tx.clone();
                async move {
                    if let LinkEvent::Received(message) = event {
                        let _ = got_tx.send(message);
                    }
                    true
                }
            }));
            commands.push(tx);
            received.push(got_rx);
        }
        let [a_cmd, b_cmd]: [_; 2] = commands.try_into().ok().unwrap();
        let [a_got, b_got]: [_; 2] = received.try_into().ok().unwrap();
        ([a_cmd, b_cmd], [a_got, b_got])
    }

    #[tokio::test]
    async fn a_text_overtakes_queued_chunks() {
        let ([alice, _bob], [_, mut at_bob]) = pair().await;
        let (chunks_tx, chunks_rx) = mpsc::channel(100);
        for index in 0..100 {
            chunks_tx.try_send(chunk(index)).unwrap();
        }
        drop(chunks_tx);
        alice
            .send(LinkCommand::Bulk {
                file: FileId([7; 16]),
                cells: 121,
                chunks: chunks_rx,
            })
            .unwrap();
        alice
            .send(LinkCommand::Send {
                message: text(1),
                written: None,
            })
            .unwrap();
        let mut order = Vec::new();
        while order.len() < 101 {
            order.push(at_bob.recv().await.unwrap());
        }
        let position = order
            .iter()
            .position(|m| matches!(m, Message::Text { .. }))
            .unwrap();
        // At most the chunk frames already taken before the text was queued.
        assert!(position <= 2, "the text came after {position} chunks");
        let indices: Vec<u32> = order
            .iter()
            .filter_map(|m| match m {
                Message::FileChunk { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(indices, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn both_sides_send_bulk_at_once_without_stalling() {
        let ([alice, bob], [mut at_alice, mut at_bob]) = pair().await;
        for side in [&alice, &bob] {
            let (chunks_tx, chunks_rx) = mpsc::channel(2);
            side.send(LinkCommand::Bulk {
                file: FileId([7; 16]),
                cells: 121,
                chunks: chunks_rx,
            })
            .unwrap();
            tokio::spawn(async move {
                for index in 0..50 {
                    chunks_tx.send(chunk(index)).await.unwrap();
                }
            });
        }
        for got in [&mut at_alice, &mut at_bob] {
            for index in 0..50 {
                assert_eq!(got.recv().await.unwrap(), chunk(index));
            }
        }
    }

    #[tokio::test]
    async fn bulk_sources_take_turns() {
        let ([alice, _bob], [_, mut at_bob]) = pair().await;
        let mut senders = Vec::new();
        for file in [1u8, 2] {
            let (tx, rx) = mpsc::channel(10);
            for index in 0..5 {
                tx.try_send(Message::FileChunk {
                    id: FileId([file; 16]),
                    attempt: 1,
                    index,
                    data: vec![file; 10],
                })
                .unwrap();
            }
            senders.push(tx);
            alice
                .send(LinkCommand::Bulk {
                    file: FileId([file; 16]),
                    cells: 3,
                    chunks: rx,
                })
                .unwrap();
        }
        let mut files = Vec::new();
        for _ in 0..10 {
            match at_bob.recv().await.unwrap() {
                Message::FileChunk { id, .. } => files.push(id.0[0]),
                other => panic!("unexpected {other:?}"),
            }
        }
        // After the first source's head start, they alternate.
        let switches = files.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches >= 7, "no turns taken: {files:?}");
        drop(senders);
    }
}

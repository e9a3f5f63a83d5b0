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

pub mod pace;

use nightjar_proto::cell::CELL_SIZE;
use pace::{Mode, Pacer};
use tokio::time::Instant;

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
    /// The first cover cell arrived: the peer sends cover traffic on this link.
    PeerCover,
}

struct BulkSource {
    file: FileId,
    cells: usize,
    chunks: mpsc::Receiver<Message>,
}

/// A control message waiting to be sealed.
struct Queued {
    message: Message,
    written: Option<Written>,
    /// Not before this instant (the jitter of unshaped sends).
    release_at: Instant,
}

/// A sealed frame on its way out.
struct Outgoing {
    frame: Vec<u8>,
    /// How much of it is written.
    done: usize,
    /// How much of it may be written so far (whole frames, or one more cell per
    /// slot).
    allowed: usize,
    /// Written bytes not flushed yet.
    unflushed: bool,
    /// A cover frame (it does not count as traffic for eager slots).
    cover: bool,
    written: Option<Written>,
}

impl Outgoing {
    /// The cell allowed last is not fully written and flushed yet.
    fn busy(&self) -> bool {
        self.done < self.allowed || self.unflushed
    }
}

/// Runs the link until either side closes it. Ends with `Ok(())` when the peer
/// closed its side, or when `commands` closed and everything sent before was
/// written (then our side is closed too). `pacer` decides when cells may go
/// (see [`pace`]).
pub(crate) async fn drive<S, F, Fut>(
    parts: LinkParts<S>,
    mut commands: mpsc::UnboundedReceiver<LinkCommand>,
    mut deliver: F,
    mut pacer: Pacer,
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
    let mut control: VecDeque<Queued> = VecDeque::new();
    let mut bulk: Vec<BulkSource> = Vec::new();
    let mut turn = 0usize;
    let mut out: Option<Outgoing> = None;
    let mut closing = false;
    // Something was written since the last slot (eager slots then skip cover).
    let mut wrote_since_slot = false;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut peer_cover = false;
    // The handshake may have read frames that came right after it.
    while let Some(message) = next_message(&mut frames, &mut session, &mut rng)? {
        if !pass_on(message, &mut deliver, &mut pacer, &mut peer_cover).await {
            return Ok(());
        }
    }
    loop {
        let now = Instant::now();
        // What is left when closing goes at once.
        let mode = if closing {
            Mode::Unshaped
        } else {
            pacer.mode(now)
        };
        if out.is_none() {
            let released = match mode {
                Mode::Jitter => control.front().is_some_and(|q| q.release_at <= now),
                _ => !control.is_empty(),
            };
            if released && let Some(queued) = control.pop_front() {
                out = Some(seal(
                    &mut session,
                    &mut rng,
                    &queued.message,
                    None,
                    queued.written,
                )?);
            }
        }
        // Outside the slots a frame goes whole; on them it waits for its slots.
        if let Some(sending) = out.as_mut()
            && !matches!(mode, Mode::Slots { eager: false, .. })
        {
            sending.allowed = sending.frame.len();
        }
        if closing && out.is_none() && control.is_empty() {
            write_half.shutdown().await?;
            return Ok(());
        }
        let want_bulk = out.is_none() && !closing && !bulk.is_empty();
        let slot = match mode {
            Mode::Slots { mean, eager } => Some((mean, eager)),
            _ => None,
        };
        let jitter_wait = match (mode, &out, control.front()) {
            (Mode::Jitter, None, Some(queued)) => Some(queued.release_at),
            _ => None,
        };
        // No branch is preferred: which frame goes next is decided above, when
        // sealing, not by which future is ready first.
        tokio::select! {
            command = commands.recv(), if !closing => match command {
                Some(LinkCommand::Send { message, written }) => {
                    let release_at = if mode == Mode::Jitter {
                        pacer.release_at(Instant::now())
                    } else {
                        now
                    };
                    control.push_back(Queued { message, written, release_at });
                }
                Some(LinkCommand::Bulk { file, cells, chunks }) => {
                    bulk.retain(|s| s.file != file);
                    bulk.push(BulkSource { file, cells, chunks });
                }
                None => closing = true,
            },
            done = write_some(&mut write_half, &mut out) => {
                wrote_since_slot |= out.as_ref().is_some_and(|o| !o.cover);
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
                    if !pass_on(message, &mut deliver, &mut pacer, &mut peer_cover).await {
                        return Ok(());
                    }
                }
            }
            (cells, chunk) = NextBulk { sources: &mut bulk, turn: &mut turn }, if want_bulk => {
                // The whole chunk frame goes at once (the next mode is unshaped).
                pacer.sent_bulk(Instant::now());
                out = Some(seal(&mut session, &mut rng, &chunk, Some(cells), None)?);
            }
            () = tokio::time::sleep_until(pacer.next_slot()), if slot.is_some() => {
                let (mean, eager) = slot.unwrap_or((pace::FAST_GAP, false));
                if eager {
                    // Real frames went at once; the slot only covers silence.
                    if out.is_none() && !wrote_since_slot {
                        out = Some(seal_cover(&mut session, &mut rng)?);
                    }
                } else if !out.as_ref().is_some_and(Outgoing::busy) {
                    // A slot that finds its cell still unwritten is skipped,
                    // never made up for later.
                    let sending = match out.as_mut() {
                        Some(sending) => sending,
                        None => out.insert(seal_cover(&mut session, &mut rng)?),
                    };
                    sending.allowed = (sending.done + CELL_SIZE).min(sending.frame.len());
                }
                wrote_since_slot = false;
                pacer.advance(Instant::now(), mean);
            }
            () = sleep_until_some(jitter_wait), if jitter_wait.is_some() => {}
        }
    }
}

/// Hands a received message to the engine; cover is dropped here, and only
/// its first arrival is reported. `false` when the engine is gone.
async fn pass_on<F, Fut>(
    message: Message,
    deliver: &mut F,
    pacer: &mut Pacer,
    peer_cover: &mut bool,
) -> bool
where
    F: FnMut(LinkEvent) -> Fut,
    Fut: Future<Output = bool>,
{
    match message {
        Message::Cover if *peer_cover => true,
        Message::Cover => {
            *peer_cover = true;
            deliver(LinkEvent::PeerCover).await
        }
        message => {
            if matches!(message, Message::FileChunk { .. }) {
                pacer.received_bulk(Instant::now());
            }
            deliver(LinkEvent::Received(message)).await
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
        allowed: 0,
        unflushed: false,
        cover: false,
        written,
    })
}

fn seal_cover(session: &mut Session, rng: &mut OsRng) -> Result<Outgoing, LinkError> {
    let mut cover = seal(session, rng, &Message::Cover, None, None)?;
    cover.cover = true;
    Ok(cover)
}

/// Writes some of what may be written of the frame on its way out, and
/// flushes once that is written; `true` once the whole frame is written and
/// flushed. Cancel-safe: what was written is counted before it returns, and a
/// flush cut short is simply started again. Never ready while there is nothing
/// to write.
async fn write_some<W: AsyncWrite>(
    writer: &mut WriteHalf<W>,
    out: &mut Option<Outgoing>,
) -> Result<bool, LinkError> {
    let Some(sending) = out.as_mut() else {
        return std::future::pending().await;
    };
    if let Some(rest) = sending.frame.get(sending.done..sending.allowed)
        && !rest.is_empty()
    {
        let n = writer.write(rest).await?;
        if n == 0 {
            return Err(LinkError::Io(std::io::ErrorKind::WriteZero.into()));
        }
        sending.done += n;
        sending.unflushed = true;
        return Ok(false);
    }
    if sending.unflushed {
        writer.flush().await?;
        sending.unflushed = false;
    }
    if sending.done >= sending.frame.len() {
        return Ok(true);
    }
    std::future::pending().await
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
        if found.is_none() && !ended.is_empty() {
            // The loop decides afresh without the sources that ended (which
            // registered no waker).
            cx.waker().wake_by_ref();
        }
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

    use std::time::Duration;

    use nightjar_tor::tap::TapLog;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use tokio::io::DuplexStream;

    use super::*;
    use crate::driver::pace::{CoverLevel, ShapingConfig};
    use crate::link::{Link, Pacing, os_rng};

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

    /// Both ends of a link over an in-memory pipe of `buffer` bytes.
    async fn linked(buffer: usize) -> (Link<DuplexStream>, Link<DuplexStream>) {
        let alice = IdentityKeyPair::generate(&mut os_rng());
        let bob = IdentityKeyPair::generate(&mut os_rng());
        let bob_key = *bob.public().signing_key();
        let (a, b) = tokio::io::duplex(buffer);
        let answer =
            tokio::spawn(async move { Link::answer(b, &bob, b"test", Pacing::Immediate).await });
        let alice_link = Link::dial(a, &alice, &bob_key, b"test", Pacing::Immediate)
            .await
            .unwrap();
        (alice_link, answer.await.unwrap().unwrap())
    }

    /// Runs an unshaped driver on `parts`; returns its command sender and what
    /// it receives.
    fn spawn_unshaped(
        parts: LinkParts<DuplexStream>,
    ) -> (
        mpsc::UnboundedSender<LinkCommand>,
        mpsc::UnboundedReceiver<Message>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (got_tx, got_rx) = mpsc::unbounded_channel();
        let deliver = move |event| {
            if let LinkEvent::Received(message) = event {
                let _ = got_tx.send(message);
            }
            std::future::ready(true)
        };
        tokio::spawn(drive(
            parts,
            rx,
            deliver,
            Pacer::new(ShapingConfig::UNSHAPED),
        ));
        (tx, got_rx)
    }

    /// Two drivers over an in-memory stream; returns the command senders and
    /// what each side received, in order.
    async fn pair() -> (
        [mpsc::UnboundedSender<LinkCommand>; 2],
        [mpsc::UnboundedReceiver<Message>; 2],
    ) {
        // A small pipe, so writers block and readers must keep up.
        let (alice_link, bob_link) = linked(8 * 1024).await;
        let mut commands = Vec::new();
        let mut received = Vec::new();
        for link in [alice_link, bob_link] {
            let (tx, got_rx) = spawn_unshaped(link.into_parts());
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
    async fn cover_is_dropped_without_effect() {
        let ([alice, _bob], [_, mut at_bob]) = pair().await;
        for message in [
            Message::Cover,
            Message::Cover,
            text(1),
            Message::Cover,
            text(2),
        ] {
            alice
                .send(LinkCommand::Send {
                    message,
                    written: None,
                })
                .unwrap();
        }
        assert_eq!(at_bob.recv().await.unwrap(), text(1));
        assert_eq!(at_bob.recv().await.unwrap(), text(2));
        // Closing Alice's side ends Bob's link with nothing else delivered.
        drop(alice);
        assert!(at_bob.recv().await.is_none());
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

    /// Alice's side of a link shaped by `shaping` with a fixed seed, and Bob's
    /// unshaped; `script` is what Alice sends, at what offset from the start.
    /// Runs `span` of (paused) time and returns Alice's writes and what Bob
    /// received.
    async fn shaped_run(
        shaping: ShapingConfig,
        script: Vec<(Duration, Message)>,
        span: Duration,
    ) -> (Vec<(Duration, usize)>, Vec<Message>) {
        let (alice_link, bob_link) = linked(64 * 1024).await;

        let start = Instant::now();
        let log = TapLog::new();
        let mut parts = alice_link.into_parts();
        let tapped = LinkParts {
            stream: log.wrap(parts.stream, 7300),
            session: parts.session,
            reader: std::mem::take(&mut parts.reader),
            rng: parts.rng,
        };
        let (alice_tx, alice_rx) = mpsc::unbounded_channel();
        let pacer = Pacer::seeded(shaping, StdRng::seed_from_u64(42), start);
        tokio::spawn(drive(tapped, alice_rx, |_| async { true }, pacer));

        let (_bob_tx, mut got_rx) = spawn_unshaped(bob_link.into_parts());
        for (at, message) in script {
            tokio::time::sleep_until(start + at).await;
            alice_tx
                .send(LinkCommand::Send {
                    message,
                    written: None,
                })
                .unwrap();
        }
        tokio::time::sleep_until(start + span).await;
        let mut got = Vec::new();
        while let Ok(message) = got_rx.try_recv() {
            got.push(message);
        }
        let writes = log
            .units()
            .into_iter()
            .filter(|unit| unit.out)
            .map(|unit| (unit.at, unit.len))
            .collect();
        (writes, got)
    }

    /// Texts of one to three cells at random moments of the first 40 s.
    fn chat_script(count: usize) -> Vec<(Duration, Message)> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut moments: Vec<u64> = (0..count).map(|_| rng.random_range(0..40_000)).collect();
        moments.sort_unstable();
        moments
            .into_iter()
            .enumerate()
            .map(|(n, ms)| {
                let len = rng.random_range(1..1200);
                let message = Message::Text {
                    id: MessageId([n as u8; 16]),
                    sent_at_ms: ms,
                    body: "x".repeat(len),
                };
                (Duration::from_millis(ms), message)
            })
            .collect()
    }

    const CONSTANT: ShapingConfig = ShapingConfig {
        cover: CoverLevel::Constant,
        low_latency: false,
    };

    #[tokio::test(start_paused = true)]
    async fn writes_follow_the_schedule_whatever_the_traffic() {
        let span = Duration::from_secs(60);
        let (idle, nothing) = shaped_run(CONSTANT, Vec::new(), span).await;
        let script = chat_script(100);
        let sent: Vec<Message> = script.iter().map(|(_, m)| m.clone()).collect();
        let (busy, got) = shaped_run(CONSTANT, script, span).await;
        assert!(nothing.is_empty(), "cover was delivered: {nothing:?}");
        assert_eq!(got, sent, "the texts did not all arrive, in order");
        // Every write is one cell, on the same instants, talking or not.
        assert!(idle.len() > 400, "only {} writes", idle.len());
        assert!(idle.iter().all(|&(_, len)| len == CELL_SIZE), "{idle:?}");
        assert_eq!(busy, idle);
    }

    #[tokio::test(start_paused = true)]
    async fn low_latency_sends_at_once_and_cover_fills_the_silence() {
        let eager = ShapingConfig {
            low_latency: true,
            ..CONSTANT
        };
        let span = Duration::from_secs(20);
        let (idle, _) = shaped_run(eager, Vec::new(), span).await;
        let text_at = Duration::from_millis(10_050);
        let (busy, got) = shaped_run(eager, vec![(text_at, text(1))], span).await;
        assert_eq!(got, vec![text(1)]);
        // The text was written the moment it was sent, off the schedule.
        assert!(busy.contains(&(text_at, CELL_SIZE)), "{busy:?}");
        assert!(!idle.iter().any(|&(at, _)| at == text_at));
        // The slot after it carried no cover; the rest of the schedule is the same.
        assert_eq!(busy.len(), idle.len());
    }

    #[tokio::test(start_paused = true)]
    async fn cover_off_delays_each_send_by_at_most_the_jitter_and_keeps_order() {
        let off = ShapingConfig {
            cover: CoverLevel::Off,
            low_latency: false,
        };
        let script: Vec<_> = (0..50u8)
            .map(|n| (Duration::from_millis(u64::from(n) * 100), text(n)))
            .collect();
        let sent: Vec<Message> = script.iter().map(|(_, m)| m.clone()).collect();
        let (writes, got) = shaped_run(off, script, Duration::from_secs(10)).await;
        assert_eq!(got, sent);
        assert_eq!(writes.len(), 50, "cover was sent with cover off");
        for (n, &(at, _)) in writes.iter().enumerate() {
            let queued = Duration::from_millis(n as u64 * 100);
            assert!(at >= queued, "text {n} left before it was sent");
        }
        // Not sent on the instant it was queued (a 1-in-a-million coincidence
        // for one text; for all fifty, never).
        assert!(
            writes
                .iter()
                .enumerate()
                .any(|(n, &(at, _))| at != Duration::from_millis(n as u64 * 100))
        );
    }
}

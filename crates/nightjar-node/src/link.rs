//! An encrypted link over one byte stream: the handshake, then framed messages.
//!
//! Stream layout (docs/protocol.md, "Streams"): the three handshake messages, each
//! zero-padded to whole cells; then the dialler's *opening frame*, a frame with an
//! empty payload that lets the answerer's ratchet start (a responder cannot send
//! before it has received); then frames in both directions.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use nightjar_proto::cell::{self, CELL_SIZE, FrameReader};
use nightjar_proto::handshake::{self, Established, Initiator, Responder};
use nightjar_proto::identity::{IdentityKeyPair, PublicIdentity};
use nightjar_proto::message::Message;
use nightjar_proto::session::Session;
use rand::RngExt as _;
use rand_core::UnwrapErr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

/// Why a link failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The peer could not prove the identity we expected, or its handshake was
    /// malformed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] handshake::HandshakeError),
    /// A frame failed to decrypt or was malformed: the stream was tampered with.
    #[error("received a forged or corrupted frame")]
    Corrupt,
    /// The peer broke the stream layout (padding, opening frame, a frame cut short).
    #[error("the peer broke the protocol: {0}")]
    Protocol(&'static str),
    /// The peer closed the stream during the handshake.
    #[error("the peer closed the stream during the handshake")]
    ClosedEarly,
    /// A message could not be encoded (too long).
    #[error("message cannot be sent: {0}")]
    Message(#[from] nightjar_proto::message::MessageError),
    /// Reading or writing the stream failed.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, LinkError>;

/// The operating system's random number generator.
pub type OsRng = UnwrapErr<rand::rngs::SysRng>;

/// A fresh handle on the operating system's random number generator.
pub fn os_rng() -> OsRng {
    UnwrapErr(rand::rngs::SysRng)
}

/// Counts of what crossed the wire, for showing what an observer sees.
#[derive(Debug, Default, Clone, Copy)]
pub struct WireStats {
    /// Cells written.
    pub cells_sent: usize,
    /// Cells read.
    pub cells_received: usize,
}

/// How a link writes its cells before the link driver takes over: the
/// handshake, the opening frame, and the messages of a request exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Each message at once.
    Immediate,
    /// One cell at a time, each written and flushed after a gap drawn uniformly
    /// from `[mean/2, 3·mean/2]`, so set-up looks like the cell schedule that
    /// follows it.
    Cells(Duration),
}

/// An established link taken apart: what the link driver runs on.
pub(crate) struct LinkParts<S> {
    pub stream: S,
    pub session: Session,
    pub reader: FrameReader,
    pub rng: OsRng,
}

/// One end of an established link.
pub struct Link<S> {
    stream: S,
    session: Session,
    reader: FrameReader,
    peer: PublicIdentity,
    stats: WireStats,
    rng: OsRng,
    pacing: Pacing,
}

impl<S> std::fmt::Debug for Link<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    /// Runs the handshake as the dialling side, proving that the peer holds
    /// `expected`'s identity.
    pub async fn dial(
        mut stream: S,
        identity: &IdentityKeyPair,
        expected: &VerifyingKey,
        prologue: &[u8],
        pacing: Pacing,
    ) -> Result<Self> {
        let mut rng = os_rng();
        let mut stats = WireStats::default();
        let (waiting, msg1) = Initiator::start(expected, prologue, &mut rng);
        write_padded(&mut stream, &msg1, pacing, &mut stats).await?;
        let msg2 = read_padded(&mut stream, handshake::MSG2_LEN, &mut stats).await?;
        let (established, msg3) = waiting.handle_reply(&msg2, identity)?;
        write_padded(&mut stream, &msg3, pacing, &mut stats).await?;
        let mut link = Self::new(stream, established, stats, rng, pacing)?;
        link.send_payload(&[]).await?;
        Ok(link)
    }

    /// Runs the handshake as the answering side; the caller decides whether the
    /// proven identity is welcome.
    pub async fn answer(
        mut stream: S,
        identity: &IdentityKeyPair,
        prologue: &[u8],
        pacing: Pacing,
    ) -> Result<Self> {
        let mut rng = os_rng();
        let mut stats = WireStats::default();
        let msg1 = read_padded(&mut stream, handshake::MSG1_LEN, &mut stats).await?;
        let (waiting, msg2) = Responder::handle_hello(identity, prologue, &msg1, &mut rng)?;
        write_padded(&mut stream, &msg2, pacing, &mut stats).await?;
        let msg3 = read_padded(&mut stream, handshake::MSG3_LEN, &mut stats).await?;
        let established = waiting.handle_finish(&msg3)?;
        let mut link = Self::new(stream, established, stats, rng, pacing)?;
        let opening = link.recv_frame().await?.ok_or(LinkError::ClosedEarly)?;
        if !opening.is_empty() {
            return Err(LinkError::Protocol("the opening frame must be empty"));
        }
        Ok(link)
    }

    fn new(
        stream: S,
        established: Established,
        stats: WireStats,
        mut rng: OsRng,
        pacing: Pacing,
    ) -> Result<Self> {
        let peer = *established.peer();
        let session = Session::from_handshake(established, &mut rng)
            .map_err(|_| LinkError::Protocol("handshake produced no session"))?;
        Ok(Self {
            stream,
            session,
            reader: FrameReader::new(),
            peer,
            stats,
            rng,
            pacing,
        })
    }

    /// The session's identifier, the same on both ends and unique to this link;
    /// what a shared-secret authentication binds to.
    pub fn session_id(&self) -> [u8; 32] {
        *self.session.session_id()
    }

    /// The peer's proven identity.
    pub fn peer(&self) -> &PublicIdentity {
        &self.peer
    }

    /// What has crossed the wire so far.
    pub fn stats(&self) -> WireStats {
        self.stats
    }

    /// Hands the established link's parts to the link driver, which reads and
    /// writes at once.
    pub(crate) fn into_parts(self) -> LinkParts<S> {
        LinkParts {
            stream: self.stream,
            session: self.session,
            reader: self.reader,
            rng: self.rng,
        }
    }

    /// Encrypts and sends a message; returns the number of cells it took.
    pub async fn send(&mut self, message: &Message) -> Result<usize> {
        self.send_payload(&Zeroizing::new(message.encode()?)).await
    }

    async fn send_payload(&mut self, payload: &[u8]) -> Result<usize> {
        let frame = self
            .session
            .seal_payload(payload, &mut self.rng)
            .map_err(|_| LinkError::Protocol("frame too large to seal"))?;
        write_cells(&mut self.stream, &frame, self.pacing).await?;
        let cells = frame.len() / CELL_SIZE;
        self.stats.cells_sent += cells;
        Ok(cells)
    }

    /// Waits for the next message; `None` when the peer closed the stream.
    pub async fn recv(&mut self) -> Result<Option<Message>> {
        loop {
            let Some(payload) = self.recv_frame().await? else {
                return Ok(None);
            };
            match Message::decode(&payload) {
                // Cover has no effect, wherever it arrives.
                Ok(Message::Cover) => {}
                Ok(message) => return Ok(Some(message)),
                Err(e) => tracing::debug!("ignoring a message we cannot read: {e}"),
            }
        }
    }

    /// Reads and decrypts the next frame, skipping replays.
    async fn recv_frame(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let session = &self.session;
            let next = self.reader.next_frame(|header| session.body_len(header));
            if let Some(frame) = next.map_err(|_| LinkError::Corrupt)? {
                self.stats.cells_received += frame.len() / CELL_SIZE;
                match self.session.open_payload(&frame, &mut self.rng) {
                    Ok(payload) => return Ok(Some(payload)),
                    Err(e) if e.is_replay() => {
                        tracing::debug!("dropped a replayed frame");
                        continue;
                    }
                    Err(_) => return Err(LinkError::Corrupt),
                }
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                if self.reader.buffered() > 0 {
                    return Err(LinkError::Protocol(
                        "stream closed in the middle of a frame",
                    ));
                }
                return Ok(None);
            }
            self.reader.push(buf.get(..n).unwrap_or_default());
        }
    }

    /// Closes our sending side: the peer reads the end of the stream, and may
    /// still send until it closes its own.
    pub async fn finish(&mut self) -> Result<()> {
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Closes the sending side.
    pub async fn close(mut self) -> Result<()> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

/// Writes a handshake message zero-padded to whole cells.
async fn write_padded<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
    pacing: Pacing,
    stats: &mut WireStats,
) -> Result<()> {
    let mut padded = message.to_vec();
    padded.resize(cell::padded_len(message.len()), 0);
    write_cells(stream, &padded, pacing).await?;
    stats.cells_sent += padded.len() / CELL_SIZE;
    Ok(())
}

/// Writes whole cells as `pacing` says, flushing after each write.
async fn write_cells<S: AsyncWrite + Unpin>(
    stream: &mut S,
    cells: &[u8],
    pacing: Pacing,
) -> Result<()> {
    match pacing {
        Pacing::Immediate => {
            stream.write_all(cells).await?;
            stream.flush().await?;
        }
        Pacing::Cells(mean) => {
            for cell in cells.chunks(CELL_SIZE) {
                let gap = os_rng().random_range(mean / 2..=mean * 3 / 2);
                tokio::time::sleep(gap).await;
                stream.write_all(cell).await?;
                stream.flush().await?;
            }
        }
    }
    Ok(())
}

/// Reads a handshake message of known length and its zero padding.
async fn read_padded<S: AsyncRead + Unpin>(
    stream: &mut S,
    len: usize,
    stats: &mut WireStats,
) -> Result<Vec<u8>> {
    let mut padded = vec![0u8; cell::padded_len(len)];
    stream
        .read_exact(&mut padded)
        .await
        .map_err(|_| LinkError::ClosedEarly)?;
    stats.cells_received += padded.len() / CELL_SIZE;
    let padding = padded.split_off(len);
    if padding.iter().any(|b| *b != 0) {
        return Err(LinkError::Protocol("handshake padding is not zero"));
    }
    Ok(padded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightjar_proto::message::MessageId;

    #[tokio::test]
    async fn two_links_talk_over_an_in_memory_stream() {
        let alice = IdentityKeyPair::generate(&mut os_rng());
        let bob = IdentityKeyPair::generate(&mut os_rng());
        let bob_key = *bob.public().signing_key();
        let (a, b) = tokio::io::duplex(4096);
        let answer =
            tokio::spawn(async move { Link::answer(b, &bob, b"test", Pacing::Immediate).await });
        let mut alice_link = Link::dial(a, &alice, &bob_key, b"test", Pacing::Immediate)
            .await
            .unwrap();
        let mut bob_link = answer.await.unwrap().unwrap();
        assert_eq!(bob_link.peer(), &alice.public());
        let hello = Message::Text {
            id: MessageId([1; 16]),
            sent_at_ms: 1,
            body: "hello".into(),
        };
        assert_eq!(alice_link.send(&hello).await.unwrap(), 1);
        assert_eq!(bob_link.recv().await.unwrap(), Some(hello));
        bob_link.send(&Message::Quit).await.unwrap();
        assert_eq!(alice_link.recv().await.unwrap(), Some(Message::Quit));
        // 3 + 3 + 1 handshake cells, the opening frame, two messages.
        assert_eq!(
            alice_link.stats().cells_sent + bob_link.stats().cells_sent,
            10
        );
        alice_link.close().await.unwrap();
        assert_eq!(bob_link.recv().await.unwrap(), None);
    }

    #[tokio::test]
    async fn dialling_the_wrong_identity_fails() {
        let alice = IdentityKeyPair::generate(&mut os_rng());
        let bob = IdentityKeyPair::generate(&mut os_rng());
        let mallory = IdentityKeyPair::generate(&mut os_rng());
        let (a, b) = tokio::io::duplex(4096);
        tokio::spawn(async move { Link::answer(b, &mallory, b"test", Pacing::Immediate).await });
        let err = Link::dial(
            a,
            &alice,
            bob.public().signing_key(),
            b"test",
            Pacing::Immediate,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, LinkError::Handshake(_)), "{err}");
    }

    /// The sizes of every write of a link's set-up and of one message each
    /// way, on both sides, with `pacing`, and the shortest gap between two
    /// writes of one side.
    async fn setup_writes(pacing: Pacing) -> (Vec<usize>, Duration) {
        let alice = IdentityKeyPair::generate(&mut os_rng());
        let bob = IdentityKeyPair::generate(&mut os_rng());
        let bob_key = *bob.public().signing_key();
        let log = nightjar_tor::tap::TapLog::new();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (a, b) = (log.wrap(a, 7300), log.wrap(b, 7300));
        let answer = tokio::spawn(async move { Link::answer(b, &bob, b"test", pacing).await });
        let mut alice_link = Link::dial(a, &alice, &bob_key, b"test", pacing)
            .await
            .unwrap();
        let mut bob_link = answer.await.unwrap().unwrap();
        alice_link.send(&Message::Accepted).await.unwrap();
        bob_link.recv().await.unwrap();
        bob_link.send(&Message::RequestReceived).await.unwrap();
        alice_link.recv().await.unwrap();
        let writes: Vec<_> = log.units().into_iter().filter(|u| u.out).collect();
        let mut shortest = Duration::MAX;
        for side in [0, 1] {
            let times: Vec<_> = writes
                .iter()
                .filter(|u| u.stream == side)
                .map(|u| u.at)
                .collect();
            for pair in times.windows(2) {
                shortest = shortest.min(pair[1] - pair[0]);
            }
        }
        (writes.iter().map(|u| u.len).collect(), shortest)
    }

    #[tokio::test(start_paused = true)]
    async fn paced_setup_writes_one_cell_at_a_time() {
        let (sizes, shortest) = setup_writes(Pacing::Cells(Duration::from_millis(20))).await;
        // 3 + 3 + 1 handshake cells, the opening frame, two messages.
        assert_eq!(sizes, vec![CELL_SIZE; 10]);
        assert!(shortest >= Duration::from_millis(10), "{shortest:?}");
        // Unpaced, the handshake messages go whole.
        let (sizes, _) = setup_writes(Pacing::Immediate).await;
        assert!(sizes.contains(&(3 * CELL_SIZE)), "{sizes:?}");
    }
}

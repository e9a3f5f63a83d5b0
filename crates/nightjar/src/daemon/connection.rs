//! One client: lines in, answers in request order, and the node's events once it
//! subscribes.
//!
//! The reading half handles one request at a time; everything written goes
//! through one queue to the writing half, so responses and notifications never
//! interleave inside a line. A client that stops reading fills the queue, which
//! holds up its event forwarder, which then falls behind the node's event buffer
//! and is told how many events it lost.

use nightjar_node::{Event, Node};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::io::{AsyncWriteExt as _, BufReader};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tracing::debug;

use super::State;
use super::methods::{self, Call};
use super::rpc::{self, Incoming, RpcError};

/// The longest line accepted, newline excluded.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// Lines waiting for a slow client before its reader and forwarder wait too.
const OUTGOING_QUEUE: usize = 64;

/// Serves one client until it hangs up, breaks the protocol's framing, or the
/// daemon stops.
pub(crate) async fn serve<S>(stream: S, node: Node, state: watch::Sender<State>)
where
    S: AsyncRead + AsyncWrite + Send,
{
    let (read, write) = tokio::io::split(stream);
    let (out, queue) = mpsc::channel(OUTGOING_QUEUE);
    tokio::join!(
        read_requests(BufReader::new(read), node, state, out),
        write_lines(write, queue)
    );
}

async fn write_lines<W: AsyncWrite>(write: W, mut queue: mpsc::Receiver<String>) {
    let mut write = std::pin::pin!(write);
    while let Some(mut line) = queue.recv().await {
        line.push('\n');
        if let Err(e) = write.write_all(line.as_bytes()).await {
            debug!("rpc client stopped reading: {e}");
            return;
        }
    }
    // Everything queued is written: the client sees the end of the stream.
    let _ = write.shutdown().await;
}

/// What the reading half knows about its connection.
struct Connection {
    node: Node,
    state: watch::Sender<State>,
    out: mpsc::Sender<String>,
    /// The event forwarder, once subscribed; aborted when the connection ends.
    forwarder: JoinSet<()>,
}

async fn read_requests<R: AsyncBufRead + Unpin>(
    mut read: R,
    node: Node,
    state: watch::Sender<State>,
    out: mpsc::Sender<String>,
) {
    let mut stopping = state.subscribe();
    let mut conn = Connection {
        node,
        state,
        out,
        forwarder: JoinSet::new(),
    };
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let line = tokio::select! {
            biased;
            () = super::stop_requested(&mut stopping) => return,
            line = read_line(&mut read, &mut buf) => line,
        };
        match line {
            Ok(Line::Complete) => {
                if !conn.handle(&buf).await {
                    return;
                }
            }
            Ok(Line::TooLong) => {
                let error = RpcError::invalid_request(&format!(
                    "line longer than {MAX_LINE} bytes; closing the connection"
                ));
                let _ = conn.out.send(rpc::response(Value::Null, Err(error))).await;
                return;
            }
            Ok(Line::End) => return,
            Err(e) => {
                debug!("rpc client read failed: {e}");
                return;
            }
        }
    }
}

impl Connection {
    /// Answers one line; false when the connection is to end.
    async fn handle(&mut self, line: &[u8]) -> bool {
        let request = match rpc::parse_line(line) {
            Incoming::Blank => return true,
            Incoming::Invalid { id, error } => {
                return self.send(rpc::response(id, Err(error))).await;
            }
            Incoming::Request(request) => request,
        };
        debug!(method = %request.method, "rpc request");
        let call = Call::parse(&request.method, request.params);
        let (outcome, then) = match call {
            Err(e) => (Err(e), After::Continue),
            Ok(Call::Node(call)) => (methods::execute(call, &self.node).await, After::Continue),
            Ok(Call::Subscribe) => {
                // Subscribed before the answer is queued, so no event after the
                // answer is missed; forwarded only after it, so the answer comes first.
                let events = (self.forwarder.is_empty()).then(|| self.node.subscribe());
                (Ok(Value::Null), After::Forward(events))
            }
            Ok(Call::Shutdown) => {
                self.stop_daemon().await;
                (Ok(Value::Null), After::Close)
            }
        };
        if let Some(id) = request.id
            && !self.send(rpc::response(id, outcome)).await
        {
            return false;
        }
        match then {
            After::Continue | After::Forward(None) => true,
            After::Forward(Some(events)) => {
                self.forwarder
                    .spawn(forward_events(events, self.out.clone()));
                true
            }
            After::Close => false,
        }
    }

    /// Asks the daemon to stop and waits until the node has stopped and the
    /// socket is gone, so the answer means it.
    async fn stop_daemon(&self) {
        self.state.send_if_modified(|s| {
            let was_running = *s == State::Running;
            if was_running {
                *s = State::Stopping;
            }
            was_running
        });
        let mut state = self.state.subscribe();
        let _ = state.wait_for(|s| *s == State::Stopped).await;
    }

    async fn send(&self, line: String) -> bool {
        self.out.send(line).await.is_ok()
    }
}

enum After {
    Continue,
    /// Start forwarding events (none if already subscribed).
    Forward(Option<broadcast::Receiver<Event>>),
    Close,
}

async fn forward_events(mut events: broadcast::Receiver<Event>, out: mpsc::Sender<String>) {
    loop {
        let line = match events.recv().await {
            Ok(event) => match serde_json::to_value(&event) {
                Ok(params) => rpc::notification("event", params),
                Err(e) => {
                    debug!("event not serialisable: {e}");
                    continue;
                }
            },
            Err(broadcast::error::RecvError::Lagged(count)) => {
                rpc::notification("events_lost", json!({ "count": count }))
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if out.send(line).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line is in the buffer, without its newline (the last line of the stream
    /// may lack one).
    Complete,
    /// More than [`MAX_LINE`] bytes without a newline.
    TooLong,
    /// The client closed its side.
    End,
}

/// Reads one line into `buf`, never holding more than `MAX_LINE + 1` bytes.
async fn read_line<R: AsyncBufRead + Unpin>(
    read: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    let limit = u64::try_from(MAX_LINE + 1).unwrap_or(u64::MAX);
    let n = read.take(limit).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Line::Complete);
    }
    if buf.len() > MAX_LINE {
        return Ok(Line::TooLong);
    }
    Ok(Line::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<Result<Vec<u8>, Line>> {
        let mut read = BufReader::with_capacity(4096, input);
        let mut got = Vec::new();
        loop {
            let mut buf = Vec::new();
            match read_line(&mut read, &mut buf).await.unwrap() {
                Line::Complete => got.push(Ok(buf)),
                Line::End => return got,
                Line::TooLong => {
                    got.push(Err(Line::TooLong));
                    return got;
                }
            }
        }
    }

    fn warning(n: usize) -> Event {
        Event::Warning {
            text: format!("w{n}"),
        }
    }

    #[tokio::test]
    async fn events_become_notifications_and_a_lagging_subscriber_is_told() {
        let (events, receiver) = broadcast::channel(4);
        for n in 0..10 {
            events.send(warning(n)).unwrap();
        }
        drop(events);
        let (out, mut lines) = mpsc::channel(64);
        forward_events(receiver, out).await;
        let mut got = Vec::new();
        while let Some(line) = lines.recv().await {
            got.push(serde_json::from_str::<Value>(&line).unwrap());
        }
        let mut expected =
            vec![json!({"jsonrpc": "2.0", "method": "events_lost", "params": {"count": 6}})];
        for n in 6..10 {
            expected.push(json!({"jsonrpc": "2.0", "method": "event",
                "params": {"event": "warning", "text": format!("w{n}")}}));
        }
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn the_forwarder_stops_when_the_connection_is_gone() {
        let (events, receiver) = broadcast::channel(4);
        let (out, lines) = mpsc::channel(1);
        drop(lines);
        events.send(warning(0)).unwrap();
        // Returns (instead of waiting for more events) because nobody reads.
        forward_events(receiver, out).await;
    }

    #[tokio::test]
    async fn lines_split_at_newlines() {
        assert_eq!(
            lines(b"a\n\nbc\nd").await,
            vec![
                Ok(b"a".to_vec()),
                Ok(vec![]),
                Ok(b"bc".to_vec()),
                Ok(b"d".to_vec())
            ]
        );
        assert_eq!(lines(b"").await, vec![]);
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_passes() {
        let mut input = vec![b'x'; MAX_LINE];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        let got = lines(&input).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().map(Vec::len), Ok(MAX_LINE));
        assert_eq!(got[1], Ok(b"next".to_vec()));
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused() {
        let mut input = b"ok\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE + 1]);
        input.push(b'\n');
        assert_eq!(
            lines(&input).await,
            vec![Ok(b"ok".to_vec()), Err(Line::TooLong)]
        );
        // Without any newline at all.
        assert_eq!(
            lines(&vec![b'{'; 3 * MAX_LINE]).await,
            vec![Err(Line::TooLong)]
        );
    }
}

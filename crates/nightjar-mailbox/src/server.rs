//! The HTTP face of the mailbox (axum): routes, body limits, refusals as JSON,
//! a connection cap and graceful shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroize;

use crate::rendezvous::Rendezvous;
use crate::wire::{
    BatchRequest, DEPOSIT_HEADER_LEN, ErrorBody, ROOM_CELL_LEN, ROOM_POST_HEADER_LEN, RoomRead,
};
use crate::{Config, Mailbox, MailboxError, Refusal};

/// Bytes allowed per item of a batch request, ids aside: slot, nonce,
/// signature in hex, a timestamp and the JSON around them, with room to spare.
const BATCH_ITEM_BYTES: usize = 400;
/// Bytes allowed per blob id in an ack request (hex, quotes, comma).
const BATCH_ID_BYTES: usize = 40;
/// Bytes allowed for a room read request: a key in hex, two numbers and the
/// JSON around them, with room to spare.
const ROOM_READ_BYTES: usize = 256;

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.to_string(),
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        // Our own answer types always serialise; should one not, say so
        // without a panic.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Refusal> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Refusal::TooLarge),
        Err(_) => Err(Refusal::Malformed("unreadable body".into())),
    }
}

async fn info(State(mb): State<Mailbox>) -> Response {
    json(StatusCode::OK, &mb.info())
}

async fn deposit(State(mb): State<Mailbox>, body: Body) -> Response {
    let limit = DEPOSIT_HEADER_LEN + mb.config().blob_size;
    let result = match read_body(body, limit).await {
        Ok(bytes) => mb.deposit(&bytes),
        Err(e) => Err(e),
    };
    match result {
        Ok(receipt) if receipt.stored => json(StatusCode::CREATED, &receipt),
        Ok(receipt) => json(StatusCode::OK, &receipt),
        Err(refusal) => refusal.into_response(),
    }
}

async fn room_post(State(mb): State<Mailbox>, body: Body) -> Response {
    let result = match read_body(body, ROOM_POST_HEADER_LEN + ROOM_CELL_LEN).await {
        Ok(bytes) => {
            // The body holds the room key: wipe it once the post is handled.
            let mut bytes = Vec::from(bytes);
            let result = mb.room_post(&bytes);
            bytes.zeroize();
            result
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(posted) if posted.stored => json(StatusCode::CREATED, &posted),
        Ok(posted) => json(StatusCode::OK, &posted),
        Err(refusal) => refusal.into_response(),
    }
}

async fn room_read(State(mb): State<Mailbox>, body: Body) -> Response {
    let mut bytes = match read_body(body, ROOM_READ_BYTES).await {
        Ok(b) => Vec::from(b),
        Err(e) => return e.into_response(),
    };
    let req = serde_json::from_slice::<RoomRead>(&bytes);
    // The body holds the room key in hex; the parsed request wipes its copy on drop.
    bytes.zeroize();
    let result = match req {
        Ok(req) => mb.room_read(&req),
        Err(e) => Err(malformed(&e)),
    };
    match result {
        Ok(cells) => json(StatusCode::OK, &cells),
        Err(refusal) => refusal.into_response(),
    }
}

fn malformed(e: &serde_json::Error) -> Refusal {
    let mut why = e.to_string();
    why.truncate(160);
    Refusal::Malformed(why)
}

fn batch_limit(config: &Config) -> usize {
    1024 + config.max_batch * BATCH_ITEM_BYTES + config.max_fetch_blobs * BATCH_ID_BYTES
}

/// Reads and parses a batch body, then runs `op` off the async workers:
/// a full batch is hundreds of signature checks.
async fn batch<T: Serialize + Send + 'static>(
    mb: Mailbox,
    body: Body,
    op: fn(&Mailbox, &BatchRequest) -> Result<T, Refusal>,
) -> Response {
    let bytes = match read_body(body, batch_limit(mb.config())).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return malformed(&e).into_response(),
    };
    match tokio::task::spawn_blocking(move || op(&mb, &req)).await {
        Ok(Ok(answer)) => json(StatusCode::OK, &answer),
        Ok(Err(refusal)) => refusal.into_response(),
        Err(_) => Refusal::Busy.into_response(),
    }
}

async fn list(State(mb): State<Mailbox>, body: Body) -> Response {
    batch(mb, body, Mailbox::list).await
}

async fn fetch(State(mb): State<Mailbox>, body: Body) -> Response {
    batch(mb, body, Mailbox::fetch).await
}

async fn ack(State(mb): State<Mailbox>, body: Body) -> Response {
    batch(mb, body, Mailbox::ack).await
}

async fn not_found() -> Response {
    Refusal::NotFound.into_response()
}

async fn method_not_allowed() -> Response {
    Refusal::MethodNotAllowed.into_response()
}

/// The mailbox's routes, all under `/v2`:
///
/// | method | path | body | answer |
/// |---|---|---|---|
/// | GET | `/v2/info` | — | [`Info`](crate::wire::Info) |
/// | POST | `/v2/deposit` | `slot ‖ challenge ‖ nonce ‖ blob` | [`DepositReceipt`](crate::wire::DepositReceipt), 201 (stored) or 200 (already there) |
/// | POST | `/v2/list` | [`BatchRequest`] | [`ListResponse`](crate::wire::ListResponse) |
/// | POST | `/v2/fetch` | [`BatchRequest`] | [`FetchResponse`](crate::wire::FetchResponse) |
/// | POST | `/v2/ack` | [`BatchRequest`] | [`AckResponse`](crate::wire::AckResponse) |
/// | POST | `/v2/rooms/post` | `room key ‖ challenge ‖ nonce ‖ cell` | [`RoomPosted`](crate::wire::RoomPosted), 201 (stored) or 200 (a retry of a held post) |
/// | POST | `/v2/rooms/read` | [`RoomRead`] | [`RoomCells`](crate::wire::RoomCells) |
///
/// Refusals are 4xx/5xx with `{"error": "..."}`.
///
/// `GET /v1` is the magic-wormhole rendezvous server (a websocket), with the
/// default [`RendezvousConfig`](crate::rendezvous::RendezvousConfig).
pub fn router(mailbox: Mailbox) -> Router {
    router_with(mailbox, Rendezvous::default())
}

/// [`router`] with the rendezvous server the caller made (its limits, its clock).
pub fn router_with(mailbox: Mailbox, rendezvous: Rendezvous) -> Router {
    Router::new()
        .route("/v2/info", get(info))
        .route("/v2/deposit", post(deposit))
        .route("/v2/list", post(list))
        .route("/v2/fetch", post(fetch))
        .route("/v2/ack", post(ack))
        .route("/v2/rooms/post", post(room_post))
        .route("/v2/rooms/read", post(room_read))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(mailbox)
        .merge(crate::rendezvous::router(rendezvous))
}

/// Serves a new mailbox made from `config` on `listener` until `shutdown`
/// completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MailboxError> {
    serve_mailbox(listener, Mailbox::new(config)?, shutdown).await
}

/// Like [`serve`], for a mailbox the caller keeps a handle to (for its stats).
pub async fn serve_mailbox(
    listener: TcpListener,
    mailbox: Mailbox,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MailboxError> {
    let c = mailbox.config();
    let period = c
        .sweep_interval_secs
        .min(c.pow.adjust_period_secs)
        .clamp(1, 60);
    let listener = CappedListener {
        inner: listener,
        permits: Arc::new(Semaphore::new(c.max_connections)),
    };
    let upkeep = tokio::spawn({
        let mailbox = mailbox.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(period));
            loop {
                tick.tick().await;
                mailbox.maintain();
            }
        }
    });
    tracing::info!("mailbox: serving");
    let result = axum::serve(listener, router(mailbox))
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    tracing::info!("mailbox: stopped");
    Ok(result?)
}

/// A TCP listener that holds a permit per open connection, so at most
/// `max_connections` are served at once; further ones wait in the backlog.
struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so a permit always comes.
        let permit = self.permits.clone().acquire_owned().await.ok();
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // Small answers should not wait for Nagle's algorithm; a failure
        // here only costs latency.
        let _ = stream.set_nodelay(true);
        (
            CappedStream {
                stream,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

struct CappedStream {
    stream: TcpStream,
    _permit: Option<OwnedSemaphorePermit>,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

//! `nightjar daemon`: the node's handle as JSON-RPC 2.0 over a unix socket, one
//! JSON object per line. The protocol is described in docs/rpc.md.
//!
//! Every method is one call on [`Node`]; nothing here keeps state of its own
//! beyond the connections. Requests, names and message text are logged only at
//! debug level and below (method names only, never params).

mod connection;
mod methods;
mod rpc;
mod socket;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nightjar_node::{Node, NodeError};
use tokio::net::UnixStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// Clients served at once; more are told so and disconnected.
pub const MAX_CLIENTS: usize = 16;

/// How long connections get, after the node stopped, to write what they queued.
/// Only a client that does not read needs it.
const DRAIN_GUARD: Duration = Duration::from_secs(5);

/// Where the daemon is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// Asked to stop: no new requests are read.
    Stopping,
    /// The node has stopped and the socket is gone.
    Stopped,
}

/// Serves `node` on a unix socket at `socket` until `shutdown` resolves or a
/// client calls `shutdown`; then shuts the node down and removes the socket.
///
/// The socket is created with mode 0600. If a daemon already answers at `socket`
/// this refuses to start; a socket file nobody answers on is replaced. Whatever
/// the outcome, the node has been shut down when this returns.
pub async fn serve(
    node: Node,
    socket: &Path,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let bound = match socket::bind(socket).await {
        Ok(bound) => bound,
        Err(e) => {
            stop_node(&node).await;
            return Err(e);
        }
    };
    info!("JSON-RPC daemon listening");
    let (state, mut watched) = watch::channel(State::Running);
    let permits = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = stop_requested(&mut watched) => break,
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, _)) => admit(stream, &node, &state, &permits, &mut connections),
                Err(e) => {
                    // Typically out of file descriptors: wait for some to close.
                    warn!("accepting a client failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = finished {
                    // Not the panic's message: it may quote what the client sent.
                    let how = if e.is_panic() { "panicked" } else { "was cancelled" };
                    warn!("a client connection {how}");
                }
            }
        }
    }
    info!("JSON-RPC daemon stopping");
    state.send_replace(State::Stopping);
    bound.remove();
    stop_node(&node).await;
    state.send_replace(State::Stopped);
    if tokio::time::timeout(DRAIN_GUARD, drain(&mut connections))
        .await
        .is_err()
    {
        debug!("closing clients that did not take their last answers");
    }
    connections.shutdown().await;
    Ok(())
}

/// Starts serving a client, or tells it the daemon is full.
fn admit(
    stream: UnixStream,
    node: &Node,
    state: &watch::Sender<State>,
    permits: &Arc<Semaphore>,
    connections: &mut JoinSet<()>,
) {
    let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
        debug!("refusing a client: {MAX_CLIENTS} already connected");
        let error = rpc::RpcError::application(
            "too_many_clients",
            format!("the daemon serves at most {MAX_CLIENTS} clients at once"),
        );
        let mut line = rpc::response(serde_json::Value::Null, Err(error));
        line.push('\n');
        // A fresh socket's buffer takes this line whole; if not, the client only
        // misses the reason for being closed.
        let _ = stream.try_write(line.as_bytes());
        return;
    };
    debug!("rpc client connected");
    let (node, state) = (node.clone(), state.clone());
    connections.spawn(async move {
        connection::serve(stream, node, state).await;
        drop(permit);
        debug!("rpc client disconnected");
    });
}

/// Resolves once a client asked to stop (or every sender is gone, which cannot
/// happen while `serve` holds one).
async fn stop_requested(state: &mut watch::Receiver<State>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not in `select!`.
    let _ = state.wait_for(|s| *s != State::Running).await;
}

async fn drain(connections: &mut JoinSet<()>) {
    while connections.join_next().await.is_some() {}
}

async fn stop_node(node: &Node) {
    match node.shutdown().await {
        Ok(()) | Err(NodeError::Stopped) => {}
        Err(e) => warn!("the node did not shut down cleanly: {e}"),
    }
}

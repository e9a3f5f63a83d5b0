//! Carries mailbox requests to a mailbox's onion service: HTTP/1.1 over one Tor
//! stream per operation, with keep-alive inside it. The requests themselves are
//! built and read by `nightjar_mailbox::client`; this module only moves them,
//! solves proof of work off the async workers, splits batches to the mailbox's
//! limits and follows its clock.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use nightjar_mailbox::client::{self, Client, ClientError, SlotKey};
use nightjar_mailbox::wire::{BlobId, Info, ROOM_CELL_LEN, RoomKey, SlotId};
use nightjar_proto::cell::CELL_SIZE;
use nightjar_proto::onion::OnionAddress;
use nightjar_tor::{BoxStream, ConnectOptions, IsolationKey, TorError, Transport};
use tokio::task::JoinHandle;

/// The virtual port of a mailbox's onion service.
pub(crate) const MAILBOX_PORT: u16 = 80;
/// Every operation gives up after this long; only a guard against hangs.
const OPERATION_LIMIT: Duration = Duration::from_secs(120);
/// Nonces tried per deposit: 16 times the expected work at the default
/// mailbox's highest difficulty (24 bits), so a solution is all but certain.
const POW_ATTEMPTS: u64 = 1 << 28;
/// Beyond this difficulty no solution fits the attempt budget; refusing at
/// once spares the CPU.
const MAX_DIFFICULTY: u8 = 28;
/// Largest answer read (a full fetch answer of the default mailbox is about
/// 400 KiB).
const MAX_ANSWER: usize = 8 << 20;
/// Cells asked for in one room read request (the mailbox may answer fewer).
const ROOM_READ_MAX: u32 = 256;
/// Most cells one room read takes, over several requests.
const ROOM_READ_CELLS: usize = 4096;
/// Blob ids in the first ack request; halved while the mailbox says the
/// request is too large (its limit is not in `/v2/info`).
const ACK_IDS_PER_REQUEST: usize = 256;

/// Why a mailbox operation failed. Tor's errors may name the onion address, so
/// this is for debug logs only.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CourierError {
    /// No stream to the mailbox.
    #[error("mailbox unreachable: {0}")]
    Tor(#[from] TorError),
    /// The stream broke or did not carry HTTP.
    #[error("HTTP to the mailbox failed: {0}")]
    Http(String),
    /// The mailbox refused, or answered what we could not read.
    #[error(transparent)]
    Mailbox(#[from] ClientError),
    /// The operation took longer than its limit.
    #[error("the mailbox did not answer in time")]
    Timeout,
}

/// A mailbox and the circuit isolation to reach it with.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    pub onion: OnionAddress,
    pub isolation: String,
}

/// `GET /v2/info`.
pub(crate) async fn info(
    transport: &dyn Transport,
    mailbox: &Mailbox,
) -> Result<Info, CourierError> {
    limited(async {
        let mut session = Session::open(transport, mailbox).await?;
        Ok(session.info().await?.info)
    })
    .await
}

/// Deposits blobs (all into one slot) over one connection: info, then each
/// deposit in order, stopping at the first failure. A deposit refused for its
/// work (the challenge rotated or the difficulty rose since info) is retried
/// once with fresh info. Returns the mailbox's instance id, which every blob
/// was stored under.
pub(crate) async fn deposit(
    transport: &dyn Transport,
    mailbox: &Mailbox,
    slot_seed: &[u8; 32],
    blobs: &[[u8; CELL_SIZE]],
) -> Result<[u8; 16], CourierError> {
    let slot = SlotKey::from_seed(slot_seed).slot();
    limited(async {
        let mut session = Session::open(transport, mailbox).await?;
        session.deposit_all(slot, blobs).await
    })
    .await
}

/// Fetches every blob in the given slots, repeating for slots the mailbox cut
/// short. Returns, per input index, the blobs with their ids, oldest first. A
/// slot holding more than one fetch answer carries yields the first answer's
/// worth; the rest comes after those are acked.
pub(crate) async fn fetch(
    transport: &dyn Transport,
    mailbox: &Mailbox,
    slots: &[&SlotKey],
) -> Result<Vec<Vec<(BlobId, Vec<u8>)>>, CourierError> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    limited(async {
        let mut session = Session::open(transport, mailbox).await?;
        session.fetch_all(slots).await
    })
    .await
}

/// Posts cells to a room, in order, over one connection: info, then each post,
/// stopping at the first failure. A post refused for its work is retried once
/// with fresh info. Returns the numbers of the cells the room took (all of
/// them, or those before the failure) and the failure.
pub(crate) async fn room_post(
    transport: &dyn Transport,
    mailbox: &Mailbox,
    room: &RoomKey,
    cells: &[Vec<u8>],
) -> (Vec<u64>, Option<CourierError>) {
    let mut seqs = Vec::with_capacity(cells.len());
    let result = limited(async {
        let mut session = Session::open(transport, mailbox).await?;
        session.room_post_all(room, cells, &mut seqs).await
    })
    .await;
    (seqs, result.err())
}

/// A room's cells numbered above `after`, oldest first, and the number of the
/// oldest cell the room still holds.
pub(crate) async fn room_read(
    transport: &dyn Transport,
    mailbox: &Mailbox,
    room: &RoomKey,
    after: u64,
) -> Result<(Vec<(u64, Vec<u8>)>, Option<u64>), CourierError> {
    limited(async {
        let mut session = Session::open(transport, mailbox).await?;
        session.room_read_all(room, after).await
    })
    .await
}

/// Acks (deletes) blob ids per slot. Ids a slot no longer holds are ignored by
/// the mailbox, so repeating an ack is harmless.
pub(crate) async fn ack(
    transport: &dyn Transport,
    mailbox: &Mailbox,
    items: &[(&SlotKey, Vec<BlobId>)],
) -> Result<(), CourierError> {
    if items.iter().all(|(_, ids)| ids.is_empty()) {
        return Ok(());
    }
    limited(async {
        let mut session = Session::open(transport, mailbox).await?;
        session.ack_all(items).await
    })
    .await
}

async fn limited<T>(op: impl Future<Output = Result<T, CourierError>>) -> Result<T, CourierError> {
    tokio::time::timeout(OPERATION_LIMIT, op)
        .await
        .unwrap_or(Err(CourierError::Timeout))
}

/// What `/v2/info` said, and when: signed timestamps follow the mailbox's
/// clock, not ours, which may be skewed.
struct Fresh {
    info: Info,
    at: Instant,
}

impl Fresh {
    /// The mailbox's time now, as estimated from its answer.
    fn mailbox_now(&self) -> u64 {
        self.info.time.saturating_add(self.at.elapsed().as_secs())
    }
}

/// One HTTP connection to a mailbox.
struct Session {
    client: Client,
    sender: http1::SendRequest<Full<Bytes>>,
    connection: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Session {
    async fn open(transport: &dyn Transport, mailbox: &Mailbox) -> Result<Self, CourierError> {
        let options = ConnectOptions {
            isolation: IsolationKey(mailbox.isolation.clone()),
            client_auth: None,
        };
        let stream = transport
            .connect(&mailbox.onion, MAILBOX_PORT, &options)
            .await?;
        let client = Client::new(mailbox.onion.to_string())?;
        Self::over(stream, client).await
    }

    async fn over(stream: BoxStream, client: Client) -> Result<Self, CourierError> {
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_error)?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("mailbox connection ended: {e}");
            }
        });
        Ok(Session {
            client,
            sender,
            connection,
        })
    }

    async fn send(&mut self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, CourierError> {
        self.sender.ready().await.map_err(http_error)?;
        let response = self
            .sender
            .send_request(request.map(|body| Full::new(Bytes::from(body))))
            .await
            .map_err(http_error)?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| CourierError::Http(e.to_string()))?
            .to_bytes();
        Ok(Response::from_parts(parts, body.to_vec()))
    }

    async fn info(&mut self) -> Result<Fresh, CourierError> {
        let response = self.send(self.client.info_request()?).await?;
        let info = client::parse_info(&response)?;
        if info.max_batch == 0 {
            return Err(ClientError::BadResponse("max_batch is zero".into()).into());
        }
        Ok(Fresh {
            info,
            at: Instant::now(),
        })
    }

    async fn deposit_all(
        &mut self,
        slot: SlotId,
        blobs: &[[u8; CELL_SIZE]],
    ) -> Result<[u8; 16], CourierError> {
        let mut info = self.info().await?.info;
        let mut next = 0;
        let mut refreshed = false;
        while let Some(blob) = blobs.get(next) {
            match self.deposit_one(&info, slot, blob).await {
                Ok(()) => {
                    next += 1;
                    refreshed = false;
                }
                Err(CourierError::Mailbox(ClientError::Refused { status, .. }))
                    if status == StatusCode::FORBIDDEN && !refreshed =>
                {
                    refreshed = true;
                    let fresh = self.info().await?.info;
                    // A new instance lost what this call stored already.
                    if fresh.instance != info.instance {
                        next = 0;
                    }
                    info = fresh;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(info.instance.0)
    }

    async fn deposit_one(
        &mut self,
        info: &Info,
        slot: SlotId,
        blob: &[u8; CELL_SIZE],
    ) -> Result<(), CourierError> {
        if info.pow.difficulty > MAX_DIFFICULTY {
            return Err(ClientError::NoSolution.into());
        }
        let (client, info_copy, blob) = (self.client.clone(), info.clone(), *blob);
        let request = tokio::task::spawn_blocking(move || {
            client.deposit_request(&info_copy, &slot, &blob, POW_ATTEMPTS)
        })
        .await
        // The worker only ends without an answer if it panicked or the
        // runtime is shutting down: either way there is no solution.
        .map_err(|_| ClientError::NoSolution)??;
        let response = self.send(request).await?;
        client::parse_deposit(&response)?;
        Ok(())
    }

    async fn room_post_all(
        &mut self,
        room: &RoomKey,
        cells: &[Vec<u8>],
        seqs: &mut Vec<u64>,
    ) -> Result<(), CourierError> {
        let mut info = self.info().await?.info;
        let mut refreshed = false;
        while let Some(cell) = cells.get(seqs.len()) {
            if cell.len() != ROOM_CELL_LEN || info.pow.difficulty > MAX_DIFFICULTY {
                return Err(ClientError::NoSolution.into());
            }
            let (client, work, room, cell) = (
                self.client.clone(),
                info.clone(),
                room.clone(),
                cell.clone(),
            );
            let request = tokio::task::spawn_blocking(move || {
                client.room_post_request(&work, &room, &cell, POW_ATTEMPTS)
            })
            .await
            .map_err(|_| ClientError::NoSolution)??;
            match client::parse_room_post(&self.send(request).await?) {
                Ok(posted) => {
                    seqs.push(posted.seq);
                    refreshed = false;
                }
                Err(ClientError::Refused { status, .. })
                    if status == StatusCode::FORBIDDEN && !refreshed =>
                {
                    refreshed = true;
                    info = self.info().await?.info;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn room_read_all(
        &mut self,
        room: &RoomKey,
        mut after: u64,
    ) -> Result<(Vec<(u64, Vec<u8>)>, Option<u64>), CourierError> {
        let mut cells = Vec::new();
        loop {
            let request = self.client.room_read_request(room, after, ROOM_READ_MAX)?;
            let answer = client::parse_room_read(&self.send(request).await?)?;
            let before = after;
            for cell in answer.cells {
                if cell.seq > after {
                    after = cell.seq;
                    cells.push((cell.seq, cell.data.0));
                }
            }
            // A relay that always says "more" gets no more than this from one
            // read; the next read goes on from the last cell taken.
            if !answer.more || after == before || cells.len() >= ROOM_READ_CELLS {
                return Ok((cells, answer.oldest));
            }
        }
    }

    async fn fetch_all(
        &mut self,
        keys: &[&SlotKey],
    ) -> Result<Vec<Vec<(BlobId, Vec<u8>)>>, CourierError> {
        let fresh = self.info().await?;
        let mut found: Vec<Vec<(BlobId, Vec<u8>)>> = vec![Vec::new(); keys.len()];
        let mut seen: Vec<HashSet<BlobId>> = vec![HashSet::new(); keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        while !pending.is_empty() {
            let mut again = Vec::new();
            let mut progress = false;
            for chunk in pending.chunks(fresh.info.max_batch) {
                let batch: Vec<&SlotKey> = chunk.iter().map(|&i| keys[i]).collect();
                let request = self.client.fetch_request(&batch, fresh.mailbox_now())?;
                let answer = client::parse_fetch(&self.send(request).await?)?;
                if answer.slots.len() != chunk.len()
                    || answer
                        .slots
                        .iter()
                        .zip(&batch)
                        .any(|(s, k)| s.slot != k.slot())
                {
                    return Err(ClientError::BadResponse("fetch answer out of order".into()).into());
                }
                for (position, (&index, slot)) in chunk.iter().zip(answer.slots).enumerate() {
                    for blob in slot.blobs {
                        if seen[index].insert(blob.id) {
                            found[index].push((blob.id, blob.data.0));
                            progress = true;
                        }
                    }
                    // The first item of a request had the whole answer to
                    // itself: asking again would bring the same blobs.
                    if slot.more && position != 0 {
                        again.push(index);
                    }
                }
            }
            if !progress {
                break;
            }
            pending = again;
        }
        Ok(found)
    }

    async fn ack_all(&mut self, items: &[(&SlotKey, Vec<BlobId>)]) -> Result<(), CourierError> {
        let fresh = self.info().await?;
        let mut queue: Vec<Unacked<'_>> = items
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(key, ids)| (*key, ids.as_slice()))
            .collect();
        let mut per_request = ACK_IDS_PER_REQUEST;
        while !queue.is_empty() {
            let (batch, rest) = pack_acks(&queue, fresh.info.max_batch, per_request);
            let ids: usize = batch.iter().map(|(_, ids)| ids.len()).sum();
            let request = self.client.ack_request(&batch, fresh.mailbox_now())?;
            match client::parse_ack(&self.send(request).await?) {
                Ok(_) => queue = rest,
                Err(ClientError::Refused { status, .. })
                    if status == StatusCode::BAD_REQUEST && ids > 1 =>
                {
                    per_request = ids / 2;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Blob ids of one slot still to be acked.
type Unacked<'a> = (&'a SlotKey, &'a [BlobId]);

/// The next ack request's items (at most `max_items`, at most `max_ids` ids in
/// all; a slot's ids may be split over items) and what remains after it.
fn pack_acks<'a>(
    queue: &[Unacked<'a>],
    max_items: usize,
    max_ids: usize,
) -> (Vec<(&'a SlotKey, Vec<BlobId>)>, Vec<Unacked<'a>>) {
    let mut batch = Vec::new();
    let mut room = max_ids.max(1);
    let mut rest = Vec::new();
    for &(key, ids) in queue {
        if batch.len() < max_items.max(1) && room > 0 {
            let (now, later) = ids.split_at(ids.len().min(room));
            room -= now.len();
            batch.push((key, now.to_vec()));
            if !later.is_empty() {
                rest.push((key, later));
            }
        } else {
            rest.push((key, ids));
        }
    }
    (batch, rest)
}

fn http_error(e: hyper::Error) -> CourierError {
    CourierError::Http(e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use nightjar_mailbox::Config;
    use nightjar_tor::forward::Forward;
    use nightjar_tor::{LoopbackNetwork, ServiceConfig, ServiceKey};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use zeroize::Zeroizing;

    use super::*;

    const MAILBOX_SEED: [u8; 32] = [0x4d; 32];

    /// A mailbox server on loopback TCP, published on the loopback network.
    struct Running {
        mailbox: nightjar_mailbox::Mailbox,
        forward: Forward,
        stop: oneshot::Sender<()>,
        server: JoinHandle<()>,
    }

    impl Running {
        async fn start(tor: &dyn Transport, config: Config) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let target = listener.local_addr().unwrap();
            let mailbox = nightjar_mailbox::Mailbox::new(config).unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            let served = nightjar_mailbox::serve_mailbox(listener, mailbox.clone(), async {
                let _ = stopped.await;
            });
            let server = tokio::spawn(async move { served.await.unwrap() });
            let service = ServiceConfig {
                nickname: "mailbox".into(),
                key: ServiceKey::Seed(Zeroizing::new(MAILBOX_SEED)),
                virtual_port: MAILBOX_PORT,
                authorized_clients: None,
            };
            let forward = Forward::start(tor, service, target).await.unwrap();
            Running {
                mailbox,
                forward,
                stop,
                server,
            }
        }

        fn target(&self) -> Mailbox {
            Mailbox {
                onion: self.forward.address(),
                isolation: "mailbox-test".into(),
            }
        }

        /// Takes the server and its onion down: everything it held is gone.
        async fn stop(self) {
            self.forward.shutdown().await.unwrap();
            self.stop.send(()).unwrap();
            self.server.await.unwrap();
        }
    }

    fn config() -> Config {
        let mut c = Config::default();
        c.pow.min_difficulty = 4;
        c.pow.max_difficulty = 4;
        c
    }

    fn blob(n: u8) -> [u8; CELL_SIZE] {
        let mut b = [n; CELL_SIZE];
        b[0] = n.wrapping_mul(31);
        b
    }

    fn key(n: u8) -> SlotKey {
        SlotKey::from_seed(&[n; 32])
    }

    struct World {
        _net: LoopbackNetwork,
        server_tor: Arc<dyn Transport>,
        tor: Arc<dyn Transport>,
    }

    fn world() -> World {
        let net = LoopbackNetwork::new();
        World {
            server_tor: net.transport(),
            tor: net.transport(),
            _net: net,
        }
    }

    #[tokio::test]
    async fn deposits_are_fetched_then_acked_away() {
        let w = world();
        let running = Running::start(w.server_tor.as_ref(), config()).await;
        let target = running.target();
        let seed = [7u8; 32];
        let blobs = [blob(1), blob(2), blob(3)];

        let instance = deposit(w.tor.as_ref(), &target, &seed, &blobs)
            .await
            .unwrap();
        assert_eq!(instance, running.mailbox.info().instance.0);
        assert_eq!(
            info(w.tor.as_ref(), &target).await.unwrap().instance.0,
            instance
        );

        let slot = SlotKey::from_seed(&seed);
        let other = key(9);
        let found = fetch(w.tor.as_ref(), &target, &[&slot, &other])
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert!(found[1].is_empty());
        let got: Vec<_> = found[0].iter().map(|(_, data)| data.as_slice()).collect();
        let want: Vec<_> = blobs.iter().map(|b| b.as_slice()).collect();
        assert_eq!(got, want);
        for (id, data) in &found[0] {
            assert_eq!(*id, BlobId::of_blob(data));
        }

        let ids = found[0].iter().map(|(id, _)| *id).collect();
        ack(w.tor.as_ref(), &target, &[(&slot, ids)]).await.unwrap();
        assert_eq!(running.mailbox.stats().blobs, 0);
        let again = fetch(w.tor.as_ref(), &target, &[&slot]).await.unwrap();
        assert_eq!(again, vec![Vec::new()]);
        running.stop().await;
    }

    #[tokio::test]
    async fn a_restarted_mailbox_has_a_new_instance_and_nothing_stored() {
        let w = world();
        let first = Running::start(w.server_tor.as_ref(), config()).await;
        let target = first.target();
        let seed = [8u8; 32];
        let before = deposit(w.tor.as_ref(), &target, &seed, &[blob(1)])
            .await
            .unwrap();
        first.stop().await;

        let second = Running::start(w.server_tor.as_ref(), config()).await;
        assert_eq!(second.target().onion, target.onion);
        let after = info(w.tor.as_ref(), &target).await.unwrap().instance.0;
        assert_ne!(after, before);
        let found = fetch(w.tor.as_ref(), &target, &[&SlotKey::from_seed(&seed)])
            .await
            .unwrap();
        assert_eq!(found, vec![Vec::new()]);
        // Depositing again reports the new instance.
        let redeposited = deposit(w.tor.as_ref(), &target, &seed, &[blob(1)])
            .await
            .unwrap();
        assert_eq!(redeposited, after);
        second.stop().await;
    }

    #[tokio::test]
    async fn refusals_come_back_as_mailbox_errors() {
        let w = world();
        let mut small = config();
        small.slot_quota = 2;
        let running = Running::start(w.server_tor.as_ref(), small).await;
        let target = running.target();
        let seed = [5u8; 32];
        // Deposits stop at the first refusal; what came before stays stored.
        let err = deposit(w.tor.as_ref(), &target, &seed, &[blob(1), blob(2), blob(3)])
            .await
            .unwrap_err();
        match err {
            CourierError::Mailbox(ClientError::Refused { status, reason }) => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                assert_eq!(reason, "slot full");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(running.mailbox.stats().blobs, 2);
        running.stop().await;

        // A mailbox taking blobs of another size: nothing is sent at all.
        let mut other_size = config();
        other_size.blob_size = 100;
        let running = Running::start(w.server_tor.as_ref(), other_size).await;
        let err = deposit(w.tor.as_ref(), &running.target(), &seed, &[blob(1)])
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            CourierError::Mailbox(ClientError::WrongBlobSize {
                expected: 100,
                got: CELL_SIZE
            })
        ));
        assert_eq!(running.mailbox.stats().blobs, 0);
        running.stop().await;
    }

    #[tokio::test]
    async fn an_unreachable_mailbox_is_a_tor_error() {
        let w = world();
        let target = Mailbox {
            onion: OnionAddress::from_public_key(
                ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                    .verifying_key()
                    .to_bytes(),
            ),
            isolation: "mailbox-test".into(),
        };
        let err = info(w.tor.as_ref(), &target).await.unwrap_err();
        assert!(matches!(err, CourierError::Tor(_)), "{err:?}");
    }

    #[tokio::test]
    async fn batches_follow_the_mailbox_limits() {
        let w = world();
        let mut c = config();
        c.max_batch = 2;
        c.max_fetch_blobs = 3;
        let running = Running::start(w.server_tor.as_ref(), c).await;
        let target = running.target();
        // 1, 2, 3, 1, 2 blobs: the fourth slot finds the first answer of its
        // request used up and is asked again.
        let counts = [1u8, 2, 3, 1, 2];
        let keys: Vec<SlotKey> = (0..counts.len() as u8).map(|i| key(20 + i)).collect();
        let mut expected = Vec::new();
        for (i, &count) in counts.iter().enumerate() {
            let blobs: Vec<_> = (0..count).map(|n| blob(10 * i as u8 + n)).collect();
            deposit(w.tor.as_ref(), &target, &[20 + i as u8; 32], &blobs)
                .await
                .unwrap();
            expected.push(blobs);
        }

        let refs: Vec<&SlotKey> = keys.iter().collect();
        let found = fetch(w.tor.as_ref(), &target, &refs).await.unwrap();
        for (got, want) in found.iter().zip(&expected) {
            let got: Vec<_> = got.iter().map(|(_, d)| d.as_slice()).collect();
            let want: Vec<_> = want.iter().map(|b| b.as_slice()).collect();
            assert_eq!(got, want);
        }

        // Nine ids over five slots: more items than a request takes, and more
        // ids than this mailbox takes in one request.
        let acks: Vec<_> = keys
            .iter()
            .zip(&found)
            .map(|(k, blobs)| (k, blobs.iter().map(|(id, _)| *id).collect()))
            .collect();
        ack(w.tor.as_ref(), &target, &acks).await.unwrap();
        assert_eq!(running.mailbox.stats().blobs, 0);
        running.stop().await;
    }

    #[tokio::test]
    async fn a_slot_larger_than_one_answer_drains_after_acks() {
        let w = world();
        let mut c = config();
        c.max_fetch_blobs = 3;
        let running = Running::start(w.server_tor.as_ref(), c).await;
        let target = running.target();
        let seed = [40u8; 32];
        let blobs: Vec<_> = (0..4).map(blob).collect();
        deposit(w.tor.as_ref(), &target, &seed, &blobs)
            .await
            .unwrap();

        let slot = SlotKey::from_seed(&seed);
        let first = fetch(w.tor.as_ref(), &target, &[&slot]).await.unwrap();
        assert_eq!(first[0].len(), 3);
        let ids = first[0].iter().map(|(id, _)| *id).collect();
        ack(w.tor.as_ref(), &target, &[(&slot, ids)]).await.unwrap();
        let rest = fetch(w.tor.as_ref(), &target, &[&slot]).await.unwrap();
        assert_eq!(rest[0].len(), 1);
        assert_eq!(rest[0][0].1, blobs[3].to_vec());
        running.stop().await;
    }

    #[test]
    fn acks_are_packed_within_both_limits() {
        let (a, b) = (key(1), key(2));
        let ids: Vec<BlobId> = (0..5u8).map(|i| BlobId([i; 16])).collect();
        let queue = vec![(&a, &ids[..3]), (&b, &ids[3..])];
        let (batch, rest) = pack_acks(&queue, 8, 4);
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].1, ids[..3].to_vec());
        assert_eq!(batch[1].1, ids[3..4].to_vec());
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1, &ids[4..]);
        let (batch, rest) = pack_acks(&queue, 1, 100);
        assert_eq!(batch.len(), 1);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1, &ids[3..]);
    }
}

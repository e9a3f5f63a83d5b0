//! The mailbox served on a real loopback listener, driven by the client module
//! over hyper's client connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use nightjar_mailbox::client::{self, Client, SlotKey};
use nightjar_mailbox::wire::{ROOM_CELL_LEN, RoomKey};
use nightjar_mailbox::{Config, serve};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn send(sender: &mut Sender, req: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
    sender.ready().await.unwrap();
    let resp = sender
        .send_request(req.map(|b| Full::new(Bytes::from(b))))
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes().to_vec())
}

type Server = tokio::task::JoinHandle<Result<(), nightjar_mailbox::MailboxError>>;

/// A mailbox on a loopback listener, at a low difficulty; send on the
/// channel to stop it.
async fn start() -> (std::net::SocketAddr, oneshot::Sender<()>, Server) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.pow.min_difficulty = 8;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, config, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

#[tokio::test]
async fn deposit_and_drain_over_loopback() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (addr, stop, server) = start().await;

        let client = Client::new("mailbox.test").unwrap();
        let mut sender = connect(addr).await;
        let info =
            client::parse_info(&send(&mut sender, client.info_request().unwrap()).await).unwrap();
        assert_eq!(info.pow.difficulty, 8);

        // A sender deposits one blob into each of three rotating slots...
        let keys: Vec<_> = (0..3).map(|_| SlotKey::random().unwrap()).collect();
        for (i, key) in keys.iter().enumerate() {
            let blob = vec![i as u8; info.blob_size];
            let req = client
                .deposit_request(&info, &key.slot(), &blob, 1 << 24)
                .unwrap();
            let resp = send(&mut sender, req).await;
            assert_eq!(resp.status(), StatusCode::CREATED);
        }

        // ...and the recipient, on its own connection, drains them in one batch.
        let mut recipient = connect(addr).await;
        let refs: Vec<_> = keys.iter().collect();
        let fetched = send(
            &mut recipient,
            client.fetch_request(&refs, info.time).unwrap(),
        )
        .await;
        let fetched = client::parse_fetch(&fetched).unwrap();
        for (i, slot) in fetched.slots.iter().enumerate() {
            assert_eq!(slot.slot, keys[i].slot());
            assert_eq!(slot.blobs.len(), 1);
            assert_eq!(slot.blobs[0].data.0, vec![i as u8; info.blob_size]);
        }
        let acks: Vec<_> = fetched
            .slots
            .iter()
            .zip(&keys)
            .map(|(s, k)| (k, vec![s.blobs[0].id]))
            .collect();
        let acked = send(
            &mut recipient,
            client.ack_request(&acks, info.time).unwrap(),
        )
        .await;
        assert!(
            client::parse_ack(&acked)
                .unwrap()
                .slots
                .iter()
                .all(|s| s.deleted == 1)
        );
        let listed = send(
            &mut recipient,
            client.list_request(&refs, info.time).unwrap(),
        )
        .await;
        assert!(
            client::parse_list(&listed)
                .unwrap()
                .slots
                .iter()
                .all(|s| s.ids.is_empty())
        );

        // A refusal arrives as a typed error.
        let refused = send(
            &mut recipient,
            client.list_request(&refs, info.time - 3600).unwrap(),
        )
        .await;
        match client::parse_list(&refused) {
            Err(client::ClientError::Refused { status, .. }) => {
                assert_eq!(status, StatusCode::FORBIDDEN)
            }
            other => panic!("{other:?}"),
        }

        // Graceful shutdown: the server returns once its connections close.
        stop.send(()).unwrap();
        drop(sender);
        drop(recipient);
        server.await.unwrap().unwrap();
    })
    .await
    .expect("end-to-end test hung");
}

#[tokio::test]
async fn a_room_over_loopback() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (addr, stop, server) = start().await;

        let client = Client::new("mailbox.test").unwrap();
        let room = RoomKey::from_bytes(&[0x42; 32]);
        // One member posts two cells on its connection...
        let mut poster = connect(addr).await;
        let info =
            client::parse_info(&send(&mut poster, client.info_request().unwrap()).await).unwrap();
        let mut seqs = Vec::new();
        for n in 0..2u8 {
            let req = client
                .room_post_request(&info, &room, &[n; ROOM_CELL_LEN], 1 << 24)
                .unwrap();
            let resp = send(&mut poster, req).await;
            assert_eq!(resp.status(), StatusCode::CREATED);
            seqs.push(client::parse_room_post(&resp).unwrap().seq);
        }
        // ...and another, on its own, reads them in order.
        let mut reader = connect(addr).await;
        let read = send(&mut reader, client.room_read_request(&room, 0, 10).unwrap()).await;
        let read = client::parse_room_read(&read).unwrap();
        let got: Vec<_> = read.cells.iter().map(|c| (c.seq, c.data.0[0])).collect();
        assert_eq!(got, vec![(seqs[0], 0), (seqs[1], 1)]);
        assert_eq!((read.oldest, read.more), (Some(seqs[0]), false));

        stop.send(()).unwrap();
        drop(poster);
        drop(reader);
        server.await.unwrap().unwrap();
    })
    .await
    .expect("end-to-end test hung");
}

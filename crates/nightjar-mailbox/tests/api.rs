//! Every endpoint through `router()`, on a hand-moved clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use nightjar_mailbox::client::{self, Client, SlotKey};
use nightjar_mailbox::clock::ManualClock;
use nightjar_mailbox::pow;
use nightjar_mailbox::wire::{
    BlobId, DepositBody, ErrorBody, Info, Operation, ROOM_CELL_LEN, ROOM_POST_HEADER_LEN,
    RoomCells, RoomKey, RoomPostBody, RoomPosted, SlotId,
};
use nightjar_mailbox::{Config, Mailbox, router};
use tower::ServiceExt;

const T0: u64 = 1_700_000_000;
const SIZE: usize = nightjar_proto::cell::CELL_SIZE;

struct Harness {
    app: Router,
    mailbox: Mailbox,
    clock: ManualClock,
    client: Client,
}

fn config() -> Config {
    let mut c = Config::default();
    c.max_blobs = 8;
    c.slot_quota = 4;
    c.ttl_secs = 1000;
    c.max_batch = 4;
    c.pow.min_difficulty = 6;
    c.pow.max_difficulty = 10;
    c
}

fn harness_with(config: Config) -> Harness {
    let clock = ManualClock::new(T0);
    let mailbox = Mailbox::with_clock(config, Arc::new(clock.clone())).unwrap();
    Harness {
        app: router(mailbox.clone()),
        mailbox,
        clock,
        client: Client::new("mailbox.test").unwrap(),
    }
}

fn harness() -> Harness {
    harness_with(config())
}

fn blob(n: u8) -> Vec<u8> {
    vec![n; SIZE]
}

impl Harness {
    async fn send(&self, req: Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        let resp = self.app.clone().oneshot(req.map(Body::from)).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        http::Response::from_parts(parts, bytes)
    }

    async fn raw(&self, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(body)
            .unwrap();
        let resp = self.send(req).await;
        let status = resp.status();
        (status, String::from_utf8_lossy(resp.body()).into_owned())
    }

    async fn info(&self) -> Info {
        client::parse_info(&self.send(self.client.info_request().unwrap()).await).unwrap()
    }

    async fn deposit(&self, slot: &SlotId, data: &[u8]) -> http::Response<Vec<u8>> {
        let info = self.info().await;
        let req = self
            .client
            .deposit_request(&info, slot, data, 1 << 24)
            .unwrap();
        self.send(req).await
    }

    fn now(&self) -> u64 {
        use nightjar_mailbox::clock::Clock;
        self.clock.now()
    }
}

/// A deposit body whose work is certainly insufficient at `difficulty`.
fn bad_work(info: &Info, slot: &SlotId, data: &[u8]) -> Vec<u8> {
    let hash = *blake3::hash(data).as_bytes();
    let challenge = info.pow.challenge.0;
    let mut n = 0u128;
    loop {
        let nonce = n.to_le_bytes();
        let d = pow::digest(&challenge, slot, &hash, &nonce);
        if pow::leading_zero_bits(&d) < u32::from(info.pow.difficulty) {
            return DepositBody {
                slot: *slot,
                challenge,
                nonce,
                blob: data,
            }
            .to_bytes();
        }
        n += 1;
    }
}

fn reason(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body).unwrap().error
}

fn invalid_slot() -> SlotId {
    (0u8..=255)
        .map(|i| {
            let mut b = [i; 32];
            b[31] &= 0x7f;
            SlotId(b)
        })
        .find(|s| s.verifying_key().is_none())
        .unwrap()
}

#[tokio::test]
async fn info_describes_the_mailbox() {
    let h = harness();
    let info = h.info().await;
    assert_eq!(info.version, 2);
    assert_eq!(info.blob_size, SIZE);
    assert_eq!(info.time, T0);
    assert_eq!(info.pow.difficulty, 6);
    assert_eq!(info.max_batch, 4);
    // The instance id is the mailbox's own: the same on every answer, and
    // different for a new mailbox (as after a restart, which loses every blob).
    assert_eq!(h.info().await.instance, info.instance);
    assert_eq!(info.instance, h.mailbox.info().instance);
    let restarted = harness();
    assert_ne!(restarted.info().await.instance, info.instance);
}

#[tokio::test]
async fn info_carries_the_instance_as_hex() {
    let h = harness();
    let (status, body) = h.raw("GET", "/v2/info", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let hex = json["instance"].as_str().unwrap();
    assert_eq!(hex.len(), 32);
    assert_eq!(
        nightjar_mailbox::wire::decode_hex::<16>(hex),
        Some(h.mailbox.info().instance.0)
    );
}

#[tokio::test]
async fn deposit_list_fetch_ack_round_trip() {
    let h = harness();
    let key = SlotKey::from_seed(&[1; 32]);
    let resp = h.deposit(&key.slot(), &blob(1)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let receipt = client::parse_deposit(&resp).unwrap();
    assert!(receipt.stored);
    assert_eq!(receipt.id, BlobId::of_blob(&blob(1)));
    // The same blob again (fresh work) is recognised, not stored twice.
    let again = h.deposit(&key.slot(), &blob(1)).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(!client::parse_deposit(&again).unwrap().stored);
    assert_eq!(
        h.deposit(&key.slot(), &blob(2)).await.status(),
        StatusCode::CREATED
    );

    let list = h
        .send(h.client.list_request(&[&key], h.now()).unwrap())
        .await;
    let list = client::parse_list(&list).unwrap();
    assert_eq!(list.slots.len(), 1);
    assert_eq!(
        list.slots[0].ids,
        vec![BlobId::of_blob(&blob(1)), BlobId::of_blob(&blob(2))]
    );

    let fetched = h
        .send(h.client.fetch_request(&[&key], h.now()).unwrap())
        .await;
    let fetched = client::parse_fetch(&fetched).unwrap();
    let blobs = &fetched.slots[0].blobs;
    assert_eq!(blobs.len(), 2);
    assert_eq!(blobs[0].data.0, blob(1));
    assert_eq!(blobs[1].data.0, blob(2));
    assert!(!fetched.slots[0].more);

    let ids = vec![blobs[0].id, BlobId([0xee; 16])];
    let acked = h
        .send(h.client.ack_request(&[(&key, ids)], h.now()).unwrap())
        .await;
    assert_eq!(client::parse_ack(&acked).unwrap().slots[0].deleted, 1);
    let left = h
        .send(h.client.list_request(&[&key], h.now()).unwrap())
        .await;
    assert_eq!(
        client::parse_list(&left).unwrap().slots[0].ids,
        vec![BlobId::of_blob(&blob(2))]
    );
    assert_eq!(h.mailbox.stats().blobs, 1);
}

#[tokio::test]
async fn batches_cover_many_slots_and_fetch_is_capped() {
    let mut c = config();
    c.max_fetch_blobs = 3;
    let h = harness_with(c);
    let keys: Vec<_> = (0..3u8)
        .map(|i| SlotKey::from_seed(&[i + 10; 32]))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        for j in 0..2u8 {
            let resp = h.deposit(&k.slot(), &blob(i as u8 * 10 + j)).await;
            assert_eq!(resp.status(), StatusCode::CREATED);
        }
    }
    let refs: Vec<_> = keys.iter().collect();
    let fetched = h
        .send(h.client.fetch_request(&refs, h.now()).unwrap())
        .await;
    let fetched = client::parse_fetch(&fetched).unwrap();
    let counts: Vec<_> = fetched
        .slots
        .iter()
        .map(|s| (s.blobs.len(), s.more))
        .collect();
    assert_eq!(counts, vec![(2, false), (1, true), (0, true)]);
    let acks: Vec<(&SlotKey, Vec<BlobId>)> = fetched
        .slots
        .iter()
        .zip(&keys)
        .map(|(s, k)| (k, s.blobs.iter().map(|b| b.id).collect()))
        .collect();
    let acked = h.send(h.client.ack_request(&acks, h.now()).unwrap()).await;
    let deleted: Vec<_> = client::parse_ack(&acked)
        .unwrap()
        .slots
        .iter()
        .map(|s| s.deleted)
        .collect();
    assert_eq!(deleted, vec![2, 1, 0]);
    assert_eq!(h.mailbox.stats().blobs, 3);
}

#[tokio::test]
async fn deposits_of_the_wrong_size_are_refused() {
    let h = harness();
    let key = SlotKey::from_seed(&[1; 32]);
    let info = h.info().await;
    for len in [0, 1, SIZE - 1] {
        let body = DepositBody {
            slot: key.slot(),
            challenge: info.pow.challenge.0,
            nonce: [0; 16],
            blob: &vec![0; len],
        };
        let (status, text) = h.raw("POST", "/v2/deposit", body.to_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{len}");
        assert!(text.contains(&format!("exactly {SIZE} bytes")), "{text}");
    }
    let (status, _) = h.raw("POST", "/v2/deposit", vec![0; 10]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let long = DepositBody {
        slot: key.slot(),
        challenge: info.pow.challenge.0,
        nonce: [0; 16],
        blob: &blob(0),
    }
    .to_bytes();
    let mut long = long;
    long.push(0);
    let (status, text) = h.raw("POST", "/v2/deposit", long).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("too large"));
    assert_eq!(h.mailbox.stats().blobs, 0);
}

#[tokio::test]
async fn wrong_work_and_stale_challenges_are_refused() {
    let h = harness();
    let key = SlotKey::from_seed(&[1; 32]);
    let info = h.info().await;
    let (status, text) = h
        .raw(
            "POST",
            "/v2/deposit",
            bad_work(&info, &key.slot(), &blob(1)),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(reason(text.as_bytes()), "insufficient proof of work");

    let mut stale = info.clone();
    stale.pow.challenge.0 = [0xab; 32];
    let req = h
        .client
        .deposit_request(&stale, &key.slot(), &blob(1), 1 << 24)
        .unwrap();
    let resp = h.send(req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(reason(resp.body()), "unknown or expired challenge");
    assert_eq!(h.mailbox.stats().blobs, 0);
}

#[tokio::test]
async fn the_previous_challenge_holds_through_its_grace_period() {
    let h = harness();
    let key = SlotKey::from_seed(&[1; 32]);
    let old = h.info().await;
    let early = h
        .client
        .deposit_request(&old, &key.slot(), &blob(1), 1 << 24)
        .unwrap();
    let late = h
        .client
        .deposit_request(&old, &key.slot(), &blob(2), 1 << 24)
        .unwrap();
    h.clock.advance(300);
    assert_ne!(h.info().await.pow.challenge, old.pow.challenge);
    assert_eq!(h.send(early).await.status(), StatusCode::CREATED);
    h.clock.advance(121);
    assert_eq!(h.send(late).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn replayed_work_is_refused() {
    let h = harness();
    let key = SlotKey::from_seed(&[1; 32]);
    let info = h.info().await;
    let req = h
        .client
        .deposit_request(&info, &key.slot(), &blob(1), 1 << 24)
        .unwrap();
    let copy = Request::builder()
        .method("POST")
        .uri("/v2/deposit")
        .body(req.body().clone())
        .unwrap();
    assert_eq!(h.send(req).await.status(), StatusCode::CREATED);
    // While the blob is stored a replay is a harmless repeat...
    let repeat = Request::builder()
        .method("POST")
        .uri("/v2/deposit")
        .body(copy.body().clone())
        .unwrap();
    assert_eq!(h.send(repeat).await.status(), StatusCode::OK);
    // ...once it is acknowledged, the spent work buys nothing.
    let ack = h
        .client
        .ack_request(&[(&key, vec![BlobId::of_blob(&blob(1))])], h.now())
        .unwrap();
    assert_eq!(
        client::parse_ack(&h.send(ack).await).unwrap().slots[0].deleted,
        1
    );
    let resp = h.send(copy).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(reason(resp.body()), "replayed request");
    assert_eq!(h.mailbox.stats().blobs, 0);
}

#[tokio::test]
async fn deposits_to_an_impossible_slot_are_refused() {
    let h = harness();
    let resp = h.deposit(&invalid_slot(), &blob(1)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(reason(resp.body()), "slot is not a valid Ed25519 key");
}

#[tokio::test]
async fn full_store_and_full_slot_are_refused() {
    let h = harness();
    let key = SlotKey::from_seed(&[1; 32]);
    for n in 0..4 {
        assert_eq!(
            h.deposit(&key.slot(), &blob(n)).await.status(),
            StatusCode::CREATED
        );
    }
    let resp = h.deposit(&key.slot(), &blob(4)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reason(resp.body()), "slot full");
    let other = SlotKey::from_seed(&[2; 32]);
    for n in 0..4 {
        assert_eq!(
            h.deposit(&other.slot(), &blob(n)).await.status(),
            StatusCode::CREATED
        );
    }
    let before = h.mailbox.stats();
    let third = SlotKey::from_seed(&[3; 32]);
    let resp = h.deposit(&third.slot(), &blob(9)).await;
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(reason(resp.body()), "mailbox full");
    let after = h.mailbox.stats();
    assert_eq!((after.blobs, after.bytes), (before.blobs, before.bytes));
    // A full store asks for the most work.
    assert_eq!(h.info().await.pow.difficulty, 10);
}

#[tokio::test]
async fn expired_blobs_disappear() {
    let h = harness();
    let key = SlotKey::from_seed(&[1; 32]);
    assert_eq!(
        h.deposit(&key.slot(), &blob(1)).await.status(),
        StatusCode::CREATED
    );
    h.clock.advance(999);
    let fetched = h
        .send(h.client.fetch_request(&[&key], h.now()).unwrap())
        .await;
    assert_eq!(
        client::parse_fetch(&fetched).unwrap().slots[0].blobs.len(),
        1
    );
    h.clock.advance(1);
    let fetched = h
        .send(h.client.fetch_request(&[&key], h.now()).unwrap())
        .await;
    assert!(
        client::parse_fetch(&fetched).unwrap().slots[0]
            .blobs
            .is_empty()
    );
    h.clock.advance(60);
    h.mailbox.maintain();
    let stats = h.mailbox.stats();
    assert_eq!((stats.blobs, stats.bytes, stats.slots), (0, 0, 0));
}

#[tokio::test]
async fn difficulty_rises_with_the_deposit_rate_and_decays() {
    let mut c = config();
    c.max_blobs = 100;
    c.slot_quota = 100;
    c.pow.target_deposits_per_period = 4;
    let h = harness_with(c);
    let key = SlotKey::from_seed(&[1; 32]);
    for n in 0..9 {
        assert_eq!(
            h.deposit(&key.slot(), &blob(n)).await.status(),
            StatusCode::CREATED
        );
    }
    h.clock.advance(30);
    // 9 deposits against a target of 4: two bits more.
    assert_eq!(h.info().await.pow.difficulty, 8);
    h.clock.advance(30);
    assert_eq!(h.info().await.pow.difficulty, 7);
    h.clock.advance(600);
    assert_eq!(h.info().await.pow.difficulty, 6);
}

async fn signed_status(h: &Harness, path: &str, body: Vec<u8>) -> (StatusCode, String) {
    let (status, text) = h.raw("POST", path, body).await;
    (status, reason(text.as_bytes()))
}

fn batch_json(items: &[nightjar_mailbox::wire::SignedItem]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "items": items })).unwrap()
}

#[tokio::test]
async fn signed_requests_are_checked() {
    let h = harness();
    let key = SlotKey::from_seed(&[1; 32]);
    let now = h.now();
    for path in ["/v2/list", "/v2/fetch", "/v2/ack"] {
        let op = match path {
            "/v2/list" => Operation::List,
            "/v2/fetch" => Operation::Fetch,
            _ => Operation::Ack,
        };
        // Malformed bodies.
        for body in [
            &b"not json"[..],
            b"{}",
            br#"{"items": "x"}"#,
            br#"{"items": [{"slot": "00"}]}"#,
        ] {
            let (status, _) = signed_status(&h, path, body.to_vec()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body:?}");
        }
        assert_eq!(
            signed_status(&h, path, batch_json(&[])).await,
            (
                StatusCode::BAD_REQUEST,
                "malformed request: no items".into()
            )
        );
        // Missing signature.
        let item = key.sign(op, now, [1; 16], Vec::new());
        let mut json = serde_json::to_value(&item).unwrap();
        json.as_object_mut().unwrap().remove("signature");
        let body = serde_json::to_vec(&serde_json::json!({ "items": [json] })).unwrap();
        assert_eq!(
            signed_status(&h, path, body).await.0,
            StatusCode::BAD_REQUEST
        );
        // A signature for another operation, another slot, or tampered.
        let wrong_op = key.sign(
            if op == Operation::List {
                Operation::Fetch
            } else {
                Operation::List
            },
            now,
            [2; 16],
            Vec::new(),
        );
        assert_eq!(
            signed_status(&h, path, batch_json(&[wrong_op])).await,
            (StatusCode::FORBIDDEN, "item 0: bad signature".into())
        );
        let mut other_slot = key.sign(op, now, [3; 16], Vec::new());
        other_slot.slot = SlotKey::from_seed(&[2; 32]).slot();
        let good = key.sign(op, now, [4; 16], Vec::new());
        assert_eq!(
            signed_status(&h, path, batch_json(&[good, other_slot])).await,
            (StatusCode::FORBIDDEN, "item 1: bad signature".into())
        );
        let mut flipped = key.sign(op, now, [5; 16], Vec::new());
        flipped.signature.0[10] ^= 1;
        assert_eq!(
            signed_status(&h, path, batch_json(&[flipped])).await.0,
            StatusCode::FORBIDDEN
        );
        let mut bad_slot = key.sign(op, now, [5; 16], Vec::new());
        bad_slot.slot = invalid_slot();
        assert_eq!(
            signed_status(&h, path, batch_json(&[bad_slot])).await.0,
            StatusCode::FORBIDDEN
        );
        // Timestamps outside the window, either way.
        for ts in [now - 121, now + 121] {
            let stale = key.sign(op, ts, [6; 16], Vec::new());
            assert_eq!(
                signed_status(&h, path, batch_json(&[stale])).await,
                (
                    StatusCode::FORBIDDEN,
                    "item 0: timestamp outside the accepted window".into()
                )
            );
        }
        // Too many items.
        let many: Vec<_> = (0..5u8)
            .map(|i| key.sign(op, now, [100 + i; 16], Vec::new()))
            .collect();
        assert_eq!(
            signed_status(&h, path, batch_json(&many)).await.0,
            StatusCode::BAD_REQUEST
        );
        // A valid item at the edge of the window passes once, then is a replay.
        let ok = key.sign(op, now - 120, [7 + op as u8 * 16; 16], Vec::new());
        let body = batch_json(std::slice::from_ref(&ok));
        let (status, _) = h.raw("POST", path, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            signed_status(&h, path, body).await,
            (StatusCode::CONFLICT, "replayed request".into())
        );
        // The same nonce twice in one batch is a replay too.
        let a = key.sign(op, now, [8 + op as u8 * 16; 16], Vec::new());
        assert_eq!(
            signed_status(&h, path, batch_json(&[a.clone(), a])).await.0,
            StatusCode::CONFLICT
        );
    }
    // Ids belong only in acks.
    let with_ids = key.sign(Operation::Fetch, now, [9; 16], vec![BlobId([1; 16])]);
    assert_eq!(
        signed_status(&h, "/v2/fetch", batch_json(&[with_ids]))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // More ids in one ack than one fetch returns.
    let per_item: Vec<Vec<BlobId>> = (0..3u8)
        .map(|i| (0..4u8).map(|j| BlobId([i * 4 + j; 16])).collect())
        .collect();
    let mut c = config();
    c.max_fetch_blobs = 10;
    let small = harness_with(c);
    let items: Vec<_> = per_item
        .into_iter()
        .enumerate()
        .map(|(i, ids)| key.sign(Operation::Ack, now, [200 + i as u8; 16], ids))
        .collect();
    assert_eq!(
        signed_status(&small, "/v2/ack", batch_json(&items)).await,
        (
            StatusCode::BAD_REQUEST,
            "too many items in one request".into()
        )
    );
    // Bodies past the limit.
    let (status, _) = h.raw("POST", "/v2/fetch", vec![b' '; 1 << 20]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_refusals() {
    let h = harness();
    let (status, text) = h.raw("GET", "/v1/anything", Vec::new()).await;
    assert_eq!(
        (status, reason(text.as_bytes())),
        (StatusCode::NOT_FOUND, "not found".into())
    );
    let (status, text) = h.raw("GET", "/v2/deposit", Vec::new()).await;
    assert_eq!(
        (status, reason(text.as_bytes())),
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
    );
    let (status, _) = h.raw("POST", "/v2/info", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_flood_of_bad_work_changes_nothing() {
    let h = harness();
    let victim = SlotKey::from_seed(&[1; 32]);
    let info = h.info().await;
    let before = h.mailbox.stats();
    for i in 0..500u32 {
        let slot = SlotKey::from_seed(&[(i % 200) as u8; 32]).slot();
        let mut data = blob((i % 251) as u8);
        data[..4].copy_from_slice(&i.to_le_bytes());
        let body = if i % 2 == 0 {
            bad_work(&info, &slot, &data)
        } else {
            // A made-up challenge: refused before any hashing of the work matters.
            DepositBody {
                slot,
                challenge: [i as u8; 32],
                nonce: [0; 16],
                blob: &data,
            }
            .to_bytes()
        };
        let (status, _) = h.raw("POST", "/v2/deposit", body).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let after = h.mailbox.stats();
    assert_eq!(after, before);
    assert_eq!(after.blobs, 0);
    assert_eq!(after.spent_solutions, 0);
    // The difficulty did not move either: refused work is not load.
    h.clock.advance(30);
    assert_eq!(h.info().await.pow.difficulty, info.pow.difficulty);
    assert_eq!(
        h.deposit(&victim.slot(), &blob(1)).await.status(),
        StatusCode::CREATED
    );
}

fn room(n: u8) -> RoomKey {
    RoomKey::from_bytes(&[n; 32])
}

fn cell(n: u8) -> Vec<u8> {
    vec![n; ROOM_CELL_LEN]
}

impl Harness {
    async fn post(&self, room: &RoomKey, data: &[u8]) -> http::Response<Vec<u8>> {
        let info = self.info().await;
        let req = self
            .client
            .room_post_request(&info, room, data, 1 << 24)
            .unwrap();
        self.send(req).await
    }

    async fn posted(&self, room: &RoomKey, data: &[u8]) -> u64 {
        let resp = self.post(room, data).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let posted = client::parse_room_post(&resp).unwrap();
        assert!(posted.stored);
        posted.seq
    }

    async fn read(&self, room: &RoomKey, after: u64, max: u32) -> RoomCells {
        let req = self.client.room_read_request(room, after, max).unwrap();
        client::parse_room_read(&self.send(req).await).unwrap()
    }
}

fn seqs(cells: &RoomCells) -> Vec<u64> {
    cells.cells.iter().map(|c| c.seq).collect()
}

/// A room post body whose work is valid for `solved_for` and, where that is a
/// different room, certainly not for `room`.
fn post_body(info: &Info, room: &RoomKey, solved_for: &RoomKey, data: &[u8]) -> Vec<u8> {
    let hash = *blake3::hash(data).as_bytes();
    let challenge = info.pow.challenge.0;
    let needed = u32::from(info.pow.difficulty);
    let bits = |key: &RoomKey, nonce: &[u8; 16]| {
        pow::leading_zero_bits(&pow::digest(&challenge, &key.work_target(), &hash, nonce))
    };
    let nonce = (0u128..)
        .map(u128::to_le_bytes)
        .find(|n| {
            bits(solved_for, n) >= needed
                && (room.as_bytes() == solved_for.as_bytes() || bits(room, n) < needed)
        })
        .unwrap();
    RoomPostBody {
        room: room.clone(),
        challenge,
        nonce,
        cell: data,
    }
    .to_bytes()
}

#[tokio::test]
async fn room_post_and_read_round_trip() {
    let h = harness();
    let r = room(1);
    let mut posted = Vec::new();
    for n in 0..3 {
        posted.push(h.posted(&r, &cell(n)).await);
    }
    assert!(posted.windows(2).all(|w| w[1] == w[0] + 1), "{posted:?}");
    let all = h.read(&r, 0, 10).await;
    assert_eq!(seqs(&all), posted);
    assert_eq!(all.cells[2].data.0, cell(2));
    assert_eq!((all.oldest, all.more), (Some(posted[0]), false));
    let newer = h.read(&r, posted[0], 10).await;
    assert_eq!(seqs(&newer), &posted[1..]);
    let first = h.read(&r, 0, 1).await;
    assert_eq!((seqs(&first), first.more), (vec![posted[0]], true));
    assert!(h.read(&r, posted[2], 10).await.cells.is_empty());
    let stats = h.mailbox.stats();
    assert_eq!((stats.rooms, stats.room_cells, stats.blobs), (1, 3, 0));
    // The server caps `max`.
    let mut c = config();
    c.room_read_max = 2;
    let capped = harness_with(c);
    for n in 0..3 {
        capped.posted(&r, &cell(n)).await;
    }
    let read = capped.read(&r, 0, 100).await;
    assert_eq!((read.cells.len(), read.more), (2, true));
}

#[tokio::test]
async fn a_repeated_post_is_recognised_and_spent_work_buys_nothing() {
    let mut c = config();
    c.room_max_cells = 1;
    let h = harness_with(c);
    let r = room(1);
    let info = h.info().await;
    let body = post_body(&info, &r, &r, &cell(1));
    let (status, text) = h.raw("POST", "/v2/rooms/post", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let first: RoomPosted = serde_json::from_str(&text).unwrap();
    // A retry after a lost answer gets the same number, and nothing is stored twice.
    let (status, text) = h.raw("POST", "/v2/rooms/post", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<RoomPosted>(&text).unwrap(),
        RoomPosted {
            seq: first.seq,
            stored: false
        }
    );
    assert_eq!(h.mailbox.stats().room_cells, 1);
    // Once the cell is gone, the spent work is a replay.
    h.posted(&r, &cell(2)).await;
    let (status, text) = h.raw("POST", "/v2/rooms/post", body).await;
    assert_eq!(
        (status, reason(text.as_bytes())),
        (StatusCode::CONFLICT, "replayed request".into())
    );
}

#[tokio::test]
async fn the_same_cell_posted_again_with_fresh_work_is_kept_once() {
    let h = harness();
    let r = room(1);
    let seq = h.posted(&r, &cell(1)).await;
    // A poster whose answer was lost tries again, solving anew.
    let resp = h.post(&r, &cell(1)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        client::parse_room_post(&resp).unwrap(),
        RoomPosted { seq, stored: false }
    );
    assert_eq!(h.mailbox.stats().room_cells, 1);
}

#[tokio::test]
async fn room_cells_of_the_wrong_size_are_refused() {
    let h = harness();
    let info = h.info().await;
    for len in [0, 1, ROOM_CELL_LEN - 1, SIZE] {
        let body = post_body(&info, &room(1), &room(1), &vec![0; len]);
        let (status, text) = h.raw("POST", "/v2/rooms/post", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{len}");
        assert_eq!(
            reason(text.as_bytes()),
            format!("cell must be exactly {ROOM_CELL_LEN} bytes, got {len}")
        );
    }
    let (status, _) = h.raw("POST", "/v2/rooms/post", vec![0; 10]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, text) = h
        .raw(
            "POST",
            "/v2/rooms/post",
            vec![0; ROOM_POST_HEADER_LEN + ROOM_CELL_LEN + 1],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("too large"));
    assert!(matches!(
        h.client
            .room_post_request(&info, &room(1), &cell(0)[1..], 1),
        Err(client::ClientError::WrongBlobSize { .. })
    ));
    let stats = h.mailbox.stats();
    assert_eq!((stats.rooms, stats.room_cells), (0, 0));
}

#[tokio::test]
async fn room_posts_without_valid_work_are_refused() {
    let h = harness();
    let r = room(1);
    let info = h.info().await;
    let refused = |status: StatusCode, text: String| (status, reason(text.as_bytes()));
    // No work at all: a zero nonce that misses the difficulty.
    let mut nonce = [0u8; 16];
    let hash = *blake3::hash(&cell(1)).as_bytes();
    let target = r.work_target();
    let mut n = 0u128;
    while pow::leading_zero_bits(&pow::digest(&info.pow.challenge.0, &target, &hash, &nonce))
        >= u32::from(info.pow.difficulty)
    {
        n += 1;
        nonce = n.to_le_bytes();
    }
    let unpaid = RoomPostBody {
        room: r.clone(),
        challenge: info.pow.challenge.0,
        nonce,
        cell: &cell(1),
    };
    let (status, text) = h.raw("POST", "/v2/rooms/post", unpaid.to_bytes()).await;
    assert_eq!(
        refused(status, text),
        (StatusCode::FORBIDDEN, "insufficient proof of work".into())
    );
    // Work done for another room buys nothing in this one.
    let elsewhere = post_body(&info, &r, &room(2), &cell(1));
    let (status, text) = h.raw("POST", "/v2/rooms/post", elsewhere).await;
    assert_eq!(
        refused(status, text),
        (StatusCode::FORBIDDEN, "insufficient proof of work".into())
    );
    // Work for a challenge the mailbox never gave.
    let mut stale = info.clone();
    stale.pow.challenge.0 = [0xab; 32];
    let req = h
        .client
        .room_post_request(&stale, &r, &cell(1), 1 << 24)
        .unwrap();
    let resp = h.send(req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(reason(resp.body()), "unknown or expired challenge");
    let stats = h.mailbox.stats();
    assert_eq!(
        (stats.rooms, stats.room_cells, stats.spent_solutions),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn rooms_are_separate_and_a_wrong_key_reads_nothing() {
    let h = harness();
    let (a, b) = (room(1), room(2));
    let in_a = h.posted(&a, &cell(1)).await;
    let in_b = h.posted(&b, &cell(2)).await;
    let read_a = h.read(&a, 0, 10).await;
    assert_eq!(seqs(&read_a), vec![in_a]);
    assert_eq!(read_a.cells[0].data.0, cell(1));
    let read_b = h.read(&b, 0, 10).await;
    assert_eq!(seqs(&read_b), vec![in_b]);
    assert_eq!(read_b.cells[0].data.0, cell(2));
    // A key one bit away from a real one names no room.
    let mut near = *a.as_bytes();
    near[0] ^= 1;
    let wrong = h.read(&RoomKey::from_bytes(&near), 0, 10).await;
    assert_eq!(
        wrong,
        RoomCells {
            cells: Vec::new(),
            oldest: None,
            more: false
        }
    );
    assert_eq!(h.mailbox.stats().rooms, 2);
}

#[tokio::test]
async fn reading_deletes_nothing_and_every_reader_sees_the_same_cells() {
    let h = harness();
    let r = room(1);
    let posted = vec![h.posted(&r, &cell(1)).await, h.posted(&r, &cell(2)).await];
    let readers: Vec<Client> = (0..3)
        .map(|i| Client::new(format!("mailbox{i}.test")).unwrap())
        .collect();
    let mut seen = Vec::new();
    for reader in &readers {
        let req = reader.room_read_request(&r, 0, 10).unwrap();
        seen.push(client::parse_room_read(&h.send(req).await).unwrap());
    }
    for cells in &seen {
        assert_eq!(cells, &seen[0]);
        assert_eq!(seqs(cells), posted);
    }
    assert_eq!(h.mailbox.stats().room_cells, 2);
}

#[tokio::test]
async fn a_full_room_drops_its_oldest_and_readers_learn_what_they_missed() {
    let mut c = config();
    c.room_max_cells = 3;
    let h = harness_with(c);
    let r = room(1);
    let first = h.posted(&r, &cell(0)).await;
    // A reader has seen the first cell, then goes offline for four more.
    let mut later = Vec::new();
    for n in 1..5 {
        later.push(h.posted(&r, &cell(n)).await);
    }
    let read = h.read(&r, first, 10).await;
    assert_eq!(seqs(&read), &later[1..]);
    assert_eq!(read.cells[0].data.0, cell(2));
    // The oldest held cell is two past what the reader saw: one was dropped.
    let oldest = read.oldest.unwrap();
    assert_eq!(oldest, later[1]);
    assert_eq!(oldest - first - 1, 1);
    assert_eq!(h.mailbox.stats().room_cells, 3);
}

#[tokio::test]
async fn room_cells_expire_and_empty_rooms_are_dropped() {
    let mut c = config();
    c.room_ttl_secs = 1000;
    let h = harness_with(c);
    let r = room(1);
    let first = h.posted(&r, &cell(1)).await;
    h.clock.advance(999);
    assert_eq!(seqs(&h.read(&r, 0, 10).await), vec![first]);
    h.clock.advance(1);
    // Past its lifetime a cell is gone for readers at once...
    assert_eq!(
        h.read(&r, 0, 10).await,
        RoomCells {
            cells: Vec::new(),
            oldest: None,
            more: false
        }
    );
    // ...and the sweep frees it, and the room with it.
    h.clock.advance(60);
    h.mailbox.maintain();
    let stats = h.mailbox.stats();
    assert_eq!((stats.rooms, stats.room_cells, stats.room_bytes), (0, 0, 0));
    assert!(h.mailbox.room_bytes_held().is_empty());
    // The room comes back with its next post, and never reuses a number.
    assert!(h.posted(&r, &cell(2)).await > first);
}

#[tokio::test]
async fn the_room_limit_refuses_new_rooms_only() {
    let mut c = config();
    c.max_rooms = 2;
    let h = harness_with(c);
    h.posted(&room(1), &cell(1)).await;
    h.posted(&room(2), &cell(2)).await;
    let resp = h.post(&room(3), &cell(3)).await;
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(reason(resp.body()), "too many rooms");
    // Rooms that exist still take posts.
    h.posted(&room(1), &cell(4)).await;
    let stats = h.mailbox.stats();
    assert_eq!((stats.rooms, stats.room_cells), (2, 3));
    // A full room table asks for the most work.
    assert_eq!(h.info().await.pow.difficulty, 10);
}

#[tokio::test]
async fn the_rooms_byte_share_is_a_bound() {
    let mut c = config();
    c.room_max_bytes = 2 * ROOM_CELL_LEN + 1024;
    let h = harness_with(c);
    h.posted(&room(1), &cell(1)).await;
    h.posted(&room(1), &cell(2)).await;
    let before = h.mailbox.stats();
    let resp = h.post(&room(1), &cell(3)).await;
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(reason(resp.body()), "rooms full");
    let after = h.mailbox.stats();
    assert_eq!(
        (after.room_cells, after.room_bytes),
        (before.room_cells, before.room_bytes)
    );
    assert!(after.room_bytes <= h.mailbox.config().room_max_bytes);
}

#[tokio::test]
async fn room_reads_are_checked() {
    let h = harness();
    let key = "01".repeat(32);
    for body in [
        "not json".to_string(),
        "{}".into(),
        format!(r#"{{"room":"{key}","after":0}}"#),
        r#"{"room":"01","after":0,"max":1}"#.into(),
        format!(r#"{{"room":"{key}","after":0,"max":1,"who":"me"}}"#),
        format!(r#"{{"room":"{key}","after":-1,"max":1}}"#),
    ] {
        let (status, _) = h.raw("POST", "/v2/rooms/read", body.clone().into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let zero = format!(r#"{{"room":"{key}","after":0,"max":0}}"#);
    let (status, text) = h.raw("POST", "/v2/rooms/read", zero.into()).await;
    assert_eq!(
        (status, reason(text.as_bytes())),
        (
            StatusCode::BAD_REQUEST,
            "malformed request: max must be positive".into()
        )
    );
    let (status, _) = h.raw("POST", "/v2/rooms/read", vec![b' '; 4096]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = h.raw("GET", "/v2/rooms/read", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let ok = format!(r#"{{"room":"{key}","after":0,"max":5}}"#);
    let (status, text) = h.raw("POST", "/v2/rooms/read", ok.into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, r#"{"cells":[],"oldest":null,"more":false}"#);
}

#[tokio::test]
async fn the_relay_holds_cells_and_keyed_names_only() {
    let h = harness();
    let r = room(0x5a);
    let seq = h.posted(&r, &cell(0xc3)).await;
    let held = h.mailbox.room_bytes_held();
    // Id, next number, then the cell's number, expiry and bytes.
    assert_eq!(held.len(), 32 + 8 + 8 + 8 + ROOM_CELL_LEN);
    assert_eq!(&held[32..40], &(seq + 1).to_be_bytes());
    assert_eq!(&held[40..48], &seq.to_be_bytes());
    assert_eq!(&held[56..], &cell(0xc3)[..]);
    // Neither the room key nor the public hash the work is bound to is kept.
    let contains = |needle: &[u8]| held.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(r.as_bytes()));
    assert!(!contains(&r.work_target().0));
    // The name is keyed by the mailbox's own secret: another mailbox names
    // the same room differently.
    let other = harness();
    other.posted(&r, &cell(0xc3)).await;
    assert_ne!(&other.mailbox.room_bytes_held()[..32], &held[..32]);
}

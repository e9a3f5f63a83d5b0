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
use nightjar_mailbox::wire::{BlobId, DepositBody, ErrorBody, Info, Operation, SlotId};
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

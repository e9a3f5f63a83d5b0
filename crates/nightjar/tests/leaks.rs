//! What nightjar asks of the kernel, watched under strace: it speaks to nothing
//! but Tor (no direct connection, no DNS, no IPv6), and an ephemeral profile
//! leaves nothing on disk, Tor's state included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::hash::{BuildHasher as _, Hasher as _};
use std::path::{Path, PathBuf};

use common::daemon::{Client, Daemon, Profile, befriend};
use nightjar_test_support::trace::{self, Trace, Tracer};
use nightjar_test_support::{TestNetwork, shared_network};
use serde_json::json;

/// A fresh directory on tmpfs, for traces, sockets and temporary files.
fn shm_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap()
}

/// The ports of the private network's relays and authorities, which Arti
/// dials itself.
fn network_ports(net: &TestNetwork) -> BTreeSet<u16> {
    let description = net.description();
    description
        .authorities
        .iter()
        .map(|a| &a.node)
        .chain(&description.relays)
        .flat_map(|n| [n.or_port, n.dir_port])
        .collect()
}

/// The network rule for nightjar's own processes (tor's are tor's business):
/// every offending call, as strace wrote it.
fn network_offences(traces: &[&Trace], net: &TestNetwork) -> Vec<String> {
    let mut ports = network_ports(net);
    for t in traces {
        ports.extend(t.bound_ports(&t.pids()));
    }
    let mut offences = Vec::new();
    for t in traces {
        let tor = t.pids_running("tor");
        let nightjar: BTreeSet<u32> = t.pids().difference(&tor).copied().collect();
        offences.extend(
            t.network_violations(&nightjar, &ports)
                .into_iter()
                .map(|c| c.line.clone()),
        );
    }
    offences
}

/// So that a rule cannot pass for want of anything to judge: the trace saw
/// nightjar start tor or Arti reach the network, and connect.
fn assert_traced_a_tor_client(trace: &Trace) {
    let connects = trace
        .calls
        .iter()
        .filter(|c| matches!(c.kind, trace::CallKind::Connect(_)))
        .count();
    assert!(connects > 0, "the trace saw no connect at all");
}

#[tokio::test(flavor = "multi_thread")]
async fn full_demo_opens_no_socket_but_to_tor() {
    let net = shared_network().await;
    let scratch = shm_dir();
    let tracer = Tracer::new(scratch.path().join("demo.strace"));
    let output = tokio::task::spawn_blocking({
        let mut demo = tracer.command(env!("CARGO_BIN_EXE_nightjar"));
        demo.args(["demo", "--alice", "ctor", "--bob", "arti", "--testnet"])
            .arg(net.dir())
            .env_remove("NIGHTJAR_TESTNET")
            .current_dir(scratch.path());
        move || demo.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("Done in"),
        "demo failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trace = tracer.read(scratch.path()).unwrap();
    assert!(
        !trace.pids_running("tor").is_empty(),
        "Alice's system tor was not seen starting"
    );
    assert_traced_a_tor_client(&trace);
    let offences = network_offences(&[&trace], net);
    assert!(
        offences.is_empty(),
        "the demo reached past Tor:\n{}",
        offences.join("\n")
    );
}

/// A marker no file could hold by chance: 128 bits from the process's random
/// hashing keys.
fn random_marker() -> String {
    let mut halves = [0u64; 2];
    for half in &mut halves {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6e6a_6c6b);
        *half = h.finish();
    }
    format!("nj-marker-{:016x}{:016x}", halves[0], halves[1])
}

/// Three messages each way, each carrying `marker`, all delivered.
async fn talk(a: &mut Client, b: &mut Client, marker: &str) {
    for i in 0..3 {
        send(a, b, "bob", &format!("{marker} to bob {i}")).await;
        send(b, a, "alice", &format!("{marker} to alice {i}")).await;
    }
}

async fn send(from: &mut Client, to: &mut Client, contact: &str, text: &str) {
    let sent = from
        .call("send_message", json!({"contact": contact, "text": text}))
        .await;
    let got = to.event_named("message_received").await;
    // Not assert_eq: a failure must not print the marker where a log may keep it.
    assert!(got["message"]["body"] == text, "a message was lost");
    from.delivered(&sent["id"]).await;
}

/// Every path a traced process (nightjar or its tor) opened for writing or
/// created that is not kept in memory.
fn paths_on_disk(trace: &Trace) -> Vec<String> {
    trace
        .calls
        .iter()
        .filter(|c| c.result.is_ok())
        .filter(|c| c.written_path().is_some_and(|p| !trace::kept_in_memory(p)))
        .map(|c| c.line.clone())
        .collect()
}

/// Files on the root file system, changed since `stamp`, that hold `marker`.
fn marker_on_disk(stamp: &Path, marker: &str) -> Vec<PathBuf> {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut skip = vec![
        // The build's own output: a concurrent build rewrites large files there,
        // and nightjar writing there would already break the rule on paths.
        target.parent().unwrap_or(&target).to_owned(),
    ];
    // Swap files: this test's own memory, which holds the marker, may be paged
    // out there; that is the test's doing, not nightjar's.
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    skip.extend(
        swaps
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(PathBuf::from),
    );
    trace::files_changed_since(stamp, &skip)
        .unwrap()
        .into_iter()
        .filter(|f| trace::file_contains(f, marker.as_bytes()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ephemeral_daemons_leave_nothing_on_disk() {
    let net = shared_network().await;
    let scratch = shm_dir();
    let dir = scratch.path();
    let stamp = dir.join("stamp");
    std::fs::write(&stamp, b"").unwrap();
    let marker = random_marker();

    let tracers = [
        Tracer::new(dir.join("alice.strace")),
        Tracer::new(dir.join("bob.strace")),
    ];
    let start = |tracer: &Tracer, name: &str, backend: &str| {
        let mut program = tracer.command(env!("CARGO_BIN_EXE_nightjar"));
        program.env("TMPDIR", dir).current_dir(dir);
        Daemon::start_as(program, net, dir, name, backend, Profile::Ephemeral)
    };
    let alice = start(&tracers[0], "alice", "ctor");
    let bob = start(&tracers[1], "bob", "arti");
    let mut a = alice.connect().await;
    let mut b = bob.connect().await;
    befriend(&mut a, &mut b).await;
    talk(&mut a, &mut b, &marker).await;
    b.call("set_presence", json!({"contact": "alice", "on": true}))
        .await;
    assert_eq!(a.event_named("presence").await["presence"], "online");
    alice.stop(&mut a).await;
    bob.stop(&mut b).await;

    let traces = [tracers[0].read(dir).unwrap(), tracers[1].read(dir).unwrap()];
    assert!(
        !traces[0].pids_running("tor").is_empty(),
        "Alice's system tor was not seen starting"
    );
    for t in &traces {
        assert_traced_a_tor_client(t);
    }
    let offences = network_offences(&[&traces[0], &traces[1]], net);
    assert!(
        offences.is_empty(),
        "a daemon reached past Tor:\n{}",
        offences.join("\n")
    );
    for t in &traces {
        let on_disk = paths_on_disk(t);
        assert!(
            on_disk.is_empty(),
            "an ephemeral daemon wrote to disk:\n{}",
            on_disk.join("\n")
        );
    }
    let found = marker_on_disk(&stamp, &marker);
    assert!(found.is_empty(), "a message reached the disk in {found:?}");
}

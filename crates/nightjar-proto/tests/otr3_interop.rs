//! SMP over OTR v3's group against python-potr, an independent OTR v3
//! implementation: whole runs in both roles, with and without a question.
//!
//! potr runs in `otr3_interop.py`, which speaks hex TLVs over a pipe. It needs
//! `python-potr` importable by the Python in `$NIGHTJAR_PYTHON_BIN` (by default
//! `~/.cache/nightjar/python/bin`) or on `PATH`; `scripts/setup.sh` installs it.

#![cfg(feature = "otr3")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use data_encoding::HEXLOWER;
use nightjar_proto::smp::{Context, Modp1536, Outcome, Smp, Step};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Only guards against a hung driver; a normal reply takes milliseconds.
const HANG_GUARD: Duration = Duration::from_secs(60);

const OURS: &[u8; 20] = b"nightjar fingerprint";
const THEIRS: &[u8; 20] = b"python-potr fingerpr";
const SESSION_ID: &[u8; 8] = &[0x5e, 0x55, 0x10, 0x4e, 0x1d, 0x00, 0xff, 0x01];

/// potr's SMP progress values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    Ongoing,
    Succeeded,
    Failed,
    Cheated,
}

/// What potr did with one command.
#[derive(Clone, Debug)]
struct Reply {
    sent: Vec<Vec<u8>>,
    /// `Some(question)` when potr received an SMP1 or SMP1Q and now awaits a secret.
    asked: Option<Option<String>>,
    progress: Progress,
}

/// A Python interpreter that can import potr, or a failure telling how to get one.
fn python() -> PathBuf {
    let bin = std::env::var_os("NIGHTJAR_PYTHON_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/nightjar/python/bin"))
        });
    let candidates = bin
        .iter()
        .map(|bin| bin.join("python3"))
        .chain([PathBuf::from("python3")]);
    for python in candidates {
        let imports = Command::new(&python)
            .args(["-c", "import potr.crypt"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if imports {
            return python;
        }
    }
    panic!(
        "no python3 that can import potr (python-potr) in {} or on PATH; run scripts/setup.sh",
        bin.map_or_else(
            || "$NIGHTJAR_PYTHON_BIN".to_owned(),
            |b| b.display().to_string()
        )
    );
}

/// potr's side of one run, in a child process.
struct Potr {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Potr {
    /// potr with its own fingerprint, ours, and the session id, as potr sees them.
    fn spawn(own: &[u8], peer: &[u8], session_id: &[u8]) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otr3_interop.py");
        let mut child = Command::new(python())
            .arg(script)
            .args([own, peer, session_id].map(|b| HEXLOWER.encode(b)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the potr driver");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// potr bound to the same fingerprints and session as `ctx` (which is ours).
    fn peer_of(ctx: &Context) -> Self {
        Self::spawn(&ctx.theirs, &ctx.ours, &ctx.session_id)
    }

    fn command(&mut self, words: &[&str]) -> Reply {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", words.join(" ")).unwrap();
        stdin.flush().unwrap();
        let mut reply = Reply {
            sent: Vec::new(),
            asked: None,
            progress: Progress::Ongoing,
        };
        loop {
            let line = self
                .lines
                .recv_timeout(HANG_GUARD)
                .expect("the potr driver answers (see its stderr)");
            let (word, arg) = line.split_once(' ').unwrap_or((&line, ""));
            match word {
                "send" => reply.sent.push(HEXLOWER.decode(arg.as_bytes()).unwrap()),
                "asked" => {
                    reply.asked = Some((arg != "-").then(|| {
                        String::from_utf8(HEXLOWER.decode(arg.as_bytes()).unwrap()).unwrap()
                    }));
                }
                "end" => {
                    reply.progress = match arg {
                        "0" => Progress::Ongoing,
                        "1" => Progress::Succeeded,
                        "-1" => Progress::Failed,
                        "-2" => Progress::Cheated,
                        other => panic!("unknown potr progress {other}"),
                    };
                    return reply;
                }
                other => panic!("unexpected line from the potr driver: {other}"),
            }
        }
    }

    fn start(&mut self, secret: &[u8], question: Option<&str>) -> Reply {
        let secret = HEXLOWER.encode(secret);
        let question = question.map(|q| HEXLOWER.encode(q.as_bytes()));
        let mut words = vec!["start", &secret];
        words.extend(question.as_deref());
        self.command(&words)
    }

    fn answer(&mut self, secret: &[u8]) -> Reply {
        self.command(&["answer", &HEXLOWER.encode(secret)])
    }

    fn receive(&mut self, tlv: &[u8]) -> Reply {
        self.command(&["recv", &HEXLOWER.encode(tlv)])
    }
}

impl Drop for Potr {
    fn drop(&mut self) {
        // End of input ends the driver.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn context() -> Context {
    Context {
        ours: OURS.to_vec(),
        theirs: THEIRS.to_vec(),
        session_id: SESSION_ID.to_vec(),
    }
}

/// The single TLV potr sent in `reply`.
fn only(reply: Reply) -> Vec<u8> {
    assert_eq!(reply.sent.len(), 1, "potr sent one TLV: {reply:?}");
    reply.sent.into_iter().next().unwrap()
}

/// How each side ended a run.
#[derive(Debug)]
struct Ends {
    ours: Outcome,
    potr: Progress,
    /// What potr sent after its last step (an abort when its run failed).
    potr_last: Vec<Vec<u8>>,
}

/// We initiate against `potr`; returns how both sides ended.
fn we_initiate(
    ours: Context,
    potr: &mut Potr,
    our_secret: &[u8],
    potr_secret: &[u8],
    question: Option<&str>,
) -> Ends {
    let mut rng = StdRng::seed_from_u64(0x07e3);
    let mut smp = Smp::<Modp1536>::new(ours);
    let smp1 = smp.start(our_secret, question, &mut rng).unwrap();
    let reply = potr.receive(&smp1);
    assert_eq!(reply.progress, Progress::Ongoing, "potr accepted SMP1");
    assert!(reply.sent.is_empty(), "{reply:?}");
    assert_eq!(reply.asked, Some(question.map(str::to_owned)));

    let smp2 = only(potr.answer(potr_secret));
    let Step::Send(smp3) = smp.receive(&smp2, &mut rng).unwrap() else {
        panic!("potr's SMP2 was refused");
    };
    let reply = potr.receive(&smp3);
    // potr sends SMP4 only when the secrets matched; on a mismatch it aborts.
    let last = only(reply.clone());
    let Step::Finished { outcome, send } = smp.receive(&last, &mut rng).unwrap() else {
        panic!("potr's last message did not end our run");
    };
    assert_eq!(send, None);
    Ends {
        ours: outcome,
        potr: reply.progress,
        potr_last: reply.sent,
    }
}

/// potr initiates against us; returns how both sides ended.
fn potr_initiates(
    ours: Context,
    potr: &mut Potr,
    our_secret: &[u8],
    potr_secret: &[u8],
    question: Option<&str>,
) -> Ends {
    let mut rng = StdRng::seed_from_u64(0x0b0b);
    let mut smp = Smp::<Modp1536>::new(ours);
    let smp1 = only(potr.start(potr_secret, question));
    assert_eq!(
        smp.receive(&smp1, &mut rng).unwrap(),
        Step::Asked {
            question: question.map(str::to_owned)
        }
    );
    let smp2 = smp.answer(our_secret, &mut rng).unwrap();
    let smp3 = only(potr.receive(&smp2));
    let Step::Finished {
        outcome,
        send: Some(smp4),
    } = smp.receive(&smp3, &mut rng).unwrap()
    else {
        panic!("potr's SMP3 was refused");
    };
    assert_eq!(
        smp4[..2],
        [0, 5],
        "we answer SMP3 with SMP4 whatever the outcome"
    );
    let reply = potr.receive(&smp4);
    Ends {
        ours: outcome,
        potr: reply.progress,
        potr_last: reply.sent,
    }
}

/// Whether `tlv` is an SMP abort: TLV type 6, empty.
fn is_abort(tlv: &[u8]) -> bool {
    tlv == [0, 6, 0, 0]
}

#[test]
fn we_initiate_equal_secrets_succeed() {
    let mut potr = Potr::peer_of(&context());
    let ends = we_initiate(
        context(),
        &mut potr,
        b"correct horse",
        b"correct horse",
        None,
    );
    assert_eq!(ends.ours, Outcome::Succeeded);
    assert_eq!(ends.potr, Progress::Succeeded);
    assert_eq!(ends.potr_last.len(), 1, "potr sent SMP4 and nothing else");
}

#[test]
fn potr_initiates_equal_secrets_succeed() {
    let mut potr = Potr::peer_of(&context());
    let ends = potr_initiates(
        context(),
        &mut potr,
        b"correct horse",
        b"correct horse",
        None,
    );
    assert_eq!(ends.ours, Outcome::Succeeded);
    assert_eq!(ends.potr, Progress::Succeeded);
    assert!(ends.potr_last.is_empty(), "{ends:?}");
}

#[test]
fn we_initiate_different_secrets_fail() {
    let mut potr = Potr::peer_of(&context());
    let ends = we_initiate(
        context(),
        &mut potr,
        b"correct horse",
        b"battery staple",
        None,
    );
    assert_eq!(ends.potr, Progress::Failed);
    // OTR v3 has the responder send SMP4 whatever the result, but potr aborts
    // instead, so all we learn is that it ended the run.
    assert!(is_abort(&ends.potr_last[0]), "{ends:?}");
    assert_eq!(ends.ours, Outcome::Aborted);
}

#[test]
fn potr_initiates_different_secrets_fail() {
    let mut potr = Potr::peer_of(&context());
    let ends = potr_initiates(
        context(),
        &mut potr,
        b"correct horse",
        b"battery staple",
        None,
    );
    assert_eq!(ends.ours, Outcome::Failed);
    assert_eq!(ends.potr, Progress::Failed);
    // potr aborts after a failed run; ours is already over.
    assert!(
        matches!(ends.potr_last.as_slice(), [tlv] if is_abort(tlv)),
        "{ends:?}"
    );
}

#[test]
fn question_reaches_potr() {
    let question = "Où nous sommes-nous rencontrés ? 🐦";
    let mut potr = Potr::peer_of(&context());
    let ends = we_initiate(context(), &mut potr, b"au lac", b"au lac", Some(question));
    assert_eq!(ends.ours, Outcome::Succeeded);
    assert_eq!(ends.potr, Progress::Succeeded);
}

#[test]
fn question_from_potr_reaches_us() {
    let question = "Which ferry did we miss?";
    let mut potr = Potr::peer_of(&context());
    let ends = potr_initiates(
        context(),
        &mut potr,
        b"the 7:40",
        b"the 7:40",
        Some(question),
    );
    assert_eq!(ends.ours, Outcome::Succeeded);
    assert_eq!(ends.potr, Progress::Succeeded);
}

/// Equal secrets but a different session id on each side: the binding enters
/// both computations of the compared value, so the run fails.
#[test]
fn different_sessions_fail() {
    let ours = context();
    let mut potr = Potr::spawn(&ours.theirs, &ours.ours, b"another session");
    let ends = potr_initiates(ours, &mut potr, b"correct horse", b"correct horse", None);
    assert_eq!(ends.ours, Outcome::Failed);
    assert_eq!(ends.potr, Progress::Failed);
}

/// Equal secrets but the fingerprints in the wrong order on our side: the
/// initiator's fingerprint must come first in both computations.
#[test]
fn swapped_fingerprints_fail() {
    let swapped = Context {
        ours: THEIRS.to_vec(),
        theirs: OURS.to_vec(),
        session_id: SESSION_ID.to_vec(),
    };
    let mut potr = Potr::peer_of(&context());
    let ends = we_initiate(swapped, &mut potr, b"correct horse", b"correct horse", None);
    assert_eq!(ends.potr, Progress::Failed);
    assert_eq!(ends.ours, Outcome::Aborted);
}

//! Shared-secret authentication in a chat: SMP runs over the link, and what the
//! chat remembers between their steps.
//!
//! A run is bound to both identity keys and to the link's session, so a success
//! proves that the other side knows the secret *on this link*. When both sides
//! start at once (both typed the secret at the prompt), the run of the side with
//! the smaller identity key goes on, and the other side answers it with the secret
//! its user already typed: nobody types it twice.

use nightjar_node::link::os_rng;
use nightjar_proto::smp::{Context, Outcome, Ristretto, Smp, SmpError, Step};
use zeroize::Zeroizing;

/// What a run is bound to.
#[derive(Clone, Copy)]
pub struct Binding {
    /// Our identity key.
    pub ours: [u8; 32],
    /// The peer's identity key, as proven in the handshake.
    pub theirs: [u8; 32],
    /// The link's session identifier.
    pub session_id: [u8; 32],
}

impl Binding {
    fn context(&self) -> Context {
        Context {
            ours: self.ours.to_vec(),
            theirs: self.theirs.to_vec(),
            session_id: self.session_id.to_vec(),
        }
    }
}

/// What the chat does after a step from the peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (a crossing run of the peer that ours outranks).
    Nothing,
    /// Send this SMP step to the peer.
    Send(Vec<u8>),
    /// The peer started a run: ask our user for the secret.
    Ask {
        /// The peer's question, if any.
        question: Option<String>,
    },
    /// The run ended; send `send` to the peer first if present.
    Finished {
        /// How it ended.
        outcome: Outcome,
        /// The last step for the peer.
        send: Option<Vec<u8>>,
    },
}

struct Run {
    smp: Smp,
    /// What our user typed, if we started the run (kept to answer a crossing run).
    our_secret: Option<Zeroizing<Vec<u8>>>,
    /// The peer started and waits for our user's secret.
    awaiting_answer: bool,
}

/// The authentication state of one chat.
pub struct Auth {
    binding: Binding,
    run: Option<Run>,
}

impl Auth {
    /// No run yet.
    pub fn new(binding: Binding) -> Self {
        Self { binding, run: None }
    }

    /// Whether the peer's run waits for our user's secret.
    pub fn is_asked(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.awaiting_answer)
    }

    /// Whether our own run waits for the peer.
    pub fn is_waiting(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| !r.awaiting_answer && r.smp.outcome().is_none())
    }

    /// Our user typed the secret: answers the peer's run if it waits for us,
    /// otherwise starts a run (aborting one in progress). The steps go to the
    /// peer in order.
    pub fn start(
        &mut self,
        secret: &[u8],
        question: Option<&str>,
    ) -> Result<Vec<Vec<u8>>, SmpError> {
        if let Some(run) = self.run.as_mut().filter(|r| r.awaiting_answer) {
            run.awaiting_answer = false;
            return run.smp.answer(secret, &mut os_rng()).map(|step| vec![step]);
        }
        let mut smp = Smp::new(self.binding.context());
        let first = smp.start(secret, question, &mut os_rng())?;
        let mut steps = Vec::with_capacity(2);
        if let Some(mut old) = self.run.take() {
            steps.push(old.smp.abort());
        }
        steps.push(first);
        self.run = Some(Run {
            smp,
            our_secret: Some(Zeroizing::new(secret.to_vec())),
            awaiting_answer: false,
        });
        Ok(steps)
    }

    /// A step arrived from the peer.
    pub fn receive(&mut self, step: &[u8]) -> Action {
        let starts = Smp::<Ristretto>::is_start(step);
        let mut run = match self.run.take() {
            Some(run) if !starts => run,
            Some(ours) if ours.our_secret.is_some() && self.binding.ours < self.binding.theirs => {
                // Both started: ours goes on, and the peer will answer it.
                self.run = Some(ours);
                return Action::Nothing;
            }
            // A step of no run (left over from one that ended): nothing to do.
            None if !starts => return Action::Nothing,
            // The peer starts anew (or outranks our crossing run): a fresh run,
            // keeping what our user typed to answer it.
            previous => Run {
                smp: Smp::new(self.binding.context()),
                our_secret: previous.and_then(|r| r.our_secret),
                awaiting_answer: false,
            },
        };
        let Ok(next) = run.smp.receive(step, &mut os_rng()) else {
            // Only a finished run refuses input; a stray step after the end.
            return Action::Nothing;
        };
        match next {
            Step::Asked { question } => match run.our_secret.take() {
                Some(secret) => match run.smp.answer(&secret, &mut os_rng()) {
                    Ok(reply) => {
                        self.run = Some(run);
                        Action::Send(reply)
                    }
                    Err(_) => Action::Finished {
                        outcome: Outcome::Aborted,
                        send: Some(run.smp.abort()),
                    },
                },
                None => {
                    run.awaiting_answer = true;
                    self.run = Some(run);
                    Action::Ask { question }
                }
            },
            Step::Send(reply) => {
                self.run = Some(run);
                Action::Send(reply)
            }
            Step::Finished { outcome, send } => Action::Finished { outcome, send },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Auth, Auth) {
        let session_id = [9; 32];
        let a = Binding {
            ours: [1; 32],
            theirs: [2; 32],
            session_id,
        };
        let b = Binding {
            ours: [2; 32],
            theirs: [1; 32],
            session_id,
        };
        (Auth::new(a), Auth::new(b))
    }

    /// Delivers `steps` from one side to the other until both have finished;
    /// returns each side's outcome. `answer` is what the asked side types.
    fn deliver(
        from: &mut Auth,
        to: &mut Auth,
        steps: Vec<Vec<u8>>,
        answer: &[u8],
    ) -> (Option<Outcome>, Option<Outcome>) {
        let (mut from_end, mut to_end) = (None, None);
        let mut queue: Vec<(bool, Vec<u8>)> = steps.into_iter().map(|s| (true, s)).collect();
        while !queue.is_empty() {
            let (forward, step) = queue.remove(0);
            let (receiver, end) = if forward {
                (&mut *to, &mut to_end)
            } else {
                (&mut *from, &mut from_end)
            };
            match receiver.receive(&step) {
                Action::Nothing => {}
                Action::Send(reply) => queue.push((!forward, reply)),
                Action::Ask { .. } => {
                    for reply in receiver.start(answer, None).unwrap() {
                        queue.push((!forward, reply));
                    }
                }
                Action::Finished { outcome, send } => {
                    *end = Some(outcome);
                    if let Some(reply) = send {
                        queue.push((!forward, reply));
                    }
                }
            }
        }
        (from_end, to_end)
    }

    #[test]
    fn same_secret_succeeds_on_both_sides() {
        let (mut a, mut b) = pair();
        let steps = a.start(b"tulip", Some("the flower?")).unwrap();
        assert!(a.is_waiting());
        assert_eq!(
            b.receive(&steps[0]),
            Action::Ask {
                question: Some("the flower?".into())
            }
        );
        assert!(b.is_asked());
        let replies = b.start(b"tulip", None).unwrap();
        let (b_end, a_end) = deliver(&mut b, &mut a, replies, b"");
        assert_eq!(
            (a_end, b_end),
            (Some(Outcome::Succeeded), Some(Outcome::Succeeded))
        );
    }

    #[test]
    fn different_secrets_fail_on_both_sides() {
        let (mut a, mut b) = pair();
        let steps = a.start(b"tulip", None).unwrap();
        let (a_end, b_end) = deliver(&mut a, &mut b, steps, b"rose");
        assert_eq!(
            (a_end, b_end),
            (Some(Outcome::Failed), Some(Outcome::Failed))
        );
    }

    #[test]
    fn crossing_starts_need_no_second_answer() {
        for secrets in [(&b"tulip"[..], &b"tulip"[..]), (b"tulip", b"rose")] {
            let (mut a, mut b) = pair();
            let from_a = a.start(secrets.0, None).unwrap();
            let from_b = b.start(secrets.1, None).unwrap();
            // A outranks B (smaller key): B's start is ignored by A, and B answers
            // A's run with what its user typed.
            assert_eq!(a.receive(&from_b[0]), Action::Nothing);
            let Action::Send(answer) = b.receive(&from_a[0]) else {
                panic!("B should answer A's run");
            };
            let (b_end, a_end) = deliver(&mut b, &mut a, vec![answer], b"unused");
            let expected = if secrets.0 == secrets.1 {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            };
            assert_eq!((a_end, b_end), (Some(expected), Some(expected)));
        }
    }

    #[test]
    fn another_binding_fails() {
        let (mut a, _) = pair();
        let mut relay = Auth::new(Binding {
            ours: [2; 32],
            theirs: [1; 32],
            session_id: [8; 32],
        });
        let steps = a.start(b"tulip", None).unwrap();
        let (a_end, r_end) = deliver(&mut a, &mut relay, steps, b"tulip");
        assert_eq!(
            (a_end, r_end),
            (Some(Outcome::Failed), Some(Outcome::Failed))
        );
    }
}

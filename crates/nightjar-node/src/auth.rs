//! Shared-secret authentication on a link: the node's side of SMP.
//!
//! The protocol itself lives in `nightjar_proto::smp`; here is only what a link
//! remembers between steps and the rules for runs that cross:
//!
//! - A run is bound to both identity keys and to the link's session, so it proves
//!   something about this link only, and ends with it.
//! - If both sides start at once, the run started by the side with the smaller
//!   identity key goes on; the other side drops its own and answers the survivor
//!   with the secret its user already typed, so nobody is asked twice.

use nightjar_proto::smp::{Context, Outcome, Ristretto, Smp, Step};
use zeroize::Zeroizing;

use crate::AuthOutcome;
use crate::link::os_rng;

/// Where a link is in authentication.
#[derive(Debug, Default)]
pub(crate) enum AuthState {
    /// No run, and no success on this link.
    #[default]
    Idle,
    /// A run in progress.
    Running(Box<Run>),
    /// A run succeeded on this link.
    Authenticated,
}

/// A run in progress.
pub(crate) struct Run {
    smp: Smp,
    /// Our user's secret if we started the run (kept to answer a crossing run).
    our_secret: Option<Zeroizing<Vec<u8>>>,
    /// The peer started and we wait for our user's secret.
    awaiting_answer: bool,
}

/// What the engine should do after a step.
#[derive(Debug)]
pub(crate) enum Action {
    /// Nothing to do (a crossing run we outrank: the peer will answer ours).
    Nothing,
    /// Send these bytes (an SMP step) to the peer.
    Send(Vec<u8>),
    /// Ask our user for the secret.
    Ask { question: Option<String> },
    /// The run ended; send the bytes first if there are any.
    Finished {
        outcome: AuthOutcome,
        send: Option<Vec<u8>>,
    },
}

/// What binds a run: both identity keys and the link's session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding {
    pub ours: [u8; 32],
    pub theirs: [u8; 32],
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

    /// Whether our run survives when both sides started at once.
    fn we_win_crossing(&self) -> bool {
        self.ours < self.theirs
    }
}

fn outcome(outcome: Outcome) -> AuthOutcome {
    match outcome {
        Outcome::Succeeded => AuthOutcome::Succeeded,
        Outcome::Failed => AuthOutcome::Failed,
        Outcome::Cheated => AuthOutcome::Cheated,
        Outcome::Aborted => AuthOutcome::Aborted,
    }
}

impl AuthState {
    pub(crate) fn is_authenticated(&self) -> bool {
        matches!(self, Self::Authenticated)
    }

    pub(crate) fn is_running(&self) -> bool {
        matches!(self, Self::Running(_))
    }

    /// Our user starts a run, unless the peer's run waits for our answer: then
    /// this answers it (both typed the secret, in whichever order). Otherwise a run
    /// already in progress is aborted first. The returned steps go to the peer in
    /// order.
    pub(crate) fn start(
        &mut self,
        binding: &Binding,
        secret: &[u8],
        question: Option<&str>,
    ) -> Result<Vec<Vec<u8>>, String> {
        if let Some(answered) = self.answer(secret) {
            return answered.map(|step| vec![step]);
        }
        let mut smp = Smp::new(binding.context());
        let first = smp
            .start(secret, question, &mut os_rng())
            .map_err(|e| e.to_string())?;
        let mut steps = Vec::with_capacity(2);
        if let Self::Running(old) = self {
            steps.push(old.smp.abort());
        }
        steps.push(first);
        *self = Self::Running(Box::new(Run {
            smp,
            our_secret: Some(Zeroizing::new(secret.to_vec())),
            awaiting_answer: false,
        }));
        Ok(steps)
    }

    /// A step arrived from the peer.
    pub(crate) fn receive(&mut self, binding: &Binding, step: &[u8]) -> Action {
        let starts = Smp::<Ristretto>::is_start(step);
        let mut run = match std::mem::take(self) {
            Self::Running(run) if !starts => run,
            Self::Running(ours) if ours.our_secret.is_some() && binding.we_win_crossing() => {
                // Both started: ours goes on, and the peer will answer it.
                *self = Self::Running(ours);
                return Action::Nothing;
            }
            Self::Running(ours) => Box::new(Run {
                smp: Smp::new(binding.context()),
                our_secret: ours.our_secret,
                awaiting_answer: false,
            }),
            Self::Idle | Self::Authenticated => Box::new(Run {
                smp: Smp::new(binding.context()),
                our_secret: None,
                awaiting_answer: false,
            }),
        };
        let Ok(next) = run.smp.receive(step, &mut os_rng()) else {
            // Only a finished run refuses input, and finished runs are not kept.
            return Action::Nothing;
        };
        match next {
            Step::Asked { question } => match run.our_secret.take() {
                // A crossing run: answer with what our user typed for theirs.
                Some(secret) => match run.smp.answer(&secret, &mut os_rng()) {
                    Ok(reply) => {
                        *self = Self::Running(run);
                        Action::Send(reply)
                    }
                    Err(_) => self.end(outcome(Outcome::Cheated), None),
                },
                None => {
                    run.awaiting_answer = true;
                    *self = Self::Running(run);
                    Action::Ask { question }
                }
            },
            Step::Send(reply) => {
                *self = Self::Running(run);
                Action::Send(reply)
            }
            Step::Finished { outcome: o, send } => self.end(outcome(o), send),
        }
    }

    /// Our user answers the peer's question.
    pub(crate) fn answer(&mut self, secret: &[u8]) -> Option<Result<Vec<u8>, String>> {
        let Self::Running(run) = self else {
            return None;
        };
        if !run.awaiting_answer {
            return None;
        }
        run.awaiting_answer = false;
        Some(
            run.smp
                .answer(secret, &mut os_rng())
                .map_err(|e| e.to_string()),
        )
    }

    /// Our user gives up; `None` if nothing was running.
    pub(crate) fn abort(&mut self) -> Option<Vec<u8>> {
        let Self::Running(run) = self else {
            return None;
        };
        let step = run.smp.abort();
        *self = Self::Idle;
        Some(step)
    }

    fn end(&mut self, outcome: AuthOutcome, send: Option<Vec<u8>>) -> Action {
        *self = if outcome == AuthOutcome::Succeeded {
            Self::Authenticated
        } else {
            Self::Idle
        };
        Action::Finished { outcome, send }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("awaiting_answer", &self.awaiting_answer)
            .finish_non_exhaustive()
    }
}

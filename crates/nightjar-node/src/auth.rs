//! Shared-secret authentication on a link: driving SMP runs between two peers.
//!
//! The protocol itself lives in `nightjar_proto::smp`; here is only what a link
//! remembers between steps and the rules for runs that cross (the node and the
//! one-shot chat both use it):
//!
//! - A run is bound to both identity keys and to the link's session, so it proves
//!   something about this link only, and ends with it.
//! - If both sides start at once, the run started by the side with the smaller
//!   identity key goes on; the other side drops its own and answers the survivor
//!   with the secret its user already typed, so nobody is asked twice.
//! - Every step on the wire starts with the run's id, eight random bytes chosen by
//!   the side that starts it. A step of an older run (still in flight when that run
//!   was aborted or restarted) or of no run at all is dropped, so it can neither
//!   break the new run nor end a finished one.
//! - When two links between the same peers cross and the one carrying a run is
//!   replaced, the comparison goes on on the link that stays, once, without
//!   asking anyone twice: the side that started the run starts it again with the
//!   secret its user typed, and a side that answered (with what its user typed)
//!   answers the restarted run with it. Only while nobody can know the result
//!   yet: the answering side learns it from the starter's third step, so a
//!   starter that sent it does not start again (that would give the peer a
//!   second guess), and the run just ends. A peer that keeps replacing links
//!   gets no further guesses either.

use nightjar_proto::smp::{Context, Outcome, Ristretto, Smp, Step};
use zeroize::Zeroizing;

use crate::AuthOutcome;
use crate::link::os_rng;

/// Where a link is in authentication.
#[derive(Debug, Default)]
pub enum AuthState {
    /// No run, and no success on this link.
    #[default]
    Idle,
    /// A run in progress.
    Running(Box<Run>),
    /// A comparison moved here from a replaced link, where we had answered the
    /// peer's run: we answer its restarted run with the same secret.
    Ready(Resume),
    /// A run succeeded on this link.
    Authenticated,
}

/// How long a run id is.
const RUN_ID_LEN: usize = 8;
type RunId = [u8; RUN_ID_LEN];

fn new_run_id() -> RunId {
    let mut id = [0u8; RUN_ID_LEN];
    rand_core::Rng::fill_bytes(&mut os_rng(), &mut id);
    id
}

/// A step as it goes on the wire: the run id, then the SMP message.
fn framed(id: &RunId, step: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(RUN_ID_LEN + step.len());
    out.extend_from_slice(id);
    out.extend_from_slice(&step);
    out
}

/// A run in progress.
pub struct Run {
    id: RunId,
    smp: Smp,
    /// Our user's secret if we started the run (kept to answer a crossing run).
    our_secret: Option<Zeroizing<Vec<u8>>>,
    /// The peer started and we wait for our user's secret.
    awaiting_answer: bool,
    /// The secret our user typed for this comparison, started or answered
    /// (kept to start it again on a link that replaces this one).
    typed: Option<Zeroizing<Vec<u8>>>,
    /// Our question, if we started the run with one.
    question: Option<String>,
    /// The comparison already moved once from a replaced link.
    moved: bool,
    /// We started this run (rather than answered the peer's).
    starter: bool,
    /// We started it and sent our third step: the peer may know the result.
    sent_final: bool,
}

/// A run taken off a link that is being replaced, to go on on the new one.
pub struct Resume {
    secret: Zeroizing<Vec<u8>>,
    question: Option<String>,
    /// We started it (and start it again); otherwise we answer the peer's.
    starter: bool,
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume").finish_non_exhaustive()
    }
}

/// What the engine should do after a step.
#[derive(Debug)]
pub enum Action {
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
pub struct Binding {
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
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Self::Authenticated)
    }

    /// A run in progress, or a moved one we are ready to answer.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running(_) | Self::Ready(_))
    }

    /// Whether the peer's run waits for our user's secret.
    pub fn is_asked(&self) -> bool {
        matches!(self, Self::Running(run) if run.awaiting_answer)
    }

    /// Whether our side of a run is done and the peer's next step is awaited.
    pub fn is_waiting(&self) -> bool {
        matches!(self, Self::Running(run) if !run.awaiting_answer)
    }

    /// Our user starts a run, unless the peer's run waits for our answer: then
    /// this answers it (both typed the secret, in whichever order). Otherwise a run
    /// already in progress is aborted first. The returned steps go to the peer in
    /// order.
    pub fn start(
        &mut self,
        binding: &Binding,
        secret: &[u8],
        question: Option<&str>,
    ) -> Result<Vec<Vec<u8>>, String> {
        if let Some(answered) = self.answer(secret) {
            return answered.map(|step| vec![step]);
        }
        self.start_run(binding, secret, question, false)
    }

    fn start_run(
        &mut self,
        binding: &Binding,
        secret: &[u8],
        question: Option<&str>,
        moved: bool,
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut smp = Smp::new(binding.context());
        let first = smp
            .start(secret, question, &mut os_rng())
            .map_err(|e| e.to_string())?;
        let mut steps = Vec::with_capacity(2);
        if let Self::Running(old) = self {
            steps.push(framed(&old.id, old.smp.abort()));
        }
        let id = new_run_id();
        steps.push(framed(&id, first));
        *self = Self::Running(Box::new(Run {
            id,
            smp,
            our_secret: Some(Zeroizing::new(secret.to_vec())),
            awaiting_answer: false,
            typed: Some(Zeroizing::new(secret.to_vec())),
            question: question.map(str::to_owned),
            moved,
            starter: true,
            sent_final: false,
        }));
        Ok(steps)
    }

    /// The link this state belongs to is being replaced by another between the
    /// same peers. Ends any run here and returns what starts it again on the new
    /// link: only if our user already typed the secret (otherwise the peer, who
    /// did, starts again and our user is asked on the new link) and only once
    /// per comparison. `None` means the run, if any, simply ends.
    pub fn take_for_move(&mut self) -> Option<Resume> {
        let Self::Running(run) = std::mem::take(self) else {
            return None;
        };
        if run.moved || run.sent_final {
            return None;
        }
        let Run {
            typed,
            question,
            starter,
            ..
        } = *run;
        typed.map(|secret| Resume {
            secret,
            question,
            starter,
        })
    }

    /// Goes on with a comparison taken off a replaced link (see
    /// `take_for_move`): starts it again if we started it, or waits to answer
    /// the peer's restart. Returns the steps to send.
    pub fn resume(&mut self, binding: &Binding, resume: Resume) -> Result<Vec<Vec<u8>>, String> {
        if resume.starter {
            self.start_run(binding, &resume.secret, resume.question.as_deref(), true)
        } else {
            *self = Self::Ready(resume);
            Ok(Vec::new())
        }
    }

    /// Ends a moved comparison we were ready to answer; false if there was none.
    pub fn cancel_ready(&mut self) -> bool {
        if matches!(self, Self::Ready(_)) {
            *self = Self::Idle;
            true
        } else {
            false
        }
    }

    /// A step arrived from the peer.
    pub fn receive(&mut self, binding: &Binding, bytes: &[u8]) -> Action {
        let Some((id, step)) = bytes.split_first_chunk::<RUN_ID_LEN>() else {
            return Action::Nothing;
        };
        let starts = Smp::<Ristretto>::is_start(step);
        let current = match self {
            Self::Running(run) => Some(run.id),
            Self::Idle | Self::Ready(_) | Self::Authenticated => None,
        };
        if !starts && current != Some(*id) {
            tracing::debug!("dropped an SMP step of another run");
            return Action::Nothing;
        }
        match self.receive_step(binding, *id, step, starts) {
            Action::Send(reply) => Action::Send(framed(id, reply)),
            Action::Finished { outcome, send } => Action::Finished {
                outcome,
                send: send.map(|step| framed(id, step)),
            },
            other => other,
        }
    }

    fn receive_step(&mut self, binding: &Binding, id: RunId, step: &[u8], starts: bool) -> Action {
        let mut run = match std::mem::take(self) {
            Self::Running(run) if !starts => run,
            Self::Running(ours) if ours.our_secret.is_some() && binding.we_win_crossing() => {
                // Both started: ours goes on, and the peer will answer it.
                *self = Self::Running(ours);
                return Action::Nothing;
            }
            Self::Running(ours) => Box::new(Run {
                id,
                smp: Smp::new(binding.context()),
                our_secret: ours.our_secret,
                awaiting_answer: false,
                typed: ours.typed,
                question: None,
                moved: ours.moved,
                starter: false,
                sent_final: false,
            }),
            // The peer restarted the comparison we had answered: answer again.
            Self::Ready(resume) => Box::new(Run {
                id,
                smp: Smp::new(binding.context()),
                our_secret: Some(resume.secret),
                awaiting_answer: false,
                typed: None,
                question: None,
                moved: true,
                starter: false,
                sent_final: false,
            }),
            Self::Idle | Self::Authenticated => Box::new(Run {
                id,
                smp: Smp::new(binding.context()),
                our_secret: None,
                awaiting_answer: false,
                typed: None,
                question: None,
                moved: false,
                starter: false,
                sent_final: false,
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
                // Only a starter sends a step here (its third): from now on
                // the peer can know the result.
                run.sent_final = true;
                *self = Self::Running(run);
                Action::Send(reply)
            }
            Step::Finished { outcome: o, send } => self.end(outcome(o), send),
        }
    }

    /// Our user answers the peer's question.
    pub fn answer(&mut self, secret: &[u8]) -> Option<Result<Vec<u8>, String>> {
        let Self::Running(run) = self else {
            return None;
        };
        if !run.awaiting_answer {
            return None;
        }
        run.awaiting_answer = false;
        run.typed = Some(Zeroizing::new(secret.to_vec()));
        Some(
            run.smp
                .answer(secret, &mut os_rng())
                .map(|step| framed(&run.id, step))
                .map_err(|e| e.to_string()),
        )
    }

    /// Our user gives up; `None` if nothing was running.
    pub fn abort(&mut self) -> Option<Vec<u8>> {
        let Self::Running(run) = self else {
            return None;
        };
        let step = framed(&run.id, run.smp.abort());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn bindings() -> (Binding, Binding) {
        let a = Binding {
            ours: [1; 32],
            theirs: [2; 32],
            session_id: [9; 32],
        };
        let b = Binding {
            ours: [2; 32],
            theirs: [1; 32],
            session_id: [9; 32],
        };
        (a, b)
    }

    fn sent(action: Action) -> Vec<u8> {
        match action {
            Action::Send(step) => step,
            other => panic!("expected a step to send, got {other:?}"),
        }
    }

    /// Runs the rest of a run from the responder's SMP2 to the end.
    fn finish(
        a: &mut AuthState,
        b: &mut AuthState,
        (ba, bb): (&Binding, &Binding),
        smp2: &[u8],
    ) -> (AuthOutcome, AuthOutcome) {
        let smp3 = sent(a.receive(ba, smp2));
        let Action::Finished {
            outcome: b_outcome,
            send: Some(smp4),
        } = b.receive(bb, &smp3)
        else {
            panic!("the responder did not finish");
        };
        let Action::Finished {
            outcome: a_outcome, ..
        } = a.receive(ba, &smp4)
        else {
            panic!("the initiator did not finish");
        };
        (a_outcome, b_outcome)
    }

    #[test]
    fn a_step_of_an_aborted_run_is_dropped() {
        let (ba, bb) = bindings();
        let (mut a, mut b) = (AuthState::Idle, AuthState::Idle);
        let smp1 = a.start(&ba, b"secret", None).unwrap().pop().unwrap();
        assert!(matches!(b.receive(&bb, &smp1), Action::Ask { .. }));
        let smp2 = b.answer(b"secret").unwrap().unwrap();
        let abort = a.abort().unwrap();
        // B's answer crossed A's abort: A, idle now, ignores it.
        assert!(matches!(a.receive(&ba, &smp2), Action::Nothing));
        assert!(matches!(a, AuthState::Idle));
        assert!(matches!(
            b.receive(&bb, &abort),
            Action::Finished {
                outcome: AuthOutcome::Aborted,
                send: None
            }
        ));
    }

    #[test]
    fn a_restart_is_not_broken_by_the_old_run() {
        let (ba, bb) = bindings();
        let (mut a, mut b) = (AuthState::Idle, AuthState::Idle);
        let smp1 = a.start(&ba, b"secret", None).unwrap().pop().unwrap();
        b.receive(&bb, &smp1);
        let stale = b.answer(b"secret").unwrap().unwrap();
        // A starts again before B's answer arrives.
        let mut steps = a.start(&ba, b"secret", Some("again?")).unwrap();
        assert_eq!(steps.len(), 2, "the old run is aborted first");
        let new_smp1 = steps.pop().unwrap();
        let abort = steps.pop().unwrap();
        assert!(matches!(a.receive(&ba, &stale), Action::Nothing));
        assert!(matches!(
            b.receive(&bb, &abort),
            Action::Finished {
                outcome: AuthOutcome::Aborted,
                ..
            }
        ));
        assert!(matches!(
            b.receive(&bb, &new_smp1),
            Action::Ask { question: Some(q) } if q == "again?"
        ));
        let smp2 = b.answer(b"secret").unwrap().unwrap();
        assert_eq!(
            finish(&mut a, &mut b, (&ba, &bb), &smp2),
            (AuthOutcome::Succeeded, AuthOutcome::Succeeded)
        );
        assert!(a.is_authenticated() && b.is_authenticated());
        // A stray abort of that run changes nothing any more.
        assert!(matches!(a.receive(&ba, &abort), Action::Nothing));
        assert!(a.is_authenticated());
    }

    #[test]
    fn crossing_runs_settle_on_one() {
        let (ba, bb) = bindings();
        let (mut a, mut b) = (AuthState::Idle, AuthState::Idle);
        let from_a = a.start(&ba, b"same", None).unwrap().pop().unwrap();
        let from_b = b.start(&bb, b"same", None).unwrap().pop().unwrap();
        // A has the smaller key: its run goes on, B answers it with its secret.
        assert!(matches!(a.receive(&ba, &from_b), Action::Nothing));
        let smp2 = sent(b.receive(&bb, &from_a));
        assert_eq!(
            finish(&mut a, &mut b, (&ba, &bb), &smp2),
            (AuthOutcome::Succeeded, AuthOutcome::Succeeded)
        );
    }

    /// The same peers on a second link (another session).
    fn moved((a, b): (Binding, Binding)) -> (Binding, Binding) {
        let session_id = [10; 32];
        (Binding { session_id, ..a }, Binding { session_id, ..b })
    }

    /// Both sides move what they have to the new link, as the engine does.
    fn move_both(
        a: &mut AuthState,
        b: &mut AuthState,
        (ba, bb): (&Binding, &Binding),
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (mut new_a, mut new_b) = (AuthState::Idle, AuthState::Idle);
        let from_a = a
            .take_for_move()
            .map(|r| new_a.resume(ba, r).unwrap())
            .unwrap_or_default();
        let from_b = b
            .take_for_move()
            .map(|r| new_b.resume(bb, r).unwrap())
            .unwrap_or_default();
        (*a, *b) = (new_a, new_b);
        (from_a, from_b)
    }

    /// Both sides had typed the secret: both start again on the new link, the
    /// runs cross, and A's (the smaller key) goes on to the end.
    fn both_start_again(
        a: &mut AuthState,
        b: &mut AuthState,
        (ba, bb): (&Binding, &Binding),
    ) -> (AuthOutcome, AuthOutcome) {
        let (mut from_a, mut from_b) = move_both(a, b, (ba, bb));
        let (from_a, from_b) = (from_a.pop().unwrap(), from_b.pop().unwrap());
        assert!(matches!(a.receive(ba, &from_b), Action::Nothing));
        let smp2 = sent(b.receive(bb, &from_a));
        finish(a, b, (ba, bb), &smp2)
    }

    #[test]
    fn a_run_whose_link_is_replaced_goes_on_on_the_new_one() {
        let old = bindings();
        let (ba, bb) = moved(old);
        // Both typed the secret at once on the old link; its steps are lost with it.
        let (mut a, mut b) = (AuthState::Idle, AuthState::Idle);
        a.start(&old.0, b"same", None).unwrap();
        b.start(&old.1, b"same", None).unwrap();
        assert_eq!(
            both_start_again(&mut a, &mut b, (&ba, &bb)),
            (AuthOutcome::Succeeded, AuthOutcome::Succeeded)
        );
    }

    /// A asked B a question on a link; the link is about to be replaced.
    fn asked_on_the_old_link() -> (AuthState, AuthState, (Binding, Binding)) {
        let old = bindings();
        let (mut a, mut b) = (AuthState::Idle, AuthState::Idle);
        let smp1 = a.start(&old.0, b"heron", Some("the bird?")).unwrap().pop();
        assert!(matches!(
            b.receive(&old.1, &smp1.unwrap()),
            Action::Ask { .. }
        ));
        (a, b, moved(old))
    }

    #[test]
    fn an_answered_question_is_not_asked_again_after_a_move() {
        let (mut a, mut b, (ba, bb)) = asked_on_the_old_link();
        b.answer(b"heron").unwrap().unwrap();
        // B's answer never arrives: the link is replaced. A starts again, and B
        // answers with what its user typed, without asking.
        let (mut from_a, from_b) = move_both(&mut a, &mut b, (&ba, &bb));
        assert!(from_b.is_empty(), "B answered; it does not start");
        assert!(b.is_running());
        let smp2 = sent(b.receive(&bb, &from_a.pop().unwrap()));
        assert_eq!(
            finish(&mut a, &mut b, (&ba, &bb), &smp2),
            (AuthOutcome::Succeeded, AuthOutcome::Succeeded)
        );
    }

    #[test]
    fn a_run_the_peer_may_know_the_end_of_does_not_start_again() {
        let (mut a, mut b, _) = asked_on_the_old_link();
        let smp2 = b.answer(b"heron").unwrap().unwrap();
        let old = bindings();
        // A sends its third step: B can now tell whether the secrets match.
        sent(a.receive(&old.0, &smp2));
        assert!(
            a.take_for_move().is_none(),
            "a second run would be a second guess for B"
        );
        assert!(!a.is_running());
    }

    #[test]
    fn an_unanswered_question_is_asked_again_on_the_new_link() {
        let (mut a, mut b, (ba, bb)) = asked_on_the_old_link();
        let (mut from_a, from_b) = move_both(&mut a, &mut b, (&ba, &bb));
        assert!(from_b.is_empty(), "B's user typed nothing to start with");
        assert!(!b.is_running());
        assert!(matches!(
            b.receive(&bb, &from_a.pop().unwrap()),
            Action::Ask { question: Some(q) } if q == "the bird?"
        ));
        let smp2 = b.answer(b"heron").unwrap().unwrap();
        assert_eq!(
            finish(&mut a, &mut b, (&ba, &bb), &smp2),
            (AuthOutcome::Succeeded, AuthOutcome::Succeeded)
        );
    }

    #[test]
    fn a_comparison_moves_only_once() {
        let old = bindings();
        let (ba, _) = moved(old);
        let mut a = AuthState::Idle;
        a.start(&old.0, b"secret", None).unwrap();
        let resume = a.take_for_move().unwrap();
        assert!(matches!(a, AuthState::Idle));
        a.resume(&ba, resume).unwrap();
        // A peer that replaces the link again gets no third run.
        assert!(a.take_for_move().is_none());
        assert!(matches!(a, AuthState::Idle));
        // Nothing running, nothing to move; a new run typed by the user may move.
        assert!(a.take_for_move().is_none());
        a.start(&ba, b"secret", None).unwrap();
        assert!(a.take_for_move().is_some());
    }

    #[test]
    fn short_or_stray_input_is_ignored() {
        let (ba, _) = bindings();
        let mut a = AuthState::Idle;
        assert!(matches!(a.receive(&ba, &[1, 2, 3]), Action::Nothing));
        assert!(matches!(a.receive(&ba, &[0; 40]), Action::Nothing));
        assert!(matches!(a, AuthState::Idle));
    }
}

//! Carrying out the main screen's effects on the node, off the drawing loop.
//!
//! Quick calls run one after another on one task, so their answers arrive in the
//! order they were asked. Calls that wait on the network (invites, requests,
//! authentication) get a task each, and lines of the line interface run on a task
//! of their own, exactly as `nightjar cli` runs them.

use std::time::Duration;

use nightjar_node::{Event, Node, NodeError};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::app::{Answer, Done, Effect, FileAction, FileRefusal, HISTORY_LOADED, Secret};
use crate::cli::Session;
use crate::cli::files::resolve_path;

/// How long leaving waits for lines and calls already asked for.
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// Sends effects to the tasks that carry them out.
#[derive(Debug)]
pub struct Driver {
    node: Node,
    quick: mpsc::UnboundedSender<Effect>,
    lines: mpsc::UnboundedSender<(Secret, Option<String>)>,
    done: mpsc::UnboundedSender<Done>,
    tasks: Vec<JoinHandle<()>>,
}

impl Driver {
    /// Starts the tasks; results arrive on the returned receiver.
    pub fn start(node: Node) -> (Self, mpsc::UnboundedReceiver<Done>) {
        let (done, done_rx) = mpsc::unbounded_channel();
        let (quick, quick_rx) = mpsc::unbounded_channel();
        let (lines, lines_rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(quick_calls(node.clone(), quick_rx, done.clone())),
            tokio::spawn(line_interface(
                node.clone(),
                node.subscribe(),
                lines_rx,
                done.clone(),
            )),
        ];
        let driver = Self {
            node,
            quick,
            lines,
            done,
            tasks,
        };
        (driver, done_rx)
    }

    /// Lets the lines and calls already asked for finish (messages typed just
    /// before quitting are stored and sent), for a few seconds at most.
    pub async fn finish(self) {
        let Self {
            quick,
            lines,
            tasks,
            ..
        } = self;
        drop((quick, lines));
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(FINISH_WAIT, all).await.is_err() {
            tracing::warn!("leaving before every typed line had run");
        }
    }

    /// Carries out one effect (all but [`Effect::Quit`], which the caller handles).
    pub fn execute(&self, effect: Effect) {
        let node = self.node.clone();
        let done = self.done.clone();
        let answer = move |ticket: u64, answer: Answer| {
            let _ = done.send(Done::Answer { ticket, answer });
        };
        match effect {
            Effect::Quit => {}
            Effect::RunLine { line, current } => {
                let _ = self.lines.send((line, current));
            }
            Effect::SendRequest {
                ticket,
                address,
                name,
                greeting,
            } => {
                tokio::spawn(async move {
                    let r = node.send_request(&address, &name, &greeting).await;
                    answer(ticket, Answer::RequestSent(r.map_err(text)));
                });
            }
            Effect::CreateInvite {
                ticket,
                name,
                require_auth,
            } => {
                tokio::spawn(async move {
                    let r = node.create_invite(&name, require_auth).await;
                    answer(ticket, Answer::InviteCreated(r.map_err(text)));
                });
            }
            Effect::JoinInvite {
                ticket,
                code,
                name,
                require_auth,
            } => {
                tokio::spawn(async move {
                    let r = node.join_invite(&code.0, &name, require_auth).await;
                    answer(ticket, Answer::Joined(r.map_err(text)));
                });
            }
            Effect::Authenticate {
                ticket,
                name,
                secret,
                question,
            } => {
                tokio::spawn(async move {
                    let r = node
                        .authenticate(&name, &secret.0, question.as_deref())
                        .await;
                    answer(ticket, Answer::AuthStarted(r.map_err(text)));
                });
            }
            // Reading and hashing a large file takes a while.
            Effect::SendFile {
                ticket,
                contact,
                path,
            } => {
                tokio::spawn(async move {
                    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                    let cwd = std::env::current_dir().unwrap_or_default();
                    let path = resolve_path(&path, home.as_deref(), &cwd);
                    let r = node.send_file(&contact, &path).await;
                    answer(ticket, Answer::File(r.map_err(refusal)));
                });
            }
            quick => {
                let _ = self.quick.send(quick);
            }
        }
    }
}

fn text(e: NodeError) -> String {
    e.to_string()
}

fn refusal(e: NodeError) -> FileRefusal {
    FileRefusal {
        name_taken: matches!(e, NodeError::FileExists(_)),
        text: e.to_string(),
    }
}

async fn file_action(node: &Node, id: i64, action: FileAction) -> Answer {
    let r = match action {
        FileAction::Accept { save_as } => {
            let options = nightjar_node::AcceptFile {
                save_as,
                ..Default::default()
            };
            node.accept_file(id, options).await
        }
        FileAction::Decline => node.decline_file(id).await,
        FileAction::Cancel => node.cancel_file(id).await,
        FileAction::Resume => node.resume_file(id).await,
    };
    Answer::File(r.map_err(refusal))
}

/// Quick calls, in order.
async fn quick_calls(
    node: Node,
    mut effects: mpsc::UnboundedReceiver<Effect>,
    done: mpsc::UnboundedSender<Done>,
) {
    if let Ok(info) = node.info().await {
        let _ = done.send(Done::Info(info));
    }
    let mut waiting = std::collections::VecDeque::new();
    loop {
        let effect = match waiting.pop_front() {
            Some(effect) => effect,
            None => match effects.recv().await {
                Some(effect) => effect,
                None => return,
            },
        };
        let result = match effect {
            Effect::Refresh => {
                // Answers to several refreshes in a row say the same: skip those
                // already queued behind this one.
                while let Ok(next) = effects.try_recv() {
                    if !matches!(next, Effect::Refresh) {
                        waiting.push_back(next);
                    }
                }
                let contacts = node.contacts().await;
                let requests = node.requests().await;
                match (contacts, requests) {
                    (Ok(c), Ok(r)) => {
                        let _ = done.send(Done::Contacts(c));
                        Done::Requests(r)
                    }
                    (Err(e), _) | (_, Err(e)) => Done::Log(vec![format!("error: {e}")]),
                }
            }
            Effect::LoadHistory(name) => match node.history(&name, HISTORY_LOADED).await {
                Ok(messages) => Done::History(name, messages),
                Err(e) => Done::Log(vec![format!("error: {e}")]),
            },
            Effect::Accept { ticket, id, name } => Done::Answer {
                ticket,
                answer: Answer::Accepted(node.accept_request(id, &name).await.map_err(text)),
            },
            Effect::Decline { ticket, id } => Done::Answer {
                ticket,
                answer: Answer::Declined(node.decline_request(id).await.map(|()| id).map_err(text)),
            },
            Effect::AbortAuth(name) => match node.abort_auth(&name).await {
                Ok(()) => continue,
                Err(e) => Done::Log(vec![format!("error: {e}")]),
            },
            Effect::Verify {
                ticket,
                name,
                fingerprint,
            } => Done::Answer {
                ticket,
                answer: Answer::Verified(node.verify(&name, &fingerprint).await.map_err(text)),
            },
            Effect::LoadTransfers => match node.transfers(None).await {
                Ok(transfers) => Done::Transfers(transfers),
                Err(e) => Done::Log(vec![format!("error: {e}")]),
            },
            Effect::FileAction { ticket, id, action } => Done::Answer {
                ticket,
                answer: file_action(&node, id, action).await,
            },
            // Carried out elsewhere.
            _ => continue,
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

/// Lines of the line interface, and what it prints about events. Ends when no
/// more lines can come.
async fn line_interface(
    node: Node,
    mut events: broadcast::Receiver<Event>,
    mut lines: mpsc::UnboundedReceiver<(Secret, Option<String>)>,
    done: mpsc::UnboundedSender<Done>,
) {
    let mut session = Session::collecting(node);
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some((line, sent_with)) = line else { return };
                session.set_current(sent_with.clone());
                // `/quit` never gets here: the screen handles it.
                let _ = session.handle(&line.0).await;
                let _ = done.send(Done::Output(session.take_lines()));
                let _ = done.send(Done::LineRan {
                    sent_with,
                    current: session.current().map(str::to_owned),
                });
            }
            event = events.recv() => {
                let lines = match event {
                    Ok(event) => {
                        session.show_event(&event);
                        session.take_lines()
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => session.take_lines(),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let _ = done.send(Done::Log(lines));
            }
        }
    }
}

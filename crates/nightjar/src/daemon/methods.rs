//! The methods: params by name into a [`Call`], a call onto the [`Node`] handle,
//! the node's answer back into JSON.

use std::path::PathBuf;

use nightjar_node::{AcceptFile, Node, NodeError};
use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::rpc::RpcError;

/// `history` without `limit`.
pub(crate) const DEFAULT_HISTORY_LIMIT: usize = 50;

/// A request the node answers.
pub(crate) enum NodeCall {
    Info,
    SendRequest {
        address: String,
        name: String,
        greeting: String,
    },
    Requests,
    AcceptRequest {
        id: i64,
        name: String,
    },
    DeclineRequest {
        id: i64,
    },
    Contacts,
    Contact {
        name: String,
    },
    SendMessage {
        contact: String,
        text: String,
    },
    History {
        contact: String,
        limit: usize,
    },
    SetPresence {
        contact: String,
        on: bool,
    },
    Verify {
        contact: String,
        fingerprint: String,
    },
    DeleteContact {
        contact: String,
    },
    Authenticate {
        contact: String,
        secret: Zeroizing<String>,
        question: Option<String>,
    },
    AnswerAuth {
        contact: String,
        secret: Zeroizing<String>,
    },
    AbortAuth {
        contact: String,
    },
    CreateInvite {
        name: String,
        require_auth: bool,
    },
    JoinInvite {
        code: String,
        name: String,
        require_auth: bool,
    },
    Mailboxes,
    AddMailbox {
        onion: String,
    },
    RemoveMailbox {
        onion: String,
    },
    SendFile {
        contact: String,
        path: PathBuf,
    },
    Transfers {
        contact: Option<String>,
    },
    Transfer {
        id: i64,
    },
    AcceptFile {
        id: i64,
        options: AcceptFile,
    },
    DeclineFile {
        id: i64,
    },
    CancelFile {
        id: i64,
    },
    ResumeFile {
        id: i64,
    },
    Groups,
    CreateGroup {
        name: String,
    },
    GroupHistory {
        group: String,
    },
    SendGroupMessage {
        group: String,
        text: String,
    },
    InviteToGroup {
        group: String,
        contact: String,
    },
    RemoveFromGroup {
        group: String,
        contact: String,
    },
    LeaveGroup {
        group: String,
    },
}

/// Every method a client may call.
pub(crate) enum Call {
    Node(NodeCall),
    /// Start receiving the node's events on this connection.
    Subscribe,
    /// Stop the daemon and the node.
    Shutdown,
}

impl Call {
    /// Reads `params` (absent, or an object) for `method`.
    pub(crate) fn parse(method: &str, params: Option<Value>) -> Result<Self, RpcError> {
        let mut p = Params::new(params)?;
        let call = match method {
            "info" => NodeCall::Info,
            "send_request" => NodeCall::SendRequest {
                address: p.string("address")?,
                name: p.string("name")?,
                greeting: p.opt_string("greeting")?.unwrap_or_default(),
            },
            "requests" => NodeCall::Requests,
            "accept_request" => NodeCall::AcceptRequest {
                id: p.integer("id")?,
                name: p.string("name")?,
            },
            "decline_request" => NodeCall::DeclineRequest {
                id: p.integer("id")?,
            },
            "contacts" => NodeCall::Contacts,
            "contact" => NodeCall::Contact {
                name: p.string("name")?,
            },
            "send_message" => NodeCall::SendMessage {
                contact: p.string("contact")?,
                text: p.string("text")?,
            },
            "history" => NodeCall::History {
                contact: p.string("contact")?,
                limit: p.opt_count("limit")?.unwrap_or(DEFAULT_HISTORY_LIMIT),
            },
            "set_presence" => NodeCall::SetPresence {
                contact: p.string("contact")?,
                on: p.boolean("on")?,
            },
            "verify" => NodeCall::Verify {
                contact: p.string("contact")?,
                fingerprint: p.string("fingerprint")?,
            },
            "delete_contact" => NodeCall::DeleteContact {
                contact: p.string("contact")?,
            },
            "authenticate" => NodeCall::Authenticate {
                contact: p.string("contact")?,
                secret: Zeroizing::new(p.string("secret")?),
                question: p.opt_string("question")?,
            },
            "answer_auth" => NodeCall::AnswerAuth {
                contact: p.string("contact")?,
                secret: Zeroizing::new(p.string("secret")?),
            },
            "abort_auth" => NodeCall::AbortAuth {
                contact: p.string("contact")?,
            },
            "create_invite" => NodeCall::CreateInvite {
                name: p.string("name")?,
                require_auth: p.opt_boolean("require_auth")?.unwrap_or(false),
            },
            "join_invite" => NodeCall::JoinInvite {
                code: p.string("code")?,
                name: p.string("name")?,
                require_auth: p.opt_boolean("require_auth")?.unwrap_or(false),
            },
            "mailboxes" => NodeCall::Mailboxes,
            "add_mailbox" => NodeCall::AddMailbox {
                onion: p.string("onion")?,
            },
            "remove_mailbox" => NodeCall::RemoveMailbox {
                onion: p.string("onion")?,
            },
            "send_file" => NodeCall::SendFile {
                contact: p.string("contact")?,
                path: p.absolute_path("path")?,
            },
            "transfers" => NodeCall::Transfers {
                contact: p.opt_string("contact")?,
            },
            "transfer" => NodeCall::Transfer {
                id: p.integer("id")?,
            },
            "accept_file" => NodeCall::AcceptFile {
                id: p.integer("id")?,
                options: AcceptFile {
                    save_as: p.opt_string("save_as")?,
                    dir: p.opt_absolute_path("dir")?,
                    overwrite: p.opt_boolean("overwrite")?.unwrap_or(false),
                },
            },
            "decline_file" => NodeCall::DeclineFile {
                id: p.integer("id")?,
            },
            "cancel_file" => NodeCall::CancelFile {
                id: p.integer("id")?,
            },
            "resume_file" => NodeCall::ResumeFile {
                id: p.integer("id")?,
            },
            "groups" => NodeCall::Groups,
            "create_group" => NodeCall::CreateGroup {
                name: p.string("name")?,
            },
            "group_history" => NodeCall::GroupHistory {
                group: p.string("group")?,
            },
            "send_group_message" => NodeCall::SendGroupMessage {
                group: p.string("group")?,
                text: p.string("text")?,
            },
            "invite_to_group" => NodeCall::InviteToGroup {
                group: p.string("group")?,
                contact: p.string("contact")?,
            },
            "remove_from_group" => NodeCall::RemoveFromGroup {
                group: p.string("group")?,
                contact: p.string("contact")?,
            },
            "leave_group" => NodeCall::LeaveGroup {
                group: p.string("group")?,
            },
            "subscribe" => {
                p.finish()?;
                return Ok(Self::Subscribe);
            }
            "shutdown" => {
                p.finish()?;
                return Ok(Self::Shutdown);
            }
            _ => return Err(RpcError::method_not_found(method)),
        };
        p.finish()?;
        Ok(Self::Node(call))
    }
}

/// Carries out `call` and serialises the node's answer.
pub(crate) async fn execute(call: NodeCall, node: &Node) -> Result<Value, RpcError> {
    match call {
        NodeCall::Info => to_json(node.info().await),
        NodeCall::SendRequest {
            address,
            name,
            greeting,
        } => to_json(node.send_request(&address, &name, &greeting).await),
        NodeCall::Requests => to_json(node.requests().await),
        NodeCall::AcceptRequest { id, name } => to_json(node.accept_request(id, &name).await),
        NodeCall::DeclineRequest { id } => to_json(node.decline_request(id).await),
        NodeCall::Contacts => to_json(node.contacts().await),
        NodeCall::Contact { name } => to_json(node.contact(&name).await),
        NodeCall::SendMessage { contact, text } => {
            to_json(node.send_message(&contact, &text).await)
        }
        NodeCall::History { contact, limit } => to_json(node.history(&contact, limit).await),
        NodeCall::SetPresence { contact, on } => to_json(node.set_presence(&contact, on).await),
        NodeCall::Verify {
            contact,
            fingerprint,
        } => to_json(node.verify(&contact, &fingerprint).await),
        NodeCall::DeleteContact { contact } => to_json(node.delete_contact(&contact).await),
        NodeCall::Authenticate {
            contact,
            secret,
            question,
        } => to_json(
            node.authenticate(&contact, &secret, question.as_deref())
                .await,
        ),
        NodeCall::AnswerAuth { contact, secret } => {
            to_json(node.answer_auth(&contact, &secret).await)
        }
        NodeCall::AbortAuth { contact } => to_json(node.abort_auth(&contact).await),
        NodeCall::CreateInvite { name, require_auth } => {
            to_json(node.create_invite(&name, require_auth).await)
        }
        NodeCall::JoinInvite {
            code,
            name,
            require_auth,
        } => to_json(node.join_invite(&code, &name, require_auth).await),
        NodeCall::Mailboxes => to_json(node.mailboxes().await),
        NodeCall::AddMailbox { onion } => to_json(node.add_mailbox(&onion).await),
        NodeCall::RemoveMailbox { onion } => to_json(node.remove_mailbox(&onion).await),
        NodeCall::SendFile { contact, path } => to_json(node.send_file(&contact, &path).await),
        NodeCall::Transfers { contact } => to_json(node.transfers(contact.as_deref()).await),
        NodeCall::Transfer { id } => to_json(node.transfer(id).await),
        NodeCall::AcceptFile { id, options } => to_json(node.accept_file(id, options).await),
        NodeCall::DeclineFile { id } => to_json(node.decline_file(id).await),
        NodeCall::CancelFile { id } => to_json(node.cancel_file(id).await),
        NodeCall::ResumeFile { id } => to_json(node.resume_file(id).await),
        NodeCall::Groups => to_json(node.groups().await),
        NodeCall::CreateGroup { name } => to_json(node.create_group(&name).await),
        NodeCall::GroupHistory { group } => to_json(node.group_history(&group).await),
        NodeCall::SendGroupMessage { group, text } => {
            to_json(node.send_group_message(&group, &text).await)
        }
        NodeCall::InviteToGroup { group, contact } => {
            to_json(node.invite_to_group(&group, &contact).await)
        }
        NodeCall::RemoveFromGroup { group, contact } => {
            to_json(node.remove_from_group(&group, &contact).await)
        }
        NodeCall::LeaveGroup { group } => to_json(node.leave_group(&group).await),
    }
}

fn to_json<T: Serialize>(answer: Result<T, NodeError>) -> Result<Value, RpcError> {
    let answer = answer.map_err(|e| node_error(&e))?;
    serde_json::to_value(answer).map_err(|e| RpcError::internal(&e.to_string()))
}

/// A node error as an application error: its sentence, and its kind.
pub(crate) fn node_error(e: &NodeError) -> RpcError {
    RpcError::application(error_kind(e), e.to_string())
}

/// The stable code for each kind of node error (listed in docs/rpc.md).
pub(crate) fn error_kind(e: &NodeError) -> &'static str {
    match e {
        NodeError::BadAddress(_) => "bad_address",
        NodeError::UnknownContact(_) => "unknown_contact",
        NodeError::UnknownRequest(_) => "unknown_request",
        NodeError::NameTaken(_) => "name_taken",
        NodeError::BadName(_) => "bad_name",
        NodeError::OwnAddress => "own_address",
        NodeError::AlreadyKnown(_) => "already_known",
        NodeError::FingerprintMismatch(_) => "fingerprint_mismatch",
        NodeError::BadMessage(_) => "bad_message",
        NodeError::Store(_) => "store",
        NodeError::Tor(_) => "tor",
        NodeError::NotConnected(_) => "not_connected",
        NodeError::NoAuthPending(_) => "no_auth_pending",
        NodeError::BadSecret(_) => "bad_secret",
        NodeError::BadCode(_) => "bad_code",
        NodeError::Invite(_) => "invite_failed",
        NodeError::UnknownTransfer(_) => "unknown_transfer",
        NodeError::FileExists(_) => "file_exists",
        NodeError::BadFile(_) => "bad_file",
        NodeError::NoSpace(_) => "no_space",
        NodeError::WrongState { .. } => "wrong_state",
        NodeError::Stopped => "stopped",
        NodeError::UnknownGroup(_) => "unknown_group",
        NodeError::NotInGroup => "not_in_group",
        NodeError::NoMailbox => "no_mailbox",
        NodeError::Group(_) => "group",
        _ => "other",
    }
}

/// Params by name, taken one at a time; whatever is left over is an error, so a
/// misspelt optional param does not pass unnoticed.
struct Params(Map<String, Value>);

impl Params {
    fn new(params: Option<Value>) -> Result<Self, RpcError> {
        match params {
            None | Some(Value::Null) => Ok(Self(Map::new())),
            Some(Value::Object(map)) => Ok(Self(map)),
            Some(_) => Err(RpcError::invalid_params(
                "params",
                "give params by name, in an object",
            )),
        }
    }

    /// The param, with JSON null meaning absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name).filter(|v| !v.is_null())
    }

    fn required(&mut self, name: &str) -> Result<Value, RpcError> {
        self.take(name)
            .ok_or_else(|| RpcError::invalid_params(name, &format!("missing param {name:?}")))
    }

    fn string(&mut self, name: &str) -> Result<String, RpcError> {
        let value = self.required(name)?;
        as_string(name, value)
    }

    fn opt_string(&mut self, name: &str) -> Result<Option<String>, RpcError> {
        self.take(name).map(|v| as_string(name, v)).transpose()
    }

    fn integer(&mut self, name: &str) -> Result<i64, RpcError> {
        self.required(name)?
            .as_i64()
            .ok_or_else(|| wrong_type(name, "an integer"))
    }

    /// A path on the daemon's machine: absolute, since the daemon's working
    /// directory means nothing to the client.
    fn absolute_path(&mut self, name: &str) -> Result<PathBuf, RpcError> {
        let value = self.required(name)?;
        as_absolute_path(name, value)
    }

    fn opt_absolute_path(&mut self, name: &str) -> Result<Option<PathBuf>, RpcError> {
        self.take(name)
            .map(|v| as_absolute_path(name, v))
            .transpose()
    }

    fn opt_count(&mut self, name: &str) -> Result<Option<usize>, RpcError> {
        self.take(name)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| wrong_type(name, "a non-negative integer"))
            })
            .transpose()
    }

    fn boolean(&mut self, name: &str) -> Result<bool, RpcError> {
        let value = self.required(name)?;
        as_bool(name, &value)
    }

    fn opt_boolean(&mut self, name: &str) -> Result<Option<bool>, RpcError> {
        self.take(name).map(|v| as_bool(name, &v)).transpose()
    }

    fn finish(self) -> Result<(), RpcError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(name) => Err(RpcError::invalid_params(
                name,
                &format!("unknown param {name:?}"),
            )),
        }
    }
}

fn as_bool(name: &str, value: &Value) -> Result<bool, RpcError> {
    value
        .as_bool()
        .ok_or_else(|| wrong_type(name, "true or false"))
}

fn as_string(name: &str, value: Value) -> Result<String, RpcError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(wrong_type(name, "a string")),
    }
}

fn as_absolute_path(name: &str, value: Value) -> Result<PathBuf, RpcError> {
    let path = PathBuf::from(as_string(name, value)?);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(wrong_type(name, "an absolute path"))
    }
}

fn wrong_type(name: &str, expected: &str) -> RpcError {
    RpcError::invalid_params(name, &format!("{name:?} must be {expected}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::super::rpc::{INVALID_PARAMS, METHOD_NOT_FOUND};
    use super::*;

    fn parse(method: &str, params: Value) -> Result<Call, RpcError> {
        Call::parse(method, Some(params))
    }

    fn refused(method: &str, params: Value) -> RpcError {
        match parse(method, params) {
            Ok(_) => panic!("{method} accepted bad params"),
            Err(e) => e,
        }
    }

    #[test]
    fn params_by_name() {
        match parse("send_request", json!({"address": "nj1x", "name": "bob"})).unwrap() {
            Call::Node(NodeCall::SendRequest {
                address,
                name,
                greeting,
            }) => assert_eq!((&*address, &*name, &*greeting), ("nj1x", "bob", "")),
            _ => panic!("wrong call"),
        }
        match parse("history", json!({"contact": "bob"})).unwrap() {
            Call::Node(NodeCall::History { limit, .. }) => assert_eq!(limit, DEFAULT_HISTORY_LIMIT),
            _ => panic!("wrong call"),
        }
        match parse("history", json!({"contact": "bob", "limit": 3})).unwrap() {
            Call::Node(NodeCall::History { limit, .. }) => assert_eq!(limit, 3),
            _ => panic!("wrong call"),
        }
        match parse("accept_request", json!({"id": 4, "name": "al"})).unwrap() {
            Call::Node(NodeCall::AcceptRequest { id, name }) => assert_eq!((id, &*name), (4, "al")),
            _ => panic!("wrong call"),
        }
        match parse(
            "send_file",
            json!({"contact": "bob", "path": "/tmp/a b.txt"}),
        )
        .unwrap()
        {
            Call::Node(NodeCall::SendFile { contact, path }) => {
                assert_eq!(
                    (&*contact, path.as_path()),
                    ("bob", Path::new("/tmp/a b.txt"))
                );
            }
            _ => panic!("wrong call"),
        }
        match parse("transfers", json!({})).unwrap() {
            Call::Node(NodeCall::Transfers { contact }) => assert_eq!(contact, None),
            _ => panic!("wrong call"),
        }
        match parse("accept_file", json!({"id": 3})).unwrap() {
            Call::Node(NodeCall::AcceptFile { id, options }) => {
                assert_eq!(id, 3);
                assert_eq!(
                    (options.save_as, options.dir, options.overwrite),
                    (None, None, false)
                );
            }
            _ => panic!("wrong call"),
        }
        match parse(
            "accept_file",
            json!({"id": 3, "save_as": "new.txt", "dir": "/srv/in", "overwrite": true}),
        )
        .unwrap()
        {
            Call::Node(NodeCall::AcceptFile { id, options }) => {
                assert_eq!(id, 3);
                assert_eq!(options.save_as.as_deref(), Some("new.txt"));
                assert_eq!(options.dir.as_deref(), Some(Path::new("/srv/in")));
                assert!(options.overwrite);
            }
            _ => panic!("wrong call"),
        }
        assert!(matches!(Call::parse("shutdown", None), Ok(Call::Shutdown)));
        assert!(matches!(parse("subscribe", json!({})), Ok(Call::Subscribe)));
        assert!(matches!(
            parse("info", Value::Null),
            Ok(Call::Node(NodeCall::Info))
        ));
    }

    #[test]
    fn every_method_of_the_handle_is_known() {
        for method in [
            "info",
            "send_request",
            "requests",
            "accept_request",
            "decline_request",
            "contacts",
            "contact",
            "send_message",
            "history",
            "set_presence",
            "verify",
            "delete_contact",
            "authenticate",
            "answer_auth",
            "abort_auth",
            "create_invite",
            "join_invite",
            "mailboxes",
            "add_mailbox",
            "remove_mailbox",
            "send_file",
            "transfers",
            "transfer",
            "accept_file",
            "decline_file",
            "cancel_file",
            "resume_file",
            "groups",
            "create_group",
            "group_history",
            "send_group_message",
            "invite_to_group",
            "remove_from_group",
            "leave_group",
            "subscribe",
            "shutdown",
        ] {
            if let Err(e) = Call::parse(method, None) {
                assert_eq!(e.code, INVALID_PARAMS, "{method}");
            }
        }
    }

    #[test]
    fn unknown_methods() {
        for method in ["", "Info", "ping", "send_request "] {
            assert_eq!(
                Call::parse(method, None).err().map(|e| e.code),
                Some(METHOD_NOT_FOUND)
            );
        }
    }

    #[test]
    fn bad_params_name_the_param() {
        for (method, params, param) in [
            ("contact", json!({}), "name"),
            ("contact", json!({"name": 3}), "name"),
            ("contact", json!({"name": null}), "name"),
            ("send_message", json!({"contact": "bob"}), "text"),
            (
                "send_request",
                json!({"address": "a", "name": "b", "greeting": 1}),
                "greeting",
            ),
            ("accept_request", json!({"id": "1", "name": "b"}), "id"),
            ("accept_request", json!({"id": 1.5, "name": "b"}), "id"),
            ("history", json!({"contact": "bob", "limit": -1}), "limit"),
            ("set_presence", json!({"contact": "bob", "on": "yes"}), "on"),
            ("info", json!({"verbose": true}), "verbose"),
            ("shutdown", json!({"now": true}), "now"),
            ("history", json!({"contact": "bob", "limt": 5}), "limt"),
            ("contact", json!(["bob"]), "params"),
            ("send_file", json!({"contact": "bob"}), "path"),
            (
                "send_file",
                json!({"contact": "bob", "path": "notes.txt"}),
                "path",
            ),
            ("transfer", json!({"id": "3"}), "id"),
            ("transfers", json!({"contact": 3}), "contact"),
            ("accept_file", json!({"id": 3, "dir": "rel/dir"}), "dir"),
            (
                "accept_file",
                json!({"id": 3, "overwrite": "yes"}),
                "overwrite",
            ),
            ("accept_file", json!({"id": 3, "save": "x"}), "save"),
            ("resume_file", json!({}), "id"),
        ] {
            let e = refused(method, params);
            assert_eq!(e.code, INVALID_PARAMS, "{method}");
            assert_eq!(
                e.data,
                Some(json!({"param": param})),
                "{method}: {}",
                e.message
            );
            assert!(e.message.contains(param), "{}", e.message);
        }
    }

    #[test]
    fn node_errors_keep_their_sentence_and_get_a_kind() {
        let e = node_error(&NodeError::UnknownContact("bob".into()));
        assert_eq!(e.code, -32000);
        assert_eq!(e.message, "no contact named \"bob\"");
        assert_eq!(e.data, Some(json!({"kind": "unknown_contact"})));
        for (error, kind) in [
            (NodeError::BadAddress("x".into()), "bad_address"),
            (NodeError::UnknownRequest(3), "unknown_request"),
            (NodeError::NameTaken("x".into()), "name_taken"),
            (NodeError::BadName("x".into()), "bad_name"),
            (NodeError::OwnAddress, "own_address"),
            (NodeError::AlreadyKnown("x".into()), "already_known"),
            (
                NodeError::FingerprintMismatch("x".into()),
                "fingerprint_mismatch",
            ),
            (NodeError::BadMessage("x".into()), "bad_message"),
            (
                NodeError::Store(nightjar_store::StoreError::NotFound),
                "store",
            ),
            (NodeError::UnknownTransfer(3), "unknown_transfer"),
            (NodeError::FileExists("x".into()), "file_exists"),
            (NodeError::BadFile("x".into()), "bad_file"),
            (NodeError::NoSpace("x".into()), "no_space"),
            (
                NodeError::WrongState {
                    id: 3,
                    state: "completed".into(),
                },
                "wrong_state",
            ),
            (NodeError::Stopped, "stopped"),
        ] {
            assert_eq!(error_kind(&error), kind);
        }
    }
}

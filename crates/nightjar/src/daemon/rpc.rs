//! JSON-RPC 2.0 envelopes: one line in, a request or an error out; responses and
//! notifications as lines. Nothing here knows the node.

use serde_json::{Map, Value, json};

/// Invalid JSON.
pub(crate) const PARSE_ERROR: i64 = -32700;
/// JSON, but not a request object.
pub(crate) const INVALID_REQUEST: i64 = -32600;
/// No method by that name.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
/// A param is missing, of the wrong type, or unknown.
pub(crate) const INVALID_PARAMS: i64 = -32602;
/// Our own failure (a result that would not serialise).
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// The node refused or failed; `data.kind` says how.
pub(crate) const APPLICATION_ERROR: i64 = -32000;

/// An error object, as sent to the client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
    pub(crate) data: Option<Value>,
}

impl RpcError {
    pub(crate) fn parse(detail: &str) -> Self {
        Self {
            code: PARSE_ERROR,
            message: format!("parse error: {detail}"),
            data: None,
        }
    }

    pub(crate) fn invalid_request(detail: &str) -> Self {
        Self {
            code: INVALID_REQUEST,
            message: format!("invalid request: {detail}"),
            data: None,
        }
    }

    pub(crate) fn method_not_found(method: &str) -> Self {
        Self {
            code: METHOD_NOT_FOUND,
            message: format!("method not found: {method:?}"),
            data: None,
        }
    }

    /// `param` names the offending param, both in the sentence and in `data`.
    pub(crate) fn invalid_params(param: &str, detail: &str) -> Self {
        Self {
            code: INVALID_PARAMS,
            message: format!("invalid params: {detail}"),
            data: Some(json!({ "param": param })),
        }
    }

    pub(crate) fn internal(detail: &str) -> Self {
        Self {
            code: INTERNAL_ERROR,
            message: format!("internal error: {detail}"),
            data: None,
        }
    }

    /// A refusal or failure with a stable machine-readable `kind`.
    pub(crate) fn application(kind: &str, message: String) -> Self {
        Self {
            code: APPLICATION_ERROR,
            message,
            data: Some(json!({ "kind": kind })),
        }
    }

    fn to_value(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            error.insert("data".into(), data.clone());
        }
        Value::Object(error)
    }
}

/// A well-formed request.
#[derive(PartialEq)]
pub(crate) struct Request {
    /// `None` for a notification: it is carried out, and nothing is answered.
    pub(crate) id: Option<Value>,
    pub(crate) method: String,
    /// Absent, an object, or an array (which the methods refuse by name).
    pub(crate) params: Option<Value>,
}

// Params carry message text and names: only the method shows.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("notification", &self.id.is_none())
            .finish_non_exhaustive()
    }
}

/// What one line holds.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// Only whitespace: skipped, so a person typing into `socat` may press Enter.
    Blank,
    Request(Request),
    /// Answered with `error` under `id` (null when the id could not be read).
    Invalid {
        id: Value,
        error: RpcError,
    },
}

/// Reads one line (without its newline).
pub(crate) fn parse_line(line: &[u8]) -> Incoming {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Incoming::Blank;
    }
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => {
            return Incoming::Invalid {
                id: Value::Null,
                error: RpcError::parse(&parse_error_detail(&e)),
            };
        }
    };
    match value {
        Value::Object(object) => parse_request(object),
        Value::Array(_) => Incoming::Invalid {
            id: Value::Null,
            error: RpcError::invalid_request(
                "batch requests are not supported; send one request per line",
            ),
        },
        _ => Incoming::Invalid {
            id: Value::Null,
            error: RpcError::invalid_request("a request must be a JSON object"),
        },
    }
}

/// serde_json's wording, without echoing any of the input back.
fn parse_error_detail(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "the line ends inside a JSON value",
        Category::Syntax => "not valid JSON",
        Category::Data => "not valid JSON data",
        Category::Io => "unreadable input",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

fn parse_request(mut object: Map<String, Value>) -> Incoming {
    let id = match object.remove("id") {
        None => None,
        Some(id @ (Value::Null | Value::Number(_) | Value::String(_))) => Some(id),
        Some(_) => {
            return Incoming::Invalid {
                id: Value::Null,
                error: RpcError::invalid_request("\"id\" must be a string, a number or null"),
            };
        }
    };
    let invalid = |detail: &str| Incoming::Invalid {
        id: id.clone().unwrap_or(Value::Null),
        error: RpcError::invalid_request(detail),
    };
    if object.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return invalid("\"jsonrpc\" must be \"2.0\"");
    }
    let method = match object.remove("method") {
        Some(Value::String(method)) => method,
        Some(_) => return invalid("\"method\" must be a string"),
        None => return invalid("\"method\" is missing"),
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => None,
        Some(params @ (Value::Object(_) | Value::Array(_))) => Some(params),
        Some(_) => return invalid("\"params\" must be an object"),
    };
    Incoming::Request(Request { id, method, params })
}

/// A response line (no newline).
pub(crate) fn response(id: Value, outcome: Result<Value, RpcError>) -> String {
    let mut object = Map::new();
    object.insert("jsonrpc".into(), "2.0".into());
    object.insert("id".into(), id);
    match outcome {
        Ok(result) => object.insert("result".into(), result),
        Err(error) => object.insert("error".into(), error.to_value()),
    };
    Value::Object(object).to_string()
}

/// A notification line (no newline).
pub(crate) fn notification(method: &str, params: Value) -> String {
    json!({ "jsonrpc": "2.0", "method": method, "params": params }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(line: &str) -> (Value, RpcError) {
        match parse_line(line.as_bytes()) {
            Incoming::Invalid { id, error } => (id, error),
            other => panic!("{line:?} was accepted: {other:?}"),
        }
    }

    fn request(line: &str) -> Request {
        match parse_line(line.as_bytes()) {
            Incoming::Request(request) => request,
            other => panic!("{line:?} was refused: {other:?}"),
        }
    }

    #[test]
    fn requests_with_every_kind_of_id() {
        let r = request(r#"{"jsonrpc":"2.0","id":7,"method":"info"}"#);
        assert_eq!(
            (r.id, r.method.as_str(), r.params),
            (Some(json!(7)), "info", None)
        );
        let r =
            request(r#" {"jsonrpc":"2.0","id":"a","method":"contact","params":{"name":"bo"}} "#);
        assert_eq!(r.id, Some(json!("a")));
        assert_eq!(r.params, Some(json!({"name": "bo"})));
        let r = request(r#"{"jsonrpc":"2.0","id":null,"method":"info","params":null}"#);
        assert_eq!((r.id, r.params), (Some(Value::Null), None));
    }

    #[test]
    fn a_request_without_id_is_a_notification() {
        let r = request(r#"{"jsonrpc":"2.0","method":"contacts"}"#);
        assert_eq!(r.id, None);
    }

    #[test]
    fn blank_lines_are_skipped() {
        assert_eq!(parse_line(b""), Incoming::Blank);
        assert_eq!(parse_line(b" \t\r"), Incoming::Blank);
    }

    #[test]
    fn malformed_json_is_a_parse_error_with_null_id() {
        for line in [
            "{",
            "nonsense",
            r#"{"jsonrpc":"2.0","id":1,"method":"info"} x"#,
            "\u{feff}{}",
        ] {
            let (id, error) = invalid(line);
            assert_eq!((id, error.code), (Value::Null, PARSE_ERROR), "{line:?}");
        }
        let (_, error) = invalid("{\"a\":\"secret\" oops}");
        assert!(!error.message.contains("secret"), "{}", error.message);
    }

    #[test]
    fn invalid_utf8_is_a_parse_error() {
        let (_, error) = parse_line(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}").into_invalid();
        assert_eq!(error.code, PARSE_ERROR);
    }

    #[test]
    fn requests_that_are_not_requests() {
        for (line, id) in [
            ("[]", Value::Null),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"info"}]"#, Value::Null),
            ("42", Value::Null),
            (r#""info""#, Value::Null),
            (r#"{"id":1,"method":"info"}"#, json!(1)),
            (r#"{"jsonrpc":"1.0","id":1,"method":"info"}"#, json!(1)),
            (r#"{"jsonrpc":"2.0","id":2}"#, json!(2)),
            (r#"{"jsonrpc":"2.0","id":"x","method":5}"#, json!("x")),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"info","params":"x"}"#,
                json!(3),
            ),
            (r#"{"jsonrpc":"2.0","id":[1],"method":"info"}"#, Value::Null),
            (r#"{"jsonrpc":"2.0","id":{},"method":"info"}"#, Value::Null),
            (
                r#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#,
                Value::Null,
            ),
        ] {
            let (got, error) = invalid(line);
            assert_eq!((got, error.code), (id, INVALID_REQUEST), "{line:?}");
        }
    }

    #[test]
    fn response_and_notification_lines() {
        let ok: Value = serde_json::from_str(&response(json!(1), Ok(json!({"a": 1})))).unwrap();
        assert_eq!(ok, json!({"jsonrpc": "2.0", "id": 1, "result": {"a": 1}}));
        let err = RpcError::invalid_params("name", "missing param \"name\"");
        let err: Value = serde_json::from_str(&response(json!("q"), Err(err))).unwrap();
        assert_eq!(
            err,
            json!({"jsonrpc": "2.0", "id": "q", "error": {
                "code": -32602, "message": "invalid params: missing param \"name\"",
                "data": {"param": "name"}}})
        );
        let err: Value =
            serde_json::from_str(&response(Value::Null, Err(RpcError::parse("x")))).unwrap();
        assert_eq!(err["error"].get("data"), None);
        let line = notification("events_lost", json!({"count": 3}));
        assert!(!line.contains('\n'));
        let n: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            n,
            json!({"jsonrpc": "2.0", "method": "events_lost", "params": {"count": 3}})
        );
    }

    #[test]
    fn lines_from_strings_with_newlines_stay_one_line() {
        let line = response(json!(1), Ok(json!("two\nlines")));
        assert!(!line.contains('\n'));
    }

    impl Incoming {
        fn into_invalid(self) -> (Value, RpcError) {
            match self {
                Incoming::Invalid { id, error } => (id, error),
                other => panic!("accepted: {other:?}"),
            }
        }
    }
}

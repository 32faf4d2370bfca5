//! The frames a worker sends, one JSON object per line: the ready line, events (live
//! output of a call still running) and replies.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use stencila_host::{present, ExecuteResult};

/// A worker's error reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    /// What went wrong, for the caller.
    pub message: String,
    /// True when the worker itself failed (a bug), false when the request was at fault.
    pub internal: bool,
}

/// The text of a worker's result, as it sent it. Not yet checked: reading it
/// ([`ReplyText::execute_result`], [`ReplyText::into_value`]) is what checks it, so a
/// big result is scanned once, by whoever reads it.
#[derive(Debug, Clone)]
pub struct ReplyText(String);

impl ReplyText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Read as an `execute` result: messages parsed, the value kept as text.
    pub fn execute_result(&self) -> Result<ExecuteResult, serde_json::Error> {
        ExecuteResult::from_text(&self.0)
    }

    /// Read as a tree.
    pub fn into_value(self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl From<Value> for ReplyText {
    fn from(value: Value) -> Self {
        ReplyText(value.to_string())
    }
}

impl PartialEq for ReplyText {
    /// The same JSON value (text that is not JSON equals only the same text).
    fn eq(&self, other: &ReplyText) -> bool {
        if self.0 == other.0 {
            return true;
        }
        match (self.clone().into_value(), other.clone().into_value()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// One line from a worker, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The startup handshake, `{"ready": true, ...}`, whole.
    Ready(Value),
    /// Something request `id` reports while it runs, `{"id": N, "event": {...}}`:
    /// sent before its reply, and never instead of it.
    Event {
        /// The request id it belongs to.
        id: u64,
        /// The event, whole; the layer does not look inside.
        event: Value,
    },
    /// The reply to request `id`.
    Reply {
        /// The request id it answers.
        id: u64,
        /// The result, as the text the worker sent (a big value is passed on as it
        /// is), or the worker's error.
        outcome: Result<ReplyText, ReplyError>,
    },
}

/// A frame's fields: the result and the event are borrowed from the line, unparsed.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default)]
    ready: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, borrow, deserialize_with = "present")]
    event: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
    #[serde(default)]
    internal: Option<Value>,
}

/// Parses one line (without its newline) from a worker. Never panics; anything
/// that is not a frame is an `Err` saying why.
pub fn parse_frame(line: &[u8]) -> Result<Frame, String> {
    let text = std::str::from_utf8(line).map_err(|error| format!("not JSON: {error}"))?;
    if let Some((id, result)) = usual_reply(text) {
        return Ok(Frame::Reply {
            id,
            outcome: Ok(ReplyText(result.to_string())),
        });
    }
    // A struct also reads from a JSON array; a frame is an object.
    if !text.trim_start().starts_with('{') {
        return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Err("not a JSON object".into()),
            Err(error) => Err(format!("not JSON: {error}")),
        };
    }
    let wire: Wire = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    if wire.ready == Some(Value::Bool(true)) {
        let ready = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
        return Ok(Frame::Ready(ready));
    }
    let id = wire
        .id
        .as_ref()
        .and_then(Value::as_u64)
        .ok_or("no numeric `id`")?;
    if let Some(event) = wire.event {
        let event =
            serde_json::from_str(event.get()).map_err(|error| format!("not JSON: {error}"))?;
        return Ok(Frame::Event { id, event });
    }
    if let Some(result) = wire.result {
        return Ok(Frame::Reply {
            id,
            outcome: Ok(ReplyText(result.get().to_string())),
        });
    }
    match wire.error {
        Some(Value::String(message)) => Ok(Frame::Reply {
            id,
            outcome: Err(ReplyError {
                message,
                internal: wire.internal == Some(Value::Bool(true)),
            }),
        }),
        _ => Err("neither a `result` nor a string `error`".into()),
    }
}

/// A reply as the workers write it, `{"id":N,"result":...}`, taken apart without reading
/// the result (its reader checks it): its id and the result's text.
fn usual_reply(text: &str) -> Option<(u64, &str)> {
    let rest = text.strip_prefix("{\"id\":")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let id = rest[..digits].parse().ok()?;
    let result = rest[digits..]
        .strip_prefix(",\"result\":")?
        .strip_suffix('}')?;
    Some((id, result))
}

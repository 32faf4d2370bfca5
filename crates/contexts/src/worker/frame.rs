//! The frames a worker sends, one JSON object per line: the ready line, events (live
//! output of a call still running) and replies.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;
use stencila_host::{present, Json};

/// A worker's error reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    /// What went wrong, for the caller.
    pub message: String,
    /// True when the worker itself failed (a bug), false when the request was at fault.
    pub internal: bool,
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
        /// The result, as the text the worker sent (scanned, not parsed: a big value
        /// is passed on as it is), or the worker's error.
        outcome: Result<Json, ReplyError>,
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
            outcome: Ok(Json::Raw(Arc::from(result.to_owned()))),
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

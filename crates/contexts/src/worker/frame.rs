//! The frames a worker sends, one JSON object per line: the ready line, events (live
//! output of a call still running) and replies.

use serde_json::Value;

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
        /// The result, or the worker's error.
        outcome: Result<Value, ReplyError>,
    },
}

/// Parses one line (without its newline) from a worker. Never panics; anything
/// that is not a frame is an `Err` saying why.
pub fn parse_frame(line: &[u8]) -> Result<Frame, String> {
    let value: Value =
        serde_json::from_slice(line).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(mut map) = value else {
        return Err("not a JSON object".into());
    };
    if map.get("ready") == Some(&Value::Bool(true)) {
        return Ok(Frame::Ready(Value::Object(map)));
    }
    let id = map
        .get("id")
        .and_then(Value::as_u64)
        .ok_or("no numeric `id`")?;
    if let Some(event) = map.remove("event") {
        return Ok(Frame::Event { id, event });
    }
    if let Some(result) = map.remove("result") {
        return Ok(Frame::Reply {
            id,
            outcome: Ok(result),
        });
    }
    match map.remove("error") {
        Some(Value::String(message)) => Ok(Frame::Reply {
            id,
            outcome: Err(ReplyError {
                message,
                internal: map.get("internal") == Some(&Value::Bool(true)),
            }),
        }),
        _ => Err("neither a `result` nor a string `error`".into()),
    }
}

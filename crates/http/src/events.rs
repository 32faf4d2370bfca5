//! Executions over HTTP (PROTOCOL.md section 10): the `Stencila-Execution` header and
//! an execution's events as server-sent events.
//!
//! The stream reads the core's [`EventCursor`] one event at a time, only as fast as
//! actix can write to the socket: a slow reader holds its cursor and the one event being
//! written, never a queue, and never slows the execution or other readers. A comment
//! line every [`KEEP_ALIVE`] while nothing happens keeps proxies from closing a quiet
//! stream and lets the server notice a reader that went away.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use std::convert::Infallible;
use std::time::Duration;
use stencila_host::{EventCursor, ExecutionEvent};

/// The header that carries an execution's id on every `execute` response.
pub const EXECUTION_HEADER: &str = "stencila-execution";

/// How long a stream may be quiet before a keep-alive comment is sent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Adds the `Stencila-Execution` header.
pub fn with_execution_id(response: &mut HttpResponse, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(EXECUTION_HEADER), value);
    }
}

/// The `Last-Event-ID` a reconnecting client sent: events after it are wanted. A value
/// that is not a sequence number is treated as absent (the whole stream is sent).
pub fn last_event_id(headers: &HeaderMap) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One event in the SSE format: `id:`, `event:`, and its data as one line of JSON (so
/// printed newlines never break the framing).
fn frame(event: &ExecutionEvent) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.seq, event.kind, event.data
    ))
}

/// The `text/event-stream` response that follows `cursor` to the `done` event.
pub fn stream(cursor: EventCursor) -> HttpResponse {
    let body = futures_util::stream::unfold(Some(cursor), |cursor| async move {
        let mut cursor = cursor?;
        match tokio::time::timeout(KEEP_ALIVE, cursor.next()).await {
            Ok(Some(event)) => Some((Ok::<_, Infallible>(frame(&event)), Some(cursor))),
            Ok(None) => None,
            Err(_) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(cursor))),
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Asks buffering proxies (nginx) to pass each event on at once.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

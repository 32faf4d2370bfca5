//! `HttpError`: the one place where failures become HTTP statuses and error bodies.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use stencila_host::HostError;
use thiserror::Error;

/// A failed request, by the status it gets. The text is the `<what>` of the body.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    HeaderFieldsTooLarge(String),
    #[error("{what}")]
    TooManyRequests { what: String, retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::HeaderFieldsTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HttpError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `<Name>` in `<Name>: <what>` and in the JSON body's `error`.
    pub fn name(&self) -> &'static str {
        match self {
            HttpError::BadRequest(_) => "Bad request",
            HttpError::Unauthorized(_) => "Unauthorized",
            HttpError::Forbidden(_) => "Forbidden",
            HttpError::NotFound(_) => "Not found",
            HttpError::PayloadTooLarge(_) => "Payload too large",
            HttpError::HeaderFieldsTooLarge(_) => "Request header fields too large",
            HttpError::TooManyRequests { .. } => "Too many requests",
            HttpError::Unavailable(_) => "Service unavailable",
            HttpError::Internal(_) => "Internal error",
        }
    }

    fn what(&self) -> &str {
        match self {
            HttpError::BadRequest(what)
            | HttpError::Unauthorized(what)
            | HttpError::Forbidden(what)
            | HttpError::NotFound(what)
            | HttpError::PayloadTooLarge(what)
            | HttpError::HeaderFieldsTooLarge(what)
            | HttpError::TooManyRequests { what, .. }
            | HttpError::Unavailable(what)
            | HttpError::Internal(what) => what,
        }
    }

    /// The response: `text/plain` `<Name>: <what>`, or `{"error", "details"}` JSON.
    pub fn response(&self, json: bool) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status());
        if let HttpError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if json {
            let body = serde_json::json!({"error": self.name(), "details": self.what()});
            builder
                .content_type("application/json")
                .body(body.to_string())
        } else {
            builder
                .content_type("text/plain; charset=utf-8")
                .body(format!("{}: {}", self.name(), self.what()))
        }
    }
}

impl From<HostError> for HttpError {
    fn from(error: HostError) -> Self {
        let what = error.to_string();
        match error {
            HostError::UnknownType(_)
            | HostError::UnknownInstance(_)
            | HostError::Culled(_)
            | HostError::UnknownMethod(_)
            | HostError::UnknownEnviron(_)
            | HostError::UnknownExecution(_) => HttpError::NotFound(what),
            HostError::BadArgument(_) => HttpError::BadRequest(what),
            HostError::Unavailable(_) | HostError::TooManyInstances(_) => {
                HttpError::Unavailable(what)
            }
            HostError::Internal(_) => {
                // Details stay in the log; the client gets a short message: the first
                // line, bounded.
                log::error!("internal error: {what}");
                HttpError::Internal(short(&what))
            }
        }
    }
}

/// The first line of `text`, at most 200 characters.
fn short(text: &str) -> String {
    const MAX: usize = 200;
    let line = text.lines().next().unwrap_or_default();
    let mut out: String = line.chars().take(MAX).collect();
    if line.chars().count() > MAX || text.lines().nth(1).is_some() {
        out.push_str(" ...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_map_to_statuses() {
        let cases = [
            (HostError::UnknownType("X".into()), 404),
            (HostError::UnknownInstance("x1".into()), 404),
            (HostError::Culled("x1".into()), 404),
            (HostError::UnknownMethod("m".into()), 404),
            (HostError::UnknownEnviron("e".into()), 404),
            (HostError::BadArgument("b".into()), 400),
            (HostError::Unavailable("u".into()), 503),
            (HostError::TooManyInstances(3), 503),
            (HostError::Internal("i".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(HttpError::from(error).status().as_u16(), status);
        }
    }

    #[test]
    fn internal_errors_are_short() {
        let long = format!("first line {}\nTraceback ...", "x".repeat(500));
        let HttpError::Internal(what) = HttpError::from(HostError::Internal(long)) else {
            panic!("not internal");
        };
        assert!(what.len() < 220 && !what.contains("Traceback"), "{what}");
    }

    #[test]
    fn bodies_are_text_or_json() {
        let error = HttpError::NotFound("no instance named 'x'".into());
        let text = error.response(false);
        assert_eq!(
            text.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"text/plain; charset=utf-8"[..])
        );
        let json = error.response(true);
        assert_eq!(
            json.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let limited = HttpError::TooManyRequests {
            what: "slow down".into(),
            retry_after_secs: 7,
        }
        .response(false);
        assert_eq!(
            limited
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"7"[..])
        );
    }
}

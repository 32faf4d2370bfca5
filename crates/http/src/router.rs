//! The router: turns a request's verb and raw path into a [`Route`], without touching actix,
//! so every odd path can be tested on its own.

use percent_encoding::percent_decode_str;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the web page, or the manifest for `Accept: application/json`.
    Home,
    /// `GET /static/<path>`: the still-encoded path below the static root.
    Static(String),
    /// `GET /favicon.ico`.
    Favicon,
    /// `GET /manifest`.
    Manifest,
    /// `OPTIONS <any>`: a CORS preflight.
    Preflight,
    /// `POST /<Type>`.
    Create(String),
    /// `GET /<name>`.
    Get(String),
    /// `PUT /<name>!<method>`.
    Call(String, String),
    /// `DELETE /<name>`.
    Delete(String),
    /// `GET /<name>/executions/<id>`: an execution's status.
    Execution(String, String),
    /// `GET /<name>/executions/<id>/events`: its events as server-sent events.
    ExecutionEvents(String, String),
    /// `POST /environ/<id>`.
    StartEnviron(String),
    /// `DELETE /environ/<id>`.
    StopEnviron(String),
    /// `GET /health`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `GET /openapi.json`.
    OpenApi,
}

impl Route {
    /// Whether the route may be used without credentials.
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            Route::Home
                | Route::Static(_)
                | Route::Favicon
                | Route::Manifest
                | Route::Preflight
                | Route::Health
                | Route::OpenApi
        )
    }
}

/// Why a path matched no route; the text follows `Bad request: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoute(pub String);

/// The longest name (type, instance, method or environ) accepted, in bytes.
const MAX_NAME: usize = 256;

/// Decodes one path segment and checks it can be a name: non-empty, printable, short.
fn name(segment: &str, what: &str) -> Result<String, NoRoute> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| NoRoute(format!("the {what} in the path is not valid UTF-8")))?;
    if decoded.is_empty() {
        return Err(NoRoute(format!("the path has an empty {what}")));
    }
    if decoded.len() > MAX_NAME {
        return Err(NoRoute(format!(
            "the {what} in the path is longer than {MAX_NAME} bytes"
        )));
    }
    if decoded
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(NoRoute(format!(
            "the {what} in the path has a character names cannot have"
        )));
    }
    Ok(decoded.into_owned())
}

/// Splits a raw `<name>!<method>` segment at its first `!`, literal or as `%21` (some
/// clients escape it), before anything is decoded: each part is then decoded exactly
/// once, so `%2521` (an escaped `%21`) stays part of a name and never splits it.
fn split_method(raw: &str) -> Option<(&str, &str)> {
    let literal = raw.find('!').map(|at| (at, 1));
    let encoded = raw.find("%21").map(|at| (at, 3));
    let (at, len) = match (literal, encoded) {
        (Some(a), Some(b)) => a.min(b),
        (one, other) => one.or(other)?,
    };
    Some((&raw[..at], &raw[at + len..]))
}

/// Routes a request. `path` is the raw (percent-encoded) path, without the query.
pub fn route(verb: &str, path: &str) -> Result<Route, NoRoute> {
    if verb == "OPTIONS" {
        return Ok(Route::Preflight);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(NoRoute("the path must start with '/'".into()));
    };
    if let Some(file) = rest.strip_prefix("static/") {
        return match verb {
            "GET" | "HEAD" => Ok(Route::Static(file.to_string())),
            _ => Err(NoRoute(format!("{verb} is not allowed on static files"))),
        };
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match (verb, segments.as_slice()) {
        ("GET" | "HEAD", [""]) => Ok(Route::Home),
        ("GET" | "HEAD", ["favicon.ico"]) => Ok(Route::Favicon),
        ("GET" | "HEAD", ["manifest"]) => Ok(Route::Manifest),
        ("GET" | "HEAD", ["health"]) => Ok(Route::Health),
        ("GET" | "HEAD", ["metrics"]) => Ok(Route::Metrics),
        ("GET" | "HEAD", ["openapi.json"]) => Ok(Route::OpenApi),
        ("POST", ["environ", id]) => Ok(Route::StartEnviron(name(id, "environment id")?)),
        ("DELETE", ["environ", id]) => Ok(Route::StopEnviron(name(id, "environment id")?)),
        ("POST", [type_name]) => Ok(Route::Create(name(type_name, "type name")?)),
        ("GET" | "HEAD", [instance]) => Ok(Route::Get(name(instance, "instance name")?)),
        ("DELETE", [instance]) => Ok(Route::Delete(name(instance, "instance name")?)),
        ("GET" | "HEAD", [instance, "executions", id]) => Ok(Route::Execution(
            name(instance, "instance name")?,
            name(id, "execution id")?,
        )),
        ("GET" | "HEAD", [instance, "executions", id, "events"]) => Ok(Route::ExecutionEvents(
            name(instance, "instance name")?,
            name(id, "execution id")?,
        )),
        ("PUT", [target]) => match split_method(target) {
            Some((instance, method)) => Ok(Route::Call(
                name(instance, "instance name")?,
                name(method, "method name")?,
            )),
            None => Err(NoRoute(
                "a PUT needs a path of the form /<name>!<method>".into(),
            )),
        },
        ("GET" | "HEAD" | "POST" | "PUT" | "DELETE", _) => {
            Err(NoRoute(format!("no route for {verb} {}", printable(path))))
        }
        _ => Err(NoRoute(format!(
            "the method {} is not supported",
            printable(verb)
        ))),
    }
}

/// A bounded, printable rendering of client input for error messages.
pub fn printable(text: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(verb: &str, path: &str) -> Route {
        route(verb, path).expect("a route")
    }

    #[test]
    fn the_route_table() {
        assert_eq!(ok("GET", "/"), Route::Home);
        assert_eq!(ok("GET", "/manifest"), Route::Manifest);
        assert_eq!(ok("GET", "/favicon.ico"), Route::Favicon);
        assert_eq!(ok("GET", "/static/a/b.js"), Route::Static("a/b.js".into()));
        assert_eq!(
            ok("POST", "/PythonContext"),
            Route::Create("PythonContext".into())
        );
        assert_eq!(
            ok("GET", "/pythonContext1"),
            Route::Get("pythonContext1".into())
        );
        assert_eq!(
            ok("PUT", "/pythonContext1!execute"),
            Route::Call("pythonContext1".into(), "execute".into())
        );
        assert_eq!(
            ok("PUT", "/pythonContext1%21execute"),
            Route::Call("pythonContext1".into(), "execute".into())
        );
        assert_eq!(
            ok("DELETE", "/pythonContext1"),
            Route::Delete("pythonContext1".into())
        );
        assert_eq!(
            ok("POST", "/environ/local"),
            Route::StartEnviron("local".into())
        );
        assert_eq!(
            ok("DELETE", "/environ/local"),
            Route::StopEnviron("local".into())
        );
        assert_eq!(ok("OPTIONS", "/anything/at/all"), Route::Preflight);
        assert_eq!(
            ok("GET", "/pythonContext1/executions/a-1"),
            Route::Execution("pythonContext1".into(), "a-1".into())
        );
        assert_eq!(
            ok("GET", "/pythonContext1/executions/a-1/events"),
            Route::ExecutionEvents("pythonContext1".into(), "a-1".into())
        );
        assert!(!Route::Execution("a".into(), "b".into()).is_public());
        assert!(!Route::ExecutionEvents("a".into(), "b".into()).is_public());
        assert_eq!(ok("GET", "/health"), Route::Health);
        assert_eq!(ok("GET", "/metrics"), Route::Metrics);
        assert_eq!(ok("GET", "/openapi.json"), Route::OpenApi);
    }

    #[test]
    fn unmatched_paths_are_bad_requests() {
        for (verb, path) in [
            ("GET", "/a/b"),
            ("PUT", "/pythonContext1"),
            ("PUT", "/!execute"),
            ("PUT", "/pythonContext1!"),
            ("POST", "/"),
            ("PATCH", "/pythonContext1"),
            ("GET", "//"),
            ("GET", "/%ff"),
            ("DELETE", "/environ/"),
            ("POST", "/static/x"),
            ("GET", "no-slash"),
        ] {
            assert!(route(verb, path).is_err(), "{verb} {path} should not route");
        }
    }

    #[test]
    fn a_put_path_is_percent_decoded_exactly_once() {
        // `%25` is an escaped `%`: the instance is `nope%31`, never `nope1`.
        assert_eq!(
            ok("PUT", "/nope%2531!execute"),
            Route::Call("nope%31".into(), "execute".into())
        );
        assert_eq!(
            ok("PUT", "/a%2521b!execute"),
            Route::Call("a%21b".into(), "execute".into())
        );
        assert!(
            route("PUT", "/nope1%2521execute").is_err(),
            "an escaped %21 does not split"
        );
        assert_eq!(
            ok("PUT", "/a%21b%21c"),
            Route::Call("a".into(), "b!c".into())
        );
        assert_eq!(ok("PUT", "/a!b%21c"), Route::Call("a".into(), "b!c".into()));
        assert_eq!(ok("GET", "/nope%2531"), Route::Get("nope%31".into()));
    }

    #[test]
    fn printable_bounds_and_cleans() {
        assert_eq!(printable("a\nb"), "a?b");
        assert_eq!(printable(&"x".repeat(500)).len(), 203);
    }

    proptest! {
        #[test]
        fn never_panics(verb in "[A-Z]{0,8}", path in "\\PC{0,300}") {
            let _ = route(&verb, &path);
        }

        #[test]
        fn names_round_trip_through_encoding(instance in "[a-zA-Z][a-zA-Z0-9_]{0,40}", method in "[a-z_]{1,20}") {
            let path = format!("/{instance}!{method}");
            prop_assert_eq!(route("PUT", &path), Ok(Route::Call(instance.clone(), method.clone())));
            let encoded = format!("/{}", percent_encoding::utf8_percent_encode(&format!("{instance}!{method}"), percent_encoding::NON_ALPHANUMERIC));
            prop_assert_eq!(route("PUT", &encoded), Ok(Route::Call(instance, method)));
        }

        #[test]
        fn long_paths_are_refused_not_panicked(n in 257usize..5000) {
            let path = format!("/{}", "a".repeat(n));
            prop_assert!(route("GET", &path).is_err());
        }
    }
}

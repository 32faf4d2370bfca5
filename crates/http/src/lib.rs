//! The actix-web adapter of a Stencila host: it routes requests to a [`Host`], guards
//! them with [`Auth`], applies the origin and `Host`-header checks, serves static files
//! and turns every failure into a status and body in one place ([`HttpError`]).
//!
//! Only this crate knows about HTTP; [`serve`] takes an already-bound listener and a
//! shutdown future, so tests and embedders bind port 0 and stop the server themselves.

mod assets;
mod console;
mod cookie;
mod error;
mod events;
mod metrics;
mod openapi;
mod origin;
mod router;
mod throttle;

pub use cookie::{CookieSameSite, UnknownSameSite};
pub use error::HttpError;
pub use metrics::PoolGauges;
pub use origin::{Origin, OriginPolicy};
pub use router::{route, NoRoute, Route};

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stencila_auth::{Auth, SessionToken};
use stencila_host::Host;

/// The default limit on request bodies.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

/// The default limit on a request's header section (request line and headers).
pub const DEFAULT_MAX_HEADER: usize = 32 * 1024;

/// The largest header section actix itself reads (it answers 431 above that), so the
/// most `max_header` can usefully be.
pub const MAX_HEADER_CEILING: usize = 128 * 1024;

/// How the server behaves; built by the CLI from its validated arguments.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Serve `/static/*` (and `/`, `/favicon.ico`) from this directory instead of the
    /// embedded page.
    pub static_dir: Option<PathBuf>,
    /// Which browser origins may call the host.
    pub origins: OriginPolicy,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// The largest request header section accepted, in bytes (431 above it).
    pub max_header: usize,
    /// Worker threads; `None` for one per core.
    pub workers: Option<usize>,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// The session cookie's `SameSite` attribute (`--cookie-samesite`).
    pub cookie_same_site: CookieSameSite,
    /// Readers of each type's pooled workers, for `/metrics`.
    pub pool_gauges: PoolGauges,
    /// A second listener that serves only `GET /metrics`, without credentials
    /// (`--metrics-address`).
    pub metrics_listener: Option<Arc<TcpListener>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            static_dir: None,
            origins: OriginPolicy::default(),
            max_body: DEFAULT_MAX_BODY,
            max_header: DEFAULT_MAX_HEADER,
            workers: None,
            shutdown_grace: Duration::from_secs(5),
            cookie_same_site: CookieSameSite::default(),
            pool_gauges: PoolGauges::default(),
            metrics_listener: None,
        }
    }
}

/// What every request handler shares.
struct AppState {
    host: Arc<Host>,
    auth: Arc<Auth>,
    origins: OriginPolicy,
    /// Only a loopback-bound host refuses foreign `Host` headers (DNS rebinding).
    check_host: bool,
    static_root: Option<PathBuf>,
    max_body: usize,
    max_header: usize,
    throttle: throttle::Throttle,
    cookie_same_site: CookieSameSite,
    metrics: metrics::Metrics,
    /// Set once shutdown begins: `/health` then answers 503.
    stopping: std::sync::atomic::AtomicBool,
    /// The address of the metrics-only listener, if any.
    metrics_address: Option<std::net::SocketAddr>,
}

/// Serves `host` on `listener` until `shutdown` resolves, then stops gracefully:
/// in-flight requests get `config.shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    host: Arc<Host>,
    auth: Arc<Auth>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let check_host = listener.local_addr()?.ip().is_loopback();
    let static_root = match &config.static_dir {
        Some(dir) => Some(dir.canonicalize().map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!(
                    "the static directory {} cannot be used: {error}",
                    dir.display()
                ),
            )
        })?),
        None => None,
    };
    let metrics_listener = match &config.metrics_listener {
        Some(listener) => Some(listener.try_clone()?),
        None => None,
    };
    let metrics_address = match &metrics_listener {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    let state = web::Data::new(AppState {
        host,
        auth,
        origins: config.origins.clone(),
        check_host,
        static_root,
        max_body: config.max_body,
        max_header: config.max_header,
        throttle: throttle::Throttle::default(),
        cookie_same_site: config.cookie_same_site,
        metrics: metrics::Metrics::new(config.pool_gauges.clone()),
        stopping: Default::default(),
        metrics_address,
    });
    let stopping = state.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(handle))
    })
    .disable_signals()
    .shutdown_timeout(config.shutdown_grace.as_secs().max(1));
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    let mut server = server.listen(listener)?;
    if let Some(metrics_listener) = metrics_listener {
        server = server.listen(metrics_listener)?;
    }
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown.await;
        stopping
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        handle.stop(true).await;
    });
    server.await
}

/// Whether the client prefers JSON (error bodies and `GET /`).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of header `name`: `Ok(None)` when absent, refused when present but not
/// plain ASCII (such a header must never pass for an absent one).
fn ascii_header(headers: &HeaderMap, name: HeaderName) -> Result<Option<&str>, HttpError> {
    match headers.get(&name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| HttpError::BadRequest(format!("the {name} header is not plain ASCII"))),
    }
}

/// Where a request comes from, as far as the origin rules (PROTOCOL section 7) go.
struct Provenance {
    /// The origin to name in `Access-Control-Allow-Origin`.
    allowed_origin: Option<String>,
    /// A web page we do not trust: public answers only, credentials ignored.
    refused: bool,
}

/// Decides [`Provenance`] from `Origin`, else `Referer`, else `Sec-Fetch-Site`; a
/// `Host`, `Origin` or `Referer` that is present but not ASCII is a 400.
fn provenance(req: &HttpRequest, state: &AppState) -> Result<Provenance, HttpError> {
    let headers = req.headers();
    let host = ascii_header(headers, header::HOST)?;
    let origin = ascii_header(headers, header::ORIGIN)?;
    let referer = match origin {
        Some(_) => None,
        None => ascii_header(headers, header::REFERER)?,
    };
    Ok(match origin::request_origin(origin, referer) {
        Some(Some(origin))
            if state.origins.allows(&origin) || origin::is_own_origin(&origin, host) =>
        {
            Provenance {
                allowed_origin: Some(origin.serialize()),
                refused: false,
            }
        }
        Some(_) => Provenance {
            allowed_origin: None,
            refused: true,
        },
        // No Origin and no Referer: a non-browser client, unless the browser says the
        // request comes from another site (an `<img>` or a link on a page with a
        // no-referrer policy). Such a request must not spend tickets or trip the
        // throttle, or any web page could lock the owner out.
        None => Provenance {
            allowed_origin: None,
            refused: header_str(headers, HeaderName::from_static("sec-fetch-site")).is_some_and(
                |site| {
                    site.eq_ignore_ascii_case("cross-site")
                        || site.eq_ignore_ascii_case("same-site")
                },
            ),
        },
    })
}

/// The one handler: every request passes through here, so every response gets the
/// same checks and CORS headers.
async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    if state.metrics_address.is_some()
        && state.metrics_address == Some(req.app_config().local_addr())
    {
        // The scraper's own listener: no credentials, no activity, nothing but metrics.
        return metrics::scrape_only(&req, &state.metrics, &state.host);
    }
    let json = wants_json(req.headers());
    let provenance = provenance(&req, &state);
    let allowed_origin = provenance
        .as_ref()
        .ok()
        .and_then(|p| p.allowed_origin.clone());
    let preflight = req.method() == Method::OPTIONS;

    let mut response = respond(&req, payload, &state, provenance, json).await;
    let headers = response.headers_mut();
    // A page opened with `?ticket=` must not hand the ticket on in a Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Every answer depends on the Origin (CORS headers, refused origins), so no cache
    // may hand one origin's answer to another.
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed_origin {
        if let Ok(value) = HeaderValue::from_str(&origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            // So a page can read which execution its `execute` became.
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Stencila-Execution"),
            );
            if preflight {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("Authorization, Content-Type"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("86400"),
                );
            }
        }
    }
    state.metrics.request(
        metrics::route_label(&router::route(req.method().as_str(), req.path())),
        response.status().as_u16(),
    );
    // The path only: the query may carry a ticket, which is never logged.
    log::debug!(
        "{} {} -> {} in {:?}",
        req.method(),
        router::printable(req.path()),
        response.status().as_u16(),
        started.elapsed()
    );
    response
}

/// The outcome of checking a request's credentials.
#[derive(Default)]
struct Credentials {
    authorized: bool,
    /// A token issued for a ticket in this request, to be set as a cookie.
    issued: Option<SessionToken>,
}

/// Credentials that were presented and refused.
struct Refused {
    error: HttpError,
    /// A bad ticket or bearer token counts towards the throttle; a bad cookie does
    /// not, since a browser sends stale cookies (or another local host's) unasked.
    counts: bool,
}

/// Checks credentials in the order: a valid session token (bearer, or any `token`
/// cookie) wins; else a ticket in the query (when `redeem` allows) is traded for a
/// new token; else what was presented was bad.
fn check_credentials(req: &HttpRequest, auth: &Auth, redeem: bool) -> Result<Credentials, Refused> {
    let valid = Credentials {
        authorized: true,
        ..Credentials::default()
    };
    if !auth.enabled() {
        return Ok(valid);
    }
    let headers = req.headers();
    let bearer = header_str(headers, header::AUTHORIZATION)
        .and_then(stencila_auth::token_from_authorization_header);
    let bearer_error = match bearer.map(|token| auth.check_bearer(token)) {
        Some(Ok(())) => return Ok(valid),
        Some(Err(error)) => Some(error),
        None => None,
    };
    let mut stale_cookie = false;
    for header in headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
    {
        for token in stencila_auth::tokens_from_cookie_header(header) {
            if auth.check_token(token).is_ok() {
                return Ok(valid);
            }
            stale_cookie = true;
        }
    }
    if let Some(ticket) = stencila_auth::ticket_from_query(req.query_string()).filter(|_| redeem) {
        return match auth.redeem_ticket(ticket) {
            Ok(token) => Ok(Credentials {
                authorized: true,
                issued: Some(token),
            }),
            Err(error) => Err(Refused {
                error: HttpError::Forbidden(error.to_string()),
                counts: true,
            }),
        };
    }
    if let Some(error) = bearer_error {
        return Err(Refused {
            error: HttpError::Forbidden(error.to_string()),
            counts: true,
        });
    }
    if stale_cookie {
        return Err(Refused {
            error: HttpError::Forbidden(
                "the session token is not valid or has expired; open the ticket URL again".into(),
            ),
            counts: false,
        });
    }
    Ok(Credentials::default())
}

/// Whether the request carries a ticket or token at all (what the throttle counts).
fn presents_credentials(req: &HttpRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::AUTHORIZATION)
        || stencila_auth::ticket_from_query(req.query_string()).is_some()
        || headers
            .get_all(header::COOKIE)
            .filter_map(|v| v.to_str().ok())
            .any(|v| stencila_auth::token_from_cookie_header(v).is_some())
}

fn session_cookie(token: &SessionToken, same_site: CookieSameSite) -> String {
    format!(
        "token={}; Path=/; HttpOnly; {}",
        token.as_str(),
        same_site.attributes()
    )
}

/// A 200 with `value` as JSON. A value a context sent as text is copied into the body
/// as it is (see `stencila_host::Json`).
fn json_response(value: &impl serde::Serialize) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        // Only a map with keys that are not strings fails, and the host makes none.
        Err(error) => {
            HttpError::Internal(format!("the answer could not be written as JSON: {error}"))
                .response(true)
        }
    }
}

/// Reads the body as JSON: empty means `{}`; over the limit is a 413; not JSON is a 400.
async fn read_json(
    req: &HttpRequest,
    payload: web::Payload,
    max: usize,
) -> Result<Value, HttpError> {
    let too_large =
        || HttpError::PayloadTooLarge(format!("the body is larger than the limit of {max} bytes"));
    let declared = header_str(req.headers(), header::CONTENT_LENGTH)
        .and_then(|length| length.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(too_large());
    }
    let bytes = payload
        .to_bytes_limited(max)
        .await
        .map_err(|_| too_large())?
        .map_err(|error| HttpError::BadRequest(format!("the body could not be read: {error}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes)
        .map_err(|error| HttpError::BadRequest(format!("the body is not valid JSON: {error}")))
}

/// Answers a request: checks, authorization, dispatch. A token issued for a ticket
/// is set as a cookie even when the call itself fails, so a single-use ticket is
/// never spent for nothing. A refused cookie is never cleared: cookies ignore ports,
/// so it may be another local host's live session.
async fn respond(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    provenance: Result<Provenance, HttpError>,
    json: bool,
) -> HttpResponse {
    let checked = provenance.and_then(|provenance| {
        check_request(req, state, provenance.refused).map(|(route, credentials)| {
            // Only requests that passed the checks count as use (`--timeout`): a web
            // page polling the host must not keep it alive.
            let counts_as_use = !provenance.refused;
            (route, credentials, counts_as_use)
        })
    });
    let (credentials, public_answer, result) = match checked {
        Err(error) => (Credentials::default(), false, Err(error)),
        Ok((route, credentials, counts_as_use)) => {
            let public_answer = route.is_public() && !credentials.authorized;
            if counts_as_use {
                state.host.touch();
            }
            let result = dispatch(req, payload, state, route, credentials.authorized, json).await;
            if counts_as_use {
                state.host.touch();
            }
            (credentials, public_answer, result)
        }
    };
    let mut response = result.unwrap_or_else(|error| error.response(json));
    let cookie = credentials.issued.as_ref().and_then(|token| {
        HeaderValue::from_str(&session_cookie(token, state.cookie_same_site)).ok()
    });
    if !public_answer || cookie.is_some() {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Everything before dispatch: the Host check, routing, the origin rule, the throttle
/// and credentials.
fn check_request(
    req: &HttpRequest,
    state: &AppState,
    origin_refused: bool,
) -> Result<(Route, Credentials), HttpError> {
    let header_size = header_section_size(req);
    if header_size > state.max_header {
        return Err(HttpError::HeaderFieldsTooLarge(format!(
            "the request's header section is {header_size} bytes, over the limit of {} bytes (--max-header)",
            state.max_header
        )));
    }
    if state.check_host && !origin::host_header_is_local(header_str(req.headers(), header::HOST)) {
        return Err(HttpError::Forbidden(
            "the Host header does not name this machine".into(),
        ));
    }
    let route = router::route(req.method().as_str(), req.path())
        .map_err(|NoRoute(what)| HttpError::BadRequest(what))?;
    if route == Route::Preflight {
        return Ok((route, Credentials::default()));
    }
    if origin_refused {
        if route.is_public() {
            // A page from a refused origin gets the public answer, and its credentials
            // are not even looked at: it must not be able to spend tickets or trip the
            // throttle for everyone on this machine.
            return Ok((route, Credentials::default()));
        }
        return Err(HttpError::Forbidden(
            "requests from this origin are not allowed".into(),
        ));
    }
    let peer = req.peer_addr().map(|address| address.ip());
    let lockout = match peer {
        Some(ip) if presents_credentials(req) => state.throttle.locked(ip),
        _ => None,
    };
    let credentials = match lockout {
        None => match check_credentials(req, &state.auth, true) {
            Ok(credentials) => credentials,
            Err(refused) => {
                state.metrics.refused(metrics::Refusal::Invalid);
                if let (true, Some(ip)) = (refused.counts, peer) {
                    state.throttle.failed(ip);
                }
                // Public routes are served whatever the credentials; they only lose the extras.
                if route.is_public() {
                    Credentials::default()
                } else {
                    return Err(refused.error);
                }
            }
        },
        // A locked-out address may still use a valid session token (loopback clients
        // share one address), but no ticket is redeemed and nothing else is checked.
        Some(wait) => match check_credentials(req, &state.auth, false) {
            Ok(credentials) if credentials.authorized => credentials,
            _ if route.is_public() => Credentials::default(),
            _ => {
                state.metrics.refused(metrics::Refusal::Throttled);
                return Err(HttpError::TooManyRequests {
                    what: format!(
                        "too many bad tickets or tokens from this address; try again in {wait} s"
                    ),
                    retry_after_secs: wait,
                });
            }
        },
    };
    if !credentials.authorized && !route.is_public() {
        return Err(HttpError::Unauthorized(
            "this needs a ticket (?ticket=...) or a session token (cookie or Authorization: Bearer)"
                .into(),
        ));
    }
    Ok((route, credentials))
}

/// The size of the request line and headers as sent, near enough: each header is
/// `name: value` and a line end.
fn header_section_size(req: &HttpRequest) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// Does what the route asks, for a request already checked.
async fn dispatch(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    route: Route,
    authorized: bool,
    json: bool,
) -> Result<HttpResponse, HttpError> {
    let host = &state.host;
    Ok(match route {
        Route::Preflight => HttpResponse::Ok().finish(),
        Route::Home if json => json_response(&host.manifest(authorized)),
        Route::Home => static_response(req, state, "index.html").await?,
        Route::Favicon => static_response(req, state, "favicon.ico").await?,
        Route::Static(path) => static_response(req, state, &path).await?,
        Route::Manifest => json_response(&host.manifest(authorized)),
        Route::Create(type_name) => {
            let options = read_json(req, payload, state.max_body).await?;
            json_response(&Value::String(host.create(&type_name, options).await?))
        }
        Route::Get(name) => json_response(&host.get(&name)?),
        // Every execute is an execution: it runs on if the client goes away.
        Route::Call(name, method) if method == "execute" => {
            let arg = read_json(req, payload, state.max_body).await?;
            // An unknown instance is answered by `execute`, with the execution's id.
            let type_name = host
                .get(&name)
                .ok()
                .and_then(|state| state["type"].as_str().map(str::to_string));
            let started = Instant::now();
            let executed = host.execute(&name, arg).await?;
            // Counted once per execution, by the request that started it (a repeat by
            // id runs nothing); an instance deleted during the call had its worker
            // ended on purpose: not a crash, so only the duration is recorded.
            if let (Some(type_name), Ok(result), true) =
                (type_name, &executed.result, executed.started)
            {
                let deleted = host.get(&name).is_err();
                let seconds = started.elapsed().as_secs_f64();
                state
                    .metrics
                    .execute(&type_name, seconds, &result.messages, deleted);
            }
            let mut response = match executed.result {
                Ok(result) => json_response(&result),
                Err(error) => HttpError::from(error).response(json),
            };
            events::with_execution_id(&mut response, &executed.id);
            response
        }
        Route::Call(name, method) if method == "executeCode" => {
            let arg = read_json(req, payload, state.max_body).await?;
            let type_name = host.get(&name)?["type"].as_str().map(str::to_string);
            let started = Instant::now();
            let result = host.call(&name, &method, arg).await?;
            // An instance deleted during the call had its worker ended on purpose:
            // that is not a crash, so only the duration is recorded.
            let deleted = host.get(&name).is_err();
            if let Some(type_name) = type_name {
                let seconds = started.elapsed().as_secs_f64();
                let messages = result["messages"].as_array().map_or(&[][..], Vec::as_slice);
                state
                    .metrics
                    .execute(&type_name, seconds, messages, deleted);
            }
            json_response(&result)
        }
        Route::Call(name, method) => {
            let arg = read_json(req, payload, state.max_body).await?;
            json_response(&host.call(&name, &method, arg).await?)
        }
        Route::Execution(name, id) => json_response(&host.execution(&name, &id)?.summary()),
        Route::ExecutionEvents(name, id) => {
            let after = events::last_event_id(req.headers());
            events::stream(host.execution(&name, &id)?.events(after))
        }
        Route::Delete(name) => {
            host.delete(&name).await?;
            json_response(&Value::Null)
        }
        Route::StartEnviron(id) => json_response(&host.start_environ(&id)?),
        Route::StopEnviron(id) => json_response(&host.stop_environ(&id)?),
        Route::Health if state.stopping.load(std::sync::atomic::Ordering::SeqCst) => {
            return Err(HttpError::Unavailable("the host is stopping".into()))
        }
        Route::Health => json_response(&serde_json::json!({"status": "ok"})),
        Route::OpenApi => json_response(openapi::document()),
        Route::Metrics => HttpResponse::Ok()
            .content_type(metrics::CONTENT_TYPE)
            .body(state.metrics.render(host)),
    })
}

async fn static_response(
    req: &HttpRequest,
    state: &AppState,
    path: &str,
) -> Result<HttpResponse, HttpError> {
    match assets::resolve(state.static_root.as_deref(), path) {
        Ok(assets::StaticFile::Disk(path)) => {
            let file = actix_files::NamedFile::open_async(&path)
                .await
                .map_err(|_| HttpError::NotFound("no static file at that path".into()))?;
            Ok(file.into_response(req))
        }
        Ok(assets::StaticFile::Embedded { content_type, body }) => Ok(HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CONTENT_SECURITY_POLICY, console::CSP))
            .body(body)),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{call_service, init_service, TestRequest};
    use stencila_auth::AuthConfig;

    /// What the handler shares for a host bound to a non-loopback address (so without
    /// the `Host` check), with `key` as a host key to authorize requests.
    fn lan_state(key: &str) -> web::Data<AppState> {
        let auth = Arc::new(Auth::new(AuthConfig::default()));
        auth.add_key(key);
        web::Data::new(AppState {
            host: Arc::new(Host::new()),
            auth,
            origins: OriginPolicy::default(),
            check_host: false,
            static_root: None,
            max_body: DEFAULT_MAX_BODY,
            max_header: DEFAULT_MAX_HEADER,
            throttle: throttle::Throttle::default(),
            cookie_same_site: CookieSameSite::default(),
            metrics: metrics::Metrics::new(PoolGauges::default()),
            stopping: Default::default(),
            metrics_address: None,
        })
    }

    #[actix_web::test]
    async fn the_console_at_a_lan_ip_is_its_own_origin_but_a_dns_name_is_not() {
        let key = Auth::generate_key();
        let app = init_service(
            App::new()
                .app_data(lan_state(&key))
                .default_service(web::to(handle)),
        )
        .await;
        let call = |host: &str, origin: &str| {
            TestRequest::delete()
                .uri("/environ/local")
                .insert_header((header::HOST, host))
                .insert_header((header::ORIGIN, origin))
                .insert_header((header::AUTHORIZATION, format!("Bearer {key}")))
                .to_request()
        };
        let own = call_service(&app, call("192.0.2.7:2000", "http://192.0.2.7:2000")).await;
        assert_eq!(own.status(), 200);
        assert_eq!(
            own.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&HeaderValue::from_static("http://192.0.2.7:2000"))
        );
        for (host, origin) in [
            ("evil.example:2000", "http://evil.example:2000"),
            ("192.0.2.7:2000", "http://192.0.2.7:2001"),
            ("192.0.2.7:2000", "http://192.0.2.8:2000"),
        ] {
            let refused = call_service(&app, call(host, origin)).await;
            assert_eq!(refused.status(), 403, "{origin} at {host}");
        }
    }
}

//! The host's metrics for `GET /metrics` (PROTOCOL.md section 11), kept with the
//! `prometheus-client` crate and written in its OpenMetrics text form, which
//! Prometheus scrapes natively.
//!
//! Counters and the execute histogram are updated as requests pass through the
//! handler; gauges (live instances, pooled workers, resident memory) are read at
//! scrape time, so they can never drift from what the host holds.

use crate::router::{NoRoute, Route};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use stencila_host::Host;

/// The content type of the metrics page: OpenMetrics text, which Prometheus asks for first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads how many pooled (pre-started, waiting) workers a type has now.
pub type PoolReader = Arc<dyn Fn() -> usize + Send + Sync>;

/// The pooled-worker readers of the types that keep a pool, by type name; the CLI
/// adds them, since only it knows the concrete types.
#[derive(Clone, Default)]
pub struct PoolGauges(Vec<(String, PoolReader)>);

impl PoolGauges {
    /// Reports `read()` as the pooled workers of `type_name`.
    pub fn add(&mut self, type_name: &str, read: impl Fn() -> usize + Send + Sync + 'static) {
        self.0.push((type_name.to_string(), Arc::new(read)));
    }
}

impl fmt::Debug for PoolGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why presented credentials were refused, for `stencila_refused_credentials_total`.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// A ticket, token or bearer that is not valid.
    Invalid,
    /// Refused without checking: the address is locked out by the throttle.
    Throttled,
}

/// Every metric the host keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    execute: Family<TypeLabels, Histogram>,
    instances: Family<TypeLabels, Gauge>,
    pooled: Family<TypeLabels, Gauge>,
    crashes: Family<TypeLabels, Counter>,
    restarts: Family<TypeLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    rss: Gauge,
    pools: PoolGauges,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Execute durations from 5 ms to about 80 s, doubling.
fn execute_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Metrics {
    /// Registers every metric; `pools` reads the pooled workers at scrape time.
    pub fn new(pools: PoolGauges) -> Metrics {
        let mut registry = Registry::with_prefix("stencila");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let execute =
            Family::<TypeLabels, Histogram>::new_with_constructor(execute_histogram as fn() -> _);
        registry.register_with_unit(
            "execute_duration",
            "Time taken by execute calls, by instance type",
            Unit::Seconds,
            execute.clone(),
        );
        let instances = Family::<TypeLabels, Gauge>::default();
        registry.register("instances", "Live instances, by type", instances.clone());
        let pooled = Family::<TypeLabels, Gauge>::default();
        registry.register(
            "pooled_workers",
            "Pre-started workers waiting for a new instance, by type",
            pooled.clone(),
        );
        let crashes = Family::<TypeLabels, Counter>::default();
        registry.register(
            "worker_crashes",
            "Worker processes that died or were killed during a call, by type",
            crashes.clone(),
        );
        let restarts = Family::<TypeLabels, Counter>::default();
        registry.register(
            "worker_restarts",
            "Fresh workers started to replace a lost one, by type",
            restarts.clone(),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "refused_credentials",
            "Requests whose ticket or token was refused, by reason",
            refused.clone(),
        );
        let rss = Gauge::default();
        registry.register_with_unit(
            "resident_memory",
            "Resident memory of the host process (not its workers)",
            Unit::Bytes,
            rss.clone(),
        );
        drop(refused.get_or_create(&ReasonLabels { reason: "invalid" }));
        drop(refused.get_or_create(&ReasonLabels {
            reason: "throttled",
        }));
        Metrics {
            registry,
            requests,
            execute,
            instances,
            pooled,
            crashes,
            restarts,
            refused,
            rss,
            pools,
        }
    }

    /// Counts an answered request. `route` is a fixed label ([`route_label`]),
    /// never client text, so the label set stays small.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// Counts refused credentials.
    pub fn refused(&self, why: Refusal) {
        let reason = match why {
            Refusal::Invalid => "invalid",
            Refusal::Throttled => "throttled",
        };
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Records an `execute` call on an instance of `type_name`: its duration, and
    /// from its messages whether the worker was lost during it or replaced before it.
    /// A worker ended because its instance was `deleted` during the call is no crash.
    pub fn execute(&self, type_name: &str, seconds: f64, messages: &[Value], deleted: bool) {
        let labels = TypeLabels {
            r#type: type_name.to_string(),
        };
        self.execute.get_or_create(&labels).observe(seconds);
        let (crashed, restarted) = worker_events(messages);
        if crashed && !deleted {
            self.crashes.get_or_create(&labels).inc();
        }
        if restarted {
            self.restarts.get_or_create(&labels).inc();
        }
    }

    /// The metrics page, with the gauges read now.
    pub fn render(&self, host: &Host) -> String {
        let manifest = host.manifest(false);
        let mut counts: Vec<(String, i64)> = manifest["types"]
            .as_object()
            .map(|types| types.keys().map(|name| (name.clone(), 0)).collect())
            .unwrap_or_default();
        for name in host.instance_names() {
            // An instance deleted since the names were read is simply not counted.
            let Ok(state) = host.get(&name) else { continue };
            let Some(type_name) = state["type"].as_str() else {
                continue;
            };
            match counts.iter_mut().find(|(t, _)| t == type_name) {
                Some((_, count)) => *count += 1,
                None => counts.push((type_name.to_string(), 1)),
            }
        }
        for (type_name, count) in counts {
            let labels = TypeLabels { r#type: type_name };
            self.instances.get_or_create(&labels).set(count);
            // Every type's counters are listed from the start, at zero: an alert on
            // a rate needs the series to exist before the first crash.
            drop(self.crashes.get_or_create(&labels));
            drop(self.restarts.get_or_create(&labels));
            drop(self.execute.get_or_create(&labels));
        }
        for (type_name, read) in &self.pools.0 {
            self.pooled
                .get_or_create(&TypeLabels {
                    r#type: type_name.clone(),
                })
                .set(i64::try_from(read()).unwrap_or(i64::MAX));
        }
        if let Some(rss) = resident_memory() {
            self.rss.set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            // Writing into a String cannot fail; should it, the page says so.
            log::error!("encoding the metrics failed: {error}");
        }
        text
    }
}

/// The answer on the `--metrics-address` listener: `GET /metrics` without
/// credentials, a 404 for anything else.
pub fn scrape_only(
    req: &actix_web::HttpRequest,
    metrics: &Metrics,
    host: &Host,
) -> actix_web::HttpResponse {
    use actix_web::http::{header, Method};
    let route = match (req.method(), req.path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => Ok(Route::Metrics),
        _ => Err(NoRoute(String::new())),
    };
    let mut response = match route {
        Ok(_) => actix_web::HttpResponse::Ok()
            .content_type(CONTENT_TYPE)
            .body(metrics.render(host)),
        Err(_) => {
            crate::HttpError::NotFound("only GET /metrics is served on the metrics address".into())
                .response(false)
        }
    };
    metrics.request(route_label(&route), response.status().as_u16());
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// The `route` label of a request: the kind of route, never client text.
pub fn route_label(route: &Result<Route, NoRoute>) -> &'static str {
    match route {
        Err(_) => "unmatched",
        Ok(Route::Home) => "home",
        Ok(Route::Static(_)) => "static",
        Ok(Route::Favicon) => "favicon",
        Ok(Route::Manifest) => "manifest",
        Ok(Route::Preflight) => "preflight",
        Ok(Route::Create(_)) => "create",
        Ok(Route::Get(_)) => "get",
        Ok(Route::Call(..)) => "call",
        Ok(Route::Execution(..)) => "execution",
        Ok(Route::ExecutionEvents(..)) => "execution events",
        Ok(Route::Delete(_)) => "delete",
        Ok(Route::StartEnviron(_)) | Ok(Route::StopEnviron(_)) => "environ",
        Ok(Route::Health) => "health",
        Ok(Route::Metrics) => "metrics",
        Ok(Route::OpenApi) => "openapi",
    }
}

/// Whether an execute result says the worker was lost during the call (an error
/// message about the worker dying or being killed) and whether a fresh worker replaced
/// a lost one before it (the warning that variables were lost). These are the
/// contexts' own words (PROTOCOL.md section 6); the contexts keep no counters.
fn worker_events(messages: &[Value]) -> (bool, bool) {
    let mut crashed = false;
    let mut restarted = false;
    for message in messages {
        let text = message["message"].as_str().unwrap_or_default();
        match message["type"].as_str() {
            Some("error") if text.contains("worker died") || text.contains("was killed") => {
                crashed = true
            }
            Some("warning") if text.contains("worker was restarted") => restarted = true,
            _ => {}
        }
    }
    (crashed, restarted)
}

/// The resident memory of this process in bytes, from `VmRSS` in `/proc/self/status` (Linux).
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_events_read_the_contexts_messages() {
        let died = [
            json!({"type": "error", "message": "the Python worker died: exit 1; its variables are lost"}),
        ];
        assert_eq!(worker_events(&died), (true, false));
        let restarted = [
            json!({"type": "warning", "message": "the Python worker was restarted after it died; variables from before are lost"}),
        ];
        assert_eq!(worker_events(&restarted), (false, true));
        let user_error =
            [json!({"type": "error", "message": "NameError: name 'x' is not defined"})];
        assert_eq!(worker_events(&user_error), (false, false));
        assert_eq!(worker_events(&[]), (false, false));
    }

    #[test]
    fn the_page_names_every_metric() {
        let mut pools = PoolGauges::default();
        pools.add("PythonContext", || 2);
        let metrics = Metrics::new(pools);
        metrics.request("manifest", 200);
        metrics.refused(Refusal::Invalid);
        metrics.execute("PythonContext", 0.02, &[], false);
        let died = [json!({"type": "error", "message": "the Python worker died: killed"})];
        metrics.execute("PythonContext", 0.02, &died, true);
        let page = metrics.render(&Host::new());
        for line in [
            "stencila_http_requests_total{route=\"manifest\",status=\"200\"} 1",
            "stencila_refused_credentials_total{reason=\"invalid\"} 1",
            "stencila_execute_duration_seconds_count{type=\"PythonContext\"} 2",
            "stencila_pooled_workers{type=\"PythonContext\"} 2",
            "# TYPE stencila_resident_memory_bytes gauge",
        ] {
            assert!(page.contains(line), "{line} missing from:\n{page}");
        }
        // The worker ended by a delete is not a crash.
        assert!(!page.contains("stencila_worker_crashes_total{type=\"PythonContext\"} 1"));
        assert!(resident_memory().is_some_and(|rss| rss > 0));
    }
}

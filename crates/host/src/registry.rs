//! The `Host`: registered types, live instances and their names, dispatch, the manifest.

use crate::executions::{self, Execution, ExecutionLimits, ExecutionLog};
use crate::{ExecuteResult, HostError, Instance, InstanceType};
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The one execution environment this host offers: the machine it runs on.
const LOCAL_ENVIRON: &str = "local";

/// How many culled names are remembered, so later calls can say why they fail.
const CULLED_MEMORY: usize = 10_000;

/// Limits on what a host holds; `None` means unlimited.
#[derive(Debug, Clone, Default)]
pub struct HostLimits {
    /// The most instances alive at once.
    pub max_instances: Option<usize>,
    /// Instances idle (no call running) for longer than this are destroyed by [`Host::cull_idle`].
    pub instance_timeout: Option<Duration>,
}

/// A live instance and what the host tracks about it.
struct Entry {
    type_name: String,
    seq: u64,
    instance: Arc<dyn Instance>,
    created: SystemTime,
    /// Milliseconds since the Unix epoch of the end of the last call (or creation).
    last_used_ms: AtomicU64,
    busy: AtomicUsize,
    executions: ExecutionLog,
}

/// The answer to an `execute`: its id (for the `Stencila-Execution` header) and outcome.
#[derive(Debug)]
pub struct Executed {
    /// The execution id, chosen by the client or made by the host.
    pub id: String,
    /// The result, the same for every request with this id.
    pub result: Result<ExecuteResult, HostError>,
    /// True for the request that started the execution, false for a repeat by id.
    pub started: bool,
}

#[derive(Default)]
struct Instances {
    live: HashMap<String, Arc<Entry>>,
    /// Per-type counters: names are never reused within a host's life.
    counters: HashMap<String, u64>,
    /// Instances being created: counted against `max_instances`.
    pending: usize,
    seq: u64,
    culled: HashSet<String>,
    culled_order: VecDeque<String>,
}

/// Counts an instance as busy while it lives; keeps the count right even if the request
/// is dropped mid-call.
struct Busy(Arc<Entry>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_used_ms.store(now_ms(), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where the host is being served, for the manifest.
#[derive(Debug, Clone)]
struct Serving {
    pid: u32,
    url: String,
}

/// The host: owns the registries and is shared (behind an `Arc`) by every request handler.
pub struct Host {
    id: String,
    types: Vec<Arc<dyn InstanceType>>,
    limits: HostLimits,
    execution_limits: ExecutionLimits,
    instances: Mutex<Instances>,
    serving: RwLock<Option<Serving>>,
    /// Milliseconds since the Unix epoch of the last sign of use (see [`Host::touch`]).
    last_activity_ms: AtomicU64,
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock is a bug elsewhere; the registry itself stays consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    millis(SystemTime::now())
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A duration in whole milliseconds, `u64::MAX` for one too long to count.
fn saturating_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Seconds since the Unix epoch, with millisecond precision, for JSON.
fn seconds(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// `PythonContext` -> `pythonContext`.
fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Host {
    /// A host with a fresh random id (`rust-host-<32 hex>`), no types and no limits.
    pub fn new() -> Self {
        let mut rng = rand::thread_rng();
        let id = format!("rust-host-{:032x}", rng.gen::<u128>());
        Self::with_id(id)
    }

    /// A host with the given id.
    pub fn with_id(id: String) -> Self {
        Host {
            id,
            types: Vec::new(),
            limits: HostLimits::default(),
            execution_limits: ExecutionLimits::default(),
            instances: Mutex::new(Instances::default()),
            serving: RwLock::new(None),
            last_activity_ms: AtomicU64::new(now_ms()),
        }
    }

    /// Sets the limits on instances.
    pub fn set_limits(&mut self, limits: HostLimits) {
        self.limits = limits;
    }

    /// Sets what each instance's execution log keeps (for instances created later).
    pub fn set_execution_limits(&mut self, limits: ExecutionLimits) {
        self.execution_limits = limits;
    }

    /// Registers a type; a later type of the same name replaces the earlier one.
    pub fn register(&mut self, instance_type: Arc<dyn InstanceType>) {
        self.types.retain(|t| t.name() != instance_type.name());
        self.types.push(instance_type);
    }

    /// The host's id, `rust-host-<32 hex>` unless given.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records where the host is served, so the manifest can say so.
    pub fn set_serving(&self, pid: u32, url: String) {
        *self.serving.write().unwrap_or_else(PoisonError::into_inner) = Some(Serving { pid, url });
    }

    /// Creates an instance of `type_name` and returns its new name, e.g. `pythonContext1`.
    pub async fn create(&self, type_name: &str, options: Value) -> Result<String, HostError> {
        let instance_type = self
            .types
            .iter()
            .find(|t| t.name() == type_name)
            .ok_or_else(|| HostError::UnknownType(type_name.to_string()))?;
        if !options.is_object() {
            return Err(HostError::BadArgument(
                "constructor options must be a JSON object".into(),
            ));
        }
        {
            let mut instances = lock(&self.instances);
            if let Some(max) = self.limits.max_instances {
                if instances.live.len() + instances.pending >= max {
                    return Err(HostError::TooManyInstances(max));
                }
            }
            instances.pending += 1;
        }
        // Gives the reserved slot back however this ends, even if the future is dropped.
        struct Pending<'a>(&'a Mutex<Instances>);
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                lock(self.0).pending -= 1;
            }
        }
        let pending = Pending(&self.instances);
        let created = instance_type.create(options).await;
        let mut instances = lock(&self.instances);
        // Released under the same lock as the insert, so the slot is never free twice.
        std::mem::forget(pending);
        instances.pending -= 1;
        let instance = created?;
        let counter = instances.counters.entry(type_name.to_string()).or_insert(0);
        *counter += 1;
        let name = format!("{}{}", lower_first(type_name), counter);
        instances.seq += 1;
        let entry = Entry {
            type_name: type_name.to_string(),
            seq: instances.seq,
            instance,
            created: SystemTime::now(),
            last_used_ms: AtomicU64::new(now_ms()),
            busy: AtomicUsize::new(0),
            executions: ExecutionLog::new(self.execution_limits.clone()),
        };
        instances.live.insert(name.clone(), Arc::new(entry));
        Ok(name)
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>, HostError> {
        let instances = lock(&self.instances);
        match instances.live.get(name) {
            Some(entry) => Ok(entry.clone()),
            None if instances.culled.contains(name) => Err(HostError::Culled(name.to_string())),
            None => Err(HostError::UnknownInstance(name.to_string())),
        }
    }

    /// The public state of an instance: its name, type, timers and its own state.
    pub fn get(&self, name: &str) -> Result<Value, HostError> {
        let entry = self.entry(name)?;
        let last_used = entry.last_used_ms.load(Ordering::Relaxed);
        let busy = entry.busy.load(Ordering::Relaxed) > 0;
        let cull_at = match (self.limits.instance_timeout, busy) {
            (Some(timeout), false) => seconds(last_used.saturating_add(saturating_millis(timeout))),
            _ => Value::Null,
        };
        let mut state = Map::new();
        state.insert("name".into(), json!(name));
        state.insert("type".into(), json!(entry.type_name));
        state.insert("created".into(), seconds(millis(entry.created)));
        state.insert("lastUsed".into(), seconds(last_used));
        state.insert("busy".into(), json!(busy));
        state.insert("cullAt".into(), cull_at);
        if let Value::Object(own) = entry.instance.state() {
            for (key, value) in own {
                state.entry(key).or_insert(value);
            }
        }
        Ok(Value::Object(state))
    }

    /// The live instance `name`, counted as busy until the guard is dropped.
    fn busy_entry(&self, name: &str) -> Result<Busy, HostError> {
        // Marked busy under the registry lock, so `cull_idle` cannot take the instance
        // between the lookup and the call.
        let entry = {
            let instances = lock(&self.instances);
            match instances.live.get(name) {
                Some(entry) => {
                    entry.busy.fetch_add(1, Ordering::Relaxed);
                    entry.clone()
                }
                None if instances.culled.contains(name) => {
                    return Err(HostError::Culled(name.to_string()))
                }
                None => return Err(HostError::UnknownInstance(name.to_string())),
            }
        };
        Ok(Busy(entry))
    }

    /// Calls a method of an instance. Calls on one instance are serialized by the instance.
    /// Pointers among the inputs are first resolved, instance to instance, and pointers
    /// in the result name this instance (see `pointers`).
    pub async fn call(&self, name: &str, method: &str, arg: Value) -> Result<Value, HostError> {
        self.entry(name)?;
        let arg = match crate::pointers::resolve(self, method, arg).await {
            Ok(arg) => arg,
            Err(answer) => return answer,
        };
        let mut result = self.dispatch(name, method, arg).await;
        if let Ok(value) = &mut result {
            crate::pointers::label(name, value);
        }
        result
    }

    /// Calls a method of an instance as it is: what [`Host::call`] does after pointers.
    /// An `interrupt` also marks the instance's running executions as interrupted.
    pub(crate) async fn dispatch(
        &self,
        name: &str,
        method: &str,
        arg: Value,
    ) -> Result<Value, HostError> {
        let busy = self.busy_entry(name)?;
        if method == "interrupt" {
            busy.0.executions.interrupt_running();
        }
        busy.0.instance.call(method, arg).await
    }

    /// Runs `execute` on an instance as an execution (PROTOCOL.md section 10): it gets
    /// an id (the argument's `id`, else a fresh one) and runs in a task of its own, so
    /// dropping this future does not stop it. An id the instance already keeps does not
    /// run again: this waits for that execution and returns its outcome. Pointers among
    /// the inputs are resolved first (before the execution is registered, so a client
    /// that goes away meanwhile leaves nothing half-started), and pointers in the result
    /// name the instance, as [`Host::call`] does.
    pub async fn execute(&self, name: &str, mut arg: Value) -> Result<Executed, HostError> {
        let id = executions::take_id(&mut arg)?.unwrap_or_else(executions::fresh_id);
        // Still answered with its id, as every execute is.
        let failed = |id: String, error: HostError| Executed {
            id,
            result: Err(error),
            started: false,
        };
        let entry = match self.entry(name) {
            Ok(entry) => entry,
            Err(error) => return Ok(failed(id, error)),
        };
        let known = entry.executions.find(&id);
        let (execution, fresh) = match known {
            Some(execution) => (execution, false),
            None => {
                let resolved = crate::pointers::resolve(self, "execute", arg).await;
                let busy = match self.busy_entry(name) {
                    Ok(busy) => busy,
                    Err(error) => return Ok(failed(id, error)),
                };
                let (execution, fresh) = busy.0.executions.find_or_start(id.clone());
                if fresh {
                    match resolved {
                        Ok(arg) => {
                            let instance = busy.0.instance.clone();
                            let name = name.to_string();
                            // The task holds the busy guard: a running execution is
                            // never culled.
                            executions::spawn(
                                execution.clone(),
                                move |sink| {
                                    Box::pin(async move {
                                        let mut result = instance.execute_live(arg, sink).await;
                                        if let Ok(result) = &mut result {
                                            crate::pointers::label_result(&name, result);
                                        }
                                        result
                                    })
                                },
                                busy,
                            );
                        }
                        // An input that could not be fetched: the execution ends at once.
                        Err(answer) => execution.finish(answer.map(ExecuteResult::from_value)),
                    }
                }
                (execution, fresh)
            }
        };
        let result = execution.outcome().await;
        Ok(Executed {
            id,
            result,
            started: fresh,
        })
    }

    /// The execution `id` of instance `name`, while it is kept.
    pub fn execution(&self, name: &str, id: &str) -> Result<Arc<Execution>, HostError> {
        self.entry(name)?
            .executions
            .find(id)
            .ok_or_else(|| HostError::UnknownExecution(id.to_string()))
    }

    /// Destroys an instance: it leaves the registry at once, then releases its resources.
    pub async fn delete(&self, name: &str) -> Result<(), HostError> {
        let entry = {
            let mut instances = lock(&self.instances);
            match instances.live.remove(name) {
                Some(entry) => entry,
                None if instances.culled.contains(name) => {
                    return Err(HostError::Culled(name.to_string()))
                }
                None => return Err(HostError::UnknownInstance(name.to_string())),
            }
        };
        entry.instance.destroy().await;
        Ok(())
    }

    /// Destroys instances that have been idle longer than the instance timeout;
    /// returns their names. Does nothing when there is no timeout.
    pub async fn cull_idle(&self) -> Vec<String> {
        let Some(timeout) = self.limits.instance_timeout else {
            return Vec::new();
        };
        let deadline = now_ms().saturating_sub(saturating_millis(timeout));
        let culled: Vec<(String, Arc<Entry>)> = {
            let mut instances = lock(&self.instances);
            let names: Vec<String> = instances
                .live
                .iter()
                .filter(|(_, e)| {
                    e.busy.load(Ordering::Relaxed) == 0
                        && e.last_used_ms.load(Ordering::Relaxed) <= deadline
                })
                .map(|(name, _)| name.clone())
                .collect();
            let mut culled = Vec::new();
            for name in names {
                if let Some(entry) = instances.live.remove(&name) {
                    instances.culled.insert(name.clone());
                    instances.culled_order.push_back(name.clone());
                    if instances.culled_order.len() > CULLED_MEMORY {
                        if let Some(old) = instances.culled_order.pop_front() {
                            instances.culled.remove(&old);
                        }
                    }
                    culled.push((name, entry));
                }
            }
            culled
        };
        let mut names = Vec::with_capacity(culled.len());
        for (name, entry) in culled {
            entry.instance.destroy().await;
            names.push(name);
        }
        names
    }

    /// Destroys every instance, then shuts every type down (e.g. ends pooled workers):
    /// what the host does on stop.
    pub async fn destroy_all(&self) {
        let entries: Vec<Arc<Entry>> = lock(&self.instances).live.drain().map(|(_, e)| e).collect();
        for entry in entries {
            entry.instance.destroy().await;
        }
        for instance_type in &self.types {
            instance_type.shutdown().await;
        }
    }

    /// Records a sign of use (a request arriving or finishing), for [`Host::idle_for`].
    pub fn touch(&self) {
        self.last_activity_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// How long the host has been unused: zero while any instance is busy, else the
    /// time since the last [`Host::touch`] or call.
    pub fn idle_for(&self) -> Duration {
        let instances = lock(&self.instances);
        let mut last = self.last_activity_ms.load(Ordering::Relaxed);
        for entry in instances.live.values() {
            if entry.busy.load(Ordering::Relaxed) > 0 {
                return Duration::ZERO;
            }
            last = last.max(entry.last_used_ms.load(Ordering::Relaxed));
        }
        Duration::from_millis(now_ms().saturating_sub(last))
    }

    /// Names of live instances, in creation order.
    pub fn instance_names(&self) -> Vec<String> {
        let instances = lock(&self.instances);
        let mut entries: Vec<(&String, u64)> =
            instances.live.iter().map(|(n, e)| (n, e.seq)).collect();
        entries.sort_by_key(|(_, seq)| *seq);
        entries.into_iter().map(|(n, _)| n.clone()).collect()
    }

    /// The environments this host offers, as listed in the manifest.
    fn environs(&self) -> Value {
        json!([{"id": LOCAL_ENVIRON, "name": LOCAL_ENVIRON, "version": null}])
    }

    /// Starts an execution environment. Only `local` exists, and it is always running.
    pub fn start_environ(&self, id: &str) -> Result<Value, HostError> {
        if id != LOCAL_ENVIRON {
            return Err(HostError::UnknownEnviron(id.to_string()));
        }
        Ok(json!({"id": LOCAL_ENVIRON, "name": LOCAL_ENVIRON, "version": null, "running": true}))
    }

    /// Stops an execution environment. `local` is the host itself, so this only checks the id.
    pub fn stop_environ(&self, id: &str) -> Result<Value, HostError> {
        if id != LOCAL_ENVIRON {
            return Err(HostError::UnknownEnviron(id.to_string()));
        }
        Ok(Value::Null)
    }

    /// The host manifest; `instances` is listed only when `authorized`.
    pub fn manifest(&self, authorized: bool) -> Value {
        let mut types = Map::new();
        for t in &self.types {
            let mut entry = Map::new();
            entry.insert("name".into(), json!(t.name()));
            entry.insert("client".into(), json!(t.client()));
            entry.insert("available".into(), json!(t.available()));
            for (key, value) in t.manifest_fields() {
                entry.entry(key).or_insert(value);
            }
            types.insert(t.name().to_string(), Value::Object(entry));
        }
        let mut manifest = Map::new();
        manifest.insert("id".into(), json!(self.id));
        manifest.insert(
            "stencila".into(),
            json!({"package": "rust", "version": env!("CARGO_PKG_VERSION")}),
        );
        manifest.insert("spawn".into(), json!(["stencila", "spawn"]));
        manifest.insert("environs".into(), self.environs());
        manifest.insert("types".into(), Value::Object(types));
        let serving = self
            .serving
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(serving) = serving {
            manifest.insert("process".into(), json!({"pid": serving.pid}));
            manifest.insert("servers".into(), json!({"http": {"url": serving.url}}));
            if authorized {
                manifest.insert("instances".into(), json!(self.instance_names()));
            }
        }
        Value::Object(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxFuture;

    struct Counter {
        available: bool,
        destroyed: Arc<AtomicUsize>,
    }

    struct CounterInstance {
        count: AtomicU64,
        destroyed: Arc<AtomicUsize>,
    }

    impl InstanceType for Counter {
        fn name(&self) -> &str {
            "CounterThing"
        }
        fn available(&self) -> bool {
            self.available
        }
        fn create(&self, options: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>> {
            let destroyed = self.destroyed.clone();
            Box::pin(async move {
                if options.get("fail").is_some() {
                    return Err(HostError::Unavailable("asked to fail".into()));
                }
                Ok(Arc::new(CounterInstance {
                    count: AtomicU64::new(0),
                    destroyed,
                }) as Arc<dyn Instance>)
            })
        }
    }

    impl Instance for CounterInstance {
        fn call<'a>(
            &'a self,
            method: &'a str,
            _arg: Value,
        ) -> BoxFuture<'a, Result<Value, HostError>> {
            Box::pin(async move {
                match method {
                    "increment" => Ok(json!(self.count.fetch_add(1, Ordering::SeqCst) + 1)),
                    _ => Err(HostError::UnknownMethod(method.to_string())),
                }
            })
        }
        fn state(&self) -> Value {
            json!({"count": self.count.load(Ordering::SeqCst), "name": "not overridden"})
        }
        fn destroy(&self) -> BoxFuture<'_, ()> {
            self.destroyed.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }
    }

    fn host(limits: HostLimits) -> (Host, Arc<AtomicUsize>) {
        let destroyed = Arc::new(AtomicUsize::new(0));
        let mut host = Host::new();
        host.set_limits(limits);
        host.register(Arc::new(Counter {
            available: true,
            destroyed: destroyed.clone(),
        }));
        (host, destroyed)
    }

    fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn names_count_per_type_and_are_never_reused() {
        run(async {
            let (host, _) = host(HostLimits::default());
            assert_eq!(
                host.create("CounterThing", json!({})).await,
                Ok("counterThing1".into())
            );
            assert_eq!(
                host.create("CounterThing", json!({})).await,
                Ok("counterThing2".into())
            );
            host.delete("counterThing2").await.expect("deleted");
            assert_eq!(
                host.create("CounterThing", json!({})).await,
                Ok("counterThing3".into())
            );
            assert_eq!(
                host.instance_names(),
                vec!["counterThing1", "counterThing3"]
            );
        })
    }

    #[test]
    fn unknown_names_are_distinguished() {
        run(async {
            let (host, _) = host(HostLimits::default());
            assert_eq!(
                host.create("Nope", json!({})).await,
                Err(HostError::UnknownType("Nope".into()))
            );
            assert_eq!(
                host.call("counterThing1", "increment", json!({})).await,
                Err(HostError::UnknownInstance("counterThing1".into()))
            );
            let name = host
                .create("CounterThing", json!({}))
                .await
                .expect("created");
            assert_eq!(
                host.call(&name, "__class__", json!({})).await,
                Err(HostError::UnknownMethod("__class__".into()))
            );
            assert!(matches!(
                host.create("CounterThing", json!([])).await,
                Err(HostError::BadArgument(_))
            ));
        })
    }

    #[test]
    fn a_failed_create_uses_no_name() {
        run(async {
            let (host, _) = host(HostLimits::default());
            assert!(host
                .create("CounterThing", json!({"fail": 1}))
                .await
                .is_err());
            assert_eq!(
                host.create("CounterThing", json!({})).await,
                Ok("counterThing1".into())
            );
        })
    }

    #[test]
    fn calls_reach_the_instance_and_state_is_merged() {
        run(async {
            let (host, destroyed) = host(HostLimits::default());
            let name = host
                .create("CounterThing", json!({}))
                .await
                .expect("created");
            assert_eq!(host.call(&name, "increment", json!({})).await, Ok(json!(1)));
            assert_eq!(host.call(&name, "increment", json!({})).await, Ok(json!(2)));
            let state = host.get(&name).expect("state");
            assert_eq!(state["count"], json!(2));
            assert_eq!(state["name"], json!(name));
            assert_eq!(state["type"], json!("CounterThing"));
            assert_eq!(state["busy"], json!(false));
            host.delete(&name).await.expect("deleted");
            assert_eq!(destroyed.load(Ordering::SeqCst), 1);
            assert_eq!(host.get(&name), Err(HostError::UnknownInstance(name)));
        })
    }

    #[test]
    fn max_instances_is_enforced() {
        run(async {
            let (host, _) = host(HostLimits {
                max_instances: Some(1),
                instance_timeout: None,
            });
            host.create("CounterThing", json!({}))
                .await
                .expect("created");
            assert_eq!(
                host.create("CounterThing", json!({})).await,
                Err(HostError::TooManyInstances(1))
            );
            host.delete("counterThing1").await.expect("deleted");
            host.create("CounterThing", json!({}))
                .await
                .expect("room again");
        })
    }

    #[test]
    fn idle_instances_are_culled_and_remembered() {
        run(async {
            let (host, destroyed) = host(HostLimits {
                max_instances: None,
                instance_timeout: Some(Duration::from_millis(0)),
            });
            let name = host
                .create("CounterThing", json!({}))
                .await
                .expect("created");
            assert!(host.get(&name).expect("state")["cullAt"].is_number());
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(host.cull_idle().await, vec![name.clone()]);
            assert_eq!(destroyed.load(Ordering::SeqCst), 1);
            assert_eq!(
                host.call(&name, "increment", json!({})).await,
                Err(HostError::Culled(name))
            );
        })
    }

    #[test]
    fn an_absurd_instance_timeout_saturates_instead_of_overflowing() {
        run(async {
            let (host, destroyed) = host(HostLimits {
                max_instances: None,
                instance_timeout: Some(Duration::MAX),
            });
            let name = host
                .create("CounterThing", json!({}))
                .await
                .expect("created");
            assert!(host.get(&name).expect("state")["cullAt"].is_number());
            assert_eq!(host.cull_idle().await, Vec::<String>::new());
            assert_eq!(destroyed.load(Ordering::SeqCst), 0);
        })
    }

    #[test]
    fn manifest_lists_instances_only_when_authorized_and_serving() {
        run(async {
            let (host, _) = host(HostLimits::default());
            host.create("CounterThing", json!({}))
                .await
                .expect("created");
            let manifest = host.manifest(true);
            assert!(manifest["id"]
                .as_str()
                .expect("id")
                .starts_with("rust-host-"));
            assert_eq!(manifest["id"].as_str().expect("id").len(), 10 + 32);
            assert_eq!(manifest["types"]["CounterThing"]["available"], json!(true));
            assert!(manifest.get("instances").is_none());
            host.set_serving(42, "http://127.0.0.1:2000".into());
            let manifest = host.manifest(true);
            assert_eq!(manifest["instances"], json!(["counterThing1"]));
            assert_eq!(manifest["process"]["pid"], json!(42));
            assert!(host.manifest(false).get("instances").is_none());
        })
    }

    #[test]
    fn idleness_counts_from_the_last_touch() {
        let (host, _) = host(HostLimits::default());
        std::thread::sleep(Duration::from_millis(20));
        assert!(host.idle_for() >= Duration::from_millis(20));
        host.touch();
        assert!(host.idle_for() < Duration::from_millis(20));
    }

    #[test]
    fn only_the_local_environ_exists() {
        let (host, _) = host(HostLimits::default());
        assert!(host.start_environ("local").is_ok());
        assert_eq!(host.stop_environ("local"), Ok(Value::Null));
        assert_eq!(
            host.start_environ("docker"),
            Err(HostError::UnknownEnviron("docker".into()))
        );
    }
}

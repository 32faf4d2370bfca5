//! `NodeContext`: a context that runs JavaScript in a `node` (18 or later) worker
//! process (one per instance), built from the language-neutral [`crate::worker`]
//! layer and the embedded script `worker.js` (PROTOCOL.md section 8).
//!
//! Code runs in V8's REPL mode, as in a browser console: a persistent global scope
//! where `let`/`const` can be declared again, top-level `await`, and the value of
//! the last expression (a Promise is awaited). Values are packed as section 6 says;
//! choices made here: `BigInt`s beyond ±(2^53 − 1) are decimal strings (as Python's
//! large integers are), `Map` is an object, `Set` and typed arrays are arrays, `Date`
//! an ISO 8601 string, `undefined` (as the last value) no value; an array of plain
//! objects with the same keys is a `table`; anything else is `{"type": "<constructor
//! name>", "data": "<util.inspect form>"}`. Error columns are 0-based, as Python's.
//!
//! Everything below [`Spawner`] mirrors `python/mod.rs` (see ARCHITECTURE.md): only
//! the names in messages and the interrupt message differ.

use crate::cgroup::{self, ContextCgroup};
use crate::pool::WorkerPool;
use crate::worker::{
    output_events, Answer, EventHandler, ExitReport, ReplyError, Worker, WorkerCommand, WorkerError,
};
use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use stencila_host::{BoxFuture, EventSink, HostError, Instance, InstanceType};

/// The worker script, run with `node -e`.
const WORKER_SCRIPT: &str = include_str!("worker.js");

/// How long a new worker has to start and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the one-off version check may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// The oldest Node.js the worker script supports (V8's REPL mode through the
/// inspector, `connectToMainThread`).
const MINIMUM_MAJOR: u32 = 18;

/// How the worker's error message for an interrupted execute starts (`worker.js`).
const INTERRUPTED: &str = "Interrupted:";

/// What the CLI decides about Node.js, validated.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The `node` program to run: a path, or a name looked up on `PATH`.
    pub program: PathBuf,
    /// The default limit on one `execute`; `None` means no limit.
    pub execute_timeout: Option<Duration>,
    /// How many started workers wait for new instances (0: each starts cold).
    pub pool_size: usize,
    /// A table larger than this stays in the worker and is answered with a pointer.
    pub max_inline: crate::InlineLimit,
}

/// Runs `program -e script` to completion (bounded) and returns its stdout.
fn probe(program: &Path, script: &str) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(["-e", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| error.to_string())?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    // Only run once at startup, so a short polling loop is simpler than a thread.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "it did not finish within {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Err(error) => return Err(error.to_string()),
        }
    };
    let mut output = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut output)
            .map_err(|error| error.to_string())?;
    }
    if !status.success() {
        return Err(format!("it {}", ExitReport::from_status(status)));
    }
    Ok(output)
}

/// The `NodeContext` type: creates instances, each with its own worker process.
pub struct NodeContextType {
    spawner: Arc<Spawner>,
    /// `Ok(version)` when `node` ran at `new`, else why not (no host paths).
    availability: Result<String, String>,
}

impl NodeContextType {
    /// Checks once that `node` runs and is recent enough; the result is what
    /// [`InstanceType::available`] reports.
    pub fn new(config: NodeConfig) -> Self {
        let availability = check_program(&config.program);
        if let Err(reason) = &availability {
            log::info!("{reason}");
        }
        let version = availability.clone().unwrap_or_default();
        let pool = WorkerPool::new(worker_command(&config), config.pool_size);
        NodeContextType {
            spawner: Arc::new(Spawner {
                config,
                version,
                pool,
            }),
            availability,
        }
    }

    /// Why the type is unavailable, when it is (for the manifest's `reason`).
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.availability.as_ref().err().map(String::as_str)
    }

    /// Fills the pool of ready workers in the background. Call it on the runtime that
    /// will serve the instances (their pipes belong to it); does nothing when Node.js
    /// is unavailable or there is no runtime.
    pub fn warm(&self) {
        if self.availability.is_ok() {
            self.spawner.pool.refill();
        }
    }
}

/// The command that starts a worker: the embedded script, the inline limit (rows,
/// bytes) and the host's pid, last (the worker ends when its host does).
fn worker_command(config: &NodeConfig) -> WorkerCommand {
    WorkerCommand {
        program: config.program.clone(),
        args: vec![
            OsString::from("-e"),
            OsString::from(WORKER_SCRIPT),
            OsString::from(config.max_inline.rows.to_string()),
            OsString::from(config.max_inline.bytes.to_string()),
            OsString::from(std::process::id().to_string()),
        ],
        ready_timeout: READY_TIMEOUT,
    }
}

/// The program's file name, for messages: never the directories of a host path.
fn program_name(program: &Path) -> String {
    program
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "node".into())
}

fn unavailable(program: &Path, reason: &str) -> String {
    format!(
        "NodeContext is not available: could not start {} ({reason}); install Node.js {MINIMUM_MAJOR} or later or set STENCILA_NODE",
        program_name(program)
    )
}

/// The version `node` reports (`20.11.1`), when it is recent enough.
fn check_program(program: &Path) -> Result<String, String> {
    let output = probe(program, "process.stdout.write(process.versions.node)")
        .map_err(|reason| unavailable(program, &reason))?;
    let version = output.trim().to_string();
    let major = version
        .split('.')
        .next()
        .and_then(|part| part.parse::<u32>().ok());
    match major {
        None => Err(unavailable(
            program,
            &format!("it did not report a Node.js version: {version:?}"),
        )),
        Some(major) if major < MINIMUM_MAJOR => Err(unavailable(
            program,
            &format!("it is Node.js {version}; {MINIMUM_MAJOR} or later is needed"),
        )),
        Some(_) => Ok(version),
    }
}

impl InstanceType for NodeContextType {
    fn name(&self) -> &str {
        "NodeContext"
    }

    fn available(&self) -> bool {
        self.availability.is_ok()
    }

    fn create(&self, _options: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>> {
        // Options are accepted and ignored: NodeContext has none yet.
        Box::pin(async move {
            if let Err(reason) = &self.availability {
                return Err(HostError::Unavailable(reason.clone()));
            }
            let context = NodeContext::start(self.spawner.clone()).await?;
            Ok(Arc::new(context) as Arc<dyn Instance>)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.spawner.pool.close())
    }
}

/// Starts workers for one type's instances: from the pool when it has one ready.
struct Spawner {
    config: NodeConfig,
    version: String,
    pool: Arc<WorkerPool>,
}

impl Spawner {
    async fn spawn(&self) -> Result<Worker, HostError> {
        if let Some(worker) = self.pool.take() {
            return Ok(worker);
        }
        self.pool.spawn_cold().await.map_err(|error| match error {
            WorkerError::Spawn(reason) => {
                HostError::Unavailable(unavailable(&self.config.program, &reason.to_string()))
            }
            other => HostError::Internal(format!("the Node.js worker did not start: {other}")),
        })
    }
}

/// Why a worker's namespace was lost, for the warning on the next `execute`.
#[derive(Debug, Clone, Copy)]
enum Loss {
    Died,
    KilledOnTimeout,
}

impl Loss {
    fn warning(self) -> &'static str {
        match self {
            Loss::Died => {
                "the Node.js worker was restarted after it died; variables from before are lost"
            }
            Loss::KilledOnTimeout => {
                "the Node.js worker was restarted after it was killed on a timeout; variables from before are lost"
            }
        }
    }
}

/// What one instance's calls share; behind an async lock, so calls run one at a time.
struct Session {
    worker: Option<Arc<Worker>>,
    /// Set when the worker was lost; reported by the next `execute`.
    lost: Option<Loss>,
}

/// An instance of `NodeContext`: a persistent namespace in a worker process.
pub struct NodeContext {
    spawner: Arc<Spawner>,
    session: tokio::sync::Mutex<Session>,
    /// The current worker, reachable without waiting for a running call (for
    /// `interrupt`, `state` and `destroy`). Never held across an await.
    current: StdMutex<Option<Arc<Worker>>>,
    destroyed: AtomicBool,
    /// The cgroup of everything this context's workers start, where the machine
    /// allows one (see [`crate::cgroup`]).
    cgroup: Option<ContextCgroup>,
}

fn lock<T>(mutex: &StdMutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the Option half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An `execute` result carrying only an error message.
fn error_result(message: String) -> Value {
    json!({"messages": [{"type": "error", "message": message}], "value": null})
}

/// Turns a worker's error reply into a host error: its own failures are internal,
/// everything else is the caller's argument.
fn reply_error(error: ReplyError) -> HostError {
    if error.internal {
        HostError::Internal(error.message)
    } else {
        HostError::BadArgument(error.message)
    }
}

fn seconds(duration: Duration) -> String {
    format!("{}", duration.as_secs_f64())
}

/// The `timeout` of an `execute`, in seconds; `None` when absent or null. One too
/// large for a `Duration` is no limit in practice.
fn timeout_arg(arg: &Value) -> Result<Option<Duration>, HostError> {
    match arg.get("timeout") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_f64() {
            Some(secs) if secs > 0.0 => Ok(Some(
                Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
            )),
            _ => Err(HostError::BadArgument(
                "`timeout` must be a positive number of seconds".into(),
            )),
        },
    }
}

/// The `name` argument of `get` and `set`.
fn name_arg<'a>(arg: &'a Value, method: &str) -> Result<&'a str, HostError> {
    arg.get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| HostError::BadArgument(format!("{method} needs `name`, a string")))
}

impl NodeContext {
    async fn start(spawner: Arc<Spawner>) -> Result<Self, HostError> {
        let worker = Arc::new(spawner.spawn().await?);
        let cgroup = cgroup::for_context();
        if let Some(cgroup) = &cgroup {
            cgroup.add(worker.pid());
        }
        Ok(NodeContext {
            cgroup,
            spawner,
            session: tokio::sync::Mutex::new(Session {
                worker: Some(worker.clone()),
                lost: None,
            }),
            current: StdMutex::new(Some(worker)),
            destroyed: AtomicBool::new(false),
        })
    }

    /// The session's worker, starting a fresh one if the last was lost.
    async fn worker(&self, session: &mut Session) -> Result<Arc<Worker>, HostError> {
        let gone = || HostError::Unavailable("this NodeContext has been destroyed".into());
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(gone());
        }
        if let Some(worker) = &session.worker {
            return Ok(worker.clone());
        }
        let worker = Arc::new(self.spawner.spawn().await?);
        if let Some(cgroup) = &self.cgroup {
            cgroup.add(worker.pid());
        }
        *lock(&self.current) = Some(worker.clone());
        if self.destroyed.load(Ordering::SeqCst) {
            // `destroy` ran while the worker started and did not see it.
            lock(&self.current).take();
            worker.kill().await;
            return Err(gone());
        }
        session.worker = Some(worker.clone());
        Ok(worker)
    }

    /// Forgets a worker that failed, making sure it is gone and reaped.
    async fn lose(&self, session: &mut Session, loss: Loss) {
        if let Some(worker) = session.worker.take() {
            {
                let mut current = lock(&self.current);
                if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &worker)) {
                    current.take();
                }
            }
            worker.kill().await;
        }
        // What it started in other sessions goes with it.
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill();
        }
        session.lost = Some(loss);
    }

    /// Calls `method` on the session's worker. A worker found gone before the call
    /// reached it (it died while idle) is replaced and the call made once more, so
    /// the call runs; the loss is left in `session.lost` for the next warning.
    async fn call_worker(
        &self,
        session: &mut Session,
        method: &str,
        args: &Value,
        timeout: Option<Duration>,
        events: Option<EventHandler>,
    ) -> Result<Result<Answer, WorkerError>, HostError> {
        let mut retried = false;
        loop {
            let worker = self.worker(session).await?;
            let answer = match worker.submit_with_events(method, args, timeout, events.clone()) {
                Ok(pending) => pending.await,
                Err(error) => Err(error),
            };
            match answer {
                Err(WorkerError::Gone(report)) if !retried => {
                    log::info!(
                        "the Node.js worker had {report} before the call; retrying on a fresh one"
                    );
                    retried = true;
                    self.lose(session, Loss::Died).await;
                }
                answer => return Ok(answer),
            }
        }
    }

    async fn execute(&self, arg: Value) -> Result<Value, HostError> {
        self.execute_with(arg, None).await
    }

    /// `execute`, with the worker's live output passed to `events`.
    async fn execute_with(
        &self,
        arg: Value,
        events: Option<EventHandler>,
    ) -> Result<Value, HostError> {
        let (args, timeout) = match arg {
            Value::String(code) => (json!({ "code": code }), None),
            Value::Object(_) if arg.get("code").is_some_and(Value::is_string) => {
                let timeout = timeout_arg(&arg)?;
                (arg, timeout)
            }
            _ => {
                return Err(HostError::BadArgument(
                    "execute needs `code`, a string (or the code as a bare JSON string)".into(),
                ))
            }
        };
        let timeout = timeout.or(self.spawner.config.execute_timeout);
        let mut session = self.session.lock().await;
        let answer = self
            .call_worker(&mut session, "execute", &args, timeout, events)
            .await?;
        // An earlier loss (or one found by this call before its code ran) is reported
        // by the first `execute` that runs on the fresh worker.
        let earlier = session.lost.take();
        let mut result = match answer {
            Ok(Answer {
                outcome: Ok(mut result),
                interrupted_on_timeout,
            }) => {
                if interrupted_on_timeout {
                    if let Some(limit) = timeout {
                        mark_timeout(&mut result, limit);
                    }
                }
                result
            }
            Ok(Answer {
                outcome: Err(error),
                ..
            }) => {
                session.lost = earlier;
                return Err(reply_error(error));
            }
            Err(WorkerError::Unresponsive { .. }) => {
                self.lose(&mut session, Loss::KilledOnTimeout).await;
                let limit = timeout.map(seconds).unwrap_or_default();
                error_result(format!(
                    "TimeoutError: execution exceeded {limit} s and the Node.js worker did not stop when interrupted, so it was killed; its variables are lost"
                ))
            }
            Err(_) if self.destroyed.load(Ordering::SeqCst) => {
                // Deleted while the call ran: that ended the worker, not a fault.
                return Err(HostError::Unavailable(
                    "this NodeContext was deleted while the call ran".into(),
                ));
            }
            Err(error) => {
                self.lose(&mut session, Loss::Died).await;
                error_result(format!(
                    "the Node.js worker died: {error}; its variables are lost"
                ))
            }
        };
        if let Some(loss) = earlier {
            prepend_warning(&mut result, loss.warning());
        }
        Ok(result)
    }

    /// `list`, `get` and `set`: a call whose result is the worker's result.
    async fn plain(&self, method: &str, args: Value) -> Result<Value, HostError> {
        let mut session = self.session.lock().await;
        // Packing a value can run user code (getters), so these calls get the host's
        // execute timeout too.
        let timeout = self.spawner.config.execute_timeout;
        match self
            .call_worker(&mut session, method, &args, timeout, None)
            .await?
        {
            Ok(Answer { outcome, .. }) => outcome.map_err(reply_error),
            Err(WorkerError::Unresponsive { .. }) => {
                self.lose(&mut session, Loss::KilledOnTimeout).await;
                Err(HostError::Internal(format!(
                    "{method} exceeded the execute timeout and the Node.js worker did not stop when interrupted, so it was killed; its variables are lost"
                )))
            }
            Err(_) if self.destroyed.load(Ordering::SeqCst) => {
                // Deleted while the call ran: that ended the worker, not a fault.
                Err(HostError::Unavailable(
                    "this NodeContext was deleted while the call ran".into(),
                ))
            }
            Err(error) => {
                self.lose(&mut session, Loss::Died).await;
                Err(HostError::Internal(format!(
                    "the Node.js worker died: {error}; its variables are lost"
                )))
            }
        }
    }

    async fn restart(&self) -> Result<Value, HostError> {
        // Kill first, then queue: a call stuck in user code (even in C, where SIGINT
        // cannot reach it) holds the session, and ending its worker is what frees it.
        let current = lock(&self.current).take();
        if let Some(worker) = current {
            worker.kill().await;
        }
        let mut session = self.session.lock().await;
        if let Some(worker) = session.worker.take() {
            lock(&self.current).take();
            worker.kill().await;
        }
        // The caller asked for a fresh namespace, so there is nothing to warn about.
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill();
        }
        session.lost = None;
        self.worker(&mut session).await?;
        Ok(Value::Null)
    }

    fn interrupt(&self) {
        let worker = lock(&self.current).clone();
        if let Some(worker) = worker {
            worker.interrupt();
        }
    }
}

fn prepend_warning(result: &mut Value, warning: &str) {
    if let Some(messages) = result.get_mut("messages").and_then(Value::as_array_mut) {
        messages.insert(0, json!({"type": "warning", "message": warning}));
    }
}

/// Rewrites the interrupt error of an execute interrupted on its timeout.
fn mark_timeout(result: &mut Value, limit: Duration) {
    let Some(messages) = result.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    for message in messages.iter_mut().rev() {
        let is_interrupt = message.get("type") == Some(&json!("error"))
            && message
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|text| text.starts_with(INTERRUPTED));
        if is_interrupt {
            message["message"] = json!(format!(
                "TimeoutError: execution exceeded {} s and was interrupted",
                seconds(limit)
            ));
            return;
        }
    }
}

impl Instance for NodeContext {
    fn call<'a>(&'a self, method: &'a str, arg: Value) -> BoxFuture<'a, Result<Value, HostError>> {
        Box::pin(async move {
            match method {
                "execute" => self.execute(arg).await,
                "list" => self.plain("list", json!({})).await,
                "fetch" => {
                    let arg = crate::pointer::FetchArg::parse(&arg)?;
                    self.plain("fetch", arg.to_value()).await
                }
                "get" => {
                    let name = name_arg(&arg, "get")?;
                    self.plain("get", json!({ "name": name })).await
                }
                "set" => {
                    let name = name_arg(&arg, "set")?;
                    let Some(value) = arg.get("value") else {
                        return Err(HostError::BadArgument(
                            "set needs `value`, a packed value such as {\"type\": \"integer\", \"data\": 1}"
                                .into(),
                        ));
                    };
                    self.plain("set", json!({ "name": name, "value": value }))
                        .await
                }
                "restart" => self.restart().await,
                // Never waits for the session: it must reach a running execute.
                "interrupt" => {
                    self.interrupt();
                    Ok(Value::Null)
                }
                _ => Err(HostError::UnknownMethod(method.to_string())),
            }
        })
    }

    fn execute_live<'a>(
        &'a self,
        arg: Value,
        sink: EventSink,
    ) -> BoxFuture<'a, Result<Value, HostError>> {
        Box::pin(async move { self.execute_with(arg, Some(output_events(sink))).await })
    }

    fn state(&self) -> Value {
        let pid = lock(&self.current).as_ref().map(|worker| worker.pid());
        let mut state = Map::new();
        state.insert("pid".into(), json!(pid));
        state.insert(
            "interpreter".into(),
            json!(format!("Node.js {}", self.spawner.version)),
        );
        Value::Object(state)
    }

    fn destroy(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.destroyed.store(true, Ordering::SeqCst);
            // Not through the session: a running execute must not delay the kill.
            let worker = lock(&self.current).take();
            if let Some(worker) = worker {
                worker.kill().await;
            }
            if let Some(cgroup) = &self.cgroup {
                cgroup.remove().await;
            }
        })
    }
}

#[cfg(test)]
mod tests;

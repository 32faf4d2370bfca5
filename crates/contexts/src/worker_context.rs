//! The instance logic every worker-process context type shares (`PythonContext`,
//! `NodeContext`): one worker per instance from the type's pool, calls one at a time
//! through a session, a worker lost to a crash or a timeout kill replaced on the next
//! call (which warns that the variables are gone), `interrupt` and `destroy` that do
//! not wait for a running call, and the context's cgroup.
//!
//! A context type is the [`crate::worker`] layer, a worker script and a [`Language`]:
//! the names its messages use and the start of its worker's interrupt error. Its
//! module builds a [`WorkerContextType`] from its config (the [`WorkerCommand`] and the
//! version check are its own) and names the two generic types, e.g.
//! `pub type PythonContext = WorkerContext<Python>`.
//!
//! The small argument and result helpers ([`timeout_arg`], [`prepend_warning`],
//! [`mark_timeout_in`], ...) are shared with `JupyterContext` too.

use crate::cgroup::{self, ContextCgroup};
use crate::legacy::LegacyPrimitives;
use crate::pool::WorkerPool;
use crate::worker::{
    output_events, Answer, EventHandler, ExitReport, ReplyError, Worker, WorkerCommand, WorkerError,
};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use stencila_host::{BoxFuture, EventSink, ExecuteResult, HostError, Instance, InstanceType};

/// How long a one-off program check ([`probe`]) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `program args...` to completion (bounded) and returns its stdout: the
/// one-off checks of a type's program (its version, its real path).
pub(crate) fn probe(program: &Path, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
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

/// What sets one worker-process context type apart from another, besides its script
/// and its config: the names in its messages and how its worker reports an interrupt.
pub trait Language: Send + Sync + Sized + 'static {
    /// The language as messages name it: "the {LABEL} worker died", and the state's
    /// `interpreter` ("{LABEL} {version}"). E.g. `Python`, `Node.js`.
    const LABEL: &'static str;
    /// The type's name: `PythonContext`.
    const TYPE_NAME: &'static str;
    /// How the worker's error message for an interrupted execute starts; an execute
    /// interrupted on its timeout has that message rewritten as a `TimeoutError`.
    const INTERRUPTED: &'static str;

    /// The reason the type is unavailable when `program` could not be started
    /// (`reason`); names no host directories.
    fn unavailable(program: &Path, reason: &str) -> String;

    /// The 2018 clients' primitives (PROTOCOL.md section 13), for a type that serves
    /// those methods; `None` (the default) leaves them unknown methods.
    fn legacy(_context: &WorkerContext<Self>) -> Option<&dyn LegacyPrimitives> {
        None
    }
}

/// A worker-process context type: creates instances, each with its own worker
/// process. `PythonContextType` and `NodeContextType` are this type.
pub struct WorkerContextType<L: Language> {
    spawner: Arc<Spawner<L>>,
    /// `Ok(version)` when the program ran at `new`, else why not (no host paths).
    availability: Result<String, String>,
}

impl<L: Language> WorkerContextType<L> {
    /// The type whose program check gave `availability` (`Ok(version)` or the
    /// reason, which is logged); its workers start with `command` (whose program
    /// messages name), `pool_size` of them wait ready, and `execute_timeout` is the
    /// default limit on one `execute` (and on `list`, `get`, `set`, `fetch`).
    pub(crate) fn with(
        availability: Result<String, String>,
        command: WorkerCommand,
        pool_size: usize,
        execute_timeout: Option<Duration>,
    ) -> Self {
        if let Err(reason) = &availability {
            log::info!("{reason}");
        }
        let version = availability.clone().unwrap_or_default();
        let program = command.program.clone();
        let pool = WorkerPool::new(command, pool_size);
        WorkerContextType {
            spawner: Arc::new(Spawner {
                program,
                execute_timeout,
                version,
                pool,
                language: PhantomData,
            }),
            availability,
        }
    }

    /// Why the type is unavailable, when it is (for the manifest's `reason`).
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.availability.as_ref().err().map(String::as_str)
    }

    /// Fills the pool of ready workers in the background. Call it on the runtime that
    /// will serve the instances (their pipes belong to it); does nothing when the
    /// type is unavailable or there is no runtime.
    pub fn warm(&self) {
        if self.availability.is_ok() {
            self.spawner.pool.refill();
        }
    }

    /// How many pooled workers are ready now.
    pub fn pooled(&self) -> usize {
        self.spawner.pool.ready()
    }

    /// Has `zygote` fork this type's workers (pooled or not), falling back on
    /// spawning them when it cannot.
    pub(crate) fn fork_with(&self, zygote: Arc<crate::worker::Zygote>) {
        self.spawner.pool.set_zygote(zygote);
    }
}

impl<L: Language> InstanceType for WorkerContextType<L> {
    fn name(&self) -> &str {
        L::TYPE_NAME
    }

    fn available(&self) -> bool {
        self.availability.is_ok()
    }

    fn create(&self, _options: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>> {
        // Options are accepted and ignored: these types have none yet.
        Box::pin(async move {
            if let Err(reason) = &self.availability {
                return Err(HostError::Unavailable(reason.clone()));
            }
            let context = WorkerContext::start(self.spawner.clone()).await?;
            Ok(Arc::new(context) as Arc<dyn Instance>)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.spawner.pool.close())
    }
}

/// Starts workers for one type's instances: from the pool when it has one ready.
struct Spawner<L> {
    /// The worker program, for messages.
    program: PathBuf,
    /// The default limit on one `execute`; `None` means no limit.
    execute_timeout: Option<Duration>,
    version: String,
    pool: Arc<WorkerPool>,
    language: PhantomData<L>,
}

impl<L: Language> Spawner<L> {
    async fn spawn(&self) -> Result<Worker, HostError> {
        if let Some(worker) = self.pool.take() {
            return Ok(worker);
        }
        self.pool.spawn_cold().await.map_err(|error| match error {
            WorkerError::Spawn(reason) => {
                HostError::Unavailable(L::unavailable(&self.program, &reason.to_string()))
            }
            other => HostError::Internal(format!("the {} worker did not start: {other}", L::LABEL)),
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
    fn warning(self, label: &str) -> String {
        match self {
            Loss::Died => format!(
                "the {label} worker was restarted after it died; variables from before are lost"
            ),
            Loss::KilledOnTimeout => format!(
                "the {label} worker was restarted after it was killed on a timeout; variables from before are lost"
            ),
        }
    }
}

/// What one instance's calls share; behind an async lock, so calls run one at a time.
struct Session {
    worker: Option<Arc<Worker>>,
    /// Set when the worker was lost; reported by the next `execute`.
    lost: Option<Loss>,
}

/// An instance of a worker-process context type: a persistent namespace in a worker
/// process. `PythonContext` and `NodeContext` are this type.
pub struct WorkerContext<L: Language> {
    spawner: Arc<Spawner<L>>,
    session: tokio::sync::Mutex<Session>,
    /// The current worker, reachable without waiting for a running call (for
    /// `interrupt`, `state` and `destroy`). Never held across an await.
    current: StdMutex<Option<Arc<Worker>>>,
    destroyed: AtomicBool,
    /// The cgroup of everything this context's workers start, where the machine
    /// allows one (see [`crate::cgroup`]).
    cgroup: Option<ContextCgroup>,
}

/// Locks a mutex whose holders cannot leave its contents half-written, so a panic
/// while holding it (a poisoned lock) changes nothing.
pub(crate) fn lock<T>(mutex: &StdMutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An `execute` result carrying only an error message.
pub(crate) fn error_result(message: String) -> Value {
    json!({"messages": [{"type": "error", "message": message}], "value": null})
}

/// The error for a worker result that is not what `method` answers.
fn malformed(label: &str, method: &str, error: serde_json::Error) -> HostError {
    HostError::Internal(format!(
        "the {label} worker's answer to {method} could not be read: {error}"
    ))
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

/// A duration in seconds as messages write it (`0.5`, `2`).
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{}", duration.as_secs_f64())
}

/// The `timeout` of an `execute`, in seconds; `None` when absent or null. One too
/// large for a `Duration` is no limit in practice.
pub(crate) fn timeout_arg(arg: &Value) -> Result<Option<Duration>, HostError> {
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

/// Puts a warning first among an `execute` result's messages.
pub(crate) fn prepend_warning(messages: &mut Vec<Value>, warning: &str) {
    messages.insert(0, json!({"type": "warning", "message": warning}));
}

/// Rewrites the last error message starting with `interrupted` (the interrupt of an
/// execute interrupted on its timeout, `limit`) as the timeout's error. False when
/// there is none.
pub(crate) fn mark_timeout_in(messages: &mut [Value], interrupted: &str, limit: Duration) -> bool {
    let interrupt = messages.iter_mut().rev().find(|message| {
        message.get("type") == Some(&json!("error"))
            && message
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|text| text.starts_with(interrupted))
    });
    match interrupt {
        Some(message) => {
            message["message"] = json!(timeout_message(limit));
            true
        }
        None => false,
    }
}

/// The error of an execute interrupted on its timeout `limit`.
pub(crate) fn timeout_message(limit: Duration) -> String {
    format!(
        "TimeoutError: execution exceeded {} s and was interrupted",
        seconds(limit)
    )
}

impl<L: Language> WorkerContext<L> {
    async fn start(spawner: Arc<Spawner<L>>) -> Result<Self, HostError> {
        let worker = Arc::new(spawner.spawn().await?);
        let cgroup = cgroup::for_context();
        if let Some(cgroup) = &cgroup {
            cgroup.add(worker.pid());
        }
        Ok(WorkerContext {
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

    /// The session's worker, starting a fresh one if the last was lost or has ended
    /// since the last call (killed while idle, say by the OOM killer).
    async fn worker(&self, session: &mut Session) -> Result<Arc<Worker>, HostError> {
        let gone = || HostError::Unavailable(format!("this {} has been destroyed", L::TYPE_NAME));
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(gone());
        }
        if let Some(worker) = &session.worker {
            match worker.exited() {
                None => return Ok(worker.clone()),
                Some(report) => {
                    log::info!(
                        "the {} worker {report} while idle; starting a fresh one",
                        L::LABEL
                    );
                    self.lose(session, Loss::Died).await;
                }
            }
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
                        "the {} worker had {report} before the call; retrying on a fresh one",
                        L::LABEL
                    );
                    retried = true;
                    self.lose(session, Loss::Died).await;
                }
                answer => return Ok(answer),
            }
        }
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

    /// The error of a call whose context was deleted while it ran: that ended the
    /// worker, not a fault.
    fn deleted_while_running() -> HostError {
        HostError::Unavailable(format!(
            "this {} was deleted while the call ran",
            L::TYPE_NAME
        ))
    }

    /// `execute` (`{code, timeout?, inputs?}` or the code as a bare string), as one
    /// tree (for the 2018 methods, which look into the value).
    pub(crate) async fn execute(&self, arg: Value) -> Result<Value, HostError> {
        self.execute_with(arg, None)
            .await?
            .into_value()
            .map_err(|error| malformed(L::LABEL, "execute", error))
    }

    /// `execute`, with the worker's live output passed to `events`.
    async fn execute_with(
        &self,
        arg: Value,
        events: Option<EventHandler>,
    ) -> Result<ExecuteResult, HostError> {
        let label = L::LABEL;
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
        let timeout = timeout.or(self.spawner.execute_timeout);
        let mut session = self.session.lock().await;
        let answer = self
            .call_worker(&mut session, "execute", &args, timeout, events)
            .await?;
        // An earlier loss (or one found by this call before its code ran) is reported
        // by the first `execute` that runs on the fresh worker.
        let earlier = session.lost.take();
        let mut result = match answer {
            Ok(Answer {
                outcome: Ok(result),
                interrupted_on_timeout,
            }) => {
                // The value stays the worker's text: it goes to the client as it is.
                let mut result = match result.execute_result() {
                    Ok(result) => result,
                    // Nothing ran on a fresh worker's behalf: an earlier loss is kept
                    // for the next execute, as for an error reply.
                    Err(error) => {
                        session.lost = earlier;
                        return Err(malformed(label, "execute", error));
                    }
                };
                if interrupted_on_timeout {
                    if let Some(limit) = timeout {
                        mark_timeout_in(&mut result.messages, L::INTERRUPTED, limit);
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
            Err(error @ WorkerError::ReplyTooLarge { .. }) => ExecuteResult::error(format!(
                "the {label} worker could not return the result: {error}; its variables are kept"
            )),
            Err(WorkerError::Unresponsive { .. }) => {
                self.lose(&mut session, Loss::KilledOnTimeout).await;
                let limit = timeout.map(seconds).unwrap_or_default();
                ExecuteResult::error(format!(
                    "TimeoutError: execution exceeded {limit} s and the {label} worker did not stop when interrupted, so it was killed; its variables are lost"
                ))
            }
            Err(_) if self.destroyed.load(Ordering::SeqCst) => {
                return Err(Self::deleted_while_running());
            }
            Err(error) => {
                self.lose(&mut session, Loss::Died).await;
                ExecuteResult::error(format!(
                    "the {label} worker died: {error}; its variables are lost"
                ))
            }
        };
        if let Some(loss) = earlier {
            prepend_warning(&mut result.messages, &loss.warning(label));
        }
        Ok(result)
    }

    /// `list`, `get`, `set`, `fetch` (and the 2018 primitives): a call whose result is
    /// the worker's result.
    pub(crate) async fn plain(&self, method: &str, args: Value) -> Result<Value, HostError> {
        let label = L::LABEL;
        let mut session = self.session.lock().await;
        // Packing a value can run user code (`__repr__`, getters), so these calls get
        // the host's execute timeout too.
        let timeout = self.spawner.execute_timeout;
        match self
            .call_worker(&mut session, method, &args, timeout, None)
            .await?
        {
            Ok(Answer { outcome, .. }) => outcome
                .map_err(reply_error)?
                .into_value()
                .map_err(|error| malformed(label, method, error)),
            Err(error @ WorkerError::ReplyTooLarge { .. }) => Err(HostError::Internal(format!(
                "the {label} worker could not return the result of {method}: {error}; its variables are kept"
            ))),
            Err(WorkerError::Unresponsive { .. }) => {
                self.lose(&mut session, Loss::KilledOnTimeout).await;
                Err(HostError::Internal(format!(
                    "{method} exceeded the execute timeout and the {label} worker did not stop when interrupted, so it was killed; its variables are lost"
                )))
            }
            Err(_) if self.destroyed.load(Ordering::SeqCst) => Err(Self::deleted_while_running()),
            Err(error) => {
                self.lose(&mut session, Loss::Died).await;
                Err(HostError::Internal(format!(
                    "the {label} worker died: {error}; its variables are lost"
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
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill();
        }
        // The caller asked for a fresh namespace, so there is nothing to warn about.
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

impl<L: Language> Instance for WorkerContext<L> {
    fn call<'a>(&'a self, method: &'a str, arg: Value) -> BoxFuture<'a, Result<Value, HostError>> {
        Box::pin(async move {
            // The 2018 clients' methods (PROTOCOL.md section 13), cell executes included.
            if let Some(legacy) = L::legacy(self) {
                if crate::legacy::handles(method, &arg) {
                    return crate::legacy::call(legacy, method, arg).await;
                }
            }
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
    ) -> BoxFuture<'a, Result<ExecuteResult, HostError>> {
        Box::pin(async move {
            if L::legacy(self).is_some() && crate::legacy::handles("execute", &arg) {
                // A 2018 cell execute: its answer is replayed as events when it ends.
                return self
                    .call("execute", arg)
                    .await
                    .map(ExecuteResult::from_value);
            }
            self.execute_with(arg, Some(output_events(sink))).await
        })
    }

    fn state(&self) -> Value {
        let pid = lock(&self.current).as_ref().map(|worker| worker.pid());
        let mut state = Map::new();
        state.insert("pid".into(), json!(pid));
        state.insert(
            "interpreter".into(),
            json!(format!("{} {}", L::LABEL, self.spawner.version)),
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
mod tests {
    use super::*;

    #[test]
    fn mark_timeout_in_rewrites_the_last_interrupt_only() {
        let mut messages = vec![
            json!({"type": "error", "message": "Interrupted: earlier"}),
            json!({"type": "warning", "message": "Interrupted: not an error"}),
            json!({"type": "error", "message": "Interrupted: execution was interrupted"}),
        ];
        assert!(mark_timeout_in(
            &mut messages,
            "Interrupted:",
            Duration::from_millis(500)
        ));
        assert_eq!(messages[0]["message"], "Interrupted: earlier");
        assert_eq!(messages[1]["message"], "Interrupted: not an error");
        assert_eq!(
            messages[2]["message"],
            "TimeoutError: execution exceeded 0.5 s and was interrupted"
        );
        let mut other = vec![json!({"type": "error", "message": "KeyboardInterrupt"})];
        assert!(!mark_timeout_in(
            &mut other,
            "Interrupted:",
            Duration::from_secs(1)
        ));
        assert_eq!(other[0]["message"], "KeyboardInterrupt");
    }

    #[test]
    fn timeout_arg_takes_positive_seconds_or_nothing() {
        assert_eq!(timeout_arg(&json!({})).ok(), Some(None));
        assert_eq!(timeout_arg(&json!({"timeout": null})).ok(), Some(None));
        assert_eq!(
            timeout_arg(&json!({"timeout": 1.5})).ok(),
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(
            timeout_arg(&json!({"timeout": 1e300})).ok(),
            Some(Some(Duration::MAX))
        );
        for bad in [json!(0), json!(-1), json!("1")] {
            assert!(matches!(
                timeout_arg(&json!({ "timeout": bad })),
                Err(HostError::BadArgument(text)) if text == "`timeout` must be a positive number of seconds"
            ));
        }
    }

    #[test]
    fn a_loss_warning_names_the_language() {
        assert_eq!(
            Loss::Died.warning("Node.js"),
            "the Node.js worker was restarted after it died; variables from before are lost"
        );
        assert_eq!(
            Loss::KilledOnTimeout.warning("Python"),
            "the Python worker was restarted after it was killed on a timeout; variables from before are lost"
        );
    }
}

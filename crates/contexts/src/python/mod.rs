//! `PythonContext`: a context that runs Python code in a `python3` worker process
//! (one per instance), built from the language-neutral [`crate::worker`] layer and the
//! embedded worker script (the files of `worker/`, joined).
//!
//! Values cross the boundary packed (PROTOCOL.md section 6). Choices made here:
//! integers beyond ±(2^53 − 1) are sent as decimal strings (`{"type": "integer",
//! "data": "1180591620717411303424"}`, also inside arrays and objects) because JSON
//! numbers that large lose precision in most clients and in `serde_json`; sets are
//! arrays (sorted where their items allow); bytes are `{"type": "bytes", "data":
//! "<base64>", "encoding": "base64"}`; values nested deeper than 64 levels, cycles and
//! anything without a JSON form become their `repr` inside arrays and objects.

use crate::cgroup::{self, ContextCgroup};
use crate::pool::WorkerPool;
use crate::worker::{
    output_events, Answer, EventHandler, ExitReport, ReplyError, Worker, WorkerCommand,
    WorkerError, MAX_LINE,
};
use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use stencila_host::{BoxFuture, EventSink, HostError, Instance, InstanceType};

mod legacy;

/// The worker script, run as a file (see [`script_path`]), or with `-c` where that is
/// not possible.
const WORKER_SCRIPT: &str = concat!(
    include_str!("worker/setup.py"),
    include_str!("worker/capture.py"),
    include_str!("worker/values.py"),
    include_str!("worker/run.py"),
    include_str!("worker/analysis.py"),
    include_str!("worker/pointers.py"),
    include_str!("worker/serve.py"),
);

/// How long a new worker has to import its modules and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the one-off interpreter checks (`resolve_interpreter`, `new`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// The oldest Python the worker script supports (`os.memfd_create`, `ast` as used).
const MINIMUM_VERSION: (u32, u32) = (3, 8);

/// What the CLI decides about Python, validated.
#[derive(Debug, Clone)]
pub struct PythonConfig {
    /// The interpreter to run: a path, or a name looked up on `PATH`.
    pub interpreter: PathBuf,
    /// The default limit on one `execute`; `None` means no limit.
    pub execute_timeout: Option<Duration>,
    /// A limit on each worker's address space in bytes (`RLIMIT_AS`), set by the
    /// worker itself at start; exceeding it is a `MemoryError` in the user's code.
    pub worker_memory: Option<u64>,
    /// How many started workers wait for new instances (0: each starts cold).
    pub pool_size: usize,
    /// A table larger than this stays in the worker and is answered with a pointer.
    pub max_inline: crate::InlineLimit,
}

/// Runs `program -c "import sys; print(sys.executable)"` and returns the path of the
/// real interpreter, e.g. through a pyenv shim, so each worker start skips the shim.
/// `None` when the program cannot be run or does not say.
pub fn resolve_interpreter(program: &str) -> Option<PathBuf> {
    let output = probe(Path::new(program), "import sys; print(sys.executable)").ok()?;
    let path = PathBuf::from(last_line(&output));
    (!path.as_os_str().is_empty() && path.is_file()).then_some(path)
}

/// The last non-blank line of a probe's output: start-up hooks (a `sitecustomize`
/// banner) may print before the probe does.
fn last_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
}

/// Runs `interpreter -c script` to completion (bounded) and returns its stdout.
fn probe(interpreter: &Path, script: &str) -> Result<String, String> {
    let mut child = Command::new(interpreter)
        // -S: a sitecustomize that prints must not garble the answer.
        .args(["-S", "-c", script])
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

/// The `PythonContext` type: creates instances, each with its own worker process.
pub struct PythonContextType {
    spawner: Arc<Spawner>,
    /// `Ok(version)` when the interpreter ran at `new`, else why not (no host paths).
    availability: Result<String, String>,
}

impl PythonContextType {
    /// Checks once that the interpreter runs and is recent enough; the result is
    /// what [`InstanceType::available`] reports.
    pub fn new(config: PythonConfig) -> Self {
        let availability = check_interpreter(&config.interpreter);
        if let Err(reason) = &availability {
            log::info!("{reason}");
        }
        let version = availability.clone().unwrap_or_default();
        let pool = WorkerPool::new(worker_command(&config), config.pool_size);
        PythonContextType {
            spawner: Arc::new(Spawner {
                config,
                version,
                pool,
            }),
            availability,
        }
    }

    /// Fills the pool of ready workers in the background. Call it on the runtime that
    /// will serve the instances (their pipes belong to it); does nothing when Python
    /// is unavailable or there is no runtime.
    pub fn warm(&self) {
        if self.availability.is_ok() {
            self.spawner.pool.refill();
        }
    }

    /// How many pooled workers are ready now.
    pub fn pooled(&self) -> usize {
        self.spawner.pool.ready()
    }
}

/// The command that starts a worker: the embedded script, the host's pid (the worker
/// ends when its host does), the memory cap and the longest reply line the host reads
/// ([`MAX_LINE`]; the worker never sends a longer one).
///
/// `-S`: the worker runs `site` itself once it has taken the protocol pipes, so a
/// `sitecustomize` or `.pth` file that prints cannot corrupt them. The script is a file
/// rather than a `-c` argument, so `ps` shows a short command line; either way the
/// worker imports its own modules before it puts the cwd on `sys.path` for user code.
fn worker_command(config: &PythonConfig) -> WorkerCommand {
    let mut args = vec![OsString::from("-u"), OsString::from("-S")];
    match script_path() {
        Some(path) => args.push(path.into()),
        None => args.extend([OsString::from("-c"), OsString::from(WORKER_SCRIPT)]),
    }
    args.extend([
        OsString::from(std::process::id().to_string()),
        OsString::from(config.worker_memory.unwrap_or(0).to_string()),
        OsString::from(MAX_LINE.to_string()),
        OsString::from(config.max_inline.rows.to_string()),
        OsString::from(config.max_inline.bytes.to_string()),
    ]);
    WorkerCommand {
        program: config.interpreter.clone(),
        args,
        ready_timeout: READY_TIMEOUT,
    }
}

/// The worker script as a file every worker can run: an anonymous in-memory file
/// (memfd), written once per host and inherited by the workers (it is deliberately not
/// close-on-exec; the worker closes its copy first thing), which name it
/// `/proc/self/fd/N`. Nothing on disk: no directory another user could create first,
/// nothing left behind. `None` where memfds or `/proc` are missing.
fn script_path() -> Option<&'static Path> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    use std::io::Write;
    use std::os::fd::{AsRawFd, OwnedFd};

    static SCRIPT: OnceLock<Option<(File, PathBuf)>> = OnceLock::new();
    let script = SCRIPT.get_or_init(|| {
        let mut fd = memfd_create(c"stencila-python-worker", MemFdCreateFlag::empty()).ok()?;
        if fd.as_raw_fd() < 3 {
            // A host started with stdio closed: fds 0-2 are the worker's pipes.
            let above: OwnedFd = fd.try_clone().ok()?;
            fcntl(above.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).ok()?;
            fd = above;
        }
        let mut file = File::from(fd);
        file.write_all(WORKER_SCRIPT.as_bytes()).ok()?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let readable = std::fs::read(&path).ok()? == WORKER_SCRIPT.as_bytes();
        readable.then_some((file, path))
    });
    script.as_ref().map(|(_, path)| path.as_path())
}

/// The interpreter's file name, for messages: never the directories of a host path.
fn interpreter_name(interpreter: &Path) -> String {
    interpreter
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "python3".into())
}

fn unavailable(interpreter: &Path, reason: &str) -> String {
    format!(
        "PythonContext is not available: could not start {} ({reason}); install Python 3 or set STENCILA_PYTHON",
        interpreter_name(interpreter)
    )
}

fn check_interpreter(interpreter: &Path) -> Result<String, String> {
    let output = probe(
        interpreter,
        "import sys; print('%d.%d.%d' % sys.version_info[:3])",
    )
    .map_err(|reason| unavailable(interpreter, &reason))?;
    let version = last_line(&output).to_string();
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return Err(unavailable(
            interpreter,
            &format!("it did not report a Python version: {version:?}"),
        ));
    };
    if (major, minor) < MINIMUM_VERSION {
        return Err(unavailable(
            interpreter,
            &format!(
                "it is Python {version}; {}.{} or later is needed",
                MINIMUM_VERSION.0, MINIMUM_VERSION.1
            ),
        ));
    }
    Ok(version)
}

impl InstanceType for PythonContextType {
    fn name(&self) -> &str {
        "PythonContext"
    }

    fn available(&self) -> bool {
        self.availability.is_ok()
    }

    fn create(&self, _options: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>> {
        // Options are accepted and ignored: PythonContext has none yet.
        Box::pin(async move {
            if let Err(reason) = &self.availability {
                return Err(HostError::Unavailable(reason.clone()));
            }
            let context = PythonContext::start(self.spawner.clone()).await?;
            Ok(Arc::new(context) as Arc<dyn Instance>)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.spawner.pool.close())
    }
}

/// Starts workers for one type's instances: from the pool when it has one ready.
struct Spawner {
    config: PythonConfig,
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
                HostError::Unavailable(unavailable(&self.config.interpreter, &reason.to_string()))
            }
            other => HostError::Internal(format!("the Python worker did not start: {other}")),
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
                "the Python worker was restarted after it died; variables from before are lost"
            }
            Loss::KilledOnTimeout => {
                "the Python worker was restarted after it was killed on a timeout; variables from before are lost"
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

/// An instance of `PythonContext`: a persistent namespace in a worker process.
pub struct PythonContext {
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

impl PythonContext {
    async fn start(spawner: Arc<Spawner>) -> Result<Self, HostError> {
        let worker = Arc::new(spawner.spawn().await?);
        let cgroup = cgroup::for_context();
        if let Some(cgroup) = &cgroup {
            cgroup.add(worker.pid());
        }
        Ok(PythonContext {
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
        let gone = || HostError::Unavailable("this PythonContext has been destroyed".into());
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(gone());
        }
        if let Some(worker) = &session.worker {
            match worker.exited() {
                None => return Ok(worker.clone()),
                Some(report) => {
                    log::info!("the Python worker {report} while idle; starting a fresh one");
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
                        "the Python worker had {report} before the call; retrying on a fresh one"
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
            Err(error @ WorkerError::ReplyTooLarge { .. }) => error_result(format!(
                "the Python worker could not return the result: {error}; its variables are kept"
            )),
            Err(WorkerError::Unresponsive { .. }) => {
                self.lose(&mut session, Loss::KilledOnTimeout).await;
                let limit = timeout.map(seconds).unwrap_or_default();
                error_result(format!(
                    "TimeoutError: execution exceeded {limit} s and the Python worker did not stop when interrupted, so it was killed; its variables are lost"
                ))
            }
            Err(_) if self.destroyed.load(Ordering::SeqCst) => {
                // Deleted while the call ran: that ended the worker, not a fault.
                return Err(HostError::Unavailable(
                    "this PythonContext was deleted while the call ran".into(),
                ));
            }
            Err(error) => {
                self.lose(&mut session, Loss::Died).await;
                error_result(format!(
                    "the Python worker died: {error}; its variables are lost"
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
        // Packing a value can run user code (`__repr__`), so these calls get the
        // host's execute timeout too.
        let timeout = self.spawner.config.execute_timeout;
        match self
            .call_worker(&mut session, method, &args, timeout, None)
            .await?
        {
            Ok(Answer { outcome, .. }) => outcome.map_err(reply_error),
            Err(error @ WorkerError::ReplyTooLarge { .. }) => Err(HostError::Internal(format!(
                "the Python worker could not return the result of {method}: {error}; its variables are kept"
            ))),
            Err(WorkerError::Unresponsive { .. }) => {
                self.lose(&mut session, Loss::KilledOnTimeout).await;
                Err(HostError::Internal(format!(
                    "{method} exceeded the execute timeout and the Python worker did not stop when interrupted, so it was killed; its variables are lost"
                )))
            }
            Err(_) if self.destroyed.load(Ordering::SeqCst) => {
                // Deleted while the call ran: that ended the worker, not a fault.
                Err(HostError::Unavailable(
                    "this PythonContext was deleted while the call ran".into(),
                ))
            }
            Err(error) => {
                self.lose(&mut session, Loss::Died).await;
                Err(HostError::Internal(format!(
                    "the Python worker died: {error}; its variables are lost"
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

fn prepend_warning(result: &mut Value, warning: &str) {
    if let Some(messages) = result.get_mut("messages").and_then(Value::as_array_mut) {
        messages.insert(0, json!({"type": "warning", "message": warning}));
    }
}

/// Rewrites the `KeyboardInterrupt` of an execute interrupted on its timeout.
fn mark_timeout(result: &mut Value, limit: Duration) {
    let Some(messages) = result.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    for message in messages.iter_mut().rev() {
        let is_interrupt = message.get("type") == Some(&json!("error"))
            && message
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|text| text.starts_with("KeyboardInterrupt"));
        if is_interrupt {
            message["message"] = json!(format!(
                "TimeoutError: execution exceeded {} s and was interrupted",
                seconds(limit)
            ));
            return;
        }
    }
}

impl Instance for PythonContext {
    fn call<'a>(&'a self, method: &'a str, arg: Value) -> BoxFuture<'a, Result<Value, HostError>> {
        Box::pin(async move {
            match method {
                // The 2018 clients' methods (PROTOCOL.md section 13), cell executes included.
                _ if crate::legacy::handles(method, &arg) => {
                    crate::legacy::call(self, method, arg).await
                }
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
        Box::pin(async move {
            if crate::legacy::handles("execute", &arg) {
                // A 2018 cell execute: its answer is replayed as events when it ends.
                return self.call("execute", arg).await;
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
            json!(format!("Python {}", self.spawner.version)),
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

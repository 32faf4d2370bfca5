//! `JupyterContext`: any Jupyter kernel installed on the machine (PROTOCOL.md
//! section 8), so R, Julia, Bash and others run without code here for each language.
//!
//! Kernels are found as Jupyter finds them ([`kernelspec`]); each instance starts
//! its own kernel ([`kernel`]) with a fresh connection file and talks to it over
//! ZeroMQ with `jupyter-zmq-client`; [`values`] maps the kernel's outputs to the
//! host's messages and values. The rules of section 6 hold: one call at a time,
//! `interrupt` from a second connection (SIGINT to the kernel's process group, or
//! `interrupt_request` when the kernelspec's `interrupt_mode` is `message`),
//! timeouts (interrupt, then kill), and a kernel that dies is replaced on the next
//! call with a warning that its variables were lost.
//!
//! Kernels run on the type's own small tokio runtime: their sockets' tasks and the
//! watchers that reap them live there, so calls from any HTTP worker's runtime reach
//! them, and the type can start a pooled kernel (`--pool-kernel`) whenever it likes.

mod kernel;
mod kernelspec;
mod legacy;
mod values;

use crate::worker_context::{
    error_result, lock, mark_timeout_in, prepend_warning, seconds, timeout_arg, timeout_message,
};
use kernel::{ExecuteFault, Kernel};
pub use kernelspec::jupyter_data_dirs;
use kernelspec::{find_kernelspecs, Kernelspec};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};
use stencila_host::{BoxFuture, EventSink, ExecuteResult, HostError, Instance, InstanceType};

/// How long a look for installed kernels is reused by the manifest.
const SCAN_REUSE: Duration = Duration::from_secs(2);

/// How long a create waits for the pooled kernel that is starting, before it
/// starts one of its own.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// How long the host's stop waits for a pooled kernel that is still starting.
const POOL_STOP_WAIT: Duration = Duration::from_secs(15);

/// What the CLI decides about Jupyter kernels, validated.
#[derive(Debug, Clone)]
pub struct JupyterConfig {
    /// The Jupyter data directories to search for `kernels/<name>/kernel.json`,
    /// highest priority first (see [`jupyter_data_dirs`]).
    pub data_dirs: Vec<PathBuf>,
    /// Where kernels' connection files are written (made private to this user).
    pub connection_dir: PathBuf,
    /// The default limit on one `execute`; `None` means no limit.
    pub execute_timeout: Option<Duration>,
    /// The kernel to keep one started instance of, ready for the next `POST`; the
    /// first starts in the background as soon as the type is made.
    pub pool_kernel: Option<String>,
}

/// The type's runtime; shut down without waiting when the type is dropped (which
/// may happen inside another runtime, where blocking is not allowed).
struct KernelRuntime(Option<tokio::runtime::Runtime>);

impl Drop for KernelRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The pooled kernel, if any, and whether one is being started.
#[derive(Default)]
struct Pool {
    ready: Option<Kernel>,
    filling: bool,
    closed: bool,
}

/// What the type and its instances share.
struct Shared {
    config: JupyterConfig,
    runtime: KernelRuntime,
    pool: StdMutex<Pool>,
    /// The last look for kernels, and when it was.
    scanned: StdMutex<Option<(Instant, BTreeMap<String, Kernelspec>)>>,
}

impl Shared {
    /// The installed kernels, looked for now.
    fn kernelspecs(&self) -> BTreeMap<String, Kernelspec> {
        let found = find_kernelspecs(&self.config.data_dirs);
        *lock(&self.scanned) = Some((Instant::now(), found.clone()));
        found
    }

    /// The installed kernels as last looked for, if that was within
    /// [`SCAN_REUSE`]: the manifest is a hot public route, and reading every
    /// kernelspec each time would make it slow.
    fn recent_kernelspecs(&self) -> BTreeMap<String, Kernelspec> {
        if let Some((at, found)) = lock(&self.scanned).as_ref() {
            if at.elapsed() < SCAN_REUSE {
                return found.clone();
            }
        }
        self.kernelspecs()
    }

    /// Starts a kernel of `spec`: the pooled one when it is of that kernelspec.
    async fn start(self: &Arc<Self>, spec: &Kernelspec) -> Result<Kernel, HostError> {
        if self.config.pool_kernel.as_deref() == Some(spec.name.as_str()) {
            // A pooled kernel that is still starting is nearer ready than a cold one
            // (and two starts at once would only slow each other): wait for it.
            let deadline = Instant::now() + POOL_WAIT;
            loop {
                let (pooled, filling) = {
                    let mut pool = lock(&self.pool);
                    (pool.ready.take(), pool.filling)
                };
                if let Some(kernel) = pooled {
                    self.refill();
                    if kernel.exited().is_none() {
                        return Ok(kernel);
                    }
                    // It died while it waited (dropping it reaps it): start cold.
                    break;
                }
                if !filling || Instant::now() >= deadline {
                    self.refill();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let Some(runtime) = &self.runtime.0 else {
            return Err(HostError::Unavailable(
                "JupyterContext is not available: its runtime could not be started".into(),
            ));
        };
        let (owned, dir) = (spec.clone(), self.config.connection_dir.clone());
        runtime
            .spawn(async move { Kernel::start(&owned, &dir).await })
            .await
            .map_err(|error| HostError::Internal(format!("the kernel start failed: {error}")))?
            .map_err(|reason| {
                HostError::Unavailable(format!(
                    "the '{}' Jupyter kernel did not start: {reason}",
                    spec.name
                ))
            })
    }

    /// Starts a kernel for the pool in the background, unless one is ready or
    /// starting, or no pool was asked for.
    fn refill(self: &Arc<Self>) {
        let Some(name) = self.config.pool_kernel.clone() else {
            return;
        };
        let Some(runtime) = &self.runtime.0 else {
            return;
        };
        {
            let mut pool = lock(&self.pool);
            if pool.closed || pool.filling || pool.ready.is_some() {
                return;
            }
            pool.filling = true;
        }
        let shared = self.clone();
        runtime.spawn(async move {
            let started = match shared.kernelspecs().remove(&name) {
                Some(spec) => Kernel::start(&spec, &shared.config.connection_dir).await,
                None => Err(format!("no kernel named '{name}' is installed")),
            };
            let leftover = {
                let mut pool = lock(&shared.pool);
                match started {
                    Ok(kernel) if !pool.closed => {
                        pool.ready = Some(kernel);
                        pool.filling = false;
                        None
                    }
                    Ok(kernel) => Some(kernel),
                    Err(reason) => {
                        log::warn!("--pool-kernel {name}: {reason}");
                        pool.filling = false;
                        None
                    }
                }
            };
            if let Some(kernel) = leftover {
                // The type shut down while this kernel started; it waits for this.
                kernel.kill().await;
                lock(&shared.pool).filling = false;
            }
        });
    }
}

/// The `JupyterContext` type: one kernel per instance, of the kernelspec named by
/// the `kernel` option.
pub struct JupyterContextType {
    shared: Arc<Shared>,
}

impl JupyterContextType {
    /// A type that finds kernels in `config.data_dirs` (searched again for each
    /// instance created, and for the manifest at most every [`SCAN_REUSE`], so
    /// kernels installed later appear).
    pub fn new(config: JupyterConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("jupyter-kernels")
            .enable_all()
            .build()
            .inspect_err(|error| log::warn!("JupyterContext: no runtime: {error}"))
            .ok();
        let shared = Arc::new(Shared {
            config,
            runtime: KernelRuntime(runtime),
            pool: StdMutex::new(Pool::default()),
            scanned: StdMutex::new(None),
        });
        // The pooled kernel starts at once, in the background, on the type's runtime.
        shared.refill();
        JupyterContextType { shared }
    }

    /// Whether a pooled kernel is ready now.
    pub fn pooled(&self) -> bool {
        lock(&self.shared.pool).ready.is_some()
    }

    /// Why the type cannot run here, if it cannot.
    fn unavailable_reason(&self, kernelspecs: &BTreeMap<String, Kernelspec>) -> Option<String> {
        if self.shared.runtime.0.is_none() {
            return Some(
                "JupyterContext is not available: its runtime could not be started".into(),
            );
        }
        kernelspecs.is_empty().then(|| {
            "JupyterContext is not available: no Jupyter kernel is installed (none in the Jupyter data directories or JUPYTER_PATH); install one, e.g. `pip install ipykernel`".to_string()
        })
    }
}

fn kernel_names(kernelspecs: &BTreeMap<String, Kernelspec>) -> String {
    kernelspecs.keys().cloned().collect::<Vec<_>>().join(", ")
}

impl InstanceType for JupyterContextType {
    fn name(&self) -> &str {
        "JupyterContext"
    }

    fn available(&self) -> bool {
        self.unavailable_reason(&self.shared.recent_kernelspecs())
            .is_none()
    }

    fn manifest_fields(&self) -> Map<String, Value> {
        let kernelspecs = self.shared.recent_kernelspecs();
        let mut fields = Map::new();
        if let Some(reason) = self.unavailable_reason(&kernelspecs) {
            fields.insert("reason".into(), json!(reason));
        }
        let kernels: Map<String, Value> = kernelspecs
            .values()
            .map(|spec| {
                (
                    spec.name.clone(),
                    json!({"language": spec.spec.language, "displayName": spec.spec.display_name}),
                )
            })
            .collect();
        fields.insert("kernels".into(), Value::Object(kernels));
        fields
    }

    fn create(&self, options: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>> {
        Box::pin(async move {
            let kernelspecs = self.shared.kernelspecs();
            if let Some(reason) = self.unavailable_reason(&kernelspecs) {
                return Err(HostError::Unavailable(reason));
            }
            let name = match options.get("kernel") {
                Some(Value::String(name)) => name,
                Some(_) | None => {
                    return Err(HostError::BadArgument(format!(
                    "JupyterContext needs the option `kernel`, the name of an installed kernel: {}",
                    kernel_names(&kernelspecs)
                )))
                }
            };
            let Some(spec) = kernelspecs.get(name) else {
                return Err(HostError::BadArgument(format!(
                    "no Jupyter kernel named '{name}' is installed; installed: {}",
                    kernel_names(&kernelspecs)
                )));
            };
            let context = JupyterContext::start(self.shared.clone(), spec.clone()).await?;
            Ok(Arc::new(context) as Arc<dyn Instance>)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let pooled = {
                let mut pool = lock(&self.shared.pool);
                pool.closed = true;
                pool.ready.take()
            };
            if let Some(kernel) = pooled {
                kernel.kill().await;
            }
            // A pooled kernel still starting is killed by its own task once started:
            // wait (bounded) so that it is gone before the host says it has stopped.
            let deadline = Instant::now() + POOL_STOP_WAIT;
            while lock(&self.shared.pool).filling && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }
}

/// Why a kernel's namespace was lost, for the warning on the next `execute`.
#[derive(Debug, Clone, Copy)]
enum Loss {
    Died,
    KilledOnTimeout,
}

/// What one instance's calls share; behind an async lock, so calls run one at a time.
struct Session {
    kernel: Option<Arc<Kernel>>,
    /// Set when the kernel was lost; reported by the next `execute`.
    lost: Option<Loss>,
    /// Where the running `execute`'s output goes live, if anywhere.
    live: Option<EventSink>,
}

/// An instance of `JupyterContext`: a kernel and its namespace.
pub struct JupyterContext {
    shared: Arc<Shared>,
    spec: Kernelspec,
    session: tokio::sync::Mutex<Session>,
    /// The current kernel, reachable without waiting for a running call (for
    /// `interrupt`, `state` and `destroy`). Never held across an await.
    current: StdMutex<Option<Arc<Kernel>>>,
    destroyed: AtomicBool,
}

/// An execute's arguments, checked.
struct ExecuteArgs {
    code: String,
    inputs: Map<String, Value>,
    timeout: Option<Duration>,
}

fn execute_args(arg: Value) -> Result<ExecuteArgs, HostError> {
    let bad_code = || {
        HostError::BadArgument(
            "execute needs `code`, a string (or the code as a bare JSON string)".into(),
        )
    };
    match arg {
        Value::String(code) => Ok(ExecuteArgs {
            code,
            inputs: Map::new(),
            timeout: None,
        }),
        Value::Object(ref object) => {
            let code = object
                .get("code")
                .and_then(Value::as_str)
                .ok_or_else(bad_code)?
                .to_string();
            let inputs = match object.get("inputs") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(inputs)) => inputs.clone(),
                Some(_) => {
                    return Err(HostError::BadArgument(
                        "`inputs` must be an object of name to packed value".into(),
                    ))
                }
            };
            Ok(ExecuteArgs {
                code,
                inputs,
                timeout: timeout_arg(&arg)?,
            })
        }
        _ => Err(bad_code()),
    }
}

impl JupyterContext {
    async fn start(shared: Arc<Shared>, spec: Kernelspec) -> Result<Self, HostError> {
        let kernel = Arc::new(shared.start(&spec).await?);
        Ok(JupyterContext {
            shared,
            spec,
            session: tokio::sync::Mutex::new(Session {
                kernel: Some(kernel.clone()),
                lost: None,
                live: None,
            }),
            current: StdMutex::new(Some(kernel)),
            destroyed: AtomicBool::new(false),
        })
    }

    /// How messages name this kernel: its kernelspec's display name.
    fn kernel_label(&self) -> String {
        format!("the {} kernel", self.spec.spec.display_name)
    }

    /// The session's kernel, starting a fresh one if the last was lost or has died.
    async fn kernel(&self, session: &mut Session) -> Result<Arc<Kernel>, HostError> {
        let gone = || HostError::Unavailable("this JupyterContext has been destroyed".into());
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(gone());
        }
        if let Some(kernel) = &session.kernel {
            if kernel.exited().is_none() {
                return Ok(kernel.clone());
            }
            // It died between calls (killed from outside, or it ended itself).
            self.lose(session, Loss::Died).await;
        }
        let kernel = Arc::new(self.shared.start(&self.spec).await?);
        *lock(&self.current) = Some(kernel.clone());
        if self.destroyed.load(Ordering::SeqCst) {
            // `destroy` ran while the kernel started and did not see it.
            lock(&self.current).take();
            kernel.kill().await;
            return Err(gone());
        }
        session.kernel = Some(kernel.clone());
        Ok(kernel)
    }

    /// Forgets a kernel that failed, making sure it is gone and reaped.
    async fn lose(&self, session: &mut Session, loss: Loss) {
        if let Some(kernel) = session.kernel.take() {
            {
                let mut current = lock(&self.current);
                if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &kernel)) {
                    current.take();
                }
            }
            kernel.kill().await;
        }
        session.lost = Some(loss);
    }

    fn loss_warning(&self, loss: Loss) -> String {
        match loss {
            Loss::Died => format!(
                "{} was restarted after it died; variables from before are lost",
                self.kernel_label()
            ),
            Loss::KilledOnTimeout => format!(
                "{} was restarted after it was killed on a timeout; variables from before are lost",
                self.kernel_label()
            ),
        }
    }

    /// Runs `code` on `kernel`; a kernel that fails is forgotten, and the error
    /// message says so.
    async fn run(
        &self,
        session: &mut Session,
        kernel: &Kernel,
        code: &str,
        silent: bool,
        timeout: Option<Duration>,
    ) -> Result<kernel::Outputs, Value> {
        // The inputs (a silent run) are not the user's output.
        let live = if silent { None } else { session.live.clone() };
        match kernel.execute(code, silent, timeout, live).await {
            Ok(outputs) => Ok(outputs),
            Err(ExecuteFault::Unresponsive) => {
                self.lose(session, Loss::KilledOnTimeout).await;
                let limit = timeout.map(seconds).unwrap_or_default();
                Err(error_result(format!(
                    "TimeoutError: execution exceeded {limit} s and {} did not stop when interrupted, so it was killed; its variables are lost (a fresh kernel starts on the next call)",
                    self.kernel_label()
                )))
            }
            Err(ExecuteFault::Died(report)) => {
                self.lose(session, Loss::Died).await;
                Err(error_result(format!(
                    "{} died: it {report}; its variables are lost (a fresh kernel starts on the next call)",
                    self.kernel_label()
                )))
            }
            Err(ExecuteFault::Channel(reason)) => {
                self.lose(session, Loss::Died).await;
                Err(error_result(format!(
                    "the connection to {} failed ({reason}), so it was stopped; its variables are lost",
                    self.kernel_label()
                )))
            }
        }
    }

    async fn execute(&self, arg: Value) -> Result<Value, HostError> {
        self.execute_with(arg, None).await
    }

    /// `execute`, with the kernel's output passed to `live` as it arrives.
    async fn execute_with(&self, arg: Value, live: Option<EventSink>) -> Result<Value, HostError> {
        let args = execute_args(arg)?;
        let timeout = args.timeout.or(self.shared.config.execute_timeout);
        let inputs_code = if args.inputs.is_empty() || !self.spec.is_python() {
            None
        } else {
            Some(values::python_inputs_code(&args.inputs).map_err(HostError::BadArgument)?)
        };
        let mut session = self.session.lock().await;
        let kernel = self.kernel(&mut session).await?;
        // An earlier loss is reported by the first `execute` on the fresh kernel.
        let earlier = session.lost.take();
        session.live = live;
        let mut result = self
            .execute_on(&mut session, &kernel, &args, inputs_code, timeout)
            .await;
        session.live = None;
        if let (Some(loss), Some(messages)) = (
            earlier,
            result.get_mut("messages").and_then(Value::as_array_mut),
        ) {
            prepend_warning(messages, &self.loss_warning(loss));
        }
        Ok(result)
    }

    async fn execute_on(
        &self,
        session: &mut Session,
        kernel: &Kernel,
        args: &ExecuteArgs,
        inputs_code: Option<String>,
        timeout: Option<Duration>,
    ) -> Value {
        if !args.inputs.is_empty() {
            let Some(inputs_code) = inputs_code else {
                return error_result(format!(
                    "inputs are not supported for {} (language '{}'): JupyterContext can set variables only in Python kernels; nothing was run",
                    self.kernel_label(),
                    self.spec.spec.language
                ));
            };
            match self.run(session, kernel, &inputs_code, true, timeout).await {
                Ok(outputs) => {
                    let errors: Vec<Value> = outputs
                        .messages
                        .into_iter()
                        .filter(|message| message["type"] == "error")
                        .collect();
                    if !errors.is_empty() {
                        return json!({"messages": errors, "value": null});
                    }
                }
                Err(result) => return result,
            }
        }
        match self.run(session, kernel, &args.code, false, timeout).await {
            Ok(mut outputs) => {
                if outputs.interrupted_on_timeout {
                    if let Some(limit) = timeout {
                        mark_timeout(&mut outputs.messages, limit);
                    }
                }
                json!({"messages": outputs.messages, "value": outputs.value})
            }
            Err(result) => result,
        }
    }

    async fn restart(&self) -> Result<Value, HostError> {
        // Kill first, then queue: a call stuck in the kernel holds the session, and
        // ending its kernel is what frees it.
        let current = lock(&self.current).take();
        if let Some(kernel) = current {
            kernel.kill().await;
        }
        let mut session = self.session.lock().await;
        if let Some(kernel) = session.kernel.take() {
            lock(&self.current).take();
            kernel.kill().await;
        }
        // The caller asked for a fresh namespace, so there is nothing to warn about.
        session.lost = None;
        self.kernel(&mut session).await?;
        Ok(Value::Null)
    }

    async fn interrupt(&self) {
        let kernel = lock(&self.current).clone();
        if let Some(kernel) = kernel {
            kernel.interrupt().await;
        }
    }
}

/// Rewrites the `KeyboardInterrupt` of an execute interrupted on its timeout (or
/// adds the timeout error, for kernels that report nothing when interrupted).
fn mark_timeout(messages: &mut Vec<Value>, limit: Duration) {
    if !mark_timeout_in(messages, "KeyboardInterrupt", limit) {
        messages.push(json!({"type": "error", "message": timeout_message(limit)}));
    }
}

impl Instance for JupyterContext {
    fn call<'a>(&'a self, method: &'a str, arg: Value) -> BoxFuture<'a, Result<Value, HostError>> {
        Box::pin(async move {
            match method {
                // The 2018 clients' methods (PROTOCOL.md section 13), cell executes included.
                _ if crate::legacy::handles(method, &arg) => {
                    crate::legacy::call(self, method, arg).await
                }
                "execute" => self.execute(arg).await,
                "restart" => self.restart().await,
                // Never waits for the session: it must reach a running execute.
                "interrupt" => {
                    self.interrupt().await;
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
            let result = if crate::legacy::handles("execute", &arg) {
                // A 2018 cell execute: its answer is replayed as events when it ends.
                self.call("execute", arg).await
            } else {
                self.execute_with(arg, Some(sink)).await
            };
            result.map(ExecuteResult::from_value)
        })
    }

    fn state(&self) -> Value {
        let pid = lock(&self.current).as_ref().map(|kernel| kernel.pid());
        json!({
            "pid": pid,
            "kernel": self.spec.name,
            "language": self.spec.spec.language,
            "displayName": self.spec.spec.display_name,
        })
    }

    fn destroy(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.destroyed.store(true, Ordering::SeqCst);
            // Not through the session: a running execute must not delay the end.
            let kernel = lock(&self.current).take();
            if let Some(kernel) = kernel {
                kernel.shutdown().await;
            }
        })
    }
}

#[cfg(test)]
mod tests;

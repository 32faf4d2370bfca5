//! A language-neutral worker process: spawning, line framing with request ids,
//! interrupts, timeouts, crash detection and reaping.
//!
//! A worker is any program that, once started, writes a ready line
//! `{"ready": true, ...}` to its stdout, then answers each request line
//! `{"id": N, "method": "...", "args": {...}}` read from its stdin with one reply line
//! `{"id": N, "result": ...}` or `{"id": N, "error": "...", "internal": bool}`. Before
//! its reply a call may send event lines `{"id": N, "event": {...}}` (live output),
//! handed to the call's [`EventHandler`] as they arrive; [`output_events`] is the
//! handler for the output events every worker script sends alike,
//! `{"type": "stdout"|"stderr", "text": "..."}`.
//! Lines before the ready line that are not it (a banner printed by the interpreter's
//! start-up hooks) are logged and skipped. This module knows nothing of the language
//! the worker runs; a context type (e.g. `PythonContext`) is this layer plus a worker
//! script.
//!
//! Each worker has an owning task (module `actor`) that holds its pipes. A call is
//! [submitted](Worker::submit) to that task's queue and answered through a
//! [`Pending`]; the task runs calls one at a time in arrival order, keeps reading
//! replies while it writes, and enforces each call's timeout. A caller that stops
//! waiting drops only its [`Pending`]: the call still runs to its end, or to its
//! timeout, before the next one starts.
//!
//! Process hygiene (module `process`): each worker leads its own process group, so
//! signals reach whatever it started too, but only while the leader is not yet reaped
//! (after that the group id may be someone else's); when the leader ends, what is
//! left of its group is killed, then it is reaped; its stderr is drained continuously
//! so it can never block on a full pipe; and it is killed when its [`Worker`] is
//! dropped.
//!
//! A worker's pipes and its tasks (owner, reaper, stderr drain) belong to the tokio
//! runtime it was spawned on. Calls may come from any runtime, but that one must keep
//! running while the worker lives (if it shuts down, the worker is killed). With
//! [`Owner::FirstCaller`] the owning task (and its pipes) go instead to the runtime of
//! the worker's first call: under actix, whose request threads each run a runtime for
//! the server's life, the calls of a client then never hop between threads (issue 9's
//! profile: two cross-thread wakeups per call were most of the glue).

mod actor;
mod frame;
mod lines;
mod process;
mod zygote;

pub use frame::{parse_frame, Frame, ReplyError, ReplyText};
pub use zygote::{Zygote, ZygoteSpawnError};

use actor::{Job, Pipes};
use lines::{LineError, LineReader};
use nix::sys::signal::Signal;
use process::Process;
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use thiserror::Error;
use tokio::io::BufReader;
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

/// The longest line a worker may send by default; a longer reply is discarded (and
/// its call answered with [`WorkerError::ReplyTooLarge`]).
pub const MAX_LINE: usize = 256 << 20;

/// The read buffer of a worker's reply pipe.
const READ_BUFFER: usize = 64 << 10;

/// How long a worker has to answer after it was interrupted on a timeout.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for a worker to exit once its reply pipe has closed.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// How long to wait for the kernel to end a worker after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How many bytes of a line skipped before the ready line are logged.
const SKIPPED_PREVIEW: usize = 200;

/// The program and arguments that start a worker.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// How long the worker has to send its ready line.
    pub ready_timeout: Duration,
}

/// Limits on what a worker may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLimits {
    /// The longest line, in bytes, newline excluded.
    pub max_line: usize,
    /// Where its owning task runs.
    pub owner: Owner,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits {
            max_line: MAX_LINE,
            owner: Owner::Starter,
        }
    }
}

/// Which runtime a worker's owning task (and its pipes) belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Owner {
    /// The one that started the worker.
    #[default]
    Starter,
    /// The one of its first call, from then on; the starter's when that call is made
    /// outside any runtime. Only where every caller's runtime runs as long as the
    /// worker (a current-thread runtime runs its tasks only while driven).
    FirstCaller,
}

/// How a worker process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReport {
    /// It exited with this status.
    Status(i32),
    /// It was ended by this signal (e.g. `SIGKILL`).
    Signal(String),
    /// Its end could not be observed (the reason says why).
    Unknown(String),
}

impl fmt::Display for ExitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReport::Status(code) => write!(f, "exited with status {code}"),
            ExitReport::Signal(name) => write!(f, "was killed by signal {name}"),
            ExitReport::Unknown(reason) => write!(f, "ended in an unknown way ({reason})"),
        }
    }
}

impl ExitReport {
    /// How a process with this exit status ended.
    pub fn from_status(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        if let Some(code) = status.code() {
            ExitReport::Status(code)
        } else if let Some(number) = status.signal() {
            ExitReport::Signal(match Signal::try_from(number) {
                Ok(signal) => signal.as_str().to_string(),
                Err(_) => format!("{number}"),
            })
        } else {
            ExitReport::Unknown(status.to_string())
        }
    }

    /// How a process that `waitpid` reported as `status` ended.
    pub(crate) fn from_wait_status(status: nix::sys::wait::WaitStatus) -> Self {
        use nix::sys::wait::WaitStatus;
        match status {
            WaitStatus::Exited(_, code) => ExitReport::Status(code),
            WaitStatus::Signaled(_, signal, _) => ExitReport::Signal(signal.as_str().to_string()),
            other => ExitReport::Unknown(format!("{other:?}")),
        }
    }
}

/// A size for messages: whole MiB where it is one, else bytes.
fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why a worker could not be started or could not answer. After any of these but
/// [`WorkerError::Request`] and [`WorkerError::ReplyTooLarge`] the worker is gone
/// (ended, or killed by this layer): see [`WorkerError::worker_lost`].
///
/// Messages are phrased to follow "the worker ...: " and carry no host paths.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// The program could not be started (e.g. it does not exist).
    #[error("{0}")]
    Spawn(#[source] io::Error),
    /// It ended before sending its ready line.
    #[error("it {0} before it was ready")]
    EndedBeforeReady(ExitReport),
    /// It sent no ready line in time, so it was killed.
    #[error("it sent no ready line within {} s, so it was killed", .0.as_secs_f64())]
    NotReady(Duration),
    /// It ended while this call was running (or being sent).
    #[error("it {0}")]
    Ended(ExitReport),
    /// It had already ended before any of this call reached it: the call did not
    /// run, and may be run again on a fresh worker.
    #[error("it had {0} before the call was sent")]
    Gone(ExitReport),
    /// It did not answer within the grace period after being interrupted on a
    /// timeout, so it was killed.
    #[error(
        "it did not stop within {} s of being interrupted, so it was killed",
        .grace.as_secs_f64()
    )]
    Unresponsive {
        /// How long it had after the interrupt.
        grace: Duration,
    },
    /// It sent something that is not a frame of the protocol, so it was killed.
    #[error("it sent a malformed line ({0}), so it was stopped")]
    Malformed(String),
    /// Its pipes failed in a way other than it ending, so it was killed.
    #[error("its pipe failed ({0}), so it was stopped")]
    Pipe(#[source] io::Error),
    /// Its reply to this call was longer than the line limit, so it was discarded as
    /// it arrived; the worker lives on, in step.
    #[error("its reply was larger than {}, so it was discarded", size_text(*.limit))]
    ReplyTooLarge {
        /// The line limit, in bytes.
        limit: usize,
    },
    /// The request could not be encoded; the worker is untouched.
    #[error("the request could not be encoded ({0})")]
    Request(String),
}

impl WorkerError {
    /// True when the worker is gone after this error (its state is lost).
    pub fn worker_lost(&self) -> bool {
        !matches!(
            self,
            WorkerError::Request(_) | WorkerError::ReplyTooLarge { .. }
        )
    }
}

/// Receives a call's event frames, in order, on the worker's owning task: it must not
/// block (append and return).
pub type EventHandler = Arc<dyn Fn(Value) + Send + Sync>;

/// The handler that passes a worker's output events,
/// `{"type": "stdout"|"stderr", "text": "..."}`, to an execution's sink; other events
/// are skipped.
pub fn output_events(sink: stencila_host::EventSink) -> EventHandler {
    use stencila_host::OutputStream;
    Arc::new(move |event: Value| {
        let stream = match event.get("type").and_then(Value::as_str) {
            Some("stdout") => OutputStream::Stdout,
            Some("stderr") => OutputStream::Stderr,
            _ => return,
        };
        if let Some(text) = event.get("text").and_then(Value::as_str) {
            sink.output(stream, text);
        }
    })
}

/// A worker's answer to one call.
#[derive(Debug)]
pub struct Answer {
    /// The worker's result or error reply.
    pub outcome: Result<ReplyText, ReplyError>,
    /// True when the call hit its timeout, the worker was interrupted, and then answered.
    pub interrupted_on_timeout: bool,
}

/// A submitted call: await it for the answer. Dropping it does not cancel the call,
/// which runs to its end (or its timeout) and whose answer is then dropped.
#[must_use = "a call's answer says whether it worked"]
pub struct Pending {
    id: u64,
    answer: oneshot::Receiver<Result<Answer, WorkerError>>,
    /// Reported if the owning task stopped without answering (its runtime shut down).
    process: Arc<Process>,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").field("id", &self.id).finish()
    }
}

impl Pending {
    /// The request id the call was sent with.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Future for Pending {
    type Output = Result<Answer, WorkerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.answer).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| {
                Err(WorkerError::Ended(self.process.exited().unwrap_or_else(
                    || ExitReport::Unknown("the task that owned it stopped".into()),
                )))
            })
        })
    }
}

#[derive(Serialize)]
struct Request<'a> {
    id: u64,
    method: &'a str,
    args: &'a Value,
}

/// Kills the worker's group when dropped (while the leader is not yet reaped).
struct KillOnDrop(Arc<Process>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Also ends anything the worker started in its group; the reaper reaps.
        self.0.signal_group(Signal::SIGKILL);
    }
}

/// A running worker process: a handle to its owning task. Dropping it kills the
/// worker.
pub struct Worker {
    ready: Value,
    process: Arc<Process>,
    jobs: mpsc::UnboundedSender<Job>,
    /// The pipes, until the first call starts the owning task ([`Owner::FirstCaller`]),
    /// and the starter's runtime, for a first call made outside any runtime.
    unstarted: std::sync::Mutex<Option<(Pipes, tokio::runtime::Handle)>>,
    next_id: AtomicU64,
    _kill_on_drop: KillOnDrop,
    /// The zygote that forked it, if one did: its thread is the worker's parent
    /// thread (the parent-death signal's), so it lives as long as the worker.
    _zygote: Option<Arc<Zygote>>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker").field("pid", &self.pid()).finish()
    }
}

/// Why the wait for the ready line stopped short of it.
enum NotReady {
    Ended,
    Pipe(io::Error),
}

/// Reads up to the ready line, logging and skipping anything else.
async fn ready_line(
    pid: u32,
    lines: &mut LineReader<BufReader<tokio::process::ChildStdout>>,
    exit: &mut watch::Receiver<Option<ExitReport>>,
) -> Result<Value, NotReady> {
    loop {
        tokio::select! {
            biased;
            line = lines.next_line() => match line {
                Ok(Some(line)) => match parse_frame(line) {
                    Ok(Frame::Ready(ready)) => return Ok(ready),
                    _ => {
                        let preview = &line[..line.len().min(SKIPPED_PREVIEW)];
                        log::info!(
                            "worker {pid} printed before it was ready (skipped): {}",
                            String::from_utf8_lossy(preview)
                        );
                    }
                },
                Ok(None) => return Err(NotReady::Ended),
                Err(LineError::TooLong) => {
                    log::info!("worker {pid} printed an over-long line before it was ready (skipped)");
                }
                Err(LineError::Io(error)) => return Err(NotReady::Pipe(error)),
            },
            _ = exit.wait_for(Option::is_some) => return Err(NotReady::Ended),
        }
    }
}

impl Worker {
    /// Starts a worker with the default [`WorkerLimits`] and waits for its ready line.
    pub async fn spawn(command: &WorkerCommand) -> Result<Worker, WorkerError> {
        Worker::spawn_with(command, WorkerLimits::default()).await
    }

    /// Starts a worker and waits for its ready line.
    pub async fn spawn_with(
        command: &WorkerCommand,
        limits: WorkerLimits,
    ) -> Result<Worker, WorkerError> {
        // Listening before the child exists, so its SIGCHLD cannot be missed. Without a
        // signal driver the reaper polls instead.
        let sigchld = signal(SignalKind::child()).ok();
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(WorkerError::Spawn)?;
        let missing = |what: &str| WorkerError::Spawn(io::Error::other(format!("no {what}")));
        let stdin = child.stdin.take().ok_or_else(|| missing("stdin pipe"));
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout pipe"));
        let stderr = child.stderr.take().ok_or_else(|| missing("stderr pipe"));
        // Dropping `child` here (no valid pid) kills it.
        let process = Arc::new(Process::new(child).ok_or_else(|| missing("valid process id"))?);
        let guard = KillOnDrop(process.clone());
        tokio::spawn(process::reap(process.clone(), sigchld));
        let (stdin, stdout, stderr) = (stdin?, stdout?, stderr?);
        Worker::start(
            process,
            guard,
            stdin,
            stdout,
            stderr,
            command.ready_timeout,
            limits,
        )
        .await
    }

    /// Serves a started worker process: drains its stderr, waits for its ready line
    /// and hands its pipes to an owning task. Its reaper already runs.
    async fn start(
        process: Arc<Process>,
        guard: KillOnDrop,
        stdin: tokio::process::ChildStdin,
        stdout: tokio::process::ChildStdout,
        stderr: tokio::process::ChildStderr,
        ready_timeout: Duration,
        limits: WorkerLimits,
    ) -> Result<Worker, WorkerError> {
        let drain = tokio::spawn(process::drain_stderr(process.clone(), stderr));

        let pid = process.pid();
        let mut lines = LineReader::new(
            BufReader::with_capacity(READ_BUFFER, stdout),
            limits.max_line,
        );
        let mut exit = process.watch_exit();
        let waited =
            tokio::time::timeout(ready_timeout, ready_line(pid, &mut lines, &mut exit)).await;
        let failure = match waited {
            Ok(Ok(ready)) => {
                let (sender, jobs) = mpsc::unbounded_channel();
                let pipes = Pipes { stdin, lines, jobs };
                let unstarted = match limits.owner {
                    Owner::Starter => {
                        tokio::spawn(actor::run(process.clone(), pipes));
                        None
                    }
                    Owner::FirstCaller => Some((pipes, tokio::runtime::Handle::current())),
                };
                return Ok(Worker {
                    ready,
                    process,
                    jobs: sender,
                    unstarted: std::sync::Mutex::new(unstarted),
                    next_id: AtomicU64::new(0),
                    _kill_on_drop: guard,
                    _zygote: None,
                });
            }
            Ok(Err(NotReady::Ended)) => WorkerError::EndedBeforeReady(process.wait_or_kill().await),
            Ok(Err(NotReady::Pipe(error))) => {
                process.kill().await;
                WorkerError::Pipe(error)
            }
            Err(_) => {
                process.kill().await;
                WorkerError::NotReady(ready_timeout)
            }
        };
        // Let the drain catch the worker's last words before reporting them.
        let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
        let tail = process.stderr_tail().join("\n");
        log::warn!("a worker failed to start: {failure}; its stderr ended with:\n{tail}");
        Err(failure)
    }

    /// The worker's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The worker's ready line.
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// How the worker ended, if it has (and has been reaped).
    pub fn exited(&self) -> Option<ExitReport> {
        self.process.exited()
    }

    /// The last lines the worker wrote to stderr, oldest first.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.process.stderr_tail()
    }

    /// Queues `method` with `args` and returns at once; the call runs after those
    /// queued before it. Await the [`Pending`] for the answer.
    ///
    /// With a `timeout` (counted from when the call starts), an unanswered call
    /// interrupts the worker (SIGINT to its group), waits [`INTERRUPT_GRACE`] for the
    /// reply, then kills the worker. The timeout runs whether or not anyone still
    /// waits for the answer.
    pub fn submit(
        &self,
        method: &str,
        args: &Value,
        timeout: Option<Duration>,
    ) -> Result<Pending, WorkerError> {
        self.submit_with_events(method, args, timeout, None)
    }

    /// [`Worker::submit`], with the call's event frames passed to `events` as they come.
    pub fn submit_with_events(
        &self,
        method: &str,
        args: &Value,
        timeout: Option<Duration>,
        events: Option<EventHandler>,
    ) -> Result<Pending, WorkerError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut request = serde_json::to_vec(&Request { id, method, args })
            .map_err(|error| WorkerError::Request(error.to_string()))?;
        request.push(b'\n');
        let (reply, answer) = oneshot::channel();
        let job = Job {
            id,
            request,
            timeout,
            reply,
            events,
        };
        self.start_owner();
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(job) {
            // The owning task stopped (its runtime shut down): the worker is gone.
            let report = self
                .exited()
                .unwrap_or_else(|| ExitReport::Unknown("the task that owned it stopped".into()));
            let _ = job.reply.send(Err(WorkerError::Gone(report)));
        }
        Ok(Pending {
            id,
            answer,
            process: self.process.clone(),
        })
    }

    /// Starts the owning task where [`Owner::FirstCaller`] puts it, once.
    fn start_owner(&self) {
        let unstarted = self
            .unstarted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some((pipes, starter)) = unstarted else {
            return;
        };
        let process = self.process.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(here) => {
                here.spawn(async move {
                    if let Some(pipes) = actor::rehome(pipes) {
                        actor::run(process, pipes).await;
                    }
                });
            }
            Err(_) => {
                starter.spawn(actor::run(process, pipes));
            }
        }
    }

    /// Sends `method` with `args` and waits for the answer: [`Worker::submit`], then
    /// await. Calls are answered one at a time, in the order they arrive.
    pub async fn call(
        &self,
        method: &str,
        args: &Value,
        timeout: Option<Duration>,
    ) -> Result<Answer, WorkerError> {
        self.submit(method, args, timeout)?.await
    }

    /// Sends SIGINT to the worker's process group, without waiting for any call.
    /// Returns false when the worker has already ended.
    pub fn interrupt(&self) -> bool {
        self.process.signal_group(Signal::SIGINT)
    }

    /// Kills the worker's process group and waits until the worker is reaped. A call
    /// in flight is answered with [`WorkerError::Ended`], later ones with
    /// [`WorkerError::Gone`].
    pub async fn kill(&self) -> ExitReport {
        self.process.kill().await
    }
}

#[cfg(test)]
pub(crate) mod tests;

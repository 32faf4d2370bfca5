//! A language-neutral worker process: spawning, line framing with request ids,
//! interrupts, timeouts, crash detection and reaping.
//!
//! A worker is any program that, once started, writes a ready line
//! `{"ready": true, ...}` to its stdout, then answers each request line
//! `{"id": N, "method": "...", "args": {...}}` read from its stdin with one reply line
//! `{"id": N, "result": ...}` or `{"id": N, "error": "...", "internal": bool}`.
//! This module knows nothing of the language the worker runs; a context type
//! (e.g. `PythonContext`) is this layer plus a worker script.
//!
//! Process hygiene: each worker leads its own process group, so signals reach
//! whatever it started too; a task waits for it from the start, so it is always
//! reaped; its stderr is drained continuously so it can never block on a full pipe;
//! and it is killed when its [`Worker`] is dropped.
//!
//! A worker's pipes and its two tasks (reaper, stderr drain) belong to the tokio
//! runtime it was spawned on. Calls may come from any runtime, but that one must keep
//! running while the worker lives (if it shuts down, the worker is killed).

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{watch, Mutex};

/// The longest line a worker may send; a longer one is a fault of the worker.
pub const MAX_LINE: usize = 256 << 20;

/// How long a worker has to answer after it was interrupted on a timeout.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for a worker to exit once its reply pipe has closed.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// How long to wait for the kernel to end a worker after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The longest stderr line kept; the rest of the line is dropped.
const STDERR_LINE_MAX: usize = 4096;

/// How many of the last stderr lines are kept for diagnosing a failed start.
const STDERR_TAIL: usize = 20;

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

    fn from_wait(status: io::Result<ExitStatus>) -> Self {
        match status {
            Ok(status) => Self::from_status(status),
            Err(error) => ExitReport::Unknown(error.to_string()),
        }
    }
}

/// Why a worker could not be started or could not answer. After any of these but
/// [`WorkerError::Request`] the worker is gone (ended, or killed by this layer).
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
    /// It ended while a call was waiting for it.
    #[error("it {0}")]
    Ended(ExitReport),
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
    /// An earlier call was abandoned half-way through writing its request, so the
    /// request stream could no longer be trusted and the worker was killed.
    #[error("an earlier call was abandoned while writing its request, so it was stopped")]
    Abandoned,
    /// Its pipes failed in a way other than it ending, so it was killed.
    #[error("its pipe failed ({0}), so it was stopped")]
    Pipe(#[source] io::Error),
    /// The request could not be encoded; the worker is untouched.
    #[error("the request could not be encoded ({0})")]
    Request(String),
}

/// A worker's error reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    /// What went wrong, for the caller.
    pub message: String,
    /// True when the worker itself failed (a bug), false when the request was at fault.
    pub internal: bool,
}

/// One line from a worker, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The startup handshake, `{"ready": true, ...}`, whole.
    Ready(Value),
    /// The reply to request `id`.
    Reply {
        /// The request id it answers.
        id: u64,
        /// The result, or the worker's error.
        outcome: Result<Value, ReplyError>,
    },
}

/// Parses one line (without its newline) from a worker. Never panics; anything
/// that is not a frame is an `Err` saying why.
pub fn parse_frame(line: &[u8]) -> Result<Frame, String> {
    let value: Value =
        serde_json::from_slice(line).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(mut map) = value else {
        return Err("not a JSON object".into());
    };
    if map.get("ready") == Some(&Value::Bool(true)) {
        return Ok(Frame::Ready(Value::Object(map)));
    }
    let id = map
        .get("id")
        .and_then(Value::as_u64)
        .ok_or("no numeric `id`")?;
    if let Some(result) = map.remove("result") {
        return Ok(Frame::Reply {
            id,
            outcome: Ok(result),
        });
    }
    match map.remove("error") {
        Some(Value::String(message)) => Ok(Frame::Reply {
            id,
            outcome: Err(ReplyError {
                message,
                internal: map.get("internal") == Some(&Value::Bool(true)),
            }),
        }),
        _ => Err("neither a `result` nor a string `error`".into()),
    }
}

/// Why a line could not be read.
#[derive(Debug)]
enum LineError {
    TooLong,
    Io(io::Error),
}

/// Splits a byte stream into lines of bounded length.
///
/// Cancel-safe: a partly read line stays in `line` (and unread bytes in the
/// reader's buffer), so a read abandoned on a timeout resumes where it stopped.
struct LineReader<R> {
    reader: R,
    line: Vec<u8>,
    complete: bool,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    fn new(reader: R, max: usize) -> Self {
        LineReader {
            reader,
            line: Vec::new(),
            complete: false,
            max,
        }
    }

    /// The next line without its newline; `None` at end of stream (a final
    /// unterminated fragment is dropped: a frame is only whole with its newline).
    async fn next_line(&mut self) -> Result<Option<&[u8]>, LineError> {
        if self.complete {
            self.line.clear();
            self.complete = false;
        }
        loop {
            let buf = self.reader.fill_buf().await.map_err(LineError::Io)?;
            if buf.is_empty() {
                return Ok(None);
            }
            let (used, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.line.extend_from_slice(&buf[..end]);
                    (end + 1, true)
                }
                None => {
                    self.line.extend_from_slice(buf);
                    (buf.len(), false)
                }
            };
            self.reader.consume(used);
            if self.line.len() > self.max {
                return Err(LineError::TooLong);
            }
            if done {
                self.complete = true;
                return Ok(Some(&self.line));
            }
        }
    }
}

/// Why the reply stream stopped short of a reply.
#[derive(Debug)]
enum Fault {
    /// End of stream, or the process ended.
    Ended,
    /// Something that is not a frame.
    Malformed(String),
    /// An I/O failure reading or writing.
    Pipe(io::Error),
}

#[derive(Serialize)]
struct Request<'a> {
    id: u64,
    method: &'a str,
    args: &'a Value,
}

/// The pipes to a worker; owned by whichever call holds the lock.
struct Channel {
    stdin: ChildStdin,
    lines: LineReader<BufReader<ChildStdout>>,
    exit: watch::Receiver<Option<ExitReport>>,
    request: Vec<u8>,
    next_id: u64,
    /// Set while a request is being written: still set at the next call means the
    /// write was abandoned half-way.
    writing: bool,
}

impl Channel {
    async fn next_frame(&mut self) -> Result<Frame, Fault> {
        let Channel { lines, exit, .. } = self;
        tokio::select! {
            // Data first: a reply already in the pipe wins over a just-observed exit.
            biased;
            line = lines.next_line() => match line {
                Ok(Some(line)) => parse_frame(line).map_err(Fault::Malformed),
                Ok(None) => Err(Fault::Ended),
                Err(LineError::TooLong) => Err(Fault::Malformed(format!(
                    "a line longer than {} MiB",
                    MAX_LINE >> 20
                ))),
                Err(LineError::Io(error)) => Err(Fault::Pipe(error)),
            },
            // A process the worker forked may hold the pipe open after it ended.
            _ = exit.wait_for(Option::is_some) => Err(Fault::Ended),
        }
    }

    async fn reply(&mut self, id: u64) -> Result<Result<Value, ReplyError>, Fault> {
        loop {
            match self.next_frame().await? {
                Frame::Reply { id: got, outcome } if got == id => return Ok(outcome),
                Frame::Reply { id: got, .. } => {
                    log::debug!("skipping a stale reply to request {got} while waiting for {id}")
                }
                Frame::Ready(_) => log::debug!("skipping an unexpected ready line"),
            }
        }
    }
}

/// A worker's answer to one call.
#[derive(Debug)]
pub struct Answer {
    /// The worker's result or error reply.
    pub outcome: Result<Value, ReplyError>,
    /// True when the call hit its timeout, the worker was interrupted, and then answered.
    pub interrupted_on_timeout: bool,
}

/// A running worker process.
pub struct Worker {
    pid: u32,
    group: Pid,
    ready: Value,
    channel: Mutex<Channel>,
    exit: watch::Receiver<Option<ExitReport>>,
    stderr_tail: Arc<StdMutex<VecDeque<String>>>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker").field("pid", &self.pid).finish()
    }
}

impl Worker {
    /// Starts a worker and waits for its ready line.
    pub async fn spawn(command: &WorkerCommand) -> Result<Worker, WorkerError> {
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
        let pid = child.id().ok_or_else(|| missing("process id"))?;
        let group = Pid::from_raw(i32::try_from(pid).map_err(|_| missing("valid process id"))?);
        let stdin = child.stdin.take().ok_or_else(|| missing("stdin pipe"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout pipe"))?;
        let stderr = child.stderr.take().ok_or_else(|| missing("stderr pipe"))?;

        let stderr_tail = Arc::new(StdMutex::new(VecDeque::new()));
        let drain = tokio::spawn(drain_stderr(pid, stderr, stderr_tail.clone()));
        let (exit_sender, exit) = watch::channel(None);
        tokio::spawn(async move {
            let report = ExitReport::from_wait(child.wait().await);
            log::debug!("worker {pid} {report}");
            exit_sender.send_replace(Some(report));
        });

        let mut worker = Worker {
            pid,
            group,
            ready: Value::Null,
            channel: Mutex::new(Channel {
                stdin,
                lines: LineReader::new(BufReader::with_capacity(64 << 10, stdout), MAX_LINE),
                exit: exit.clone(),
                request: Vec::with_capacity(1024),
                next_id: 0,
                writing: false,
            }),
            exit,
            stderr_tail,
        };
        let first = {
            let channel = worker.channel.get_mut();
            tokio::time::timeout(command.ready_timeout, channel.next_frame()).await
        };
        let failure = match first {
            Ok(Ok(Frame::Ready(ready))) => {
                worker.ready = ready;
                return Ok(worker);
            }
            Ok(Ok(Frame::Reply { .. })) => {
                worker.kill().await;
                WorkerError::Malformed("a reply instead of its ready line".into())
            }
            Ok(Err(Fault::Ended)) => WorkerError::EndedBeforeReady(worker.wait_or_kill().await),
            Ok(Err(Fault::Malformed(what))) => {
                worker.kill().await;
                WorkerError::Malformed(what)
            }
            Ok(Err(Fault::Pipe(error))) => {
                worker.kill().await;
                WorkerError::Pipe(error)
            }
            Err(_) => {
                worker.kill().await;
                WorkerError::NotReady(command.ready_timeout)
            }
        };
        // Let the drain catch the worker's last words before reporting them.
        let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
        let tail = worker.stderr_tail().join("\n");
        log::warn!("a worker failed to start: {failure}; its stderr ended with:\n{tail}");
        Err(failure)
    }

    /// The worker's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The worker's ready line.
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// How the worker ended, if it has (and has been reaped).
    pub fn exited(&self) -> Option<ExitReport> {
        self.exit.borrow().clone()
    }

    /// The last lines the worker wrote to stderr, oldest first.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Sends `method` with `args` and waits for the reply. Calls are answered one at
    /// a time, in the order they arrive.
    ///
    /// With a `timeout`, an unanswered call interrupts the worker (SIGINT to its
    /// group), waits [`INTERRUPT_GRACE`] for the reply, then kills the worker.
    pub async fn call(
        &self,
        method: &str,
        args: &Value,
        timeout: Option<Duration>,
    ) -> Result<Answer, WorkerError> {
        let mut guard = self.channel.lock().await;
        let channel = &mut *guard;
        if channel.writing {
            self.kill().await;
            return Err(WorkerError::Abandoned);
        }
        channel.next_id += 1;
        let id = channel.next_id;
        channel.request.clear();
        serde_json::to_writer(&mut channel.request, &Request { id, method, args })
            .map_err(|error| WorkerError::Request(error.to_string()))?;
        channel.request.push(b'\n');
        channel.writing = true;
        if let Err(error) = channel.stdin.write_all(&channel.request).await {
            channel.writing = false;
            return Err(match self.wait_briefly().await {
                Some(report) => WorkerError::Ended(report),
                None => {
                    self.kill().await;
                    WorkerError::Pipe(error)
                }
            });
        }
        channel.writing = false;
        // A large request needs no lasting buffer.
        if channel.request.capacity() > 1 << 20 {
            channel.request = Vec::with_capacity(1024);
        }

        let (reply, interrupted_on_timeout) = match timeout {
            None => (channel.reply(id).await, false),
            Some(limit) => match tokio::time::timeout(limit, channel.reply(id)).await {
                Ok(reply) => (reply, false),
                Err(_) => {
                    log::debug!(
                        "worker {} timed out after {limit:?}; interrupting",
                        self.pid
                    );
                    self.interrupt();
                    match tokio::time::timeout(INTERRUPT_GRACE, channel.reply(id)).await {
                        Ok(reply) => (reply, true),
                        Err(_) => {
                            self.kill().await;
                            return Err(WorkerError::Unresponsive {
                                grace: INTERRUPT_GRACE,
                            });
                        }
                    }
                }
            },
        };
        match reply {
            Ok(outcome) => Ok(Answer {
                outcome,
                interrupted_on_timeout,
            }),
            Err(Fault::Ended) => Err(WorkerError::Ended(self.wait_or_kill().await)),
            Err(Fault::Malformed(what)) => {
                self.kill().await;
                Err(WorkerError::Malformed(what))
            }
            Err(Fault::Pipe(error)) => {
                self.kill().await;
                Err(WorkerError::Pipe(error))
            }
        }
    }

    /// Sends SIGINT to the worker's process group, without waiting for any call.
    /// Returns false when the worker has already ended.
    pub fn interrupt(&self) -> bool {
        if self.exit.borrow().is_some() {
            return false;
        }
        killpg(self.group, Signal::SIGINT).is_ok()
    }

    /// Kills the worker's process group and waits until the worker is reaped.
    pub async fn kill(&self) -> ExitReport {
        // ESRCH (already gone) is the only expected failure, and is what we want.
        let _ = killpg(self.group, Signal::SIGKILL);
        match self.wait_for_exit(KILL_WAIT).await {
            Some(report) => report,
            None => ExitReport::Unknown(format!(
                "it had not ended {} s after SIGKILL",
                KILL_WAIT.as_secs()
            )),
        }
    }

    /// How the worker ended, once it has, waiting at most [`EXIT_WAIT`].
    async fn wait_briefly(&self) -> Option<ExitReport> {
        self.wait_for_exit(EXIT_WAIT).await
    }

    /// How the worker ended; kills it if its pipe closed but it lingers.
    async fn wait_or_kill(&self) -> ExitReport {
        match self.wait_briefly().await {
            Some(report) => report,
            None => self.kill().await,
        }
    }

    async fn wait_for_exit(&self, limit: Duration) -> Option<ExitReport> {
        let mut exit = self.exit.clone();
        let report = match tokio::time::timeout(limit, exit.wait_for(Option::is_some)).await {
            Ok(Ok(report)) => report.clone(),
            Ok(Err(_)) => Some(ExitReport::Unknown("its watcher stopped".into())),
            Err(_) => None,
        };
        report
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Also ends anything the worker started in its group; the watcher task reaps.
        let _ = killpg(self.group, Signal::SIGKILL);
    }
}

/// Reads the worker's stderr until it closes, logging each line.
async fn drain_stderr(pid: u32, stderr: ChildStderr, tail: Arc<StdMutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let emit = |line: &[u8]| {
        let text = String::from_utf8_lossy(line).into_owned();
        log::debug!("worker {pid} stderr: {text}");
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(text);
    };
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) if !buf.is_empty() => buf,
            _ => break,
        };
        let (piece, used, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(end) => (&buf[..end], end + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = STDERR_LINE_MAX.saturating_sub(line.len());
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        reader.consume(used);
        if done {
            emit(&line);
            line.clear();
        }
    }
    if !line.is_empty() {
        emit(&line);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A tiny worker in Python (the only interpreter the tests can count on), driven
    /// by the method name so each test can provoke one behaviour.
    const TEST_WORKER: &str = r#"
import json, os, signal, sys, time
out = sys.stdout.buffer
def send(obj):
    out.write(json.dumps(obj).encode() + b"\n"); out.flush()
if len(sys.argv) > 1 and sys.argv[1] == "garbage-start":
    out.write(b"hello\n"); out.flush(); time.sleep(30)
if len(sys.argv) > 1 and sys.argv[1] == "exit-start":
    sys.exit(7)
send({"ready": True, "pid": os.getpid()})
for line in sys.stdin:
    req = json.loads(line)
    m, a, i = req["method"], req["args"], req["id"]
    if m == "echo":
        send({"id": i, "result": a})
    elif m == "stale-then-echo":
        send({"id": i - 1, "result": "stale"}); send({"id": i, "result": a})
    elif m == "fail":
        send({"id": i, "error": "bad args"})
    elif m == "garbage":
        out.write(b"{not json\n"); out.flush()
    elif m == "exit":
        os._exit(a)
    elif m == "sleep":
        try:
            time.sleep(a)
            send({"id": i, "result": "slept"})
        except KeyboardInterrupt:
            send({"id": i, "result": "interrupted"})
    elif m == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(a)
"#;

    fn python() -> PathBuf {
        crate::resolve_interpreter("python3").unwrap_or_else(|| PathBuf::from("python3"))
    }

    fn command(extra: &[&str]) -> WorkerCommand {
        let mut args: Vec<OsString> = vec!["-c".into(), TEST_WORKER.into()];
        args.extend(extra.iter().map(OsString::from));
        WorkerCommand {
            program: python(),
            args,
            ready_timeout: Duration::from_secs(20),
        }
    }

    async fn start() -> Worker {
        Worker::spawn(&command(&[]))
            .await
            .expect("the test worker starts")
    }

    /// True when `pid` is no longer a child of this process (ended and reaped). Also
    /// used by the `PythonContext` tests.
    pub(crate) fn process_is_gone_or_not_our_zombie(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => {
                // The fields after the command name are: state, ppid, ...
                let rest = stat.rsplit(')').next().unwrap_or("");
                let ppid: u32 = rest
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                ppid != std::process::id()
            }
        }
    }

    #[tokio::test]
    async fn ready_then_calls_in_order() {
        let worker = start().await;
        assert_eq!(worker.ready()["ready"], json!(true));
        assert_eq!(worker.ready()["pid"], json!(worker.pid()));
        for n in 0..3 {
            let answer = worker
                .call("echo", &json!({"n": n}), None)
                .await
                .expect("answer");
            assert_eq!(answer.outcome, Ok(json!({"n": n})));
            assert!(!answer.interrupted_on_timeout);
        }
        let answer = worker.call("fail", &json!({}), None).await.expect("answer");
        assert_eq!(
            answer.outcome,
            Err(ReplyError {
                message: "bad args".into(),
                internal: false
            })
        );
    }

    #[tokio::test]
    async fn stale_replies_are_skipped() {
        let worker = start().await;
        let answer = worker
            .call("stale-then-echo", &json!(5), None)
            .await
            .expect("answer");
        assert_eq!(answer.outcome, Ok(json!(5)));
        let answer = worker.call("echo", &json!(6), None).await.expect("answer");
        assert_eq!(answer.outcome, Ok(json!(6)));
    }

    #[tokio::test]
    async fn exit_status_and_signal_are_reported() {
        let worker = start().await;
        let error = worker
            .call("exit", &json!(3), None)
            .await
            .expect_err("it exits");
        assert_eq!(error.to_string(), "it exited with status 3");
        assert!(process_is_gone_or_not_our_zombie(worker.pid()));

        let worker = start().await;
        let pid = worker.pid();
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
        });
        let error = worker
            .call("sleep", &json!(30), None)
            .await
            .expect_err("killed");
        killer.await.expect("killer");
        assert_eq!(error.to_string(), "it was killed by signal SIGKILL");
    }

    #[tokio::test]
    async fn a_timeout_interrupts_then_kills() {
        let worker = start().await;
        let answer = worker
            .call("sleep", &json!(30), Some(Duration::from_millis(200)))
            .await
            .expect("answer after the interrupt");
        assert_eq!(answer.outcome, Ok(json!("interrupted")));
        assert!(answer.interrupted_on_timeout);
        // Still alive and in step.
        let answer = worker.call("echo", &json!(1), None).await.expect("answer");
        assert_eq!(answer.outcome, Ok(json!(1)));

        let error = worker
            .call("stubborn", &json!(30), Some(Duration::from_millis(100)))
            .await
            .expect_err("killed");
        assert!(
            matches!(error, WorkerError::Unresponsive { .. }),
            "{error:?}"
        );
        assert!(worker.exited().is_some());
        assert!(process_is_gone_or_not_our_zombie(worker.pid()));
    }

    #[tokio::test]
    async fn interrupt_does_not_wait_for_the_call() {
        let worker = Arc::new(start().await);
        let caller = worker.clone();
        let call = tokio::spawn(async move { caller.call("sleep", &json!(30), None).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(worker.interrupt());
        let answer = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("answered soon")
            .expect("joined")
            .expect("answer");
        assert_eq!(answer.outcome, Ok(json!("interrupted")));
    }

    #[tokio::test]
    async fn garbage_is_a_fault() {
        let worker = start().await;
        let error = worker
            .call("garbage", &json!({}), None)
            .await
            .expect_err("fault");
        assert!(matches!(error, WorkerError::Malformed(_)), "{error:?}");
        assert!(worker.exited().is_some());

        let error = Worker::spawn(&command(&["garbage-start"]))
            .await
            .expect_err("not a ready line");
        assert!(matches!(error, WorkerError::Malformed(_)), "{error:?}");

        let error = Worker::spawn(&command(&["exit-start"]))
            .await
            .expect_err("exits");
        assert_eq!(
            error.to_string(),
            "it exited with status 7 before it was ready"
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let command = WorkerCommand {
            program: PathBuf::from("/nonexistent/stencila-no-such-program"),
            args: Vec::new(),
            ready_timeout: Duration::from_secs(1),
        };
        let error = Worker::spawn(&command).await.expect_err("missing");
        assert!(matches!(error, WorkerError::Spawn(_)), "{error:?}");
        assert!(!error.to_string().contains("/nonexistent"));
    }

    #[tokio::test]
    async fn kill_reaps() {
        let worker = start().await;
        let pid = worker.pid();
        assert_eq!(worker.kill().await, ExitReport::Signal("SIGKILL".into()));
        assert!(process_is_gone_or_not_our_zombie(pid));
        assert!(!worker.interrupt());
    }

    #[tokio::test]
    async fn drop_kills_and_reaps() {
        let worker = start().await;
        let pid = worker.pid();
        drop(worker);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !process_is_gone_or_not_our_zombie(pid) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker {pid} lingers"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn lines_are_bounded_and_resumable() {
        let input: &[u8] = b"abc\ndefghij\nxy";
        let mut reader = LineReader::new(input, 5);
        assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"abc"[..]));
        assert!(matches!(reader.next_line().await, Err(LineError::TooLong)));

        let input: &[u8] = b"one\ntwo\n";
        let mut reader = LineReader::new(input, 100);
        assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"one"[..]));
        assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"two"[..]));
        assert!(matches!(reader.next_line().await, Ok(None)));
    }

    #[test]
    fn frames_parse() {
        assert_eq!(
            parse_frame(br#"{"ready": true, "v": 1}"#),
            Ok(Frame::Ready(json!({"ready": true, "v": 1})))
        );
        assert_eq!(
            parse_frame(br#"{"id": 3, "result": null}"#),
            Ok(Frame::Reply {
                id: 3,
                outcome: Ok(Value::Null)
            })
        );
        assert_eq!(
            parse_frame(br#"{"id": 4, "error": "no", "internal": true}"#),
            Ok(Frame::Reply {
                id: 4,
                outcome: Err(ReplyError {
                    message: "no".into(),
                    internal: true
                })
            })
        );
        assert!(parse_frame(b"").is_err());
        assert!(parse_frame(b"[1]").is_err());
        assert!(parse_frame(br#"{"id": -1, "result": 1}"#).is_err());
        assert!(parse_frame(br#"{"id": 1}"#).is_err());
        assert!(parse_frame(br#"{"id": 1, "error": 5}"#).is_err());
        assert!(parse_frame(b"\xff\xfe").is_err());
    }

    proptest! {
        #[test]
        fn parse_frame_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_frame(&bytes);
        }

        #[test]
        fn parse_frame_never_panics_on_near_json(text in r#"[{}\[\]":,0-9a-z \\-]{0,200}"#) {
            let _ = parse_frame(text.as_bytes());
        }

        #[test]
        fn replies_round_trip(id in any::<u64>(), text in ".*") {
            let line = serde_json::to_vec(&json!({"id": id, "result": text})).expect("encodes");
            prop_assert_eq!(parse_frame(&line), Ok(Frame::Reply { id, outcome: Ok(json!(text)) }));
        }
    }
}

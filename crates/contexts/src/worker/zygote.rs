//! A fork server ("zygote"): one long-lived process of a worker program that has done
//! its start-up work once (started the interpreter, compiled the worker script,
//! imported preloaded modules) and forks a fresh worker on request, in milliseconds.
//!
//! The protocol, language-neutral (the Python side is `python/worker/zygote.py`):
//! the zygote's stdin is one end of a `SOCK_SEQPACKET` socket pair, its control
//! socket. It first sends `{"ready": true, "pid": N}` (or `{"error": "..."}` and
//! exits: a preload it refuses). Then each request is the message `fork` carrying,
//! as `SCM_RIGHTS`, the child's ends of three pipes this process made: its stdin
//! (read end), stdout and stderr (write ends). The zygote forks with
//! `CLONE_PARENT`, so the new worker is a child of this process, not of the zygote;
//! the child puts the three fds where a spawned worker has its stdin, stdout and
//! stderr and goes on as a worker does. The zygote answers `{"pid": N}` (or
//! `{"error": "..."}`); this process makes the child a group leader
//! (`setpgid(N, N)`, as the child does too, so the group exists whichever runs
//! first) and serves it exactly as a spawned worker ([`super::process::Process`],
//! reaped by its exact pid), so its hygiene is unchanged: its own process group,
//! signals only while the leader is unreaped, its end seen by `waitpid`.
//!
//! The zygote is started, asked and restarted by one dedicated thread, which lives
//! as long as the [`Zygote`] (each forked [`super::Worker`] holds it): the forked
//! workers' parent thread is that thread, and their parent-death signal is tied to
//! it. A zygote that dies is restarted (at the next request, or within a second
//! while idle); the workers it forked are this process's children and live on.

use super::process::{self, Process};
use super::{KillOnDrop, Worker, WorkerCommand, WorkerError, WorkerLimits};
use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use nix::unistd::{pipe2, setpgid, Pid};
use serde_json::Value;
use std::fmt;
use std::io::{self, BufRead, IoSlice, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// How long the zygote has to answer a fork request.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the zygote's thread looks at whether the zygote still lives, while idle.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The least time between two starts of a zygote that failed to start.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The largest control message the zygote sends.
const MESSAGE_MAX: usize = 64 << 10;

/// How many of the zygote's last stderr lines are kept for messages.
const STDERR_TAIL: usize = 20;

/// What a zygote's thread is asked to do.
enum Job {
    /// Fork a worker; the answer is the child's pid and this process's pipe ends.
    Fork(oneshot::Sender<Result<Forked, String>>),
    /// The zygote's pid now, if it runs (for tests and diagnostics).
    Pid(oneshot::Sender<Option<u32>>),
}

/// A child forked by the zygote: its pid, and this process's ends of its pipes.
struct Forked {
    pid: Pid,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// A per-type fork server; see the module docs. Dropping the last handle (the type
/// and every forked worker hold one) ends the zygote and its thread.
pub struct Zygote {
    jobs: Mutex<mpsc::Sender<Job>>,
    command: WorkerCommand,
}

impl fmt::Debug for Zygote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zygote")
            .field("program", &self.command.program)
            .finish()
    }
}

impl Zygote {
    /// Starts a zygote with `command` (a worker program in its zygote mode) and waits
    /// for its ready message. `Err` says why it could not start, e.g. a preloaded
    /// module it refused.
    pub fn start(command: WorkerCommand) -> Result<Arc<Zygote>, String> {
        let (jobs, receiver) = mpsc::channel();
        let (first, started) = mpsc::sync_channel(1);
        let thread_command = command.clone();
        thread::Builder::new()
            .name("stencila-zygote".into())
            .spawn(move || serve(thread_command, receiver, first))
            .map_err(|error| format!("could not start its thread: {error}"))?;
        match started.recv() {
            Ok(Ok(())) => Ok(Arc::new(Zygote {
                jobs: Mutex::new(jobs),
                command,
            })),
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err("its thread stopped".into()),
        }
    }

    fn send(&self, job: Job) -> bool {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.send(job).is_ok()
    }

    /// The zygote process's pid, if one runs now.
    pub async fn pid(&self) -> Option<u32> {
        let (reply, answer) = oneshot::channel();
        if !self.send(Job::Pid(reply)) {
            return None;
        }
        answer.await.ok().flatten()
    }

    /// Forks a worker and waits for its ready line. `Err` when the zygote could not
    /// fork one (the caller may spawn the worker instead) or the worker failed to
    /// start.
    ///
    /// It runs to its end in a task of its own even when the caller stops waiting (a
    /// client that hangs up during `POST /PythonContext`): a child forked for a call
    /// given up must still be wrapped, so that it is killed and reaped, never left a
    /// zombie (found by the soak, which cuts requests mid-way).
    pub async fn spawn(self: &Arc<Self>, limits: WorkerLimits) -> Result<Worker, ZygoteSpawnError> {
        let zygote = self.clone();
        match tokio::spawn(async move { zygote.fork_worker(limits).await }).await {
            Ok(result) => result,
            // Only when its runtime shuts down: a child may exist, so no spawning instead.
            Err(error) => Err(ZygoteSpawnError::Worker(WorkerError::Spawn(
                std::io::Error::other(format!("the fork did not finish: {error}")),
            ))),
        }
    }

    async fn fork_worker(
        self: Arc<Self>,
        limits: WorkerLimits,
    ) -> Result<Worker, ZygoteSpawnError> {
        // Listening before the child exists, so its SIGCHLD cannot be missed.
        let sigchld = signal(SignalKind::child()).ok();
        let (reply, answer) = oneshot::channel();
        if !self.send(Job::Fork(reply)) {
            return Err(ZygoteSpawnError::NoFork("its thread stopped".into()));
        }
        let forked = answer
            .await
            .map_err(|_| ZygoteSpawnError::NoFork("its thread stopped".into()))?
            .map_err(ZygoteSpawnError::NoFork)?;
        let Some(process) = Process::forked(forked.pid) else {
            return Err(ZygoteSpawnError::NoFork(format!(
                "it answered an invalid pid {}",
                forked.pid
            )));
        };
        let process = Arc::new(process);
        let guard = KillOnDrop(process.clone());
        tokio::spawn(process::reap(process.clone(), sigchld));
        let pipes = (|| {
            Ok::<_, io::Error>((
                tokio::process::ChildStdin::from_std(forked.stdin.into())?,
                tokio::process::ChildStdout::from_std(forked.stdout.into())?,
                tokio::process::ChildStderr::from_std(forked.stderr.into())?,
            ))
        })();
        let (stdin, stdout, stderr) = match pipes {
            Ok(pipes) => pipes,
            Err(error) => {
                process.kill().await;
                return Err(ZygoteSpawnError::Worker(WorkerError::Pipe(error)));
            }
        };
        let mut worker = Worker::start(
            process,
            guard,
            stdin,
            stdout,
            stderr,
            self.command.ready_timeout,
            limits,
        )
        .await
        .map_err(ZygoteSpawnError::Worker)?;
        worker._zygote = Some(self.clone());
        Ok(worker)
    }
}

/// Why [`Zygote::spawn`] gave no worker.
#[derive(Debug, thiserror::Error)]
pub enum ZygoteSpawnError {
    /// The zygote did not fork (it is down and could not be restarted, say): no
    /// child exists, so spawning the worker instead is safe.
    #[error("the zygote could not fork a worker: {0}")]
    NoFork(String),
    /// A child was forked but failed as a worker (it is gone now).
    #[error("{0}")]
    Worker(#[source] WorkerError),
}

/// A running zygote process and this side of its control socket.
struct Running {
    child: Child,
    control: UnixStream,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts the zygote and waits for its ready message.
    fn start(command: &WorkerCommand) -> Result<Running, String> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|error| format!("could not make its control socket: {error}"))?;
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|error| format!("could not start it: {error}"))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(pipe) = child.stderr.take() {
            let tail = stderr.clone();
            let pid = child.id();
            // Ends when the zygote and every copy of its stderr are gone.
            let drain = thread::Builder::new()
                .name("stencila-zygote-stderr".into())
                .spawn(move || drain_stderr(pid, pipe, &tail));
            if let Err(error) = drain {
                log::warn!("could not drain the zygote's stderr: {error}");
            }
        }
        let mut running = Running {
            child,
            control: UnixStream::from(ours),
            stderr,
        };
        match running.receive(command.ready_timeout) {
            Ok(message) if message.get("ready") == Some(&Value::Bool(true)) => Ok(running),
            Ok(message) => {
                let reason = message
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("it sent {message} instead of its ready message"));
                running.end();
                Err(reason)
            }
            Err(reason) => {
                let tail = running.stderr_tail();
                running.end();
                Err(format!("{reason}{tail}"))
            }
        }
    }

    /// The zygote's next control message, waiting at most `limit`.
    fn receive(&mut self, limit: Duration) -> Result<Value, String> {
        let mut buffer = vec![0; MESSAGE_MAX];
        // A read with a timeout is not restarted after a signal (signal(7)): the host's
        // SIGCHLD handler, run for every worker that ends, interrupts it with EINTR, which
        // is no failure of the zygote: read again for the time left (the soak found
        // zygotes restarted, and a child forked meanwhile left unreaped, from this).
        let deadline = Instant::now() + limit;
        let read = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            self.control
                .set_read_timeout(Some(left))
                .map_err(|error| error.to_string())?;
            match self.control.read(&mut buffer) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                read => break read,
            }
        };
        let count = match read {
            Ok(0) => {
                // It is exiting: give it a moment to, so its status can be told.
                let deadline = Instant::now() + Duration::from_secs(1);
                while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                    thread::sleep(Duration::from_millis(5));
                }
                let _ = self.child.kill();
                let status = self.child.wait().map(super::ExitReport::from_status);
                return Err(match status {
                    Ok(report) => format!("it {report}"),
                    Err(error) => format!("it closed its control socket ({error})"),
                });
            }
            Ok(count) => count,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "it did not answer within {} s",
                    limit.as_secs_f64()
                ))
            }
            Err(error) => return Err(format!("its control socket failed ({error})")),
        };
        serde_json::from_slice(&buffer[..count])
            .map_err(|error| format!("it sent a malformed message ({error})"))
    }

    /// Asks for one child.
    fn fork(&mut self) -> Result<Forked, String> {
        let pipe = || pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("no pipe: {e}"));
        // (read, write) each.
        let (child_stdin, stdin) = pipe()?;
        let (stdout, child_stdout) = pipe()?;
        let (stderr, child_stderr) = pipe()?;
        let fds = [
            child_stdin.as_raw_fd(),
            child_stdout.as_raw_fd(),
            child_stderr.as_raw_fd(),
        ];
        loop {
            match sendmsg::<()>(
                self.control.as_raw_fd(),
                &[IoSlice::new(b"fork")],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                // Interrupted by a signal before anything was sent: send again.
                Err(nix::errno::Errno::EINTR) => continue,
                Err(error) => return Err(format!("could not send the request ({error})")),
                Ok(_) => break,
            }
        }
        // The child has its copies now (or will never exist).
        drop((child_stdin, child_stdout, child_stderr));
        let message = self.receive(FORK_TIMEOUT)?;
        let Some(pid) = message.get("pid").and_then(Value::as_i64) else {
            return Err(message
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("it answered {message}")));
        };
        let pid = Pid::from_raw(i32::try_from(pid).map_err(|_| format!("it answered pid {pid}"))?);
        // The child does the same first thing; whichever is first, the group exists
        // before anyone signals it. It fails only if the child is already gone, which
        // its reaper reports.
        if let Err(error) = setpgid(pid, pid) {
            log::debug!("setpgid of forked worker {pid}: {error}");
        }
        Ok(Forked {
            pid,
            stdin,
            stdout,
            stderr,
        })
    }

    /// True while the zygote process has not ended (it is reaped here once it has).
    fn alive(&mut self) -> bool {
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                log::warn!(
                    "the zygote {} {}{}",
                    self.child.id(),
                    super::ExitReport::from_status(status),
                    self.stderr_tail()
                );
                false
            }
            Err(_) => false,
        }
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its stderr ended with:\n{}", tail.join("\n"))
        }
    }

    /// Ends the zygote and reaps it; the workers it forked are not its children and
    /// live on.
    fn end(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain_stderr(pid: u32, pipe: std::process::ChildStderr, tail: &Mutex<Vec<String>>) {
    let reader = io::BufReader::new(pipe);
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        let text = String::from_utf8_lossy(&line).into_owned();
        log::debug!("zygote {pid} stderr: {text}");
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == STDERR_TAIL {
            tail.remove(0);
        }
        tail.push(text);
    }
}

/// The zygote's thread: starts it, forks on request, restarts it when it died.
fn serve(
    command: WorkerCommand,
    jobs: mpsc::Receiver<Job>,
    first: mpsc::SyncSender<Result<(), String>>,
) {
    let mut running = match Running::start(&command) {
        Ok(running) => {
            log::info!("a zygote {} is ready", running.child.id());
            let _ = first.send(Ok(()));
            Some(running)
        }
        Err(reason) => {
            let _ = first.send(Err(reason));
            return;
        }
    };
    // When a start last failed: starts are not retried more often than RETRY_AFTER.
    let mut failed_at: Option<Instant> = None;
    let mut restart = |running: &mut Option<Running>, failed_at: &mut Option<Instant>| {
        if let Some(old) = running.take() {
            old.end();
        }
        if failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Err(format!(
                "it could not be restarted less than {} s ago",
                RETRY_AFTER.as_secs()
            ));
        }
        match Running::start(&command) {
            Ok(fresh) => {
                log::info!("the zygote was restarted as {}", fresh.child.id());
                *running = Some(fresh);
                *failed_at = None;
                Ok(())
            }
            Err(reason) => {
                log::warn!("the zygote could not be restarted: {reason}");
                *failed_at = Some(Instant::now());
                Err(reason)
            }
        }
    };
    loop {
        match jobs.recv_timeout(IDLE_CHECK) {
            Ok(Job::Fork(reply)) => {
                let answer = fork_once_or_twice(&mut running, &mut failed_at, &mut restart);
                let _ = reply.send(answer);
            }
            Ok(Job::Pid(reply)) => {
                let pid = match running.as_mut() {
                    Some(zygote) => zygote.alive().then(|| zygote.child.id()),
                    None => None,
                };
                let _ = reply.send(pid);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let dead = match running.as_mut() {
                    Some(zygote) => !zygote.alive(),
                    None => true,
                };
                if dead {
                    let _ = restart(&mut running, &mut failed_at);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(zygote) = running {
        zygote.end();
    }
}

type Restart<'a> = dyn FnMut(&mut Option<Running>, &mut Option<Instant>) -> Result<(), String> + 'a;

/// Forks on the running zygote; if it is gone or fails, restarts it and tries once
/// more.
fn fork_once_or_twice(
    running: &mut Option<Running>,
    failed_at: &mut Option<Instant>,
    restart: &mut Restart<'_>,
) -> Result<Forked, String> {
    let first = match running.as_mut() {
        Some(zygote) => {
            if zygote.alive() {
                match zygote.fork() {
                    Ok(forked) => return Ok(forked),
                    Err(reason) => reason,
                }
            } else {
                "it had ended".into()
            }
        }
        None => "it was not running".into(),
    };
    log::info!("the zygote could not fork ({first}); restarting it");
    restart(running, failed_at)?;
    match running.as_mut() {
        Some(zygote) => zygote.fork(),
        None => Err(first),
    }
}

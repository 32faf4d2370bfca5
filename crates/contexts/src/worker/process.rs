//! A worker's operating-system process: its process group, signals that can never
//! reach a recycled group id, reaping, and the drained stderr.
//!
//! The worker leads its own process group, whose id is the leader's pid. The kernel
//! keeps that id while the leader is a zombie, and may give it to a new process (for
//! instance another context's worker, leading its own group) once the leader is
//! reaped and the group is empty. So the group is signalled only while the leader is
//! not yet reaped, and reaping happens under the same lock: when the leader ends, the
//! reaper first kills whatever is left in its group (the zombie still pins the id),
//! then reaps.

use super::{ExitReport, EXIT_WAIT, KILL_WAIT};
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr};
use tokio::signal::unix::Signal as SignalStream;
use tokio::sync::watch;

/// How often the reaper looks for the leader's end without being told (a safety
/// net: it is woken by every `SIGCHLD`).
const REAP_POLL: Duration = Duration::from_secs(1);

/// How often [`Process::wait`] looks for the leader's end itself.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// The longest stderr line kept; the rest of the line is dropped.
const STDERR_LINE_MAX: usize = 4096;

/// How many of the last stderr lines are kept for diagnosing a failed start.
const STDERR_TAIL: usize = 20;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing held under these locks can be left half-updated by a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The leader as this process knows it: a child it spawned, or one forked for it by
/// a zygote (`zygote.rs`), which is this process's child too (`CLONE_PARENT`) but has
/// no `Child` handle: it is reaped by pid.
pub(super) enum Leader {
    Spawned(Child),
    Forked,
}

/// A worker process and its group.
pub(super) struct Process {
    pid: u32,
    /// The same number as `pid`, as `nix` takes it.
    leader_pid: Pid,
    /// The group id: the leader's pid (another only in tests).
    group: Pid,
    /// The leader until it is reaped. Signals to the group are sent only while it is
    /// here, and it is reaped only under this lock.
    leader: Mutex<Option<Leader>>,
    exit: watch::Sender<Option<ExitReport>>,
    stderr_tail: Mutex<VecDeque<String>>,
}

impl Process {
    /// Takes charge of a child started as the leader of its own process group;
    /// `None` when it has no valid pid.
    pub(super) fn new(child: Child) -> Option<Process> {
        let pid = child.id()?;
        let leader_pid = Pid::from_raw(i32::try_from(pid).ok()?);
        Some(Process::with_group(
            Leader::Spawned(child),
            pid,
            leader_pid,
            leader_pid,
        ))
    }

    /// Takes charge of a child forked by a zygote as the leader of its own process
    /// group; `None` when the pid is not valid.
    pub(super) fn forked(leader_pid: Pid) -> Option<Process> {
        let pid = u32::try_from(leader_pid.as_raw())
            .ok()
            .filter(|&pid| pid > 1)?;
        Some(Process::with_group(
            Leader::Forked,
            pid,
            leader_pid,
            leader_pid,
        ))
    }

    fn with_group(leader: Leader, pid: u32, leader_pid: Pid, group: Pid) -> Process {
        Process {
            pid,
            leader_pid,
            group,
            leader: Mutex::new(Some(leader)),
            exit: watch::Sender::new(None),
            stderr_tail: Mutex::new(VecDeque::new()),
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to the whole group; false when the leader has been reaped (so
    /// the group id may belong to someone else now) or the signal failed.
    pub(super) fn signal_group(&self, signal: Signal) -> bool {
        let leader = lock(&self.leader);
        leader.is_some() && killpg(self.group, signal).is_ok()
    }

    /// How the leader ended, once it has been reaped.
    pub(super) fn exited(&self) -> Option<ExitReport> {
        self.exit.borrow().clone()
    }

    /// A receiver that sees the exit report once the leader is reaped.
    pub(super) fn watch_exit(&self) -> watch::Receiver<Option<ExitReport>> {
        self.exit.subscribe()
    }

    /// How the leader ended, waiting at most `limit` for it to be reaped. Reaps it
    /// here too, so this works even when the reaper task is gone (its runtime shut
    /// down, as an HTTP worker's does when the server stops).
    pub(super) async fn wait(&self, limit: Duration) -> Option<ExitReport> {
        let mut exit = self.watch_exit();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.reap_if_ended();
            if let Some(report) = self.exited() {
                return Some(report);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            let nap = (deadline - now).min(WAIT_POLL);
            // The sender lives in `self`, so `changed` cannot fail while we wait.
            let _ = tokio::time::timeout(nap, exit.changed()).await;
        }
    }

    /// Kills the group (while the leader is not reaped) and waits until the leader is
    /// reaped, at most [`KILL_WAIT`].
    pub(super) async fn kill(&self) -> ExitReport {
        // Failing means it is already gone (or reaped), which is what we want.
        self.signal_group(Signal::SIGKILL);
        match self.wait(KILL_WAIT).await {
            Some(report) => report,
            None => ExitReport::Unknown(format!(
                "it had not ended {} s after SIGKILL",
                KILL_WAIT.as_secs()
            )),
        }
    }

    /// How the leader ended, waiting [`EXIT_WAIT`] for it; kills it if it lingers
    /// (its reply pipe closed, but it did not exit).
    pub(super) async fn wait_or_kill(&self) -> ExitReport {
        match self.wait(EXIT_WAIT).await {
            Some(report) => report,
            None => self.kill().await,
        }
    }

    /// Reaps the leader if it has ended, first killing what is left of its group.
    /// True once the leader is reaped (now or before).
    pub(super) fn reap_if_ended(&self) -> bool {
        let mut guard = lock(&self.leader);
        let Some(leader) = guard.as_mut() else {
            return true;
        };
        // WNOWAIT: look without reaping, so the group id stays pinned meanwhile.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pinned = match waitid(Id::Pid(self.leader_pid), flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => return false,
            Ok(_) => true,
            // Not waitable (it should be): reap below, but signal nobody.
            Err(_) => false,
        };
        if pinned {
            // Whatever the worker started dies with it; ESRCH (none left) is fine.
            let _ = killpg(self.group, Signal::SIGKILL);
        }
        let report = match leader {
            Leader::Spawned(child) => match child.try_wait() {
                Ok(Some(status)) => ExitReport::from_status(status),
                Ok(None) => return false,
                Err(error) => ExitReport::Unknown(error.to_string()),
            },
            // Exactly this pid: never another child (tokio reaps its own).
            Leader::Forked => match waitpid(self.leader_pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => return false,
                Ok(status) => ExitReport::from_wait_status(status),
                Err(error) => ExitReport::Unknown(error.to_string()),
            },
        };
        guard.take();
        drop(guard);
        log::debug!("worker {} {report}", self.pid);
        self.exit.send_replace(Some(report));
        true
    }

    /// Marks the leader reaped without waiting for it (for tests that stand in a
    /// recycled group id).
    #[cfg(test)]
    pub(super) fn forget_leader(&self) -> Option<Child> {
        match lock(&self.leader).take() {
            Some(Leader::Spawned(child)) => Some(child),
            _ => None,
        }
    }

    /// A process whose group id is `group`, not its own pid: tests stand in a
    /// recycled group id this way.
    #[cfg(test)]
    pub(super) fn in_group(child: Child, group: Pid) -> Option<Process> {
        let pid = child.id()?;
        let leader_pid = Pid::from_raw(i32::try_from(pid).ok()?);
        Some(Process::with_group(
            Leader::Spawned(child),
            pid,
            leader_pid,
            group,
        ))
    }

    /// The last lines the worker wrote to stderr, oldest first.
    pub(super) fn stderr_tail(&self) -> Vec<String> {
        lock(&self.stderr_tail).iter().cloned().collect()
    }

    fn keep_stderr_line(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line).into_owned();
        log::debug!("worker {} stderr: {text}", self.pid);
        let mut tail = lock(&self.stderr_tail);
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(text);
    }
}

/// Reaps the leader once it ends: woken by `SIGCHLD` (when the runtime can listen
/// for it) and every [`REAP_POLL`] regardless.
pub(super) async fn reap(process: std::sync::Arc<Process>, mut sigchld: Option<SignalStream>) {
    loop {
        if process.reap_if_ended() {
            return;
        }
        match &mut sigchld {
            Some(stream) => {
                if let Ok(None) = tokio::time::timeout(REAP_POLL, stream.recv()).await {
                    // The signal driver is gone: poll from now on.
                    sigchld = None;
                }
            }
            None => tokio::time::sleep(REAP_POLL).await,
        }
    }
}

/// Reads the worker's stderr until it closes, logging each line and keeping the last.
pub(super) async fn drain_stderr(process: std::sync::Arc<Process>, stderr: ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
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
            process.keep_stderr_line(&line);
            line.clear();
        }
    }
    if !line.is_empty() {
        process.keep_stderr_line(&line);
    }
}

//! The task that owns a worker's pipes: it takes calls from a queue one at a time,
//! writes each request while it keeps reading, enforces each call's timeout, and
//! answers each call through its own oneshot channel.
//!
//! A call therefore belongs to the worker, not to the future that asked for it: a
//! caller that goes away drops only its receiver, and the call still runs to its
//! end (or its timeout) before the next one starts. The reply stream is read all
//! the time, even while writing and while idle, so a large reply can never block a
//! large request, and a worker that dies while idle is noticed at once.

use super::frame::{parse_frame, Frame};
use super::lines::{LineError, LineReader};
use super::process::Process;
use super::{Answer, EventHandler, WorkerError, EXIT_WAIT, INTERRUPT_GRACE, READ_BUFFER};
use nix::sys::signal::Signal;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// One call, as queued for the worker.
pub(super) struct Job {
    /// The request id, also inside `request`.
    pub(super) id: u64,
    /// The request line, newline included.
    pub(super) request: Vec<u8>,
    /// How long the worker has to answer once the call starts.
    pub(super) timeout: Option<Duration>,
    /// Where the answer goes; the receiver may be gone (the caller left).
    pub(super) reply: oneshot::Sender<Result<Answer, WorkerError>>,
    /// Where its event frames go, if anywhere.
    pub(super) events: Option<EventHandler>,
}

/// The call the worker is working on.
struct InFlight {
    id: u64,
    /// How many bytes its request line has.
    request_len: usize,
    /// How much of its request line has been written.
    written: usize,
    /// When the call times out, or, once interrupted, when its grace ends.
    deadline: Option<Instant>,
    interrupted: bool,
    reply: oneshot::Sender<Result<Answer, WorkerError>>,
    events: Option<EventHandler>,
}

impl InFlight {
    /// The call of `job`, started now; its request line goes to `outgoing`.
    fn start(job: Job, outgoing: &mut Vec<u8>) -> InFlight {
        *outgoing = job.request;
        InFlight {
            id: job.id,
            request_len: outgoing.len(),
            written: 0,
            // A timeout too large for the clock is no timeout.
            deadline: job
                .timeout
                .and_then(|timeout| Instant::now().checked_add(timeout)),
            interrupted: false,
            reply: job.reply,
            events: job.events,
        }
    }

    fn answer(self, answer: Result<Answer, WorkerError>) {
        // The caller may have gone: the answer is then dropped, by design.
        let _ = self.reply.send(answer);
    }
}

/// Why the worker stopped being usable.
enum Stop {
    /// Its reply stream ended, or its leader ended.
    Ended,
    /// It sent a line that is not a frame.
    Malformed(String),
    /// Reading its replies failed.
    ReadFailed(io::Error),
    /// Writing a request failed (usually because it is ending).
    WriteFailed(io::Error),
    /// It did not answer within the grace after a timeout's interrupt.
    Unresponsive,
    /// Every handle to it is gone.
    Released,
}

/// The worker's pipes and call queue, owned by [`run`].
pub(super) struct Pipes {
    pub(super) stdin: ChildStdin,
    pub(super) lines: LineReader<BufReader<ChildStdout>>,
    pub(super) jobs: mpsc::UnboundedReceiver<Job>,
}

/// The pipes registered with the current runtime instead of the one that made them, so
/// their owning task can run here. Pipes with bytes already read but not yet handled
/// stay as they are (they work from any runtime, only with a hop between threads).
/// `None` when a pipe was lost on the way (then the worker answers every call with
/// [`WorkerError::Gone`] and is replaced).
pub(super) fn rehome(pipes: Pipes) -> Option<Pipes> {
    let Pipes { stdin, lines, jobs } = pipes;
    let max = lines.max();
    let reader = match lines.into_reader_if_clean() {
        Ok(reader) if reader.buffer().is_empty() => reader,
        Ok(reader) => {
            return Some(Pipes {
                stdin,
                lines: LineReader::new(reader, max),
                jobs,
            })
        }
        Err(lines) => return Some(Pipes { stdin, lines, jobs }),
    };
    let moved = (|| {
        let stdin = std::process::ChildStdin::from(stdin.into_owned_fd()?);
        let stdout = std::process::ChildStdout::from(reader.into_inner().into_owned_fd()?);
        Ok::<_, io::Error>((ChildStdin::from_std(stdin)?, ChildStdout::from_std(stdout)?))
    })();
    match moved {
        Ok((stdin, stdout)) => Some(Pipes {
            stdin,
            lines: LineReader::new(BufReader::with_capacity(READ_BUFFER, stdout), max),
            jobs,
        }),
        Err(error) => {
            log::warn!(
                "a worker's pipes could not be moved to the runtime of its first call: {error}"
            );
            None
        }
    }
}

/// Serves calls until the worker stops being usable, then answers every later call
/// with [`WorkerError::Gone`] until the last handle is dropped.
pub(super) async fn run(process: Arc<Process>, pipes: Pipes) {
    let Pipes {
        mut stdin,
        mut lines,
        mut jobs,
    } = pipes;
    let pid = process.pid();
    let max_line = lines.max();
    let mut exit = process.watch_exit();
    let mut current: Option<InFlight> = None;
    // The request line being written, and how much of it is written. Kept apart from
    // the call: a line once begun is always finished, whatever happens to its call,
    // or the request stream would be out of step.
    let mut outgoing: Vec<u8> = Vec::new();
    let mut sent = 0;
    let stop = loop {
        let unwritten: &[u8] = outgoing.get(sent..).unwrap_or_default();
        let writing = !unwritten.is_empty();
        let idle = current.is_none() && !writing;
        let deadline = current.as_ref().and_then(|call| call.deadline);
        tokio::select! {
            // Replies first: one already in the pipe wins over a deadline or an exit.
            biased;
            line = lines.next_line() => match line {
                Ok(Some(line)) => match parse_frame(line) {
                    Ok(Frame::Reply { id, outcome }) => match current.take() {
                        Some(call) if call.id == id => {
                            let interrupted_on_timeout = call.interrupted;
                            call.answer(Ok(Answer { outcome, interrupted_on_timeout }));
                        }
                        other => {
                            current = other;
                            log::debug!("worker {pid} answered request {id}, which is not waiting; skipped");
                        }
                    },
                    Ok(Frame::Event { id, event }) => match &current {
                        // Handed on at once: the handler never waits, so a reader of
                        // the events cannot slow the worker.
                        Some(call) if call.id == id => {
                            if let Some(events) = &call.events {
                                events(event);
                            }
                        }
                        _ => log::debug!("worker {pid} sent an event for request {id}, which is not running; skipped"),
                    },
                    Ok(Frame::Ready(_)) => log::debug!("worker {pid} sent a second ready line; skipped"),
                    Err(what) => break Stop::Malformed(what),
                },
                Ok(None) => break Stop::Ended,
                Err(LineError::TooLong) => match current.take() {
                    // Only the call in flight can be answered, and only once its
                    // request is all written: so this line is its reply.
                    Some(call) if call.written == call.request_len => call.answer(Err(WorkerError::ReplyTooLarge { limit: max_line })),
                    other => {
                        current = other;
                        log::warn!("worker {pid} sent a line over {} bytes that answers no call; skipped", max_line);
                    }
                },
                Err(LineError::Io(error)) => break Stop::ReadFailed(error),
            },
            written = stdin.write(unwritten), if writing => match written {
                Ok(0) => break Stop::WriteFailed(io::ErrorKind::WriteZero.into()),
                Ok(count) => {
                    sent += count;
                    if sent >= outgoing.len() {
                        // A large request needs no lasting buffer.
                        outgoing = Vec::new();
                        sent = 0;
                    }
                    if let Some(call) = current.as_mut() {
                        call.written += count;
                    }
                }
                Err(error) => break Stop::WriteFailed(error),
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                if let Some(call) = current.as_mut() {
                    if call.interrupted {
                        break Stop::Unresponsive;
                    }
                    log::debug!("worker {pid}: call {} timed out; interrupting", call.id);
                    process.signal_group(Signal::SIGINT);
                    call.interrupted = true;
                    call.deadline = Instant::now().checked_add(INTERRUPT_GRACE);
                }
            },
            // Something the worker started outside its group may hold the pipe open
            // after the worker ended.
            _ = exit.wait_for(Option::is_some) => break Stop::Ended,
            job = jobs.recv(), if idle => match job {
                Some(job) => current = Some(InFlight::start(job, &mut outgoing)),
                None => break Stop::Released,
            },
        }
    };
    drop(stdin);
    let (error, report) = match stop {
        Stop::Released => {
            // Every handle is gone; dropping the last one already sent SIGKILL.
            process.signal_group(Signal::SIGKILL);
            return;
        }
        Stop::Ended => {
            let report = process.wait_or_kill().await;
            (WorkerError::Ended(report.clone()), report)
        }
        Stop::Malformed(what) => (WorkerError::Malformed(what), process.kill().await),
        Stop::ReadFailed(error) => (WorkerError::Pipe(error), process.kill().await),
        Stop::WriteFailed(error) => match process.wait(EXIT_WAIT).await {
            Some(report) => (WorkerError::Ended(report.clone()), report),
            None => (WorkerError::Pipe(error), process.kill().await),
        },
        Stop::Unresponsive => (
            WorkerError::Unresponsive {
                grace: INTERRUPT_GRACE,
            },
            process.kill().await,
        ),
    };
    match current {
        // Not a byte of the request reached the worker: the call never started.
        Some(call) if call.written == 0 && matches!(error, WorkerError::Ended(_)) => {
            call.answer(Err(WorkerError::Gone(report.clone())));
        }
        Some(call) => call.answer(Err(error)),
        None => log::debug!("worker {pid} {report} while idle"),
    }
    while let Some(job) = jobs.recv().await {
        let _ = job.reply.send(Err(WorkerError::Gone(report.clone())));
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

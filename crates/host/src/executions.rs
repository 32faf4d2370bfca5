//! Executions (PROTOCOL.md section 10): every `execute` gets an id and runs in a task
//! the host owns, so a client that goes away never cancels it; its output is kept, as
//! numbered events, in a per-instance log that readers replay and follow.
//!
//! Language-neutral: an instance reports live output through an [`EventSink`] (see
//! [`crate::Instance::execute_live`]); what its final result holds (messages, value)
//! becomes the rest of the events. The log only appends and wakes readers: a reader,
//! however slow, holds a cursor into it and nothing else, so it can neither stall the
//! instance nor make the host buffer more for it. What an execution keeps is bounded by
//! [`ExecutionLimits::output_cap`] bytes of output (then one `truncated` event), and the
//! log keeps [`ExecutionLimits::history`] executions per instance, each for
//! [`ExecutionLimits::retention`] after it ended.

use crate::{ExecuteResult, HostError, Json};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How many executions of one instance are kept by default.
pub const DEFAULT_HISTORY: usize = 64;

/// How long an ended execution is kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(600);

/// The most output (stdout and stderr text, in bytes) one execution keeps: the same cap
/// a context puts on one call's printed output.
pub const OUTPUT_CAP: usize = 1 << 20;

/// The most bytes (about) the ended executions of one instance keep, results
/// included; past it the oldest are dropped (the newest ended one always stays).
pub const LOG_BYTES: usize = 64 << 20;

/// The longest execution id a client may choose.
const MAX_ID: usize = 64;

/// What the execution log keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionLimits {
    /// Executions kept per instance (running ones are never dropped).
    pub history: usize,
    /// How long an execution is kept after it ended.
    pub retention: Duration,
    /// Output bytes kept per execution.
    pub output_cap: usize,
    /// Bytes the ended executions of one instance keep (output and results).
    pub log_bytes: usize,
}

impl Default for ExecutionLimits {
    fn default() -> Self {
        ExecutionLimits {
            history: DEFAULT_HISTORY,
            retention: DEFAULT_RETENTION,
            output_cap: OUTPUT_CAP,
            log_bytes: LOG_BYTES,
        }
    }
}

/// Which stream a piece of printed output was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    /// `stdout` or `stderr`: the event's and the message's type.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionStatus {
    Running,
    /// It ended with a result and no error message.
    Done,
    /// It ended after an `interrupt` of its instance.
    Interrupted,
    /// It ended with an error: the call failed, or its result has an error message.
    Failed,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Done => "done",
            ExecutionStatus::Interrupted => "interrupted",
            ExecutionStatus::Failed => "failed",
        }
    }
}

/// One event of an execution: `stdout`, `stderr`, `message`, `value`, `truncated` or
/// `done`, numbered from 1 without gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionEvent {
    /// Its sequence number in the execution, from 1.
    pub seq: u64,
    /// Its kind, the SSE `event:` name.
    pub kind: &'static str,
    /// Its data: a string for output, a message object, a packed value, or the
    /// `done` summary `{"status", "events"}`; a value is passed on as the context sent it.
    pub data: Json,
}

/// What changes while an execution runs, behind its lock.
struct Record {
    status: ExecutionStatus,
    ended_ms: Option<u64>,
    events: Vec<ExecutionEvent>,
    /// Output bytes kept so far.
    output_bytes: usize,
    /// Set once output went over the cap; later output is dropped.
    truncated: bool,
    /// Set when output came live from the instance: its result's own stdout/stderr
    /// messages are then the same text and are not added again.
    live: bool,
    interrupt_requested: bool,
    outcome: Option<Result<ExecuteResult, HostError>>,
    /// About how many bytes it holds once ended (output, and the result twice: as
    /// events and as the outcome).
    weight: usize,
}

/// One execution: its id, its events and, once ended, its outcome.
pub struct Execution {
    id: String,
    started_ms: u64,
    output_cap: usize,
    record: Mutex<Record>,
    /// The number of events, for readers and waiters to wait on.
    changed: watch::Sender<usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under this lock is a push or a field store: a panic cannot leave it
    // half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn seconds(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// The longest prefix of `text` with at most `max` bytes that ends on a char boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Execution {
    fn new(id: String, output_cap: usize) -> Self {
        Execution {
            id,
            started_ms: now_ms(),
            output_cap,
            record: Mutex::new(Record {
                status: ExecutionStatus::Running,
                ended_ms: None,
                events: Vec::new(),
                output_bytes: 0,
                truncated: false,
                live: false,
                interrupt_requested: false,
                outcome: None,
                weight: 0,
            }),
            changed: watch::channel(0).0,
        }
    }

    /// The execution's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where it stands now.
    pub fn status(&self) -> ExecutionStatus {
        lock(&self.record).status
    }

    fn push(&self, record: &mut Record, kind: &'static str, data: impl Into<Json>) {
        let seq = record.events.len() as u64 + 1;
        let data = data.into();
        record.events.push(ExecutionEvent { seq, kind, data });
        // Never blocks, and works with no receiver.
        self.changed.send_replace(record.events.len());
    }

    /// Adds output within the cap; the first time it is reached, a `truncated` event.
    fn add_output(&self, record: &mut Record, stream: OutputStream, text: &str) {
        if text.is_empty() || record.truncated || record.status != ExecutionStatus::Running {
            return;
        }
        let room = self.output_cap.saturating_sub(record.output_bytes);
        let kept = prefix(text, room);
        if !kept.is_empty() {
            record.output_bytes += kept.len();
            self.push(record, stream.as_str(), Value::String(kept.to_string()));
        }
        if kept.len() < text.len() {
            record.truncated = true;
            let message = format!(
                "[output truncated: this execution's events keep at most {} bytes of output; the rest is not kept]",
                self.output_cap
            );
            self.push(record, "truncated", json!({ "message": message }));
        }
    }

    /// Live output from the instance.
    fn output(&self, stream: OutputStream, text: &str) {
        let mut record = lock(&self.record);
        record.live = true;
        self.add_output(&mut record, stream, text);
    }

    fn request_interrupt(&self) {
        let mut record = lock(&self.record);
        if record.status == ExecutionStatus::Running {
            record.interrupt_requested = true;
        }
    }

    /// Ends the execution with the instance's outcome: its messages and value become
    /// events, then `done`.
    pub(crate) fn finish(&self, outcome: Result<ExecuteResult, HostError>) {
        let mut record = lock(&self.record);
        if record.status != ExecutionStatus::Running {
            return;
        }
        let mut failed = false;
        match &outcome {
            Ok(result) => {
                for message in &result.messages {
                    let kind = message.get("type").and_then(Value::as_str);
                    let stream = match kind {
                        Some("stdout") => Some(OutputStream::Stdout),
                        Some("stderr") => Some(OutputStream::Stderr),
                        _ => None,
                    };
                    match stream {
                        // Already sent live.
                        Some(_) if record.live => {}
                        Some(stream) => {
                            let text = message.get("message").and_then(Value::as_str);
                            self.add_output(&mut record, stream, text.unwrap_or_default());
                        }
                        None => {
                            failed |= kind == Some("error");
                            self.push(&mut record, "message", message.clone());
                        }
                    }
                }
                if !result.value.is_null() {
                    // Shares the value's text, when it is text.
                    self.push(&mut record, "value", result.value.clone());
                }
            }
            Err(error) => {
                failed = true;
                let message = json!({"type": "error", "message": error.to_string()});
                self.push(&mut record, "message", message);
            }
        }
        record.status = if record.interrupt_requested {
            ExecutionStatus::Interrupted
        } else if failed {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Done
        };
        record.ended_ms = Some(now_ms());
        let result_bytes = match &outcome {
            Ok(result) => {
                result.value.text_len()
                    + result
                        .messages
                        .iter()
                        .map(|message| message.to_string().len())
                        .sum::<usize>()
            }
            Err(error) => error.to_string().len(),
        };
        record.weight = record.output_bytes + 2 * result_bytes;
        record.outcome = Some(outcome);
        let summary = json!({"status": record.status.as_str(), "events": record.events.len()});
        self.push(&mut record, "done", summary);
    }

    /// Waits for the execution to end and returns its outcome (the same for every waiter).
    pub async fn outcome(&self) -> Result<ExecuteResult, HostError> {
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(outcome) = &lock(&self.record).outcome {
                return outcome.clone();
            }
            // The sender lives as long as `self`, so this cannot fail while we wait.
            if changed.changed().await.is_err() {
                return Err(HostError::Internal("the execution was lost".into()));
            }
        }
    }

    /// `{"id", "status", "started", "ended", "messages", "value"}`: while running, the
    /// messages are the output so far.
    pub fn summary(&self) -> Summary {
        let record = lock(&self.record);
        let (messages, value) = match &record.outcome {
            Some(Ok(result)) => (result.messages.clone(), result.value.clone()),
            Some(Err(error)) => (
                vec![json!({"type": "error", "message": error.to_string()})],
                Json::NULL,
            ),
            None => (messages_so_far(&record.events), Json::NULL),
        };
        Summary {
            ended: record.ended_ms.map(seconds).unwrap_or(Value::Null),
            id: self.id.clone(),
            messages,
            started: seconds(self.started_ms),
            status: record.status.as_str(),
            value,
        }
    }

    /// A reader of the events after `after` (0 for all): see [`EventCursor`].
    pub fn events(self: &Arc<Self>, after: u64) -> EventCursor {
        EventCursor {
            changed: self.changed.subscribe(),
            execution: self.clone(),
            next: after,
        }
    }

    /// About how many bytes it holds; 0 while running.
    fn weight(&self) -> usize {
        lock(&self.record).weight
    }

    fn ended_before(&self, deadline_ms: u64) -> bool {
        lock(&self.record)
            .ended_ms
            .is_some_and(|ended| ended <= deadline_ms)
    }
}

/// `GET /<name>/executions/<id>`: `{"ended", "id", "messages", "started", "status",
/// "value"}` (fields in that order, as every JSON object the host writes is sorted).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub ended: Value,
    pub id: String,
    pub messages: Vec<Value>,
    pub started: Value,
    pub status: &'static str,
    pub value: Json,
}

/// The output and messages among `events`, as execute messages (consecutive output of
/// one stream joined).
fn messages_so_far(events: &[ExecutionEvent]) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::new();
    for event in events {
        match (event.kind, &event.data) {
            (kind @ ("stdout" | "stderr"), Json::Tree(Value::String(text))) => {
                let last = messages.last_mut().filter(|m| m["type"] == kind);
                match last.and_then(|m| m.get_mut("message")) {
                    Some(Value::String(joined)) => joined.push_str(text),
                    _ => messages.push(json!({"type": kind, "message": text})),
                }
            }
            ("message", Json::Tree(message)) => messages.push(message.clone()),
            ("truncated", Json::Tree(data)) => {
                messages.push(json!({"type": "warning", "message": data["message"]}))
            }
            _ => {}
        }
    }
    messages
}

/// Reads one execution's events in order: those already kept at once, then each new
/// one as it comes; ends after `done`. It holds only its position, so a reader that
/// stops reading costs nothing but the cursor.
pub struct EventCursor {
    execution: Arc<Execution>,
    changed: watch::Receiver<usize>,
    /// The sequence number of the last event returned.
    next: u64,
}

impl EventCursor {
    /// The next event, waiting for it while the execution runs; `None` after `done`.
    pub async fn next(&mut self) -> Option<ExecutionEvent> {
        loop {
            {
                let record = lock(&self.execution.record);
                if let Some(event) = record.events.get(self.next as usize) {
                    self.next = event.seq;
                    return Some(event.clone());
                }
                if record.outcome.is_some() {
                    return None;
                }
            }
            if self.changed.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// What an instance reports live while its `execute` runs.
#[derive(Clone)]
pub struct EventSink {
    execution: Option<Arc<Execution>>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.execution.as_ref().map(|execution| execution.id());
        f.debug_struct("EventSink").field("execution", &id).finish()
    }
}

impl EventSink {
    /// A sink that keeps nothing, for calls outside an execution.
    pub fn discard() -> Self {
        EventSink { execution: None }
    }

    /// Printed output, as it is produced. Never blocks: it is appended to the log.
    pub fn output(&self, stream: OutputStream, text: &str) {
        if let Some(execution) = &self.execution {
            execution.output(stream, text);
        }
    }
}

/// Checks a client's execution id: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Takes the `id` out of an `execute` argument, checked; `None` when there is none.
pub(crate) fn take_id(arg: &mut Value) -> Result<Option<String>, HostError> {
    let Value::Object(map) = arg else {
        return Ok(None);
    };
    match map.remove("id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if valid_id(&id) => Ok(Some(id)),
        Some(_) => Err(HostError::BadArgument(
            "`id` must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'".into(),
        )),
    }
}

/// A fresh id for an execute that came without one.
pub(crate) fn fresh_id() -> String {
    let random: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    format!("x{random}")
}

/// One instance's executions, newest last.
pub(crate) struct ExecutionLog {
    limits: ExecutionLimits,
    list: Mutex<VecDeque<Arc<Execution>>>,
}

impl ExecutionLog {
    pub(crate) fn new(limits: ExecutionLimits) -> Self {
        ExecutionLog {
            limits,
            list: Mutex::new(VecDeque::new()),
        }
    }

    /// Drops executions that ended longer ago than the retention, then the oldest
    /// ended ones beyond the history or the byte budget; running ones always stay, and
    /// so does the newest ended one.
    fn prune(&self, list: &mut VecDeque<Arc<Execution>>) {
        let retention = u64::try_from(self.limits.retention.as_millis()).unwrap_or(u64::MAX);
        let deadline = now_ms().saturating_sub(retention);
        list.retain(|execution| !execution.ended_before(deadline));
        let mut bytes: usize = list.iter().map(|e| e.weight()).sum();
        while bytes > self.limits.log_bytes {
            let ended: Vec<usize> = list
                .iter()
                .enumerate()
                .filter(|(_, e)| e.status() != ExecutionStatus::Running)
                .map(|(at, _)| at)
                .collect();
            if ended.len() < 2 {
                break;
            }
            if let Some(dropped) = list.remove(ended[0]) {
                bytes = bytes.saturating_sub(dropped.weight());
            }
        }
        while list.len() > self.limits.history {
            let oldest_ended = list
                .iter()
                .position(|e| e.status() != ExecutionStatus::Running);
            match oldest_ended {
                Some(at) => {
                    list.remove(at);
                }
                None => break,
            }
        }
    }

    /// The execution with `id`, if kept.
    pub(crate) fn find(&self, id: &str) -> Option<Arc<Execution>> {
        let mut list = lock(&self.list);
        self.prune(&mut list);
        list.iter().find(|e| e.id == id).cloned()
    }

    /// The execution with `id` and false when it is kept, else a new one and true.
    pub(crate) fn find_or_start(&self, id: String) -> (Arc<Execution>, bool) {
        let mut list = lock(&self.list);
        self.prune(&mut list);
        if let Some(execution) = list.iter().find(|e| e.id == id) {
            return (execution.clone(), false);
        }
        let execution = Arc::new(Execution::new(id, self.limits.output_cap));
        list.push_back(execution.clone());
        self.prune(&mut list);
        (execution, true)
    }

    /// Marks every running execution as interrupted by the caller.
    pub(crate) fn interrupt_running(&self) {
        for execution in lock(&self.list).iter() {
            execution.request_interrupt();
        }
    }
}

/// Runs `execution` to its end with `run`, reporting live output to it, in a task
/// spawned on the current tokio runtime, so the caller may go away; `guard` is dropped
/// when it ends. Without a runtime nothing could own the task: the execution fails.
pub(crate) fn spawn<F, G>(execution: Arc<Execution>, run: F, guard: G)
where
    F: FnOnce(EventSink) -> crate::BoxFuture<'static, Result<ExecuteResult, HostError>>,
    G: Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        execution.finish(Err(HostError::Internal(
            "executions need a tokio runtime to run on".into(),
        )));
        return;
    };
    let sink = EventSink {
        execution: Some(execution.clone()),
    };
    let future = run(sink);
    runtime.spawn(async move {
        // Ends the execution even if the task is dropped first (its runtime shut down),
        // so no waiter waits forever.
        let ender = EndOnDrop(execution);
        let outcome = future.await;
        // The instance is idle again before anyone hears the outcome, so a client
        // that reads its state right after sees it idle.
        drop(guard);
        ender.0.finish(outcome);
    });
}

/// Fails its execution when dropped before the execution ended.
struct EndOnDrop(Arc<Execution>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0.finish(Err(HostError::Internal(
            "the host stopped before the execution ended".into(),
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_events(execution: &Execution) -> Vec<(&'static str, Value)> {
        lock(&execution.record)
            .events
            .iter()
            .map(|e| (e.kind, e.data.to_value().expect("JSON")))
            .collect()
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("a"));
        assert!(valid_id(&"x".repeat(64)));
        assert!(valid_id("A-z_09"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"x".repeat(65)));
        assert!(!valid_id("a b"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id("é"));
        let mut arg = json!({"code": "1", "id": "ok-1"});
        assert_eq!(take_id(&mut arg), Ok(Some("ok-1".into())));
        assert_eq!(arg, json!({"code": "1"}));
        assert!(take_id(&mut json!({"id": 5})).is_err());
        assert!(valid_id(&fresh_id()));
    }

    #[test]
    fn live_output_is_not_repeated_from_the_result_and_done_counts_the_events() {
        let execution = Execution::new("a".into(), 100);
        execution.output(OutputStream::Stdout, "0\n");
        execution.finish(Ok(ExecuteResult::from_value(json!({
            "messages": [{"type": "stdout", "message": "0\n"}, {"type": "warning", "message": "w"}],
            "value": {"type": "integer", "data": 1}
        }))));
        let events = text_events(&execution);
        assert_eq!(
            events,
            vec![
                ("stdout", json!("0\n")),
                ("message", json!({"type": "warning", "message": "w"})),
                ("value", json!({"type": "integer", "data": 1})),
                ("done", json!({"status": "done", "events": 3})),
            ]
        );
    }

    #[test]
    fn a_result_without_live_output_is_replayed_as_events() {
        let execution = Execution::new("a".into(), 100);
        execution.finish(Ok(ExecuteResult::from_value(json!({
            "messages": [{"type": "stderr", "message": "e"}, {"type": "error", "message": "bad"}],
            "value": null
        }))));
        let events = text_events(&execution);
        assert_eq!(events[0], ("stderr", json!("e")));
        assert_eq!(
            events[2],
            ("done", json!({"status": "failed", "events": 2}))
        );
    }

    #[test]
    fn output_over_the_cap_is_cut_once_and_said() {
        let execution = Execution::new("a".into(), 10);
        execution.output(OutputStream::Stdout, "123456");
        execution.output(OutputStream::Stderr, "éééé");
        execution.output(OutputStream::Stdout, "more");
        let events = text_events(&execution);
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[1], ("stderr", json!("éé")));
        assert_eq!(events[2].0, "truncated");
        assert!(events[2].1["message"]
            .as_str()
            .expect("ok")
            .contains("10 bytes"));
    }

    #[test]
    fn an_interrupt_marks_the_running_execution() {
        let log = ExecutionLog::new(ExecutionLimits::default());
        let (execution, fresh) = log.find_or_start("a".into());
        assert!(fresh);
        log.interrupt_running();
        execution.finish(Ok(ExecuteResult::from_value(
            json!({"messages": [], "value": null}),
        )));
        assert_eq!(execution.status(), ExecutionStatus::Interrupted);
        let (again, fresh) = log.find_or_start("a".into());
        assert!(!fresh);
        assert!(Arc::ptr_eq(&execution, &again));
    }

    #[test]
    fn the_log_keeps_the_newest_ended_and_every_running_one() {
        let log = ExecutionLog::new(ExecutionLimits {
            history: 2,
            ..ExecutionLimits::default()
        });
        let (first, _) = log.find_or_start("1".into());
        for id in ["2", "3"] {
            let (execution, _) = log.find_or_start(id.into());
            execution.finish(Ok(ExecuteResult::from_value(
                json!({"messages": [], "value": null}),
            )));
        }
        // "1" still runs, so the oldest ended one ("2") went.
        assert!(log.find("1").is_some());
        assert!(log.find("2").is_none());
        assert!(log.find("3").is_some());
        first.finish(Ok(ExecuteResult::from_value(
            json!({"messages": [], "value": null}),
        )));
        let expired = ExecutionLog::new(ExecutionLimits {
            retention: Duration::ZERO,
            ..ExecutionLimits::default()
        });
        let (execution, _) = expired.find_or_start("x".into());
        execution.finish(Ok(ExecuteResult::from_value(
            json!({"messages": [], "value": null}),
        )));
        std::thread::sleep(Duration::from_millis(2));
        assert!(expired.find("x").is_none());
    }

    #[test]
    fn the_log_drops_the_oldest_results_beyond_its_byte_budget_but_keeps_the_newest() {
        let log = ExecutionLog::new(ExecutionLimits {
            log_bytes: 1000,
            ..ExecutionLimits::default()
        });
        let big = json!({"messages": [], "value": {"type": "string", "data": "x".repeat(400)}});
        for id in ["1", "2", "3"] {
            let (execution, _) = log.find_or_start(id.into());
            execution.finish(Ok(ExecuteResult::from_value(big.clone())));
        }
        assert!(log.find("1").is_none());
        assert!(log.find("2").is_none());
        assert!(
            log.find("3").is_some(),
            "the newest stays whatever its size"
        );
    }

    #[test]
    fn a_cursor_resumes_after_a_sequence_number_and_ends_after_done() {
        let execution = Arc::new(Execution::new("a".into(), 100));
        execution.output(OutputStream::Stdout, "a");
        execution.output(OutputStream::Stdout, "b");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("ok");
        runtime.block_on(async {
            let mut cursor = execution.events(1);
            assert_eq!(cursor.next().await.expect("ok").seq, 2);
            let waiting = tokio::spawn({
                let execution = execution.clone();
                async move {
                    let mut cursor = execution.events(2);
                    let mut seen = Vec::new();
                    while let Some(event) = cursor.next().await {
                        seen.push(event.kind);
                    }
                    seen
                }
            });
            tokio::task::yield_now().await;
            execution.finish(Ok(ExecuteResult::from_value(
                json!({"messages": [], "value": null}),
            )));
            assert_eq!(waiting.await.expect("ok"), vec!["done"]);
            assert_eq!(execution.outcome().await, Ok(ExecuteResult::default()));
        });
    }
}

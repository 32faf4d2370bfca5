//! Tests of the worker layer against small worker scripts run by the real `python3`.

use super::*;
use nix::unistd::Pid;
use proptest::prelude::*;
use serde_json::json;

/// A tiny worker in Python (the only interpreter the tests can count on), driven
/// by the method name so each test can provoke one behaviour.
const TEST_WORKER: &str = r#"
import json, os, signal, subprocess, sys, time
out = sys.stdout.buffer
def send(obj):
    out.write(json.dumps(obj).encode() + b"\n"); out.flush()
if len(sys.argv) > 1 and sys.argv[1] == "banner-start":
    out.write(b"Welcome to this Python!\n{\"not\": \"a frame\"}\n")
    out.write(b'{"id": 1, "result": "not a reply yet"}\n' + b"y" * 5000 + b"\n")
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
    elif m == "big":
        time.sleep(a["delay"]); send({"id": i, "result": "x" * a["size"]})
    elif m == "events":
        send({"id": i - 1, "event": {"type": "stdout", "text": "stale"}})
        for n in range(a):
            send({"id": i, "event": {"type": "stdout", "text": str(n)}})
        send({"id": i, "result": "done"})
    elif m == "child":
        send({"id": i, "result": subprocess.Popen(["sleep", "60"]).pid})
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
        assert_eq!(answer.outcome, Ok(json!({"n": n}).into()));
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
async fn events_reach_their_call_in_order_before_its_answer() {
    let worker = start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler: EventHandler = {
        let seen = seen.clone();
        Arc::new(move |event: Value| seen.lock().expect("ok").push(event["text"].clone()))
    };
    let answer = worker
        .submit_with_events("events", &json!(3), None, Some(handler))
        .expect("submitted")
        .await
        .expect("an answer");
    assert_eq!(answer.outcome, Ok(json!("done").into()));
    // The event for the stale id was skipped; the rest came in order.
    assert_eq!(
        *seen.lock().expect("ok"),
        vec![json!("0"), json!("1"), json!("2")]
    );
    // Without a handler, events are dropped and the call is answered as usual.
    let plain = worker
        .call("events", &json!(2), None)
        .await
        .expect("an answer");
    assert_eq!(plain.outcome, Ok(json!("done").into()));
}

#[tokio::test]
async fn stale_replies_are_skipped() {
    let worker = start().await;
    let answer = worker
        .call("stale-then-echo", &json!(5), None)
        .await
        .expect("answer");
    assert_eq!(answer.outcome, Ok(json!(5).into()));
    let answer = worker.call("echo", &json!(6), None).await.expect("answer");
    assert_eq!(answer.outcome, Ok(json!(6).into()));
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
    assert_eq!(answer.outcome, Ok(json!("interrupted").into()));
    assert!(answer.interrupted_on_timeout);
    // Still alive and in step.
    let answer = worker.call("echo", &json!(1), None).await.expect("answer");
    assert_eq!(answer.outcome, Ok(json!(1).into()));

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
    assert_eq!(answer.outcome, Ok(json!("interrupted").into()));
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
    let input: &[u8] = b"abc\ndefghij\nxy\nz";
    let mut reader = LineReader::new(input, 5);
    assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"abc"[..]));
    assert!(matches!(reader.next_line().await, Err(LineError::TooLong)));
    // The long line was skipped through its newline: the stream is still in step.
    assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"xy"[..]));
    // An unterminated fragment at the end is not a line.
    assert!(matches!(reader.next_line().await, Ok(None)));

    let input: &[u8] = b"one\ntwo\n";
    let mut reader = LineReader::new(input, 100);
    assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"one"[..]));
    assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"two"[..]));
    assert!(matches!(reader.next_line().await, Ok(None)));
}

/// A test worker whose lines are limited to `max_line` bytes.
async fn start_limited(max_line: usize, extra: &[&str]) -> Worker {
    Worker::spawn_with(
        &command(extra),
        WorkerLimits {
            max_line,
            ..WorkerLimits::default()
        },
    )
    .await
    .expect("the test worker starts")
}

/// Finding 14: a caller that stops waiting takes nothing with it. Its call's timeout
/// still interrupts the worker, so the next call is answered at once, not after the
/// abandoned call's 30 s.
#[tokio::test]
async fn an_abandoned_call_keeps_its_timeout() {
    let worker = start().await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        worker.call("sleep", &json!(30), Some(Duration::from_millis(300))),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up first");
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        worker.call("echo", &json!("next"), None),
    )
    .await
    .expect("the next call is answered once the abandoned one timed out")
    .expect("an answer");
    assert_eq!(answer.outcome, Ok(json!("next").into()));
    assert!(!answer.interrupted_on_timeout);
}

/// Finding 14: a caller that gave up while a large reply was on its way, then a call
/// with a large request. Writing the request never waits on a worker that is itself
/// blocked writing: the stale reply is read (and dropped) while the request goes out.
#[tokio::test]
async fn an_abandoned_large_reply_never_blocks_a_large_request() {
    let worker = start().await;
    let size = 8 << 20;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        worker.call("big", &json!({"delay": 0.5, "size": size}), None),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up first");
    let large = "y".repeat(size);
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        worker.call("echo", &json!(large), None),
    )
    .await
    .expect("no deadlock")
    .expect("an answer");
    assert_eq!(answer.outcome, Ok(json!(large).into()));
}

/// Calls can be submitted now and awaited later (or never); they run in the order
/// they were submitted, one at a time.
#[tokio::test]
async fn submitted_calls_run_in_order_and_are_awaited_separately() {
    let worker = start().await;
    let first = worker
        .submit("sleep", &json!(0.2), None)
        .expect("submitted");
    let dropped = worker
        .submit("echo", &json!("dropped"), None)
        .expect("submitted");
    let third = worker.submit("echo", &json!(3), None).expect("submitted");
    assert!(first.id() < dropped.id() && dropped.id() < third.id());
    drop(dropped);
    let third = third.await.expect("an answer");
    assert_eq!(third.outcome, Ok(json!(3).into()));
    let first = first.await.expect("an answer");
    assert_eq!(first.outcome, Ok(json!("slept").into()));
}

/// Finding 15: a reply over the line limit is discarded as it streams in, its call
/// gets a clear error, and the worker lives on, in step, with its state.
#[tokio::test]
async fn an_oversized_reply_is_an_error_and_the_worker_lives_on() {
    let limit = 1 << 20;
    let worker = start_limited(limit, &[]).await;
    let pid = worker.pid();
    let answer = worker
        .call("big", &json!({"delay": 0, "size": limit - 100}), None)
        .await
        .expect("a reply under the limit");
    assert_eq!(answer.outcome, Ok(json!("x".repeat(limit - 100)).into()));

    let error = worker
        .call("big", &json!({"delay": 0, "size": 3 * limit}), None)
        .await
        .expect_err("too large");
    assert!(
        matches!(error, WorkerError::ReplyTooLarge { limit: l } if l == limit),
        "{error:?}"
    );
    assert!(!error.worker_lost());
    assert_eq!(
        error.to_string(),
        "its reply was larger than 1 MiB, so it was discarded"
    );
    assert_eq!(worker.exited(), None);
    let answer = worker.call("echo", &json!(5), None).await.expect("in step");
    assert_eq!(answer.outcome, Ok(json!(5).into()));
    assert_eq!(worker.pid(), pid);
}

/// Finding 15: a line over the limit is dropped as it arrives, never held whole, and a
/// large line's buffer is given back once the next line is read.
#[tokio::test]
async fn long_lines_are_never_held_and_big_buffers_are_given_back() {
    let mut input = vec![b'a'; 1000];
    input.extend_from_slice(b"\nok\n");
    let mut reader = LineReader::new(&input[..], 100);
    assert!(matches!(reader.next_line().await, Err(LineError::TooLong)));
    assert!(reader.capacity() <= 100, "{}", reader.capacity());
    assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"ok"[..]));

    let big = 4 * lines::RETAINED_CAPACITY;
    let mut input = vec![b'b'; big];
    input.extend_from_slice(b"\nsmall\n");
    let mut reader = LineReader::new(&input[..], MAX_LINE);
    assert_eq!(
        reader.next_line().await.ok().flatten().map(<[u8]>::len),
        Some(big)
    );
    assert_eq!(reader.next_line().await.ok().flatten(), Some(&b"small"[..]));
    assert!(
        reader.capacity() <= lines::RETAINED_CAPACITY,
        "the buffer still holds {} bytes",
        reader.capacity()
    );
}

/// Finding 18, at this layer: a worker killed while idle is noticed without a call,
/// and a call made after that says the worker was gone before it was sent (so a
/// context may run it on a fresh worker).
#[tokio::test]
async fn a_worker_that_died_while_idle_is_gone_before_the_next_call() {
    let worker = start().await;
    let pid = worker.pid();
    nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while worker.exited().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = worker
        .call("echo", &json!(1), None)
        .await
        .expect_err("gone");
    assert!(
        matches!(&error, WorkerError::Gone(ExitReport::Signal(name)) if name == "SIGKILL"),
        "{error:?}"
    );
    assert!(error.worker_lost());
}

/// Finding 20: once the leader is reaped, its group id may be given to another
/// process group (say another context's worker), so it is never signalled again.
/// The other group here stands in for one that got the recycled id.
#[tokio::test]
async fn a_reaped_leader_never_signals_its_group_id_again() {
    use std::os::unix::process::CommandExt;
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .expect("sleep starts");
    let other_group = Pid::from_raw(other.id() as i32);
    let leader = Command::new("true")
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("true starts");
    let process = process::Process::in_group(leader, other_group).expect("a pid");
    let mut leader = process.forget_leader().expect("the leader");
    leader.wait().await.expect("reaped");
    assert!(!process.signal_group(Signal::SIGKILL));
    assert!(!process.signal_group(Signal::SIGINT));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = other.try_wait().expect("try_wait");
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(status, None, "the other group was signalled");
}

/// Finding 20's other half: what the worker started in its group dies with it, while
/// the group id is still its own, and the worker layer needs no kill after that.
#[tokio::test]
async fn what_a_worker_started_ends_with_it() {
    let worker = start().await;
    let answer = worker.call("child", &json!({}), None).await.expect("a pid");
    let child = answer
        .outcome
        .expect("a pid")
        .into_value()
        .expect("JSON")
        .as_u64()
        .expect("a number") as u32;
    let error = worker
        .call("exit", &json!(0), None)
        .await
        .expect_err("exits");
    assert_eq!(error.to_string(), "it exited with status 0");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !has_ended(child) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker's child {child} outlived it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True when `pid` no longer runs: gone, or a zombie waiting to be reaped.
fn has_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Finding 22: lines before the ready line (a banner from start-up hooks, JSON that
/// is not the ready line, even an over-long line) are skipped, not a failed start.
#[tokio::test]
async fn lines_before_the_ready_line_are_skipped() {
    let worker = start_limited(1000, &["banner-start"]).await;
    assert_eq!(worker.ready()["ready"], json!(true));
    let answer = worker.call("echo", &json!(1), None).await.expect("answer");
    assert_eq!(answer.outcome, Ok(json!(1).into()));
}

/// A worker outlives the runtime that started it only as a process to kill: killing
/// it from another runtime still reaps it at once, and calls say it is gone.
/// Issue 9: with `Owner::FirstCaller` the owning task runs on the runtime of the first
/// call, so calls from there need nothing of the starter's runtime; here it is never
/// driven again after the start (with `Owner::Starter` these calls would wait forever).
#[test]
fn a_first_caller_owner_serves_calls_without_the_starters_runtime() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let limits = |owner| WorkerLimits {
        owner,
        ..WorkerLimits::default()
    };
    let starter = runtime();
    let caller = runtime();
    let worker = starter
        .block_on(Worker::spawn_with(
            &command(&[]),
            limits(Owner::FirstCaller),
        ))
        .expect("a worker");
    caller.block_on(async {
        for n in 1..=3 {
            let answer = tokio::time::timeout(
                Duration::from_secs(20),
                worker.call("echo", &json!({"n": n}), None),
            )
            .await
            .expect("an answer without the starter's runtime")
            .expect("a reply");
            assert_eq!(answer.outcome, Ok(json!({"n": n}).into()));
        }
    });
    // The contrast: owned by the idle starter, a call is never answered.
    let stuck = starter
        .block_on(Worker::spawn_with(&command(&[]), limits(Owner::Starter)))
        .expect("a worker");
    caller.block_on(async {
        let waited = tokio::time::timeout(
            Duration::from_millis(500),
            stuck.call("echo", &json!(1), None),
        )
        .await;
        assert!(
            waited.is_err(),
            "answered without its owner running: {waited:?}"
        );
    });
    starter.block_on(async {
        worker.kill().await;
        stuck.kill().await;
    });
}

#[test]
fn a_worker_is_killed_and_reaped_after_its_runtime_is_gone() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let owner = runtime();
    let worker = owner.block_on(start());
    let pid = worker.pid();
    drop(owner);
    let other = runtime();
    let started = std::time::Instant::now();
    assert_eq!(
        other.block_on(worker.kill()),
        ExitReport::Signal("SIGKILL".into())
    );
    assert!(started.elapsed() < KILL_WAIT, "{:?}", started.elapsed());
    assert!(process_is_gone_or_not_our_zombie(pid));
    let error = other
        .block_on(worker.call("echo", &json!(1), None))
        .expect_err("gone");
    assert!(matches!(error, WorkerError::Gone(_)), "{error:?}");
}

/// Issue 9: a reply as the workers write it is taken apart without reading its result;
/// the reader of the result checks it, and one that is not JSON is an error there.
#[test]
fn a_usual_reply_is_split_unread_and_checked_by_its_reader() {
    let frame =
        parse_frame(br#"{"id":12,"result":{"messages":[],"value":{"type":"integer","data":42}}}"#);
    let Ok(Frame::Reply {
        id: 12,
        outcome: Ok(text),
    }) = frame
    else {
        panic!("a reply: {frame:?}");
    };
    assert_eq!(
        text.as_str(),
        r#"{"messages":[],"value":{"type":"integer","data":42}}"#
    );
    let result = text.execute_result().expect("an execute result");
    assert_eq!(result.value, json!({"type": "integer", "data": 42}));
    // Not JSON: split all the same, refused when read.
    let frame = parse_frame(br#"{"id":1,"result":{"messages":[}"#);
    let Ok(Frame::Reply {
        id: 1,
        outcome: Ok(text),
    }) = frame
    else {
        panic!("a reply: {frame:?}");
    };
    assert!(text.execute_result().is_err());
    assert!(text.into_value().is_err());
    // Other spellings go through the full parse.
    assert_eq!(
        parse_frame(br#"{"result": [1], "id": 2}"#),
        Ok(Frame::Reply {
            id: 2,
            outcome: Ok(json!([1]).into())
        })
    );
    assert!(parse_frame(br#"{"id":1,"result":}"#).is_ok_and(|frame| matches!(frame, Frame::Reply { outcome: Ok(text), .. } if text.clone().into_value().is_err())));
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
            outcome: Ok(Value::Null.into())
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
    assert_eq!(
        parse_frame(br#"{"id": 5, "event": {"type": "stdout", "text": "0"}}"#),
        Ok(Frame::Event {
            id: 5,
            event: json!({"type": "stdout", "text": "0"})
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
        prop_assert_eq!(parse_frame(&line), Ok(Frame::Reply { id, outcome: Ok(json!(text).into()) }));
    }
}

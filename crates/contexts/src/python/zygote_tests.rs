//! Tests of workers forked by the Python zygote (`worker/zygote.rs`,
//! `python/worker/zygote.py`) against the real `python3`.

use super::*;
use crate::worker::{WorkerLimits, ZygoteSpawnError};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn config() -> PythonConfig {
    PythonConfig {
        interpreter: resolve_interpreter("python3").unwrap_or_else(|| PathBuf::from("python3")),
        execute_timeout: None,
        worker_memory: None,
        pool_size: 0,
        max_inline: crate::InlineLimit::default(),
    }
}

fn zygote(preload: &[&str]) -> Result<Arc<Zygote>, String> {
    let preload: Vec<String> = preload.iter().map(|s| s.to_string()).collect();
    Zygote::start(zygote_command(&config(), &preload))
}

async fn value(worker: &crate::worker::Worker, code: &str) -> serde_json::Value {
    let answer = worker
        .call(
            "execute",
            &json!({ "code": code }),
            Some(Duration::from_secs(30)),
        )
        .await
        .expect("an answer");
    let result = answer
        .outcome
        .expect("a result")
        .into_value()
        .expect("JSON");
    assert_eq!(result["messages"], json!([]), "{code}: {result}");
    result["value"]["data"].clone()
}

/// The parent of `pid`, from /proc.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_forked_worker_is_this_process_s_child_in_its_own_group() {
    let zygote = zygote(&[]).expect("the zygote starts");
    let worker = zygote
        .spawn(WorkerLimits::default())
        .await
        .expect("a forked worker");
    assert_eq!(parent(worker.pid()), Some(std::process::id()));
    let group = format!(
        "import os; os.getpgid(0) == os.getpid() == {}",
        worker.pid()
    );
    assert_eq!(value(&worker, &group).await, json!(true));
    value(&worker, "x = 6 * 7").await;
    assert_eq!(value(&worker, "x").await, json!(42));
    // Killed and reaped by its exact pid, here.
    let report = worker.kill().await;
    assert_eq!(report, crate::worker::ExitReport::Signal("SIGKILL".into()));
    assert_eq!(worker.exited(), Some(report));
    // Reaped: its group id may be someone else's now, so it is never signalled again.
    assert!(!worker.interrupt());
    assert!(!std::path::Path::new(&format!("/proc/{}", worker.pid())).exists());
}

#[tokio::test]
async fn forked_workers_share_no_random_state() {
    let zygote = zygote(&["random"]).expect("the zygote starts");
    let a = zygote.spawn(WorkerLimits::default()).await.expect("a");
    let b = zygote.spawn(WorkerLimits::default()).await.expect("b");
    let draw = "import random; random.getrandbits(64)";
    assert_ne!(value(&a, draw).await, value(&b, draw).await);
}

#[tokio::test]
async fn a_dead_zygote_is_restarted_and_its_workers_live_on() {
    let zygote = zygote(&[]).expect("the zygote starts");
    let first = zygote.spawn(WorkerLimits::default()).await.expect("first");
    value(&first, "kept = 1").await;
    let pid = zygote.pid().await.expect("a running zygote");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("the zygote is killed");
    let second = zygote.spawn(WorkerLimits::default()).await.expect("second");
    assert_eq!(value(&second, "6 * 7").await, json!(42));
    assert_eq!(value(&first, "kept").await, json!(1));
    let now = zygote.pid().await.expect("a fresh zygote");
    assert_ne!(now, pid);
}

#[test]
fn a_preload_that_cannot_be_imported_is_refused() {
    let error = zygote(&["no_such_module_for_the_zygote"]).expect_err("refused");
    assert!(
        error.starts_with("could not preload no_such_module_for_the_zygote: ModuleNotFoundError"),
        "{error}"
    );
}

#[test]
fn a_zygote_that_cannot_start_says_why() {
    let mut command = zygote_command(&config(), &[]);
    command.program = PathBuf::from("/nonexistent/python3");
    let error = Zygote::start(command).expect_err("no zygote");
    assert!(error.starts_with("could not start it"), "{error}");
}

#[test]
fn no_fork_is_safe_to_spawn_instead() {
    // The pool's fallback rule: only NoFork may be answered by spawning.
    let error = ZygoteSpawnError::NoFork("down".into());
    assert_eq!(
        error.to_string(),
        "the zygote could not fork a worker: down"
    );
}

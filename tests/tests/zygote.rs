//! PythonContext workers forked by a zygote (issue 9, "contexts in milliseconds"):
//! a forked context runs code like a spawned one, shares no seed or pid with its
//! siblings, is interrupted, deleted and ended with its host like one, outlives a
//! zygote that dies (which is replaced), and finds `--preload`ed modules imported;
//! a preload that starts a thread is refused at start. No timing is asserted.
//!
//! Contexts are found by the pid their state reports, and the zygote as the host's
//! child that is not a context; never by name.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use stencila_tests::{
    alive, all_end_within, binary, eventually, gone, processes, HostProcess, ScratchDir,
};

/// A host with a token; `--pool-size 0` so every create goes through the zygote.
struct Session {
    host: HostProcess,
    token: String,
}

impl Session {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Session {
        let mut all = vec!["--pool-size", "0"];
        all.extend_from_slice(args);
        let host = HostProcess::start_with_env(&all, env);
        let token = host.token();
        Session { host, token }
    }

    fn create(&self) -> String {
        let response = self
            .host
            .request("POST", "/PythonContext")
            .cookie(&self.token)
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json().as_str().expect("a name").to_string()
    }

    fn execute(&self, name: &str, code: &str) -> Value {
        self.execute_arg(name, &json!({ "code": code }))
    }

    fn execute_arg(&self, name: &str, arg: &Value) -> Value {
        let response = self
            .host
            .request("PUT", &format!("/{name}!execute"))
            .cookie(&self.token)
            .json(arg)
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    /// The value of an execute, after checking it has no error.
    fn value(&self, name: &str, code: &str) -> Value {
        let result = self.execute(name, code);
        let errors: Vec<&Value> = result["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["type"] == "error")
            .collect();
        assert!(errors.is_empty(), "{code}: {result}");
        result["value"]["data"].clone()
    }

    fn pid(&self, name: &str) -> u32 {
        let state = self
            .host
            .request("GET", &format!("/{name}"))
            .cookie(&self.token)
            .send()
            .json();
        let pid = state["pid"].as_u64().expect("a worker pid");
        u32::try_from(pid).expect("a pid")
    }

    /// The host's living children that are not among `contexts`: the zygote.
    fn zygotes(&self, contexts: &[u32]) -> Vec<u32> {
        processes()
            .into_iter()
            .filter(|&(pid, ppid, state)| {
                ppid == self.host.pid() && state != 'Z' && !contexts.contains(&pid)
            })
            .map(|(pid, _, _)| pid)
            .collect()
    }
}

/// Whether `pid`'s command line says it was forked from the zygote (a forked worker
/// keeps the zygote's argv, `--zygote` included).
fn forked(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.split(|&b| b == 0).any(|arg| arg == b"--zygote")
}

/// The parent of `pid`.
fn parent(pid: u32) -> Option<u32> {
    processes()
        .into_iter()
        .find(|&(p, _, _)| p == pid)
        .map(|(_, ppid, _)| ppid)
}

/// The test virtualenv's python, when it has pandas (else why the test skips).
fn venv_python_with(module: &str) -> Result<PathBuf, String> {
    let venv = std::env::var_os("STENCILA_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv"));
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if ok {
        Ok(python)
    } else {
        Err(format!(
            "skipped: no {module} in a test virtualenv at {}",
            venv.display()
        ))
    }
}

#[test]
fn a_forked_context_runs_code_and_keeps_its_namespace() {
    let s = Session::start(&[], &[]);
    let name = s.create();
    let pid = s.pid(&name);
    assert!(forked(pid), "the context was not forked by the zygote");
    // The host's child (CLONE_PARENT), so the host reaps it by its pid.
    assert_eq!(parent(pid), Some(s.host.pid()));
    assert_eq!(s.execute(&name, "x = 6 * 7")["messages"], json!([]));
    assert_eq!(s.value(&name, "x"), json!(42));
    assert_eq!(s.value(&name, "print('hi'); x + 1"), json!(43));
    // Its own process group, and its own argv (not the zygote's).
    assert_eq!(
        s.value(&name, "import os; os.getpgid(0) == os.getpid()"),
        json!(true)
    );
    assert_eq!(
        s.value(&name, "import sys; '--zygote' in sys.argv"),
        json!(false)
    );
}

#[test]
fn two_forked_contexts_share_no_pid_or_random_seed() {
    let s = Session::start(&["--preload", "random"], &[]);
    let (a, b) = (s.create(), s.create());
    let code = "import os, random; [os.getpid(), random.random(), random.getrandbits(64)]";
    let (first, second) = (s.value(&a, code), s.value(&b, code));
    assert_ne!(first[0], second[0]);
    assert_ne!(first[1], second[1]);
    assert_ne!(first[2], second[2]);
}

#[test]
fn a_forked_context_is_interrupted_and_timed_out() {
    let s = Session::start(&[], &[]);
    let name = s.create();
    let result = s.execute_arg(
        &name,
        &json!({"code": "import time\ntime.sleep(60)", "timeout": 1}),
    );
    let message = result["messages"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.starts_with("TimeoutError"), "{result}");
    // The namespace survives an interrupt.
    s.execute(&name, "y = 5");
    let port = s.host.port;
    let token = s.token.clone();
    let name2 = name.clone();
    let waiter = std::thread::spawn(move || {
        stencila_tests::Request::new(port, "PUT", &format!("/{name2}!execute"))
            .cookie(&token)
            .json(&json!({"code": "import time\nfor _ in range(600): time.sleep(0.1)"}))
            .send()
            .json()
    });
    std::thread::sleep(Duration::from_millis(500));
    let response = s
        .host
        .request("PUT", &format!("/{name}!interrupt"))
        .cookie(&s.token)
        .send();
    assert_eq!(response.status, 200, "{}", response.text());
    let interrupted = waiter.join().expect("the execute answers");
    let message = interrupted["messages"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.starts_with("KeyboardInterrupt"), "{interrupted}");
    assert_eq!(s.value(&name, "y"), json!(5));
}

#[test]
fn delete_leaves_no_process_of_a_forked_context() {
    let s = Session::start(&[], &[]);
    let name = s.create();
    let pid = s.pid(&name);
    let sleeper = s.value(
        &name,
        "import subprocess; p = subprocess.Popen(['sleep', '300']); p.pid",
    );
    let sleeper = u32::try_from(sleeper.as_u64().expect("a pid")).expect("a pid");
    assert!(alive(sleeper));
    let response = s
        .host
        .request("DELETE", &format!("/{name}"))
        .cookie(&s.token)
        .send();
    assert!(response.status < 300, "{}", response.text());
    // Gone and reaped: no zombie left behind either.
    assert!(eventually(Duration::from_secs(10), || gone(pid)));
    assert!(all_end_within(Duration::from_secs(10), &[sleeper]));
}

#[test]
fn a_killed_host_leaves_no_forked_context_or_zygote() {
    let s = Session::start(&[], &[]);
    let (a, b) = (s.create(), s.create());
    let contexts = [s.pid(&a), s.pid(&b)];
    let zygotes = s.zygotes(&contexts);
    assert_eq!(zygotes.len(), 1, "one zygote: {zygotes:?}");
    // A context busy in C code cannot run its host watch: the parent-death signal
    // ends it.
    let busy = s
        .host
        .request("PUT", &format!("/{b}!execute"))
        .cookie(&s.token);
    let busy = busy.json(&json!({"code": "sum(range(10**11))"}));
    let port = s.host.port;
    std::thread::spawn(move || {
        let _ = std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut stream| std::io::Write::write_all(&mut stream, &busy.to_bytes()));
        std::thread::sleep(Duration::from_secs(30));
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut all = contexts.to_vec();
    all.extend(zygotes);
    let (status, _) = s.host.stop("KILL");
    assert!(!status.success());
    assert!(
        all_end_within(Duration::from_secs(10), &all),
        "left running: {:?}",
        all.iter().filter(|&&pid| alive(pid)).collect::<Vec<_>>()
    );
}

#[test]
fn a_terminated_host_leaves_no_forked_context() {
    let s = Session::start(&[], &[]);
    let name = s.create();
    let pid = s.pid(&name);
    let zygotes = s.zygotes(&[pid]);
    let (status, rest) = s.host.stop("TERM");
    assert!(status.success(), "{rest}");
    let mut all = vec![pid];
    all.extend(zygotes);
    assert!(all_end_within(Duration::from_secs(10), &all));
}

#[test]
fn a_killed_zygote_is_replaced_and_its_contexts_live_on() {
    let s = Session::start(&[], &[]);
    let first = s.create();
    s.execute(&first, "kept = 'still here'");
    let first_pid = s.pid(&first);
    let zygotes = s.zygotes(&[first_pid]);
    assert_eq!(zygotes.len(), 1, "one zygote: {zygotes:?}");
    let status = Command::new("kill")
        .args(["-KILL", &zygotes[0].to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // Reaped by the host, not left a zombie.
    assert!(eventually(Duration::from_secs(10), || gone(zygotes[0])));
    let second = s.create();
    let second_pid = s.pid(&second);
    assert!(forked(second_pid), "the new context was not forked");
    assert_eq!(s.value(&second, "6 * 7"), json!(42));
    assert_eq!(s.value(&first, "kept"), json!("still here"));
    let now = s.zygotes(&[first_pid, second_pid]);
    assert_eq!(now.len(), 1, "one fresh zygote: {now:?}");
    assert_ne!(now[0], zygotes[0]);
}

#[test]
fn a_forked_context_keeps_its_memory_cap() {
    let s = Session::start(&["--worker-memory", "2G"], &[]);
    let name = s.create();
    assert_eq!(
        s.value(
            &name,
            "import resource; resource.getrlimit(resource.RLIMIT_AS)[0]"
        ),
        json!(2u64 << 30)
    );
}

#[test]
fn preloaded_pandas_is_imported_in_every_forked_context() {
    let python = match venv_python_with("pandas") {
        Ok(python) => python,
        Err(why) => {
            eprintln!("{why}");
            return;
        }
    };
    let python = python.to_str().expect("UTF-8");
    let s = Session::start(
        &["--preload", "numpy,pandas"],
        &[("STENCILA_PYTHON", python)],
    );
    let (a, b) = (s.create(), s.create());
    let code = "import sys; ['pandas' in sys.modules, 'numpy' in sys.modules]";
    assert_eq!(s.value(&a, code), json!([true, true]));
    // numpy's global generator is reseeded in each child.
    let draw = "import numpy; float(numpy.random.random())";
    assert_ne!(s.value(&a, draw), s.value(&b, draw));
    let frame = "import pandas as pd; pd.DataFrame({'a': [1, 2]})";
    let result = s.execute(&b, frame);
    assert_eq!(result["value"]["type"], "table", "{result}");
}

#[test]
fn a_preload_that_starts_a_thread_is_refused_at_start() {
    let scratch = ScratchDir::new("zygote-threads");
    scratch.write(
        "threader.py",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n",
    );
    let output = Command::new(binary())
        .args(["serve", "--port", "0", "--preload", "threader"])
        .env("PYTHONPATH", &scratch.0)
        .stdin(Stdio::null())
        .output()
        .expect("stencila runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("preloading threader started 1 threads")
            && stderr.contains("single-threaded"),
        "{stderr}"
    );
    let missing = Command::new(binary())
        .args(["serve", "--port", "0", "--preload", "no_such_module_here"])
        .stdin(Stdio::null())
        .output()
        .expect("stencila runs");
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("could not preload no_such_module_here"),
        "{stderr}"
    );
}

#[test]
fn no_zygote_spawns_each_context() {
    let s = Session::start(&["--no-zygote"], &[]);
    let name = s.create();
    let pid = s.pid(&name);
    assert!(!forked(pid));
    assert!(s.zygotes(&[pid]).is_empty());
    assert_eq!(s.value(&name, "6 * 7"), json!(42));
}

#[test]
fn a_forked_context_starts_with_a_fresh_interpreter_s_signal_handlers() {
    let scratch = ScratchDir::new("zygote-signals");
    scratch.write(
        "handlers.py",
        "import signal\nsignal.signal(signal.SIGUSR1, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, lambda *a: None)\n",
    );
    let dir = scratch.0.to_str().expect("UTF-8").to_string();
    let s = Session::start(&["--preload", "handlers"], &[("PYTHONPATH", &dir)]);
    let name = s.create();
    assert_eq!(
        s.value(
            &name,
            "import signal, sys; ['handlers' in sys.modules, signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL, signal.getsignal(signal.SIGTERM) == signal.SIG_DFL]"
        ),
        json!([true, true, true])
    );
}

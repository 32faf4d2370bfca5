//! JupyterContext over HTTP (PROTOCOL.md section 8, with section 6's rules): real
//! `ipykernel` and `bash_kernel` kernels from the test virtualenv that `cargo xtask
//! test` makes (`target/test-venv`, or `STENCILA_TEST_VENV`). Without it these tests
//! say why and skip, so a plain `cargo test` still passes; the manifest's
//! "no kernels" case needs no virtualenv.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stencila_tests::{alive, eventually, HostProcess, Request};

/// The test virtualenv, if it has both kernels installed.
fn venv() -> Option<PathBuf> {
    let venv = std::env::var_os("STENCILA_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv"));
    let kernels = venv.join("share/jupyter/kernels");
    let complete = ["python3", "bash"]
        .iter()
        .all(|name| kernels.join(name).join("kernel.json").is_file());
    if complete {
        Some(venv)
    } else {
        eprintln!(
            "skipped: no test virtualenv with ipykernel and bash_kernel at {} (cargo xtask test makes it)",
            venv.display()
        );
        None
    }
}

/// A scratch directory of this test run.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stencila-jupyter-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// A host that finds kernels only where a test says, with its run directory (and so
/// the kernels' connection files) in `runtime`.
struct Session {
    host: HostProcess,
    token: String,
    runtime: PathBuf,
}

impl Session {
    /// A host that sees the kernels of `venv`, and no user or environment kernels.
    fn new(name: &str, venv: &Path, args: &[&str]) -> Session {
        Self::with_jupyter_path(name, &venv.join("share/jupyter"), args)
    }

    fn with_jupyter_path(name: &str, jupyter_path: &Path, args: &[&str]) -> Session {
        let runtime = scratch(name);
        let data = runtime.join("data");
        std::fs::create_dir_all(&data).expect("a data dir");
        let host = HostProcess::start_with_env(
            args,
            &[
                ("JUPYTER_PATH", jupyter_path.to_str().expect("a UTF-8 path")),
                ("JUPYTER_DATA_DIR", data.to_str().expect("a UTF-8 path")),
                ("VIRTUAL_ENV", ""),
                ("CONDA_PREFIX", ""),
                ("XDG_RUNTIME_DIR", runtime.to_str().expect("a UTF-8 path")),
            ],
        );
        let token = host.token();
        Session {
            host,
            token,
            runtime,
        }
    }

    fn create(&self, kernel: &str) -> String {
        let response = self
            .host
            .request("POST", "/JupyterContext")
            .cookie(&self.token)
            .json(&json!({ "kernel": kernel }))
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json().as_str().expect("a name").to_string()
    }

    fn request(&self, name: &str, method: &str) -> Request {
        self.host
            .request("PUT", &format!("/{name}!{method}"))
            .cookie(&self.token)
    }

    fn call(&self, name: &str, method: &str, arg: Value) -> Value {
        let response = self.request(name, method).json(&arg).send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    fn execute(&self, name: &str, code: &str) -> Value {
        self.call(name, "execute", json!({ "code": code }))
    }

    fn state(&self, name: &str) -> Value {
        self.host
            .request("GET", &format!("/{name}"))
            .cookie(&self.token)
            .send()
            .json()
    }

    fn pid(&self, name: &str) -> u32 {
        let state = self.state(name);
        state["pid"]
            .as_u64()
            .and_then(|pid| u32::try_from(pid).ok())
            .unwrap_or_else(|| panic!("no pid in {state}"))
    }

    fn connection_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.runtime.join("stencila/kernels"))
            .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.runtime);
    }
}

fn messages_of(result: &Value, kind: &str) -> Vec<String> {
    result["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] == kind)
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The live (not zombie) processes whose process group is `group`.
fn group_members(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
            let state = fields.next()?;
            let _ppid = fields.next()?;
            let pgrp: u32 = fields.next()?.parse().ok()?;
            (pgrp == group && state != "Z").then_some(pid)
        })
        .collect()
}

#[test]
fn without_kernels_the_type_is_listed_unavailable_with_a_reason() {
    let empty = scratch("empty-jupyter-path");
    let s = Session::with_jupyter_path("no-kernels", &empty, &[]);
    let system_kernels = [
        "/usr/local/share/jupyter/kernels",
        "/usr/share/jupyter/kernels",
    ]
    .iter()
    .any(|dir| Path::new(dir).exists());
    let manifest = s
        .host
        .request("GET", "/manifest")
        .cookie(&s.token)
        .send()
        .json();
    let entry = &manifest["types"]["JupyterContext"];
    assert_eq!(entry["name"], "JupyterContext");
    if system_kernels {
        eprintln!("skipped the unavailable case: this machine has system-wide kernels");
        return;
    }
    assert_eq!(entry["available"], false, "{entry}");
    assert_eq!(entry["kernels"], json!({}), "{entry}");
    let reason = entry["reason"].as_str().expect("a reason");
    assert!(reason.contains("pip install ipykernel"), "{reason}");
    let response = s
        .host
        .request("POST", "/JupyterContext")
        .cookie(&s.token)
        .json(&json!({"kernel": "python3"}))
        .send();
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        response.text().contains("no Jupyter kernel"),
        "{}",
        response.text()
    );
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn the_manifest_lists_the_kernels_and_create_needs_one_of_them() {
    let Some(venv) = venv() else { return };
    let s = Session::new("manifest", &venv, &[]);
    let manifest = s.host.request("GET", "/manifest").send().json();
    let entry = &manifest["types"]["JupyterContext"];
    assert_eq!(entry["available"], true, "{entry}");
    assert_eq!(entry["client"], "ContextHttpClient");
    assert_eq!(entry["kernels"]["python3"]["language"], "python", "{entry}");
    assert!(entry["kernels"]["python3"]["displayName"]
        .as_str()
        .is_some_and(|name| name.starts_with("Python 3")));
    assert_eq!(
        entry["kernels"]["bash"],
        json!({"language": "bash", "displayName": "Bash"})
    );
    assert!(entry.get("reason").is_none(), "{entry}");

    for body in [json!({}), json!({"kernel": 3}), json!({"kernel": "nope"})] {
        let response = s
            .host
            .request("POST", "/JupyterContext")
            .cookie(&s.token)
            .json(&body)
            .send();
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        let text = response.text();
        assert!(text.contains("bash, python3"), "{body}: {text}");
    }
}

#[test]
fn python_kernel_values_output_errors_and_inputs() {
    let Some(venv) = venv() else { return };
    let s = Session::new("python", &venv, &[]);
    let name = s.create("python3");
    assert_eq!(name, "jupyterContext1");
    let state = s.state(&name);
    assert_eq!(state["kernel"], "python3", "{state}");
    assert_eq!(state["language"], "python", "{state}");

    // text/plain is a string; the namespace persists.
    assert_eq!(
        s.execute(&name, "x = 6\nx * 7"),
        json!({"messages": [], "value": {"type": "string", "data": "42"}})
    );
    assert_eq!(
        s.execute(&name, "y = x"),
        json!({"messages": [], "value": null})
    );
    // application/json is JSON, SVG and PNG are images.
    let result = s.execute(
        &name,
        "from IPython.display import JSON\nJSON({'a': [1, 2.5, None]})",
    );
    assert_eq!(
        result["value"],
        json!({"type": "object", "data": {"a": [1, 2.5, null]}}),
        "{result}"
    );
    let result = s.execute(
        &name,
        "from IPython.display import SVG\nSVG('<svg xmlns=\"http://www.w3.org/2000/svg\"/>')",
    );
    assert_eq!(result["value"]["type"], "image", "{result}");
    assert!(result["value"]["src"]
        .as_str()
        .is_some_and(|src| src.starts_with("data:image/svg+xml;base64,")));
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let result = s.execute(
        &name,
        &format!("from IPython.display import Image\nimport base64\nImage(data=base64.b64decode('{png}'), format='png')"),
    );
    assert_eq!(
        result["value"],
        json!({"type": "image", "src": format!("data:image/png;base64,{png}")}),
        "{result}"
    );

    // Printed output, in order, merged per stream.
    let result = s.execute(
        &name,
        "import sys\nprint('a')\nprint('b')\nsys.stderr.write('c\\n')\nsys.stderr.flush()",
    );
    assert_eq!(messages_of(&result, "stdout"), ["a\nb\n"], "{result}");
    assert_eq!(messages_of(&result, "stderr"), ["c\n"], "{result}");

    // Output is bounded per stream, and the rest counted.
    let result = s.execute(&name, "print('x' * 3_000_000)");
    let stdout = messages_of(&result, "stdout").join("");
    assert_eq!(stdout.len(), 1 << 20, "{}", &result.to_string()[..200]);
    let warnings = messages_of(&result, "warning");
    assert!(
        warnings.len() == 1 && warnings[0].contains("bytes of stdout omitted"),
        "{warnings:?}"
    );

    // Errors with the line in the cell.
    let result = s.execute(&name, "a = 1\nb = 2\nc = a / 0\n");
    assert_eq!(
        result["messages"],
        json!([{"type": "error", "message": "ZeroDivisionError: division by zero", "line": 3}]),
        "{result}"
    );
    let result = s.execute(&name, "undefined_name");
    assert_eq!(result["messages"][0]["line"], 1, "{result}");
    assert!(messages_of(&result, "error")[0].starts_with("NameError"));

    // Inputs become variables, unpacked from their packed values.
    let result = s.call(
        &name,
        "execute",
        json!({"code": "print(type(big).__name__, s)\na + b + big", "inputs": {
            "a": {"type": "integer", "data": 1},
            "b": {"type": "number", "data": 0.5},
            "big": {"type": "integer", "data": "1180591620717411303424"},
            "s": {"type": "string", "data": "quote\"s'\\n"},
        }}),
    );
    assert_eq!(
        result["value"],
        json!({"type": "string", "data": "1.1805916207174113e+21"}),
        "{result}"
    );
    assert_eq!(
        messages_of(&result, "stdout"),
        ["int quote\"s'\\n\n"],
        "{result}"
    );
    let result = s.call(
        &name,
        "execute",
        json!({"code": "(type(t).__name__, int(t['v'][1]))", "inputs": {"t": {"type": "table", "data": {"columns": [{"name": "v", "type": "integer", "values": [1, 2]}]}}}}),
    );
    // A pandas DataFrame where the kernel has pandas, else a dict of column lists.
    let value = result["value"]["data"].as_str().unwrap_or_default();
    assert!(
        value == "('DataFrame', 2)" || value == "('dict', 2)",
        "{result}"
    );
    // A bad input is the caller's error, and nothing runs.
    let response = s
        .request(&name, "execute")
        .json(&json!({"code": "1", "inputs": {"not a name": {"type": "integer", "data": 1}}}))
        .send();
    assert_eq!(response.status, 400, "{}", response.text());
    let response = s.request(&name, "nope").send();
    assert_eq!(response.status, 404, "{}", response.text());
}

#[test]
fn bash_kernel_runs_and_refuses_inputs_clearly() {
    let Some(venv) = venv() else { return };
    let s = Session::new("bash", &venv, &[]);
    let name = s.create("bash");
    let result = s.execute(&name, "X=hello\necho $X world");
    assert_eq!(
        messages_of(&result, "stdout").join(""),
        "hello world\n",
        "{result}"
    );
    assert!(messages_of(&result, "error").is_empty(), "{result}");
    let result = s.execute(&name, "(exit 3)");
    assert_eq!(
        messages_of(&result, "error"),
        ["the code ended with exit status 3"],
        "{result}"
    );
    let result = s.call(
        &name,
        "execute",
        json!({"code": "echo $a", "inputs": {"a": {"type": "integer", "data": 1}}}),
    );
    let errors = messages_of(&result, "error");
    assert_eq!(errors.len(), 1, "{result}");
    assert!(
        errors[0].contains("inputs are not supported") && errors[0].contains("bash"),
        "{result}"
    );
    assert!(
        messages_of(&result, "stdout").is_empty(),
        "nothing ran: {result}"
    );
}

/// Runs a busy loop on `name` and interrupts it from a second connection once it
/// runs; the execute returns a `KeyboardInterrupt` error and the namespace is kept.
fn interrupt_a_busy_loop(s: &Session, name: &str) {
    s.execute(name, "kept = 'yes'");
    let marker = s.runtime.join(format!("{name}-started"));
    let code = format!(
        "open({:?}, 'w').close()\nwhile True:\n    pass",
        marker.to_str().expect("a UTF-8 path")
    );
    let (port, token, path) = (s.host.port, s.token.clone(), format!("/{name}!execute"));
    let running = std::thread::spawn(move || {
        Request::new(port, "PUT", &path)
            .cookie(&token)
            .json(&json!({ "code": code }))
            .send()
            .json()
    });
    assert!(
        eventually(Duration::from_secs(30), || marker.exists()),
        "the loop started"
    );
    let started = Instant::now();
    assert_eq!(s.request(name, "interrupt").send().status, 200);
    let result = running.join().expect("the execute returns");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        messages_of(&result, "error")
            .first()
            .is_some_and(|error| error.starts_with("KeyboardInterrupt")),
        "{result}"
    );
    assert_eq!(s.execute(name, "kept")["value"]["data"], "'yes'");
}

#[test]
fn interrupt_stops_a_busy_loop_from_a_second_connection() {
    let Some(venv) = venv() else { return };
    let s = Session::new("interrupt", &venv, &[]);
    let name = s.create("python3");
    interrupt_a_busy_loop(&s, &name);
}

#[test]
fn interrupt_by_message_when_the_kernelspec_says_so() {
    let Some(venv) = venv() else { return };
    // ipykernel under a kernelspec with "interrupt_mode": "message": the interrupt
    // goes as interrupt_request on the control channel, not as a signal.
    let extra = scratch("message-kernels");
    let spec = extra.join("kernels/pymsg");
    std::fs::create_dir_all(&spec).expect("a kernel dir");
    let python = venv.join("bin/python");
    std::fs::write(
        spec.join("kernel.json"),
        json!({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python (message interrupts)",
            "language": "python",
            "interrupt_mode": "message",
        })
        .to_string(),
    )
    .expect("written");
    let s = Session::with_jupyter_path("message", &extra, &[]);
    let name = s.create("pymsg");
    interrupt_a_busy_loop(&s, &name);
    let _ = std::fs::remove_dir_all(extra);
}

#[test]
fn a_kernel_that_ignores_the_interrupt_is_killed_on_timeout() {
    let Some(venv) = venv() else { return };
    let s = Session::new("stuck", &venv, &[]);
    let name = s.create("python3");
    s.execute(&name, "kept = 1");
    let pid = s.pid(&name);
    let result = s.call(
        &name,
        "execute",
        json!({"code": "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(120)", "timeout": 2}),
    );
    let errors = messages_of(&result, "error");
    assert!(
        errors.len() == 1
            && errors[0].starts_with("TimeoutError")
            && errors[0].contains("did not stop when interrupted, so it was killed"),
        "{result}"
    );
    assert!(eventually(Duration::from_secs(10), || group_members(pid).is_empty()));
    let result = s.execute(&name, "kept");
    let warnings = messages_of(&result, "warning");
    assert!(
        warnings.len() == 1 && warnings[0].contains("killed on a timeout"),
        "{result}"
    );
    assert!(
        messages_of(&result, "error")[0].starts_with("NameError"),
        "{result}"
    );
}

#[test]
fn the_2018_clients_methods_work_on_a_kernel() {
    let Some(venv) = venv() else { return };
    let s = Session::new("legacy", &venv, &[]);
    let name = s.create("python3");
    let result = s.call(
        &name,
        "executeCode",
        json!({"code": "a * 2", "inputs": {"a": {"type": "integer", "data": 21}}}),
    );
    assert_eq!(
        result["value"],
        json!({"type": "string", "data": "42"}),
        "{result}"
    );
    // A bare JSON string is the code.
    let result = s.call(&name, "execute", json!("6*7"));
    assert_eq!(result["value"]["data"], "42", "{result}");
    let cell = s.call(
        &name,
        "execute",
        json!({"type": "cell", "source": {"type": "text", "data": "print('hi')\n6*7"}}),
    );
    assert_eq!(cell["outputs"][0]["value"]["data"], "42", "{cell}");
    assert_eq!(s.call(&name, "libraries", json!({})), json!({}));
}

#[test]
fn timeouts_interrupt_and_restart_gives_a_fresh_kernel() {
    let Some(venv) = venv() else { return };
    let s = Session::new("timeout", &venv, &[]);
    let name = s.create("python3");
    s.execute(&name, "kept = 1");
    let pid = s.pid(&name);
    let result = s.call(
        &name,
        "execute",
        json!({"code": "import time\ntime.sleep(60)", "timeout": 2}),
    );
    assert_eq!(
        messages_of(&result, "error"),
        ["TimeoutError: execution exceeded 2 s and was interrupted"],
        "{result}"
    );
    assert_eq!(s.pid(&name), pid, "an interrupted kernel is kept");
    assert_eq!(s.execute(&name, "kept")["value"]["data"], "1");

    assert_eq!(s.call(&name, "restart", json!({})), json!(null));
    let fresh = s.pid(&name);
    assert_ne!(fresh, pid);
    assert!(eventually(Duration::from_secs(10), || group_members(pid).is_empty()));
    let result = s.execute(&name, "kept");
    assert!(
        messages_of(&result, "error")[0].starts_with("NameError"),
        "{result}"
    );
    assert!(messages_of(&result, "warning").is_empty(), "{result}");
}

#[test]
fn a_kernel_that_dies_is_replaced_with_a_warning() {
    let Some(venv) = venv() else { return };
    let s = Session::new("crash", &venv, &[]);
    let name = s.create("python3");
    s.execute(&name, "kept = 1");
    let pid = s.pid(&name);
    let result = s.execute(&name, "import os\nos._exit(1)");
    let errors = messages_of(&result, "error");
    assert!(
        errors.len() == 1 && errors[0].contains("died") && errors[0].contains("status 1"),
        "{result}"
    );
    let result = s.execute(&name, "kept");
    let warnings = messages_of(&result, "warning");
    assert!(
        warnings.len() == 1 && warnings[0].contains("restarted after it died"),
        "{result}"
    );
    assert!(
        messages_of(&result, "error")[0].starts_with("NameError"),
        "{result}"
    );
    assert_ne!(s.pid(&name), pid);
    // The warning is given once.
    assert_eq!(
        s.execute(&name, "1"),
        json!({"messages": [], "value": {"type": "string", "data": "1"}})
    );

    // Killed from outside between calls: the same.
    let pid = s.pid(&name);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill to run");
    assert!(killed.success());
    // Gone from /proc: the host has reaped it, so it knows.
    assert!(eventually(
        Duration::from_secs(10),
        || stencila_tests::gone(pid)
    ));
    let result = s.execute(&name, "2");
    assert_eq!(messages_of(&result, "warning").len(), 1, "{result}");
    assert_eq!(result["value"]["data"], "2", "{result}");
}

#[test]
fn delete_leaves_no_process_of_the_kernel_and_no_connection_file() {
    let Some(venv) = venv() else { return };
    let s = Session::new("delete", &venv, &[]);
    let python = s.create("python3");
    let bash = s.create("bash");
    let files = s.connection_files();
    assert_eq!(files.len(), 2, "{files:?}");
    for file in &files {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        let info: Value =
            serde_json::from_slice(&std::fs::read(file).expect("readable")).expect("JSON");
        assert_eq!(info["ip"], "127.0.0.1");
        assert_eq!(info["signature_scheme"], "hmac-sha256");
        assert_eq!(info["key"].as_str().map(str::len), Some(64), "{info}");
    }
    // A subprocess of the kernel is in its group too.
    s.execute(
        &python,
        "import subprocess\nchild = subprocess.Popen(['sleep', '300'])",
    );
    let groups = [s.pid(&python), s.pid(&bash)];
    assert!(
        group_members(groups[0]).len() >= 2,
        "the kernel and its child"
    );
    for name in [&python, &bash] {
        let response = s
            .host
            .request("DELETE", &format!("/{name}"))
            .cookie(&s.token)
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
    }
    for group in groups {
        assert!(
            eventually(Duration::from_secs(10), || group_members(group).is_empty()),
            "processes of group {group} are left: {:?}",
            group_members(group)
        );
    }
    assert!(
        s.connection_files().is_empty(),
        "{:?}",
        s.connection_files()
    );
}

#[test]
fn a_pooled_kernel_is_ready_and_the_host_stops_every_kernel() {
    let Some(venv) = venv() else { return };
    let s = Session::new("pool", &venv, &["--pool-kernel", "python3"]);
    let host_pid = s.host.pid();
    // The pooled kernel is started ahead, as a child of the host.
    let pooled = || {
        stencila_tests::processes()
            .into_iter()
            .filter(|(pid, ppid, state)| {
                *ppid == host_pid
                    && *state != 'Z'
                    && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|cmdline| cmdline.contains("ipykernel"))
            })
            .map(|(pid, _, _)| pid)
            .collect::<Vec<_>>()
    };
    assert!(eventually(Duration::from_secs(60), || pooled().len() == 1));
    let ready = pooled()[0];
    // A create waits for the pooled kernel that is starting rather than start another.
    let name = s.create("python3");
    assert_eq!(s.pid(&name), ready, "the instance got the pooled kernel");
    assert_eq!(s.execute(&name, "6*7")["value"]["data"], "42");
    // The pool refills.
    assert!(eventually(Duration::from_secs(60), || pooled().len() == 2));
    let kernels = pooled();
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &host_pid.to_string()])
        .status()
        .expect("kill to run");
    assert!(stopped.success());
    assert!(
        eventually(Duration::from_secs(20), || !alive(host_pid)),
        "the host stopped"
    );
    for kernel in kernels {
        assert!(
            group_members(kernel).is_empty(),
            "kernel {kernel} outlived the host"
        );
    }
}

#[test]
fn kernels_end_when_the_host_is_killed() {
    let Some(venv) = venv() else { return };
    let s = Session::new("killed-host", &venv, &[]);
    let name = s.create("python3");
    let kernel = s.pid(&name);
    let host = s.host.pid();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &host.to_string()])
        .status()
        .expect("kill to run");
    assert!(killed.success());
    // ipykernel watches the pid in JPY_PARENT_PID, as under Jupyter's own launcher.
    assert!(
        eventually(Duration::from_secs(15), || group_members(kernel).is_empty()),
        "kernel {kernel} outlived a SIGKILL of its host"
    );
}

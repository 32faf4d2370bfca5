//! `PythonContext`: a context that runs Python code in a `python3` worker process
//! (one per instance), built from the language-neutral [`crate::worker`] layer and the
//! embedded worker script (the files of `worker/`, joined).
//!
//! Values cross the boundary packed (PROTOCOL.md section 6). Choices made here:
//! integers beyond ±(2^53 − 1) are sent as decimal strings (`{"type": "integer",
//! "data": "1180591620717411303424"}`, also inside arrays and objects) because JSON
//! numbers that large lose precision in most clients and in `serde_json`; sets are
//! arrays (sorted where their items allow); bytes are `{"type": "bytes", "data":
//! "<base64>", "encoding": "base64"}`; values nested deeper than 64 levels, cycles and
//! anything without a JSON form become their `repr` inside arrays and objects.
//!
//! The instance logic (sessions, lost workers, timeouts, `list`/`get`/`set`) is
//! [`crate::worker_context`]'s, shared with `NodeContext`: this module is the script,
//! the [`Language`] (names, `KeyboardInterrupt`, the 2018 methods), the interpreter
//! checks and the worker command.

use crate::legacy::LegacyPrimitives;
use crate::worker::{WorkerCommand, Zygote, MAX_LINE};
use crate::worker_context::{probe, Language, WorkerContext, WorkerContextType};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
#[cfg(test)]
use {
    serde_json::{json, Value},
    std::process::Stdio,
    std::sync::Arc,
    stencila_host::{HostError, Instance, InstanceType},
};

mod legacy;

/// The worker script, run as a file (see [`script_path`]), or with `-c` where that is
/// not possible.
const WORKER_SCRIPT: &str = concat!(
    include_str!("worker/setup.py"),
    include_str!("worker/capture.py"),
    include_str!("worker/values.py"),
    include_str!("worker/run.py"),
    include_str!("worker/analysis.py"),
    include_str!("worker/pointers.py"),
    include_str!("worker/zygote.py"),
    include_str!("worker/serve.py"),
);

/// How long a new worker has to import its modules and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The oldest Python the worker script supports (`os.memfd_create`, `ast` as used).
const MINIMUM_VERSION: (u32, u32) = (3, 8);

/// What the CLI decides about Python, validated.
#[derive(Debug, Clone)]
pub struct PythonConfig {
    /// The interpreter to run: a path, or a name looked up on `PATH`.
    pub interpreter: PathBuf,
    /// The default limit on one `execute`; `None` means no limit.
    pub execute_timeout: Option<Duration>,
    /// A limit on each worker's address space in bytes (`RLIMIT_AS`), set by the
    /// worker itself at start; exceeding it is a `MemoryError` in the user's code.
    pub worker_memory: Option<u64>,
    /// How many started workers wait for new instances (0: each starts cold).
    pub pool_size: usize,
    /// A table larger than this stays in the worker and is answered with a pointer.
    pub max_inline: crate::InlineLimit,
}

/// Runs `program -c "import sys; print(sys.executable)"` and returns the path of the
/// real interpreter, e.g. through a pyenv shim, so each worker start skips the shim.
/// `None` when the program cannot be run or does not say.
pub fn resolve_interpreter(program: &str) -> Option<PathBuf> {
    let output = probe_python(Path::new(program), "import sys; print(sys.executable)").ok()?;
    let path = PathBuf::from(last_line(&output));
    (!path.as_os_str().is_empty() && path.is_file()).then_some(path)
}

/// The last non-blank line of a probe's output: start-up hooks (a `sitecustomize`
/// banner) may print before the probe does.
fn last_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
}

/// Runs `interpreter -S -c script` to completion (bounded) and returns its stdout.
/// `-S`: a sitecustomize that prints must not garble the answer.
fn probe_python(interpreter: &Path, script: &str) -> Result<String, String> {
    probe(interpreter, &["-S", "-c", script])
}

/// Python as a worker-process context type: its names, its `KeyboardInterrupt`, and
/// the 2018 clients' methods (`legacy.rs`).
pub struct Python;

impl Language for Python {
    const LABEL: &'static str = "Python";
    const TYPE_NAME: &'static str = "PythonContext";
    const INTERRUPTED: &'static str = "KeyboardInterrupt";

    fn unavailable(program: &Path, reason: &str) -> String {
        unavailable(program, reason)
    }

    fn legacy(context: &PythonContext) -> Option<&dyn LegacyPrimitives> {
        Some(context)
    }
}

/// The `PythonContext` type: creates instances, each with its own worker process.
pub type PythonContextType = WorkerContextType<Python>;

/// An instance of `PythonContext`: a persistent namespace in a worker process.
pub type PythonContext = WorkerContext<Python>;

impl PythonContextType {
    /// Checks once that the interpreter runs and is recent enough; the result is
    /// what [`stencila_host::InstanceType::available`] reports.
    pub fn new(config: PythonConfig) -> Self {
        WorkerContextType::with(
            check_interpreter(&config.interpreter),
            worker_command(&config),
            config.pool_size,
            config.execute_timeout,
        )
    }

    /// [`PythonContextType::new`], with each worker forked by a zygote: a Python
    /// process that has compiled the worker script and imported its modules and the
    /// modules named in `preload` (e.g. `numpy`, `pandas`), so a context starts in
    /// milliseconds with those already imported. `Err` says why the zygote did not
    /// start when `preload` names modules (one that cannot be imported, or one that
    /// starts threads); without preloads a zygote that cannot start is logged and the
    /// workers are spawned. An unavailable interpreter gives the unavailable type, as
    /// `new` does.
    pub fn forking(config: PythonConfig, preload: &[String]) -> Result<Self, String> {
        let kind = PythonContextType::new(config.clone());
        if kind.unavailable_reason().is_some() {
            return Ok(kind);
        }
        match Zygote::start(zygote_command(&config, preload)) {
            Ok(zygote) => kind.fork_with(zygote),
            // Preloading was asked for, and only a zygote can do it.
            Err(reason) if !preload.is_empty() => {
                return Err(format!("the Python zygote did not start: {reason}"))
            }
            // Say an interpreter that cannot fork this way (Python 3.8 has no
            // `socket.recv_fds`): its workers are spawned.
            Err(reason) => log::warn!(
                "the Python zygote did not start ({reason}); each Python worker is spawned instead"
            ),
        }
        Ok(kind)
    }
}

/// The command that starts a zygote: the worker's, with `--zygote <preload>` after
/// the worker's own arguments (see `worker/zygote.py`).
fn zygote_command(config: &PythonConfig, preload: &[String]) -> WorkerCommand {
    let mut command = worker_command(config);
    let preload = if preload.is_empty() {
        "-".to_string()
    } else {
        preload.join(",")
    };
    command
        .args
        .extend([OsString::from("--zygote"), OsString::from(preload)]);
    command
}

/// The command that starts a worker: the embedded script, the host's pid (the worker
/// ends when its host does), the memory cap and the longest reply line the host reads
/// ([`MAX_LINE`]; the worker never sends a longer one).
///
/// `-S`: the worker runs `site` itself once it has taken the protocol pipes, so a
/// `sitecustomize` or `.pth` file that prints cannot corrupt them. The script is a file
/// rather than a `-c` argument, so `ps` shows a short command line; either way the
/// worker imports its own modules before it puts the cwd on `sys.path` for user code.
fn worker_command(config: &PythonConfig) -> WorkerCommand {
    let mut args = vec![OsString::from("-u"), OsString::from("-S")];
    match script_path() {
        Some(path) => args.push(path.into()),
        None => args.extend([OsString::from("-c"), OsString::from(WORKER_SCRIPT)]),
    }
    args.extend([
        OsString::from(std::process::id().to_string()),
        OsString::from(config.worker_memory.unwrap_or(0).to_string()),
        OsString::from(MAX_LINE.to_string()),
        OsString::from(config.max_inline.rows.to_string()),
        OsString::from(config.max_inline.bytes.to_string()),
    ]);
    WorkerCommand {
        program: config.interpreter.clone(),
        args,
        ready_timeout: READY_TIMEOUT,
    }
}

/// The worker script as a file every worker can run: an anonymous in-memory file
/// (memfd), written once per host and inherited by the workers (it is deliberately not
/// close-on-exec; the worker closes its copy first thing), which name it
/// `/proc/self/fd/N`. Nothing on disk: no directory another user could create first,
/// nothing left behind. `None` where memfds or `/proc` are missing.
fn script_path() -> Option<&'static Path> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    use std::io::Write;
    use std::os::fd::{AsRawFd, OwnedFd};

    static SCRIPT: OnceLock<Option<(File, PathBuf)>> = OnceLock::new();
    let script = SCRIPT.get_or_init(|| {
        let mut fd = memfd_create(c"stencila-python-worker", MemFdCreateFlag::empty()).ok()?;
        if fd.as_raw_fd() < 3 {
            // A host started with stdio closed: fds 0-2 are the worker's pipes.
            let above: OwnedFd = fd.try_clone().ok()?;
            fcntl(above.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty())).ok()?;
            fd = above;
        }
        let mut file = File::from(fd);
        file.write_all(WORKER_SCRIPT.as_bytes()).ok()?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let readable = std::fs::read(&path).ok()? == WORKER_SCRIPT.as_bytes();
        readable.then_some((file, path))
    });
    script.as_ref().map(|(_, path)| path.as_path())
}

/// The interpreter's file name, for messages: never the directories of a host path.
fn interpreter_name(interpreter: &Path) -> String {
    interpreter
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "python3".into())
}

fn unavailable(interpreter: &Path, reason: &str) -> String {
    format!(
        "PythonContext is not available: could not start {} ({reason}); install Python 3 or set STENCILA_PYTHON",
        interpreter_name(interpreter)
    )
}

fn check_interpreter(interpreter: &Path) -> Result<String, String> {
    let output = probe_python(
        interpreter,
        "import sys; print('%d.%d.%d' % sys.version_info[:3])",
    )
    .map_err(|reason| unavailable(interpreter, &reason))?;
    let version = last_line(&output).to_string();
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return Err(unavailable(
            interpreter,
            &format!("it did not report a Python version: {version:?}"),
        ));
    };
    if (major, minor) < MINIMUM_VERSION {
        return Err(unavailable(
            interpreter,
            &format!(
                "it is Python {version}; {}.{} or later is needed",
                MINIMUM_VERSION.0, MINIMUM_VERSION.1
            ),
        ));
    }
    Ok(version)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod zygote_tests;

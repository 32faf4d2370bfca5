//! `NodeContext`: a context that runs JavaScript in a `node` (18 or later) worker
//! process (one per instance), built from the language-neutral [`crate::worker`]
//! layer and the embedded script `worker.js` (PROTOCOL.md section 8).
//!
//! Code runs in V8's REPL mode, as in a browser console: a persistent global scope
//! where `let`/`const` can be declared again, top-level `await`, and the value of
//! the last expression (a Promise is awaited). Values are packed as section 6 says;
//! choices made here: `BigInt`s beyond ±(2^53 − 1) are decimal strings (as Python's
//! large integers are), `Map` is an object, `Set` and typed arrays are arrays, `Date`
//! an ISO 8601 string, `undefined` (as the last value) no value; an array of plain
//! objects with the same keys is a `table`; anything else is `{"type": "<constructor
//! name>", "data": "<util.inspect form>"}`. Error columns are 0-based, as Python's.
//!
//! The instance logic (sessions, lost workers, timeouts, `list`/`get`/`set`) is
//! [`crate::worker_context`]'s, shared with `PythonContext`: this module is the
//! script, the [`Language`] (names, interrupt message) and the worker command.

use crate::worker::WorkerCommand;
use crate::worker_context::{probe, Language, WorkerContext, WorkerContextType};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
#[cfg(test)]
use {
    serde_json::{json, Value},
    std::sync::Arc,
    stencila_host::{HostError, Instance, InstanceType},
};

/// The worker script, run with `node -e`.
const WORKER_SCRIPT: &str = include_str!("worker.js");

/// How long a new worker has to start and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The oldest Node.js the worker script supports (V8's REPL mode through the
/// inspector, `connectToMainThread`).
const MINIMUM_MAJOR: u32 = 18;

/// How the worker's error message for an interrupted execute starts (`worker.js`).
const INTERRUPTED: &str = "Interrupted:";

/// What the CLI decides about Node.js, validated.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The `node` program to run: a path, or a name looked up on `PATH`.
    pub program: PathBuf,
    /// The default limit on one `execute`; `None` means no limit.
    pub execute_timeout: Option<Duration>,
    /// How many started workers wait for new instances (0: each starts cold).
    pub pool_size: usize,
    /// A table larger than this stays in the worker and is answered with a pointer.
    pub max_inline: crate::InlineLimit,
}

/// Node.js as a worker-process context type: its names and its interrupt message.
pub struct Node;

impl Language for Node {
    const LABEL: &'static str = "Node.js";
    const TYPE_NAME: &'static str = "NodeContext";
    const INTERRUPTED: &'static str = INTERRUPTED;

    fn unavailable(program: &Path, reason: &str) -> String {
        unavailable(program, reason)
    }
}

/// The `NodeContext` type: creates instances, each with its own worker process.
pub type NodeContextType = WorkerContextType<Node>;

/// An instance of `NodeContext`: a persistent namespace in a worker process.
pub type NodeContext = WorkerContext<Node>;

impl NodeContextType {
    /// Checks once that `node` runs and is recent enough; the result is what
    /// [`stencila_host::InstanceType::available`] reports.
    pub fn new(config: NodeConfig) -> Self {
        WorkerContextType::with(
            check_program(&config.program),
            worker_command(&config),
            config.pool_size,
            config.execute_timeout,
        )
    }
}

/// The command that starts a worker: the embedded script, the inline limit (rows,
/// bytes) and the host's pid, last (the worker ends when its host does).
fn worker_command(config: &NodeConfig) -> WorkerCommand {
    WorkerCommand {
        program: config.program.clone(),
        args: vec![
            OsString::from("-e"),
            OsString::from(WORKER_SCRIPT),
            OsString::from(config.max_inline.rows.to_string()),
            OsString::from(config.max_inline.bytes.to_string()),
            OsString::from(std::process::id().to_string()),
        ],
        ready_timeout: READY_TIMEOUT,
    }
}

/// The program's file name, for messages: never the directories of a host path.
fn program_name(program: &Path) -> String {
    program
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "node".into())
}

fn unavailable(program: &Path, reason: &str) -> String {
    format!(
        "NodeContext is not available: could not start {} ({reason}); install Node.js {MINIMUM_MAJOR} or later or set STENCILA_NODE",
        program_name(program)
    )
}

/// The version `node` reports (`20.11.1`), when it is recent enough.
fn check_program(program: &Path) -> Result<String, String> {
    let output = probe(
        program,
        &["-e", "process.stdout.write(process.versions.node)"],
    )
    .map_err(|reason| unavailable(program, &reason))?;
    let version = output.trim().to_string();
    let major = version
        .split('.')
        .next()
        .and_then(|part| part.parse::<u32>().ok());
    match major {
        None => Err(unavailable(
            program,
            &format!("it did not report a Node.js version: {version:?}"),
        )),
        Some(major) if major < MINIMUM_MAJOR => Err(unavailable(
            program,
            &format!("it is Node.js {version}; {MINIMUM_MAJOR} or later is needed"),
        )),
        Some(_) => Ok(version),
    }
}

#[cfg(test)]
mod tests;

//! The execution contexts a Stencila host offers. `PythonContext` runs Python code
//! in one `python3` worker process per instance; `NodeContext` runs JavaScript in one
//! `node` worker process per instance; `SqliteContext` runs SQL on an embedded SQLite
//! database, one thread per instance; `JupyterContext` runs code in any installed
//! Jupyter kernel, one kernel per instance.
//!
//! The [`worker`] module is the language-neutral process layer (spawning, framing,
//! request ids, interrupts, timeouts, crash detection, reaping); a context type is
//! that layer plus a worker script and a description of its language, on the one
//! shared instance implementation in `worker_context`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use stencila_contexts::{resolve_interpreter, PythonConfig, PythonContextType};
//!
//! let interpreter = resolve_interpreter("python3").unwrap_or_else(|| "python3".into());
//! let python = PythonContextType::new(PythonConfig {
//!     interpreter,
//!     execute_timeout: None,
//!     worker_memory: None,
//!     pool_size: 0,
//!     max_inline: stencila_contexts::InlineLimit::default(),
//! });
//! let mut host = stencila_host::Host::new();
//! host.register(Arc::new(python));
//! ```

pub mod cgroup;
mod jupyter;
pub mod legacy;
mod node;
pub mod pointer;
mod pool;
mod python;
mod sqlite;
pub mod worker;
mod worker_context;

pub use jupyter::{jupyter_data_dirs, JupyterConfig, JupyterContext, JupyterContextType};
pub use node::{NodeConfig, NodeContext, NodeContextType};
pub use pointer::InlineLimit;
pub use python::{resolve_interpreter, PythonConfig, PythonContext, PythonContextType};
pub use sqlite::{SqliteConfig, SqliteContext, SqliteContextType, Table, TableColumn, TableError};

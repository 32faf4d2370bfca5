//! `HostError`: every failure the protocol distinguishes, named for what a caller can do.

use thiserror::Error;

/// A failure of a host operation. The HTTP adapter maps each variant to one status.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HostError {
    /// No type of that name is registered.
    #[error("no type named '{0}'")]
    UnknownType(String),

    /// No live instance of that name.
    #[error("no instance named '{0}'")]
    UnknownInstance(String),

    /// The instance was destroyed by the host after being idle too long.
    #[error("instance '{0}' was removed by the host after being idle")]
    Culled(String),

    /// The instance has no method of that name.
    #[error("no method named '{0}'")]
    UnknownMethod(String),

    /// The instance keeps no execution of that id (never started, or ended too long ago).
    #[error("no execution '{0}' is kept by this instance")]
    UnknownExecution(String),

    /// No execution environment of that id.
    #[error("no environment named '{0}'")]
    UnknownEnviron(String),

    /// The argument or options do not have the required shape.
    #[error("{0}")]
    BadArgument(String),

    /// The type exists but cannot run here (e.g. its runtime is not installed).
    #[error("{0}")]
    Unavailable(String),

    /// The host already has as many instances as it is allowed.
    #[error("the host already has its maximum of {0} instances; delete one first")]
    TooManyInstances(usize),

    /// A fault inside an instance or its worker that the caller cannot fix.
    #[error("{0}")]
    Internal(String),
}

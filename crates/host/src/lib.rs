//! The core of a Stencila host: the registry of instance types a host offers, the
//! registry of live instances and their names, method dispatch and the manifest.
//!
//! It knows nothing of HTTP, authorization or any language runtime, so other tools
//! can embed it: register types (e.g. `stencila_contexts::PythonContextType`), then
//! create instances and call their methods.
//!
//! ```
//! use std::sync::Arc;
//! use serde_json::{json, Value};
//! use stencila_host::{BoxFuture, Host, HostError, Instance, InstanceType};
//!
//! /// A toy type whose instances echo their argument.
//! struct Echo;
//! struct EchoInstance;
//!
//! impl InstanceType for Echo {
//!     fn name(&self) -> &str { "Echo" }
//!     fn available(&self) -> bool { true }
//!     fn create(&self, _options: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>> {
//!         Box::pin(async { Ok(Arc::new(EchoInstance) as Arc<dyn Instance>) })
//!     }
//! }
//!
//! impl Instance for EchoInstance {
//!     fn call<'a>(&'a self, method: &'a str, arg: Value) -> BoxFuture<'a, Result<Value, HostError>> {
//!         Box::pin(async move {
//!             match method {
//!                 "echo" => Ok(arg),
//!                 _ => Err(HostError::UnknownMethod(method.to_string())),
//!             }
//!         })
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut host = Host::new();
//! host.register(Arc::new(Echo));
//! let name = host.create("Echo", json!({})).await?;
//! assert_eq!(name, "echo1");
//! assert_eq!(host.call(&name, "echo", json!({"a": 1})).await?, json!({"a": 1}));
//! host.delete(&name).await?;
//! # Ok::<(), HostError>(())
//! # }).unwrap();
//! ```

mod error;
mod executions;
mod json;
mod pointers;
mod registry;

pub use error::HostError;
pub use executions::{
    EventCursor, EventSink, Execution, ExecutionEvent, ExecutionLimits, ExecutionStatus,
    OutputStream, Summary,
};
pub use json::{present, ExecuteResult, Json};
pub use registry::{Executed, Host, HostLimits};

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future: what the object-safe traits below return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A kind of instance a host can create, e.g. `PythonContext`.
pub trait InstanceType: Send + Sync {
    /// The type's name as used in `POST /<Type>` and in the manifest.
    fn name(&self) -> &str;

    /// Whether instances can be created on this machine (e.g. its runtime is installed).
    fn available(&self) -> bool;

    /// The name of the client class a Stencila client should use for instances.
    fn client(&self) -> &str {
        "ContextHttpClient"
    }

    /// More fields for the type's manifest entry, beside `name`, `client` and
    /// `available` (which they never replace): e.g. a `reason` it is unavailable, or
    /// what it can run. The default adds none.
    fn manifest_fields(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::new()
    }

    /// Creates an instance from JSON constructor options (an object, possibly empty).
    fn create(&self, options: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>>;

    /// Releases what the type holds beyond its instances (e.g. pre-started workers),
    /// when the host stops. The default holds nothing.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A live instance: something with methods that can be called with a JSON argument.
pub trait Instance: Send + Sync {
    /// Calls `method` with `arg` (a JSON value, `{}` when the caller sent nothing).
    ///
    /// Dispatch must be explicit: an unknown name is [`HostError::UnknownMethod`].
    /// The instance serializes its own calls; a method such as `interrupt` must not
    /// wait behind a running one.
    fn call<'a>(&'a self, method: &'a str, arg: Value) -> BoxFuture<'a, Result<Value, HostError>>;

    /// Runs `execute` with `arg` as [`Instance::call`] does, reporting printed output
    /// to `sink` as it is produced. The host calls this for every `execute`, in a task
    /// of its own (PROTOCOL.md section 10). The default reports nothing live: the
    /// output in the result's messages is then replayed when it ends. A context that
    /// has its result as JSON text answers with the value kept as text
    /// ([`ExecuteResult::from_text`]): the host passes it on without parsing it.
    fn execute_live<'a>(
        &'a self,
        arg: Value,
        sink: EventSink,
    ) -> BoxFuture<'a, Result<ExecuteResult, HostError>> {
        drop(sink);
        Box::pin(async move {
            self.call("execute", arg)
                .await
                .map(ExecuteResult::from_value)
        })
    }

    /// The instance's own public state, merged into `GET /<name>`.
    fn state(&self) -> Value {
        Value::Object(Default::default())
    }

    /// Releases everything the instance holds (e.g. ends its worker process).
    fn destroy(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

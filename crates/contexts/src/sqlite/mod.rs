//! `SqliteContext`: a context that runs SQL on an embedded SQLite database (the
//! `rusqlite` crate with SQLite bundled, so nothing is installed), in the host
//! process, one thread per instance.
//!
//! Each instance is an actor: its thread owns the connection and takes calls from a
//! queue one at a time, in arrival order, so the registry never waits on SQL.
//! `interrupt` and timeouts do not queue: they use SQLite's interrupt handle from the
//! caller's thread (see [`database::Control`]).
//!
//! Values: every result is a `table` ([`Table`], the same shape the Python context
//! produces); INTEGER is `integer` (beyond ±(2^53 − 1) a decimal string, as in the
//! Python context), REAL `number`, TEXT `string`, NULL `null`, BLOB packed `bytes`.

mod database;
mod legacy;
mod split;
mod table;

pub use table::{Table, TableColumn, TableError};

use database::{Control, Database, Location};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use stencila_host::{BoxFuture, HostError, Instance, InstanceType};
use tokio::sync::oneshot;

/// What the CLI decides about SQLite, validated.
#[derive(Debug, Clone, Default)]
pub struct SqliteConfig {
    /// The default limit on one `execute` (also on `list`, `get` and `set`);
    /// `None` means no limit.
    pub execute_timeout: Option<Duration>,
    /// A result over this is kept in the database and answered with a pointer.
    pub max_inline: crate::InlineLimit,
}

/// The `SqliteContext` type: always available, since SQLite is built in.
pub struct SqliteContextType {
    config: SqliteConfig,
}

impl SqliteContextType {
    pub fn new(config: SqliteConfig) -> Self {
        SqliteContextType { config }
    }
}

impl InstanceType for SqliteContextType {
    fn name(&self) -> &str {
        "SqliteContext"
    }

    fn available(&self) -> bool {
        true
    }

    fn create(&self, options: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>> {
        Box::pin(async move {
            let location = location(&options)?;
            let context = SqliteContext::start(location, self.config.clone()).await?;
            Ok(Arc::new(context) as Arc<dyn Instance>)
        })
    }
}

/// Where the options say the database is: `{"db": file}`, `{"dir": directory}` (its
/// first database file by name; none there: in memory, as in 2018) or neither (in
/// memory). Unknown options are refused, so a misspelt `db` never silently gives an
/// empty in-memory database.
fn location(options: &Value) -> Result<Location, HostError> {
    let object = match options {
        Value::Null => return Ok(Location::Memory),
        Value::Object(object) => object,
        _ => {
            return Err(HostError::BadArgument(
                "SqliteContext options must be an object: {\"db\": \"<file>\"} or {\"dir\": \"<directory>\"}".into(),
            ))
        }
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !["db", "dir"].contains(&key.as_str()))
    {
        return Err(HostError::BadArgument(format!(
            "SqliteContext has no option '{unknown}'; it takes \"db\" (a database file) or \"dir\" (a directory)"
        )));
    }
    let path = |key: &str| match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(path)) if !path.is_empty() => Ok(Some(PathBuf::from(path))),
        Some(_) => Err(HostError::BadArgument(format!(
            "the SqliteContext option \"{key}\" must be a non-empty path"
        ))),
    };
    match (path("db")?, path("dir")?) {
        (Some(_), Some(_)) => Err(HostError::BadArgument(
            "give SqliteContext \"db\" or \"dir\", not both".into(),
        )),
        (Some(db), None) => Ok(Location::File(db)),
        (None, Some(dir)) => {
            Ok(database::find_database(&dir)?.map_or(Location::Memory, Location::File))
        }
        (None, None) => Ok(Location::Memory),
    }
}

/// A method call sent to an instance's thread.
enum Job {
    Execute { code: String, inputs: Option<Value> },
    List,
    Get { name: String },
    Set { name: String, value: Value },
    Fetch(crate::pointer::FetchArg),
    Restart,
}

/// A job with its call id, its time limit and where its answer goes.
struct Envelope {
    job: Job,
    call: u64,
    /// When the caller's time runs out, and the limit it was given.
    deadline: Option<(Instant, Duration)>,
    reply: oneshot::Sender<Result<Value, HostError>>,
}

/// An instance of `SqliteContext`: a connection on its own thread.
pub struct SqliteContext {
    /// The queue to the thread; taken by `destroy`, which ends the thread.
    jobs: Mutex<Option<mpsc::Sender<Envelope>>>,
    control: Arc<Control>,
    destroyed: Arc<AtomicBool>,
    next_call: AtomicU64,
    /// Resolves when the thread has ended.
    ended: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    config: SqliteConfig,
    location: Location,
}

fn gone() -> HostError {
    HostError::Unavailable("this SqliteContext has been destroyed".into())
}

impl SqliteContext {
    /// Opens the database on a new thread; the instance exists once it is open.
    async fn start(location: Location, config: SqliteConfig) -> Result<Self, HostError> {
        let (opened_tx, opened_rx) = oneshot::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Envelope>();
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        let destroyed = Arc::new(AtomicBool::new(false));
        let thread_destroyed = destroyed.clone();
        let thread_location = location.clone();
        let limit = config.max_inline;
        std::thread::Builder::new()
            .name("sqlite-context".into())
            .spawn(move || {
                // Dropped when the thread ends, however it ends: `destroy` waits on it.
                let _ended = ended_tx;
                let mut database = match Database::open(thread_location, limit) {
                    Ok(database) => database,
                    Err(error) => {
                        let _ = opened_tx.send(Err(error));
                        return;
                    }
                };
                let control = Arc::new(Control::new(database.connection.get_interrupt_handle()));
                if opened_tx.send(Ok(control.clone())).is_err() {
                    return;
                }
                serve(&mut database, &control, &jobs_rx, &thread_destroyed);
            })
            .map_err(|error| {
                HostError::Internal(format!("could not start a thread for SQLite: {error}"))
            })?;
        let control = opened_rx.await.map_err(|_| {
            HostError::Internal("the SQLite thread ended while opening the database".into())
        })??;
        Ok(SqliteContext {
            jobs: Mutex::new(Some(jobs_tx)),
            control,
            destroyed,
            next_call: AtomicU64::new(1),
            ended: tokio::sync::Mutex::new(Some(ended_rx)),
            config,
            location,
        })
    }

    /// Queues `job` and waits for its answer, interrupting it past `timeout`.
    async fn send(&self, job: Job, timeout: Option<Duration>) -> Result<Value, HostError> {
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let call = self.next_call.fetch_add(1, Ordering::SeqCst);
        let (reply, mut answer) = oneshot::channel();
        let deadline = timeout.and_then(|limit| Some((Instant::now().checked_add(limit)?, limit)));
        {
            let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let sender = jobs.as_ref().ok_or_else(gone)?;
            let envelope = Envelope {
                job,
                call,
                deadline,
                reply,
            };
            sender.send(envelope).map_err(|_| gone())?;
        }
        let lost = |_| HostError::Internal("the SQLite thread ended during the call".into());
        let Some(limit) = timeout else {
            return answer.await.map_err(lost)?;
        };
        // The limit counts from now, queue time included, as for the Python context: a
        // call still queued when it passes is answered without running (see `serve`).
        match tokio::time::timeout(limit, &mut answer).await {
            Ok(result) => result.map_err(lost)?,
            Err(_) => {
                self.control.time_out(call, limit);
                answer.await.map_err(lost)?
            }
        }
    }

    async fn execute(&self, arg: Value) -> Result<Value, HostError> {
        let (code, inputs, timeout) = match arg {
            Value::String(code) => (code, None, None),
            Value::Object(mut object) if object.get("code").is_some_and(Value::is_string) => {
                let timeout = timeout_arg(object.get("timeout"))?;
                let code = match object.remove("code") {
                    Some(Value::String(code)) => code,
                    _ => String::new(),
                };
                (code, object.remove("inputs"), timeout)
            }
            _ => {
                return Err(HostError::BadArgument(
                    "execute needs `code`, a string (or the code as a bare JSON string)".into(),
                ))
            }
        };
        let timeout = timeout.or(self.config.execute_timeout);
        self.send(Job::Execute { code, inputs }, timeout).await
    }

    async fn destroy_now(&self) {
        self.destroyed.store(true, Ordering::SeqCst);
        // Stop a running query, then close the queue: the thread answers what is
        // queued with "destroyed", drops the connection and ends.
        self.control.interrupt();
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(ended) = self.ended.lock().await.take() {
            let _ = ended.await;
        }
    }
}

/// The thread's loop: one job at a time until the queue closes.
fn serve(
    database: &mut Database,
    control: &Control,
    jobs: &mpsc::Receiver<Envelope>,
    destroyed: &AtomicBool,
) {
    while let Ok(envelope) = jobs.recv() {
        let Envelope {
            job,
            call,
            deadline,
            reply,
        } = envelope;
        if destroyed.load(Ordering::SeqCst) {
            let _ = reply.send(Err(gone()));
            continue;
        }
        let result = if control.begin(call, deadline.map(|(at, _)| at)) {
            match job {
                Job::Execute { code, inputs } => database.execute(control, &code, inputs.as_ref()),
                Job::List => database.list(control),
                Job::Get { name } => database.get(control, &name),
                Job::Set { name, value } => database.set(control, &name, &value),
                Job::Fetch(arg) => database.fetch(control, &arg),
                Job::Restart => database.restart(control).map(|()| Value::Null),
            }
        } else {
            let message =
                database::expired_text(deadline.map(|(_, limit)| limit).unwrap_or_default());
            match job {
                Job::Execute { .. } => {
                    Ok(json!({"messages": [{"type": "error", "message": message}], "value": null}))
                }
                _ => Err(HostError::Internal(message)),
            }
        };
        control.end();
        // The caller may have gone (its connection dropped); nothing to tell then.
        let _ = reply.send(result);
    }
}

/// The `timeout` of an `execute`, in seconds; `None` when absent or null.
fn timeout_arg(timeout: Option<&Value>) -> Result<Option<Duration>, HostError> {
    match timeout {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_f64() {
            Some(secs) if secs > 0.0 => Ok(Some(
                Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
            )),
            _ => Err(HostError::BadArgument(
                "`timeout` must be a positive number of seconds".into(),
            )),
        },
    }
}

/// The `name` argument of `get` and `set`.
fn name_arg(arg: &Value, method: &str) -> Result<String, HostError> {
    arg.get("name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .ok_or_else(|| HostError::BadArgument(format!("{method} needs `name`, a non-empty string")))
}

impl Drop for SqliteContext {
    /// Dropped without `destroy` (e.g. by an embedding program): the thread must not
    /// go on running a query nobody waits for. Closing the queue then ends it.
    fn drop(&mut self) {
        self.destroyed.store(true, Ordering::SeqCst);
        self.control.interrupt();
    }
}

impl Instance for SqliteContext {
    fn call<'a>(&'a self, method: &'a str, arg: Value) -> BoxFuture<'a, Result<Value, HostError>> {
        Box::pin(async move {
            let timeout = self.config.execute_timeout;
            match method {
                _ if crate::legacy::handles(method, &arg) => {
                    crate::legacy::call(self, method, arg).await
                }
                "execute" => self.execute(arg).await,
                "list" => self.send(Job::List, timeout).await,
                "get" => {
                    let name = name_arg(&arg, "get")?;
                    self.send(Job::Get { name }, timeout).await
                }
                "fetch" => {
                    let arg = crate::pointer::FetchArg::parse(&arg)?;
                    self.send(Job::Fetch(arg), timeout).await
                }
                "set" => {
                    let name = name_arg(&arg, "set")?;
                    let Some(value) = arg.get("value").cloned() else {
                        return Err(HostError::BadArgument(
                            "set needs `value`, a table value such as {\"type\": \"table\", \"data\": {\"columns\": [...]}}".into(),
                        ));
                    };
                    self.send(Job::Set { name, value }, timeout).await
                }
                // Stop what runs first, so the restart does not wait behind it.
                "restart" => {
                    self.control.interrupt();
                    self.send(Job::Restart, None).await
                }
                // Never queued: it must reach a running query.
                "interrupt" => {
                    self.control.interrupt();
                    Ok(Value::Null)
                }
                _ => Err(HostError::UnknownMethod(method.to_string())),
            }
        })
    }

    fn state(&self) -> Value {
        let database = match &self.location {
            Location::Memory => Value::String(":memory:".into()),
            Location::File(path) => Value::String(path.display().to_string()),
        };
        json!({ "database": database, "sqlite": rusqlite::version() })
    }

    fn destroy(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.destroy_now())
    }
}

#[cfg(test)]
mod tests;

//! One running Jupyter kernel: its process (in its own process group), its
//! connection file, and the ZeroMQ channels to it (through `jupyter-zmq-client`).
//!
//! A kernel is started on the type's own runtime (see `mod.rs`): its sockets' tasks,
//! the readers below and the watcher that reaps it live there, so calls may come from
//! any runtime.

use super::kernelspec::Kernelspec;
use super::values::{bundle_value, error_message};
use crate::worker::ExitReport;
use jupyter_protocol::{
    ConnectionInfo, ExecuteRequest, ExecutionState, InterruptRequest, JupyterMessage,
    JupyterMessageContent, KernelInfoRequest, ReplyStatus, ShutdownRequest, Stdio as Stream,
};
use jupyter_zmq_client::{DealerSendConnection, RuntimeError};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use rand::RngCore;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

/// How long a kernel has to bind its ports and answer `kernel_info_request`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one `kernel_info_request` waits before it is sent again (a subscription
/// on the iopub channel takes a moment to reach the kernel).
const READY_RETRY: Duration = Duration::from_millis(500);

/// How long an execute interrupted on its timeout has to answer before the kernel
/// is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// How long a kernel has to exit after `shutdown_request` before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for a killed kernel to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Printed output kept per stream and execute (as for PythonContext); the rest is
/// counted in a warning.
const OUTPUT_CAP: usize = 1 << 20;

/// How many of a kernel's last stderr lines are kept, for the log when it fails.
const STDERR_TAIL: usize = 20;

/// What one `execute_request` produced.
#[derive(Debug, Default)]
pub(super) struct Outputs {
    /// Section 6's messages: stdout/stderr (consecutive chunks of one stream
    /// merged) and errors.
    pub messages: Vec<Value>,
    /// The packed value of the `execute_result` (else of the last `display_data`).
    pub value: Option<Value>,
    /// True when the timeout passed, the kernel was interrupted, and then answered.
    pub interrupted_on_timeout: bool,
    result: Option<Value>,
    display: Option<Value>,
    saw_error: bool,
    /// Where the error message taken from an `execute_reply` sits in `messages`: the
    /// reply and the iopub `error` come on different sockets, in either order, and
    /// must make one message, not two.
    reply_error: Option<usize>,
    /// Bytes of (stdout, stderr) kept, and left out past [`OUTPUT_CAP`].
    used: (usize, usize),
    omitted: (usize, usize),
    /// Where kept output also goes as it arrives (an execution's live events).
    live: Option<stencila_host::EventSink>,
}

impl Outputs {
    fn stream(&mut self, kind: &str, text: &str) {
        // Bounded, as PythonContext's output: a runaway print loop must not grow
        // the host's memory without limit.
        let (used, omitted) = if kind == "stdout" {
            (&mut self.used.0, &mut self.omitted.0)
        } else {
            (&mut self.used.1, &mut self.omitted.1)
        };
        let room = OUTPUT_CAP.saturating_sub(*used);
        let text = if text.len() > room {
            let mut cut = room;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            *omitted += text.len() - cut;
            &text[..cut]
        } else {
            text
        };
        *used += text.len();
        if text.is_empty() {
            return;
        }
        if let Some(live) = &self.live {
            let stream = if kind == "stdout" {
                stencila_host::OutputStream::Stdout
            } else {
                stencila_host::OutputStream::Stderr
            };
            live.output(stream, text);
        }
        if let Some(last) = self.messages.last_mut() {
            if last["type"] == kind {
                if let Some(Value::String(message)) = last.get_mut("message") {
                    message.push_str(text);
                    return;
                }
            }
        }
        self.messages.push(json!({"type": kind, "message": text}));
    }

    /// Takes one iopub message of this execution; true when the kernel went idle.
    fn take(&mut self, content: JupyterMessageContent) -> bool {
        match content {
            JupyterMessageContent::StreamContent(stream) => {
                let kind = match stream.name {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                };
                self.stream(kind, &stream.text);
            }
            JupyterMessageContent::ErrorOutput(error) => {
                self.saw_error = true;
                let message = error_message(&error.ename, &error.evalue, &error.traceback);
                match self.reply_error.take() {
                    Some(index) if index < self.messages.len() => self.messages[index] = message,
                    _ => self.messages.push(message),
                }
            }
            JupyterMessageContent::ExecuteResult(result) => {
                if let Ok(Value::Object(bundle)) = serde_json::to_value(&result.data) {
                    self.result = bundle_value(&bundle);
                }
            }
            JupyterMessageContent::DisplayData(display) => {
                if let Ok(Value::Object(bundle)) = serde_json::to_value(&display.data) {
                    if let Some(value) = bundle_value(&bundle) {
                        self.display = Some(value);
                    }
                }
            }
            JupyterMessageContent::Status(status) => {
                return status.execution_state == ExecutionState::Idle;
            }
            _ => {}
        }
        false
    }

    /// Takes the `execute_reply`: an error reply with no `error` output on iopub
    /// (some kernels only reply) still becomes an error message.
    fn reply(&mut self, content: JupyterMessageContent) {
        let JupyterMessageContent::ExecuteReply(reply) = content else {
            return;
        };
        match reply.status {
            ReplyStatus::Ok => {}
            ReplyStatus::Error if !self.saw_error => {
                let message = match &reply.error {
                    Some(error) => error_message(&error.ename, &error.evalue, &error.traceback),
                    None => json!({"type": "error", "message": "the kernel reported an error"}),
                };
                self.reply_error = Some(self.messages.len());
                self.messages.push(message);
                self.saw_error = true;
            }
            ReplyStatus::Error => {}
            ReplyStatus::Aborted => {
                self.messages
                    .push(json!({"type": "error", "message": "the kernel aborted the execution"}));
                self.saw_error = true;
            }
        }
    }
}

/// Why an execute got no answer.
#[derive(Debug)]
pub(super) enum ExecuteFault {
    /// The kernel process ended.
    Died(ExitReport),
    /// It did not answer within the timeout and the grace after an interrupt.
    Unresponsive,
    /// A channel to it failed.
    Channel(String),
}

/// The channels an execute uses, held by one execute at a time.
struct Channels {
    shell: DealerSendConnection,
    shell_replies: mpsc::UnboundedReceiver<JupyterMessage>,
    iopub: mpsc::UnboundedReceiver<JupyterMessage>,
}

/// Kills the kernel's process group and removes its connection file when dropped:
/// whatever happens to a kernel (a failed start, a panic), nothing is left behind.
struct Remains {
    group: Pid,
    connection_file: PathBuf,
}

impl Drop for Remains {
    fn drop(&mut self) {
        // ESRCH (already gone) is expected and what we want.
        let _ = killpg(self.group, Signal::SIGKILL);
        let _ = std::fs::remove_file(&self.connection_file);
    }
}

/// A running kernel.
pub(super) struct Kernel {
    pid: u32,
    interrupt_by_message: bool,
    /// `None` once the kernel is being stopped: its sockets are dropped then, so
    /// ZeroMQ stops trying to reconnect to it.
    channels: Mutex<Option<Channels>>,
    control: Mutex<Option<DealerSendConnection>>,
    exit: watch::Receiver<Option<ExitReport>>,
    stderr_tail: Arc<StdMutex<VecDeque<String>>>,
    readers: Vec<AbortHandle>,
    remains: Remains,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("pid", &self.pid).finish()
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn channel_error(error: RuntimeError) -> String {
    error.to_string()
}

/// Makes `dir` (the connection files' directory) if needed, mode 0700, and refuses
/// one that another user could tamper with (in a shared `/tmp`, someone else may
/// have made it first).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let metadata = std::fs::symlink_metadata(dir)?;
    if metadata.file_type().is_symlink() || !metadata.is_dir() {
        return Err(std::io::Error::other("it is not a plain directory"));
    }
    if metadata.uid() != nix::unistd::getuid().as_raw() {
        return Err(std::io::Error::other("it belongs to another user"));
    }
    if metadata.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes the connection file: a new file, mode 0600 (it holds the HMAC key).
fn write_connection_file(path: &Path, info: &ConnectionInfo) -> std::io::Result<()> {
    let text = serde_json::to_vec(info).map_err(std::io::Error::other)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(&text)
}

/// Reads a socket into a channel until either side is gone.
fn forward<S>(
    mut connection: jupyter_zmq_client::Connection<S>,
) -> (mpsc::UnboundedReceiver<JupyterMessage>, JoinHandle<()>)
where
    S: zeromq::SocketRecv + Send + 'static,
{
    let (sender, receiver) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            match connection.read().await {
                Ok(message) => {
                    if sender.send(message).is_err() {
                        return;
                    }
                }
                // A message that does not verify or parse is dropped, not fatal.
                Err(RuntimeError::ZmqError(_)) => return,
                Err(error) => log::debug!("a kernel message was dropped: {error}"),
            }
        }
    });
    (receiver, reader)
}

impl Kernel {
    /// Starts the kernel of `spec` with a fresh connection file in `connection_dir`
    /// and waits until it answers. Must run on the type's runtime.
    pub async fn start(spec: &Kernelspec, connection_dir: &Path) -> Result<Kernel, String> {
        private_dir(connection_dir).map_err(|error| {
            format!("could not make the directory for kernel connection files: {error}")
        })?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (ports, listeners) = jupyter_zmq_client::peek_ports_with_listeners(ip, 5)
            .await
            .map_err(|error| format!("could not find free ports: {error}"))?;
        let [stdin_port, control_port, hb_port, shell_port, iopub_port] = ports[..] else {
            return Err("could not find five free ports".into());
        };
        let info = ConnectionInfo {
            transport: jupyter_protocol::connection_info::Transport::TCP,
            ip: ip.to_string(),
            stdin_port,
            control_port,
            hb_port,
            shell_port,
            iopub_port,
            signature_scheme: "hmac-sha256".into(),
            key: random_hex(32),
            kernel_name: Some(spec.name.clone()),
        };
        let connection_file = connection_dir.join(format!("kernel-{}.json", random_hex(8)));
        write_connection_file(&connection_file, &info)
            .map_err(|error| format!("could not write the kernel's connection file: {error}"))?;
        let Some((program, args)) = spec.command(&connection_file) else {
            let _ = std::fs::remove_file(&connection_file);
            return Err("its kernelspec has an empty argv".into());
        };
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&args)
            .envs(spec.spec.env.iter().flatten())
            // As Jupyter's own launcher does: ipykernel (and kernels built on it)
            // exit when this process is gone, even after a SIGKILL of the host.
            .env("JPY_PARENT_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let _ = std::fs::remove_file(&connection_file);
                let program = program
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(format!("could not run {program}: {error}"));
            }
        };
        // The kernel binds the ports itself, moments from now.
        drop(listeners);
        let Some((pid, group)) = child
            .id()
            .and_then(|pid| Some((pid, Pid::from_raw(i32::try_from(pid).ok()?))))
        else {
            let _ = child.start_kill();
            let _ = std::fs::remove_file(&connection_file);
            return Err("the kernel has no process id".into());
        };
        let remains = Remains {
            group,
            connection_file,
        };

        let stderr_tail = Arc::new(StdMutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let tail = stderr_tail.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log::debug!("kernel {pid}: {line}");
                    let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        let (exit_sender, exit) = watch::channel(None);
        tokio::spawn(async move {
            let report = match child.wait().await {
                Ok(status) => ExitReport::from_status(status),
                Err(error) => ExitReport::Unknown(error.to_string()),
            };
            log::debug!("kernel {pid} {report}");
            exit_sender.send_replace(Some(report));
        });

        let session = random_hex(16);
        let connect = || async {
            let iopub =
                jupyter_zmq_client::create_client_iopub_connection(&info, "", &session).await?;
            let identity = jupyter_zmq_client::peer_identity_for_session(&session)?;
            let shell = jupyter_zmq_client::create_client_shell_connection_with_identity(
                &info, &session, identity,
            )
            .await?;
            let control =
                jupyter_zmq_client::create_client_control_connection(&info, &session).await?;
            Ok::<_, RuntimeError>((iopub, shell, control))
        };
        // A connection attempt can fail while the kernel is still binding its ports
        // (a reset during the ZeroMQ handshake): try again until it is ready or gone.
        let connect_until_ready = async {
            loop {
                match connect().await {
                    Ok(connections) => return connections,
                    Err(error) => {
                        log::debug!("kernel {pid}: connecting failed ({error}); trying again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        let mut exit_watch = exit.clone();
        let (iopub, shell, control) = tokio::select! {
            connected = tokio::time::timeout(READY_TIMEOUT, connect_until_ready) => match connected {
                Ok(connections) => connections,
                Err(_) => return Err(failed(&stderr_tail, &format!("it did not open its ports within {} s", READY_TIMEOUT.as_secs()))),
            },
            report = ended(&mut exit_watch) => {
                return Err(failed(&stderr_tail, &format!("it {report} before it was ready")));
            }
        };
        let (shell, shell_recv) = shell.split();
        let (control, control_recv) = control.split();
        let (iopub, iopub_reader) = forward(iopub);
        let (shell_replies, shell_reader) = forward(shell_recv);
        // Control replies (to interrupt and shutdown requests) are not needed; read
        // them so they never pile up.
        let (_, control_reader) = forward(control_recv);
        let readers: Vec<AbortHandle> = [&iopub_reader, &shell_reader, &control_reader]
            .iter()
            .map(|reader| reader.abort_handle())
            .collect();
        // Once the kernel has ended its sockets are of no use: dropping them (with
        // the readers) stops ZeroMQ's attempts to reconnect to the dead kernel.
        let stop_readers = readers.clone();
        let mut exit_watch = exit.clone();
        tokio::spawn(async move {
            ended(&mut exit_watch).await;
            for reader in stop_readers {
                reader.abort();
            }
        });
        let kernel = Kernel {
            pid,
            interrupt_by_message: spec.interrupts_by_message(),
            channels: Mutex::new(Some(Channels {
                shell,
                shell_replies,
                iopub,
            })),
            control: Mutex::new(Some(control)),
            exit,
            stderr_tail,
            readers,
            remains,
        };
        kernel.wait_ready().await?;
        Ok(kernel)
    }

    /// Sends `kernel_info_request` until the kernel's iopub messages about one of
    /// them reach us: then it has taken requests on shell and our subscription is in
    /// place, so no output of the first execute is missed. (The reply itself is not
    /// awaited: some kernels' replies lack fields `jupyter-protocol` requires.)
    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut guard = self.channels.lock().await;
        let channels = guard.as_mut().ok_or("it was stopped")?;
        let mut exit = self.exit.clone();
        let mut sent = Vec::new();
        while Instant::now() < deadline {
            let request: JupyterMessage = KernelInfoRequest {}.into();
            sent.push(request.header.msg_id.clone());
            channels
                .shell
                .send(request)
                .await
                .map_err(|error| failed(&self.stderr_tail, &channel_error(error)))?;
            let retry = tokio::time::sleep(READY_RETRY);
            tokio::pin!(retry);
            loop {
                tokio::select! {
                    Some(message) = channels.iopub.recv() => {
                        let about_ours = message
                            .parent_header
                            .as_ref()
                            .is_some_and(|parent| sent.contains(&parent.msg_id));
                        if about_ours {
                            // Later messages of these requests are stale: the first
                            // execute drains them.
                            return Ok(());
                        }
                    }
                    Some(_) = channels.shell_replies.recv() => {}
                    report = ended(&mut exit) => {
                        return Err(failed(&self.stderr_tail, &format!("it {report} before it was ready")));
                    }
                    _ = &mut retry => break,
                }
            }
        }
        Err(failed(
            &self.stderr_tail,
            &format!("it did not answer within {} s", READY_TIMEOUT.as_secs()),
        ))
    }

    /// The kernel's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How the kernel ended, if it has.
    pub fn exited(&self) -> Option<ExitReport> {
        self.exit.borrow().clone()
    }

    /// Runs `code`; `silent` runs it without a history entry or an execution count
    /// (for setting inputs). With a `timeout`, an unanswered execute interrupts the
    /// kernel, then gives up after [`INTERRUPT_GRACE`]. Kept output also goes to
    /// `live` as it arrives.
    pub async fn execute(
        &self,
        code: &str,
        silent: bool,
        timeout: Option<Duration>,
        live: Option<stencila_host::EventSink>,
    ) -> Result<Outputs, ExecuteFault> {
        let mut guard = self.channels.lock().await;
        let Some(channels) = guard.as_mut() else {
            return Err(ExecuteFault::Channel("the kernel was stopped".into()));
        };
        // What earlier requests left (late status messages) is not this execute's.
        while channels.iopub.try_recv().is_ok() {}
        while channels.shell_replies.try_recv().is_ok() {}
        let request: JupyterMessage = ExecuteRequest {
            code: code.to_string(),
            silent,
            store_history: !silent,
            user_expressions: None,
            allow_stdin: false,
            stop_on_error: true,
        }
        .into();
        let id = request.header.msg_id.clone();
        channels
            .shell
            .send(request)
            .await
            .map_err(|error| ExecuteFault::Channel(channel_error(error)))?;
        let ours = |message: &JupyterMessage| {
            message
                .parent_header
                .as_ref()
                .is_some_and(|parent| parent.msg_id == id)
        };
        let mut outputs = Outputs {
            live,
            ..Outputs::default()
        };
        let mut deadline = timeout.map(|limit| Instant::now() + limit);
        let (mut idle, mut replied) = (false, false);
        let mut exit = self.exit.clone();
        while !(idle && replied) {
            let expiry = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = channels.iopub.recv() => {
                    let Some(message) = message else {
                        return Err(self.channel_closed("iopub").await);
                    };
                    if ours(&message) && outputs.take(message.content) {
                        idle = true;
                    }
                }
                message = channels.shell_replies.recv() => {
                    let Some(message) = message else {
                        return Err(self.channel_closed("shell").await);
                    };
                    if ours(&message) {
                        outputs.reply(message.content);
                        replied = true;
                    }
                }
                report = ended(&mut exit) => return Err(ExecuteFault::Died(report)),
                () = expiry => {
                    if outputs.interrupted_on_timeout {
                        return Err(ExecuteFault::Unresponsive);
                    }
                    outputs.interrupted_on_timeout = true;
                    self.interrupt().await;
                    deadline = Some(Instant::now() + INTERRUPT_GRACE);
                }
            }
        }
        outputs.value = outputs.result.take().or(outputs.display.take());
        for (stream, omitted) in [("stdout", outputs.omitted.0), ("stderr", outputs.omitted.1)] {
            if omitted > 0 {
                outputs.messages.push(json!({
                    "type": "warning",
                    "message": format!("[output truncated: {omitted} bytes of {stream} omitted]"),
                }));
            }
        }
        Ok(outputs)
    }

    /// Why a channel closed: its readers stop when the kernel ends, so that is
    /// the likely reason.
    async fn channel_closed(&self, channel: &str) -> ExecuteFault {
        match self.wait_for_exit(Duration::from_secs(1)).await {
            Some(report) => ExecuteFault::Died(report),
            None => ExecuteFault::Channel(format!("the {channel} channel closed")),
        }
    }

    /// Interrupts the running execute as the kernelspec says: SIGINT to the kernel's
    /// process group, or `interrupt_request` on the control channel.
    pub async fn interrupt(&self) {
        if self.interrupt_by_message {
            let request: JupyterMessage = InterruptRequest {}.into();
            let send = async {
                match self.control.lock().await.as_mut() {
                    Some(control) => control.send(request).await,
                    None => Ok(()),
                }
            };
            if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(1), send).await {
                log::warn!(
                    "could not send interrupt_request to kernel {}: {error}",
                    self.pid
                );
            }
        } else {
            let _ = killpg(self.remains.group, Signal::SIGINT);
        }
    }

    /// Asks the kernel to shut down, then kills whatever is left of its process group.
    pub async fn shutdown(&self) {
        if self.exited().is_none() {
            let request: JupyterMessage = ShutdownRequest { restart: false }.into();
            let send = async {
                match self.control.lock().await.as_mut() {
                    Some(control) => control.send(request).await.is_ok(),
                    None => false,
                }
            };
            let sent = tokio::time::timeout(Duration::from_secs(1), send).await;
            self.close_sockets();
            if sent == Ok(true) {
                self.wait_for_exit(SHUTDOWN_GRACE).await;
            }
        }
        self.kill().await;
    }

    /// Drops the sockets (a running execute keeps its channels until the kernel's
    /// end stops it): nothing more is sent, and nothing tries to reconnect.
    fn close_sockets(&self) {
        for reader in &self.readers {
            reader.abort();
        }
        if let Ok(mut channels) = self.channels.try_lock() {
            channels.take();
        }
        if let Ok(mut control) = self.control.try_lock() {
            control.take();
        }
    }

    /// Kills the kernel's whole process group and waits for the kernel to be reaped.
    pub async fn kill(&self) {
        self.close_sockets();
        let _ = killpg(self.remains.group, Signal::SIGKILL);
        if self.wait_for_exit(KILL_WAIT).await.is_none() {
            log::warn!(
                "kernel {} had not ended {} s after SIGKILL",
                self.pid,
                KILL_WAIT.as_secs()
            );
        }
        let _ = std::fs::remove_file(&self.remains.connection_file);
    }

    async fn wait_for_exit(&self, limit: Duration) -> Option<ExitReport> {
        let mut exit = self.exit.clone();
        let report = match tokio::time::timeout(limit, exit.wait_for(Option::is_some)).await {
            Ok(Ok(report)) => report.clone(),
            _ => None,
        };
        report
    }
}

/// Resolves with how the kernel ended, once it has (an owned report, so a `select!`
/// holding it stays `Send`).
async fn ended(exit: &mut watch::Receiver<Option<ExitReport>>) -> ExitReport {
    match exit.wait_for(Option::is_some).await {
        Ok(report) => report
            .clone()
            .unwrap_or_else(|| ExitReport::Unknown("no report".into())),
        Err(_) => ExitReport::Unknown("its watcher stopped".into()),
    }
}

/// Why a kernel failed to start, logged with its last stderr lines (which may name
/// paths of this machine, so they stay in the log).
fn failed(stderr_tail: &StdMutex<VecDeque<String>>, reason: &str) -> String {
    let tail: Vec<String> = stderr_tail
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    log::warn!(
        "a kernel failed to start: {reason}; its stderr ended with:\n{}",
        tail.join("\n")
    );
    reason.to_string()
}

#[cfg(test)]
mod outputs_tests {
    use super::*;

    fn content(kind: &str, value: Value) -> JupyterMessageContent {
        JupyterMessageContent::from_type_and_content(kind, value).expect("a valid message")
    }

    fn error_output() -> JupyterMessageContent {
        content(
            "error",
            json!({"ename": "bash: exit status", "evalue": "3", "traceback": []}),
        )
    }

    fn error_reply() -> JupyterMessageContent {
        content(
            "execute_reply",
            json!({"status": "error", "execution_count": 1, "ename": "bash: exit status", "evalue": "3", "traceback": []}),
        )
    }

    /// Regression (seen with bash_kernel): the reply and the iopub `error` arrive on
    /// different sockets, in either order; either way they make one error message.
    #[test]
    fn an_error_reply_and_its_iopub_error_make_one_message_in_either_order() {
        let mut reply_first = Outputs::default();
        reply_first.reply(error_reply());
        reply_first.take(error_output());
        let mut iopub_first = Outputs::default();
        iopub_first.take(error_output());
        iopub_first.reply(error_reply());
        for outputs in [reply_first, iopub_first] {
            let errors: Vec<_> = outputs
                .messages
                .iter()
                .filter(|m| m["type"] == "error")
                .collect();
            assert_eq!(errors.len(), 1, "{:?}", outputs.messages);
        }
    }
}

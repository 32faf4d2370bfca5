//! Helpers for the black-box tests: start the real `stencila` binary on `--port 0`, read
//! its startup line, and speak raw HTTP/1.1 to it, so every byte a client sends is ours.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `stencila` binary under test: `STENCILA_BIN`, else the one beside this test's
/// target directory, built once if missing.
pub fn binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("STENCILA_BIN") {
                return PathBuf::from(path);
            }
            // target/<profile>/deps/<test> -> target/<profile>/stencila
            let exe = std::env::current_exe().expect("the test's own path");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("a target directory")
                .to_path_buf();
            let binary = profile_dir.join("stencila");
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "stencila-cli"])
                .status()
                .expect("cargo to run");
            assert!(status.success(), "building stencila failed");
            assert!(binary.exists(), "no binary at {}", binary.display());
            binary
        })
        .clone()
}

/// A running host, stopped (SIGKILL) on drop if the test did not stop it.
pub struct HostProcess {
    pub child: Child,
    pub port: u16,
    /// The startup URL, e.g. `http://127.0.0.1:40123/?ticket=abc`.
    pub url: String,
    pub ticket: Option<String>,
    stdout: BufReader<ChildStdout>,
}

impl HostProcess {
    /// Starts `stencila serve --port 0 <args>`.
    pub fn start(args: &[&str]) -> HostProcess {
        Self::start_with_env(args, &[])
    }

    /// Starts with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> HostProcess {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("stencila to start");
        let mut stdout = BufReader::new(child.stdout.take().expect("a stdout pipe"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a startup line");
        let url = line
            .trim()
            .strip_prefix("Host has started at: ")
            .unwrap_or_else(|| panic!("unexpected startup line: {line:?}"))
            .to_string();
        let port = url
            .split(':')
            .nth(2)
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        let ticket = url.split_once("?ticket=").map(|(_, t)| t.to_string());
        let mut second = String::new();
        stdout.read_line(&mut second).expect("a second line");
        assert_eq!(second, "Use Ctrl+C to stop\n");
        HostProcess {
            child,
            port,
            url,
            ticket,
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the host prints on stdout.
    pub fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("a line");
        line
    }

    /// A request to this host.
    pub fn request(&self, method: &str, path: &str) -> Request {
        Request::new(self.port, method, path)
    }

    /// A request authorized with the startup ticket in the query.
    pub fn with_ticket(&self, method: &str, path: &str) -> Request {
        let ticket = self.ticket.as_deref().expect("a ticket");
        let separator = if path.contains('?') { '&' } else { '?' };
        self.request(method, &format!("{path}{separator}ticket={ticket}"))
    }

    /// A session token obtained with the ticket.
    pub fn token(&self) -> String {
        let response = self.with_ticket("GET", "/manifest").send();
        response.cookie("token").expect("a token cookie")
    }

    /// Sends `signal` and waits (bounded) for the host to exit; returns its status and
    /// the rest of its stdout.
    pub fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill to run");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the host did not stop after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        (status, rest)
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A raw HTTP/1.1 request (`Connection: close`).
pub struct Request {
    port: u16,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    host_header: Option<String>,
}

impl Request {
    pub fn new(port: u16, method: &str, path: &str) -> Request {
        Request {
            port,
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            host_header: Some(format!("127.0.0.1:{port}")),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the `Host` header (`None` sends none).
    pub fn host(mut self, host: Option<&str>) -> Request {
        self.host_header = host.map(Into::into);
        self
    }

    pub fn cookie(self, token: &str) -> Request {
        self.header("Cookie", &format!("token={token}"))
    }

    pub fn bearer(self, token: &str) -> Request {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    pub fn json(self, value: &serde_json::Value) -> Request {
        self.header("Content-Type", "application/json")
            .body(value.to_string())
    }

    /// The request's bytes as sent on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if let Some(host) = &self.host_header {
            head.push_str(&format!("Host: {host}\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    pub fn send(self) -> Response {
        send_raw(self.port, &self.to_bytes())
    }

    /// Sends from another loopback address.
    pub fn send_from(self, source: std::net::Ipv4Addr) -> Response {
        send_raw_from(Some(source), self.port, &self.to_bytes())
    }
}

/// Sends raw bytes and reads the response until the server closes the connection.
pub fn send_raw(port: u16, bytes: &[u8]) -> Response {
    send_raw_from(None, port, bytes)
}

/// As [`send_raw`], from a chosen loopback source address (e.g. `127.0.0.2`), so
/// tests can be "another client" to per-address rules.
pub fn send_raw_from(source: Option<std::net::Ipv4Addr>, port: u16, bytes: &[u8]) -> Response {
    let mut stream = match source {
        None => TcpStream::connect(("127.0.0.1", port)).expect("a connection"),
        Some(source) => {
            use socket2::{Domain, SockAddr, Socket, Type};
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
            let from = std::net::SocketAddr::from((source, 0));
            socket
                .bind(&SockAddr::from(from))
                .expect("bind to the source address");
            let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            socket.connect(&SockAddr::from(to)).expect("a connection");
            TcpStream::from(socket)
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a timeout");
    // The server may answer (e.g. 413) and close before taking the whole body.
    let _ = stream.write_all(bytes);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    Response::parse(&raw).unwrap_or_else(|| {
        panic!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(500)])
        )
    })
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn parse(raw: &[u8]) -> Option<Response> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..split]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        if chunked {
            body = dechunk(&body)?;
        }
        Some(Response {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The value of a cookie set by this response.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers_named("set-cookie").into_iter().find_map(|v| {
            let first = v.split(';').next()?;
            let (n, value) = first.split_once('=')?;
            (n.trim() == name).then(|| value.trim().to_string())
        })
    }
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// Pids of the live (not zombie) descendants of `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, ppid, _) in processes() {
            if ppid == parent {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// Whether `pid` is gone entirely: not running and not a zombie waiting to be reaped.
pub fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    processes()
        .into_iter()
        .any(|(p, _, state)| p == pid && state != 'Z')
}

/// Every process as (pid, ppid, state), read from /proc.
pub fn processes() -> Vec<(u32, u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name is in parentheses and may contain spaces.
            let after = &stat[stat.rfind(')')? + 2..];
            let mut fields = after.split(' ');
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, ppid, state))
        })
        .collect()
}

/// Whether every process in `pids` has stopped running within `limit`.
pub fn all_end_within(limit: Duration, pids: &[u32]) -> bool {
    eventually(limit, || pids.iter().all(|pid| !alive(*pid)))
}

/// Polls `condition` every 20 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh directory for one test's files (`<tmp>/stencila-test-<name>-<pid>`),
/// emptied first and removed (best effort) on drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let path =
            std::env::temp_dir().join(format!("stencila-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        ScratchDir(path)
    }

    /// The directory as a string, for command-line arguments.
    pub fn text(&self) -> String {
        self.0.to_str().expect("a UTF-8 temporary path").to_string()
    }

    /// Writes `text` to the file `name` in the directory.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).expect("a file written");
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

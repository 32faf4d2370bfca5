//! A minimal keep-alive HTTP/1.1 client over a blocking `TcpStream`: just enough to
//! drive the host fast and check each response, with no client library in the way.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    port: u16,
}

/// A response: status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Connection {
    pub fn open(port: u16) -> Result<Connection> {
        let stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the host")?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(8192),
            port,
        })
    }

    /// Sets how long one read may wait before it fails (120 s unless set).
    pub fn set_read_timeout(&self, timeout: Duration) -> Result<()> {
        self.stream.set_read_timeout(Some(timeout))?;
        Ok(())
    }

    /// The bytes of a request, built once and sent many times.
    pub fn build(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Vec<u8> {
        let cookie = token.map(|token| format!("Cookie: token={token}\r\n"));
        self.build_with(method, path, cookie.as_deref().unwrap_or(""), body)
    }

    /// A request with `headers` (each line ending in CRLF) instead of a token cookie:
    /// the 2018 host takes `Authorization: Bearer <JWT>`.
    pub fn build_with(&self, method: &str, path: &str, headers: &str, body: &str) -> Vec<u8> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n{headers}\r\n",
            self.port,
            body.len()
        );
        request.push_str(body);
        request.into_bytes()
    }

    /// Sends prebuilt request bytes and reads one response.
    pub fn send(&mut self, request: &[u8]) -> Result<Response> {
        self.stream.write_all(request)?;
        self.read_response().map(|(response, _)| response)
    }

    /// Sends request bytes and returns the response's head (status line and headers).
    pub fn send_head(&mut self, request: &[u8]) -> Result<String> {
        self.stream.write_all(request)?;
        self.read_response().map(|(_, head)| head)
    }

    fn read_response(&mut self) -> Result<(Response, String)> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end])
            .context("a response head")?
            .to_string();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("a status")?;
        let length: usize = head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0);
        let total = head_end + 4 + length;
        while self.buffer.len() < total {
            self.fill()?;
        }
        let body = self.buffer[head_end + 4..total].to_vec();
        self.buffer.drain(..total);
        Ok((Response { status, body }, head))
    }

    fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the host closed the connection");
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads a host's startup line (`Host has started at: http://...:PORT/?ticket=T`),
/// trades the ticket for a session token, and returns the port and the token.
pub fn log_in(startup_line: &str) -> Result<(u16, String)> {
    let url = startup_line
        .trim()
        .strip_prefix("Host has started at: ")
        .with_context(|| format!("unexpected startup line {startup_line:?}"))?;
    let (address, ticket) = url.split_once("/?ticket=").context("a ticket")?;
    let port: u16 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("a port")?;
    let mut connection = Connection::open(port)?;
    let request = connection.build("GET", &format!("/manifest?ticket={ticket}"), None, "");
    let head = connection.send_head(&request)?;
    let token = head
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            if !name.eq_ignore_ascii_case("set-cookie") {
                return None;
            }
            value
                .trim()
                .strip_prefix("token=")?
                .split(';')
                .next()
                .map(str::to_string)
        })
        .context("no token cookie")?;
    Ok((port, token))
}

//! Raw command-line arguments, as clap parses them; `config` validates them.

use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

/// Runs a Stencila host: a server that executes code for documents and notebooks.
///
/// Clients create execution contexts with `POST /PythonContext` and call their methods
/// with `PUT /<name>!<method>` (e.g. `PUT /pythonContext1!execute {"code": "6*7"}`).
/// Access needs the ticket in the URL printed at start; it is traded for a session
/// token cookie.
///
/// Environment: STENCILA_PYTHON names the Python interpreter (default python3),
/// STENCILA_NODE the node program for NodeContext (default node).
#[derive(Debug, Parser)]
#[command(name = "stencila", version, about, long_about, after_help = ENVIRONMENT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The environment variables the host reads, for `--help`.
const ENVIRONMENT: &str = "\
Environment:
  STENCILA_AUTH=false  Switch authorization off, as --no-auth does
  STENCILA_PYTHON      The Python interpreter for PythonContext (default: python3)
  RUST_LOG             Log level and filters for the log on stderr, e.g. info, debug
  XDG_RUNTIME_DIR      Where run files go ($XDG_RUNTIME_DIR/stencila, else <tmp>/stencila-<uid>)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the host over HTTP (the default when no command is given).
    #[command(after_help = ENVIRONMENT)]
    Serve(ServeArgs),
    /// Serve quietly for a parent process: print `{"id", "key", "manifest"}` as one
    /// JSON line on stdout instead of the startup message.
    Spawn(ServeArgs),
    /// Write the host's manifest to ~/.stencila/hosts/rust.json so other Stencila
    /// tools can find it.
    Register,
    /// Print the host's manifest as JSON.
    Manifest,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Keep it on loopback unless you know why not.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,

    /// Port to listen on. When taken, port+10, port+20, ... are tried; 0 lets the
    /// system pick a free port.
    #[arg(long, default_value_t = 2000)]
    pub port: u16,

    /// Switch authorization off: anyone who can reach the port can run code.
    /// Also set by the environment variable STENCILA_AUTH=false.
    #[arg(long)]
    pub no_auth: bool,

    /// With --no-auth (or STENCILA_AUTH=false), allow an address other machines can
    /// reach: then anyone on the network can run code as this user. Without it,
    /// --no-auth is refused on any address but loopback.
    #[arg(long)]
    pub no_auth_anywhere: bool,

    /// Make each ticket valid for one request only (by default a ticket can be used
    /// again for the host's life).
    #[arg(long)]
    pub single_use_tickets: bool,

    /// Idle time after which a session token expires, e.g. 30m, 24h, 7d.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub token_ttl: String,

    /// Another browser origin allowed to call the host, as scheme://host[:port].
    /// Repeatable.
    #[arg(long, value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,

    /// The session cookie's SameSite: strict, lax or none. Choose none (which adds
    /// Secure) only for a client page on another site than the host, e.g.
    /// http://localhost:4000 calling 127.0.0.1; a bearer token works from anywhere.
    #[arg(long, default_value = "strict", value_name = "strict|lax|none")]
    pub cookie_samesite: String,

    /// Serve static files (and the page at /) from this directory instead of the
    /// built-in page.
    #[arg(long, value_name = "DIR")]
    pub static_dir: Option<PathBuf>,

    /// Largest request body accepted, e.g. 10M, 512K, 1G.
    #[arg(long, default_value = "10M", value_name = "SIZE")]
    pub max_body: String,

    /// Largest request header section (request line and headers) accepted, e.g. 64K;
    /// at most 128K. Larger ones get 431.
    #[arg(long, default_value = "32K", value_name = "SIZE")]
    pub max_header: String,

    /// Executions kept per context for `GET /<name>/executions/<id>` and repeats by id.
    #[arg(long, default_value_t = 64, value_name = "COUNT")]
    pub execution_history: usize,

    /// How long an ended execution is kept, e.g. 10m, 1h.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub execution_retention: String,

    /// Default time limit for one `execute`, e.g. 30s, 10m, 1h; `none` for no limit.
    /// A call can set its own with `timeout` (seconds).
    #[arg(long, default_value = "none", value_name = "DURATION")]
    pub execute_timeout: String,

    /// Most instances (contexts) alive at once.
    #[arg(long, default_value_t = 64)]
    pub max_instances: usize,

    /// Destroy instances idle for longer than this, e.g. 2h; `none` to keep them.
    #[arg(long, default_value = "none", value_name = "DURATION")]
    pub instance_timeout: String,

    /// Cap on each worker's memory (address space), e.g. 2G; `none` for no cap.
    #[arg(long, default_value = "none", value_name = "SIZE")]
    pub worker_memory: String,

    /// Stop the host after it has been idle (no requests, no code running) this long,
    /// e.g. 30m; `none` to run until stopped.
    #[arg(long, default_value = "none", value_name = "DURATION")]
    pub timeout: String,

    /// Stop the host after it has run this long, e.g. 8h; `none` for no limit.
    #[arg(long, default_value = "none", value_name = "DURATION")]
    pub duration: String,

    /// The largest table a context sends inline, as ROWS,SIZE (either alone works:
    /// `5000`, `2M`). A larger one comes back as a pointer that `fetch` pages
    /// through and other contexts take as an input, host-side.
    #[arg(long, default_value = "10000,8M", value_name = "ROWS,SIZE")]
    pub max_inline: String,

    /// Python workers kept started and waiting, so creating a context is quick.
    /// Each idle one costs about 15 MB when spawned (--no-zygote), a few MB forked.
    #[arg(long, default_value_t = 2)]
    pub pool_size: usize,

    /// Start each Python worker as a new interpreter (about 50 ms) instead of
    /// forking it from a zygote, a Python process that has started once (a few ms).
    #[arg(long)]
    pub no_zygote: bool,

    /// Python modules the zygote imports once, so every context has them already
    /// imported, e.g. numpy,pandas. A module that starts threads is refused.
    #[arg(long, value_name = "MODULE,...", value_delimiter = ',')]
    pub preload: Vec<String>,

    /// Also serve GET /metrics WITHOUT credentials on this address, e.g.
    /// 127.0.0.1:9100, for a Prometheus scraper; nothing else is served there.
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub metrics_address: Option<std::net::SocketAddr>,

    /// A Jupyter kernel (e.g. python3) to keep one started instance of, so
    /// `POST /JupyterContext {"kernel": "<name>"}` is quick.
    #[arg(long, value_name = "KERNEL")]
    pub pool_kernel: Option<String>,

    /// Number of HTTP worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
}

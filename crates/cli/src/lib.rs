//! The `stencila` command: parses arguments into a validated config, builds a host with
//! its context types, binds, serves until SIGINT/SIGTERM, and cleans up after itself
//! (workers ended, run files removed).

pub mod args;
pub mod config;
mod runfiles;

use anyhow::{Context, Result};
use args::{Cli, Command, ServeArgs};
use config::ServeConfig;
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use stencila_auth::Auth;
use stencila_contexts::{
    JupyterContextType, NodeConfig, NodeContextType, PythonConfig, PythonContextType, SqliteConfig,
    SqliteContextType,
};
use stencila_host::Host;

/// How many ports are tried, 10 apart, when the one asked for is taken.
const PORT_ATTEMPTS: u16 = 10;

/// How often idle instances are looked for when `--instance-timeout` is set.
const CULL_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => serve(&cli.serve, false),
        Some(Command::Serve(args)) => serve(&args, false),
        Some(Command::Spawn(args)) => serve(&args, true),
        Some(Command::Manifest) => {
            let (host, _) = build_host(&ServeConfig::from_args(&cli.serve)?, false)?;
            println!("{}", serde_json::to_string_pretty(&host.manifest(false))?);
            Ok(())
        }
        Some(Command::Register) => {
            let (host, _) = build_host(&ServeConfig::from_args(&cli.serve)?, false)?;
            let path = runfiles::register(&host.manifest(false))?;
            println!("Host registered at: {}", path.display());
            Ok(())
        }
    }
}

/// A host with every context type this build offers; the Python type is also
/// returned, so its worker pool can be warmed once a runtime runs. `serving`: the
/// host will run contexts, so Python's zygote is started (and a preload it refuses
/// is an error); otherwise only the manifest is wanted.
fn build_host(config: &ServeConfig, serving: bool) -> Result<(Host, Arc<PythonContextType>)> {
    let mut host = Host::new();
    host.set_limits(config.limits.clone());
    host.set_execution_limits(config.executions.clone());
    let interpreter = stencila_contexts::resolve_interpreter(&config.python)
        .unwrap_or_else(|| config.python.clone().into());
    let python_config = PythonConfig {
        interpreter,
        execute_timeout: config.execute_timeout,
        worker_memory: config.worker_memory,
        pool_size: config.pool_size,
        max_inline: config.max_inline,
    };
    let python = Arc::new(if serving && config.zygote {
        PythonContextType::forking(python_config, &config.preload).map_err(anyhow::Error::msg)?
    } else {
        PythonContextType::new(python_config)
    });
    host.register(python.clone());
    host.register(Arc::new(SqliteContextType::new(SqliteConfig {
        execute_timeout: config.execute_timeout,
        max_inline: config.max_inline,
    })));
    // No pool: an idle node worker costs about 50 MB, and a cold start is quick.
    host.register(Arc::new(NodeContextType::new(NodeConfig {
        program: config.node.clone().into(),
        execute_timeout: config.execute_timeout,
        pool_size: 0,
        max_inline: config.max_inline,
    })));
    host.register(Arc::new(JupyterContextType::new(config.jupyter.clone())));
    Ok((host, python))
}

/// Binds `address:port`, else port+10, port+20, ... as the 2018 hosts did.
fn bind(config: &ServeConfig) -> Result<TcpListener> {
    let mut last_error = None;
    for attempt in 0..PORT_ATTEMPTS {
        let Some(port) = config.port.checked_add(attempt * 10) else {
            break;
        };
        match TcpListener::bind(SocketAddr::new(config.address, port)) {
            Ok(listener) => return Ok(listener),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && config.port != 0 => {
                log::info!("port {port} is in use, trying {}", port.saturating_add(10));
                last_error = Some(error);
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("could not listen on {}:{port}", config.address))
            }
        }
    }
    Err(anyhow::anyhow!(
        "could not listen on {} at port {} or the {} ports 10 apart after it: {}",
        config.address,
        config.port,
        PORT_ATTEMPTS - 1,
        last_error.map(|e| e.to_string()).unwrap_or_default()
    ))
}

fn serve(args: &ServeArgs, spawned: bool) -> Result<()> {
    let config = ServeConfig::from_args(args)?;
    // Found (and logged) once, before any context starts.
    stencila_contexts::cgroup::confinement();
    let (host, python) = build_host(&config, true)?;
    let host = Arc::new(host);
    let auth = Arc::new(Auth::new(config.auth.clone()));
    let key = Auth::generate_key();
    auth.add_key(&key);

    let listener = bind(&config)?;
    let metrics_listener = match args.metrics_address {
        Some(address) => Some(Arc::new(TcpListener::bind(address).with_context(|| {
            format!("could not listen on --metrics-address {address}")
        })?)),
        None => None,
    };
    let local = listener.local_addr()?;
    let url = browsable_url(local);
    host.set_serving(std::process::id(), url.clone());
    let manifest = host.manifest(false);
    let runfiles = runfiles::RunFiles::write(host.id(), &manifest, &key)?;

    let served = actix_web::rt::System::new().block_on({
        let host = host.clone();
        let mut server = config.server.clone();
        let pooled = python.clone();
        server
            .pool_gauges
            .add("PythonContext", move || pooled.pooled());
        server.metrics_listener = metrics_listener;
        async move {
            // Signal handlers go in before the startup line, so a client that reacts
            // to the line with SIGINT always gets a clean stop.
            // SIGUSR1 too, in every mode: its default action would end the host.
            let signals = StopSignals::listen();
            let usr1 = listen_for_sigusr1();
            announce(spawned, &host, &auth, &url, &key, &manifest);
            mint_tickets_on_sigusr1(usr1, auth.clone(), url.clone());
            python.warm();
            if config.limits.instance_timeout.is_some() {
                let host = host.clone();
                actix_web::rt::spawn(async move {
                    let mut interval = actix_web::rt::time::interval(CULL_INTERVAL);
                    loop {
                        interval.tick().await;
                        for name in host.cull_idle().await {
                            log::info!("{name} was idle for longer than the instance timeout and was removed");
                        }
                    }
                });
            }
            let stop = stop_when(host.clone(), signals, config.idle_timeout, config.duration);
            let result = stencila_http::serve(listener, host.clone(), auth, server, stop).await;
            host.destroy_all().await;
            stencila_contexts::cgroup::release();
            result
        }
    });
    runfiles.remove();
    if !spawned {
        say("Host has stopped");
    }
    served.context("the server failed")
}

/// The URL a browser can open for a host listening on `local`: a wildcard bind
/// (`0.0.0.0`, `::`) is named by its loopback address, since no browser can open
/// `http://0.0.0.0:2000/` everywhere, and the console's own origin must be one the
/// host allows.
fn browsable_url(local: SocketAddr) -> String {
    match local {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => format!("http://[::1]:{}", v6.port()),
        SocketAddr::V6(v6) => format!("http://[{}]:{}", v6.ip(), v6.port()),
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => format!("http://127.0.0.1:{}", v4.port()),
        SocketAddr::V4(v4) => format!("http://{}:{}", v4.ip(), v4.port()),
    }
}

/// Installs the SIGUSR1 handler (from then on the signal no longer ends the process);
/// `None` (logged) if the system refuses.
fn listen_for_sigusr1() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::user_defined1())
        .inspect_err(|error| log::warn!("could not listen for SIGUSR1: {error}"))
        .ok()
}

/// `kill -USR1 <pid>` prints a fresh ticket URL on stdout: how the host's owner
/// lets another person or browser in (with `--single-use-tickets`, the only way).
/// With authorization off there are no tickets, and the signal is only logged.
fn mint_tickets_on_sigusr1(
    usr1: Option<tokio::signal::unix::Signal>,
    auth: Arc<Auth>,
    url: String,
) {
    let Some(mut usr1) = usr1 else {
        return;
    };
    actix_web::rt::spawn(async move {
        while usr1.recv().await.is_some() {
            if auth.enabled() {
                let ticket = auth.create_ticket();
                say(&format!("New ticket: {url}/?ticket={}", ticket.as_str()));
            } else {
                log::warn!("SIGUSR1: authorization is off, so there are no tickets to mint");
            }
        }
    });
}

/// The startup line(s) on stdout: the URL with a fresh ticket, or for `spawn` the one
/// JSON line a parent process reads.
fn announce(spawned: bool, host: &Host, auth: &Auth, url: &str, key: &str, manifest: &Value) {
    if spawned {
        say(&json!({"id": host.id(), "key": key, "manifest": manifest}).to_string());
    } else if auth.enabled() {
        let ticket = auth.create_ticket();
        say(&format!(
            "Host has started at: {url}/?ticket={}\nUse Ctrl+C to stop",
            ticket.as_str()
        ));
    } else {
        log::warn!("authorization is off: anyone who can reach {url} can run code as this user");
        say(&format!("Host has started at: {url}/\nUse Ctrl+C to stop"));
    }
}

/// Prints a line to stdout and flushes it. A reader that has gone away (a closed pipe)
/// must not stop the host, so failures are only logged.
fn say(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        log::debug!("could not write to stdout: {error}");
    }
}

/// Resolves when the host should stop: a signal, `--timeout` idle or `--duration` up.
async fn stop_when(
    host: Arc<Host>,
    signals: Option<StopSignals>,
    idle_timeout: Option<Duration>,
    duration: Option<Duration>,
) {
    let idle = async {
        let Some(limit) = idle_timeout else {
            return std::future::pending().await;
        };
        loop {
            let idle = host.idle_for();
            if idle >= limit {
                log::info!("idle for {idle:?}, stopping (--timeout)");
                return;
            }
            actix_web::rt::time::sleep((limit - idle).max(Duration::from_millis(100))).await;
        }
    };
    let lifetime = async {
        match duration {
            Some(limit) => {
                actix_web::rt::time::sleep(limit).await;
                log::info!("ran for {limit:?}, stopping (--duration)");
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = recv_signal(signals) => {}
        _ = idle => {}
        _ = lifetime => {}
    }
}

/// SIGINT and SIGTERM, listened for from creation on.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers; `None` (logged) if the system refuses.
    fn listen() -> Option<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(interrupt), Ok(terminate)) => Some(StopSignals {
                interrupt,
                terminate,
            }),
            _ => {
                log::error!("could not listen for signals; stop the host with SIGKILL");
                None
            }
        }
    }
}

/// Resolves at the first SIGINT or SIGTERM (never, without handlers).
async fn recv_signal(signals: Option<StopSignals>) {
    let Some(mut signals) = signals else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = signals.interrupt.recv() => log::info!("SIGINT received, stopping"),
        _ = signals.terminate.recv() => log::info!("SIGTERM received, stopping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_prints_a_loopback_url() {
        let url = |text: &str| browsable_url(text.parse().expect("a socket address"));
        assert_eq!(url("0.0.0.0:2000"), "http://127.0.0.1:2000");
        assert_eq!(url("[::]:2000"), "http://[::1]:2000");
        assert_eq!(url("127.0.0.1:2000"), "http://127.0.0.1:2000");
        assert_eq!(url("192.0.2.7:2010"), "http://192.0.2.7:2010");
        assert_eq!(url("[::1]:2000"), "http://[::1]:2000");
        assert_eq!(url("[2001:db8::1]:80"), "http://[2001:db8::1]:80");
    }
}

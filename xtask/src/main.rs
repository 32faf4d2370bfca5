//! Project automation, in Rust so it runs wherever cargo does: `cargo xtask test`
//! (formatting, lints, every unit and black-box test, the console in a real browser,
//! the API fuzzed from its OpenAPI document), `cargo xtask bench`, `cargo xtask soak`.
//!
//! Test tools that are not Rust are installed under `target/`, never in the source
//! tree: Debian's chromium (apt-get, when missing), playwright-core from the npm
//! registry into `target/browser`, and schemathesis with pandas and matplotlib from
//! PyPI into the virtualenv `target/test-venv`. `cargo xtask bench` installs the 2018
//! Node host it compares with (npm `stencila-node@0.28.15`) into `target/bench-2018`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(error) = run() {
        eprintln!("xtask: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("browser-setup") => browser_setup(),
        Some("fuzz") => fuzz(),
        Some("bench") => bench(args.iter().any(|a| a == "--quick")),
        Some("soak") => soak(seconds(&args)?),
        Some("ci") => test()
            .and_then(|()| bench(true))
            .and_then(|()| soak(CI_SOAK_SECONDS)),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  \
                 test            fmt check, clippy -D warnings, build, every unit and black-box test \
                 (with browser-setup first), then fuzz\n  \
                 browser-setup   install chromium (apt-get, when missing), playwright-core (npm, into \
                 target/browser) and the test virtualenv (target/test-venv)\n  \
                 fuzz            schemathesis against a running host from its /openapi.json\n  \
                 bench [--quick] release build, drive the host from a second process, print the table\n  \
                 soak --seconds N release build, mixed workload from concurrent clients for N s \
                 (default {DEFAULT_SOAK_SECONDS}): errors, RSS, leftover workers\n  \
                 ci              test, then bench --quick, then soak --seconds {CI_SOAK_SECONDS}"
            );
            bail!("unknown or missing task")
        }
    }
}

/// How long `cargo xtask soak` runs without `--seconds`.
const DEFAULT_SOAK_SECONDS: u64 = 60;
/// How long `cargo xtask ci` soaks: short, but long enough for thousands of requests.
const CI_SOAK_SECONDS: u64 = 10;

/// The value of `--seconds N`, or [`DEFAULT_SOAK_SECONDS`].
fn seconds(args: &[String]) -> Result<u64> {
    match args.iter().position(|a| a == "--seconds") {
        None => Ok(DEFAULT_SOAK_SECONDS),
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|&n| n > 0)
            .context("--seconds takes a whole number of seconds, at least 1"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `cargo <args>` at the workspace root, failing if it fails.
fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("could not run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Checks what the tests need and explains what is missing.
fn check_python() -> Result<()> {
    let python = std::env::var("STENCILA_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import sys; assert sys.version_info >= (3, 8)"])
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => bail!("{python} is older than Python 3.8; the tests need Python 3.8 or later"),
        Err(_) => bail!(
            "{python} was not found; the tests run real Python workers. Install Python 3 \
             (e.g. `apt-get install python3`) or set STENCILA_PYTHON to an interpreter"
        ),
    }
}

/// Every Rust file starts with a `//!` line saying what it is for (STYLE.md).
fn tidy() -> Result<()> {
    let mut missing = Vec::new();
    let mut stack: Vec<PathBuf> = ["crates", "xtask", "tests"]
        .iter()
        .map(|d| root().join(d))
        .collect();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)?;
            if !text.starts_with("//!") {
                missing.push(
                    path.strip_prefix(root())
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    if !missing.is_empty() {
        missing.sort();
        bail!(
            "these files do not start with a `//!` module doc:\n  {}",
            missing.join("\n  ")
        );
    }
    eprintln!("xtask: tidy: every Rust file has a module doc");
    Ok(())
}

fn test() -> Result<()> {
    check_python()?;
    test_venv()?;
    tidy()?;
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["build", "-p", "stencila-cli"])?;
    browser_setup()?;
    // Installed above, so the browser test must run rather than skip.
    std::env::set_var("STENCILA_REQUIRE_BROWSER", "1");
    cargo(&["test", "--workspace"])?;
    fuzz()?;
    polyglot_example()?;
    eprintln!("xtask: all checks and tests passed");
    Ok(())
}

/// Runs a program, failing with what it was for when it fails.
fn run_tool(command: &mut Command, what: &str) -> Result<()> {
    eprintln!("xtask: {what}");
    let status = command
        .status()
        .with_context(|| format!("could not start: {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The test virtualenv `target/test-venv`, made if missing: schemathesis for `fuzz`,
/// pandas and matplotlib so the browser test sees a table and an image from the
/// host's Python workers, and `ipykernel` and `bash_kernel` (with bash_kernel's
/// kernelspec) for the JupyterContext tests, which skip without it.
fn test_venv() -> Result<PathBuf> {
    let venv = root().join("target").join("test-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run_tool(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "create the test virtualenv target/test-venv",
        )?;
    }
    let ready = Command::new(&python)
        .args([
            "-c",
            "import schemathesis, pandas, matplotlib, ipykernel, bash_kernel",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        run_tool(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "schemathesis>=4,<5",
                "pandas",
                "matplotlib",
                "ipykernel",
                "bash_kernel",
            ]),
            "pip install schemathesis, pandas, matplotlib, ipykernel and bash_kernel into target/test-venv",
        )?;
    }
    if !venv
        .join("share/jupyter/kernels/bash/kernel.json")
        .is_file()
    {
        run_tool(
            Command::new(&python).args(["-m", "bash_kernel.install", "--sys-prefix"]),
            "install bash_kernel's kernelspec into target/test-venv",
        )?;
    }
    Ok(python)
}

/// Installs what the browser test needs: Debian's chromium (never a browser download
/// by a test tool, which this machine's closed network refuses), playwright-core from
/// the npm registry into `target/browser`, and the test virtualenv.
fn browser_setup() -> Result<()> {
    if !Path::new("/usr/bin/chromium").exists() {
        let root_user = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let sudo: &[&str] = if root_user { &[] } else { &["sudo"] };
        let apt = |args: &[&str]| {
            let mut command = Command::new(sudo.first().copied().unwrap_or("apt-get"));
            if !sudo.is_empty() {
                command.arg("apt-get");
            }
            command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            command
        };
        run_tool(&mut apt(&["update"]), "apt-get update")?;
        run_tool(
            &mut apt(&["install", "-y", "chromium", "chromium-driver"]),
            "apt-get install chromium chromium-driver",
        )?;
    }
    let browser = root().join("target").join("browser");
    if !browser
        .join("node_modules")
        .join("playwright-core")
        .exists()
    {
        std::fs::create_dir_all(&browser)?;
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(
                root().join("tests").join("browser").join(file),
                browser.join(file),
            )
            .with_context(|| format!("could not copy tests/browser/{file}"))?;
        }
        run_tool(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&browser)
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
            "npm ci playwright-core into target/browser",
        )?;
    }
    test_venv()?;
    Ok(())
}

/// A host started for the fuzzer, killed (by its pid) when dropped.
struct FuzzHost(std::process::Child);

impl Drop for FuzzHost {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Trades the startup URL's ticket for a session token (the `token` cookie), over a
/// plain HTTP/1.1 request: the fuzzer is then authorized as a client would be.
fn session_token(url: &str) -> Result<String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .context("the startup URL is not http://")?;
    let (authority, path) = rest.split_once('/').context("no path in the startup URL")?;
    let mut stream = std::net::TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    response
        .lines()
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, value)| value.trim().strip_prefix("token="))
        .and_then(|value| value.split(';').next())
        .map(str::to_string)
        .context("the ticket URL set no token cookie")
}

/// Fuzzes a running host from its own `/openapi.json` with schemathesis, authorized
/// with a session token: no 5xx but the documented ones (tests/fuzz/schemathesis.toml),
/// every response conforming to the document. Bounded to about a minute (`--max-time`),
/// with a fixed seed so a CI failure can be replayed.
fn fuzz() -> Result<()> {
    use std::io::BufRead;
    let python = test_venv()?;
    let st = python.with_file_name("st");
    cargo(&["build", "-p", "stencila-cli"])?;
    let binary = root().join("target").join("debug").join("stencila");
    let mut child = Command::new(&binary)
        .args([
            "serve",
            "--port",
            "0",
            "--execute-timeout",
            "10s",
            "--max-instances",
            "8",
            "--pool-size",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("could not start the host")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let host = FuzzHost(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("Host has started at: ")
        .with_context(|| format!("not a startup line: {line:?}"))?
        .to_string();
    let base = url.split("/?").next().unwrap_or(&url).to_string();
    let token = session_token(&url)?;
    let report = root().join("target").join("fuzz");
    // `unsupported_method` wants 405 where the protocol answers 400 (section 4: a
    // route not matched is a 400); `ignored_auth` sends bad credentials from
    // loopback, which the throttle answers with the documented 429 (section 2), and
    // keeps our valid bearer beside them. Both are covered by tests/tests/auth.rs.
    // One worker, so a run replays exactly from its seed. (With two, the stateful
    // phase once found a 500 for a call whose context was deleted while it ran; that
    // is now a 503, pinned by tests/tests/review_worker.rs.)
    let status = Command::new(&st)
        .arg("--config-file")
        .arg(root().join("tests").join("fuzz").join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--exclude-checks",
            "unsupported_method,ignored_auth",
            "--max-examples",
            "30",
            "--max-time",
            "60",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--seed",
            "1",
            "--no-color",
            "--report",
            "junit",
        ])
        .arg("--report-dir")
        .arg(&report)
        // Schemathesis keeps a cache folder where it runs: under target/, not in git.
        .current_dir(root().join("target"))
        .status()
        .context("could not run schemathesis")?;
    drop(host);
    if !status.success() {
        bail!(
            "schemathesis found failures (see above and {})",
            report.display()
        );
    }
    eprintln!("xtask: fuzz: the host conforms to its OpenAPI document");
    Ok(())
}

/// The core used without HTTP (`crates/contexts/examples/polyglot.rs`) still runs.
fn polyglot_example() -> Result<()> {
    cargo(&[
        "run",
        "-q",
        "-p",
        "stencila-contexts",
        "--example",
        "polyglot",
    ])
}

fn bench(quick: bool) -> Result<()> {
    check_python()?;
    cargo(&[
        "build",
        "--release",
        "-p",
        "stencila-cli",
        "-p",
        "stencila-bench",
    ])?;
    let release = root().join("target").join("release");
    let out = root().join("target").join(if quick {
        "bench-quick.json"
    } else {
        "bench.json"
    });
    let mut command = Command::new(release.join("stencila-bench"));
    command
        .arg("--binary")
        .arg(release.join("stencila"))
        .arg("--out")
        .arg(&out);
    if quick {
        command.arg("--quick");
    }
    // The test virtualenv has pandas, for the DataFrame rows; without it they are skipped.
    let venv_python = root().join("target/test-venv/bin/python");
    if venv_python.exists() {
        command.arg("--python").arg(venv_python);
    }
    if let Some(dir) = reference_2018() {
        command.arg("--reference-2018").arg(dir);
    }
    let status = command.status().context("could not run stencila-bench")?;
    if !status.success() {
        bail!("the bench failed ({status})");
    }
    Ok(())
}

/// The 2018 Node host the bench compares with (issue 9); the 2018 Python host is not
/// on PyPI, so there is no Python reference to install.
const REFERENCE_2018: &str = "stencila-node@0.28.15";

/// How long installing the 2018 host may take.
const REFERENCE_INSTALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);

/// Installs the 2018 Node host into `target/bench-2018` when it is not there, from the
/// npm registry, without install scripts (its native add-ons, zeromq 4 and
/// better-sqlite3 4, do not build on node 18+; the bench's launcher switches their
/// context types off). Never fails the bench: on any failure it says why and returns
/// `None`, and the bench runs without the 2018 column.
fn reference_2018() -> Option<PathBuf> {
    let dir = root().join("target").join("bench-2018");
    if dir.join("node_modules/stencila-node/package.json").exists() {
        return Some(dir);
    }
    eprintln!("xtask: installing the 2018 Node host ({REFERENCE_2018}) into target/bench-2018");
    let spawned = Command::new("npm")
        .args(["install", "--prefix"])
        .arg(&dir)
        .args([
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--fetch-retries=1",
            "--fetch-timeout=30000",
            REFERENCE_2018,
        ])
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("xtask: npm did not run ({e}); the bench runs without the 2018 column");
            return None;
        }
    };
    let deadline = std::time::Instant::now() + REFERENCE_INSTALL_LIMIT;
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break Ok(()),
            Ok(Some(status)) => break Err(format!("npm install failed ({status})")),
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "npm install took over {REFERENCE_INSTALL_LIMIT:?}; stopped"
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(200)),
            Err(e) => break Err(format!("waiting for npm: {e}")),
        }
    };
    match outcome {
        Ok(()) if dir.join("node_modules/stencila-node/package.json").exists() => Some(dir),
        Ok(()) => {
            eprintln!(
                "xtask: npm installed no stencila-node; the bench runs without the 2018 column"
            );
            None
        }
        Err(why) => {
            eprintln!("xtask: {why}; the bench runs without the 2018 column");
            None
        }
    }
}

fn soak(seconds: u64) -> Result<()> {
    check_python()?;
    cargo(&[
        "build",
        "--release",
        "-p",
        "stencila-cli",
        "-p",
        "stencila-bench",
    ])?;
    let release = root().join("target").join("release");
    let status = Command::new(release.join("stencila-bench"))
        .arg("--binary")
        .arg(release.join("stencila"))
        .arg("--soak")
        .arg(seconds.to_string())
        .arg("--out")
        .arg(root().join("target").join("soak.json"))
        .status()
        .context("could not run stencila-bench")?;
    if !status.success() {
        bail!("the soak failed ({status})");
    }
    Ok(())
}

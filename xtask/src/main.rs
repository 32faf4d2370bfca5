//! Project automation, in Rust so it runs wherever cargo does: `cargo xtask test`
//! (formatting, lints, every unit and black-box test), `cargo xtask bench`, `cargo xtask soak`.

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
        Some("bench") => bench(args.iter().any(|a| a == "--quick")),
        Some("soak") => soak(seconds(&args)?),
        Some("ci") => test()
            .and_then(|()| bench(true))
            .and_then(|()| soak(CI_SOAK_SECONDS)),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  \
                 test            fmt check, clippy -D warnings, build, every unit and black-box test\n  \
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
    cargo(&["test", "--workspace"])?;
    polyglot_example()?;
    eprintln!("xtask: all checks and tests passed");
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
    let status = command.status().context("could not run stencila-bench")?;
    if !status.success() {
        bail!("the bench failed ({status})");
    }
    Ok(())
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

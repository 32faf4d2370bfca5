//! Creating a PythonContext without the pool (issue 9), sequentially at a steady rate
//! (one create every ~60 ms after the last ended): the p50 of `POST /PythonContext`, then
//! of the first execute in the new context (`1`, or `import pandas` where the variant
//! says). Each variant runs on its own host with its own options; a variant that needs
//! an option this binary does not have (`stencila serve --help` does not list it) is
//! skipped with a message, so rows for new options (`--preload`, a zygote switch) turn
//! on by themselves when those land. Add a variant to `VARIANTS` for another row.
//! (The zygote branch makes the zygote the default start, `--no-zygote` the spawn path,
//! and `--preload a,b` the modules the zygote imports.)

use crate::{check_integer, execute_body, row, Host, Plan, Row};
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One row: a label, host options, the option that must exist for it to run, whether
/// it needs an interpreter with pandas, and the first code run in each new context.
pub(crate) struct Variant {
    pub label: &'static str,
    pub args: &'static [&'static str],
    pub needs_flag: Option<&'static str>,
    pub pandas: bool,
    pub first: &'static str,
}

const IMPORT_PANDAS: &str = "import pandas\n1";

pub(crate) const VARIANTS: &[Variant] = &[
    Variant {
        label: "create PythonContext, no pool",
        args: &["--pool-size", "0"],
        needs_flag: None,
        pandas: false,
        first: "1",
    },
    Variant {
        label: "create PythonContext, no pool, --no-zygote",
        args: &["--pool-size", "0", "--no-zygote"],
        needs_flag: Some("--no-zygote"),
        pandas: false,
        first: "1",
    },
    Variant {
        label: "create PythonContext, no pool; import pandas",
        args: &["--pool-size", "0"],
        needs_flag: None,
        pandas: true,
        first: IMPORT_PANDAS,
    },
    Variant {
        label: "create PythonContext, no pool, --preload pandas",
        args: &["--pool-size", "0", "--preload", "pandas"],
        needs_flag: Some("--preload"),
        pandas: true,
        first: IMPORT_PANDAS,
    },
];

/// The creates of one variant on a fresh host. `python` is the interpreter with pandas
/// (`Err` says why there is none) for the variants that need it.
pub(crate) fn variant_row(
    binary: &PathBuf,
    plan: &Plan,
    variant: &Variant,
    help: &str,
    python: Result<&str, &str>,
) -> Result<Option<Row>> {
    if let Some(flag) = variant.needs_flag {
        if !lists_flag(help, flag) {
            println!(
                "skipped \"{}\": `stencila serve --help` lists no {flag}",
                variant.label
            );
            return Ok(None);
        }
    }
    let mut env = Vec::new();
    if variant.pandas {
        match python {
            Ok(python) => env.push(("STENCILA_PYTHON", std::ffi::OsStr::new(python))),
            Err(why) => {
                println!("skipped \"{}\": {why}", variant.label);
                return Ok(None);
            }
        }
    }
    // A pandas import takes ~0.5 s: half as many of those.
    let count = if variant.first == "1" {
        plan.cold_creates
    } else {
        plan.cold_creates.div_ceil(2)
    };
    let host = Host::start_with_env(binary, variant.args, &env)?;
    let mut connection = host.connection()?;
    let mut creates = Vec::with_capacity(count);
    let mut firsts = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let name = host.create(&mut connection)?;
        creates.push(t.elapsed());
        let request = connection.build(
            "PUT",
            &format!("/{name}!execute"),
            Some(&host.token),
            &execute_body(variant.first),
        );
        let t = Instant::now();
        let response = connection.send(&request)?;
        firsts.push(t.elapsed());
        if let Err(e) = check_integer(&response.body, 1) {
            bail!("{:?} in a new context: {e}", variant.first);
        }
        host.delete(&mut connection, &name)?;
        std::thread::sleep(Duration::from_millis(60));
    }
    let elapsed = started.elapsed();
    firsts.sort();
    let first_p50 = firsts[firsts.len().saturating_sub(1) / 2];
    let mut options = variant.args.join(" ");
    // Where the binary has a zygote, it is how a worker starts unless told otherwise.
    if help.contains("--no-zygote") && !variant.args.contains(&"--no-zygote") {
        options.push_str(" (forked from the zygote)");
    }
    if variant.pandas {
        options.push_str("; STENCILA_PYTHON has pandas");
    }
    Ok(Some(row(
        variant.label,
        creates,
        elapsed,
        format!(
            "POST; then {:?} p50 {:.1} ms; {options}",
            variant.first,
            first_p50.as_secs_f64() * 1e3
        ),
    )))
}

/// Whether `--help` text offers `flag` (as a word: `--preload` is not `--preload-x`).
fn lists_flag(help: &str, flag: &str) -> bool {
    help.split_whitespace().any(|word| word == flag)
}

/// The interpreter starting and exiting (`-c pass`), no host: the floor of a cold create.
fn python_start(plan: &Plan) -> Result<Row> {
    let program = std::env::var("STENCILA_PYTHON").unwrap_or_else(|_| "python3".into());
    // The real interpreter, past any pyenv shim, as the host resolves it.
    let python = stencila_contexts::resolve_interpreter(&program)
        .map(|path| path.display().to_string())
        .unwrap_or(program);
    let mut latencies = Vec::with_capacity(plan.cold_creates);
    let started = Instant::now();
    for _ in 0..plan.cold_creates {
        let t = Instant::now();
        let status = std::process::Command::new(&python)
            .args(["-c", "pass"])
            .status()?;
        latencies.push(t.elapsed());
        if !status.success() {
            bail!("{python} -c pass: {status}");
        }
    }
    Ok(row(
        "python start and exit (-c pass), no host",
        latencies,
        started.elapsed(),
        format!("{python}: the floor of a create without a pool"),
    ))
}

/// Every variant's row; a variant that fails goes to `errors` and the others still run.
pub(crate) fn rows(
    binary: &PathBuf,
    plan: &Plan,
    python: Result<&str, &str>,
    errors: &mut Vec<String>,
) -> Vec<Row> {
    let help = std::process::Command::new(binary)
        .args(["serve", "--help"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let mut rows = Vec::new();
    match python_start(plan) {
        Ok(row) => rows.push(row),
        Err(e) => errors.push(format!("python start: {e:#}")),
    }
    for variant in VARIANTS {
        match variant_row(binary, plan, variant, &help, python) {
            Ok(row) => rows.extend(row),
            Err(e) => errors.push(format!("{}: {e:#}", variant.label)),
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "      --pool-size <POOL_SIZE>\n          Python workers kept started [default: 2]\n      --preload <MODULE,...>\n          Python modules the zygote imports once (not with --no-zygote-x)\n";

    #[test]
    fn a_flag_is_listed_only_as_a_whole_word() {
        assert!(lists_flag(HELP, "--preload"));
        assert!(lists_flag(HELP, "--pool-size"));
        assert!(!lists_flag(HELP, "--no-zygote"));
        assert!(!lists_flag(HELP, "--pool"));
    }

    #[test]
    fn every_variant_runs_without_a_pool() {
        for variant in VARIANTS {
            assert_eq!(
                &variant.args[..2],
                &["--pool-size", "0"],
                "{}",
                variant.label
            );
            if let Some(flag) = variant.needs_flag {
                assert!(
                    variant.args.contains(&flag),
                    "{} must pass {flag}",
                    variant.label
                );
            }
        }
    }
}

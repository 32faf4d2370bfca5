//! Validated settings: raw arguments and environment variables become the typed
//! configuration the rest of the program receives. Only the CLI reads the environment.

use crate::args::ServeArgs;
use anyhow::{bail, Context, Result};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use stencila_auth::AuthConfig;
use stencila_contexts::{InlineLimit, JupyterConfig};
use stencila_host::{ExecutionLimits, HostLimits};
use stencila_http::{OriginPolicy, ServerConfig};

/// Everything `serve` needs, checked.
#[derive(Debug)]
pub struct ServeConfig {
    pub address: IpAddr,
    pub port: u16,
    pub auth: AuthConfig,
    pub server: ServerConfig,
    pub limits: HostLimits,
    pub executions: ExecutionLimits,
    /// The Python interpreter named by the user (`STENCILA_PYTHON`, else `python3`).
    pub python: String,
    /// The `node` program named by the user (`STENCILA_NODE`, else `node`).
    pub node: String,
    pub execute_timeout: Option<Duration>,
    pub worker_memory: Option<u64>,
    pub pool_size: usize,
    /// Fork Python workers from a zygote (not `--no-zygote`).
    pub zygote: bool,
    /// Modules the zygote imports (`--preload`), checked to be module names.
    pub preload: Vec<String>,
    /// Where to find Jupyter kernels, and `--pool-kernel`.
    pub jupyter: JupyterConfig,
    /// The largest table a context sends inline.
    pub max_inline: InlineLimit,
    /// Stop after this long idle.
    pub idle_timeout: Option<Duration>,
    /// Stop after this long running.
    pub duration: Option<Duration>,
}

/// The longest duration accepted: a century is "no limit" in practice, and anything
/// longer only invites overflow in the arithmetic on timestamps.
const MAX_DURATION_DAYS: f64 = 36_500.0;

/// Parses `250ms`, `30s`, `10m`, `2h`, `7d` or plain seconds; `none` is `None`.
/// Durations over 100 years are refused (say `none` for no limit).
pub fn parse_duration(text: &str) -> Result<Option<Duration>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("'{text}' is not a duration like 30s, 10m, 2h or none"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        _ => bail!("'{text}' has an unknown unit; use ms, s, m, h or d"),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        bail!("'{text}' must be a positive duration");
    }
    if seconds > MAX_DURATION_DAYS * 86400.0 {
        bail!("'{text}' is too long a duration (the most is 100 years; use none for no limit)");
    }
    Duration::try_from_secs_f64(seconds)
        .map(Some)
        .map_err(|_| anyhow::anyhow!("'{text}' is too long a duration"))
}

/// Parses `512K`, `10M`, `2G` or plain bytes; `none` is `None`.
pub fn parse_size(text: &str) -> Result<Option<u64>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let upper = text.to_ascii_uppercase();
    let trimmed = upper
        .strip_suffix("IB")
        .or(upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (number, multiplier) = match trimmed.char_indices().last() {
        Some((i, 'K')) => (&trimmed[..i], 1u64 << 10),
        Some((i, 'M')) => (&trimmed[..i], 1 << 20),
        Some((i, 'G')) => (&trimmed[..i], 1 << 30),
        Some((i, 'T')) => (&trimmed[..i], 1 << 40),
        _ => (trimmed, 1),
    };
    let number: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("'{text}' is not a size like 512K, 10M or 2G"))?;
    if !number.is_finite() || number <= 0.0 {
        bail!("'{text}' must be a positive size");
    }
    Ok(Some((number * multiplier as f64) as u64))
}

/// Parses `--max-inline`: `ROWS,SIZE`, `ROWS` or `SIZE` (a part with a unit is the
/// size); what is not given keeps its default.
pub fn parse_max_inline(text: &str) -> Result<InlineLimit> {
    let mut limit = InlineLimit::default();
    for part in text.split(',').map(str::trim) {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            limit.rows = part
                .parse()
                .with_context(|| format!("'{part}' is too many rows"))?;
        } else {
            let size = parse_size(part)?.context("the size cannot be none")?;
            limit.bytes = usize::try_from(size).context("the size is too large")?;
        }
    }
    Ok(limit)
}

/// Whether `STENCILA_AUTH` switches authorization off (`false`, `0`, `no`, `off`).
fn auth_disabled_by_env(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        )
    })
}

impl ServeConfig {
    pub fn from_args(args: &ServeArgs) -> Result<ServeConfig> {
        let enabled = !(args.no_auth
            || args.no_auth_anywhere
            || auth_disabled_by_env(std::env::var("STENCILA_AUTH").ok()));
        if !enabled && !args.address.to_canonical().is_loopback() && !args.no_auth_anywhere {
            bail!(
                "authorization is off (--no-auth or STENCILA_AUTH=false) and {} is not a loopback address: anyone on the network could run code as this user. Listen on 127.0.0.1, or add --no-auth-anywhere if that is really meant",
                args.address
            );
        }
        let origins = OriginPolicy::new(&args.allow_origin).map_err(|bad| {
            anyhow::anyhow!("--allow-origin '{bad}' is not an origin like https://example.org:8443")
        })?;
        let max_body = parse_size(&args.max_body)
            .context("--max-body")?
            .context("--max-body cannot be none")?;
        let static_dir: Option<PathBuf> = match &args.static_dir {
            Some(dir) if !dir.is_dir() => {
                bail!("--static-dir {} is not a directory", dir.display())
            }
            other => other.clone(),
        };
        let max_header = parse_size(&args.max_header)
            .context("--max-header")?
            .context("--max-header cannot be none")?;
        let ceiling = stencila_http::MAX_HEADER_CEILING as u64;
        if !(1024..=ceiling).contains(&max_header) {
            bail!("--max-header must be between 1K and {}K", ceiling / 1024);
        }
        if args.execution_history == 0 {
            bail!("--execution-history must be at least 1");
        }
        let retention = parse_duration(&args.execution_retention)
            .context("--execution-retention")?
            .context("--execution-retention cannot be none (executions would be kept forever)")?;
        if args.max_instances == 0 {
            bail!("--max-instances must be at least 1");
        }
        if args.workers == Some(0) {
            bail!("--workers must be at least 1");
        }
        Ok(ServeConfig {
            address: args.address,
            port: args.port,
            auth: AuthConfig {
                enabled,
                single_use_tickets: args.single_use_tickets,
                token_ttl: parse_duration(&args.token_ttl).context("--token-ttl")?,
                ..AuthConfig::default()
            },
            server: ServerConfig {
                static_dir,
                origins,
                max_body: usize::try_from(max_body).context("--max-body is too large")?,
                max_header: usize::try_from(max_header).context("--max-header is too large")?,
                workers: args.workers,
                cookie_same_site: args.cookie_samesite.parse().context("--cookie-samesite")?,
                ..ServerConfig::default()
            },
            limits: HostLimits {
                max_instances: Some(args.max_instances),
                instance_timeout: parse_duration(&args.instance_timeout)
                    .context("--instance-timeout")?,
            },
            executions: ExecutionLimits {
                history: args.execution_history,
                retention,
                ..ExecutionLimits::default()
            },
            python: std::env::var("STENCILA_PYTHON").unwrap_or_else(|_| "python3".into()),
            node: std::env::var("STENCILA_NODE").unwrap_or_else(|_| "node".into()),
            execute_timeout: parse_duration(&args.execute_timeout).context("--execute-timeout")?,
            worker_memory: parse_size(&args.worker_memory).context("--worker-memory")?,
            pool_size: args.pool_size,
            zygote: !args.no_zygote,
            preload: parse_preload(&args.preload, args.no_zygote).context("--preload")?,
            jupyter: JupyterConfig {
                data_dirs: stencila_contexts::jupyter_data_dirs(|name| std::env::var_os(name)),
                connection_dir: crate::runfiles::run_dir().join("kernels"),
                execute_timeout: parse_duration(&args.execute_timeout)?,
                pool_kernel: args.pool_kernel.clone(),
            },
            max_inline: parse_max_inline(&args.max_inline).context("--max-inline")?,
            idle_timeout: parse_duration(&args.timeout).context("--timeout")?,
            duration: parse_duration(&args.duration).context("--duration")?,
        })
    }
}

/// The `--preload` modules: dotted Python names, and only with a zygote.
fn parse_preload(modules: &[String], no_zygote: bool) -> Result<Vec<String>> {
    let modules: Vec<String> = modules
        .iter()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect();
    if no_zygote && !modules.is_empty() {
        bail!("modules are preloaded by the zygote, which --no-zygote switches off");
    }
    for name in &modules {
        let valid = name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        });
        if !valid {
            bail!("'{name}' is not a Python module name like numpy or os.path");
        }
    }
    Ok(modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_takes_module_names_with_a_zygote_only() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_preload(&names(&["numpy", " pandas ", "os.path", ""]), false).expect("ok"),
            names(&["numpy", "pandas", "os.path"])
        );
        assert!(parse_preload(&names(&["numpy"]), true).is_err());
        assert!(parse_preload(&[], true).expect("ok").is_empty());
        for bad in ["1x", "a-b", "a..b", "x;y", "-c"] {
            assert!(parse_preload(&names(&[bad]), false).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_inline_takes_rows_size_or_both() {
        let limit = parse_max_inline("5,1M").expect("ok");
        assert_eq!((limit.rows, limit.bytes), (5, 1 << 20));
        assert_eq!(parse_max_inline("7").expect("ok").bytes, 8 << 20);
        assert_eq!(parse_max_inline("2K").expect("ok").rows, 10_000);
        assert!(parse_max_inline("lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("none").expect("ok"), None);
        assert_eq!(
            parse_duration("30").expect("ok"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("250ms").expect("ok"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("10m").expect("ok"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            parse_duration("24h").expect("ok"),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            parse_duration("1.5s").expect("ok"),
            Some(Duration::from_millis(1500))
        );
        for bad in ["", "x", "10y", "-1s", "0", "100000000000000000000d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn absurd_durations_are_refused_at_startup() {
        // Overflowing `--instance-timeout` used to panic the host's arithmetic on
        // timestamps (in debug builds) once an instance existed.
        assert_eq!(
            parse_duration("36500d").expect("a century is fine"),
            Some(Duration::from_secs(36_500 * 86_400))
        );
        for bad in ["36501d", "1000000000d", "18446744073709551615"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for flag in [
            "--instance-timeout",
            "--timeout",
            "--duration",
            "--token-ttl",
        ] {
            let error = config(&[flag, "1000000000d"]).expect_err("refused");
            assert!(format!("{error:#}").contains(flag), "{error:#}");
        }
    }

    fn config(args: &[&str]) -> Result<ServeConfig> {
        use clap::Parser;
        let cli = crate::args::Cli::try_parse_from(
            std::iter::once("stencila").chain(args.iter().copied()),
        )?;
        ServeConfig::from_args(&cli.serve)
    }

    #[test]
    fn no_auth_on_a_non_loopback_address_needs_no_auth_anywhere() {
        for address in ["0.0.0.0", "192.0.2.7", "::", "::ffff:192.0.2.7"] {
            let error = config(&["--no-auth", "--address", address]).expect_err(address);
            assert!(
                format!("{error:#}").contains("--no-auth-anywhere"),
                "{error:#}"
            );
            let served = config(&["--no-auth", "--no-auth-anywhere", "--address", address])
                .expect("allowed when said twice");
            assert!(!served.auth.enabled);
            // With authorization on, any address is fine.
            assert!(config(&["--address", address]).is_ok());
        }
        for address in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            let served = config(&["--no-auth", "--address", address]).expect(address);
            assert!(!served.auth.enabled);
        }
        assert!(!config(&["--no-auth-anywhere"]).expect("ok").auth.enabled);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10M").expect("ok"), Some(10 << 20));
        assert_eq!(parse_size("2G").expect("ok"), Some(2 << 30));
        assert_eq!(parse_size("512k").expect("ok"), Some(512 << 10));
        assert_eq!(parse_size("100").expect("ok"), Some(100));
        assert_eq!(parse_size("1GiB").expect("ok"), Some(1 << 30));
        assert_eq!(parse_size("none").expect("ok"), None);
        for bad in ["", "M", "ten", "-1M", "0"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_env() {
        assert!(auth_disabled_by_env(Some("false".into())));
        assert!(auth_disabled_by_env(Some("0".into())));
        assert!(!auth_disabled_by_env(Some("true".into())));
        assert!(!auth_disabled_by_env(None));
    }
}

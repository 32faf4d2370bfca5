//! Many live contexts and what they cost (issue 9): 200 contexts created by 8 clients,
//! each answering an execute, then the host's RSS and each worker's RSS, USS
//! (`Private_Clean + Private_Dirty`) and PSS from `/proc/<pid>/smaps_rollup`, median and
//! max; and, in the full bench, 500 live contexts on a host run with
//! `--max-instances 500`, each executing `1+1`. Every context is deleted after, and
//! every worker pid is checked gone.

use crate::{check_integer, execute_body, join_all, row, rss_kib, Host, Plan, Row};
use anyhow::{bail, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clients creating contexts at once.
const CLIENTS: usize = 8;

/// What one client of a many-contexts run saw: latencies, (name, worker pid) of each
/// context it made, and the error that stopped it, if one did.
type ClientRun = (Vec<Duration>, Vec<Context>, Option<anyhow::Error>);

/// A live context: its name and its worker's pid.
type Context = (String, u32);

/// A worker's memory from `/proc/<pid>/smaps_rollup`, in KiB.
#[derive(Clone, Copy)]
struct Memory {
    uss: u64,
    pss: u64,
}

fn smaps_rollup(pid: u32) -> Option<Memory> {
    parse_rollup(&std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?)
}

/// USS and PSS from the text of a `smaps_rollup` file.
fn parse_rollup(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Memory {
        uss: field("Private_Clean:")? + field("Private_Dirty:")?,
        pss: field("Pss:")?,
    })
}

fn median_max(mut values: Vec<u64>) -> Option<(u64, u64)> {
    values.sort_unstable();
    Some((
        *values.get(values.len().saturating_sub(1) / 2)?,
        *values.last()?,
    ))
}

/// Creates `count` contexts from `CLIENTS` clients; each executes `code` and must
/// answer `want(client, i)`. Returns the latencies (create + execute) and the contexts.
fn create_many(
    host: &Arc<Host>,
    count: usize,
    code: fn(usize, usize) -> (String, i64),
) -> Result<(Vec<Duration>, Vec<Context>)> {
    let per_client = count.div_ceil(CLIENTS);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let host = host.clone();
            let count = per_client.min(count.saturating_sub(client * per_client));
            std::thread::spawn(move || -> Result<ClientRun> {
                let mut connection = host.connection()?;
                let mut latencies = Vec::new();
                let mut created = Vec::new();
                for i in 0..count {
                    let t = Instant::now();
                    let name = match host.create(&mut connection) {
                        Ok(name) => name,
                        Err(e) => return Ok((latencies, created, Some(e))),
                    };
                    let (text, want) = code(client, i);
                    let request = connection.build(
                        "PUT",
                        &format!("/{name}!execute"),
                        Some(&host.token),
                        &execute_body(&text),
                    );
                    let answer = connection
                        .send(&request)
                        .and_then(|response| check_integer(&response.body, want));
                    latencies.push(t.elapsed());
                    let pid = host.worker_pid(&mut connection, &name);
                    created.push((name.clone(), pid.as_ref().map_or(0, |p| *p)));
                    if let Err(e) = answer.and(pid.map(|_| ())) {
                        let e = e.context(format!("context {} of client {client} ({name})", i + 1));
                        return Ok((latencies, created, Some(e)));
                    }
                }
                Ok((latencies, created, None))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut created = Vec::new();
    let mut failure = None;
    for result in join_all(threads) {
        match result {
            Ok((l, c, e)) => {
                latencies.extend(l);
                created.extend(c);
                failure = failure.or(e);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        // Deletes what was made before saying why.
        let _ = delete_all(host, &created);
        return Err(e);
    }
    Ok((latencies, created))
}

/// Deletes every context, then waits (up to 10 s) for each worker pid to be gone; a
/// worker still there is an error (and is killed, by pid, so nothing is left).
fn delete_all(host: &Host, created: &[Context]) -> Result<()> {
    let mut connection = host.connection()?;
    for (name, _) in created {
        host.delete(&mut connection, name)?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive =
        |pid: &u32| *pid > 0 && Path::new(&format!("/proc/{pid}")).exists() && !zombie(*pid);
    while Instant::now() < deadline && created.iter().any(|(_, pid)| alive(pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = created.iter().map(|(_, pid)| *pid).filter(alive).collect();
    if !left.is_empty() {
        for pid in &left {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        bail!(
            "{} workers still ran 10 s after DELETE (killed): {left:?}",
            left.len()
        );
    }
    Ok(())
}

/// Whether a process is a zombie (ended, not yet reaped by the host).
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The 200-contexts rows: create + execute, host RSS, and each worker's RSS, USS, PSS.
pub(crate) fn many_contexts(host: &Arc<Host>, plan: &Plan) -> Result<Vec<Row>> {
    let started = Instant::now();
    let (latencies, created) = create_many(host, plan.many_contexts, |client, i| {
        let want = (client * 1000 + i) as i64;
        (want.to_string(), want)
    })?;
    let elapsed = started.elapsed();
    let host_rss = rss_kib(host.pid());
    let pids: Vec<u32> = created.iter().map(|(_, pid)| *pid).collect();
    let worker_rss: Vec<u64> = pids.iter().filter_map(|pid| rss_kib(*pid)).collect();
    let memory: Vec<Memory> = pids.iter().filter_map(|pid| smaps_rollup(*pid)).collect();
    delete_all(host, &created)?;

    let mut rows = Vec::new();
    let mut all = row(
        &format!("{} contexts: create + execute", created.len()),
        latencies,
        elapsed,
        format!("{CLIENTS} clients; KiB is the host's RSS with all live"),
    );
    all.rss_kib = host_rss;
    rows.push(all);
    let mut mean = row(
        "idle worker RSS (mean)",
        Vec::new(),
        Duration::ZERO,
        format!("over {} workers", worker_rss.len()),
    );
    mean.rss_kib = Some(worker_rss.iter().sum::<u64>() / worker_rss.len().max(1) as u64);
    rows.push(mean);
    for (label, values) in [
        ("USS", memory.iter().map(|m| m.uss).collect::<Vec<_>>()),
        ("PSS", memory.iter().map(|m| m.pss).collect()),
    ] {
        let measured = values.len();
        let Some((median, max)) = median_max(values) else {
            println!("no {label} row: /proc/<pid>/smaps_rollup was not readable");
            continue;
        };
        let mut r = row(
            &format!("idle worker {label} (median)"),
            Vec::new(),
            Duration::ZERO,
            format!("max {max} KiB; smaps_rollup of {measured} workers, all live"),
        );
        r.rss_kib = Some(median);
        rows.push(r);
    }
    Ok(rows)
}

/// How many contexts the capacity row holds live at once.
const CAPACITY: usize = 500;

/// 500 live contexts on a host with `--max-instances 500`, each executing `1+1`.
pub(crate) fn capacity(binary: &Path, plan: &Plan) -> Result<Option<Row>> {
    if !plan.capacity {
        println!("skipped the {CAPACITY}-contexts row (full bench only)");
        return Ok(None);
    }
    let host = Arc::new(Host::start(
        &binary.to_path_buf(),
        &["--max-instances", &CAPACITY.to_string()],
    )?);
    let started = Instant::now();
    let (latencies, created) = create_many(&host, CAPACITY, |_, _| ("1+1".into(), 2))?;
    let elapsed = started.elapsed();
    let host_rss = rss_kib(host.pid());
    let total: u64 = created
        .iter()
        .filter_map(|(_, pid)| smaps_rollup(*pid))
        .map(|m| m.pss)
        .sum();
    delete_all(&host, &created)?;
    let mut r = row(
        &format!("{CAPACITY} contexts live, --max-instances {CAPACITY}"),
        latencies,
        elapsed,
        format!(
            "each created, then 1+1 = 2; KiB is the host's RSS; workers' PSS total {} MiB",
            total / 1024
        ),
    );
    r.rss_kib = host_rss;
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLUP: &str = "55d0c0de0000-7ffd0000f000 ---p 00000000 00:00 0                  [rollup]
Rss:               18592 kB
Pss:               11701 kB
Pss_Dirty:         11000 kB
Pss_Anon:          10900 kB
Shared_Clean:       6900 kB
Shared_Dirty:         24 kB
Private_Clean:       120 kB
Private_Dirty:     11548 kB
";

    #[test]
    fn uss_is_private_clean_plus_dirty_and_pss_is_the_pss_line() {
        let memory = parse_rollup(ROLLUP).expect("parsed");
        assert_eq!(memory.uss, 120 + 11548);
        assert_eq!(memory.pss, 11701);
    }

    #[test]
    fn a_rollup_without_private_lines_gives_nothing() {
        assert!(parse_rollup("Rss: 1 kB\nPss: 1 kB\n").is_none());
    }

    #[test]
    fn median_and_max() {
        assert_eq!(median_max(vec![5, 1, 9, 3]), Some((3, 9)));
        assert_eq!(median_max(vec![7]), Some((7, 7)));
        assert_eq!(median_max(Vec::new()), None);
    }
}

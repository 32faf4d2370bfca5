//! Per-context cgroups (cgroup v2), where the machine delegates the host's cgroup to
//! its user: each context's worker goes into a cgroup of its own, so everything it
//! starts, even in a new session (`setsid`, `start_new_session=True`) that its process
//! group kill cannot reach, ends when the context is deleted, restarted or the host
//! stops (`cgroup.kill`, else SIGKILL to each member).
//!
//! Where it is not delegated (cgroup v1, no unified mount, a cgroup owned by root, as
//! in most containers), contexts run without one: [`confinement`] says why, and the
//! host logs it once at start. Language-neutral: a context type calls [`ContextCgroup`]
//! with its workers' pids.
//!
//! Only the kernel files of the unified hierarchy are touched; no controller is
//! enabled, so the host's own cgroup may keep its processes beside the new children.

use nix::sys::signal::{kill, Signal};
use nix::unistd::{access, AccessFlags, Pid};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Where the unified hierarchy is mounted.
const MOUNT: &str = "/sys/fs/cgroup";

/// The cgroup under which this host makes one cgroup per context.
#[derive(Debug)]
pub struct Cgroups {
    base: PathBuf,
    next: AtomicU64,
}

/// Whether contexts get cgroups here, and why not when they do not.
#[derive(Debug, Clone)]
pub enum Confinement {
    /// Each context gets a cgroup under this host's.
    Cgroups(Arc<Cgroups>),
    /// Contexts run without one, for this reason.
    Unavailable(String),
}

/// What [`confinement`] found.
static FOUND: OnceLock<Confinement> = OnceLock::new();

/// What this machine allows, found once (the first call also logs it).
pub fn confinement() -> &'static Confinement {
    FOUND.get_or_init(|| {
        let proc_cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        match Cgroups::detect_in(Path::new(MOUNT), &proc_cgroup, std::process::id()) {
            Ok(cgroups) => {
                log::info!(
                    "each context's processes get a cgroup of their own under {}",
                    cgroups.base.display()
                );
                Confinement::Cgroups(Arc::new(cgroups))
            }
            Err(reason) => {
                log::warn!(
                    "contexts run without cgroups ({reason}): a process a context starts in a new session (setsid) outlives the context; see the README's security section"
                );
                Confinement::Unavailable(reason)
            }
        }
    })
}

/// A new cgroup for one context, where the machine allows it.
pub fn for_context() -> Option<ContextCgroup> {
    match confinement() {
        Confinement::Cgroups(cgroups) => match cgroups.create() {
            Ok(cgroup) => Some(cgroup),
            Err(error) => {
                log::warn!("a context runs without its own cgroup: {error}");
                None
            }
        },
        Confinement::Unavailable(_) => None,
    }
}

/// Removes this host's cgroup directory, once its contexts are gone (at stop).
pub fn release() {
    if let Some(Confinement::Cgroups(cgroups)) = FOUND.get() {
        let _ = fs::remove_dir(&cgroups.base);
    }
}

impl Cgroups {
    /// Finds the host's cgroup v2 from `/proc/self/cgroup`'s text and makes
    /// `stencila-<pid>` under it; an `Err` says why that cannot be done.
    fn detect_in(mount: &Path, proc_cgroup: &str, pid: u32) -> Result<Cgroups, String> {
        let own = proc_cgroup
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .ok_or("the machine does not use cgroup v2")?
            .trim();
        if !mount.join("cgroup.controllers").is_file() {
            return Err(format!("cgroup v2 is not mounted at {}", mount.display()));
        }
        let dir = mount.join(own.trim_start_matches('/'));
        if access(&dir.join("cgroup.procs"), AccessFlags::W_OK).is_err() {
            return Err(format!(
                "the host's cgroup {own} is not delegated to this user"
            ));
        }
        let base = dir.join(format!("stencila-{pid}"));
        match fs::create_dir(&base) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(format!("no cgroup can be made under {own}: {error}"));
            }
        }
        Ok(Cgroups {
            base,
            next: AtomicU64::new(0),
        })
    }

    /// A new, empty cgroup for one context.
    fn create(&self) -> io::Result<ContextCgroup> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let dir = self.base.join(format!("context-{n}"));
        fs::create_dir(&dir)?;
        Ok(ContextCgroup { dir })
    }
}

/// One context's cgroup: its workers are added, and everything in it ends together.
#[derive(Debug)]
pub struct ContextCgroup {
    dir: PathBuf,
}

impl ContextCgroup {
    /// Moves process `pid` (a worker that has not yet run user code) into the cgroup;
    /// what it starts later is born there.
    pub fn add(&self, pid: u32) {
        if let Err(error) = fs::write(self.dir.join("cgroup.procs"), pid.to_string()) {
            log::warn!("worker {pid} could not be put in its context's cgroup: {error}");
        }
    }

    /// The pids in the cgroup now.
    fn members(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// Ends every process in the cgroup: `cgroup.kill` (Linux 5.14+), else SIGKILL to
    /// each member.
    pub fn kill(&self) {
        if fs::write(self.dir.join("cgroup.kill"), "1").is_err() {
            for pid in self.members() {
                // Members are in this cgroup until reaped, so the pid is not recycled.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// Kills what is left and removes the cgroup (once its members have gone).
    pub async fn remove(&self) {
        self.kill();
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        log::warn!("the cgroup {} could not be removed", self.dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("stencila-cgroup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("user.slice/app")).expect("ok");
        fs::write(dir.join("cgroup.controllers"), "").expect("ok");
        fs::write(dir.join("user.slice/app/cgroup.procs"), "").expect("ok");
        dir
    }

    #[test]
    fn without_cgroup_v2_the_reason_is_given() {
        let mount = scratch("v1");
        let v1 = "4:memory:/x\n1:cpu:/\n";
        let error = Cgroups::detect_in(&mount, v1, 7).expect_err("an error");
        assert!(error.contains("cgroup v2"), "{error}");
        fs::remove_file(mount.join("cgroup.controllers")).expect("ok");
        let error = Cgroups::detect_in(&mount, "0::/user.slice/app\n", 7).expect_err("an error");
        assert!(error.contains("not mounted"), "{error}");
        fs::remove_dir_all(&mount).expect("ok");
    }

    #[test]
    fn a_delegated_cgroup_gets_one_child_per_context() {
        let mount = scratch("v2");
        let cgroups = Cgroups::detect_in(&mount, "0::/user.slice/app\n", 7).expect("ok");
        let base = mount.join("user.slice/app/stencila-7");
        assert!(base.is_dir());
        let first = cgroups.create().expect("ok");
        let second = cgroups.create().expect("ok");
        assert_eq!(first.dir, base.join("context-1"));
        assert_eq!(second.dir, base.join("context-2"));
        first.add(1234);
        assert_eq!(
            fs::read_to_string(first.dir.join("cgroup.procs")).expect("ok"),
            "1234"
        );
        first.kill();
        assert_eq!(
            fs::read_to_string(first.dir.join("cgroup.kill")).expect("ok"),
            "1"
        );
        fs::remove_dir_all(&mount).expect("ok");
    }

    #[test]
    fn a_cgroup_not_delegated_is_refused() {
        let mount = scratch("root");
        // Not there at all: as good as not writable.
        let error =
            Cgroups::detect_in(&mount, "0::/system.slice/other\n", 7).expect_err("an error");
        assert!(error.contains("not delegated"), "{error}");
        fs::remove_dir_all(&mount).expect("ok");
    }
}

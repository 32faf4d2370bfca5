//! Run files: `<run dir>/hosts/<id>.json` (the manifest) and `<id>.key` (the host's
//! key), private to this user, so local tools can find and reach a running host.
//!
//! The run directory is this user's own: `$XDG_RUNTIME_DIR/stencila`, else
//! `<tmp>/stencila-<uid>`. A directory shared by all users would let the first one to
//! make it stop everyone else's hosts from starting.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How a private file is opened: never through a symbolic link, which another user
/// could have planted to make us write where they choose.
fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW);
    options
}

/// Writes `contents` to `path` readable and writable by this user only, creating it:
/// an existing file or link at `path` is an error (`O_EXCL|O_NOFOLLOW`), never reused.
fn write_new_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = private_file_options()
        .create_new(true)
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("could not write {}", path.display()))
}

/// Writes `contents` to `path` (created or replaced) readable and writable by this
/// user only; a link at `path` is refused (`O_NOFOLLOW`).
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = private_file_options()
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("could not write {}", path.display()))
}

/// This user's run directory: `$XDG_RUNTIME_DIR/stencila` where that names this
/// user's own directory, else `<tmp>/stencila-<uid>`.
pub fn run_dir() -> PathBuf {
    let uid = nix::unistd::getuid().as_raw();
    run_dir_from(
        runtime_dir(std::env::var_os("XDG_RUNTIME_DIR"), uid),
        std::env::temp_dir(),
        uid,
    )
}

/// `XDG_RUNTIME_DIR` if it is usable: an absolute path to an existing directory of
/// user `uid` (after `su` or `sudo` it may still name another user's, or none).
fn runtime_dir(value: Option<std::ffi::OsString>, uid: u32) -> Option<PathBuf> {
    let dir = PathBuf::from(value?);
    let owned = std::fs::metadata(&dir).is_ok_and(|meta| meta.is_dir() && meta.uid() == uid);
    (dir.is_absolute() && owned).then_some(dir)
}

fn run_dir_from(runtime: Option<PathBuf>, tmp: PathBuf, uid: u32) -> PathBuf {
    match runtime {
        Some(runtime) => runtime.join("stencila"),
        None => tmp.join(format!("stencila-{uid}")),
    }
}

/// Whether process `pid` exists, by `kill(pid, 0)`: unlike a look in `/proc`, this asks
/// the kernel in our own pid namespace. A process of another user (`EPERM`) exists.
fn pid_is_alive(pid: u64) -> bool {
    use nix::errno::Errno;
    // Zero or negative would name process groups; such a manifest is not ours to judge.
    let Some(pid) = i32::try_from(pid).ok().filter(|&pid| pid > 0) else {
        return true;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

/// Creates `dir` (mode 0700) if needed, and refuses one that another user could
/// tamper with: in a shared `/tmp`, someone else may have made it first.
fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("could not create {}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("could not inspect {}", dir.display()))?;
    let uid = nix::unistd::getuid().as_raw();
    if meta.file_type().is_symlink() || !meta.is_dir() {
        bail!(
            "{} is not a plain directory; remove it and start again",
            dir.display()
        );
    }
    if meta.uid() != uid {
        bail!(
            "{} belongs to another user (uid {}), who could read or replace this host's run files; remove it or set TMPDIR",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("could not make {} private", dir.display()))?;
    }
    Ok(())
}

/// Removes the run files of hosts that are no longer running (e.g. killed with
/// SIGKILL, which leaves no chance to clean up): their manifest names a dead pid.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let pid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|manifest| manifest["process"]["pid"].as_u64());
        let Some(pid) = pid else { continue };
        if pid_is_alive(pid) {
            continue;
        }
        for stale in [path.clone(), path.with_extension("key")] {
            if std::fs::remove_file(&stale).is_ok() {
                log::info!("removed the stale run file {}", stale.display());
            }
        }
    }
}

/// The run files of a serving host; removed by [`RunFiles::remove`] or on drop.
pub struct RunFiles {
    paths: Vec<PathBuf>,
}

impl RunFiles {
    pub fn write(id: &str, manifest: &Value, key: &str) -> Result<RunFiles> {
        let parent = run_dir();
        private_dir(&parent)?;
        let dir = parent.join("hosts");
        private_dir(&dir)?;
        remove_stale(&dir);
        let manifest_path = dir.join(format!("{id}.json"));
        let key_path = dir.join(format!("{id}.key"));
        // Remembered before writing, so a half-written pair is still cleaned up.
        let files = RunFiles {
            paths: vec![manifest_path.clone(), key_path.clone()],
        };
        write_new_private(
            &manifest_path,
            serde_json::to_string_pretty(manifest)?.as_bytes(),
        )?;
        write_new_private(&key_path, key.as_bytes())?;
        Ok(files)
    }

    pub fn remove(mut self) {
        self.remove_all();
    }

    fn remove_all(&mut self) {
        for path in self.paths.drain(..) {
            if let Err(error) = std::fs::remove_file(&path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("could not remove {}: {error}", path.display());
                }
            }
        }
    }
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Writes the manifest to `~/.stencila/hosts/rust.json`; returns the path.
pub fn register(manifest: &Value) -> Result<PathBuf> {
    let home =
        std::env::var_os("HOME").context("HOME is not set, so there is nowhere to register")?;
    let dir = PathBuf::from(home).join(".stencila").join("hosts");
    private_dir(&dir)?;
    let path = dir.join("rust.json");
    write_private(&path, serde_json::to_string_pretty(manifest)?.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("stencila-runfiles-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }

    #[test]
    fn the_run_directory_is_per_user() {
        let tmp = PathBuf::from("/tmp");
        assert_eq!(
            run_dir_from(None, tmp.clone(), 1000),
            PathBuf::from("/tmp/stencila-1000")
        );
        assert_eq!(
            run_dir_from(Some("/run/user/1000".into()), tmp, 1000),
            PathBuf::from("/run/user/1000/stencila")
        );
        // XDG_RUNTIME_DIR counts only when it is this user's own existing directory.
        let uid = nix::unistd::getuid().as_raw();
        let own = scratch("xdg");
        assert_eq!(
            runtime_dir(Some(own.clone().into()), uid),
            Some(own.clone())
        );
        assert_eq!(runtime_dir(Some(own.clone().into()), uid + 1), None);
        assert_eq!(runtime_dir(Some(own.join("missing").into()), uid), None);
        assert_eq!(runtime_dir(Some("".into()), uid), None);
        assert_eq!(runtime_dir(Some("relative".into()), uid), None);
        assert_eq!(runtime_dir(None, uid), None);
        let _ = std::fs::remove_dir_all(&own);
    }

    #[test]
    fn run_files_never_follow_a_link_or_reuse_a_file() {
        let dir = scratch("nofollow");
        let target = dir.join("target.txt");
        std::fs::write(&target, "untouched").expect("a file");
        let link = dir.join("rust-host-x.json");
        std::os::unix::fs::symlink(&target, &link).expect("a link");
        assert!(write_new_private(&link, b"manifest").is_err());
        assert!(write_private(&link, b"manifest").is_err());
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "untouched");
        // A file already there (someone else's, or left over) is not reused either.
        let existing = dir.join("rust-host-y.key");
        std::fs::write(&existing, "old").expect("a file");
        assert!(write_new_private(&existing, b"key").is_err());
        assert_eq!(std::fs::read_to_string(&existing).expect("read"), "old");
        let fresh = dir.join("rust-host-z.key");
        write_new_private(&fresh, b"key").expect("a new file");
        let mode = std::fs::metadata(&fresh).expect("meta").mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_run_file_is_stale_only_when_kill_says_its_pid_is_gone() {
        assert!(pid_is_alive(u64::from(std::process::id())));
        assert!(pid_is_alive(1), "init, or another user's process (EPERM)");
        // Linux's pid_max is at most 2^22, so this pid can never exist.
        assert!(!pid_is_alive(4_194_305));
        // Zero and out-of-range pids would name process groups: never judged stale.
        assert!(pid_is_alive(0));
        assert!(pid_is_alive(u64::from(u32::MAX)));

        let dir = scratch("stale");
        let live = dir.join("rust-host-live.json");
        std::fs::write(
            &live,
            format!(r#"{{"process": {{"pid": {}}}}}"#, std::process::id()),
        )
        .expect("a file");
        let dead = dir.join("rust-host-dead.json");
        std::fs::write(&dead, r#"{"process": {"pid": 4194305}}"#).expect("a file");
        std::fs::write(dir.join("rust-host-dead.key"), "k").expect("a file");
        remove_stale(&dir);
        assert!(live.exists());
        assert!(!dead.exists());
        assert!(!dir.join("rust-host-dead.key").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

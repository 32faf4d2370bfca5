//! Run files: `<tmp>/stencila/hosts/<id>.json` (the manifest) and `<id>.key` (the host's
//! key), private to this user, so local tools can find and reach a running host.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` readable and writable by this user only.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("could not write {}", path.display()))
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
        if Path::new(&format!("/proc/{pid}")).exists() {
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
        let parent = std::env::temp_dir().join("stencila");
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
        write_private(
            &manifest_path,
            serde_json::to_string_pretty(manifest)?.as_bytes(),
        )?;
        write_private(&key_path, key.as_bytes())?;
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

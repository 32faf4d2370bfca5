//! Run files: `<tmp>/stencila/hosts/<id>.json` (the manifest) and `<id>.key` (the host's
//! key), private to this user, so local tools can find and reach a running host.

use anyhow::{Context, Result};
use serde_json::Value;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("could not create {}", dir.display()))
}

/// The run files of a serving host; removed by [`RunFiles::remove`] or on drop.
pub struct RunFiles {
    paths: Vec<PathBuf>,
}

impl RunFiles {
    pub fn write(id: &str, manifest: &Value, key: &str) -> Result<RunFiles> {
        let dir = std::env::temp_dir().join("stencila").join("hosts");
        private_dir(&dir)?;
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

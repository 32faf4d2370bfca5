//! Finding installed Jupyter kernels: the data directories Jupyter searches, in its
//! order, and the kernelspecs (`kernels/<name>/kernel.json`) in them.
//!
//! The directories come from environment variables, which only the CLI reads: it
//! passes a lookup function to [`jupyter_data_dirs`].

use jupyter_protocol::JupyterKernelspec;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The data directories Jupyter searches for kernelspecs, highest priority first, as
/// `jupyter --paths` lists them on Linux: each entry of `JUPYTER_PATH`; the user's
/// data directory (`JUPYTER_DATA_DIR`, else `$XDG_DATA_HOME/jupyter`, else
/// `~/.local/share/jupyter`); the active virtualenv's or conda environment's
/// `share/jupyter` (`VIRTUAL_ENV`, `CONDA_PREFIX`); then `/usr/local/share/jupyter`
/// and `/usr/share/jupyter`. `env` looks up one environment variable.
pub fn jupyter_data_dirs(env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    let mut dirs = Vec::new();
    if let Some(path) = set("JUPYTER_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|dir| !dir.as_os_str().is_empty()));
    }
    let user = set("JUPYTER_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| set("XDG_DATA_HOME").map(|data| PathBuf::from(data).join("jupyter")))
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".local/share/jupyter")));
    dirs.extend(user);
    for prefix in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        dirs.extend(set(prefix).map(|prefix| PathBuf::from(prefix).join("share/jupyter")));
    }
    dirs.push(PathBuf::from("/usr/local/share/jupyter"));
    dirs.push(PathBuf::from("/usr/share/jupyter"));
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|dir| seen.insert(dir.clone()));
    dirs
}

/// One installed kernel.
#[derive(Debug, Clone)]
pub(super) struct Kernelspec {
    /// The kernel's name: its directory's name (`python3`, `ir`).
    pub name: String,
    /// The kernelspec's directory (its `{resource_dir}`).
    pub dir: PathBuf,
    pub spec: JupyterKernelspec,
}

impl Kernelspec {
    /// Whether the kernel's language is Python (so inputs can be set in it).
    pub fn is_python(&self) -> bool {
        self.spec.language.eq_ignore_ascii_case("python")
    }

    /// Whether the kernel wants `interrupt_request` messages rather than SIGINT.
    pub fn interrupts_by_message(&self) -> bool {
        self.spec.interrupt_mode.as_deref() == Some("message")
    }

    /// The program and arguments that start the kernel with `connection_file`:
    /// `{connection_file}` and `{resource_dir}` substituted. A bare `python` (or
    /// `python3`, `python3.X`) in a kernelspec that lives in an environment's
    /// `<prefix>/share/jupyter/kernels/` means that environment's interpreter, as it
    /// does for Jupyter run from there (ipykernel's own spec says just `python`).
    pub fn command(&self, connection_file: &Path) -> Option<(PathBuf, Vec<OsString>)> {
        let (program, args) = self.spec.argv.split_first()?;
        // As Jupyter formats each argument: the fields may be part of one.
        let substitute = |arg: &str| -> OsString {
            match arg {
                "{connection_file}" => connection_file.as_os_str().to_owned(),
                "{resource_dir}" => self.dir.as_os_str().to_owned(),
                other => OsString::from(
                    other
                        .replace("{connection_file}", &connection_file.to_string_lossy())
                        .replace("{resource_dir}", &self.dir.to_string_lossy()),
                ),
            }
        };
        let program = self
            .environment_python(program)
            .unwrap_or_else(|| PathBuf::from(program));
        Some((program, args.iter().map(|arg| substitute(arg)).collect()))
    }

    fn environment_python(&self, program: &str) -> Option<PathBuf> {
        let is_python = program == "python"
            || program
                .strip_prefix("python3")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'));
        if !is_python {
            return None;
        }
        // <prefix>/share/jupyter/kernels/<name>
        let kernels = self.dir.parent()?;
        let jupyter = kernels.parent()?;
        let share = jupyter.parent()?;
        let prefix = share.parent()?;
        if kernels.file_name()? != "kernels"
            || jupyter.file_name()? != "jupyter"
            || share.file_name()? != "share"
        {
            return None;
        }
        let candidate = prefix.join("bin").join(program);
        candidate.is_file().then_some(candidate)
    }
}

/// Every kernelspec in `dirs`, by name; where two directories have a kernel of the
/// same name, the earlier directory's wins (as in Jupyter). Unreadable or malformed
/// kernelspecs are skipped (and logged).
pub(super) fn find_kernelspecs(dirs: &[PathBuf]) -> BTreeMap<String, Kernelspec> {
    let mut found = BTreeMap::new();
    for data_dir in dirs {
        let Ok(entries) = std::fs::read_dir(data_dir.join("kernels")) else {
            continue;
        };
        let mut names: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.path())))
            .collect();
        names.sort();
        for (name, dir) in names {
            if found.contains_key(&name) {
                continue;
            }
            match read_kernelspec(&dir) {
                Ok(spec) => {
                    found.insert(name.clone(), Kernelspec { name, dir, spec });
                }
                Err(reason) => log::info!("skipping the kernelspec in {}: {reason}", dir.display()),
            }
        }
    }
    found
}

fn read_kernelspec(dir: &Path) -> Result<JupyterKernelspec, String> {
    let text = std::fs::read(dir.join("kernel.json")).map_err(|error| error.to_string())?;
    let spec: JupyterKernelspec =
        serde_json::from_slice(&text).map_err(|error| error.to_string())?;
    if spec.argv.is_empty() {
        return Err("its argv is empty".into());
    }
    Ok(spec)
}

//! Unit tests of `JupyterContext`: kernelspec discovery and launch commands on
//! directories made here, the manifest entry, and create's option checks. Tests
//! that need a real kernel are black-box tests (`tests/tests/jupyter.rs`).

use super::kernelspec::{find_kernelspecs, jupyter_data_dirs};
use super::{JupyterConfig, JupyterContextType};
use serde_json::json;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use stencila_host::{HostError, InstanceType};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stencila-jupyter-unit-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn install(data_dir: &Path, name: &str, spec: serde_json::Value) -> PathBuf {
    let dir = data_dir.join("kernels").join(name);
    std::fs::create_dir_all(&dir).expect("a kernel dir");
    std::fs::write(dir.join("kernel.json"), spec.to_string()).expect("written");
    dir
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn data_dirs_follow_jupyters_order() {
    let dirs = jupyter_data_dirs(env(&[
        ("JUPYTER_PATH", "/a:/b:"),
        ("HOME", "/home/u"),
        ("VIRTUAL_ENV", "/venv"),
        ("CONDA_PREFIX", ""),
    ]));
    let expected: Vec<PathBuf> = [
        "/a",
        "/b",
        "/home/u/.local/share/jupyter",
        "/venv/share/jupyter",
        "/usr/local/share/jupyter",
        "/usr/share/jupyter",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(dirs, expected);
    // JUPYTER_DATA_DIR, then XDG_DATA_HOME, name the user's directory.
    let dirs = jupyter_data_dirs(env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")]));
    assert_eq!(dirs[0], PathBuf::from("/x/jupyter"));
    let dirs = jupyter_data_dirs(env(&[("JUPYTER_DATA_DIR", "/d"), ("XDG_DATA_HOME", "/x")]));
    assert_eq!(dirs[0], PathBuf::from("/d"));
    // Nothing set: only the system directories; duplicates appear once.
    assert_eq!(jupyter_data_dirs(env(&[])).len(), 2);
    let dirs = jupyter_data_dirs(env(&[("JUPYTER_PATH", "/usr/share/jupyter")]));
    assert_eq!(dirs.len(), 2);
}

#[test]
fn kernelspecs_are_found_first_directory_first() {
    let root = scratch("find");
    let (first, second) = (root.join("first"), root.join("second"));
    install(
        &first,
        "python3",
        json!({"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "First", "language": "python"}),
    );
    install(
        &second,
        "python3",
        json!({"argv": ["python3"], "display_name": "Second", "language": "python"}),
    );
    install(
        &second,
        "ir",
        json!({"argv": ["R", "--slave", "-f", "{resource_dir}/main.R", "{connection_file}"], "display_name": "R", "language": "R", "interrupt_mode": "message"}),
    );
    // Broken ones are skipped, not fatal.
    install(
        &second,
        "empty",
        json!({"argv": [], "display_name": "E", "language": "x"}),
    );
    let broken = second.join("kernels/broken");
    std::fs::create_dir_all(&broken).expect("dir");
    std::fs::write(broken.join("kernel.json"), "{not json").expect("written");

    let found = find_kernelspecs(&[first.clone(), second.clone(), root.join("missing")]);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["ir", "python3"]);
    assert_eq!(found["python3"].spec.display_name, "First");
    assert!(found["python3"].is_python());
    assert!(!found["python3"].interrupts_by_message());
    assert!(found["ir"].interrupts_by_message());

    let connection = Path::new("/run/k.json");
    let (program, args) = found["ir"].command(connection).expect("a command");
    assert_eq!(program, PathBuf::from("R"));
    let resource = second.join("kernels/ir");
    assert_eq!(
        args,
        [
            OsString::from("--slave"),
            OsString::from("-f"),
            OsString::from(format!("{}/main.R", resource.display())),
            connection.as_os_str().to_owned(),
        ]
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_bare_python_in_an_environments_kernelspec_is_that_environments_python() {
    let prefix = scratch("venv");
    let data = prefix.join("share/jupyter");
    install(
        &data,
        "python3",
        json!({"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "P", "language": "python"}),
    );
    let specs = find_kernelspecs(std::slice::from_ref(&data));
    // No interpreter there: the name is left to PATH.
    let (program, _) = specs["python3"]
        .command(Path::new("/c.json"))
        .expect("a command");
    assert_eq!(program, PathBuf::from("python"));
    std::fs::create_dir_all(prefix.join("bin")).expect("bin");
    std::fs::write(prefix.join("bin/python"), "").expect("written");
    let (program, args) = specs["python3"]
        .command(Path::new("/c.json"))
        .expect("a command");
    assert_eq!(program, prefix.join("bin/python"));
    assert_eq!(args.last(), Some(&OsString::from("/c.json")));
    let _ = std::fs::remove_dir_all(prefix);
}

fn context_type(data_dirs: Vec<PathBuf>, connection_dir: PathBuf) -> JupyterContextType {
    JupyterContextType::new(JupyterConfig {
        data_dirs,
        connection_dir,
        execute_timeout: None,
        pool_kernel: None,
    })
}

#[tokio::test]
async fn the_manifest_entry_and_create_options() {
    let root = scratch("manifest");
    let connections = root.join("connections");
    let jupyter = context_type(vec![root.clone()], connections.clone());
    assert!(!jupyter.available());
    let fields = jupyter.manifest_fields();
    assert_eq!(fields["kernels"], json!({}));
    assert!(fields["reason"]
        .as_str()
        .is_some_and(|reason| reason.contains("no Jupyter kernel is installed")));
    let error = jupyter.create(json!({"kernel": "x"})).await.err();
    assert!(
        matches!(error, Some(HostError::Unavailable(_))),
        "{error:?}"
    );

    install(
        &root,
        "bash",
        json!({"argv": ["bash-kernel-not-installed", "{connection_file}"], "display_name": "Bash", "language": "bash"}),
    );
    // The manifest reuses a look for kernels for a moment; a create looks again.
    for options in [
        json!({}),
        json!({"kernel": null}),
        json!({"kernel": "python3"}),
    ] {
        let error = jupyter.create(options.clone()).await.err();
        match error {
            Some(HostError::BadArgument(message)) => {
                assert!(message.contains("bash"), "{options}: {message}")
            }
            other => panic!("{options}: {other:?}"),
        }
    }
    assert!(
        jupyter.available(),
        "kernels installed later are seen by a create, then the manifest"
    );
    let fields = jupyter.manifest_fields();
    assert_eq!(
        fields["kernels"],
        json!({"bash": {"language": "bash", "displayName": "Bash"}})
    );
    assert!(!fields.contains_key("reason"));
    // A kernel whose program is missing: a clear 503, and no connection file left.
    let error = jupyter.create(json!({"kernel": "bash"})).await.err();
    match error {
        Some(HostError::Unavailable(message)) => {
            assert!(
                message.contains("could not run bash-kernel-not-installed"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let left = std::fs::read_dir(&connections).map(|entries| entries.count());
    assert_eq!(left.ok(), Some(0), "the connection file is removed");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&connections)
        .expect("the connection files' directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "private to this user");
    let _ = std::fs::remove_dir_all(root);
}

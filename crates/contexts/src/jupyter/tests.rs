//! Unit tests of `JupyterContext`: kernelspec discovery on directories made here.
//! Tests that need a real kernel are black-box tests (`tests/tests/jupyter.rs`).

use super::kernelspec::{find_kernelspecs, jupyter_data_dirs};
use std::ffi::OsString;
use std::path::PathBuf;

//! Static files: the embedded web page and icon, or files under `--static-dir`, resolved
//! so that no request can reach a file outside the static root.

use crate::error::HttpError;
use percent_encoding::percent_decode_str;
use std::path::{Path, PathBuf};

/// The host's own page, served at `/` and `/static/index.html` when there is no static dir.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");

/// The icon served at `/favicon.ico` when the static dir has none.
pub const FAVICON: &[u8] = include_bytes!("../assets/favicon.ico");

/// Where a static request leads.
#[derive(Debug, PartialEq, Eq)]
pub enum StaticFile {
    /// A file on disk, inside the static root.
    Disk(PathBuf),
    /// One of the embedded files.
    Embedded {
        content_type: &'static str,
        body: &'static [u8],
    },
}

/// The relative path of a request below the static root: decoded, with `.` and empty
/// segments dropped. Anything that could step outside the root is refused (403); a
/// dotfile or anything in a dot-directory (`.env`, `.git/config`) is not found (404).
pub fn relative_path(raw: &str) -> Result<Vec<String>, HttpError> {
    let forbidden = || HttpError::Forbidden("the path leads outside the static files".into());
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| HttpError::NotFound("no static file at that path".into()))?;
    // Decoding once more catches double-encoded tricks (`%252e%252e`) should any layer
    // below decode again; backslashes and NULs have no place in a URL path here.
    let twice = percent_decode_str(&decoded).decode_utf8_lossy();
    if decoded.contains(['\\', '\0']) || twice.contains(['\\', '\0']) {
        return Err(forbidden());
    }
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(forbidden()),
            _ if twice.split('/').any(|s| s == "..") => return Err(forbidden()),
            // A drive prefix or anything Windows would read as a root.
            _ if segment.contains(':') => return Err(forbidden()),
            // Dotfiles are a project's secrets and metadata, never its pages.
            _ if segment.starts_with('.') => return Err(not_found()),
            _ => segments.push(segment.to_string()),
        }
    }
    Ok(segments)
}

/// Resolves a static request: a file under `root` (which must be canonical), else one
/// of the embedded files (so `/` and the icon work with any static dir).
pub fn resolve(root: Option<&Path>, raw: &str) -> Result<StaticFile, HttpError> {
    let segments = relative_path(raw)?;
    if let Some(root) = root {
        match on_disk(root, &segments) {
            Err(HttpError::NotFound(_)) => {}
            found_or_refused => return found_or_refused,
        }
    }
    match segments.as_slice() {
        [file] if file == "index.html" => Ok(StaticFile::Embedded {
            content_type: "text/html; charset=utf-8",
            body: INDEX_HTML.as_bytes(),
        }),
        [file] if file == "favicon.ico" => Ok(StaticFile::Embedded {
            content_type: "image/x-icon",
            body: FAVICON,
        }),
        [file] if file == "console.js" => Ok(StaticFile::Embedded {
            content_type: "text/javascript; charset=utf-8",
            body: include_bytes!("../assets/console.js"),
        }),
        [file] if file == "console.css" => Ok(StaticFile::Embedded {
            content_type: "text/css; charset=utf-8",
            body: include_bytes!("../assets/console.css"),
        }),
        _ => Err(not_found()),
    }
}

fn not_found() -> HttpError {
    HttpError::NotFound("no static file at that path".into())
}

fn on_disk(root: &Path, segments: &[String]) -> Result<StaticFile, HttpError> {
    let mut path = root.to_path_buf();
    path.extend(segments);
    // Canonicalizing resolves symlinks, so a link pointing out of the root is caught too.
    let path = path.canonicalize().map_err(|_| not_found())?;
    let Ok(inside) = path.strip_prefix(root) else {
        return Err(HttpError::Forbidden(
            "the path leads outside the static files".into(),
        ));
    };
    // A link with an ordinary name may still lead to a dotfile.
    if inside
        .components()
        .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."))
    {
        return Err(not_found());
    }
    if !path.is_file() {
        return Err(not_found());
    }
    Ok(StaticFile::Disk(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn forbidden(raw: &str) -> bool {
        matches!(relative_path(raw), Err(HttpError::Forbidden(_)))
    }

    #[test]
    fn traversal_is_forbidden() {
        for raw in [
            "../Cargo.toml",
            "a/../../x",
            "%2e%2e/x",
            "%2E%2E%2Fx",
            "..%2fx",
            "..\\x",
            "a%5c..%5cx",
            "%252e%252e/x",
            "a/%00",
            "C:/Windows",
        ] {
            assert!(forbidden(raw), "{raw} should be forbidden");
        }
    }

    #[test]
    fn dotfiles_and_dot_directories_are_not_found() {
        for raw in [
            ".env",
            "%2eenv",
            "%2Egit/config",
            ".git/config",
            "a/.hidden/x.txt",
            "./.env",
            "a/.b",
        ] {
            assert!(
                matches!(relative_path(raw), Err(HttpError::NotFound(_))),
                "{raw} should be not found"
            );
        }
        assert_eq!(
            relative_path("a.b/c.d").expect("a path"),
            vec!["a.b", "c.d"]
        );
    }

    #[test]
    fn ordinary_paths_resolve() {
        assert_eq!(
            relative_path("a/./b//c.js").expect("a path"),
            vec!["a", "b", "c.js"]
        );
        assert_eq!(
            relative_path("my%20file.txt").expect("a path"),
            vec!["my file.txt"]
        );
        assert!(matches!(
            resolve(None, "index.html"),
            Ok(StaticFile::Embedded { .. })
        ));
        assert!(matches!(
            resolve(None, "nope.js"),
            Err(HttpError::NotFound(_))
        ));
    }

    #[test]
    fn files_on_disk_stay_inside_the_root() {
        let base = std::env::temp_dir().join(format!("stencila-assets-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).expect("dirs");
        std::fs::write(root.join("sub/a.txt"), "a").expect("file");
        std::fs::write(base.join("secret.txt"), "s").expect("file");
        let root = root.canonicalize().expect("canonical");
        assert_eq!(
            resolve(Some(&root), "sub/a.txt"),
            Ok(StaticFile::Disk(root.join("sub/a.txt")))
        );
        assert!(matches!(
            resolve(Some(&root), "sub"),
            Err(HttpError::NotFound(_))
        ));
        assert!(matches!(
            resolve(Some(&root), "../secret.txt"),
            Err(HttpError::Forbidden(_))
        ));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt"))
                .expect("symlink");
            assert!(matches!(
                resolve(Some(&root), "link.txt"),
                Err(HttpError::Forbidden(_))
            ));
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    proptest! {
        #[test]
        fn never_panics_and_never_climbs(raw in "\\PC{0,200}") {
            if let Ok(segments) = relative_path(&raw) {
                prop_assert!(segments.iter().all(|s| s != ".." && !s.contains('/') && !s.contains('\\')));
            }
        }
    }
}

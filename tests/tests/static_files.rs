//! `--static-dir`: files are served, and nothing outside the root can be reached.

use stencila_tests::{send_raw, HostProcess};

#[test]
fn static_dir_serves_files_and_refuses_traversal() {
    let base = std::env::temp_dir().join(format!("stencila-static-{}", std::process::id()));
    let root = base.join("www");
    std::fs::create_dir_all(root.join("css")).expect("dirs");
    std::fs::write(root.join("css/site.css"), "body {}").expect("a file");
    std::fs::write(root.join("index.html"), "<html>mine</html>").expect("a file");
    std::fs::write(base.join("secret.txt"), "top secret").expect("a file");
    let host = HostProcess::start(&["--static-dir", root.to_str().expect("utf-8")]);

    let css = host.request("GET", "/static/css/site.css").send();
    assert_eq!(css.status, 200);
    assert_eq!(css.text(), "body {}");
    assert!(css
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/css")));
    assert_eq!(host.request("GET", "/").send().text(), "<html>mine</html>");

    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/css/..%2f..%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/%252e%252e/secret.txt",
        "/static/css%5c..%5c..%5csecret.txt",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let response = send_raw(host.port, raw.as_bytes());
        assert!(
            response.status == 403 || response.status == 404 || response.status == 400,
            "{path}: {}",
            response.status
        );
        assert!(
            !response.text().contains("top secret"),
            "{path} leaked the file"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

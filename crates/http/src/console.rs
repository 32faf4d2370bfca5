//! The console page's security policy (PROTOCOL.md section 12). The page, its script
//! and its styles live in `assets/` and are embedded by `assets.rs`; this is the
//! policy they are served under.

/// The `Content-Security-Policy` of the embedded console: its own script and styles
/// only (no inline script or style, no `eval`), images from itself or `data:` URLs
/// (plots come back as `data:image/png`), requests to itself only, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::CSP;

    /// The page works under the policy only if nothing in it is inline.
    #[test]
    fn the_page_has_nothing_inline() {
        let page = include_str!("../assets/index.html");
        assert!(!page.contains("<style"), "inline style");
        assert!(!page.contains(" style="), "inline style attribute");
        let handler = page
            .split('<')
            .flat_map(|tag| {
                tag.split('>')
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .skip(1)
            })
            .find(|attribute| attribute.starts_with("on"));
        assert_eq!(handler, None, "inline event handler");
        for script in page.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap_or_default();
            assert!(tag.contains(" src="), "inline script: <script{tag}>");
        }
        assert!(!CSP.contains("unsafe"));
        let script = include_str!("../assets/console.js");
        assert!(!script.contains("eval(") && !script.contains("innerHTML"));
    }
}

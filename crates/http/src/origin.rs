//! Origins and hosts: which web pages may call the host (CORS), and which `Host` headers
//! a loopback-bound host answers (the DNS-rebinding check). Pure parsing, no actix.

use std::net::Ipv4Addr;

/// A parsed origin: `scheme://host[:port]`, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// Parses `scheme://host[:port]` followed by nothing, or by a path (as in a `Referer`).
    pub fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if scheme == "file" {
            return Some(Origin {
                scheme,
                host: String::new(),
                port: None,
            });
        }
        // Userinfo has no place in an origin; a Referer carrying one is refused outright
        // rather than guessed at (`http://localhost@evil.com`).
        if authority.contains('@') {
            return None;
        }
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return None;
        }
        Some(Origin { scheme, host, port })
    }

    /// The origin as sent back in `Access-Control-Allow-Origin`.
    pub fn serialize(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{}", self.scheme, self.host, port),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// Splits `host[:port]` (with `[v6]` hosts), lower-casing the host. `None` if malformed.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{}]", v6.to_ascii_lowercase()), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if host.contains(':') && !host.starts_with('[') {
        return None;
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
    {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) => {
            Some(digits.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// Whether a host name is this machine: `localhost`, `127.0.0.0/8` or `[::1]`.
fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Which origins may call the host from a browser.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    extra: Vec<Origin>,
}

impl OriginPolicy {
    /// The default policy plus `extra` origins (each `scheme://host[:port]`).
    /// Returns the first extra origin that cannot be parsed as the error.
    pub fn new(extra: &[String]) -> Result<OriginPolicy, String> {
        let extra = extra
            .iter()
            .map(|text| Origin::parse(text).ok_or_else(|| text.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OriginPolicy { extra })
    }

    /// Whether `origin` is allowed: loopback pages (`localhost`, `127.0.0.0/8`, `[::1]`), stenci.la and its subdomains over
    /// https, `file://`, and the extra origins. Matching is on the parsed host.
    pub fn allows(&self, origin: &Origin) -> bool {
        let web = origin.scheme == "http" || origin.scheme == "https";
        (web && is_loopback_name(&origin.host))
            || (origin.scheme == "https"
                && (origin.host == "stenci.la" || origin.host.ends_with(".stenci.la")))
            || origin.scheme == "file"
            || self.extra.iter().any(|allowed| allowed == origin)
    }
}

/// The request's origin: its `Origin` header, else the origin of its `Referer`.
/// `Some(None)` means a header was there but is not a usable origin (e.g. `null`).
pub fn request_origin(origin: Option<&str>, referer: Option<&str>) -> Option<Option<Origin>> {
    origin.or(referer).map(Origin::parse)
}

/// The DNS-rebinding check for a loopback-bound host: whether a `Host` header names
/// this machine. A request without a `Host` header (HTTP/1.0) has nothing to rebind.
pub fn host_header_is_local(host: Option<&str>) -> bool {
    match host {
        None => true,
        Some(host) => split_host_port(host).is_some_and(|(name, _)| is_loopback_name(&name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn allowed(text: &str) -> bool {
        let policy =
            OriginPolicy::new(&["https://example.org:8443".to_string()]).expect("a valid policy");
        Origin::parse(text).is_some_and(|origin| policy.allows(&origin))
    }

    #[test]
    fn default_origins() {
        for yes in [
            "http://127.0.0.1",
            "http://127.0.0.1:2000",
            "https://localhost:8080",
            "http://LOCALHOST",
            "http://[::1]:2000",
            "http://127.0.0.2:80",
            "https://stenci.la",
            "https://hub.stenci.la",
            "https://a.b.stenci.la",
            "file://",
            "https://example.org:8443",
        ] {
            assert!(allowed(yes), "{yes} should be allowed");
        }
        for no in [
            "http://localhost.evil.com",
            "http://evil.com",
            "http://stenci.la",
            "https://evilstenci.la",
            "https://stenci.la.evil.com",
            "http://127.0.0.1.evil.com",
            "https://example.org",
            "null",
            "http://localhost@evil.com",
            "http://evil.com?x=localhost",
            "",
        ] {
            assert!(!allowed(no), "{no} should not be allowed");
        }
    }

    #[test]
    fn referer_gives_its_origin() {
        let origin = request_origin(None, Some("http://localhost:3000/some/page?x=1"))
            .expect("a header")
            .expect("an origin");
        assert_eq!(origin.serialize(), "http://localhost:3000");
        let origin = request_origin(Some("https://stenci.la"), Some("http://evil.com/"))
            .expect("a header")
            .expect("an origin");
        assert_eq!(origin.host, "stenci.la", "Origin wins over Referer");
        assert_eq!(request_origin(Some("null"), None), Some(None));
        assert_eq!(request_origin(None, None), None);
    }

    #[test]
    fn host_header_check() {
        for yes in [
            "127.0.0.1",
            "127.0.0.1:2000",
            "127.1.2.3:80",
            "localhost:2000",
            "LOCALHOST",
            "[::1]:2000",
        ] {
            assert!(host_header_is_local(Some(yes)), "{yes}");
        }
        for no in [
            "evil.com",
            "localhost.evil.com:2000",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "localhost:99999",
            "localhost:x",
            "",
        ] {
            assert!(!host_header_is_local(Some(no)), "{no}");
        }
        assert!(host_header_is_local(None));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            let _ = Origin::parse(&text);
            let _ = host_header_is_local(Some(&text));
            let _ = request_origin(Some(&text), Some(&text));
        }

        #[test]
        fn a_suffix_after_an_allowed_host_is_never_allowed(suffix in "[a-z]{1,10}\\.[a-z]{2,5}") {
            let under_localhost = format!("http://localhost.{suffix}");
            let under_stencila = format!("https://stenci.la.{suffix}");
            prop_assert!(!allowed(&under_localhost));
            prop_assert!(!allowed(&under_stencila));
        }

        #[test]
        fn origins_round_trip(host in "[a-z]{1,10}(\\.[a-z]{1,5}){0,2}", port in proptest::option::of(1u16..)) {
            let text = match port { Some(p) => format!("https://{host}:{p}"), None => format!("https://{host}") };
            prop_assert_eq!(Origin::parse(&text).map(|o| o.serialize()), Some(text));
        }
    }
}

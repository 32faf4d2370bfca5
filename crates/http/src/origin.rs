//! Origins and hosts: which web pages may call the host (CORS), and which `Host` headers
//! a loopback-bound host answers (the DNS-rebinding check). Pure parsing, no actix.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed origin: `scheme://host[:port]`, lower-cased, with a scheme's default port
/// (`http` 80, `https` 443) dropped, as browsers send it.
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
        // `--allow-origin https://x:443` must match the `https://x` a browser sends.
        let port = port.filter(|&port| Some(port) != default_port(&scheme));
        Some(Origin { scheme, host, port })
    }

    /// The port the origin's pages are served on: the explicit one, else the scheme's default.
    fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(&self.scheme))
    }

    /// The origin as sent back in `Access-Control-Allow-Origin`.
    pub fn serialize(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{}", self.scheme, self.host, port),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// The port a web scheme implies when a URL names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
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

/// Whether a (lower-cased) host is an IP address literal: `192.0.2.7` or `[2001:db8::1]`.
fn is_ip_literal(host: &str) -> bool {
    host.parse::<Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok())
}

/// Whether `origin` is the host's own page, as the `Host` header says the browser
/// reached it: the same IP literal and the same port (so the console works at
/// `http://192.0.2.7:2000`). A DNS name never counts, however it matches `Host`: equal
/// names are exactly what a DNS-rebinding page sends.
pub fn is_own_origin(origin: &Origin, host: Option<&str>) -> bool {
    let Some((name, port)) = host.and_then(split_host_port) else {
        return false;
    };
    // The host speaks plain HTTP, so a `Host` without a port was reached on 80.
    default_port(&origin.scheme).is_some()
        && is_ip_literal(&origin.host)
        && origin.host == name
        && origin.effective_port() == Some(port.unwrap_or(80))
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

    #[test]
    fn default_ports_are_normalised_on_both_sides() {
        let policy = OriginPolicy::new(&[
            "https://example.org:443".to_string(),
            "http://example.net:80".to_string(),
            "https://example.com".to_string(),
        ])
        .expect("a valid policy");
        for (text, allowed) in [
            ("https://example.org", true),
            ("https://example.org:443", true),
            ("http://example.org", false),
            ("https://example.org:8443", false),
            ("http://example.net", true),
            ("http://example.net:80", true),
            ("https://example.net", false),
            ("https://example.com:443", true),
            ("https://example.com:80", false),
        ] {
            let origin = Origin::parse(text).expect("an origin");
            assert_eq!(policy.allows(&origin), allowed, "{text}");
        }
        assert_eq!(
            Origin::parse("https://example.org:443")
                .expect("an origin")
                .serialize(),
            "https://example.org",
            "sent back as browsers send it"
        );
        assert_eq!(
            Origin::parse("http://example.org:443")
                .expect("an origin")
                .serialize(),
            "http://example.org:443"
        );
    }

    #[test]
    fn an_ip_literal_origin_equal_to_host_is_own_origin_but_never_a_dns_name() {
        let own = |origin: &str, host: &str| {
            is_own_origin(&Origin::parse(origin).expect("an origin"), Some(host))
        };
        assert!(own("http://192.0.2.7:2000", "192.0.2.7:2000"));
        assert!(own("http://10.0.0.5", "10.0.0.5"));
        assert!(own("http://10.0.0.5:80", "10.0.0.5"));
        assert!(own("http://[2001:db8::1]:2000", "[2001:DB8::1]:2000"));
        assert!(own("http://0.0.0.0:2000", "0.0.0.0:2000"));
        // Another port is another origin.
        assert!(!own("http://192.0.2.7:2001", "192.0.2.7:2000"));
        assert!(!own("http://192.0.2.7", "192.0.2.7:2000"));
        assert!(!own("https://192.0.2.7", "192.0.2.7"));
        // Another address, or a name: never, however equal (DNS rebinding).
        assert!(!own("http://192.0.2.8:2000", "192.0.2.7:2000"));
        assert!(!own("http://evil.example:2000", "evil.example:2000"));
        assert!(!own("http://myhost:2000", "myhost:2000"));
        assert!(!own("file://", "192.0.2.7"));
        assert!(!is_own_origin(
            &Origin::parse("http://192.0.2.7:2000").expect("an origin"),
            None
        ));
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
            let expected = if port == Some(443) { format!("https://{host}") } else { text.clone() };
            prop_assert_eq!(Origin::parse(&text).map(|o| o.serialize()), Some(expected));
        }
    }
}

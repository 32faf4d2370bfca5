//! Finding a ticket or session token in the raw text of a request: pure, total functions that never panic.
//!
//! They only locate the credential; whether it is valid is for [`crate::Auth`] to say.
//! Nothing here decodes percent-escapes: our secrets are alphanumeric, so an encoded
//! one is not ours and fails [`crate::looks_like_secret`] later.

/// The value of the first cookie named `token` in a `Cookie` header
/// (`a=b; token=<v>; c=d`), trimmed of spaces and of one pair of surrounding double
/// quotes (which RFC 6265 allows around a cookie value).
///
/// Only the first `token` cookie counts, so a later one cannot override it; `None` when
/// there is none or its value is empty.
pub fn token_from_cookie_header(header: &str) -> Option<&str> {
    tokens_from_cookie_header(header).next()
}

/// Every `token` cookie of a `Cookie` header, in order. Cookies ignore ports, so a
/// browser may send another local host's stale token beside this host's valid one.
pub fn tokens_from_cookie_header(header: &str) -> impl Iterator<Item = &str> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if name.trim() != "token" {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty()).then_some(value)
    })
}

/// The token of an `Authorization: Bearer <token>` header: the scheme is matched
/// case-insensitively and spaces around either part are tolerated.
///
/// `None` for any other scheme, a missing token, or a "token" with inner whitespace
/// (which cannot be a bearer token).
pub fn token_from_authorization_header(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty() && !token.contains(char::is_whitespace)).then_some(token)
}

/// The value of the first `ticket` parameter of a raw query string
/// (`a=1&ticket=abc&b`); the key must be exactly `ticket`.
///
/// `None` when there is no such parameter or its value is empty.
pub fn ticket_from_query(query: &str) -> Option<&str> {
    let value = query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "ticket").then_some(value)
    })?;
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cookie_header() {
        assert_eq!(token_from_cookie_header("token=abc"), Some("abc"));
        assert_eq!(token_from_cookie_header("a=b; token=abc; c=d"), Some("abc"));
        assert_eq!(token_from_cookie_header("a=b;token=abc;c=d"), Some("abc"));
        assert_eq!(
            token_from_cookie_header("  token =  abc  ; c=d"),
            Some("abc")
        );
        assert_eq!(token_from_cookie_header("token=\"abc\""), Some("abc"));
        assert_eq!(
            token_from_cookie_header("token=first; token=second"),
            Some("first")
        );
        assert_eq!(token_from_cookie_header("a=b; c=d"), None);
        assert_eq!(token_from_cookie_header("mytoken=abc; tokens=def"), None);
        assert_eq!(token_from_cookie_header("Token=abc"), None);
        assert_eq!(token_from_cookie_header("token"), None);
        assert_eq!(token_from_cookie_header("token="), None);
        assert_eq!(token_from_cookie_header("token=\"\""), None);
        assert_eq!(token_from_cookie_header("token=\""), Some("\""));
        assert_eq!(token_from_cookie_header(""), None);
        assert_eq!(token_from_cookie_header(";;;=;"), None);
        // The value is everything after the first `=`; validation happens later.
        assert_eq!(token_from_cookie_header("token=a=b"), Some("a=b"));
    }

    #[test]
    fn authorization_header() {
        assert_eq!(token_from_authorization_header("Bearer abc"), Some("abc"));
        assert_eq!(token_from_authorization_header("bearer abc"), Some("abc"));
        assert_eq!(token_from_authorization_header("BEARER abc"), Some("abc"));
        assert_eq!(
            token_from_authorization_header("  Bearer    abc  "),
            Some("abc")
        );
        assert_eq!(token_from_authorization_header("Bearer\tabc"), Some("abc"));
        assert_eq!(token_from_authorization_header("Basic YWJjOmRlZg=="), None);
        assert_eq!(token_from_authorization_header("Bearer"), None);
        assert_eq!(token_from_authorization_header("Bearer "), None);
        assert_eq!(token_from_authorization_header("Bearer a b"), None);
        assert_eq!(token_from_authorization_header("Bearerabc"), None);
        assert_eq!(token_from_authorization_header("abc"), None);
        assert_eq!(token_from_authorization_header(""), None);
    }

    #[test]
    fn query() {
        assert_eq!(ticket_from_query("ticket=abc"), Some("abc"));
        assert_eq!(ticket_from_query("a=1&ticket=abc&b"), Some("abc"));
        assert_eq!(
            ticket_from_query("ticket=first&ticket=second"),
            Some("first")
        );
        assert_eq!(ticket_from_query("a=1&b=2"), None);
        assert_eq!(ticket_from_query("tickets=abc&xticket=def"), None);
        assert_eq!(ticket_from_query("Ticket=abc"), None);
        assert_eq!(ticket_from_query("ticket"), None);
        assert_eq!(ticket_from_query("ticket="), None);
        assert_eq!(ticket_from_query("&&ticket=abc&&"), Some("abc"));
        assert_eq!(ticket_from_query(""), None);
        assert_eq!(ticket_from_query("ticket=a%20b"), Some("a%20b"));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in any::<String>()) {
            let _ = token_from_cookie_header(&s);
            let _ = token_from_authorization_header(&s);
            let _ = ticket_from_query(&s);
        }

        #[test]
        fn parsers_never_panic_on_separator_soup(s in "[ ;=&\"\t a-zA-Z]{0,40}") {
            let _ = token_from_cookie_header(&s);
            let _ = token_from_authorization_header(&s);
            let _ = ticket_from_query(&s);
        }

        #[test]
        fn cookie_token_is_found_among_others(
            before in proptest::collection::vec(("[a-su-z][a-z]{0,8}", "[a-zA-Z0-9]{0,10}"), 0..4),
            after in proptest::collection::vec(("[a-z]{1,8}", "[a-zA-Z0-9]{0,10}"), 0..4),
            token in "[a-zA-Z0-9]{1,64}",
        ) {
            let mut cookies: Vec<String> = before.iter().map(|(n, v)| format!("{n}={v}")).collect();
            cookies.push(format!("token={token}"));
            cookies.extend(after.iter().map(|(n, v)| format!("{n}={v}")));
            let header = cookies.join("; ");
            prop_assert_eq!(token_from_cookie_header(&header), Some(token.as_str()));
        }

        #[test]
        fn query_ticket_is_found_among_others(
            before in proptest::collection::vec("[a-su-z][a-z]{0,8}(=[a-z0-9]{0,5})?", 0..4),
            after in proptest::collection::vec("[a-z]{1,8}(=[a-z0-9]{0,5})?", 0..4),
            ticket in "[a-zA-Z0-9]{1,12}",
        ) {
            let mut pairs = before.clone();
            pairs.push(format!("ticket={ticket}"));
            pairs.extend(after);
            let query = pairs.join("&");
            prop_assert_eq!(ticket_from_query(&query), Some(ticket.as_str()));
        }

        #[test]
        fn bearer_token_is_found(scheme in "[bB][eE][aA][rR][eE][rR]", pad in " {1,3}", token in "[a-zA-Z0-9]{1,64}") {
            let header = format!("{scheme}{pad}{token}{pad}");
            prop_assert_eq!(token_from_authorization_header(&header), Some(token.as_str()));
        }
    }
}

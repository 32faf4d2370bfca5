//! The `SameSite` attribute of the session cookie (`--cookie-samesite`, PROTOCOL.md
//! section 13): `Strict` by default; `None` (with `Secure`, which browsers require
//! for it) lets a client page on another site, e.g. `http://localhost:4000` calling
//! `http://127.0.0.1:2000`, get the cookie back from a browser.

use std::fmt;
use std::str::FromStr;

/// Which cross-site requests a browser sends the session cookie with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieSameSite {
    /// Only requests from the host's own site (the default).
    #[default]
    Strict,
    /// Also top-level navigations from other sites.
    Lax,
    /// Every request, from any site (the cookie is then also `Secure`).
    None,
}

impl CookieSameSite {
    /// The cookie attributes this setting adds, e.g. `SameSite=None; Secure`.
    pub fn attributes(self) -> &'static str {
        match self {
            CookieSameSite::Strict => "SameSite=Strict",
            CookieSameSite::Lax => "SameSite=Lax",
            CookieSameSite::None => "SameSite=None; Secure",
        }
    }
}

/// The value is not `strict`, `lax` or `none`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a SameSite setting; use strict, lax or none")]
pub struct UnknownSameSite(pub String);

impl FromStr for CookieSameSite {
    type Err = UnknownSameSite;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "strict" => Ok(CookieSameSite::Strict),
            "lax" => Ok(CookieSameSite::Lax),
            "none" => Ok(CookieSameSite::None),
            _ => Err(UnknownSameSite(text.to_string())),
        }
    }
}

impl fmt::Display for CookieSameSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CookieSameSite::Strict => "strict",
            CookieSameSite::Lax => "lax",
            CookieSameSite::None => "none",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        for (text, setting, attributes) in [
            ("strict", CookieSameSite::Strict, "SameSite=Strict"),
            ("Lax", CookieSameSite::Lax, "SameSite=Lax"),
            ("none", CookieSameSite::None, "SameSite=None; Secure"),
        ] {
            let parsed: CookieSameSite = text.parse().expect("a setting");
            assert_eq!(parsed, setting);
            assert_eq!(parsed.attributes(), attributes);
            assert_eq!(parsed.to_string(), text.to_ascii_lowercase());
        }
        assert_eq!(CookieSameSite::default(), CookieSameSite::Strict);
        assert!("sometimes".parse::<CookieSameSite>().is_err());
    }
}

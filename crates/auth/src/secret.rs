//! Secrets of a host: tickets, session tokens and keys — how they are drawn, compared and kept out of logs.

use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;

/// Characters in a ticket: short enough to copy from a terminal, and only ever
/// redeemed against a host that holds a handful of them.
pub const TICKET_LEN: usize = 12;

/// Characters in a session token: 64 alphanumerics is about 381 bits, far beyond guessing.
pub const TOKEN_LEN: usize = 64;

/// Characters in a host key made by [`crate::Auth::generate_key`].
pub const KEY_LEN: usize = 64;

/// Longest string [`looks_like_secret`] accepts; anything longer is garbage, not a secret of ours.
pub const MAX_SECRET_LEN: usize = 128;

/// A ticket: the one secret a person copies (in the startup URL) and redeems for a session token.
///
/// `Debug` and `Display` print `Ticket(****)` so a ticket can never reach a log by
/// accident; only [`Ticket::as_str`] reveals it.
#[derive(Clone)]
pub struct Ticket(String);

impl Ticket {
    /// Draws a new ticket from the operating system's CSPRNG.
    pub(crate) fn generate() -> Self {
        Self(random_alphanumeric(TICKET_LEN))
    }

    /// The secret itself, for the one place that must show it (the startup URL).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket(****)")
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket(****)")
    }
}

/// A session token, given for a redeemed ticket and presented (as a cookie or bearer
/// token) on later requests.
///
/// `Debug` and `Display` print `SessionToken(****)`; only [`SessionToken::as_str`]
/// reveals the secret (to put it in a `Set-Cookie` header).
#[derive(Clone)]
pub struct SessionToken(String);

impl SessionToken {
    /// Draws a new session token from the operating system's CSPRNG.
    pub(crate) fn generate() -> Self {
        Self(random_alphanumeric(TOKEN_LEN))
    }

    /// The secret itself, for the `Set-Cookie` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(****)")
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(****)")
    }
}

/// The 62 characters secrets are drawn from.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters of `[A-Za-z0-9]` from `OsRng`, so every secret comes straight from
/// the OS and never from a user-space generator that could be mis-seeded.
///
/// Random bytes are fetched a buffer at a time (sampling one character per call would
/// cost a system call per character), and bytes of 248 or more are rejected so that
/// `byte % 62` is uniform: 248 is the largest multiple of 62 that fits in a byte.
pub(crate) fn random_alphanumeric(len: usize) -> String {
    const LIMIT: u8 = 62 * 4;
    let mut secret = String::with_capacity(len);
    let mut buffer = [0u8; 128];
    while secret.len() < len {
        OsRng.fill_bytes(&mut buffer);
        for &byte in buffer.iter().filter(|&&b| b < LIMIT) {
            if secret.len() == len {
                break;
            }
            secret.push(char::from(ALPHABET[usize::from(byte % 62)]));
        }
    }
    secret
}

/// Equality whose time depends only on the lengths, never on where the bytes differ,
/// so a caller cannot learn a secret byte by byte from response times.
///
/// A length mismatch returns early: our secrets have public, fixed lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= x ^ y;
    }
    // `black_box` stops the optimiser from turning the fold into an early exit.
    std::hint::black_box(difference) == 0
}

/// Whether `s` could be one of our secrets: only `[A-Za-z0-9]`, 1 to
/// [`MAX_SECRET_LEN`] characters.
///
/// A cheap pre-check so that garbage never reaches a store (and never costs a hash).
pub fn looks_like_secret(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SECRET_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn is_alphanumeric(s: &str) -> bool {
        s.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    #[test]
    fn tickets_are_12_alphanumerics() {
        for _ in 0..100 {
            let ticket = Ticket::generate();
            assert_eq!(ticket.as_str().len(), TICKET_LEN);
            assert!(is_alphanumeric(ticket.as_str()));
        }
    }

    #[test]
    fn session_tokens_are_64_alphanumerics() {
        for _ in 0..100 {
            let token = SessionToken::generate();
            assert_eq!(token.as_str().len(), TOKEN_LEN);
            assert!(is_alphanumeric(token.as_str()));
        }
    }

    #[test]
    fn draws_are_unique() {
        let tickets: HashSet<String> = (0..10_000)
            .map(|_| Ticket::generate().as_str().to_owned())
            .collect();
        assert_eq!(tickets.len(), 10_000);
        let tokens: HashSet<String> = (0..10_000)
            .map(|_| SessionToken::generate().as_str().to_owned())
            .collect();
        assert_eq!(tokens.len(), 10_000);
    }

    #[test]
    fn draws_use_the_whole_alphabet() {
        // A generator stuck on a subset (say, only digits) would still pass the
        // length and alphabet checks above.
        let seen: HashSet<u8> = (0..200)
            .flat_map(|_| {
                SessionToken::generate()
                    .as_str()
                    .bytes()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn random_alphanumeric_is_roughly_uniform() {
        // 62 * 1000 draws: each character expected 1000 times; a modulo bias or an
        // off-by-one in the alphabet would push some far outside this range.
        let drawn = random_alphanumeric(62 * 1000);
        let mut counts = [0usize; 256];
        for b in drawn.bytes() {
            counts[usize::from(b)] += 1;
        }
        for &c in ALPHABET {
            let n = counts[usize::from(c)];
            assert!(
                (800..1200).contains(&n),
                "{} drawn {n} times",
                char::from(c)
            );
        }
        assert_eq!(random_alphanumeric(0), "");
        assert_eq!(random_alphanumeric(1000).len(), 1000);
    }

    #[test]
    fn debug_and_display_redact() {
        let ticket = Ticket::generate();
        let token = SessionToken::generate();
        for shown in [
            format!("{ticket:?}"),
            format!("{ticket}"),
            format!("{ticket:#?}"),
            format!("{:?}", Some(&ticket)),
        ] {
            assert!(!shown.contains(ticket.as_str()), "{shown}");
            assert!(shown.contains("Ticket(****)"));
        }
        for shown in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{token:#?}"),
        ] {
            assert!(!shown.contains(token.as_str()), "{shown}");
            assert!(shown.contains("SessionToken(****)"));
        }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"xbc"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(!constant_time_eq(&[0x80], &[0x00]));
        assert!(constant_time_eq(&[0xff; 64], &[0xff; 64]));
    }

    #[test]
    fn looks_like_secret_accepts_only_short_alphanumerics() {
        assert!(looks_like_secret("a"));
        assert!(looks_like_secret("AZaz09"));
        assert!(looks_like_secret(&"x".repeat(MAX_SECRET_LEN)));
        assert!(!looks_like_secret(&"x".repeat(MAX_SECRET_LEN + 1)));
        assert!(!looks_like_secret(""));
        assert!(!looks_like_secret("abc def"));
        assert!(!looks_like_secret("abc-def"));
        assert!(!looks_like_secret("abc%20"));
        assert!(!looks_like_secret("é"));
        assert!(!looks_like_secret("abc\0"));
        assert!(looks_like_secret(Ticket::generate().as_str()));
        assert!(looks_like_secret(SessionToken::generate().as_str()));
    }

    proptest::proptest! {
        #[test]
        fn constant_time_eq_agrees_with_eq(a: Vec<u8>, b: Vec<u8>) {
            proptest::prop_assert_eq!(constant_time_eq(&a, &b), a == b);
            proptest::prop_assert!(constant_time_eq(&a, &a));
        }

        #[test]
        fn looks_like_secret_never_panics(s: String) {
            let _ = looks_like_secret(&s);
        }
    }
}

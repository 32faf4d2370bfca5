//! Authorization for a Stencila host: tickets, session tokens and host keys — minting, bounded storage and constant-time checks; nothing of HTTP.
//!
//! A person copies a [`Ticket`] (from the startup URL) and redeems it once per
//! browser for a [`SessionToken`], which later requests present as a cookie or
//! bearer token. A host key ([`Auth::add_key`]) is a token that never expires, given
//! to a parent process that spawned the host. The HTTP layer finds credentials with
//! the parsers in this crate and asks [`Auth`] whether they are valid; it alone
//! decides which routes need them and which status a failure becomes.
//!
//! Architecture invariant: no secret is ever logged or put in an error, not even a
//! rejected one.

mod jwt;
mod parse;
mod secret;
mod store;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use parse::{
    ticket_from_query, token_from_authorization_header, token_from_cookie_header,
    tokens_from_cookie_header,
};
pub use secret::{
    constant_time_eq, looks_like_secret, SessionToken, Ticket, KEY_LEN, MAX_SECRET_LEN, TICKET_LEN,
    TOKEN_LEN,
};

use secret::random_alphanumeric;
use store::{Lookup, TokenStore};

/// Why a credential was refused; the texts never contain the secret.
#[derive(thiserror::Error, Debug, PartialEq, Eq, Clone)]
pub enum AuthError {
    /// Ask the host owner for a new ticket.
    #[error("the ticket is not valid (it may have been used already)")]
    InvalidTicket,
    /// Redeem a ticket again for a new session token.
    #[error("the session token is not valid or has expired")]
    InvalidToken,
    /// Sign a new token (JWT) with the host key; the reason never holds a secret.
    #[error("the signed token is not valid: {0}")]
    InvalidSignedToken(&'static str),
}

/// How a host authorizes requests; validated by the CLI and passed down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `false` (`--no-auth`) means every request is authorized; the HTTP layer then
    /// skips the checks.
    pub enabled: bool,
    /// Whether each ticket is valid for exactly one redemption; by default a ticket
    /// is valid for the host's life.
    pub single_use_tickets: bool,
    /// The most live session tokens kept (at least one is always kept); beyond it the
    /// least recently used is evicted, so redeeming a ticket on every request can
    /// neither grow memory without bound nor log out a session that is in use.
    pub max_tokens: usize,
    /// How long a session token may go unused before it is refused; `None` for never.
    pub token_ttl: Option<Duration>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            single_use_tickets: false,
            max_tokens: 10_000,
            token_ttl: Some(Duration::from_secs(24 * 60 * 60)),
        }
    }
}

/// The tickets, session tokens and keys of one host.
///
/// Shared behind an `Arc` by every HTTP worker; each lock is held only for a map
/// probe or a short scan, never while drawing randomness or logging.
pub struct Auth {
    config: AuthConfig,
    /// Outstanding tickets. Few (only the host owner mints them), so each redemption
    /// compares against all of them in constant time.
    tickets: Mutex<Vec<Box<str>>>,
    /// Live session tokens, keyed by `hasher.hash_one(token)`.
    tokens: Mutex<TokenStore>,
    /// Host keys: permanent tokens, kept apart from `tokens` so they can never be
    /// evicted or expire. Few (usually one), so scanned in constant time like tickets.
    keys: Mutex<Vec<Box<str>>>,
    /// SipHash with random keys drawn once per process: the map key of a token is
    /// unpredictable without them, so the timing of a map probe reveals nothing useful
    /// about the token's bytes.
    hasher: RandomState,
    /// The `(hid, seq)` pairs of recently accepted signed tokens (see `jwt`).
    replay: Mutex<jwt::ReplayGuard>,
}

impl Auth {
    /// An `Auth` with no tickets, tokens or keys yet.
    pub fn new(config: AuthConfig) -> Self {
        let tokens = TokenStore::new(config.max_tokens, config.token_ttl);
        Self {
            config,
            tickets: Mutex::new(Vec::new()),
            tokens: Mutex::new(tokens),
            keys: Mutex::new(Vec::new()),
            hasher: RandomState::new(),
            replay: Mutex::new(jwt::ReplayGuard::new(jwt::MAX_REMEMBERED)),
        }
    }

    /// Whether requests need credentials at all (`false` with `--no-auth`).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Mints a new ticket and remembers it; the startup URL's ticket is made this way.
    pub fn create_ticket(&self) -> Ticket {
        let ticket = Ticket::generate();
        lock(&self.tickets).push(ticket.as_str().into());
        log::debug!("ticket created");
        ticket
    }

    /// Exchanges a valid ticket for a new session token (consuming the ticket if
    /// tickets are single-use).
    pub fn redeem_ticket(&self, ticket: &str) -> Result<SessionToken, AuthError> {
        self.redeem_ticket_at(ticket, Instant::now())
    }

    fn redeem_ticket_at(&self, ticket: &str, now: Instant) -> Result<SessionToken, AuthError> {
        if !looks_like_secret(ticket) {
            return Err(AuthError::InvalidTicket);
        }
        {
            let mut tickets = lock(&self.tickets);
            let Some(index) = find_constant_time(&tickets, ticket) else {
                drop(tickets);
                log::debug!("ticket refused");
                return Err(AuthError::InvalidTicket);
            };
            if self.config.single_use_tickets {
                tickets.swap_remove(index);
            }
        }
        let (token, evicted) = loop {
            // Drawn and hashed outside the lock; a taken hash (a 2^-64 chance) means
            // drawing again rather than sharing a map slot.
            let token = SessionToken::generate();
            let hash = self.hasher.hash_one(token.as_str());
            if let Some(evicted) = lock(&self.tokens).insert(hash, token.as_str(), now) {
                break (token, evicted);
            }
        };
        if evicted > 0 {
            log::debug!(
                "{evicted} least recently used session token(s) evicted to stay within the limit"
            );
        }
        log::debug!("ticket redeemed; session token issued");
        Ok(token)
    }

    /// Whether `token` is a live session token or a host key; a session token's idle
    /// timer restarts on success.
    pub fn check_token(&self, token: &str) -> Result<(), AuthError> {
        self.check_token_at(token, Instant::now())
    }

    fn check_token_at(&self, token: &str, now: Instant) -> Result<(), AuthError> {
        if !looks_like_secret(token) {
            return Err(AuthError::InvalidToken);
        }
        let hash = self.hasher.hash_one(token);
        let lookup = lock(&self.tokens).check(hash, token, now);
        match lookup {
            Lookup::Valid => Ok(()),
            Lookup::Expired => {
                log::debug!("session token refused: idle too long");
                Err(AuthError::InvalidToken)
            }
            Lookup::Unknown => {
                if find_constant_time(&lock(&self.keys), token).is_some() {
                    Ok(())
                } else {
                    Err(AuthError::InvalidToken)
                }
            }
        }
    }

    /// Whether an `Authorization: Bearer` token is valid: a session token, a host
    /// key, or a JWT signed with a host key (PROTOCOL.md section 13, see `jwt`).
    pub fn check_bearer(&self, token: &str) -> Result<(), AuthError> {
        if jwt::looks_like_jwt(token) {
            let keys = lock(&self.keys).clone();
            return jwt::check(token, &keys, &self.replay, jwt::now());
        }
        self.check_token(token)
    }

    /// Adds a host key: a token that is never evicted and never expires, given to
    /// the parent process that spawned this host.
    ///
    /// A key that could not be one of our secrets (see [`looks_like_secret`]) is
    /// ignored with a warning, since `check_token` would refuse it anyway; adding the
    /// same key twice keeps one copy.
    pub fn add_key(&self, key: &str) {
        if !looks_like_secret(key) {
            log::warn!(
                "host key ignored: it must be 1 to {MAX_SECRET_LEN} characters of [A-Za-z0-9]"
            );
            return;
        }
        let mut keys = lock(&self.keys);
        if find_constant_time(&keys, key).is_none() {
            keys.push(key.into());
        }
        drop(keys);
        log::debug!("host key added");
    }

    /// A new 64-character `[A-Za-z0-9]` secret from the OS CSPRNG, for a host key.
    pub fn generate_key() -> String {
        random_alphanumeric(KEY_LEN)
    }
}

/// Counts only: the secrets stay out of any `{:?}`.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("config", &self.config)
            .field("tickets", &lock(&self.tickets).len())
            .field("tokens", &lock(&self.tokens).len())
            .field("keys", &lock(&self.keys).len())
            .finish()
    }
}

/// The index of the secret in `secrets` equal to `presented`, comparing against every
/// one (without stopping at a match) so the time taken says nothing about which.
fn find_constant_time(secrets: &[Box<str>], presented: &str) -> Option<usize> {
    let mut found = None;
    for (index, secret) in secrets.iter().enumerate() {
        if constant_time_eq(secret.as_bytes(), presented.as_bytes()) {
            found = Some(index);
        }
    }
    found
}

/// Locks `mutex`, carrying on after a panic elsewhere: every update here leaves the
/// data consistent, and refusing all requests forever would be worse.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    fn auth(config: AuthConfig) -> Auth {
        Auth::new(config)
    }

    #[test]
    fn default_config() {
        let config = AuthConfig::default();
        assert!(config.enabled);
        assert!(!config.single_use_tickets);
        assert_eq!(config.max_tokens, 10_000);
        assert_eq!(config.token_ttl, Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn auth_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Auth>();
        assert_send_sync::<Arc<Auth>>();
    }

    #[test]
    fn enabled_follows_config() {
        assert!(auth(AuthConfig::default()).enabled());
        let disabled = auth(AuthConfig {
            enabled: false,
            ..AuthConfig::default()
        });
        assert!(!disabled.enabled());
        // The checks still work; the HTTP layer chooses to skip them.
        let ticket = disabled.create_ticket();
        let token = disabled.redeem_ticket(ticket.as_str()).expect("redeem");
        assert_eq!(disabled.check_token(token.as_str()), Ok(()));
        assert_eq!(disabled.check_token("nope"), Err(AuthError::InvalidToken));
    }

    #[test]
    fn keys_are_64_alphanumerics_and_unique() {
        let keys: HashSet<String> = (0..1000).map(|_| Auth::generate_key()).collect();
        assert_eq!(keys.len(), 1000);
        for key in &keys {
            assert_eq!(key.len(), KEY_LEN);
            assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn tickets_are_multi_use_by_default() {
        let auth = auth(AuthConfig::default());
        let ticket = auth.create_ticket();
        let first = auth.redeem_ticket(ticket.as_str()).expect("first");
        let second = auth.redeem_ticket(ticket.as_str()).expect("second");
        assert_ne!(first.as_str(), second.as_str());
        assert_eq!(auth.check_token(first.as_str()), Ok(()));
        assert_eq!(auth.check_token(second.as_str()), Ok(()));
    }

    #[test]
    fn single_use_tickets_redeem_once() {
        let auth = auth(AuthConfig {
            single_use_tickets: true,
            ..AuthConfig::default()
        });
        let ticket = auth.create_ticket();
        let other = auth.create_ticket();
        let token = auth.redeem_ticket(ticket.as_str()).expect("first");
        assert_eq!(
            auth.redeem_ticket(ticket.as_str()).map(|_| ()),
            Err(AuthError::InvalidTicket)
        );
        // Consuming one ticket leaves the others, and the token it bought, valid.
        assert!(auth.redeem_ticket(other.as_str()).is_ok());
        assert_eq!(auth.check_token(token.as_str()), Ok(()));
    }

    #[test]
    fn unknown_and_malformed_tickets_are_refused() {
        let auth = auth(AuthConfig::default());
        let ticket = auth.create_ticket();
        let mut altered = ticket.as_str().to_owned();
        altered.pop();
        for bad in [
            "",
            "abcdefghijkl",
            altered.as_str(),
            &format!("{}x", ticket.as_str()),
            &format!(" {}", ticket.as_str()),
            "ticket with spaces",
        ] {
            assert_eq!(
                auth.redeem_ticket(bad).map(|_| ()),
                Err(AuthError::InvalidTicket),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_and_malformed_tokens_are_refused() {
        let auth = auth(AuthConfig::default());
        let ticket = auth.create_ticket();
        let token = auth.redeem_ticket(ticket.as_str()).expect("redeem");
        let mut altered = token.as_str().to_owned();
        altered.replace_range(0..1, if altered.starts_with('a') { "b" } else { "a" });
        for bad in [
            "",
            ticket.as_str(),
            altered.as_str(),
            &token.as_str()[..63],
            &format!("{}0", token.as_str()),
            &"a".repeat(1000),
        ] {
            assert_eq!(
                auth.check_token(bad),
                Err(AuthError::InvalidToken),
                "{bad:?}"
            );
        }
        assert_eq!(auth.check_token(token.as_str()), Ok(()));
    }

    #[test]
    fn tokens_from_another_host_are_refused() {
        let one = auth(AuthConfig::default());
        let two = auth(AuthConfig::default());
        let token = one
            .redeem_ticket(one.create_ticket().as_str())
            .expect("redeem");
        assert_eq!(
            two.check_token(token.as_str()),
            Err(AuthError::InvalidToken)
        );
        let ticket = one.create_ticket();
        assert_eq!(
            two.redeem_ticket(ticket.as_str()).map(|_| ()),
            Err(AuthError::InvalidTicket)
        );
    }

    #[test]
    fn the_oldest_token_is_evicted_over_max_tokens() {
        let auth = auth(AuthConfig {
            max_tokens: 3,
            ..AuthConfig::default()
        });
        let ticket = auth.create_ticket();
        let tokens: Vec<SessionToken> = (0..5)
            .map(|_| auth.redeem_ticket(ticket.as_str()).expect("redeem"))
            .collect();
        assert_eq!(
            auth.check_token(tokens[0].as_str()),
            Err(AuthError::InvalidToken)
        );
        assert_eq!(
            auth.check_token(tokens[1].as_str()),
            Err(AuthError::InvalidToken)
        );
        for token in &tokens[2..] {
            assert_eq!(auth.check_token(token.as_str()), Ok(()));
        }
    }

    #[test]
    fn token_eviction_is_least_recently_used_so_a_browser_session_in_use_survives() {
        // A script presenting the ticket on every request used to evict the browser's
        // session, which is older but in use, once max_tokens more had been issued.
        let auth = auth(AuthConfig {
            max_tokens: 3,
            ..AuthConfig::default()
        });
        let ticket = auth.create_ticket();
        let browser = auth.redeem_ticket(ticket.as_str()).expect("redeem");
        let mut last = None;
        for _ in 0..20 {
            last = Some(auth.redeem_ticket(ticket.as_str()).expect("redeem"));
            assert_eq!(auth.check_token(browser.as_str()), Ok(()));
        }
        assert_eq!(
            auth.check_token(last.expect("a token").as_str()),
            Ok(()),
            "the newest is kept too"
        );
        assert_eq!(lock(&auth.tokens).len(), 3);
    }

    #[test]
    fn redeeming_on_every_request_stays_bounded() {
        let auth = auth(AuthConfig {
            max_tokens: 50,
            ..AuthConfig::default()
        });
        let ticket = auth.create_ticket();
        for _ in 0..5_000 {
            auth.redeem_ticket(ticket.as_str()).expect("redeem");
        }
        let store = lock(&auth.tokens);
        assert_eq!(store.len(), 50);
        assert!(store.order_len() <= 101);
    }

    #[test]
    fn idle_tokens_expire_and_use_keeps_them_alive() {
        let ttl = Duration::from_millis(10);
        let auth = auth(AuthConfig {
            token_ttl: Some(ttl),
            ..AuthConfig::default()
        });
        let ticket = auth.create_ticket();
        let start = Instant::now();
        let used = auth
            .redeem_ticket_at(ticket.as_str(), start)
            .expect("redeem");
        let idle = auth
            .redeem_ticket_at(ticket.as_str(), start)
            .expect("redeem");
        let step = Duration::from_millis(8);
        for n in 1..=5 {
            assert_eq!(auth.check_token_at(used.as_str(), start + step * n), Ok(()));
        }
        assert_eq!(
            auth.check_token_at(idle.as_str(), start + step * 5),
            Err(AuthError::InvalidToken)
        );
        // Expired tokens are removed, not merely refused.
        assert_eq!(lock(&auth.tokens).len(), 1);
        assert_eq!(
            auth.check_token_at(used.as_str(), start + step * 5 + ttl * 2),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn idle_tokens_expire_in_real_time() {
        let auth = auth(AuthConfig {
            token_ttl: Some(Duration::from_millis(1)),
            ..AuthConfig::default()
        });
        let token = auth
            .redeem_ticket(auth.create_ticket().as_str())
            .expect("redeem");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            auth.check_token(token.as_str()),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn keys_never_expire_or_get_evicted() {
        let auth = auth(AuthConfig {
            max_tokens: 1,
            token_ttl: Some(Duration::from_millis(1)),
            ..AuthConfig::default()
        });
        let key = Auth::generate_key();
        auth.add_key(&key);
        auth.add_key(&key);
        assert_eq!(lock(&auth.keys).len(), 1);
        let ticket = auth.create_ticket();
        let start = Instant::now();
        for n in 0..10 {
            auth.redeem_ticket_at(ticket.as_str(), start + Duration::from_secs(n))
                .expect("redeem");
        }
        let years = start + Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(auth.check_token_at(&key, years), Ok(()));
        assert_eq!(auth.check_token(&key), Ok(()));
        // A key is a token, not a ticket.
        assert_eq!(
            auth.redeem_ticket(&key).map(|_| ()),
            Err(AuthError::InvalidTicket)
        );
    }

    #[test]
    fn malformed_keys_are_ignored() {
        let auth = auth(AuthConfig::default());
        auth.add_key("");
        auth.add_key("not a key");
        assert_eq!(lock(&auth.keys).len(), 0);
        assert_eq!(auth.check_token(""), Err(AuthError::InvalidToken));
        assert_eq!(auth.check_token("not a key"), Err(AuthError::InvalidToken));
    }

    #[test]
    fn errors_read_clearly_and_hold_no_secret() {
        assert_eq!(
            AuthError::InvalidTicket.to_string(),
            "the ticket is not valid (it may have been used already)"
        );
        assert_eq!(
            AuthError::InvalidToken.to_string(),
            "the session token is not valid or has expired"
        );
    }

    #[test]
    fn debug_of_auth_shows_counts_not_secrets() {
        let auth = auth(AuthConfig::default());
        let ticket = auth.create_ticket();
        let token = auth.redeem_ticket(ticket.as_str()).expect("redeem");
        let key = Auth::generate_key();
        auth.add_key(&key);
        let shown = format!("{auth:?}");
        assert!(!shown.contains(ticket.as_str()));
        assert!(!shown.contains(token.as_str()));
        assert!(!shown.contains(&key));
        assert!(shown.contains("tokens: 1"), "{shown}");
    }

    #[test]
    fn find_constant_time_finds_any_position() {
        let secrets: Vec<Box<str>> = vec!["aa".into(), "bb".into(), "cc".into()];
        assert_eq!(find_constant_time(&secrets, "aa"), Some(0));
        assert_eq!(find_constant_time(&secrets, "cc"), Some(2));
        assert_eq!(find_constant_time(&secrets, "dd"), None);
        assert_eq!(find_constant_time(&[], "aa"), None);
    }

    #[test]
    fn concurrent_use_is_consistent() {
        let auth = Arc::new(auth(AuthConfig {
            max_tokens: 1_000,
            ..AuthConfig::default()
        }));
        let ticket = auth.create_ticket();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let auth = Arc::clone(&auth);
                let ticket = ticket.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let token = auth.redeem_ticket(ticket.as_str()).expect("redeem");
                        assert_eq!(auth.check_token(token.as_str()), Ok(()));
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        assert_eq!(lock(&auth.tokens).len(), 800);
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_and_are_refused(s in any::<String>()) {
            let auth = auth(AuthConfig::default());
            let ticket = auth.create_ticket();
            let token = auth.redeem_ticket(ticket.as_str()).expect("redeem");
            let key = Auth::generate_key();
            auth.add_key(&key);
            prop_assume!(s != ticket.as_str() && s != token.as_str() && s != key);
            prop_assert_eq!(auth.redeem_ticket(&s).map(|_| ()), Err(AuthError::InvalidTicket));
            prop_assert_eq!(auth.check_token(&s), Err(AuthError::InvalidToken));
            auth.add_key(&s);
        }

        #[test]
        fn secret_shaped_strings_are_refused(s in "[A-Za-z0-9]{1,128}") {
            let auth = auth(AuthConfig::default());
            let ticket = auth.create_ticket();
            let token = auth.redeem_ticket(ticket.as_str()).expect("redeem");
            prop_assume!(s != ticket.as_str() && s != token.as_str());
            prop_assert_eq!(auth.redeem_ticket(&s).map(|_| ()), Err(AuthError::InvalidTicket));
            prop_assert_eq!(auth.check_token(&s), Err(AuthError::InvalidToken));
        }
    }
}

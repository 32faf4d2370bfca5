//! Signed bearer tokens as the Desktop 0.28 client sends them (PROTOCOL.md section
//! 13): a JWT signed with HS256 and a host key, claims `iat` (seconds) and, from
//! that client, `hid` and `seq`.
//!
//! A token is accepted when its signature verifies with one of the host keys, its
//! `iat` is within [`IAT_WINDOW_SECS`] of now (either way), and, where it carries
//! `hid` and `seq`, that pair has not been seen while it could still be accepted.
//! Requests may arrive out of order, so no order of `seq` is required. The replay
//! memory keeps a keyed 64-bit hash of each pair (never the claims themselves) until
//! its `iat` leaves the window, and holds at most [`MAX_REMEMBERED`] of them: beyond
//! that new signed tokens are refused (fail closed) until old ones age out, so a
//! replay can never slip through an eviction. Only a holder of the key can fill it.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::AuthError;

/// How far `iat` may be from now, in seconds, either way.
pub const IAT_WINDOW_SECS: u64 = 5 * 60;

/// The most `(hid, seq)` pairs remembered at once.
pub const MAX_REMEMBERED: usize = 65_536;

/// Whether a bearer token has the shape of a JWT (three dot-separated parts) rather
/// than of a session token or key (alphanumerics only).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// The `(hid, seq)` pairs of recently accepted tokens.
pub(crate) struct ReplayGuard {
    hasher: RandomState,
    seen: HashSet<u64>,
    /// `(forget after, pair hash)`, to drop pairs once their `iat` is out of the window.
    by_expiry: BTreeSet<(u64, u64)>,
    capacity: usize,
}

impl ReplayGuard {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            seen: HashSet::new(),
            by_expiry: BTreeSet::new(),
            capacity,
        }
    }

    /// Records the pair; `Err` when it was seen already or the memory is full.
    fn remember(
        &mut self,
        hid: &Value,
        seq: &Value,
        iat: u64,
        now: u64,
    ) -> Result<(), &'static str> {
        while let Some(&(expiry, hash)) = self.by_expiry.first() {
            if expiry >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&hash);
        }
        // The JSON texts, so that `"1"` and `1` are different pairs.
        let hash = self.hasher.hash_one((hid.to_string(), seq.to_string()));
        if self.seen.contains(&hash) {
            return Err("it was used before (the same hid and seq)");
        }
        if self.seen.len() >= self.capacity {
            return Err("too many signed requests within five minutes; try again shortly");
        }
        self.seen.insert(hash);
        self.by_expiry
            .insert((iat.max(now).saturating_add(IAT_WINDOW_SECS), hash));
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

/// Checks a JWT against the host keys at `now` (seconds since the epoch).
pub(crate) fn check(
    token: &str,
    keys: &[Box<str>],
    replay: &Mutex<ReplayGuard>,
    now: u64,
) -> Result<(), AuthError> {
    let refuse = |reason: &'static str| {
        log::debug!("signed token refused: {reason}");
        Err(AuthError::InvalidSignedToken(reason))
    };
    let header = match jsonwebtoken::decode_header(token) {
        Ok(header) => header,
        // `alg: none` and unknown algorithms do not even parse as a header.
        Err(_) => return refuse("it is not a JWT signed with HS256"),
    };
    if header.alg != Algorithm::HS256 {
        return refuse("it is not a JWT signed with HS256");
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    // Every key is tried, so the time taken does not say which one matched.
    let mut claims = None;
    for key in keys {
        let key = DecodingKey::from_secret(key.as_bytes());
        if let Ok(data) = jsonwebtoken::decode::<Value>(token, &key, &validation) {
            claims = Some(data.claims);
        }
    }
    let Some(claims) = claims else {
        return refuse("its signature does not verify with the host key");
    };
    let Some(iat) = claims.get("iat").and_then(seconds) else {
        return refuse("it has no `iat` (issued at, in seconds)");
    };
    if iat.abs_diff(now) > IAT_WINDOW_SECS {
        return refuse("its `iat` is more than five minutes from now");
    }
    if let (Some(hid), Some(seq)) = (claims.get("hid"), claims.get("seq")) {
        let mut replay = replay.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(reason) = replay.remember(hid, seq, iat, now) {
            drop(replay);
            return refuse(reason);
        }
    }
    Ok(())
}

/// A non-negative number of seconds; fractions are cut.
fn seconds(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| s as u64)
    })
}

/// Seconds since the epoch now.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const KEY: &str = "k3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3yk3y0";
    const NOW: u64 = 1_800_000_000;

    fn sign(claims: &Value, key: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .expect("encode")
    }

    fn keys() -> Vec<Box<str>> {
        vec!["other".into(), KEY.into()]
    }

    fn guard() -> Mutex<ReplayGuard> {
        Mutex::new(ReplayGuard::new(MAX_REMEMBERED))
    }

    #[test]
    fn a_fresh_signed_token_passes_once() {
        let replay = guard();
        let token = sign(&json!({"iat": NOW, "hid": "h", "seq": 1}), KEY);
        assert!(looks_like_jwt(&token));
        assert_eq!(check(&token, &keys(), &replay, NOW), Ok(()));
        assert!(matches!(
            check(&token, &keys(), &replay, NOW + 1),
            Err(AuthError::InvalidSignedToken(reason)) if reason.contains("used before")
        ));
        // Another seq, out of order, is fine.
        let earlier = sign(&json!({"iat": NOW, "hid": "h", "seq": 0}), KEY);
        assert_eq!(check(&earlier, &keys(), &replay, NOW), Ok(()));
    }

    #[test]
    fn tokens_without_hid_and_seq_are_not_remembered() {
        let replay = guard();
        let token = sign(&json!({ "iat": NOW }), KEY);
        assert_eq!(check(&token, &keys(), &replay, NOW), Ok(()));
        assert_eq!(check(&token, &keys(), &replay, NOW), Ok(()));
        assert_eq!(replay.lock().expect("lock").len(), 0);
    }

    #[test]
    fn iat_must_be_within_five_minutes() {
        let replay = guard();
        for iat in [NOW - 301, NOW + 301] {
            let token = sign(&json!({"iat": iat}), KEY);
            assert!(check(&token, &keys(), &replay, NOW).is_err(), "{iat}");
        }
        for iat in [NOW - 300, NOW + 300] {
            let token = sign(&json!({ "iat": iat }), KEY);
            assert_eq!(check(&token, &keys(), &replay, NOW), Ok(()), "{iat}");
        }
        for claims in [json!({}), json!({"iat": "now"}), json!({"iat": -5})] {
            let token = sign(&claims, KEY);
            assert!(check(&token, &keys(), &replay, NOW).is_err(), "{claims}");
        }
    }

    #[test]
    fn wrong_key_and_other_algorithms_are_refused() {
        let replay = guard();
        let token = sign(&json!({ "iat": NOW }), "not-the-key");
        assert!(check(&token, &keys(), &replay, NOW).is_err());
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({ "iat": NOW }),
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .expect("encode");
        assert!(check(&hs512, &keys(), &replay, NOW).is_err());
        // alg none: a header and claims with an empty signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpYXQiOjE4MDAwMDAwMDB9.";
        assert!(check(none, &keys(), &replay, NOW).is_err());
        assert!(check("a.b.c", &keys(), &replay, NOW).is_err());
        assert!(check(&sign(&json!({ "iat": NOW }), KEY), &[], &replay, NOW).is_err());
    }

    #[test]
    fn the_replay_memory_is_bounded_and_forgets_expired_pairs() {
        let mut guard = ReplayGuard::new(3);
        for seq in 0..3 {
            assert_eq!(guard.remember(&json!("h"), &json!(seq), NOW, NOW), Ok(()));
        }
        // Full: refused rather than forgetting a pair that could then be replayed.
        assert!(guard.remember(&json!("h"), &json!(3), NOW, NOW).is_err());
        assert_eq!(guard.len(), 3);
        // Once out of the window the old pairs are forgotten (they could not pass
        // the iat check anyway).
        let later = NOW + IAT_WINDOW_SECS + 1;
        assert_eq!(guard.remember(&json!("h"), &json!(3), later, later), Ok(()));
        assert_eq!(guard.len(), 1);
        // Pair identity is by JSON value: "1" and 1 differ.
        assert_eq!(
            guard.remember(&json!("h"), &json!("3"), later, later),
            Ok(())
        );
    }
}

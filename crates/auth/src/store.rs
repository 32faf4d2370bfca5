//! The bounded store of live session tokens: keyed-hash lookup, constant-time confirmation, idle expiry and eviction of the least recently used.
//!
//! Not locked here: [`crate::Auth`] wraps it in a `Mutex` and hashes outside the lock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::secret::constant_time_eq;

/// One live session token.
struct Entry {
    token: Box<str>,
    last_used: Instant,
    /// Which insertion or use this is, so a record in `order` left over from an
    /// earlier use or a removed entry is never mistaken for the current one.
    seq: u64,
}

/// What a lookup found, for [`crate::Auth`] to log outside its lock.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    Valid,
    /// Matched a token that had been idle too long; it has been removed.
    Expired,
    Unknown,
}

/// Session tokens keyed by a secret keyed hash of the token, so a request costs one
/// hash, one map probe and one constant-time comparison whatever the number of tokens.
pub(crate) struct TokenStore {
    entries: HashMap<u64, Entry>,
    /// `(hash, seq)` in order of last use, the least recently used at the front, for
    /// eviction: a script redeeming the ticket on every request must not evict the
    /// browser's session that is in use.
    ///
    /// Using or removing an entry leaves its old record here (stale) to keep both O(1); stale
    /// records are skipped when popped and swept by [`TokenStore::compact`], so the
    /// queue never holds more than `2 * max_tokens + 1` records.
    order: VecDeque<(u64, u64)>,
    next_seq: u64,
    max_tokens: usize,
    ttl: Option<Duration>,
}

impl TokenStore {
    /// A store holding at most `max_tokens` (at least one, so a fresh token is always
    /// usable) tokens, each expiring after `ttl` idle.
    pub(crate) fn new(max_tokens: usize, ttl: Option<Duration>) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            max_tokens: max_tokens.max(1),
            ttl,
        }
    }

    /// Stores `token` under `hash`, evicting the least recently used tokens if full.
    ///
    /// Returns the number evicted, or `None` (storing nothing) if `hash` is already
    /// taken: for tokens we mint that is a 2^-64 collision, and the caller draws another.
    pub(crate) fn insert(&mut self, hash: u64, token: &str, now: Instant) -> Option<usize> {
        if self.entries.contains_key(&hash) {
            return None;
        }
        self.drop_expired_front(now);
        let mut evicted = 0;
        while self.entries.len() >= self.max_tokens {
            let Some((old_hash, old_seq)) = self.order.pop_front() else {
                break;
            };
            if self.remove_if_current(old_hash, old_seq) {
                evicted += 1;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            hash,
            Entry {
                token: token.into(),
                last_used: now,
                seq,
            },
        );
        self.order.push_back((hash, seq));
        if self.order.len() > 2 * self.max_tokens {
            self.compact();
        }
        Some(evicted)
    }

    /// Whether `token` (whose keyed hash is `hash`) is live; a valid token's idle timer
    /// restarts at `now`, an expired one is removed.
    pub(crate) fn check(&mut self, hash: u64, token: &str, now: Instant) -> Lookup {
        let Some(entry) = self.entries.get_mut(&hash) else {
            return Lookup::Unknown;
        };
        if !constant_time_eq(entry.token.as_bytes(), token.as_bytes()) {
            return Lookup::Unknown;
        }
        let idle = now.saturating_duration_since(entry.last_used);
        if self.ttl.is_some_and(|ttl| idle > ttl) {
            self.entries.remove(&hash);
            return Lookup::Expired;
        }
        entry.last_used = entry.last_used.max(now);
        // Moves to the back of `order`: the record at its old place becomes stale.
        entry.seq = self.next_seq;
        self.order.push_back((hash, self.next_seq));
        self.next_seq += 1;
        if self.order.len() > 2 * self.max_tokens {
            self.compact();
        }
        Lookup::Valid
    }

    /// The number of live (possibly expired but not yet noticed) tokens.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes the entry for `hash` if it is the one inserted as `seq`.
    fn remove_if_current(&mut self, hash: u64, seq: u64) -> bool {
        if self.entries.get(&hash).is_some_and(|e| e.seq == seq) {
            self.entries.remove(&hash);
            true
        } else {
            false
        }
    }

    /// Pops stale records and expired tokens off the front, so an idle host's store
    /// shrinks as it is used rather than waiting to fill up.
    fn drop_expired_front(&mut self, now: Instant) {
        while let Some(&(hash, seq)) = self.order.front() {
            let removable = match self.entries.get(&hash) {
                Some(entry) if entry.seq == seq => self
                    .ttl
                    .is_some_and(|ttl| now.saturating_duration_since(entry.last_used) > ttl),
                _ => true,
            };
            if !removable {
                break;
            }
            self.order.pop_front();
            self.remove_if_current(hash, seq);
        }
    }

    /// Sweeps stale records out of `order`. It runs only once `order` has doubled past
    /// `max_tokens`, and leaves at most `max_tokens` records, so its cost is O(1)
    /// amortized over the insertions since the last sweep.
    fn compact(&mut self) {
        let entries = &self.entries;
        self.order
            .retain(|(hash, seq)| entries.get(hash).is_some_and(|e| e.seq == *seq));
    }

    #[cfg(test)]
    pub(crate) fn order_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn inserted_tokens_are_valid_and_others_not() {
        let now = Instant::now();
        let mut store = TokenStore::new(10, None);
        assert_eq!(store.insert(1, "one", now), Some(0));
        assert_eq!(store.insert(2, "two", now), Some(0));
        assert_eq!(store.check(1, "one", now), Lookup::Valid);
        assert_eq!(store.check(2, "two", now), Lookup::Valid);
        // Right hash, wrong token: the constant-time comparison is what decides.
        assert_eq!(store.check(1, "two", now), Lookup::Unknown);
        assert_eq!(store.check(1, "onf", now), Lookup::Unknown);
        assert_eq!(store.check(3, "one", now), Lookup::Unknown);
    }

    #[test]
    fn a_taken_hash_is_refused() {
        let now = Instant::now();
        let mut store = TokenStore::new(10, None);
        assert_eq!(store.insert(1, "one", now), Some(0));
        assert_eq!(store.insert(1, "other", now), None);
        assert_eq!(store.check(1, "one", now), Lookup::Valid);
        assert_eq!(store.check(1, "other", now), Lookup::Unknown);
    }

    #[test]
    fn the_least_recently_used_is_evicted_not_the_oldest_issued() {
        let now = Instant::now();
        let mut store = TokenStore::new(2, None);
        store.insert(1, "one", now);
        store.insert(2, "two", now);
        assert_eq!(store.check(1, "one", now), Lookup::Valid);
        assert_eq!(store.insert(3, "three", now), Some(1));
        assert_eq!(store.check(1, "one", now), Lookup::Valid);
        assert_eq!(store.check(2, "two", now), Lookup::Unknown);
        assert_eq!(store.check(3, "three", now), Lookup::Valid);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_session_in_use_survives_a_ticket_redeemed_on_every_request() {
        let now = Instant::now();
        let max = 10;
        let mut store = TokenStore::new(max, None);
        store.insert(0, "browser", now);
        for i in 1..10_000u64 {
            store.insert(i, "script", now);
            if i % 5 == 0 {
                assert_eq!(store.check(0, "browser", now), Lookup::Valid, "{i}");
            }
            assert!(store.len() <= max);
            assert!(store.order_len() <= 2 * max + 1);
        }
    }

    #[test]
    fn zero_max_tokens_still_keeps_the_newest() {
        let now = Instant::now();
        let mut store = TokenStore::new(0, None);
        store.insert(1, "one", now);
        assert_eq!(store.check(1, "one", now), Lookup::Valid);
        store.insert(2, "two", now);
        assert_eq!(store.check(1, "one", now), Lookup::Unknown);
        assert_eq!(store.check(2, "two", now), Lookup::Valid);
    }

    #[test]
    fn idle_tokens_expire_and_use_refreshes() {
        let start = Instant::now();
        let mut store = TokenStore::new(10, Some(HOUR));
        store.insert(1, "one", start);
        store.insert(2, "two", start);
        let later = start + HOUR - Duration::from_secs(1);
        assert_eq!(store.check(1, "one", later), Lookup::Valid);
        let much_later = start + HOUR + Duration::from_secs(1);
        assert_eq!(store.check(1, "one", much_later), Lookup::Valid);
        assert_eq!(store.check(2, "two", much_later), Lookup::Expired);
        assert_eq!(store.check(2, "two", much_later), Lookup::Unknown);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn no_ttl_means_no_expiry() {
        let start = Instant::now();
        let mut store = TokenStore::new(10, None);
        store.insert(1, "one", start);
        let years = start + Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(store.check(1, "one", years), Lookup::Valid);
    }

    #[test]
    fn an_older_clock_reading_does_not_rewind_the_idle_timer() {
        let start = Instant::now();
        let mut store = TokenStore::new(10, Some(HOUR));
        store.insert(1, "one", start + HOUR);
        assert_eq!(store.check(1, "one", start), Lookup::Valid);
        assert_eq!(store.check(1, "one", start + 2 * HOUR), Lookup::Valid);
    }

    #[test]
    fn expired_tokens_at_the_front_are_dropped_on_insert() {
        let start = Instant::now();
        let mut store = TokenStore::new(10, Some(HOUR));
        store.insert(1, "one", start);
        store.insert(2, "two", start);
        store.insert(3, "three", start + 2 * HOUR);
        assert_eq!(store.len(), 1);
        assert_eq!(store.order_len(), 1);
    }

    #[test]
    fn memory_stays_bounded_under_churn() {
        // Tokens that are inserted then expire via `check` leave stale records; the
        // queue must still stay within its bound.
        let start = Instant::now();
        let max = 8;
        let mut store = TokenStore::new(max, Some(HOUR));
        for i in 0..10_000u64 {
            let now = start + Duration::from_secs(i);
            let token = format!("t{i}");
            assert!(store.insert(i, &token, now).is_some());
            if i % 2 == 0 {
                assert_eq!(
                    store.check(i, &token, now + 2 * HOUR + Duration::from_secs(i)),
                    Lookup::Expired
                );
            }
            assert!(store.len() <= max);
            assert!(store.order_len() <= 2 * max + 1);
        }
    }

    #[test]
    fn many_insertions_stay_within_max() {
        let now = Instant::now();
        let max = 100;
        let mut store = TokenStore::new(max, None);
        for i in 0..10_000u64 {
            store.insert(i, "x", now);
            assert!(store.len() <= max);
            assert!(store.order_len() <= 2 * max + 1);
        }
        // The newest `max` survive.
        assert_eq!(store.check(9_999, "x", now), Lookup::Valid);
        assert_eq!(store.check(9_900, "x", now), Lookup::Valid);
        assert_eq!(store.check(9_899, "x", now), Lookup::Unknown);
    }
}

//! The brake on guessing: an address that presents too many bad tickets or tokens in a
//! short time is refused (429) for a while, whatever it presents. Other addresses are
//! not affected, and memory stays bounded however many addresses try.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures allowed from one address within [`WINDOW`] before it is locked out.
pub const MAX_FAILURES: u32 = 10;
/// The span over which failures are counted.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a locked-out address is refused.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses tracked at most; past that the stalest records are dropped.
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Failure counts per address.
#[derive(Debug, Default)]
pub struct Throttle {
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl Throttle {
    /// `Some(seconds to wait)` when `address` is locked out now.
    pub fn locked(&self, address: IpAddr) -> Option<u64> {
        self.locked_at(address, Instant::now())
    }

    fn locked_at(&self, address: IpAddr, now: Instant) -> Option<u64> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let until = records.get(&address)?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    /// Records a bad ticket or token from `address`.
    pub fn failed(&self, address: IpAddr) {
        self.failed_at(address, Instant::now());
    }

    fn failed_at(&self, address: IpAddr, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() >= MAX_ADDRESSES && !records.contains_key(&address) {
            records.retain(|_, r| {
                now.duration_since(r.window_start) < WINDOW
                    || r.locked_until.is_some_and(|until| until > now)
            });
            if records.len() >= MAX_ADDRESSES {
                // Still full of live records: forget the oldest half rather than grow.
                let mut starts: Vec<Instant> = records.values().map(|r| r.window_start).collect();
                starts.sort();
                let cutoff = starts[starts.len() / 2];
                records.retain(|_, r| r.window_start > cutoff);
            }
        }
        let record = records.entry(address).or_insert(Record {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if now.duration_since(record.window_start) >= WINDOW {
            record.window_start = now;
            record.failures = 0;
        }
        record.failures += 1;
        if record.failures >= MAX_FAILURES {
            record.locked_until = Some(now + LOCKOUT);
            record.window_start = now;
            record.failures = 0;
            log::warn!(
                "{address} presented {MAX_FAILURES} bad tickets or tokens; refusing it for {} s",
                LOCKOUT.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn locks_out_after_a_burst_and_only_that_address() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            throttle.failed_at(ip(1), now);
        }
        assert_eq!(throttle.locked_at(ip(1), now), None);
        throttle.failed_at(ip(1), now);
        assert_eq!(throttle.locked_at(ip(1), now), Some(LOCKOUT.as_secs()));
        assert_eq!(throttle.locked_at(ip(2), now), None);
        assert_eq!(
            throttle.locked_at(ip(1), now + LOCKOUT),
            None,
            "the lockout ends"
        );
    }

    #[test]
    fn slow_failures_never_lock_out() {
        let throttle = Throttle::default();
        let mut now = Instant::now();
        for _ in 0..5 * MAX_FAILURES {
            throttle.failed_at(ip(1), now);
            now += WINDOW / (MAX_FAILURES - 1) + Duration::from_millis(10);
            assert_eq!(throttle.locked_at(ip(1), now), None);
        }
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 * 3) {
            throttle.failed_at(
                IpAddr::from(i.to_be_bytes()),
                now + Duration::from_micros(i as u64),
            );
        }
        let len = throttle.records.lock().map(|r| r.len()).unwrap_or(0);
        assert!(len <= MAX_ADDRESSES, "{len}");
    }
}

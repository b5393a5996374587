//! Rate limits for any string key: GCRA for rates (requests or tokens per second, with a burst) and counters for
//! concurrency, with atomic all-or-none checks across several limits.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT): a request of cost n is admitted when
//! `max(TAT, now) + n*T - now <= burst*T`, with T = 1/rate. Memory per key is constant and no timer runs.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rustc_hash::FxBuildHasher;

use crate::error::CoreError;

const SHARDS: usize = 16;

/// Where time comes from: the monotonic clock, or a clock only tests move.
#[derive(Debug)]
pub enum Clock {
    Monotonic(Instant),
    Manual(AtomicU64),
}

impl Clock {
    fn now(&self) -> f64 {
        match self {
            Self::Monotonic(start) => start.elapsed().as_secs_f64(),
            #[allow(clippy::cast_precision_loss)]
            // nanoseconds below 2^53 are exact: 104 days of test time
            Self::Manual(nanos) => nanos.load(Ordering::Acquire) as f64 / 1e9,
        }
    }
}

/// One rate limit to check: a key, its rate (units per second), its burst (units), and the units to take.
#[derive(Debug, Clone, Copy)]
pub struct Limit<'a> {
    pub key: &'a str,
    pub rate_per_s: f64,
    pub burst: f64,
    pub cost: f64,
}

impl Limit<'_> {
    fn validate(&self) -> Result<(), CoreError> {
        if !(self.rate_per_s.is_finite() && self.rate_per_s > 0.0) {
            return Err(CoreError::InvalidArgument(format!(
                "limit {:?}: rate_per_s must be a positive number, got {}",
                self.key, self.rate_per_s
            )));
        }
        if !(self.burst.is_finite() && self.burst >= 1.0) {
            return Err(CoreError::InvalidArgument(format!(
                "limit {:?}: burst must be at least 1, got {}",
                self.key, self.burst
            )));
        }
        if !(self.cost.is_finite() && self.cost >= 0.0) {
            return Err(CoreError::InvalidArgument(format!(
                "limit {:?}: cost must be zero or positive, got {}",
                self.key, self.cost
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Entry {
    /// GCRA theoretical arrival time, in clock seconds.
    tat: f64,
    /// Concurrent holders.
    in_use: u32,
}

type Shard = HashMap<Box<str>, Entry, FxBuildHasher>;

/// Thread-safe limits for any number of keys. Keys live in 16 mutex-guarded shards; an entry is dropped only when
/// forgetting it changes nothing (its TAT has passed and nothing holds it), so eviction never loosens a limit.
#[derive(Debug)]
pub struct RateLimiter {
    shards: Vec<Mutex<Shard>>,
    max_keys_per_shard: usize,
    clock: Clock,
}

impl RateLimiter {
    #[must_use]
    pub fn new(max_keys: usize, clock: Clock) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_keys_per_shard: max_keys.div_ceil(SHARDS).max(1),
            clock,
        }
    }

    #[must_use]
    pub fn with_monotonic_clock(max_keys: usize) -> Self {
        Self::new(max_keys, Clock::Monotonic(Instant::now()))
    }

    #[must_use]
    pub fn with_test_clock(max_keys: usize) -> Self {
        Self::new(max_keys, Clock::Manual(AtomicU64::new(0)))
    }

    /// Moves a test clock forward.
    pub fn advance(&self, seconds: f64) -> Result<(), CoreError> {
        match &self.clock {
            Clock::Manual(nanos) if seconds.is_finite() && seconds >= 0.0 => {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                // checked non-negative above
                nanos.fetch_add((seconds * 1e9) as u64, Ordering::AcqRel);
                Ok(())
            }
            Clock::Manual(_) => Err(CoreError::InvalidArgument(
                "advance takes a non-negative number of seconds".into(),
            )),
            Clock::Monotonic(_) => Err(CoreError::InvalidArgument(
                "advance works only on a limiter made with a test clock".into(),
            )),
        }
    }

    /// Checks one limit and takes `cost` when it admits. Returns 0.0 when admitted, else the seconds to wait.
    pub fn check(&self, limit: Limit<'_>) -> Result<f64, CoreError> {
        limit.validate()?;
        let now = self.clock.now();
        let mut shard = self.lock(shard_of(limit.key));
        let tat = shard.get(limit.key).map_or(now, |e| e.tat.max(now));
        match admit(tat, now, limit) {
            Ok(new_tat) => {
                self.entry(&mut shard, limit.key, now).tat = new_tat;
                Ok(0.0)
            }
            Err(wait) => Ok(wait),
        }
    }

    /// Checks several limits at once: all admit and all take their cost, or none takes anything. Returns 0.0 when
    /// admitted, else the seconds until every limit would admit.
    pub fn check_many(&self, limits: &[Limit<'_>]) -> Result<f64, CoreError> {
        for limit in limits {
            limit.validate()?;
        }
        let now = self.clock.now();
        // Lock the shards involved in index order, so concurrent multi-limit checks cannot deadlock.
        let mut indexes: Vec<usize> = limits.iter().map(|l| shard_of(l.key)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> =
            indexes.iter().map(|&i| (i, self.lock(i))).collect();
        let mut wait: f64 = 0.0;
        let mut new_tats = Vec::with_capacity(limits.len());
        for limit in limits {
            let shard = &guards[position(&guards, shard_of(limit.key))].1;
            // Two limits on one key add up: the second sees the first's take.
            let earlier: f64 = limits
                .iter()
                .zip(&new_tats)
                .filter(|(other, _)| other.key == limit.key)
                .map(|(other, _)| other.cost / other.rate_per_s)
                .sum();
            let tat = shard.get(limit.key).map_or(now, |e| e.tat.max(now)) + earlier;
            match admit(tat, now, *limit) {
                Ok(new_tat) => new_tats.push(new_tat),
                Err(w) => {
                    wait = wait.max(w);
                    new_tats.push(tat);
                }
            }
        }
        if wait > 0.0 {
            return Ok(wait);
        }
        for (limit, new_tat) in limits.iter().zip(new_tats) {
            let index = position(&guards, shard_of(limit.key));
            let entry = self.entry(&mut guards[index].1, limit.key, now);
            entry.tat = entry.tat.max(new_tat);
        }
        Ok(0.0)
    }

    /// Corrects a take once the real cost is known: positive `delta` takes more, negative gives back (never more
    /// than was taken: the key cannot gain credit beyond its burst).
    pub fn adjust(&self, limit: Limit<'_>, delta: f64) -> Result<(), CoreError> {
        limit.validate()?;
        if !delta.is_finite() {
            return Err(CoreError::InvalidArgument(
                "delta must be a finite number".into(),
            ));
        }
        let now = self.clock.now();
        let mut shard = self.lock(shard_of(limit.key));
        let entry = self.entry(&mut shard, limit.key, now);
        entry.tat = (entry.tat.max(now) + delta / limit.rate_per_s).max(now);
        Ok(())
    }

    /// Takes one of `max_concurrent` slots of `key`; false when all are held.
    pub fn acquire(&self, key: &str, max_concurrent: u32) -> bool {
        let now = self.clock.now();
        let mut shard = self.lock(shard_of(key));
        let entry = self.entry(&mut shard, key, now);
        if entry.in_use >= max_concurrent {
            return false;
        }
        entry.in_use += 1;
        true
    }

    /// Gives back a slot taken by `acquire`.
    pub fn release(&self, key: &str) {
        let mut shard = self.lock(shard_of(key));
        if let Some(entry) = shard.get_mut(key) {
            entry.in_use = entry.in_use.saturating_sub(1);
        }
    }

    /// Keys currently tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).len()).sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard cannot leave an entry half-written (every write is one store), so a
        // poisoned lock is safe to keep using.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn entry<'s>(&self, shard: &'s mut Shard, key: &str, now: f64) -> &'s mut Entry {
        if !shard.contains_key(key) {
            if shard.len() >= self.max_keys_per_shard {
                shard.retain(|_, e| e.tat > now || e.in_use > 0);
            }
            shard.insert(
                key.into(),
                Entry {
                    tat: now,
                    in_use: 0,
                },
            );
        }
        shard
            .get_mut(key)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }
}

fn admit(tat: f64, now: f64, limit: Limit<'_>) -> Result<f64, f64> {
    let interval = 1.0 / limit.rate_per_s;
    let new_tat = tat + limit.cost * interval;
    let tolerance = limit.burst * interval;
    let over = new_tat - now - tolerance;
    if over <= 1e-9 {
        Ok(new_tat)
    } else {
        Err(over)
    }
}

fn shard_of(key: &str) -> usize {
    #[allow(clippy::cast_possible_truncation)] // only the low bits pick a shard
    let index = (FxBuildHasher.hash_one(key) >> 32) as usize % SHARDS;
    index
}

fn position(guards: &[(usize, MutexGuard<'_, Shard>)], index: usize) -> usize {
    guards
        .iter()
        .position(|(i, _)| *i == index)
        .unwrap_or_else(|| unreachable!("every key's shard is locked"))
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // 0.0 is the exact "admitted" answer
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limit(key: &str, rate: f64, burst: f64, cost: f64) -> Limit<'_> {
        Limit {
            key,
            rate_per_s: rate,
            burst,
            cost,
        }
    }

    #[test]
    fn burst_then_rate() {
        let limiter = RateLimiter::with_test_clock(100);
        for _ in 0..5 {
            assert_eq!(limiter.check(limit("k", 1.0, 5.0, 1.0)).unwrap(), 0.0);
        }
        let wait = limiter.check(limit("k", 1.0, 5.0, 1.0)).unwrap();
        assert!((wait - 1.0).abs() < 1e-6, "{wait}");
        limiter.advance(1.0).unwrap();
        assert_eq!(limiter.check(limit("k", 1.0, 5.0, 1.0)).unwrap(), 0.0);
    }

    #[test]
    fn multi_limit_is_all_or_none() {
        let limiter = RateLimiter::with_test_clock(100);
        assert_eq!(limiter.check(limit("tight", 1.0, 1.0, 1.0)).unwrap(), 0.0);
        let wait = limiter
            .check_many(&[
                limit("loose", 100.0, 100.0, 1.0),
                limit("tight", 1.0, 1.0, 1.0),
            ])
            .unwrap();
        assert!(wait > 0.0);
        // The denial took nothing from the loose limit: 100 more fit at once.
        for _ in 0..100 {
            assert_eq!(
                limiter.check(limit("loose", 100.0, 100.0, 1.0)).unwrap(),
                0.0
            );
        }
        assert!(limiter.check(limit("loose", 100.0, 100.0, 1.0)).unwrap() > 0.0);
    }

    #[test]
    fn adjust_takes_more_or_gives_back() {
        let limiter = RateLimiter::with_test_clock(100);
        let tpm = |cost| limit("t", 10.0, 100.0, cost);
        assert_eq!(limiter.check(tpm(100.0)).unwrap(), 0.0);
        assert!(limiter.check(tpm(1.0)).unwrap() > 0.0);
        limiter.adjust(tpm(0.0), -50.0).unwrap();
        assert_eq!(limiter.check(tpm(50.0)).unwrap(), 0.0);
        limiter.adjust(tpm(0.0), 20.0).unwrap();
        let wait = limiter.check(tpm(1.0)).unwrap();
        assert!((wait - 2.1).abs() < 1e-6, "{wait}");
    }

    #[test]
    fn concurrency() {
        let limiter = RateLimiter::with_test_clock(100);
        assert!(limiter.acquire("c", 2));
        assert!(limiter.acquire("c", 2));
        assert!(!limiter.acquire("c", 2));
        limiter.release("c");
        assert!(limiter.acquire("c", 2));
    }

    #[test]
    fn eviction_keeps_limited_keys() {
        let limiter = RateLimiter::with_test_clock(16);
        assert_eq!(limiter.check(limit("busy", 1.0, 1.0, 1.0)).unwrap(), 0.0);
        for i in 0..1000 {
            let key = format!("idle-{i}");
            limiter.check(limit(&key, 1000.0, 1.0, 0.0)).unwrap();
        }
        assert!(
            limiter.len() < 100,
            "idle keys are evicted: {}",
            limiter.len()
        );
        assert!(
            limiter.check(limit("busy", 1.0, 1.0, 1.0)).unwrap() > 0.0,
            "a key in debt is never forgotten"
        );
    }

    #[test]
    fn bad_arguments() {
        let limiter = RateLimiter::with_test_clock(10);
        assert!(limiter.check(limit("k", 0.0, 1.0, 1.0)).is_err());
        assert!(limiter.check(limit("k", 1.0, 0.5, 1.0)).is_err());
        assert!(limiter.check(limit("k", 1.0, 1.0, -1.0)).is_err());
        assert!(RateLimiter::with_monotonic_clock(10).advance(1.0).is_err());
    }

    proptest! {
        #[test]
        fn never_admits_more_than_rate_times_window_plus_burst(
            rate in 0.5f64..50.0,
            burst in 1.0f64..20.0,
            steps in proptest::collection::vec((0.0f64..0.5, 0.0f64..3.0), 1..200),
        ) {
            let limiter = RateLimiter::with_test_clock(10);
            let mut admitted = 0.0;
            let mut elapsed = 0.0;
            for (dt, cost) in steps {
                limiter.advance(dt).unwrap();
                elapsed += dt;
                if limiter.check(limit("k", rate, burst, cost)).unwrap() == 0.0 {
                    admitted += cost;
                }
                prop_assert!(admitted <= rate * elapsed + burst + 1e-6);
            }
        }
    }
}

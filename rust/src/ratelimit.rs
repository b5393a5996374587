//! Rate limits: GCRA rate buckets and concurrency counters keyed by any string, checked atomically.
//!
//! One bucket per key string holds a GCRA "theoretical arrival time" (TAT) and an in-flight count, so the same key
//! can carry a rate limit, a concurrency limit, or both; callers namespace their keys (`"rpm:key-42"`,
//! `"tpm:team-7"`). A [`Limit`] says how a bucket is read (rate and burst, or a maximum in flight) and is passed
//! with every call: GCRA state is an absolute time, so a limit changed by a config reload applies from the next
//! call without migrating state.
//!
//! GCRA, rate `r` units/s and burst `b` units: emission interval `T = 1/r`, tolerance `tau = b*T`. Taking `n`
//! units sets `tat' = max(tat, now) + n*T` and is admitted iff `tat' - now <= tau`. Over any window `W` at most
//! `b + r*W` units are admitted. Costs round up to whole nanoseconds, and the tolerance the same way, so a take of
//! exactly the burst fits and rounding never credits more than 1 ns of refill.
//!
//! Memory: a bucket whose TAT is in the past and that has nothing in flight is indistinguishable from a fresh one,
//! so evicting it changes no answer. Such buckets are swept once idle for `idle_ttl`, or as soon as a shard is full.
//! Only when a shard is full of live buckets are the least recently used ones dropped (losing their debt): memory
//! stays bounded by `max_keys` whatever the key cardinality.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use rustc_hash::FxBuildHasher;

use crate::error::CoreError;

const NANOS_PER_SEC: f64 = 1e9;
/// Shards of the key map; a power of two. 16 keeps write-lock contention low on the machines we run on.
const SHARDS: usize = 16;

/// How a bucket is read: a GCRA rate with a burst, or a maximum number of units in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// At most `burst` units at once, refilled at `per_second`.
    Rate {
        per_second: f64,
        burst: f64,
        /// Nanoseconds of TAT one unit costs (`1e9 / per_second`).
        interval_ns: f64,
        /// `burst * interval_ns`, rounded up like a take's cost.
        tolerance_ns: u64,
    },
    /// At most `max` units acquired and not yet released; a denial suggests retrying after `retry_after_s`.
    Concurrency { max: f64, retry_after_s: f64 },
}

impl Limit {
    /// A GCRA limit of `per_second` units per second with a bucket of `burst` units.
    pub fn rate(per_second: f64, burst: f64) -> Result<Self, CoreError> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(CoreError::InvalidArgument(format!(
                "rate_per_s must be a positive number (units per second), got {per_second}"
            )));
        }
        if !(burst.is_finite() && burst >= 1.0) {
            return Err(CoreError::InvalidArgument(format!(
                "burst must be at least 1 (units), got {burst}"
            )));
        }
        let interval_ns = NANOS_PER_SEC / per_second;
        let tolerance = interval_ns * burst;
        if tolerance.is_nan() || tolerance >= 9.0e18 {
            return Err(CoreError::InvalidArgument(format!(
                "burst / rate = {} s is too long a window (at most ~285 years)",
                burst / per_second
            )));
        }
        // Rounded up exactly as a take of `burst` units is, so that a take of the whole burst fits; the bound then
        // holds within 1 ns of refill (an increment's own rounding only ever costs the caller).
        let tolerance_ns = cost_ns(interval_ns, burst);
        Ok(Limit::Rate {
            per_second,
            burst,
            interval_ns,
            tolerance_ns,
        })
    }

    /// At most `max` units in flight; `retry_after_s` is the hint a denial returns (a count has no refill time).
    pub fn concurrency(max: u32, retry_after_s: f64) -> Result<Self, CoreError> {
        if max == 0 {
            return Err(CoreError::InvalidArgument(
                "max_concurrent must be at least 1".into(),
            ));
        }
        if !(retry_after_s.is_finite() && retry_after_s > 0.0) {
            return Err(CoreError::InvalidArgument(format!(
                "retry_after must be a finite number of seconds > 0, got {retry_after_s}"
            )));
        }
        Ok(Limit::Concurrency {
            max: f64::from(max),
            retry_after_s,
        })
    }
}

/// The monotonic clock the limiter reads, or a manual one that tests move by hand.
#[derive(Debug, Clone)]
pub enum Clock {
    Monotonic(Instant),
    Manual(Arc<AtomicU64>),
}

impl Clock {
    #[must_use]
    pub fn monotonic() -> Self {
        Clock::Monotonic(Instant::now())
    }

    /// A clock standing at zero until [`Clock::advance`] moves it.
    #[must_use]
    pub fn manual() -> Self {
        Clock::Manual(Arc::new(AtomicU64::new(0)))
    }

    /// Nanoseconds since the clock was made.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        match self {
            #[allow(clippy::cast_possible_truncation)] // 2^64 ns is 584 years of uptime
            Clock::Monotonic(start) => start.elapsed().as_nanos() as u64,
            Clock::Manual(ns) => ns.load(Ordering::Acquire),
        }
    }

    /// Moves a manual clock forward; a monotonic clock cannot be moved.
    pub fn advance(&self, seconds: f64) -> Result<(), CoreError> {
        match self {
            Clock::Monotonic(_) => Err(CoreError::InvalidArgument(
                "advance works only on a limiter made with a test clock".into(),
            )),
            Clock::Manual(ns) => {
                if !(seconds.is_finite() && seconds >= 0.0) {
                    return Err(CoreError::InvalidArgument(format!(
                        "a clock moves forward by a finite number of seconds >= 0, got {seconds}"
                    )));
                }
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                // finite and >= 0
                let step = (seconds * NANOS_PER_SEC).round() as u64;
                ns.fetch_add(step, Ordering::AcqRel);
                Ok(())
            }
        }
    }
}

/// The state behind one key.
#[derive(Debug, Default, Clone, Copy)]
struct BucketState {
    /// GCRA theoretical arrival time, ns on the limiter's clock.
    tat: u64,
    /// Units acquired under a concurrency limit and not yet released.
    in_flight: f64,
    /// Last time the bucket was touched, for idle eviction and LRU under pressure.
    last_used: u64,
}

impl BucketState {
    /// Whether evicting the bucket would change no future answer.
    fn is_fresh(&self, now: u64) -> bool {
        self.tat <= now && self.in_flight <= 0.0
    }
}

/// Nanoseconds `n` units cost under a rate limit, rounded up so that rounding never admits more.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn cost_ns(interval_ns: f64, n: f64) -> u64 {
    // `as` saturates at u64::MAX for absurd n, which then never fits any tolerance.
    (interval_ns * n).ceil() as u64
}

/// Units are counts (requests, tokens) and may be fractional; NaN, infinite and negative amounts are refused.
fn check_units(n: f64) -> Result<f64, CoreError> {
    if n.is_finite() && n >= 0.0 {
        Ok(n)
    } else {
        Err(CoreError::InvalidArgument(format!(
            "cost must be zero or positive (units), got {n}"
        )))
    }
}

/// Applies `n` units of `limit` to `state`; returns 0 when admitted (state updated) or the ns to wait (state kept).
fn take(state: &mut BucketState, limit: &Limit, n: f64, now: u64) -> u64 {
    match *limit {
        Limit::Rate {
            interval_ns,
            tolerance_ns,
            ..
        } => {
            let new_tat = state.tat.max(now).saturating_add(cost_ns(interval_ns, n));
            let allowed_at = new_tat - tolerance_ns.min(new_tat);
            if allowed_at <= now {
                state.tat = new_tat;
                0
            } else if new_tat - state.tat.max(now) > tolerance_ns {
                // More than the whole burst: no amount of waiting admits it.
                u64::MAX
            } else {
                allowed_at - now
            }
        }
        Limit::Concurrency { max, retry_after_s } => {
            if state.in_flight + n <= max {
                state.in_flight += n;
                0
            } else if n > max {
                u64::MAX
            } else {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                // validated finite > 0
                let wait = ((retry_after_s * NANOS_PER_SEC).ceil() as u64).max(1);
                wait
            }
        }
    }
}

/// Gives back (`delta < 0`) or takes without checking (`delta > 0`) units once the real amount is known.
fn adjust_state(state: &mut BucketState, limit: &Limit, delta: f64, now: u64) {
    match *limit {
        Limit::Rate { interval_ns, .. } => {
            let cost = cost_ns(interval_ns, delta.abs());
            if delta >= 0.0 {
                state.tat = state.tat.max(now).saturating_add(cost);
            } else {
                // A refund never fills the bucket past full: TAT does not go below now.
                state.tat = state.tat.saturating_sub(cost).max(now.min(state.tat));
            }
        }
        Limit::Concurrency { .. } => state.in_flight = (state.in_flight + delta).max(0.0),
    }
}

fn ns_to_seconds(ns: u64) -> f64 {
    if ns == u64::MAX {
        f64::INFINITY
    } else {
        #[allow(clippy::cast_precision_loss)] // sub-ns precision is irrelevant for a retry hint
        let s = ns as f64 / NANOS_PER_SEC;
        s
    }
}

/// One key's bucket. Shared by the map and, for the length of a call, by the call that resolved it: a bucket in use
/// is never evicted (its strong count is above one).
#[derive(Debug, Default)]
struct Bucket {
    state: Mutex<BucketState>,
}

impl Bucket {
    fn lock(&self) -> MutexGuard<'_, BucketState> {
        // Nothing panics while the lock is held; a poisoned lock still guards consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Map = HashMap<Box<str>, Arc<Bucket>, FxBuildHasher>;
type Shard = RwLock<Map>;

/// Bounds on the limiter's memory.
#[derive(Debug, Clone, Copy)]
pub struct LimiterConfig {
    /// Most keys held at once (spread over the shards).
    pub max_keys: usize,
    /// Fresh buckets idle this long are dropped by [`RateLimiter::evict_idle`].
    pub idle_ttl_s: f64,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            max_keys: 1_000_000,
            idle_ttl_s: 300.0,
        }
    }
}

/// One check inside an atomic group: take `n` units of `limit` from the bucket of `key`.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub key: &'a str,
    pub limit: Limit,
    pub n: f64,
}

/// Why a group was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal {
    /// Seconds until every check of the group would pass; infinite when one never can (more than its burst or max).
    pub wait_s: f64,
    /// Index of the first check, in the order given, that refused.
    pub check: usize,
}

/// A thread-safe set of buckets keyed by string.
#[derive(Debug)]
pub struct RateLimiter {
    shards: Box<[Shard]>,
    shard_cap: usize,
    idle_ttl_ns: u64,
    clock: Clock,
}

impl RateLimiter {
    pub fn new(config: LimiterConfig, clock: Clock) -> Result<Self, CoreError> {
        if config.max_keys == 0 {
            return Err(CoreError::InvalidArgument("max_keys must be >= 1".into()));
        }
        if !(config.idle_ttl_s.is_finite() && config.idle_ttl_s >= 0.0) {
            return Err(CoreError::InvalidArgument(format!(
                "idle_ttl must be a finite number of seconds >= 0, got {}",
                config.idle_ttl_s
            )));
        }
        let shards = (0..SHARDS).map(|_| RwLock::new(Map::default()));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // finite and >= 0
        let idle_ttl_ns = (config.idle_ttl_s * NANOS_PER_SEC).min(1.8e19) as u64;
        Ok(RateLimiter {
            shards: shards.collect(),
            shard_cap: config.max_keys.div_ceil(SHARDS),
            idle_ttl_ns,
            clock,
        })
    }

    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn shard(&self, key: &str) -> &Shard {
        #[allow(clippy::cast_possible_truncation)] // top bits pick the shard
        let i = (FxBuildHasher.hash_one(key) >> 60) as usize % SHARDS;
        &self.shards[i]
    }

    /// The bucket of `key`, created (and room made for it) if absent.
    fn bucket(&self, key: &str) -> Arc<Bucket> {
        let shard = self.shard(key);
        if let Some(b) = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Arc::clone(b);
        }
        self.insert_slow(shard, key)
    }

    #[cold]
    fn insert_slow(&self, shard: &Shard, key: &str) -> Arc<Bucket> {
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = map.get(key) {
            return Arc::clone(b);
        }
        if map.len() >= self.shard_cap {
            self.make_room(&mut map);
        }
        let b = Arc::new(Bucket::default());
        map.insert(key.into(), Arc::clone(&b));
        b
    }

    /// Frees room in a full shard: drops every fresh bucket; if that frees under an eighth of the shard, also the
    /// least recently used buckets not in use down to 7/8 of capacity. O(shard) once per ~cap/8 new keys.
    fn make_room(&self, map: &mut Map) {
        let now = self.clock.now_ns();
        map.retain(|_, b| !(Arc::strong_count(b) == 1 && b.lock().is_fresh(now)));
        let target = self.shard_cap - self.shard_cap / 8 - 1;
        if map.len() <= target {
            return;
        }
        // Under pressure: forget the debt of the least recently used buckets with nothing in flight.
        let mut candidates: Vec<(u64, Box<str>)> = map
            .iter()
            .filter(|(_, b)| Arc::strong_count(b) == 1)
            .filter_map(|(k, b)| {
                let s = b.lock();
                (s.in_flight <= 0.0).then(|| (s.last_used, k.clone()))
            })
            .collect();
        let excess = (map.len() - target).min(candidates.len());
        if excess == 0 {
            return; // everything is in use or in flight: grow past the cap rather than lose live counts
        }
        candidates.select_nth_unstable_by_key(excess - 1, |c| c.0);
        for (_, k) in &candidates[..excess] {
            map.remove(k);
        }
    }

    /// Drops fresh buckets not in use and idle for at least `idle_ttl`; returns how many went. Call it periodically.
    pub fn evict_idle(&self) -> usize {
        let now = self.clock.now_ns();
        let mut removed = 0;
        for shard in &*self.shards {
            let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
            let before = map.len();
            map.retain(|_, b| {
                let s = b.lock();
                !(Arc::strong_count(b) == 1
                    && s.is_fresh(now)
                    && now.saturating_sub(s.last_used) >= self.idle_ttl_ns)
            });
            removed += before - map.len();
        }
        removed
    }

    /// Keys currently held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes `n` units of `limit` from the bucket of `key`: 0.0 when admitted, else the seconds until it would be
    /// (infinite when `n` exceeds the burst or the concurrency max). The single-limit fast path: one shard read
    /// lock, one bucket mutex, no allocation once the key exists.
    pub fn take(&self, key: &str, limit: &Limit, n: f64) -> Result<f64, CoreError> {
        let n = check_units(n)?; // refused before a bad call creates a key
        let shard = self.shard(key);
        {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(b) = map.get(key) {
                return Ok(self.take_one(b, limit, n));
            }
        }
        let b = self.insert_slow(shard, key);
        Ok(self.take_one(&b, limit, n))
    }

    fn take_one(&self, bucket: &Bucket, limit: &Limit, n: f64) -> f64 {
        let now = self.clock.now_ns();
        let mut s = bucket.lock();
        s.last_used = now;
        ns_to_seconds(take(&mut s, limit, n, now))
    }

    /// Takes every check's units, or none. `None` when all are admitted; else a [`Refusal`] naming the first check
    /// (in the order given) that refused and the seconds after which all would pass (the largest wait among the
    /// checks, each measured as if the others were not there). Checks on one key add up.
    pub fn take_all(&self, checks: &[Check<'_>]) -> Result<Option<Refusal>, CoreError> {
        for c in checks {
            check_units(c.n)?;
        }
        // Each distinct bucket is locked once, in address order, so that concurrent groups cannot deadlock.
        // `slot[i]` is the lock, and the scratch copy, of check i. Three allocations in all: this is the gateway's
        // per-call path.
        let mut by_bucket: Vec<(Arc<Bucket>, usize)> = checks
            .iter()
            .enumerate()
            .map(|(i, c)| (self.bucket(c.key), i))
            .collect();
        by_bucket.sort_unstable_by_key(|(b, _)| Arc::as_ptr(b) as usize);
        let mut locked: Vec<(MutexGuard<'_, BucketState>, BucketState)> =
            Vec::with_capacity(checks.len());
        let mut slot = vec![0usize; checks.len()];
        for (j, (bucket, i)) in by_bucket.iter().enumerate() {
            if j == 0 || !Arc::ptr_eq(&by_bucket[j - 1].0, bucket) {
                let guard = bucket.lock();
                let copy = *guard;
                locked.push((guard, copy));
            }
            slot[*i] = locked.len() - 1;
        }
        let now = self.clock.now_ns();
        // Work on the copies (two checks on one bucket add up); write back only if every check passes.
        let mut wait = 0u64;
        let mut first_refused = None;
        for (i, c) in checks.iter().enumerate() {
            let w = take(&mut locked[slot[i]].1, &c.limit, c.n, now);
            if w > 0 && first_refused.is_none() {
                first_refused = Some(i);
            }
            wait = wait.max(w);
        }
        for (guard, copy) in &mut locked {
            if first_refused.is_none() {
                **guard = *copy;
            }
            guard.last_used = now;
        }
        Ok(first_refused.map(|check| Refusal {
            wait_s: ns_to_seconds(wait),
            check,
        }))
    }

    /// Corrects an earlier take once the real amount is known: `delta > 0` takes more (unconditionally: the units
    /// were spent), `delta < 0` gives back, never past a full bucket. Under a concurrency limit, `-n` releases `n`.
    pub fn correct(&self, key: &str, limit: &Limit, delta: f64) -> Result<(), CoreError> {
        if !delta.is_finite() {
            return Err(CoreError::InvalidArgument(format!(
                "delta must be a finite number, got {delta}"
            )));
        }
        let now = self.clock.now_ns();
        let shard = self.shard(key);
        let found = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(Arc::clone);
        let b = match found {
            Some(b) => b,
            // Giving back to an absent (fresh) bucket leaves it fresh: no key is made for it.
            None if delta <= 0.0 => return Ok(()),
            None => self.insert_slow(shard, key),
        };
        let mut s = b.lock();
        s.last_used = now;
        adjust_state(&mut s, limit, delta, now);
        Ok(())
    }

    /// Units a rate limit would admit now, or the units still free under a concurrency limit (no side effect).
    pub fn available(&self, key: &str, limit: &Limit) -> f64 {
        let now = self.clock.now_ns();
        let shard = self.shard(key);
        let state = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|b| *b.lock())
            .unwrap_or_default();
        match *limit {
            Limit::Rate {
                interval_ns,
                tolerance_ns,
                ..
            } => {
                let debt = state.tat.saturating_sub(now);
                #[allow(clippy::cast_precision_loss)]
                let free = tolerance_ns.saturating_sub(debt) as f64 / interval_ns;
                free.floor()
            }
            Limit::Concurrency { max, .. } => (max - state.in_flight).max(0.0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // 0.0 is the exact "admitted" answer
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limiter() -> RateLimiter {
        RateLimiter::new(LimiterConfig::default(), Clock::manual()).unwrap()
    }

    /// A limiter on a manual clock that holds `max_keys` keys (`max_keys / 16` a shard).
    fn limiter_of(max_keys: usize, idle_ttl_s: f64) -> RateLimiter {
        RateLimiter::new(
            LimiterConfig {
                max_keys,
                idle_ttl_s,
            },
            Clock::manual(),
        )
        .unwrap()
    }

    #[test]
    fn burst_then_rate() {
        let l = limiter();
        let lim = Limit::rate(1.0, 3.0).unwrap();
        for _ in 0..3 {
            assert_eq!(l.take("k", &lim, 1.0).unwrap(), 0.0);
        }
        let wait = l.take("k", &lim, 1.0).unwrap();
        assert!((wait - 1.0).abs() < 1e-9, "{wait}");
        l.clock().advance(0.5).unwrap();
        assert!((l.take("k", &lim, 1.0).unwrap() - 0.5).abs() < 1e-9);
        l.clock().advance(0.5).unwrap();
        assert_eq!(l.take("k", &lim, 1.0).unwrap(), 0.0);
        assert!(l.take("k", &lim, 1.0).unwrap() > 0.0);
    }

    #[test]
    fn keys_are_independent() {
        let l = limiter();
        let lim = Limit::rate(1.0, 1.0).unwrap();
        assert_eq!(l.take("a", &lim, 1.0).unwrap(), 0.0);
        assert!(l.take("a", &lim, 1.0).unwrap() > 0.0);
        assert_eq!(l.take("b", &lim, 1.0).unwrap(), 0.0);
    }

    #[test]
    fn more_than_burst_is_never_admitted() {
        let l = limiter();
        let lim = Limit::rate(10.0, 5.0).unwrap();
        assert!(l.take("k", &lim, 6.0).unwrap().is_infinite());
        assert_eq!(
            l.take("k", &lim, 5.0).unwrap(),
            0.0,
            "a refused oversize take consumed nothing"
        );
        let conc = Limit::concurrency(2, 0.25).unwrap();
        assert!(l.take("c", &conc, 3.0).unwrap().is_infinite());
    }

    #[test]
    fn concurrency_acquire_release() {
        let l = limiter();
        let conc = Limit::concurrency(2, 0.25).unwrap();
        assert_eq!(l.take("c", &conc, 1.0).unwrap(), 0.0);
        assert_eq!(l.take("c", &conc, 1.0).unwrap(), 0.0);
        assert!((l.take("c", &conc, 1.0).unwrap() - 0.25).abs() < 1e-9);
        l.clock().advance(100.0).unwrap();
        assert!(
            l.take("c", &conc, 1.0).unwrap() > 0.0,
            "time does not release a concurrency slot"
        );
        l.correct("c", &conc, -1.0).unwrap();
        assert_eq!(l.take("c", &conc, 1.0).unwrap(), 0.0);
        l.correct("c", &conc, -10.0).unwrap();
        assert!(
            (l.available("c", &conc) - 2.0).abs() < f64::EPSILON,
            "release saturates at zero"
        );
    }

    #[test]
    fn all_or_none() {
        let l = limiter();
        let rpm = Limit::rate(1.0, 10.0).unwrap();
        let tpm = Limit::rate(100.0, 1000.0).unwrap();
        let checks = [
            Check {
                key: "rpm:key",
                limit: rpm,
                n: 1.0,
            },
            Check {
                key: "tpm:team",
                limit: tpm,
                n: 900.0,
            },
            Check {
                key: "tpm:model",
                limit: tpm,
                n: 900.0,
            },
        ];
        assert_eq!(l.take_all(&checks).unwrap(), None);
        // Both tpm buckets now hold 100 tokens: a second 900 is refused (the team's first), and nothing is taken
        // from any of the three.
        let refusal = l.take_all(&checks).unwrap().unwrap();
        assert_eq!(refusal.check, 1);
        assert!((refusal.wait_s - 8.0).abs() < 1e-6, "{refusal:?}");
        assert!((l.available("rpm:key", &rpm) - 9.0).abs() < f64::EPSILON);
        assert!((l.available("tpm:model", &tpm) - 100.0).abs() < f64::EPSILON);
        l.clock().advance(8.0).unwrap();
        assert_eq!(l.take_all(&checks).unwrap(), None);
    }

    #[test]
    fn same_bucket_twice_in_a_group_is_cumulative() {
        let l = limiter();
        let lim = Limit::rate(1.0, 3.0).unwrap();
        let checks = [
            Check {
                key: "k",
                limit: lim,
                n: 2.0,
            },
            Check {
                key: "k",
                limit: lim,
                n: 2.0,
            },
        ];
        assert_eq!(l.take_all(&checks).unwrap().map(|r| r.check), Some(1));
        assert!((l.available("k", &lim) - 3.0).abs() < f64::EPSILON);
        let checks = [
            Check {
                key: "k",
                limit: lim,
                n: 2.0,
            },
            Check {
                key: "k",
                limit: lim,
                n: 1.0,
            },
        ];
        assert_eq!(l.take_all(&checks).unwrap(), None);
        assert!(l.available("k", &lim).abs() < f64::EPSILON);
    }

    #[test]
    fn correct_takes_more_and_gives_back() {
        let l = limiter();
        let tpm = Limit::rate(10.0, 100.0).unwrap();
        assert_eq!(l.take("t", &tpm, 50.0).unwrap(), 0.0);
        l.correct("t", &tpm, 80.0).unwrap(); // the real count was 130
        assert!(
            l.take("t", &tpm, 1.0).unwrap() > 0.0,
            "over budget after the correction"
        );
        l.correct("t", &tpm, -40.0).unwrap();
        assert!((l.available("t", &tpm) - 10.0).abs() < f64::EPSILON);
        l.correct("t", &tpm, -1000.0).unwrap();
        assert!(
            (l.available("t", &tpm) - 100.0).abs() < f64::EPSILON,
            "a refund never overfills"
        );
    }

    #[test]
    fn idle_and_capacity_eviction() {
        let l = limiter_of(10_000, 10.0);
        let lim = Limit::rate(1.0, 1.0).unwrap();
        for i in 0..100 {
            l.take(&format!("k{i}"), &lim, 1.0).unwrap();
        }
        assert_eq!(l.len(), 100);
        assert_eq!(l.evict_idle(), 0, "buckets in debt are kept");
        l.clock().advance(5.0).unwrap();
        assert_eq!(l.evict_idle(), 0, "fresh but not idle long enough");
        l.clock().advance(5.0).unwrap();
        assert_eq!(l.evict_idle(), 100);
        assert!(l.is_empty());
        // Far more keys than max_keys, all in debt: memory stays bounded all the same.
        let l = limiter_of(160, 10.0);
        for i in 0..10_000 {
            l.take(&format!("x{i}"), &lim, 1.0).unwrap();
        }
        assert!(l.len() <= 160 + SHARDS, "{}", l.len());
    }

    #[test]
    fn a_bucket_in_use_is_never_evicted() {
        let l = limiter_of(16, 0.0);
        let lim = Limit::rate(1.0, 1.0).unwrap();
        // A group resolves its buckets before it locks them; one resolved and not yet released stays put.
        let b = l.bucket("in-use");
        l.clock().advance(10.0).unwrap();
        assert_eq!(l.evict_idle(), 0);
        assert_eq!(l.take_one(&b, &lim, 1.0), 0.0);
        assert!(
            l.take("in-use", &lim, 1.0).unwrap() > 0.0,
            "the call's bucket is the key's"
        );
        drop(b);
        l.clock().advance(10.0).unwrap();
        assert_eq!(l.evict_idle(), 1);
    }

    #[test]
    fn bad_arguments() {
        let message = |r: Result<Limit, CoreError>| r.unwrap_err().to_string();
        assert!(message(Limit::rate(0.0, 1.0)).contains("rate_per_s must be a positive number"));
        assert!(Limit::rate(-1.0, 1.0).is_err());
        assert!(Limit::rate(f64::NAN, 1.0).is_err());
        assert!(message(Limit::rate(1.0, 0.5)).contains("burst must be at least 1"));
        assert!(Limit::rate(1e-12, 1e12).is_err());
        // 1e10 units at 1 a second: 317 years of window, refused although rate and burst are each fine.
        assert!(message(Limit::rate(1.0, 1e10)).contains("too long a window"));
        assert!(Limit::rate(1.0, 1e9).is_ok());
        assert!(Limit::concurrency(0, 1.0).is_err());
        for retry_after in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            assert!(
                message(Limit::concurrency(1, retry_after)).contains("retry_after"),
                "{retry_after}"
            );
        }
        assert!(Limit::concurrency(1, 1e-3).is_ok());
        let l = limiter();
        let lim = Limit::rate(1.0, 1.0).unwrap();
        assert!(l.take("k", &lim, -1.0).is_err());
        assert!(l.take("k", &lim, f64::NAN).is_err());
        assert!(l.is_empty(), "a refused call creates no key");
        assert!(l.correct("k", &lim, f64::INFINITY).is_err());
        assert!(l
            .take_all(&[Check {
                key: "k",
                limit: lim,
                n: -1.0
            }])
            .is_err());
        assert!(l.is_empty(), "a refused group creates no key");
        assert!(RateLimiter::new(
            LimiterConfig {
                max_keys: 0,
                idle_ttl_s: 1.0
            },
            Clock::manual()
        )
        .is_err());
        assert!(Clock::monotonic().advance(1.0).is_err());
        assert!(Clock::manual().advance(-1.0).is_err());
    }

    #[test]
    fn threads_never_overadmit() {
        let l = Arc::new(RateLimiter::new(LimiterConfig::default(), Clock::monotonic()).unwrap());
        // A rate so slow that only the burst can be admitted during the test.
        let lim = Limit::rate(1e-3, 100.0).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| l.take("hot", &lim, 1.0).unwrap() == 0.0)
                        .count()
                })
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 100);
    }

    #[test]
    fn a_group_mixes_rates_and_concurrency_and_names_the_first_refusal() {
        let l = limiter();
        let rpm = Limit::rate(1.0, 60.0).unwrap();
        let slots = Limit::concurrency(1, 0.25).unwrap();
        let group = [
            Check {
                key: "k:rpm",
                limit: rpm,
                n: 1.0,
            },
            Check {
                key: "k:inflight",
                limit: slots,
                n: 1.0,
            },
        ];
        assert_eq!(l.take_all(&group).unwrap(), None);
        let refusal = l.take_all(&group).unwrap().unwrap();
        assert_eq!(refusal.check, 1, "only the slot refused");
        assert!((refusal.wait_s - 0.25).abs() < 1e-9, "{refusal:?}");
        assert!((l.available("k:rpm", &rpm) - 59.0).abs() < f64::EPSILON);
        l.correct("k:inflight", &slots, -1.0).unwrap();
        assert_eq!(l.take_all(&group).unwrap(), None);
        // Both refuse: the first in order is named, and the wait is the longer one: the rate's 1 s (two units
        // taken, a burst of two), not the slot's 0.25 s.
        let tight = Limit::rate(1.0, 2.0).unwrap();
        let both = [
            Check {
                key: "k:rpm",
                limit: tight,
                n: 1.0,
            },
            Check {
                key: "k:inflight",
                limit: slots,
                n: 1.0,
            },
        ];
        let refusal = l.take_all(&both).unwrap().unwrap();
        assert_eq!(refusal.check, 0);
        assert!((refusal.wait_s - 1.0).abs() < 1e-6, "{refusal:?}");
        let never = [Check {
            key: "k:rpm",
            limit: rpm,
            n: 61.0,
        }];
        assert!(l.take_all(&never).unwrap().unwrap().wait_s.is_infinite());
        assert_eq!(l.take_all(&[]).unwrap(), None, "an empty group admits");
    }

    #[test]
    fn a_take_of_the_whole_burst_while_in_debt_waits_rather_than_never_fits() {
        let l = limiter();
        let lim = Limit::rate(1.0, 3.0).unwrap();
        assert_eq!(l.take("k", &lim, 1.0).unwrap(), 0.0);
        let wait = l.take("k", &lim, 3.0).unwrap();
        assert!((wait - 1.0).abs() < 1e-9, "{wait}");
        assert!(l.take("k", &lim, 3.000_001).unwrap().is_infinite());
    }

    #[test]
    fn concurrency_counts_what_is_held() {
        let l = limiter();
        let slots = Limit::concurrency(3, 0.05).unwrap();
        assert!(l.is_empty());
        assert_eq!(l.take("c", &slots, 2.0).unwrap(), 0.0);
        assert!(!l.is_empty());
        assert!((l.available("c", &slots) - 1.0).abs() < f64::EPSILON);
        l.correct("c", &slots, -1.0).unwrap();
        assert!((l.available("c", &slots) - 2.0).abs() < f64::EPSILON);
        l.correct("c", &slots, 2.0).unwrap(); // held without asking: now all three
        assert!(l.available("c", &slots).abs() < f64::EPSILON);
        assert!(l.take("c", &slots, 1.0).unwrap() > 0.0);
    }

    /// `n` keys that land in the same shard as `k0`, in order.
    fn same_shard_keys(l: &RateLimiter, n: usize) -> Vec<String> {
        let first = l.shard("k0");
        (0..)
            .map(|i| format!("k{i}"))
            .filter(|k| std::ptr::eq(l.shard(k), first))
            .take(n)
            .collect()
    }

    #[test]
    fn a_full_shard_forgets_only_its_least_recently_used_debts() {
        let debt = Limit::rate(1.0, 1.0).unwrap(); // one unit puts a bucket one second in debt
        let in_debt = |l: &RateLimiter, k: &str| l.available(k, &debt) < 1.0;

        // max_keys 1,600 over 16 shards: 100 keys a shard, trimmed to 87 (7/8, minus the newcomer's room) when
        // full. A hundred live buckets taken 1 ms apart: the 101st key drops exactly the 13 least recently used.
        let l = limiter_of(1600, 300.0);
        let keys = same_shard_keys(&l, 101);
        for k in &keys[..100] {
            assert_eq!(l.take(k, &debt, 1.0).unwrap(), 0.0);
            l.clock().advance(0.001).unwrap();
        }
        assert!(
            keys[..100].iter().all(|k| in_debt(&l, k)),
            "a shard holds 100"
        );
        assert_eq!(l.take(&keys[100], &debt, 1.0).unwrap(), 0.0);
        assert_eq!(l.len(), 88);
        assert!(keys[..13].iter().all(|k| !in_debt(&l, k)));
        assert!(keys[13..].iter().all(|k| in_debt(&l, k)));

        // max_keys 160: 10 a shard, trimmed to 8. Ten live buckets: the eleventh key drops the two oldest.
        let l = limiter_of(160, 300.0);
        let keys = same_shard_keys(&l, 11);
        for k in &keys[..10] {
            assert_eq!(l.take(k, &debt, 1.0).unwrap(), 0.0);
            l.clock().advance(0.001).unwrap();
        }
        assert_eq!(l.take(&keys[10], &debt, 1.0).unwrap(), 0.0);
        assert_eq!(l.len(), 9);
        assert!(!in_debt(&l, &keys[0]) && !in_debt(&l, &keys[1]));
        assert!(keys[2..].iter().all(|k| in_debt(&l, k)));

        // Nine live buckets and a fresh one used last: the fresh one goes first (it loses nothing), then one LRU.
        let l = limiter_of(160, 300.0);
        for k in &keys[..9] {
            assert_eq!(l.take(k, &debt, 1.0).unwrap(), 0.0);
            l.clock().advance(0.001).unwrap();
        }
        assert_eq!(l.take(&keys[9], &debt, 0.0).unwrap(), 0.0); // touched, owes nothing
        assert_eq!(l.take(&keys[10], &debt, 1.0).unwrap(), 0.0);
        assert_eq!(l.len(), 9);
        assert!(!in_debt(&l, &keys[0]));
        assert!(keys[1..9].iter().all(|k| in_debt(&l, k)));
        assert!(in_debt(&l, &keys[10]));
    }

    #[test]
    fn a_full_shard_forgets_what_it_can_and_grows_past_its_cap_rather_than_drop_a_held_slot() {
        // max_keys 160: 10 a shard, trimmed to 8 when full. Nine slots held and one bucket in debt: the newcomer
        // needs two buckets gone, only the one in debt may go, so it goes and the shard grows back to 10.
        let l = limiter_of(160, 300.0);
        let keys = same_shard_keys(&l, 11);
        let slot = Limit::concurrency(1, 0.05).unwrap();
        let debt = Limit::rate(1.0, 1.0).unwrap();
        for k in &keys[..9] {
            assert_eq!(l.take(k, &slot, 1.0).unwrap(), 0.0);
        }
        assert_eq!(l.take(&keys[9], &debt, 1.0).unwrap(), 0.0);
        assert_eq!(l.take(&keys[10], &debt, 1.0).unwrap(), 0.0);
        assert_eq!(l.len(), 10);
        assert!(keys[..9]
            .iter()
            .all(|k| l.available(k, &slot).abs() < f64::EPSILON));
        assert!((l.available(&keys[9], &debt) - 1.0).abs() < f64::EPSILON);
        assert!(l.available(&keys[10], &debt) < 1.0);
    }

    #[test]
    fn max_keys_is_the_whole_limiter_s_capacity() {
        // 1,300 live keys fit in a limiter of 1,600 (100 a shard): none is dropped, so the keys must be spread.
        let l = limiter_of(1600, 300.0);
        let debt = Limit::rate(1.0, 1.0).unwrap();
        for i in 0..1300 {
            assert_eq!(l.take(&format!("key-{i}"), &debt, 1.0).unwrap(), 0.0);
        }
        assert_eq!(l.len(), 1300);
        assert!((0..1300).all(|i| l.available(&format!("key-{i}"), &debt) < 1.0));
    }

    #[test]
    fn idle_buckets_in_debt_or_in_flight_are_kept() {
        let l = limiter_of(1000, 10.0);
        let slow = Limit::rate(0.01, 1.0).unwrap(); // one unit is 100 s of debt
        let slots = Limit::concurrency(1, 0.05).unwrap();
        assert_eq!(l.take("owes", &slow, 1.0).unwrap(), 0.0);
        assert_eq!(l.take("holds", &slots, 1.0).unwrap(), 0.0);
        assert_eq!(l.take("owes-nothing", &slow, 0.0).unwrap(), 0.0);
        l.clock().advance(20.0).unwrap();
        assert_eq!(l.evict_idle(), 1, "only the fresh bucket goes");
        assert!(l.take("owes", &slow, 1.0).unwrap() > 0.0);
        assert!(l.take("holds", &slots, 1.0).unwrap() > 0.0);
        l.clock().advance(100.0).unwrap();
        l.correct("holds", &slots, -1.0).unwrap();
        l.clock().advance(10.0).unwrap();
        assert_eq!(l.evict_idle(), 2, "paid up and released: fresh once idle");
        assert!(l.is_empty());
    }

    #[test]
    fn giving_back_to_an_absent_key_makes_no_key() {
        let l = limiter();
        let tpm = Limit::rate(10.0, 100.0).unwrap();
        let slots = Limit::concurrency(1, 0.05).unwrap();
        l.correct("gone", &tpm, -5.0).unwrap();
        l.correct("gone", &slots, -1.0).unwrap();
        assert!(l.is_empty());
        l.correct("spent", &tpm, 150.0).unwrap();
        assert_eq!(l.len(), 1, "taking more does make the key");
        assert!(l.take("spent", &tpm, 1.0).unwrap() > 0.0);
    }

    proptest! {
        /// Over any sequence of takes and clock steps, admitted units <= burst + rate * elapsed.
        #[test]
        fn never_admits_more_than_rate_times_window_plus_burst(
            rate in 0.1f64..1000.0,
            burst in 1.0f64..500.0,
            steps in proptest::collection::vec((0.0f64..50.0, 0.0f64..2.0), 1..200),
        ) {
            let l = limiter();
            let lim = Limit::rate(rate, burst).unwrap();
            let mut admitted = 0.0f64;
            let mut elapsed = 0.0f64;
            for (n, dt) in steps {
                l.clock().advance(dt).unwrap();
                elapsed += (dt * 1e9).round() / 1e9;
                if l.take("k", &lim, n).unwrap() == 0.0 {
                    admitted += n;
                }
                prop_assert!(admitted <= burst + rate * elapsed + 1e-6,
                    "admitted {} > burst {} + rate {} * {}", admitted, burst, rate, elapsed);
            }
        }

        /// A denied group changes no bucket.
        #[test]
        fn denied_group_takes_nothing(ns in proptest::collection::vec(1.0f64..20.0, 2..6)) {
            let l = limiter();
            let lim = Limit::rate(1.0, 20.0).unwrap();
            let checks: Vec<Check<'_>> = ns.iter().enumerate()
                .map(|(i, &n)| Check { key: ["a", "b", "c"][i % 3], limit: lim, n }).collect();
            let before: Vec<f64> = ["a", "b", "c"].iter().map(|k| l.available(k, &lim)).collect();
            let refusal = l.take_all(&checks).unwrap();
            let after: Vec<f64> = ["a", "b", "c"].iter().map(|k| l.available(k, &lim)).collect();
            if refusal.is_some() {
                prop_assert_eq!(before, after);
            }
        }
    }
}

//! Bindings of the rate limiter: `gateway._core.RateLimiter`.
//!
//! Checks are O(1) and take well under a microsecond, about what releasing and re-taking the GIL costs, so they run
//! with the GIL held (measured in benches/core/bench_ratelimit.py); a shard's mutex is held only for a few loads and
//! stores, so other threads are never blocked for long.

use pyo3::prelude::*;

use crate::ratelimit::{Limit, RateLimiter};

/// Rate and concurrency limits keyed by any string (a key, a team, a model...), thread-safe, with idle keys evicted.
#[pyclass(name = "RateLimiter", frozen, module = "gateway._core")]
pub struct PyRateLimiter {
    inner: RateLimiter,
}

#[pymethods]
impl PyRateLimiter {
    #[new]
    #[pyo3(signature = (max_keys = 100_000))]
    fn new(max_keys: usize) -> Self {
        Self {
            inner: RateLimiter::with_monotonic_clock(max_keys),
        }
    }

    /// A limiter whose clock moves only by `advance()`, for deterministic tests.
    #[staticmethod]
    #[pyo3(signature = (max_keys = 100_000))]
    fn with_test_clock(max_keys: usize) -> Self {
        Self {
            inner: RateLimiter::with_test_clock(max_keys),
        }
    }

    /// Admits `cost` units against `rate_per_s` with a `burst`: 0.0 when admitted (and taken), else retry-after.
    #[pyo3(signature = (key, rate_per_s, burst, cost = 1.0))]
    fn check(&self, key: &str, rate_per_s: f64, burst: f64, cost: f64) -> PyResult<f64> {
        Ok(self.inner.check(Limit {
            key,
            rate_per_s,
            burst,
            cost,
        })?)
    }

    /// Several (key, rate_per_s, burst, cost) limits at once, all or none: 0.0 when every one admitted, else the
    /// seconds until all would.
    fn check_many(&self, limits: Vec<(String, f64, f64, f64)>) -> PyResult<f64> {
        let borrowed: Vec<Limit<'_>> = limits
            .iter()
            .map(|(key, rate_per_s, burst, cost)| Limit {
                key,
                rate_per_s: *rate_per_s,
                burst: *burst,
                cost: *cost,
            })
            .collect();
        Ok(self.inner.check_many(&borrowed)?)
    }

    /// Corrects an earlier take once the real cost is known: positive `delta` takes more, negative gives back.
    fn adjust(&self, key: &str, rate_per_s: f64, burst: f64, delta: f64) -> PyResult<()> {
        Ok(self.inner.adjust(
            Limit {
                key,
                rate_per_s,
                burst,
                cost: 0.0,
            },
            delta,
        )?)
    }

    /// Takes one of `max_concurrent` slots; False when all are held. Pair every True with `release`.
    fn acquire(&self, key: &str, max_concurrent: u32) -> bool {
        self.inner.acquire(key, max_concurrent)
    }

    fn release(&self, key: &str) {
        self.inner.release(key);
    }

    /// Moves a test clock forward (ValueError on a limiter with the real clock).
    fn advance(&self, seconds: f64) -> PyResult<()> {
        Ok(self.inner.advance(seconds)?)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRateLimiter>()
}

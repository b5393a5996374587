//! Bindings of the rate limiter: `gateway._core.RateLimiter` and `Limit`.
//!
//! Every call is O(1) (or O(limits) for a group) and takes ~0.1 µs, less than a GIL release and re-take costs, so
//! nothing here detaches (measured in benches/core/bench_ratelimit.py). A bucket mutex is held for a few loads and
//! stores only, so a thread holding the GIL never waits long on another.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::ratelimit::{Check, Clock, Limit, LimiterConfig, RateLimiter};

/// How a bucket is read: a rate with a burst (GCRA), or a maximum in flight. Build once, reuse on every call.
#[pyclass(name = "Limit", frozen, module = "gateway._core")]
#[derive(Clone, Copy)]
pub struct PyLimit {
    inner: Limit,
}

#[pymethods]
impl PyLimit {
    /// `rate_per_s` units per second, at most `burst` units at once.
    #[new]
    fn new(rate_per_s: f64, burst: f64) -> PyResult<Self> {
        Ok(Self {
            inner: Limit::rate(rate_per_s, burst)?,
        })
    }

    /// `n` units per minute (rpm, tpm); the burst defaults to one minute's worth.
    #[staticmethod]
    #[pyo3(signature = (n, burst = None))]
    fn per_minute(n: f64, burst: Option<f64>) -> PyResult<Self> {
        Ok(Self {
            inner: Limit::rate(n / 60.0, burst.unwrap_or(n))?,
        })
    }

    /// At most `max_concurrent` units held at once; a denial answers `retry_after` seconds (a count has no refill).
    #[staticmethod]
    #[pyo3(signature = (max_concurrent, retry_after = 0.05))]
    fn concurrent(max_concurrent: u32, retry_after: f64) -> PyResult<Self> {
        Ok(Self {
            inner: Limit::concurrency(max_concurrent, retry_after)?,
        })
    }

    /// `"rate"` or `"concurrency"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner {
            Limit::Rate { .. } => "rate",
            Limit::Concurrency { .. } => "concurrency",
        }
    }

    /// Units per second of a rate limit; None for a concurrency limit.
    #[getter]
    fn rate_per_s(&self) -> Option<f64> {
        match self.inner {
            Limit::Rate { per_second, .. } => Some(per_second),
            Limit::Concurrency { .. } => None,
        }
    }

    /// Burst of a rate limit, or the maximum in flight of a concurrency limit.
    #[getter]
    fn burst(&self) -> f64 {
        match self.inner {
            Limit::Rate { burst, .. } => burst,
            Limit::Concurrency { max, .. } => max,
        }
    }

    fn __repr__(&self) -> String {
        match self.inner {
            Limit::Rate {
                per_second, burst, ..
            } => format!("Limit(rate_per_s={per_second}, burst={burst})"),
            Limit::Concurrency { max, retry_after_s } => {
                format!("Limit.concurrent({max}, retry_after={retry_after_s})")
            }
        }
    }
}

/// Rate and concurrency limits keyed by any string (a key, a team, a model...): thread-safe, bounded memory.
#[pyclass(name = "RateLimiter", frozen, module = "gateway._core")]
pub struct PyRateLimiter {
    inner: RateLimiter,
}

fn limiter(max_keys: usize, idle_ttl: f64, clock: Clock) -> PyResult<PyRateLimiter> {
    let config = LimiterConfig {
        max_keys,
        idle_ttl_s: idle_ttl,
    };
    Ok(PyRateLimiter {
        inner: RateLimiter::new(config, clock)?,
    })
}

#[pymethods]
impl PyRateLimiter {
    #[new]
    #[pyo3(signature = (max_keys = 100_000, idle_ttl = 300.0))]
    fn new(max_keys: usize, idle_ttl: f64) -> PyResult<Self> {
        limiter(max_keys, idle_ttl, Clock::monotonic())
    }

    /// A limiter whose clock moves only by `advance()`, for deterministic tests.
    #[staticmethod]
    #[pyo3(signature = (max_keys = 100_000, idle_ttl = 300.0))]
    fn with_test_clock(max_keys: usize, idle_ttl: f64) -> PyResult<Self> {
        limiter(max_keys, idle_ttl, Clock::manual())
    }

    /// Takes `n` units of `limit` from `key`'s bucket: 0.0 when admitted, else retry-after seconds (inf when `n`
    /// can never fit: above the burst or the concurrency max).
    #[pyo3(signature = (key, limit, n = 1.0))]
    fn take(&self, key: &str, limit: &Bound<'_, PyLimit>, n: f64) -> PyResult<f64> {
        Ok(self.inner.take(key, &limit.get().inner, n)?)
    }

    /// (key, Limit, n) checks, rate and concurrency mixed, all or none: None when all are admitted (and taken),
    /// else (seconds until all would be, index of the first check that refused).
    fn take_all<'py>(&self, checks: &Bound<'py, PyAny>) -> PyResult<Option<(f64, usize)>> {
        let mut items: Vec<(Bound<'py, PyString>, Limit, f64)> = Vec::new();
        let mut add = |item: Bound<'py, PyAny>| -> PyResult<()> {
            let (key, limit, n): (Bound<'py, PyString>, Bound<'py, PyLimit>, f64) =
                item.extract()?;
            items.push((key, limit.get().inner, n));
            Ok(())
        };
        // A list (what LimitKeeper passes) is read by index, without a Python iterator object.
        if let Ok(list) = checks.cast::<PyList>() {
            list.iter().try_for_each(&mut add)?;
        } else {
            for item in checks.try_iter()? {
                add(item?)?;
            }
        }
        let checks = items
            .iter()
            .map(|(key, limit, n)| {
                Ok(Check {
                    key: key.to_str()?,
                    limit: *limit,
                    n: *n,
                })
            })
            .collect::<PyResult<Vec<Check<'_>>>>()?;
        let refusal = self.inner.take_all(&checks)?;
        Ok(refusal.map(|r| (r.wait_s, r.check)))
    }

    /// Corrects a take under `limit` once the real amount is known: `delta > 0` takes more, `delta < 0` gives back
    /// (releases, under a concurrency limit).
    fn correct(&self, key: &str, limit: &Bound<'_, PyLimit>, delta: f64) -> PyResult<()> {
        Ok(self.inner.correct(key, &limit.get().inner, delta)?)
    }

    /// Units `limit` would admit on `key` now (no side effect).
    fn available(&self, key: &str, limit: &Bound<'_, PyLimit>) -> f64 {
        self.inner.available(key, &limit.get().inner)
    }

    /// Drops buckets idle for `idle_ttl` whose state equals a fresh one (no answer changes); returns the count.
    fn evict_idle(&self) -> usize {
        self.inner.evict_idle()
    }

    /// Moves a test clock forward (ValueError on a limiter with the real clock).
    fn advance(&self, seconds: f64) -> PyResult<()> {
        Ok(self.inner.clock().advance(seconds)?)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRateLimiter>()?;
    m.add_class::<PyLimit>()
}

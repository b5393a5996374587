//! Bindings of the drift monitor's open window: `gateway._core.DriftWindow`.
//!
//! `observe` is O(metrics) (a handful) and takes well under a microsecond, less than a GIL hand-off costs, so
//! nothing here detaches; the mutex is held for those few adds only.

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::drift::{Metric, Observation, OpenWindow, Scale};

/// One (model, provider)'s open window of the drift monitor: `observe` each finished call, `take` the window when
/// it closes.
#[pyclass(name = "DriftWindow", frozen, module = "gateway._core")]
pub struct PyDriftWindow {
    inner: Mutex<OpenWindow>,
}

impl PyDriftWindow {
    fn window(&self) -> MutexGuard<'_, OpenWindow> {
        // A panic cannot happen while the lock is held (plain adds), so a poisoned lock still holds whole counts.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl PyDriftWindow {
    /// `seconds_edges`, `tokens_edges`: the histograms' edges, ascending (else InvalidArgumentError);
    /// `max_categories`: labels kept per categorical metric (the last of them `other`); `max_route_rules`: route
    /// rules kept before others count as `other`.
    #[new]
    fn new(
        seconds_edges: Vec<f64>,
        tokens_edges: Vec<f64>,
        max_categories: usize,
        max_route_rules: usize,
    ) -> PyResult<Self> {
        let window = OpenWindow::new(seconds_edges, tokens_edges, max_categories, max_route_rules)?;
        Ok(Self {
            inner: Mutex::new(window),
        })
    }

    /// One finished call: its status and prompt length always; latency, time to first chunk, answer length, finish
    /// reason and refusal only when `status` is `OK`. None (or an empty finish reason): not known, not counted.
    #[pyo3(signature = (status, latency_s, ttfc_s = None, answer_tokens = None, finish_reason = "", refused = None,
        prompt_tokens = None, route_rule = ""))]
    #[allow(clippy::too_many_arguments)] // one call's figures, passed by position from the hot path
    fn observe(
        &self,
        status: &str,
        latency_s: f64,
        ttfc_s: Option<f64>,
        answer_tokens: Option<f64>,
        finish_reason: &str,
        refused: Option<bool>,
        prompt_tokens: Option<f64>,
        route_rule: &str,
    ) {
        self.window().observe(&Observation {
            status,
            latency_s,
            ttfc_s,
            answer_tokens,
            finish_reason,
            refused,
            prompt_tokens,
            route_rule,
        });
    }

    /// The window's metrics in `drift.encode_window`'s shape; the window starts again empty.
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let metrics = self.window().take();
        encode(py, &metrics)
    }

    /// The window's metrics so far in `drift.encode_window`'s shape, the window unchanged.
    fn peek<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let window = self.window();
        encode(py, window.metrics())
    }

    /// The metrics with values in the open window: 0 before its first call.
    fn __len__(&self) -> usize {
        self.window().metrics().len()
    }

    fn __repr__(&self) -> String {
        format!("DriftWindow({} metrics)", self.__len__())
    }
}

/// `{name: {"e": "s" | "t", "b": [(bin, count), ...], "n": n, "t": total}}` for histograms (non-zero bins only),
/// `{name: {"c": {label: count}, "n": n}}` for categories.
fn encode<'py>(py: Python<'py>, metrics: &[(String, Metric)]) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (name, metric) in metrics {
        let entry = PyDict::new(py);
        match metric {
            Metric::Numeric(histogram) => {
                let scale = match histogram.scale {
                    Scale::Seconds => "s",
                    Scale::Tokens => "t",
                };
                let bins: Vec<(usize, u64)> = histogram
                    .counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &count)| count > 0)
                    .map(|(bin, &count)| (bin, count))
                    .collect();
                entry.set_item("e", scale)?;
                entry.set_item("b", PyList::new(py, bins)?)?;
                entry.set_item("n", histogram.n)?;
                entry.set_item("t", histogram.total)?;
            }
            Metric::Categorical(tally) => {
                let counts = PyDict::new(py);
                for (label, count) in &tally.counts {
                    counts.set_item(label, count)?;
                }
                entry.set_item("c", counts)?;
                entry.set_item("n", tally.n)?;
            }
        }
        out.set_item(name, entry)?;
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDriftWindow>()
}

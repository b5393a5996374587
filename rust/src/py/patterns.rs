//! Bindings of the multi-pattern search: `PatternSet`.

use pyo3::prelude::*;

use super::gil::detach_if;
use crate::patterns::PatternSet;

/// Matching runs at ~0.3 µs a kB; from 64 kB (~20 µs) other threads gain more from the GIL than getting it back may
/// cost (see `super::gil`).
const DETACH_MIN_BYTES: usize = 64 * 1024;

/// Many regexes over one text, each reporting its own leftmost-first, non-overlapping matches.
#[pyclass(frozen, module = "gateway._core", name = "PatternSet")]
pub struct PyPatternSet {
    inner: PatternSet,
    sources: Vec<String>,
}

#[pymethods]
impl PyPatternSet {
    /// Compiles the patterns (Rust `regex` syntax); ValueError names the first that does not compile.
    #[new]
    fn new(patterns: Vec<String>) -> PyResult<Self> {
        Ok(PyPatternSet {
            inner: PatternSet::new(&patterns)?,
            sources: patterns,
        })
    }

    /// `(pattern index, start, end)` in characters, at most `limit` per pattern, ordered by pattern then start.
    #[pyo3(signature = (text, limit = 64))]
    fn find_all(&self, py: Python<'_>, text: String, limit: usize) -> Vec<(usize, usize, usize)> {
        detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
            self.inner
                .find_all(&text, limit)
                .into_iter()
                .map(|m| (m.pattern, m.start, m.end))
                .collect()
        })
    }

    /// Indices of the patterns that match anywhere in `text`.
    fn which(&self, py: Python<'_>, text: String) -> Vec<usize> {
        detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
            self.inner.which(&text)
        })
    }

    #[getter]
    fn patterns(&self) -> Vec<String> {
        self.sources.clone()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("PatternSet({} patterns)", self.inner.len())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPatternSet>()?;
    Ok(())
}

//! Bindings of the linear text classifier: `hashed_ngrams` (for the training script) and `LinearTextModel`.

use pyo3::prelude::*;

use super::gil::detach_if;
use crate::textmodel::{Featurizer, LinearTextModel};

/// Scoring runs at ~25 ns a byte; from 2 kB (~50 µs) other threads gain more from the GIL than getting it back may
/// cost (see `super::gil`).
const DETACH_MIN_BYTES: usize = 2 * 1024;

/// The hashed features of each window of `text`: `(bucket indices, values)` per window, the vectors the model
/// scores. The training script builds its matrix from these, so training and serving share one featurizer.
#[pyfunction]
#[pyo3(name = "hashed_ngrams")]
fn py_hashed_ngrams(
    py: Python<'_>,
    text: String,
    dim_bits: u32,
    window: usize,
    stride: usize,
) -> PyResult<Vec<(Vec<u32>, Vec<f32>)>> {
    let featurizer = Featurizer::new(dim_bits, window, stride)?;
    Ok(detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
        featurizer.features(&text)
    }))
}

/// A linear model over hashed n-grams, loaded from the bytes of its file.
#[pyclass(frozen, module = "gateway._core", name = "LinearTextModel")]
pub struct PyLinearTextModel {
    inner: LinearTextModel,
}

#[pymethods]
impl PyLinearTextModel {
    #[new]
    fn new(data: &[u8]) -> PyResult<Self> {
        Ok(PyLinearTextModel {
            inner: LinearTextModel::from_bytes(data)?,
        })
    }

    /// The calibrated score in [0, 1] of the text's margin; 0 for a text without words.
    fn score(&self, py: Python<'_>, text: String) -> f32 {
        detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
            self.inner.score(&text)
        })
    }

    /// The text's raw margin: its worst window's less the penalty for many windows and the discount for a typical
    /// window leaning towards "attack"; None for a text without words.
    fn margin(&self, py: Python<'_>, text: String) -> Option<f32> {
        detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
            self.inner.margin(&text)
        })
    }

    /// The raw margin of each window, in order (for calibration and tests).
    fn margins(&self, py: Python<'_>, text: String) -> Vec<f32> {
        detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
            self.inner.margins(&text)
        })
    }

    #[getter]
    fn dim_bits(&self) -> u32 {
        self.inner.featurizer().dim_bits
    }

    #[getter]
    fn window(&self) -> usize {
        self.inner.featurizer().window
    }

    #[getter]
    fn stride(&self) -> usize {
        self.inner.featurizer().stride
    }

    fn __repr__(&self) -> String {
        let f = self.inner.featurizer();
        format!(
            "LinearTextModel(dim_bits={}, window={}, stride={})",
            f.dim_bits, f.window, f.stride
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_hashed_ngrams, m)?)?;
    m.add_class::<PyLinearTextModel>()?;
    Ok(())
}

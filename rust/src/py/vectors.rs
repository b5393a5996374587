//! Bindings of the vector index: `gateway._core.VectorIndex`.

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use crate::vectors::{self, VectorIndex};

/// A vector from a list of floats or a 1-d float32 numpy array (read without copying it twice).
#[derive(FromPyObject)]
enum VectorArg<'py> {
    Array(PyReadonlyArray1<'py, f32>),
    List(Vec<f32>),
}

impl VectorArg<'_> {
    fn to_vec(&self) -> PyResult<Vec<f32>> {
        match self {
            VectorArg::Array(array) => Ok(array.as_slice()?.to_vec()),
            VectorArg::List(list) => Ok(list.clone()),
        }
    }
}

/// Per-namespace cosine-similarity index of embeddings: exact while small, an HNSW graph (usearch) when large.
#[pyclass(name = "VectorIndex", frozen, module = "gateway._core")]
pub struct PyVectorIndex {
    inner: VectorIndex,
}

#[pymethods]
impl PyVectorIndex {
    #[new]
    #[pyo3(signature = (dim, hnsw_min_vectors = vectors::HNSW_MIN_VECTORS))]
    fn new(dim: usize, hnsw_min_vectors: usize) -> PyResult<Self> {
        Ok(Self {
            inner: VectorIndex::with_threshold(dim, hnsw_min_vectors)?,
        })
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Adds or replaces `id` in `namespace` (the vector is normalised).
    fn insert(
        &self,
        py: Python<'_>,
        namespace: &str,
        id: u64,
        vector: VectorArg<'_>,
    ) -> PyResult<()> {
        let vector = vector.to_vec()?;
        Ok(py.detach(|| self.inner.insert(namespace, id, &vector))?)
    }

    /// Removes `id`; False when it was not in `namespace`.
    fn remove(&self, namespace: &str, id: u64) -> bool {
        self.inner.remove(namespace, id)
    }

    /// Up to `k` (id, cosine similarity) pairs of `namespace` with similarity >= `min_score`, best first.
    #[pyo3(signature = (namespace, vector, k = 1, min_score = -1.0))]
    fn search(
        &self,
        py: Python<'_>,
        namespace: &str,
        vector: VectorArg<'_>,
        k: usize,
        min_score: f32,
    ) -> PyResult<Vec<(u64, f32)>> {
        let vector = vector.to_vec()?;
        Ok(py.detach(|| self.inner.search(namespace, &vector, k, min_score))?)
    }

    /// Waits until background graph building has caught up (for tests and benchmarks).
    fn flush(&self, py: Python<'_>) {
        py.detach(|| self.inner.flush());
    }

    #[pyo3(signature = (namespace = None))]
    fn count(&self, namespace: Option<&str>) -> usize {
        self.inner.len(namespace)
    }

    fn __len__(&self) -> usize {
        self.inner.len(None)
    }

    fn save(&self, py: Python<'_>, path: &str) -> PyResult<()> {
        Ok(py.detach(|| self.inner.save(path))?)
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: &str) -> PyResult<Self> {
        Ok(Self {
            inner: py.detach(|| VectorIndex::load(path))?,
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyVectorIndex>()
}

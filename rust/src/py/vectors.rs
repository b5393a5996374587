//! Bindings of the vector index: `gateway._core.VectorIndex`.
//!
//! A vector arrives as a float32 buffer (numpy array, array('f'), memoryview: one copy, no per-element Python
//! call) or as any sequence of floats. Search and insert detach from the interpreter: a search at 100k vectors is
//! ~0.1-0.5 ms, long enough that other Python threads should run meanwhile.

use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

use super::errors::invalid_argument;
use crate::vectors::{IndexConfig, Quantization, VectorIndex, DEFAULT_HNSW_THRESHOLD};

/// Copies a vector argument into an owned Vec: one memcpy for a contiguous float32 buffer, else element by element.
fn vector_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    if let Ok(buf) = PyBuffer::<f32>::get(obj) {
        if buf.dimensions() > 1 && buf.shape().iter().filter(|&&d| d != 1).count() > 1 {
            return Err(invalid_argument(format!(
                "vector must be one-dimensional, got shape {:?}",
                buf.shape()
            )));
        }
        return buf.to_vec(obj.py());
    }
    obj.extract::<Vec<f32>>().map_err(|_| {
        invalid_argument(
            "vector must be a float32 buffer (e.g. numpy.float32 array) or a sequence of floats",
        )
    })
}

/// Per-namespace cosine index of embeddings: exact scan while a namespace is small, an HNSW graph (usearch)
/// filled in the background once it holds `hnsw_min_vectors` vectors. Vectors are L2-normalised on the way in.
#[pyclass(name = "VectorIndex", frozen, module = "gateway._core")]
pub struct PyVectorIndex {
    inner: VectorIndex,
}

#[pymethods]
impl PyVectorIndex {
    #[new]
    #[pyo3(
        signature = (dim, hnsw_min_vectors = DEFAULT_HNSW_THRESHOLD, expansion_search = 64, *, connectivity = 16, expansion_add = 128, quantization = "bf16"),
        text_signature = "(dim, hnsw_min_vectors=4096, expansion_search=64, *, connectivity=16, expansion_add=128, quantization='bf16')"
    )]
    fn new(
        dim: usize,
        hnsw_min_vectors: usize,
        expansion_search: usize,
        connectivity: usize,
        expansion_add: usize,
        quantization: &str,
    ) -> PyResult<Self> {
        let config = IndexConfig {
            dim,
            hnsw_threshold: hnsw_min_vectors,
            connectivity,
            expansion_add,
            expansion_search,
            quantization: Quantization::parse(quantization)?,
        };
        Ok(Self {
            inner: VectorIndex::new(config)?,
        })
    }

    /// How the graphs store vectors: "f32", "bf16" (default), "f16" or "i8"; scores are always exact f32.
    #[getter]
    fn quantization(&self) -> &'static str {
        self.inner.config().quantization.name()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.config().dim
    }

    /// The namespace size from which a graph is built.
    #[getter]
    fn hnsw_min_vectors(&self) -> usize {
        self.inner.config().hnsw_threshold
    }

    /// Inserts (or replaces) `id` in `namespace`. ValueError for a wrong dimension, NaN or the zero vector.
    fn insert(
        &self,
        py: Python<'_>,
        namespace: &str,
        id: u64,
        vector: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let v = vector_arg(vector)?;
        Ok(py.detach(|| self.inner.insert(namespace, id, v))?)
    }

    /// Removes `id` from `namespace`; False when it was not there.
    fn remove(&self, py: Python<'_>, namespace: &str, id: u64) -> PyResult<bool> {
        Ok(py.detach(|| self.inner.remove(namespace, id))?)
    }

    /// The `k` most similar entries of `namespace` with cosine >= `min_score`, as (id, score), best first.
    #[pyo3(
        signature = (namespace, vector, k = 1, min_score = -1.0),
        text_signature = "(self, /, namespace, vector, k=1, min_score=-1.0)"
    )]
    fn search(
        &self,
        py: Python<'_>,
        namespace: &str,
        vector: &Bound<'_, PyAny>,
        k: usize,
        min_score: f32,
    ) -> PyResult<Vec<(u64, f32)>> {
        let q = vector_arg(vector)?;
        let hits = py.detach(|| self.inner.search(namespace, q, k, min_score))?;
        Ok(hits.into_iter().map(|h| (h.id, h.score)).collect())
    }

    /// Entries in `namespace`, or in all namespaces when None.
    #[pyo3(signature = (namespace = None))]
    fn count(&self, namespace: Option<&str>) -> usize {
        namespace.map_or_else(|| self.inner.len(), |ns| self.inner.count(ns))
    }

    /// Entries of `namespace` not yet in its graph (scanned exactly by searches meanwhile).
    fn pending(&self, namespace: &str) -> usize {
        self.inner.pending(namespace)
    }

    fn namespaces(&self) -> Vec<String> {
        self.inner.namespaces()
    }

    /// Moves every pending entry into the graphs now, on `threads` threads (default: all cores), instead of waiting
    /// for the background indexer; on return nothing is pending.
    #[pyo3(signature = (threads = None))]
    fn flush(&self, py: Python<'_>, threads: Option<usize>) -> PyResult<()> {
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        Ok(py.detach(|| self.inner.build(threads.max(1)))?)
    }

    /// Writes the index (rows and graphs) to `path`, atomically (temporary file, then rename).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        Ok(py.detach(|| self.inner.save(&path))?)
    }

    /// Reads an index written by `save`. OSError when the file is missing or not an index.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| VectorIndex::load(&path))?;
        Ok(Self { inner })
    }

    /// Entries over all namespaces.
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

// The text signature above spells the default out; keep the two in step.
const _: () = assert!(DEFAULT_HNSW_THRESHOLD == 4096);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyVectorIndex>()
}

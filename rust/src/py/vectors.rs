//! Bindings of the vector index: `gateway._core.VectorIndex` and `gateway._core.VectorSnapshot`.
//!
//! A vector arrives as a float32 buffer (numpy array, array('f'), memoryview: one copy, no per-element Python
//! call) or as any sequence of floats. Search and insert detach from the interpreter: a search at 100k vectors is
//! ~0.1-0.5 ms, long enough that other Python threads should run meanwhile.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::errors::invalid_argument;
use crate::error::CoreError;
use crate::vectors::{
    Hit, IndexConfig, MergeOptions, Quantization, Snapshot, VectorIndex, DEFAULT_HNSW_THRESHOLD,
};

/// A search of either class: the query taken from Python, the search run without the GIL, hits as (id, score).
fn search_with(
    py: Python<'_>,
    vector: &Bound<'_, PyAny>,
    search: impl Send + FnOnce(Vec<f32>) -> Result<Vec<Hit>, CoreError>,
) -> PyResult<Vec<(u64, f32)>> {
    let q = vector_arg(vector)?;
    let hits = py.detach(|| search(q))?;
    Ok(hits.into_iter().map(|h| (h.id, h.score)).collect())
}

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

    /// Inserts (or replaces) `id` in `namespace`, with `payload` stored beside it. ValueError for a wrong
    /// dimension, NaN or the zero vector.
    #[pyo3(
        signature = (namespace, id, vector, payload = b"".as_slice()),
        text_signature = "(self, /, namespace, id, vector, payload=b'')"
    )]
    fn insert(
        &self,
        py: Python<'_>,
        namespace: &str,
        id: u64,
        vector: &Bound<'_, PyAny>,
        payload: &[u8],
    ) -> PyResult<()> {
        let v = vector_arg(vector)?;
        Ok(py.detach(|| self.inner.insert(namespace, id, v, payload))?)
    }

    /// The payload stored with `id` in `namespace`; None when it is not there.
    fn payload<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        id: u64,
    ) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .payload(namespace, id)
            .map(|p| PyBytes::new(py, &p))
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
        search_with(py, vector, |q| {
            self.inner.search(namespace, q, k, min_score)
        })
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
    /// for the background indexer; on return nothing is pending, and no background indexer runs.
    #[pyo3(signature = (threads = None))]
    fn flush(&self, py: Python<'_>, threads: Option<usize>) -> PyResult<()> {
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        Ok(py.detach(|| self.inner.build(threads.max(1)))?)
    }

    /// Writes the index (rows, payloads and graphs) to `path` as a snapshot, atomically (temporary file, then
    /// rename), with `label` stored for its readers.
    #[pyo3(
        signature = (path, label = b"".as_slice()),
        text_signature = "(self, /, path, label=b'')"
    )]
    fn save(&self, py: Python<'_>, path: PathBuf, label: &[u8]) -> PyResult<()> {
        Ok(py.detach(|| self.inner.save(&path, label))?)
    }

    /// Reads a snapshot into a new index (a private, mutable copy). OSError when unreadable, ValueError when not
    /// a snapshot.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| VectorIndex::load(&path))?;
        Ok(Self { inner })
    }

    /// Writes the next snapshot to `path`: `base`'s entries but `removed` ones and those this index holds, then
    /// this index's; graphs copied from `base` and grown by at most `max_graph_adds` rows on `threads` threads;
    /// the newest `max_entries` kept. Returns (entries, entries pending as `pending` counts them, rows added to graphs).
    #[pyo3(
        signature = (path, base = None, removed = Vec::new(), *, max_entries = None, max_graph_adds = None, threads = 1, label = b"".as_slice()),
        text_signature = "(self, /, path, base=None, removed=(), *, max_entries=None, max_graph_adds=None, threads=1, label=b'')"
    )]
    #[allow(clippy::too_many_arguments)]
    fn save_merged(
        &self,
        py: Python<'_>,
        path: PathBuf,
        base: Option<PyRef<'_, PyVectorSnapshot>>,
        removed: Vec<(String, u64)>,
        max_entries: Option<usize>,
        max_graph_adds: Option<usize>,
        threads: usize,
        label: &[u8],
    ) -> PyResult<(usize, usize, usize)> {
        let base = base.map(|b| Arc::clone(&b.inner));
        let options = MergeOptions {
            max_entries,
            max_graph_adds,
            threads: threads.max(1),
            label: label.to_vec(),
        };
        let report = py.detach(|| {
            self.inner
                .save_merged(&path, base.as_deref(), &removed, &options)
        })?;
        Ok((report.entries, report.pending, report.added_to_graph))
    }

    /// Removes the entries `snapshot` holds identically (same vector and payload); returns them as
    /// (namespace, id).
    fn remove_shared(
        &self,
        py: Python<'_>,
        snapshot: PyRef<'_, PyVectorSnapshot>,
    ) -> PyResult<Vec<(String, u64)>> {
        let snapshot = Arc::clone(&snapshot.inner);
        Ok(py.detach(|| self.inner.remove_shared(&snapshot))?)
    }

    /// Entries over all namespaces.
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

// The text signature above spells the default out; keep the two in step.
const _: () = assert!(DEFAULT_HNSW_THRESHOLD == 4096);

/// A read-only index over a snapshot file, memory-mapped: processes that open one file share its pages, and
/// searches run at once on the graph it holds.
#[pyclass(name = "VectorSnapshot", frozen, module = "gateway._core")]
pub struct PyVectorSnapshot {
    inner: Arc<Snapshot>,
}

#[pymethods]
impl PyVectorSnapshot {
    /// Maps `path`. OSError when unreadable, ValueError when not a snapshot.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| Snapshot::open(&path))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.config().dim
    }

    /// The bytes the writer stored with the file.
    #[getter]
    fn label<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.label())
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
        search_with(py, vector, |q| {
            self.inner.search(namespace, q, k, min_score)
        })
    }

    /// The payload stored with `id` in `namespace`; None when it is not there.
    fn payload<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        id: u64,
    ) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .payload(namespace, id)
            .map(|p| PyBytes::new(py, p))
    }

    /// Every payload of `namespace`.
    fn payloads<'py>(&self, py: Python<'py>, namespace: &str) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .payloads(namespace)
            .into_iter()
            .map(|p| PyBytes::new(py, p))
            .collect()
    }

    fn contains(&self, namespace: &str, id: u64) -> bool {
        self.inner.contains(namespace, id)
    }

    /// Entries in `namespace`, or in all namespaces when None.
    #[pyo3(signature = (namespace = None))]
    fn count(&self, namespace: Option<&str>) -> usize {
        namespace.map_or_else(|| self.inner.len(), |ns| self.inner.count(ns))
    }

    /// Entries of `namespace` (of all namespaces when None) not in its graph (scanned exactly by searches).
    #[pyo3(signature = (namespace = None))]
    fn pending(&self, namespace: Option<&str>) -> usize {
        namespace.map_or_else(|| self.inner.pending_total(), |ns| self.inner.pending(ns))
    }

    fn namespaces(&self) -> Vec<String> {
        self.inner.namespaces()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyVectorIndex>()?;
    m.add_class::<PyVectorSnapshot>()
}

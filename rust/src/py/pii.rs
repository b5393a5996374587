//! Bindings for the PII scanner: `PiiScanner`, `PiiMatch`, `PiiStreamRedactor`.

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::errors::invalid_argument;
use super::gil::detach_if;
use crate::pii::{self, PiiKind, RedactMode, RedactPolicy, Scanner, StreamRedactor, Vault};

/// Scanning and redacting run at ~11 µs a kB; from 2 kB (~22 µs) other threads gain more from the GIL than getting it
/// back may cost (see `super::gil`). A stream's chunks are mostly shorter, so they keep it.
const DETACH_MIN_BYTES: usize = 2 * 1024;

/// One detected item: character offsets into the scanned `str`, the Presidio entity name and a score in [0, 1].
#[pyclass(frozen, module = "gateway._core", name = "PiiMatch")]
pub struct PyPiiMatch {
    #[pyo3(get)]
    start: usize,
    #[pyo3(get)]
    end: usize,
    #[pyo3(get)]
    kind: &'static str,
    #[pyo3(get)]
    score: f32,
    #[pyo3(get)]
    text: String,
}

#[pymethods]
impl PyPiiMatch {
    fn __repr__(&self) -> String {
        format!(
            "PiiMatch(kind={:?}, start={}, end={}, score={:.2})",
            self.kind, self.start, self.end, self.score
        )
    }
}

fn parse_kinds(kinds: Option<Vec<String>>) -> PyResult<Option<Vec<PiiKind>>> {
    kinds
        .map(|ks| {
            ks.iter()
                .map(|k| k.parse::<PiiKind>().map_err(PyErr::from))
                .collect()
        })
        .transpose()
}

/// `mode` is one mode name for every kind in `kinds`, or a dict of kind name -> mode (then `kinds` must be None).
fn parse_policy(mode: &Bound<'_, PyAny>, kinds: Option<Vec<String>>) -> PyResult<RedactPolicy> {
    if let Ok(name) = mode.extract::<String>() {
        let mode: RedactMode = name.parse()?;
        let kinds = parse_kinds(kinds)?;
        return Ok(RedactPolicy::uniform(mode, kinds.as_deref()));
    }
    if let Ok(per_kind) = mode.extract::<HashMap<String, String>>() {
        if kinds.is_some() {
            return Err(invalid_argument(
                "pass kinds=None when mode is a dict of kind -> mode",
            ));
        }
        let pairs: Vec<(PiiKind, RedactMode)> = per_kind
            .iter()
            .map(|(k, m)| Ok((k.parse::<PiiKind>()?, m.parse::<RedactMode>()?)))
            .collect::<Result<_, crate::error::CoreError>>()?;
        return Ok(RedactPolicy::per_kind(&pairs));
    }
    Err(invalid_argument(format!(
        "mode must be one of {} or a dict of kind -> mode",
        RedactMode::NAMES.join(", ")
    )))
}

fn matches_to_py(text: &str, scanner: &Scanner) -> Vec<PyPiiMatch> {
    let bytes = scanner.scan_bytes(text);
    let chars = pii::to_char_offsets(text, &bytes);
    bytes
        .iter()
        .zip(chars)
        .map(|(b, c)| PyPiiMatch {
            start: c.start,
            end: c.end,
            kind: c.kind.name(),
            score: c.score,
            text: text[b.start..b.end].to_owned(),
        })
        .collect()
}

/// Finds emails, phone numbers, cards, SSNs, IBANs, IP addresses, dates of birth and secrets in text.
#[pyclass(frozen, module = "gateway._core", name = "PiiScanner")]
pub struct PyPiiScanner {
    inner: Scanner,
}

#[pymethods]
impl PyPiiScanner {
    #[new]
    #[pyo3(signature = (min_score = 0.5, kinds = None))]
    fn new(min_score: f32, kinds: Option<Vec<String>>) -> PyResult<Self> {
        let kinds = parse_kinds(kinds)?;
        Ok(PyPiiScanner {
            inner: Scanner::new(min_score, kinds.as_deref())?,
        })
    }

    #[getter]
    fn min_score(&self) -> f32 {
        self.inner.min_score()
    }

    #[getter]
    fn kinds(&self) -> Vec<&'static str> {
        self.inner.kinds().into_iter().map(PiiKind::name).collect()
    }

    /// Matches sorted by start, non-overlapping.
    fn scan(&self, py: Python<'_>, text: String) -> Vec<PyPiiMatch> {
        detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
            matches_to_py(&text, &self.inner)
        })
    }

    /// `scan` over many texts; batches over 256 kB are split over the available cores.
    fn scan_batch(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<PyPiiMatch>>> {
        let total: usize = texts.iter().map(String::len).sum();
        detach_if(py, total >= DETACH_MIN_BYTES, || {
            if total < 256 * 1024 || texts.len() < 2 {
                return Ok(texts
                    .iter()
                    .map(|t| matches_to_py(t, &self.inner))
                    .collect());
            }
            let threads = std::thread::available_parallelism()
                .map_or(2, std::num::NonZero::get)
                .min(texts.len());
            let per = texts.len().div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = texts
                    .chunks(per)
                    .map(|part| {
                        s.spawn(move || {
                            part.iter()
                                .map(|t| matches_to_py(t, &self.inner))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let mut out = Vec::with_capacity(texts.len());
                for h in handles {
                    let part = h
                        .join()
                        .map_err(|_| PyRuntimeError::new_err("a PII scan thread panicked"))?;
                    out.extend(part);
                }
                Ok(out)
            })
        })
    }

    /// Returns the redacted text and the mapping placeholder -> original (empty for `mask`). Pass the mapping of an
    /// earlier call to keep placeholder numbering consistent across the messages of one request.
    #[pyo3(signature = (text, mode = None, kinds = None, mapping = None))]
    fn redact(
        &self,
        py: Python<'_>,
        text: String,
        mode: Option<&Bound<'_, PyAny>>,
        kinds: Option<Vec<String>>,
        mapping: Option<HashMap<String, String>>,
    ) -> PyResult<(String, HashMap<String, String>)> {
        let policy = match mode {
            Some(m) => parse_policy(m, kinds)?,
            None => RedactPolicy::uniform(RedactMode::Placeholder, parse_kinds(kinds)?.as_deref()),
        };
        let mut vault = Vault::from_mapping(mapping.unwrap_or_default());
        let out = detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
            self.inner.redact(&text, &policy, &mut vault)
        });
        Ok((out, vault.into_mapping()))
    }

    /// Puts the originals back for every placeholder of `mapping` found in `text`.
    #[staticmethod]
    fn restore(py: Python<'_>, text: String, mapping: HashMap<String, String>) -> String {
        detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
            pii::restore(&text, &mapping)
        })
    }

    /// A stream redactor using this scanner's settings (see `PiiStreamRedactor`).
    #[pyo3(signature = (mode = None, kinds = None, mapping = None, restore = false))]
    fn stream(
        &self,
        mode: Option<&Bound<'_, PyAny>>,
        kinds: Option<Vec<String>>,
        mapping: Option<HashMap<String, String>>,
        restore: bool,
    ) -> PyResult<PyPiiStreamRedactor> {
        new_stream(self.inner.clone(), mode, kinds, mapping, restore)
    }

    fn __repr__(&self) -> String {
        format!(
            "PiiScanner(min_score={}, kinds={:?})",
            self.inner.min_score(),
            self.kinds()
        )
    }
}

fn new_stream(
    scanner: Scanner,
    mode: Option<&Bound<'_, PyAny>>,
    kinds: Option<Vec<String>>,
    mapping: Option<HashMap<String, String>>,
    restore: bool,
) -> PyResult<PyPiiStreamRedactor> {
    let policy = match mode {
        Some(m) => parse_policy(m, kinds)?,
        None => RedactPolicy::uniform(RedactMode::Placeholder, parse_kinds(kinds)?.as_deref()),
    };
    let mapping = mapping.unwrap_or_default();
    let mut inner = StreamRedactor::new(scanner, policy, Vault::from_mapping(mapping.clone()));
    if restore {
        inner = inner.with_restore(mapping);
    }
    Ok(PyPiiStreamRedactor {
        inner: Mutex::new(inner),
    })
}

/// Redacts streamed text chunk by chunk: `push` returns what is safe to release, `finish` flushes the rest.
#[pyclass(frozen, module = "gateway._core", name = "PiiStreamRedactor")]
pub struct PyPiiStreamRedactor {
    inner: Mutex<StreamRedactor>,
}

impl PyPiiStreamRedactor {
    fn with<T>(&self, f: impl FnOnce(&mut StreamRedactor) -> T) -> PyResult<T> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| PyRuntimeError::new_err("stream redactor state poisoned"))?;
        Ok(f(&mut guard))
    }
}

#[pymethods]
impl PyPiiStreamRedactor {
    /// `mode`/`kinds` as for `PiiScanner.redact`; `mapping` continues an earlier call's placeholders; with
    /// `restore=True` the placeholders of `mapping` are put back in the released text (the answer side of a
    /// redacted prompt), after the answer's own items are redacted.
    #[new]
    #[pyo3(signature = (scanner = None, mode = None, kinds = None, mapping = None, restore = false))]
    fn new(
        scanner: Option<PyRef<'_, PyPiiScanner>>,
        mode: Option<&Bound<'_, PyAny>>,
        kinds: Option<Vec<String>>,
        mapping: Option<HashMap<String, String>>,
        restore: bool,
    ) -> PyResult<Self> {
        let scanner = scanner.map_or_else(Scanner::default, |s| s.inner.clone());
        new_stream(scanner, mode, kinds, mapping, restore)
    }

    /// Feeds a chunk; returns the text safe to release now (possibly empty).
    fn push(&self, py: Python<'_>, chunk: String) -> PyResult<String> {
        detach_if(py, chunk.len() >= DETACH_MIN_BYTES, || {
            self.with(|r| r.push(&chunk))
        })
    }

    /// Same as `push` (the name the error-path scrubber and main's first stream API use).
    fn feed(&self, py: Python<'_>, chunk: String) -> PyResult<String> {
        self.push(py, chunk)
    }

    /// Releases everything still held back.
    fn finish(&self) -> PyResult<String> {
        self.with(StreamRedactor::finish)
    }

    /// Placeholder -> original for everything redacted so far.
    #[getter]
    fn mapping(&self) -> PyResult<HashMap<String, String>> {
        self.with(|r| r.vault().mapping().clone())
    }

    /// Kind name -> count of items found so far (for audit records).
    #[getter]
    fn found(&self) -> PyResult<HashMap<&'static str, usize>> {
        self.with(|r| r.found().into_iter().map(|(k, n)| (k.name(), n)).collect())
    }

    /// Bytes currently held back.
    #[getter]
    fn held(&self) -> PyResult<usize> {
        self.with(|r| r.held())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPiiScanner>()?;
    m.add_class::<PyPiiMatch>()?;
    m.add_class::<PyPiiStreamRedactor>()?;
    m.add("PII_STREAM_HOLD_CHARS", pii::STREAM_WINDOW_CHARS)?;
    // A tuple, so that no importer can change the names every other importer reads.
    m.add(
        "PII_KINDS",
        PyTuple::new(m.py(), PiiKind::ALL.map(PiiKind::name))?,
    )?;
    Ok(())
}

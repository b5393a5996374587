//! Bindings of the PII scanner: `PiiScanner`, `PiiMatch`, `PiiStreamRedactor`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;

use crate::pii::{self, Kind, Mode, Redactor, Scanner, StreamRedactor};

// Below this many bytes a scan costs less than handing the GIL over and back.
const DETACH_MIN_BYTES: usize = 2048;

/// One detected item: character offsets into the scanned str, its kind (Presidio's names), score and text.
#[pyclass(name = "PiiMatch", frozen, module = "gateway._core")]
pub struct PyPiiMatch {
    #[pyo3(get)]
    start: usize,
    #[pyo3(get)]
    end: usize,
    #[pyo3(get)]
    kind: &'static str,
    #[pyo3(get)]
    score: f64,
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

fn parse_kinds(kinds: Option<Vec<String>>) -> PyResult<Option<Vec<Kind>>> {
    kinds
        .map(|names| {
            names
                .iter()
                .map(|n| n.parse::<Kind>().map_err(PyErr::from))
                .collect()
        })
        .transpose()
}

fn scan_detached(py: Python<'_>, scanner: &Scanner, text: &str) -> Vec<pii::Match> {
    if text.len() < DETACH_MIN_BYTES {
        return scanner.scan(text);
    }
    py.detach(|| scanner.scan(text))
}

/// Finds PII and secrets (EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IBAN_CODE, IP_ADDRESS, DATE_OF_BIRTH,
/// SECRET) and redacts them.
#[pyclass(name = "PiiScanner", frozen, module = "gateway._core")]
pub struct PyPiiScanner {
    scanner: Scanner,
}

#[pymethods]
impl PyPiiScanner {
    #[new]
    #[pyo3(signature = (min_score = 0.5, kinds = None))]
    fn new(min_score: f64, kinds: Option<Vec<String>>) -> PyResult<Self> {
        Ok(Self {
            scanner: Scanner::new(parse_kinds(kinds)?, min_score)?,
        })
    }

    /// Items found in `text`, sorted, without overlaps.
    fn scan(&self, py: Python<'_>, text: &str) -> Vec<PyPiiMatch> {
        let matches = scan_detached(py, &self.scanner, text);
        let offsets = pii::char_offsets(text, &matches);
        matches
            .iter()
            .zip(offsets)
            .map(|(m, (start, end))| PyPiiMatch {
                start,
                end,
                kind: m.kind.name(),
                score: m.score,
                text: text[m.start..m.end].to_owned(),
            })
            .collect()
    }

    /// Scans many texts (with the GIL released); one list of matches per text.
    fn scan_batch(&self, py: Python<'_>, texts: Vec<String>) -> Vec<Vec<PyPiiMatch>> {
        texts.iter().map(|text| self.scan(py, text)).collect()
    }

    /// `text` with the items of `kinds` (all by default) replaced, and the mapping placeholder -> original (filled in
    /// "placeholder" mode). Modes: "mask", "placeholder", "hash".
    #[pyo3(signature = (text, mode = "placeholder", kinds = None))]
    fn redact(
        &self,
        py: Python<'_>,
        text: &str,
        mode: &str,
        kinds: Option<Vec<String>>,
    ) -> PyResult<(String, HashMap<String, String>)> {
        let mode = mode.parse::<Mode>()?;
        let only = parse_kinds(kinds)?;
        let mut matches = scan_detached(py, &self.scanner, text);
        if let Some(only) = only {
            matches.retain(|m| only.contains(&m.kind));
        }
        let mut redactor = Redactor::default();
        let redacted = redactor.apply(text, &matches, mode);
        Ok((redacted, redactor.mapping))
    }

    /// Puts the originals back where their placeholders appear (e.g. in a model's answer).
    #[staticmethod]
    fn restore(text: &str, mapping: HashMap<String, String>) -> String {
        pii::restore(text, &mapping)
    }

    /// A redactor for streamed text that keeps one placeholder numbering across chunks.
    #[pyo3(signature = (mode = "placeholder"))]
    fn stream(&self, mode: &str) -> PyResult<PyPiiStreamRedactor> {
        Ok(PyPiiStreamRedactor {
            inner: Mutex::new(StreamRedactor::new(
                self.scanner.clone(),
                mode.parse::<Mode>()?,
            )),
        })
    }
}

/// Redacts a stream chunk by chunk, holding back at most a short window so an item split across chunks is caught.
#[pyclass(name = "PiiStreamRedactor", frozen, module = "gateway._core")]
pub struct PyPiiStreamRedactor {
    inner: Mutex<StreamRedactor>,
}

#[pymethods]
impl PyPiiStreamRedactor {
    /// Takes a chunk; returns the redacted text that is now safe to release (possibly empty).
    fn feed(&self, chunk: &str) -> String {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .feed(chunk)
    }

    /// Releases everything still held, redacted.
    fn finish(&self) -> String {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish()
    }

    /// Placeholder -> original, for everything redacted so far.
    #[getter]
    fn mapping(&self) -> HashMap<String, String> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .redactor
            .mapping
            .clone()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPiiScanner>()?;
    m.add_class::<PyPiiMatch>()?;
    m.add_class::<PyPiiStreamRedactor>()?;
    m.add("PII_STREAM_HOLD_CHARS", pii::HOLD_CHARS)?;
    Ok(())
}

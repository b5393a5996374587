//! Bindings of the refusal scorer's view of an answer: `gateway._core.AnswerEdges`.
//!
//! `feed` copies at most a chunk and the trigger test scans ~500 characters: a microsecond or less, so nothing here
//! detaches. The class is subclassed in Python (gateway.observe.refusal adds the regex scoring).

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;

use crate::refusal::{self, Edges};

/// What the refusal scorer reads of an answer, kept as it streams (see rust/src/refusal.rs).
#[pyclass(name = "AnswerEdges", subclass, frozen, module = "gateway._core")]
#[derive(Default)]
pub struct PyAnswerEdges {
    inner: Mutex<Edges>,
}

impl PyAnswerEdges {
    fn edges(&self) -> MutexGuard<'_, Edges> {
        // Nothing panics while the lock is held (string appends), so a poisoned lock still holds whole edges.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl PyAnswerEdges {
    #[classattr]
    const HEAD_CHARS: usize = refusal::HEAD_CHARS;
    #[classattr]
    const TAIL_CHARS: usize = refusal::TAIL_CHARS;
    #[classattr]
    const SHORT_WORDS: usize = refusal::SHORT_WORDS;
    #[classattr]
    const IN_HEAD: u8 = refusal::IN_HEAD;
    #[classattr]
    const IN_TAIL: u8 = refusal::IN_TAIL;

    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// The next piece of the answer's text.
    fn feed(&self, chunk: &str) {
        self.edges().feed(chunk);
    }

    /// Characters fed so far.
    #[getter]
    fn length(&self) -> usize {
        self.edges().length()
    }

    /// Spaces fed so far.
    #[getter]
    fn spaces(&self) -> usize {
        self.edges().spaces()
    }

    /// The first 2 x HEAD_CHARS characters.
    #[getter]
    fn head(&self) -> String {
        self.edges().head().to_owned()
    }

    /// The last 2 x TAIL_CHARS characters.
    #[getter]
    fn tail(&self) -> String {
        self.edges().tail().to_owned()
    }

    /// IN_HEAD | IN_TAIL: where a refusal's trigger words are (the tail only when it counts); 0 for none.
    fn triggered(&self) -> u8 {
        self.edges().triggered()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAnswerEdges>()
}

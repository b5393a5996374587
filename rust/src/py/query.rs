//! Bindings of the query-type features: `prompt_language`, `prompt_has_code`.

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::query;

// Neither detaches from the GIL: each reads at most 2,000 characters (the fence search aside, a memchr pass), well
// under a microsecond, less than a hand-off would cost.

/// The prompt's main language (`text` lower-cased): zh, ja, ko, ru, ar by script, else en, fr, de, es by common
/// words, else "und".
#[pyfunction]
#[pyo3(name = "prompt_language")]
fn py_prompt_language(text: &Bound<'_, PyString>) -> &'static str {
    query::language(&text.to_string_lossy())
}

/// Whether the prompt (`text` lower-cased) holds code: a fence, or two lines that look like statements.
#[pyfunction]
#[pyo3(name = "prompt_has_code")]
fn py_prompt_has_code(text: &Bound<'_, PyString>) -> bool {
    query::has_code(&text.to_string_lossy())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_prompt_language, m)?)?;
    m.add_function(wrap_pyfunction!(py_prompt_has_code, m)?)?;
    Ok(())
}

//! Bindings of `crate::keys`.

use pyo3::prelude::*;

/// `key_digest(key) -> str`. Not detached: a key is tens of bytes, hashed in well under a microsecond.
#[pyfunction(name = "key_digest")]
pub fn py_key_digest(key: &str) -> String {
    crate::keys::key_digest(key)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_key_digest, m)?)
}

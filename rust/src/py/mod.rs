//! The Python skin: `gateway._core`. Each submodule registers the bindings of one core module.

mod drift;
mod errors;
mod gil;
mod keys;
mod otlp;
mod patterns;
mod pii;
mod query;
mod ratelimit;
mod refusal;
mod textmodel;
mod tokens;
mod vectors;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::errors::CoreError;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        super::drift::register(m)?;
        super::errors::register(m)?;
        super::keys::register(m)?;
        super::otlp::register(m)?;
        super::patterns::register(m)?;
        super::pii::register(m)?;
        super::query::register(m)?;
        super::ratelimit::register(m)?;
        super::refusal::register(m)?;
        super::textmodel::register(m)?;
        super::tokens::register(m)?;
        super::vectors::register(m)?;
        Ok(())
    }
}

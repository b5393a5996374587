//! The Python skin: `gateway._core`. Each submodule registers the bindings of one core module.

mod errors;
mod pii;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::errors::CoreError;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        super::pii::register(m)?;
        Ok(())
    }
}

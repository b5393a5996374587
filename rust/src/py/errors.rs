//! Exceptions raised across the boundary, and the one conversion from `CoreError`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::PyErr;

use crate::error::CoreError as CoreErrorKind;

create_exception!(
    gateway._core,
    CoreError,
    PyException,
    "Base class of errors raised by gateway._core."
);

impl From<CoreErrorKind> for PyErr {
    fn from(err: CoreErrorKind) -> Self {
        match err {
            CoreErrorKind::InvalidArgument(msg) => PyValueError::new_err(msg),
            CoreErrorKind::Io(msg) => PyOSError::new_err(msg),
        }
    }
}

//! Exceptions raised across the boundary, and the one conversion from `CoreError`.
//!
//! Each `CoreError` variant has its own class, a subclass of `CoreError` and of the builtin a caller expects for it:
//! `except CoreError` catches whatever the core refuses, and `except ValueError` still catches a bad argument.
//! `create_exception!` takes one base, so the two-base classes are made once with `type(name, bases, namespace)`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::error::CoreError as CoreErrorKind;

create_exception!(
    gateway._core,
    CoreError,
    PyException,
    "Base class of errors raised by gateway._core."
);

static INVALID_ARGUMENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static STORAGE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `class <name>(CoreError, <builtin>)` in `gateway._core`, made on first use.
fn subclass<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    builtin: Bound<'py, PyType>,
    doc: &str,
) -> PyResult<Bound<'py, PyType>> {
    let class = cell.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let bases = PyTuple::new(py, [py.get_type::<CoreError>(), builtin])?;
        let namespace = PyDict::new(py);
        namespace.set_item("__module__", "gateway._core")?;
        namespace.set_item("__doc__", doc)?;
        let class = py
            .get_type::<PyType>()
            .call1((name, bases, namespace))?
            .cast_into::<PyType>()?;
        Ok(class.unbind())
    })?;
    Ok(class.bind(py).clone())
}

/// `InvalidArgumentError(CoreError, ValueError)`: an argument the caller can fix.
fn invalid_argument_error(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    subclass(
        py,
        &INVALID_ARGUMENT,
        "InvalidArgumentError",
        py.get_type::<PyValueError>(),
        "An argument the caller can fix (unknown name, bad dimension, non-positive rate...); also a ValueError.",
    )
}

/// `StorageError(CoreError, OSError)`: a file not read or written, or a vector graph operation that failed.
fn storage_error(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    subclass(
        py,
        &STORAGE,
        "StorageError",
        py.get_type::<PyOSError>(),
        "A file could not be read or written (VectorIndex.save/load), or a vector graph operation failed; also an \
         OSError.",
    )
}

impl From<CoreErrorKind> for PyErr {
    fn from(err: CoreErrorKind) -> Self {
        // Attached already wherever a binding converts its error; attach() then only checks a thread-local count.
        Python::attach(|py| {
            let (class, msg) = match err {
                CoreErrorKind::InvalidArgument(msg) => (invalid_argument_error(py), msg),
                CoreErrorKind::Io(msg) => (storage_error(py), msg),
            };
            match class {
                Ok(class) => PyErr::from_type(class, msg),
                Err(failed) => failed,
            }
        })
    }
}

/// A bad argument found by a binding itself (a shape, a type of container), raised like the core's own.
pub fn invalid_argument(msg: impl Into<String>) -> PyErr {
    CoreErrorKind::InvalidArgument(msg.into()).into()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InvalidArgumentError", invalid_argument_error(py)?)?;
    m.add("StorageError", storage_error(py)?)
}

//! Errors the core reports; the Python skin maps each variant to its own exception class.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CoreError {
    /// An argument the caller can fix (unknown encoding, bad dimension, non-positive rate...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A file could not be read or written (index persistence).
    #[error("{0}")]
    Io(String),
}

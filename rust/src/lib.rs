//! The gateway's hot path, as a pure Rust core with a thin Python skin.
//!
//! The core modules never touch pyo3; every binding sits in `py/` behind the `python` feature, so the compiler
//! guards the boundary and `cargo test` on the core needs no interpreter.

pub mod drift;
pub mod error;
pub mod keys;
pub mod otlp;
pub mod pages;
pub mod patterns;
pub mod pii;
pub mod query;
pub mod ratelimit;
pub mod refusal;
pub mod textmodel;
pub mod tokens;
pub mod vectors;

#[cfg(feature = "python")]
mod py;

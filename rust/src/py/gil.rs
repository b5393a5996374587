//! When a binding lets go of the GIL.
//!
//! Giving the GIL away costs ~14 ns, but taking it back waits for any thread that took it meanwhile, up to the
//! interpreter's switch interval (5 ms) when that thread runs Python. For a short call that wait is the whole cost:
//! `PatternSet.which` on a 33-byte text, timed 200,000 times beside a second Python thread waking every 0.5 ms, took
//! 0.29-0.62 µs on average kept attached against 0.39-2.01 µs detached (p50 0.17 against 0.22 µs). So bindings
//! detach only when the work itself is long (tens of µs), where other threads running meanwhile gain more than the
//! wait costs; each module sets its threshold from measurements of its own work.

use pyo3::marker::Ungil;
use pyo3::prelude::*;

/// Run `f` without the GIL when `long`, with it otherwise.
pub fn detach_if<T: Ungil, F: Ungil + FnOnce() -> T>(py: Python<'_>, long: bool, f: F) -> T {
    if long {
        py.detach(f)
    } else {
        f()
    }
}

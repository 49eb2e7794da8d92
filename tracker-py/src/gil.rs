//! State that only code holding the GIL may touch.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;

use pyo3::Python;

/// A cell whose contents are reachable only with a [`Python`] token, which
/// proves the GIL is held. pytracker does not support free-threaded builds
/// (the module does not declare `Py_mod_gil`), so the GIL serialises every
/// access.
pub(crate) struct GilCell<T>(UnsafeCell<T>);

// SAFETY: every access goes through `with`, which demands a `Python` token;
// with the GIL held no two threads run `with` at the same time.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        GilCell(UnsafeCell::new(value))
    }

    /// Runs `f` on the contents. `f` must not run Python code (which could
    /// release the GIL or re-enter this cell); callers keep it to plain Rust.
    #[inline(always)]
    pub(crate) fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the token proves the GIL is held, so no other thread is in
        // `with`; `f` runs no Python code, so this thread does not re-enter.
        f(unsafe { &mut *self.0.get() })
    }
}

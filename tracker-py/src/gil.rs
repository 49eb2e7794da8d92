//! State that only code holding the GIL may touch.

#![allow(unsafe_code)]

use std::cell::{Cell, UnsafeCell};

use pyo3::Python;

/// A cell whose contents are reachable only with a [`Python`] token, which
/// proves the GIL is held. pytracker does not support free-threaded builds
/// (the module refuses to import on them), so the GIL serialises every
/// access.
///
/// [`GilCell::with`] lends the contents to a closure; reaching the cell
/// again from inside it (which would alias that `&mut`) is caught and
/// panics. The closure-free accessors ([`GilCell::get`],
/// [`GilCell::replace`], and per element for arrays) run no other code
/// while they touch the contents, so they cannot be re-entered; they only
/// check that no `with` is lending the contents (a load and a branch, for
/// the hot path).
pub(crate) struct GilCell<T> {
    value: UnsafeCell<T>,
    /// Set while `with` runs.
    busy: Cell<bool>,
}

// SAFETY: every access goes through `with`, which demands a `Python` token;
// with the GIL held no two threads run `with` at the same time, and `busy`
// is only touched there. `T: Send` because the contents are used from
// whichever thread holds the GIL.
unsafe impl<T: Send> Sync for GilCell<T> {}

/// Clears `busy` when `with` returns or unwinds.
struct Release<'a>(&'a Cell<bool>);

impl Drop for Release<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[cold]
#[inline(never)]
fn reentered() -> ! {
    panic!(
        "pytracker: GilCell re-entered (a bug: the closure given to `with` reached the same cell)"
    )
}

impl<T> GilCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        GilCell {
            value: UnsafeCell::new(value),
            busy: Cell::new(false),
        }
    }

    /// Runs `f` on the contents. `f` should not run Python code (which
    /// could release the GIL); if it reaches this cell again, that is
    /// caught: the inner call panics instead of aliasing the contents.
    #[inline(always)]
    pub(crate) fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        if self.busy.replace(true) {
            reentered();
        }
        let _release = Release(&self.busy);
        // SAFETY: the token proves the GIL is held, so no other thread is in
        // `with`; `busy` proves this thread is not in it either. So this is
        // the only reference to the contents until `f` returns.
        f(unsafe { &mut *self.value.get() })
    }

    /// Panics if [`GilCell::with`] is lending the contents.
    #[inline(always)]
    fn check_idle(&self) {
        if self.busy.get() {
            reentered();
        }
    }

    /// Stores `value` and returns the previous contents.
    pub(crate) fn replace(&self, _py: Python<'_>, value: T) -> T {
        self.check_idle();
        // SAFETY: GIL held (token) and no `with` in progress (checked), so
        // nothing else accesses the contents; no other code runs here.
        unsafe { std::mem::replace(&mut *self.value.get(), value) }
    }
}

impl<T: Copy> GilCell<T> {
    /// A copy of the contents.
    #[inline(always)]
    pub(crate) fn get(&self, _py: Python<'_>) -> T {
        self.check_idle();
        // SAFETY: as in `replace`; a plain copy.
        unsafe { *self.value.get() }
    }
}

impl<T: Copy, const N: usize> GilCell<[T; N]> {
    /// A copy of element `i` (panics if out of bounds).
    #[inline(always)]
    pub(crate) fn get_at(&self, _py: Python<'_>, i: usize) -> T {
        self.check_idle();
        // SAFETY: as in `replace`; a bounds-checked copy.
        unsafe { (*self.value.get())[i] }
    }

    /// Stores `value` as element `i` and returns the previous one.
    pub(crate) fn replace_at(&self, _py: Python<'_>, i: usize, value: T) -> T {
        self.check_idle();
        // SAFETY: as in `replace`.
        unsafe { std::mem::replace(&mut (*self.value.get())[i], value) }
    }
}

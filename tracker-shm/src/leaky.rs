//! [`LeakyCell`]: a replaceable value whose old versions stay valid.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A pointer to a `T` that can be replaced but whose old values are never
/// freed: readers may hold `&T` for as long as the cell lives. Used for the
/// writer's region, which is replaced only in a forked child.
pub(crate) struct LeakyCell<T> {
    ptr: AtomicPtr<T>,
    /// Owns `T`s; opts out of the `Send`/`Sync` an `AtomicPtr` would give
    /// for any `T` (the impls below state the real requirements).
    _owns: PhantomData<*const T>,
}

// SAFETY: moving the cell to another thread moves its `T`s there.
unsafe impl<T: Send> Send for LeakyCell<T> {}
// SAFETY: `get` hands `&T` to any thread sharing the cell (`T: Sync`), and
// `replace` installs a `T` made on another thread (`T: Send`).
unsafe impl<T: Send + Sync> Sync for LeakyCell<T> {}

impl<T> LeakyCell<T> {
    pub(crate) fn new(value: T) -> Self {
        LeakyCell {
            ptr: AtomicPtr::new(Box::into_raw(Box::new(value))),
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> &T {
        // SAFETY: the pointer always comes from `Box::into_raw` and is freed
        // only in `drop`, which needs `&mut self`; `Acquire` pairs with the
        // `Release` in `replace`, so the pointee is fully initialised.
        unsafe { &*self.ptr.load(Ordering::Acquire) }
    }

    /// Installs `value`; the previous value is leaked (it stays valid).
    pub(crate) fn replace(&self, value: T) {
        self.ptr
            .store(Box::into_raw(Box::new(value)), Ordering::Release);
    }
}

impl<T> Drop for LeakyCell<T> {
    fn drop(&mut self) {
        // SAFETY: exclusive access; the current pointer came from
        // `Box::into_raw` and no reference to it can outlive `self`.
        drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
    }
}

#[cfg(test)]
mod tests {
    use super::LeakyCell;

    #[test]
    fn old_values_stay_readable() {
        let cell = LeakyCell::new(String::from("first"));
        let old: &String = cell.get();
        cell.replace(String::from("second"));
        assert_eq!(old, "first");
        assert_eq!(cell.get(), "second");
    }
}

//! Delivering a notification: straight into Rust for native trackers, as a
//! method call for any other Python object.
//!
//! A Python tracker is called as `tracker.notify_<kind>(serial, type,
//! bundle)`. A tracker without that method is not told. An exception it
//! raises never reaches the code that created, changed or destroyed the
//! object: it is reported through `sys.unraisablehook`, like an exception
//! in `__del__`, and an exception that was already being raised is kept.

#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::Relaxed};

use pyo3::ffi;
use pyo3::prelude::*;
use tracker_core::{EventKind, Tracker};

use crate::gil::GilCell;
use crate::object::{self, TrackableObject};

/// Interned method names, indexed by `EventKind::code() - 1`.
static METHOD_NAMES: [AtomicPtr<ffi::PyObject>; 4] = [const { AtomicPtr::new(ptr::null_mut()) }; 4];

/// Set at interpreter exit: Python trackers are no longer called, because
/// the modules their methods use are being torn down. Native trackers keep
/// counting.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Interns the method names. Called once at import.
pub(crate) fn init(py: Python<'_>) {
    for kind in EventKind::ALL {
        let name = pyo3::types::PyString::intern(py, &format!("notify_{}", kind.name()));
        METHOD_NAMES[usize::from(kind.code() - 1)].store(name.clone().unbind().into_ptr(), Relaxed);
    }
}

/// Stops calling Python trackers (see [`SHUTTING_DOWN`]).
pub(crate) fn shutdown() {
    SHUTTING_DOWN.store(true, Relaxed);
}

/// The native tracker behind `tracker`, if it is one.
pub(crate) type NativeLookup =
    for<'a> unsafe fn(Python<'a>, *mut ffi::PyObject) -> Option<&'a dyn Tracker>;

/// Registered native tracker types with their lookup functions.
static NATIVE: [(AtomicPtr<ffi::PyTypeObject>, AtomicPtr<()>); 4] = [const {
    (
        AtomicPtr::new(ptr::null_mut()),
        AtomicPtr::new(ptr::null_mut()),
    )
}; 4];

/// Registers a native tracker type: objects of exactly this type are told
/// through `lookup` instead of a Python call.
pub(crate) fn register_native(ty: *mut ffi::PyTypeObject, lookup: NativeLookup) {
    for (slot_ty, slot_fn) in &NATIVE {
        if slot_ty.load(Relaxed).is_null() {
            slot_fn.store(lookup as *mut (), Relaxed);
            slot_ty.store(ty, Relaxed);
            return;
        }
    }
    panic!("more native tracker types than dispatch slots");
}

/// The global tracker and, if it is native, its Rust side: most objects are
/// attached to the global tracker, and this spares them the type dispatch.
#[derive(Copy, Clone)]
struct GlobalNative {
    tracker: *mut ffi::PyObject,
    native: Option<*const dyn Tracker>,
}

// SAFETY: only reachable through `GilCell`, i.e. with the GIL held; the
// pointers are plain data there.
unsafe impl Send for GlobalNative {}

static GLOBAL_NATIVE: GilCell<GlobalNative> = GilCell::new(GlobalNative {
    tracker: ptr::null_mut(),
    native: None,
});

/// Records the new global tracker (null for none). Called by
/// `object::set_global_tracker` while it holds a strong reference to
/// `tracker`, which keeps the cached native pointer valid until the next
/// call.
pub(crate) fn set_global(py: Python<'_>, tracker: *mut ffi::PyObject) {
    let native = if tracker.is_null() {
        None
    } else {
        native_by_type(py, tracker).map(|n| {
            // SAFETY: only the lifetime is erased; the entry is used only
            // while the global slot keeps `tracker` (and so `n`) alive.
            unsafe {
                std::mem::transmute::<&dyn Tracker, &'static dyn Tracker>(n) as *const dyn Tracker
            }
        })
    };
    GLOBAL_NATIVE.with(py, |g| *g = GlobalNative { tracker, native });
}

#[inline(always)]
fn native<'a>(py: Python<'a>, tracker: *mut ffi::PyObject) -> Option<&'a dyn Tracker> {
    let global = GLOBAL_NATIVE.with(py, |g| *g);
    if global.tracker == tracker {
        // SAFETY: the pointer was taken from the global tracker, which the
        // global slot keeps alive until `set_global` replaces this entry.
        return global.native.map(|n| unsafe { &*n });
    }
    native_by_type(py, tracker)
}

#[inline]
fn native_by_type<'a>(py: Python<'a>, tracker: *mut ffi::PyObject) -> Option<&'a dyn Tracker> {
    // SAFETY: `tracker` is a live object (caller); reading its type is a
    // plain field load under the GIL.
    let ty = unsafe { ffi::Py_TYPE(tracker) };
    for (slot_ty, slot_fn) in &NATIVE {
        let t = slot_ty.load(Relaxed);
        if t.is_null() {
            return None;
        }
        if t == ty {
            // SAFETY: the pointer was stored from a `NativeLookup` in
            // `register_native`, and it is only called on objects of exactly
            // the type it was registered with.
            return unsafe {
                let lookup: NativeLookup =
                    std::mem::transmute::<*mut (), NativeLookup>(slot_fn.load(Relaxed));
                lookup(py, tracker)
            };
        }
    }
    None
}

/// What a notification left for its caller.
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    /// Done (a tracker's ordinary exception went to `sys.unraisablehook`).
    Done,
    /// A Python tracker raised `KeyboardInterrupt` or `SystemExit` outside
    /// a destructor: it is set, and the caller must let it propagate.
    Interrupted,
}

/// Tells `tracker` that the new object `this`, of class `class` with serial
/// `serial`, was attached to it: [`notify`] for the creation path, where
/// the class and serial are already in registers.
///
/// # Safety
/// GIL held; `this` a live Trackable; `tracker` a live object.
#[inline(always)]
pub(crate) unsafe fn notify_attached(
    py: Python<'_>,
    this: *mut TrackableObject,
    tracker: *mut ffi::PyObject,
    class: tracker_core::ClassId,
    serial: tracker_core::Serial,
) -> Outcome {
    match native(py, tracker) {
        Some(native) => {
            native.attached_serialized(class, serial);
            Outcome::Done
        }
        // SAFETY: per the contract above.
        None => unsafe { notify_python(EventKind::Attached, this, tracker) },
    }
}

/// Tells `tracker` of `kind` for the object `this`. `Destroyed` is told
/// from deallocation or the cycle collector, where nothing can propagate;
/// the other kinds from a caller that can raise.
///
/// # Safety
/// GIL held; `this` a live Trackable; `tracker` a live object.
#[inline(always)]
pub(crate) unsafe fn notify(
    py: Python<'_>,
    kind: EventKind,
    this: *mut TrackableObject,
    tracker: *mut ffi::PyObject,
) -> Outcome {
    if let Some(native) = native(py, tracker) {
        // SAFETY: per the contract above.
        if let Some(class) = unsafe { object::class_id(py, this) } {
            // SAFETY: per the contract above.
            let serial = unsafe { object::notify_args(this).serial };
            // The GIL serialises every call made from here. Creation and
            // destruction, the per-object pair, name their kind statically.
            match kind {
                EventKind::Attached => native.attached_serialized(class, serial),
                EventKind::Destroyed => native.destroyed_serialized(class, serial),
                _ => native.notify_serialized(kind, class, serial),
            }
        }
        return Outcome::Done;
    }
    // SAFETY: per the contract above.
    unsafe { notify_python(kind, this, tracker) }
}

#[cold]
#[inline(never)]
unsafe fn notify_python(
    kind: EventKind,
    this: *mut TrackableObject,
    tracker: *mut ffi::PyObject,
) -> Outcome {
    if SHUTTING_DOWN.load(Relaxed) {
        return Outcome::Done;
    }
    // SAFETY: GIL held; `this` and `tracker` live (caller's contract). Every
    // reference created here is released before returning; the pending
    // exception, if any, is fetched first and restored last.
    unsafe {
        let pending = PendingError::take();
        if crate::stock::try_count(kind, this, tracker) {
            pending.restore();
            return Outcome::Done;
        }
        let args = object::notify_args(this);
        let name = METHOD_NAMES[usize::from(kind.code() - 1)].load(Relaxed);

        let serial = ffi::PyLong_FromUnsignedLongLong(args.serial);
        let mut outcome = Outcome::Done;
        if serial.is_null() {
            ffi::PyErr_WriteUnraisable(tracker);
        } else {
            let bundle = if args.bundle.is_null() {
                ffi::Py_None()
            } else {
                args.bundle
            };
            // Hold our own references for the call: tracker code may replace
            // the bundle or the tracker of the object.
            ffi::Py_INCREF(bundle);
            ffi::Py_INCREF(tracker);
            let call = [tracker, serial, args.ty as *mut ffi::PyObject, bundle];
            let result =
                ffi::PyObject_VectorcallMethod(name, call.as_ptr(), call.len(), ptr::null_mut());
            if result.is_null() {
                outcome = report_failure(kind, tracker, name);
            } else {
                ffi::Py_DECREF(result);
            }
            ffi::Py_DECREF(tracker);
            ffi::Py_DECREF(bundle);
            ffi::Py_DECREF(serial);
        }
        match outcome {
            Outcome::Done => pending.restore(),
            // The interrupt replaces whatever was being raised before.
            Outcome::Interrupted => pending.discard(),
        }
        outcome
    }
}

/// The exception being raised, set aside while other code runs. Uses the
/// single-object API from 3.12 on (the three-part one is deprecated there).
struct PendingError {
    #[cfg(Py_3_12)]
    exc: *mut ffi::PyObject,
    #[cfg(not(Py_3_12))]
    parts: [*mut ffi::PyObject; 3],
}

impl PendingError {
    /// Takes the current exception (if any), leaving none set.
    ///
    /// # Safety
    /// GIL held.
    #[inline]
    unsafe fn take() -> Self {
        // SAFETY: GIL held (contract); the references move into `self`.
        unsafe {
            #[cfg(Py_3_12)]
            return PendingError {
                exc: ffi::PyErr_GetRaisedException(),
            };
            #[cfg(not(Py_3_12))]
            {
                let mut parts = [ptr::null_mut(); 3];
                let [t, v, tb] = &mut parts;
                ffi::PyErr_Fetch(t, v, tb);
                PendingError { parts }
            }
        }
    }

    /// Drops the taken exception (another one replaces it).
    ///
    /// # Safety
    /// GIL held.
    #[inline]
    unsafe fn discard(self) {
        // SAFETY: GIL held (contract); the references are ours to release.
        unsafe {
            #[cfg(Py_3_12)]
            ffi::Py_XDECREF(self.exc);
            #[cfg(not(Py_3_12))]
            for p in self.parts {
                ffi::Py_XDECREF(p);
            }
        }
    }

    /// Sets the taken exception again (replacing any set since).
    ///
    /// # Safety
    /// GIL held.
    #[inline]
    unsafe fn restore(self) {
        // SAFETY: GIL held (contract); the references move back to CPython.
        unsafe {
            #[cfg(Py_3_12)]
            {
                if self.exc.is_null() {
                    ffi::PyErr_Clear();
                } else {
                    ffi::PyErr_SetRaisedException(self.exc);
                }
            }
            #[cfg(not(Py_3_12))]
            ffi::PyErr_Restore(self.parts[0], self.parts[1], self.parts[2]);
        }
    }
}

/// A failed notification: silent if the tracker simply lacks the method;
/// `KeyboardInterrupt` and `SystemExit` propagate where the caller can
/// raise (every kind but `Destroyed`), and inside a destructor a
/// `KeyboardInterrupt` is delivered again as a fresh SIGINT (so Ctrl-C is
/// never lost); anything else is reported as unraisable, as an exception
/// in `__del__` is.
#[cold]
unsafe fn report_failure(
    kind: EventKind,
    tracker: *mut ffi::PyObject,
    name: *mut ffi::PyObject,
) -> Outcome {
    // SAFETY: GIL held, an exception is set, `tracker` and `name` are live.
    unsafe {
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_AttributeError) != 0 {
            let pending = PendingError::take();
            let has = ffi::PyObject_HasAttr(tracker, name) != 0;
            pending.restore();
            if !has {
                ffi::PyErr_Clear();
                return Outcome::Done;
            }
        }
        let interrupt = ffi::PyErr_ExceptionMatches(ffi::PyExc_KeyboardInterrupt) != 0;
        let exit = ffi::PyErr_ExceptionMatches(ffi::PyExc_SystemExit) != 0;
        if (interrupt || exit) && kind != EventKind::Destroyed {
            return Outcome::Interrupted;
        }
        if interrupt {
            ffi::PyErr_Clear();
            ffi::PyErr_SetInterrupt();
            return Outcome::Done;
        }
        ffi::PyErr_WriteUnraisable(tracker);
        Outcome::Done
    }
}

/// Dispatch lookup for every subclass of [`NativeTracker`] (see
/// `dispatch::register_native`).
pub(crate) unsafe fn native_lookup<'a>(
    py: Python<'a>,
    obj: *mut pyo3::ffi::PyObject,
) -> Option<&'a dyn Tracker> {
    // SAFETY: dispatch calls this only for objects whose type is one of the
    // registered subclasses of `NativeTracker` (whose layout starts with the
    // base's), kept alive by the caller for at least `'a`.
    let this = unsafe {
        pyo3::Borrowed::from_ptr(py, obj).cast_unchecked::<crate::trackers::NativeTracker>()
    };
    let core: &dyn crate::trackers::NativeCore = this.get().core();
    // SAFETY: the `Arc` lives as long as the Python object, which the caller
    // keeps alive for `'a`; only the lifetime is extended.
    let core: &'a dyn crate::trackers::NativeCore =
        unsafe { &*(core as *const dyn crate::trackers::NativeCore) };
    Some(core)
}

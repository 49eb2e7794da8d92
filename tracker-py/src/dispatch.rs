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
use std::sync::{Arc, OnceLock};

use pyo3::ffi;
use pyo3::prelude::*;
use tracker_core::age::Epoch;
use tracker_core::{ClassId, CountingTracker, EventKind, Serial, Tracker};
use tracker_shm::ShmTracker;

use crate::gil::GilCell;
use crate::trackers::{NativeCore, NativeTracker};

/// What a notification is about: plain values `object.rs` read from the
/// object, so this module never reaches into one.
#[derive(Clone, Copy)]
pub(crate) struct Subject {
    pub(crate) serial: Serial,
    /// The age epoch the object was born in.
    pub(crate) born: Epoch,
    /// The object's class id; `None` when it could not be resolved (native
    /// trackers are then not told).
    pub(crate) class: Option<ClassId>,
    /// The object's type (borrowed).
    pub(crate) ty: *mut ffi::PyTypeObject,
    /// The object's bundle (borrowed); null means `None`.
    pub(crate) bundle: *mut ffi::PyObject,
}

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

/// The native tracker types (exact types, as addresses), set once at
/// import: objects of exactly one of these types are told in Rust.
static NATIVE_TYPES: OnceLock<Box<[usize]>> = OnceLock::new();

/// Registers the native tracker types, all subclasses of [`NativeTracker`]
/// (once, at import).
pub(crate) fn register_native_types(types: &[*mut ffi::PyTypeObject]) {
    let types: Box<[usize]> = types.iter().map(|&t| t as usize).collect();
    let _ = NATIVE_TYPES.set(types);
}

/// The Rust side of the global tracker, by concrete type where it is one of
/// the stock native trackers: telling those is a direct call the compiler
/// inlines into object creation and destruction, with no virtual call.
#[derive(Clone, Copy)]
enum GlobalCore {
    Shm(*const ShmTracker),
    Counting(*const CountingTracker),
    Other(*const dyn Tracker),
}

/// The global tracker and, if it is native, its Rust side: most objects are
/// attached to the global tracker, and this spares them the type dispatch.
#[derive(Clone, Copy)]
struct GlobalNative {
    tracker: *mut ffi::PyObject,
    /// Points into the tracker [`GLOBAL_CORE`] keeps alive.
    native: Option<GlobalCore>,
}

// SAFETY: only reachable through `GilCell`, i.e. with the GIL held; the
// pointers are plain data there.
unsafe impl Send for GlobalNative {}

static GLOBAL_NATIVE: GilCell<GlobalNative> = GilCell::new(GlobalNative {
    tracker: ptr::null_mut(),
    native: None,
});

/// Keeps the global native tracker alive while [`GLOBAL_NATIVE`] points
/// into it.
static GLOBAL_CORE: GilCell<Option<Arc<dyn NativeCore>>> = GilCell::new(None);

/// Records the new global tracker (null for none). Called by
/// `object::set_global_tracker`.
pub(crate) fn set_global(py: Python<'_>, tracker: *mut ffi::PyObject) {
    let core = if tracker.is_null() {
        None
    } else {
        native_core(py, tracker).map(Arc::clone)
    };
    let native = core.as_deref().map(|c| {
        if let Some(shm) = c.shm() {
            GlobalCore::Shm(shm)
        } else if let Some(counting) = c.counting() {
            GlobalCore::Counting(counting)
        } else {
            GlobalCore::Other(c as &dyn Tracker)
        }
    });
    // The new tracker is kept alive before the pointer to it is published
    // (moving the `Arc` does not move the tracker), and the old one is
    // dropped after the pointer to it is gone.
    // Creation sites are sampled at the global ShmTracker's rate.
    if let Some(shm) = core.as_deref().and_then(|c| c.shm()) {
        crate::sites::set_rate(py, shm.site_every());
    }
    let old = GLOBAL_CORE.replace(py, core);
    GLOBAL_NATIVE.replace(py, GlobalNative { tracker, native });
    drop(old);
}

/// The Rust side of `tracker`, if its type is exactly a native tracker
/// type.
#[inline]
fn native_core<'a>(py: Python<'a>, tracker: *mut ffi::PyObject) -> Option<&'a Arc<dyn NativeCore>> {
    // SAFETY: `tracker` is a live object (callers); reading its type is a
    // plain field load under the GIL.
    let ty = unsafe { ffi::Py_TYPE(tracker) } as usize;
    if !NATIVE_TYPES.get()?.contains(&ty) {
        return None;
    }
    // SAFETY: its type is one of the registered subclasses of
    // `NativeTracker` (whose layout starts with the base's), and the
    // caller keeps the object alive for `'a`.
    let this = unsafe { pyo3::Borrowed::from_ptr(py, tracker).cast_unchecked::<NativeTracker>() };
    let core: &Arc<dyn NativeCore> = this.get().core_arc();
    // SAFETY: the `Arc` lives in the Python object, which the caller keeps
    // alive for `'a`; only the borrow's lifetime is widened to it.
    Some(unsafe { &*(core as *const Arc<dyn NativeCore>) })
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

/// Tells `tracker` of `kind` for the object described by `subject`.
/// `Destroyed` is told from deallocation or the cycle collector, where
/// nothing can propagate; the other kinds from a caller that can raise.
///
/// # Safety
/// GIL held; `subject` describes a live Trackable; `tracker` a live object.
#[inline(always)]
pub(crate) unsafe fn notify(
    py: Python<'_>,
    kind: EventKind,
    subject: &Subject,
    tracker: *mut ffi::PyObject,
) -> Outcome {
    let global = GLOBAL_NATIVE.get(py);
    if global.tracker == tracker {
        // The pointers point into the tracker `GLOBAL_CORE` keeps alive
        // until `set_global` replaces both; that takes Python code, which
        // telling a native tracker never runs.
        // Compares and branches, not a `match`: on four states that is a
        // jump table, an indirect jump and its address arithmetic.
        if let Some(GlobalCore::Shm(t)) = global.native {
            // SAFETY: as above.
            return tell(unsafe { &*t }, kind, subject);
        }
        if let Some(GlobalCore::Counting(t)) = global.native {
            // SAFETY: as above.
            return tell(unsafe { &*t }, kind, subject);
        }
        if let Some(GlobalCore::Other(t)) = global.native {
            // SAFETY: as above.
            return tell(unsafe { &*t }, kind, subject);
        }
    } else if let Some(core) = native_core(py, tracker) {
        return tell(&**core as &dyn Tracker, kind, subject);
    }
    // SAFETY: per the contract above.
    unsafe { notify_python(kind, *subject, tracker) }
}

/// Tells a native tracker; the GIL serialises every call made from here.
/// Creation and destruction, the per-object pair, name their kind
/// statically.
#[inline(always)]
fn tell<T: Tracker + ?Sized>(native: &T, kind: EventKind, subject: &Subject) -> Outcome {
    if let Some(class) = subject.class {
        match kind {
            EventKind::Attached => native.attached_serialized(class, subject.serial, subject.born),
            EventKind::Destroyed => {
                native.destroyed_serialized(class, subject.serial, subject.born)
            }
            _ => native.notify_serialized(kind, class, subject.serial, subject.born),
        }
    }
    Outcome::Done
}

/// Samples the creation site of the object `subject` describes, if its
/// tracker `tracker` is a ShmTracker (see `sites`). Returns whether the
/// object is to be marked as sampled.
///
/// # Safety
/// GIL held, from the object's creation; `tracker` a live object.
pub(crate) unsafe fn sample_site(
    py: Python<'_>,
    subject: &Subject,
    class: ClassId,
    tracker: *mut ffi::PyObject,
) -> bool {
    let shm = native_core(py, tracker).and_then(|core| core.shm());
    // SAFETY: per the contract above.
    unsafe { crate::sites::sample(py, subject.serial, class, shm) }
}

#[cold]
#[inline(never)]
unsafe fn notify_python(kind: EventKind, subject: Subject, tracker: *mut ffi::PyObject) -> Outcome {
    if SHUTTING_DOWN.load(Relaxed) {
        return Outcome::Done;
    }
    // SAFETY: GIL held; `this` and `tracker` live (caller's contract). Every
    // reference created here is released before returning; the pending
    // exception, if any, is fetched first and restored last.
    unsafe {
        let pending = PendingError::take();
        if crate::stock::try_count(kind, &subject, tracker) {
            pending.restore();
            return Outcome::Done;
        }
        let name = METHOD_NAMES[usize::from(kind.code() - 1)].load(Relaxed);

        let serial = ffi::PyLong_FromUnsignedLongLong(subject.serial);
        let mut outcome = Outcome::Done;
        if serial.is_null() {
            ffi::PyErr_WriteUnraisable(tracker);
        } else {
            let bundle = if subject.bundle.is_null() {
                ffi::Py_None()
            } else {
                subject.bundle
            };
            // Hold our own references for the call: tracker code may replace
            // the bundle or the tracker of the object.
            ffi::Py_INCREF(bundle);
            ffi::Py_INCREF(tracker);
            let call = [tracker, serial, subject.ty as *mut ffi::PyObject, bundle];
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
    /// No exception was being raised.
    #[cfg(Py_3_12)]
    const NONE: PendingError = PendingError {
        exc: ptr::null_mut(),
    };
    #[cfg(not(Py_3_12))]
    const NONE: PendingError = PendingError {
        parts: [ptr::null_mut(); 3],
    };

    fn is_none(&self) -> bool {
        #[cfg(Py_3_12)]
        return self.exc.is_null();
        #[cfg(not(Py_3_12))]
        return self.parts[0].is_null();
    }

    /// Takes the current exception (if any), leaving none set.
    ///
    /// # Safety
    /// GIL held.
    #[inline]
    unsafe fn take() -> Self {
        // SAFETY: GIL held (contract); the references move into `self`.
        unsafe {
            // The common case, nothing being raised, without the calls.
            if ffi::PyErr_Occurred().is_null() {
                return PendingError::NONE;
            }
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
            if self.is_none() {
                if !ffi::PyErr_Occurred().is_null() {
                    ffi::PyErr_Clear();
                }
                return;
            }
            #[cfg(Py_3_12)]
            ffi::PyErr_SetRaisedException(self.exc);
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

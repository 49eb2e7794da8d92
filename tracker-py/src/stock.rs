//! The stock `pytracker.Tracker`, counted without a Python call.
//!
//! A `Tracker` notification is a Python method call (a frame, attribute
//! look-ups, two integer objects), several times the cost of the object
//! itself. For an object of exactly the stock `Tracker` type whose
//! `notify_attached`/`notify_destroyed` are the stock functions (not
//! replaced on the class or the instance), this module does what those
//! functions do, on the same Python objects: look up the entry by the
//! class's `__name__` in the tracker dict, and, when the entry is exactly a
//! `TrackedType` with object tracking off, add to its `allocated` (and
//! `deallocated`) integers. Everything else (a missing entry, an entry of
//! another class, object tracking on, a value that is not a plain integer,
//! any subclass of `Tracker`) takes the Python call, unchanged: the
//! behaviour is the stock functions' in every case.

#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use pyo3::ffi;
use pyo3::prelude::*;
use tracker_core::EventKind;

use crate::dispatch::Subject;

/// `Tracker`, `TrackedType`, and the stock `notify_attached` and
/// `notify_destroyed` functions (strong references kept for the process's
/// life), registered by `pytracker._tracker` at import.
static TRACKER: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
static ENTRY: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
static ATTACHED_FN: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
static DESTROYED_FN: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());

/// Interned attribute names.
static NAMES: [AtomicPtr<ffi::PyObject>; 5] = [const { AtomicPtr::new(ptr::null_mut()) }; 5];
const ALLOCATED: usize = 0;
const DEALLOCATED: usize = 1;
const OBJECTS: usize = 2;
const NOTIFY_ATTACHED: usize = 3;
const NOTIFY_DESTROYED: usize = 4;

fn name(i: usize) -> *mut ffi::PyObject {
    NAMES[i].load(Relaxed)
}

/// Registers the stock classes (called once by `pytracker._tracker`).
#[pyfunction]
pub(crate) fn _register_stock_tracker(
    tracker: &Bound<'_, pyo3::types::PyType>,
    entry: &Bound<'_, pyo3::types::PyType>,
) -> PyResult<()> {
    let py = tracker.py();
    for (i, n) in [
        "allocated",
        "deallocated",
        "objects",
        "notify_attached",
        "notify_destroyed",
    ]
    .into_iter()
    .enumerate()
    {
        NAMES[i].store(
            pyo3::types::PyString::intern(py, n).unbind().into_ptr(),
            Relaxed,
        );
    }
    let dict = tracker.getattr("__dict__")?;
    ATTACHED_FN.store(
        dict.get_item("notify_attached")?.unbind().into_ptr(),
        Relaxed,
    );
    DESTROYED_FN.store(
        dict.get_item("notify_destroyed")?.unbind().into_ptr(),
        Relaxed,
    );
    ENTRY.store(entry.clone().unbind().into_ptr(), Relaxed);
    TRACKER.store(tracker.clone().unbind().into_ptr(), Relaxed);
    Ok(())
}

/// Does what the stock `Tracker.notify_attached` or `notify_destroyed`
/// would do for `subject`, if that is the plain case. Returns false, with no
/// exception set and nothing changed, when the Python call must be made.
///
/// # Safety
/// GIL held; `subject` describes a live Trackable; `tracker` a live object.
pub(crate) unsafe fn try_count(
    kind: EventKind,
    subject: &Subject,
    tracker: *mut ffi::PyObject,
) -> bool {
    let method = match kind {
        EventKind::Attached => name(NOTIFY_ATTACHED),
        EventKind::Destroyed => name(NOTIFY_DESTROYED),
        _ => return false,
    };
    let stock = TRACKER.load(Relaxed);
    // SAFETY: per the contract above; every pointer dereferenced is a live
    // object (the registered ones are kept for the process's life), and
    // each new reference made is released before returning.
    unsafe {
        if stock.is_null() || ffi::Py_TYPE(tracker) as *mut ffi::PyObject != stock {
            return false;
        }
        // The stock functions still in place on the class (checked again
        // whenever the class changes), and not replaced on the instance.
        if !classes_unchanged() {
            return false;
        }
        let own = ffi::PyObject_GenericGetDict(tracker, ptr::null_mut());
        if own.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let replaced = ffi::PyDict_Size(own) != 0 && ffi::PyDict_Contains(own, method) != 0;
        ffi::Py_DECREF(own);
        if replaced {
            ffi::PyErr_Clear();
            return false;
        }
        // entry = self.get(objtype.__name__)
        let ty = subject.ty;
        if (*ty).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
            return false;
        }
        let class_name = (*(ty as *mut ffi::PyHeapTypeObject)).ht_name;
        let entry = ffi::PyDict_GetItemWithError(tracker, class_name);
        if entry.is_null() {
            ffi::PyErr_Clear();
            return false; // a new entry: `_get_entry` makes it
        }
        if ffi::Py_TYPE(entry) as *mut ffi::PyObject != ENTRY.load(Relaxed) {
            return false;
        }
        ffi::Py_INCREF(entry);
        let done = count(kind, entry);
        ffi::Py_DECREF(entry);
        done
    }
}

/// The version tags of `Tracker` and `TrackedType` when they were last
/// found unchanged (0: check again).
static CHECKED_TAGS: [std::sync::atomic::AtomicU32; 2] =
    [const { std::sync::atomic::AtomicU32::new(0) }; 2];
/// `TrackedType`'s class-level defaults of `allocated`, `deallocated` and
/// `objects` (borrowed from its dict; valid while its tag is unchanged).
static DEFAULTS: [AtomicPtr<ffi::PyObject>; 3] = [const { AtomicPtr::new(ptr::null_mut()) }; 3];

/// Whether `Tracker.notify_attached`/`notify_destroyed` are the stock
/// functions and `TrackedType`'s `allocated`, `deallocated` and `objects`
/// are plain class attributes (no descriptor that would run code or store
/// elsewhere), so that reading and writing an entry's instance dict is what
/// attribute access would do. Looked at again only when a class changes
/// (its version tag).
///
/// # Safety
/// GIL held; the classes registered.
unsafe fn classes_unchanged() -> bool {
    let tracker = TRACKER.load(Relaxed) as *mut ffi::PyTypeObject;
    let entry = ENTRY.load(Relaxed) as *mut ffi::PyTypeObject;
    let tags = [
        crate::typecache::version_tag(tracker),
        crate::typecache::version_tag(entry),
    ];
    if tags[0] != 0
        && tags[1] != 0
        && tags[0] == CHECKED_TAGS[0].load(Relaxed)
        && tags[1] == CHECKED_TAGS[1].load(Relaxed)
    {
        return true;
    }
    // SAFETY: per the contract above; borrowed results only.
    unsafe {
        let tdict = (*tracker).tp_dict;
        let edict = (*entry).tp_dict;
        if tdict.is_null() || edict.is_null() {
            return false;
        }
        let same = |dict, key, func: *mut ffi::PyObject| {
            let v = ffi::PyDict_GetItemWithError(dict, key);
            ffi::PyErr_Clear();
            v == func
        };
        if !same(tdict, name(NOTIFY_ATTACHED), ATTACHED_FN.load(Relaxed))
            || !same(tdict, name(NOTIFY_DESTROYED), DESTROYED_FN.load(Relaxed))
        {
            return false;
        }
        for (i, key) in [ALLOCATED, DEALLOCATED, OBJECTS].into_iter().enumerate() {
            let v = ffi::PyDict_GetItemWithError(edict, name(key));
            ffi::PyErr_Clear();
            // A plain value: an int for the counts, None for `objects`.
            let plain = !v.is_null()
                && if key == OBJECTS {
                    v == ffi::Py_None()
                } else {
                    ffi::PyLong_CheckExact(v) != 0
                };
            if !plain {
                return false;
            }
            DEFAULTS[i].store(v, Relaxed);
        }
        // Tags are given lazily; ask for them so the next check is cheap.
        let tags = [
            crate::typecache::assign_tag(tracker),
            crate::typecache::assign_tag(entry),
        ];
        CHECKED_TAGS[0].store(tags[0], Relaxed);
        CHECKED_TAGS[1].store(tags[1], Relaxed);
        true
    }
}

/// `allocated += 1`, or `allocated -= 1; deallocated += 1`, on an entry
/// with object tracking off and plain integer counts, through its instance
/// dict (the class attributes being plain, see [`classes_unchanged`]).
///
/// # Safety
/// GIL held; `entry` a live TrackedType; [`classes_unchanged`] just held.
unsafe fn count(kind: EventKind, entry: *mut ffi::PyObject) -> bool {
    // SAFETY: per the contract above; new references are released.
    unsafe {
        let dict = ffi::PyObject_GenericGetDict(entry, ptr::null_mut());
        if dict.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let done = count_in(kind, dict);
        ffi::Py_DECREF(dict);
        done
    }
}

/// [`count`] on the entry's instance dict.
///
/// # Safety
/// As [`count`]; `dict` a live dict.
unsafe fn count_in(kind: EventKind, dict: *mut ffi::PyObject) -> bool {
    // SAFETY: per the contract above.
    unsafe {
        let Some(objects) = lookup(dict, OBJECTS, 2) else {
            return false;
        };
        if objects != ffi::Py_None() {
            return false; // `track`/`untrack` record the object
        }
        let Some(allocated) = lookup(dict, ALLOCATED, 0).and_then(|v| int(v)) else {
            return false;
        };
        if kind == EventKind::Attached {
            return store(dict, ALLOCATED, allocated.checked_add(1));
        }
        let Some(deallocated) = lookup(dict, DEALLOCATED, 1).and_then(|v| int(v)) else {
            return false;
        };
        let (a, d) = (allocated.checked_sub(1), deallocated.checked_add(1));
        if a.is_none() || d.is_none() || !store(dict, ALLOCATED, a) {
            return false;
        }
        if !store(dict, DEALLOCATED, d) {
            // Leave the entry as it was: the Python call does it all.
            store(dict, ALLOCATED, Some(allocated));
            return false;
        }
        true
    }
}

/// `dict[names[key]]`, or the class default `DEFAULTS[default]` when the
/// instance has none (borrowed); `None` on an error.
///
/// # Safety
/// GIL held; `dict` live; the defaults checked by [`classes_unchanged`].
unsafe fn lookup(
    dict: *mut ffi::PyObject,
    key: usize,
    default: usize,
) -> Option<*mut ffi::PyObject> {
    // SAFETY: per the contract above.
    unsafe {
        let v = ffi::PyDict_GetItemWithError(dict, name(key));
        if !v.is_null() {
            return Some(v);
        }
        if !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(DEFAULTS[default].load(Relaxed))
    }
}

/// The value of an exact `int` that fits an i64.
///
/// # Safety
/// GIL held; `v` live.
unsafe fn int(v: *mut ffi::PyObject) -> Option<i64> {
    // SAFETY: per the contract above.
    unsafe {
        if ffi::PyLong_CheckExact(v) == 0 {
            return None;
        }
        let n = ffi::PyLong_AsLongLong(v);
        if n == -1 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(n)
    }
}

/// `dict[names[key]] = value`; false (nothing stored) if `value` is None or
/// storing failed.
///
/// # Safety
/// GIL held; `dict` live.
unsafe fn store(dict: *mut ffi::PyObject, key: usize, value: Option<i64>) -> bool {
    let Some(value) = value else { return false };
    // SAFETY: per the contract above.
    unsafe {
        let v = ffi::PyLong_FromLongLong(value);
        if v.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let r = ffi::PyDict_SetItem(dict, name(key), v);
        ffi::Py_DECREF(v);
        if r != 0 {
            ffi::PyErr_Clear();
            return false;
        }
        true
    }
}

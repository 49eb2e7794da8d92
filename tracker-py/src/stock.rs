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
//! `deallocated`) counts. Everything else (a missing entry, an entry of
//! another class, object tracking on, a count that is not a plain integer,
//! any subclass of `Tracker`) takes the Python call, unchanged: the
//! behaviour is the stock functions' in every case.
//!
//! An entry's two counts live in its native base, [`EntryCounts`], as
//! machine integers while they hold plain integers: counting adds one to a
//! field, with no dict look-up and no integer object made. Set to anything
//! else (a float, a huge integer, a `bool`), a count keeps that object and
//! Python arithmetic decides from then on, as it did when the counts were
//! ordinary attributes.

#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyTuple};
use tracker_core::EventKind;

use crate::dispatch::Subject;
use crate::gil::GilCell;
use crate::typecache::{dict_get, mro_lookup};

/// One count of an entry.
enum Count {
    /// A plain integer that fits in 64 bits: counted here.
    Int(i64),
    /// Anything else the count was set to (a float, a huge integer, a
    /// `bool`, ...): Python arithmetic decides, on the Python path.
    Object(Py<PyAny>),
}

impl Count {
    fn to_object(&self, py: Python<'_>) -> Py<PyAny> {
        match self {
            Count::Int(n) => n
                .into_pyobject(py)
                .map_or_else(|e| match e {}, |v| v.into_any().unbind()),
            Count::Object(o) => o.clone_ref(py),
        }
    }

    fn from_object(value: &Bound<'_, PyAny>) -> Count {
        let exact_int = value.is_exact_instance_of::<PyInt>();
        match exact_int.then(|| value.extract::<i64>().ok()).flatten() {
            Some(n) => Count::Int(n),
            None => Count::Object(value.clone().unbind()),
        }
    }
}

/// The native base of `TrackedType`: its `allocated` and `deallocated`
/// counts (see the module documentation).
#[pyclass(frozen, subclass, name = "_EntryCounts", module = "pytracker._native")]
pub(crate) struct EntryCounts {
    /// `allocated`, `deallocated`.
    counts: GilCell<[Count; 2]>,
}

#[pymethods]
impl EntryCounts {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        EntryCounts {
            counts: GilCell::new([Count::Int(0), Count::Int(0)]),
        }
    }

    /// Objects attached now (0 for a new entry).
    #[getter]
    fn allocated(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 0)
    }

    #[setter]
    fn set_allocated(&self, value: &Bound<'_, PyAny>) {
        self.set(0, value)
    }

    /// Objects destroyed (0 for a new entry).
    #[getter]
    fn deallocated(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 1)
    }

    #[setter]
    fn set_deallocated(&self, value: &Bound<'_, PyAny>) {
        self.set(1, value)
    }
}

impl EntryCounts {
    fn get(&self, py: Python<'_>, i: usize) -> Py<PyAny> {
        self.counts.with(py, |c| c[i].to_object(py))
    }

    /// Sets count `i` (deleting one is refused by the attribute machinery).
    fn set(&self, i: usize, value: &Bound<'_, PyAny>) {
        let new = Count::from_object(value);
        // The old value is dropped after the cell is released: dropping it
        // may run Python code.
        let old = self
            .counts
            .with(value.py(), |c| std::mem::replace(&mut c[i], new));
        drop(old);
    }

    /// Adds one to `allocated` (attach), or moves one from `allocated` to
    /// `deallocated` (destroy); false, with nothing changed, unless the
    /// counts involved are plain integers and the results fit.
    #[inline]
    fn count(&self, py: Python<'_>, kind: EventKind) -> bool {
        self.counts.with(py, |c| match (kind, &c[0], &c[1]) {
            (EventKind::Attached, &Count::Int(a), _) => match a.checked_add(1) {
                Some(a) => {
                    c[0] = Count::Int(a);
                    true
                }
                None => false,
            },
            (EventKind::Destroyed, &Count::Int(a), &Count::Int(d)) => {
                match (a.checked_sub(1), d.checked_add(1)) {
                    (Some(a), Some(d)) => {
                        c[0] = Count::Int(a);
                        c[1] = Count::Int(d);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        })
    }
}

/// `Tracker`, `TrackedType`, and the stock `notify_attached` and
/// `notify_destroyed` functions (strong references kept for the process's
/// life), registered by `pytracker._tracker` at import.
static TRACKER: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
static ENTRY: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
static ATTACHED_FN: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
static DESTROYED_FN: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
/// `EntryCounts`'s `allocated` and `deallocated` descriptors (borrowed:
/// its dict keeps them, and `ENTRY`, a subclass, keeps it alive).
static DESCRIPTORS: [AtomicPtr<ffi::PyObject>; 2] = [const { AtomicPtr::new(ptr::null_mut()) }; 2];

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

/// Registers the stock classes (called once by `pytracker._tracker`):
/// `entry` must derive from `_EntryCounts`.
#[pyfunction]
pub(crate) fn _register_stock_tracker(
    tracker: &Bound<'_, pyo3::types::PyType>,
    entry: &Bound<'_, pyo3::types::PyType>,
) -> PyResult<()> {
    let py = tracker.py();
    let counts = py.get_type::<EntryCounts>();
    if !entry.is_subclass(&counts)? {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "the stock entry class must derive from pytracker._native._EntryCounts",
        ));
    }
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
    let own = counts.getattr("__dict__")?;
    for (i, n) in ["allocated", "deallocated"].into_iter().enumerate() {
        DESCRIPTORS[i].store(own.get_item(n)?.as_ptr(), Relaxed);
    }
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
        if replaced_on(tracker, method) {
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

/// Whether the instance `obj` has its own attribute `method` (in its
/// `__dict__`), which replaces the class's function.
///
/// # Safety
/// GIL held; `obj` a live object of a class with instance dicts.
#[inline]
unsafe fn replaced_on(obj: *mut ffi::PyObject, method: *mut ffi::PyObject) -> bool {
    // SAFETY: per the contract above; the new reference is released.
    unsafe {
        let own = ffi::PyObject_GenericGetDict(obj, ptr::null_mut());
        if own.is_null() {
            ffi::PyErr_Clear();
            return true;
        }
        // `Contains` fails only if comparing keys raises, which a str key
        // cannot make it do; a failure counts as replaced.
        let replaced = ffi::PyDict_Size(own) != 0 && ffi::PyDict_Contains(own, method) != 0;
        ffi::Py_DECREF(own);
        if replaced {
            ffi::PyErr_Clear();
        }
        replaced
    }
}

/// The version tags of `Tracker` and `TrackedType` when they were last
/// found unchanged (0: check again).
static CHECKED_TAGS: [std::sync::atomic::AtomicU32; 2] =
    [const { std::sync::atomic::AtomicU32::new(0) }; 2];

/// Whether `Tracker.notify_attached`/`notify_destroyed` are the stock
/// functions, `TrackedType`'s `allocated` and `deallocated` are the
/// `_EntryCounts` fields (not shadowed anywhere along its MRO) and its
/// `objects` a plain class attribute `None` (no descriptor that would run
/// code or store elsewhere), so that counting in the fields and reading the
/// instance dict is what attribute access would do. Looked at again only
/// when a class changes (its version tag, which also changes when a base
/// changes).
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
        for (i, key) in [ALLOCATED, DEALLOCATED].into_iter().enumerate() {
            if mro_lookup(entry, name(key)) != DESCRIPTORS[i].load(Relaxed) {
                return false;
            }
        }
        if dict_get(edict, name(OBJECTS)) != ffi::Py_None() {
            return false;
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
/// with object tracking off and plain integer counts (the class attributes
/// being the fields, see [`classes_unchanged`]).
///
/// # Safety
/// GIL held; `entry` a live TrackedType; [`classes_unchanged`] just held.
unsafe fn count(kind: EventKind, entry: *mut ffi::PyObject) -> bool {
    // SAFETY: per the contract above; the new reference is released.
    unsafe {
        let dict = ffi::PyObject_GenericGetDict(entry, ptr::null_mut());
        if dict.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        // `objects`: the instance's own value, else the class default,
        // which `classes_unchanged` found to be None.
        let objects = dict_get(dict, name(OBJECTS));
        let tracking = !objects.is_null() && objects != ffi::Py_None();
        ffi::Py_DECREF(dict);
        if tracking {
            return false; // `track`/`untrack` record the object
        }
        let py = Python::assume_attached();
        // SAFETY (cast): `entry`'s type is exactly TrackedType, checked by
        // the caller, which derives from `_EntryCounts` (checked at
        // registration); the reference is borrowed for this call only.
        let counts = pyo3::Borrowed::from_ptr(py, entry).cast_unchecked::<EntryCounts>();
        counts.get().count(py, kind)
    }
}

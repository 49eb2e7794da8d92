//! The `pytracker.Trackable` type at the level of CPython's C API.
//!
//! This is the hot path: every tracked object's creation and destruction
//! runs [`trackable_new`] and [`trackable_dealloc`]. They are written
//! against `pyo3::ffi` directly because PyO3's generated slot wrappers
//! (panic trampoline, GIL-count bookkeeping) would cost more than the whole
//! tracking work. Everything else about the type (its methods, pickling)
//! lives in safe code in `methods.rs`, which reaches the object's fields only
//! through [`TrackableRef`].
//!
//! Panics: nothing reachable from the slots here panics on any input; the
//! one path that runs arbitrary code (the type-cache miss) is guarded with
//! `catch_unwind` in [`class_of`].

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;
use tracker_core::age::Epoch;
use tracker_core::{ClassId, EventKind, Serial, SerialLane};

use crate::dispatch::{self, Outcome, Subject};
use crate::typecache;

/// `class` value of an object whose class id has not been looked up yet.
const UNRESOLVED: u32 = u32::MAX;

/// The bit of the `born` field that marks an object whose creation site
/// was sampled (epochs stay far below it: 2^31 epochs of 4 s are 272
/// years).
const SAMPLED: Epoch = 1 << 31;

/// The C layout of a `Trackable` instance. Subclasses append their own
/// fields (dict, slots) after it; CPython manages those.
#[repr(C)]
pub(crate) struct TrackableObject {
    ob_base: ffi::PyObject,
    serial: Serial,
    /// [`ClassId`] of the type, or [`UNRESOLVED`].
    class: u32,
    /// The age epoch the object was born in (see `tracker_core::age`):
    /// trackers that count ages are told it, so an object's cohort is
    /// known at destruction without a look-up. Its top bit is [`SAMPLED`].
    born: Epoch,
    /// Strong reference to the assigned tracker, or null.
    tracker: *mut ffi::PyObject,
    /// Strong reference to the data bundle, or null (reads as `None`).
    bundle: *mut ffi::PyObject,
    /// CPython's weak-reference list head. From 3.12 on CPython keeps it in
    /// the object's pre-header (`Py_TPFLAGS_MANAGED_WEAKREF`), in the slot
    /// that plain classes use too, so a Trackable costs no extra word for it.
    #[cfg(not(Py_3_12))]
    weaklist: *mut ffi::PyObject,
}

/// A live Trackable (or subclass) instance: the one way into its fields.
///
/// Made only by [`Fields::of`], whose contract (a live instance, the GIL
/// held while the value is used) every accessor relies on; so each
/// accessor is safe to call, and the slot functions below keep `unsafe`
/// for the C API calls they make.
#[derive(Clone, Copy)]
struct Fields(*mut TrackableObject);

impl Fields {
    /// # Safety
    /// `obj` is a live instance of `Trackable` or a subclass, and the GIL
    /// is held for as long as the returned value (or a copy) is used.
    #[inline(always)]
    unsafe fn of(obj: *mut ffi::PyObject) -> Fields {
        Fields(obj as *mut TrackableObject)
    }

    #[inline(always)]
    fn object(self) -> *mut ffi::PyObject {
        self.0 as *mut ffi::PyObject
    }

    /// The object's type.
    #[inline(always)]
    fn ty(self) -> *mut ffi::PyTypeObject {
        // SAFETY: a live object (contract of `of`); a plain field load.
        unsafe { ffi::Py_TYPE(self.object()) }
    }

    #[inline(always)]
    fn serial(self) -> Serial {
        // SAFETY: a live Trackable, GIL held (contract of `of`).
        unsafe { (*self.0).serial }
    }

    #[inline(always)]
    fn set_serial(self, serial: Serial) {
        // SAFETY: as in `serial`; the GIL excludes other writers.
        unsafe { (*self.0).serial = serial }
    }

    /// The class id field ([`UNRESOLVED`] until looked up).
    #[inline(always)]
    fn class(self) -> u32 {
        // SAFETY: as in `serial`.
        unsafe { (*self.0).class }
    }

    #[inline(always)]
    fn set_class(self, class: u32) {
        // SAFETY: as in `set_serial`.
        unsafe { (*self.0).class = class }
    }

    /// The epoch the object was born in.
    #[inline(always)]
    fn born(self) -> Epoch {
        // SAFETY: as in `serial`.
        unsafe { (*self.0).born & !SAMPLED }
    }

    /// The object's creation site was recorded (see `sites`).
    #[inline(always)]
    fn sampled(self) -> bool {
        // SAFETY: as in `serial`.
        unsafe { (*self.0).born & SAMPLED != 0 }
    }

    #[inline(always)]
    fn mark_sampled(self) {
        // SAFETY: as in `set_serial`.
        unsafe { (*self.0).born |= SAMPLED }
    }

    #[inline(always)]
    fn set_born(self, born: Epoch) {
        // SAFETY: as in `set_serial`.
        unsafe { (*self.0).born = born }
    }

    /// The tracker (a strong reference the object owns), or null.
    #[inline(always)]
    fn tracker(self) -> *mut ffi::PyObject {
        // SAFETY: as in `serial`.
        unsafe { (*self.0).tracker }
    }

    /// Stores `new` (a strong reference, or null) as the tracker and
    /// returns the reference the field held, now the caller's.
    #[inline(always)]
    fn replace_tracker(self, new: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: as in `set_serial`.
        unsafe { std::mem::replace(&mut (*self.0).tracker, new) }
    }

    /// The bundle (a strong reference the object owns), or null for None.
    #[inline(always)]
    fn bundle(self) -> *mut ffi::PyObject {
        // SAFETY: as in `serial`.
        unsafe { (*self.0).bundle }
    }

    /// Stores `new` as the bundle and returns the reference the field held,
    /// now the caller's.
    #[inline(always)]
    fn replace_bundle(self, new: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: as in `set_serial`.
        unsafe { std::mem::replace(&mut (*self.0).bundle, new) }
    }

    /// Whether weak references to the object exist.
    #[inline(always)]
    fn has_weakrefs(self) -> bool {
        let offset = WEAKLIST_OFFSET.load(Relaxed);
        // SAFETY: the list head is at the offset CPython reported for the
        // type at import (inside the object before 3.12, in its pre-header
        // since), and every Trackable subclass inherits it; a live object.
        unsafe {
            !(*((self.object() as *mut u8).offset(offset) as *mut *mut ffi::PyObject)).is_null()
        }
    }

    /// The class id, looked up now (and kept) if it was not yet.
    #[inline(always)]
    fn class_id(self, py: Python<'_>) -> Option<ClassId> {
        match self.class() {
            UNRESOLVED => self.resolve_class(py),
            class => Some(ClassId(class)),
        }
    }

    /// [`Fields::class_id`] for an object created while no tracker was
    /// set (out of line: the hot path never takes it).
    #[cold]
    #[inline(never)]
    fn resolve_class(self, py: Python<'_>) -> Option<ClassId> {
        // SAFETY: GIL held, the type of a live object.
        let info = unsafe { class_of(py, self.ty()) }?;
        self.set_class(info.class.0);
        Some(info.class)
    }

    /// What a notification needs to know about the object.
    #[inline(always)]
    fn subject(self, py: Python<'_>) -> Subject {
        Subject {
            serial: self.serial(),
            born: self.born(),
            class: self.class_id(py),
            ty: self.ty(),
            bundle: self.bundle(),
        }
    }
}

/// Releases a strong reference, if there is one.
///
/// # Safety
/// GIL held; `obj` null or a strong reference the caller owns.
#[inline(always)]
unsafe fn release(obj: *mut ffi::PyObject) {
    if !obj.is_null() {
        // SAFETY: per the contract above.
        unsafe { ffi::Py_DECREF(obj) };
    }
}

/// Type flags of `Trackable`.
#[cfg(not(Py_3_12))]
const TYPE_FLAGS: std::ffi::c_ulong =
    ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_BASETYPE | ffi::Py_TPFLAGS_HAVE_GC;
#[cfg(Py_3_12)]
const TYPE_FLAGS: std::ffi::c_ulong = ffi::Py_TPFLAGS_DEFAULT
    | ffi::Py_TPFLAGS_BASETYPE
    | ffi::Py_TPFLAGS_HAVE_GC
    | ffi::Py_TPFLAGS_MANAGED_WEAKREF;

/// Where the weak-reference list of a Trackable is, relative to the object:
/// `tp_weaklistoffset`, read once at import (negative for the managed
/// pre-header slot of 3.12+).
static WEAKLIST_OFFSET: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

/// The type object, set once by [`create_type`].
static TRACKABLE_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(ptr::null_mut());

/// The tracker new objects are attached to (strong reference), or null.
static GLOBAL_TRACKER: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());

/// Creates the `Trackable` type. Called once, at module import.
pub(crate) fn create_type(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    // The spec and its arrays must outlive the call only; CPython copies
    // what it needs (members are copied into descriptors).
    let mut members = [
        #[cfg(not(Py_3_12))]
        ffi::PyMemberDef {
            name: c"__weaklistoffset__".as_ptr(),
            type_code: ffi::Py_T_PYSSIZET,
            offset: std::mem::offset_of!(TrackableObject, weaklist) as ffi::Py_ssize_t,
            flags: ffi::Py_READONLY,
            doc: ptr::null(),
        },
        ffi::PyMemberDef::default(),
    ];
    let doc: &CStr = c"Base class of objects whose lifecycle is tracked.\n\nEvery instance gets a process-wide serial; its tracker is told of\nits creation, tracker changes, bundle updates and destruction.";
    let mut slots = [
        ffi::PyType_Slot {
            slot: ffi::Py_tp_new,
            pfunc: trackable_new as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: trackable_dealloc as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_traverse,
            pfunc: trackable_traverse as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_clear,
            pfunc: trackable_clear as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_members,
            pfunc: members.as_mut_ptr() as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: doc.as_ptr() as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ];
    let mut spec = ffi::PyType_Spec {
        name: c"pytracker.Trackable".as_ptr(),
        basicsize: std::mem::size_of::<TrackableObject>() as c_int,
        itemsize: 0,
        flags: TYPE_FLAGS as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: `spec`, `slots` and `members` are valid, null-terminated and
    // live across the call; the slot functions have the signatures CPython
    // expects for their slot ids.
    let ty = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(&mut spec))? };
    let ty = ty.cast_into::<PyType>()?;
    assert_layout(&ty)?;
    #[cfg(all(Py_3_11, not(Py_3_13)))]
    {
        // SAFETY: GIL held; a new reference, kept for the process's life.
        let empty = unsafe { ffi::PyTuple_New(0) };
        if empty.is_null() {
            return Err(PyErr::fetch(py));
        }
        EMPTY_TUPLE.store(empty, Relaxed);
        probe_cached_keys(py)?;
    }
    // Keep one reference for the module's lifetime (the module holds another).
    TRACKABLE_TYPE.store(
        ty.clone().unbind().into_ptr() as *mut ffi::PyTypeObject,
        Relaxed,
    );
    Ok(ty)
}

/// Checks at import that CPython laid the type out as this module assumes,
/// and records where its weak-reference list is.
fn assert_layout(ty: &Bound<'_, PyType>) -> PyResult<()> {
    let raw = ty.as_type_ptr();
    // SAFETY: `raw` is the live type just created; plain field reads.
    let (basic, weak, dict, flags) = unsafe {
        (
            (*raw).tp_basicsize,
            (*raw).tp_weaklistoffset,
            (*raw).tp_dictoffset,
            (*raw).tp_flags,
        )
    };
    #[cfg(not(Py_3_12))]
    let weak_ok = weak == std::mem::offset_of!(TrackableObject, weaklist) as ffi::Py_ssize_t;
    // The managed slot lies in the pre-header, before the object.
    #[cfg(Py_3_12)]
    let weak_ok = weak < 0 && flags & ffi::Py_TPFLAGS_MANAGED_WEAKREF != 0;
    if basic as usize != std::mem::size_of::<TrackableObject>()
        || !weak_ok
        || dict != 0
        || flags & ffi::Py_TPFLAGS_HAVE_GC == 0
    {
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "pytracker: unexpected Trackable layout on Python {} (basicsize {basic}, weaklistoffset {weak}, \
             dictoffset {dict}, flags {flags:#x}); this build of pytracker does not match this \
             interpreter: reinstall pytracker for this Python",
            py_version(ty.py())
        )));
    }
    WEAKLIST_OFFSET.store(weak, Relaxed);
    Ok(())
}

fn py_version(py: Python<'_>) -> String {
    let v = py.version_info();
    format!("{}.{}.{}", v.major, v.minor, v.patch)
}

/// The `Trackable` type pointer (null before import).
#[inline]
fn trackable_type() -> *mut ffi::PyTypeObject {
    TRACKABLE_TYPE.load(Relaxed)
}

/// Replaces the global tracker; `None` clears it.
pub(crate) fn set_global_tracker(py: Python<'_>, tracker: Option<&Bound<'_, PyAny>>) {
    let new = tracker.map_or(ptr::null_mut(), |t| t.clone().into_ptr());
    dispatch::set_global(py, new);
    GLOBAL_GENERATION.fetch_add(1, Relaxed);
    let old = GLOBAL_TRACKER.swap(new, Relaxed);
    // SAFETY: `old` was null or a strong reference owned by the static.
    unsafe { release(old) };
}

/// Bumped each time the global tracker is replaced, so caches keyed on it
/// (see `exporter::tick`) never mistake a new tracker at a reused address
/// for the old one.
static GLOBAL_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The global tracker's generation (see [`GLOBAL_GENERATION`]).
#[inline(always)]
pub(crate) fn global_generation() -> u64 {
    GLOBAL_GENERATION.load(Relaxed)
}

/// The global tracker, if one is set.
pub(crate) fn global_tracker(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    let raw = GLOBAL_TRACKER.load(Relaxed);
    // SAFETY: a non-null value is a strong reference kept alive by the
    // static; we take a new reference for the caller.
    (!raw.is_null()).then(|| unsafe { Bound::from_borrowed_ptr(py, raw) })
}

/// Whether any excess constructor argument was passed.
#[inline]
unsafe fn has_arguments(args: *mut ffi::PyObject, kwds: *mut ffi::PyObject) -> bool {
    // SAFETY: the caller guarantees `args` is a tuple and `kwds` null or a dict.
    unsafe { ffi::PyTuple_GET_SIZE(args) != 0 || (!kwds.is_null() && ffi::PyDict_Size(kwds) != 0) }
}

/// How many callers want creating threads recorded (`leak_check` blocks
/// and the pytest plugin, while they run). At 0 creation costs one load.
static RECORDING_CREATORS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Which thread created each object made while creators are recorded: a
/// map from serial to [`creator_tag`], kept beside the objects (rarely
/// used, so it costs them no field). An entry goes when its object does.
mod creators {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    use tracker_core::Serial;

    use crate::gil::GilCell;

    static MAP: GilCell<Option<HashMap<Serial, u32>>> = GilCell::new(None);
    /// The map has entries: destruction looks there only then.
    static USED: AtomicBool = AtomicBool::new(false);

    /// Records the current thread as `serial`'s creator (GIL held).
    #[cold]
    pub(super) fn record(serial: Serial) {
        // SAFETY: callers hold the GIL (object creation).
        let py = unsafe { pyo3::Python::assume_attached() };
        let tag = super::creator_tag();
        MAP.with(py, |m| {
            m.get_or_insert_with(HashMap::new).insert(serial, tag)
        });
        USED.store(true, Relaxed);
    }

    /// Forgets `serial` (its object is being destroyed; GIL held).
    #[inline(always)]
    pub(super) fn forget(serial: Serial) {
        if USED.load(Relaxed) {
            forget_slow(serial);
        }
    }

    #[cold]
    #[inline(never)]
    fn forget_slow(serial: Serial) {
        // SAFETY: callers hold the GIL (object destruction).
        let py = unsafe { pyo3::Python::assume_attached() };
        MAP.with(py, |m| {
            if let Some(map) = m {
                map.remove(&serial);
                if map.is_empty() {
                    *m = None;
                    USED.store(false, Relaxed);
                }
            }
        });
    }

    /// The tag of `serial`'s creator, 0 if it was not recorded (GIL held).
    pub(super) fn of(serial: Serial) -> u32 {
        // SAFETY: callers hold the GIL (a method of a live object).
        let py = unsafe { pyo3::Python::assume_attached() };
        MAP.with(py, |m| {
            m.as_ref()
                .and_then(|m| m.get(&serial).copied())
                .unwrap_or(0)
        })
    }
}

/// Starts (`true`) or stops recording which thread creates each Trackable;
/// calls nest.
pub(crate) fn record_creators(on: bool) {
    if on {
        RECORDING_CREATORS.fetch_add(1, Relaxed);
    } else {
        let _ = RECORDING_CREATORS.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }
}

/// This thread's tag: a small number, never 0, unique for the process's
/// life (assigned on first use).
pub(crate) fn creator_tag() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    thread_local! {
        static TAG: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    TAG.with(|t| {
        if t.get() == 0 {
            t.set(NEXT.fetch_add(1, Relaxed).max(1));
        }
        t.get()
    })
}

/// The serials of Python objects: every `Trackable` is made with the GIL
/// held, which serialises the lane.
static SERIALS: SerialLane = SerialLane::new();

/// The serial of the Trackable made last in this process (0 before the
/// first).
pub(crate) fn last_serial() -> Serial {
    SERIALS.last_issued()
}

/// Samples the creation of `serial` (or of the first one after it, if it
/// is past) for its site: see `crate::sites`. `u64::MAX`: none. GIL held.
pub(crate) fn sample_from(serial: Serial) {
    SERIALS.set_mark(serial);
}

/// `tp_new`: allocates, issues the serial, attaches the global tracker.
///
/// # Safety
/// Called by CPython with the GIL held, a live subtype of Trackable, an
/// argument tuple and a null-or-dict for keywords.
unsafe extern "C" fn trackable_new(
    ty: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwds: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // Like `object.__new__`: arguments are an error unless the class has
    // an `__init__` to take them.
    // SAFETY: `ty` is a live type object (contract) and `object` a static
    // type CPython never changes after start-up; plain field reads.
    let own_init = unsafe {
        (*ty).tp_init.map(|f| f as usize) != ffi::PyBaseObject_Type.tp_init.map(|f| f as usize)
    };
    // SAFETY: `args` a tuple, `kwds` null or a dict (contract).
    if !own_init && unsafe { has_arguments(args, kwds) } {
        // SAFETY: GIL held, `ty` live.
        return unsafe { no_arguments_error(ty) };
    }
    // SAFETY: GIL held, `ty` a live subtype of Trackable.
    let obj = unsafe { allocate(ty) };
    if obj.is_null() {
        return ptr::null_mut();
    }
    match SERIALS.issue_before_stop() {
        // SAFETY: GIL held, `obj` a new instance of `ty`.
        Some(serial) => unsafe { attach_new(ty, obj, serial, false) },
        // SAFETY: as above.
        None => unsafe { attach_new_at_stop(ty, obj) },
    }
}

/// [`attach_new`] for a creation that reached the serial lane's stop: a new
/// block, or the serial marked for site sampling. The whole rest of the
/// creation, so the common path carries no sampling check.
///
/// # Safety
/// As [`attach_new`].
#[cold]
#[inline(never)]
unsafe fn attach_new_at_stop(
    ty: *mut ffi::PyTypeObject,
    obj: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let (serial, sampled) = SERIALS.issue_at_stop();
    if sampled {
        // The next mark, drawn once per mark reached, whether or not a
        // tracker takes this creation (see `crate::sites`).
        // SAFETY: CPython called tp_new with the GIL held.
        crate::sites::draw_next(unsafe { Python::assume_attached() }, serial);
    }
    // SAFETY: the caller's contract.
    unsafe { attach_new(ty, obj, serial, sampled) }
}

/// The rest of `tp_new` once `obj` is allocated and `serial` issued:
/// fills in the fields, attaches the global tracker, and records the
/// creation's site if `sample` (the serial reached the sampling mark).
///
/// # Safety
/// GIL held; `obj` a new, zero-filled instance of `ty`, a subtype of
/// Trackable; returns it, or null with an exception set.
#[inline(always)]
unsafe fn attach_new(
    ty: *mut ffi::PyTypeObject,
    obj: *mut ffi::PyObject,
    serial: Serial,
    sample: bool,
) -> *mut ffi::PyObject {
    // SAFETY: a new, live instance; the GIL is held for this whole call.
    // tp_alloc zero-filled it: tracker, bundle and weaklist start null.
    let this = unsafe { Fields::of(obj) };
    this.set_serial(serial);
    this.set_class(UNRESOLVED);
    this.set_born(tracker_core::age::now());
    if RECORDING_CREATORS.load(Relaxed) != 0 {
        creators::record(serial);
    }
    // SAFETY: CPython called tp_new with the GIL held.
    let py = unsafe { Python::assume_attached() };
    if GLOBAL_TRACKER.load(Relaxed).is_null() {
        return obj;
    }
    // SAFETY: GIL held, `ty` live.
    let info = unsafe { class_of(py, ty) };
    // Reload: on a cache miss `class_of` runs Python code, which may have
    // replaced (and freed) the global tracker.
    let tracker = GLOBAL_TRACKER.load(Relaxed);
    let Some(info) = info.filter(|i| !i.global_disabled && !tracker.is_null()) else {
        return obj;
    };
    this.set_class(info.class.0);
    // SAFETY: GIL held; `tracker` is live (the static owns a reference).
    unsafe { ffi::Py_INCREF(tracker) };
    this.replace_tracker(tracker);
    let subject = Subject {
        serial,
        born: this.born(),
        class: Some(info.class),
        ty,
        bundle: ptr::null_mut(),
    };
    // SAFETY: GIL held; the subject is the live new object; `tracker` is
    // kept alive by the reference the object now holds.
    if unsafe { dispatch::notify(py, EventKind::Attached, &subject, tracker) }
        == Outcome::Interrupted
    {
        // The tracker was interrupted: no object, the interrupt
        // propagates from the constructor.
        // SAFETY: GIL held; `obj` is the new reference made above.
        unsafe { interrupted_new(obj) };
        return ptr::null_mut();
    }
    // SAFETY: GIL held, in the object's creation; `tracker` is kept alive
    // by the object's reference.
    if sample && unsafe { dispatch::sample_site(py, &subject, info.class, tracker) } {
        this.mark_sampled();
    }
    obj
}

/// A new, zero-filled instance of `ty`, or null with an exception set
/// (an abstract class is refused as `object.__new__` refuses it).
///
/// On 3.11 and 3.12, `object.__new__` also prepares the inline attribute
/// values of a class whose instances have a managed `__dict__`
/// (`_PyObject_InitializeDict`, not exported by libpython); without them,
/// the first attribute an `__init__` sets allocates a whole dict (1.6x the
/// instructions of a plain object with three attributes on 3.11, 432 bytes
/// instead of 105). So there, instances of such classes are made by
/// `object.__new__` itself, with no arguments (ours were checked by the
/// caller). CPython 3.13 keeps attributes inline only for object-sized
/// instances, which Trackable's are not: there their attributes live in a
/// dict of their own whoever allocates them (432 bytes per 3-attribute
/// instance against 105). 3.14 and later prepare inline values in the
/// allocator, for Trackable's instances too.
///
/// # Safety
/// GIL held; `ty` a live subtype of Trackable.
#[inline(always)]
unsafe fn allocate(ty: *mut ffi::PyTypeObject) -> *mut ffi::PyObject {
    // SAFETY: per the contract above.
    unsafe {
        #[cfg(all(Py_3_11, not(Py_3_13)))]
        if has_instance_attributes(ty) {
            return match ffi::PyBaseObject_Type.tp_new {
                Some(object_new) => object_new(ty, EMPTY_TUPLE.load(Relaxed), ptr::null_mut()),
                None => ptr::null_mut(),
            };
        }
        if (*ty).tp_flags & ffi::Py_TPFLAGS_IS_ABSTRACT != 0 {
            return abstract_class_error(ty);
        }
        let alloc = (*ty).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
        alloc(ty, 0)
    }
}

/// The empty tuple, for `object.__new__` (one reference kept from import).
#[cfg(all(Py_3_11, not(Py_3_13)))]
static EMPTY_TUPLE: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());

/// Where `dk_nentries` is in CPython 3.11's and 3.12's dict keys object
/// (`Py_ssize_t dk_refcnt; uint8_t ×3; uint32_t dk_version; Py_ssize_t
/// dk_usable; Py_ssize_t dk_nentries`), checked at import by
/// [`probe_cached_keys`]; 0 when the check failed, which sends every
/// managed-dict class through `object.__new__` (correct, a little slower
/// for classes without attributes).
#[cfg(all(Py_3_11, not(Py_3_13)))]
static DK_NENTRIES_OFFSET: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether instances of `ty` keep their attributes in a managed dict whose
/// shared keys already hold some (the class's `__init__` sets attributes):
/// those need their inline values prepared. A class whose instances never
/// had an attribute is allocated directly, as before.
///
/// # Safety
/// GIL held; `ty` a live heap subtype of Trackable.
#[cfg(all(Py_3_11, not(Py_3_13)))]
#[inline(always)]
unsafe fn has_instance_attributes(ty: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: per the contract above; a heap type's object is a
    // PyHeapTypeObject; the keys object, when set, is live while the type
    // is, and the offset was validated at import.
    unsafe {
        if (*ty).tp_flags & ffi::Py_TPFLAGS_MANAGED_DICT == 0 {
            return false;
        }
        let keys = (*(ty as *mut ffi::PyHeapTypeObject)).ht_cached_keys as *const u8;
        if keys.is_null() {
            return false; // no shared keys: nothing to prepare
        }
        match DK_NENTRIES_OFFSET.load(Relaxed) {
            0 => true, // the layout probe failed: always prepare
            offset => *(keys.add(offset) as *const isize) > 0,
        }
    }
}

/// Checks at import that `dk_nentries` is where [`DK_NENTRIES_OFFSET`]
/// expects: a class whose `__init__` set three attributes on one instance
/// must read 3 there, and a class without attributes 0.
#[cfg(all(Py_3_11, not(Py_3_13)))]
fn probe_cached_keys(py: Python<'_>) -> PyResult<()> {
    const OFFSET: usize = 24;
    let ns = pyo3::types::PyDict::new(py);
    py.run(
        c"class WithAttrs:\n    def __init__(self):\n        self.a = self.b = self.c = 1\nWithAttrs()\nclass Empty:\n    pass\nEmpty()\n",
        Some(&ns),
        None,
    )?;
    let read = |name: &str| -> PyResult<isize> {
        let ty = ns.get_item(name)?.ok_or_else(|| {
            pyo3::exceptions::PyImportError::new_err("pytracker: layout probe failed")
        })?;
        // SAFETY: a live heap type made just above; its cached keys, if
        // any, are a dict keys object of at least OFFSET + 8 bytes.
        Ok(unsafe {
            let keys = (*(ty.as_ptr() as *mut ffi::PyHeapTypeObject)).ht_cached_keys as *const u8;
            if keys.is_null() {
                -1
            } else {
                *(keys.add(OFFSET) as *const isize)
            }
        })
    };
    if read("WithAttrs")? == 3 && read("Empty")? == 0 {
        DK_NENTRIES_OFFSET.store(OFFSET, Relaxed);
    }
    Ok(())
}

/// Drops the object whose creation a tracker interrupted, keeping the
/// interrupt set: its deallocation tells the tracker `Destroyed`, which
/// must not replace the interrupt.
#[cold]
unsafe fn interrupted_new(obj: *mut ffi::PyObject) {
    // SAFETY: GIL held; `obj` is the new reference tp_new made.
    unsafe { ffi::Py_DECREF(obj) };
}

/// The error `object.__new__` gives for a class with abstract methods left
/// (its wording differs between versions): made by `object.__new__`
/// itself, which checks nothing else that could pass here.
#[cold]
unsafe fn abstract_class_error(ty: *mut ffi::PyTypeObject) -> *mut ffi::PyObject {
    // SAFETY: GIL held, `ty` a live type (caller's contract); the empty
    // tuple is a new reference released below.
    unsafe {
        let args = ffi::PyTuple_New(0);
        if args.is_null() {
            return ptr::null_mut();
        }
        let new = ffi::PyBaseObject_Type.tp_new;
        let obj = match new {
            Some(f) => f(ty, args, ptr::null_mut()),
            None => ptr::null_mut(),
        };
        ffi::Py_DECREF(args);
        if !obj.is_null() {
            // Not expected: the flag is set. Refuse anyway.
            ffi::Py_DECREF(obj);
        }
        if ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_SetString(
                ffi::PyExc_TypeError,
                c"Can't instantiate an abstract class".as_ptr(),
            );
        }
        ptr::null_mut()
    }
}

#[cold]
unsafe fn no_arguments_error(ty: *mut ffi::PyTypeObject) -> *mut ffi::PyObject {
    // SAFETY: the caller guarantees GIL held, `ty` a live type.
    unsafe {
        let name = CStr::from_ptr((*ty).tp_name).to_string_lossy();
        let name = name.rsplit('.').next().unwrap_or("Trackable");
        let msg =
            std::ffi::CString::new(format!("{name}() takes no arguments")).unwrap_or_default();
        ffi::PyErr_SetString(ffi::PyExc_TypeError, msg.as_ptr());
    }
    ptr::null_mut()
}

/// The cached class facts of `ty`; `None` only if computing them panicked.
#[inline(always)]
unsafe fn class_of(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> Option<typecache::ClassInfo> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the caller guarantees GIL held and `ty` a live type object.
        unsafe { typecache::class_info_raw(py, ty) }
    }))
    .ok()
}

/// How deep plain `Trackable` deallocations may nest before the next ones
/// are deferred (see [`trackable_dealloc`]).
const DEALLOC_NESTING: u32 = 64;

thread_local! {
    /// Plain `Trackable` deallocations running on this thread.
    static DEALLOC_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Deallocations deferred until the outermost one returns (objects with
    /// no reference left, already untracked by the collector).
    static DEFERRED: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `tp_dealloc`: tells the tracker, then frees. Also reached from subclass
/// instances through CPython's `subtype_dealloc`, after it has cleared the
/// subclass's dict and slots.
///
/// Freeing an object releases its bundle and tracker, which may be further
/// Trackables whose deallocation nests inside this one: a chain of 300,000
/// would overflow the C stack. For subclass instances CPython's
/// `subtype_dealloc` already defers deep nests (its "trashcan"); plain
/// `Trackable` instances get the same treatment here: past
/// [`DEALLOC_NESTING`] nested deallocations on a thread, the object is put
/// aside and freed by the outermost deallocation, in a loop.
unsafe extern "C" fn trackable_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: CPython calls tp_dealloc with the GIL held on a tracked GC
    // object whose reference count reached zero.
    unsafe { ffi::PyObject_GC_UnTrack(obj as *mut c_void) };
    // SAFETY: as above, a live object.
    if unsafe { ffi::Py_TYPE(obj) } != trackable_type() {
        // SAFETY: a Trackable subclass instance with no reference left,
        // untracked just above.
        unsafe { dealloc_now(obj) };
        return;
    }
    // SAFETY: as above, an instance of Trackable itself.
    unsafe { dealloc_plain(obj) };
}

/// [`trackable_dealloc`] for instances of `Trackable` itself, with the
/// nesting bound.
///
/// # Safety
/// As [`dealloc_now`].
#[inline(never)]
unsafe fn dealloc_plain(obj: *mut ffi::PyObject) {
    let depth = DEALLOC_DEPTH.get();
    if depth >= DEALLOC_NESTING {
        DEFERRED.with_borrow_mut(|d| d.push(obj as usize));
        return;
    }
    DEALLOC_DEPTH.set(depth + 1);
    // SAFETY: per the contract above.
    unsafe { dealloc_now(obj) };
    if depth == 0 {
        // The outermost deallocation frees what was put aside, each at
        // depth 1, so their own nests are bounded the same way.
        while let Some(next) = DEFERRED.with_borrow_mut(Vec::pop) {
            // SAFETY: put aside above: an untracked Trackable with no
            // reference left, not freed yet; the GIL is still held.
            unsafe { dealloc_now(next as *mut ffi::PyObject) };
        }
    }
    DEALLOC_DEPTH.set(depth);
}

/// Tells the tracker, releases the fields and frees the memory of `obj`,
/// already untracked by the cycle collector.
///
/// # Safety
/// GIL held; `obj` a Trackable (sub)type instance with no reference left.
#[inline(always)]
unsafe fn dealloc_now(obj: *mut ffi::PyObject) {
    // SAFETY: per the contract above (live until freed below).
    let this = unsafe { Fields::of(obj) };
    let ty = this.ty();
    if this.has_weakrefs() {
        // SAFETY: GIL held, a live object being deallocated.
        unsafe { ffi::PyObject_ClearWeakRefs(obj) };
    }
    release_tracker(this, true);
    creators::forget(this.serial());
    if this.sampled() {
        // SAFETY: `Fields` guarantees the GIL is held.
        crate::sites::left(unsafe { Python::assume_attached() }, this.serial());
    }
    // SAFETY: the field's reference is ours once taken out.
    unsafe { release(this.replace_bundle(ptr::null_mut())) };
    // SAFETY: `ty` is live (the object holds a reference to it); its
    // `tp_free` matches its allocator.
    let free = unsafe { (*ty).tp_free }.unwrap_or(ffi::PyObject_GC_Del);
    // SAFETY: no reference to `obj` is left and nothing uses it after this.
    unsafe { free(obj as *mut c_void) };
    // Instances of heap types own a reference to their type.
    // SAFETY: that reference, released once.
    unsafe { ffi::Py_DECREF(ty as *mut ffi::PyObject) };
}

/// Drops the object's tracker, telling it `Destroyed` first when
/// `notify` is set.
#[inline(always)]
fn release_tracker(this: Fields, notify: bool) {
    let tracker = this.tracker();
    if tracker.is_null() {
        return;
    }
    if notify {
        // SAFETY: `Fields` guarantees the GIL is held.
        let py = unsafe { Python::assume_attached() };
        let subject = this.subject(py);
        // SAFETY: GIL held; the subject is live; `tracker` is kept alive
        // by the object's reference. Destroyed never propagates anything.
        let _ = unsafe { dispatch::notify(py, EventKind::Destroyed, &subject, tracker) };
    }
    // The field may have been replaced while Python code ran above.
    // SAFETY: the field's reference is ours once taken out.
    unsafe { release(this.replace_tracker(ptr::null_mut())) };
}

/// `tp_traverse`: the type, the tracker and the bundle.
///
/// # Safety
/// Called by the cycle collector with the GIL held on a live Trackable.
unsafe extern "C" fn trackable_traverse(
    obj: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: per the contract above.
    let this = unsafe { Fields::of(obj) };
    for p in [
        this.ty() as *mut ffi::PyObject,
        this.tracker(),
        this.bundle(),
    ] {
        if !p.is_null() {
            // SAFETY: `visit` and `arg` come from the collector; `p` is a
            // strong reference the object holds.
            let r = unsafe { visit(p, arg) };
            if r != 0 {
                return r;
            }
        }
    }
    0
}

/// `tp_clear`: the cycle collector is about to break a cycle through this
/// object, which will then be deallocated. The tracker is told `Destroyed`
/// now, while the bundle is still set, and dropped, so deallocation does not
/// tell it again.
///
/// There is deliberately no `tp_finalize`: CPython would run it on every
/// subclass instance's deallocation, which costs about 10% of a plain
/// object's create-and-drop. The price is that a tracker which is itself
/// part of the same garbage may already have been cleared when it is told.
///
/// # Safety
/// Called by the cycle collector with the GIL held on a live Trackable.
unsafe extern "C" fn trackable_clear(obj: *mut ffi::PyObject) -> c_int {
    // SAFETY: per the contract above.
    let this = unsafe { Fields::of(obj) };
    release_tracker(this, true);
    // SAFETY: the field's reference is ours once taken out.
    unsafe { release(this.replace_bundle(ptr::null_mut())) };
    0
}

/// Safe access to the fields of a live `Trackable` for the non-hot methods.
pub(crate) struct TrackableRef<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    fields: Fields,
}

impl<'a, 'py> TrackableRef<'a, 'py> {
    /// `obj` as a Trackable, or a TypeError naming what it is.
    pub(crate) fn new(obj: &'a Bound<'py, PyAny>) -> PyResult<Self> {
        let tp = trackable_type();
        // SAFETY: `obj` is a live object; `tp` is the live Trackable type
        // (it is set before any method can be called).
        let ok = !tp.is_null() && unsafe { ffi::PyObject_TypeCheck(obj.as_ptr(), tp) } != 0;
        if !ok {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "expected a pytracker.Trackable instance, got {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )));
        }
        Ok(TrackableRef {
            obj,
            // SAFETY: a Trackable (checked above), kept alive by `obj`,
            // whose token proves the GIL is held while `self` lives.
            fields: unsafe { Fields::of(obj.as_ptr()) },
        })
    }

    /// The serial issued at creation.
    pub(crate) fn serial(&self) -> Serial {
        self.fields.serial()
    }

    /// The creating thread's tag (see [`creator_tag`]), 0 if not recorded.
    pub(crate) fn creator(&self) -> u32 {
        creators::of(self.fields.serial())
    }

    /// The assigned tracker.
    pub(crate) fn tracker(&self) -> Option<Bound<'py, PyAny>> {
        // SAFETY: a non-null field is a strong reference the object holds.
        unsafe { Bound::from_borrowed_ptr_or_opt(self.obj.py(), self.fields.tracker()) }
    }

    /// Takes the tracker out of the object (the object has none afterwards).
    pub(crate) fn take_tracker(&self) -> Option<Bound<'py, PyAny>> {
        let raw = self.fields.replace_tracker(ptr::null_mut());
        // SAFETY: the strong reference taken out of the field moves to the
        // returned `Bound`.
        unsafe { Bound::from_owned_ptr_or_opt(self.obj.py(), raw) }
    }

    /// Stores `tracker` (the object must have none; see `take_tracker`).
    pub(crate) fn put_tracker(&self, tracker: &Bound<'py, PyAny>) {
        let old = self.fields.replace_tracker(tracker.clone().into_ptr());
        // SAFETY: any reference the field held (set by re-entrant code) is
        // ours once taken out.
        unsafe { release(old) };
    }

    /// The data bundle (`None` when unset).
    pub(crate) fn bundle(&self) -> Bound<'py, PyAny> {
        // SAFETY: a non-null field is a strong reference the object holds.
        unsafe { Bound::from_borrowed_ptr_or_opt(self.obj.py(), self.fields.bundle()) }
            .unwrap_or_else(|| self.obj.py().None().into_bound(self.obj.py()))
    }

    /// Replaces the data bundle without notifying.
    pub(crate) fn set_bundle(&self, bundle: &Bound<'py, PyAny>) {
        let new = if bundle.is_none() {
            ptr::null_mut()
        } else {
            bundle.clone().into_ptr()
        };
        // The old reference is released after the field is updated, so
        // re-entrant code sees a consistent object.
        let old = self.fields.replace_bundle(new);
        // SAFETY: the old reference is ours once taken out.
        unsafe { release(old) };
    }

    /// Tells `tracker` of `kind` for this object.
    ///
    /// # Errors
    /// The `KeyboardInterrupt` or `SystemExit` a Python tracker raised.
    pub(crate) fn notify(&self, kind: EventKind, tracker: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.obj.py();
        let subject = self.fields.subject(py);
        // SAFETY: GIL held (token in `obj`); the subject is live; `tracker`
        // is kept alive by the caller's reference for the duration.
        match unsafe { dispatch::notify(py, kind, &subject, tracker.as_ptr()) } {
            Outcome::Done => Ok(()),
            Outcome::Interrupted => Err(PyErr::fetch(py)),
        }
    }
}

/// Wraps a callable so that it binds to instances like a method.
pub(crate) fn instance_method<'py>(func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    unsafe extern "C" {
        fn PyInstanceMethod_New(func: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject;
    }
    let py = func.py();
    // SAFETY: `func` is a live callable; the call returns a new reference or
    // null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, PyInstanceMethod_New(func.as_ptr())) }
}

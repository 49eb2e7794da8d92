//! What the hot path needs to know about a Python class, cached by type.
//!
//! Object creation asks two things of its class: whether the class opted out
//! of the global tracker (`_disable_global_tracker`) and which [`ClassId`]
//! native trackers count it under. Computing them takes attribute look-ups
//! and string work, so it is done once per class ([`slow_class_info`]) and
//! cached by type pointer.
//!
//! A cached entry is trusted in one of two ways:
//!
//! * **Version tag.** CPython gives a type a new `tp_version_tag` whenever
//!   the type or one of its bases is modified and never reuses a tag. While
//!   the tag is the one the entry was checked at, nothing can have changed.
//!   A valid tag is non-zero; before 3.12 it is also flagged with
//!   `Py_TPFLAGS_VALID_VERSION_TAG`, which 3.12 stopped setting.
//! * **Revalidation.** A class that assigns its own attributes per object
//!   (`Conn.opened += 1` in `__init__`) gets a new tag every time, and from
//!   3.12 on a type modified often enough gets none at all. Its entry is then
//!   checked against the facts themselves, with no allocation, no exception
//!   and no Python code: the type's qualified-name and `__module__` objects
//!   (the entry holds references to them, so their addresses cannot be
//!   reused by other objects) and the `_disable_global_tracker` value found
//!   along the MRO. A new class at a recycled address fails this check
//!   unless it has the very same name objects, in which case its name, and
//!   so its [`ClassId`], is the same.
//!
//! [`stats`] counts slow look-ups and revalidations, so tests can prove the
//! per-object path never takes the slow one for a known class.

#![allow(unsafe_code)]

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Relaxed};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;
use tracker_core::ClassId;

use crate::gil::GilCell;

/// The cached facts about one class.
#[derive(Copy, Clone, Debug)]
pub(crate) struct ClassInfo {
    pub(crate) class: ClassId,
    pub(crate) global_disabled: bool,
}

/// What an entry's facts were computed from, for revalidation.
struct Evidence {
    /// `ht_qualname` of a heap type (strong reference), or `tp_name` of a
    /// static type (which cannot change).
    qualname: *mut ffi::PyObject,
    /// The `__module__` entry of a heap type's dict (strong reference), or null.
    module: *mut ffi::PyObject,
    /// Whether `qualname` and `module` are references this entry owns
    /// (heap types) rather than a C string address (static types).
    owned: bool,
    /// The opt-out value found along the MRO.
    opt_out: OptOut,
}

/// `_disable_global_tracker` as found without running Python code.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum OptOut {
    /// Not defined anywhere on the MRO.
    Absent,
    /// `True`.
    True,
    /// `False` or `None`.
    Falsy,
    /// Anything else, or a metaclass that overrides attribute access: its
    /// truth needs Python code, so the slow path decides.
    Other,
}

/// The part of an entry the per-object path reads: 32 bytes, no pointers
/// to follow. `ty == 0` marks an empty slot.
#[derive(Copy, Clone)]
struct Hot {
    ty: usize,
    /// The type's name object when cached ([`name_object`]): CPython 3.13+
    /// renames a class (`__qualname__`) without giving it a new tag, so the
    /// hit checks it there too ([`same_name`]).
    qualname: usize,
    /// Version tag the entry was last checked at; 0 if none.
    tag: u32,
    info: ClassInfo,
}

const EMPTY: Hot = Hot {
    ty: 0,
    qualname: 0,
    tag: 0,
    info: ClassInfo {
        class: ClassId(0),
        global_disabled: false,
    },
};

struct Entry {
    hot: Hot,
    evidence: Evidence,
}

impl Drop for Evidence {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // SAFETY: entries live in `CACHE`, reachable only with the GIL held,
        // so they are dropped with the GIL held; both pointers are strong
        // references owned by this entry (or null).
        unsafe {
            ffi::Py_XDECREF(self.qualname);
            ffi::Py_XDECREF(self.module);
        }
    }
}

const WAYS: usize = 256;
/// Entries kept beyond the direct-mapped ones. Classes created at run time
/// (by factories) would otherwise grow the map without end: past this size
/// it is emptied, and live classes come back on their next miss.
const SPILL_MAX: usize = 1 << 16;

/// What the direct-mapped entries rest on; `evidence[i]` belongs to
/// `HOT[i]`.
struct Cache {
    evidence: [Option<Evidence>; WAYS],
    spill: HashMap<usize, Entry, BuildHasherDefault<DefaultHasher>>,
}

// SAFETY: the cache is only reachable through `GilCell` (GIL held); the
// references its evidence owns are released under the GIL (see `Drop`).
unsafe impl Send for Cache {}

/// The direct-mapped entries, by type address: what a hit reads.
static HOT: GilCell<[Hot; WAYS]> = GilCell::new([EMPTY; WAYS]);

static CACHE: GilCell<Cache> = GilCell::new(Cache {
    evidence: [const { None }; WAYS],
    spill: HashMap::with_hasher(BuildHasherDefault::new()),
});

static SLOW_LOOKUPS: AtomicU64 = AtomicU64::new(0);
static REVALIDATIONS: AtomicU64 = AtomicU64::new(0);

/// Interned `__module__` and `_disable_global_tracker`, set at import.
static MODULE_KEY: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());
static OPT_OUT_KEY: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());

/// Interns the attribute names the revalidation looks up. Called once at import.
pub(crate) fn init(py: Python<'_>) {
    let intern = |s: &str| {
        pyo3::types::PyString::intern(py, s)
            .clone()
            .unbind()
            .into_ptr()
    };
    MODULE_KEY.store(intern("__module__"), Relaxed);
    OPT_OUT_KEY.store(intern("_disable_global_tracker"), Relaxed);
}

/// (slow look-ups, revalidations) since import.
pub(crate) fn stats() -> (u64, u64) {
    (SLOW_LOOKUPS.load(Relaxed), REVALIDATIONS.load(Relaxed))
}

#[inline(always)]
fn slot(ty: usize) -> usize {
    // Type objects are large heap blocks: the low bits carry no information.
    (ty >> 6 ^ ty >> 14) % WAYS
}

/// The current version tag of `ty`, or 0 if it has no valid one.
#[inline(always)]
pub(crate) fn version_tag(ty: *mut ffi::PyTypeObject) -> u32 {
    // SAFETY: `ty` is a live type object (callers); reading two plain fields
    // of it under the GIL races with nothing.
    let (flags, tag) = unsafe { ((*ty).tp_flags, (*ty).tp_version_tag) };
    if cfg!(Py_3_12) || flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0 {
        tag
    } else {
        0
    }
}

unsafe extern "C" {
    /// Gives a type a version tag if it has none (3.12+; 0 when it cannot).
    #[cfg(Py_3_12)]
    fn PyUnstable_Type_AssignVersionTag(ty: *mut ffi::PyTypeObject) -> std::ffi::c_int;
    /// The MRO look-up behind attribute access; assigns a version tag as a
    /// side effect. Borrowed result, no exception set. Exported by 3.10 and
    /// 3.11, where no public call assigns a tag.
    #[cfg(not(Py_3_12))]
    fn _PyType_Lookup(ty: *mut ffi::PyTypeObject, name: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

/// Gives `ty` a valid version tag if it can have one, and returns it (0
/// if none). CPython assigns tags lazily, on attribute look-ups through the
/// type; a class whose objects are only created and dropped might never
/// get one.
///
/// # Safety
/// GIL held; `ty` a live type object.
pub(crate) unsafe fn assign_tag(ty: *mut ffi::PyTypeObject) -> u32 {
    // SAFETY: per the contract above; neither call runs Python code.
    unsafe {
        #[cfg(Py_3_12)]
        PyUnstable_Type_AssignVersionTag(ty);
        #[cfg(not(Py_3_12))]
        _PyType_Lookup(ty, OPT_OUT_KEY.load(Relaxed));
    }
    version_tag(ty)
}

/// The facts about `ty`, from the cache or computed now.
#[inline]
pub(crate) fn class_info(ty: &Bound<'_, PyType>) -> ClassInfo {
    // SAFETY: `ty` is a live type (borrowed for the call) and the token
    // proves the GIL is held.
    unsafe { class_info_raw(ty.py(), ty.as_type_ptr()) }
}

/// [`class_info`] on a raw type pointer.
///
/// # Safety
/// GIL held; `ty` a live type object.
#[inline(always)]
pub(crate) unsafe fn class_info_raw(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> ClassInfo {
    let key = ty as usize;
    let tag = version_tag(ty);
    let h = HOT.get_at(py, slot(key));
    // SAFETY: per the contract above.
    if h.ty == key && tag != 0 && h.tag == tag && unsafe { same_name(ty, &h) } {
        return h.info;
    }
    // SAFETY: per the contract above.
    unsafe { class_info_miss(py, ty, tag) }
}

/// [`class_info_raw`] when the direct-mapped entry did not match at once.
///
/// # Safety
/// GIL held; `ty` a live type object.
#[inline(never)]
unsafe fn class_info_miss(py: Python<'_>, ty: *mut ffi::PyTypeObject, tag: u32) -> ClassInfo {
    let key = ty as usize;
    let i = slot(key);
    let direct = HOT.get_at(py, i);
    let in_hot = direct.ty == key;
    let hit = CACHE.with(py, |c| {
        let (hot, evidence) = if in_hot {
            (direct, c.evidence[i].as_ref()?)
        } else {
            let e = c.spill.get(&key)?;
            (e.hot, &e.evidence)
        };
        // SAFETY: GIL held; `ty` live (this function's contract).
        if hot.tag != 0 && hot.tag == tag && unsafe { same_name(ty, &hot) } {
            return Some(hot);
        }
        // SAFETY: GIL held; `ty` live (this function's contract).
        if unsafe { still_valid(ty, evidence) } {
            REVALIDATIONS.fetch_add(1, Relaxed);
            let tag = if tag != 0 {
                tag
            } else {
                // SAFETY: as above.
                unsafe { assign_tag(ty) }
            };
            let hot = Hot { tag, ..hot };
            if let Some(e) = c.spill.get_mut(&key).filter(|_| !in_hot) {
                e.hot = hot;
            }
            return Some(hot);
        }
        None
    });
    match hit {
        Some(hot) => {
            if in_hot {
                HOT.replace_at(py, i, hot);
            }
            hot.info
        }
        // SAFETY: as above.
        None => unsafe { slow_class_info(ty) },
    }
}

/// Whether `ty`'s name object is still the one `hot` was cached with, as
/// far as its version tag does not already say so: before 3.13 assigning
/// `__qualname__` gives the type a new tag (checked on 3.10, 3.11 and 3.12:
/// the tag is cleared and the next look-up assigns a new one), so the tag
/// check covers it; 3.13 renames in place and the hit compares the name
/// object too.
///
/// # Safety
/// GIL held; `ty` a live type object.
#[inline(always)]
unsafe fn same_name(ty: *mut ffi::PyTypeObject, hot: &Hot) -> bool {
    // SAFETY: per the contract above.
    !cfg!(Py_3_13) || unsafe { name_object(ty) } as usize == hot.qualname
}

/// Whether `ty` still has the name and opt-out that `ev` was taken from.
/// Runs no Python code and leaves no exception set.
///
/// # Safety
/// GIL held; `ty` a live type object.
unsafe fn still_valid(ty: *mut ffi::PyTypeObject, ev: &Evidence) -> bool {
    // SAFETY: per the contract above; the fields read are plain data.
    unsafe {
        let (qualname, module) = name_objects(ty);
        ev.opt_out != OptOut::Other
            && qualname == ev.qualname
            && module == ev.module
            && find_opt_out(ty) == ev.opt_out
    }
}

/// The objects a type's qualified name is made of: its `__qualname__` and
/// `__module__` (heap types), or its `tp_name` (static types, whose name
/// cannot change). Borrowed.
///
/// # Safety
/// GIL held; `ty` a live type object.
unsafe fn name_objects(ty: *mut ffi::PyTypeObject) -> (*mut ffi::PyObject, *mut ffi::PyObject) {
    // SAFETY: per the contract above. A heap type is a `PyHeapTypeObject`
    // and has its own dict.
    unsafe {
        if (*ty).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
            return (name_object(ty), ptr::null_mut());
        }
        let module = dict_get((*ty).tp_dict, MODULE_KEY.load(Relaxed));
        (name_object(ty), module)
    }
}

/// The object a type's qualified name lives in: `ht_qualname` of a heap
/// type, `tp_name` of a static one. Two plain loads.
///
/// # Safety
/// GIL held; `ty` a live type object.
#[inline(always)]
unsafe fn name_object(ty: *mut ffi::PyTypeObject) -> *mut ffi::PyObject {
    // SAFETY: per the contract above; a heap type is a `PyHeapTypeObject`.
    unsafe {
        if (*ty).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
            (*ty).tp_name as *mut ffi::PyObject
        } else {
            (*(ty as *mut ffi::PyHeapTypeObject)).ht_qualname
        }
    }
}

/// `dict[key]` (borrowed) or null, leaving no exception set.
///
/// # Safety
/// GIL held; `dict` null or a dict; `key` an interned str.
pub(crate) unsafe fn dict_get(
    dict: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if dict.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: per the contract above. With an exact-str key the look-up
    // runs no Python code; a failure (none is possible for str keys) is
    // cleared.
    unsafe {
        let v = ffi::PyDict_GetItemWithError(dict, key);
        if v.is_null() && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
        }
        v
    }
}

/// What `key` resolves to on `ty` as a class attribute: its value in the
/// first heap class along the MRO whose dict has it (borrowed), or null.
/// Runs no Python code. Static built-in types (`object`) are skipped: from
/// 3.12 on they keep their dict elsewhere, and none defines the names
/// looked up here.
///
/// # Safety
/// GIL held; `ty` a live, ready type object with a non-null MRO; `key` an
/// interned str.
pub(crate) unsafe fn mro_lookup(
    ty: *mut ffi::PyTypeObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: per the contract above; `tp_mro` of a ready type is a tuple of
    // types, kept alive by the type.
    unsafe {
        let mro = (*ty).tp_mro;
        for i in 0..ffi::PyTuple_GET_SIZE(mro) {
            let base = ffi::PyTuple_GET_ITEM(mro, i) as *mut ffi::PyTypeObject;
            if (*base).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
                continue;
            }
            let v = dict_get((*base).tp_dict, key);
            if !v.is_null() {
                return v;
            }
        }
        ptr::null_mut()
    }
}

/// `_disable_global_tracker` along the MRO of `ty`, read from the class
/// dicts directly.
///
/// # Safety
/// GIL held; `ty` a live type object.
unsafe fn find_opt_out(ty: *mut ffi::PyTypeObject) -> OptOut {
    // SAFETY: per the contract above; the MRO is checked before the look-up.
    unsafe {
        if (*ty).tp_mro.is_null() {
            return OptOut::Other;
        }
        let v = mro_lookup(ty, OPT_OUT_KEY.load(Relaxed));
        if v.is_null() {
            OptOut::Absent
        } else if v == ffi::Py_True() {
            OptOut::True
        } else if v == ffi::Py_False() || v == ffi::Py_None() {
            OptOut::Falsy
        } else {
            OptOut::Other
        }
    }
}

/// Computes the facts of `ty` and caches them.
///
/// # Safety
/// GIL held; `ty` a live type object.
#[cold]
#[inline(never)]
unsafe fn slow_class_info(ty: *mut ffi::PyTypeObject) -> ClassInfo {
    SLOW_LOOKUPS.fetch_add(1, Relaxed);
    // Called from hand-written slots, where PyO3 does not know the thread is
    // attached: without `attach`, every temporary dropped here (an exception
    // from a failed look-up, holding the class) would wait in PyO3's
    // deferred-release pool until the next PyO3 call, possibly for ever.
    Python::attach(|py| {
        // SAFETY: `ty` is a live type (contract); borrowed for the closure.
        let bound = unsafe {
            Bound::from_borrowed_ptr(py, ty as *mut ffi::PyObject).cast_into_unchecked::<PyType>()
        };
        // The truth comes from a real attribute look-up (a metaclass may
        // compute it); what the class dicts say is kept as evidence.
        let global_disabled = bound
            .getattr(pyo3::intern!(py, "_disable_global_tracker"))
            .and_then(|v| v.is_truthy())
            .unwrap_or(false);
        // SAFETY: GIL held; `ty` live; the metaclass's slot is a plain field.
        let opt_out = unsafe {
            let default_getattr = (*ffi::Py_TYPE(ty as *mut ffi::PyObject))
                .tp_getattro
                .map(|f| f as usize)
                == (*ptr::addr_of!(ffi::PyType_Type))
                    .tp_getattro
                    .map(|f| f as usize);
            // Only when the dicts' constants agree with `getattr` is the
            // evidence usable.
            match find_opt_out(ty) {
                OptOut::True if default_getattr && global_disabled => OptOut::True,
                found @ (OptOut::Falsy | OptOut::Absent) if default_getattr && !global_disabled => {
                    found
                }
                _ => OptOut::Other,
            }
        };
        let info = ClassInfo {
            class: ClassId::named(&qualified_name(&bound)),
            global_disabled,
        };
        // SAFETY: GIL held; `ty` live.
        let (qualname, module) = unsafe { name_objects(ty) };
        // SAFETY: `tp_flags` is a plain field of a live type.
        let owned = unsafe { (*ty).tp_flags } & ffi::Py_TPFLAGS_HEAPTYPE != 0;
        if owned {
            // SAFETY: both are live objects (or null) borrowed from the heap
            // type; the entry takes its own references, so their addresses
            // cannot be reused while it exists.
            unsafe {
                ffi::Py_XINCREF(qualname);
                ffi::Py_XINCREF(module);
            }
        }
        let evidence = Evidence {
            qualname,
            module,
            owned,
            opt_out,
        };
        let key = ty as usize;
        let hot = Hot {
            ty: key,
            qualname: evidence.qualname as usize,
            // SAFETY: GIL held; `ty` live.
            tag: unsafe { assign_tag(ty) },
            info,
        };
        // Entries displaced here are dropped after the cache borrow ends,
        // since dropping them releases Python references.
        let i = slot(key);
        let old_hot = HOT.replace_at(py, i, hot);
        let displaced = CACHE.with(py, |c| {
            let mut out = Vec::new();
            let old_evidence = c.evidence[i].replace(evidence);
            if let Some(old_evidence) = old_evidence {
                if old_hot.ty != key {
                    if c.spill.len() >= SPILL_MAX {
                        out.extend(c.spill.drain().map(|(_, e)| e.evidence));
                    }
                    let old = Entry {
                        hot: old_hot,
                        evidence: old_evidence,
                    };
                    out.extend(c.spill.insert(old_hot.ty, old).map(|e| e.evidence));
                } else {
                    out.push(old_evidence);
                }
            }
            out.extend(c.spill.remove(&key).map(|e| e.evidence));
            out
        });
        drop(displaced);
        info
    })
}

/// `module.QualName`, or just the qualified name for built-in modules.
pub(crate) fn qualified_name(ty: &Bound<'_, PyType>) -> String {
    let qual = ty.qualname().map(|q| q.to_string()).unwrap_or_else(|_| {
        ty.name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "<unnamed>".into())
    });
    match ty.module() {
        Ok(m) if m.to_str().is_ok_and(|m| m != "builtins") => {
            format!("{}.{}", m.to_string_lossy(), qual)
        }
        _ => qual,
    }
}

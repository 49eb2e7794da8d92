//! What the hot path needs to know about a Python class, cached by type.
//!
//! Object creation asks two things of its class: whether the class opted out
//! of the global tracker (`_disable_global_tracker`) and which [`ClassId`]
//! native trackers count it under. Both take attribute look-ups and string
//! work, so they are computed once per class and cached against the type's
//! pointer *and* its `tp_version_tag`: CPython gives a type a new tag
//! whenever the type or one of its bases is modified, and never reuses a
//! tag, so a changed class attribute or a new class at a recycled address
//! misses the cache instead of reading stale data.

#![allow(unsafe_code)]

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use pyo3::ffi;
use pyo3::intern;
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

#[derive(Copy, Clone)]
struct Entry {
    ty: usize,
    tag: u32,
    info: ClassInfo,
}

const WAYS: usize = 256;
/// Entries kept beyond the direct-mapped ones. Classes created at run time
/// (by factories) would otherwise grow the map without end: past this size
/// it is emptied, and live classes come back on their next miss.
const SPILL_MAX: usize = 1 << 16;

struct Cache {
    direct: [Option<Entry>; WAYS],
    spill: HashMap<usize, Entry, BuildHasherDefault<DefaultHasher>>,
}

static CACHE: GilCell<Cache> = GilCell::new(Cache {
    direct: [None; WAYS],
    spill: HashMap::with_hasher(BuildHasherDefault::new()),
});

#[inline]
fn slot(ty: usize) -> usize {
    // Type objects are large heap blocks: the low bits carry no information.
    (ty >> 6 ^ ty >> 14) % WAYS
}

/// The current version tag of `ty`, or `None` if it has no valid one.
#[inline]
fn version_tag(ty: &Bound<'_, PyType>) -> Option<u32> {
    let raw = ty.as_type_ptr();
    // SAFETY: `raw` is a live type object (borrowed from `ty`); reading two
    // plain fields of it under the GIL races with nothing.
    let (flags, tag) = unsafe { ((*raw).tp_flags, (*raw).tp_version_tag) };
    (flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0 && tag != 0).then_some(tag)
}

/// The facts about `ty`, from the cache or computed now.
#[inline]
pub(crate) fn class_info(ty: &Bound<'_, PyType>) -> ClassInfo {
    let py = ty.py();
    let key = ty.as_type_ptr() as usize;
    if let Some(tag) = version_tag(ty) {
        let hit = CACHE.with(py, |c| match c.direct[slot(key)] {
            Some(e) if e.ty == key && e.tag == tag => Some(e.info),
            _ => c.spill.get(&key).filter(|e| e.tag == tag).map(|e| e.info),
        });
        if let Some(info) = hit {
            return info;
        }
    }
    slow_class_info(ty)
}

#[cold]
#[inline(never)]
fn slow_class_info(ty: &Bound<'_, PyType>) -> ClassInfo {
    let py = ty.py();
    // Runs Python code (attribute look-ups): done outside the cache borrow.
    let global_disabled = match ty.getattr(intern!(py, "_disable_global_tracker")) {
        Ok(v) => v.is_truthy().unwrap_or(false),
        Err(_) => false,
    };
    let info = ClassInfo {
        class: ClassId::named(&qualified_name(ty)),
        global_disabled,
    };
    // The look-up above gave the type a version tag if it can have one.
    if let Some(tag) = version_tag(ty) {
        let key = ty.as_type_ptr() as usize;
        let entry = Entry { ty: key, tag, info };
        CACHE.with(py, |c| {
            if let Some(old) = c.direct[slot(key)].replace(entry) {
                if old.ty != key {
                    if c.spill.len() >= SPILL_MAX {
                        c.spill.clear();
                    }
                    c.spill.insert(old.ty, old);
                }
            }
            c.spill.remove(&key);
        });
    }
    info
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

//! The methods of `pytracker.Trackable`, in safe Rust.
//!
//! They are plain functions installed on the type as instance methods (see
//! `lib.rs`), and reach the object's fields through [`TrackableRef`].

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tracker_core::EventKind;

use crate::object::TrackableRef;

/// Assigns a tracker (or `None`). A previously assigned tracker, even the
/// same one, is told `notify_detached` first; the new one `notify_attached`.
#[pyfunction(name = "_set_tracker")]
#[pyo3(text_signature = "(self, tracker)")]
pub(crate) fn set_tracker(slf: &Bound<'_, PyAny>, tracker: &Bound<'_, PyAny>) -> PyResult<()> {
    let this = TrackableRef::new(slf)?;
    if let Some(old) = this.take_tracker() {
        this.notify(EventKind::Detached, &old)?;
    }
    if !tracker.is_none() {
        this.put_tracker(tracker);
        this.notify(EventKind::Attached, tracker)?;
    }
    Ok(())
}

/// The assigned tracker, or `None`.
#[pyfunction(name = "_get_tracker")]
#[pyo3(text_signature = "(self)")]
pub(crate) fn get_tracker<'py>(slf: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(TrackableRef::new(slf)?.tracker())
}

/// Sets the data bundle, then tells the tracker `notify_updated`.
#[pyfunction(name = "_set_data_bundle")]
#[pyo3(text_signature = "(self, bundle)")]
pub(crate) fn set_data_bundle(slf: &Bound<'_, PyAny>, bundle: &Bound<'_, PyAny>) -> PyResult<()> {
    let this = TrackableRef::new(slf)?;
    this.set_bundle(bundle);
    notify_updated(&this)
}

fn notify_updated(this: &TrackableRef<'_, '_>) -> PyResult<()> {
    match this.tracker() {
        Some(tracker) => this.notify(EventKind::Updated, &tracker),
        None => Ok(()),
    }
}

/// The data bundle (`None` until one is set).
#[pyfunction(name = "_get_data_bundle")]
#[pyo3(text_signature = "(self)")]
pub(crate) fn get_data_bundle<'py>(slf: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(TrackableRef::new(slf)?.bundle())
}

/// Setter of the `_data_bundle` attribute: stores without notifying.
#[pyfunction(name = "_data_bundle_set")]
#[pyo3(text_signature = "(self, bundle)")]
pub(crate) fn data_bundle_set(slf: &Bound<'_, PyAny>, bundle: &Bound<'_, PyAny>) -> PyResult<()> {
    TrackableRef::new(slf)?.set_bundle(bundle);
    Ok(())
}

/// The serial issued when the object was created.
#[pyfunction(name = "_get_tracker_serial")]
#[pyo3(text_signature = "(self)")]
pub(crate) fn get_tracker_serial(slf: &Bound<'_, PyAny>) -> PyResult<u64> {
    Ok(TrackableRef::new(slf)?.serial())
}

/// `(instance __dict__ or None, {'_data_bundle': bundle, **slot values})`.
#[pyfunction(name = "__getstate__")]
#[pyo3(text_signature = "(self)")]
pub(crate) fn getstate<'py>(slf: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = slf.py();
    let this = TrackableRef::new(slf)?;
    let dict = match slf.getattr(intern!(py, "__dict__")) {
        Ok(d) if d.is_truthy()? => d,
        _ => py.None().into_bound(py),
    };
    let slots = PyDict::new(py);
    slots.set_item(intern!(py, "_data_bundle"), this.bundle())?;
    // Values of `__slots__` declared by subclasses, as `object.__getstate__`
    // would collect them.
    let names = py
        .import(intern!(py, "copyreg"))?
        .call_method1(intern!(py, "_slotnames"), (slf.get_type(),))?;
    for name in names.try_iter()? {
        let name = name?.cast_into::<pyo3::types::PyString>()?;
        if let Ok(value) = slf.getattr(&name) {
            slots.set_item(name, value)?;
        }
    }
    PyTuple::new(py, [dict, slots.into_any()])
}

/// Restores what `__getstate__` returned (or a plain dict), then tells the
/// tracker `notify_updated`.
#[pyfunction(name = "__setstate__")]
#[pyo3(text_signature = "(self, state)")]
pub(crate) fn setstate(slf: &Bound<'_, PyAny>, state: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = slf.py();
    let this = TrackableRef::new(slf)?;
    let (dict, slots) = if let Ok(t) = state.cast::<PyTuple>() {
        if t.len() != 2 {
            return Err(bad_state(state));
        }
        (t.get_item(0)?, t.get_item(1)?)
    } else if state.is_instance_of::<PyDict>() || state.is_none() {
        (state.clone(), py.None().into_bound(py))
    } else {
        return Err(bad_state(state));
    };
    if !dict.is_none() {
        let dict = dict.cast::<PyDict>().map_err(|_| bad_state(state))?;
        match slf.getattr(intern!(py, "__dict__")) {
            Ok(own) => {
                own.call_method1(intern!(py, "update"), (dict,))?;
            }
            Err(_) => {
                // Over a copy: a `__setattr__` may change the dict.
                for (k, v) in dict.copy()?.iter() {
                    slf.setattr(
                        k.cast_into::<pyo3::types::PyString>()
                            .map_err(|_| bad_state(state))?,
                        v,
                    )?;
                }
            }
        }
    }
    if !slots.is_none() {
        let slots = slots.cast::<PyDict>().map_err(|_| bad_state(state))?;
        // Over a copy: a `__setattr__` may change the dict.
        for (k, v) in slots.copy()?.iter() {
            if k.eq(intern!(py, "_data_bundle"))? {
                this.set_bundle(&v);
            } else {
                slf.setattr(
                    k.cast_into::<pyo3::types::PyString>()
                        .map_err(|_| bad_state(state))?,
                    v,
                )?;
            }
        }
    }
    notify_updated(&this)
}

fn bad_state(state: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "Trackable.__setstate__ expects (dict or None, dict or None) or a dict, got {}",
        state
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into())
    ))
}

/// Pickling: the protocol-2 reduction (`copyreg.__newobj__`, state) for
/// every protocol. Protocols 0 and 1 can pickle that form too, so a
/// Trackable pickles with any protocol.
#[pyfunction(name = "__reduce_ex__")]
#[pyo3(text_signature = "(self, protocol)")]
pub(crate) fn reduce_ex<'py>(
    slf: &Bound<'py, PyAny>,
    protocol: i32,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    TrackableRef::new(slf)?;
    py.get_type::<pyo3::types::PyAny>()
        .call_method1(intern!(py, "__reduce_ex__"), (slf, protocol.max(2)))
}

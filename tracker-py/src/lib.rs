//! `pytracker._native`: the compiled half of the `pytracker` package.
//!
//! * [`object`]: the `Trackable` type's C-level slots (the hot path);
//! * [`dispatch`]: delivering notifications to native or Python trackers;
//! * [`typecache`]: per-class facts cached by type and version tag;
//! * [`methods`]: `Trackable`'s methods, in safe Rust;
//! * [`trackers`]: native trackers (`CountingTracker`);
//! * [`exporter`]: `ShmTracker` and reading other processes' segments.
//!
//! The pure-Python half (`python/pytracker`) adds the `Tracker` inventory,
//! `TrackerMixin`, signal dumps and the public `__all__`.

mod dispatch;
mod exporter;
mod gil;
mod methods;
mod object;
mod sites;
mod stock;
mod trackers;
mod typecache;

use pyo3::prelude::*;
use pyo3::types::PyType;

/// Sets the tracker every new Trackable is attached to; `None` clears it.
#[pyfunction]
fn set_global_tracker(tracker: &Bound<'_, PyAny>) {
    object::set_global_tracker(tracker.py(), (!tracker.is_none()).then_some(tracker));
}

/// The global tracker, or `None`.
#[pyfunction]
fn get_global_tracker(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    object::global_tracker(py)
}

/// The version of the trackable-objects API: the integer 1.
#[pyfunction]
fn version() -> u32 {
    1
}

/// Runs `pytracker-cli` with `argv` (program name first); returns the exit
/// code. The GIL is released while it runs.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> i32 {
    py.detach(|| tracker_cli::main_cli(argv))
}

/// Runs `pytracker-top` with `argv` (program name first); returns the exit
/// code. The GIL is released while it runs.
#[pyfunction]
fn top_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> i32 {
    py.detach(|| tracker_cli::main_top(argv))
}

/// The serial of the Trackable made last (0 before the first object).
#[pyfunction]
fn last_serial() -> u64 {
    object::last_serial()
}

/// Starts (True) or stops (False) recording which thread creates each
/// Trackable (calls nest); returns the calling thread's tag.
#[pyfunction]
fn _record_creators(on: bool) -> u32 {
    object::record_creators(on);
    object::creator_tag()
}

/// The tag of the thread that created `obj` (0 if it was not recorded).
/// Sampled objects alive and the site sampling rate (for tests).
#[pyfunction]
fn _site_stats(py: Python<'_>) -> (usize, u64) {
    sites::stats(py)
}

#[pyfunction]
fn _creator_tag(obj: &Bound<'_, PyAny>) -> PyResult<u32> {
    Ok(object::TrackableRef::new(obj)?.creator())
}

/// (slow class look-ups, cache revalidations) since import: a test aid
/// proving that objects of a known class never take the slow look-up.
#[pyfunction]
fn _typecache_stats() -> (u64, u64) {
    typecache::stats()
}

/// `text` with control and bidirectional formatting characters written
/// visibly: the one escaping rule of every pytracker output.
#[pyfunction]
fn escape_control(text: &str) -> String {
    tracker_core::escape_control(text).into_owned()
}

/// Called at interpreter exit: stops calling Python trackers.
#[pyfunction]
fn _shutdown() {
    dispatch::shutdown();
}

fn install_methods(m: &Bound<'_, PyModule>, ty: &Bound<'_, PyType>) -> PyResult<()> {
    let py = m.py();
    let funcs = [
        wrap_pyfunction!(methods::set_tracker, m)?,
        wrap_pyfunction!(methods::get_tracker, m)?,
        wrap_pyfunction!(methods::set_data_bundle, m)?,
        wrap_pyfunction!(methods::get_data_bundle, m)?,
        wrap_pyfunction!(methods::get_tracker_serial, m)?,
        wrap_pyfunction!(methods::getstate, m)?,
        wrap_pyfunction!(methods::setstate, m)?,
        wrap_pyfunction!(methods::reduce_ex, m)?,
    ];
    for f in funcs {
        let name = f.getattr("__name__")?;
        ty.setattr(
            name.cast::<pyo3::types::PyString>()?,
            object::instance_method(f.into_any())?,
        )?;
    }
    let getter = wrap_pyfunction!(methods::get_data_bundle, m)?;
    let setter = wrap_pyfunction!(methods::data_bundle_set, m)?;
    let property = py.import("builtins")?.getattr("property")?.call1((
        getter,
        setter,
        py.None(),
        "The data bundle; assigning it does not notify the tracker.",
    ))?;
    ty.setattr("_data_bundle", property)?;
    Ok(())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    #[cfg(Py_GIL_DISABLED)]
    return Err(pyo3::exceptions::PyImportError::new_err(
        "pytracker does not support free-threaded CPython builds yet (this interpreter runs without \
         the GIL, which pytracker's native counters rely on): use the default CPython build",
    ));
    dispatch::init(py);
    typecache::init(py);
    let ty = object::create_type(py)?;
    install_methods(m, &ty)?;
    m.add("Trackable", ty)?;

    m.add_class::<trackers::NativeTracker>()?;
    m.add_class::<trackers::PyCountingTracker>()?;
    m.add_class::<exporter::PyShmTracker>()?;
    dispatch::register_native_types(&[
        py.get_type::<trackers::PyCountingTracker>().as_type_ptr(),
        py.get_type::<exporter::PyShmTracker>().as_type_ptr(),
    ]);
    m.add("SegmentError", py.get_type::<exporter::SegmentError>())?;
    m.add_function(wrap_pyfunction!(exporter::read_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::tick, m)?)?;
    m.add_function(wrap_pyfunction!(_site_stats, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::_close_exporters, m)?)?;
    m.add_function(wrap_pyfunction!(exporter::_after_fork_child, m)?)?;

    m.add_function(wrap_pyfunction!(set_global_tracker, m)?)?;
    m.add_function(wrap_pyfunction!(get_global_tracker, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(last_serial, m)?)?;
    m.add_function(wrap_pyfunction!(_record_creators, m)?)?;
    m.add_function(wrap_pyfunction!(_creator_tag, m)?)?;
    m.add_function(wrap_pyfunction!(top_main, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(_typecache_stats, m)?)?;
    m.add_function(wrap_pyfunction!(escape_control, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<stock::EntryCounts>()?;
    m.add_function(wrap_pyfunction!(stock::_register_stock_tracker, m)?)?;
    Ok(())
}

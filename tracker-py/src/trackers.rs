//! Native trackers exposed to Python. Objects whose tracker is one of these
//! are counted in Rust with no Python call (see `dispatch.rs`).
//!
//! [`NativeTracker`] is their common base: it holds the Rust tracker and
//! provides what every native tracker offers Python (`snapshot`, `dump`,
//! the `notify_*` protocol). `CountingTracker` here and `ShmTracker` in
//! `exporter.rs` add their constructors and own methods.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};
use tracker_core::{ClassSnapshot, CountingTracker, EventKind, Tracker};
use tracker_shm::ShmTracker;

use crate::typecache;

/// A Rust tracker that can also list its per-class records.
pub(crate) trait NativeCore: Tracker {
    /// One record per class, sorted by name.
    fn records(&self) -> Vec<ClassSnapshot>;

    /// The segment writer, if this is a ShmTracker (it records creation
    /// sites).
    fn shm(&self) -> Option<&ShmTracker> {
        None
    }

    /// The counter, if this is a CountingTracker.
    fn counting(&self) -> Option<&CountingTracker> {
        None
    }
}

impl NativeCore for CountingTracker {
    fn records(&self) -> Vec<ClassSnapshot> {
        self.snapshot()
    }

    fn counting(&self) -> Option<&CountingTracker> {
        Some(self)
    }
}

impl NativeCore for ShmTracker {
    fn records(&self) -> Vec<ClassSnapshot> {
        self.snapshot()
    }

    fn shm(&self) -> Option<&ShmTracker> {
        Some(self)
    }
}

/// Base of the native trackers.
#[pyclass(frozen, subclass, name = "NativeTracker", module = "pytracker")]
pub(crate) struct NativeTracker {
    core: Arc<dyn NativeCore>,
}

impl NativeTracker {
    /// A base holding `core`.
    pub(crate) fn new(core: Arc<dyn NativeCore>) -> Self {
        NativeTracker { core }
    }

    /// The Rust tracker.
    pub(crate) fn core(&self) -> &dyn NativeCore {
        &*self.core
    }

    /// The Rust tracker's shared handle.
    pub(crate) fn core_arc(&self) -> &Arc<dyn NativeCore> {
        &self.core
    }
}

/// Converts snapshot records to Python dicts with the shared field names.
pub(crate) fn records_to_py<'py>(
    py: Python<'py>,
    records: &[ClassSnapshot],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for r in records {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "name"), &r.name)?;
        d.set_item(intern!(py, "live"), r.live)?;
        d.set_item(intern!(py, "created"), r.created)?;
        d.set_item(intern!(py, "destroyed"), r.destroyed)?;
        d.set_item(intern!(py, "updated"), r.updated)?;
        d.set_item(intern!(py, "first_serial"), r.first_serial)?;
        d.set_item(intern!(py, "last_serial"), r.last_serial)?;
        d.set_item(intern!(py, "name_truncated"), r.name_truncated)?;
        d.set_item(intern!(py, "overflow"), r.overflow)?;
        d.set_item(intern!(py, "saturated"), r.saturated)?;
        // What only segments record is there only when the source has it.
        if let Some(p) = r.peak_live {
            d.set_item(intern!(py, "peak_live"), p)?;
        }
        if let Some(t) = r.peak_unix_ms {
            d.set_item(intern!(py, "peak_unix_ms"), t)?;
        }
        if let Some(a) = &r.ages {
            let ad = PyDict::new(py);
            ad.set_item(
                intern!(py, "bucket_bounds_s"),
                tracker_core::age::BUCKET_BOUNDS_S.to_vec(),
            )?;
            ad.set_item(intern!(py, "buckets"), a.buckets.clone())?;
            ad.set_item(intern!(py, "oldest_s"), a.oldest_s)?;
            let cohorts: Vec<Vec<u64>> = a.cohorts.iter().map(|c| c.to_vec()).collect();
            ad.set_item(intern!(py, "cohorts"), cohorts)?;
            d.set_item(intern!(py, "ages"), ad)?;
        }
        list.append(d)?;
    }
    Ok(list)
}

/// Writes the `dump()` text of `records` to `output` or `sys.stdout`.
pub(crate) fn write_dump(
    py: Python<'_>,
    records: &[ClassSnapshot],
    output: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&format!(
            "{:<40} live: {:<12} created: {:<12} destroyed: {:<12}\n",
            r.name, r.live, r.created, r.destroyed
        ));
    }
    let out = match output {
        Some(o) if !o.is_none() => o.clone(),
        _ => py.import("sys")?.getattr("stdout")?,
    };
    out.call_method1("write", (text,))?;
    Ok(())
}

fn notify_from_python(
    tracker: &dyn Tracker,
    kind: EventKind,
    serial: u64,
    objtype: &Bound<'_, PyType>,
) {
    let class = typecache::class_info(objtype).class;
    // Called from Python with a serial and a type only: the object's birth
    // is not known, so it counts as born now.
    tracker.notify_serialized(kind, class, serial, tracker_core::age::now());
}

#[pymethods]
impl NativeTracker {
    /// One dict per class: name, live, created, destroyed, updated,
    /// first_serial, last_serial; sorted by name.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        records_to_py(py, &self.core.records())
    }

    /// Writes one line per class, sorted by name, to `output` (default
    /// `sys.stdout`): qualified name, live, created, destroyed.
    #[pyo3(signature = (output=None))]
    fn dump(&self, py: Python<'_>, output: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        write_dump(py, &self.core.records(), output)
    }

    #[pyo3(signature = (serial, objtype, bundle=None))]
    fn notify_attached(
        &self,
        serial: u64,
        objtype: &Bound<'_, PyType>,
        bundle: Option<&Bound<'_, PyAny>>,
    ) {
        let _ = bundle;
        notify_from_python(self.core(), EventKind::Attached, serial, objtype);
    }

    #[pyo3(signature = (serial, objtype, bundle=None))]
    fn notify_detached(
        &self,
        serial: u64,
        objtype: &Bound<'_, PyType>,
        bundle: Option<&Bound<'_, PyAny>>,
    ) {
        let _ = bundle;
        notify_from_python(self.core(), EventKind::Detached, serial, objtype);
    }

    #[pyo3(signature = (serial, objtype, bundle=None))]
    fn notify_updated(
        &self,
        serial: u64,
        objtype: &Bound<'_, PyType>,
        bundle: Option<&Bound<'_, PyAny>>,
    ) {
        let _ = bundle;
        notify_from_python(self.core(), EventKind::Updated, serial, objtype);
    }

    #[pyo3(signature = (serial, objtype, bundle=None))]
    fn notify_destroyed(
        &self,
        serial: u64,
        objtype: &Bound<'_, PyType>,
        bundle: Option<&Bound<'_, PyAny>>,
    ) {
        let _ = bundle;
        notify_from_python(self.core(), EventKind::Destroyed, serial, objtype);
    }
}

/// Per-class counts and serial ranges, kept natively.
#[pyclass(frozen, extends = NativeTracker, name = "CountingTracker", module = "pytracker")]
pub(crate) struct PyCountingTracker;

#[pymethods]
impl PyCountingTracker {
    #[new]
    fn new() -> PyClassInitializer<Self> {
        PyClassInitializer::from(NativeTracker::new(Arc::new(CountingTracker::new())))
            .add_subclass(PyCountingTracker)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let snap = slf.as_super().get().core.records();
        let live: u64 = snap.iter().map(|c| c.live).sum();
        format!(
            "<pytracker.CountingTracker: {} classes, {} live>",
            snap.len(),
            live
        )
    }
}

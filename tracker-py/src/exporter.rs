//! `pytracker.ShmTracker` and the read side for Python: publishing an
//! inventory in shared memory, and reading another process's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use tracker_shm::{ReadError, ShmOptions, ShmTracker, TickUnit, WeakShmTracker};

use crate::gil::GilCell;
use crate::trackers::{records_to_py, NativeTracker};

create_exception!(
    pytracker,
    SegmentError,
    PyException,
    "A shared-memory segment could not be read. The message says why and what to do; `kind` names the case."
);

/// Bounds of ShmTracker's arguments (those of the segment format).
const MAX_CLASSES: u64 = tracker_shm::layout::MAX_CLASS_CAPACITY;
const MAX_RING: u64 = tracker_shm::layout::MAX_RING_CAPACITY;

/// `value` as a u64 if it lies in `lo..=hi`, else a ValueError naming the
/// argument and its range.
fn in_range(name: &str, value: i64, lo: u64, hi: u64) -> PyResult<u64> {
    u64::try_from(value)
        .ok()
        .filter(|v| (lo..=hi).contains(v))
        .ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "{name} must be between {lo} and {hi}, not {value}"
            ))
        })
}

/// A period in seconds between 10 ms and one day.
fn period(name: &str, seconds: f64) -> PyResult<Duration> {
    if seconds.is_finite() && (0.01..=86_400.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{name} must be a number of seconds between 0.01 and 86400, not {seconds}"
        )))
    }
}

/// Every ShmTracker created in this process, for exit and fork handling.
static LIVE: Mutex<Vec<WeakShmTracker>> = Mutex::new(Vec::new());

fn live_trackers() -> Vec<ShmTracker> {
    let mut list = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|w| w.upgrade().is_some());
    list.iter().filter_map(WeakShmTracker::upgrade).collect()
}

/// A native tracker that publishes per-class counts, serial ranges, recent
/// events and a short history in a shared-memory segment, for
/// `pytracker-cli` and `pytracker-top`.
#[pyclass(frozen, extends = NativeTracker, name = "ShmTracker", module = "pytracker")]
pub(crate) struct PyShmTracker {
    shm: Arc<ShmTracker>,
}

// The signature below spells the default out (a text signature needs a
// literal); this keeps it equal to the library's default.
const _: () = assert!(tracker_shm::DEFAULT_SITE_EVERY == 8192);

#[pymethods]
impl PyShmTracker {
    #[new]
    #[pyo3(signature = (directory=None, class_capacity=4096, ring_capacity=512, events=true, history_capacity=96, history_period=1.0, sampler=true, keep_exited=8, service=None, site_every=8192, site_capacity=512))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        directory: Option<PathBuf>,
        class_capacity: i64,
        ring_capacity: i64,
        events: bool,
        history_capacity: i64,
        history_period: f64,
        sampler: bool,
        keep_exited: i64,
        service: Option<String>,
        site_every: i64,
        site_capacity: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let options = ShmOptions {
            directory,
            class_capacity: in_range("class_capacity", class_capacity, 2, MAX_CLASSES)?,
            ring_capacity: if ring_capacity == 0 {
                0
            } else {
                in_range("ring_capacity", ring_capacity, 16, MAX_RING)?
            },
            events,
            // Every notification from Python comes with the GIL held.
            events_serialized: true,
            history_capacity: in_range(
                "history_capacity",
                history_capacity,
                1,
                tracker_shm::layout::HISTORY_MAX,
            )?,
            history_period: period("history_period", history_period)?,
            sampler,
            keep_exited: in_range("keep_exited", keep_exited, 0, 1 << 20)? as usize,
            service,
            site_every: in_range("site_every", site_every, 0, 1 << 40)?,
            site_capacity: in_range(
                "site_capacity",
                site_capacity,
                0,
                tracker_shm::layout::MAX_SITE_CAPACITY,
            )?,
        };
        let shm = Arc::new(py.detach(|| ShmTracker::new(options)));
        crate::sites::set_rate(py, shm.site_every());
        if let Some(problem) = shm.take_problem_report() {
            warn_problem(py, &problem)?;
        }
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(shm.downgrade());
        let base = NativeTracker::new(shm.clone());
        Ok(PyClassInitializer::from(base).add_subclass(PyShmTracker { shm }))
    }

    /// The segment's path, or None when nothing could be published.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.shm.path()
    }

    /// The service this process belongs to (the ``service`` option, else
    /// ``$PYTRACKER_SERVICE``, else the script or module name).
    #[getter]
    fn service(&self) -> String {
        self.shm.service()
    }

    /// This process's worker number in its service: the lowest that no
    /// other live process of the service held when the segment was
    /// published (None if there is no segment).
    #[getter]
    fn worker(&self) -> Option<u64> {
        self.shm.worker()
    }

    /// Why the segment is not published (or is on a disk-backed directory),
    /// or None.
    #[getter]
    fn problem(&self) -> Option<String> {
        self.shm.problem()
    }

    /// Counts `n` units of work called `name` in this tracker's segment
    /// (see `pytracker.tick`).
    #[pyo3(signature = (name="requests", n=1))]
    fn tick(&self, name: &str, n: u64) {
        self.shm.tick(self.shm.unit(name), n);
    }

    /// Writes a history sample and a heartbeat now.
    fn sample(&self) {
        self.shm.sample();
    }

    /// Removes the segment (counting goes on privately).
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.shm.close());
    }

    fn __repr__(&self) -> String {
        match self.shm.path() {
            Some(p) => format!("<pytracker.ShmTracker {}>", p.display()),
            None => "<pytracker.ShmTracker (not published)>".into(),
        }
    }
}

/// The last unit of work ticked through the global tracker, so a repeated
/// `tick()` costs two pointer comparisons and one atomic add.
struct TickCache {
    /// The global tracker's generation it was resolved for.
    generation: u64,
    /// The unit's name (a strong reference, so its address is not reused).
    name: Option<Py<PyString>>,
    /// The global tracker's segment writer, if it is a ShmTracker.
    shm: Option<Arc<ShmTracker>>,
    unit: Option<TickUnit>,
}

static TICK_CACHE: GilCell<TickCache> = GilCell::new(TickCache {
    generation: u64::MAX,
    name: None,
    shm: None,
    unit: None,
});

/// Counts `n` units of work called `name` (requests, jobs, messages) in
/// the global tracker's segment, when that is a ShmTracker (the
/// exporter): readers then show objects retained per 1,000 units. Eight
/// unit names at most; names are cut to 24 bytes. No allocation once a
/// name has been used.
#[pyfunction]
#[pyo3(signature = (name=None, n=1))]
pub(crate) fn tick(py: Python<'_>, name: Option<&Bound<'_, PyString>>, n: u64) -> PyResult<()> {
    let name_ptr = name.map_or(std::ptr::null_mut(), |s| s.as_ptr());
    let generation = crate::object::global_generation();
    let hit = TICK_CACHE.with(py, |c| {
        let cached = c.name.as_ref().map_or(std::ptr::null_mut(), |s| s.as_ptr());
        if c.generation != generation || cached != name_ptr {
            return false;
        }
        if let (Some(shm), Some(unit)) = (&c.shm, c.unit) {
            shm.tick(unit, n);
        }
        true
    });
    if hit {
        return Ok(());
    }
    tick_slow(py, name, generation, n)
}

#[cold]
fn tick_slow(
    py: Python<'_>,
    name: Option<&Bound<'_, PyString>>,
    generation: u64,
    n: u64,
) -> PyResult<()> {
    let text = match name {
        Some(s) => s.to_cow()?.into_owned(),
        None => "requests".to_string(),
    };
    let shm = crate::object::global_tracker(py)
        .and_then(|t| t.cast::<PyShmTracker>().ok().map(|t| t.get().shm.clone()));
    let unit = shm.as_ref().map(|s| s.unit(&text));
    if let (Some(shm), Some(unit)) = (&shm, unit) {
        shm.tick(unit, n);
    }
    let cache = TickCache {
        generation,
        name: name.map(|s| s.clone().unbind()),
        shm,
        unit,
    };
    // The old cache (and its reference to a name) is dropped after the
    // cell is updated.
    let old = TICK_CACHE.replace(py, cache);
    drop(old);
    Ok(())
}

/// At interpreter exit: removes every segment this process published.
#[pyfunction]
pub(crate) fn _close_exporters(py: Python<'_>) {
    py.detach(|| live_trackers().iter().for_each(ShmTracker::close));
}

/// In a forked child: gives every ShmTracker its own segment, with the
/// counts it had at the fork. A segment that cannot be published is
/// reported once, with a RuntimeWarning, as in the parent.
#[pyfunction]
pub(crate) fn _after_fork_child(py: Python<'_>) -> PyResult<()> {
    for tracker in live_trackers() {
        if let Some(problem) = tracker.reopen_after_fork() {
            warn_problem(py, &problem)?;
        }
    }
    Ok(())
}

fn warn_problem(py: Python<'_>, problem: &str) -> PyResult<()> {
    let warning = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
    let text = format!("pytracker: {problem}; counting continues in this process only");
    PyErr::warn(
        py,
        &warning,
        &std::ffi::CString::new(text.replace('\0', " ")).unwrap_or_default(),
        1,
    )
}

fn read_error(e: ReadError) -> PyErr {
    let kind = match &e {
        ReadError::NoSuchProcess { .. } => "no_such_process",
        ReadError::NotTracked { .. } => "not_tracked",
        ReadError::Untrusted { .. } => "untrusted",
        ReadError::NotFound { .. } => "not_found",
        ReadError::Permission { .. } => "permission",
        ReadError::NotRegular { .. } => "not_regular",
        ReadError::BadMagic { .. } => "bad_magic",
        ReadError::EndianMismatch { .. } => "endian",
        ReadError::Version { .. } => "version",
        ReadError::Truncated { .. } => "truncated",
        ReadError::Shrunk { .. } => "shrunk",
        ReadError::NotReady { .. } => "not_ready",
        ReadError::Corrupt { .. } => "corrupt",
        ReadError::Io { .. } => "io",
    };
    let err = SegmentError::new_err(e.to_string());
    Python::attach(|py| {
        let _ = err.value(py).setattr("kind", kind);
    });
    err
}

/// Reads the inventory another process publishes: a dict with
/// `process` (pid, program, writer_state, ...), `classes` (records as in
/// `CountingTracker.snapshot()`) and `classes_dropped`. Give `pid` or
/// `path`. Raises `SegmentError` with a message saying what to do.
#[pyfunction]
#[pyo3(signature = (pid=None, path=None))]
pub(crate) fn read_snapshot<'py>(
    py: Python<'py>,
    pid: Option<u32>,
    path: Option<PathBuf>,
) -> PyResult<Bound<'py, PyDict>> {
    let target = tracker_shm::Target::from_options(pid, path.as_deref()).ok_or_else(|| {
        pyo3::exceptions::PyTypeError::new_err("read_snapshot() needs pid= or path=")
    })?;
    let (snap, state) = py
        .detach(|| {
            let seg = target.open()?;
            let state = tracker_shm::writer_state(&seg);
            let snap = seg.snapshot(state.label());
            seg.intact()?;
            Ok::<_, ReadError>((snap, state))
        })
        .map_err(read_error)?;
    let d = PyDict::new(py);
    d.set_item("schema_version", snap.schema_version)?;
    let process = PyDict::new(py);
    if let Some(p) = &snap.process {
        process.set_item("pid", p.pid)?;
        process.set_item("program", &p.program)?;
        process.set_item("started_unix_ms", p.started_unix_ms)?;
        process.set_item("writer_state", state.label())?;
    }
    d.set_item("process", process)?;
    d.set_item("classes", records_to_py(py, &snap.classes)?)?;
    d.set_item("classes_dropped", snap.classes_dropped)?;
    d.set_item("taken_unix_ms", snap.taken_unix_ms)?;
    Ok(d)
}

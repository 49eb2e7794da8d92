//! Sampled creation sites: on average one Trackable creation in N records
//! the Python stack that made it (file, line and function of up to four
//! frames) in the ShmTracker it is attached to, and the object is marked
//! so that its destruction counts it out of that site.
//!
//! The sampling is geometric over the process's serials: after a sampled
//! creation, the next one sampled is `serial + gap`, with `gap` drawn from
//! a geometric distribution of mean N. So every creation has the same
//! chance 1/N whatever the class or the allocation pattern. That serial is
//! the mark of the Python objects' serial lane (`tracker_core::SerialLane`),
//! whose one comparison per creation stops at the lower of its block's end
//! and the mark: the common path pays nothing for sampling. The creation
//! that reaches the mark draws the next one at once ([`draw_next`]), and is
//! sampled if a tracker takes it. Stacks are
//! keyed by their code objects and line numbers; the text (file and
//! function names) is read only the first time a stack is seen, and the
//! code objects of those stacks are kept alive, so their addresses are not
//! reused for other code.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use pyo3::ffi;
use pyo3::prelude::*;
use tracker_core::{ClassId, Serial};
use tracker_shm::{Frame, ShmTracker, SiteId, WeakShmTracker};

use crate::gil::GilCell;

/// The mean gap N (0: sampling is off).
static EVERY: AtomicU64 = AtomicU64::new(0);

/// State of the gap generator (xorshift64*), and the sampled live objects.
struct State {
    rng: u64,
    /// Site of each sampled object still alive, in the segment of the
    /// tracker it was created under.
    live: HashMap<Serial, (WeakShmTracker, SiteId)>,
    /// Code objects of the stacks recorded so far (kept alive: see the
    /// module documentation).
    codes: Vec<Py<PyAny>>,
}

static STATE: GilCell<Option<State>> = GilCell::new(None);

/// Samples one creation in `every` from now on (0: none). A ShmTracker
/// sets its rate when it is made and when it becomes the global tracker.
pub(crate) fn set_rate(py: Python<'_>, every: u64) {
    // A measurement build (`bare-counts`) samples nothing.
    let every = if cfg!(feature = "bare-counts") {
        0
    } else {
        every
    };
    EVERY.store(every, Relaxed);
    let next = if every == 0 {
        u64::MAX
    } else {
        crate::object::last_serial().saturating_add(gap(py, every))
    };
    crate::object::sample_from(next);
}

/// Draws the serial sampled next after `serial`, the creation that
/// reached the mark.
#[cold]
#[inline(never)]
pub(crate) fn draw_next(py: Python<'_>, serial: Serial) {
    let every = EVERY.load(Relaxed);
    if every != 0 {
        crate::object::sample_from(serial.saturating_add(gap(py, every)));
    }
}

/// A geometric gap of mean `every` (at least 1).
fn gap(py: Python<'_>, every: u64) -> u64 {
    let r = STATE.with(py, |s| {
        let s = s.get_or_insert_with(|| State {
            rng: seed(),
            live: HashMap::new(),
            codes: Vec::new(),
        });
        s.rng ^= s.rng >> 12;
        s.rng ^= s.rng << 25;
        s.rng ^= s.rng >> 27;
        s.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    });
    if every <= 1 {
        return 1;
    }
    // U in (0, 1]; P(gap > k) = (1 - 1/N)^k.
    let u = ((r >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let g = (u.ln() / (1.0 - 1.0 / every as f64).ln()).ceil();
    if g.is_finite() && g >= 1.0 {
        g.min(1e18) as u64
    } else {
        1
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ u64::from(std::process::id()).rotate_left(32)) | 1
}

/// Samples the creation of `serial` (of `class`, attached to the
/// ShmTracker `shm` if it is attached to one): records its stack in the
/// tracker's segment. Returns whether the object is to be marked as
/// sampled.
///
/// # Safety
/// GIL held, called from the object's creation (the current frame is the
/// code creating it).
#[cold]
#[inline(never)]
pub(crate) unsafe fn sample(
    py: Python<'_>,
    serial: Serial,
    class: ClassId,
    shm: Option<&ShmTracker>,
) -> bool {
    let Some(shm) = shm else {
        return false;
    };
    // SAFETY: GIL held (contract).
    let stack = unsafe { capture(py) };
    if stack.is_empty() {
        return false;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (code, line) in &stack {
        (code.as_ptr() as usize).hash(&mut h);
        line.hash(&mut h);
    }
    let key = h.finish();
    let site = shm.site(class, key, || {
        let frames = stack
            .iter()
            .map(|(code, line)| frame(code.bind(py), *line))
            .collect();
        STATE.with(py, |s| {
            if let Some(s) = s {
                s.codes.extend(stack.iter().map(|(c, _)| c.clone_ref(py)));
            }
        });
        frames
    });
    let Some(site) = site else {
        return false;
    };
    let weak = shm.downgrade();
    STATE.with(py, |s| {
        if let Some(s) = s {
            s.live.insert(serial, (weak, site));
        }
    });
    true
}

/// A sampled object is being destroyed: counts it out of its site.
#[cold]
#[inline(never)]
pub(crate) fn left(py: Python<'_>, serial: Serial) {
    let entry = STATE.with(py, |s| s.as_mut().and_then(|s| s.live.remove(&serial)));
    if let Some((weak, site)) = entry {
        if let Some(shm) = weak.upgrade() {
            shm.site_left(site);
        }
    }
}

/// The code objects and line numbers of up to four frames, the current
/// one first.
///
/// # Safety
/// GIL held.
unsafe fn capture(py: Python<'_>) -> Vec<(Py<PyAny>, u64)> {
    let mut out = Vec::with_capacity(tracker_shm::layout::SITE_FRAMES as usize);
    // SAFETY: GIL held; a borrowed reference (or null), made ours.
    let mut frame = unsafe { ffi::PyEval_GetFrame() };
    if frame.is_null() {
        return out;
    }
    // SAFETY: a live frame; we now own a reference to it.
    unsafe { ffi::Py_INCREF(frame.cast()) };
    while !frame.is_null() && out.len() < tracker_shm::layout::SITE_FRAMES as usize {
        // SAFETY: `frame` is a live frame we own a reference to;
        // PyFrame_GetCode and PyFrame_GetBack return new references (the
        // latter possibly null).
        unsafe {
            let code = ffi::PyFrame_GetCode(frame);
            let line = ffi::PyFrame_GetLineNumber(frame);
            if !code.is_null() {
                out.push((
                    Bound::from_owned_ptr(py, code.cast()).unbind(),
                    u64::try_from(line).unwrap_or(0),
                ));
            }
            let back = ffi::PyFrame_GetBack(frame);
            ffi::Py_DECREF(frame.cast());
            frame = back;
        }
    }
    if !frame.is_null() {
        // SAFETY: the reference taken by the last PyFrame_GetBack.
        unsafe { ffi::Py_DECREF(frame.cast()) };
    }
    out
}

/// The text of one frame: its code's file and function names.
fn frame(code: &Bound<'_, PyAny>, line: u64) -> Frame {
    let text = |attr: &str| {
        code.getattr(attr)
            .ok()
            .and_then(|v| v.extract::<String>().ok())
            .unwrap_or_default()
    };
    // co_qualname (3.11+) names the class of a method too.
    let qualname = text("co_qualname");
    Frame {
        file: text("co_filename"),
        line,
        function: if qualname.is_empty() {
            text("co_name")
        } else {
            qualname
        },
    }
}

/// Sampled objects alive and the sampling rate, for tests.
pub(crate) fn stats(py: Python<'_>) -> (usize, u64) {
    let live = STATE.with(py, |s| s.as_ref().map_or(0, |s| s.live.len()));
    (live, EVERY.load(Relaxed))
}

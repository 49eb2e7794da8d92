//! Reading a segment: validation, snapshots, events, history.
//!
//! The segment is untrusted input. Every offset and length comes from the
//! header and is checked against the mapping before use; reads are atomic
//! loads through [`ReadView`]; nothing is ever written.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering::Acquire};

use tracker_core::{ClassSnapshot, EventKind, ProcessInfo, Serial, Snapshot};

use crate::error::ReadError;
use crate::layout::{self, class, event, header, Geometry};
use crate::raw::{ReadMap, ReadView};
use crate::sys;

/// What the header says about the writer and the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Layout version (major, minor).
    pub version: (u16, u16),
    /// Writer pid.
    pub pid: u32,
    /// Writer start time (clock ticks after boot, `/proc/<pid>/stat` field 22).
    pub start_time: u64,
    /// Writer command line.
    pub program: String,
    /// Creation, Unix milliseconds.
    pub created_unix_ms: u64,
    /// Creation, `CLOCK_MONOTONIC` ns.
    pub created_mono_ns: u64,
    /// Last heartbeat, `CLOCK_MONOTONIC` ns.
    pub heartbeat_ns: u64,
    /// [`layout::STATE_LIVE`] or [`layout::STATE_CLOSED`].
    pub state: u64,
    /// Events are being recorded.
    pub events: bool,
    /// Classes folded into the overflow slot.
    pub classes_dropped: u64,
    /// Class names cut to fit.
    pub names_truncated: u64,
    /// History sample period.
    pub history_period_ms: u64,
}

/// A mapped, validated segment.
pub struct Segment {
    path: PathBuf,
    file: File,
    _map: ReadMap,
    view: ReadView,
    geo: Geometry,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("geometry", &self.geo)
            .finish()
    }
}

fn corrupt(path: &Path, what: impl Into<String>) -> ReadError {
    ReadError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

impl Segment {
    /// Opens and validates the segment at `path`, read-only.
    ///
    /// # Errors
    /// [`ReadError`] for a missing file, no permission, something that is
    /// not a segment, another layout version, truncation or corruption.
    pub fn open(path: &Path) -> Result<Segment, ReadError> {
        let io_err = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => ReadError::NotFound {
                path: path.to_path_buf(),
            },
            io::ErrorKind::PermissionDenied => ReadError::Permission {
                path: path.to_path_buf(),
            },
            _ if e.raw_os_error() == Some(libc::ELOOP) => ReadError::NotRegular {
                path: path.to_path_buf(),
            },
            _ => ReadError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        };
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.file_type().is_file() {
            return Err(ReadError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        let uid = sys::uid();
        if uid != 0 && meta.uid() != uid {
            return Err(ReadError::Permission {
                path: path.to_path_buf(),
            });
        }
        let size = meta.len();
        if size < layout::HEADER_SIZE {
            if size >= 8 {
                // Say "not a segment" rather than "truncated" for small foreign files.
                let map = ReadMap::new(&file, 8).map_err(io_err)?;
                if map.view().u64(0) != Some(layout::MAGIC) {
                    return Err(ReadError::BadMagic {
                        path: path.to_path_buf(),
                    });
                }
            }
            return Err(ReadError::Truncated {
                path: path.to_path_buf(),
                size,
                expected: layout::HEADER_SIZE,
            });
        }
        let len = usize::try_from(size).map_err(|_| corrupt(path, "file too large"))?;
        let map = ReadMap::new(&file, len).map_err(io_err)?;
        let view = map.view();
        let geo = validate(path, view)?;
        Ok(Segment {
            path: path.to_path_buf(),
            file,
            _map: map,
            view,
            geo,
        })
    }

    /// The segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether everything read from the segment so far came from its file.
    /// Call it after reading: if the file shrank meanwhile, the pages lost
    /// read as zeros (the reader survives; see the `fault` module), and
    /// what was read must be discarded.
    ///
    /// # Errors
    /// [`ReadError::Shrunk`] once the file has shrunk under the mapping
    /// (for good: reopen the segment to read it again).
    pub fn intact(&self) -> Result<(), ReadError> {
        if self._map.damaged() {
            Err(ReadError::Shrunk {
                path: self.path.clone(),
            })
        } else {
            Ok(())
        }
    }

    /// The open file (for liveness probes).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The validated geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// The header fields.
    pub fn header(&self) -> HeaderInfo {
        read_header(self.view)
    }

    /// Every published class with its slot index, in slot order.
    pub fn classes(&self) -> Vec<(u32, ClassSnapshot)> {
        read_classes(self.view, &self.geo)
    }

    /// A snapshot of every class, with process information.
    pub fn snapshot(&self, writer_state: &str) -> Snapshot {
        let h = self.header();
        let mut classes: Vec<ClassSnapshot> = self.classes().into_iter().map(|(_, c)| c).collect();
        classes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut snap = Snapshot::new(classes);
        snap.classes_dropped = h.classes_dropped;
        snap.process = Some(ProcessInfo {
            pid: h.pid,
            program: h.program,
            started_unix_ms: h.created_unix_ms,
            writer_state: writer_state.to_string(),
        });
        snap
    }

    /// A cursor that starts at the oldest event still in the ring.
    pub fn events_from_oldest(&self) -> EventCursor {
        let head = self.view.u64(header::RING_HEAD).unwrap_or(0);
        EventCursor {
            next: head.saturating_sub(self.geo.ring_capacity),
            lost: 0,
        }
    }

    /// A cursor that starts after the newest event (only new ones are read).
    pub fn events_from_now(&self) -> EventCursor {
        EventCursor {
            next: self.view.u64(header::RING_HEAD).unwrap_or(0),
            lost: 0,
        }
    }

    /// Reads the events published since the cursor's position into `out`.
    /// Returns how many were missed because the writer lapped the reader or
    /// overwrote a slot during the read (also added to `cursor.lost`).
    pub fn poll_events(&self, cursor: &mut EventCursor, out: &mut Vec<Event>) -> u64 {
        poll_events(self.view, &self.geo, cursor, out)
    }

    /// The live-count history of class slot `slot`, oldest first, with the
    /// totals history. Samples the writer was overwriting while they were
    /// read are left out.
    pub fn history(&self) -> History {
        read_history(self.view, &self.geo)
    }
}

fn validate(path: &Path, v: ReadView) -> Result<Geometry, ReadError> {
    let get = |off| {
        v.u64(off)
            .ok_or_else(|| corrupt(path, "header out of bounds"))
    };
    if get(header::MAGIC)? != layout::MAGIC {
        return Err(ReadError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    if v.u32(header::ENDIAN) != Some(layout::ENDIAN_PROBE) {
        return Err(ReadError::EndianMismatch {
            path: path.to_path_buf(),
        });
    }
    let version = v.u32(header::VERSION).unwrap_or(0);
    let major = (version & 0xffff) as u16;
    if major != layout::MAJOR {
        return Err(ReadError::Version {
            path: path.to_path_buf(),
            found: major,
            supported: layout::MAJOR,
        });
    }
    let state = get(header::STATE)?;
    if state == layout::STATE_INIT {
        return Err(ReadError::NotReady {
            path: path.to_path_buf(),
        });
    }
    if state > layout::STATE_CLOSED {
        return Err(corrupt(path, format!("unknown state {state}")));
    }
    fence(Acquire);
    let total = get(header::TOTAL_SIZE)?;
    if total > v.len() as u64 {
        return Err(ReadError::Truncated {
            path: path.to_path_buf(),
            size: v.len() as u64,
            expected: total,
        });
    }
    if get(header::HEADER_SIZE)? != layout::HEADER_SIZE {
        return Err(corrupt(path, "header size"));
    }
    let class_capacity = get(header::CLASS_CAPACITY)?;
    let ring_capacity = get(header::RING_CAPACITY)?;
    let history_capacity = get(header::HISTORY_CAPACITY)?;
    if !(2..=layout::MAX_CLASS_CAPACITY).contains(&class_capacity) {
        return Err(corrupt(
            path,
            format!(
                "class capacity {class_capacity} (2 to {} allowed)",
                layout::MAX_CLASS_CAPACITY
            ),
        ));
    }
    if ring_capacity != 0
        && (!ring_capacity.is_power_of_two() || ring_capacity > layout::MAX_RING_CAPACITY)
    {
        return Err(corrupt(
            path,
            format!(
                "ring capacity {ring_capacity} (0, or a power of two up to {} allowed)",
                layout::MAX_RING_CAPACITY
            ),
        ));
    }
    if !(1..=layout::HISTORY_MAX).contains(&history_capacity) {
        return Err(corrupt(
            path,
            format!("history capacity {history_capacity}"),
        ));
    }
    // The writer derives the geometry from the capacities; so does the
    // reader, then checks the header agrees. Any other layout is refused.
    let geo = Geometry::new(class_capacity, ring_capacity, history_capacity);
    let claims = [
        (header::CLASS_OFFSET, geo.class_offset, "class table offset"),
        (
            header::CLASS_SLOT_SIZE,
            geo.class_slot_size,
            "class slot size",
        ),
        (header::RING_OFFSET, geo.ring_offset, "ring offset"),
        (
            header::RING_SLOT_SIZE,
            layout::EVENT_SLOT_SIZE,
            "event slot size",
        ),
        (header::TOTAL_SIZE, geo.total_size, "total size"),
    ];
    for (off, expected, what) in claims {
        if get(off)? != expected {
            return Err(corrupt(path, what));
        }
    }
    if geo.total_size > v.len() as u64 {
        return Err(ReadError::Truncated {
            path: path.to_path_buf(),
            size: v.len() as u64,
            expected: geo.total_size,
        });
    }
    Ok(geo)
}

fn read_string(v: ReadView, len_off: u64, off: u64, max: u64) -> String {
    let len = v.u64(len_off).unwrap_or(0).min(max);
    let bytes = v.bytes(off, len).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(crate) fn read_header(v: ReadView) -> HeaderInfo {
    let get = |off| v.u64(off).unwrap_or(0);
    let version = v.u32(header::VERSION).unwrap_or(0);
    HeaderInfo {
        version: ((version & 0xffff) as u16, (version >> 16) as u16),
        pid: u32::try_from(get(header::PID)).unwrap_or(0),
        start_time: get(header::START_TIME),
        program: read_string(v, header::CMDLINE_LEN, header::CMDLINE, header::CMDLINE_MAX),
        created_unix_ms: get(header::CREATED_UNIX_MS),
        created_mono_ns: get(header::CREATED_MONO_NS),
        heartbeat_ns: get(header::HEARTBEAT_NS),
        state: get(header::STATE),
        events: get(header::FLAGS) & layout::FLAG_EVENTS != 0,
        classes_dropped: get(header::CLASSES_DROPPED),
        names_truncated: get(header::NAMES_TRUNCATED),
        history_period_ms: get(header::HISTORY_PERIOD_MS),
    }
}

pub(crate) fn read_classes(v: ReadView, geo: &Geometry) -> Vec<(u32, ClassSnapshot)> {
    let mut out: Vec<(u32, ClassSnapshot)> = published_slots(v, geo)
        .into_iter()
        .map(
            |PublishedSlot {
                 slot,
                 flags,
                 overflow,
             }| {
                let base = geo.class_slot(u64::from(slot));
                let totals = v
                    .counters(base + class::COUNTERS)
                    .map(|c| c.totals())
                    .unwrap_or_default();
                let name = read_string(
                    v,
                    base + class::NAME_LEN,
                    base + class::NAME,
                    class::NAME_MAX,
                );
                let mut rec = ClassSnapshot::from_totals(&name, &totals);
                rec.name_truncated = flags & layout::CLASS_TRUNCATED != 0;
                rec.overflow = overflow;
                (slot, rec)
            },
        )
        .collect();
    unique_names(&mut out);
    out
}

/// Gives every record a distinct name, so that no consumer (a diff, a
/// check, an OpenMetrics series) merges two classes or sees one twice. Two
/// slots share a name when names were cut to fit a slot, or when the
/// segment was not written by a pytracker writer; only the overflow slot may
/// be called [`layout::OVERFLOW_NAME`]. A repeated name gets ` #<slot>`.
fn unique_names(records: &mut [(u32, ClassSnapshot)]) {
    let mut seen = std::collections::HashSet::with_capacity(records.len());
    seen.insert(layout::OVERFLOW_NAME.to_string());
    for (slot, rec) in records.iter_mut().filter(|(_, r)| !r.overflow) {
        if !seen.insert(rec.name.clone()) {
            rec.name = format!("{} #{slot}", rec.name);
            seen.insert(rec.name.clone());
        }
    }
}

/// A class slot readers report.
struct PublishedSlot {
    slot: u32,
    /// Its flags word.
    flags: u64,
    /// It is the overflow slot.
    overflow: bool,
}

/// The class slots readers report: the claimed ones whose name is
/// published, and the overflow slot once a class was folded into it. Each
/// state load is followed by an `Acquire` fence, so what is read from a
/// slot afterwards is at least what its writer published.
fn published_slots(v: ReadView, geo: &Geometry) -> Vec<PublishedSlot> {
    let used = v
        .u64(header::CLASS_COUNT)
        .unwrap_or(0)
        .min(geo.class_capacity - 1);
    let last = geo.class_capacity - 1;
    let mut out = Vec::with_capacity(used as usize + 1);
    for slot in (0..used).chain([last]) {
        let base = geo.class_slot(slot);
        if v.u64(base + class::STATE) != Some(layout::SLOT_PUBLISHED) {
            continue; // still being filled: its counts are not in use yet
        }
        fence(Acquire);
        let flags = v.u64(base + class::FLAGS).unwrap_or(0);
        // Only the last slot is the overflow slot, whatever a flag says.
        let overflow = slot == last && flags & layout::CLASS_OVERFLOW != 0;
        if overflow {
            let totals = v
                .counters(base + class::COUNTERS)
                .map(|c| c.totals())
                .unwrap_or_default();
            if totals.created == 0 && totals.updated == 0 {
                continue;
            }
        }
        out.push(PublishedSlot {
            slot: slot as u32,
            flags,
            overflow,
        });
    }
    out
}

/// One lifecycle event from the ring.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// Ticket number (position in the writer's event sequence).
    pub ticket: u64,
    /// What happened.
    pub kind: EventKind,
    /// Class slot index (see [`Segment::classes`]).
    pub slot: u32,
    /// The object's serial.
    pub serial: Serial,
    /// `CLOCK_MONOTONIC` ns (coarse).
    pub time_ns: u64,
}

/// The most events one [`Segment::poll_events`] call returns; older
/// unread events are skipped and counted as lost.
pub const MAX_EVENTS_PER_POLL: u64 = 1 << 16;

/// A reader's position in the event ring.
#[derive(Clone, Debug, Default)]
pub struct EventCursor {
    /// Next ticket to read.
    pub next: u64,
    /// Events missed so far.
    pub lost: u64,
}

fn poll_events(v: ReadView, geo: &Geometry, cursor: &mut EventCursor, out: &mut Vec<Event>) -> u64 {
    if geo.ring_capacity == 0 {
        return 0;
    }
    let head = v.u64(header::RING_HEAD).unwrap_or(0);
    fence(Acquire);
    let mut lost = 0;
    // Never more than the ring holds, nor more than one poll's worth: a
    // huge (or hostile) ring must not make one poll take seconds or
    // gigabytes. What is skipped counts as lost.
    let window = geo.ring_capacity.min(MAX_EVENTS_PER_POLL);
    if head.saturating_sub(cursor.next) > window {
        lost += head - window - cursor.next;
        cursor.next = head - window;
    }
    while cursor.next < head {
        let t = cursor.next;
        let at = geo.event_slot(t);
        let published = t.wrapping_mul(2).wrapping_add(2);
        let s1 = v.u64(at + event::SEQ).unwrap_or(0);
        if s1 < published {
            break; // not yet written: read it next time
        }
        fence(Acquire);
        let meta = v.u64(at + event::META).unwrap_or(0);
        let serial = v.u64(at + event::SERIAL).unwrap_or(0);
        let time_ns = v.u64(at + event::TIME_NS).unwrap_or(0);
        fence(Acquire);
        let s2 = v.u64(at + event::SEQ).unwrap_or(0);
        cursor.next += 1;
        let kind = EventKind::from_code((meta & 0xff) as u8);
        match kind {
            Some(kind) if s1 == published && s2 == published => out.push(Event {
                ticket: t,
                kind,
                slot: ((meta >> 8) & 0xffff_ffff) as u32,
                serial,
                time_ns,
            }),
            _ => lost += 1, // overwritten by a newer lap, or garbage
        }
    }
    cursor.lost += lost;
    lost
}

/// The history kept in a segment, oldest sample first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Sample times, `CLOCK_MONOTONIC` ns.
    pub times_ns: Vec<u64>,
    /// Total live objects per sample.
    pub total_live: Vec<u64>,
    /// Live count per sample for each class slot (same order as
    /// [`Segment::classes`]).
    pub per_class: Vec<(u32, Vec<u32>)>,
}

/// The samples of a history ring of `cap` slots a reader may keep, as the
/// range of sample numbers `first..end`: `head` read before copying, `head2`
/// after. Sample `n` lives in slot `n % cap`. While the reader copies, the
/// writer may be writing sample `head` (into the slot of sample `head -
/// cap`), and if `head2 > head` it wrote samples up to `head2`: every sample
/// whose slot it may have touched, `n <= head2 - cap`, is dropped. So the
/// read starts at `head + 1 - cap` (the oldest slot is the one being
/// rewritten next) and keeps from `head2 + 1 - cap`; before the ring is
/// full nothing valid is dropped.
pub(crate) fn history_window(head: u64, head2: u64, cap: u64) -> (u64, u64) {
    // Saturating: a forged head may be anything.
    let first = head.saturating_add(1).saturating_sub(cap);
    let keep_from = head2
        .max(head)
        .saturating_add(1)
        .saturating_sub(cap)
        .max(first);
    (keep_from.min(head), head)
}

fn read_history(v: ReadView, geo: &Geometry) -> History {
    let head = v.u64(header::HISTORY_HEAD).unwrap_or(0);
    fence(Acquire);
    let cap = geo.history_capacity;
    let (first, _) = history_window(head, head, cap);
    let mut h = History::default();
    let indices: Vec<u64> = (first..head).map(|i| i % cap).collect();
    for &i in &indices {
        let at = header::HISTORY_TOTALS + i * 8 * layout::HISTORY_TOTAL_WORDS;
        h.times_ns.push(v.u64(at).unwrap_or(0));
        h.total_live.push(v.u64(at + 8).unwrap_or(0));
    }
    for PublishedSlot { slot, .. } in published_slots(v, geo) {
        let base = geo.class_slot(u64::from(slot)) + class::HISTORY;
        let series = indices
            .iter()
            .map(|i| v.u32(base + 4 * i).unwrap_or(0))
            .collect();
        h.per_class.push((slot, series));
    }
    // Drop samples the writer may have overwritten during the read.
    fence(Acquire);
    let head2 = v.u64(header::HISTORY_HEAD).unwrap_or(0);
    let (keep_from, _) = history_window(head, head2, cap);
    let stale = keep_from.saturating_sub(first).min(indices.len() as u64) as usize;
    if stale > 0 {
        h.times_ns.drain(..stale);
        h.total_live.drain(..stale);
        for (_, s) in &mut h.per_class {
            s.drain(..stale.min(s.len()));
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::history_window;

    #[test]
    fn window_before_the_ring_is_full_keeps_every_sample() {
        // 3 samples in 8 slots; the writer finished two more meanwhile.
        assert_eq!(history_window(3, 3, 8), (0, 3));
        assert_eq!(history_window(3, 5, 8), (0, 3));
        // Up to the moment its next write reaches sample 0's slot.
        assert_eq!(history_window(7, 7, 8), (0, 7));
        assert_eq!(history_window(7, 8, 8), (1, 7));
    }

    #[test]
    fn window_of_a_full_ring_skips_the_slot_being_rewritten() {
        // 20 samples in 8 slots: 12..20 are there, but the writer may be
        // writing sample 20 into sample 12's slot.
        assert_eq!(history_window(20, 20, 8), (13, 20));
        // It finished 20 and 21 and may be writing 22 (over 14).
        assert_eq!(history_window(20, 22, 8), (15, 20));
        // It lapped the reader: nothing is safe.
        assert_eq!(history_window(20, 40, 8), (20, 20));
        // A forged head: at most a ring's worth, no overflow.
        let (first, end) = history_window(u64::MAX, u64::MAX, 8);
        assert!(end - first <= 8);
    }
}

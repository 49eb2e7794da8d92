//! [`Segment`]: a segment opened read-only, as untrusted input.
//!
//! Opening checks the file (regular, owned by the reader unless root, at
//! least a header long), maps it guarded against shrinking, and validates
//! the header (see [`crate::header`]). Reads go through the protocol
//! modules ([`crate::classes`], [`crate::ring`], [`crate::history`]), each
//! with both of its halves; every offset is checked against the mapping;
//! nothing is ever written.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracker_core::{ClassSnapshot, ProcessInfo, Snapshot, UnitCount, UnitWindow};

use crate::error::ReadError;
use crate::header::{self, HeaderInfo};
use crate::history::{self, History};
use crate::layout::{self, Geometry};
use crate::mapping::ReadMap;
use crate::ring::{self, Event, EventCursor};
use crate::sites::{self, Site};
use crate::ticks;
use crate::{ages, classes, sys};

/// Sets each class's `retained` from `history` (tier 0): its live count's
/// change between the oldest and the newest sample, when the first unit
/// of work's count grew between them.
fn retention(
    history: &History,
    unit: &str,
    classes: &mut [(u32, ClassSnapshot)],
) -> Option<UnitWindow> {
    let (first, last) = (history.ticks.first()?, history.ticks.last()?);
    let units = last[0].checked_sub(first[0]).filter(|&u| u > 0)?;
    let seconds = history
        .times_ns
        .last()?
        .saturating_sub(*history.times_ns.first()?)
        / 1_000_000_000;
    for (slot, c) in classes.iter_mut() {
        if let Some((_, series)) = history.per_class.iter().find(|(s, _)| s == slot) {
            if let (Some(&a), Some(&b)) = (series.first(), series.last()) {
                c.retained = Some(i64::from(b) - i64::from(a));
            }
        }
    }
    Some(UnitWindow {
        unit: unit.to_string(),
        units,
        seconds,
    })
}

/// One class's high-water mark and ages, as [`Segment::ages`] reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassAges {
    /// Highest live count seen.
    pub peak_live: u64,
    /// Unix ms of the sample that first saw it (0: not stamped yet).
    pub peak_unix_ms: u64,
    /// Live objects by age (objects counted from threads other than the
    /// serialising lock's holder are in no cohort).
    pub ages: tracker_core::age::Ages,
}

/// A mapped, validated segment. Clones share the file and the mapping.
#[derive(Clone)]
pub struct Segment {
    path: PathBuf,
    file: Arc<File>,
    map: Arc<ReadMap>,
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
        let geo = header::validate(path, map.view())?;
        Ok(Segment {
            path: path.to_path_buf(),
            file: Arc::new(file),
            map: Arc::new(map),
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
        if self.map.damaged() {
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
        header::read(self.map.view())
    }

    /// Every published class with its slot index, in slot order, with
    /// its high-water mark and its live objects by age as of the writer's
    /// last heartbeat.
    pub fn classes(&self) -> Vec<(u32, ClassSnapshot)> {
        let mut classes = classes::read(self.map.view(), &self.geo);
        ages::annotate(self.map.view(), &self.geo, &mut classes);
        classes
    }

    /// A snapshot of every class, with process information. When the
    /// process counts units of work, each class's `retained` is its live
    /// count's change over tier 0 of the history, while the first unit's
    /// count grew (see [`UnitWindow`]).
    pub fn snapshot(&self, writer_state: &str) -> Snapshot {
        let h = self.header();
        let mut slots = self.classes();
        let units = self.ticks();
        let window = if units.is_empty() {
            None
        } else {
            retention(&self.history(), &units[0].name, &mut slots)
        };
        let mut classes: Vec<ClassSnapshot> = slots.into_iter().map(|(_, c)| c).collect();
        classes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut snap = Snapshot::new(classes);
        snap.classes_dropped = h.classes_dropped;
        let last_seen = h
            .created_unix_ms
            .saturating_add(h.heartbeat_ns.saturating_sub(h.created_mono_ns) / 1_000_000);
        snap.process = Some(ProcessInfo {
            pid: h.pid,
            host_pid: None,
            program: h.program,
            started_unix_ms: h.created_unix_ms,
            writer_state: writer_state.to_string(),
            service: h.service,
            worker: (h.worker != layout::NO_WORKER).then_some(h.worker),
            rss_bytes: (h.rss_bytes != 0).then_some(h.rss_bytes),
            last_seen_unix_ms: Some(last_seen),
            units,
            window,
        });
        snap
    }

    /// A cursor that starts at the oldest event still in the ring.
    pub fn events_from_oldest(&self) -> EventCursor {
        ring::from_oldest(self.map.view(), &self.geo)
    }

    /// A cursor that starts after the newest event (only new ones are read).
    pub fn events_from_now(&self) -> EventCursor {
        ring::from_now(self.map.view())
    }

    /// Reads the events published since the cursor's position into `out`.
    /// Returns how many were missed because the writer lapped the reader or
    /// overwrote a slot during the read (also added to `cursor.lost`).
    pub fn poll_events(&self, cursor: &mut EventCursor, out: &mut Vec<Event>) -> u64 {
        ring::poll(self.map.view(), &self.geo, cursor, out)
    }

    /// Tier 0 of the history (every sample): each class's live counts,
    /// oldest first, with the totals. Samples the writer was overwriting
    /// while they were read are left out.
    pub fn history(&self) -> History {
        history::read(self.map.view(), &self.geo, 0)
    }

    /// One tier of the history (0: every sample; 1: every
    /// [`HeaderInfo::tier_factor`]-th; 2: every `tier_factor²`-th). A tier
    /// past the last reads empty.
    pub fn history_tier(&self, tier: u8) -> History {
        history::read(self.map.view(), &self.geo, tier)
    }

    /// The creation sites of sampled objects, in the order they were first
    /// seen (see [`HeaderInfo::site_every`] for the sampling rate).
    pub fn sites(&self) -> Vec<Site> {
        sites::read(self.map.view(), &self.geo)
    }

    /// The units of work counted with ticks, in the order they were first
    /// ticked (the history records the first three).
    pub fn ticks(&self) -> Vec<UnitCount> {
        ticks::read(self.map.view())
    }

    /// Each listed class slot's high-water mark and live objects by age,
    /// seen at `now_mono_ns` (`CLOCK_MONOTONIC`; for an exited writer, its
    /// last heartbeat). `None` when the writer kept folding its cohorts
    /// during every attempt to read them.
    pub fn ages(&self, slots: &[u32], now_mono_ns: u64) -> Option<Vec<ClassAges>> {
        let h = self.header();
        let (folded, copies) = ages::read(self.map.view(), &self.geo, slots)?;
        Some(
            copies
                .iter()
                .map(|c| ClassAges {
                    peak_live: c.peak_live,
                    peak_unix_ms: c.peak_unix_ms,
                    ages: ages::cohort_ages(
                        c,
                        folded,
                        h.age_epoch_ms,
                        h.age_origin_ns,
                        now_mono_ns,
                    ),
                })
                .collect(),
        )
    }
}

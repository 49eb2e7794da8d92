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

use tracker_core::{ClassSnapshot, ProcessInfo, Snapshot};

use crate::error::ReadError;
use crate::header::{self, HeaderInfo};
use crate::history::{self, History};
use crate::layout::{self, Geometry};
use crate::mapping::ReadMap;
use crate::ring::{self, Event, EventCursor};
use crate::{classes, sys};

/// A mapped, validated segment.
pub struct Segment {
    path: PathBuf,
    file: File,
    map: ReadMap,
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
            file,
            map,
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

    /// Every published class with its slot index, in slot order.
    pub fn classes(&self) -> Vec<(u32, ClassSnapshot)> {
        classes::read(self.map.view(), &self.geo)
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

    /// The live-count history of class slot `slot`, oldest first, with the
    /// totals history. Samples the writer was overwriting while they were
    /// read are left out.
    pub fn history(&self) -> History {
        history::read(self.map.view(), &self.geo)
    }
}

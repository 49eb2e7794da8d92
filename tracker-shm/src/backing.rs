//! The backing protocol: which class and site slots the file has storage
//! for (format 2.1).
//!
//! A segment file is sized to its whole geometry, but only what the
//! process uses takes memory: a file on tmpfs holds no page until one is
//! written or reserved. Writing a page the file system cannot back raises
//! `SIGBUS`, so no slot is written before its pages are reserved.
//!
//! *Writer.* Creation reserves the header, the history totals, the
//! overflow slot and the event ring (and, for a forked child, the slots
//! its parent had claimed). Before it publishes class or site slot `i`,
//! [`Backing::reserve`] reserves (`posix_fallocate`) the pages from the end
//! of what the table has backed to the end of slot `i`, then stores the
//! number of whole slots now backed in [`header::CLASS_BACKED`] or
//! [`header::SITE_BACKED`] with `Release`. When the file system is full
//! the reservation fails: the class folds into the overflow slot, the site
//! is counted as dropped, and the table backs no more (later claims fail
//! at once, without a system call each).
//!
//! *Reader.* [`backed`] loads the count with `Acquire` (pairing with the
//! writer's `Release`) and clamps the table's claimed count to it, so a
//! reader never touches a slot without storage (on a full tmpfs that would
//! be a `SIGBUS`, caught by `crate::fault` but costing the whole read).
//! Segments of version 2.0 back every slot, and say nothing.
//!
//! A private region (no file) backs every slot: its counts are the
//! capacities.

use std::fs::File;
use std::sync::atomic::{fence, Ordering::*};
use std::sync::Mutex;

use crate::layout::{header, Geometry, SITE_SLOT_SIZE};
use crate::mapping::{ReadView, WriteView};
use crate::sys;

/// A table whose slots are backed as they are claimed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    /// The class table, overflow slot excluded (it is backed from the
    /// start).
    Classes,
    /// The site table.
    Sites,
}

impl Table {
    /// Offset, slot size, slots (overflow excluded) and the header word
    /// counting backed slots.
    fn shape(self, g: &Geometry) -> (u64, u64, u64, u64) {
        match self {
            Table::Classes => (
                g.class_offset,
                g.class_slot_size,
                g.class_capacity - 1,
                header::CLASS_BACKED,
            ),
            Table::Sites => (
                g.site_offset,
                SITE_SLOT_SIZE,
                g.site_capacity,
                header::SITE_BACKED,
            ),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The slots of `table` a reader may read (reader).
pub(crate) fn backed(v: ReadView<'_>, g: &Geometry, table: Table) -> u64 {
    let (_, _, capacity, word) = table.shape(g);
    if !g.states_backing {
        return capacity;
    }
    let n = v.u64(word).unwrap_or(0);
    fence(Acquire);
    n.min(capacity)
}

/// The byte ranges creation reserves: the header and history totals, the
/// overflow slot, the ring, and the first `classes` class slots and
/// `sites` site slots (a forked child's inheritance). Page-aligned.
pub(crate) fn initial_ranges(g: &Geometry, classes: u64, sites: u64) -> Vec<(u64, u64)> {
    let page = sys::page_size();
    let down = |x: u64| x / page * page;
    let up = |x: u64| x.div_ceil(page) * page;
    let mut ranges = vec![(0, up(g.class_offset))];
    let overflow = g.class_slot(g.class_capacity - 1);
    ranges.push((down(overflow), up(overflow + g.class_slot_size)));
    if g.ring_capacity > 0 {
        ranges.push((down(g.ring_offset), up(g.total_size)));
    }
    let classes = classes.min(g.class_capacity - 1);
    if classes > 0 {
        ranges.push((g.class_offset, up(g.class_slot(classes))));
    }
    let sites = sites.min(g.site_capacity);
    if sites > 0 {
        ranges.push((down(g.site_offset), up(g.site_slot(sites))));
    }
    ranges
        .into_iter()
        .map(|(a, b)| (a, b.min(g.total_size)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// The writer's side: how far each table is backed.
#[derive(Debug)]
pub(crate) struct Backing {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Byte offset up to which each table is backed.
    end: [u64; 2],
    /// A reservation failed: the table backs no more.
    full: [bool; 2],
}

impl Backing {
    /// The backing of a region whose creation reserved
    /// [`initial_ranges`]`(g, classes, sites)`, and the header words that
    /// say so (writer, before the header is published).
    pub(crate) fn new(v: WriteView<'_>, g: &Geometry, classes: u64, sites: u64) -> Backing {
        let page = sys::page_size();
        let mut end = [0; 2];
        for (table, n) in [(Table::Classes, classes), (Table::Sites, sites)] {
            let (offset, size, capacity, word) = table.shape(g);
            let n = n.min(capacity);
            end[table.index()] = if n == 0 {
                offset
            } else {
                ((offset + n * size).div_ceil(page) * page).min(g.total_size)
            };
            v.word(word).store(
                whole_slots(end[table.index()], offset, size, capacity),
                Relaxed,
            );
        }
        Backing {
            state: Mutex::new(State {
                end,
                full: [false; 2],
            }),
        }
    }

    /// The backing of private memory: every slot (writer).
    pub(crate) fn everything(v: WriteView<'_>, g: &Geometry) -> Backing {
        for table in [Table::Classes, Table::Sites] {
            let (_, _, capacity, word) = table.shape(g);
            v.word(word).store(capacity, Relaxed);
        }
        Backing {
            state: Mutex::new(State {
                end: [u64::MAX; 2],
                full: [false; 2],
            }),
        }
    }

    /// Makes sure slot `index` of `table` has storage in `file`, reserving
    /// pages if needed; false when the file system has no room (writer).
    pub(crate) fn reserve(
        &self,
        v: WriteView<'_>,
        g: &Geometry,
        table: Table,
        index: u64,
        file: Option<&File>,
    ) -> bool {
        let (offset, size, capacity, word) = table.shape(g);
        if index >= capacity {
            return false;
        }
        let needed = offset + (index + 1) * size;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let t = table.index();
        if s.end[t] >= needed {
            return true;
        }
        let Some(file) = file.filter(|_| !s.full[t]) else {
            return false;
        };
        let page = sys::page_size();
        // Whole pages, but never past the file's end (which would grow it).
        let end = (needed.div_ceil(page) * page).min(g.total_size);
        if sys::allocate(file, s.end[t], end - s.end[t]).is_err() {
            s.full[t] = true;
            return false;
        }
        s.end[t] = end;
        v.word(word)
            .store(whole_slots(end, offset, size, capacity), Release);
        true
    }
}

/// Whole slots of `size` bytes from `offset` below `end`, at most
/// `capacity`.
fn whole_slots(end: u64, offset: u64, size: u64, capacity: u64) -> u64 {
    (end.saturating_sub(offset) / size).min(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_header_overflow_ring_and_inheritance() {
        let g = Geometry::with_sites(4096, 512, 96, 512);
        let page = sys::page_size();
        let r = initial_ranges(&g, 0, 0);
        assert_eq!(r[0], (0, g.class_offset));
        assert!(r[1].0 <= g.class_slot(4095) && r[1].1 >= g.site_offset);
        assert_eq!(r[2], (g.ring_offset, g.total_size));
        let total: u64 = r.iter().map(|(a, b)| b - a).sum();
        assert!(total <= g.class_offset + 2 * page + 512 * 32, "{total}");
        // Never past the file's end, so reserving never grows the file.
        let small = Geometry::with_sites(4, 0, 1, 3);
        let r = initial_ranges(&small, 3, 3);
        assert!(r.iter().all(|&(_, b)| b <= small.total_size), "{r:?}");
        let r = initial_ranges(&g, 10, 3);
        assert!(r.contains(&(g.class_offset, (g.class_slot(10)).div_ceil(page) * page)));
        assert!(r.contains(&(g.site_offset, (g.site_slot(3)).div_ceil(page) * page)));
    }

    #[test]
    fn whole_slots_never_pass_the_capacity() {
        assert_eq!(whole_slots(100, 100, 10, 5), 0);
        assert_eq!(whole_slots(129, 100, 10, 5), 2);
        assert_eq!(whole_slots(10_000, 100, 10, 5), 5);
    }
}

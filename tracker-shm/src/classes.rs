//! The class table protocol: claiming a slot and publishing its name
//! (writer), and finding the slots worth reporting (reader).
//!
//! *Writer.* A class's first event claims the next slot index with a
//! `fetch_add` on [`header::CLASS_COUNT`] (the count may pass the capacity:
//! those classes fold into the overflow slot, the last one, and readers
//! clamp). [`publish`] then stores the slot's state
//! [`layout::SLOT_FILLING`], its flags, name length and name (`Relaxed`),
//! and finally [`layout::SLOT_PUBLISHED`] with `Release`. Only then does
//! the writer count into the slot, so a published slot's name never
//! changes again. One writer process claims for each segment; within it,
//! the tracker's own per-class cell makes sure one thread claims per class.
//!
//! *Reader.* [`published_slots`] loads the count (clamped to the capacity),
//! then each slot's state; for a published slot an `Acquire` fence pairs
//! with the writer's `Release` store, so the name read afterwards is the
//! final one. Counters are single atomic words read at any time after:
//! each is monotonic (or a signed balance), and
//! `tracker_core::ClassCounters::totals` copes with words read at slightly
//! different moments.

use std::sync::atomic::{fence, Ordering::*};

use tracker_core::ClassSnapshot;

use crate::layout::{self, class, header, Geometry};
use crate::mapping::{ReadView, WriteView};

/// Publishes `name` with `flags` in the slot at offset `base` (writer).
pub(crate) fn publish(v: WriteView<'_>, base: u64, name: &[u8], flags: u64) {
    v.word(base + class::STATE)
        .store(layout::SLOT_FILLING, Relaxed);
    v.word(base + class::FLAGS).store(flags, Relaxed);
    v.word(base + class::NAME_LEN)
        .store(name.len() as u64, Relaxed);
    v.write_bytes(base + class::NAME, name);
    v.word(base + class::STATE)
        .store(layout::SLOT_PUBLISHED, Release);
}

/// Publishes the overflow slot (writer, before the header is published).
pub(crate) fn publish_overflow(v: WriteView<'_>, g: &Geometry) {
    publish(
        v,
        g.class_slot(overflow_slot(g).into()),
        layout::OVERFLOW_NAME.as_bytes(),
        layout::CLASS_OVERFLOW,
    );
}

/// The overflow slot's index: the last one.
#[inline]
pub(crate) fn overflow_slot(g: &Geometry) -> u32 {
    (g.class_capacity - 1) as u32
}

/// Claims a slot for a class called `name` and publishes it (writer);
/// returns its index, or the overflow slot's when the table is full or
/// `back` cannot give the slot storage (see [`crate::backing`]).
pub(crate) fn claim(
    v: WriteView<'_>,
    g: &Geometry,
    name: &str,
    back: impl FnOnce(u64) -> bool,
) -> u32 {
    let index = v.word(header::CLASS_COUNT).fetch_add(1, Relaxed);
    if index >= g.class_capacity - 1 || !back(index) {
        return fold(v, g);
    }
    let mut name = name.as_bytes().to_vec();
    if name == layout::OVERFLOW_NAME.as_bytes() {
        // A class may be called that (in `builtins`): its qualified name
        // keeps it apart from the overflow slot's.
        name = format!("builtins.{}", layout::OVERFLOW_NAME).into_bytes();
    }
    let mut flags = 0;
    if cut_utf8(&mut name, class::NAME_MAX as usize) {
        flags |= layout::CLASS_TRUNCATED;
        v.word(header::NAMES_TRUNCATED).fetch_add(1, Relaxed);
    }
    publish(v, g.class_slot(index), &name, flags);
    index as u32
}

/// Counts one more class folded into the overflow slot and returns that
/// slot (writer).
pub(crate) fn fold(v: WriteView<'_>, g: &Geometry) -> u32 {
    v.word(header::CLASSES_DROPPED).fetch_add(1, Relaxed);
    overflow_slot(g)
}

/// The slots claimed so far, clamped to the table and to the slots with
/// storage (overflow slot not included).
pub(crate) fn claimed(v: ReadView<'_>, g: &Geometry) -> u64 {
    v.u64(header::CLASS_COUNT)
        .unwrap_or(0)
        .min(g.class_capacity - 1)
        .min(crate::backing::backed(v, g, crate::backing::Table::Classes))
}

/// Cuts `bytes` to at most `max` bytes at a UTF-8 character boundary.
/// Returns whether it cut.
pub(crate) fn cut_utf8(bytes: &mut Vec<u8>, max: usize) -> bool {
    if bytes.len() <= max {
        return false;
    }
    let mut end = max;
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    bytes.truncate(end);
    true
}

/// A class slot readers report.
pub(crate) struct PublishedSlot {
    pub(crate) slot: u32,
    /// Its flags word.
    pub(crate) flags: u64,
    /// It is the overflow slot.
    pub(crate) overflow: bool,
}

/// The class slots readers report: the claimed ones whose name is
/// published, and the overflow slot once a class was folded into it.
pub(crate) fn published_slots(v: ReadView<'_>, geo: &Geometry) -> Vec<PublishedSlot> {
    let used = claimed(v, geo);
    let last = u64::from(overflow_slot(geo));
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

/// Every reported class with its slot index, in slot order (reader).
pub(crate) fn read(v: ReadView<'_>, geo: &Geometry) -> Vec<(u32, ClassSnapshot)> {
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
                let name = v.text(base + class::NAME_LEN, base + class::NAME, class::NAME_MAX);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{SegmentMap, WriteMap};

    #[test]
    fn cut_at_char_boundary() {
        let mut b = "aé".as_bytes().to_vec(); // 3 bytes
        assert!(cut_utf8(&mut b, 2));
        assert_eq!(b, b"a");
        let mut b = b"abc".to_vec();
        assert!(!cut_utf8(&mut b, 3));
    }

    #[test]
    fn claims_fill_the_table_then_fold() {
        let g = Geometry::new(3, 0, 1);
        let seg = SegmentMap::new(WriteMap::private(g.total_size as usize).unwrap(), g);
        let v = seg.view();
        crate::backing::Backing::everything(v, &g);
        publish_overflow(v, &g);
        assert_eq!(claim(v, &g, "a.A", |_| true), 0);
        assert_eq!(claim(v, &g, "a.B", |_| true), 1);
        assert_eq!(
            claim(v, &g, "a.C", |_| true),
            2,
            "the third folds into overflow"
        );
        seg.counters(2).record(tracker_core::EventKind::Attached, 1);
        let names: Vec<String> = read(v.reader(), &g)
            .into_iter()
            .map(|(_, c)| c.name)
            .collect();
        assert_eq!(names, ["a.A", "a.B", layout::OVERFLOW_NAME]);
        assert_eq!(v.reader().u64(header::CLASSES_DROPPED), Some(1));
    }

    #[test]
    fn a_slot_without_storage_folds_and_is_never_read() {
        let g = Geometry::new(8, 0, 1);
        let seg = SegmentMap::new(WriteMap::private(g.total_size as usize).unwrap(), g);
        let v = seg.view();
        publish_overflow(v, &g);
        // The file backs slot 0 only.
        v.word(header::CLASS_BACKED).store(1, Relaxed);
        assert_eq!(claim(v, &g, "a.A", |i| i < 1), 0);
        assert_eq!(claim(v, &g, "a.B", |i| i < 1), 7, "no storage: overflow");
        assert_eq!(v.reader().u64(header::CLASSES_DROPPED), Some(1));
        // The count says two; a reader stops at what is backed.
        assert_eq!(claimed(v.reader(), &g), 1);
        seg.counters(7).record(tracker_core::EventKind::Attached, 1);
        let names: Vec<String> = read(v.reader(), &g)
            .into_iter()
            .map(|(_, c)| c.name)
            .collect();
        assert_eq!(names, ["a.A", layout::OVERFLOW_NAME]);
        // A version 2.0 segment states nothing and backs every slot.
        let old = Geometry {
            states_backing: false,
            ..g
        };
        assert_eq!(claimed(v.reader(), &old), 2);
    }
}

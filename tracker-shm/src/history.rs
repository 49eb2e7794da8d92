//! The history: live counts sampled periodically by the writer's sampler
//! thread, read by readers at any time.
//!
//! *Writer* ([`sample`]). Sample number `n` lives in ring slot
//! `n mod capacity`, in every class slot (one u32 per sample) and in the
//! header's totals (time, live, created, destroyed). One thread samples.
//! With `head` = [`header::HISTORY_HEAD`], it writes sample `head`
//! (`Relaxed`), then stores `head + 1` with `Release`.
//!
//! *Reader* ([`read`]). It loads the head (then an `Acquire` fence, pairing
//! with the writer's `Release` store: every sample below the head is fully
//! written), copies the samples, and after another `Acquire` fence loads
//! the head again. While it copied, the writer may have been writing sample
//! `head` — into the slot of sample `head - capacity` — and, if the second
//! load is larger, every sample up to it: [`history_window`] keeps only the
//! samples whose slots the writer cannot have touched. Every access is
//! atomic, so a sample read while rewritten is dropped, never undefined.

use std::sync::atomic::{fence, Ordering::*};

use crate::classes::{self, PublishedSlot};
use crate::layout::{self, class, header, Geometry};
use crate::mapping::{ReadView, WriteView};

/// Writes one sample of every claimed class and the totals, at `now_ns`
/// (writer; one thread only).
pub(crate) fn sample(v: WriteView<'_>, g: &Geometry, now_ns: u64) {
    let head = v.word(header::HISTORY_HEAD).load(Relaxed);
    let index = head % g.history_capacity;
    let used = classes::claimed(v.reader(), g);
    let (mut live, mut created, mut destroyed) = (0u64, 0u64, 0u64);
    for slot in (0..used).chain([u64::from(classes::overflow_slot(g))]) {
        let base = g.class_slot(slot);
        let t = v.counters(base + class::COUNTERS).totals();
        let (l, c, d) = (t.live(), t.created, t.destroyed);
        v.word32(base + class::HISTORY + 4 * index)
            .store(l.min(u64::from(u32::MAX)) as u32, Relaxed);
        live += l;
        created += c;
        destroyed += d;
    }
    let at = header::HISTORY_TOTALS + index * 8 * layout::HISTORY_TOTAL_WORDS;
    for (i, value) in [now_ns, live, created, destroyed].into_iter().enumerate() {
        v.word(at + 8 * i as u64).store(value, Relaxed);
    }
    v.word(header::HISTORY_HEAD).store(head + 1, Release);
}

/// The history kept in a segment, oldest sample first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Sample times, `CLOCK_MONOTONIC` ns.
    pub times_ns: Vec<u64>,
    /// Total live objects per sample.
    pub total_live: Vec<u64>,
    /// Live count per sample for each class slot (same order as
    /// [`crate::Segment::classes`]).
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

/// Reads the history (reader): the totals and every reported class's
/// series, oldest first, without samples the writer was rewriting.
pub(crate) fn read(v: ReadView<'_>, geo: &Geometry) -> History {
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
    for PublishedSlot { slot, .. } in classes::published_slots(v, geo) {
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
    use super::*;
    use crate::mapping::{SegmentMap, WriteMap};

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

    #[test]
    fn samples_read_back_in_order() {
        let g = Geometry::new(4, 0, 4);
        let seg = SegmentMap::new(WriteMap::private(g.total_size as usize).unwrap(), g);
        let v = seg.view();
        classes::publish_overflow(v, &g);
        let slot = classes::claim(v, &g, "m.C");
        for (n, time) in (1..=6).zip(100..) {
            seg.counters(slot)
                .record(tracker_core::EventKind::Attached, n);
            sample(v, &g, time);
        }
        let h = read(v.reader(), &g);
        // 6 samples in 4 slots: the oldest slot is the next to be
        // rewritten, so 3 are kept.
        assert_eq!(h.times_ns, [103, 104, 105]);
        assert_eq!(h.total_live, [4, 5, 6]);
        assert_eq!(h.per_class, [(slot, vec![4, 5, 6])]);
    }
}

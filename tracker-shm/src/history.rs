//! The history: live counts sampled periodically by the writer's sampler
//! thread, in three tiers, read by readers at any time.
//!
//! *Writer* ([`sample`]). Tier 0 takes every sample, tier 1 every
//! [`layout::TIER_FACTOR`]-th, tier 2 every `TIER_FACTOR²`-th (with the
//! default period: 1 s, 1 min and 1 h). Sample number `n` of a tier lives
//! in that tier's ring slot `n mod capacity`, in every class slot (one u32
//! per sample) and in the totals (time, live, created, destroyed, resident
//! memory, the first three tick counts). One thread samples. With `head`
//! the tier's head word ([`header::HISTORY_HEAD`], [`header::TIER1_HEAD`],
//! [`header::TIER2_HEAD`]), it writes sample `head` (`Relaxed`), then
//! stores `head + 1` with `Release`. The sampler also stamps each class's
//! high-water mark (see [`crate::ages`]).
//!
//! *Reader* ([`read`]). For one tier, it loads the head (then an `Acquire`
//! fence, pairing with the writer's `Release` store: every sample below the
//! head is fully written), copies the samples, and after another `Acquire`
//! fence loads the head again. While it copied, the writer may have been
//! writing sample `head` — into the slot of sample `head - capacity` — and,
//! if the second load is larger, every sample up to it: [`history_window`]
//! keeps only the samples whose slots the writer cannot have touched. Every
//! access is atomic, so a sample read while rewritten is dropped, never
//! undefined.

use std::sync::atomic::{fence, Ordering::*};

use crate::classes::{self, PublishedSlot};
use crate::layout::{self, header, total, Geometry};
use crate::mapping::{ReadView, SegmentMap};

/// The head word of each tier.
const HEADS: [u64; layout::HISTORY_TIERS as usize] =
    [header::HISTORY_HEAD, header::TIER1_HEAD, header::TIER2_HEAD];

/// What the sampler measured besides the counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Measures {
    /// `CLOCK_MONOTONIC` ns.
    pub(crate) now_ns: u64,
    /// Unix ms, for peak stamps.
    pub(crate) now_unix_ms: u64,
    /// Resident set size, bytes (0 if unknown).
    pub(crate) rss_bytes: u64,
}

/// Writes one sample of every claimed class and the totals into tier 0,
/// and into the coarser tiers whose turn it is (writer; one thread only).
pub(crate) fn sample(seg: &SegmentMap, m: Measures) {
    let v = seg.view();
    let g = seg.geo();
    let head0 = v.word(header::HISTORY_HEAD).load(Relaxed);
    // The tiers this sample goes to, and the index in each.
    let mut tiers: Vec<(u64, u64)> = vec![(0, head0 % g.history_capacity)];
    let mut every = 1u64;
    for (tier, &head_word) in HEADS.iter().enumerate().skip(1) {
        every = every.saturating_mul(layout::TIER_FACTOR);
        if (head0 + 1) % every == 0 {
            let head = v.word(head_word).load(Relaxed);
            tiers.push((tier as u64, head % g.history_capacity));
        }
    }
    let used = classes::claimed(v.reader(), g);
    let (mut live, mut created, mut destroyed) = (0u64, 0u64, 0u64);
    for slot in (0..used).chain([u64::from(classes::overflow_slot(g))]) {
        let base = g.class_slot(slot);
        let t = seg.counters(slot as u32).totals();
        let (l, c, d) = (t.live(), t.created, t.destroyed);
        for &(tier, index) in &tiers {
            v.word32(base + g.class_history(tier, index))
                .store(l.min(u64::from(u32::MAX)) as u32, Relaxed);
        }
        crate::ages::stamp_peak(seg, slot as u32, l, m.now_unix_ms);
        live = live.saturating_add(l);
        created = created.saturating_add(c);
        destroyed = destroyed.saturating_add(d);
    }
    let ticks = crate::ticks::first_counts(v);
    v.word(header::RSS_BYTES).store(m.rss_bytes, Relaxed);
    for &(tier, index) in &tiers {
        let at = g.total_sample(tier, index);
        let mut words = [0u64; layout::HISTORY_TOTAL_WORDS as usize];
        words[total::TIME_NS as usize] = m.now_ns;
        words[total::LIVE as usize] = live;
        words[total::CREATED as usize] = created;
        words[total::DESTROYED as usize] = destroyed;
        words[total::RSS as usize] = m.rss_bytes;
        for (i, t) in ticks.iter().enumerate() {
            words[total::TICKS as usize + i] = *t;
        }
        for (i, value) in words.into_iter().enumerate() {
            v.word(at + 8 * i as u64).store(value, Relaxed);
        }
    }
    for &(tier, _) in tiers.iter().rev() {
        let head = v.word(HEADS[tier as usize]);
        head.store(head.load(Relaxed) + 1, Release);
    }
}

/// One tier of the history kept in a segment, oldest sample first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The tier (0: every sample, 1 and 2: ever coarser).
    pub tier: u8,
    /// Sample times, `CLOCK_MONOTONIC` ns.
    pub times_ns: Vec<u64>,
    /// Total live objects per sample.
    pub total_live: Vec<u64>,
    /// Resident memory of the process per sample, bytes (0: unknown).
    pub rss_bytes: Vec<u64>,
    /// Counts of the first three tick units per sample (see
    /// [`crate::Segment::ticks`] for their names).
    pub ticks: Vec<[u64; layout::total::TICK_UNITS as usize]>,
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

/// Reads one tier of the history (reader): the totals and every reported
/// class's series, oldest first, without samples the writer was
/// rewriting. A tier past the last reads empty.
pub(crate) fn read(v: ReadView<'_>, geo: &Geometry, tier: u8) -> History {
    let mut h = History {
        tier,
        ..History::default()
    };
    let Some(&head_word) = HEADS.get(usize::from(tier)) else {
        return h;
    };
    let tier = u64::from(tier);
    let head = v.u64(head_word).unwrap_or(0);
    fence(Acquire);
    let cap = geo.history_capacity;
    let (first, _) = history_window(head, head, cap);
    let indices: Vec<u64> = (first..head).map(|i| i % cap).collect();
    for &i in &indices {
        let at = geo.total_sample(tier, i);
        let word = |w: u64| v.u64(at + 8 * w).unwrap_or(0);
        h.times_ns.push(word(total::TIME_NS));
        h.total_live.push(word(total::LIVE));
        h.rss_bytes.push(word(total::RSS));
        h.ticks
            .push(std::array::from_fn(|u| word(total::TICKS + u as u64)));
    }
    for PublishedSlot { slot, .. } in classes::published_slots(v, geo) {
        let base = geo.class_slot(u64::from(slot));
        let series = indices
            .iter()
            .map(|&i| v.u32(base + geo.class_history(tier, i)).unwrap_or(0))
            .collect();
        h.per_class.push((slot, series));
    }
    // Drop samples the writer may have overwritten during the read.
    fence(Acquire);
    let head2 = v.u64(head_word).unwrap_or(0);
    let (keep_from, _) = history_window(head, head2, cap);
    let stale = keep_from.saturating_sub(first).min(indices.len() as u64) as usize;
    if stale > 0 {
        h.times_ns.drain(..stale);
        h.total_live.drain(..stale);
        h.rss_bytes.drain(..stale);
        h.ticks.drain(..stale);
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
        crate::backing::Backing::everything(v, &g);
        classes::publish_overflow(v, &g);
        let slot = classes::claim(v, &g, "m.C", |_| true);
        for (n, time) in (1..=6).zip(100..) {
            seg.counters(slot)
                .record(tracker_core::EventKind::Attached, n);
            sample(
                &seg,
                Measures {
                    now_ns: time,
                    now_unix_ms: 0,
                    rss_bytes: 1000 + time,
                },
            );
        }
        let h = read(v.reader(), &g, 0);
        // 6 samples in 4 slots: the oldest slot is the next to be
        // rewritten, so 3 are kept.
        assert_eq!(h.times_ns, [103, 104, 105]);
        assert_eq!(h.total_live, [4, 5, 6]);
        assert_eq!(h.per_class, [(slot, vec![4, 5, 6])]);
        assert_eq!(h.rss_bytes, [1103, 1104, 1105]);
        assert!(read(v.reader(), &g, 1).times_ns.is_empty());
    }

    #[test]
    fn coarser_tiers_take_every_factor_th_sample() {
        let g = Geometry::new(4, 0, 8);
        let seg = SegmentMap::new(WriteMap::private(g.total_size as usize).unwrap(), g);
        let v = seg.view();
        crate::backing::Backing::everything(v, &g);
        classes::publish_overflow(v, &g);
        let slot = classes::claim(v, &g, "m.C", |_| true);
        let f = layout::TIER_FACTOR;
        for n in 1..=(3 * f) {
            seg.counters(slot)
                .record(tracker_core::EventKind::Attached, n);
            let m = Measures {
                now_ns: n,
                ..Measures::default()
            };
            sample(&seg, m);
        }
        let t1 = read(v.reader(), &g, 1);
        assert_eq!(t1.times_ns, [f, 2 * f, 3 * f]);
        assert_eq!(
            t1.per_class,
            [(slot, vec![f as u32, 2 * f as u32, 3 * f as u32])]
        );
        assert_eq!(read(v.reader(), &g, 0).times_ns.len(), 7);
        assert!(read(v.reader(), &g, 2).times_ns.is_empty());
        assert!(read(v.reader(), &g, 3).times_ns.is_empty());
        // The peak is stamped from the samples.
        assert_eq!(seg.ages(slot).peak_live.load(Relaxed), 3 * f);
    }
}

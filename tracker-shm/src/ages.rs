//! The age protocol: each class slot's cohorts (`tracker_core::age`) and
//! its high-water mark.
//!
//! *Writer.* Only the serialised lane (the thread holding the GIL) counts
//! births and deaths into cohorts and raises the peak, with plain loads and
//! stores. When an object born after [`header::AGE_FOLDED`] is attached
//! (the age clock has moved on), that same thread folds every claimed
//! slot's cohorts ([`fold_all`]) before it counts, inside a sequence
//! bracket: [`header::AGE_SEQ`] is made odd, a
//! `Release` fence follows, the cohorts move, `AGE_FOLDED` takes the new
//! epoch, and `AGE_SEQ` becomes even again with `Release`. Objects counted
//! from other threads (the shared lane) have no age: readers see them as
//! live objects outside every cohort. The sampler stamps a peak with the
//! time of the first sample that sees it.
//!
//! *Reader* ([`read`]). Loads `AGE_SEQ`, then an `Acquire` fence (odd: a fold is
//! under way, try again), copies `AGE_FOLDED` and the cohorts, issues an
//! `Acquire` fence and loads `AGE_SEQ` again: if it changed, a fold moved
//! counts meanwhile and the copy is retried (a few times, then given up:
//! ages are then not reported). If any copied word was written by the
//! fold, the fence pairs with the writer's `Release` fence and the second
//! load sees the odd or a later value. Counting outside folds changes one
//! word at a time, which a copy may or may not include: each cohort is off
//! by at most the objects born or dying while it is read.

// A measurement build (feature `bare-counts`) leaves the writer's
// per-object counting out, and with it the functions below that do it.
#![cfg_attr(feature = "bare-counts", allow(dead_code))]

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering::*};

use tracker_core::age::{self, Ages, Cohorts, Epoch, COHORTS};
use tracker_core::ClassSnapshot;

use crate::classes;
use crate::layout::{class, header, Geometry};
use crate::mapping::{ReadView, SegmentMap};

/// A class slot's words from [`class::COUNTERS`] to the end of its
/// cohorts: all the hot path writes.
#[repr(C)]
pub(crate) struct SlotHot {
    /// The counters (`tracker_core::ClassCounters`).
    pub(crate) counters: tracker_core::ClassCounters,
    /// The peak and the cohorts.
    pub(crate) ages: SlotAges,
}

const _: () = assert!(
    class::COUNTERS + std::mem::size_of::<tracker_core::ClassCounters>() as u64 == class::PEAK_LIVE
);

/// A class slot's words from [`class::PEAK_LIVE`] to the end of its
/// cohorts, as the writer's hot path uses them.
#[repr(C)]
pub(crate) struct SlotAges {
    /// Highest live count seen.
    pub(crate) peak_live: AtomicU64,
    /// Unix ms of the sample that first saw the peak.
    pub(crate) peak_unix_ms: AtomicU64,
    /// The peak that `peak_unix_ms` refers to.
    pub(crate) peak_stamped: AtomicU64,
    _reserved: [AtomicU64; 2],
    /// `(born, died)` per cohort.
    cohorts: [[AtomicU32; 2]; COHORTS],
}

const _: () = assert!(class::PEAK_UNIX_MS == class::PEAK_LIVE + 8);
const _: () = assert!(class::PEAK_STAMPED == class::PEAK_LIVE + 16);
const _: () = assert!(class::COHORTS == class::PEAK_LIVE + 40);
const _: () = assert!(std::mem::size_of::<SlotAges>() as u64 == 40 + 8 * COHORTS as u64);

impl Cohorts for SlotAges {
    #[inline(always)]
    fn born(&self, i: usize) -> &AtomicU32 {
        &self.cohorts[i][0]
    }
    #[inline(always)]
    fn died(&self, i: usize) -> &AtomicU32 {
        &self.cohorts[i][1]
    }
}

/// The cohorts' fold epoch, folding first when the clock has moved on
/// (writer, serialised lane).
#[inline]
pub(crate) fn folded(seg: &SegmentMap) -> Epoch {
    let f = seg.header_word(header::AGE_FOLDED).load(Relaxed) as Epoch;
    let now = age::now();
    if now > f {
        fold_all(seg, f, now);
        return now;
    }
    f
}

/// Folds every claimed slot's cohorts from `from` to `to` (writer,
/// serialised lane).
#[cold]
#[inline(never)]
fn fold_all(seg: &SegmentMap, from: Epoch, to: Epoch) {
    let g = seg.geo();
    let seq = seg.header_word(header::AGE_SEQ);
    let s = seq.load(Relaxed);
    seq.store(s | 1, Relaxed);
    fence(Release);
    let used = classes::claimed(seg.view().reader(), g);
    for slot in (0..used).chain([u64::from(classes::overflow_slot(g))]) {
        age::fold(seg.ages(slot as u32), from, to);
    }
    seg.header_word(header::AGE_FOLDED)
        .store(u64::from(to), Relaxed);
    seq.store((s | 1) + 1, Release);
}

/// Counts an attach (birth epoch `born`) in `hot`'s cohorts and raises its
/// peak to the serialised lane's live count, the attach already counted
/// (writer, serialised lane).
///
/// The fold check rides on the birth's routing: an object born in one of
/// the fold epoch's 8 finest epochs is counted there at once, whatever the
/// clock says now (routing is relative to the fold epoch, which readers
/// copy); the first one born after the fold epoch, or one born long
/// before it, takes [`attached_elsewhere`], which folds if the clock has
/// moved on. So the cohorts fold at the first birth of a new epoch, with
/// one comparison per attach and no read of the clock.
#[inline(always)]
pub(crate) fn attached(seg: &SegmentMap, hot: &SlotHot, born: Epoch) {
    let f = seg.header_word(header::AGE_FOLDED).load(Relaxed) as Epoch;
    if !age::count_recent_birth(&hot.ages, f, born) {
        // The whole rest of the attach, so nothing is kept across the call.
        return attached_elsewhere(seg, hot, born);
    }
    raise_peak(hot);
}

/// Raises `hot`'s peak to the serialised lane's live count (writer,
/// serialised lane).
#[inline(always)]
fn raise_peak(hot: &SlotHot) {
    // Read here rather than passed in: a value computed before the birth
    // is counted would be held across the fold check's call (spilled to
    // the stack on the common path).
    let live = hot.counters.serialized_live();
    if live > hot.ages.peak_live.load(Relaxed) {
        hot.ages.peak_live.store(live, Relaxed);
    }
}

/// [`attached`]'s birth when the finest cohorts of the fold do not hold
/// it: folds if the clock has moved on, then routes it.
#[cold]
#[inline(never)]
fn attached_elsewhere(seg: &SegmentMap, hot: &SlotHot, born: Epoch) {
    let f = folded(seg);
    age::count_birth(&hot.ages, f, born);
    raise_peak(hot);
}

/// Counts a detach or destroy of an object born in `born` (writer,
/// serialised lane). No fold is needed: the object was counted at attach
/// with the cohorts folded to at least its birth epoch, and routing is
/// relative to the fold epoch, whatever the clock says now.
#[inline(always)]
pub(crate) fn left(seg: &SegmentMap, a: &SlotAges, born: Epoch) {
    let f = seg.header_word(header::AGE_FOLDED).load(Relaxed) as Epoch;
    age::count_death(a, f, born);
}

/// Raises `slot`'s peak to `live` if it is higher and stamps a new peak
/// with `now_unix_ms` (sampler; the peak word may also be raised
/// concurrently by the serialised lane, whose higher value then wins at the
/// next sample).
pub(crate) fn stamp_peak(seg: &SegmentMap, slot: u32, live: u64, now_unix_ms: u64) {
    let a = seg.ages(slot);
    let peak = a.peak_live.fetch_max(live, Relaxed).max(live);
    if peak != a.peak_stamped.load(Relaxed) {
        a.peak_stamped.store(peak, Relaxed);
        a.peak_unix_ms.store(now_unix_ms, Relaxed);
    }
}

/// One slot's peak and cohorts as a reader copied them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotAgeCopy {
    pub(crate) peak_live: u64,
    pub(crate) peak_unix_ms: u64,
    pub(crate) cohorts: [(u32, u32); COHORTS],
}

impl Default for SlotAgeCopy {
    fn default() -> Self {
        SlotAgeCopy {
            peak_live: 0,
            peak_unix_ms: 0,
            cohorts: [(0, 0); COHORTS],
        }
    }
}

/// Tries this many times to copy the cohorts between two folds.
const READ_ATTEMPTS: usize = 16;

/// The fold epoch and each listed slot's ages (reader), or `None` when
/// every attempt met a fold (or the words are out of bounds).
pub(crate) fn read(
    v: ReadView<'_>,
    g: &Geometry,
    slots: &[u32],
) -> Option<(Epoch, Vec<SlotAgeCopy>)> {
    for _ in 0..READ_ATTEMPTS {
        let s1 = v.u64(header::AGE_SEQ)?;
        fence(Acquire);
        if s1 & 1 == 1 {
            std::thread::yield_now();
            continue;
        }
        let f = v.u64(header::AGE_FOLDED)?;
        let mut out = Vec::with_capacity(slots.len());
        for &slot in slots {
            let base = g.class_slot(u64::from(slot));
            // Born and died of each cohort, in turn.
            let words: &[AtomicU32; 2 * COHORTS] = v.u32s(base + class::COHORTS)?;
            let mut cohorts = [(0, 0); COHORTS];
            for (c, pair) in cohorts.iter_mut().zip(words.chunks_exact(2)) {
                *c = (pair[0].load(Relaxed), pair[1].load(Relaxed));
            }
            out.push(SlotAgeCopy {
                peak_live: v.u64(base + class::PEAK_LIVE)?,
                peak_unix_ms: v.u64(base + class::PEAK_UNIX_MS)?,
                cohorts,
            });
        }
        fence(Acquire);
        if v.u64(header::AGE_SEQ)? == s1 {
            return Some((u32::try_from(f).unwrap_or(u32::MAX), out));
        }
    }
    None
}

/// The cohorts of one copied slot as ages, seen at `now_mono_ns`.
pub(crate) fn cohort_ages(
    copy: &SlotAgeCopy,
    folded: Epoch,
    epoch_ms: u64,
    origin_ns: u64,
    now_mono_ns: u64,
) -> Ages {
    let now_ms = now_mono_ns.saturating_sub(origin_ns) / 1_000_000;
    Ages::from_cohorts(&copy.cohorts, folded, epoch_ms.max(1), now_ms)
}

/// Adds each class's high-water mark and ages, as of the writer's last
/// heartbeat, to records read from the same segment (reader).
pub(crate) fn annotate(v: ReadView<'_>, g: &Geometry, classes: &mut [(u32, ClassSnapshot)]) {
    let slots: Vec<u32> = classes.iter().map(|(s, _)| *s).collect();
    let Some((folded, copies)) = read(v, g, &slots) else {
        return;
    };
    let word = |off| v.u64(off).unwrap_or(0);
    let (epoch_ms, origin, at) = (
        word(header::AGE_EPOCH_MS),
        word(header::AGE_ORIGIN_NS),
        word(header::HEARTBEAT_NS),
    );
    for ((_, c), copy) in classes.iter_mut().zip(copies) {
        c.peak_live = Some(copy.peak_live.max(c.live));
        c.peak_unix_ms = (copy.peak_unix_ms != 0).then_some(copy.peak_unix_ms);
        c.ages = Some(cohort_ages(&copy, folded, epoch_ms, origin, at));
    }
}

//! Ages of live objects: a coarse process clock, and per-class *cohorts*
//! that count live objects by when they were born, finely for the young
//! and ever more coarsely for the old.
//!
//! **Clock.** Time is cut into *epochs* of [`epoch_ms`] milliseconds
//! (4 s unless `PYTRACKER_AGE_EPOCH_MS` says otherwise when the clock
//! starts), counted from [`origin_mono_ns`]. [`now`] is the current epoch:
//! one load, no clock read. It advances only when [`advance`] is called,
//! which every `ShmTracker` sampler does each period. An object records
//! the epoch it was born in (a Python `Trackable` keeps it in its own
//! fields), so its age at destruction needs no look-up: objects that
//! existed before the clock started count as born when it started.
//!
//! **Cohorts.** A class's cohorts are [`LEVELS`] levels of [`UNITS`]
//! counters each, plus one for the *ancient*. A level-`k` *unit* is
//! `4^k` consecutive epochs (unit `u` holds epochs `u·4^k ..
//! (u+1)·4^k`). With the cohorts *folded to* epoch `F`, level 0 holds
//! the units (epochs) `F-7 ..= F`, and level `k+1` holds the 8 units that
//! end just below level `k`'s: its highest unit is `H(k+1) = ⌊(H(k) -
//! 8) / 4⌋` with `H(0) = F`. The highest unit of a level may begin before
//! the lowest epoch of the finer level: it then holds only the epochs
//! below that one. Whatever is older than level 7's units (about 24 days
//! with 4 s epochs) is ancient. So a cohort is never wider than about
//! two thirds of its youngest age, and a class's cohorts take 65 counters.
//!
//! Each counter is a pair of `u32`: births and deaths of objects born in
//! its epochs. They wrap around; `born - died` (wrapping) is the number of
//! live objects, exact while fewer than 2^32 are alive. An object is
//! counted where its birth epoch falls ([`route`]) at attach and again at
//! detach or destroy; when `F` moves on ([`fold`]), the counters of units
//! that leave a level are added into the coarser unit that takes their
//! epochs over. Folding and counting are done by the same thread, the
//! holder of the lock that serialises the tracker (the GIL), so counts are
//! moved, never lost.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::OnceLock;

/// An epoch number (see the module documentation).
pub type Epoch = u32;

/// Levels of cohorts.
pub const LEVELS: usize = 8;
/// Units per level.
pub const UNITS: usize = 8;
/// log2 of the growth between levels: a level-`k+1` unit is 4 level-`k`
/// units.
pub const LEVEL_SHIFT: u32 = 2;
/// Counter index of the ancient cohort.
pub const ANCIENT: usize = LEVELS * UNITS;
/// Counters (pairs of `u32`: born, died) per class.
pub const COHORTS: usize = ANCIENT + 1;

/// Epoch length when `PYTRACKER_AGE_EPOCH_MS` is not set.
pub const DEFAULT_EPOCH_MS: u64 = 4000;

static NOW: AtomicU32 = AtomicU32::new(0);

struct Clock {
    origin_mono_ns: u64,
    epoch_ms: u64,
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

/// Starts the clock (once per process; later calls do nothing) at
/// `now_mono_ns` (`CLOCK_MONOTONIC`).
pub fn start(now_mono_ns: u64) {
    CLOCK.get_or_init(|| Clock {
        origin_mono_ns: now_mono_ns,
        epoch_ms: std::env::var("PYTRACKER_AGE_EPOCH_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| (1..=86_400_000).contains(&ms))
            .unwrap_or(DEFAULT_EPOCH_MS),
    });
}

/// `CLOCK_MONOTONIC` nanoseconds at epoch 0 (0 before [`start`]).
pub fn origin_mono_ns() -> u64 {
    CLOCK.get().map_or(0, |c| c.origin_mono_ns)
}

/// Milliseconds per epoch (the default before [`start`]).
pub fn epoch_ms() -> u64 {
    CLOCK.get().map_or(DEFAULT_EPOCH_MS, |c| c.epoch_ms)
}

/// The current epoch: one relaxed load.
#[inline(always)]
pub fn now() -> Epoch {
    NOW.load(Relaxed)
}

/// Moves the clock to `now_mono_ns` (never backwards). Called by the
/// samplers; does nothing before [`start`].
pub fn advance(now_mono_ns: u64) {
    if let Some(c) = CLOCK.get() {
        let e = now_mono_ns.saturating_sub(c.origin_mono_ns) / (c.epoch_ms * 1_000_000);
        NOW.fetch_max(e.min(u64::from(u32::MAX)) as u32, Relaxed);
    }
}

/// Highest unit of each level when folded to `f` (negative: the level
/// holds nothing yet).
#[inline]
fn highs(f: Epoch) -> [i64; LEVELS] {
    let mut h = [0i64; LEVELS];
    h[0] = i64::from(f);
    for k in 1..LEVELS {
        // Arithmetic shift: floor division, also for negative values.
        h[k] = (h[k - 1] - UNITS as i64) >> LEVEL_SHIFT;
    }
    h
}

/// The counter that holds objects born in epoch `born` when the cohorts
/// are folded to `f` (`born > f` counts as `f`).
#[inline(always)]
pub fn route(f: Epoch, born: Epoch) -> usize {
    match finest(f, born) {
        Some(i) => i,
        None => route_old(f, born),
    }
}

/// The level-0 counter of a birth in epoch `born` when the cohorts are
/// folded to `f`, if level 0 holds it (`f - 7 <= born <= f`).
#[inline(always)]
fn finest(f: Epoch, born: Epoch) -> Option<usize> {
    // Wrapping: a birth after `f` (the clock moved on since the fold, or an
    // object told by hand) makes a large difference and is not held.
    (f.wrapping_sub(born) < UNITS as u32).then_some(born as usize % UNITS)
}

#[cold]
fn route_old(f: Epoch, born: Epoch) -> usize {
    let born = born.min(f);
    if f - born < UNITS as u32 {
        return born as usize % UNITS;
    }
    let h = highs(f);
    let mut u = i64::from(born);
    for (k, &hk) in h.iter().enumerate() {
        if u > hk - UNITS as i64 {
            return k * UNITS + (u as usize % UNITS);
        }
        u >>= LEVEL_SHIFT;
    }
    ANCIENT
}

/// The epochs counter `index` holds when folded to `f`: `start..end`
/// (empty when it holds none). The ancient counter starts at 0.
pub fn span(f: Epoch, index: usize) -> (u64, u64) {
    let h = highs(f);
    if index >= ANCIENT {
        let k = LEVELS - 1;
        let low = h[k] - (UNITS as i64 - 1);
        let end = (low.max(0) as u64) << (LEVEL_SHIFT as usize * k);
        return (0, end);
    }
    let (k, slot) = (index / UNITS, (index % UNITS) as i64);
    if h[k] < 0 {
        return (0, 0);
    }
    // The unit of this level's window that lives in `slot`.
    let u = h[k] - (h[k] - slot).rem_euclid(UNITS as i64);
    if u < 0 {
        return (0, 0);
    }
    let shift = LEVEL_SHIFT as usize * k;
    let start = (u as u64) << shift;
    let mut end = ((u as u64) + 1) << shift;
    if k > 0 {
        // The finer level holds the epochs from its lowest unit on.
        let finer_low = (h[k - 1] - (UNITS as i64 - 1)).max(0) as u64;
        end = end.min(finer_low << (LEVEL_SHIFT as usize * (k - 1)));
    }
    (start, end.max(start))
}

/// A class's cohort counters: `COHORTS` pairs (born, died).
pub trait Cohorts {
    /// The births counter of cohort `i`.
    fn born(&self, i: usize) -> &AtomicU32;
    /// The deaths counter of cohort `i`.
    fn died(&self, i: usize) -> &AtomicU32;
}

/// Counts a birth in epoch `born` (cohorts folded to `f`); serialised
/// callers only.
#[inline(always)]
pub fn count_birth(c: &impl Cohorts, f: Epoch, born: Epoch) {
    bump(c.born(route(f, born)));
}

/// Counts a birth in epoch `born` if the finest level of cohorts folded to
/// `f` holds it (`f - 7 <= born <= f`), and says whether it did. A birth
/// after `f` (the clock has moved on since the last fold) or long before
/// it (an object attached long after it was born) is left to the caller,
/// who folds first or routes it with [`count_birth`].
#[inline(always)]
pub fn count_recent_birth(c: &impl Cohorts, f: Epoch, born: Epoch) -> bool {
    let Some(i) = finest(f, born) else {
        return false;
    };
    bump(c.born(i));
    true
}

/// Counts the death (or detach) of an object born in epoch `born`.
#[inline(always)]
pub fn count_death(c: &impl Cohorts, f: Epoch, born: Epoch) {
    bump(c.died(route(f, born)));
}

#[inline(always)]
fn bump(w: &AtomicU32) {
    w.store(w.load(Relaxed).wrapping_add(1), Relaxed);
}

/// Moves a class's counters from being folded to `from` to being folded
/// to `to` (`to > from`); serialised with the counting.
pub fn fold(c: &impl Cohorts, from: Epoch, to: Epoch) {
    if to <= from {
        return;
    }
    let (old, new) = (highs(from), highs(to));
    // Coarsest level first: a unit that leaves level k goes to a coarser
    // level, whose window is already the new one there, with the slots of
    // its own departed units emptied.
    for k in (0..LEVELS).rev() {
        if old[k] == new[k] || old[k] < 0 {
            continue;
        }
        let new_low = new[k] - (UNITS as i64 - 1);
        let old_low = (old[k] - (UNITS as i64 - 1)).max(0);
        for u in old_low..=old[k] {
            if u >= new_low {
                continue;
            }
            let i = k * UNITS + (u as usize % UNITS);
            let epoch = (u as u64) << (LEVEL_SHIFT as usize * k);
            let dest = route(to, epoch.min(u64::from(to)) as Epoch);
            let (b, d) = (c.born(i).load(Relaxed), c.died(i).load(Relaxed));
            c.born(i).store(0, Relaxed);
            c.died(i).store(0, Relaxed);
            if dest != i {
                let (db, dd) = (c.born(dest), c.died(dest));
                db.store(db.load(Relaxed).wrapping_add(b), Relaxed);
                dd.store(dd.load(Relaxed).wrapping_add(d), Relaxed);
            }
        }
    }
}

/// Age-bucket boundaries that readers report, in seconds: the first is at
/// most 5 s and the last several days.
pub const BUCKET_BOUNDS_S: [u64; 10] = [
    5,
    15,
    60,
    5 * 60,
    15 * 60,
    3600,
    4 * 3600,
    12 * 3600,
    86_400,
    3 * 86_400,
];

/// Live objects of one class by age, as a reader sees them.
///
/// Ages are measured at the writer's last heartbeat, and an object counts
/// with the youngest age its cohort allows: "older than" answers are never
/// overstated, and may leave out objects of the cohort that straddles the
/// threshold (at most about two thirds of the threshold wide).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ages {
    /// `buckets[0]`: objects that may be younger than
    /// `BUCKET_BOUNDS_S[0]`; `buckets[i]` (i ≥ 1): objects at least
    /// `BUCKET_BOUNDS_S[i-1]` seconds old and not known to be
    /// `BUCKET_BOUNDS_S[i]`.
    pub buckets: Vec<u64>,
    /// Lower bound of the oldest live object's age, in seconds (0 when
    /// none is alive).
    pub oldest_s: u64,
    /// `[youngest age in ms, live objects]` per non-empty cohort, youngest
    /// first: answers "older than" at any threshold.
    pub cohorts: Vec<[u64; 2]>,
}

impl Ages {
    /// The ages of `counts` (`(born, died)` per cohort as stored, folded to
    /// `f`), seen `now_ms` milliseconds after epoch 0, with epochs of
    /// `epoch_ms`.
    pub fn from_cohorts(counts: &[(u32, u32)], f: Epoch, epoch_ms: u64, now_ms: u64) -> Ages {
        let mut cohorts: Vec<[u64; 2]> = counts
            .iter()
            .enumerate()
            .take(COHORTS)
            .filter_map(|(i, &(b, d))| {
                let live = u64::from(b.wrapping_sub(d));
                // Past 2^31 the difference is a negative one (a torn read
                // or forged words): nothing alive there.
                if live == 0 || live > u64::from(u32::MAX >> 1) {
                    return None;
                }
                let (_, end) = span(f, i);
                let youngest = now_ms.saturating_sub(end.saturating_mul(epoch_ms));
                Some([youngest, live])
            })
            .collect();
        cohorts.sort_unstable();
        let mut buckets = vec![0u64; BUCKET_BOUNDS_S.len() + 1];
        for &[age, n] in &cohorts {
            let b = BUCKET_BOUNDS_S
                .iter()
                .take_while(|&&s| age >= s * 1000)
                .count();
            buckets[b] = buckets[b].saturating_add(n);
        }
        Ages {
            buckets,
            oldest_s: cohorts.last().map_or(0, |[age, _]| age / 1000),
            cohorts,
        }
    }

    /// Live objects certainly at least `ms` milliseconds old.
    pub fn older_than_ms(&self, ms: u64) -> u64 {
        self.cohorts
            .iter()
            .filter(|[age, _]| *age >= ms)
            .fold(0u64, |sum, [_, n]| sum.saturating_add(*n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Cells(Vec<(AtomicU32, AtomicU32)>);

    impl Cells {
        fn new() -> Self {
            Cells((0..COHORTS).map(|_| Default::default()).collect())
        }
        fn live(&self, i: usize) -> u32 {
            self.0[i]
                .0
                .load(Relaxed)
                .wrapping_sub(self.0[i].1.load(Relaxed))
        }
    }

    impl Cohorts for Cells {
        fn born(&self, i: usize) -> &AtomicU32 {
            &self.0[i].0
        }
        fn died(&self, i: usize) -> &AtomicU32 {
            &self.0[i].1
        }
    }

    /// Every epoch up to `f` is held by exactly one counter, and `route`
    /// names that counter.
    #[test]
    fn spans_partition_the_epochs_and_route_agrees() {
        for f in [
            0u32, 1, 7, 8, 9, 15, 16, 40, 41, 200, 1000, 4097, 70_000, 10_000_000,
        ] {
            let cap = if cfg!(miri) { 300 } else { 200_000 };
            let mut owner = vec![usize::MAX; (f as usize + 1).min(cap)];
            for i in 0..COHORTS {
                let (s, e) = span(f, i);
                for epoch in s..e.min(owner.len() as u64) {
                    assert_eq!(
                        owner[epoch as usize],
                        usize::MAX,
                        "f={f} epoch {epoch} twice"
                    );
                    owner[epoch as usize] = i;
                }
            }
            for (epoch, &i) in owner.iter().enumerate() {
                assert_ne!(i, usize::MAX, "f={f} epoch {epoch} held by no counter");
                assert_eq!(route(f, epoch as Epoch), i, "f={f} epoch {epoch}");
            }
        }
    }

    #[test]
    fn cohorts_are_at_most_about_half_their_age() {
        let f = 5_000_000u32;
        for i in 0..ANCIENT {
            let (s, e) = span(f, i);
            if e > s {
                let width = e - s;
                let youngest = u64::from(f) + 1 - e;
                assert!(width <= youngest.max(8) * 2 / 3 + 8, "cohort {i}: {s}..{e}");
            }
        }
    }

    /// Random births and deaths with folds in between: every live object is
    /// counted in the cohort whose span holds its birth epoch.
    #[test]
    fn folding_keeps_every_object_in_its_span() {
        let cells = Cells::new();
        let mut f: Epoch = 0;
        let mut live: Vec<Epoch> = Vec::new();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..if cfg!(miri) { 500 } else { 20_000 } {
            match next() % 10 {
                0..=4 => {
                    count_birth(&cells, f, f);
                    live.push(f);
                }
                5..=7 if !live.is_empty() => {
                    let j = (next() % live.len() as u64) as usize;
                    count_death(&cells, f, live.swap_remove(j));
                }
                _ => {
                    let step = match next() % 20 {
                        0 => 1000 + (next() % 100_000) as u32,
                        1..=5 => (next() % 30) as u32,
                        _ => 1,
                    };
                    fold(&cells, f, f + step);
                    f += step;
                }
            }
        }
        for i in 0..COHORTS {
            let (s, e) = span(f, i);
            let expected = live
                .iter()
                .filter(|&&b| u64::from(b) >= s && u64::from(b) < e)
                .count() as u32;
            assert_eq!(cells.live(i), expected, "cohort {i} ({s}..{e}) at f={f}");
        }
    }

    #[test]
    fn ages_are_never_overstated() {
        let cells = Cells::new();
        // 10 objects born at epoch 0, 5 at epoch 100; epochs of 1 s.
        for _ in 0..10 {
            count_birth(&cells, 0, 0);
        }
        fold(&cells, 0, 100);
        for _ in 0..5 {
            count_birth(&cells, 100, 100);
        }
        let counts: Vec<(u32, u32)> = (0..COHORTS)
            .map(|i| (cells.born(i).load(Relaxed), cells.died(i).load(Relaxed)))
            .collect();
        // Seen at 100.5 s.
        let ages = Ages::from_cohorts(&counts, 100, 1000, 100_500);
        assert_eq!(ages.older_than_ms(0), 15);
        assert_eq!(ages.older_than_ms(60_000), 10);
        assert_eq!(ages.older_than_ms(101_000), 0);
        assert_eq!(ages.buckets.iter().sum::<u64>(), 15);
        assert_eq!(ages.buckets[0], 5);
        assert!(ages.oldest_s >= 60 && ages.oldest_s <= 100);
    }
}

//! Per-class counters with two update lanes.
//!
//! Counts are split into a *shared* lane, updated with atomic
//! read-modify-write from any thread, and a *serialized* lane, updated with a
//! plain load and store by callers that hold one process-wide lock (see
//! [`crate::Tracker::notify_serialized`]). Readers add the lanes. The
//! serialized lane is what keeps the Python hot path free of `lock`-prefixed
//! instructions while Rust threads can still count into the same tracker.

use std::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, Release},
};

use crate::{EventKind, Serial};

/// Totals of one class, as read from [`ClassCounters`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Attach notifications.
    pub created: u64,
    /// Destroy and detach notifications: objects that left the tracker.
    pub destroyed: u64,
    /// Bundle updates.
    pub updated: u64,
    /// Lowest serial attached, 0 if none.
    pub first_serial: Serial,
    /// Highest serial attached, 0 if none.
    pub last_serial: Serial,
    /// A sum overflowed and was held at `u64::MAX`: the counters are corrupt
    /// (only memory written by something else than a tracker gets there).
    pub saturated: bool,
}

impl Totals {
    /// Objects currently attached: `created - destroyed`, never negative.
    pub fn live(&self) -> u64 {
        self.created.saturating_sub(self.destroyed)
    }
}

#[derive(Default)]
#[repr(C)]
struct Lane {
    created: AtomicU64,
    destroyed: AtomicU64,
    updated: AtomicU64,
    last_serial: AtomicU64,
}

/// Counters of one class.
///
/// The layout is fixed (`repr(C)`, nine little-endian u64 words in this
/// order: shared created, destroyed, updated, last serial; serialized
/// created, destroyed, updated, last serial; first serial) because
/// `tracker-shm` places these counters directly in its shared-memory class
/// slots. Every bit pattern is a valid value.
#[derive(Default)]
#[repr(C)]
pub struct ClassCounters {
    shared: Lane,
    serialized: Lane,
    first_serial: AtomicU64,
}

/// Word offsets of [`ClassCounters`] fields, in u64 words.
pub mod counter_words {
    /// Shared-lane attaches.
    pub const CREATED_SHARED: u64 = 0;
    /// Shared-lane destroys and detaches.
    pub const DESTROYED_SHARED: u64 = 1;
    /// Shared-lane updates.
    pub const UPDATED_SHARED: u64 = 2;
    /// Shared-lane highest serial.
    pub const LAST_SERIAL_SHARED: u64 = 3;
    /// Serialized-lane attaches.
    pub const CREATED_SERIAL: u64 = 4;
    /// Serialized-lane destroys and detaches.
    pub const DESTROYED_SERIAL: u64 = 5;
    /// Serialized-lane updates.
    pub const UPDATED_SERIAL: u64 = 6;
    /// Serialized-lane highest serial.
    pub const LAST_SERIAL_SERIAL: u64 = 7;
    /// Lowest serial over both lanes.
    pub const FIRST_SERIAL: u64 = 8;
    /// Words in all.
    pub const COUNT: u64 = 9;
}

#[inline]
fn bump_serialized(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
}

/// Destroy counts are stored with `Release`, so a reader that loads a
/// destroy count, then fences with `Acquire`, then loads the create count,
/// sees at least as many creates as destroys. (On x86 this is a plain store.)
#[inline]
fn bump_serialized_release(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Release);
}

impl ClassCounters {
    /// Counts one event from any thread.
    #[inline]
    pub fn record(&self, kind: EventKind, serial: Serial) {
        match kind {
            EventKind::Attached => {
                self.note_serial(serial, false);
                self.shared.created.fetch_add(1, Relaxed);
            }
            EventKind::Detached | EventKind::Destroyed => {
                self.shared.destroyed.fetch_add(1, Release);
            }
            EventKind::Updated => {
                self.shared.updated.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counts one event; the caller holds the lock that serialises all
    /// `record_serialized` calls on these counters.
    #[inline(always)]
    pub fn record_serialized(&self, kind: EventKind, serial: Serial) {
        match kind {
            EventKind::Attached => {
                self.note_serial(serial, true);
                bump_serialized(&self.serialized.created);
            }
            EventKind::Detached | EventKind::Destroyed => {
                bump_serialized_release(&self.serialized.destroyed)
            }
            EventKind::Updated => bump_serialized(&self.serialized.updated),
        }
    }

    #[inline(always)]
    fn note_serial(&self, serial: Serial, serialized: bool) {
        let first = self.first_serial.load(Relaxed);
        if first == 0 || serial < first {
            self.first_serial.fetch_min_nonzero(serial);
        }
        if serialized {
            // Only serialized callers write this lane: a plain store is exact.
            let last = &self.serialized.last_serial;
            if serial > last.load(Relaxed) {
                last.store(serial, Relaxed);
            }
        } else {
            self.shared.last_serial.fetch_max(serial, Relaxed);
        }
    }

    /// Live objects of the serialized lane (serialised callers only: the
    /// words are theirs), for a writer's high-water mark.
    #[inline(always)]
    pub fn serialized_live(&self) -> u64 {
        self.serialized
            .created
            .load(Relaxed)
            .wrapping_sub(self.serialized.destroyed.load(Relaxed))
    }

    /// Reads the totals. `destroyed` is read before `created`, so a reader
    /// racing writers never sees more objects leave than arrive.
    ///
    /// Only loads and a fence: safe on memory mapped read-only from another
    /// process. Such memory may hold anything, so sums saturate instead of
    /// wrapping around, and [`Totals::saturated`] says so.
    pub fn totals(&self) -> Totals {
        let mut saturated = false;
        let mut add = |a: &AtomicU64, b: &AtomicU64| {
            let (sum, over) = a.load(Relaxed).overflowing_add(b.load(Relaxed));
            saturated |= over;
            if over {
                u64::MAX
            } else {
                sum
            }
        };
        let destroyed = add(&self.shared.destroyed, &self.serialized.destroyed);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let created = add(&self.shared.created, &self.serialized.created);
        let updated = add(&self.shared.updated, &self.serialized.updated);
        Totals {
            created: created.max(destroyed),
            destroyed,
            updated,
            first_serial: self.first_serial.load(Relaxed),
            last_serial: self
                .shared
                .last_serial
                .load(Relaxed)
                .max(self.serialized.last_serial.load(Relaxed)),
            saturated,
        }
    }
}

trait FetchMinNonzero {
    fn fetch_min_nonzero(&self, v: u64);
}

impl FetchMinNonzero for AtomicU64 {
    fn fetch_min_nonzero(&self, v: u64) {
        let mut cur = self.load(Relaxed);
        while cur == 0 || v < cur {
            match self.compare_exchange_weak(cur, v, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_word_offsets() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<ClassCounters>() as u64, 8 * counter_words::COUNT);
        assert_eq!(
            offset_of!(ClassCounters, first_serial) as u64,
            8 * counter_words::FIRST_SERIAL
        );
        assert_eq!(
            offset_of!(ClassCounters, serialized) as u64,
            8 * counter_words::CREATED_SERIAL
        );
        assert_eq!(
            offset_of!(Lane, last_serial) as u64,
            8 * counter_words::LAST_SERIAL_SHARED
        );
        assert_eq!(
            offset_of!(Lane, destroyed) as u64,
            8 * counter_words::DESTROYED_SHARED
        );
    }

    #[test]
    fn lanes_add_up() {
        let c = ClassCounters::default();
        c.record(EventKind::Attached, 10);
        c.record_serialized(EventKind::Attached, 5);
        c.record_serialized(EventKind::Attached, 12);
        c.record(EventKind::Destroyed, 10);
        c.record_serialized(EventKind::Updated, 5);
        c.record_serialized(EventKind::Detached, 5);
        let t = c.totals();
        assert_eq!(t.created, 3);
        assert_eq!(t.destroyed, 2);
        assert_eq!(t.live(), 1);
        assert_eq!(t.updated, 1);
        assert_eq!((t.first_serial, t.last_serial), (5, 12));
    }
}

//! Per-class counters with two update lanes.
//!
//! Counts are split into a *shared* lane, updated with atomic
//! read-modify-write from any thread, and a *serialized* lane, updated with a
//! plain load and store by callers that hold one process-wide lock (see
//! [`crate::Tracker::notify_serialized`]). Readers add the lanes. The
//! serialized lane is what keeps the Python hot path free of `lock`-prefixed
//! instructions while Rust threads can still count into the same tracker.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

impl Totals {
    /// Objects currently attached: `created - destroyed`, never negative.
    pub fn live(&self) -> u64 {
        self.created.saturating_sub(self.destroyed)
    }
}

#[derive(Default)]
struct Lane {
    created: AtomicU64,
    destroyed: AtomicU64,
    updated: AtomicU64,
    last_serial: AtomicU64,
}

/// Counters of one class.
#[derive(Default)]
pub struct ClassCounters {
    shared: Lane,
    serialized: Lane,
    first_serial: AtomicU64,
}

#[inline]
fn bump_serialized(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
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
                self.shared.destroyed.fetch_add(1, Relaxed);
            }
            EventKind::Updated => {
                self.shared.updated.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counts one event; the caller holds the lock that serialises all
    /// `record_serialized` calls on these counters.
    #[inline]
    pub fn record_serialized(&self, kind: EventKind, serial: Serial) {
        match kind {
            EventKind::Attached => {
                self.note_serial(serial, true);
                bump_serialized(&self.serialized.created);
            }
            EventKind::Detached | EventKind::Destroyed => {
                bump_serialized(&self.serialized.destroyed)
            }
            EventKind::Updated => bump_serialized(&self.serialized.updated),
        }
    }

    #[inline]
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

    /// Reads the totals. `destroyed` is read before `created`, so a reader
    /// racing writers never sees more objects leave than arrive.
    pub fn totals(&self) -> Totals {
        let destroyed =
            self.shared.destroyed.load(Relaxed) + self.serialized.destroyed.load(Relaxed);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let created = self.shared.created.load(Relaxed) + self.serialized.created.load(Relaxed);
        Totals {
            created: created.max(destroyed),
            destroyed,
            updated: self.shared.updated.load(Relaxed) + self.serialized.updated.load(Relaxed),
            first_serial: self.first_serial.load(Relaxed),
            last_serial: self
                .shared
                .last_serial
                .load(Relaxed)
                .max(self.serialized.last_serial.load(Relaxed)),
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

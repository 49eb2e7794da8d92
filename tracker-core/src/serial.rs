//! Process-wide serial numbers.
//!
//! Every tracked object, whichever language created it, takes its serial
//! from one counter, so serials are unique across all classes and threads
//! of the process. A caller that holds one lock serialising all its
//! creations (for pytracker, the Python GIL) takes serials from a
//! [`SerialLane`] instead: the lane reserves a block of [`LANE_BLOCK`]
//! serials with one atomic read-modify-write and hands them out with plain
//! loads and stores, which spares each creation a locked instruction (a
//! full pipeline barrier on x86, which costs more than its instruction
//! count suggests). Serials of one lane strictly increase; serials of
//! different lanes (a lane and [`next_serial`]'s callers) are unique but
//! not ordered with each other.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A tracked object's serial number. Serial 0 is never issued.
pub type Serial = u64;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// How many serials a [`SerialLane`] reserves at a time.
pub const LANE_BLOCK: u64 = 4096;

/// Issues the next serial, from any thread.
///
/// `Relaxed` is enough: the read-modify-write on one atomic is totally
/// ordered, which is all uniqueness and monotonicity need.
#[inline]
pub fn next_serial() -> Serial {
    NEXT.fetch_add(1, Relaxed)
}

/// The most recently reserved serial (by [`next_serial`] or a lane's
/// block), or 0 when none has been reserved yet.
pub fn last_issued() -> Serial {
    NEXT.load(Relaxed) - 1
}

/// Serials for callers serialised by one lock (see the module
/// documentation).
///
/// A lane can also be told to stop at a *marked* serial: the caller learns
/// that it has issued it without a check of its own per serial, because the
/// lane's one comparison per serial is against `stop`, the lower of the
/// block's end and the mark. [`issue_before_stop`](Self::issue_before_stop)
/// is that comparison; when it says no, [`issue_at_stop`](Self::issue_at_stop)
/// reserves a new block if the old one is used up, issues the serial and
/// says whether it reached the mark (which is then cleared).
///
/// The words are atomics only so that the type is `Sync` and a misuse
/// (calls without the lock) cannot be undefined behaviour: it could then
/// issue a serial twice or miss a mark, nothing worse.
pub struct SerialLane {
    /// The next serial to issue; equal to `end` when the block is used up.
    next: AtomicU64,
    /// `min(end, mark)`: serials below it are issued on the fast path.
    stop: AtomicU64,
    /// One past the last serial of the reserved block.
    end: AtomicU64,
    /// The marked serial (`u64::MAX`: none).
    mark: AtomicU64,
}

impl SerialLane {
    /// A lane with no block reserved yet and no mark.
    pub const fn new() -> SerialLane {
        SerialLane {
            next: AtomicU64::new(0),
            stop: AtomicU64::new(0),
            end: AtomicU64::new(0),
            mark: AtomicU64::new(u64::MAX),
        }
    }

    /// Issues the lane's next serial, ignoring the mark. The caller holds
    /// the lock that serialises every call on this lane.
    #[inline(always)]
    pub fn issue_serialized(&self) -> Serial {
        match self.issue_before_stop() {
            Some(n) => n,
            None => self.issue_at_stop().0,
        }
    }

    /// Issues the lane's next serial if it is below both the block's end
    /// and the mark; `None` (nothing issued) otherwise, and the caller goes
    /// on with [`Self::issue_at_stop`]. Caller holds the lane's lock.
    #[inline(always)]
    pub fn issue_before_stop(&self) -> Option<Serial> {
        let n = self.next.load(Relaxed);
        if n < self.stop.load(Relaxed) {
            self.next.store(n + 1, Relaxed);
            Some(n)
        } else {
            None
        }
    }

    /// Issues the lane's next serial, reserving a new block first if the
    /// old one is used up, and says whether the serial reached the mark
    /// (the mark is then cleared). Caller holds the lane's lock.
    #[cold]
    #[inline(never)]
    pub fn issue_at_stop(&self) -> (Serial, bool) {
        let mut n = self.next.load(Relaxed);
        if n >= self.end.load(Relaxed) {
            n = NEXT.fetch_add(LANE_BLOCK, Relaxed);
            self.end.store(n + LANE_BLOCK, Relaxed);
        }
        self.next.store(n + 1, Relaxed);
        let marked = n >= self.mark.load(Relaxed);
        if marked {
            self.mark.store(u64::MAX, Relaxed);
        }
        self.restop();
        (n, marked)
    }

    /// Marks `serial`: the call of [`Self::issue_at_stop`] that issues it
    /// (or, if it is already past, the next one) says so. `u64::MAX`
    /// clears the mark. Caller holds the lane's lock.
    pub fn set_mark(&self, serial: Serial) {
        self.mark.store(serial, Relaxed);
        self.restop();
    }

    fn restop(&self) {
        let stop = self.end.load(Relaxed).min(self.mark.load(Relaxed));
        self.stop.store(stop, Relaxed);
    }

    /// The serial this lane issued last, or 0 before its first.
    pub fn last_issued(&self) -> Serial {
        // Every way of issuing leaves `next` one past the serial issued.
        self.next.load(Relaxed).saturating_sub(1)
    }
}

impl Default for SerialLane {
    fn default() -> Self {
        SerialLane::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_increase() {
        let a = next_serial();
        let b = next_serial();
        assert!(a >= 1);
        assert!(b > a);
        assert!(last_issued() >= b);
    }

    #[test]
    fn a_lane_increases_across_blocks_and_never_meets_other_callers() {
        let lane = SerialLane::new();
        assert_eq!(lane.last_issued(), 0);
        let mut issued = Vec::new();
        let mut others = Vec::new();
        for i in 0..3 * LANE_BLOCK {
            issued.push(lane.issue_serialized());
            if i % 1000 == 0 {
                others.push(next_serial());
            }
        }
        assert!(
            issued.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing"
        );
        assert_eq!(lane.last_issued(), *issued.last().unwrap());
        assert!(issued[0] >= 1);
        for o in &others {
            assert!(issued.binary_search(o).is_err(), "serial {o} issued twice");
        }
        assert!(last_issued() >= lane.last_issued());
    }

    #[test]
    fn a_mark_is_reported_once_by_the_serial_that_reaches_it() {
        let lane = SerialLane::new();
        let first = lane.issue_serialized();
        // A mark inside the block, one at a block boundary, one already past.
        for ahead in [10, LANE_BLOCK - (first % LANE_BLOCK), 0] {
            let from = lane.last_issued();
            let target = if ahead == 0 { from } else { from + ahead };
            lane.set_mark(target);
            let (mut issued, mut hits) = (Vec::new(), Vec::new());
            // Up to the mark and 64 serials past it.
            for _ in 0..ahead + 64 {
                let (n, marked) = match lane.issue_before_stop() {
                    Some(n) => (n, false),
                    None => lane.issue_at_stop(),
                };
                issued.push(n);
                if marked {
                    hits.push(n);
                }
            }
            // The lane's first serial at or past the mark (a new block may
            // start past it: other tests take serials meanwhile).
            let first_past = issued.iter().copied().find(|&n| n >= target);
            assert_eq!(hits, Vec::from_iter(first_past), "mark at {target}");
        }
    }

    #[test]
    fn a_cleared_mark_stops_nothing() {
        let lane = SerialLane::new();
        lane.issue_serialized();
        lane.set_mark(lane.last_issued() + 5);
        lane.set_mark(u64::MAX);
        let mut slow = 0;
        for _ in 0..100 {
            if lane.issue_before_stop().is_none() {
                slow += 1;
                assert!(!lane.issue_at_stop().1);
            }
        }
        assert!(slow <= 1, "only a block refill may take the slow path");
    }
}

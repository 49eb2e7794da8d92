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
/// The words are atomics only so that the type is `Sync` and a misuse
/// (calls without the lock) cannot be undefined behaviour: it could then
/// issue a serial twice, nothing worse.
pub struct SerialLane {
    /// The next serial to issue; equal to `end` when the block is used up.
    next: AtomicU64,
    /// One past the last serial of the reserved block.
    end: AtomicU64,
}

impl SerialLane {
    /// A lane with no block reserved yet.
    pub const fn new() -> SerialLane {
        SerialLane {
            next: AtomicU64::new(0),
            end: AtomicU64::new(0),
        }
    }

    /// Issues the lane's next serial. The caller holds the lock that
    /// serialises every `issue_serialized` call on this lane.
    #[inline(always)]
    pub fn issue_serialized(&self) -> Serial {
        let n = self.next.load(Relaxed);
        if n < self.end.load(Relaxed) {
            self.next.store(n + 1, Relaxed);
            n
        } else {
            self.refill()
        }
    }

    /// Reserves a new block and issues its first serial.
    #[cold]
    #[inline(never)]
    fn refill(&self) -> Serial {
        let start = NEXT.fetch_add(LANE_BLOCK, Relaxed);
        self.end.store(start + LANE_BLOCK, Relaxed);
        self.next.store(start + 1, Relaxed);
        start
    }

    /// The serial this lane issued last, or 0 before its first.
    pub fn last_issued(&self) -> Serial {
        // Both ways of issuing leave `next` one past the serial issued.
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
}

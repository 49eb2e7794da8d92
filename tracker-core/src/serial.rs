//! Process-wide serial numbers.
//!
//! Every tracked object, whichever language created it, takes its serial
//! from one counter, so serials are unique and strictly increasing across
//! all classes and threads of the process.

use std::sync::atomic::{AtomicU64, Ordering};

/// A tracked object's serial number. Serial 0 is never issued.
pub type Serial = u64;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Issues the next serial.
///
/// `Relaxed` is enough: the read-modify-write on one atomic is totally
/// ordered, which is all uniqueness and monotonicity need.
#[inline]
pub fn next_serial() -> Serial {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The most recently issued serial, or 0 when none has been issued yet.
pub fn last_issued() -> Serial {
    NEXT.load(Ordering::Relaxed) - 1
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
}

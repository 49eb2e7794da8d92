//! The tick protocol: named counters of units of work (requests, jobs,
//! messages) that readers divide object growth by.
//!
//! *Writer.* A unit's first tick claims the next entry of the header's
//! tick table with a `fetch_add` on [`header::TICK_COUNT`] (past
//! [`layout::TICK_MAX`] the unit is not recorded, and its ticks are added
//! to [`header::TICKS_DROPPED`]); it stores the entry's state
//! [`layout::SLOT_FILLING`], the name and its length (`Relaxed`), then
//! [`layout::SLOT_PUBLISHED`] with `Release`. Ticks are `fetch_add`s on the
//! entry's count: any thread may tick. The tracker keeps the name-to-entry
//! map, so one thread claims per name.
//!
//! *Reader* ([`read`]). Loads the count (clamped to the table), then each
//! entry's state; for a published entry an `Acquire` fence pairs with the
//! writer's `Release` store, so the name read after it is final. Counts
//! only grow.

use std::sync::atomic::{fence, Ordering::*};

use tracker_core::UnitCount;

use crate::classes::cut_utf8;
use crate::layout::{self, header, tick, total};
use crate::mapping::{ReadView, WriteView};

fn entry(i: u64) -> u64 {
    header::TICKS + i * layout::TICK_ENTRY_SIZE
}

/// Claims an entry for unit `name` (writer); `None` when the table is full.
pub(crate) fn claim(v: WriteView<'_>, name: &str) -> Option<u64> {
    let index = v.word(header::TICK_COUNT).fetch_add(1, Relaxed);
    if index >= layout::TICK_MAX {
        return None;
    }
    let mut bytes = name.as_bytes().to_vec();
    cut_utf8(&mut bytes, tick::NAME_MAX as usize);
    let base = entry(index);
    v.word(base + tick::STATE)
        .store(layout::SLOT_FILLING, Relaxed);
    v.word(base + tick::NAME_LEN)
        .store(bytes.len() as u64, Relaxed);
    v.write_bytes(base + tick::NAME, &bytes);
    v.word(base + tick::STATE)
        .store(layout::SLOT_PUBLISHED, Release);
    Some(index)
}

/// Adds `n` units to entry `index` (writer, any thread), or to the dropped
/// count for `None`.
#[inline]
pub(crate) fn add(v: WriteView<'_>, index: Option<u64>, n: u64) {
    let at = match index {
        Some(i) => entry(i) + tick::COUNT,
        None => header::TICKS_DROPPED,
    };
    v.word(at).fetch_add(n, Relaxed);
}

/// The counts of the first [`total::TICK_UNITS`] entries, for the history
/// (writer's sampler).
pub(crate) fn first_counts(v: WriteView<'_>) -> [u64; total::TICK_UNITS as usize] {
    std::array::from_fn(|i| v.word(entry(i as u64) + tick::COUNT).load(Relaxed))
}

/// The published units, in table order (reader).
pub(crate) fn read(v: ReadView<'_>) -> Vec<UnitCount> {
    let n = v.u64(header::TICK_COUNT).unwrap_or(0).min(layout::TICK_MAX);
    let mut out = Vec::new();
    for i in 0..n {
        let base = entry(i);
        if v.u64(base + tick::STATE) != Some(layout::SLOT_PUBLISHED) {
            continue;
        }
        fence(Acquire);
        out.push(UnitCount {
            name: v.text(base + tick::NAME_LEN, base + tick::NAME, tick::NAME_MAX),
            count: v.u64(base + tick::COUNT).unwrap_or(0),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Geometry;
    use crate::mapping::WriteMap;

    #[test]
    fn units_claim_count_and_overflow() {
        let g = Geometry::new(2, 0, 1);
        let map = WriteMap::private(g.total_size as usize).unwrap();
        let v = map.view();
        let requests = claim(v, "requests");
        let long = claim(v, "a-unit-name-longer-than-the-entry");
        add(v, requests, 3);
        add(v, long, 1);
        for i in 2..layout::TICK_MAX {
            assert!(claim(v, &format!("u{i}")).is_some());
        }
        let full = claim(v, "one-too-many");
        assert_eq!(full, None);
        add(v, full, 5);
        let units = read(v.reader());
        assert_eq!(units.len(), layout::TICK_MAX as usize);
        assert_eq!(
            units[0],
            UnitCount {
                name: "requests".into(),
                count: 3
            }
        );
        assert_eq!(units[1].name, "a-unit-name-longer-than-");
        assert_eq!(v.reader().u64(header::TICKS_DROPPED), Some(5));
        assert_eq!(first_counts(v), [3, 1, 0]);
    }
}

//! Property tests: the reader never panics on arbitrary or mutated bytes.

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;
use tracker_core::{ClassId, EventKind, Tracker};
use tracker_shm::{layout, Segment, ShmOptions, ShmTracker};

/// A directory of this test process (under target/, removed and re-made
/// by each run).
fn scratch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-reader");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn template() -> Vec<u8> {
    let dir = scratch();
    let tracker = ShmTracker::new(ShmOptions {
        directory: Some(dir),
        class_capacity: 8,
        ring_capacity: 16,
        history_capacity: 4,
        site_capacity: 4,
        sampler: false,
        ..Default::default()
    });
    for i in 0..5 {
        let c = ClassId::named(&format!("fuzz.C{i}"));
        tracker.notify(EventKind::Attached, c, i + 1);
        tracker.notify(EventKind::Updated, c, i + 1);
        // The serialised lane fills the cohorts and the peak.
        for s in 0..3 {
            tracker.notify_serialized(EventKind::Attached, c, 100 + s, 0);
        }
        tracker.notify_serialized(EventKind::Destroyed, c, 100, 0);
    }
    for i in 0..3u64 {
        let c = ClassId::named(&format!("fuzz.C{i}"));
        let frames = || {
            vec![tracker_shm::Frame {
                file: format!("/srv/app/mod{i}.py"),
                line: 10 + i,
                function: "make".into(),
            }]
        };
        tracker.site(c, i, frames);
    }
    for unit in ["requests", "jobs", "messages"] {
        tracker.tick(tracker.unit(unit), 7);
    }
    for _ in 0..3 {
        tracker.sample();
    }
    let bytes = fs::read(tracker.path().unwrap()).unwrap();
    tracker.close();
    bytes
}

fn exercise(bytes: &[u8], name: &str) {
    let path = scratch().join(name);
    fs::write(&path, bytes).unwrap();
    if let Ok(seg) = Segment::open(&path) {
        let _ = seg.header();
        let snap = seg.snapshot("exited");
        for c in &snap.classes {
            assert!(c.created >= c.destroyed);
            // A repeated name gets ` #<slot>` (at most 11 more characters).
            assert!(c.name.chars().count() <= layout::class::NAME_MAX as usize + 11);
        }
        let _ = seg.history();
        for tier in 0..4 {
            let h = seg.history_tier(tier);
            assert!(h.times_ns.len() as u64 <= seg.geometry().history_capacity);
            assert_eq!(h.rss_bytes.len(), h.times_ns.len());
        }
        assert!(seg.ticks().len() <= layout::TICK_MAX as usize);
        let sites = seg.sites();
        assert!(sites.len() as u64 <= seg.geometry().site_capacity);
        for s in &sites {
            assert!(s.frames.len() as u64 <= layout::SITE_FRAMES);
            assert!(s.live <= i64::MAX as u64);
        }
        let slots: Vec<u32> = seg.classes().iter().map(|(s, _)| *s).collect();
        if let Some(ages) = seg.ages(&slots, u64::MAX) {
            for a in ages {
                let _ = a.ages.older_than_ms(60_000);
                assert!(a.ages.cohorts.len() <= tracker_core::age::COHORTS);
            }
        }
        let mut out = Vec::new();
        let mut cursor = seg.events_from_oldest();
        seg.poll_events(&mut cursor, &mut out);
        assert!(out.len() as u64 <= seg.geometry().ring_capacity);
    }
    let _ = fs::remove_file(&path);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        exercise(&bytes, "arbitrary");
    }

    #[test]
    fn arbitrary_bytes_with_valid_magic(mut bytes in proptest::collection::vec(any::<u8>(), 4096..12000)) {
        bytes[..8].copy_from_slice(&layout::MAGIC.to_le_bytes());
        bytes[8..12].copy_from_slice(&layout::ENDIAN_PROBE.to_le_bytes());
        bytes[12..16].copy_from_slice(&u32::from(layout::MAJOR).to_le_bytes());
        exercise(&bytes, "magic");
    }

    #[test]
    fn mutated_valid_segment(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 1..16)) {
        let mut bytes = template();
        let words = bytes.len() / 8;
        for (index, value) in edits {
            let at = index.index(words) * 8;
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        exercise(&bytes, "mutated");
    }

    /// Words of the regions format 2.0 added: the header's identity, age
    /// and tick words and the tick table, the history totals, and each
    /// class slot's peak, cohorts and tiers.
    #[test]
    fn mutated_new_regions(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 1..12)) {
        let mut bytes = template();
        let g = layout::Geometry::with_sites(8, 16, 4, 4);
        let mut words: Vec<u64> = (layout::header::SERVICE_LEN..layout::header::TICKS + layout::TICK_MAX * layout::TICK_ENTRY_SIZE)
            .step_by(8)
            .chain((layout::TOTALS_OFFSET..g.class_offset).step_by(8))
            .collect();
        for slot in 0..g.class_capacity {
            let base = g.class_slot(slot);
            words.extend((base + layout::class::PEAK_LIVE..base + g.class_slot_size).step_by(8));
        }
        words.extend((g.site_offset..g.ring_offset).step_by(8));
        for (index, value) in edits {
            let at = words[index.index(words.len())] as usize;
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        exercise(&bytes, "new-regions");
    }

    #[test]
    fn mutated_header_words(edits in proptest::collection::vec((0usize..64, any::<u64>()), 1..6)) {
        let mut bytes = template();
        for (word, value) in edits {
            bytes[word * 8..word * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
        exercise(&bytes, "header");
    }
}

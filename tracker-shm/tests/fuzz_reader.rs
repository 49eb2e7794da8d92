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
        sampler: false,
        ..Default::default()
    });
    for i in 0..5 {
        let c = ClassId::named(&format!("fuzz.C{i}"));
        tracker.notify(EventKind::Attached, c, i + 1);
        tracker.notify(EventKind::Updated, c, i + 1);
    }
    tracker.sample();
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
        bytes[12..16].copy_from_slice(&1u32.to_le_bytes());
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

    #[test]
    fn mutated_header_words(edits in proptest::collection::vec((0usize..64, any::<u64>()), 1..6)) {
        let mut bytes = template();
        for (word, value) in edits {
            bytes[word * 8..word * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
        exercise(&bytes, "header");
    }
}

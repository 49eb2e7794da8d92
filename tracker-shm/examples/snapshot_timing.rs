//! Times reading a 10,000-class segment: open + validate, and one snapshot.
//!
//! `cargo run --release -p tracker-shm --example snapshot_timing`

use std::time::Instant;

use tracker_core::{ClassId, EventKind, Tracker};
use tracker_shm::{Segment, ShmOptions, ShmTracker};

fn main() {
    let classes = 10_000;
    let tracker = ShmTracker::new(ShmOptions {
        class_capacity: 16_384,
        sampler: false,
        ..Default::default()
    });
    for i in 0..classes {
        let c = ClassId::named(&format!("bench.module.Class{i:05}"));
        tracker.notify(EventKind::Attached, c, i as u64 + 1);
    }
    tracker.sample();
    let path = tracker.path().expect("segment published");
    let mut open_times = Vec::new();
    let mut snap_times = Vec::new();
    let mut history_times = Vec::new();
    for _ in 0..50 {
        let t0 = Instant::now();
        let seg = Segment::open(&path).unwrap();
        let t1 = Instant::now();
        let snap = seg.snapshot("alive");
        let t2 = Instant::now();
        let history = seg.history();
        let t3 = Instant::now();
        assert_eq!(snap.classes.len(), classes);
        assert_eq!(history.per_class.len(), classes);
        open_times.push(t1 - t0);
        snap_times.push(t2 - t1);
        history_times.push(t3 - t2);
    }
    for (label, v) in [
        ("open + validate", &mut open_times),
        ("snapshot", &mut snap_times),
        ("history", &mut history_times),
    ] {
        v.sort();
        println!(
            "{label:<16} median {:>8.3} ms   max {:>8.3} ms",
            v[v.len() / 2].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3
        );
    }
}

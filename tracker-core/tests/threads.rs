//! Rust-native handles from many threads, through the global tracker.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;

use tracker_core::{set_global_tracker, ClassId, CountingTracker, EventKind, TrackHandle, Tracker};

#[test]
fn handles_from_many_threads_count_exactly_with_unique_serials() {
    let counting = Arc::new(CountingTracker::new());
    set_global_tracker(Some(counting.clone()));
    let class = ClassId::named("threads_test.Item");

    let per_thread = 5_000;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                let mut serials = Vec::with_capacity(per_thread);
                let mut kept = Vec::new();
                for i in 0..per_thread {
                    let h = TrackHandle::new(class);
                    serials.push(h.serial());
                    if i % 100 == 0 {
                        kept.push(h);
                    }
                }
                (serials, kept)
            })
        })
        .collect();
    let mut all = HashSet::new();
    let mut kept = Vec::new();
    for w in workers {
        let (serials, k) = w.join().unwrap();
        // strictly increasing within a thread
        assert!(serials.windows(2).all(|p| p[0] < p[1]));
        all.extend(serials);
        kept.extend(k);
    }
    set_global_tracker(None);
    assert_eq!(all.len(), 8 * per_thread, "serials are unique");

    let snap = counting.snapshot();
    let item = snap.iter().find(|c| c.name == "threads_test.Item").unwrap();
    assert_eq!(item.created, 40_000);
    assert_eq!(item.live, 400);
    assert_eq!(item.destroyed, 40_000 - 400);
    assert_eq!(item.first_serial, *all.iter().min().unwrap());
    assert_eq!(item.last_serial, *all.iter().max().unwrap());
    drop(kept);
    let item = counting
        .snapshot()
        .into_iter()
        .find(|c| c.name == "threads_test.Item")
        .unwrap();
    assert_eq!(item.live, 0);
}

#[test]
fn serialized_and_shared_lanes_race_without_losing_counts() {
    // One thread plays the GIL-holding caller (serialized lane), others use
    // the shared lane at the same time.
    let counting = Arc::new(CountingTracker::new());
    let class = ClassId::named("threads_test.Mixed");
    let mut workers = Vec::new();
    for lane in 0..3 {
        let c = counting.clone();
        workers.push(thread::spawn(move || {
            for s in 1..=20_000u64 {
                if lane == 0 {
                    c.notify_serialized(EventKind::Attached, class, s, 0);
                    c.notify_serialized(EventKind::Destroyed, class, s, 0);
                } else {
                    c.notify(EventKind::Attached, class, s);
                    c.notify(EventKind::Destroyed, class, s);
                }
            }
        }));
    }
    for w in workers {
        w.join().unwrap();
    }
    let t = counting.counters(class).unwrap().totals();
    assert_eq!((t.created, t.destroyed, t.live()), (60_000, 60_000, 0));
    assert_eq!((t.first_serial, t.last_serial), (1, 20_000));
}

#[test]
fn set_tracker_moves_between_trackers() {
    let a = Arc::new(CountingTracker::new());
    let b = Arc::new(CountingTracker::new());
    let class = ClassId::named("threads_test.Moved");
    let mut h = TrackHandle::with_tracker(class, Some(a.clone()));
    h.updated();
    h.set_tracker(Some(b.clone()));
    let ta = a.counters(class).unwrap().totals();
    assert_eq!((ta.created, ta.destroyed, ta.updated), (1, 1, 1));
    drop(h);
    let tb = b.counters(class).unwrap().totals();
    assert_eq!((tb.created, tb.destroyed), (1, 1));
}

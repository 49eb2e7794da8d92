//! Tracks a Rust type from several threads and prints the inventory.
//!
//! Run with `cargo run -p tracker-core --example track_rust_types`.

use std::sync::Arc;
use std::thread;

use tracker_core::{set_global_tracker, CountingTracker, Tracked};

#[allow(dead_code)]
struct Session {
    user: u32,
}

#[allow(dead_code)]
struct Buffer(Vec<u8>);

fn main() {
    let counting = Arc::new(CountingTracker::new());
    set_global_tracker(Some(counting.clone()));

    let workers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                let sessions: Vec<_> = (0..1000)
                    .map(|u| Tracked::new(Session { user: u }))
                    .collect();
                // Keep one buffer per worker alive, as a leak would.
                let kept = Tracked::new(Buffer(vec![0; 64]));
                drop(sessions);
                (w, kept)
            })
        })
        .collect();
    let kept: Vec<_> = workers.into_iter().map(|h| h.join().unwrap()).collect();

    for class in counting.snapshot() {
        println!(
            "{:<50} live {:>5}  created {:>5}  destroyed {:>5}  serials {}..{}",
            class.name,
            class.live,
            class.created,
            class.destroyed,
            class.first_serial,
            class.last_serial
        );
    }
    drop(kept);
}

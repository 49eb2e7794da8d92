//! A reader that takes snapshots of one segment at a fixed rate, keeping it
//! mapped (as pytracker-top does). Used by `bench/readers.py`.
//!
//! `poll_reader SEGMENT_PATH SNAPSHOTS_PER_SECOND`

use std::time::{Duration, Instant};

use tracker_shm::Segment;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(rate)) = (args.get(1), args.get(2).and_then(|r| r.parse::<f64>().ok()))
    else {
        eprintln!("usage: poll_reader SEGMENT_PATH SNAPSHOTS_PER_SECOND");
        std::process::exit(2);
    };
    let segment = match Segment::open(path.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("poll_reader: {e}");
            std::process::exit(2);
        }
    };
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    loop {
        let snap = segment.snapshot("alive");
        std::hint::black_box(&snap);
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

//! Writer and reader together on real segment files.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tracker_core::{ClassId, EventKind, Tracker};
use tracker_shm::{
    find_by_pid_in, layout, list_segments_in, writer_state, EventCursor, ReadError, Segment,
    SegmentName, ShmOptions, ShmTracker, WriterState,
};

/// A private directory per test, removed at the end.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir =
            std::env::temp_dir().join(format!("pytracker-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    fn options(&self) -> ShmOptions {
        ShmOptions {
            directory: Some(self.0.clone()),
            sampler: false,
            ..Default::default()
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn bytes_of(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()
}

#[test]
fn round_trip_counts_names_events_history() {
    let dir = TestDir::new("roundtrip");
    let tracker = ShmTracker::new(dir.options());
    assert_eq!(tracker.problem(), None);
    let path = tracker.path().unwrap();
    let meta = fs::metadata(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let a = ClassId::named("rt.Alpha");
    let b = ClassId::named("rt.Beta");
    for s in 1..=10 {
        tracker.notify_serialized(EventKind::Attached, a, s, 0);
    }
    for s in 1..=4 {
        tracker.notify(EventKind::Destroyed, a, s);
    }
    tracker.notify(EventKind::Attached, b, 11);
    tracker.notify(EventKind::Updated, b, 11);
    tracker.sample();

    let seg = Segment::open(&path).unwrap();
    assert_eq!(writer_state(&seg), WriterState::Alive);
    let header = seg.header();
    assert_eq!(header.pid, std::process::id());
    assert!(header.start_time > 0);
    assert!(header.events);
    let snap = seg.snapshot("alive");
    let alpha = snap.class("rt.Alpha").unwrap();
    assert_eq!((alpha.live, alpha.created, alpha.destroyed), (6, 10, 4));
    assert_eq!((alpha.first_serial, alpha.last_serial), (1, 10));
    let beta = snap.class("rt.Beta").unwrap();
    assert_eq!((beta.live, beta.updated), (1, 1));
    assert_eq!(snap.process.as_ref().unwrap().pid, std::process::id());
    assert_eq!(tracker.snapshot(), snap.classes);

    let mut cursor = seg.events_from_oldest();
    let mut events = Vec::new();
    assert_eq!(seg.poll_events(&mut cursor, &mut events), 0);
    assert_eq!(events.len(), 16);
    assert_eq!(events[0].kind, EventKind::Attached);
    assert_eq!(events[0].serial, 1);
    let classes = seg.classes();
    let alpha_slot = classes
        .iter()
        .find(|(_, c)| c.name == "rt.Alpha")
        .unwrap()
        .0;
    assert!(events[..14].iter().all(|e| e.slot == alpha_slot));
    assert_eq!(events[15].kind, EventKind::Updated);

    let history = seg.history();
    assert_eq!(history.times_ns.len(), 1);
    assert_eq!(history.total_live, vec![7]);
    let alpha_hist = &history
        .per_class
        .iter()
        .find(|(s, _)| *s == alpha_slot)
        .unwrap()
        .1;
    assert_eq!(alpha_hist, &vec![6]);

    tracker.close();
    assert!(!path.exists(), "a closed segment is removed");
}

#[test]
fn long_names_are_cut_and_flagged() {
    let dir = TestDir::new("names");
    let tracker = ShmTracker::new(dir.options());
    let long = format!("m.{}", "é".repeat(100));
    tracker.notify(EventKind::Attached, ClassId::named(&long), 1);
    let seg = Segment::open(&tracker.path().unwrap()).unwrap();
    let snap = seg.snapshot("alive");
    let rec = &snap.classes[0];
    assert!(rec.name_truncated);
    assert!(rec.name.len() <= layout::class::NAME_MAX as usize);
    assert!(long.starts_with(&rec.name));
    assert_eq!(seg.header().names_truncated, 1);
}

#[test]
fn full_class_table_folds_into_overflow() {
    let dir = TestDir::new("overflow");
    let tracker = ShmTracker::new(ShmOptions {
        class_capacity: 4,
        ..dir.options()
    });
    for i in 0..10 {
        tracker.notify(
            EventKind::Attached,
            ClassId::named(&format!("ov.C{i}")),
            i + 1,
        );
    }
    let seg = Segment::open(&tracker.path().unwrap()).unwrap();
    let snap = seg.snapshot("alive");
    assert_eq!(
        snap.classes.len(),
        4,
        "3 regular slots and the overflow slot"
    );
    let over = snap.classes.iter().find(|c| c.overflow).unwrap();
    assert_eq!(over.name, layout::OVERFLOW_NAME);
    assert_eq!(over.live, 7);
    assert_eq!(snap.classes_dropped, 7);
    assert_eq!(snap.total_live(), 10);
}

#[test]
fn lapped_reader_counts_lost_events() {
    let dir = TestDir::new("lapped");
    let tracker = ShmTracker::new(ShmOptions {
        ring_capacity: 16,
        ..dir.options()
    });
    let seg = Segment::open(&tracker.path().unwrap()).unwrap();
    let mut cursor = seg.events_from_now();
    let c = ClassId::named("lap.X");
    for s in 1..=100 {
        tracker.notify(EventKind::Attached, c, s);
    }
    let mut events = Vec::new();
    let lost = seg.poll_events(&mut cursor, &mut events);
    assert_eq!(lost, 84);
    assert_eq!(events.len(), 16);
    assert_eq!(events.first().unwrap().serial, 85);
    assert_eq!(events.last().unwrap().serial, 100);
    assert_eq!(cursor.lost, 84);
    // nothing new: nothing read, nothing lost
    events.clear();
    assert_eq!(seg.poll_events(&mut cursor, &mut events), 0);
    assert!(events.is_empty());
}

#[test]
fn a_serialised_ring_records_the_serialised_lane_and_says_what_it_skipped() {
    let dir = TestDir::new("serialring");
    let tracker = ShmTracker::new(ShmOptions {
        events_serialized: true,
        ..dir.options()
    });
    let seg = Segment::open(&tracker.path().unwrap()).unwrap();
    let mut cursor = seg.events_from_now();
    let c = ClassId::named("sr.X");
    for s in 1..=10 {
        tracker.notify_serialized(EventKind::Attached, c, s, 0);
    }
    // Another thread's notifications: counted, not recorded as events.
    thread::scope(|t| {
        t.spawn(|| {
            for s in 11..=13 {
                tracker.notify(EventKind::Attached, c, s);
            }
        });
    });
    tracker.notify_serialized(EventKind::Destroyed, c, 1, 0);
    let mut events = Vec::new();
    assert_eq!(
        seg.poll_events(&mut cursor, &mut events),
        3,
        "the skipped ones are missed"
    );
    let serials: Vec<u64> = events.iter().map(|e| e.serial).collect();
    assert_eq!(serials, (1..=10).chain([1]).collect::<Vec<_>>());
    assert_eq!(events.last().unwrap().kind, EventKind::Destroyed);
    assert_eq!(seg.header().events_skipped, 3);
    let (_, x) = seg
        .classes()
        .into_iter()
        .find(|(_, c)| c.name == "sr.X")
        .unwrap();
    assert_eq!((x.created, x.destroyed), (13, 1));
}

#[test]
fn serialised_event_stamps_follow_the_clock_across_a_pause() {
    let dir = TestDir::new("stamps");
    let period = Duration::from_millis(20);
    let tracker = ShmTracker::new(ShmOptions {
        events_serialized: true,
        sampler: true,
        history_period: period,
        ..dir.options()
    });
    let seg = Segment::open(&tracker.path().unwrap()).unwrap();
    let mut cursor = seg.events_from_now();
    let c = ClassId::named("st.X");
    // A burst shares clock readings; the pause after it is longer than
    // many sampler periods, so the next event reads the clock again.
    for s in 1..=1_000 {
        tracker.notify_serialized(EventKind::Attached, c, s, 0);
    }
    let pause = Duration::from_millis(300);
    thread::sleep(pause);
    tracker.notify_serialized(EventKind::Destroyed, c, 1, 0);
    let mut events = Vec::new();
    seg.poll_events(&mut cursor, &mut events);
    let last = events.pop().expect("the event after the pause");
    assert_eq!((last.kind, last.serial), (EventKind::Destroyed, 1));
    assert!(events.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    let burst_end = events.last().expect("burst events").time_ns;
    // The coarse clock's step is a few ms; the lag after a pause is at most
    // one sampler period.
    let slack = period.as_nanos() as u64 + 10_000_000;
    assert!(
        last.time_ns + slack >= burst_end + pause.as_nanos() as u64,
        "stamped {} ns after the burst",
        last.time_ns - burst_end
    );
}

#[test]
fn events_off_has_no_ring() {
    let dir = TestDir::new("noevents");
    let tracker = ShmTracker::new(ShmOptions {
        events: false,
        ..dir.options()
    });
    tracker.notify(EventKind::Attached, ClassId::named("ne.X"), 1);
    let seg = Segment::open(&tracker.path().unwrap()).unwrap();
    assert!(!seg.header().events);
    assert_eq!(seg.geometry().ring_capacity, 0);
    let mut out = Vec::new();
    assert_eq!(seg.poll_events(&mut EventCursor::default(), &mut out), 0);
    assert!(out.is_empty());
    assert_eq!(seg.snapshot("alive").class("ne.X").unwrap().live, 1);
}

#[test]
fn writers_race_a_reader_without_torn_or_negative_data() {
    let dir = TestDir::new("race");
    let tracker = Arc::new(ShmTracker::new(dir.options()));
    let path = tracker.path().unwrap();
    let classes: Vec<ClassId> = (0..8)
        .map(|i| ClassId::named(&format!("race.C{i}")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let path = path.clone();
        thread::spawn(move || {
            let seg = Segment::open(&path).unwrap();
            let mut last: std::collections::HashMap<String, (u64, u64)> = Default::default();
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) || reads < 10 {
                for c in seg.snapshot("alive").classes {
                    assert!(c.name.starts_with("race.C"), "torn name {:?}", c.name);
                    assert!(c.created >= c.destroyed);
                    assert_eq!(c.live, c.created - c.destroyed);
                    let prev = last
                        .insert(c.name.clone(), (c.created, c.destroyed))
                        .unwrap_or((0, 0));
                    assert!(
                        c.created >= prev.0 && c.destroyed >= prev.1,
                        "counters are monotone"
                    );
                }
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let tracker = tracker.clone();
            let classes = classes.clone();
            thread::spawn(move || {
                for i in 0..50_000u64 {
                    let c = classes[(i as usize + w) % classes.len()];
                    let serial = w as u64 * 1_000_000 + i + 1;
                    tracker.notify(EventKind::Attached, c, serial);
                    if i % 4 != 0 {
                        tracker.notify(EventKind::Destroyed, c, serial);
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() >= 10);
    let snap = Segment::open(&path).unwrap().snapshot("alive");
    let created: u64 = snap.classes.iter().map(|c| c.created).sum();
    assert_eq!(created, 200_000);
    assert_eq!(snap.total_live(), 50_000);
}

#[test]
fn sampler_thread_writes_history_and_heartbeat() {
    let dir = TestDir::new("sampler");
    let tracker = ShmTracker::new(ShmOptions {
        sampler: true,
        history_period: Duration::from_millis(20),
        ..dir.options()
    });
    tracker.notify(EventKind::Attached, ClassId::named("smp.X"), 1);
    let seg = Segment::open(&tracker.path().unwrap()).unwrap();
    let h0 = seg.header().heartbeat_ns;
    // Poll with a deadline rather than sleep a fixed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let history = loop {
        let h = seg.history();
        if h.times_ns.len() >= 3 || std::time::Instant::now() > deadline {
            break h;
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert!(history.times_ns.len() >= 3, "{history:?}");
    assert!(history.times_ns.windows(2).all(|w| w[0] < w[1]));
    assert!(seg.header().heartbeat_ns > h0);
    assert_eq!(*history.total_live.last().unwrap(), 1);
}

#[test]
fn missing_directory_degrades_to_private_counting() {
    let tracker = ShmTracker::new(ShmOptions {
        directory: Some(PathBuf::from("/nonexistent/pytracker")),
        sampler: false,
        ..Default::default()
    });
    assert!(tracker.path().is_none());
    let problem = tracker.take_problem_report().unwrap();
    assert!(problem.contains("/nonexistent/pytracker"), "{problem}");
    assert!(tracker.take_problem_report().is_none(), "reported once");
    tracker.notify(EventKind::Attached, ClassId::named("priv.X"), 1);
    assert_eq!(tracker.snapshot()[0].live, 1);
}

#[test]
fn discovery_finds_segments_by_pid() {
    let dir = TestDir::new("discovery");
    let tracker = ShmTracker::new(dir.options());
    let dirs = vec![dir.path().to_path_buf()];
    let list = list_segments_in(&dirs);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].pid, std::process::id());
    assert_eq!(list[0].state(), Some(WriterState::Alive));
    let seg = find_by_pid_in(std::process::id(), &dirs).unwrap();
    assert_eq!(seg.path(), tracker.path().unwrap());
    // this process runs but has no segment in an empty directory
    let empty = TestDir::new("discovery-empty");
    let err = find_by_pid_in(std::process::id(), &[empty.path().to_path_buf()]).unwrap_err();
    assert!(matches!(err, ReadError::NotTracked { .. }), "{err}");
    assert!(err.to_string().contains("start_exporter"));
    let err = find_by_pid_in(u32::MAX - 7, &dirs).unwrap_err();
    assert!(matches!(err, ReadError::NoSuchProcess { .. }), "{err}");
}

/// Writes `bytes` as a segment-named file and opens it.
fn open_bytes(dir: &TestDir, name: &str, bytes: &[u8]) -> Result<Segment, ReadError> {
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    Segment::open(&path)
}

fn valid_segment_bytes(dir: &TestDir) -> Vec<u8> {
    let tracker = ShmTracker::new(ShmOptions {
        class_capacity: 8,
        ring_capacity: 16,
        ..dir.options()
    });
    tracker.notify(EventKind::Attached, ClassId::named("bytes.X"), 1);
    tracker.sample();
    let b = bytes_of(&tracker.path().unwrap());
    tracker.close();
    b
}

fn put_u64(b: &mut [u8], off: u64, v: u64) {
    b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn bad_input_gives_typed_errors() {
    let dir = TestDir::new("faults");
    let good = valid_segment_bytes(&dir);
    assert!(open_bytes(&dir, "good", &good).is_ok());

    let err = open_bytes(&dir, "text", b"hello, this is not a segment at all").unwrap_err();
    assert!(matches!(err, ReadError::BadMagic { .. }), "{err}");
    let mut b = good.clone();
    b[0] ^= 0xff;
    assert!(matches!(
        open_bytes(&dir, "magic", &b).unwrap_err(),
        ReadError::BadMagic { .. }
    ));

    let mut b = good.clone();
    b[header_off(layout::header::ENDIAN)..][..4].copy_from_slice(&0x0403_0201u32.to_le_bytes());
    assert!(matches!(
        open_bytes(&dir, "endian", &b).unwrap_err(),
        ReadError::EndianMismatch { .. }
    ));

    let mut b = good.clone();
    // A segment of the previous format (1.0) is refused with a message
    // that says what to do.
    b[header_off(layout::header::VERSION)..][..4].copy_from_slice(&1u32.to_le_bytes());
    let err = open_bytes(&dir, "version", &b).unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::Version {
                found: 1,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 1"), "{err}");
    assert!(err.to_string().contains("matching"), "{err}");

    let err = open_bytes(&dir, "trunc", &good[..good.len() / 2]).unwrap_err();
    assert!(matches!(err, ReadError::Truncated { .. }), "{err}");
    let err = open_bytes(&dir, "tiny", &good[..100]).unwrap_err();
    assert!(matches!(err, ReadError::Truncated { .. }), "{err}");

    let mut b = good.clone();
    put_u64(&mut b, layout::header::STATE, layout::STATE_INIT);
    assert!(matches!(
        open_bytes(&dir, "init", &b).unwrap_err(),
        ReadError::NotReady { .. }
    ));

    for (field, value) in [
        (layout::header::CLASS_CAPACITY, u64::MAX),
        (layout::header::CLASS_OFFSET, 12),
        (layout::header::RING_CAPACITY, 3),
        (layout::header::HISTORY_CAPACITY, 0),
        (layout::header::STATE, 99),
        (layout::header::RING_OFFSET, u64::MAX - 4),
    ] {
        let mut b = good.clone();
        put_u64(&mut b, field, value);
        let err = open_bytes(&dir, "corrupt", &b).unwrap_err();
        assert!(
            matches!(err, ReadError::Corrupt { .. } | ReadError::Truncated { .. }),
            "field {field}: {err}"
        );
    }

    // Garbage inside a valid header: no panic, values clamped.
    let mut b = good.clone();
    put_u64(&mut b, layout::header::CLASS_COUNT, u64::MAX);
    put_u64(&mut b, layout::header::RING_HEAD, u64::MAX);
    put_u64(&mut b, layout::header::HISTORY_HEAD, u64::MAX);
    put_u64(
        &mut b,
        layout::HEADER_SIZE + layout::class::NAME_LEN,
        u64::MAX,
    );
    let seg = open_bytes(&dir, "garbage", &b).unwrap();
    let _ = seg.snapshot("exited");
    let _ = seg.history();
    let mut out = Vec::new();
    seg.poll_events(&mut seg.events_from_oldest(), &mut out);

    let err = Segment::open(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, ReadError::NotFound { .. }));
    std::os::unix::fs::symlink(dir.path().join("good"), dir.path().join("link")).unwrap();
    let err = Segment::open(&dir.path().join("link")).unwrap_err();
    assert!(matches!(err, ReadError::NotRegular { .. }), "{err}");
    let err = Segment::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, ReadError::NotRegular { .. } | ReadError::Io { .. }),
        "{err}"
    );
}

fn header_off(off: u64) -> usize {
    off as usize
}

#[test]
fn writer_refuses_precreated_file_and_symlinks() {
    // The writer creates under a temporary name with O_EXCL|O_NOFOLLOW, so a
    // planted file or link at its final name is replaced, never followed.
    let dir = TestDir::new("planted");
    let victim = dir.path().join("victim");
    fs::write(&victim, b"keep me").unwrap();
    let tracker = ShmTracker::new(dir.options());
    let path = tracker.path().unwrap();
    drop(tracker);
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let tracker2 = ShmTracker::new(dir.options());
    assert_ne!(tracker2.path().unwrap(), path);
    assert_eq!(fs::read(&victim).unwrap(), b"keep me");
}

#[test]
fn one_poll_reads_at_most_a_bounded_window() {
    let dir = TestDir::new("window");
    let tracker = ShmTracker::new(ShmOptions {
        ring_capacity: 1 << 17,
        ..dir.options()
    });
    let seg = Segment::open(&tracker.path().unwrap()).unwrap();
    let mut cursor = seg.events_from_now();
    let c = ClassId::named("win.X");
    for s in 1..=100_000 {
        tracker.notify(EventKind::Attached, c, s);
    }
    let mut events = Vec::new();
    let lost = seg.poll_events(&mut cursor, &mut events);
    assert_eq!(events.len() as u64, tracker_shm::MAX_EVENTS_PER_POLL);
    assert_eq!(lost, 100_000 - tracker_shm::MAX_EVENTS_PER_POLL);
    assert_eq!(events.last().unwrap().serial, 100_000);
}

#[test]
fn pruning_work_is_bounded_whatever_the_directory_holds() {
    let dir = TestDir::new("prune-bound");
    let me = tracker_shm::effective_uid();
    // 50,000 files named like this user's segments (the directory is
    // writable by anyone, so their number is not ours to choose).
    for n in 0..50_000u32 {
        fs::write(
            dir.path()
                .join(format!("pytracker-{me}-{}-1-{n}", 4_000_000 + n)),
            b"",
        )
        .unwrap();
    }
    let started = std::time::Instant::now();
    let report = tracker_shm::prune_exited(dir.path(), 8);
    assert!(report.opened <= tracker_shm::PRUNE_MAX_OPENED, "{report:?}");
    assert!(
        report.entries <= tracker_shm::PRUNE_MAX_ENTRIES,
        "{report:?}"
    );
    assert_eq!(
        report.removed, 0,
        "files that are not segments are never removed"
    );
    eprintln!(
        "pruned 50,000 planted files in {:?}: {report:?}",
        started.elapsed()
    );
}

#[test]
fn history_read_while_the_writer_samples_is_never_torn() {
    let dir = TestDir::new("history-race");
    let tracker = ShmTracker::new(ShmOptions {
        history_capacity: 4,
        ..dir.options()
    });
    let class = ClassId::named("race.History");
    tracker.notify(EventKind::Attached, class, 1);
    let segment = Segment::open(&tracker.path().unwrap()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (tracker, stop) = (tracker.clone(), stop.clone());
        thread::spawn(move || {
            let mut serial = 2;
            while !stop.load(Ordering::Relaxed) {
                tracker.notify(EventKind::Attached, class, serial);
                serial += 1;
                tracker.sample();
            }
        })
    };
    // The writer fills the ring before the race starts: a scheduler that
    // runs one thread at a time (valgrind's) may otherwise starve it for the
    // whole loop below.
    let filled_by = std::time::Instant::now() + Duration::from_secs(60);
    while segment.history().times_ns.len() < 3 {
        assert!(
            std::time::Instant::now() < filled_by,
            "the writer never sampled"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut reads = 0u64;
    let mut full_reads = 0u64;
    while std::time::Instant::now() < deadline {
        if reads % 1024 == 0 {
            // A point at which a one-thread-at-a-time scheduler switches.
            thread::yield_now();
        }
        let h = segment.history();
        reads += 1;
        // Every sample kept is whole: times strictly increase, and a class's
        // live count never goes down (objects are only ever added).
        assert!(
            h.times_ns.windows(2).all(|w| w[0] < w[1]),
            "{:?}",
            h.times_ns
        );
        assert!(
            h.total_live.windows(2).all(|w| w[0] <= w[1]),
            "{:?}",
            h.total_live
        );
        for (_, series) in &h.per_class {
            assert_eq!(series.len(), h.times_ns.len());
            assert!(series.windows(2).all(|w| w[0] <= w[1]), "{series:?}");
        }
        if h.times_ns.len() == 3 {
            full_reads += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        reads > 1000 && full_reads > 0,
        "{reads} reads, {full_reads} with a full window"
    );
}

#[test]
fn history_before_the_ring_is_full_keeps_every_sample() {
    let dir = TestDir::new("history-partial");
    let tracker = ShmTracker::new(ShmOptions {
        history_capacity: 8,
        ..dir.options()
    });
    tracker.notify(EventKind::Attached, ClassId::named("partial.C"), 1);
    for _ in 0..3 {
        tracker.sample();
    }
    let segment = Segment::open(&tracker.path().unwrap()).unwrap();
    let h = segment.history();
    assert_eq!(h.times_ns.len(), 3);
    assert_eq!(h.total_live, vec![1, 1, 1]);
}

#[test]
fn writers_of_a_service_take_the_lowest_free_worker_number() {
    let dir = TestDir::new("workers");
    let of = |service: &str| ShmOptions {
        service: Some(service.into()),
        ..dir.options()
    };
    let worker = |t: &ShmTracker| Segment::open(&t.path().unwrap()).unwrap().header().worker;
    let a = ShmTracker::new(of("web"));
    let b = ShmTracker::new(of("web"));
    let other = ShmTracker::new(of("jobs"));
    assert_eq!((worker(&a), worker(&b), worker(&other)), (0, 1, 0));
    // A writer that goes frees its number for the next one.
    a.close();
    let c = ShmTracker::new(of("web"));
    assert_eq!(worker(&c), 0);
    let d = ShmTracker::new(of("web"));
    assert_eq!(worker(&d), 2);
    // A segment left behind by a writer that is gone holds no number: a
    // copy of b's file, not locked by anyone, says worker 1.
    let b_path = b.path().unwrap();
    let mut name = SegmentName::parse(b_path.file_name().unwrap().to_str().unwrap()).unwrap();
    name.seq += 100;
    let copy = dir.path().join(name.to_string());
    fs::copy(&b_path, &copy).unwrap();
    b.close();
    let e = ShmTracker::new(of("web"));
    assert_eq!(worker(&e), 1);
    assert_eq!(
        Segment::open(&e.path().unwrap()).unwrap().header().service,
        "web"
    );
}

#[test]
fn pruning_keeps_the_newest_exited_segment_of_every_service() {
    let dir = TestDir::new("prune-services");
    // Segments left by writers that are gone: copies of closed writers'
    // files (nobody holds their lock), one of a quiet service first, then
    // ten of a busy one.
    let leave = |service: &str| {
        let t = ShmTracker::new(ShmOptions {
            service: Some(service.into()),
            // Writers prune as they start: not here.
            keep_exited: 100,
            ..dir.options()
        });
        let path = t.path().unwrap();
        let mut name = SegmentName::parse(path.file_name().unwrap().to_str().unwrap()).unwrap();
        name.seq += 1000;
        let copy = dir.path().join(name.to_string());
        fs::copy(&path, &copy).unwrap();
        t.close();
        thread::sleep(Duration::from_millis(3));
        copy
    };
    let quiet = leave("quiet");
    let busy: Vec<PathBuf> = (0..10).map(|_| leave("busy")).collect();
    let report = tracker_shm::prune_exited(dir.path(), 3);
    assert_eq!(report.removed, 7, "{report:?}");
    assert!(quiet.exists(), "the quiet service's last inventory stays");
    for (i, path) in busy.iter().enumerate() {
        assert_eq!(path.exists(), i >= 7, "busy segment {i}");
    }
}

/// Bytes of storage the file system holds for `path`.
fn stored_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_segment_stores_what_its_classes_use() {
    let dir = TestDir::new("footprint");
    // The defaults (events on), 100 classes.
    let tracker = ShmTracker::new(dir.options());
    let path = tracker.path().unwrap();
    let geo = layout::Geometry::with_sites(4096, 512, 96, 512);
    assert_eq!(fs::metadata(&path).unwrap().len(), geo.total_size);
    let empty = stored_bytes(&path);
    for i in 0..100 {
        let class = ClassId::named(&format!("footprint.C{i}"));
        for serial in 0..10 {
            tracker.notify(EventKind::Attached, class, i * 100 + serial);
        }
        tracker.sample();
    }
    let used = stored_bytes(&path);
    eprintln!("empty: {empty} bytes; 100 classes: {used} bytes");
    assert!(used <= 256 * 1024, "{used} bytes for 100 classes");
    assert!(
        used >= empty + 100 * geo.class_slot_size,
        "{used} bytes: the class slots have storage"
    );
    let seg = Segment::open(&path).unwrap();
    let snap = seg.snapshot("alive");
    assert_eq!(snap.classes.iter().filter(|c| c.live == 10).count(), 100);
}

#[test]
fn reserving_the_last_slots_never_grows_the_file() {
    let dir = TestDir::new("no-growth");
    // Events off: the site table ends the file.
    let tracker = ShmTracker::new(ShmOptions {
        events: false,
        class_capacity: 3,
        site_capacity: 3,
        ..dir.options()
    });
    let path = tracker.path().unwrap();
    let size = layout::Geometry::with_sites(3, 0, 96, 3).total_size;
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    for i in 0..4 {
        let class = ClassId::named(&format!("growth.C{i}"));
        tracker.notify(EventKind::Attached, class, i + 1);
        let frames = vec![tracker_shm::Frame {
            file: "app.py".into(),
            line: i,
            function: "f".into(),
        }];
        let _ = tracker.site(class, i, || frames);
    }
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    assert_eq!(Segment::open(&path).unwrap().sites().len(), 3);
}

//! Property tests: every command's output path, fed mutated segments whose
//! classes have hostile names, never panics, never lets a control
//! character through, and never prints one class twice.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;
use proptest::prelude::*;
use tracker_cli::cli::Cli;
use tracker_core::{is_unsafe_char, ClassId, EventKind, Tracker, HOSTILE_NAMES};
use tracker_shm::{ShmOptions, ShmTracker};

fn scratch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-outputs");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real segment whose classes carry the hostile names, plus one called
/// like the overflow slot.
fn template() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let tracker = ShmTracker::new(ShmOptions {
            directory: Some(scratch()),
            class_capacity: 32,
            ring_capacity: 16,
            history_capacity: 4,
            sampler: false,
            ..Default::default()
        });
        let names = HOSTILE_NAMES
            .iter()
            .map(|(n, _)| *n)
            .chain(["<other classes>", "fuzz.Plain"]);
        for (i, name) in names.enumerate() {
            let c = ClassId::named(name);
            let serial = i as u64 + 1;
            tracker.notify(EventKind::Attached, c, serial);
            tracker.notify(EventKind::Updated, c, serial);
        }
        tracker.sample();
        let bytes = fs::read(tracker.path().unwrap()).unwrap();
        tracker.close();
        bytes
    })
}

fn run(args: &[&str]) -> (i32, String) {
    let cli = Cli::try_parse_from(std::iter::once("pytracker-cli").chain(args.iter().copied()))
        .expect("valid arguments");
    let mut out = Vec::new();
    let code = match tracker_cli::run_command(&cli.command, &mut out) {
        Ok(code) => code,
        Err(e) => {
            out.extend_from_slice(e.to_string().as_bytes());
            e.exit_code()
        }
    };
    (code, String::from_utf8(out).expect("UTF-8 output"))
}

fn assert_clean(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && is_unsafe_char(c))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: raw control characters {bad:?} in\n{text}"
    );
}

fn exercise(bytes: &[u8], name: &str) {
    let path = scratch().join(name);
    fs::write(&path, bytes).unwrap();
    let p = path.to_str().unwrap();
    let snap_file = scratch().join(format!("{name}.json"));
    let (code, json) = run(&["dump", "--path", p, "--format", "json"]);
    assert_clean("dump json", &json);
    if code == 0 {
        fs::write(&snap_file, &json).unwrap();
        let snap: tracker_core::Snapshot = serde_json::from_str(&json).unwrap();
        let mut names: Vec<_> = snap.classes.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a class appears twice: {names:?}");
    }
    for format in ["table", "csv", "openmetrics"] {
        let (_, text) = run(&["dump", "--path", p, "--format", format]);
        assert_clean(format, &text);
        if format == "openmetrics" {
            let mut series: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s))
                .collect();
            let n = series.len();
            series.sort_unstable();
            series.dedup();
            assert_eq!(n, series.len(), "duplicate OpenMetrics series:\n{text}");
        }
    }
    let (_, text) = run(&["diff", "--path", p, "--interval", "0s", "--all"]);
    assert_clean("diff", &text);
    // pytracker-top's view of the same segment, table and detail pane.
    if let Ok(seg) = tracker_shm::Segment::open(&path) {
        let mut reader = tracker_cli::top::sample::Reader::new(&seg);
        let mut app = tracker_cli::top::app::App::new(std::time::Duration::from_secs(1));
        for _ in 0..2 {
            if let Ok(sample) = reader.read(&seg) {
                app.ingest(sample);
            }
        }
        for detail in [false, true] {
            if detail {
                app.apply(tracker_cli::top::keys::Command::Open);
            }
            let mut term =
                ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
            let mut scroll = tracker_cli::top::view::Scroll::default();
            let inputs = tracker_cli::top::view::Inputs {
                now_unix_ms: 0,
                palette: tracker_cli::top::view::Palette::new(false),
            };
            term.draw(|f| tracker_cli::top::view::draw(f, &app, &mut scroll, &inputs))
                .unwrap();
            let screen: String = term
                .backend()
                .buffer()
                .content()
                .iter()
                .map(|c| c.symbol())
                .collect();
            assert_clean("top", &screen);
        }
    }
    if code == 0 {
        let s = snap_file.to_str().unwrap();
        for args in [
            &["check", s, "--max", "*=0", "--allow-unmatched"][..],
            &["check", s, "--baseline", s, "--max-growth-pct", "0"][..],
            &["diff", s, s, "--all"][..],
        ] {
            let (_, text) = run(args);
            assert_clean("check/diff of files", &text);
        }
    }
    let _ = fs::remove_file(&path);
    let _ = fs::remove_file(Path::new(&snap_file));
}

#[test]
fn the_template_itself() {
    exercise(template(), "template");
    let path = scratch().join("template-shown");
    fs::write(&path, template()).unwrap();
    let (code, table) = run(&["dump", "--path", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{table}");
    for (_, shown) in HOSTILE_NAMES {
        assert!(
            table.lines().any(|l| l.starts_with(shown)),
            "{shown} in\n{table}"
        );
    }
    assert!(table
        .lines()
        .any(|l| l.starts_with("builtins.<other classes> ")));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn mutated_segment(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 1..16)) {
        let mut bytes = template().to_vec();
        let words = bytes.len() / 8;
        for (index, value) in edits {
            let at = index.index(words) * 8;
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        exercise(&bytes, "mutated");
    }

    #[test]
    fn mutated_name_bytes(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..32)) {
        let mut bytes = template().to_vec();
        let len = bytes.len();
        for (index, value) in edits {
            bytes[index.index(len)] = value;
        }
        exercise(&bytes, "bytes");
    }
}

#[test]
fn crafted_counters_saturate_and_say_so() {
    use tracker_core::counter_words as w;
    use tracker_shm::layout::{class, header};
    let mut bytes = template().to_vec();
    let word = |b: &[u8], off: u64| {
        u64::from_le_bytes(b[off as usize..off as usize + 8].try_into().unwrap())
    };
    let class_offset = word(&bytes, header::CLASS_OFFSET);
    let slot_size = word(&bytes, header::CLASS_SLOT_SIZE);
    // Two classes whose lanes add up past 2^64, live objects included.
    for slot in [0u64, 1] {
        let counters = class_offset + slot * slot_size + class::COUNTERS;
        for (lane_word, value) in [(w::CREATED_SHARED, u64::MAX - 5), (w::CREATED_SERIAL, 10)] {
            let at = (counters + 8 * lane_word) as usize;
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
    }
    let path = scratch().join("saturated");
    fs::write(&path, &bytes).unwrap();
    let p = path.to_str().unwrap();
    let (code, table) = run(&["dump", "--path", p]);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("18446744073709551615"), "{table}");
    assert!(table.contains("warning: some counts overflowed"), "{table}");
    let (_, json) = run(&["dump", "--path", p, "--format", "json"]);
    let snap: tracker_core::Snapshot = serde_json::from_str(&json).unwrap();
    assert!(snap.saturated());
    assert_eq!(snap.total_live(), u64::MAX);
    assert_eq!(snap.classes.iter().filter(|c| c.saturated).count(), 2);
    let _ = fs::remove_file(&path);
}

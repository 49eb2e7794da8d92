//! `diff`: per-class change between two snapshots.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use tracker_core::Snapshot;

use crate::cli::{DiffArgs, DiffFormat};
use crate::error::{CliError, CliResult};
use crate::format::signed;
use crate::output::{write_json, write_table};
use crate::snapshots;

/// The change of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassDiff {
    /// Class name.
    pub name: String,
    /// Live before.
    pub live_before: u64,
    /// Live after.
    pub live_after: u64,
    /// Change in live objects.
    pub live: i64,
    /// Objects created between the snapshots.
    pub created: i64,
    /// Objects destroyed between the snapshots.
    pub destroyed: i64,
}

fn delta(after: u64, before: u64) -> i64 {
    (after as i128 - before as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Version of the `diff --format json` document; raised when a field
/// changes meaning or goes away (new fields do not raise it).
pub const DIFF_SCHEMA_VERSION: u32 = 1;

/// The `diff --format json` document.
#[derive(Debug, Serialize)]
pub struct DiffDocument<'a> {
    /// [`DIFF_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When the first snapshot was taken, Unix milliseconds.
    pub before_unix_ms: u64,
    /// When the second one was taken.
    pub after_unix_ms: u64,
    /// The process both describe, if they say.
    pub process: Option<&'a tracker_core::ProcessInfo>,
    /// Per-class changes, largest growth first.
    pub classes: &'a [ClassDiff],
}

/// Why `before` and `after` cannot be compared, if they cannot: snapshots
/// of two processes (or of two runs of one pid), or given in the wrong
/// order. Either would show changes that never happened.
pub fn incomparable(before: &Snapshot, after: &Snapshot) -> Option<String> {
    if let (Some(b), Some(a)) = (&before.process, &after.process) {
        if (b.pid, b.started_unix_ms) != (a.pid, a.started_unix_ms) {
            return Some(format!(
                "the snapshots describe different processes (pid {} started at {} ms, and pid {}                  started at {} ms): compare two snapshots of one process",
                b.pid, b.started_unix_ms, a.pid, a.started_unix_ms
            ));
        }
    }
    if before.taken_unix_ms > after.taken_unix_ms {
        return Some(format!(
            "BEFORE was taken after AFTER ({} ms > {} ms): give the older snapshot first",
            before.taken_unix_ms, after.taken_unix_ms
        ));
    }
    // Counts of one process only grow: a class created less often in AFTER
    // means the order is wrong even if the clocks say otherwise.
    let shrank = before.classes.iter().find(|b| {
        after
            .class(&b.name)
            .is_some_and(|a| a.created < b.created || a.destroyed < b.destroyed)
    });
    shrank.map(|c| {
        format!(
            "{} has fewer objects created or destroyed in AFTER than in BEFORE: AFTER is older,              or from another run of the process; give the older snapshot first",
            tracker_core::escape_control(&c.name)
        )
    })
}

/// Per-class changes, largest live growth first (then by name).
pub fn compare(before: &Snapshot, after: &Snapshot) -> Vec<ClassDiff> {
    let mut names: BTreeMap<&str, (Option<&_>, Option<&_>)> = BTreeMap::new();
    for c in &before.classes {
        names.entry(&c.name).or_default().0 = Some(c);
    }
    for c in &after.classes {
        names.entry(&c.name).or_default().1 = Some(c);
    }
    let mut out: Vec<ClassDiff> = names
        .into_iter()
        .map(|(name, (b, a))| {
            let get =
                |c: Option<&tracker_core::ClassSnapshot>,
                 f: fn(&tracker_core::ClassSnapshot) -> u64| { c.map_or(0, f) };
            ClassDiff {
                name: name.to_string(),
                live_before: get(b, |c| c.live),
                live_after: get(a, |c| c.live),
                live: delta(get(a, |c| c.live), get(b, |c| c.live)),
                created: delta(get(a, |c| c.created), get(b, |c| c.created)),
                destroyed: delta(get(a, |c| c.destroyed), get(b, |c| c.destroyed)),
            }
        })
        .collect();
    out.sort_by(|x, y| y.live.cmp(&x.live).then_with(|| x.name.cmp(&y.name)));
    out
}

/// Runs `diff`.
pub fn run(args: &DiffArgs, out: &mut dyn Write) -> CliResult<i32> {
    let (before, after) = match (&args.before, &args.after) {
        (Some(b), Some(a)) => (snapshots::load(b)?, snapshots::load(a)?),
        _ => {
            let segment = snapshots::open_segment(&args.target)?;
            let before = snapshots::take(&segment)?;
            let pid = segment.header().pid;
            let waiting = format!(
                "pytracker-cli: second snapshot of pid {pid} in {} (--interval)\n",
                humantime::format_duration(args.interval)
            );
            let _ = std::io::stderr().write_all(waiting.as_bytes());
            std::thread::sleep(args.interval);
            (before, snapshots::take(&segment)?)
        }
    };
    if let Some(why) = incomparable(&before, &after) {
        return Err(CliError::Usage(why));
    }
    let mut diffs = compare(&before, &after);
    if !args.all {
        diffs.retain(|d| d.live != 0 || d.created != 0 || d.destroyed != 0);
    }
    match args.format {
        DiffFormat::Json => write_json(
            out,
            &DiffDocument {
                schema_version: DIFF_SCHEMA_VERSION,
                before_unix_ms: before.taken_unix_ms,
                after_unix_ms: after.taken_unix_ms,
                process: after.process.as_ref(),
                classes: &diffs,
            },
        )?,
        DiffFormat::Table => {
            let secs = after.taken_unix_ms.saturating_sub(before.taken_unix_ms) as f64 / 1000.0;
            writeln!(out, "{} classes changed over {secs:.1}s", diffs.len())?;
            let mut rows = vec![["CLASS", "LIVE", "Δ LIVE", "Δ CREATED", "Δ DESTROYED"]
                .map(String::from)
                .to_vec()];
            for d in &diffs {
                rows.push(vec![
                    tracker_core::escape_control(&d.name).into_owned(),
                    d.live_after.to_string(),
                    signed(d.live),
                    signed(d.created),
                    signed(d.destroyed),
                ]);
            }
            write_table(out, &rows, &[1, 2, 3, 4])?;
            crate::output::write_saturation_note(out, &after)?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_core::ClassSnapshot;

    fn snap(classes: &[(&str, u64, u64)]) -> Snapshot {
        Snapshot::new(
            classes
                .iter()
                .map(|(n, live, created)| ClassSnapshot {
                    name: n.to_string(),
                    live: *live,
                    created: *created,
                    destroyed: created - live,
                    ..Default::default()
                })
                .collect(),
        )
    }

    #[test]
    fn snapshots_of_two_processes_or_in_the_wrong_order_are_refused() {
        let process = |pid, started| tracker_core::ProcessInfo {
            pid,
            program: "p".into(),
            started_unix_ms: started,
            writer_state: "alive".into(),
            ..Default::default()
        };
        let mut before = snap(&[("a", 5, 10)]);
        let mut after = snap(&[("a", 6, 12)]);
        before.taken_unix_ms = 1_000;
        after.taken_unix_ms = 2_000;
        before.process = Some(process(7, 100));
        after.process = Some(process(7, 100));
        assert_eq!(incomparable(&before, &after), None);
        after.process = Some(process(7, 900));
        assert!(incomparable(&before, &after)
            .unwrap()
            .contains("different processes"));
        after.process = Some(process(7, 100));
        assert!(incomparable(&after, &before)
            .unwrap()
            .contains("give the older snapshot first"));
        // Same clock, swapped counts.
        after.taken_unix_ms = 1_000;
        assert!(incomparable(&after, &before)
            .unwrap()
            .contains("fewer objects"));
    }

    #[test]
    fn growth_first_and_new_and_gone_classes() {
        let before = snap(&[("a", 5, 10), ("b", 3, 3), ("gone", 2, 2)]);
        let after = snap(&[("a", 5, 20), ("b", 9, 9), ("new", 1, 1)]);
        let d = compare(&before, &after);
        let names: Vec<_> = d.iter().map(|x| (x.name.as_str(), x.live)).collect();
        assert_eq!(names, vec![("b", 6), ("new", 1), ("a", 0), ("gone", -2)]);
        assert_eq!((d[2].created, d[2].destroyed), (10, 10));
    }
}

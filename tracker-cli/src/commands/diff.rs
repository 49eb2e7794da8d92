//! `diff`: per-class change between two snapshots.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use tracker_core::Snapshot;

use crate::cli::{DiffArgs, DiffFormat};
use crate::error::CliResult;
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
            std::thread::sleep(args.interval);
            (before, snapshots::take(&segment)?)
        }
    };
    let mut diffs = compare(&before, &after);
    if !args.all {
        diffs.retain(|d| d.live != 0 || d.created != 0 || d.destroyed != 0);
    }
    match args.format {
        DiffFormat::Json => write_json(out, &diffs)?,
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
    fn growth_first_and_new_and_gone_classes() {
        let before = snap(&[("a", 5, 10), ("b", 3, 3), ("gone", 2, 2)]);
        let after = snap(&[("a", 5, 20), ("b", 9, 9), ("new", 1, 1)]);
        let d = compare(&before, &after);
        let names: Vec<_> = d.iter().map(|x| (x.name.as_str(), x.live)).collect();
        assert_eq!(names, vec![("b", 6), ("new", 1), ("a", 0), ("gone", -2)]);
        assert_eq!((d[2].created, d[2].destroyed), (10, 10));
    }
}

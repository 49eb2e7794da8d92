//! `last`: what a process that crashed or was killed left behind.

use std::io::Write;

use serde::Serialize;
use tracker_core::{escape_control, ClassSnapshot, Snapshot, SNAPSHOT_SCHEMA_VERSION};
use tracker_shm::{list_segments, History, Segment, WriterState};

use crate::cli::{LastArgs, LastFormat};
use crate::error::{CliError, CliResult};
use crate::format::{age, one_line, signed};
use crate::output::{mib, write_json, write_table};

/// A class at the writer's end, with its trend before it.
#[derive(Debug, Serialize)]
pub struct LastClass {
    /// The record as the segment left it (live count at the end, peak,
    /// ages).
    #[serde(flatten)]
    pub record: ClassSnapshot,
    /// Change of the live count over the last minute of history before
    /// the end (none without two samples).
    pub trend: Option<i64>,
}

/// Version of the `last --format json` document.
pub const LAST_SCHEMA_VERSION: u32 = 1;

/// The `last --format json` document.
#[derive(Debug, Serialize)]
pub struct LastDocument {
    /// [`LAST_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Version of the snapshot fields inside.
    pub snapshot_schema_version: u32,
    /// The process, as its segment describes it.
    pub process: Option<tracker_core::ProcessInfo>,
    /// Seconds the trend covers.
    pub trend_seconds: u64,
    /// Resident memory over the last minute before the end, oldest first
    /// (bytes; 0 where unknown).
    pub rss_trend_bytes: Vec<u64>,
    /// The classes, most live first.
    pub classes: Vec<LastClass>,
}

/// The trend window: the last minute before the end.
const TREND_NS: u64 = 60_000_000_000;

/// The exited writer's segment `args` asks for: the one whose writer was
/// seen last, among those of the pid or service given (or all).
fn choose(args: &LastArgs) -> CliResult<Segment> {
    let mut found: Vec<(u64, Segment)> = Vec::new();
    let mut live_match = false;
    for entry in list_segments() {
        if args.pid.is_some_and(|p| p != entry.pid) {
            continue;
        }
        let Ok(seg) = entry.segment else { continue };
        let h = seg.header();
        if args.service.as_deref().is_some_and(|s| s != h.service) {
            continue;
        }
        if tracker_shm::writer_state(&seg) == WriterState::Alive {
            live_match = true;
            continue;
        }
        let seen = h
            .created_unix_ms
            .saturating_add(h.heartbeat_ns.saturating_sub(h.created_mono_ns) / 1_000_000);
        found.push((seen, seg));
    }
    found.sort_by_key(|(seen, _)| std::cmp::Reverse(*seen));
    match found.into_iter().next() {
        Some((_, seg)) => Ok(seg),
        None => {
            let which = match (&args.pid, &args.service) {
                (Some(p), _) => format!("of pid {p}"),
                (None, Some(s)) => format!("of service {:?}", escape_control(s)),
                (None, None) => "at all".into(),
            };
            let hint = if live_match {
                ": the matching process is still running (read it with dump or pytracker-top)"
            } else {
                ": a process that exits normally removes its segment; one that crashes or is \
                 killed leaves it, and writers keep the 8 newest per user (pytracker-cli ps \
                 lists what is there)"
            };
            Err(CliError::Usage(format!(
                "no segment of an exited process {which}{hint}"
            )))
        }
    }
}

/// Each class's live-count change over the last [`TREND_NS`] of `h`.
fn trends(h: &History, classes: &[(u32, ClassSnapshot)]) -> (Vec<Option<i64>>, u64, Vec<u64>) {
    let end = h.times_ns.last().copied().unwrap_or(0);
    let from = h
        .times_ns
        .iter()
        .position(|&t| end.saturating_sub(t) <= TREND_NS)
        .unwrap_or(0);
    let seconds = end.saturating_sub(h.times_ns.get(from).copied().unwrap_or(end)) / 1_000_000_000;
    let per_class = classes
        .iter()
        .map(|(slot, _)| {
            let (_, series) = h.per_class.iter().find(|(s, _)| s == slot)?;
            let first = *series.get(from)?;
            let last = *series.last()?;
            (series.len() > from + 1).then(|| i64::from(last) - i64::from(first))
        })
        .collect();
    (
        per_class,
        seconds,
        h.rss_bytes[from.min(h.rss_bytes.len())..].to_vec(),
    )
}

/// Runs `last`.
pub fn run(args: &LastArgs, out: &mut dyn Write) -> CliResult<i32> {
    let seg = choose(args)?;
    let state = tracker_shm::writer_state(&seg);
    let snap: Snapshot = seg.snapshot(state.label());
    let classes = seg.classes();
    let history = seg.history();
    seg.intact()?;
    let (trend, trend_seconds, rss_trend) = trends(&history, &classes);
    let mut rows: Vec<LastClass> = classes
        .into_iter()
        .zip(trend)
        .map(|((_, record), trend)| LastClass { record, trend })
        .collect();
    rows.sort_by(|a, b| {
        b.record
            .live
            .cmp(&a.record.live)
            .then_with(|| a.record.name.cmp(&b.record.name))
    });
    if let Some(k) = args.top {
        rows.truncate(k);
    }
    match args.format {
        LastFormat::Json => write_json(
            out,
            &LastDocument {
                schema_version: LAST_SCHEMA_VERSION,
                snapshot_schema_version: SNAPSHOT_SCHEMA_VERSION,
                process: snap.process.clone(),
                trend_seconds,
                rss_trend_bytes: rss_trend,
                classes: rows,
            },
        )?,
        LastFormat::Table => {
            let Some(p) = &snap.process else {
                return Ok(0);
            };
            let now = tracker_core::now_unix_ms();
            let seen = p.last_seen_unix_ms.unwrap_or(p.started_unix_ms);
            writeln!(
                out,
                "pid {}  {}  service {}  {}",
                p.pid,
                one_line(&p.program, 80),
                one_line(&p.service, 64),
                p.writer_state
            )?;
            writeln!(
                out,
                "last seen {} ago, after running {}",
                age(now.saturating_sub(seen) / 1000),
                age(seen.saturating_sub(p.started_unix_ms) / 1000)
            )?;
            if let Some(rss) = p.rss_bytes {
                let before = rss_trend.iter().copied().find(|&b| b != 0);
                let change = match before {
                    Some(b) if trend_seconds > 0 => format!(
                        " ({} over its last {})",
                        signed_mib(rss as i64 - b as i64),
                        age(trend_seconds)
                    ),
                    _ => String::new(),
                };
                writeln!(out, "resident memory at the end {}{change}", mib(rss))?;
            }
            writeln!(
                out,
                "{} classes, {} live objects at the end",
                snap.classes.len(),
                snap.total_live()
            )?;
            let mut table = vec![vec![
                "CLASS".to_string(),
                "LIVE".into(),
                "PEAK".into(),
                "PEAK AT".into(),
                format!("TREND {}", age(trend_seconds)),
                "OLDEST".into(),
            ]];
            for r in &rows {
                let c = &r.record;
                table.push(vec![
                    c.name.clone(),
                    c.live.to_string(),
                    c.peak_live.map_or("-".into(), |p| p.to_string()),
                    c.peak_unix_ms.map_or("-".into(), |t| {
                        format!("{} before the end", age(seen.saturating_sub(t) / 1000))
                    }),
                    r.trend.map_or("-".into(), signed),
                    c.ages
                        .as_ref()
                        .filter(|a| !a.cohorts.is_empty())
                        .map_or("-".into(), |a| age(a.oldest_s)),
                ]);
            }
            write_table(out, &table, &[1, 2, 4, 5])?;
        }
    }
    Ok(0)
}

fn signed_mib(bytes: i64) -> String {
    let sign = if bytes >= 0 { "+" } else { "-" };
    format!("{sign}{}", mib(bytes.unsigned_abs()))
}

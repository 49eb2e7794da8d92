//! `dump`: one snapshot of a live process.

use std::io::Write;

use serde::Serialize;
use tracker_core::escape_control;
use tracker_shm::Segment;

use crate::cli::{DumpArgs, Format};
use crate::error::{CliError, CliResult};
use crate::output::{
    select, sort_classes, write_csv, write_json, write_openmetrics, write_snapshot_table,
    TableContext,
};
use crate::snapshots;

/// Version of the `dump --history --format json` document.
pub const HISTORY_SCHEMA_VERSION: u32 = 1;

/// One sample of the totals.
#[derive(Debug, Serialize)]
pub struct TotalSample {
    /// Unix ms of the sample.
    pub unix_ms: u64,
    /// Live objects, all classes.
    pub live: u64,
    /// Resident memory, bytes (0: unknown).
    pub rss_bytes: u64,
    /// Counts of the first units of work (see `units`).
    pub units: Vec<u64>,
}

/// One tier of the history.
#[derive(Debug, Serialize)]
pub struct TierDocument {
    /// 0, 1 or 2.
    pub tier: u8,
    /// Time between samples, ms.
    pub period_ms: u64,
    /// The totals, oldest first.
    pub totals: Vec<TotalSample>,
    /// Each class's live count per sample (same times as `totals`).
    pub classes: std::collections::BTreeMap<String, Vec<u32>>,
}

/// The `dump --history --format json` document.
#[derive(Debug, Serialize)]
pub struct HistoryDocument {
    /// [`HISTORY_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Writer pid.
    pub pid: u32,
    /// Names of the units of work whose counts the samples carry.
    pub units: Vec<String>,
    /// Tiers from the finest.
    pub tiers: Vec<TierDocument>,
}

fn history_document(segment: &Segment) -> CliResult<HistoryDocument> {
    let h = segment.header();
    let names: std::collections::HashMap<u32, String> = segment
        .classes()
        .into_iter()
        .map(|(slot, c)| (slot, c.name))
        .collect();
    let units: Vec<String> = segment
        .ticks()
        .into_iter()
        .take(tracker_shm::layout::total::TICK_UNITS as usize)
        .map(|u| u.name)
        .collect();
    let to_unix = |t: u64| {
        h.created_unix_ms
            .saturating_add(t.saturating_sub(h.created_mono_ns) / 1_000_000)
    };
    let mut tiers = Vec::new();
    let mut period = h.history_period_ms;
    for tier in 0..tracker_shm::layout::HISTORY_TIERS as u8 {
        let hist = segment.history_tier(tier);
        let totals = (0..hist.times_ns.len())
            .map(|i| TotalSample {
                unix_ms: to_unix(hist.times_ns[i]),
                live: hist.total_live[i],
                rss_bytes: hist.rss_bytes[i],
                units: hist.ticks[i][..units.len()].to_vec(),
            })
            .collect();
        let classes = hist
            .per_class
            .into_iter()
            .filter_map(|(slot, series)| Some((names.get(&slot)?.clone(), series)))
            .collect();
        tiers.push(TierDocument {
            tier,
            period_ms: period,
            totals,
            classes,
        });
        period = period.saturating_mul(h.tier_factor.max(1));
    }
    segment.intact()?;
    Ok(HistoryDocument {
        schema_version: HISTORY_SCHEMA_VERSION,
        pid: h.pid,
        units,
        tiers,
    })
}

fn write_history_csv(out: &mut dyn Write, doc: &HistoryDocument) -> CliResult<()> {
    let mut names: Vec<&String> = doc.tiers.iter().flat_map(|t| t.classes.keys()).collect();
    names.sort();
    names.dedup();
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = ["tier", "period_ms", "unix_ms", "live", "rss_bytes"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(
        doc.units
            .iter()
            .map(|u| format!("units:{}", escape_control(u))),
    );
    header.extend(names.iter().map(|n| escape_control(n).into_owned()));
    w.write_record(&header)?;
    for t in &doc.tiers {
        for (i, s) in t.totals.iter().enumerate() {
            let mut row = vec![
                t.tier.to_string(),
                t.period_ms.to_string(),
                s.unix_ms.to_string(),
                s.live.to_string(),
                s.rss_bytes.to_string(),
            ];
            row.extend(s.units.iter().map(u64::to_string));
            row.extend(names.iter().map(|n| {
                t.classes
                    .get(*n)
                    .and_then(|series| series.get(i))
                    .map_or_else(String::new, u32::to_string)
            }));
            w.write_record(&row)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Runs `dump`.
pub fn run(args: &DumpArgs, out: &mut dyn Write) -> CliResult<i32> {
    let segment = snapshots::open_segment(&args.target)?;
    if args.history {
        let doc = history_document(&segment)?;
        match args.format {
            Format::Json => write_json(out, &doc)?,
            Format::Csv => write_history_csv(out, &doc)?,
            Format::Table | Format::Openmetrics => {
                return Err(CliError::Usage(
                    "--history is exported as --format json or --format csv".into(),
                ))
            }
        }
        return Ok(0);
    }
    let mut snap = snapshots::take(&segment)?;
    let mut classes = snap.classes.clone();
    sort_classes(&mut classes, args.sort, args.reverse);
    select(&mut classes, args.filter.as_deref(), args.top);
    match args.format {
        Format::Table => {
            let window = snap.process.as_ref().and_then(|p| p.window.as_ref());
            let ctx = TableContext {
                older_than_s: args.older_than.as_secs(),
                window,
                segment_fields: false,
            };
            write_snapshot_table(out, &snap, &classes, &ctx)?
        }
        Format::Csv => write_csv(out, &classes)?,
        Format::Openmetrics => write_openmetrics(out, &snap, &classes)?,
        Format::Json => {
            snap.classes = classes;
            write_json(out, &snap)?;
        }
    }
    Ok(0)
}

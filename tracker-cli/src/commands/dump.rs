//! `dump`: one snapshot of a live process.

use std::io::Write;

use serde::Serialize;
use tracker_core::escape_control;
use tracker_shm::Segment;

use crate::cli::{DumpArgs, Format};
use crate::error::{CliError, CliResult};
use crate::exposition::{self, Dialect};
use crate::format::one_line;
use crate::output::{
    select, sort_classes, write_csv, write_json, write_snapshot_table, write_table, TableContext,
};
use crate::service::{self, Member};
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

/// The exposition options of `args`.
fn exposition_options(args: &DumpArgs) -> exposition::Options {
    exposition::Options {
        top_k: args.top_k,
        pid_label: args.label_pid,
    }
}

/// The dialect of an exposition format.
fn dialect(format: Format) -> Option<Dialect> {
    match format {
        Format::Openmetrics => Some(Dialect::OpenMetrics),
        Format::Prometheus => Some(Dialect::Prometheus),
        _ => None,
    }
}

/// Runs `dump`.
pub fn run(args: &DumpArgs, out: &mut dyn Write) -> CliResult<i32> {
    if let Some(service) = &args.service {
        return run_service(args, service, out);
    }
    let segment = snapshots::open_segment(&args.target)?;
    if args.history {
        let doc = history_document(&segment)?;
        match args.format {
            Format::Json => write_json(out, &doc)?,
            Format::Csv => write_history_csv(out, &doc)?,
            Format::Table | Format::Openmetrics | Format::Prometheus => {
                return Err(CliError::Usage(
                    "--history is exported as --format json or --format csv".into(),
                ))
            }
        }
        return Ok(0);
    }
    let mut snap = snapshots::take(&segment)?;
    if args.format == Format::Json {
        // The document carries the classes selected, sorted in place.
        sort_classes(&mut snap.classes, args.sort, args.reverse);
        select(&mut snap.classes, args.filter.as_deref(), args.top);
        write_json(out, &snap)?;
        return Ok(0);
    }
    // The table's heading counts the whole inventory, not the selection.
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
        Format::Openmetrics | Format::Prometheus => {
            let h = segment.header();
            // The label the service views give this process.
            let label = service::members(Some(&h.service))
                .into_iter()
                .find(|m| m.pid == h.pid && m.created_unix_ms == h.created_unix_ms)
                .map(|m| m.label)
                .unwrap_or_else(|| {
                    if h.worker == tracker_shm::layout::NO_WORKER {
                        format!("pid-{}", h.pid)
                    } else {
                        h.worker.to_string()
                    }
                });
            let source = exposition::Source {
                service: &h.service,
                worker: &label,
                pid: h.pid,
                created_unix_ms: h.created_unix_ms,
                rss_bytes: (h.rss_bytes > 0).then_some(h.rss_bytes),
                classes: &classes,
            };
            let d = dialect(args.format).unwrap_or(Dialect::OpenMetrics);
            exposition::write(out, d, &[source], exposition_options(args))?
        }
        Format::Json => {} // written above
    }
    Ok(0)
}

/// Version of the `dump --service --format json` document.
pub const SERVICE_SCHEMA_VERSION: u32 = 1;

/// One process of a service, in the `dump --service` document.
#[derive(Debug, Serialize)]
pub struct WorkerDocument {
    /// `master`, the worker number, or `pid-<pid>`.
    pub label: String,
    /// Writer pid.
    pub pid: u32,
    /// Worker number, if it has one.
    pub worker: Option<u64>,
    /// Workers of the service were forked from it.
    pub master: bool,
    /// Live objects, all classes.
    pub live: u64,
    /// Resident memory, bytes, if sampled.
    pub rss_bytes: Option<u64>,
}

/// A class summed over a service, in the `dump --service` document.
#[derive(Debug, Serialize)]
pub struct ServiceClass {
    /// The sums (see `service::sum`).
    #[serde(flatten)]
    pub class: tracker_core::ClassSnapshot,
    /// Live objects per worker label (with --per-worker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_worker: Option<std::collections::BTreeMap<String, u64>>,
}

/// The `dump --service --format json` document.
#[derive(Debug, Serialize)]
pub struct ServiceDocument {
    /// [`SERVICE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The service.
    pub service: String,
    /// When it was read, Unix ms.
    pub taken_unix_ms: u64,
    /// Its live processes.
    pub workers: Vec<WorkerDocument>,
    /// Each class summed over them.
    pub classes: Vec<ServiceClass>,
}

fn run_service(args: &DumpArgs, name: &str, out: &mut dyn Write) -> CliResult<i32> {
    let members = service::members(Some(name));
    if members.is_empty() {
        return Err(service::not_found(name));
    }
    if let Some(d) = dialect(args.format) {
        let sources: Vec<exposition::Source<'_>> =
            members.iter().map(exposition::Source::of).collect();
        exposition::write(out, d, &sources, exposition_options(args))?;
        return Ok(0);
    }
    let mut classes = service::sum(&members);
    sort_classes(&mut classes, args.sort, args.reverse);
    select(&mut classes, args.filter.as_deref(), args.top);
    match args.format {
        Format::Json => {
            let doc = ServiceDocument {
                schema_version: SERVICE_SCHEMA_VERSION,
                service: name.to_string(),
                taken_unix_ms: tracker_core::now_unix_ms(),
                workers: members.iter().map(worker_document).collect(),
                classes: classes
                    .into_iter()
                    .map(|c| {
                        let per_worker = args.per_worker.then(|| {
                            members
                                .iter()
                                .map(|m| m.label.clone())
                                .zip(service::spread(&members, &c.name))
                                .collect()
                        });
                        ServiceClass {
                            class: c,
                            per_worker,
                        }
                    })
                    .collect(),
            };
            write_json(out, &doc)?;
        }
        Format::Csv => write_csv(out, &classes)?,
        _ => {
            let labels: Vec<&str> = members.iter().map(|m| m.label.as_str()).collect();
            writeln!(
                out,
                "service {}: {} live processes (workers {})",
                one_line(name, 60),
                members.len(),
                one_line(&labels.join(", "), 200)
            )?;
            let snap = tracker_core::Snapshot::new(classes.clone());
            let ctx = TableContext {
                older_than_s: args.older_than.as_secs(),
                window: None,
                segment_fields: false,
            };
            write_snapshot_table(out, &snap, &classes, &ctx)?;
            if args.per_worker {
                write_spread(out, &members, &classes)?;
            }
        }
    }
    Ok(0)
}

fn worker_document(m: &Member) -> WorkerDocument {
    WorkerDocument {
        label: m.label.clone(),
        pid: m.pid,
        worker: m.worker,
        master: m.master,
        live: m.snapshot.total_live(),
        rss_bytes: m.snapshot.process.as_ref().and_then(|p| p.rss_bytes),
    }
}

/// Each class's live count per worker, with the smallest and largest, so
/// one worker leaking looks different from all of them leaking.
fn write_spread(
    out: &mut dyn Write,
    members: &[Member],
    classes: &[tracker_core::ClassSnapshot],
) -> CliResult<()> {
    writeln!(out)?;
    let mut header = vec!["CLASS".to_string(), "MIN".into(), "MAX".into()];
    header.extend(
        members
            .iter()
            .map(|m| format!("W:{}", one_line(&m.label, 12))),
    );
    let mut rows = vec![header];
    for c in classes {
        let spread = service::spread(members, &c.name);
        let mut row = vec![
            one_line(&c.name, 60),
            spread.iter().min().copied().unwrap_or(0).to_string(),
            spread.iter().max().copied().unwrap_or(0).to_string(),
        ];
        row.extend(spread.iter().map(u64::to_string));
        rows.push(row);
    }
    let right: Vec<usize> = (1..3 + members.len()).collect();
    write_table(out, &rows, &right)
}

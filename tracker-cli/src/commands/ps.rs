//! `ps`: the tracked processes on this machine.

use std::io::Write;

use serde::Serialize;
use tracker_shm::{list_segments, user_name, writer_state};

use crate::cli::{PsArgs, PsFormat};
use crate::error::CliResult;
use crate::format::{one_line, short_program, uptime};
use crate::output::{write_json, write_table};
use tracker_core::escape_control;

/// One row of `ps`.
#[derive(Debug, Serialize)]
pub struct PsRow {
    /// Writer pid (in its own pid namespace: a container's pid for a
    /// process in a container).
    pub pid: u32,
    /// The writer's pid as seen from here, when it differs from `pid` (it
    /// runs in a container's pid namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_pid: Option<u32>,
    /// The uid owning the segment file.
    pub owner_uid: Option<u32>,
    /// Its login name, if it has one.
    pub owner: Option<String>,
    /// Why the segment cannot be trusted to describe its process (owner,
    /// header or lock disagree), if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
    /// Writer command line.
    pub program: String,
    /// The service it belongs to.
    pub service: Option<String>,
    /// Its worker number in the service, if it has one.
    pub worker: Option<u64>,
    /// Its label in the service's views (`master`, the worker number, or
    /// `pid-<pid>`; live processes only).
    pub worker_label: Option<String>,
    /// Seconds since the segment was created.
    pub uptime_seconds: Option<u64>,
    /// Live objects.
    pub live: Option<u64>,
    /// Classes.
    pub classes: Option<usize>,
    /// alive / exited / stale segment / pid reused, or why it is unreadable.
    pub state: String,
    /// Segment path.
    pub segment: String,
}

/// Version of the `ps --format json` document; raised when a field changes
/// meaning or goes away (new fields do not raise it).
pub const PS_SCHEMA_VERSION: u32 = 1;

/// The `ps --format json` document.
#[derive(Debug, Serialize)]
pub struct PsDocument<'a> {
    /// [`PS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// One entry per segment found.
    pub processes: &'a [PsRow],
}

/// Collects the rows (reading the lock table once).
pub fn rows() -> Vec<PsRow> {
    tracker_shm::with_locks_read_once(rows_now)
}

fn rows_now() -> Vec<PsRow> {
    let now = tracker_core::now_unix_ms();
    let entries = list_segments();
    let labels: std::collections::HashMap<(u32, u64), String> =
        crate::service::members_of(&entries, None)
            .into_iter()
            .map(|m| ((m.pid, m.created_unix_ms), m.label))
            .collect();
    let mut rows: Vec<PsRow> = entries
        .iter()
        .map(|entry| match &entry.segment {
            Ok(seg) => {
                let h = seg.header();
                let snap = seg.snapshot("");
                PsRow {
                    owner_uid: entry.owner,
                    owner: entry.owner.and_then(user_name),
                    untrusted: entry.provenance().err(),
                    pid: h.pid,
                    host_pid: tracker_shm::host_pid(seg),
                    worker_label: labels.get(&(h.pid, h.created_unix_ms)).cloned(),
                    worker: (h.worker != tracker_shm::layout::NO_WORKER).then_some(h.worker),
                    service: Some(h.service),
                    program: h.program,
                    uptime_seconds: Some(now.saturating_sub(h.created_unix_ms) / 1000),
                    live: Some(snap.total_live()),
                    classes: Some(snap.classes.len()),
                    state: match seg.intact() {
                        Ok(()) => writer_state(seg).label().to_string(),
                        Err(_) => "shrank while read".to_string(),
                    },
                    segment: entry.path.display().to_string(),
                }
            }
            Err(e) => PsRow {
                owner_uid: entry.owner,
                owner: entry.owner.and_then(user_name),
                untrusted: None,
                pid: entry.pid,
                host_pid: None,
                program: String::new(),
                service: None,
                worker: None,
                worker_label: None,
                uptime_seconds: None,
                live: None,
                classes: None,
                state: format!("unreadable: {e}"),
                segment: entry.path.display().to_string(),
            },
        })
        .collect();
    // Grouped by service; within one, master first, then workers by number.
    rows.sort_by_key(|r| {
        let label = r.worker_label.clone().or(r.worker.map(|w| w.to_string()));
        let rank = match label.as_deref() {
            Some("master") => (0, 0),
            Some(l) => (1, l.parse::<u64>().unwrap_or(u64::MAX)),
            None => (2, 0),
        };
        (r.service.is_none(), r.service.clone(), rank, r.pid)
    });
    rows
}

/// Runs `ps`.
pub fn run(args: &PsArgs, out: &mut dyn Write) -> CliResult<i32> {
    let rows = rows();
    match args.format {
        PsFormat::Json => write_json(
            out,
            &PsDocument {
                schema_version: PS_SCHEMA_VERSION,
                processes: &rows,
            },
        )?,
        PsFormat::Table => {
            if rows.is_empty() {
                writeln!(
                    out,
                    "no tracked processes: start one with PYTRACKER_EXPORT=1 or pytracker.start_exporter()"
                )?;
                return Ok(0);
            }
            let mut table = vec![[
                "PID", "OWNER", "SERVICE", "WORKER", "UPTIME", "LIVE", "CLASSES", "STATE",
                "PROGRAM",
            ]
            .map(String::from)
            .to_vec()];
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            for r in &rows {
                let program = short_program(&r.program, 28);
                let worker = r
                    .worker_label
                    .clone()
                    .or(r.worker.map(|w| w.to_string()))
                    .unwrap_or_else(|| "-".into());
                let owner = match (&r.owner, r.owner_uid) {
                    (Some(name), _) => name.clone(),
                    (None, Some(uid)) => uid.to_string(),
                    (None, None) => "-".into(),
                };
                let state = if r.untrusted.is_some() {
                    format!("UNTRUSTED ({})", r.state)
                } else {
                    r.state.clone()
                };
                table.push(vec![
                    r.host_pid
                        .map_or_else(|| r.pid.to_string(), |h| format!("{h}*")),
                    owner,
                    opt(r.service.as_deref().map(|s| one_line(s, 16))),
                    worker,
                    opt(r.uptime_seconds.map(uptime)),
                    opt(r.live.map(|v| v.to_string())),
                    opt(r.classes.map(|v| v.to_string())),
                    state,
                    program,
                ]);
            }
            write_table(out, &table, &[0, 4, 5, 6])?;
            for r in &rows {
                if let Some(host) = r.host_pid {
                    writeln!(
                        out,
                        "* pid {host} runs in another pid namespace (a container), where it is pid {}",
                        r.pid
                    )?;
                }
            }
            for r in &rows {
                if let Some(why) = &r.untrusted {
                    writeln!(
                        out,
                        "UNTRUSTED {}: {} (readers refuse it for --pid {})",
                        escape_control(&r.segment),
                        escape_control(why),
                        r.pid
                    )?;
                }
            }
        }
    }
    Ok(0)
}

//! Getting snapshots: from a live process's segment or from a JSON file.

use std::path::Path;

use tracker_core::{Snapshot, SNAPSHOT_SCHEMA_VERSION};
use tracker_shm::{writer_state, Segment, Target};

use crate::cli::TargetArgs;
use crate::error::{CliError, CliResult};

/// Opens the segment named by `--pid` or `--path`.
pub fn open_segment(target: &TargetArgs) -> CliResult<Segment> {
    let target = Target::from_options(target.pid, target.path.as_deref()).ok_or_else(|| {
        CliError::Usage("give --pid PID or --path SEGMENT (pytracker-cli ps lists them)".into())
    })?;
    let segment = match target.open() {
        Ok(segment) => segment,
        Err(tracker_shm::ReadError::NotTracked { pid }) => {
            return Err(match workers_of(pid) {
                Some((service, pids)) => CliError::Usage(format!(
                "process {pid} does not export a segment, but its workers do (service {service}, \
                     pids {pids}): read them together with --service {service}"
            )),
                None => tracker_shm::ReadError::NotTracked { pid }.into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    if let Target::Pid(pid) = &target {
        if let Some((service, _)) = workers_of(*pid) {
            let line = format!(
                "note: process {pid} is the master of service {service}, whose workers export \
                 their own counts: --service {service} sums them"
            );
            let line = format!("{}\n", tracker_core::escape_control(&line));
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
    if let Target::Path(path) = &target {
        // `--pid` refuses such segments; a path named by hand is read, with
        // a warning that its counts may be forged.
        let name_pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(tracker_shm::pid_from_name);
        if let Err(why) = tracker_shm::provenance(&segment, name_pid) {
            let line = format!(
                "warning: {} may not describe the process it names: {why}",
                path.display()
            );
            let line = format!("{}\n", tracker_core::escape_control(&line));
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
    Ok(segment)
}

/// The service and the pids (listed) of the live, exporting processes
/// whose parent is `pid`, if there are any.
fn workers_of(pid: u32) -> Option<(String, String)> {
    let members = crate::service::members(None);
    let children: Vec<&crate::service::Member> = members
        .iter()
        .filter(|m| m.parent_pid == pid && m.pid != pid)
        .collect();
    let first = children.first()?;
    let pids: Vec<String> = children
        .iter()
        .filter(|m| m.service == first.service)
        .map(|m| m.pid.to_string())
        .collect();
    Some((first.service.clone(), pids.join(", ")))
}

/// A snapshot of a live segment, with the writer's state.
///
/// # Errors
/// [`tracker_shm::ReadError::Shrunk`] when the file shrank while it was
/// read (the snapshot is discarded).
pub fn take(segment: &Segment) -> CliResult<Snapshot> {
    let mut snap = segment.snapshot(writer_state(segment).label());
    segment.intact()?;
    if let Some(p) = &mut snap.process {
        p.host_pid = tracker_shm::host_pid(segment);
    }
    Ok(snap)
}

/// The largest snapshot file `diff` and `check` read: far above what a
/// full class table gives (about 300 bytes per class).
pub const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

/// The text of a regular file of at most [`MAX_SNAPSHOT_BYTES`]. The file
/// is opened without blocking (a FIFO or a device is refused, never waited
/// on or read without end).
fn read_limited(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(
            "not a regular file: give the JSON file written by `pytracker-cli dump --format json`"
                .into(),
        );
    }
    if meta.len() > MAX_SNAPSHOT_BYTES {
        return Err(format!(
            "{} bytes is more than a snapshot can be ({} MiB at most)",
            meta.len(),
            MAX_SNAPSHOT_BYTES >> 20
        ));
    }
    let mut text = String::new();
    file.take(MAX_SNAPSHOT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_SNAPSHOT_BYTES {
        return Err(format!(
            "the file grew past {} MiB while being read",
            MAX_SNAPSHOT_BYTES >> 20
        ));
    }
    Ok(text)
}

/// Reads a snapshot document written by `dump --format json`.
pub fn load(path: &Path) -> CliResult<Snapshot> {
    let err = |message: String| CliError::SnapshotFile {
        path: path.to_path_buf(),
        message,
    };
    let text = read_limited(path).map_err(err)?;
    let snap: Snapshot = serde_json::from_str(&text).map_err(|e| {
        err(format!(
            "not a pytracker snapshot: {} (expected the JSON written by `pytracker-cli dump --format json`)",
            e
        ))
    })?;
    if snap.schema_version > SNAPSHOT_SCHEMA_VERSION {
        return Err(err(format!(
            "snapshot schema version {} is newer than this pytracker-cli reads ({}): upgrade pytracker-cli",
            snap.schema_version, SNAPSHOT_SCHEMA_VERSION
        )));
    }
    Ok(snap)
}

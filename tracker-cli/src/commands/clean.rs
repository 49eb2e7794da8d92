//! `clean`: remove segments whose writer is gone.

use std::io::Write;

use tracker_core::escape_control;
use tracker_shm::{effective_uid, list_segments, writer_state};

/// A path as printed: file names in shared directories are untrusted.
fn shown(path: &std::path::Path) -> String {
    escape_control(&path.to_string_lossy()).into_owned()
}

use crate::cli::CleanArgs;
use crate::error::CliResult;

/// Runs `clean`.
pub fn run(args: &CleanArgs, out: &mut dyn Write) -> CliResult<i32> {
    let mut candidates = Vec::new();
    let me = effective_uid();
    let mut others = 0;
    for entry in list_segments() {
        if me != 0 && entry.owner != Some(me) {
            // In a shared directory only the owner (or root) may remove a
            // file: another user's segment is not ours to clean.
            others += 1;
            continue;
        }
        let reason = match &entry.segment {
            Ok(seg) => {
                let state = writer_state(seg);
                if !state.is_gone() {
                    continue;
                }
                state.label().to_string()
            }
            // Unreadable: removable only when the pid in its name is gone.
            Err(e) => {
                if std::path::Path::new(&format!("/proc/{}", entry.pid)).exists() {
                    continue;
                }
                escape_control(&format!("unreadable ({e}) and pid {} is gone", entry.pid))
                    .into_owned()
            }
        };
        candidates.push((entry.path, entry.pid, reason));
    }
    if others > 0 {
        writeln!(
            out,
            "note: skipped {others} segment(s) of other users (only their owners or root can remove them)"
        )?;
    }
    if candidates.is_empty() {
        writeln!(
            out,
            "nothing to clean: every segment of yours has a live writer"
        )?;
        return Ok(0);
    }
    let mut failed = 0;
    for (path, pid, reason) in &candidates {
        if args.yes {
            match std::fs::remove_file(path) {
                Ok(()) => writeln!(out, "removed {} (pid {pid}, {reason})", shown(path))?,
                Err(e) => {
                    failed += 1;
                    writeln!(out, "cannot remove {}: {e}", shown(path))?;
                }
            }
        } else {
            writeln!(out, "would remove {} (pid {pid}, {reason})", shown(path))?;
        }
    }
    if !args.yes {
        writeln!(
            out,
            "dry run: run `pytracker-cli clean --yes` to remove {} segment(s)",
            candidates.len()
        )?;
    }
    Ok(if failed > 0 { 2 } else { 0 })
}

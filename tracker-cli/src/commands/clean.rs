//! `clean`: remove segments whose writer is gone.

use std::io::Write;

use tracker_shm::{list_segments, writer_state};

use crate::cli::CleanArgs;
use crate::error::CliResult;

/// Runs `clean`.
pub fn run(args: &CleanArgs, out: &mut dyn Write) -> CliResult<i32> {
    let mut candidates = Vec::new();
    for entry in list_segments() {
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
                format!("unreadable ({e}) and pid {} is gone", entry.pid)
            }
        };
        candidates.push((entry.path, entry.pid, reason));
    }
    if candidates.is_empty() {
        writeln!(out, "nothing to clean: every segment has a live writer")?;
        return Ok(0);
    }
    let mut failed = 0;
    for (path, pid, reason) in &candidates {
        if args.yes {
            match std::fs::remove_file(path) {
                Ok(()) => writeln!(out, "removed {} (pid {pid}, {reason})", path.display())?,
                Err(e) => {
                    failed += 1;
                    writeln!(out, "cannot remove {}: {e}", path.display())?;
                }
            }
        } else {
            writeln!(out, "would remove {} (pid {pid}, {reason})", path.display())?;
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

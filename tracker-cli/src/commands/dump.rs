//! `dump`: one snapshot of a live process.

use std::io::Write;

use crate::cli::{DumpArgs, Format};
use crate::error::CliResult;
use crate::output::{
    select, sort_classes, write_csv, write_json, write_openmetrics, write_snapshot_table,
    TableContext,
};
use crate::snapshots;

/// Runs `dump`.
pub fn run(args: &DumpArgs, out: &mut dyn Write) -> CliResult<i32> {
    let segment = snapshots::open_segment(&args.target)?;
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

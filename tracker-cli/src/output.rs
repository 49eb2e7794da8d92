//! Rendering snapshots: aligned tables, JSON, CSV and OpenMetrics text.

use std::io::Write;

use std::borrow::Cow;

use tracker_core::age::BUCKET_BOUNDS_S;
use tracker_core::{escape_control, is_unsafe_char, ClassSnapshot, Snapshot, UnitWindow};

use crate::format::{age, one_line, uptime};

use crate::cli::SortKey;
use crate::error::CliResult;

/// Sorts `classes` by `key` (counts largest first, names A to Z), then
/// reverses if asked. Ties are broken by name, so output is stable.
pub fn sort_classes(classes: &mut [ClassSnapshot], key: SortKey, reverse: bool) {
    classes.sort_by(|a, b| {
        let by = match key {
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::Live => b.live.cmp(&a.live),
            SortKey::Created => b.created.cmp(&a.created),
            SortKey::Destroyed => b.destroyed.cmp(&a.destroyed),
            SortKey::Updated => b.updated.cmp(&a.updated),
        };
        by.then_with(|| a.name.cmp(&b.name))
    });
    if reverse {
        classes.reverse();
    }
}

/// Keeps the classes whose name contains `filter`, then the first `top`.
pub fn select(classes: &mut Vec<ClassSnapshot>, filter: Option<&str>, top: Option<usize>) {
    if let Some(f) = filter {
        classes.retain(|c| c.name.contains(f));
    }
    if let Some(k) = top {
        classes.truncate(k);
    }
}

/// A table of rows of cells; the first row is the header. The columns
/// listed in `right` are right-aligned (numbers), the others left-aligned.
/// Every cell is passed through [`escape_control`]: cells hold names and
/// paths that come from other processes.
pub fn write_table(out: &mut dyn Write, rows: &[Vec<String>], right: &[usize]) -> CliResult<()> {
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape_control(c)).collect())
        .collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c] - cell.chars().count();
            if !right.contains(&c) {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// What the `dump` table's columns depend on besides the record.
#[derive(Clone, Copy)]
pub struct TableContext<'a> {
    /// The age from which the OLD column counts objects.
    pub older_than_s: u64,
    /// The window of the PER-1K column (none: the column is left out).
    pub window: Option<&'a UnitWindow>,
    /// The records carry what only segments record (peaks, ages): their
    /// columns are shown.
    pub segment_fields: bool,
}

impl Default for TableContext<'_> {
    fn default() -> Self {
        TableContext {
            older_than_s: DEFAULT_OLDER_THAN_S,
            window: None,
            segment_fields: false,
        }
    }
}

/// The OLD column's default threshold.
pub const DEFAULT_OLDER_THAN_S: u64 = 60;

/// The class table of `dump`.
pub fn write_snapshot_table(
    out: &mut dyn Write,
    snap: &Snapshot,
    classes: &[ClassSnapshot],
    ctx: &TableContext<'_>,
) -> CliResult<()> {
    if let Some(p) = &snap.process {
        let service = if p.service.is_empty() {
            String::new()
        } else {
            format!("  service {}", one_line(&p.service, 64))
        };
        let rss = p
            .rss_bytes
            .map_or(String::new(), |b| format!("  rss {}", mib(b)));
        let pid = match p.host_pid {
            Some(h) => format!("{h} (pid {} in its container)", p.pid),
            None => p.pid.to_string(),
        };
        writeln!(
            out,
            "pid {pid}  {}  writer {}{service}{rss}",
            one_line(&p.program, 100),
            p.writer_state
        )?;
        if let Some(w) = &p.window {
            writeln!(
                out,
                "{} {} in the last {}: PER 1K is the live count's change per 1,000 {}",
                w.units,
                one_line(&w.unit, 24),
                uptime(w.seconds),
                one_line(&w.unit, 24)
            )?;
        }
    }
    writeln!(
        out,
        "{} classes, {} live objects{}",
        snap.classes.len(),
        snap.total_live(),
        if snap.classes_dropped > 0 {
            format!(
                " ({} classes folded into <other classes>: the class table (class_capacity) or the segment directory is full)",
                snap.classes_dropped
            )
        } else {
            String::new()
        }
    )?;
    let ctx = &TableContext {
        segment_fields: ctx.segment_fields || classes.iter().any(|c| c.peak_live.is_some()),
        ..*ctx
    };
    let columns: Vec<&TextColumn> = CLASS_COLUMNS.iter().filter(|c| (c.shown)(ctx)).collect();
    let mut rows = vec![columns.iter().map(|c| (c.title)(ctx)).collect()];
    rows.extend(
        classes
            .iter()
            .map(|c| columns.iter().map(|col| (col.cell)(c, ctx)).collect()),
    );
    let right: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].numeric).collect();
    write_table(out, &rows, &right)?;
    write_saturation_note(out, snap)
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// A column of the `dump` table, described once: whether it is shown, its
/// header, whether it holds a number (right-aligned) and a record's cell.
pub struct TextColumn {
    /// Shown in this table.
    pub shown: fn(&TableContext<'_>) -> bool,
    /// Header text.
    pub title: fn(&TableContext<'_>) -> String,
    /// Right-aligned.
    pub numeric: bool,
    /// The cell's text for a record.
    pub cell: fn(&ClassSnapshot, &TableContext<'_>) -> String,
}

/// A count that only segments carry, `-` elsewhere.
fn optional(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The columns of the `dump` table, in order.
pub const CLASS_COLUMNS: [TextColumn; 10] = [
    TextColumn {
        shown: |_| true,
        title: |_| "CLASS".into(),
        numeric: false,
        cell: |c, _| {
            let cut = if c.name_truncated { "…" } else { "" };
            format!("{}{cut}", c.name)
        },
    },
    TextColumn {
        shown: |_| true,
        title: |_| "LIVE".into(),
        numeric: true,
        cell: |c, _| c.live.to_string(),
    },
    TextColumn {
        shown: |ctx| ctx.segment_fields,
        title: |_| "PEAK".into(),
        numeric: true,
        cell: |c, _| optional(c.peak_live),
    },
    TextColumn {
        shown: |ctx| ctx.segment_fields,
        title: |ctx| format!("OLD>={}", age(ctx.older_than_s)),
        numeric: true,
        cell: |c, ctx| {
            optional(
                c.ages
                    .as_ref()
                    .map(|a| a.older_than_ms(ctx.older_than_s.saturating_mul(1000))),
            )
        },
    },
    TextColumn {
        shown: |ctx| ctx.segment_fields,
        title: |_| "OLDEST".into(),
        numeric: true,
        cell: |c, _| match &c.ages {
            Some(a) if !a.cohorts.is_empty() => age(a.oldest_s),
            _ => "-".into(),
        },
    },
    TextColumn {
        shown: |ctx| ctx.window.is_some(),
        title: |_| "PER 1K".into(),
        numeric: true,
        cell: |c, ctx| {
            ctx.window
                .and_then(|w| c.retained_per_1k(w))
                .map_or_else(|| "-".into(), |r| format!("{r:+.1}"))
        },
    },
    TextColumn {
        shown: |_| true,
        title: |_| "CREATED".into(),
        numeric: true,
        cell: |c, _| c.created.to_string(),
    },
    TextColumn {
        shown: |_| true,
        title: |_| "DESTROYED".into(),
        numeric: true,
        cell: |c, _| c.destroyed.to_string(),
    },
    TextColumn {
        shown: |_| true,
        title: |_| "UPDATED".into(),
        numeric: true,
        cell: |c, _| c.updated.to_string(),
    },
    TextColumn {
        shown: |_| true,
        title: |_| "SERIALS".into(),
        numeric: false,
        cell: |c, _| format!("{}..{}", c.first_serial, c.last_serial),
    },
];

/// One line after a table when counts are held at their maximum.
pub fn write_saturation_note(out: &mut dyn Write, snap: &Snapshot) -> CliResult<()> {
    if snap.saturated() {
        writeln!(
            out,
            "warning: some counts overflowed and are shown held at {}: the segment or file is corrupt or forged",
            u64::MAX
        )?;
    }
    Ok(())
}

/// `value` as pretty-printed JSON. Besides what JSON requires, DEL, the C1
/// controls and the bidirectional formatting characters are written as
/// `\uXXXX` escapes, so that no string can act on a terminal showing the
/// document.
pub fn write_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> CliResult<()> {
    // Built in memory, then written at once: serde_json writes token by
    // token, which through `dyn Write` cost more than the serialising.
    // Pages of the reserve that stay unused cost nothing.
    let mut doc = Vec::with_capacity(4 << 20);
    let mut ser = serde_json::Serializer::with_formatter(&mut doc, SafeJson::default());
    value.serialize(&mut ser).map_err(std::io::Error::other)?;
    doc.push(b'\n');
    out.write_all(&doc)?;
    Ok(())
}

/// serde_json's pretty formatter, with [`is_unsafe_char`] characters
/// escaped (serde_json escapes only what JSON requires: C0, `"` and `\`).
#[derive(Default)]
struct SafeJson(serde_json::ser::PrettyFormatter<'static>);

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> std::io::Result<()> {
            self.0.$name(w $(, $arg)*)
        }
    )*};
}

impl serde_json::ser::Formatter for SafeJson {
    delegate! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        begin_object_value();
        end_object_value();
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(is_unsafe_char) {
            w.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(w, "\\u{:04x}", c as u32)?;
            rest = &rest[at + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
}

/// One CSV row per class, with a header row. Fields only segments carry
/// (peak, ages, retained) are empty for other sources; the age columns
/// count live objects by age bucket (`age_lt_5s`: possibly younger than
/// 5 s, `age_ge_5s`: at least 5 s and not known to be 15 s old, ...).
pub fn write_csv(out: &mut dyn Write, classes: &[ClassSnapshot]) -> CliResult<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = [
        "name",
        "live",
        "created",
        "destroyed",
        "updated",
        "first_serial",
        "last_serial",
        "peak_live",
        "peak_unix_ms",
        "oldest_s",
        "retained",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(age_bucket_names());
    w.write_record(&header)?;
    let opt = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
    for c in classes {
        let mut row = vec![
            escape_control(&c.name).into_owned(),
            c.live.to_string(),
            c.created.to_string(),
            c.destroyed.to_string(),
            c.updated.to_string(),
            c.first_serial.to_string(),
            c.last_serial.to_string(),
            opt(c.peak_live),
            opt(c.peak_unix_ms),
            opt(c.ages.as_ref().map(|a| a.oldest_s)),
            c.retained.map_or_else(String::new, |r| r.to_string()),
        ];
        for i in 0..=BUCKET_BOUNDS_S.len() {
            row.push(opt(c
                .ages
                .as_ref()
                .map(|a| a.buckets.get(i).copied().unwrap_or(0))));
        }
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// The CSV names of the age buckets: `age_lt_5s`, `age_ge_5s`, ...
pub fn age_bucket_names() -> Vec<String> {
    let mut names = vec![format!("age_lt_{}", age(BUCKET_BOUNDS_S[0]))];
    names.extend(
        BUCKET_BOUNDS_S
            .iter()
            .map(|&b| format!("age_ge_{}", age(b))),
    );
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_core::ProcessInfo;

    fn sample() -> Snapshot {
        let mk = |name: &str, live, created| ClassSnapshot {
            name: name.into(),
            live,
            created,
            destroyed: created - live,
            first_serial: 1,
            last_serial: created,
            ..Default::default()
        };
        let mut s = Snapshot::new(vec![mk("app.Session", 5, 9), mk("app.Req\"x", 1, 100)]);
        s.process = Some(ProcessInfo {
            pid: 42,
            program: "python app.py".into(),
            writer_state: "alive".into(),
            ..Default::default()
        });
        s
    }

    #[test]
    fn table_is_aligned() {
        let s = sample();
        let mut classes = s.classes.clone();
        sort_classes(&mut classes, SortKey::Live, false);
        let mut out = Vec::new();
        write_snapshot_table(&mut out, &s, &classes, &TableContext::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "pid 42  python app.py  writer alive\n\
             2 classes, 6 live objects\n\
             CLASS        LIVE  CREATED  DESTROYED  UPDATED  SERIALS\n\
             app.Session     5        9          4        0  1..9\n\
             app.Req\"x       1      100         99        0  1..100\n"
        );
    }

    #[test]
    fn sort_filter_top() {
        let mut c = sample().classes;
        sort_classes(&mut c, SortKey::Created, false);
        assert_eq!(c[0].name, "app.Req\"x");
        sort_classes(&mut c, SortKey::Name, true);
        assert_eq!(c[0].name, "app.Session");
        select(&mut c, Some("Sess"), Some(5));
        assert_eq!(c.len(), 1);
    }
}

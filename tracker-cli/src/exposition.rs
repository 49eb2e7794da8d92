//! The metrics exposition: Prometheus' text format (version 0.0.4) and
//! OpenMetrics 1.0, for `dump --format prometheus|openmetrics` and
//! `serve`.
//!
//! Series are labelled `service`, `worker` and `class`, values that stay
//! the same when a worker is recycled (a new pid takes its predecessor's
//! worker number), so a fleet's series do not multiply. A `pid` label is
//! added only when asked for. Class names are untrusted and unbounded:
//! a label value is cut to [`MAX_CLASS_LABEL`] characters, and a cut one
//! ends with a hash of the whole name so that two long names sharing a
//! beginning stay two series; classes whose labels still come out equal
//! within one process are summed into one series, so no series repeats.

use std::collections::BTreeMap;
use std::io::Write;

use rayon::prelude::*;

use tracker_core::{escape_control, ClassSnapshot};

use crate::error::CliResult;

/// Which text format.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Prometheus text format 0.0.4 (what node_exporter's textfile
    /// collector reads).
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Dialect {
    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Dialect::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Dialect::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format a scraper asks for in its `Accept` header: OpenMetrics
    /// when it names it, else Prometheus text.
    pub fn negotiate(accept: Option<&str>) -> Dialect {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Dialect::OpenMetrics,
            _ => Dialect::Prometheus,
        }
    }
}

/// The ages `pytracker_objects_live_older_than` reports, in seconds: a
/// minute, an hour and a day (every bucket boundary would make ten series
/// per class; the JSON and CSV exports carry them all).
pub const OLDER_THAN_S: [u64; 3] = [60, 3600, 86_400];

/// Longest class label value, in characters (a cut one included).
pub const MAX_CLASS_LABEL: usize = 128;

/// The label of the classes summed by `top_k`.
pub const OTHER_CLASSES: &str = "<other classes>";

/// One process's series.
#[derive(Debug)]
pub struct Source<'a> {
    /// The service.
    pub service: &'a str,
    /// The worker label (see `crate::service::Member::label`).
    pub worker: &'a str,
    /// The writer's pid (a label only with [`Options::pid_label`]).
    pub pid: u32,
    /// The segment's creation, Unix ms (OpenMetrics' `_created`).
    pub created_unix_ms: u64,
    /// Resident memory, bytes, if known.
    pub rss_bytes: Option<u64>,
    /// The classes.
    pub classes: &'a [ClassSnapshot],
}

impl<'a> Source<'a> {
    /// The series of a service's live process.
    pub fn of(m: &'a crate::service::Member) -> Source<'a> {
        Source {
            service: &m.service,
            worker: &m.label,
            pid: m.pid,
            created_unix_ms: m.created_unix_ms,
            rss_bytes: m.snapshot.process.as_ref().and_then(|p| p.rss_bytes),
            classes: &m.snapshot.classes,
        }
    }
}

/// Choices for the exposition.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Keep the N classes with the most live objects per service and sum
    /// the others into [`OTHER_CLASSES`].
    pub top_k: Option<usize>,
    /// Add a `pid` label.
    pub pid_label: bool,
}

/// A class label value: control characters made visible, cut to
/// [`MAX_CLASS_LABEL`] characters with a hash of the whole name when
/// longer.
pub fn class_label(name: &str) -> String {
    let shown = escape_control(name);
    if shown.chars().count() <= MAX_CLASS_LABEL {
        return shown.into_owned();
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let suffix = format!("…#{hash:016x}");
    let keep = MAX_CLASS_LABEL - suffix.chars().count();
    let mut cut: String = shown.chars().take(keep).collect();
    cut.push_str(&suffix);
    cut
}

/// Escapes a label value as both formats require.
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for ch in escape_control(value).chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            _ => s.push(ch),
        }
    }
    s
}

/// One process's classes under their label values: equal labels summed,
/// and past `top_k` (a set of kept labels) the rest summed as
/// [`OTHER_CLASSES`].
fn labelled(classes: &[ClassSnapshot], keep: Option<&[String]>) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for c in classes {
        let mut label = class_label(&c.name);
        if let Some(keep) = keep {
            if !keep.contains(&label) {
                label = OTHER_CLASSES.to_string();
            }
        }
        let row = rows.entry(label).or_default();
        row.live = row.live.saturating_add(c.live);
        row.created = row.created.saturating_add(c.created);
        row.destroyed = row.destroyed.saturating_add(c.destroyed);
        if let Some(p) = c.peak_live {
            row.peak = Some(row.peak.unwrap_or(0).saturating_add(p));
        }
        if let Some(a) = &c.ages {
            let older = row.older.get_or_insert([0; OLDER_THAN_S.len()]);
            for (i, b) in OLDER_THAN_S.iter().enumerate() {
                older[i] = older[i].saturating_add(a.older_than_ms(b * 1000));
            }
        }
    }
    rows
}

#[derive(Default, Debug)]
struct Row {
    live: u64,
    created: u64,
    destroyed: u64,
    peak: Option<u64>,
    older: Option<[u64; OLDER_THAN_S.len()]>,
}

/// Appends the sample line `{name}{suffix}{{labels}{extra}} {value}` to
/// `out`, without the formatting machinery (a scrape has tens of
/// thousands of lines).
fn sample(out: &mut Vec<u8>, name: &str, suffix: &str, labels: &str, extra: &str, value: u64) {
    for part in [name, suffix, "{", labels, extra, "} "] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    out.push(b'\n');
}

/// The classes each service keeps under `top_k`: the K labels with the
/// most live objects summed over the service's processes (ties by name).
fn kept(sources: &[Source<'_>], k: usize) -> BTreeMap<String, Vec<String>> {
    let mut totals: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for s in sources {
        let t = totals.entry(s.service).or_default();
        for c in s.classes {
            let e = t.entry(class_label(&c.name)).or_insert(0);
            *e = e.saturating_add(c.live);
        }
    }
    totals
        .into_iter()
        .map(|(service, t)| {
            let mut ranked: Vec<(String, u64)> = t.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (
                service.to_string(),
                ranked.into_iter().take(k).map(|(l, _)| l).collect(),
            )
        })
        .collect()
}

type Value = fn(&Row) -> Option<u64>;

/// Renders one process's labelled rows of one family into a buffer.
type Lines<'a> = dyn Fn(&Source<'_>, &[(String, Row)], &mut Vec<u8>) + Sync + 'a;

/// Writes the exposition of `sources`.
pub fn write(
    out: &mut dyn Write,
    dialect: Dialect,
    sources: &[Source<'_>],
    options: Options,
) -> CliResult<()> {
    let keep = options.top_k.map(|k| kept(sources, k));
    let base = |s: &Source<'_>| {
        let mut l = format!(
            "service=\"{}\",worker=\"{}\"",
            escape(s.service),
            escape(s.worker)
        );
        if options.pid_label {
            l.push_str(&format!(",pid=\"{}\"", s.pid));
        }
        l
    };
    // Each process's rows, and each series' labels escaped once for all
    // its families; processes are rendered in parallel and written in
    // order.
    let per_source: Vec<Vec<(String, Row)>> = sources
        .par_iter()
        .map(|s| {
            let k = keep
                .as_ref()
                .map(|m| m.get(s.service).map_or(&[][..], |v| &v[..]));
            let labels = base(s);
            labelled(s.classes, k)
                .into_iter()
                .map(|(class, row)| (format!("{labels},class=\"{}\"", escape(&class)), row))
                .collect()
        })
        .collect();
    let render = |lines: &Lines<'_>| {
        sources
            .par_iter()
            .zip(&per_source)
            .map(|(s, rows)| {
                let mut buf = Vec::with_capacity(rows.len() * 96);
                lines(s, rows, &mut buf);
                buf
            })
            .collect::<Vec<Vec<u8>>>()
    };
    let families: [(&str, &str, &str, Value); 4] = [
        (
            "pytracker_objects_live",
            "gauge",
            "Tracked objects alive now.",
            |r| Some(r.live),
        ),
        (
            "pytracker_objects_created",
            "counter",
            "Tracked objects created.",
            |r| Some(r.created),
        ),
        (
            "pytracker_objects_destroyed",
            "counter",
            "Tracked objects destroyed or detached.",
            |r| Some(r.destroyed),
        ),
        (
            "pytracker_objects_peak",
            "gauge",
            "Highest live count seen by the process.",
            |r| r.peak,
        ),
    ];
    for (name, kind, help, value) in families {
        let counter = kind == "counter";
        let family = if counter && dialect == Dialect::Prometheus {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        header(out, dialect, &family, kind, help)?;
        let parts = render(&|s, rows, buf| {
            let created = format!("{:.3}", s.created_unix_ms as f64 / 1000.0);
            for (l, row) in rows {
                let Some(v) = value(row) else { continue };
                if counter {
                    sample(buf, name, "_total", l, "", v);
                    if dialect == Dialect::OpenMetrics {
                        for part in [name, "_created{", l, "} ", &created, "\n"] {
                            buf.extend_from_slice(part.as_bytes());
                        }
                    }
                } else {
                    sample(buf, name, "", l, "", v);
                }
            }
        });
        for part in parts {
            out.write_all(&part)?;
        }
    }
    let name = "pytracker_objects_live_older_than";
    if per_source.iter().flatten().any(|(_, r)| r.older.is_some()) {
        header(
            out,
            dialect,
            name,
            "gauge",
            "Tracked objects alive now that are at least this many seconds old (label seconds).",
        )?;
        let extras = OLDER_THAN_S.map(|b| format!(",seconds=\"{b}\""));
        let parts = render(&|_, rows, buf| {
            for (l, row) in rows {
                let Some(older) = &row.older else { continue };
                for (extra, &v) in extras.iter().zip(older) {
                    sample(buf, name, "", l, extra, v);
                }
            }
        });
        for part in parts {
            out.write_all(&part)?;
        }
    }
    let name = "pytracker_resident_memory_bytes";
    if sources.iter().any(|s| s.rss_bytes.is_some()) {
        header(
            out,
            dialect,
            name,
            "gauge",
            "Resident memory of the process at its last sample.",
        )?;
        for s in sources {
            if let Some(rss) = s.rss_bytes {
                writeln!(out, "{name}{{{}}} {rss}", base(s))?;
            }
        }
    }
    if dialect == Dialect::OpenMetrics {
        writeln!(out, "# EOF")?;
    }
    Ok(())
}

fn header(
    out: &mut dyn Write,
    dialect: Dialect,
    name: &str,
    kind: &str,
    help: &str,
) -> CliResult<()> {
    match dialect {
        Dialect::Prometheus => {
            writeln!(out, "# HELP {name} {help}")?;
            writeln!(out, "# TYPE {name} {kind}")?;
        }
        Dialect::OpenMetrics => {
            writeln!(out, "# TYPE {name} {kind}")?;
            writeln!(out, "# HELP {name} {help}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, live: u64) -> ClassSnapshot {
        ClassSnapshot {
            name: name.into(),
            live,
            created: live + 1,
            destroyed: 1,
            peak_live: Some(live),
            ..ClassSnapshot::default()
        }
    }

    fn text(dialect: Dialect, sources: &[Source<'_>], options: Options) -> String {
        let mut out = Vec::new();
        write(&mut out, dialect, sources, options).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn prometheus_counters_are_named_with_total_and_have_help() {
        let classes = [class("app.Conn", 3)];
        let s = Source {
            service: "web",
            worker: "0",
            pid: 42,
            created_unix_ms: 1_700_000_000_123,
            rss_bytes: Some(1 << 20),
            classes: &classes,
        };
        let t = text(Dialect::Prometheus, &[s], Options::default());
        assert!(t.contains("# HELP pytracker_objects_created_total Tracked objects created.\n# TYPE pytracker_objects_created_total counter\n"), "{t}");
        assert!(t.contains("pytracker_objects_created_total{service=\"web\",worker=\"0\",class=\"app.Conn\"} 4\n"), "{t}");
        assert!(!t.contains("pid="), "{t}");
        assert!(!t.contains("# EOF"));
        assert!(
            t.contains("pytracker_resident_memory_bytes{service=\"web\",worker=\"0\"} 1048576\n")
        );
    }

    #[test]
    fn openmetrics_counters_carry_created_and_the_text_ends_with_eof() {
        let classes = [class("app.Conn", 3)];
        let s = Source {
            service: "web",
            worker: "master",
            pid: 42,
            created_unix_ms: 1_700_000_000_123,
            rss_bytes: None,
            classes: &classes,
        };
        let t = text(
            Dialect::OpenMetrics,
            &[s],
            Options {
                top_k: None,
                pid_label: true,
            },
        );
        assert!(
            t.contains("# TYPE pytracker_objects_created counter\n"),
            "{t}"
        );
        assert!(t.contains("pytracker_objects_created_created{service=\"web\",worker=\"master\",pid=\"42\",class=\"app.Conn\"} 1700000000.123\n"), "{t}");
        assert!(t.ends_with("# EOF\n"));
    }

    #[test]
    fn long_names_stay_unique_and_bounded_and_equal_labels_are_summed() {
        let a = format!("app.{}A", "x".repeat(300));
        let b = format!("app.{}B", "x".repeat(300));
        let (la, lb) = (class_label(&a), class_label(&b));
        assert_ne!(la, lb);
        assert_eq!(la.chars().count(), MAX_CLASS_LABEL);
        let classes = [class(&a, 1), class(&b, 2), class("dup", 3), class("dup", 4)];
        let s = Source {
            service: "web",
            worker: "0",
            pid: 1,
            created_unix_ms: 0,
            rss_bytes: None,
            classes: &classes,
        };
        let t = text(Dialect::Prometheus, &[s], Options::default());
        let live: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("pytracker_objects_live{"))
            .collect();
        assert_eq!(live.len(), 3, "{t}");
        assert!(live.iter().any(|l| l.ends_with("class=\"dup\"} 7")), "{t}");
    }

    #[test]
    fn top_k_keeps_the_largest_classes_per_service_and_sums_the_rest() {
        let w0 = [
            class("a", 100),
            class("b", 1),
            class("c", 2),
            class("d", 50),
        ];
        let w1 = [class("a", 1), class("b", 60), class("c", 3)];
        let src = |worker, classes| Source {
            service: "web",
            worker,
            pid: 1,
            created_unix_ms: 0,
            rss_bytes: None,
            classes,
        };
        let t = text(
            Dialect::Prometheus,
            &[src("0", &w0[..]), src("1", &w1[..])],
            Options {
                top_k: Some(2),
                pid_label: false,
            },
        );
        let live: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("pytracker_objects_live{"))
            .collect();
        // a (101) and b (61) are kept; c and d are summed per worker.
        assert_eq!(
            live,
            [
                "pytracker_objects_live{service=\"web\",worker=\"0\",class=\"<other classes>\"} 52",
                "pytracker_objects_live{service=\"web\",worker=\"0\",class=\"a\"} 100",
                "pytracker_objects_live{service=\"web\",worker=\"0\",class=\"b\"} 1",
                "pytracker_objects_live{service=\"web\",worker=\"1\",class=\"<other classes>\"} 3",
                "pytracker_objects_live{service=\"web\",worker=\"1\",class=\"a\"} 1",
                "pytracker_objects_live{service=\"web\",worker=\"1\",class=\"b\"} 60",
            ]
        );
    }

    #[test]
    fn the_accept_header_chooses_the_format() {
        assert_eq!(Dialect::negotiate(None), Dialect::Prometheus);
        assert_eq!(
            Dialect::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Dialect::OpenMetrics
        );
        assert_eq!(Dialect::negotiate(Some("text/plain")), Dialect::Prometheus);
    }
}

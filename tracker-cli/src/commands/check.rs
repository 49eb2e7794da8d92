//! `check`: the CI leak gate.

use std::io::Write;

use glob::Pattern;
use tracker_core::{escape_control, Snapshot};

use crate::cli::CheckArgs;
use crate::error::{CliError, CliResult, EXIT_BROKEN, EXIT_OK};
use crate::snapshots;

/// What a rule limits.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// At most N live objects per matching class.
    Max(u64),
    /// At most N more live objects than the baseline, per matching class.
    Growth(u64),
    /// At most this many percent more live objects than the baseline.
    GrowthPct(f64),
    /// At most this many objects retained per 1,000 units of work.
    PerThousand(f64),
}

/// One rule: a class pattern and a limit.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The glob as written.
    pub pattern_text: String,
    pattern: Pattern,
    /// The limit.
    pub limit: Limit,
}

impl Rule {
    /// Whether the rule applies to the class `name`: the pattern matches
    /// the qualified name (`module.Class`) or the bare class name after the
    /// last dot — the same rule as `pytracker.leak_check`'s `max`.
    pub fn matches(&self, name: &str) -> bool {
        let bare = name.rsplit('.').next().unwrap_or(name);
        self.pattern.matches(name) || self.pattern.matches(bare)
    }
}

/// Parses `CLASS=N` (or `N` alone when `bare_ok`, meaning every class).
fn parse_rule(
    flag: &str,
    text: &str,
    bare_ok: bool,
    make: fn(&str) -> Option<Limit>,
) -> CliResult<Rule> {
    let (pat, value) = match text.rsplit_once('=') {
        Some((p, v)) if !p.is_empty() => (p, v),
        None if bare_ok => ("*", text),
        _ => {
            return Err(CliError::Usage(format!(
                "{flag} {text:?}: expected CLASS=N, for example {flag} 'app.Session=100'"
            )))
        }
    };
    let limit = make(value.trim()).ok_or_else(|| {
        CliError::Usage(format!(
            "{flag} {text:?}: {value:?} is not a valid limit (a non-negative number)"
        ))
    })?;
    let pattern = Pattern::new(pat)
        .map_err(|e| CliError::Usage(format!("{flag} {text:?}: bad class pattern: {e}")))?;
    Ok(Rule {
        pattern_text: pat.to_string(),
        pattern,
        limit,
    })
}

/// All rules given on the command line.
pub fn rules(args: &CheckArgs) -> CliResult<Vec<Rule>> {
    let mut out = Vec::new();
    for r in &args.max {
        out.push(parse_rule("--max", r, false, |v| {
            v.parse().ok().map(Limit::Max)
        })?);
    }
    for r in &args.max_growth {
        out.push(parse_rule("--max-growth", r, false, |v| {
            v.parse().ok().map(Limit::Growth)
        })?);
    }
    for r in &args.max_growth_pct {
        out.push(parse_rule("--max-growth-pct", r, true, |v| {
            v.trim_end_matches('%')
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map(Limit::GrowthPct)
        })?);
    }
    for r in &args.max_per_1k {
        out.push(parse_rule("--max-per-1k", r, false, |v| {
            v.parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map(Limit::PerThousand)
        })?);
    }
    Ok(out)
}

/// Evaluates every rule; returns one line per broken rule. With
/// `older_than_ms`, `--max` rules count only live objects at least that
/// old (classes without ages count as having none: [`run`] refuses such
/// sources first).
pub fn evaluate(
    snap: &Snapshot,
    baseline: Option<&Snapshot>,
    rules: &[Rule],
    max_total: Option<u64>,
    older_than_ms: Option<u64>,
) -> Vec<String> {
    let window = snap.process.as_ref().and_then(|p| p.window.as_ref());
    let mut broken = Vec::new();
    for rule in rules {
        let matching: Vec<_> = snap
            .classes
            .iter()
            .filter(|c| rule.matches(&c.name))
            .collect();
        for c in matching {
            let name = escape_control(&c.name);
            let base = baseline
                .and_then(|b| b.class(&c.name))
                .map_or(0, |b| b.live);
            let (counted, what) = match older_than_ms {
                Some(ms) => (
                    c.ages.as_ref().map_or(0, |a| a.older_than_ms(ms)),
                    format!(
                        "live objects at least {} old",
                        humantime::format_duration(std::time::Duration::from_millis(ms))
                    ),
                ),
                None => (c.live, "live".to_string()),
            };
            match rule.limit {
                Limit::Max(n) if counted > n => broken.push(format!(
                    "{}: {} {what}, more than --max {}={} allows ({} over)",
                    name,
                    counted,
                    rule.pattern_text,
                    n,
                    counted - n
                )),
                Limit::PerThousand(limit) => {
                    let rate = window.and_then(|w| Some((w, c.retained_per_1k(w)?)));
                    if let Some((w, r)) = rate.filter(|(_, r)| *r > limit) {
                        broken.push(format!(
                            "{}: {:.1} retained per 1,000 {} ({:+} over {} {} in {}s), more than --max-per-1k {}={} allows",
                            name,
                            r,
                            escape_control(&w.unit),
                            c.retained.unwrap_or(0),
                            w.units,
                            escape_control(&w.unit),
                            w.seconds,
                            rule.pattern_text,
                            limit
                        ));
                    }
                }
                Limit::Growth(n) if c.live > base.saturating_add(n) => broken.push(format!(
                    "{}: grew by {} ({} -> {}), more than --max-growth {}={} allows",
                    name,
                    c.live - base,
                    base,
                    c.live,
                    rule.pattern_text,
                    n
                )),
                Limit::GrowthPct(p) if c.live > base => {
                    let pct = if base == 0 {
                        f64::INFINITY
                    } else {
                        (c.live - base) as f64 * 100.0 / base as f64
                    };
                    if pct > p {
                        let shown = if pct.is_infinite() {
                            "from zero".to_string()
                        } else {
                            format!("{pct:.1}%")
                        };
                        broken.push(format!(
                            "{}: grew {} ({} -> {}), more than --max-growth-pct {}={}% allows",
                            name, shown, base, c.live, rule.pattern_text, p
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(n) = max_total {
        let total = snap.total_live();
        if total > n {
            broken.push(format!(
                "all classes: {total} live, more than --max-total {n} allows ({} over)",
                total - n
            ));
        }
    }
    broken
}

/// Runs `check`.
pub fn run(args: &CheckArgs, out: &mut dyn Write) -> CliResult<i32> {
    let rules = rules(args)?;
    if rules.is_empty() && args.max_total.is_none() {
        return Err(CliError::Usage(
            "no rule given: add --max CLASS=N, --max-total N, --max-per-1k CLASS=N, or --baseline FILE with --max-growth / --max-growth-pct"
                .into(),
        ));
    }
    let snap = match &args.snapshot {
        Some(path) => snapshots::load(path)?,
        None => {
            let segment = snapshots::open_segment(&args.target)?;
            let state = tracker_shm::writer_state(&segment);
            if state != tracker_shm::WriterState::Alive && !args.allow_exited {
                return Err(CliError::Usage(format!(
                    "the process of {} is not running ({}): its counts are those it left, not live ones; \
                     add --allow-exited to check them anyway, or remove the segment with `pytracker-cli clean`",
                    escape_control(&segment.path().to_string_lossy()),
                    state.label()
                )));
            }
            snapshots::take(&segment)?
        }
    };
    let baseline = args.baseline.as_deref().map(snapshots::load).transpose()?;
    let unmatched: Vec<&Rule> = rules
        .iter()
        .filter(|r| !snap.classes.iter().any(|c| r.matches(&c.name)))
        .collect();
    if !unmatched.is_empty() && !args.allow_unmatched {
        let listed: Vec<String> = unmatched
            .iter()
            .map(|r| format!("{:?}", r.pattern_text))
            .collect();
        return Err(CliError::Usage(format!(
            "no class matches {} among the {} classes of the snapshot: a misspelt rule would check nothing. \
             Class names are `module.Class` or `Class` (see `pytracker-cli dump`); \
             add --allow-unmatched if a class may legitimately be absent",
            listed.join(", "),
            snap.classes.len()
        )));
    }
    let older_than_ms = args
        .older_than
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if older_than_ms.is_some() {
        if let Some(c) = snap.classes.iter().find(|c| c.ages.is_none()) {
            return Err(CliError::Usage(format!(
                "--older-than needs the ages of live objects, and {} has none: check a live process \
                 (--pid), or a snapshot that `pytracker-cli dump --format json` took of one",
                escape_control(&c.name)
            )));
        }
    }
    if rules
        .iter()
        .any(|r| matches!(r.limit, Limit::PerThousand(_)))
        && snap
            .process
            .as_ref()
            .and_then(|p| p.window.as_ref())
            .is_none()
    {
        return Err(CliError::Usage(
            "--max-per-1k needs units of work: the process must count them with \
             pytracker.tick(), and the segment must hold two history samples between \
             which the count grew (wait a sampling period and try again)"
                .into(),
        ));
    }
    let broken = evaluate(
        &snap,
        baseline.as_ref(),
        &rules,
        args.max_total,
        older_than_ms,
    );
    for rule in unmatched {
        writeln!(
            out,
            "note: no class matches {:?} (allowed by --allow-unmatched)",
            rule.pattern_text
        )?;
    }
    crate::output::write_saturation_note(out, &snap)?;
    if broken.is_empty() {
        writeln!(
            out,
            "ok: {} rule(s) hold over {} classes ({} live objects)",
            rules.len() + usize::from(args.max_total.is_some()),
            snap.classes.len(),
            snap.total_live()
        )?;
        Ok(EXIT_OK)
    } else {
        writeln!(out, "FAILED: {} rule(s) broken", broken.len())?;
        for line in &broken {
            writeln!(out, "  {line}")?;
        }
        Ok(EXIT_BROKEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_core::ClassSnapshot;

    fn snap(classes: &[(&str, u64)]) -> Snapshot {
        Snapshot::new(
            classes
                .iter()
                .map(|(n, live)| ClassSnapshot {
                    name: n.to_string(),
                    live: *live,
                    created: *live,
                    ..Default::default()
                })
                .collect(),
        )
    }

    fn rule(flag: &str, text: &str) -> Rule {
        match flag {
            "max" => parse_rule("--max", text, false, |v| v.parse().ok().map(Limit::Max)).unwrap(),
            "growth" => parse_rule("--max-growth", text, false, |v| {
                v.parse().ok().map(Limit::Growth)
            })
            .unwrap(),
            _ => parse_rule("--max-growth-pct", text, true, |v| {
                v.parse().ok().map(Limit::GrowthPct)
            })
            .unwrap(),
        }
    }

    #[test]
    fn max_with_globs() {
        let s = snap(&[("app.Session", 10), ("app.Request", 3), ("lib.Conn", 50)]);
        assert!(evaluate(&s, None, &[rule("max", "app.*=10")], None, None).is_empty());
        let broken = evaluate(&s, None, &[rule("max", "app.*=5")], Some(60), None);
        assert_eq!(broken.len(), 2);
        assert!(broken[0].contains("app.Session: 10 live"));
        assert!(broken[1].contains("--max-total 60"));
    }

    #[test]
    fn growth_rules() {
        let base = snap(&[("a", 10), ("b", 0)]);
        let now = snap(&[("a", 12), ("b", 1)]);
        assert!(evaluate(&now, Some(&base), &[rule("growth", "a=2")], None, None).is_empty());
        assert_eq!(
            evaluate(&now, Some(&base), &[rule("growth", "*=1")], None, None).len(),
            1
        );
        assert!(evaluate(&now, Some(&base), &[rule("pct", "a=20")], None, None).is_empty());
        let broken = evaluate(&now, Some(&base), &[rule("pct", "10")], None, None);
        assert_eq!(broken.len(), 2);
        assert!(broken[1].contains("from zero"));
    }

    #[test]
    fn malformed_rules_say_what_to_write() {
        let e = parse_rule("--max", "Session", false, |v| {
            v.parse().ok().map(Limit::Max)
        })
        .unwrap_err();
        assert!(e.to_string().contains("expected CLASS=N"));
        let e =
            parse_rule("--max", "a=lots", false, |v| v.parse().ok().map(Limit::Max)).unwrap_err();
        assert!(e.to_string().contains("not a valid limit"));
        let e = parse_rule("--max", "[=1", false, |v| v.parse().ok().map(Limit::Max)).unwrap_err();
        assert!(e.to_string().contains("bad class pattern"));
    }
}

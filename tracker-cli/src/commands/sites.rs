//! `sites`: where the live objects of each class were created, from the
//! sampled creation sites a segment records.

use std::io::Write;

use glob::Pattern;
use serde::Serialize;
use tracker_core::escape_control;
use tracker_shm::{Frame, Site};

use crate::cli::{SitesArgs, SitesFormat};
use crate::error::{CliError, CliResult};
use crate::format::one_line;
use crate::output::write_json;
use crate::snapshots;

/// One site of a class, with its estimate.
#[derive(Debug, Serialize)]
pub struct SiteRow {
    /// Sampled objects from here still alive.
    pub sampled_live: u64,
    /// Sampled objects created here.
    pub sampled_total: u64,
    /// Live objects from here, estimated: `sampled_live × sample_every`.
    pub estimated_live: u64,
    /// The creation stack, the creating call first.
    pub frames: Vec<Frame>,
}

/// A class and its sites, the most live first.
#[derive(Debug, Serialize)]
pub struct ClassSites {
    /// Qualified class name.
    pub class: String,
    /// Live objects of the class (counted, not estimated).
    pub live: u64,
    /// Sampled objects of the class still alive, over all its sites.
    pub sampled_live: u64,
    /// The sites.
    pub sites: Vec<SiteRow>,
}

/// Version of the `sites --format json` document.
pub const SITES_SCHEMA_VERSION: u32 = 1;

/// The `sites --format json` document.
#[derive(Debug, Serialize)]
pub struct SitesDocument {
    /// [`SITES_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Writer pid.
    pub pid: u32,
    /// One creation in this many (on average) was sampled.
    pub sample_every: u64,
    /// Sampled creations whose site did not fit the segment's table.
    pub sites_dropped: u64,
    /// Classes with sampled live objects, the most first.
    pub classes: Vec<ClassSites>,
}

/// Runs `sites`.
pub fn run(args: &SitesArgs, out: &mut dyn Write) -> CliResult<i32> {
    let segment = snapshots::open_segment(&args.target)?;
    let h = segment.header();
    if h.site_every == 0 {
        return Err(CliError::Usage(format!(
            "process {} does not sample creation sites: start its exporter with \
             site_every > 0 (the default is {})",
            h.pid,
            tracker_shm::DEFAULT_SITE_EVERY
        )));
    }
    let pattern = args
        .class
        .as_deref()
        .map(|p| {
            Pattern::new(p).map_err(|e| CliError::Usage(format!("--class {p:?}: bad pattern: {e}")))
        })
        .transpose()?;
    let classes = segment.classes();
    let sites = segment.sites();
    segment.intact()?;
    let mut by_class: Vec<ClassSites> = classes
        .iter()
        .filter(|(_, c)| {
            let bare = c.name.rsplit('.').next().unwrap_or(&c.name);
            pattern
                .as_ref()
                .is_none_or(|p| p.matches(&c.name) || p.matches(bare))
        })
        .filter_map(|(slot, c)| {
            let mut rows: Vec<SiteRow> = sites
                .iter()
                .filter(|s: &&Site| s.class_slot == *slot && s.live > 0)
                .map(|s| SiteRow {
                    sampled_live: s.live,
                    sampled_total: s.total,
                    estimated_live: s.live.saturating_mul(h.site_every),
                    frames: s.frames.clone(),
                })
                .collect();
            if rows.is_empty() {
                return None;
            }
            rows.sort_by_key(|r| std::cmp::Reverse(r.sampled_live));
            let sampled_live = rows.iter().map(|r| r.sampled_live).sum();
            rows.truncate(args.top);
            Some(ClassSites {
                class: c.name.clone(),
                live: c.live,
                sampled_live,
                sites: rows,
            })
        })
        .collect();
    by_class.sort_by(|a, b| {
        b.sampled_live
            .cmp(&a.sampled_live)
            .then_with(|| a.class.cmp(&b.class))
    });
    match args.format {
        SitesFormat::Json => write_json(
            out,
            &SitesDocument {
                schema_version: SITES_SCHEMA_VERSION,
                pid: h.pid,
                sample_every: h.site_every,
                sites_dropped: h.sites_dropped,
                classes: by_class,
            },
        )?,
        SitesFormat::Table => {
            writeln!(
                out,
                "pid {}  {}  one creation in {} sampled{}",
                h.pid,
                one_line(&h.program, 80),
                h.site_every,
                if h.sites_dropped > 0 {
                    format!(
                        " ({} sampled creations did not fit the site table)",
                        h.sites_dropped
                    )
                } else {
                    String::new()
                }
            )?;
            if by_class.is_empty() {
                writeln!(
                    out,
                    "no sampled object is alive yet: with one creation in {} sampled, a class \
                     needs a few times that many live objects to show its sites",
                    h.site_every
                )?;
            }
            for c in &by_class {
                writeln!(
                    out,
                    "\n{}  {} live; {} sampled alive",
                    escape_control(&c.class),
                    c.live,
                    c.sampled_live
                )?;
                for s in &c.sites {
                    // A Poisson count of k sampled: the estimate's spread is
                    // about sqrt(k) samples either way.
                    let spread = ((s.sampled_live as f64).sqrt() * h.site_every as f64) as u64;
                    writeln!(
                        out,
                        "  ~{} (±{}, {} sampled)",
                        s.estimated_live, spread, s.sampled_live
                    )?;
                    for (i, f) in s.frames.iter().enumerate() {
                        writeln!(
                            out,
                            "    {} {}:{} in {}",
                            if i == 0 { "at" } else { "  from" },
                            escape_control(&f.file),
                            f.line,
                            escape_control(&f.function)
                        )?;
                    }
                }
            }
        }
    }
    Ok(0)
}

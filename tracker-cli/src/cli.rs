//! The command line of `pytracker-cli` and `pytracker-top`, built with
//! clap's derive API. Parsing only: commands live in `commands/`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Read the object inventories of tracked processes from shared memory,
/// without pausing them.
///
/// A process publishes its inventory once it calls
/// `pytracker.start_exporter()` (or runs with PYTRACKER_EXPORT=1).
#[derive(Debug, Parser)]
#[command(name = "pytracker-cli", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Write the report to FILE instead of standard output, atomically: it
    /// is written beside FILE and renamed over it once complete, so a
    /// reader (node_exporter's textfile collector, a CI step) never sees a
    /// partial report, and FILE is left alone if the command fails.
    #[arg(short = 'o', long, value_name = "FILE", global = true)]
    pub output: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List tracked processes on this machine.
    #[command(after_help = "Examples:\n  pytracker-cli ps\n  pytracker-cli ps --format json")]
    Ps(PsArgs),
    /// Print one snapshot of a process's inventory.
    #[command(
        after_help = "Examples:\n  pytracker-cli dump --pid 4242\n  pytracker-cli dump --pid 4242 --top 10 --filter Session\n  pytracker-cli dump --pid 4242 --format json > before.json\n  pytracker-cli dump --pid 4242 --format openmetrics > /var/lib/node_exporter/pytracker.prom"
    )]
    Dump(DumpArgs),
    /// Compare two snapshots: per class, the change in live, created and destroyed.
    #[command(
        after_help = "Examples:\n  pytracker-cli diff before.json after.json\n  pytracker-cli diff --pid 4242 --interval 10s"
    )]
    Diff(DiffArgs),
    /// Fail (exit 1) when object counts break a rule: a CI leak gate.
    #[command(
        after_help = "Exit status: 0 all rules hold, 1 a rule is broken, 2 usage or input error.\n\nExamples:\n  pytracker-cli check --pid 4242 --max 'app.Session=100' --max-total 50000\n  pytracker-cli check after.json --baseline before.json --max-growth 'app.*=10'\n  pytracker-cli check after.json --baseline before.json --max-growth-pct 5"
    )]
    Check(CheckArgs),
    /// Remove segments whose writer is gone (dry run unless --yes).
    #[command(after_help = "Examples:\n  pytracker-cli clean\n  pytracker-cli clean --yes")]
    Clean(CleanArgs),
    /// What a crashed or killed process left: its inventory at the end,
    /// peaks, the trend before it and resident memory.
    #[command(
        after_help = "Examples:\n  pytracker-cli last\n  pytracker-cli last --service web\n  pytracker-cli last --pid 4242 --format json"
    )]
    Last(LastArgs),
    /// Where each class's live objects were created, from sampled
    /// creation sites (file, line and function of up to four frames).
    #[command(
        after_help = "Examples:\n  pytracker-cli sites --pid 4242\n  pytracker-cli sites --pid 4242 --class 'app.Session' --top 3\n  pytracker-cli sites --pid 4242 --format json"
    )]
    Sites(SitesArgs),
    /// Serve every tracked process on this machine (or one service's) as
    /// Prometheus metrics over HTTP: GET /metrics.
    #[command(
        after_help = "The text is Prometheus' text format, or OpenMetrics when the scraper asks for it (Accept: application/openmetrics-text). Series are labelled service, worker and class.\n\nExamples:\n  pytracker-cli serve\n  pytracker-cli serve --listen 0.0.0.0:9645 --top-k 50\n  pytracker-cli serve --service web"
    )]
    Serve(ServeArgs),
    /// Print a shell completion script for pytracker-cli and pytracker-top.
    #[command(
        after_help = "Examples:\n  pytracker-cli completions bash > ~/.local/share/bash-completion/completions/pytracker-cli\n  pytracker-cli completions zsh > \"${fpath[1]}/_pytracker-cli\"\n  pytracker-cli completions fish > ~/.config/fish/completions/pytracker-cli.fish"
    )]
    Completions(CompletionsArgs),
    /// Write man pages for pytracker-cli, each of its commands and
    /// pytracker-top into a directory.
    #[command(
        after_help = "Examples:\n  pytracker-cli man ~/.local/share/man/man1\n  man -l ~/.local/share/man/man1/pytracker-cli-dump.1"
    )]
    Man(ManArgs),
}

/// `man` arguments.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing).
    pub dir: PathBuf,
}

/// `completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
    /// The tool to complete (default: pytracker-cli).
    #[arg(long, value_enum, default_value = "pytracker-cli")]
    pub tool: CompletionTool,
}

/// The tools `completions` writes scripts for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompletionTool {
    /// pytracker-cli.
    #[value(name = "pytracker-cli")]
    Cli,
    /// pytracker-top.
    #[value(name = "pytracker-top")]
    Top,
}

/// Output formats of `ps`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PsFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
}

/// Output formats of `sites`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SitesFormat {
    /// Per class, its sites with their frames.
    Table,
    /// A JSON document.
    Json,
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (loopback by default: metrics name
    /// the classes of the processes, so opening it wider is a choice).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9645")]
    pub listen: String,
    /// Only the processes of this service (repeat for several).
    #[arg(long, value_name = "NAME")]
    pub service: Vec<String>,
    /// Keep the K classes with the most live objects per service and sum
    /// the others into one `<other classes>` series.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Add a pid label to every series.
    #[arg(long)]
    pub label_pid: bool,
}

/// `sites` arguments.
#[derive(Debug, Args)]
pub struct SitesArgs {
    /// The process.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only classes matching this glob (qualified or bare name).
    #[arg(long, value_name = "GLOB")]
    pub class: Option<String>,
    /// Sites shown per class.
    #[arg(long, value_name = "K", default_value = "5")]
    pub top: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: SitesFormat,
}

/// Output formats of `last`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LastFormat {
    /// Aligned columns.
    Table,
    /// A JSON document.
    Json,
}

/// `last` arguments.
#[derive(Debug, Args)]
pub struct LastArgs {
    /// The exited process's pid.
    #[arg(long, short, conflicts_with = "service")]
    pub pid: Option<u32>,
    /// The most recently seen exited process of this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: LastFormat,
    /// Only the K classes with the most live objects.
    #[arg(long, value_name = "K")]
    pub top: Option<usize>,
}

/// Output formats of `dump` and `diff`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// The snapshot document (schema in docs/snapshot-json.md).
    Json,
    /// Comma-separated values with a header row.
    Csv,
    /// OpenMetrics 1.0 text exposition (labels service, worker, class).
    Openmetrics,
    /// Prometheus text format 0.0.4, as node_exporter's textfile
    /// collector reads it (same series as openmetrics).
    Prometheus,
}

/// Output formats of `diff`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Aligned columns.
    Table,
    /// A JSON document: the snapshots' times and process, and the
    /// per-class changes.
    Json,
}

/// Sort keys for tables.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// Class name.
    Name,
    /// Live objects (largest first).
    Live,
    /// Objects created.
    Created,
    /// Objects destroyed.
    Destroyed,
    /// Bundle updates.
    Updated,
}

/// Where a live snapshot comes from.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Process id of the tracked process.
    #[arg(long, short, conflicts_with = "path")]
    pub pid: Option<u32>,
    /// Path of a segment file (as listed by `ps`).
    #[arg(long)]
    pub path: Option<PathBuf>,
}

/// `ps` arguments.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: PsFormat,
}

/// `dump` arguments.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The process.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Sort classes by this column (table and csv).
    #[arg(long, value_enum, default_value = "live")]
    pub sort: SortKey,
    /// Reverse the sort order.
    #[arg(long)]
    pub reverse: bool,
    /// Only the first K classes after sorting.
    #[arg(long, value_name = "K")]
    pub top: Option<usize>,
    /// Only classes whose name contains this text.
    #[arg(long, value_name = "SUBSTRING")]
    pub filter: Option<String>,
    /// The age from which the table's OLD column counts objects (e.g. 30s,
    /// 10m, 2h).
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration, default_value = "1m")]
    pub older_than: Duration,
    /// Export the history instead of the snapshot: every tier (every
    /// sample, every minute, every hour at the default period), totals,
    /// resident memory, units of work and each class's live count (json or
    /// csv).
    #[arg(long)]
    pub history: bool,
    /// Sum each class over the live processes of this service (its master
    /// and workers; `ps` lists services) instead of one process.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["pid", "path", "history"])]
    pub service: Option<String>,
    /// With --service: also show each class's live count per worker.
    #[arg(long, requires = "service")]
    pub per_worker: bool,
    /// openmetrics and prometheus: keep the K classes with the most live
    /// objects (per service) and sum the others into one
    /// `<other classes>` series.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// openmetrics and prometheus: add a pid label to every series (by
    /// default series are labelled by service, worker and class only, so
    /// they survive worker recycling).
    #[arg(long)]
    pub label_pid: bool,
}

/// `diff` arguments.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Snapshot taken first (JSON from `dump --format json`).
    #[arg(required_unless_present_any = ["pid", "path"], requires = "after")]
    pub before: Option<PathBuf>,
    /// Snapshot taken later.
    pub after: Option<PathBuf>,
    /// Take both snapshots from a live process instead.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Time between the two live snapshots (e.g. 500ms, 10s, 1m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub interval: Duration,
    /// Output format (table or json).
    #[arg(long, value_enum, default_value = "table")]
    pub format: DiffFormat,
    /// Also list classes that did not change.
    #[arg(long)]
    pub all: bool,
}

/// `check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A snapshot file to check (or use --pid/--path for a live process).
    #[arg(required_unless_present_any = ["pid", "path"])]
    pub snapshot: Option<PathBuf>,
    /// The live process to check.
    #[command(flatten)]
    pub target: TargetArgs,
    /// At most N live objects of the classes matching CLASS (glob, e.g. 'app.*').
    #[arg(long = "max", value_name = "CLASS=N")]
    pub max: Vec<String>,
    /// At most N live objects over all classes.
    #[arg(long, value_name = "N")]
    pub max_total: Option<u64>,
    /// A snapshot to compare against for the growth rules.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// At most N more live objects than in the baseline, per class matching CLASS.
    #[arg(long = "max-growth", value_name = "CLASS=N", requires = "baseline")]
    pub max_growth: Vec<String>,
    /// At most PCT percent more live objects than in the baseline, for every
    /// class (PCT) or the classes matching CLASS (CLASS=PCT).
    #[arg(
        long = "max-growth-pct",
        value_name = "[CLASS=]PCT",
        requires = "baseline"
    )]
    pub max_growth_pct: Vec<String>,
    /// Pass even when a rule's pattern matches no class (by default a rule
    /// that matches nothing fails with exit 2: it is usually misspelt).
    #[arg(long)]
    pub allow_unmatched: bool,
    /// Check a process that is no longer running (by default its segment
    /// fails with exit 2: the counts are not live).
    #[arg(long)]
    pub allow_exited: bool,
    /// Count only live objects at least this old in every --max rule (e.g.
    /// 10m), so that warm-up and caches that churn do not trip them.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// At most N objects retained per 1,000 units of work (see
    /// pytracker.tick) over the history the segment keeps, per class
    /// matching CLASS.
    #[arg(long = "max-per-1k", value_name = "CLASS=N")]
    pub max_per_1k: Vec<String>,
}

/// `clean` arguments.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Really delete (without it, only list what would be removed).
    #[arg(long)]
    pub yes: bool,
}

/// Watch a tracked process's object inventory live.
///
/// Keys: q quit, s or 1-8 sort (again: reverse), r reverse, / filter,
/// arrows and PgUp/PgDn scroll, Enter details, p freeze the display, ? help.
/// The target process is never paused.
#[derive(Debug, Parser)]
#[command(name = "pytracker-top", version)]
pub struct TopCli {
    /// Process id (default: the only tracked process, or pick from a list).
    #[arg(long, short)]
    pub pid: Option<u32>,
    /// Path of a segment file.
    #[arg(long, conflicts_with = "pid")]
    pub path: Option<PathBuf>,
    /// Show a whole service: each class summed over its live processes,
    /// with each process's share in the detail pane.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["pid", "path"])]
    pub service: Option<String>,
    /// Refresh interval (e.g. 1s, 500ms; at least 100ms).
    #[arg(long, value_parser = refresh_interval, default_value = "1s")]
    pub interval: Duration,
}

/// The shortest refresh interval of `pytracker-top`: faster redraws show
/// nothing more and would keep a core busy.
pub const MIN_REFRESH: Duration = Duration::from_millis(100);

fn refresh_interval(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < MIN_REFRESH {
        return Err(format!(
            "{text} is too short: the refresh interval is at least 100ms"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_definitions_are_consistent() {
        Cli::command().debug_assert();
        TopCli::command().debug_assert();
    }
}

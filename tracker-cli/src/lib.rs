//! `pytracker-cli` and `pytracker-top`: reading tracked processes'
//! inventories from their shared-memory segments.
//!
//! The binaries are thin: [`main_cli`] and [`main_top`] take the argument
//! list and return the exit code, so the Python package can expose the same
//! tools as console scripts.

pub mod cli;
pub mod commands;
pub mod error;
pub mod exposition;
pub mod format;
pub mod output;
pub mod service;
pub mod snapshots;
pub mod top;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

use crate::cli::{Cli, Command, TopCli};
use crate::error::{CliError, EXIT_USAGE};

fn report(tool: &str, e: &CliError) -> i32 {
    let _ = std::io::stdout().flush();
    // One write, so the line never appears half-printed.
    // Messages quote file names and class names: no control character of
    // theirs reaches the terminal.
    let message = tracker_core::escape_control(&e.to_string()).into_owned();
    let _ = std::io::stderr().write_all(format!("{tool}: error: {message}\n").as_bytes());
    e.exit_code()
}

/// Parses `args` (program name first) or returns clap's exit code after
/// printing its message (help and version exit 0, mistakes exit 2).
fn parse<P: Parser>(args: Vec<OsString>) -> Result<P, i32> {
    P::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            EXIT_USAGE
        } else {
            0
        }
    })
}

/// Runs one `pytracker-cli` command, writing its output to `out`; returns
/// the exit code, or the error the caller reports.
///
/// # Errors
/// What the command reports: unreadable input, bad usage, a failed write.
pub fn run_command(command: &Command, out: &mut dyn Write) -> Result<i32, CliError> {
    match command {
        Command::Ps(a) => commands::ps::run(a, out),
        Command::Dump(a) => commands::dump::run(a, out),
        Command::Diff(a) => commands::diff::run(a, out),
        Command::Check(a) => commands::check::run(a, out),
        Command::Clean(a) => commands::clean::run(a, out),
        Command::Last(a) => commands::last::run(a, out),
        Command::Sites(a) => commands::sites::run(a, out),
        Command::Serve(a) => commands::serve::run(a, out),
        Command::Completions(a) => commands::completions::run(a, out),
        Command::Man(a) => commands::man::run(a, out),
    }
}

/// Runs `command` with its report going to `path`, atomically: into a
/// temporary file beside it (mode 0644 less the umask), renamed over
/// `path` once the command succeeded and everything was written. A failing
/// command leaves `path` as it was.
fn run_to_file(command: &Command, path: &std::path::Path) -> Result<i32, CliError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let cannot = |what: &str, e: std::io::Error| {
        CliError::Usage(format!("cannot {what} {}: {e}", path.display()))
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".pytracker-cli-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| cannot("write beside", e))?;
    let code = {
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        let code = run_command(command, &mut out)?;
        out.flush().map_err(|e| cannot("write", e))?;
        code
    };
    tmp.as_file().sync_all().map_err(|e| cannot("write", e))?;
    tmp.persist(path).map_err(|e| cannot("replace", e.error))?;
    Ok(code)
}

/// `pytracker-cli` with these arguments; returns the exit code.
pub fn main_cli(args: Vec<OsString>) -> i32 {
    let cli: Cli = match parse(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(path) = cli.output.as_deref().filter(|p| p.as_os_str() != "-") {
        return match run_to_file(&cli.command, path) {
            Ok(code) => code,
            Err(e) => report("pytracker-cli", &e),
        };
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = run_command(&cli.command, &mut out);
    let flushed = out.flush();
    match (result, flushed) {
        (Ok(code), Ok(())) => code,
        // A closed pipe (`| head`) is not an error worth a message.
        (Ok(code), Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        (Ok(_), Err(e)) => report("pytracker-cli", &CliError::Output(e)),
        (Err(CliError::Output(e)), _) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        (Err(e), _) => report("pytracker-cli", &e),
    }
}

/// `pytracker-top` with these arguments; returns the exit code.
pub fn main_top(args: Vec<OsString>) -> i32 {
    let cli: TopCli = match parse(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match top::run(&cli) {
        Ok(code) => code,
        Err(e) => report("pytracker-top", &e),
    }
}

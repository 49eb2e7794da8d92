//! `man`: manual pages, generated from the same clap definitions the tools
//! parse their arguments with (so they cannot fall behind them).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs, TopCli};
use crate::error::{CliError, CliResult};

/// Writes `<name>.1` for `command` and, recursively, `<name>-<sub>.1` for
/// each of its subcommands; returns the file names written.
fn write_pages(command: clap::Command, name: &str, dir: &Path) -> CliResult<Vec<String>> {
    let command = command.name(name.to_string());
    let mut written = Vec::new();
    let file = format!("{name}.1");
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .map_err(CliError::Output)?;
    std::fs::write(dir.join(&file), page).map_err(|e| write_error(dir, &file, e))?;
    written.push(file);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        written.extend(write_pages(sub.clone(), &sub_name, dir)?);
    }
    Ok(written)
}

fn write_error(dir: &Path, file: &str, e: std::io::Error) -> CliError {
    CliError::Usage(format!("cannot write {}: {e}", dir.join(file).display()))
}

/// Runs `man`.
pub fn run(args: &ManArgs, out: &mut dyn Write) -> CliResult<i32> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", args.dir.display())))?;
    // Built first, so global options (-o) show on every command's page.
    let mut cli = Cli::command();
    cli.build();
    let mut written = write_pages(cli, "pytracker-cli", &args.dir)?;
    written.extend(write_pages(TopCli::command(), "pytracker-top", &args.dir)?);
    for file in &written {
        writeln!(out, "{}", args.dir.join(file).display())?;
    }
    Ok(0)
}

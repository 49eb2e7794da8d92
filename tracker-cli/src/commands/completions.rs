//! `completions`: shell completion scripts, generated from the same clap
//! definitions the tools parse their arguments with.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionTool, CompletionsArgs, TopCli};
use crate::error::CliResult;

/// Runs `completions`.
pub fn run(args: &CompletionsArgs, out: &mut dyn Write) -> CliResult<i32> {
    let (mut command, name) = match args.tool {
        CompletionTool::Cli => (Cli::command(), "pytracker-cli"),
        CompletionTool::Top => (TopCli::command(), "pytracker-top"),
    };
    clap_complete::generate(args.shell, &mut command, name, out);
    Ok(0)
}

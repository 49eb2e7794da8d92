//! `pytracker-cli`: see `pytracker-cli --help`.

fn main() {
    std::process::exit(tracker_cli::main_cli(std::env::args_os().collect()));
}

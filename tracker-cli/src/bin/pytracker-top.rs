//! `pytracker-top`: see `pytracker-top --help`.

fn main() {
    std::process::exit(tracker_cli::main_top(std::env::args_os().collect()));
}

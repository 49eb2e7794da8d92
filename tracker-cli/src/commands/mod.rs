//! One module per subcommand.

pub mod check;
pub mod clean;
pub mod completions;
pub mod diff;
pub mod dump;
pub mod last;
pub mod man;
pub mod ps;
pub mod serve;
pub mod sites;

//! `report`: the flags of the support bundle — where it is written and how much of the logs and
//! run history it holds.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::parse_duration;

/// `report --env E [-o FILE.zip]`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The archive to write (`-o FILE.zip` works too); default
    /// `datajump-report-<env>-<UTC timestamp>.zip` in the current directory.
    #[arg(long = "output-file", value_name = "FILE.zip")]
    pub output_file: Option<PathBuf>,
    /// Replace the archive when the file exists already.
    #[arg(long)]
    pub force: bool,
    /// Only log lines newer than this (e.g. 30m, 1h, 24h).
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub logs_since: Duration,
    /// At most this many of the last lines of each container's log.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub tail: u32,
    /// The newest this many WorkflowRuns in full (every run is listed in one line each).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub max_runs: u32,
}

//! The command-line surface: kubectl's global flags, the output format, and one clap struct per
//! subcommand. Parsing only; the `cmd` modules do the work.

use std::path::PathBuf;
use std::time::Duration;

use chart_gen::model::Environment;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

mod images;
mod output_file;
mod report;
pub use images::{
    ImagesArgs, ImagesCommand, LoadArgs, LockArgs, MirrorArgs, SaveArgs, SourceArgs, TargetArgs,
};
pub use output_file::rewrite_output_file;
pub use report::ReportArgs;

/// The help heading of the flags every verb takes.
pub const GLOBAL_OPTIONS: &str = "Global options";

/// The release name the chart is installed under unless `--release` says otherwise.
pub const DEFAULT_RELEASE: &str = "datajump";

/// `kubectl datajump`: install, operate, back up and restore the DataJump platform.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-datajump",
    bin_name = "kubectl datajump",
    version,
    about = "Install, operate, back up and restore the DataJump platform",
    long_about = None,
    after_help = "Examples:\n  kubectl datajump install --env dev --chart-dir charts/datajump --wait\n  kubectl datajump status --env prod -o json\n  kubectl datajump workflow submit -f etl.yaml --run-now --watch -n datajump-dev\n  kubectl datajump restore --env prod datajump-20260101-020000 --yes --confirm-env prod\n  kubectl datajump report --env prod -o ticket-4711.zip"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts, named as kubectl names them. In a verb's help they come under
/// "Global options", after the verb's own flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = GLOBAL_OPTIONS)]
pub struct GlobalOpts {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: datajump-<env> with --env, else the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Environment: dev, test, staging or prod.
    #[arg(short = 'e', long = "env", global = true, env = "DATAJUMP_ENV", value_name = "ENV",
          value_parser = env_parser())]
    pub env: Option<Environment>,
    /// Helm release name.
    #[arg(long, global = true, env = "DATAJUMP_RELEASE", default_value = DEFAULT_RELEASE)]
    pub release: String,
    /// Output format of the answer, and of the error on stderr when the command fails.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Disable colours (also when NO_COLOR is set to anything non-empty, as no-color.org says).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Debug logs on stderr (-v: commands run and requests made).
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The helm binary (default: DATAJUMP_HELM, then .tools/bin/helm of the checkout the
    /// current directory is in, then `helm` on PATH).
    #[arg(long, global = true, env = "DATAJUMP_HELM", value_name = "PATH")]
    pub helm: Option<PathBuf>,
}

/// The output format a command line asks for, read without clap (for reporting a command line
/// clap refused): the last `-o FORMAT`, `-oFORMAT`, `-o=FORMAT`, `--output FORMAT` or
/// `--output=FORMAT`, else a table.
pub(crate) fn output_format_in(args: &[std::ffi::OsString]) -> crate::output::Format {
    let mut format = OutputFormat::Table;
    let mut iter = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = iter.next() {
        let value = match arg.as_ref() {
            "-o" | "--output" => iter.next().map(|v| v.into_owned()),
            other => other
                .strip_prefix("--output=")
                .or_else(|| other.strip_prefix("-o="))
                .or_else(|| other.strip_prefix("-o"))
                .map(str::to_string),
        };
        if let Some(parsed) = value.and_then(|v| OutputFormat::from_str(&v, false).ok()) {
            format = parsed;
        }
    }
    format.into()
}

fn env_parser() -> impl TypedValueParser<Value = Environment> {
    PossibleValuesParser::new(Environment::ALL.map(Environment::as_str))
        .try_map(|s| s.parse::<Environment>())
}

/// How read commands print their answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts.
    Json,
    /// YAML for scripts.
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate values, preflight the cluster, create the namespace and `helm upgrade --install`.
    Install(InstallArgs),
    /// Same path as install, for an existing release.
    Upgrade(InstallArgs),
    /// Remove the Helm release (the namespace and its PVCs are kept).
    Uninstall(ConfirmArgs),
    /// Release, components, infrastructure, scheduler leader and last backup.
    Status,
    /// Every image the environment runs; mirror, save, load and lock them for a private
    /// registry (Harbor) and air-gapped sites.
    Images(Box<ImagesArgs>),
    /// Preview what an upgrade would change; warns about changes the API server refuses.
    Diff(ChartArgs),
    /// Validate, submit and operate scheduler workflows.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Take and list MySQL backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore a verified backup (suspends workflows and stops the scheduler meanwhile).
    Restore(RestoreArgs),
    /// Write a support bundle (one zip to attach to a ticket): versions, the release, every
    /// object of the environment, events, pod logs, the scheduler, nodes and preflight, with
    /// every secret redacted.
    Report(ReportArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell to generate completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Where the chart comes from and which values to layer on top of it.
#[derive(Debug, Clone, Args)]
pub struct ChartArgs {
    /// Chart reference in a registry, e.g. oci://harbor.example.com/datajump/datajump.
    #[arg(
        long,
        value_name = "REF",
        conflicts_with = "chart_dir",
        requires = "version"
    )]
    pub chart: Option<String>,
    /// Chart version (with --chart).
    #[arg(long, value_name = "VERSION", requires = "chart")]
    pub version: Option<String>,
    /// Local chart directory.
    #[arg(long, value_name = "DIR", default_value = "charts/datajump")]
    pub chart_dir: PathBuf,
    /// Values files layered after values-<env>.yaml (repeatable, later wins). `-f` is helm's
    /// `--values` here; on workflow verbs it is kubectl's `--filename`.
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Values on the command line, Helm syntax: a.b=c, list[0]=x, a=1,b=true (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Like --set but every value stays a string.
    #[arg(long = "set-string", value_name = "KEY=VALUE")]
    pub set_string: Vec<String>,
}

/// install / upgrade.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub chart: ChartArgs,
    /// Validate and render only (`helm --dry-run=client`); nothing touches the cluster.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait for every component to roll out, with progress.
    #[arg(long)]
    pub wait: bool,
    /// How long helm and --wait may take (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Skip the cluster preflight checks (version, CRDs, StorageClass, IngressClass).
    #[arg(long)]
    pub skip_preflight: bool,
}

/// Confirmation for destructive verbs.
#[derive(Debug, Clone, Args)]
pub struct ConfirmArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Required in addition to --yes for prod: repeat the environment name.
    #[arg(long, value_name = "ENV")]
    pub confirm_env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check a workflow file offline: schema, DAG, cron, names.
    Validate {
        /// The Workflow (or WorkflowRun) manifest, YAML or JSON (`-f` as in `kubectl apply -f`).
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
    },
    /// Validate, then server-side apply a workflow.
    Submit {
        /// The Workflow manifest, YAML or JSON (`-f` as in `kubectl apply -f`).
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// Also start a run now.
        #[arg(long)]
        run_now: bool,
        /// Follow the run to its end; the exit code reflects its outcome (implies --run-now).
        #[arg(long)]
        watch: bool,
        /// With --watch: give up after this long (0: wait as long as the run takes).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// List workflows.
    List,
    /// A workflow's DAG with each task's state in its latest run.
    Get {
        /// Workflow name.
        name: String,
    },
    /// Draw a workflow's DAG as a Mermaid flowchart or Graphviz DOT, with each task's state in
    /// a run.
    #[command(after_help = GRAPH_HELP)]
    Graph(GraphArgs),
    /// A workflow's runs, newest first.
    Runs {
        /// Workflow name.
        name: String,
        /// Only the runs of this backfill, oldest tick first.
        #[arg(long, value_name = "BACKFILL")]
        backfill: Option<String>,
    },
    /// Run a workflow for every tick of its schedule in a past window (DolphinScheduler's
    /// "complement data"): one run per tick with that tick as its logical time, named as the
    /// scheduled run of the tick, so running it twice creates nothing new.
    Backfill(BackfillArgs),
    /// Run a finished run again with the spec, logical time and parameters it had.
    Retry {
        /// WorkflowRun name.
        run: String,
        /// Keep the tasks that succeeded and run only the failed and skipped ones.
        #[arg(long)]
        from_failed: bool,
        /// Follow the new run to its end; the exit code reflects its outcome.
        #[arg(long)]
        watch: bool,
        /// With --watch: give up after this long (0: wait as long as the run takes).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Stop a run: no new task starts, running tasks finish, then its onExit task runs and the
    /// run ends Stopped (sets the run's spec.shutdown to Stop).
    Stop(ShutdownArgs),
    /// Terminate a run: its running tasks are killed (their Jobs and pods deleted), then its
    /// onExit task runs and the run ends Terminated (sets spec.shutdown to Terminate; asks for
    /// confirmation).
    Terminate {
        #[command(flatten)]
        args: ShutdownArgs,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
    /// Logs of a run's task pods, each line prefixed with its task (the last attempt of each).
    Logs {
        /// WorkflowRun name.
        run: String,
        /// Only this task.
        #[arg(long)]
        task: Option<String>,
        /// With --task: this attempt (1 is the first) instead of the last.
        #[arg(long, requires = "task", value_parser = clap::value_parser!(u32).range(1..))]
        attempt: Option<u32>,
        /// Stream new lines until the pods end.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Start a run of a workflow now.
    Run {
        /// Workflow name.
        name: String,
        /// Follow the run to its end; the exit code reflects its outcome.
        #[arg(long)]
        watch: bool,
        /// With --watch: give up after this long (0: wait as long as the run takes).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        timeout: Duration,
        /// A parameter's value for this run, NAME=VALUE (repeatable; over the workflow's default).
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// The run's logical time, RFC 3339 (default: now): what its tasks see as
        /// DATAJUMP_LOGICAL_TIME, with the data interval up to it.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        logical_time: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Stop scheduling new runs of a workflow.
    Suspend {
        /// Workflow name.
        name: String,
    },
    /// Resume scheduling a suspended workflow.
    Resume {
        /// Workflow name.
        name: String,
    },
    /// Delete a workflow and its runs.
    Delete {
        /// Workflow name.
        name: String,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
}

/// `workflow stop` and `workflow terminate`.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// WorkflowRun name.
    pub run: String,
    /// Wait until the run has ended, and print how it ended.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (0: wait as long as the run takes).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub timeout: Duration,
}

const GRAPH_HELP: &str = "\
The drawing is the answer, so the global -o (table/json/yaml) does not apply: --format picks \
the language. For the DAG as data, use `workflow get NAME -o json`.

Examples:
  kubectl datajump workflow graph -f etl.yaml > etl.mmd                 # offline, no cluster
  kubectl datajump workflow graph etl -n datajump-dev                   # latest run's states
  kubectl datajump workflow graph etl --run etl-1 --format dot | dot -Tsvg > etl.svg";

/// `workflow graph`.
#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    /// Workflow name (on the cluster); optional with --run.
    #[arg(required_unless_present_any = ["file", "run"])]
    pub name: Option<String>,
    /// Draw a workflow file instead, offline (no run states; `-f` as in `kubectl apply -f`).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with_all = ["name", "run", "no_run"]
    )]
    pub file: Option<PathBuf>,
    /// Colour the tasks by their state in this WorkflowRun, drawing the tasks it executes
    /// (default: the workflow's latest run, when it has one).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Draw the workflow as it stands, without any run's states.
    #[arg(long, conflicts_with = "run")]
    pub no_run: bool,
    /// Drawing language: a Mermaid flowchart (renders in GitHub and GitLab Markdown) or
    /// Graphviz DOT (`dot -Tsvg`).
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

/// The language `workflow graph` draws in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Mermaid flowchart (`flowchart TD`).
    Mermaid,
    /// Graphviz DOT (`digraph`).
    Dot,
}

/// `workflow backfill`.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// Workflow name (on the cluster).
    #[arg(required_unless_present = "file")]
    pub name: Option<String>,
    /// Plan a workflow file instead, offline (needs --dry-run; `-f` as in `kubectl apply -f`).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with = "name",
        requires = "dry_run"
    )]
    pub file: Option<PathBuf>,
    /// First day (YYYY-MM-DD, in each schedule's time zone) or instant (RFC 3339) of the window.
    #[arg(long, value_name = "DATE|TIME")]
    pub from: String,
    /// Last day (all of it) or instant of the window.
    #[arg(long, value_name = "DATE|TIME")]
    pub to: String,
    /// At most this many of the backfill's runs execute at once, oldest first.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub parallel: u32,
    /// Print the runs it would create and create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Follow the backfill to its end; the exit code says whether every run succeeded.
    #[arg(long, conflicts_with = "dry_run")]
    pub watch: bool,
    /// With --watch: give up after this long (0: wait as long as it takes).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Start a backup Job from the chart's backup CronJob; prints the backup name.
    Create {
        /// Wait for the Job to finish and print the backup name from its log.
        #[arg(long)]
        wait: bool,
        /// How long --wait may take.
        #[arg(long, default_value = "30m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// List backups on the backup volume: name, time, size, checksum, status.
    List {
        /// How long listing may take.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// restore BACKUP.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup to restore (see `backup list`).
    pub backup: String,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    /// How long the restore Job may take.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Parses Go-style durations as kubectl and helm accept them: `90s`, `10m`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || format!("invalid duration {s:?}: expected e.g. 90s, 10m, 1h30m");
    if s.is_empty() {
        return Err(expected());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(expected)?;
        if digits == 0 {
            return Err(expected());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(expected()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    if name.is_empty() {
        return Err(format!("expected NAME=VALUE, got {s:?}"));
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("expected an RFC 3339 time like 2026-11-01T02:00:00+08:00, got {s:?}"))
}

// What the lower layers take, converted from the flags: they never see clap's types.

impl GlobalOpts {
    /// The cluster `--kubeconfig` and `--context` name.
    pub fn target(&self) -> crate::kube::Target {
        crate::kube::Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }

    /// Whether `-v` asks for debug lines on stderr.
    pub fn verbose(&self) -> bool {
        self.verbose > 0
    }
}

impl From<OutputFormat> for crate::output::Format {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Table => Self::Table,
            OutputFormat::Json => Self::Json,
            OutputFormat::Yaml => Self::Yaml,
        }
    }
}

impl From<&GlobalOpts> for crate::output::Settings {
    fn from(global: &GlobalOpts) -> Self {
        Self {
            format: global.output.into(),
            no_color: global.no_color,
        }
    }
}

impl ChartArgs {
    /// `--chart` with `--version` (clap requires them together), else `--chart-dir`.
    pub fn source(&self) -> crate::helm::ChartSource {
        match (&self.chart, &self.version) {
            (Some(reference), Some(version)) => crate::helm::ChartSource::Registry {
                reference: reference.clone(),
                version: version.clone(),
            },
            _ => crate::helm::ChartSource::Dir(self.chart_dir.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "10", "m", "5d", "1h-3m"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }
}

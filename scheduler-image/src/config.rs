//! Command-line flags of the `datajump-scheduler` binary, and the settings built from them:
//! [`SchedulerConfig`] for the reconcilers and [`ControllerConfig`] for the controller. Every
//! flag mirrors an environment variable; the chart's scheduler Deployment sets those variables.
//! Each value is parsed once into the type its user reads, so nothing converts it on the way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{ArgAction, Parser, ValueEnum};

use crate::archive::{ArchiveConfig, LogArchive};
use crate::jobs::TaskDefaults;
use crate::plan::LogArchiving;
use datajump_api::pod::{Presets, validate_presets};
use datajump_api::validate::Limits;

/// Default of `--reconcile-concurrency`: enough to keep a cap of hundreds of tasks fed (a
/// reconcile takes a few API calls of milliseconds each), few enough to keep connections low.
pub const DEFAULT_RECONCILE_CONCURRENCY: u16 = 16;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for Fluent Bit / Elasticsearch).
    Json,
    /// Human-readable text.
    Text,
}

/// DataJump workflow scheduler: runs cron-scheduled DAGs of tasks as Kubernetes Jobs.
#[derive(Debug, Clone, Parser)]
#[command(name = "datajump-scheduler", version, about, long_about = None)]
pub struct Cli {
    /// Namespace whose Workflows are scheduled; empty = all namespaces.
    #[arg(long, env = "DATAJUMP_WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// This replica's identity in the leader Lease (the pod name, from the downward API).
    #[arg(long, env = "DATAJUMP_POD_NAME", default_value = "datajump-scheduler")]
    pub pod_name: String,
    /// Namespace of the leader Lease (the pod's namespace).
    #[arg(long, env = "DATAJUMP_POD_NAMESPACE", default_value = "default")]
    pub pod_namespace: String,
    /// Elect a leader through a Lease; only the leader acts (needed with more than one replica).
    #[arg(long, env = "DATAJUMP_LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "DATAJUMP_LEASE_NAME",
        default_value = "datajump-scheduler-leader"
    )]
    pub lease_name: String,
    /// Seconds a leader holds the Lease without renewing (failover time).
    #[arg(long, env = "DATAJUMP_LEASE_DURATION_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(2..=300))]
    pub lease_duration_seconds: u32,
    /// Global cap of task Jobs running at once, across all workflows.
    #[arg(long, env = "DATAJUMP_MAX_RUNNING_TASKS",
          default_value_t = usize::from(datajump_api::DEFAULT_MAX_RUNNING_TASKS),
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_running_tasks: usize,
    /// Seconds a task's pod may be unable to start (image pull, missing configuration, no node
    /// fits) before its attempt fails; a task's `pendingTimeoutSeconds` overrides it.
    #[arg(long, env = "DATAJUMP_TASK_PENDING_TIMEOUT", default_value_t = DEFAULT_PENDING_TIMEOUT_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub task_pending_timeout: u32,
    /// Seconds finished task pods are kept (for `kubectl logs`) once their run recorded the
    /// result; their Jobs stay as the record. 0 deletes them at once.
    #[arg(long, env = "DATAJUMP_FINISHED_POD_RETENTION", default_value_t = DEFAULT_FINISHED_POD_RETENTION_SECONDS)]
    pub finished_pod_retention: u32,
    /// Reconciles each controller (workflows, runs) runs at once. Each one in flight may hold
    /// an API server connection, so this bounds the scheduler's connections and memory when a
    /// thousand objects change at once (at startup, say); the global cap, not this, bounds the
    /// running tasks.
    #[arg(long, env = "DATAJUMP_RECONCILE_CONCURRENCY", default_value_t = DEFAULT_RECONCILE_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub reconcile_concurrency: u16,
    /// Seconds after which every workflow and run is reconciled again even if nothing changed
    /// (a safety net: changes trigger reconciles at once).
    #[arg(long, env = "DATAJUMP_RESYNC_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub resync_seconds: u32,
    /// Service account of task pods (default: the namespace's default account).
    #[arg(long, env = "DATAJUMP_TASK_SERVICE_ACCOUNT")]
    pub task_service_account: Option<String>,
    /// CPU request for tasks that set none.
    #[arg(long, env = "DATAJUMP_TASK_DEFAULT_REQUESTS_CPU")]
    pub task_default_requests_cpu: Option<String>,
    /// Memory request for tasks that set none.
    #[arg(long, env = "DATAJUMP_TASK_DEFAULT_REQUESTS_MEMORY")]
    pub task_default_requests_memory: Option<String>,
    /// CPU limit for tasks that set none.
    #[arg(long, env = "DATAJUMP_TASK_DEFAULT_LIMITS_CPU")]
    pub task_default_limits_cpu: Option<String>,
    /// Memory limit for tasks that set none.
    #[arg(long, env = "DATAJUMP_TASK_DEFAULT_LIMITS_MEMORY")]
    pub task_default_limits_memory: Option<String>,
    /// YAML or JSON file of named pod presets tasks may refer to (`pod.preset`): a map from
    /// preset name to pod options. Read and checked at startup; a problem stops the scheduler
    /// with the file and the JSON pointer of the field.
    #[arg(long, env = "DATAJUMP_POD_PRESETS_FILE", value_parser = read_presets_file)]
    pub pod_presets_file: Option<PresetsFile>,
    /// Task pools tasks may name (`pool`), with how many of their tasks may run at once across
    /// all workflows: `spark=4,gpu=2` (DolphinScheduler's task groups). A task naming another
    /// pool fails its attempt with the pools known.
    #[arg(long, env = "DATAJUMP_TASK_POOLS", default_value = "", value_parser = parse_task_pools)]
    pub task_pools: TaskPools,
    /// S3 endpoint of the log archive (`https://host[:port]`): each finished task pod's log is
    /// stored there before the pod is deleted. Unset or empty: no archive.
    #[arg(long, env = "DATAJUMP_LOG_ARCHIVE_ENDPOINT")]
    pub log_archive_endpoint: Option<String>,
    /// Bucket of the log archive.
    #[arg(long, env = "DATAJUMP_LOG_ARCHIVE_BUCKET", default_value = "")]
    pub log_archive_bucket: String,
    /// Region the log archive's requests are signed for.
    #[arg(long, env = "DATAJUMP_LOG_ARCHIVE_REGION", default_value = "us-east-1")]
    pub log_archive_region: String,
    /// Key prefix in the log archive's bucket (keys are
    /// `<prefix>/<namespace>/<workflow>/<run>/<task>/<attempt>.log`).
    #[arg(long, env = "DATAJUMP_LOG_ARCHIVE_KEY_PREFIX", default_value = "")]
    pub log_archive_key_prefix: String,
    /// File holding the log archive's access key ID (re-read at each upload).
    #[arg(long, env = "DATAJUMP_LOG_ARCHIVE_ACCESS_KEY_FILE", default_value = "")]
    pub log_archive_access_key_file: String,
    /// File holding the log archive's secret access key (re-read at each upload).
    #[arg(long, env = "DATAJUMP_LOG_ARCHIVE_SECRET_KEY_FILE", default_value = "")]
    pub log_archive_secret_key_file: String,
    /// PEM file of the CA that signed a private endpoint's certificate (besides Mozilla's roots).
    #[arg(long, env = "DATAJUMP_LOG_ARCHIVE_CA_FILE")]
    pub log_archive_ca_file: Option<String>,
    /// Seconds past a pod's retention after which a log archive that keeps failing is given
    /// up: the pod is deleted without its log, with a Warning Event. 0: never.
    #[arg(
        long,
        env = "DATAJUMP_LOG_ARCHIVE_GIVE_UP_AFTER",
        default_value_t = 86400
    )]
    pub log_archive_give_up_after: u32,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, env = "DATAJUMP_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "DATAJUMP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// Task pools and their limits, from `--task-pools`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPools(pub BTreeMap<String, usize>);

/// Parses `name=limit,name=limit` (empty: no pools); the error names the entry and what was
/// expected.
pub fn parse_task_pools(text: &str) -> Result<TaskPools, String> {
    let mut pools = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, limit) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?}: expected NAME=LIMIT, e.g. spark=4"))?;
        datajump_api::k8s_names::check_dns1123_label(name.trim())
            .map_err(|e| format!("{entry:?}: pool name {e}"))?;
        let limit: usize = limit
            .trim()
            .parse()
            .ok()
            .filter(|l| *l >= 1)
            .ok_or_else(|| format!("{entry:?}: the limit must be a whole number of at least 1"))?;
        if pools.insert(name.trim().to_string(), limit).is_some() {
            return Err(format!("{entry:?}: pool {name:?} is given twice"));
        }
    }
    Ok(TaskPools(pools))
}

/// The pod presets file, as read at startup.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetsFile {
    /// Where it was read from.
    pub path: String,
    /// The presets in it.
    pub presets: Presets,
}

/// Reads and checks a presets file; the error names the file and, for a problem inside it, the
/// JSON pointer of the field (`/gpu/volumes/0/hostPath`).
pub fn read_presets_file(path: &str) -> Result<PresetsFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let presets = parse_presets(&text).map_err(|problems| format!("{path}: {problems}"))?;
    Ok(PresetsFile {
        path: path.to_string(),
        presets,
    })
}

/// Parses presets (YAML or JSON; empty: none) and checks them, every problem on its own line.
pub fn parse_presets(text: &str) -> Result<Presets, String> {
    let document: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?
    };
    if document.is_null() {
        return Ok(Presets::new());
    }
    let presets: Presets = serde_path_to_error::deserialize(&document).map_err(|e| {
        let pointer: String = e
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Map { key } => {
                    Some(key.replace('~', "~0").replace('/', "~1"))
                }
                _ => None,
            })
            .map(|s| format!("/{s}"))
            .collect();
        format!("{pointer}: {}", e.into_inner())
    })?;
    let problems = validate_presets(&presets);
    if problems.is_empty() {
        Ok(presets)
    } else {
        Err(problems
            .iter()
            .map(|(pointer, message)| format!("{pointer}: {message}"))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

fn non_empty(pairs: [(&str, &Option<String>); 2]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect()
}

impl Cli {
    /// The log archive the flags describe, `None` without an endpoint; an error names the
    /// missing flag.
    pub fn log_archive_config(&self) -> Result<Option<ArchiveConfig>, String> {
        let Some(endpoint) = self
            .log_archive_endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
        else {
            return Ok(None);
        };
        for (flag, value) in [
            ("--log-archive-bucket", &self.log_archive_bucket),
            (
                "--log-archive-access-key-file",
                &self.log_archive_access_key_file,
            ),
            (
                "--log-archive-secret-key-file",
                &self.log_archive_secret_key_file,
            ),
        ] {
            if value.is_empty() {
                return Err(format!("{flag} is required with --log-archive-endpoint"));
            }
        }
        Ok(Some(ArchiveConfig {
            endpoint: endpoint.to_string(),
            bucket: self.log_archive_bucket.clone(),
            region: self.log_archive_region.clone(),
            key_prefix: self.log_archive_key_prefix.clone(),
            access_key_file: self.log_archive_access_key_file.clone(),
            secret_key_file: self.log_archive_secret_key_file.clone(),
            ca_file: self.log_archive_ca_file.clone().filter(|f| !f.is_empty()),
            give_up_after_seconds: self.log_archive_give_up_after,
        }))
    }

    /// Whether finished pods' logs are archived, as the planner sees it.
    fn log_archiving(&self) -> LogArchiving {
        if self
            .log_archive_endpoint
            .as_deref()
            .is_none_or(str::is_empty)
        {
            return LogArchiving::Off;
        }
        LogArchiving::On {
            give_up_after_seconds: Some(self.log_archive_give_up_after).filter(|s| *s > 0),
        }
    }

    /// The namespace to watch, `None` for all.
    pub fn namespace(&self) -> Option<&str> {
        Some(self.watch_namespace.as_str()).filter(|n| !n.is_empty())
    }

    /// Scheduler settings from the flags.
    pub fn scheduler_config(&self) -> SchedulerConfig {
        SchedulerConfig {
            max_running_tasks: self.max_running_tasks,
            pending_timeout_seconds: self.task_pending_timeout,
            finished_pod_retention_seconds: self.finished_pod_retention,
            log_archiving: self.log_archiving(),
            task_defaults: TaskDefaults {
                service_account: self.task_service_account.clone().filter(|s| !s.is_empty()),
                requests: non_empty([
                    ("cpu", &self.task_default_requests_cpu),
                    ("memory", &self.task_default_requests_memory),
                ]),
                limits: non_empty([
                    ("cpu", &self.task_default_limits_cpu),
                    ("memory", &self.task_default_limits_memory),
                ]),
                pod_presets: self
                    .pod_presets_file
                    .as_ref()
                    .map(|f| f.presets.clone())
                    .unwrap_or_default(),
            },
            task_pools: self.task_pools.0.clone(),
            limits: Limits::default(),
        }
    }

    /// Controller settings from the flags.
    pub fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            watch_namespace: self.namespace().map(str::to_string),
            identity: self.pod_name.clone(),
            leader_election: self.leader_election.then(|| LeaseConfig {
                namespace: self.pod_namespace.clone(),
                name: self.lease_name.clone(),
                duration_seconds: self.lease_duration_seconds,
            }),
            reconcile_concurrency: self.reconcile_concurrency,
            resync: Duration::from_secs(self.resync_seconds.into()),
            scheduler: self.scheduler_config(),
            log_archive: None,
        }
    }
}

/// Scheduler-wide settings of the reconcilers.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Global cap of task Jobs running at once.
    pub max_running_tasks: usize,
    /// Seconds a task's pod may be unable to start before its attempt fails, for tasks that
    /// set no `pendingTimeoutSeconds`.
    pub pending_timeout_seconds: u32,
    /// Seconds finished task pods are kept once their run recorded the result.
    pub finished_pod_retention_seconds: u32,
    /// Whether their logs are archived before they go.
    pub log_archiving: LogArchiving,
    /// Defaults applied to every task Job.
    pub task_defaults: TaskDefaults,
    /// Task pools and how many of their tasks may run at once.
    pub task_pools: BTreeMap<String, usize>,
    /// Validation limits.
    pub limits: Limits,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_running_tasks: usize::from(datajump_api::DEFAULT_MAX_RUNNING_TASKS),
            pending_timeout_seconds: DEFAULT_PENDING_TIMEOUT_SECONDS,
            finished_pod_retention_seconds: DEFAULT_FINISHED_POD_RETENTION_SECONDS,
            log_archiving: LogArchiving::Off,
            task_defaults: TaskDefaults::default(),
            task_pools: BTreeMap::new(),
            limits: Limits::default(),
        }
    }
}

/// Default of [`SchedulerConfig::pending_timeout_seconds`]: long enough for a cluster
/// autoscaler to add a node or a large image to arrive, short enough that a typo in an image
/// name does not hold a slot for the night.
pub const DEFAULT_PENDING_TIMEOUT_SECONDS: u32 = 600;

/// Default of [`SchedulerConfig::finished_pod_retention_seconds`]: an hour of `kubectl logs`
/// after a task ends (Fluent Bit ships the logs for longer), then the pod goes while its Job
/// stays as the record of the attempt.
pub const DEFAULT_FINISHED_POD_RETENTION_SECONDS: u32 = 3600;

/// What the controller runs with.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Namespace whose Workflows are scheduled; `None` for all namespaces.
    pub watch_namespace: Option<String>,
    /// This replica's name: its identity in the leader Lease and the instance reporting its
    /// Events.
    pub identity: String,
    /// The leader Lease when replicas elect a leader; `None` when this replica acts alone.
    pub leader_election: Option<LeaseConfig>,
    /// Reconciles each controller (workflows, runs) runs at once.
    pub reconcile_concurrency: u16,
    /// The longest an object waits for its next reconcile when nothing changes.
    pub resync: Duration,
    /// What the reconcilers schedule with.
    pub scheduler: SchedulerConfig,
    /// Where finished pods' logs go (built at startup from [`Cli::log_archive_config`]).
    pub log_archive: Option<std::sync::Arc<LogArchive>>,
}

/// The leader Lease replicas elect a leader through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Its namespace (the pod's).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Seconds a leader holds it without renewing (failover time).
    pub duration_seconds: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_flag_mirrors_the_env_names_the_chart_sets() {
        let cmd = Cli::command();
        let envs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        for name in [
            "DATAJUMP_WATCH_NAMESPACE",
            "DATAJUMP_POD_NAME",
            "DATAJUMP_POD_NAMESPACE",
            "DATAJUMP_LEADER_ELECTION",
            "DATAJUMP_LEASE_NAME",
            "DATAJUMP_LEASE_DURATION_SECONDS",
            "DATAJUMP_MAX_RUNNING_TASKS",
            "DATAJUMP_TASK_PENDING_TIMEOUT",
            "DATAJUMP_RECONCILE_CONCURRENCY",
            "DATAJUMP_RESYNC_SECONDS",
            "DATAJUMP_FINISHED_POD_RETENTION",
            "DATAJUMP_TASK_SERVICE_ACCOUNT",
            "DATAJUMP_TASK_DEFAULT_REQUESTS_CPU",
            "DATAJUMP_TASK_DEFAULT_REQUESTS_MEMORY",
            "DATAJUMP_TASK_DEFAULT_LIMITS_CPU",
            "DATAJUMP_TASK_DEFAULT_LIMITS_MEMORY",
            "DATAJUMP_POD_PRESETS_FILE",
            "DATAJUMP_HTTP_ADDR",
            "DATAJUMP_LOG_FORMAT",
            "DATAJUMP_LOG_ARCHIVE_ENDPOINT",
            "DATAJUMP_LOG_ARCHIVE_BUCKET",
            "DATAJUMP_LOG_ARCHIVE_REGION",
            "DATAJUMP_LOG_ARCHIVE_KEY_PREFIX",
            "DATAJUMP_LOG_ARCHIVE_ACCESS_KEY_FILE",
            "DATAJUMP_LOG_ARCHIVE_SECRET_KEY_FILE",
            "DATAJUMP_LOG_ARCHIVE_CA_FILE",
            "DATAJUMP_LOG_ARCHIVE_GIVE_UP_AFTER",
        ] {
            assert!(envs.iter().any(|e| e == name), "{name} missing: {envs:?}");
        }
        cmd.debug_assert();
    }

    #[test]
    fn the_log_archive_is_on_with_an_endpoint_and_says_which_flag_is_missing() {
        let off = Cli::try_parse_from(["datajump-scheduler"]).expect("valid flags");
        assert_eq!(off.log_archive_config(), Ok(None));
        assert_eq!(off.scheduler_config().log_archiving, LogArchiving::Off);

        let partial = Cli::try_parse_from([
            "datajump-scheduler",
            "--log-archive-endpoint=https://s3.example.com",
            "--log-archive-bucket=logs",
        ])
        .expect("valid flags");
        assert_eq!(
            partial.log_archive_config(),
            Err("--log-archive-access-key-file is required with --log-archive-endpoint".into())
        );

        let on = Cli::try_parse_from([
            "datajump-scheduler",
            "--log-archive-endpoint=https://s3.example.com",
            "--log-archive-bucket=logs",
            "--log-archive-access-key-file=/k/a",
            "--log-archive-secret-key-file=/k/s",
            "--log-archive-key-prefix=dj",
        ])
        .expect("valid flags");
        let config = on.log_archive_config().expect("valid").expect("on");
        assert_eq!(
            (
                config.bucket.as_str(),
                config.key_prefix.as_str(),
                config.give_up_after_seconds
            ),
            ("logs", "dj", 86400)
        );
        assert_eq!(
            on.scheduler_config().log_archiving,
            LogArchiving::On {
                give_up_after_seconds: Some(86400)
            }
        );
        let never = Cli::try_parse_from([
            "datajump-scheduler",
            "--log-archive-endpoint=https://s3.example.com",
            "--log-archive-give-up-after=0",
        ])
        .expect("valid flags");
        assert_eq!(
            never.scheduler_config().log_archiving,
            LogArchiving::On {
                give_up_after_seconds: None
            }
        );
    }

    #[test]
    fn flags_build_the_scheduler_config() {
        let cli = Cli::try_parse_from([
            "datajump-scheduler",
            "--leader-election=false",
            "--max-running-tasks=7",
            "--task-default-requests-cpu=250m",
            "--task-default-limits-memory=1Gi",
            "--watch-namespace=datajump-prod",
        ])
        .expect("valid flags");
        assert!(!cli.leader_election);
        assert_eq!(cli.namespace(), Some("datajump-prod"));
        let controller = cli.controller_config();
        assert_eq!(controller.leader_election, None);
        assert_eq!(controller.watch_namespace.as_deref(), Some("datajump-prod"));
        assert_eq!(controller.scheduler.max_running_tasks, 7);
        let cfg = cli.scheduler_config();
        assert_eq!(cfg.max_running_tasks, 7);
        assert_eq!(cfg.task_defaults.requests["cpu"], "250m");
        assert_eq!(cfg.task_defaults.limits["memory"], "1Gi");
        assert!(!cfg.task_defaults.requests.contains_key("memory"));
        assert!(Cli::try_parse_from(["datajump-scheduler", "--max-running-tasks=0"]).is_err());
        assert!(Cli::try_parse_from(["datajump-scheduler", "--log-format=xml"]).is_err());
    }

    #[test]
    fn the_controller_config_carries_the_lease_replicas_elect_a_leader_through() {
        let cli = Cli::try_parse_from([
            "datajump-scheduler",
            "--pod-name=scheduler-0",
            "--pod-namespace=datajump-prod",
            "--lease-duration-seconds=20",
            "--resync-seconds=60",
        ])
        .expect("valid flags");
        let cfg = cli.controller_config();
        assert_eq!(cfg.identity, "scheduler-0");
        assert_eq!(cfg.watch_namespace, None, "every namespace");
        assert_eq!(
            cfg.leader_election,
            Some(LeaseConfig {
                namespace: "datajump-prod".into(),
                name: "datajump-scheduler-leader".into(),
                duration_seconds: 20,
            })
        );
        assert_eq!(cfg.resync, Duration::from_secs(60));
        assert_eq!(
            cfg.scheduler.max_running_tasks,
            usize::from(datajump_api::DEFAULT_MAX_RUNNING_TASKS)
        );
    }

    #[test]
    fn the_presets_file_is_read_and_checked_at_startup() {
        let dir = std::env::temp_dir().join(format!("presets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good.yaml");
        std::fs::write(
            &good,
            "gpu:\n  nodeSelector: {pool: gpu}\n  tolerations: [{key: gpu, operator: Exists}]\n",
        )
        .expect("write");
        let cli = Cli::try_parse_from([
            "datajump-scheduler",
            &format!("--pod-presets-file={}", good.display()),
        ])
        .expect("valid presets");
        let cfg = cli.scheduler_config();
        assert_eq!(
            cfg.task_defaults.pod_presets["gpu"].node_selector["pool"],
            "gpu"
        );

        let bad = dir.join("bad.yaml");
        std::fs::write(
            &bad,
            "gpu:\n  volumes:\n    - {name: host, hostPath: {path: /}}\nspark:\n  securityContext: {runAsUser: root}\n",
        )
        .expect("write");
        let err = Cli::try_parse_from([
            "datajump-scheduler",
            &format!("--pod-presets-file={}", bad.display()),
        ])
        .expect_err("a type error")
        .to_string();
        assert!(
            err.contains(&format!(
                "{}: /spark/securityContext/runAsUser: invalid type",
                bad.display()
            )),
            "{err}"
        );
        std::fs::write(
            &bad,
            "gpu:\n  volumes:\n    - {name: host, hostPath: {path: /}}\n",
        )
        .expect("write");
        let err = Cli::try_parse_from([
            "datajump-scheduler",
            &format!("--pod-presets-file={}", bad.display()),
        ])
        .expect_err("a hostPath volume")
        .to_string();
        assert!(
            err.contains(&format!(
                "{}: /gpu/volumes/0/hostPath: volume source \"hostPath\" is not allowed",
                bad.display()
            )),
            "{err}"
        );
        assert_eq!(parse_presets("").expect("empty"), Presets::new());
        assert_eq!(parse_presets("{}").expect("empty map"), Presets::new());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn task_pools_are_parsed_with_clear_errors() {
        assert_eq!(parse_task_pools(""), Ok(TaskPools::default()));
        assert_eq!(
            parse_task_pools("spark=4, gpu=2").map(|p| p.0),
            Ok(BTreeMap::from([("gpu".into(), 2), ("spark".into(), 4)]))
        );
        assert_eq!(
            parse_task_pools("spark").unwrap_err(),
            "\"spark\": expected NAME=LIMIT, e.g. spark=4"
        );
        assert_eq!(
            parse_task_pools("spark=0").unwrap_err(),
            "\"spark=0\": the limit must be a whole number of at least 1"
        );
        assert!(
            parse_task_pools("Spark=1")
                .unwrap_err()
                .contains("pool name")
        );
        assert!(
            parse_task_pools("a=1,a=2")
                .unwrap_err()
                .contains("given twice")
        );
    }
}

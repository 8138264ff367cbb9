//! The `Workflow` resource: a DAG of tasks, each run as a Kubernetes Job, its parameters,
//! policies and schedule, and the status the scheduler reports on it.

// `derive(KubeSchema)` declares a copy of each struct (still `pub`) inside its generated
// `json_schema` function, where `unreachable_pub` sees an unreachable public item. The types
// here are all re-exported from the crate root, so the lint has nothing real to find in them.
#![allow(unreachable_pub)]
// kube's `printcolumn(...)` repeats keys by design; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::flow::{FailureStrategy, RetryOn, TriggerRule};
use crate::pod;

/// A workflow: a DAG of tasks, each run as a Kubernetes Job, optionally on a cron schedule.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datajump.io",
    version = "v1alpha1",
    kind = "Workflow",
    namespaced,
    status = "WorkflowStatus",
    shortname = "wf",
    category = "datajump",
    doc = "A DAG of tasks run as Kubernetes Jobs, optionally on a cron schedule.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Timezone", type_ = "string", json_path = ".spec.timezone"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activeRuns"),
    printcolumn(
        name = "Last Schedule",
        type_ = "date",
        json_path = ".status.lastScheduleTime"
    ),
    // A string, not a date: kubectl shows a date in the future as `<invalid>`.
    printcolumn(
        name = "Next Schedule",
        type_ = "string",
        json_path = ".status.nextScheduleTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.schedule) && has(self.schedules))").message("give either schedule (one cron schedule) or schedules (several), not both").field_path(".schedules"))]
#[x_kube(validation = kube::core::Rule::new("!(has(self.timezone) && has(self.schedules))").message("timezone goes with schedule; with schedules, give each entry its own timezone").field_path(".timezone"))]
pub struct WorkflowSpec {
    /// Cron schedule: 5 fields (minute hour day-of-month month day-of-week) as a Kubernetes
    /// CronJob accepts them, or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight,
    /// @hourly. Without a schedule (or `schedules`) the workflow only runs when a WorkflowRun is
    /// created by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone the schedule is evaluated in (e.g. `Europe/Berlin`); UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Several cron schedules, each with its own time zone, instead of `schedule` and
    /// `timezone` (never with them): the workflow runs at every tick of any of them, one run
    /// per instant even where two meet. Each entry at most once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.schedule == a.schedule && (has(b.timezone) ? b.timezone : 'UTC') == (has(a.timezone) ? a.timezone : 'UTC')))").message("each schedule at most once (the same schedule and time zone twice)"))]
    pub schedules: Option<Vec<ScheduleSpec>>,
    /// Stop creating scheduled runs; runs already started carry on.
    #[serde(default)]
    pub suspend: bool,
    /// What to do when a tick is due while an earlier run is still active.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A tick later than this many seconds is missed and not started. Unset: no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// Which missed ticks (still within the starting deadline) get a run.
    #[serde(default)]
    pub catch_up_policy: CatchUpPolicy,
    /// With `catchUpPolicy: All`, at most this many missed ticks (the newest) get a run.
    #[serde(default = "default_max_catch_up_runs")]
    #[schemars(range(min = 1, max = 100))]
    pub max_catch_up_runs: u32,
    /// At most this many tasks of one run execute at the same time. Unset: no per-run limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub parallelism: Option<u32>,
    /// A run still unfinished this many seconds after it started fails and its Jobs are stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Number of succeeded runs to keep.
    #[serde(default = "default_successful_history")]
    #[schemars(range(max = 100))]
    pub successful_runs_history_limit: u32,
    /// Number of failed runs to keep (runs ended `Stopped` or `Terminated` count among them).
    #[serde(default = "default_failed_history")]
    #[schemars(range(max = 100))]
    pub failed_runs_history_limit: u32,
    /// Parameters every run gets (each task sees `DATAJUMP_PARAM_<NAME>`); a run may override
    /// their values, and must give those without a default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub parameters: Vec<ParameterSpec>,
    /// The tasks; `dependsOn` edges must form a DAG.
    #[schemars(length(min = 1, max = 1000))]
    pub tasks: Vec<TaskSpec>,
    /// Runs of workflows with a higher priority get freed slots of the scheduler's task cap
    /// first (among runs of one priority: runs under way, then the oldest).
    #[serde(default)]
    #[schemars(range(min = -100, max = 100))]
    pub priority: i32,
    /// What a task failing for good does to the rest of the run: `Continue` (independent
    /// branches finish) or `FailFast` (running tasks are stopped, the rest skipped).
    #[serde(default)]
    pub failure_strategy: FailureStrategy,
    /// A task run once every task of the DAG ended, whatever the outcome (notifications,
    /// clean-up). It sees `DATAJUMP_RUN_OUTCOME` (`Succeeded`, `Failed`, or `Stopped` /
    /// `Terminated` for a run ended by its `spec.shutdown`) and
    /// `DATAJUMP_FAILED_TASKS` (comma-separated) besides the run's variables; it takes no
    /// `dependsOn` or `triggerRule`. The run fails if it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<Box<TaskSpec>>,
    /// Pod options of every task (volumes, node selector, tolerations, service account, …),
    /// under each task's own `pod`; `preset` names a pod preset of the scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_defaults: Option<pod::PodOptions>,
}

impl WorkflowSpec {
    /// The task at `index`: the DAG's tasks in order, then the `onExit` task.
    pub fn task(&self, index: usize) -> Option<&TaskSpec> {
        match self.tasks.get(index) {
            Some(task) => Some(task),
            None if index == self.tasks.len() => self.on_exit.as_deref(),
            None => None,
        }
    }

    /// Every task the run executes: the DAG's in order, then the `onExit` task.
    pub fn all_tasks(&self) -> impl Iterator<Item = &TaskSpec> {
        self.tasks.iter().chain(self.on_exit.as_deref())
    }
}

/// One entry of `schedules`: a cron schedule and its time zone, the fields of the one-schedule
/// form.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Cron schedule: 5 fields as a Kubernetes CronJob accepts them, or a macro such as
    /// @daily (as `spec.schedule`).
    #[schemars(length(min = 1, max = 200))]
    pub schedule: String,
    /// IANA time zone this schedule is evaluated in (e.g. `Asia/Shanghai`); UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub timezone: Option<String>,
}

/// A workflow parameter: a named string value the tasks read from their environment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    /// Lower-case letters, digits and `-`, starting with a letter (`day`, `source-table`): the
    /// tasks' variable is `DATAJUMP_PARAM_` and the name upper-cased with `-` as `_`.
    #[schemars(length(min = 1, max = 50), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub name: String,
    /// The value when a run does not give one; without it every run must.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What the parameter means, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn default_max_catch_up_runs() -> u32 {
    5
}
fn default_successful_history() -> u32 {
    3
}
fn default_failed_history() -> u32 {
    1
}

/// Concurrency policy of scheduled runs, with the semantics of a Kubernetes CronJob.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum ConcurrencyPolicy {
    /// Start the new run alongside the active ones.
    #[default]
    Allow,
    /// Skip the tick while a run is active.
    Forbid,
    /// Delete the active runs (and their Jobs), then start the new run.
    Replace,
}

/// Which missed ticks get a run once the scheduler notices them (after downtime, say).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum CatchUpPolicy {
    /// Only the most recent missed tick runs (a Kubernetes CronJob's behaviour).
    #[default]
    Latest,
    /// Every missed tick within the starting deadline runs, at most `maxCatchUpRuns` of them.
    All,
}

/// One task of a workflow: a container run as a Kubernetes Job.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(self.name in self.dependsOn)").message("a task cannot depend on itself"))]
pub struct TaskSpec {
    /// Task name, unique in the workflow (DNS-1123 label, at most 63 characters).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Container image.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables, including values from Secrets and ConfigMaps (`valueFrom`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Whole Secrets or ConfigMaps exposed as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Resource requests and limits; the scheduler's task defaults fill what is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Names of tasks that must end before this one starts (and, by default, succeed).
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub depends_on: Vec<String>,
    /// When the task starts given how its `dependsOn` tasks ended: `AllSucceeded` (default),
    /// `AllDone`, `AllFailed`, `AnyFailed`, `AnySucceeded` or `NoneFailed`.
    #[serde(default)]
    pub trigger_rule: TriggerRule,
    /// Retries after a failed attempt (so at most `retries + 1` attempts).
    #[serde(default)]
    #[schemars(range(max = 10))]
    pub retries: u32,
    /// Which failed attempts are retried: `Always` (default), `OnFailure` (the task ran and
    /// failed) or `OnError` (its pod never ran it: image, configuration, scheduling, a refused
    /// Job).
    #[serde(default)]
    pub retry_on: RetryOn,
    /// Delay before the first retry; multiplied by `retryBackoffFactor` for each further retry,
    /// up to `retryBackoffMaxSeconds`.
    #[serde(default = "default_retry_backoff")]
    #[schemars(range(min = 1, max = 3600))]
    pub retry_backoff_seconds: u32,
    /// Growth of the delay from one retry to the next (1 keeps it constant).
    #[serde(default = "default_retry_backoff_factor")]
    #[schemars(range(min = 1, max = 10))]
    pub retry_backoff_factor: u32,
    /// The longest delay between two attempts.
    #[serde(default = "default_retry_backoff_max")]
    #[schemars(range(min = 1, max = 86400))]
    pub retry_backoff_max_seconds: u32,
    /// An attempt running longer than this fails with reason `DeadlineExceeded`: the kubelet
    /// stops its pod (the pod stays, with its log, until the scheduler removes finished pods).
    /// Unset: no timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i64>,
    /// An attempt whose pod cannot start for this long (its image cannot be pulled, its
    /// configuration is missing, no node fits it) fails with that reason, and its Job is
    /// deleted so it no longer holds a slot. Unset: the scheduler's default
    /// (`DATAJUMP_TASK_PENDING_TIMEOUT`, 600 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pending_timeout_seconds: Option<i64>,
    /// This task's pod options, over the workflow's `podDefaults` (maps merge key by key, named
    /// list entries replace same-named ones, single values replace); `preset` names a pod
    /// preset of the scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<pod::PodOptions>,
    /// A task pool of the scheduler (DolphinScheduler's task groups, Argo's semaphores): at most
    /// the pool's limit of its tasks run at once, across all workflows, within the global cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub pool: Option<String>,
}

fn default_retry_backoff() -> u32 {
    10
}
fn default_retry_backoff_factor() -> u32 {
    2
}
fn default_retry_backoff_max() -> u32 {
    3600
}

/// Observed state of a Workflow.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// The most recent tick (of any of the schedules) a run was created for, or considered and
    /// skipped or missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// When the most recent run succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<DateTime<Utc>>,
    /// The next tick of any of the schedules, as computed at the last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<DateTime<Utc>>,
    /// Number of runs not yet finished.
    #[serde(default)]
    pub active_runs: u32,
    /// Total ticks missed (beyond the starting deadline or dropped by the catch-up policy).
    #[serde(default)]
    pub missed_ticks: u64,
    /// Why the workflow is not being scheduled, when its spec is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

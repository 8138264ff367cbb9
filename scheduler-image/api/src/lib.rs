//! The workflow API: the `Workflow` and `WorkflowRun` custom resources (group `datajump.io`,
//! version `v1alpha1`), their CRDs, the labels the scheduler puts on what it creates, object
//! names, the cron evaluator and the validation shared by the scheduler and the `kubectl
//! datajump` plugin.
//!
//! A crate of its own so that everyone who reads or writes these resources shares exactly one
//! definition of each field without compiling the scheduler's controller, web server or metrics:
//! the scheduler executes them, chart-gen writes [`crds()`] into the chart, the plugin submits
//! and shows them.

// kube's `printcolumn(...)` repeats keys by design; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

/// The scheduler's global cap of task Jobs running at once when nothing sets
/// `DATAJUMP_MAX_RUNNING_TASKS`; the chart's environments set their own (dev and test fewer).
pub const DEFAULT_MAX_RUNNING_TASKS: u32 = 50;

pub mod backfill;
pub mod flow;
pub mod names;
pub mod pod;
pub mod runtime;
pub mod schedule;
pub mod validate;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

pub use flow::{FailureStrategy, RetryOn, TriggerRule};

/// API group of both resources.
pub const GROUP: &str = "datajump.io";
/// API version of both resources.
pub const VERSION: &str = "v1alpha1";

/// Label naming the Workflow a WorkflowRun or Job belongs to.
pub const LABEL_WORKFLOW: &str = "datajump.io/workflow";
/// Label naming the WorkflowRun a Job belongs to.
pub const LABEL_RUN: &str = "datajump.io/run";
/// Label naming the task a Job executes.
pub const LABEL_TASK: &str = "datajump.io/task";
/// Label carrying the attempt number (1-based) of a task's Job.
pub const LABEL_ATTEMPT: &str = "datajump.io/attempt";
/// Annotation on a scheduled WorkflowRun with the tick (RFC 3339, UTC) it was created for.
pub const ANNOTATION_SCHEDULED_TIME: &str = "datajump.io/scheduled-time";
/// Label naming the backfill a WorkflowRun belongs to (`kubectl datajump workflow runs
/// --backfill`).
pub const LABEL_BACKFILL: &str = "datajump.io/backfill";
/// Label naming the task pool a task Job counts against.
pub const LABEL_POOL: &str = "datajump.io/pool";
/// Label on a WorkflowRun that retries another: the retried run's name.
pub const LABEL_RETRY_OF: &str = "datajump.io/retry-of";

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
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// Cron schedule: 5 fields (minute hour day-of-month month day-of-week) as a Kubernetes
    /// CronJob accepts them, or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight,
    /// @hourly. Without a schedule the workflow only runs when a WorkflowRun is created by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone the schedule is evaluated in (e.g. `Europe/Berlin`); UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
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
    /// Number of failed runs to keep.
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
    /// clean-up). It sees `DATAJUMP_RUN_OUTCOME` (`Succeeded` or `Failed`) and
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
    /// An attempt running longer than this fails (its Job is deleted). Unset: no timeout.
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
    /// The most recent tick a run was created for (or considered and skipped/missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// When the most recent run succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<DateTime<Utc>>,
    /// The next tick, as computed at the last reconcile.
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

/// One execution of a workflow, created by a schedule tick or by hand.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "datajump.io",
    version = "v1alpha1",
    kind = "WorkflowRun",
    namespaced,
    status = "WorkflowRunStatus",
    shortname = "wfr",
    category = "datajump",
    doc = "One execution of a Workflow.",
    printcolumn(name = "Workflow", type_ = "string", json_path = ".spec.workflowName"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Succeeded",
        type_ = "integer",
        json_path = ".status.succeededTasks"
    ),
    printcolumn(name = "Total", type_ = "integer", json_path = ".status.totalTasks"),
    printcolumn(name = "Started", type_ = "date", json_path = ".status.startTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("a WorkflowRun's spec is immutable"))]
pub struct WorkflowRunSpec {
    /// Name of the Workflow (same namespace) to execute.
    #[schemars(length(min = 1, max = 253))]
    pub workflow_name: String,
    /// The schedule tick this run was created for; unset for runs created by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<DateTime<Utc>>,
    /// The logical time of a run created by hand (what its tasks process): default, its creation.
    /// A scheduled run's logical time is its `scheduledTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_time: Option<DateTime<Utc>>,
    /// Values of the workflow's parameters for this run, over their defaults.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub parameters: std::collections::BTreeMap<String, String>,
    /// The finished run this one retries: this run executes that run's recorded spec (not the
    /// Workflow's current one) and, with `fromFailed`, keeps its succeeded tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<RetryOf>,
    /// The backfill this run belongs to: at most `parallelism` of its runs execute at once,
    /// oldest tick first, and they are not subject to the Workflow's `concurrencyPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillRef>,
}

/// The run a retry repeats.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetryOf {
    /// Name of the finished run (same namespace and Workflow).
    #[schemars(length(min = 1, max = 253))]
    pub run_name: String,
    /// Keep the tasks that succeeded in that run and run only the others.
    #[serde(default)]
    pub from_failed: bool,
}

/// Membership of a backfill: runs created together for past ticks.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackfillRef {
    /// The backfill's name (also the run's `datajump.io/backfill` label).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// At most this many of the backfill's runs execute at the same time.
    #[schemars(range(min = 1, max = 100))]
    pub parallelism: u32,
}

/// Lifecycle phase of a task within a run.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum TaskPhase {
    /// Waiting for dependencies, a parallelism slot, or a retry backoff.
    #[default]
    Pending,
    /// A Job for the current attempt exists.
    Running,
    /// The task's Job completed.
    Succeeded,
    /// All attempts failed (or timed out).
    Failed,
    /// Not run because an upstream task failed or the run ended.
    Skipped,
}

impl TaskPhase {
    /// Whether the task will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }
}

/// Lifecycle phase of a run.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum RunPhase {
    /// Accepted; no task started yet.
    #[default]
    Pending,
    /// At least one task started; not finished.
    Running,
    /// Every task succeeded.
    Succeeded,
    /// A task failed terminally, the run hit its deadline, or its workflow is invalid.
    Failed,
}

impl RunPhase {
    /// Whether the run is finished.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Observed state of a run; the scheduler rebuilds everything else from it and the Jobs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRunStatus {
    /// Run phase.
    #[serde(default)]
    pub phase: RunPhase,
    /// When the run was accepted by the scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// Per-task state, in the workflow's task order.
    #[serde(default)]
    pub tasks: Vec<TaskStatus>,
    /// Number of succeeded tasks (for printer columns).
    #[serde(default)]
    pub succeeded_tasks: u32,
    /// Number of tasks.
    #[serde(default)]
    pub total_tasks: u32,
    /// Human-readable reason for the current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Standard conditions (`Complete`, `Failed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RunCondition>,
    /// The Workflow's spec as the run found it when it started. Every decision of the run is
    /// made on this copy, so editing (or breaking) the Workflow changes only later runs and
    /// never rewrites a run's history. Validated on the Workflow, so stored without a schema.
    // Shared (`Arc`): the scheduler's cache keeps one copy for all runs of the same spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_object")]
    pub workflow_spec: Option<std::sync::Arc<WorkflowSpec>>,
}

/// `{type: object, x-kubernetes-preserve-unknown-fields: true}`: a stored copy of an object
/// whose schema (and CEL rules) already applied where it was written.
fn opaque_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// State of one task within a run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// Task name.
    pub name: String,
    /// Task phase.
    #[serde(default)]
    pub phase: TaskPhase,
    /// Attempts started so far (the Job of attempt `n` is named after `n`).
    #[serde(default)]
    pub attempts: u32,
    /// Job of the current (or last) attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When the current attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When the task reached a terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// Earliest time the next attempt may start (retry backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<DateTime<Utc>>,
    /// Why the task is in its phase (failure reason, skipped because of ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Machine-readable reason of the current (or last) attempt's trouble, from its pod or its
    /// Job: `ImagePullBackOff`, `Unschedulable`, `OOMKilled`, `Error`, `DeadlineExceeded`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Exit code of the last attempt's task container, once it terminated with a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// A condition in the Kubernetes style.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunCondition {
    /// Condition type: `Complete` or `Failed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason in CamelCase.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// When the condition last changed.
    pub last_transition_time: DateTime<Utc>,
}

/// The condition type of a run that ended well.
pub const CONDITION_COMPLETE: &str = "Complete";
/// The condition type of a run that failed (its `reason` says why).
pub const CONDITION_FAILED: &str = "Failed";

impl RunCondition {
    /// A `True` condition of `type_`.
    pub fn now_true(type_: &str, reason: &str, message: &str, now: DateTime<Utc>) -> Self {
        Self {
            type_: type_.to_string(),
            status: "True".into(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now,
        }
    }

    /// Puts `condition` into `conditions`, replacing any of its type (one per type, as
    /// Kubernetes conditions are).
    pub fn set(conditions: &mut Vec<RunCondition>, condition: RunCondition) {
        conditions.retain(|c| c.type_ != condition.type_);
        conditions.push(condition);
    }
}

/// The CRDs of this API, for chart-gen to write into the chart.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![Workflow::crd(), WorkflowRun::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                kubernetes_formats(schema);
                terse_kubernetes_types(schema);
            }
        }
    }
    crds
}

/// Fields whose types are Kubernetes' own (k8s-openapi's): documented by Kubernetes
/// (`kubectl explain pod.spec.affinity`), so their nested descriptions are left out of the CRDs.
/// They would otherwise make up most of the Workflow CRD (the affinity schema alone is ~30 KB,
/// and a task, the onExit task and the workflow's pod defaults each carry one), pushing it past
/// what `kubectl apply` can annotate (256 KiB).
const KUBERNETES_TYPED_FIELDS: [&str; 9] = [
    "affinity",
    "env",
    "envFrom",
    "resources",
    "tolerations",
    "persistentVolumeClaim",
    "configMap",
    "secret",
    "emptyDir",
];

/// Drops the descriptions inside [`KUBERNETES_TYPED_FIELDS`] (each keeps its own).
fn terse_kubernetes_types(schema: &mut JSONSchemaProps) {
    for (name, child) in schema.properties.iter_mut().flatten() {
        if KUBERNETES_TYPED_FIELDS.contains(&name.as_str()) {
            for_each_nested(child, &mut |s| {
                s.description = None;
            });
        } else {
            terse_kubernetes_types(child);
        }
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        terse_kubernetes_types(items);
    }
}

/// The schemas directly inside `schema`: its properties, items, additional properties and
/// the branches of `allOf`, `anyOf`, `oneOf` and `not`.
fn children(schema: &mut JSONSchemaProps) -> Vec<&mut JSONSchemaProps> {
    let mut nested: Vec<&mut JSONSchemaProps> = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten())
        .chain(schema.not.as_deref_mut())
        .collect();
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => nested.push(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => nested.extend(list.iter_mut()),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        nested.push(s);
    }
    nested
}

/// Calls `f` on every schema nested in `schema` (not on `schema` itself).
fn for_each_nested(schema: &mut JSONSchemaProps, f: &mut impl FnMut(&mut JSONSchemaProps)) {
    for child in children(schema) {
        f(child);
        for_each_nested(child, f);
    }
}

/// schemars names Rust's unsigned integers `uint8` … `uint64`, formats the API server does not
/// know (it warns `unrecognized format "uint32"` on every apply). Kubernetes knows `int32` and
/// `int64`; the sign becomes `minimum: 0`, which is what the Rust type guaranteed.
fn kubernetes_formats(schema: &mut JSONSchemaProps) {
    for_each_nested(schema, &mut unsigned_as_kubernetes_int);
    unsigned_as_kubernetes_int(schema);
}

fn unsigned_as_kubernetes_int(schema: &mut JSONSchemaProps) {
    let known = match schema.format.as_deref() {
        Some("uint8" | "uint16" | "uint32") => "int32",
        Some("uint64" | "uint") => "int64",
        _ => return,
    };
    schema.format = Some(known.into());
    if schema.minimum.is_none_or(|m| m < 0.0) {
        schema.minimum = Some(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_have_status_subresource_printer_columns_and_cel_rules() {
        let crds = crds();
        let names: Vec<_> = crds
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["workflows.datajump.io", "workflowruns.datajump.io"]);
        for crd in &crds {
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, VERSION);
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
            assert!(
                version
                    .additional_printer_columns
                    .as_ref()
                    .is_some_and(|c| c.len() >= 4)
            );
        }
        let json = serde_json::to_string(&crds).expect("CRDs serialize");
        for format in ["uint8", "uint16", "uint32", "uint64"] {
            assert!(
                !json.contains(&format!("\"format\":\"{format}\"")),
                "format {format} is unknown to Kubernetes"
            );
        }
        assert!(
            json.contains("\"format\":\"int32\""),
            "u32 fields become int32"
        );
        assert!(
            json.contains("a task cannot depend on itself"),
            "task CEL rule missing"
        );
        assert!(
            json.contains("self == oldSelf"),
            "run immutability rule missing"
        );
        let workflow = serde_json::to_string(&crds[0]).expect("CRD serializes");
        assert!(
            workflow.len() < 160_000,
            "the Workflow CRD is {} bytes; kubectl apply annotates at most 256 KiB",
            workflow.len()
        );
        assert!(
            !workflow.contains("requiredDuringSchedulingIgnoredDuringExecution\":{\"description"),
            "Kubernetes' own types carry no nested descriptions"
        );
        assert!(workflow.contains("When the task starts given how its"));
    }

    #[test]
    fn workflow_yaml_round_trips_with_defaults() {
        let yaml = r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl, namespace: data}
spec:
  schedule: "@hourly"
  tasks:
    - name: extract
      image: busybox
    - name: load
      image: busybox
      dependsOn: [extract]
      env:
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
"#;
        let wf: Workflow = serde_yaml::from_str(yaml).expect("valid workflow yaml");
        assert_eq!(wf.spec.concurrency_policy, ConcurrencyPolicy::Allow);
        assert_eq!(wf.spec.successful_runs_history_limit, 3);
        assert_eq!(wf.spec.failed_runs_history_limit, 1);
        assert_eq!(wf.spec.tasks[1].depends_on, ["extract"]);
        assert_eq!(wf.spec.tasks[1].retry_backoff_seconds, 10);
        let back = serde_json::to_value(&wf).expect("serializes");
        assert_eq!(back["spec"]["tasks"][1]["dependsOn"][0], "extract");
        assert_eq!(back["spec"]["concurrencyPolicy"], "Allow");
    }
}

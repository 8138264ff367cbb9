//! The `WorkflowRun` resource: one execution of a workflow, the phases of it and of its
//! tasks, the request to end it early (`spec.shutdown`), and the status (with the spec
//! snapshot) the scheduler records on it.

// `derive(KubeSchema)` declares a copy of each struct (still `pub`) inside its generated
// `json_schema` function, where `unreachable_pub` sees an unreachable public item. The types
// here are all re-exported from the crate root, so the lint has nothing real to find in them.
#![allow(unreachable_pub)]
// kube's `printcolumn(...)` repeats keys by design; clippy mistakes them for duplicates.
#![allow(clippy::duplicated_attributes)]

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::phase::{RunPhase, TaskPhase};
use crate::workflow::WorkflowSpec;

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
#[x_kube(validation = kube::core::Rule::new(SPEC_IMMUTABLE).message("a WorkflowRun's spec is immutable, except spec.shutdown"))]
#[x_kube(validation = kube::core::Rule::new(SHUTDOWN_ONLY_ESCALATES).message("spec.shutdown cannot be withdrawn or changed from Terminate back to Stop (only Stop may become Terminate)"))]
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
    /// Ends the run early (Argo's `shutdown`; `kubectl datajump workflow stop|terminate`):
    /// `Stop` starts no new task and lets the running ones finish, `Terminate` also stops the
    /// running ones (their Jobs and pods are deleted). Either way the `onExit` task then runs,
    /// and the run ends `Stopped` or `Terminated`. Once set it stays: `Stop` may become
    /// `Terminate`, nothing else. A run that finished (or whose tasks all ended and only its
    /// `onExit` task runs) is not affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "shutdown_schema")]
    pub shutdown: Option<Shutdown>,
}

/// [`Shutdown`]'s schema without the type's own description, so that each field keeps its
/// own: for an optional enum, kube's schema puts the type's description over the field's.
fn shutdown_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = <Shutdown as schemars::JsonSchema>::json_schema(generator);
    schema.remove("description");
    schema
}

/// A CEL clause: optional field `$field` of the spec is set as it was, or unset as it was.
/// (Kubernetes' estimate of `self.?field == oldSelf.?field` on a map is unbounded, so the
/// clause tests presence with `has` and compares only set values.)
macro_rules! unchanged_if_set {
    ($field:literal) => {
        concat!(
            " && has(self.",
            $field,
            ") == has(oldSelf.",
            $field,
            ")",
            " && (!has(self.",
            $field,
            ") || self.",
            $field,
            " == oldSelf.",
            $field,
            ")"
        )
    };
}

/// The CEL rule that keeps a run's spec as it was created, all but `shutdown` (every other
/// field of [`WorkflowRunSpec`] is named here; a test checks that none is missing).
const SPEC_IMMUTABLE: &str = concat!(
    "self.workflowName == oldSelf.workflowName",
    unchanged_if_set!("scheduledTime"),
    unchanged_if_set!("logicalTime"),
    unchanged_if_set!("parameters"),
    unchanged_if_set!("retryOf"),
    unchanged_if_set!("backfill"),
);

/// The CEL rule that lets `shutdown` only be set, or escalated from `Stop` to `Terminate`: a
/// run told to stop may already have skipped tasks, and one told to terminate has had its
/// running tasks killed, which cannot be taken back.
const SHUTDOWN_ONLY_ESCALATES: &str = "!has(oldSelf.shutdown) || (has(self.shutdown) \
    && (self.shutdown == oldSelf.shutdown || self.shutdown == 'Terminate'))";

/// How a run is asked to end before its tasks have (Argo's `spec.shutdown` values), ordered
/// by how far each goes: `Terminate` outranks `Stop`.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    schemars::JsonSchema,
)]
pub enum Shutdown {
    /// No new task starts (tasks not started are Skipped, a retry due is not made); running
    /// tasks finish; then the `onExit` task runs and the run ends `Stopped`.
    Stop,
    /// Running tasks are stopped: their Jobs are deleted with their pods and the tasks are
    /// Failed with reason `Terminated`; tasks not started are Skipped. Once those pods are
    /// gone the `onExit` task runs and the run ends `Terminated`.
    Terminate,
}

impl Shutdown {
    /// The phase a run ends in once this shutdown took effect.
    pub fn phase(self) -> RunPhase {
        match self {
            Self::Stop => RunPhase::Stopped,
            Self::Terminate => RunPhase::Terminated,
        }
    }
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
    /// Standard conditions (`Complete`, `Failed`, `Stopped`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RunCondition>,
    /// The `spec.shutdown` the scheduler acted on (it stops or terminates the run's tasks when
    /// it first sees the request); unset while the run runs its course.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "shutdown_schema")]
    pub shutdown: Option<Shutdown>,
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
    /// Condition type: `Complete`, `Failed` or `Stopped`.
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
/// The condition type of a run ended by its `spec.shutdown` (reason `StopRequested` or
/// `TerminateRequested`).
pub const CONDITION_STOPPED: &str = "Stopped";

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

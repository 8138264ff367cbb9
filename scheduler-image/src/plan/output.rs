//! What the run planner answers: the run's new status and the actions that move it forward
//! ([`RunPlan`]), and how the DAG ended ([`Outcome`]).

use chrono::{DateTime, Utc};

use datajump_api::runtime;
use datajump_api::{RunPhase, TaskPhase, WorkflowRunStatus};

/// Severity of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Normal progress.
    Normal,
    /// Something failed.
    Warning,
}

/// Something the controller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the Job for `attempt` of task `task` (index into `spec.tasks`, then the
    /// `onExit` task).
    CreateJob {
        /// Task index.
        task: usize,
        /// Attempt number, 1-based.
        attempt: u32,
        /// Deterministic Job name.
        job_name: String,
        /// For the `onExit` task's Job: how the DAG ended, which its variables tell the task.
        outcome: Option<Outcome>,
    },
    /// Delete a Job that must stop (the run is over).
    DeleteJob {
        /// Job name.
        job_name: String,
    },
    /// Delete a running Job of a terminated run in the foreground: the Job stays, marked for
    /// deletion, until its pods are gone, so it holds its slot under the cap until its
    /// containers stopped, and the run can wait for that before its `onExit` task starts.
    TerminateJob {
        /// Job name.
        job_name: String,
    },
    /// Stop a running Job's pods where they run, with the log archive on: the kubelet stops
    /// their containers (the pods' `activeDeadlineSeconds` is cut to its minimum) and the
    /// pods stay, finished, with their logs, so those are archived before the pods go (as
    /// [`Action::ArchiveLogsThenDeletePods`] does for every finished pod). The Job then fails
    /// and stays as the record of the attempt. A pod no node took yet has no log: its Job is
    /// deleted.
    KillPods {
        /// Job name.
        job_name: String,
    },
    /// Delete the finished pods of a finished Job whose result the run recorded (the Job stays
    /// as the record of the attempt).
    DeletePods {
        /// Job name.
        job_name: String,
    },
    /// Store the log of a finished Job's pod in the log archive, then delete the Job's finished
    /// pods as [`Action::DeletePods`] does. When storing fails the pods stay, and the run is
    /// looked at again soon.
    ArchiveLogsThenDeletePods {
        /// Job name.
        job_name: String,
        /// The task (the archive key's).
        task: String,
        /// The attempt (the archive key's).
        attempt: u32,
    },
    /// Record a Kubernetes Event on the run.
    Event {
        /// Severity.
        type_: EventType,
        /// CamelCase reason.
        reason: &'static str,
        /// Human-readable note.
        message: String,
    },
}

/// Reason of the Warning Event for a pod deleted without its log archived (the archive failed
/// for the whole give-up time); the controller counts these.
pub const REASON_LOG_NOT_ARCHIVED: &str = "LogNotArchived";

/// How the DAG's tasks ended, once all of them have: what the `onExit` task is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The phase the DAG leads the run to (the `onExit` task failing still fails it):
    /// `Succeeded` when no task failed and no deadline passed, `Stopped` or `Terminated` when
    /// the run's `spec.shutdown` ended it, else `Failed`.
    pub phase: RunPhase,
    /// The DAG's failed tasks, in the workflow's order.
    pub failed_tasks: Vec<String>,
}

impl Outcome {
    /// The variables that tell the `onExit` task this outcome (beyond the run's own).
    pub fn variables(&self) -> Vec<(String, String)> {
        let failed: Vec<&str> = self.failed_tasks.iter().map(String::as_str).collect();
        runtime::exit_variables(self.phase, &failed)
    }
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// The run's new status.
    pub status: WorkflowRunStatus,
    /// Actions, in order.
    pub actions: Vec<Action>,
    /// When to look again even without a watch event (retry backoff, run deadline).
    pub wake_at: Option<DateTime<Utc>>,
    /// Whether a ready task waits for a slot of the global cap: the run is woken when one
    /// frees (nothing of its own changes then), not at a time.
    pub waits_for_slot: bool,
    /// Task pools whose limit holds a ready task back: the run is woken when one of their
    /// Jobs ends.
    pub waits_for_pools: Vec<String>,
    /// Tasks that finished in this step, with their terminal phase (for metrics).
    pub finished_tasks: Vec<(usize, TaskPhase)>,
    /// How the DAG ended, once every task of it did (the `onExit` task's variables).
    pub outcome: Option<Outcome>,
}

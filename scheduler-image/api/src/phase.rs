//! The lifecycle phases of a run and of each of its tasks, as `WorkflowRun` status reports them.

use serde::{Deserialize, Serialize};

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
    /// All attempts failed (or timed out), or the attempt was stopped (`reason` `Stopped` under
    /// `FailFast` or a deadline, `Terminated` when the run was terminated).
    Failed,
    /// Not run because an upstream task failed or the run ended (or was stopped).
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
    /// Ended by `spec.shutdown: Stop`: no task started after the request, the running ones
    /// finished, then the `onExit` task ran.
    Stopped,
    /// Ended by `spec.shutdown: Terminate`: the running tasks were killed (their Jobs and pods
    /// deleted), then the `onExit` task ran.
    Terminated,
}

impl RunPhase {
    /// Whether the run is finished.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Stopped | Self::Terminated
        )
    }
}

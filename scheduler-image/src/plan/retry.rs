//! Retries: the backoff before the next attempt, whether a failed attempt is retried, and an
//! attempt refused before it started (its Job refused, its pod not buildable, its pool
//! unknown).

use chrono::{DateTime, Duration, Utc};

use super::output::{Action, EventType, RunPlan};
use datajump_api::flow::AttemptFailure;
use datajump_api::{TaskPhase, TaskSpec, TaskStatus, WorkflowSpec};

/// Delay before `attempt` (2 = first retry) of `task`: `retryBackoffSeconds *
/// retryBackoffFactor^(attempt-2)`, at most `retryBackoffMaxSeconds`.
pub fn retry_backoff(task: &TaskSpec, attempt: u32) -> Duration {
    let max = i64::from(task.retry_backoff_max_seconds);
    let mut secs = i64::from(task.retry_backoff_seconds).min(max);
    for _ in 2..attempt {
        if secs >= max {
            break;
        }
        secs = secs
            .saturating_mul(i64::from(task.retry_backoff_factor))
            .min(max);
    }
    Duration::seconds(secs)
}

/// Whether `attempt` of `task`, failed this way, is followed by another.
pub(super) fn retried(task: &TaskSpec, attempt: u32, failure: AttemptFailure) -> bool {
    attempt <= task.retries && task.retry_on.retries(failure)
}

/// Records that the Job of `attempt` of task `index` could not be created — the API server
/// refused it (invalid spec, admission, quota) or its pod could not be built (an unknown pod
/// preset), `message` saying which: the attempt failed before it started. Like any failed attempt it is
/// retried after the backoff while retries remain, else the task fails with the server's
/// message (and the next step skips its dependents). Updates the plan's status and wake-up and
/// returns the Warning Event to publish.
pub fn reject_attempt(
    plan: &mut RunPlan,
    spec: &WorkflowSpec,
    index: usize,
    attempt: u32,
    message: &str,
    now: DateTime<Utc>,
) -> Option<Action> {
    let task_spec = spec.task(index)?;
    let task = plan
        .status
        .tasks
        .iter_mut()
        .find(|t| t.name == task_spec.name)?;
    let refusal = refuse(task_spec, task, attempt, message, now);
    if refusal.failed {
        plan.finished_tasks.push((index, TaskPhase::Failed));
    }
    plan.wake_at = Some(
        plan.wake_at
            .map_or(refusal.wake_at, |w| w.min(refusal.wake_at)),
    );
    Some(refusal.event)
}

/// What refusing an attempt did to its task.
pub(super) struct Refusal {
    /// Whether the task failed for good (no retry left, or its policy retries no errors).
    pub(super) failed: bool,
    /// When to look again: at once after a failure (the dependents are skipped and the run
    /// may finish), else when the retry is due.
    pub(super) wake_at: DateTime<Utc>,
    /// The Warning Event to publish.
    pub(super) event: Action,
}

/// Records on `task` that attempt `attempt` failed before it started, `message` saying why:
/// retried after the backoff while retries remain, else the task fails.
pub(super) fn refuse(
    task_spec: &TaskSpec,
    task: &mut TaskStatus,
    attempt: u32,
    message: &str,
    now: DateTime<Utc>,
) -> Refusal {
    let why = format!("attempt {attempt}: {message}");
    if !retried(task_spec, attempt, AttemptFailure::Error) {
        task.phase = TaskPhase::Failed;
        task.completion_time = Some(now);
        task.next_attempt_time = None;
        task.message = Some(why.clone());
        return Refusal {
            failed: true,
            wake_at: now,
            event: Action::Event {
                type_: EventType::Warning,
                reason: "TaskRejected",
                message: format!("task {}: {why}", task_spec.name),
            },
        };
    }
    let next = now + retry_backoff(task_spec, attempt + 1);
    task.phase = TaskPhase::Pending;
    task.next_attempt_time = Some(next);
    task.message = Some(why.clone());
    Refusal {
        failed: false,
        wake_at: next,
        event: Action::Event {
            type_: EventType::Warning,
            reason: "TaskRetrying",
            message: format!(
                "task {}: {why}; retrying at {}",
                task_spec.name,
                next.to_rfc3339()
            ),
        },
    }
}

//! Observing: the run's Jobs (and what their pods report) folded into its tasks' states —
//! attempts adopted, succeeded or failed (retried after the backoff, or failing the task), a
//! pod that cannot start given up after the pending timeout, finished pods cleaned up once
//! their result is recorded (their logs archived first when the log archive is on).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::finish::STOPPED;
use super::input::{DEADLINE_EXCEEDED, JobState, LogArchiving, ObservedJob, PodReport};
use super::output::{Action, EventType, REASON_LOG_NOT_ARCHIVED};
use super::planner::Planner;
use super::retry::{retried, retry_backoff};
use super::shutdown::TERMINATED;
use datajump_api::flow::AttemptFailure;
use datajump_api::{TaskPhase, TaskStatus};

/// A failed Job's reason, exit code and description, from its pod where it reported how the
/// task container ended (the Job's own reason is only `BackoffLimitExceeded`).
fn failure_of(job: &ObservedJob, job_reason: &str) -> (String, Option<i32>, String) {
    let attempt = job.attempt;
    match job.pod.as_deref() {
        Some(PodReport::DeadlineExceeded { exit_code }) => (
            DEADLINE_EXCEEDED.to_string(),
            *exit_code,
            timed_out(attempt),
        ),
        _ if job_reason == DEADLINE_EXCEEDED => {
            (DEADLINE_EXCEEDED.to_string(), None, timed_out(attempt))
        }
        Some(PodReport::Terminated { reason, exit_code }) => (
            reason.clone(),
            Some(*exit_code),
            format!("attempt {attempt} failed: exit code {exit_code} ({reason})"),
        ),
        _ => (
            job_reason.to_string(),
            None,
            format!("attempt {attempt} failed: {job_reason}"),
        ),
    }
}

fn timed_out(attempt: u32) -> String {
    format!("attempt {attempt} timed out")
}

/// Reasons the scheduler records for a task it ended (a timeout, a stop, a terminate): they say
/// why its container ended better than the kubelet's `Error` or exit code does.
fn decided_by_scheduler(reason: Option<&str>) -> bool {
    matches!(reason, Some(DEADLINE_EXCEEDED | TERMINATED | STOPPED))
}

impl Planner<'_> {
    /// Folds observed Jobs into task states.
    pub(super) fn observe(&mut self) {
        for i in 0..self.tasks.len() {
            let Some(job) = self.latest_job[i] else {
                continue;
            };
            if self.tasks[i].phase.is_terminal() {
                self.settle_terminal(i, job);
                continue;
            }
            let task = &mut self.tasks[i];
            if job.attempt > task.attempts || task.job_name.is_none() {
                // A Job newer than the status knows (created just before a restart): adopt it.
                task.attempts = job.attempt;
                task.job_name = Some(job.name.clone());
                task.start_time = job.started.or(task.start_time);
            }
            if job.attempt < task.attempts {
                // The status already records a newer attempt whose Job is not observed yet.
                continue;
            }
            if task.phase == TaskPhase::Pending
                && task.next_attempt_time.is_some()
                && job.state == JobState::Active
            {
                // This attempt was given up (its pod could not start) and its Job is on its
                // way out: make sure of that, and wait for the retry.
                self.delete_job(job);
                continue;
            }
            match &job.state {
                JobState::Active => self.watch_pod(i, job),
                JobState::Succeeded => {
                    self.set_terminal(i, TaskPhase::Succeeded, None);
                    self.tasks[i].reason = None;
                }
                JobState::Failed { reason } => {
                    let (reason, exit_code, why) = failure_of(job, reason);
                    let task = &mut self.tasks[i];
                    task.reason = Some(reason);
                    task.exit_code = exit_code;
                    let ended = job.finished.unwrap_or(self.input.now);
                    self.fail_attempt(i, job.attempt, AttemptFailure::Failure, why, ended);
                }
            }
        }
    }

    /// A task that reached its end: stop the Job of an attempt given up while still active
    /// (unless its deletion is under way: asking again with another propagation would change
    /// it), and record the exit code its pod reported after the Job's failure was seen.
    pub(super) fn settle_terminal(&mut self, i: usize, job: &ObservedJob) {
        let task = &self.tasks[i];
        if job.attempt == task.attempts
            && task.phase == TaskPhase::Failed
            && job.state == JobState::Active
            && !job.deleting
        {
            let terminated = task.reason.as_deref() == Some(TERMINATED);
            self.stop_running_job(job.name.clone(), terminated);
        }
        self.record_late_exit_code(i, job);
    }

    /// A pod that reports how its container ended after the Job failed: its exit code is
    /// recorded, and its reason too unless the scheduler decided the task's end (a deadline,
    /// a stop, a terminate: the container then says only `Error`, exit 137). A pod stopped by
    /// its own deadline after its Job was seen failing tells only now that it timed out.
    pub(super) fn record_late_exit_code(&mut self, i: usize, job: &ObservedJob) {
        let (JobState::Failed { reason: job_reason }, Some(report)) =
            (&job.state, job.pod.as_deref())
        else {
            return;
        };
        let (reason, exit_code) = match report {
            PodReport::Terminated { reason, exit_code } => (reason.as_str(), Some(*exit_code)),
            PodReport::DeadlineExceeded { exit_code } => (DEADLINE_EXCEEDED, *exit_code),
            PodReport::Blocked { .. } => return,
        };
        let task = &mut self.tasks[i];
        if job.attempt != task.attempts
            || task.phase != TaskPhase::Failed
            || task.exit_code.is_some()
        {
            return;
        }
        if !decided_by_scheduler(task.reason.as_deref()) && job_reason != DEADLINE_EXCEEDED {
            if reason == DEADLINE_EXCEEDED {
                task.message = Some(timed_out(job.attempt));
            }
            task.reason = Some(reason.to_string());
        }
        task.exit_code = exit_code;
    }

    /// Finished pods whose result the run's stored status already holds (their task ended,
    /// or a later attempt started) go once the retention passed; until then, look again then.
    pub(super) fn clean_finished_pods(&mut self) {
        let recorded: HashMap<&str, &TaskStatus> = self
            .input
            .status
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let retention = Duration::seconds(i64::from(self.input.finished_pod_retention_seconds));
        for job in self.input.jobs {
            if !job.finished_pods || job.state == JobState::Active {
                continue;
            }
            let Some(task) = recorded.get(job.task.as_str()) else {
                continue;
            };
            if !(task.phase.is_terminal() || task.attempts > job.attempt) {
                continue;
            }
            let due = job.finished.unwrap_or(self.input.now) + retention;
            if due <= self.input.now {
                self.remove_finished_pods(job, due);
            } else {
                self.wake(due);
            }
        }
    }

    /// A Job's finished pods that are due: deleted, after their log is archived when the
    /// archive is on. The rule for an archive that keeps failing: the pods stay (and the
    /// controller retries) until `give_up_after_seconds` past `due`, then they go without
    /// their log, with a Warning Event saying so.
    fn remove_finished_pods(&mut self, job: &ObservedJob, due: DateTime<Utc>) {
        let delete = Action::DeletePods {
            job_name: job.name.clone(),
        };
        let LogArchiving::On {
            give_up_after_seconds,
        } = self.input.log_archiving
        else {
            self.actions.push(delete);
            return;
        };
        let give_up = give_up_after_seconds.map(|s| due + Duration::seconds(i64::from(s)));
        if give_up.is_some_and(|at| at <= self.input.now) {
            self.actions.push(delete);
            let seconds = give_up_after_seconds.unwrap_or_default();
            self.event(
                EventType::Warning,
                REASON_LOG_NOT_ARCHIVED,
                format!(
                    "task {} attempt {}: its log could not be archived within {seconds}s of its \
                     pod's retention; the pod is deleted without it",
                    job.task, job.attempt
                ),
            );
        } else {
            self.actions.push(Action::ArchiveLogsThenDeletePods {
                job_name: job.name.clone(),
                task: job.task.clone(),
                attempt: job.attempt,
            });
        }
    }

    /// A finished run: its tasks' late exit codes are still worth recording.
    pub(super) fn record_late_exit_codes(&mut self) {
        for i in 0..self.tasks.len() {
            if let Some(job) = self.latest_job[i] {
                self.record_late_exit_code(i, job);
            }
        }
    }

    /// A running attempt: show why its pod cannot start, and give the attempt up once that
    /// lasted the pending timeout, so it stops holding a slot.
    pub(super) fn watch_pod(&mut self, i: usize, job: &ObservedJob) {
        let now = self.input.now;
        let spec = self.specs[i];
        let task = &mut self.tasks[i];
        task.phase = TaskPhase::Running;
        let Some(PodReport::Blocked { reason, message }) = job.pod.as_deref() else {
            if task.reason.is_some() {
                // The pod got going (or the report was from an earlier attempt).
                task.reason = None;
                task.exit_code = None;
                task.message = None;
            }
            return;
        };
        let timeout = spec
            .pending_timeout_seconds
            .unwrap_or(i64::from(self.input.pending_timeout_seconds));
        let deadline = job.started.unwrap_or(now) + Duration::seconds(timeout);
        task.reason = Some(reason.clone());
        task.exit_code = None;
        if now < deadline {
            task.message = Some(format!(
                "attempt {} cannot start: {reason}: {message}",
                job.attempt
            ));
            self.wake(deadline);
            return;
        }
        let why = format!(
            "attempt {} could not start within {timeout}s: {reason}: {message}",
            job.attempt
        );
        self.delete_job(job);
        self.fail_attempt(i, job.attempt, AttemptFailure::Error, why, deadline);
    }

    /// Attempt `attempt` of task `i` failed at `ended`: retried after the backoff while retries
    /// remain and its retry policy covers this kind of failure, else the task fails. Derived
    /// from `ended`, so planning it again changes nothing.
    pub(super) fn fail_attempt(
        &mut self,
        i: usize,
        attempt: u32,
        failure: AttemptFailure,
        why: String,
        ended: DateTime<Utc>,
    ) {
        let spec = self.specs[i];
        // A run asked to stop makes no new attempt of its DAG's tasks.
        let stopping = self.input.shutdown.is_some() && i < self.dag_len;
        if stopping || !retried(spec, attempt, failure) {
            let name = spec.name.clone();
            self.set_terminal(i, TaskPhase::Failed, Some(why.clone()));
            self.event(
                EventType::Warning,
                "TaskFailed",
                format!("task {name}: {why}"),
            );
            return;
        }
        let next = ended + retry_backoff(spec, attempt + 1);
        let task = &mut self.tasks[i];
        if task.next_attempt_time != Some(next) {
            let msg = format!(
                "task {}: {why}; retrying at {}",
                spec.name,
                next.to_rfc3339()
            );
            task.next_attempt_time = Some(next);
            task.phase = TaskPhase::Pending;
            task.message = Some(why);
            self.event(EventType::Warning, "TaskRetrying", msg);
        }
    }
}

//! Run planning: given a run's recorded status, the Jobs observed for it and `now`, compute the
//! run's new status and the actions that move it forward. Pure: no client, no clock.
//!
//! The Jobs are the source of truth for attempts: a Job for attempt `n` of a task exists if and
//! only if that attempt was started, and its name is derived from (run, task, n). Status only
//! adds what Jobs cannot tell (Skipped, backoff deadlines), so a restarted scheduler — or one
//! whose cache lags — re-derives the same plan, and re-issuing a create for an attempt the
//! status already records is harmless: the API server answers AlreadyExists.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use datajump_api::names::job_name;
use datajump_api::validate::Dag;
use datajump_api::{
    CONDITION_COMPLETE, CONDITION_FAILED, RunCondition, RunPhase, TaskPhase, TaskStatus,
    WorkflowRunStatus, WorkflowSpec,
};

/// Longest retry backoff, whatever the attempt.
pub const MAX_BACKOFF_SECONDS: i64 = 3600;

/// State of a Job as the controller observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Pods are pending or running.
    Active,
    /// The Job completed.
    Succeeded,
    /// The Job failed; `reason` is the Job's Failed condition reason (e.g. `DeadlineExceeded`).
    Failed {
        /// Machine reason from the Job condition.
        reason: String,
    },
}

/// What a task's pod shows that its Job does not: why it cannot start, or how its task
/// container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodReport {
    /// The pod cannot start without someone's help: its image cannot be pulled, its
    /// configuration is missing, or no node fits it.
    Blocked {
        /// As the kubelet or the kube-scheduler gives it (`ImagePullBackOff`, `Unschedulable`).
        reason: String,
        /// Their message.
        message: String,
    },
    /// The task container terminated with a failure.
    Terminated {
        /// As the kubelet gives it (`OOMKilled`, `Error`).
        reason: String,
        /// The container's exit code.
        exit_code: i32,
    },
}

/// A Job owned by the run, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedJob {
    /// Value of the task label.
    pub task: String,
    /// Value of the attempt label (1-based).
    pub attempt: u32,
    /// Job name.
    pub name: String,
    /// Its state.
    pub state: JobState,
    /// When the Job was created (or started).
    pub started: Option<DateTime<Utc>>,
    /// When it finished (completion time or Failed condition transition).
    pub finished: Option<DateTime<Utc>>,
    /// What its pod reports, if anything (boxed: most Jobs have nothing to report, and the
    /// cache holds one `ObservedJob` per retained Job).
    pub pod: Option<Box<PodReport>>,
    /// Whether finished pods of it still exist (removed once the run recorded the result and
    /// the retention passed).
    pub finished_pods: bool,
}

/// What the run planner needs.
#[derive(Debug, Clone, Copy)]
pub struct RunInput<'a> {
    /// The current time.
    pub now: DateTime<Utc>,
    /// Run name (Job names derive from it).
    pub run_name: &'a str,
    /// The workflow spec the run executes.
    pub spec: &'a WorkflowSpec,
    /// Its validated dependency graph.
    pub dag: &'a Dag,
    /// The run's recorded status (default for a new run).
    pub status: &'a WorkflowRunStatus,
    /// Jobs labelled with this run.
    pub jobs: &'a [ObservedJob],
    /// How many more tasks may start now under the global cap of running tasks.
    pub free_slots: usize,
    /// Seconds a pod may be blocked before its attempt fails, for tasks that set none.
    pub pending_timeout_seconds: u32,
    /// Seconds finished pods are kept (for `kubectl logs`) once the run recorded their result.
    pub finished_pod_retention_seconds: u32,
}

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
    /// Create the Job for `attempt` of task `task` (index into `spec.tasks`).
    CreateJob {
        /// Task index.
        task: usize,
        /// Attempt number, 1-based.
        attempt: u32,
        /// Deterministic Job name.
        job_name: String,
    },
    /// Delete a Job that must stop (the run is over).
    DeleteJob {
        /// Job name.
        job_name: String,
    },
    /// Delete the finished pods of a finished Job whose result the run recorded (the Job stays
    /// as the record of the attempt).
    DeletePods {
        /// Job name.
        job_name: String,
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
    /// Tasks that finished in this step, with their terminal phase (for metrics).
    pub finished_tasks: Vec<(usize, TaskPhase)>,
}

/// A failed Job's reason, exit code and description, from its pod where it reported how the
/// task container ended (the Job's own reason is only `BackoffLimitExceeded`).
fn failure_of(job: &ObservedJob, job_reason: &str) -> (String, Option<i32>, String) {
    let attempt = job.attempt;
    match job.pod.as_deref() {
        _ if job_reason == "DeadlineExceeded" => (
            job_reason.to_string(),
            None,
            format!("attempt {attempt} timed out"),
        ),
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

/// Delay before `attempt` (2 = first retry): `base * 2^(attempt-2)`, capped.
pub fn retry_backoff(base_seconds: u32, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(2).min(20);
    let secs = i64::from(base_seconds)
        .saturating_mul(1 << exp)
        .min(MAX_BACKOFF_SECONDS);
    Duration::seconds(secs)
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
    let task_spec = spec.tasks.get(index)?;
    let task = plan
        .status
        .tasks
        .iter_mut()
        .find(|t| t.name == task_spec.name)?;
    let why = format!("attempt {attempt}: {message}");
    if attempt > task_spec.retries {
        task.phase = TaskPhase::Failed;
        task.completion_time = Some(now);
        task.next_attempt_time = None;
        task.message = Some(why.clone());
        plan.finished_tasks.push((index, TaskPhase::Failed));
        // Look again at once: the dependents are skipped and the run may finish.
        plan.wake_at = Some(now);
        Some(Action::Event {
            type_: EventType::Warning,
            reason: "TaskRejected",
            message: format!("task {}: {why}", task_spec.name),
        })
    } else {
        let next = now + retry_backoff(task_spec.retry_backoff_seconds, attempt + 1);
        task.phase = TaskPhase::Pending;
        task.next_attempt_time = Some(next);
        task.message = Some(why.clone());
        plan.wake_at = Some(plan.wake_at.map_or(next, |w| w.min(next)));
        Some(Action::Event {
            type_: EventType::Warning,
            reason: "TaskRetrying",
            message: format!(
                "task {}: {why}; retrying at {}",
                task_spec.name,
                next.to_rfc3339()
            ),
        })
    }
}

/// Plans one step of a run.
pub fn plan_run(input: &RunInput<'_>) -> RunPlan {
    let mut planner = Planner::new(input);
    planner.clean_finished_pods();
    if input.status.phase.is_finished() {
        planner.record_late_exit_codes();
        planner.stop_leftover_jobs();
        return planner.finish();
    }
    planner.observe();
    if planner.deadline_exceeded() {
        planner.abort("DeadlineExceeded", "the run exceeded activeDeadlineSeconds");
        return planner.finish();
    }
    planner.skip_downstream_of_failures();
    planner.start_ready_tasks();
    planner.complete_if_done();
    planner.finish()
}

struct Planner<'a> {
    input: &'a RunInput<'a>,
    tasks: Vec<TaskStatus>,
    /// Latest observed Job per task index.
    latest_job: Vec<Option<&'a ObservedJob>>,
    actions: Vec<Action>,
    wake_at: Option<DateTime<Utc>>,
    waits_for_slot: bool,
    finished: Vec<(usize, TaskPhase)>,
    phase: RunPhase,
    start_time: Option<DateTime<Utc>>,
    completion_time: Option<DateTime<Utc>>,
    message: Option<String>,
    conditions: Vec<RunCondition>,
}

impl<'a> Planner<'a> {
    fn new(input: &'a RunInput<'a>) -> Self {
        let spec = input.spec;
        let previous: HashMap<&str, &TaskStatus> = input
            .status
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let tasks = spec
            .tasks
            .iter()
            .map(|t| {
                previous
                    .get(t.name.as_str())
                    .map(|s| (*s).clone())
                    .unwrap_or_else(|| TaskStatus {
                        name: t.name.clone(),
                        ..TaskStatus::default()
                    })
            })
            .collect();
        let index: HashMap<&str, usize> = spec
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut latest_job: Vec<Option<&ObservedJob>> = vec![None; spec.tasks.len()];
        for job in input.jobs {
            if let Some(&i) = index.get(job.task.as_str())
                && latest_job[i].is_none_or(|j| j.attempt < job.attempt)
            {
                latest_job[i] = Some(job);
            }
        }
        let status = input.status;
        Self {
            input,
            tasks,
            latest_job,
            actions: Vec::new(),
            wake_at: None,
            waits_for_slot: false,
            finished: Vec::new(),
            phase: status.phase,
            start_time: status.start_time.or(Some(input.now)),
            completion_time: status.completion_time,
            message: status.message.clone(),
            conditions: status.conditions.clone(),
        }
    }

    fn wake(&mut self, at: DateTime<Utc>) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn event(&mut self, type_: EventType, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            type_,
            reason,
            message,
        });
    }

    fn set_terminal(&mut self, i: usize, phase: TaskPhase, message: Option<String>) {
        let now = self.input.now;
        let task = &mut self.tasks[i];
        task.phase = phase;
        task.completion_time = Some(now);
        task.next_attempt_time = None;
        task.message = message;
        self.finished.push((i, phase));
    }

    /// Folds observed Jobs into task states.
    fn observe(&mut self) {
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
                    self.fail_attempt(i, job.attempt, why, ended);
                }
            }
        }
    }

    fn delete_job(&mut self, job: &ObservedJob) {
        self.actions.push(Action::DeleteJob {
            job_name: job.name.clone(),
        });
    }

    /// A task that reached its end: stop the Job of an attempt given up while still active,
    /// and record the exit code its pod reported after the Job's failure was seen.
    fn settle_terminal(&mut self, i: usize, job: &ObservedJob) {
        let task = &self.tasks[i];
        if job.attempt == task.attempts
            && task.phase == TaskPhase::Failed
            && job.state == JobState::Active
        {
            self.delete_job(job);
        }
        self.record_late_exit_code(i, job);
    }

    fn record_late_exit_code(&mut self, i: usize, job: &ObservedJob) {
        let task = &mut self.tasks[i];
        if let (JobState::Failed { .. }, Some(PodReport::Terminated { reason, exit_code })) =
            (&job.state, job.pod.as_deref())
            && job.attempt == task.attempts
            && task.phase == TaskPhase::Failed
            && task.exit_code.is_none()
        {
            task.reason = Some(reason.clone());
            task.exit_code = Some(*exit_code);
        }
    }

    /// Finished pods whose result the run's stored status already holds (their task ended,
    /// or a later attempt started) go once the retention passed; until then, look again then.
    fn clean_finished_pods(&mut self) {
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
                self.actions.push(Action::DeletePods {
                    job_name: job.name.clone(),
                });
            } else {
                self.wake(due);
            }
        }
    }

    /// A finished run: its tasks' late exit codes are still worth recording.
    fn record_late_exit_codes(&mut self) {
        for i in 0..self.tasks.len() {
            if let Some(job) = self.latest_job[i] {
                self.record_late_exit_code(i, job);
            }
        }
    }

    /// A running attempt: show why its pod cannot start, and give the attempt up once that
    /// lasted the pending timeout, so it stops holding a slot.
    fn watch_pod(&mut self, i: usize, job: &ObservedJob) {
        let now = self.input.now;
        let spec = &self.input.spec.tasks[i];
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
        self.fail_attempt(i, job.attempt, why, deadline);
    }

    /// Attempt `attempt` of task `i` failed at `ended`: retried after the backoff while retries
    /// remain, else the task fails. Derived from `ended`, so planning it again changes nothing.
    fn fail_attempt(&mut self, i: usize, attempt: u32, why: String, ended: DateTime<Utc>) {
        let spec = &self.input.spec.tasks[i];
        if attempt > spec.retries {
            let name = spec.name.clone();
            self.set_terminal(i, TaskPhase::Failed, Some(why.clone()));
            self.event(
                EventType::Warning,
                "TaskFailed",
                format!("task {name}: {why}"),
            );
            return;
        }
        let next = ended + retry_backoff(spec.retry_backoff_seconds, attempt + 1);
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

    fn deadline_exceeded(&self) -> bool {
        match (self.input.spec.active_deadline_seconds, self.start_time) {
            (Some(d), Some(start)) => self.input.now >= start + Duration::seconds(d),
            _ => false,
        }
    }

    /// Ends the run as Failed: running attempts are stopped, pending tasks skipped.
    fn abort(&mut self, reason: &'static str, message: &str) {
        for i in 0..self.tasks.len() {
            match self.tasks[i].phase {
                TaskPhase::Running => {
                    if let Some(job) = self.tasks[i].job_name.clone() {
                        self.actions.push(Action::DeleteJob { job_name: job });
                    }
                    self.set_terminal(i, TaskPhase::Failed, Some(message.to_string()));
                }
                TaskPhase::Pending => {
                    self.set_terminal(i, TaskPhase::Skipped, Some(message.to_string()))
                }
                _ => {}
            }
        }
        self.end(RunPhase::Failed, reason, message.to_string());
    }

    fn skip_downstream_of_failures(&mut self) {
        // Walk in dependency order: one pass in topological order reaches every descendant.
        let dag = self.input.dag;
        let mut queue: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| matches!(self.tasks[i].phase, TaskPhase::Failed | TaskPhase::Skipped))
            .collect();
        while let Some(i) = queue.pop() {
            for &d in &dag.dependents[i] {
                if self.tasks[d].phase == TaskPhase::Pending && self.latest_job[d].is_none() {
                    let upstream = self.input.spec.tasks[i].name.clone();
                    self.set_terminal(
                        d,
                        TaskPhase::Skipped,
                        Some(format!("upstream task {upstream} did not succeed")),
                    );
                    queue.push(d);
                }
            }
        }
    }

    fn start_ready_tasks(&mut self) {
        let now = self.input.now;
        let running = self
            .tasks
            .iter()
            .filter(|t| t.phase == TaskPhase::Running)
            .count();
        let per_run = self
            .input
            .spec
            .parallelism
            .map_or(usize::MAX, |p| p as usize);
        let run_budget = per_run.saturating_sub(running);
        let mut budget = run_budget.min(self.input.free_slots);
        // When the global cap, not this run's parallelism, holds a ready task back, nothing of
        // this run may change to trigger it again (its slots are other runs' Jobs): it waits
        // to be woken when a slot frees.
        let cap_binds = self.input.free_slots < run_budget;
        let started_before = self.tasks.iter().any(|t| t.attempts > 0);
        for i in 0..self.tasks.len() {
            let task = &self.tasks[i];
            if task.phase.is_terminal() {
                continue;
            }
            // A started attempt whose Job is not observed (cache lag, or the Job was deleted):
            // issue the same create again; the deterministic name makes it idempotent. Only a
            // Running one: a Pending task with attempts is waiting to retry (its last attempt
            // failed or was refused), which is a new attempt below.
            if task.phase == TaskPhase::Running
                && task.attempts > 0
                && self.latest_job[i].is_none_or(|j| j.attempt < task.attempts)
            {
                let attempt = task.attempts;
                let job_name = job_name(self.input.run_name, &task.name, attempt);
                self.tasks[i].phase = TaskPhase::Running;
                self.actions.push(Action::CreateJob {
                    task: i,
                    attempt,
                    job_name,
                });
                continue;
            }
            if task.phase != TaskPhase::Pending {
                continue;
            }
            let deps_done = self.input.dag.deps[i]
                .iter()
                .all(|&d| self.tasks[d].phase == TaskPhase::Succeeded);
            if !deps_done {
                continue;
            }
            if let Some(at) = task.next_attempt_time.filter(|at| *at > now) {
                self.wake(at);
                continue;
            }
            if budget == 0 {
                self.waits_for_slot |= cap_binds;
                continue;
            }
            budget -= 1;
            let attempt = task.attempts + 1;
            let job_name = job_name(self.input.run_name, &task.name, attempt);
            let task = &mut self.tasks[i];
            task.attempts = attempt;
            task.phase = TaskPhase::Running;
            task.job_name = Some(job_name.clone());
            task.start_time = Some(now);
            task.next_attempt_time = None;
            self.actions.push(Action::CreateJob {
                task: i,
                attempt,
                job_name,
            });
        }
        if self.phase == RunPhase::Pending && self.tasks.iter().any(|t| t.attempts > 0) {
            self.phase = RunPhase::Running;
            if !started_before {
                self.event(
                    EventType::Normal,
                    "RunStarted",
                    format!("started run {}", self.input.run_name),
                );
            }
        }
        if let (Some(d), Some(start)) = (self.input.spec.active_deadline_seconds, self.start_time) {
            self.wake(start + Duration::seconds(d));
        }
    }

    fn complete_if_done(&mut self) {
        if !self.tasks.iter().all(|t| t.phase.is_terminal()) {
            return;
        }
        let failed: Vec<&str> = self
            .tasks
            .iter()
            .filter(|t| t.phase == TaskPhase::Failed)
            .map(|t| t.name.as_str())
            .collect();
        if failed.is_empty() {
            self.end(
                RunPhase::Succeeded,
                "Completed",
                format!("all {} tasks succeeded", self.tasks.len()),
            );
        } else {
            let msg = format!("failed tasks: {}", failed.join(", "));
            self.end(RunPhase::Failed, "TasksFailed", msg);
        }
    }

    fn end(&mut self, phase: RunPhase, reason: &'static str, message: String) {
        let now = self.input.now;
        self.phase = phase;
        self.completion_time = Some(now);
        let (type_, cond) = match phase {
            RunPhase::Succeeded => (EventType::Normal, CONDITION_COMPLETE),
            _ => (EventType::Warning, CONDITION_FAILED),
        };
        RunCondition::set(
            &mut self.conditions,
            RunCondition::now_true(cond, reason, &message, now),
        );
        let event_reason = if phase == RunPhase::Succeeded {
            "RunSucceeded"
        } else {
            "RunFailed"
        };
        self.event(type_, event_reason, message.clone());
        self.message = Some(message);
        self.wake_at = None;
    }

    /// After the run ended (deadline, replaced), make sure nothing it started keeps running.
    fn stop_leftover_jobs(&mut self) {
        for job in self.input.jobs {
            if job.state == JobState::Active {
                self.actions.push(Action::DeleteJob {
                    job_name: job.name.clone(),
                });
            }
        }
    }

    fn finish(self) -> RunPlan {
        let succeeded = self
            .tasks
            .iter()
            .filter(|t| t.phase == TaskPhase::Succeeded)
            .count();
        let total = self.tasks.len();
        RunPlan {
            status: WorkflowRunStatus {
                phase: self.phase,
                start_time: self.start_time,
                completion_time: self.completion_time,
                succeeded_tasks: succeeded as u32,
                total_tasks: total as u32,
                tasks: self.tasks,
                message: self.message,
                conditions: self.conditions,
                // The spec the run executes, recorded with its first step. A run that finished
                // before snapshots existed keeps none rather than get today's spec.
                workflow_spec: self.input.status.workflow_spec.clone().or_else(|| {
                    (!self.input.status.phase.is_finished())
                        .then(|| std::sync::Arc::new(self.input.spec.clone()))
                }),
            },
            actions: self.actions,
            wake_at: self.wake_at,
            waits_for_slot: self.waits_for_slot,
            finished_tasks: self.finished,
        }
    }
}

/// A finished run, for history pruning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRun {
    /// Run name.
    pub name: String,
    /// Final phase.
    pub phase: RunPhase,
    /// When it finished.
    pub completed: DateTime<Utc>,
}

/// Runs to delete so that at most `keep_succeeded` succeeded and `keep_failed` failed runs
/// remain (the newest are kept).
pub fn prune_history(runs: &[FinishedRun], keep_succeeded: u32, keep_failed: u32) -> Vec<String> {
    let mut delete = Vec::new();
    for (phase, keep) in [
        (RunPhase::Succeeded, keep_succeeded),
        (RunPhase::Failed, keep_failed),
    ] {
        let mut of_phase: Vec<&FinishedRun> = runs.iter().filter(|r| r.phase == phase).collect();
        // Newest first; the name breaks ties so the answer does not depend on input order.
        of_phase.sort_by(|a, b| {
            b.completed
                .cmp(&a.completed)
                .then_with(|| b.name.cmp(&a.name))
        });
        delete.extend(
            of_phase
                .into_iter()
                .skip(keep as usize)
                .map(|r| r.name.clone()),
        );
    }
    delete
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use datajump_api::validate::{Limits, validate_spec};

    const RUN: &str = "etl-202601010000";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time")
    }

    fn spec(tasks: &[(&str, &[&str])]) -> WorkflowSpec {
        let tasks: Vec<_> = tasks
            .iter()
            .map(|(n, d)| serde_json::json!({"name": n, "image": "busybox", "dependsOn": d}))
            .collect();
        serde_json::from_value(serde_json::json!({ "tasks": tasks })).expect("valid spec")
    }

    /// A tiny in-memory cluster: Jobs by name, created from the plan's actions.
    struct Sim {
        spec: WorkflowSpec,
        dag: Dag,
        status: WorkflowRunStatus,
        jobs: Vec<ObservedJob>,
        now: DateTime<Utc>,
        free_slots: usize,
        events: Vec<&'static str>,
    }

    impl Sim {
        fn new(spec: WorkflowSpec) -> Self {
            let dag = validate_spec(
                &spec,
                &Limits {
                    max_tasks: 10_000,
                    ..Limits::default()
                },
            )
            .expect("valid workflow");
            Self {
                spec,
                dag,
                status: WorkflowRunStatus::default(),
                jobs: Vec::new(),
                now: t0(),
                free_slots: usize::MAX,
                events: Vec::new(),
            }
        }

        /// The plan for the run as it stands, without applying it.
        fn plan(&self) -> RunPlan {
            plan_run(&RunInput {
                now: self.now,
                run_name: RUN,
                spec: &self.spec,
                dag: &self.dag,
                status: &self.status,
                jobs: &self.jobs,
                free_slots: self.free_slots,
                pending_timeout_seconds: 600,
                finished_pod_retention_seconds: 60,
            })
        }

        /// One reconcile; returns the names of Jobs created.
        fn step(&mut self) -> Vec<String> {
            let plan = self.plan();
            let mut created = Vec::new();
            for action in plan.actions {
                match action {
                    Action::CreateJob {
                        task,
                        attempt,
                        job_name,
                    } => {
                        assert!(
                            self.jobs.iter().all(|j| j.name != job_name),
                            "duplicate create of {job_name}"
                        );
                        self.jobs.push(ObservedJob {
                            task: self.spec.tasks[task].name.clone(),
                            attempt,
                            name: job_name.clone(),
                            state: JobState::Active,
                            started: Some(self.now),
                            finished: None,
                            pod: None,
                            finished_pods: false,
                        });
                        created.push(job_name);
                    }
                    Action::DeleteJob { job_name } => self.jobs.retain(|j| j.name != job_name),
                    Action::DeletePods { job_name } => {
                        for j in self.jobs.iter_mut().filter(|j| j.name == job_name) {
                            j.finished_pods = false;
                        }
                    }
                    Action::Event { reason, .. } => self.events.push(reason),
                }
            }
            self.status = plan.status;
            created
        }

        /// One reconcile in which the API server refuses every Job of `task`.
        fn step_rejecting(&mut self, task: &str) -> Vec<String> {
            let mut plan = self.plan();
            let mut refused = Vec::new();
            let actions = std::mem::take(&mut plan.actions);
            for action in actions {
                match action {
                    Action::CreateJob {
                        task: i, attempt, ..
                    } if self.spec.tasks[i].name == task => {
                        refused.push((i, attempt));
                    }
                    Action::Event { reason, .. } => self.events.push(reason),
                    other => plan.actions.push(other),
                }
            }
            let mut names = Vec::new();
            for (i, attempt) in refused {
                if let Some(Action::Event { reason, .. }) = reject_attempt(
                    &mut plan,
                    &self.spec,
                    i,
                    attempt,
                    "the API server refused its Job: exceeded quota",
                    self.now,
                ) {
                    self.events.push(reason);
                }
                names.push(job_name(RUN, task, attempt));
            }
            self.status = plan.status;
            names
        }

        fn set(&mut self, job: &str, state: JobState) {
            let now = self.now;
            let j = self
                .jobs
                .iter_mut()
                .find(|j| j.name == job)
                .expect("job exists");
            j.state = state;
            j.finished = Some(now);
        }

        fn succeed(&mut self, job: &str) {
            self.set(job, JobState::Succeeded);
        }

        fn report(&mut self, job: &str, report: PodReport) {
            let j = self
                .jobs
                .iter_mut()
                .find(|j| j.name == job)
                .expect("job exists");
            j.pod = Some(Box::new(report));
        }

        fn task(&self, task: &str) -> &TaskStatus {
            self.status
                .tasks
                .iter()
                .find(|t| t.name == task)
                .expect("task")
        }

        fn fail(&mut self, job: &str) {
            self.set(
                job,
                JobState::Failed {
                    reason: "BackoffLimitExceeded".into(),
                },
            );
        }

        fn phase(&self, task: &str) -> TaskPhase {
            self.status
                .tasks
                .iter()
                .find(|t| t.name == task)
                .expect("task")
                .phase
        }
    }

    fn job(task: &str, attempt: u32) -> String {
        format!("{RUN}-{task}-{attempt}")
    }

    fn image_pull_backoff() -> PodReport {
        PodReport::Blocked {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"etl:nope\"".into(),
        }
    }

    #[test]
    fn a_pod_that_cannot_start_fails_its_attempt_after_the_pending_timeout() {
        let mut spec = spec(&[("load", &[]), ("publish", &["load"])]);
        spec.tasks[0].retries = 1;
        spec.tasks[0].pending_timeout_seconds = Some(60);
        let mut sim = Sim::new(spec);
        sim.step();
        sim.report(&job("load", 1), image_pull_backoff());

        // Within the timeout the status says why the pod waits, and asks to look at the end.
        sim.now = t0() + Duration::seconds(10);
        let plan = sim.plan();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.wake_at, Some(t0() + Duration::seconds(60)));
        sim.step();
        let load = sim.task("load");
        assert_eq!(load.phase, TaskPhase::Running);
        assert_eq!(load.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(
            load.message
                .as_deref()
                .unwrap_or_default()
                .contains("etl:nope"),
            "{load:?}"
        );

        // At the timeout the attempt is given up: its Job is deleted, a retry is due later.
        sim.now = t0() + Duration::seconds(60);
        let plan = sim.plan();
        assert!(
            plan.actions.contains(&Action::DeleteJob {
                job_name: job("load", 1)
            }),
            "{:?}",
            plan.actions
        );
        sim.status = plan.status;
        assert_eq!(sim.phase("load"), TaskPhase::Pending);
        // While the deleted Job is still in the cache, the attempt stays given up.
        sim.now = t0() + Duration::seconds(61);
        let plan = sim.plan();
        assert_eq!(
            plan.actions,
            [Action::DeleteJob {
                job_name: job("load", 1)
            }]
        );
        assert_eq!(plan.status.tasks[0].phase, TaskPhase::Pending);
        sim.jobs.clear();

        // The retry starts after the backoff, and times out the same way: the task fails with
        // the pod's reason and its dependents are skipped.
        sim.now = t0() + Duration::seconds(71);
        assert_eq!(sim.step(), [job("load", 2)]);
        sim.report(&job("load", 2), image_pull_backoff());
        sim.now = t0() + Duration::seconds(131);
        sim.step();
        sim.step();
        let load = sim.task("load");
        assert_eq!(load.phase, TaskPhase::Failed);
        assert_eq!(load.reason.as_deref(), Some("ImagePullBackOff"));
        assert!(
            load.message
                .as_deref()
                .unwrap_or_default()
                .starts_with("attempt 2 could not start within 60s: ImagePullBackOff"),
            "{load:?}"
        );
        assert_eq!(sim.phase("publish"), TaskPhase::Skipped);
        assert_eq!(sim.status.phase, RunPhase::Failed);
    }

    #[test]
    fn finished_pods_go_once_the_result_is_recorded_and_the_retention_passed() {
        let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
        sim.step();
        sim.now = t0() + Duration::seconds(5);
        sim.succeed(&job("a", 1));
        sim.jobs[0].finished_pods = true;
        let deletes = |plan: &RunPlan| {
            plan.actions
                .iter()
                .filter(|a| matches!(a, Action::DeletePods { .. }))
                .count()
        };
        // The stored status does not hold a's result yet: its pod stays whatever the time.
        sim.now = t0() + Duration::seconds(500);
        assert_eq!(deletes(&sim.plan()), 0);
        sim.now = t0() + Duration::seconds(6);
        sim.step();
        assert_eq!(sim.phase("a"), TaskPhase::Succeeded);
        // Recorded: kept for the retention (60 s here), then deleted.
        let plan = sim.plan();
        assert_eq!(deletes(&plan), 0);
        assert_eq!(plan.wake_at, Some(t0() + Duration::seconds(65)));
        sim.now = t0() + Duration::seconds(65);
        assert_eq!(
            sim.plan()
                .actions
                .iter()
                .filter(|a| matches!(a, Action::DeletePods { .. }))
                .collect::<Vec<_>>(),
            [&Action::DeletePods {
                job_name: job("a", 1)
            }]
        );
        sim.step();
        assert_eq!(deletes(&sim.plan()), 0, "asked once, not again");
    }

    #[test]
    fn a_failed_attempt_shows_its_pods_exit_code_and_reason() {
        let mut sim = Sim::new(spec(&[("load", &[])]));
        sim.step();
        sim.fail(&job("load", 1));
        sim.report(
            &job("load", 1),
            PodReport::Terminated {
                reason: "OOMKilled".into(),
                exit_code: 137,
            },
        );
        sim.step();
        let load = sim.task("load");
        assert_eq!(
            (load.phase, load.reason.as_deref(), load.exit_code),
            (TaskPhase::Failed, Some("OOMKilled"), Some(137))
        );
        assert_eq!(
            load.message.as_deref(),
            Some("attempt 1 failed: exit code 137 (OOMKilled)")
        );

        // The pod's report can arrive after the Job's failure was recorded.
        let mut sim = Sim::new(spec(&[("load", &[])]));
        sim.step();
        sim.fail(&job("load", 1));
        sim.step();
        assert_eq!(sim.task("load").exit_code, None);
        sim.report(
            &job("load", 1),
            PodReport::Terminated {
                reason: "Error".into(),
                exit_code: 3,
            },
        );
        sim.step();
        assert_eq!(sim.task("load").exit_code, Some(3));
        assert_eq!(sim.task("load").reason.as_deref(), Some("Error"));
    }

    #[test]
    fn a_refused_job_is_a_failed_attempt_retried_then_failing_the_task() {
        let mut s = spec(&[("a", &[]), ("b", &["a"])]);
        s.tasks[0].retries = 1;
        s.tasks[0].retry_backoff_seconds = 10;
        let mut sim = Sim::new(s);
        assert_eq!(sim.step_rejecting("a"), [job("a", 1)]);
        assert_eq!(sim.phase("a"), TaskPhase::Pending, "a retry remains");
        let task = &sim.status.tasks[0];
        assert!(
            task.message
                .as_deref()
                .is_some_and(|m| m.contains("refused its Job: exceeded quota")),
            "{task:?}"
        );
        assert_eq!(task.next_attempt_time, Some(t0() + Duration::seconds(10)));
        assert!(sim.step_rejecting("a").is_empty(), "backing off");
        sim.now += Duration::seconds(10);
        assert_eq!(sim.step_rejecting("a"), [job("a", 2)]);
        assert_eq!(sim.phase("a"), TaskPhase::Failed, "no retries left");
        assert!(sim.events.contains(&"TaskRejected"), "{:?}", sim.events);
        sim.step();
        assert_eq!(sim.phase("b"), TaskPhase::Skipped);
        assert_eq!(
            sim.status.phase,
            RunPhase::Failed,
            "the run ends instead of hanging"
        );
    }

    #[test]
    fn a_chain_runs_one_task_at_a_time() {
        let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"]), ("c", &["b"])]));
        assert_eq!(sim.step(), [job("a", 1)]);
        assert_eq!(sim.status.phase, RunPhase::Running);
        assert!(sim.step().is_empty(), "nothing new while a runs");
        sim.succeed(&job("a", 1));
        assert_eq!(sim.step(), [job("b", 1)]);
        sim.succeed(&job("b", 1));
        assert_eq!(sim.step(), [job("c", 1)]);
        sim.succeed(&job("c", 1));
        assert!(sim.step().is_empty());
        assert_eq!(sim.status.phase, RunPhase::Succeeded);
        assert_eq!(sim.status.succeeded_tasks, 3);
        assert_eq!(sim.status.conditions[0].type_, "Complete");
        assert_eq!(sim.events, ["RunStarted", "RunSucceeded"]);
    }

    #[test]
    fn a_diamond_fans_out_and_joins() {
        let mut sim = Sim::new(spec(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a"]),
            ("d", &["b", "c"]),
        ]));
        assert_eq!(sim.step(), [job("a", 1)]);
        sim.succeed(&job("a", 1));
        assert_eq!(sim.step(), [job("b", 1), job("c", 1)]);
        sim.succeed(&job("b", 1));
        assert!(sim.step().is_empty(), "d waits for c");
        sim.succeed(&job("c", 1));
        assert_eq!(sim.step(), [job("d", 1)]);
        sim.succeed(&job("d", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Succeeded);
    }

    #[test]
    fn fan_out_of_1000_respects_parallelism_and_the_global_cap() {
        let names: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        let mut tasks: Vec<(&str, &[&str])> = vec![("root", &[])];
        let root: &[&str] = &["root"];
        tasks.extend(names.iter().map(|n| (n.as_str(), root)));
        let mut sim = Sim::new(spec(&tasks));
        sim.step();
        sim.succeed(&job("root", 1));
        assert_eq!(
            sim.step().len(),
            1000,
            "no limits: all children start together"
        );

        let mut limited = Sim::new(spec(&tasks));
        limited.spec.parallelism = Some(50);
        limited.step();
        limited.succeed(&job("root", 1));
        let first = limited.step();
        assert_eq!(first.len(), 50);
        limited.succeed(&first[0]);
        limited.succeed(&first[1]);
        assert_eq!(limited.step().len(), 2, "finished tasks free their slots");
        limited.free_slots = 0;
        limited.succeed(&first[2]);
        assert!(
            limited.step().is_empty(),
            "the global cap wins over parallelism"
        );
    }

    #[test]
    fn failure_retries_with_backoff_then_skips_downstream() {
        let mut s = spec(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a"]),
            ("d", &["b"]),
            ("e", &["d"]),
        ]);
        s.tasks[1].retries = 1;
        s.tasks[1].retry_backoff_seconds = 30;
        let mut sim = Sim::new(s);
        sim.step();
        sim.succeed(&job("a", 1));
        sim.step();
        sim.now += Duration::seconds(5);
        sim.fail(&job("b", 1));
        let plan_wake = {
            assert!(sim.step().is_empty(), "backoff: no immediate retry");
            assert_eq!(sim.phase("b"), TaskPhase::Pending);
            sim.status.tasks[1].next_attempt_time
        };
        assert_eq!(plan_wake, Some(t0() + Duration::seconds(35)));
        sim.now += Duration::seconds(29);
        assert!(sim.step().is_empty(), "still backing off");
        sim.now += Duration::seconds(1);
        assert_eq!(
            sim.step(),
            [job("b", 2)],
            "retry with the next attempt's name"
        );
        sim.fail(&job("b", 2));
        sim.step();
        assert_eq!(sim.phase("b"), TaskPhase::Failed);
        assert_eq!(sim.phase("d"), TaskPhase::Skipped);
        assert_eq!(
            sim.phase("e"),
            TaskPhase::Skipped,
            "skips reach every descendant"
        );
        assert_eq!(
            sim.status.phase,
            RunPhase::Running,
            "independent branch c still runs"
        );
        sim.succeed(&job("c", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(sim.status.message.as_deref(), Some("failed tasks: b"));
        assert_eq!(
            sim.events,
            ["RunStarted", "TaskRetrying", "TaskFailed", "RunFailed"]
        );
    }

    #[test]
    fn a_timed_out_attempt_says_so() {
        let mut sim = Sim::new(spec(&[("a", &[])]));
        sim.step();
        sim.set(
            &job("a", 1),
            JobState::Failed {
                reason: "DeadlineExceeded".into(),
            },
        );
        sim.step();
        assert_eq!(
            sim.status.tasks[0].message.as_deref(),
            Some("attempt 1 timed out")
        );
        assert_eq!(sim.status.phase, RunPhase::Failed);
    }

    #[test]
    fn the_run_deadline_stops_running_jobs_and_skips_the_rest() {
        let mut s = spec(&[("a", &[]), ("b", &["a"])]);
        s.active_deadline_seconds = Some(60);
        let mut sim = Sim::new(s);
        sim.step();
        sim.now += Duration::seconds(60);
        sim.step();
        assert!(sim.jobs.is_empty(), "the running Job was deleted");
        assert_eq!(
            (sim.phase("a"), sim.phase("b")),
            (TaskPhase::Failed, TaskPhase::Skipped)
        );
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(sim.status.conditions[0].reason, "DeadlineExceeded");
    }

    #[test]
    fn a_restart_with_lost_status_adopts_jobs_instead_of_duplicating_them() {
        let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"]), ("c", &["a"])]));
        sim.step();
        sim.succeed(&job("a", 1));
        sim.step();
        // The scheduler crashed before writing status: it only sees the Jobs.
        sim.status = WorkflowRunStatus::default();
        assert!(sim.step().is_empty(), "b and c already have Jobs");
        assert_eq!(
            (sim.phase("a"), sim.phase("b")),
            (TaskPhase::Succeeded, TaskPhase::Running)
        );
        assert_eq!(
            sim.status.tasks[2].job_name.as_deref(),
            Some(job("c", 1).as_str())
        );
    }

    #[test]
    fn a_recorded_attempt_without_a_visible_job_is_recreated_under_the_same_name() {
        let mut sim = Sim::new(spec(&[("a", &[])]));
        sim.step();
        sim.jobs.clear(); // cache lag, or someone deleted the Job
        let plan = plan_run(&RunInput {
            now: sim.now,
            run_name: RUN,
            spec: &sim.spec,
            dag: &sim.dag,
            status: &sim.status,
            jobs: &sim.jobs,
            free_slots: 0,
            pending_timeout_seconds: 600,
            finished_pod_retention_seconds: 60,
        });
        assert_eq!(
            plan.actions,
            [Action::CreateJob {
                task: 0,
                attempt: 1,
                job_name: job("a", 1)
            }]
        );
    }

    #[test]
    fn a_run_held_back_by_the_global_cap_waits_for_a_slot() {
        let mut sim = Sim::new(spec(&[("a", &[])]));
        sim.free_slots = 0;
        let blocked = sim.plan();
        assert!(blocked.actions.is_empty());
        assert!(blocked.waits_for_slot);
        assert_eq!(
            blocked.wake_at, None,
            "woken by a freed slot, not at a time"
        );
        // With a slot it starts, and its own Job's changes trigger it from then on.
        sim.free_slots = 1;
        let started = sim.plan();
        let creates = started
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateJob { .. }))
            .count();
        assert_eq!(creates, 1);
        assert!(!started.waits_for_slot);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(retry_backoff(10, 2), Duration::seconds(10));
        assert_eq!(retry_backoff(10, 3), Duration::seconds(20));
        assert_eq!(retry_backoff(10, 5), Duration::seconds(80));
        assert_eq!(
            retry_backoff(3000, 4),
            Duration::seconds(MAX_BACKOFF_SECONDS)
        );
    }

    #[test]
    fn history_keeps_the_newest_runs_per_phase() {
        let run = |name: &str, phase, min| FinishedRun {
            name: name.into(),
            phase,
            completed: t0() + Duration::minutes(min),
        };
        let runs = [
            run("s1", RunPhase::Succeeded, 1),
            run("s3", RunPhase::Succeeded, 3),
            run("f1", RunPhase::Failed, 2),
            run("s2", RunPhase::Succeeded, 2),
            run("f2", RunPhase::Failed, 4),
        ];
        assert_eq!(prune_history(&runs, 2, 1), ["s1", "f1"]);
        assert_eq!(prune_history(&runs, 0, 0), ["s3", "s2", "s1", "f2", "f1"]);
    }
}

//! Run planning: given a run's recorded status, the Jobs observed for it and `now`, compute the
//! run's new status and the actions that move it forward. Pure: no client, no clock.
//!
//! The Jobs are the source of truth for attempts: a Job for attempt `n` of a task exists if and
//! only if that attempt was started, and its name is derived from (run, task, n). Status only
//! adds what Jobs cannot tell (Skipped, backoff deadlines), so a restarted scheduler — or one
//! whose cache lags — re-derives the same plan, and re-issuing a create for an attempt the
//! status already records is harmless: the API server answers AlreadyExists.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use datajump_api::flow::{AttemptFailure, Decision};
use datajump_api::names::job_name;
use datajump_api::runtime;
use datajump_api::validate::Dag;
use datajump_api::{
    CONDITION_COMPLETE, CONDITION_FAILED, FailureStrategy, RunCondition, RunPhase, TaskPhase,
    TaskSpec, TaskStatus, WorkflowRunStatus, WorkflowSpec,
};

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
    /// (Shared: a run's first step records it as the run's spec snapshot without a copy.)
    pub spec: &'a std::sync::Arc<WorkflowSpec>,
    /// Its validated dependency graph.
    pub dag: &'a Dag,
    /// The run's recorded status (default for a new run).
    pub status: &'a WorkflowRunStatus,
    /// Jobs labelled with this run.
    pub jobs: &'a [ObservedJob],
    /// How many more tasks may start now under the global cap of running tasks.
    pub free_slots: usize,
    /// Free slots of each task pool the scheduler knows.
    pub pool_free: &'a HashMap<String, usize>,
    /// The task pools the scheduler knows, with their limits: a task naming another pool has
    /// its attempt refused, with these in the message.
    pub task_pools: &'a BTreeMap<String, usize>,
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

/// How the DAG's tasks ended, once all of them have: what the `onExit` task is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the run's tasks did what they should (no task failed, no deadline passed).
    pub succeeded: bool,
    /// The DAG's failed tasks, in the workflow's order.
    pub failed_tasks: Vec<String>,
}

impl Outcome {
    /// The variables that tell the `onExit` task this outcome (beyond the run's own).
    pub fn variables(&self) -> Vec<(String, String)> {
        let failed: Vec<&str> = self.failed_tasks.iter().map(String::as_str).collect();
        runtime::exit_variables(self.succeeded, &failed)
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
fn retried(task: &TaskSpec, attempt: u32, failure: AttemptFailure) -> bool {
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
struct Refusal {
    /// Whether the task failed for good (no retry left, or its policy retries no errors).
    failed: bool,
    /// When to look again: at once after a failure (the dependents are skipped and the run
    /// may finish), else when the retry is due.
    wake_at: DateTime<Utc>,
    /// The Warning Event to publish.
    event: Action,
}

/// Records on `task` that attempt `attempt` failed before it started, `message` saying why:
/// retried after the backoff while retries remain, else the task fails.
fn refuse(
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
        planner.stop_dag("the run exceeded activeDeadlineSeconds".into());
    } else if let Some(failed) = planner.fails_fast() {
        planner.stop_dag(format!(
            "stopped: task {failed} failed and the workflow fails fast"
        ));
    }
    let startable = planner.apply_trigger_rules();
    planner.start_ready_tasks(&startable);
    planner.complete_if_done();
    planner.finish()
}

struct Planner<'a> {
    input: &'a RunInput<'a>,
    /// Every task's spec: the DAG's, then the `onExit` task's (index `dag_len`).
    specs: Vec<&'a TaskSpec>,
    /// Number of tasks in the DAG.
    dag_len: usize,
    tasks: Vec<TaskStatus>,
    /// Latest observed Job per task index.
    latest_job: Vec<Option<&'a ObservedJob>>,
    actions: Vec<Action>,
    wake_at: Option<DateTime<Utc>>,
    waits_for_slot: bool,
    waits_for_pools: Vec<String>,
    finished: Vec<(usize, TaskPhase)>,
    phase: RunPhase,
    start_time: Option<DateTime<Utc>>,
    completion_time: Option<DateTime<Utc>>,
    message: Option<String>,
    conditions: Vec<RunCondition>,
}

impl<'a> Planner<'a> {
    fn new(input: &'a RunInput<'a>) -> Self {
        let specs: Vec<&TaskSpec> = input.spec.all_tasks().collect();
        let previous: HashMap<&str, &TaskStatus> = input
            .status
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let tasks = specs
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
        let index: HashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut latest_job: Vec<Option<&ObservedJob>> = vec![None; specs.len()];
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
            specs,
            dag_len: input.spec.tasks.len(),
            tasks,
            latest_job,
            actions: Vec::new(),
            wake_at: None,
            waits_for_slot: false,
            waits_for_pools: Vec::new(),
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
                    self.fail_attempt(i, job.attempt, AttemptFailure::Failure, why, ended);
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
    fn fail_attempt(
        &mut self,
        i: usize,
        attempt: u32,
        failure: AttemptFailure,
        why: String,
        ended: DateTime<Utc>,
    ) {
        let spec = self.specs[i];
        if !retried(spec, attempt, failure) {
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

    fn deadline_exceeded(&self) -> bool {
        match (self.input.spec.active_deadline_seconds, self.start_time) {
            (Some(d), Some(start)) => self.input.now >= start + Duration::seconds(d),
            _ => false,
        }
    }

    /// The first task (in the workflow's order) that failed for good, when the workflow fails
    /// fast.
    fn fails_fast(&self) -> Option<String> {
        if self.input.spec.failure_strategy != FailureStrategy::FailFast {
            return None;
        }
        self.tasks[..self.dag_len]
            .iter()
            .find(|t| t.phase == TaskPhase::Failed)
            .map(|t| t.name.clone())
    }

    /// Stops the DAG (the deadline passed, or a task failed and the workflow fails fast):
    /// running attempts are stopped and fail, tasks not started are skipped. The `onExit` task
    /// is not the DAG's: it still runs.
    fn stop_dag(&mut self, message: String) {
        for i in 0..self.dag_len {
            match self.tasks[i].phase {
                TaskPhase::Running => {
                    if let Some(job) = self.tasks[i].job_name.clone() {
                        self.actions.push(Action::DeleteJob { job_name: job });
                    }
                    self.tasks[i].reason = Some("Stopped".into());
                    self.set_terminal(i, TaskPhase::Failed, Some(message.clone()));
                }
                TaskPhase::Pending => {
                    self.set_terminal(i, TaskPhase::Skipped, Some(message.clone()))
                }
                _ => {}
            }
        }
    }

    /// Decides, in dependency order, which pending tasks may start by their trigger rules, and
    /// skips those whose rule can no longer be met (which may decide their dependents in
    /// turn, further down the same pass). Returns whether each DAG task may start.
    fn apply_trigger_rules(&mut self) -> Vec<bool> {
        let dag = self.input.dag;
        let mut startable = vec![false; self.dag_len];
        for i in topological_order(dag) {
            if self.tasks[i].phase != TaskPhase::Pending {
                continue;
            }
            let rule = self.specs[i].trigger_rule;
            let upstream = dag.deps[i].iter().map(|&d| self.tasks[d].phase);
            match rule.decide(upstream) {
                Decision::Start => startable[i] = true,
                Decision::Wait => {}
                // A task whose attempt already ran is not skipped: it retries.
                Decision::Skip if self.latest_job[i].is_some() => {}
                Decision::Skip => {
                    let message = skip_message(rule, &self.specs, &dag.deps[i], &self.tasks);
                    self.set_terminal(i, TaskPhase::Skipped, Some(message));
                }
            }
        }
        startable
    }

    /// Whether the `onExit` task may start: every task of the DAG ended.
    fn dag_done(&self) -> bool {
        self.tasks[..self.dag_len]
            .iter()
            .all(|t| t.phase.is_terminal())
    }

    fn start_ready_tasks(&mut self, startable: &[bool]) {
        let now = self.input.now;
        let exit_ready = self.dag_done();
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
        let mut pool_free = self.input.pool_free.clone();
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
                self.create_job(i, attempt, job_name);
                continue;
            }
            if task.phase != TaskPhase::Pending {
                continue;
            }
            let ready = startable.get(i).copied().unwrap_or(exit_ready);
            if !ready {
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
            let spec = self.specs[i];
            let pool = spec.pool.as_ref();
            if let Some(pool) = pool.filter(|p| !self.input.task_pools.contains_key(*p)) {
                // An attempt of a pool the scheduler does not have starts and is refused at
                // once: it holds no slot, and is retried or fails like a refused Job.
                let message = unknown_pool(pool, self.input.task_pools);
                let attempt = self.start_attempt(i);
                self.refuse(i, attempt, &message);
                continue;
            }
            if let Some(pool) = pool
                && let Some(free) = pool_free.get_mut(pool)
            {
                if *free == 0 {
                    if !self.waits_for_pools.contains(pool) {
                        self.waits_for_pools.push(pool.clone());
                    }
                    continue;
                }
                *free -= 1;
            }
            budget -= 1;
            let attempt = self.start_attempt(i);
            let job_name = job_name(self.input.run_name, &self.tasks[i].name, attempt);
            self.create_job(i, attempt, job_name);
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

    /// Records the next attempt of task `i` as started now; returns its number.
    fn start_attempt(&mut self, i: usize) -> u32 {
        let task = &mut self.tasks[i];
        let attempt = task.attempts + 1;
        task.attempts = attempt;
        task.phase = TaskPhase::Running;
        task.job_name = Some(job_name(self.input.run_name, &task.name, attempt));
        task.start_time = Some(self.input.now);
        task.next_attempt_time = None;
        attempt
    }

    /// Creates the Job of `attempt` of task `i`; the `onExit` task's carries the outcome.
    fn create_job(&mut self, i: usize, attempt: u32, job_name: String) {
        let outcome = if i == self.dag_len {
            self.outcome()
        } else {
            None
        };
        self.actions.push(Action::CreateJob {
            task: i,
            attempt,
            job_name,
            outcome,
        });
    }

    /// Attempt `attempt` of task `i` failed before it started (`message` says why).
    fn refuse(&mut self, i: usize, attempt: u32, message: &str) {
        let refusal = refuse(
            self.specs[i],
            &mut self.tasks[i],
            attempt,
            message,
            self.input.now,
        );
        if refusal.failed {
            self.finished.push((i, TaskPhase::Failed));
        }
        self.wake(refusal.wake_at);
        self.actions.push(refusal.event);
    }

    /// How the DAG ended, once all of its tasks did.
    fn outcome(&self) -> Option<Outcome> {
        if !self.dag_done() {
            return None;
        }
        let failed_tasks: Vec<String> = self.tasks[..self.dag_len]
            .iter()
            .filter(|t| t.phase == TaskPhase::Failed)
            .map(|t| t.name.clone())
            .collect();
        Some(Outcome {
            succeeded: failed_tasks.is_empty() && !self.deadline_exceeded(),
            failed_tasks,
        })
    }

    /// Ends the run once the DAG and the `onExit` task (if any) ended: Failed when a task
    /// failed, the deadline passed or the `onExit` task failed.
    fn complete_if_done(&mut self) {
        let Some(outcome) = self.outcome() else {
            return;
        };
        let exit = self
            .tasks
            .get(self.dag_len)
            .map(|t| (t.name.clone(), t.phase));
        if exit.as_ref().is_some_and(|(_, phase)| !phase.is_terminal()) {
            return;
        }
        let exit_failed = exit
            .filter(|(_, phase)| *phase == TaskPhase::Failed)
            .map(|(name, _)| format!("the onExit task {name} failed"));
        let (reason, message) = if self.deadline_exceeded() {
            (
                "DeadlineExceeded",
                "the run exceeded activeDeadlineSeconds".to_string(),
            )
        } else if !outcome.failed_tasks.is_empty() {
            (
                "TasksFailed",
                format!("failed tasks: {}", outcome.failed_tasks.join(", ")),
            )
        } else if let Some(exit_failed) = &exit_failed {
            ("ExitHandlerFailed", exit_failed.clone())
        } else {
            let done = self
                .tasks
                .iter()
                .filter(|t| t.phase == TaskPhase::Succeeded)
                .count();
            let skipped = self.tasks.len() - done;
            let message = match skipped {
                0 => format!("all {done} tasks succeeded"),
                _ => format!("{done} tasks succeeded, {skipped} skipped by their trigger rules"),
            };
            self.end(RunPhase::Succeeded, "Completed", message);
            return;
        };
        let message = match exit_failed {
            Some(exit_failed) if reason != "ExitHandlerFailed" => {
                format!("{message}; {exit_failed}")
            }
            _ => message,
        };
        self.end(RunPhase::Failed, reason, message);
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
        let outcome = self.outcome();
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
                        .then(|| std::sync::Arc::clone(self.input.spec))
                }),
            },
            outcome,
            actions: self.actions,
            wake_at: self.wake_at,
            waits_for_slot: self.waits_for_slot,
            waits_for_pools: self.waits_for_pools,
            finished_tasks: self.finished,
        }
    }
}

/// Why an attempt of a task naming pool `pool`, which the scheduler does not have, is refused.
fn unknown_pool(pool: &str, known: &BTreeMap<String, usize>) -> String {
    let known: Vec<String> = known
        .iter()
        .map(|(name, limit)| format!("{name}={limit}"))
        .collect();
    format!(
        "unknown task pool {pool:?} (the scheduler's pools: {})",
        known.join(", ")
    )
}

/// The DAG's tasks in an order where every task comes after the tasks it depends on (Kahn's
/// algorithm; the DAG was validated, so every task is reached).
fn topological_order(dag: &Dag) -> Vec<usize> {
    let mut missing: Vec<usize> = dag.deps.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..missing.len()).filter(|&i| missing[i] == 0).collect();
    let mut next = 0;
    while let Some(&task) = order.get(next) {
        next += 1;
        for &d in &dag.dependents[task] {
            missing[d] -= 1;
            if missing[d] == 0 {
                order.push(d);
            }
        }
    }
    order
}

/// Why a task's trigger rule skips it, naming the upstream tasks that decided it.
fn skip_message(
    rule: datajump_api::TriggerRule,
    specs: &[&TaskSpec],
    deps: &[usize],
    tasks: &[TaskStatus],
) -> String {
    use datajump_api::TriggerRule as R;
    let named = |wanted: &[TaskPhase]| -> String {
        let names: Vec<&str> = deps
            .iter()
            .filter(|&&d| wanted.contains(&tasks[d].phase))
            .map(|&d| specs[d].name.as_str())
            .collect();
        names.join(", ")
    };
    match rule {
        R::AllSucceeded => format!(
            "upstream task {} did not succeed",
            named(&[TaskPhase::Failed, TaskPhase::Skipped])
        ),
        R::AllFailed => format!(
            "triggerRule AllFailed: upstream task {} did not fail",
            named(&[TaskPhase::Succeeded, TaskPhase::Skipped])
        ),
        R::NoneFailed => format!(
            "triggerRule NoneFailed: upstream task {} failed",
            named(&[TaskPhase::Failed])
        ),
        R::AnyFailed => "triggerRule AnyFailed: no upstream task failed".to_string(),
        R::AnySucceeded => "triggerRule AnySucceeded: no upstream task succeeded".to_string(),
        R::AllDone => "triggerRule AllDone".to_string(),
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
        spec: std::sync::Arc<WorkflowSpec>,
        dag: Dag,
        status: WorkflowRunStatus,
        jobs: Vec<ObservedJob>,
        now: DateTime<Utc>,
        free_slots: usize,
        pool_free: HashMap<String, usize>,
        task_pools: BTreeMap<String, usize>,
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
                spec: std::sync::Arc::new(spec),
                dag,
                status: WorkflowRunStatus::default(),
                jobs: Vec::new(),
                now: t0(),
                free_slots: usize::MAX,
                pool_free: HashMap::new(),
                task_pools: BTreeMap::new(),
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
                pool_free: &self.pool_free,
                task_pools: &self.task_pools,
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
                        ..
                    } => {
                        assert!(
                            self.jobs.iter().all(|j| j.name != job_name),
                            "duplicate create of {job_name}"
                        );
                        self.jobs.push(ObservedJob {
                            task: self.spec.task(task).expect("task").name.clone(),
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
                    } if self.spec.task(i).is_some_and(|t| t.name == task) => {
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
        std::sync::Arc::make_mut(&mut limited.spec).parallelism = Some(50);
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
            pool_free: &HashMap::new(),
            task_pools: &BTreeMap::new(),
            pending_timeout_seconds: 600,
            finished_pod_retention_seconds: 60,
        });
        assert_eq!(
            plan.actions,
            [Action::CreateJob {
                task: 0,
                attempt: 1,
                job_name: job("a", 1),
                outcome: None,
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
    fn backoff_grows_by_its_factor_and_is_capped() {
        let mut s = spec(&[("a", &[])]);
        let task = &mut s.tasks[0];
        assert_eq!(retry_backoff(task, 2), Duration::seconds(10));
        assert_eq!(retry_backoff(task, 3), Duration::seconds(20));
        assert_eq!(retry_backoff(task, 5), Duration::seconds(80));
        task.retry_backoff_seconds = 3000;
        assert_eq!(retry_backoff(task, 4), Duration::seconds(3600));
        assert_eq!(retry_backoff(task, 60), Duration::seconds(3600));
        task.retry_backoff_seconds = 5;
        task.retry_backoff_factor = 3;
        task.retry_backoff_max_seconds = 100;
        assert_eq!(retry_backoff(task, 3), Duration::seconds(15));
        assert_eq!(retry_backoff(task, 4), Duration::seconds(45));
        assert_eq!(retry_backoff(task, 5), Duration::seconds(100));
        task.retry_backoff_factor = 1;
        assert_eq!(retry_backoff(task, 9), Duration::seconds(5));
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

    fn spec_yaml(yaml: &str) -> WorkflowSpec {
        serde_yaml::from_str(yaml).expect("valid spec yaml")
    }

    #[test]
    fn trigger_rules_run_clean_up_and_alerts_after_a_failure() {
        let mut sim = Sim::new(spec_yaml(
            r#"
tasks:
  - {name: load, image: busybox}
  - {name: publish, image: busybox, dependsOn: [load]}
  - {name: cleanup, image: busybox, dependsOn: [load], triggerRule: AllDone}
  - {name: alert, image: busybox, dependsOn: [load], triggerRule: AnyFailed}
  - {name: celebrate, image: busybox, dependsOn: [load], triggerRule: AnySucceeded}
  - {name: audit, image: busybox, dependsOn: [publish], triggerRule: NoneFailed}
"#,
        ));
        assert_eq!(sim.step(), [job("load", 1)]);
        sim.fail(&job("load", 1));
        assert_eq!(
            sim.step(),
            [job("cleanup", 1), job("alert", 1), job("audit", 1)],
            "AllDone and AnyFailed start; NoneFailed runs behind the skipped publish"
        );
        assert_eq!(sim.phase("publish"), TaskPhase::Skipped);
        assert_eq!(
            sim.task("publish").message.as_deref(),
            Some("upstream task load did not succeed")
        );
        assert_eq!(sim.phase("celebrate"), TaskPhase::Skipped);
        assert_eq!(
            sim.task("celebrate").message.as_deref(),
            Some("triggerRule AnySucceeded: no upstream task succeeded")
        );
        sim.succeed(&job("cleanup", 1));
        sim.succeed(&job("alert", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Running, "audit still runs");
        sim.succeed(&job("audit", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed, "load failed");
        assert_eq!(sim.status.message.as_deref(), Some("failed tasks: load"));
    }

    #[test]
    fn a_skipped_branch_alone_does_not_fail_the_run() {
        let mut sim = Sim::new(spec_yaml(
            r#"
tasks:
  - {name: load, image: busybox}
  - {name: alert, image: busybox, dependsOn: [load], triggerRule: AnyFailed}
"#,
        ));
        sim.step();
        sim.succeed(&job("load", 1));
        assert!(sim.step().is_empty());
        assert_eq!(sim.phase("alert"), TaskPhase::Skipped);
        assert_eq!(sim.status.phase, RunPhase::Succeeded);
        assert_eq!(
            sim.status.message.as_deref(),
            Some("1 tasks succeeded, 1 skipped by their trigger rules")
        );
    }

    #[test]
    fn fail_fast_stops_running_tasks_and_skips_the_rest() {
        let mut sim = Sim::new(spec_yaml(
            r#"
failureStrategy: FailFast
tasks:
  - {name: a, image: busybox}
  - {name: b, image: busybox}
  - {name: c, image: busybox, dependsOn: [b]}
  - {name: d, image: busybox, dependsOn: [a], triggerRule: AllDone}
"#,
        ));
        assert_eq!(sim.step(), [job("a", 1), job("b", 1)]);
        sim.fail(&job("a", 1));
        let plan = sim.plan();
        assert!(
            plan.actions.contains(&Action::DeleteJob {
                job_name: job("b", 1)
            }),
            "the running task b is stopped"
        );
        assert!(sim.step().is_empty(), "nothing starts after a failure");
        assert_eq!(sim.phase("b"), TaskPhase::Failed);
        assert_eq!(sim.task("b").reason.as_deref(), Some("Stopped"));
        assert_eq!(sim.phase("c"), TaskPhase::Skipped);
        assert_eq!(
            sim.phase("d"),
            TaskPhase::Skipped,
            "fail fast outranks trigger rules"
        );
        assert_eq!(
            sim.task("c").message.as_deref(),
            Some("stopped: task a failed and the workflow fails fast")
        );
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(sim.status.message.as_deref(), Some("failed tasks: a, b"));
    }

    const WITH_EXIT: &str = r#"
tasks:
  - {name: a, image: busybox}
  - {name: b, image: busybox, dependsOn: [a]}
onExit: {name: notify, image: busybox}
"#;

    #[test]
    fn the_exit_task_runs_after_the_dag_with_its_outcome() {
        let mut sim = Sim::new(spec_yaml(WITH_EXIT));
        sim.step();
        sim.fail(&job("a", 1));
        assert_eq!(
            sim.plan().outcome,
            Some(Outcome {
                succeeded: false,
                failed_tasks: vec!["a".into()]
            })
        );
        assert_eq!(sim.step(), [job("notify", 1)], "b skipped, notify starts");
        assert_eq!(sim.status.phase, RunPhase::Running);
        assert_eq!(sim.status.total_tasks, 3);
        sim.succeed(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(sim.status.message.as_deref(), Some("failed tasks: a"));
    }

    #[test]
    fn a_failed_exit_task_fails_a_run_whose_tasks_succeeded() {
        let mut sim = Sim::new(spec_yaml(WITH_EXIT));
        sim.step();
        sim.succeed(&job("a", 1));
        sim.step();
        assert_eq!(sim.plan().outcome, None, "b still runs");
        sim.succeed(&job("b", 1));
        assert_eq!(sim.step(), [job("notify", 1)]);
        assert_eq!(
            sim.plan().outcome,
            Some(Outcome {
                succeeded: true,
                failed_tasks: vec![]
            })
        );
        sim.fail(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(
            sim.status.conditions.last().map(|c| c.reason.as_str()),
            Some("ExitHandlerFailed")
        );
        assert_eq!(
            sim.status.message.as_deref(),
            Some("the onExit task notify failed")
        );
    }

    #[test]
    fn the_exit_task_still_runs_after_the_run_deadline() {
        let mut s = spec_yaml(WITH_EXIT);
        s.active_deadline_seconds = Some(60);
        let mut sim = Sim::new(s);
        sim.step();
        sim.now += Duration::seconds(60);
        assert_eq!(sim.step(), [job("notify", 1)]);
        assert_eq!(sim.phase("a"), TaskPhase::Failed);
        assert_eq!(sim.phase("b"), TaskPhase::Skipped);
        assert!(!sim.jobs.iter().any(|j| j.name == job("a", 1)), "a stopped");
        assert_eq!(
            sim.plan().outcome.map(|o| o.succeeded),
            Some(false),
            "the deadline is a failure"
        );
        sim.succeed(&job("notify", 1));
        sim.step();
        assert_eq!(sim.status.phase, RunPhase::Failed);
        assert_eq!(
            sim.status.conditions.last().map(|c| c.reason.as_str()),
            Some("DeadlineExceeded")
        );
    }

    #[test]
    fn retry_on_error_retries_a_pod_that_never_started_but_not_a_failure() {
        let mut s = spec(&[("a", &[]), ("b", &[])]);
        for task in &mut s.tasks {
            task.retries = 2;
            task.retry_on = datajump_api::RetryOn::OnError;
            task.pending_timeout_seconds = Some(30);
        }
        let mut sim = Sim::new(s);
        sim.step();
        sim.fail(&job("a", 1));
        sim.report(&job("b", 1), image_pull_backoff());
        sim.step();
        assert_eq!(
            sim.phase("a"),
            TaskPhase::Failed,
            "a task that ran and failed is not retried under OnError"
        );
        sim.now += Duration::seconds(30);
        sim.step();
        assert_eq!(sim.phase("b"), TaskPhase::Pending, "b's pod never started");
        assert!(sim.task("b").next_attempt_time.is_some(), "b will retry");
    }

    #[test]
    fn a_task_of_an_unknown_pool_is_refused_without_a_job_then_retried_then_failed() {
        let mut s = spec(&[("load", &[])]);
        s.tasks[0].pool = Some("sparc".into());
        s.tasks[0].retries = 1;
        s.tasks[0].retry_backoff_seconds = 10;
        let mut sim = Sim::new(s);
        sim.task_pools.insert("spark".into(), 1);
        sim.pool_free.insert("spark".into(), 1);
        assert!(sim.step().is_empty(), "no Job for it");
        let task = sim.task("load");
        assert_eq!(task.phase, TaskPhase::Pending, "a retry remains");
        assert_eq!(
            task.message.as_deref(),
            Some("attempt 1: unknown task pool \"sparc\" (the scheduler's pools: spark=1)")
        );
        assert_eq!(task.next_attempt_time, Some(t0() + Duration::seconds(10)));
        assert!(sim.events.contains(&"TaskRetrying"), "{:?}", sim.events);
        sim.now += Duration::seconds(10);
        assert!(sim.step().is_empty());
        assert_eq!(sim.phase("load"), TaskPhase::Failed, "no retries left");
        assert!(sim.events.contains(&"TaskRejected"), "{:?}", sim.events);
        assert_eq!(sim.status.phase, RunPhase::Failed);
    }

    #[test]
    fn only_the_exit_tasks_job_carries_the_outcome() {
        let mut sim = Sim::new(spec_yaml(WITH_EXIT));
        let first = sim.plan();
        assert!(
            first.actions.iter().all(|a| !matches!(
                a,
                Action::CreateJob {
                    outcome: Some(_),
                    ..
                }
            )),
            "{first:?}"
        );
        sim.step();
        sim.fail(&job("a", 1));
        let plan = sim.plan();
        let exit = plan.actions.iter().find_map(|a| match a {
            Action::CreateJob {
                job_name, outcome, ..
            } if *job_name == job("notify", 1) => Some(outcome.clone()),
            _ => None,
        });
        let outcome = Outcome {
            succeeded: false,
            failed_tasks: vec!["a".into()],
        };
        assert_eq!(exit, Some(Some(outcome.clone())));
        assert_eq!(
            outcome.variables(),
            [
                ("DATAJUMP_RUN_OUTCOME".to_string(), "Failed".to_string()),
                ("DATAJUMP_FAILED_TASKS".to_string(), "a".to_string()),
            ]
        );
    }
}

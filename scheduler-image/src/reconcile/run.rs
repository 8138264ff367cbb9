//! A WorkflowRun's reconcile: find the spec it executes (the one it recorded, its retry
//! source's, or its Workflow's), wait for its backfill's turn, plan its step with the room the
//! slot ledger gives, carry the plan out (Jobs, Events) and record its status.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::Reconciler;
use super::cluster::{Archived, Cluster, ClusterError, Created, ns_name};
use super::freshness::STALE_CACHE_RETRY_MS;
use crate::archive::LogKey;
use crate::backfill;
use crate::jobs::{build_job, from_k8s_time, run_variables};
use crate::plan::{
    Action, EventType, REASON_LOG_NOT_ARCHIVED, RunInput, RunPlan, plan_run, reject_attempt,
};
use datajump_api::validate::{Dag, resolve_parameters, validate_spec};
use datajump_api::{
    CONDITION_FAILED, RetryOf, RunCondition, RunPhase, TaskPhase, TaskSpec, TaskStatus,
    WorkflowRun, WorkflowRunStatus, WorkflowSpec, flow,
};

/// How soon a run whose task log could not be archived is looked at again (its pods stay
/// meanwhile).
const ARCHIVE_RETRY_SECONDS: i64 = 60;

/// How long a new run waits for its Workflow (or a retry for its source run) to appear in the
/// cache before it fails.
const WORKFLOW_LOOKUP_GRACE_SECONDS: i64 = 30;

/// Where a run's spec comes from, or why it has none.
enum Resolved {
    /// The spec, and the status a retry starts from.
    Spec(Arc<WorkflowSpec>, Option<WorkflowRunStatus>),
    /// Not in the cache yet: look again in a second.
    LookAgain,
    /// A finished run whose spec is gone: nothing to do.
    Nothing,
    /// The run cannot execute: fail it with this reason and message.
    Fail(&'static str, String),
}

/// Why a run does not execute now.
enum Halt {
    /// Look again at this time (or only when something changes).
    Wake(Option<DateTime<Utc>>),
    /// The run cannot execute: fail it with this reason and message.
    Fail(&'static str, String),
}

/// What a run executes, once its spec resolved and checked.
struct Execution {
    /// The spec.
    spec: Arc<WorkflowSpec>,
    /// Its dependency graph.
    dag: Dag,
    /// The run's parameter values.
    parameters: Vec<(String, String)>,
    /// The status to plan from instead of the run's own (a retry keeping succeeded tasks, a
    /// backfill run whose turn came).
    seed: Option<WorkflowRunStatus>,
}

/// Whether the run was created less than `seconds` ago (or has no creation time yet).
fn created_within(run: &WorkflowRun, now: DateTime<Utc>, seconds: i64) -> bool {
    run.metadata
        .creation_timestamp
        .as_ref()
        .and_then(from_k8s_time)
        .is_none_or(|created| now - created < Duration::seconds(seconds))
}

/// What carrying out a plan left to do.
#[derive(Default)]
struct Acted {
    /// The creates the API server refused (or whose pod could not be built), as (task,
    /// attempt, message), to record as failed attempts.
    rejected: Vec<(usize, u32, String)>,
    /// A task log could not be archived: look again soon.
    archive_failed: bool,
}

/// The name of the Job an action creates.
fn created_job(action: &Action) -> Option<&String> {
    match action {
        Action::CreateJob { job_name, .. } => Some(job_name),
        _ => None,
    }
}

impl<C: Cluster> Reconciler<C> {
    /// Moves a run forward: creates Jobs for ready tasks, records progress, finishes it.
    /// Returns when to reconcile it again.
    pub async fn reconcile_run(
        &self,
        run: &WorkflowRun,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ClusterError> {
        if run.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let old = run.status.clone().unwrap_or_default();
        if self.freshness.cache_behind(run, &old, now) {
            self.metrics.stale_reads.inc();
            return Ok(Some(now + Duration::milliseconds(STALE_CACHE_RETRY_MS)));
        }
        let mut execution = match self.execution(run, &old, now) {
            Ok(execution) => execution,
            Err(Halt::Wake(at)) => return Ok(at),
            Err(Halt::Fail(reason, msg)) => {
                return self.fail_run(run, &old, reason, msg, now).await;
            }
        };
        // A run told to stop or terminate does not wait for its backfill's turn to do so.
        if let Some(bf) = backfill::queued(run, &old).filter(|_| run.spec.shutdown.is_none()) {
            let (ns, run_name) = ns_name(&run.metadata);
            let runs = self.cluster.runs_of(&ns, &run.spec.workflow_name);
            if !self
                .slots
                .backfill_turn((ns, run_name), &runs, &bf.name, bf.parallelism)
            {
                if let Some(status) = backfill::waiting_status(&old, bf) {
                    self.cluster.patch_run_status(run, &status).await?;
                }
                return Ok(None);
            }
            execution
                .seed
                .get_or_insert_with(|| backfill::turn_came(&old));
        }
        let mut plan = self.plan(run, &execution, &old, now);
        let variables = run_variables(run, &execution.spec, &execution.parameters, now);
        let acted = self.act(run, &execution.spec, &variables, &plan).await?;
        for (task, attempt, message) in acted.rejected {
            if let Some(Action::Event {
                type_,
                reason,
                message,
            }) = reject_attempt(&mut plan, &execution.spec, task, attempt, &message, now)
            {
                self.cluster
                    .publish_event(run, type_, reason, &message)
                    .await;
            }
        }
        self.record(run, &old, &plan, now).await?;
        self.metrics
            .running_tasks
            .set(self.slots.running_tasks(&self.cluster, now) as i64);
        if acted.archive_failed {
            let retry = now + Duration::seconds(ARCHIVE_RETRY_SECONDS);
            return Ok(Some(plan.wake_at.map_or(retry, |w| w.min(retry))));
        }
        Ok(plan.wake_at)
    }

    /// What the run executes: its spec (see [`Self::spec_of`]), checked, and its parameter
    /// values; or why it does not execute now.
    fn execution(
        &self,
        run: &WorkflowRun,
        old: &WorkflowRunStatus,
        now: DateTime<Utc>,
    ) -> Result<Execution, Halt> {
        let (spec, seed) = match self.spec_of(run, old, now) {
            Resolved::Spec(spec, seed) => (spec, seed),
            Resolved::LookAgain => return Err(Halt::Wake(Some(now + Duration::seconds(1)))),
            Resolved::Nothing => return Err(Halt::Wake(None)),
            Resolved::Fail(reason, msg) => return Err(Halt::Fail(reason, msg)),
        };
        // A finished run whose spec or parameters no longer check out has nothing to do.
        let halt = |reason, msg| {
            if old.phase.is_finished() {
                Halt::Wake(None)
            } else {
                Halt::Fail(reason, msg)
            }
        };
        let dag = validate_spec(&spec, &self.config.limits).map_err(|errors| {
            let msg = format!(
                "workflow {:?} is invalid:\n{errors}",
                run.spec.workflow_name
            );
            halt("InvalidWorkflow", msg)
        })?;
        let parameters = resolve_parameters(&spec, &run.spec.parameters).map_err(|errors| {
            let msg = format!("the run's parameters do not fit its workflow:\n{errors}");
            halt("InvalidParameters", msg)
        })?;
        Ok(Execution {
            spec,
            dag,
            parameters,
            seed,
        })
    }

    /// Plans the run's step with the room the slot ledger gives it (and reserves it).
    fn plan(
        &self,
        run: &WorkflowRun,
        execution: &Execution,
        old: &WorkflowRunStatus,
        now: DateTime<Utc>,
    ) -> RunPlan {
        let (ns, run_name) = ns_name(&run.metadata);
        let jobs = self.cluster.jobs_of(run);
        let run_ref = (ns, run_name.clone());
        let spec = &execution.spec;
        self.slots.plan(
            &self.cluster,
            run_ref,
            spec,
            now,
            |free_slots, pool_free| {
                plan_run(&RunInput {
                    now,
                    run_name: &run_name,
                    spec,
                    dag: &execution.dag,
                    status: execution.seed.as_ref().unwrap_or(old),
                    jobs: &jobs,
                    free_slots,
                    pool_free,
                    task_pools: self.slots.task_pools(),
                    pending_timeout_seconds: self.config.pending_timeout_seconds,
                    finished_pod_retention_seconds: self.config.finished_pod_retention_seconds,
                    log_archiving: self.config.log_archiving,
                    shutdown: run.spec.shutdown,
                })
            },
        )
    }

    /// Carries out the plan's actions.
    async fn act(
        &self,
        run: &WorkflowRun,
        spec: &WorkflowSpec,
        variables: &[(String, String)],
        plan: &RunPlan,
    ) -> Result<Acted, ClusterError> {
        let (ns, run_name) = ns_name(&run.metadata);
        let mut acted = Acted::default();
        let rejected = &mut acted.rejected;
        for (i, action) in plan.actions.iter().enumerate() {
            match action {
                Action::CreateJob {
                    task,
                    attempt,
                    job_name,
                    outcome,
                } => {
                    let Some(task_spec) = spec.task(*task) else {
                        continue;
                    };
                    // The onExit task also learns how the DAG ended.
                    let variables = match outcome {
                        Some(outcome) => Cow::Owned([variables, &outcome.variables()].concat()),
                        None => Cow::Borrowed(variables),
                    };
                    let created = self
                        .create_job(run, spec, task_spec, *attempt, job_name, &variables)
                        .await;
                    let created = match created {
                        Ok(created) => created,
                        Err(e) => {
                            // This Job and the ones after it will not be created now.
                            self.slots
                                .release(&ns, plan.actions[i..].iter().filter_map(created_job));
                            return Err(e);
                        }
                    };
                    match created {
                        // A New Job keeps its slot until the cache shows it; one that already
                        // existed is (or will be) in the cache and is counted from there.
                        Created::New | Created::AlreadyExists => {
                            tracing::info!(namespace = %ns, run = %run_name, job = %job_name, attempt, outcome = ?created, "task job");
                        }
                        Created::Rejected { message } => {
                            self.slots.release(&ns, [job_name]);
                            tracing::warn!(namespace = %ns, run = %run_name, job = %job_name, attempt, %message, "task job refused");
                            rejected.push((*task, *attempt, message));
                        }
                    }
                }
                Action::DeleteJob { job_name } => {
                    tracing::info!(namespace = %ns, run = %run_name, job = %job_name, "stopping task job");
                    self.cluster.delete_job(&ns, job_name).await?;
                }
                Action::TerminateJob { job_name } => {
                    tracing::info!(namespace = %ns, run = %run_name, job = %job_name, "terminating task job and its pods");
                    self.cluster.terminate_job(&ns, job_name).await?;
                }
                Action::KillPods { job_name } => {
                    tracing::info!(namespace = %ns, run = %run_name, job = %job_name, "stopping task pods where they run (their logs are archived)");
                    self.cluster.kill_pods(&ns, job_name).await?;
                }
                Action::DeletePods { job_name } => {
                    tracing::debug!(namespace = %ns, run = %run_name, job = %job_name, "deleting finished pods");
                    self.cluster.delete_finished_pods(&ns, job_name).await?;
                }
                Action::ArchiveLogsThenDeletePods {
                    job_name,
                    task,
                    attempt,
                } => {
                    if self.archive_log(run, job_name, task, *attempt).await {
                        self.cluster.delete_finished_pods(&ns, job_name).await?;
                    } else {
                        acted.archive_failed = true;
                    }
                }
                Action::Event {
                    type_,
                    reason,
                    message,
                } => {
                    if *reason == REASON_LOG_NOT_ARCHIVED {
                        self.metrics.log_archive_given_up.inc();
                    }
                    self.cluster
                        .publish_event(run, *type_, reason, message)
                        .await;
                }
            }
        }
        Ok(acted)
    }

    /// Stores the log of `attempt` of `task` (Job `job_name`) in the log archive; returns
    /// whether its pods may go. A failure is a Warning Event on the run and a metric: the pods
    /// stay until the archive works or the planner gives up on it.
    pub(super) async fn archive_log(
        &self,
        run: &WorkflowRun,
        job_name: &str,
        task: &str,
        attempt: u32,
    ) -> bool {
        let (ns, run_name) = ns_name(&run.metadata);
        let stored = match LogKey::new(&ns, &run.spec.workflow_name, &run_name, task, attempt) {
            Ok(key) => self
                .cluster
                .archive_pod_log(&ns, job_name, &key)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(Archived::Stored { bytes, url }) => {
                self.metrics.logs_archived.inc();
                self.metrics.log_archive_bytes.inc_by(bytes);
                tracing::info!(namespace = %ns, run = %run_name, job = %job_name, bytes, %url, "task log archived");
                true
            }
            Ok(Archived::NoLog) => {
                tracing::info!(namespace = %ns, run = %run_name, job = %job_name, "no task log to archive");
                true
            }
            Err(message) => {
                self.metrics.log_archive_failures.inc();
                tracing::warn!(namespace = %ns, run = %run_name, job = %job_name, error = %message, "task log not archived; its pod stays");
                let note = format!(
                    "task {task} attempt {attempt}: its log could not be archived (its pod is kept; retrying): {message}"
                );
                self.cluster
                    .publish_event(run, EventType::Warning, "LogArchiveFailed", &note)
                    .await;
                false
            }
        }
    }

    /// Creates the Job of `attempt` of task `task_spec` with `variables`. A pod that cannot be
    /// built (an unknown preset) fails its attempt as a Job the API server refused would:
    /// retried while retries remain, else the task fails with the reason.
    async fn create_job(
        &self,
        run: &WorkflowRun,
        spec: &WorkflowSpec,
        task_spec: &TaskSpec,
        attempt: u32,
        job_name: &str,
        variables: &[(String, String)],
    ) -> Result<Created, ClusterError> {
        let built = build_job(
            run,
            task_spec,
            spec.pod_defaults.as_ref(),
            attempt,
            job_name,
            &self.config.task_defaults,
            variables,
        );
        match built {
            Ok(job) => match self.cluster.create_job(job).await? {
                Created::Rejected { message } => Ok(Created::Rejected {
                    message: format!("the API server refused its Job: {message}"),
                }),
                other => Ok(other),
            },
            Err(e) => Ok(Created::Rejected {
                message: format!("its pod cannot be built: {e}"),
            }),
        }
    }

    /// Stores the plan's status if it changed, then counts what finished.
    async fn record(
        &self,
        run: &WorkflowRun,
        old: &WorkflowRunStatus,
        plan: &RunPlan,
        now: DateTime<Utc>,
    ) -> Result<(), ClusterError> {
        if plan.status == *old {
            return Ok(());
        }
        self.cluster.patch_run_status(run, &plan.status).await?;
        self.freshness.remember_status(run, &plan.status, now);
        // Metrics only after the status is stored, so a failed patch is not counted twice.
        for (_, phase) in &plan.finished_tasks {
            self.metrics.task_finished(*phase);
        }
        if plan.status.phase.is_finished() && !old.phase.is_finished() {
            self.record_finished_run(run, &plan.status);
        }
        Ok(())
    }

    /// The spec a run executes, and for a retry that keeps succeeded tasks, the status it
    /// starts from. A run executes the spec it started with; a retry, the spec its source run
    /// executed; only a new run reads the Workflow (and records the spec with its first step).
    fn spec_of(&self, run: &WorkflowRun, old: &WorkflowRunStatus, now: DateTime<Utc>) -> Resolved {
        let (ns, _) = ns_name(&run.metadata);
        if let Some(spec) = &old.workflow_spec {
            return Resolved::Spec(spec.clone(), None);
        }
        if old.phase.is_finished() {
            return Resolved::Nothing;
        }
        if let Some(retry) = &run.spec.retry_of {
            return self.retry_source(run, retry, now);
        }
        match self.cluster.workflow(&ns, &run.spec.workflow_name) {
            Some(wf) => Resolved::Spec(Arc::new(wf.spec.clone()), None),
            // The Workflow may be in the cache a moment after the run (separate watches, or a
            // run created right after its Workflow): look again shortly before giving up.
            None if created_within(run, now, WORKFLOW_LOOKUP_GRACE_SECONDS) => Resolved::LookAgain,
            None => Resolved::Fail(
                "WorkflowNotFound",
                format!(
                    "workflow {:?} not found in namespace {ns}",
                    run.spec.workflow_name
                ),
            ),
        }
    }

    /// A retry's spec: the one its finished source run recorded, with, under `fromFailed`, the
    /// source's succeeded tasks kept as they ended unless they depend on a task that runs again
    /// (the `onExit` task always runs again: it reports the new outcome).
    fn retry_source(&self, run: &WorkflowRun, retry: &RetryOf, now: DateTime<Utc>) -> Resolved {
        let (ns, _) = ns_name(&run.metadata);
        let source = self
            .cluster
            .runs_of(&ns, &run.spec.workflow_name)
            .into_iter()
            .find(|r| r.metadata.name.as_deref() == Some(retry.run_name.as_str()));
        let Some(source) = source else {
            if created_within(run, now, WORKFLOW_LOOKUP_GRACE_SECONDS) {
                return Resolved::LookAgain;
            }
            return Resolved::Fail(
                "RetrySourceNotFound",
                format!(
                    "run {:?} of workflow {:?}, which this run retries, not found",
                    retry.run_name, run.spec.workflow_name
                ),
            );
        };
        let status = source.status.clone().unwrap_or_default();
        if !status.phase.is_finished() {
            return Resolved::Fail(
                "RetrySourceNotFinished",
                format!(
                    "run {:?} has not finished: only a finished run is retried",
                    retry.run_name
                ),
            );
        }
        let Some(spec) = status.workflow_spec.clone() else {
            return Resolved::Fail(
                "RetrySourceWithoutSpec",
                format!("run {:?} recorded no spec to run again", retry.run_name),
            );
        };
        if !retry.from_failed {
            return Resolved::Spec(spec, None);
        }
        let seed = self.kept_by_retry(&spec, &status, &retry.run_name);
        Resolved::Spec(spec, seed)
    }

    /// The status a `fromFailed` retry of a run that ended with `status` starts from: what
    /// succeeded upstream of every task that runs again, as it ended (an invalid spec keeps
    /// nothing: the run fails on it next).
    fn kept_by_retry(
        &self,
        spec: &WorkflowSpec,
        status: &WorkflowRunStatus,
        source: &str,
    ) -> Option<WorkflowRunStatus> {
        let dag = validate_spec(spec, &self.config.limits).ok()?;
        let phase = |name: &str| status.tasks.iter().find(|t| t.name == name);
        let succeeded: Vec<bool> = spec
            .tasks
            .iter()
            .map(|t| phase(&t.name).is_some_and(|s| s.phase == TaskPhase::Succeeded))
            .collect();
        let kept = flow::kept_by_retry(&dag.dependents, &succeeded);
        let tasks = spec
            .tasks
            .iter()
            .zip(kept)
            .filter(|(_, kept)| *kept)
            .filter_map(|(t, _)| phase(&t.name))
            .map(|t| TaskStatus {
                name: t.name.clone(),
                phase: TaskPhase::Succeeded,
                completion_time: t.completion_time,
                message: Some(format!("succeeded in run {source}")),
                ..TaskStatus::default()
            })
            .collect();
        Some(WorkflowRunStatus {
            tasks,
            ..WorkflowRunStatus::default()
        })
    }

    fn record_finished_run(&self, run: &WorkflowRun, status: &WorkflowRunStatus) {
        let (ns, name) = ns_name(&run.metadata);
        let seconds = match (status.start_time, status.completion_time) {
            (Some(s), Some(c)) => (c - s).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        tracing::info!(namespace = %ns, run = %name, phase = ?status.phase, seconds, "run finished");
        self.metrics
            .run_finished(&ns, &run.spec.workflow_name, status.phase, seconds);
    }

    async fn fail_run(
        &self,
        run: &WorkflowRun,
        old: &WorkflowRunStatus,
        reason: &'static str,
        message: String,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ClusterError> {
        let mut status = old.clone();
        status.phase = RunPhase::Failed;
        status.start_time = status.start_time.or(Some(now));
        status.completion_time = Some(now);
        status.message = Some(message.clone());
        RunCondition::set(
            &mut status.conditions,
            RunCondition::now_true(CONDITION_FAILED, reason, &message, now),
        );
        self.cluster
            .publish_event(run, EventType::Warning, reason, &message)
            .await;
        self.cluster.patch_run_status(run, &status).await?;
        self.record_finished_run(run, &status);
        Ok(None)
    }
}

//! A Workflow's reconcile: runs for the due ticks of its schedules (and under `Replace`, the
//! active runs they replace), history pruning, and the workflow's status.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Reconciler;
use super::cluster::{Cluster, ClusterError, Created, ns_name};
use crate::jobs::{build_run, from_k8s_time};
use crate::plan::{FinishedRun, JobState, LogArchiving, prune_history};
use crate::ticks::{TickInput, plan_ticks};
use datajump_api::names::scheduled_run_name;
use datajump_api::schedules::Schedules;
use datajump_api::validate::validate_workflow_with;
use datajump_api::{RunPhase, Workflow, WorkflowRun, WorkflowStatus};

/// A workflow's runs as scheduling sees them.
struct Tally {
    /// Unfinished runs subject to the concurrency policy (scheduled or by hand), by name.
    active: Vec<String>,
    /// Unfinished runs of backfills, which pace themselves.
    backfilling: usize,
    /// Finished runs, for history pruning.
    finished: Vec<FinishedRun>,
    /// When the latest succeeded run completed.
    last_success: Option<DateTime<Utc>>,
}

impl Tally {
    fn of(runs: &[Arc<WorkflowRun>], now: DateTime<Utc>) -> Self {
        let mut tally = Tally {
            active: Vec::new(),
            backfilling: 0,
            finished: Vec::new(),
            last_success: None,
        };
        for run in runs {
            let status = run.status.as_ref();
            let name = run.metadata.name.clone().unwrap_or_default();
            match status.map(|s| s.phase) {
                Some(phase) if phase.is_finished() => {
                    let completed = status
                        .and_then(|s| s.completion_time)
                        .or_else(|| {
                            run.metadata
                                .creation_timestamp
                                .as_ref()
                                .and_then(from_k8s_time)
                        })
                        .unwrap_or(now);
                    if phase == RunPhase::Succeeded {
                        tally.last_success = tally.last_success.max(Some(completed));
                    }
                    tally.finished.push(FinishedRun {
                        name,
                        phase,
                        completed,
                    });
                }
                // A backfill paces itself and is not subject to the concurrency policy.
                _ if run.spec.backfill.is_some() => tally.backfilling += 1,
                _ => tally.active.push(name),
            }
        }
        tally
    }
}

impl<C: Cluster> Reconciler<C> {
    /// Schedules a workflow: creates runs for due ticks, prunes history, updates its status.
    /// Returns when to reconcile it again.
    pub async fn reconcile_workflow(
        &self,
        wf: &Workflow,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ClusterError> {
        let (ns, name) = ns_name(&wf.metadata);
        let old = wf.status.clone().unwrap_or_default();
        let mut status = old.clone();
        status.last_schedule_time = self.freshness.last_scheduled(wf, old.last_schedule_time);
        let runs = self.cluster.runs_of(&ns, &name);
        self.slots.wake_backfill_turns(&ns, &runs);
        let tally = Tally::of(&runs, now);
        status.last_successful_time = status.last_successful_time.max(tally.last_success);
        let prune = prune_history(
            &tally.finished,
            wf.spec.successful_runs_history_limit,
            wf.spec.failed_runs_history_limit,
        );
        status.active_runs = (tally.active.len() + tally.backfilling) as u32;
        let active = tally.active;

        let mut wake = None;
        match validate_workflow_with(wf, &self.config.limits) {
            Err(errors) => {
                status.message = Some(format!("invalid workflow, not scheduled:\n{errors}"));
                status.next_schedule_time = None;
            }
            Ok(_) => {
                status.message = None;
                match Schedules::of(&wf.spec) {
                    Ok(Some(schedules)) => {
                        wake = self
                            .schedule_ticks(wf, &schedules, &active, &mut status, now)
                            .await?;
                    }
                    Ok(None) => status.next_schedule_time = None,
                    // Validation passed, so this cannot happen; report instead of panicking.
                    Err(e) => {
                        status.message = Some(e.to_string());
                        status.next_schedule_time = None;
                    }
                }
            }
        }
        if status != old {
            self.cluster.patch_workflow_status(wf, &status).await?;
            self.freshness.remember_scheduled(wf, &status);
        }
        // History goes last: a run that cannot be deleted (a webhook, a finalizer, RBAC) must
        // not hold up the schedule. Every deletion is tried; the first error is returned so the
        // controller retries with backoff, which schedules nothing twice (deterministic names).
        self.prune(&ns, &prune, &runs).await?;
        Ok(wake)
    }

    /// Deletes the finished runs history pruning let go, trying each even when one fails. With
    /// the log archive on, the logs of a run's finished pods are archived first (deleting the
    /// run takes its Jobs' pods with it); a run whose logs could not be archived stays until a
    /// later look (its own clean-up keeps archiving, or gives up, meanwhile).
    async fn prune(
        &self,
        ns: &str,
        prune: &[String],
        runs: &[Arc<WorkflowRun>],
    ) -> Result<(), ClusterError> {
        let mut first_error = None;
        for run in prune {
            let object = runs
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(run.as_str()));
            if let Some(object) = object
                && !self.archive_before_pruning(object).await
            {
                continue;
            }
            if let Err(e) = self.cluster.delete_run(ns, run).await {
                tracing::warn!(namespace = %ns, run = %run, error = %e, "cannot prune finished run");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Archives the logs of the finished pods of `run`'s Jobs when the log archive is on;
    /// returns whether the run may be deleted.
    async fn archive_before_pruning(&self, run: &WorkflowRun) -> bool {
        if self.config.log_archiving == LogArchiving::Off {
            return true;
        }
        let mut all_stored = true;
        for job in self.cluster.jobs_of(run) {
            if job.finished_pods && job.state != JobState::Active {
                all_stored &= self
                    .archive_log(run, &job.name, &job.task, job.attempt)
                    .await;
            }
        }
        all_stored
    }

    /// Creates the runs of the due ticks of `schedules` (all of them merged, each instant once)
    /// and records the last and next tick in `status`.
    async fn schedule_ticks(
        &self,
        wf: &Workflow,
        schedules: &Schedules,
        active: &[String],
        status: &mut WorkflowStatus,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ClusterError> {
        let (ns, name) = ns_name(&wf.metadata);
        let created_at = wf
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(from_k8s_time);
        let last = status.last_schedule_time.or(created_at).unwrap_or(now);
        let mut plan = plan_ticks(&TickInput {
            now,
            schedule: schedules,
            spec: &wf.spec,
            last_scheduled: last,
            active_runs: active,
        });
        // `Replace` never deletes the run of the tick it is starting: that run exists already
        // only if another view took the tick, and creating it again is a no-op.
        let starting: Vec<String> = plan
            .create
            .iter()
            .map(|t| scheduled_run_name(&name, *t))
            .collect();
        plan.delete_runs.retain(|r| !starting.contains(r));
        let mut started = 0;
        for run in &plan.delete_runs {
            tracing::info!(namespace = %ns, workflow = %name, run = %run, "replacing active run");
            self.cluster.delete_run(&ns, run).await?;
        }
        for tick in &plan.create {
            let run = build_run(wf, *tick);
            let run_name = run.metadata.name.clone().unwrap_or_default();
            let outcome = self.cluster.create_run(run).await?;
            started += usize::from(outcome == Created::New);
            tracing::info!(namespace = %ns, workflow = %name, run = %run_name, tick = %tick, ?outcome, "scheduled run");
        }
        if plan.missed > 0 {
            tracing::warn!(namespace = %ns, workflow = %name, missed = plan.missed, "missed schedule ticks");
            self.metrics.missed_ticks.inc_by(plan.missed);
        }
        if plan.last_scheduled != last || status.last_schedule_time.is_some() {
            status.last_schedule_time = Some(plan.last_scheduled);
        }
        status.missed_ticks += plan.missed;
        // Backfill runs counted before stay counted: `Replace` deletes only scheduled ones.
        status.active_runs =
            (status.active_runs as usize + started - plan.delete_runs.len()) as u32;
        status.next_schedule_time = schedules.next_after(now);
        Ok(if wf.spec.suspend { None } else { plan.wake_at })
    }
}

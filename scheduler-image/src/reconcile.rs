//! The reconcilers: glue between the pure planners and a [`Cluster`].
//!
//! [`Cluster`] is the seam between scheduling logic and the API server: the production
//! implementation lives in `controller.rs` (kube reflector caches + API calls), an in-memory
//! one in `sim.rs` (feature `sim`, for tests) drives the end-to-end simulations and benchmarks. The reconcilers keep
//! no state that matters across restarts; everything is re-derived from the cluster.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::batch::v1::Job;
use tokio::sync::Notify;

use crate::backfill;
use crate::config::SchedulerConfig;
use crate::jobs::{build_job, build_run, from_k8s_time, run_variables};
use crate::metrics::Metrics;
use crate::plan::{
    Action, EventType, FinishedRun, ObservedJob, RunInput, RunPlan, plan_run, prune_history,
    reject_attempt,
};
use crate::ticks::{TickInput, plan_ticks};
use crate::waiters::{RunRef, SlotWaiters};
use datajump_api::names::scheduled_run_name;
use datajump_api::schedule::Schedule;
use datajump_api::validate::{resolve_parameters, validate_spec, validate_workflow_with};
use datajump_api::{
    CONDITION_FAILED, RetryOf, RunCondition, RunPhase, TaskPhase, TaskStatus, Workflow,
    WorkflowRun, WorkflowRunStatus, WorkflowSpec, WorkflowStatus,
};
use datajump_api::{flow, runtime};

/// Outcome of a create call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The object was created.
    New,
    /// An object with that name existed already (a restart or a second replica got there
    /// first): nothing to do.
    AlreadyExists,
    /// The API server refused the object for good (invalid, forbidden by admission or quota):
    /// asking again with the same object gets the same answer.
    Rejected {
        /// The API server's message.
        message: String,
    },
}

/// A failed call to the cluster.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {kind} {namespace}/{name}: {message}")]
pub struct ClusterError {
    /// What was attempted (create, delete, patch status).
    pub operation: &'static str,
    /// Object kind.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// The API server's (or transport's) message.
    pub message: String,
}

/// What the reconcilers need from the cluster. Reads come from caches (synchronous); writes
/// go to the API server.
pub trait Cluster: Send + Sync {
    /// A workflow by namespace and name.
    fn workflow(&self, namespace: &str, name: &str) -> Option<Arc<Workflow>>;
    /// All runs of a workflow.
    fn runs_of(&self, namespace: &str, workflow: &str) -> Vec<Arc<WorkflowRun>>;
    /// The Jobs a run controls (by its UID: a run re-created under the same name does not see
    /// the old run's Jobs), as planning sees them.
    fn jobs_of(&self, run: &WorkflowRun) -> Vec<ObservedJob>;
    /// Whether a Job is visible in the cache.
    fn job_cached(&self, namespace: &str, name: &str) -> bool;
    /// Number of active task Jobs across all runs.
    fn running_tasks(&self) -> usize;
    /// Number of active task Jobs counting against task pool `pool`.
    fn running_in_pool(&self, pool: &str) -> usize;
    /// Creates a run.
    fn create_run(
        &self,
        run: WorkflowRun,
    ) -> impl Future<Output = Result<Created, ClusterError>> + Send;
    /// Deletes a run (its Jobs follow through their owner reference).
    fn delete_run(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Writes a run's status.
    fn patch_run_status(
        &self,
        run: &WorkflowRun,
        status: &WorkflowRunStatus,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Writes a workflow's status.
    fn patch_workflow_status(
        &self,
        wf: &Workflow,
        status: &WorkflowStatus,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Creates a Job.
    fn create_job(&self, job: Job) -> impl Future<Output = Result<Created, ClusterError>> + Send;
    /// Deletes a Job and its pods.
    fn delete_job(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Deletes the pods of a finished Job (the Job stays).
    fn delete_finished_pods(
        &self,
        namespace: &str,
        job: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Records an Event about a run (best effort).
    fn publish_event(
        &self,
        run: &WorkflowRun,
        type_: EventType,
        reason: &'static str,
        message: &str,
    ) -> impl Future<Output = ()> + Send;
}

/// How long a created Job may stay invisible in the cache before it stops counting as running.
const CREATE_VISIBILITY_GRACE: i64 = 60;

/// How long a run status this reconciler wrote may stay invisible in the cache: within it, a
/// reconcile that sees an older status waits for the cache instead of acting on stale data
/// (which would finish the same tasks again: double counts, duplicate Events). Past it the
/// status is taken as it is (someone else changed it).
const STATUS_VISIBILITY_GRACE_MS: i64 = 5_000;
/// How soon to look again while the cache catches up.
const STALE_CACHE_RETRY_MS: i64 = 100;

/// How long a new run waits for its Workflow to appear in the cache before it fails with
/// `WorkflowNotFound`.
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

/// Whether the object was created less than `seconds` ago (or has no creation time yet).
fn created_within(run: &WorkflowRun, now: DateTime<Utc>, seconds: i64) -> bool {
    run.metadata
        .creation_timestamp
        .as_ref()
        .and_then(from_k8s_time)
        .is_none_or(|created| now - created < Duration::seconds(seconds))
}

/// What a status write changed that matters for acting on a run: its phase and each task's
/// phase and attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Progress {
    phase: RunPhase,
    tasks: Vec<(String, datajump_api::TaskPhase, u32)>,
}

impl Progress {
    fn of(status: &WorkflowRunStatus) -> Self {
        Self {
            phase: status.phase,
            tasks: status
                .tasks
                .iter()
                .map(|t| (t.name.clone(), t.phase, t.attempts))
                .collect(),
        }
    }
}

/// Reconciles Workflows (schedule ticks, history) and WorkflowRuns (tasks as Jobs).
pub struct Reconciler<C> {
    /// The cluster.
    pub cluster: C,
    /// Settings.
    pub config: SchedulerConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Slots of the global cap reserved for Jobs being created or created but not yet seen in
    /// the cache. A reconcile counts free slots, plans with them and reserves what it plans in
    /// one step under this lock, so concurrent run reconciles cannot spend a slot twice, and
    /// no lock is held while the Jobs are created.
    pending_creates: Mutex<Pending>,
    /// Run statuses written but perhaps not yet seen in the cache, by (namespace, name, uid).
    written: Mutex<HashMap<ObjectKey, (Progress, DateTime<Utc>)>>,
    /// `status.lastScheduleTime` written but perhaps not yet seen in the cached Workflow, by
    /// (namespace, name, uid). Planning from the older value would take a tick a second time,
    /// and under `Replace` delete the run just started for it and start it again.
    scheduled: Mutex<HashMap<ObjectKey, DateTime<Utc>>>,
    /// Runs waiting for a slot of the global cap. Joined under the `pending_creates` lock, in
    /// the step that found no free slot, so [`Reconciler::runs_to_wake`] (which counts under
    /// the same lock) never misses a run that counted before a slot freed.
    slot_waiters: Mutex<Waiters>,
    /// Notified whenever slots may have freed (reserved slots given back here; the controller
    /// also notifies it when a Job finishes or goes away).
    slots_freed: Arc<Notify>,
    /// Backfill runs told to wait for their turn, and those whose turn came (handed to the
    /// waker with the slot waiters). A restart loses nothing: every run is reconciled then.
    backfill_waiting: Mutex<BackfillWaiting>,
}

/// Runs of backfills waiting for their turn.
#[derive(Debug, Default)]
struct BackfillWaiting {
    waiting: std::collections::HashSet<RunRef>,
    woken: Vec<RunRef>,
}

/// The name of the Job an action creates.
fn created_job(action: &Action) -> Option<&String> {
    match action {
        Action::CreateJob { job_name, .. } => Some(job_name),
        _ => None,
    }
}

/// Jobs being created or created but not seen in the cache yet, by (namespace, name): when
/// their slot was reserved and the task pool they count against.
type Pending = HashMap<(String, String), (DateTime<Utc>, Option<String>)>;

/// The queues of runs waiting for a slot: of the global cap, and of each task pool.
#[derive(Debug, Default)]
struct Waiters {
    cap: SlotWaiters,
    pools: HashMap<String, SlotWaiters>,
}

/// An object's identity across re-creations under the same name: (namespace, name, uid).
type ObjectKey = (String, String, String);

fn object_key(meta: &kube::api::ObjectMeta) -> ObjectKey {
    let (ns, name) = ns_name(meta);
    (ns, name, meta.uid.clone().unwrap_or_default())
}

fn ns_name(meta: &kube::api::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl<C: Cluster> Reconciler<C> {
    /// A reconciler over `cluster`.
    pub fn new(cluster: C, config: SchedulerConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            cluster,
            config,
            metrics,
            pending_creates: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            scheduled: Mutex::new(HashMap::new()),
            slot_waiters: Mutex::new(Waiters::default()),
            slots_freed: Arc::new(Notify::new()),
            backfill_waiting: Mutex::new(BackfillWaiting::default()),
        }
    }

    /// The same reconciler notifying `slots_freed` when it gives reserved slots back (the
    /// controller passes the one its Job watch notifies and its waker waits on).
    pub fn with_slots_freed(mut self, slots_freed: Arc<Notify>) -> Self {
        self.slots_freed = slots_freed;
        self
    }

    /// What to notify when slots of the global cap may have freed; whoever wakes the waiting
    /// runs waits on it and calls [`Reconciler::runs_to_wake`].
    pub fn slots_freed(&self) -> Arc<Notify> {
        self.slots_freed.clone()
    }

    /// Takes the runs to wake now: the oldest waiting runs for which `exists` holds, one per
    /// free slot of the global cap, and the backfill runs whose turn came.
    pub fn runs_to_wake(
        &self,
        now: DateTime<Utc>,
        exists: impl Fn(&RunRef) -> bool,
    ) -> Vec<RunRef> {
        let mut pending = self.pending();
        let mut free = self
            .config
            .max_running_tasks
            .saturating_sub(self.running_tasks_locked(&mut pending, now));
        let pool_free = self.pool_free_locked(&pending);
        let mut waiters = self.waiters();
        // Runs held back by a pool first, as many as both the pool and the cap have room for.
        let mut woken: Vec<RunRef> = Vec::new();
        for (pool, queue) in waiters.pools.iter_mut() {
            let room = pool_free.get(pool).copied().unwrap_or(0).min(free);
            for run in queue.take(room, &exists) {
                if !woken.contains(&run) {
                    free -= 1;
                    woken.push(run);
                }
            }
        }
        for run in waiters.cap.take(free, &exists) {
            if !woken.contains(&run) {
                woken.push(run);
            }
        }
        drop(waiters);
        woken.extend(
            std::mem::take(&mut self.backfill().woken)
                .into_iter()
                .filter(|r| exists(r)),
        );
        woken
    }

    fn backfill(&self) -> std::sync::MutexGuard<'_, BackfillWaiting> {
        self.backfill_waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the waiting backfill runs of `wf` whose turn came to the waker. Called from the
    /// Workflow's reconcile, which every change of one of its runs triggers once the cache
    /// shows it, so a woken run sees the run that ended as ended.
    fn wake_backfill_turns(&self, ns: &str, runs: &[Arc<WorkflowRun>]) {
        let mut backfills: Vec<(&str, u32)> = runs
            .iter()
            .filter_map(|r| r.spec.backfill.as_ref())
            .map(|b| (b.name.as_str(), b.parallelism))
            .collect();
        backfills.sort_unstable();
        backfills.dedup_by_key(|(name, _)| *name);
        let mut state = self.backfill();
        let mut woke = false;
        for (name, parallelism) in backfills {
            for run in backfill::turns(runs, name, parallelism) {
                let key = (ns.to_string(), run);
                if state.waiting.remove(&key) {
                    state.woken.push(key);
                    woke = true;
                }
            }
        }
        drop(state);
        if woke {
            self.slots_freed.notify_one();
        }
    }

    /// Whether a run of a backfill may start now (see [`backfill::turns`]); one that may not is
    /// remembered, to be woken when its turn comes.
    fn backfill_turn(&self, run: &WorkflowRun, name: &str, parallelism: u32) -> bool {
        let (ns, run_name) = ns_name(&run.metadata);
        let runs = self.cluster.runs_of(&ns, &run.spec.workflow_name);
        let turn = backfill::turns(&runs, name, parallelism).contains(&run_name);
        let mut state = self.backfill();
        if turn {
            state.waiting.remove(&(ns, run_name));
        } else {
            state.waiting.insert((ns, run_name));
        }
        turn
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.slot_waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The workflow's last scheduled tick: the cached one, or the newer one this reconciler
    /// wrote if the cache does not show it yet. Forgets the write once the cache shows it.
    fn last_scheduled(
        &self,
        wf: &Workflow,
        cached: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let mut scheduled = self.scheduled.lock().unwrap_or_else(|e| e.into_inner());
        let key = object_key(&wf.metadata);
        match (scheduled.get(&key).copied(), cached) {
            (Some(written), Some(seen)) if seen >= written => {
                scheduled.remove(&key);
                Some(seen)
            }
            (Some(written), _) => Some(written),
            (None, seen) => seen,
        }
    }

    fn remember_scheduled(&self, wf: &Workflow, status: &WorkflowStatus) {
        if let Some(t) = status.last_schedule_time {
            self.scheduled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(object_key(&wf.metadata), t);
        }
    }

    /// Whether the cached run still shows an older status than the one this reconciler wrote
    /// moments ago (the watch event is on its way). Forgets the write once the cache shows it,
    /// or once the grace period is over.
    fn cache_behind(
        &self,
        run: &WorkflowRun,
        cached: &WorkflowRunStatus,
        now: DateTime<Utc>,
    ) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let key = object_key(&run.metadata);
        let Some((progress, at)) = written.get(&key) else {
            return false;
        };
        let behind = *progress != Progress::of(cached)
            && now - *at < Duration::milliseconds(STATUS_VISIBILITY_GRACE_MS);
        if !behind {
            written.remove(&key);
        }
        behind
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending_creates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Running tasks: active Jobs in the cache plus reserved slots the cache has not shown yet.
    fn running_tasks_locked(&self, pending: &mut Pending, now: DateTime<Utc>) -> usize {
        pending.retain(|(ns, name), (at, _)| {
            !self.cluster.job_cached(ns, name)
                && now - *at < Duration::seconds(CREATE_VISIBILITY_GRACE)
        });
        self.cluster.running_tasks() + pending.len()
    }

    /// Free slots of each configured task pool: its limit less its active Jobs and the Jobs
    /// reserved for it that the cache does not show yet (`pending` is pruned by
    /// [`Self::running_tasks_locked`] first).
    fn pool_free_locked(&self, pending: &Pending) -> HashMap<String, usize> {
        self.config
            .task_pools
            .iter()
            .map(|(pool, limit)| {
                let reserved = pending
                    .values()
                    .filter(|(_, p)| p.as_deref() == Some(pool.as_str()))
                    .count();
                let used = self.cluster.running_in_pool(pool) + reserved;
                (pool.clone(), limit.saturating_sub(used))
            })
            .collect()
    }

    fn running_tasks(&self, now: DateTime<Utc>) -> usize {
        self.running_tasks_locked(&mut self.pending(), now)
    }

    /// Plans run `run` (namespace, name) with the free slots of the global cap and of the task
    /// pools (`plan` is given them) and reserves a slot for every Job the plan creates,
    /// atomically with respect to other reconciles; queues the run (at its workflow's
    /// `priority`) for a slot of the cap or of a pool if it waits for one.
    fn plan_with_slots(
        &self,
        run: RunRef,
        spec: &WorkflowSpec,
        now: DateTime<Utc>,
        plan: impl FnOnce(usize, &HashMap<String, usize>) -> RunPlan,
    ) -> RunPlan {
        let mut pending = self.pending();
        let free_slots = self
            .config
            .max_running_tasks
            .saturating_sub(self.running_tasks_locked(&mut pending, now));
        let pool_free = self.pool_free_locked(&pending);
        let plan = plan(free_slots, &pool_free);
        for action in &plan.actions {
            if let Action::CreateJob { job_name, task, .. } = action {
                let pool = spec.task(*task).and_then(|t| t.pool.clone());
                pending.insert((run.0.clone(), job_name.clone()), (now, pool));
            }
        }
        let mut waiters = self.waiters();
        let started = plan.status.tasks.iter().any(|t| t.attempts > 0);
        if plan.waits_for_slot {
            waiters.cap.wait(run.clone(), started, spec.priority);
        } else {
            waiters.cap.leave(&run);
        }
        for (pool, queue) in waiters.pools.iter_mut() {
            if !plan.waits_for_pools.contains(pool) {
                queue.leave(&run);
            }
        }
        for pool in &plan.waits_for_pools {
            waiters.pools.entry(pool.clone()).or_default().wait(
                run.clone(),
                started,
                spec.priority,
            );
        }
        plan
    }

    /// Gives back the slots reserved for Jobs that will not be created.
    fn release_slots<'a>(&self, ns: &str, job_names: impl IntoIterator<Item = &'a String>) {
        let mut pending = self.pending();
        for name in job_names {
            pending.remove(&(ns.to_string(), name.clone()));
        }
        self.slots_freed.notify_one();
    }

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
        status.last_schedule_time = self.last_scheduled(wf, old.last_schedule_time);
        let runs = self.cluster.runs_of(&ns, &name);
        self.wake_backfill_turns(&ns, &runs);
        let mut active: Vec<String> = Vec::new();
        let mut backfilling = 0;
        let mut finished = Vec::new();
        for run in &runs {
            let st = run.status.as_ref();
            let run_name = run.metadata.name.clone().unwrap_or_default();
            match st.map(|s| s.phase) {
                Some(phase) if phase.is_finished() => {
                    let completed = st
                        .and_then(|s| s.completion_time)
                        .or_else(|| {
                            run.metadata
                                .creation_timestamp
                                .as_ref()
                                .and_then(from_k8s_time)
                        })
                        .unwrap_or(now);
                    if phase == RunPhase::Succeeded {
                        status.last_successful_time =
                            status.last_successful_time.max(Some(completed));
                    }
                    finished.push(FinishedRun {
                        name: run_name,
                        phase,
                        completed,
                    });
                }
                // A backfill paces itself and is not subject to the concurrency policy.
                _ if run.spec.backfill.is_some() => backfilling += 1,
                _ => active.push(run_name),
            }
        }
        let prune = prune_history(
            &finished,
            wf.spec.successful_runs_history_limit,
            wf.spec.failed_runs_history_limit,
        );
        status.active_runs = (active.len() + backfilling) as u32;

        let mut wake = None;
        match validate_workflow_with(wf, &self.config.limits) {
            Err(errors) => {
                status.message = Some(format!("invalid workflow, not scheduled:\n{errors}"));
                status.next_schedule_time = None;
            }
            Ok(_) => {
                status.message = None;
                if let Some(expr) = &wf.spec.schedule {
                    wake = self
                        .schedule_ticks(wf, expr, &active, &mut status, now)
                        .await?;
                } else {
                    status.next_schedule_time = None;
                }
            }
        }
        if status != old {
            self.cluster.patch_workflow_status(wf, &status).await?;
            self.remember_scheduled(wf, &status);
        }
        // History goes last: a run that cannot be deleted (a webhook, a finalizer, RBAC) must
        // not hold up the schedule. Every deletion is tried; the first error is returned so the
        // controller retries with backoff, which schedules nothing twice (deterministic names).
        self.prune(&ns, &prune).await?;
        Ok(wake)
    }

    /// Deletes the finished runs history pruning let go, trying each even when one fails.
    async fn prune(&self, ns: &str, runs: &[String]) -> Result<(), ClusterError> {
        let mut first_error = None;
        for run in runs {
            if let Err(e) = self.cluster.delete_run(ns, run).await {
                tracing::warn!(namespace = %ns, run = %run, error = %e, "cannot prune finished run");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn schedule_ticks(
        &self,
        wf: &Workflow,
        expr: &str,
        active: &[String],
        status: &mut WorkflowStatus,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ClusterError> {
        let (ns, name) = ns_name(&wf.metadata);
        let schedule = match Schedule::parse(expr, wf.spec.timezone.as_deref()) {
            Ok(s) => s,
            // Validation passed, so this cannot happen; report instead of panicking.
            Err(e) => {
                status.message = Some(e.to_string());
                return Ok(None);
            }
        };
        let created_at = wf
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(from_k8s_time);
        let last = status.last_schedule_time.or(created_at).unwrap_or(now);
        let mut plan = plan_ticks(&TickInput {
            now,
            schedule: &schedule,
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
        status.next_schedule_time = schedule.next_after(now);
        Ok(if wf.spec.suspend { None } else { plan.wake_at })
    }

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
        let (ns, run_name) = ns_name(&run.metadata);
        let old = run.status.clone().unwrap_or_default();
        if self.cache_behind(run, &old, now) {
            self.metrics.stale_reads.inc();
            return Ok(Some(now + Duration::milliseconds(STALE_CACHE_RETRY_MS)));
        }
        let (spec, seed) = match self.spec_of(run, &old, now) {
            Resolved::Spec(spec, seed) => (spec, seed),
            Resolved::LookAgain => return Ok(Some(now + Duration::seconds(1))),
            Resolved::Nothing => return Ok(None),
            Resolved::Fail(reason, msg) => return self.fail_run(run, &old, reason, msg, now).await,
        };
        let dag = match validate_spec(&spec, &self.config.limits) {
            Ok(dag) => dag,
            Err(_) if old.phase.is_finished() => return Ok(None),
            Err(errors) => {
                let msg = format!(
                    "workflow {:?} is invalid:\n{errors}",
                    run.spec.workflow_name
                );
                return self.fail_run(run, &old, "InvalidWorkflow", msg, now).await;
            }
        };
        let parameters = match resolve_parameters(&spec, &run.spec.parameters) {
            Ok(parameters) => parameters,
            Err(_) if old.phase.is_finished() => return Ok(None),
            Err(errors) => {
                let msg = format!("the run's parameters do not fit its workflow:\n{errors}");
                return self
                    .fail_run(run, &old, "InvalidParameters", msg, now)
                    .await;
            }
        };
        if let Some(bf) = &run.spec.backfill
            && !old.phase.is_finished()
            && !backfill::started(Some(&old))
            && !self.backfill_turn(run, &bf.name, bf.parallelism)
        {
            let message = format!(
                "waiting for its turn: backfill {} runs {} at a time, oldest first",
                bf.name, bf.parallelism
            );
            if old.message.as_deref() != Some(message.as_str()) {
                let mut status = old.clone();
                status.message = Some(message);
                self.cluster.patch_run_status(run, &status).await?;
            }
            return Ok(None);
        }
        // A backfill run whose turn came starts without the note that it waited.
        let seed = match seed {
            None if run.spec.backfill.is_some() && !backfill::started(Some(&old)) => {
                Some(WorkflowRunStatus {
                    message: None,
                    ..old.clone()
                })
            }
            seed => seed,
        };
        let variables = run_variables(run, &spec, &parameters, now);
        let jobs = self.cluster.jobs_of(run);
        let run_ref = (ns.clone(), run_name.clone());
        let mut plan = self.plan_with_slots(run_ref, &spec, now, |free_slots, pool_free| {
            plan_run(&RunInput {
                now,
                run_name: &run_name,
                spec: &spec,
                dag: &dag,
                status: seed.as_ref().unwrap_or(&old),
                jobs: &jobs,
                free_slots,
                pool_free,
                pending_timeout_seconds: self.config.pending_timeout_seconds,
                finished_pod_retention_seconds: self.config.finished_pod_retention_seconds,
            })
        });
        // Creates the API server refused: recorded as failed attempts once the loop is done.
        let mut rejected: Vec<(usize, u32, String)> = Vec::new();
        for (i, action) in plan.actions.iter().enumerate() {
            match action {
                Action::CreateJob {
                    task,
                    attempt,
                    job_name,
                } => {
                    let Some(task_spec) = spec.task(*task) else {
                        continue;
                    };
                    // The onExit task also learns how the DAG ended.
                    let exit_variables;
                    let variables = match &plan.outcome {
                        Some(outcome) if *task == spec.tasks.len() => {
                            let failed: Vec<&str> =
                                outcome.failed_tasks.iter().map(String::as_str).collect();
                            exit_variables = [
                                variables.as_slice(),
                                &runtime::exit_variables(outcome.succeeded, &failed),
                            ]
                            .concat();
                            &exit_variables
                        }
                        _ => &variables,
                    };
                    let built = build_job(
                        run,
                        task_spec,
                        spec.pod_defaults.as_ref(),
                        *attempt,
                        job_name,
                        &self.config.task_defaults,
                        variables,
                    );
                    // A pod that cannot be built (an unknown preset) fails its attempt as a Job
                    // the API server refused would: retried while retries remain, else the
                    // task fails with the reason.
                    let unknown_pool = task_spec
                        .pool
                        .as_ref()
                        .filter(|p| !self.config.task_pools.contains_key(*p));
                    let outcome = match built {
                        _ if unknown_pool.is_some() => Ok(Created::Rejected {
                            message: format!(
                                "unknown task pool {:?} (the scheduler's pools: {})",
                                unknown_pool.map(String::as_str).unwrap_or_default(),
                                self.config
                                    .task_pools
                                    .iter()
                                    .map(|(name, limit)| format!("{name}={limit}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        }),
                        Ok(job) => match self.cluster.create_job(job).await {
                            Ok(Created::Rejected { message }) => Ok(Created::Rejected {
                                message: format!("the API server refused its Job: {message}"),
                            }),
                            other => other,
                        },
                        Err(e) => Ok(Created::Rejected {
                            message: format!("its pod cannot be built: {e}"),
                        }),
                    };
                    let outcome = match outcome {
                        Ok(outcome) => outcome,
                        Err(e) => {
                            // This Job and the ones after it will not be created now.
                            self.release_slots(
                                &ns,
                                plan.actions[i..].iter().filter_map(created_job),
                            );
                            return Err(e);
                        }
                    };
                    match &outcome {
                        // A New Job keeps its slot until the cache shows it; one that already
                        // existed is (or will be) in the cache and is counted from there.
                        Created::New | Created::AlreadyExists => {}
                        Created::Rejected { message } => {
                            self.release_slots(&ns, [job_name]);
                            tracing::warn!(namespace = %ns, run = %run_name, job = %job_name, attempt, %message, "task job refused");
                            rejected.push((*task, *attempt, message.clone()));
                            continue;
                        }
                    }
                    tracing::info!(namespace = %ns, run = %run_name, job = %job_name, attempt, ?outcome, "task job");
                }
                Action::DeleteJob { job_name } => {
                    tracing::info!(namespace = %ns, run = %run_name, job = %job_name, "stopping task job");
                    self.cluster.delete_job(&ns, job_name).await?;
                }
                Action::DeletePods { job_name } => {
                    tracing::debug!(namespace = %ns, run = %run_name, job = %job_name, "deleting finished pods");
                    self.cluster.delete_finished_pods(&ns, job_name).await?;
                }
                Action::Event {
                    type_,
                    reason,
                    message,
                } => {
                    self.cluster
                        .publish_event(run, *type_, reason, message)
                        .await;
                }
            }
        }
        for (task, attempt, message) in rejected {
            if let Some(Action::Event {
                type_,
                reason,
                message,
            }) = reject_attempt(&mut plan, &spec, task, attempt, &message, now)
            {
                self.cluster
                    .publish_event(run, type_, reason, &message)
                    .await;
            }
        }
        if plan.status != old {
            self.cluster.patch_run_status(run, &plan.status).await?;
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(object_key(&run.metadata), (Progress::of(&plan.status), now));
            // Metrics only after the status is stored, so a failed patch is not counted twice.
            for (_, phase) in &plan.finished_tasks {
                self.metrics.task_finished(*phase);
            }
            if plan.status.phase.is_finished() && !old.phase.is_finished() {
                self.record_finished_run(run, &plan.status);
            }
        }
        self.metrics
            .running_tasks
            .set(self.running_tasks(now) as i64);
        Ok(plan.wake_at)
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
        // Keep what succeeded upstream of every task that runs again (an invalid spec keeps
        // nothing: the run fails on it next).
        let Ok(dag) = validate_spec(&spec, &self.config.limits) else {
            return Resolved::Spec(spec, None);
        };
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
                message: Some(format!("succeeded in run {}", retry.run_name)),
                ..TaskStatus::default()
            })
            .collect();
        let seed = WorkflowRunStatus {
            tasks,
            ..WorkflowRunStatus::default()
        };
        Resolved::Spec(spec, Some(seed))
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

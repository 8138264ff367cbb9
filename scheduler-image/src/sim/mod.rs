//! An in-memory cluster implementing [`Cluster`], for end-to-end simulations without an API
//! server: tests drive the real reconcilers through whole runs (including restarts and lost
//! status writes), and the memory benchmark manages a thousand workflows with it.
//!
//! It models what the scheduler relies on: AlreadyExists on duplicate names, cascading
//! deletion through owner references, and a status subresource.
//!
//! `state` holds what it keeps, `cluster` answers the reconcilers; here are the controls tests
//! use (the clock, Job outcomes, lost writes) and what they inspect.

mod cluster;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use kube::api::ObjectMeta;

use crate::jobs::to_k8s_time;
use crate::plan::EventType;
use crate::reconcile::{ClusterError, Reconciler};
use datajump_api::{Shutdown, Workflow, WorkflowRun};
use state::{Key, State, key};

/// A recorded Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// Run the event is about.
    pub run: String,
    /// Severity.
    pub type_: EventType,
    /// Reason.
    pub reason: &'static str,
    /// Note.
    pub message: String,
}

/// The in-memory cluster. Cheap to share: clone the `Arc`.
#[derive(Default)]
pub struct MemoryCluster {
    state: Mutex<State>,
}

impl MemoryCluster {
    /// An empty cluster whose clock starts at `now`.
    pub fn new(now: DateTime<Utc>) -> Arc<Self> {
        let cluster = Self::default();
        cluster.lock().now = Some(now);
        Arc::new(cluster)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stamp(state: &mut State, meta: &mut ObjectMeta) {
        state.next_uid += 1;
        meta.uid = Some(format!("uid-{}", state.next_uid));
        meta.creation_timestamp = state.now.and_then(to_k8s_time);
    }

    /// Sets the clock used for creation timestamps and Job transitions.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.lock().now = Some(now);
    }

    /// Creates or replaces a workflow (keeping its status).
    pub fn apply_workflow(&self, mut wf: Workflow) {
        let mut state = self.lock();
        let k = key(&wf.metadata);
        match state.workflows.get(&k) {
            Some(old) => {
                wf.metadata.uid = old.metadata.uid.clone();
                wf.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
                wf.status = old.status.clone();
            }
            None => Self::stamp(&mut state, &mut wf.metadata),
        }
        state.workflows.insert(k, Arc::new(wf));
    }

    /// Creates a run by hand (like `kubectl create`).
    pub fn create_manual_run(&self, mut run: WorkflowRun) {
        let mut state = self.lock();
        Self::stamp(&mut state, &mut run.metadata);
        state.insert_run(key(&run.metadata), run);
    }

    /// Sets a run's `spec.shutdown` (as `kubectl datajump workflow stop|terminate` does).
    pub fn request_shutdown(&self, namespace: &str, name: &str, shutdown: Shutdown) -> bool {
        let mut state = self.lock();
        let Some(run) = state.runs.get_mut(&(namespace.into(), name.into())) else {
            return false;
        };
        Arc::make_mut(run).spec.shutdown = Some(shutdown);
        true
    }

    /// Deletes a run but not its Jobs, as in the moments before the garbage collector
    /// removes them.
    pub fn delete_run_leaving_jobs(&self, namespace: &str, name: &str) {
        self.lock().remove_run(&(namespace.into(), name.into()));
    }

    /// The next `n` status writes are lost (as if the scheduler crashed right before them).
    pub fn drop_next_status_writes(&self, n: usize) {
        self.lock().drop_status_writes = n;
    }

    /// Loses the next `n` Workflow status writes, as a cache that does not show them yet would.
    pub fn drop_next_workflow_status_writes(&self, n: usize) {
        self.lock().drop_workflow_status_writes = n;
    }

    /// The next `n` run deletions fail (as an admission webhook or a missing RBAC rule would
    /// make them).
    pub fn refuse_next_run_deletes(&self, n: usize) {
        self.lock().refused_run_deletes = n;
    }

    /// All workflows.
    pub fn workflows(&self) -> Vec<Arc<Workflow>> {
        self.lock().workflows.values().cloned().collect()
    }

    /// All runs.
    pub fn runs(&self) -> Vec<Arc<WorkflowRun>> {
        self.lock().runs.values().cloned().collect()
    }

    /// A run by name.
    pub fn run(&self, namespace: &str, name: &str) -> Option<Arc<WorkflowRun>> {
        self.lock()
            .runs
            .get(&(namespace.into(), name.into()))
            .cloned()
    }

    /// Names of existing Jobs.
    pub fn job_names(&self) -> Vec<String> {
        self.lock().jobs.keys().map(|(_, n)| n.clone()).collect()
    }

    /// Every Job name ever created, in creation order (duplicates would show up twice).
    /// The container image of an existing Job.
    pub fn created_image(&self, name: &str) -> Option<String> {
        self.lock()
            .jobs
            .iter()
            .find(|((_, n), _)| n == name)
            .map(|(_, j)| j.image.to_string())
    }

    pub fn jobs_created(&self) -> Vec<String> {
        self.lock()
            .jobs_created
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many creates were answered with AlreadyExists.
    pub fn already_exists_count(&self) -> u64 {
        self.lock().already_exists
    }

    /// Events recorded so far.
    pub fn events(&self) -> Vec<SimEvent> {
        self.lock().events.clone()
    }

    /// Completes a Job successfully.
    pub fn succeed_job(&self, namespace: &str, name: &str) -> bool {
        self.finish_job(namespace, name, None)
    }

    /// Fails a Job with a reason (e.g. `BackoffLimitExceeded`, `DeadlineExceeded`).
    pub fn fail_job(&self, namespace: &str, name: &str, reason: &str) -> bool {
        self.finish_job(namespace, name, Some(reason))
    }

    fn finish_job(&self, namespace: &str, name: &str, failure: Option<&str>) -> bool {
        let mut state = self.lock();
        let now = state.now;
        let k: Key = (namespace.into(), name.into());
        let Some(stored) = state.jobs.get_mut(&k) else {
            return false;
        };
        stored.outcome = Some(failure.map(str::to_string));
        stored.finished = now;
        let job = stored.to_job(&k);
        state.index.apply(&job);
        true
    }

    /// Names of Jobs still running.
    pub fn active_jobs(&self) -> Vec<(String, String)> {
        self.lock()
            .jobs
            .iter()
            .filter(|(_, j)| j.outcome.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// Reconciles every run at once (concurrently, as the run controller does), returning the
/// earliest wake-up any asked for.
pub async fn reconcile_runs_concurrently(
    reconciler: &Reconciler<Arc<MemoryCluster>>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ClusterError> {
    reconciler.cluster.set_now(now);
    let runs = reconciler.cluster.runs();
    let wakes =
        futures::future::try_join_all(runs.iter().map(|r| reconciler.reconcile_run(r, now)))
            .await?;
    Ok(wakes.into_iter().flatten().min())
}

/// Reconciles every workflow, then every run, at `now`, the way watch events would trigger
/// them; returns the earliest requested wake-up.
pub async fn reconcile_all(
    reconciler: &Reconciler<Arc<MemoryCluster>>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ClusterError> {
    reconciler.cluster.set_now(now);
    let mut wake: Option<DateTime<Utc>> = None;
    let mut merge = |w: Option<DateTime<Utc>>| {
        if let Some(w) = w {
            wake = Some(wake.map_or(w, |x| x.min(w)));
        }
    };
    for wf in reconciler.cluster.workflows() {
        merge(reconciler.reconcile_workflow(&wf, now).await?);
    }
    for run in reconciler.cluster.runs() {
        merge(reconciler.reconcile_run(&run, now).await?);
    }
    Ok(wake)
}

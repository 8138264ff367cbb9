//! An in-memory cluster implementing [`Cluster`], for end-to-end simulations without an API
//! server: tests drive the real reconcilers through whole runs (including restarts and lost
//! status writes), and the memory benchmark manages a thousand workflows with it.
//!
//! It models what the scheduler relies on: AlreadyExists on duplicate names, cascading
//! deletion through owner references, and a status subresource.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use kube::api::ObjectMeta;

use crate::api::{LABEL_RUN, Workflow, WorkflowRun, WorkflowRunStatus, WorkflowStatus};
use crate::jobs::{job_is_active, to_k8s_time, trim_for_cache};
use crate::plan::EventType;
use crate::reconcile::{Cluster, ClusterError, Created, Reconciler};

type Key = (String, String);

/// Events kept (older ones expire).
const MAX_EVENTS: usize = 1000;

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

#[derive(Default)]
struct State {
    now: Option<DateTime<Utc>>,
    next_uid: u64,
    workflows: BTreeMap<Key, Arc<Workflow>>,
    runs: BTreeMap<Key, Arc<WorkflowRun>>,
    jobs: BTreeMap<Key, Arc<Job>>,
    /// (namespace, workflow) -> its runs' names: the reconcilers look runs up by workflow.
    runs_by_workflow: HashMap<Key, BTreeSet<String>>,
    /// (namespace, run) -> its Jobs' names.
    jobs_by_run: HashMap<Key, BTreeSet<String>>,
    /// Number of active Jobs, kept up to date so the global cap costs O(1).
    active_jobs: usize,
    /// Names of Jobs ever created, one per line (a deleted Job stays here: recreating one
    /// would show as a duplicate). One buffer instead of a String each keeps the audit log
    /// from dominating the memory benchmark.
    /// Container image of each created Job, by name (the cached copy is trimmed).
    created_images: HashMap<String, String>,
    jobs_created: String,
    already_exists: u64,
    events: Vec<SimEvent>,
    drop_status_writes: usize,
}

fn run_of_job(job: &Job) -> String {
    job.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_RUN))
        .cloned()
        .unwrap_or_default()
}

impl State {
    fn insert_run(&mut self, k: Key, run: WorkflowRun) {
        self.runs_by_workflow
            .entry((k.0.clone(), run.spec.workflow_name.clone()))
            .or_default()
            .insert(k.1.clone());
        self.runs.insert(k, Arc::new(run));
    }

    fn remove_run(&mut self, k: &Key) -> Option<Arc<WorkflowRun>> {
        let run = self.runs.remove(k)?;
        if let Some(names) = self
            .runs_by_workflow
            .get_mut(&(k.0.clone(), run.spec.workflow_name.clone()))
        {
            names.remove(&k.1);
        }
        Some(run)
    }

    fn insert_job(&mut self, k: Key, job: Job) {
        if job_is_active(&job) {
            self.active_jobs += 1;
        }
        self.jobs_by_run
            .entry((k.0.clone(), run_of_job(&job)))
            .or_default()
            .insert(k.1.clone());
        self.jobs.insert(k, Arc::new(job));
    }

    fn remove_job(&mut self, k: &Key) {
        if let Some(job) = self.jobs.remove(k) {
            if job_is_active(&job) {
                self.active_jobs -= 1;
            }
            if let Some(names) = self.jobs_by_run.get_mut(&(k.0.clone(), run_of_job(&job))) {
                names.remove(&k.1);
            }
        }
    }
}

/// The in-memory cluster. Cheap to share: clone the `Arc`.
#[derive(Default)]
pub struct MemoryCluster {
    state: Mutex<State>,
}

fn key(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn not_found(operation: &'static str, kind: &'static str, ns: &str, name: &str) -> ClusterError {
    ClusterError {
        operation,
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
        message: "not found".into(),
    }
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

    /// The next `n` status writes are lost (as if the scheduler crashed right before them).
    pub fn drop_next_status_writes(&self, n: usize) {
        self.lock().drop_status_writes = n;
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
    /// The container image a Job was created with.
    pub fn created_image(&self, name: &str) -> Option<String> {
        self.lock().created_images.get(name).cloned()
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
        let now = state.now.and_then(to_k8s_time);
        let Some(job) = state.jobs.get_mut(&(namespace.into(), name.into())) else {
            return false;
        };
        let job = Arc::make_mut(job);
        let was_active = job_is_active(job);
        job.status = Some(match failure {
            None => JobStatus {
                succeeded: Some(1),
                completion_time: now,
                ..JobStatus::default()
            },
            Some(reason) => JobStatus {
                failed: Some(1),
                conditions: Some(vec![JobCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    last_transition_time: now,
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            },
        });
        if was_active {
            state.active_jobs -= 1;
        }
        true
    }

    /// Names of Jobs still running.
    pub fn active_jobs(&self) -> Vec<(String, String)> {
        self.lock()
            .jobs
            .iter()
            .filter(|(_, j)| job_is_active(j))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl Cluster for Arc<MemoryCluster> {
    fn workflow(&self, namespace: &str, name: &str) -> Option<Arc<Workflow>> {
        self.lock()
            .workflows
            .get(&(namespace.into(), name.into()))
            .cloned()
    }

    fn runs_of(&self, namespace: &str, workflow: &str) -> Vec<Arc<WorkflowRun>> {
        let state = self.lock();
        let Some(names) = state
            .runs_by_workflow
            .get(&(namespace.into(), workflow.into()))
        else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| state.runs.get(&(namespace.into(), n.clone())).cloned())
            .collect()
    }

    fn jobs_of(&self, namespace: &str, run: &str) -> Vec<Arc<Job>> {
        let state = self.lock();
        let Some(names) = state.jobs_by_run.get(&(namespace.into(), run.into())) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| state.jobs.get(&(namespace.into(), n.clone())).cloned())
            .collect()
    }

    fn job_cached(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .jobs
            .contains_key(&(namespace.into(), name.into()))
    }

    fn running_tasks(&self) -> usize {
        self.lock().active_jobs
    }

    async fn create_run(&self, mut run: WorkflowRun) -> Result<Created, ClusterError> {
        let mut state = self.lock();
        let k = key(&run.metadata);
        if state.runs.contains_key(&k) {
            state.already_exists += 1;
            return Ok(Created::AlreadyExists);
        }
        MemoryCluster::stamp(&mut state, &mut run.metadata);
        state.insert_run(k, run);
        Ok(Created::New)
    }

    async fn delete_run(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        let mut state = self.lock();
        if state.remove_run(&(namespace.into(), name.into())).is_some() {
            // Garbage collection through owner references: the run's Jobs go with it.
            let names = state
                .jobs_by_run
                .remove(&(namespace.into(), name.into()))
                .unwrap_or_default();
            for job in names {
                state.remove_job(&(namespace.to_string(), job));
            }
        }
        Ok(())
    }

    async fn patch_run_status(
        &self,
        run: &WorkflowRun,
        status: &WorkflowRunStatus,
    ) -> Result<(), ClusterError> {
        let mut state = self.lock();
        if state.drop_status_writes > 0 {
            state.drop_status_writes -= 1;
            return Ok(());
        }
        let (ns, name) = key(&run.metadata);
        let stored = state
            .runs
            .get_mut(&(ns.clone(), name.clone()))
            .ok_or_else(|| not_found("patch status", "WorkflowRun", &ns, &name))?;
        Arc::make_mut(stored).status = Some(status.clone());
        Ok(())
    }

    async fn patch_workflow_status(
        &self,
        wf: &Workflow,
        status: &WorkflowStatus,
    ) -> Result<(), ClusterError> {
        let mut state = self.lock();
        let (ns, name) = key(&wf.metadata);
        let stored = state
            .workflows
            .get_mut(&(ns.clone(), name.clone()))
            .ok_or_else(|| not_found("patch status", "Workflow", &ns, &name))?;
        Arc::make_mut(stored).status = Some(status.clone());
        Ok(())
    }

    async fn create_job(&self, mut job: Job) -> Result<Created, ClusterError> {
        let mut state = self.lock();
        let k = key(&job.metadata);
        if state.jobs.contains_key(&k) {
            state.already_exists += 1;
            return Ok(Created::AlreadyExists);
        }
        MemoryCluster::stamp(&mut state, &mut job.metadata);
        state.jobs_created.push_str(&k.1);
        state.jobs_created.push('\n');
        let image = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        state.created_images.insert(k.1.clone(), image);
        // Keep what the scheduler's Job cache keeps (the controller trims the same way), so
        // the memory benchmark measures the scheduler's working set, not an API server's.
        trim_for_cache(&mut job);
        state.insert_job(k, job);
        Ok(Created::New)
    }

    async fn delete_job(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        self.lock().remove_job(&(namespace.into(), name.into()));
        Ok(())
    }

    async fn publish_event(
        &self,
        run: &WorkflowRun,
        type_: EventType,
        reason: &'static str,
        message: &str,
    ) {
        let mut state = self.lock();
        // Like the API server, which expires Events after an hour, keep only recent ones.
        if state.events.len() >= MAX_EVENTS {
            state.events.drain(..MAX_EVENTS / 2);
        }
        state.events.push(SimEvent {
            run: run.metadata.name.clone().unwrap_or_default(),
            type_,
            reason,
            message: message.to_string(),
        });
    }
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

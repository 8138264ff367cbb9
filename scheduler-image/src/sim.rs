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

use crate::job_index::JobIndex;
use crate::jobs::to_k8s_time;
use crate::plan::EventType;
use crate::plan::ObservedJob;
use crate::reconcile::{Cluster, ClusterError, Created, Reconciler};
use datajump_api::{
    LABEL_ATTEMPT, LABEL_RUN, LABEL_TASK, Workflow, WorkflowRun, WorkflowRunStatus, WorkflowStatus,
};

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
    jobs: BTreeMap<Key, SimJob>,
    /// (namespace, workflow) -> its runs' names: the reconcilers look runs up by workflow.
    runs_by_workflow: HashMap<Key, BTreeSet<String>>,
    /// (namespace, run) -> its Jobs' names (the garbage collector's view, by label).
    jobs_by_run: HashMap<Key, BTreeSet<String>>,
    /// The scheduler's Job cache, fed with every change as the controller's watch feeds it.
    index: JobIndex,
    /// Names of Jobs ever created, one per line (a deleted Job stays here: recreating one
    /// would show as a duplicate). One buffer instead of a String each keeps the audit log
    /// from dominating the memory benchmark.
    jobs_created: String,
    already_exists: u64,
    events: Vec<SimEvent>,
    drop_status_writes: usize,
    drop_workflow_status_writes: usize,
    refused_run_deletes: usize,
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

    fn insert_job(&mut self, k: Key, job: &Job) {
        self.index.apply(job);
        let stored = SimJob::of(job);
        self.jobs_by_run
            .entry((k.0.clone(), stored.run.clone()))
            .or_default()
            .insert(k.1.clone());
        self.jobs.insert(k, stored);
    }

    fn remove_job(&mut self, k: &Key) {
        if let Some(stored) = self.jobs.remove(k) {
            self.index.delete(&stored.to_job(k));
            if let Some(names) = self.jobs_by_run.get_mut(&(k.0.clone(), stored.run)) {
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

/// What the stand-in API server keeps of a Job: enough to hand the scheduler's index the
/// Job as a watch would (labels, owner, status), a small fraction of a Job object.
struct SimJob {
    run: String,
    run_uid: String,
    run_name: String,
    task: String,
    attempt: String,
    /// The task pool label, if any (empty: none).
    pool: String,
    image: Box<str>,
    created: Option<DateTime<Utc>>,
    /// None while running; Some(None) succeeded; Some(Some(reason)) failed.
    outcome: Option<Option<String>>,
    finished: Option<DateTime<Utc>>,
}

impl SimJob {
    fn of(job: &Job) -> Self {
        let label = |k: &str| {
            job.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(k))
                .cloned()
                .unwrap_or_default()
        };
        let owner = job
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first());
        Self {
            run: label(LABEL_RUN),
            run_uid: owner.map(|o| o.uid.clone()).unwrap_or_default(),
            run_name: owner.map(|o| o.name.clone()).unwrap_or_default(),
            task: label(LABEL_TASK),
            attempt: label(LABEL_ATTEMPT),
            pool: label(datajump_api::LABEL_POOL),
            image: job
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers.first())
                .and_then(|c| c.image.as_deref())
                .unwrap_or_default()
                .into(),
            created: job
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(crate::jobs::from_k8s_time),
            outcome: None,
            finished: None,
        }
    }

    fn to_job(&self, k: &Key) -> Job {
        let time = |t: Option<DateTime<Utc>>| t.and_then(to_k8s_time);
        Job {
            metadata: ObjectMeta {
                namespace: Some(k.0.clone()),
                name: Some(k.1.clone()),
                creation_timestamp: time(self.created),
                labels: Some(
                    [
                        (LABEL_RUN, &self.run),
                        (LABEL_TASK, &self.task),
                        (LABEL_ATTEMPT, &self.attempt),
                        (datajump_api::LABEL_POOL, &self.pool),
                    ]
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                ),
                owner_references: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        api_version: "datajump.io/v1alpha1".into(),
                        kind: "WorkflowRun".into(),
                        name: self.run_name.clone(),
                        uid: self.run_uid.clone(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    },
                ]),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(match &self.outcome {
                None => JobStatus::default(),
                Some(None) => JobStatus {
                    succeeded: Some(1),
                    completion_time: time(self.finished),
                    ..JobStatus::default()
                },
                Some(Some(reason)) => JobStatus {
                    failed: Some(1),
                    conditions: Some(vec![JobCondition {
                        type_: "Failed".into(),
                        status: "True".into(),
                        reason: Some(reason.clone()),
                        last_transition_time: time(self.finished),
                        ..JobCondition::default()
                    }]),
                    ..JobStatus::default()
                },
            }),
        }
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

    fn jobs_of(&self, run: &WorkflowRun) -> Vec<ObservedJob> {
        run.metadata
            .uid
            .as_deref()
            .map(|uid| self.lock().index.jobs_of(uid))
            .unwrap_or_default()
    }

    fn job_cached(&self, namespace: &str, name: &str) -> bool {
        self.lock().index.contains(namespace, name)
    }

    fn running_tasks(&self) -> usize {
        self.lock().index.active()
    }

    fn running_in_pool(&self, pool: &str) -> usize {
        self.lock().index.active_in(pool)
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
        if state.refused_run_deletes > 0 {
            state.refused_run_deletes -= 1;
            return Err(ClusterError {
                operation: "delete",
                kind: "WorkflowRun",
                namespace: namespace.into(),
                name: name.into(),
                message: "admission webhook \"deny.example.com\" denied the request".into(),
            });
        }
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
        if state.drop_workflow_status_writes > 0 {
            state.drop_workflow_status_writes -= 1;
            return Ok(());
        }
        let (ns, name) = key(&wf.metadata);
        let stored = state
            .workflows
            .get_mut(&(ns.clone(), name.clone()))
            .ok_or_else(|| not_found("patch status", "Workflow", &ns, &name))?;
        Arc::make_mut(stored).status = Some(status.clone());
        Ok(())
    }

    async fn create_job(&self, mut job: Job) -> Result<Created, ClusterError> {
        // A create is a round trip on a real API server: let concurrent reconciles run
        // meanwhile, as they would there.
        tokio::task::yield_now().await;
        let mut state = self.lock();
        let k = key(&job.metadata);
        if state.jobs.contains_key(&k) {
            state.already_exists += 1;
            return Ok(Created::AlreadyExists);
        }
        MemoryCluster::stamp(&mut state, &mut job.metadata);
        state.jobs_created.push_str(&k.1);
        state.jobs_created.push('\n');
        state.insert_job(k, &job);
        Ok(Created::New)
    }

    async fn delete_job(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        self.lock().remove_job(&(namespace.into(), name.into()));
        Ok(())
    }

    /// Pods are not modelled: the Jobs' finished pods are never reported.
    async fn delete_finished_pods(&self, _namespace: &str, _job: &str) -> Result<(), ClusterError> {
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

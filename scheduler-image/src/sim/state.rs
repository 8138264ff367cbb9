//! What the in-memory cluster keeps: its objects, the indexes the reconcilers look them up
//! by, the scheduler's Job index fed as a watch would feed it, and what tests inspect (Jobs
//! ever created, Events, writes to drop).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use kube::api::ObjectMeta;

use super::SimEvent;
use crate::job_index::JobIndex;
use crate::jobs::to_k8s_time;
use crate::reconcile::ClusterError;
use datajump_api::{LABEL_ATTEMPT, LABEL_RUN, LABEL_TASK, Workflow, WorkflowRun};

/// An object's (namespace, name).
pub(super) type Key = (String, String);

/// Events kept (older ones expire).
pub(super) const MAX_EVENTS: usize = 1000;

#[derive(Default)]
pub(super) struct State {
    pub(super) now: Option<DateTime<Utc>>,
    pub(super) next_uid: u64,
    pub(super) workflows: BTreeMap<Key, Arc<Workflow>>,
    pub(super) runs: BTreeMap<Key, Arc<WorkflowRun>>,
    pub(super) jobs: BTreeMap<Key, SimJob>,
    /// (namespace, workflow) -> its runs' names: the reconcilers look runs up by workflow.
    pub(super) runs_by_workflow: HashMap<Key, BTreeSet<String>>,
    /// (namespace, run) -> its Jobs' names (the garbage collector's view, by label).
    pub(super) jobs_by_run: HashMap<Key, BTreeSet<String>>,
    /// The scheduler's Job cache, fed with every change as the controller's watch feeds it.
    pub(super) index: JobIndex,
    /// Names of Jobs ever created, one per line (a deleted Job stays here: recreating one
    /// would show as a duplicate). One buffer instead of a String each keeps the audit log
    /// from dominating the memory benchmark.
    pub(super) jobs_created: String,
    pub(super) already_exists: u64,
    pub(super) events: Vec<SimEvent>,
    pub(super) drop_status_writes: usize,
    pub(super) drop_workflow_status_writes: usize,
    pub(super) refused_run_deletes: usize,
}

impl State {
    pub(super) fn insert_run(&mut self, k: Key, run: WorkflowRun) {
        self.runs_by_workflow
            .entry((k.0.clone(), run.spec.workflow_name.clone()))
            .or_default()
            .insert(k.1.clone());
        self.runs.insert(k, Arc::new(run));
    }

    pub(super) fn remove_run(&mut self, k: &Key) -> Option<Arc<WorkflowRun>> {
        let run = self.runs.remove(k)?;
        if let Some(names) = self
            .runs_by_workflow
            .get_mut(&(k.0.clone(), run.spec.workflow_name.clone()))
        {
            names.remove(&k.1);
        }
        Some(run)
    }

    pub(super) fn insert_job(&mut self, k: Key, job: &Job) {
        self.index.apply(job);
        let stored = SimJob::of(job);
        self.jobs_by_run
            .entry((k.0.clone(), stored.run.clone()))
            .or_default()
            .insert(k.1.clone());
        self.jobs.insert(k, stored);
    }

    pub(super) fn remove_job(&mut self, k: &Key) {
        if let Some(stored) = self.jobs.remove(k) {
            self.index.delete(&stored.to_job(k));
            if let Some(names) = self.jobs_by_run.get_mut(&(k.0.clone(), stored.run)) {
                names.remove(&k.1);
            }
        }
    }
}

pub(super) fn key(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

pub(super) fn not_found(
    operation: &'static str,
    kind: &'static str,
    ns: &str,
    name: &str,
) -> ClusterError {
    ClusterError {
        operation,
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
        message: "not found".into(),
    }
}

/// What the stand-in API server keeps of a Job: enough to hand the scheduler's index the
/// Job as a watch would (labels, owner, status), a small fraction of a Job object.
pub(super) struct SimJob {
    pub(super) run: String,
    pub(super) run_uid: String,
    pub(super) run_name: String,
    pub(super) task: String,
    pub(super) attempt: String,
    /// The task pool label, if any (empty: none).
    pub(super) pool: String,
    pub(super) image: Box<str>,
    pub(super) created: Option<DateTime<Utc>>,
    /// None while running; Some(None) succeeded; Some(Some(reason)) failed.
    pub(super) outcome: Option<Option<String>>,
    pub(super) finished: Option<DateTime<Utc>>,
}

impl SimJob {
    pub(super) fn of(job: &Job) -> Self {
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

    pub(super) fn to_job(&self, k: &Key) -> Job {
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

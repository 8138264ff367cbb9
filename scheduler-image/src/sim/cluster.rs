//! The in-memory cluster as the reconcilers' [`Cluster`]: reads from its state, writes with
//! the API server's answers (AlreadyExists, cascading deletes, the status subresource).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::api::ObjectMeta;

use super::MemoryCluster;
use super::SimEvent;
use super::state::{Key, MAX_EVENTS, key, not_found};
use crate::archive::LogKey;
use crate::plan::{EventType, ObservedJob};
use crate::reconcile::{ArchiveFailure, Archived, Cluster, ClusterError, Created};
use datajump_api::{Workflow, WorkflowRun, WorkflowRunStatus, WorkflowStatus};

/// Writes a status as the status subresource does (`set` changes the stored object), unless
/// the next `dropped` writes are to be lost.
fn write_status<K: Clone>(
    objects: &mut BTreeMap<Key, Arc<K>>,
    dropped: &mut usize,
    kind: &'static str,
    meta: &ObjectMeta,
    set: impl FnOnce(&mut K),
) -> Result<(), ClusterError> {
    if *dropped > 0 {
        *dropped -= 1;
        return Ok(());
    }
    let (ns, name) = key(meta);
    let stored = objects
        .get_mut(&(ns.clone(), name.clone()))
        .ok_or_else(|| not_found("patch status", kind, &ns, &name))?;
    set(Arc::make_mut(stored));
    Ok(())
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
        let state = &mut *self.lock();
        write_status(
            &mut state.runs,
            &mut state.drop_status_writes,
            "WorkflowRun",
            &run.metadata,
            |run| run.status = Some(status.clone()),
        )
    }

    async fn patch_workflow_status(
        &self,
        wf: &Workflow,
        status: &WorkflowStatus,
    ) -> Result<(), ClusterError> {
        let state = &mut *self.lock();
        write_status(
            &mut state.workflows,
            &mut state.drop_workflow_status_writes,
            "Workflow",
            &wf.metadata,
            |wf| wf.status = Some(status.clone()),
        )
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

    /// Pods are not modelled: the Job goes at once, as if its pods stopped at once.
    async fn terminate_job(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        self.lock().remove_job(&(namespace.into(), name.into()));
        Ok(())
    }

    /// Pods are not modelled: the Job fails at once, as a Job does once its pod stopped at its
    /// deadline.
    async fn kill_pods(&self, namespace: &str, job: &str) -> Result<(), ClusterError> {
        self.fail_job(namespace, job, "BackoffLimitExceeded");
        Ok(())
    }

    /// Pods are not modelled: the Jobs' finished pods are never reported.
    async fn delete_finished_pods(&self, _namespace: &str, _job: &str) -> Result<(), ClusterError> {
        Ok(())
    }

    /// Pods are not modelled, so there is never a log to archive.
    async fn archive_pod_log(
        &self,
        _namespace: &str,
        _job: &str,
        _key: &LogKey,
    ) -> Result<Archived, ArchiveFailure> {
        Ok(Archived::NoLog)
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

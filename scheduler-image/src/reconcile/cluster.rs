//! The seam between the scheduling logic and the API server: what the reconcilers read from
//! the caches and write to the cluster ([`Cluster`]), and how a write can end.
//!
//! The production implementation is the controller's `KubeCluster` (kube reflector caches and
//! API calls); the in-memory one in `sim` (feature `sim`) drives the simulations and
//! benchmarks.

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::api::ObjectMeta;

use crate::archive::LogKey;
use crate::plan::{EventType, ObservedJob};
use datajump_api::{Workflow, WorkflowRun, WorkflowRunStatus, WorkflowStatus};

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

/// A task pod's log that could not be archived (the pods stay; the reconcile retries).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ArchiveFailure(pub String);

/// What archiving a Job's finished pod's log did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archived {
    /// Stored: this many bytes at this URL.
    Stored {
        /// Size of the log.
        bytes: u64,
        /// Where (`s3://bucket/key`).
        url: String,
    },
    /// No finished pod of the Job ran its task container: there is no log to keep.
    NoLog,
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
    /// Deletes a running Job in the foreground: the Job stays, marked for deletion, until the
    /// garbage collector has deleted its pods (their containers stopped).
    fn terminate_job(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Stops the running pods of Job `job` where they run: each pod's `activeDeadlineSeconds`
    /// is cut to its minimum, so the kubelet stops its containers and the pod stays, finished,
    /// with its log. A pod no node took yet (it has no log) is deleted with its Job.
    fn kill_pods(
        &self,
        namespace: &str,
        job: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Deletes the pods of a finished Job (the Job stays).
    fn delete_finished_pods(
        &self,
        namespace: &str,
        job: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Streams the log of the task container of Job `job`'s finished pod (the newest, when a
    /// disrupted one was replaced) into the log archive under `key`.
    fn archive_pod_log(
        &self,
        namespace: &str,
        job: &str,
        key: &LogKey,
    ) -> impl Future<Output = Result<Archived, ArchiveFailure>> + Send;
    /// Records an Event about a run (best effort).
    fn publish_event(
        &self,
        run: &WorkflowRun,
        type_: EventType,
        reason: &'static str,
        message: &str,
    ) -> impl Future<Output = ()> + Send;
}

/// An object's identity across re-creations under the same name: (namespace, name, uid).
pub(super) type ObjectKey = (String, String, String);

/// The identity of the object `meta` describes.
pub(super) fn object_key(meta: &ObjectMeta) -> ObjectKey {
    let (ns, name) = ns_name(meta);
    (ns, name, meta.uid.clone().unwrap_or_default())
}

/// The namespace and name of the object `meta` describes (empty when unset).
pub(super) fn ns_name(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

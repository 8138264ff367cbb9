//! The shapes in which the scheduler watches task Jobs and pods: metadata and status only.
//!
//! A `Job` or `Pod` object is mostly what the scheduler never reads: the pod template or spec
//! (containers, env, volumes) and `metadata.managedFields`. Decoded in full, every watch event
//! allocates all of it only to drop it again, which costs CPU under load and, worse, leaves the
//! heap fragmented around the long-lived cache entries (with 100,000 retained Jobs the full
//! decode kept about three times the cache's own size resident). These types let serde skip
//! those parts without allocating, and convert into the `k8s-openapi` types (with no spec) that
//! the rest of the scheduler reads.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::ObjectMeta;
use kube::runtime::watcher;
use serde::{Deserialize, Deserializer};

/// A task Job as watched: its metadata (without managed fields) and status.
#[derive(Clone, Debug, Deserialize, kube::Resource)]
#[resource(inherit = Job)]
pub struct WatchedJob {
    /// Identity, labels, owner and timestamps.
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// What the Job controller reports.
    #[serde(default)]
    pub status: Option<JobStatus>,
}

/// A task pod as watched: its metadata (without managed fields) and status.
#[derive(Clone, Debug, Deserialize, kube::Resource)]
#[resource(inherit = Pod)]
pub struct WatchedPod {
    /// Identity, labels and timestamps.
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// What the kubelet reports.
    #[serde(default)]
    pub status: Option<PodStatus>,
}

impl From<WatchedJob> for Job {
    fn from(job: WatchedJob) -> Self {
        Job {
            metadata: job.metadata,
            spec: None,
            status: job.status,
        }
    }
}

impl From<WatchedPod> for Pod {
    fn from(pod: WatchedPod) -> Self {
        Pod {
            metadata: pod.metadata,
            spec: None,
            status: pod.status,
        }
    }
}

/// The same watch event with its object converted.
pub fn convert<A, B: From<A>>(event: watcher::Event<A>) -> watcher::Event<B> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(o.into()),
        watcher::Event::Delete(o) => watcher::Event::Delete(o.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(o.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The metadata fields the scheduler and the watch machinery read; serde skips the rest
/// (managed fields, annotations, finalizers) without allocating them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
}

fn slim_meta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        labels: m.labels,
        owner_references: m.owner_references,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_watched_job_keeps_what_the_scheduler_reads_and_drops_the_rest() {
        let object = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "r-a-1", "namespace": "dev", "uid": "u1", "resourceVersion": "42",
                "labels": {"datajump.io/task": "a"},
                "annotations": {"big": "x".repeat(1000)},
                "ownerReferences": [{"apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
                    "name": "r", "uid": "run-uid", "controller": true}],
                "creationTimestamp": "2026-12-01T00:00:00Z",
                "managedFields": [{"manager": "m", "operation": "Update", "fieldsV1": {"f:a": {}}}]
            },
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"succeeded": 1, "completionTime": "2026-12-01T00:01:00Z"}
        });
        let job: Job = serde_json::from_value::<WatchedJob>(object).unwrap().into();
        assert_eq!(job.metadata.name.as_deref(), Some("r-a-1"));
        assert_eq!(job.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(
            job.metadata.owner_references.as_ref().unwrap()[0].uid,
            "run-uid"
        );
        assert_eq!(
            job.metadata.labels.as_ref().unwrap()["datajump.io/task"],
            "a"
        );
        assert!(job.metadata.creation_timestamp.is_some());
        assert_eq!(job.status.as_ref().unwrap().succeeded, Some(1));
        assert!(job.spec.is_none());
        assert!(job.metadata.managed_fields.is_none());
        assert!(job.metadata.annotations.is_none());
    }

    #[test]
    fn a_watched_pod_keeps_its_status_and_deletion_mark() {
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "dev", "deletionTimestamp": "2026-12-01T00:00:00Z",
                         "labels": {"batch.kubernetes.io/job-name": "r-a-1"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "c", "image": "i",
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}
        });
        let pod: Pod = serde_json::from_value::<WatchedPod>(object).unwrap().into();
        assert!(pod.metadata.deletion_timestamp.is_some());
        let status = pod.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let terminated = status.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(terminated.exit_code, 137);
    }

    #[test]
    fn events_convert_variant_for_variant() {
        let job = |name: &str| WatchedJob {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: None,
        };
        let name = |e: &watcher::Event<Job>| match e {
            watcher::Event::Apply(j) => format!("apply {}", j.metadata.name.clone().unwrap()),
            watcher::Event::Delete(j) => format!("delete {}", j.metadata.name.clone().unwrap()),
            watcher::Event::InitApply(j) => format!("init {}", j.metadata.name.clone().unwrap()),
            watcher::Event::Init => "init".into(),
            watcher::Event::InitDone => "done".into(),
        };
        let events = [
            watcher::Event::Init,
            watcher::Event::InitApply(job("a")),
            watcher::Event::InitDone,
            watcher::Event::Apply(job("b")),
            watcher::Event::Delete(job("c")),
        ];
        let names: Vec<String> = events.into_iter().map(|e| name(&convert(e))).collect();
        assert_eq!(names, ["init", "init a", "done", "apply b", "delete c"]);
    }
}

//! [`KubeCluster`]: the reconcilers' [`Cluster`] over the controller's caches (reflector
//! stores and the Job index) and the API server. Creates and status writes carry one field
//! manager; a create the API server refuses for good is an answer for the run
//! ([`Created::Rejected`]), not an error to retry.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;

use crate::archive::{LogArchive, LogKey};
use crate::job_index::JobIndex;
use crate::jobs::{LABEL_JOB_NAME, TASK_CONTAINER, pod_finished};
use crate::plan::{EventType, ObservedJob};
use crate::reconcile::{ArchiveFailure, Archived, Cluster, ClusterError, Created};
use datajump_api::{Workflow, WorkflowRun, WorkflowRunStatus, WorkflowStatus};

/// Field manager of every write (server-side apply and creates).
pub const FIELD_MANAGER: &str = "datajump-scheduler";

/// [`Cluster`] over reflector caches and the API server.
pub struct KubeCluster {
    pub(super) client: Client,
    pub(super) workflows: Store<Workflow>,
    pub(super) runs: Store<WorkflowRun>,
    pub(super) jobs: Arc<JobIndex>,
    pub(super) recorder: Recorder,
    /// Where finished pods' logs go, when the log archive is on.
    pub(super) archive: Option<Arc<LogArchive>>,
}

/// Whether a pod's task container ran (and so has a log): it terminated, now or before.
fn task_container_ran(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.name == TASK_CONTAINER)
        .any(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some()
                || c.last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_some()
        })
}

fn cluster_error(
    operation: &'static str,
    kind: &'static str,
    ns: &str,
    name: &str,
    e: kube::Error,
) -> ClusterError {
    ClusterError {
        operation,
        kind,
        namespace: ns.into(),
        name: name.into(),
        message: e.to_string(),
    }
}

pub(super) fn is_status(e: &kube::Error, pred: fn(&kube::core::Status) -> bool) -> bool {
    matches!(e, kube::Error::Api(s) if pred(s))
}

impl KubeCluster {
    async fn create<K>(&self, obj: K, kind: &'static str) -> Result<Created, ClusterError>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&pp, &obj).await {
            Ok(_) => Ok(Created::New),
            Err(e) if is_status(&e, |s| s.is_already_exists()) => Ok(Created::AlreadyExists),
            // Bad request, forbidden (admission, quota) and invalid: the same object would be
            // refused again, so retrying the reconcile cannot help; the caller records it.
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => {
                Ok(Created::Rejected { message: s.message })
            }
            Err(e) => Err(cluster_error("create", kind, &ns, &name, e)),
        }
    }

    /// Deletes an object; `params` say how its dependents go: in the background (the object
    /// goes at once, the garbage collector deletes the pods, or a run's Jobs, after) or in the
    /// foreground (the object stays until they are gone).
    async fn delete<K>(
        &self,
        ns: &str,
        name: &str,
        kind: &'static str,
        params: &DeleteParams,
    ) -> Result<(), ClusterError>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        match api.delete(name, params).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, |s| s.is_not_found()) => Ok(()),
            Err(e) => Err(cluster_error("delete", kind, ns, name, e)),
        }
    }

    async fn apply_status<K, S>(
        &self,
        obj: &K,
        status: &S,
        kind: &'static str,
    ) -> Result<(), ClusterError>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        S: Serialize,
    {
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map(|_| ())
        .map_err(|e| cluster_error("patch status", kind, &ns, &name, e))
    }
}

impl Cluster for KubeCluster {
    fn workflow(&self, namespace: &str, name: &str) -> Option<Arc<Workflow>> {
        self.workflows.get(&ObjectRef::new(name).within(namespace))
    }

    fn runs_of(&self, namespace: &str, workflow: &str) -> Vec<Arc<WorkflowRun>> {
        self.runs.state_filter(|r| {
            r.metadata.namespace.as_deref() == Some(namespace) && r.spec.workflow_name == workflow
        })
    }

    fn jobs_of(&self, run: &WorkflowRun) -> Vec<ObservedJob> {
        run.metadata
            .uid
            .as_deref()
            .map(|uid| self.jobs.jobs_of(uid))
            .unwrap_or_default()
    }

    fn job_cached(&self, namespace: &str, name: &str) -> bool {
        self.jobs.contains(namespace, name)
    }

    fn running_tasks(&self) -> usize {
        self.jobs.active()
    }

    fn running_in_pool(&self, pool: &str) -> usize {
        self.jobs.active_in(pool)
    }

    async fn create_run(&self, run: WorkflowRun) -> Result<Created, ClusterError> {
        let (ns, name) = (run.namespace().unwrap_or_default(), run.name_any());
        match self.create(run, "WorkflowRun").await? {
            // A refused run is the workflow's problem, reported through its reconcile error.
            Created::Rejected { message } => Err(ClusterError {
                operation: "create",
                kind: "WorkflowRun",
                namespace: ns,
                name,
                message,
            }),
            created => Ok(created),
        }
    }

    async fn delete_run(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        self.delete::<WorkflowRun>(namespace, name, "WorkflowRun", &DeleteParams::background())
            .await
    }

    async fn patch_run_status(
        &self,
        run: &WorkflowRun,
        status: &WorkflowRunStatus,
    ) -> Result<(), ClusterError> {
        self.apply_status(run, status, "WorkflowRun").await
    }

    async fn patch_workflow_status(
        &self,
        wf: &Workflow,
        status: &WorkflowStatus,
    ) -> Result<(), ClusterError> {
        self.apply_status(wf, status, "Workflow").await
    }

    async fn create_job(&self, job: Job) -> Result<Created, ClusterError> {
        self.create(job, "Job").await
    }

    async fn delete_job(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        self.delete::<Job>(namespace, name, "Job", &DeleteParams::background())
            .await
    }

    async fn terminate_job(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        self.delete::<Job>(namespace, name, "Job", &DeleteParams::foreground())
            .await
    }

    async fn kill_pods(&self, namespace: &str, job: &str) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let selector = ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job}"));
        let pods = api
            .list(&selector)
            .await
            .map_err(|e| cluster_error("list the pods of", "Job", namespace, job, e))?;
        let running = pods
            .items
            .iter()
            .filter(|p| !pod_finished(p) && p.metadata.deletion_timestamp.is_none());
        for pod in running {
            let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_ref());
            if on_node.is_none() {
                // Never started, so nothing to archive: the Job goes, and the pod with it.
                return self.delete_job(namespace, job).await;
            }
            // The smallest deadline there is: the kubelet stops the pod at its next look,
            // with the pod's grace period, and reports it Failed, `DeadlineExceeded`.
            let name = pod.name_any();
            let cut = serde_json::json!({"spec": {"activeDeadlineSeconds": 1}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&cut))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(cluster_error("stop", "Pod", namespace, &name, e)),
            }
        }
        Ok(())
    }

    async fn delete_finished_pods(&self, namespace: &str, job: &str) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        // The Job is finished, so its controller creates no pod any more: every pod of it is
        // a finished one.
        let selector = ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job}"));
        api.delete_collection(&DeleteParams::background(), &selector)
            .await
            .map(drop)
            .map_err(|e| cluster_error("delete the pods of", "Job", namespace, job, e))
    }

    async fn archive_pod_log(
        &self,
        namespace: &str,
        job: &str,
        key: &LogKey,
    ) -> Result<Archived, ArchiveFailure> {
        let Some(archive) = &self.archive else {
            return Err(ArchiveFailure(
                "the scheduler runs without a log archive".into(),
            ));
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let selector = ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job}"));
        let pods = api
            .list(&selector)
            .await
            .map_err(|e| ArchiveFailure(format!("listing the pods of Job {job}: {e}")))?;
        // The newest finished pod that ran the task decided the attempt; a disrupted pod the
        // Job replaced holds only the start of it.
        let Some(pod) = pods
            .items
            .iter()
            .filter(|p| pod_finished(p) && task_container_ran(p))
            .max_by_key(|p| p.metadata.creation_timestamp.clone())
        else {
            return Ok(Archived::NoLog);
        };
        let name = pod.name_any();
        let params = LogParams {
            container: Some(TASK_CONTAINER.into()),
            ..LogParams::default()
        };
        let log = api
            .log_stream(&name, &params)
            .await
            .map_err(|e| ArchiveFailure(format!("reading the log of pod {name}: {e}")))?;
        let bytes = archive
            .store(key, Box::pin(log))
            .await
            .map_err(|e| ArchiveFailure(format!("pod {name}: {e}")))?;
        Ok(Archived::Stored {
            bytes,
            url: archive.url(key),
        })
    }

    async fn publish_event(
        &self,
        run: &WorkflowRun,
        type_: EventType,
        reason: &'static str,
        message: &str,
    ) {
        let event = Event {
            type_: match type_ {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: reason.into(),
            // The Events API caps notes at 1 kB.
            note: Some(message.chars().take(1000).collect()),
            action: "Schedule".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &run.object_ref(&())).await {
            tracing::warn!(run = %run.name_any(), error = %e, "could not publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The API edges against kube's mock client (tower-test): request paths, verbs, field
    //! manager, and the mapping of 409 AlreadyExists and of refusals.
    use super::*;
    use crate::controller::mock::{mock_client, next, ok, status};
    use kube::api::ObjectMeta;
    use kube::runtime::events::Reporter;

    fn cluster(client: Client) -> KubeCluster {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        };
        KubeCluster {
            client: client.clone(),
            workflows: kube::runtime::reflector::store().0,
            runs: kube::runtime::reflector::store().0,
            jobs: Arc::new(JobIndex::default()),
            recorder: Recorder::new(client, reporter),
            archive: None,
        }
    }

    fn job(name: &str) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("data".into()),
                ..ObjectMeta::default()
            },
            ..Job::default()
        }
    }

    #[tokio::test]
    async fn a_duplicate_create_is_already_exists_not_an_error() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (method, uri, body, send) = next(&mut handle).await;
            assert_eq!(method, "POST");
            assert!(
                uri.starts_with("/apis/batch/v1/namespaces/data/jobs?"),
                "{uri}"
            );
            assert!(uri.contains("fieldManager=datajump-scheduler"), "{uri}");
            assert_eq!(body["metadata"]["name"], "run-a-1");
            send.send_response(ok(body));
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(status(409, "AlreadyExists"));
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(status(403, "Forbidden"));
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(status(503, "ServiceUnavailable"));
        });
        let c = cluster(client);
        assert_eq!(
            c.create_job(job("run-a-1")).await.expect("created"),
            Created::New
        );
        assert_eq!(
            c.create_job(job("run-a-1")).await.expect("exists"),
            Created::AlreadyExists
        );
        // Refused for good (admission, quota): an answer for the run, not a reconcile error.
        assert_eq!(
            c.create_job(job("run-a-1")).await.expect("refused"),
            Created::Rejected {
                message: "Forbidden".into()
            }
        );
        let err = c.create_job(job("run-a-1")).await.expect_err("unavailable");
        assert_eq!(
            (err.operation, err.kind, err.name.as_str()),
            ("create", "Job", "run-a-1")
        );
        server.await.expect("mock server");
    }

    #[tokio::test]
    async fn killing_pods_cuts_running_pods_deadlines_and_deletes_a_job_whose_pod_has_no_node() {
        let pod = |name: &str, phase: &str, node: Option<&str>| {
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "data"},
                "spec": {"containers": [{"name": "task", "image": "x"}], "nodeName": node},
                "status": {"phase": phase}})
        };
        let list = |items: Vec<serde_json::Value>| serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items});
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            // A running pod and a finished one (an earlier, disrupted pod): only the running
            // one is patched, with a merge patch of its deadline.
            let (method, uri, _, send) = next(&mut handle).await;
            assert_eq!(method, "GET");
            assert!(uri.starts_with("/api/v1/namespaces/data/pods?"), "{uri}");
            assert!(uri.contains("job-name%3Drun-a-1"), "{uri}");
            send.send_response(ok(list(vec![
                pod("run-a-1-x", "Running", Some("node-1")),
                pod("run-a-1-y", "Failed", Some("node-1")),
            ])));
            let (method, uri, body, send) = next(&mut handle).await;
            assert_eq!(
                (method.as_str(), uri.split('?').next()),
                ("PATCH", Some("/api/v1/namespaces/data/pods/run-a-1-x"))
            );
            assert_eq!(
                body,
                serde_json::json!({"spec": {"activeDeadlineSeconds": 1}})
            );
            send.send_response(ok(pod("run-a-1-x", "Running", Some("node-1"))));
            // A pod no node took: nothing to keep, the Job goes.
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(ok(list(vec![pod("run-a-1-z", "Pending", None)])));
            let (method, uri, _, send) = next(&mut handle).await;
            assert_eq!(method, "DELETE");
            assert!(
                uri.starts_with("/apis/batch/v1/namespaces/data/jobs/run-a-1"),
                "{uri}"
            );
            send.send_response(ok(
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ));
        });
        let c = cluster(client);
        c.kill_pods("data", "run-a-1").await.expect("cut");
        c.kill_pods("data", "run-a-1").await.expect("deleted");
        server.await.expect("mock server");
    }

    #[tokio::test]
    async fn a_terminated_job_is_deleted_in_the_foreground_other_stops_in_the_background() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let mut policies = Vec::new();
            for _ in 0..3 {
                let (method, uri, body, send) = next(&mut handle).await;
                assert_eq!(method, "DELETE");
                assert!(
                    uri.starts_with("/apis/batch/v1/namespaces/data/jobs/run-a-1"),
                    "{uri}"
                );
                policies.push(body["propagationPolicy"].as_str().map(str::to_string));
                send.send_response(if policies.len() == 3 {
                    status(404, "NotFound")
                } else {
                    ok(serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
                });
            }
            policies
        });
        let c = cluster(client);
        c.terminate_job("data", "run-a-1").await.expect("deleted");
        c.delete_job("data", "run-a-1").await.expect("deleted");
        // Gone already (a restart asking again): done, not an error.
        c.terminate_job("data", "run-a-1")
            .await
            .expect("not found is done");
        let policies = server.await.expect("mock server");
        assert_eq!(
            policies,
            [Some("Foreground"), Some("Background"), Some("Foreground")]
                .map(|p| p.map(String::from))
        );
    }

    #[tokio::test]
    async fn run_status_goes_through_the_status_subresource_with_server_side_apply() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (method, uri, body, send) = next(&mut handle).await;
            assert_eq!(method, "PATCH");
            assert!(
                uri.starts_with(
                    "/apis/datajump.io/v1alpha1/namespaces/data/workflowruns/etl-1/status?"
                ),
                "{uri}"
            );
            assert!(
                uri.contains("fieldManager=datajump-scheduler") && uri.contains("force=true"),
                "{uri}"
            );
            assert_eq!(body["kind"], "WorkflowRun");
            assert_eq!(body["status"]["phase"], "Running");
            let mut echo = body.clone();
            echo["metadata"] = serde_json::json!({"name": "etl-1", "namespace": "data"});
            echo["spec"] = serde_json::json!({"workflowName": "etl"});
            send.send_response(ok(echo));
        });
        let mut run = WorkflowRun::new(
            "etl-1",
            datajump_api::WorkflowRunSpec {
                workflow_name: "etl".into(),
                scheduled_time: None,
                ..Default::default()
            },
        );
        run.metadata.namespace = Some("data".into());
        let status = WorkflowRunStatus {
            phase: datajump_api::RunPhase::Running,
            ..Default::default()
        };
        cluster(client)
            .patch_run_status(&run, &status)
            .await
            .expect("patched");
        server.await.expect("mock server");
    }
}

//! Pod logs, which the API server reads from the node's kubelet: the pods of a Job, one pod's
//! log whole or followed line by line, and the log of a one-off Job's newest pod (where the
//! backup and restore scripts print their result).

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, Client};

/// Pods of one Job, oldest first.
pub(crate) async fn job_pods(
    client: &Client,
    namespace: &str,
    job: &str,
) -> anyhow::Result<Vec<Pod>> {
    let selector = format!("job-name={job}");
    let mut pods: Vec<Pod> = super::list_labelled(client, namespace, &selector).await?;
    pods.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(pods)
}

/// The log of the Job's newest pod.
pub(crate) async fn job_log(
    client: &Client,
    namespace: &str,
    job_name: &str,
) -> anyhow::Result<String> {
    let pods = job_pods(client, namespace, job_name).await?;
    let pod = pods
        .last()
        .ok_or_else(|| anyhow::anyhow!("Job {job_name} has no pods"))?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod_log(client, namespace, &name, job_name).await
}

/// One pod's log as it stands; `job` names the pod's Job in errors.
pub(crate) async fn pod_log(
    client: &Client,
    namespace: &str,
    pod: &str,
    job: &str,
) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.logs(pod, &LogParams::default())
        .await
        .map_err(|e| log_error(pod, job, e))
}

/// Streams one pod's log, calling `on_line` with each line, until the pod's container ends.
/// A container still being created is waited for (the kubelet has no log to stream yet); one
/// that cannot start (its image cannot be pulled, say) is an error naming why.
pub(crate) async fn follow(
    client: &Client,
    namespace: &str,
    pod: &str,
    job: &str,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    wait_for_container(&pods, pod, job).await?;
    let params = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods
        .log_stream(pod, &params)
        .await
        .map_err(|e| log_error(pod, job, e))?
        .lines();
    while let Some(line) = lines.try_next().await? {
        on_line(&line);
    }
    Ok(())
}

/// Waiting reasons of a container that will not start by itself.
const CANNOT_START: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Waits until the pod's first container has started (running or already ended).
async fn wait_for_container(pods: &Api<Pod>, pod: &str, job: &str) -> anyhow::Result<()> {
    loop {
        let current = pods.get(pod).await?;
        let state = current
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.clone());
        match state {
            Some(s) if s.running.is_some() || s.terminated.is_some() => return Ok(()),
            Some(s) => {
                if let Some(reason) = s.waiting.and_then(|w| w.reason)
                    && CANNOT_START.contains(&reason.as_str())
                {
                    anyhow::bail!(
                        "the container of pod {pod} (Job {job}) cannot start: {reason}; see `kubectl describe pod {pod}`"
                    );
                }
            }
            None => {}
        }
        if current
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed")
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Why a task's Job has no pod to read a log from: the scheduler deleted the finished pod after
/// `finishedPodRetentionSeconds` (the Job stays as the record), or the Job itself is gone (its
/// run's history was trimmed, or it was deleted by hand).
pub(crate) async fn why_no_pod(
    client: &Client,
    namespace: &str,
    task: &str,
    job: &str,
) -> anyhow::Result<String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    Ok(match jobs.get_opt(job).await? {
        Some(_) => format!(
            "task {task}: the pod of Job {job} is gone, and its log with it: the scheduler deletes a finished task's pod after scheduler.executor.finishedPodRetentionSeconds (the Job stays as the record)"
        ),
        None => format!(
            "task {task}: Job {job} no longer exists (deleted with its pods), so its log is gone"
        ),
    })
}

/// When reading a log fails, the API server's message (not the whole error structure) says why.
fn log_error(pod: &str, job: &str, e: kube::Error) -> anyhow::Error {
    let reason = match &e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    };
    anyhow::anyhow!(
        "cannot read the log of pod {pod} (Job {job}) from the node's kubelet: {reason}"
    )
}

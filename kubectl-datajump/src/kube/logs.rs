//! Pod logs, which the API server reads from the node's kubelet: the pods of a Job, one pod's
//! log whole or followed line by line, and the log of a one-off Job's newest pod (where the
//! backup and restore scripts print their result).

use futures::{AsyncBufReadExt, TryStreamExt};
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
pub(crate) async fn follow(
    client: &Client,
    namespace: &str,
    pod: &str,
    job: &str,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
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

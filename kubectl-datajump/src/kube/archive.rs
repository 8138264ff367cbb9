//! Task logs from the scheduler's log archive, for a task whose pod is gone: the scheduler
//! serves them on its http port (streamed from S3), reached through the API server's service
//! proxy, so a reader needs no S3 credentials, only `get` on `services/proxy` of the scheduler
//! Service (the chart's `<fullname>-scheduler-log-reader` Role), and it works wherever kubectl
//! does.

use futures::AsyncBufRead;
use k8s_openapi::api::core::v1::Service;
use kube::Client;

/// Labels of the release's scheduler Service.
const SCHEDULER_SERVICE: &str =
    "app.kubernetes.io/component=scheduler,app.kubernetes.io/part-of=datajump";

/// What the archive answered.
pub(crate) enum ArchivedLog {
    /// The log, as a stream.
    Found(Box<dyn AsyncBufRead + Unpin + Send>),
    /// Not there; the scheduler's (or the proxy's) words why.
    Missing(String),
}

/// The API server path of the archived log of `attempt` of `task` in `run` of `workflow`,
/// through the proxy of scheduler Service `service` in `ns`.
pub(crate) fn proxy_path(
    ns: &str,
    service: &str,
    workflow: &str,
    run: &str,
    task: &str,
    attempt: u32,
) -> String {
    format!(
        "/api/v1/namespaces/{ns}/services/http:{service}:http/proxy/archive/logs/{ns}/{workflow}/{run}/{task}/{attempt}"
    )
}

/// Opens the archived log of `attempt` of `task` in `run` of `workflow` in `ns`.
pub(crate) async fn open(
    client: &Client,
    ns: &str,
    workflow: &str,
    run: &str,
    task: &str,
    attempt: u32,
) -> anyhow::Result<ArchivedLog> {
    let services: Vec<Service> = super::list_labelled(client, ns, SCHEDULER_SERVICE).await?;
    let Some(service) = services.first().and_then(|s| s.metadata.name.clone()) else {
        return Ok(ArchivedLog::Missing(format!(
            "no DataJump scheduler Service in namespace {ns} to ask"
        )));
    };
    let path = proxy_path(ns, &service, workflow, run, task, attempt);
    let request = http::Request::get(&path).body(Vec::new())?;
    match client.request_stream(request).await {
        Ok(log) => Ok(ArchivedLog::Found(Box::new(Box::pin(log)))),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            Ok(ArchivedLog::Missing(status.message.trim().to_string()))
        }
        Err(kube::Error::Api(status)) => anyhow::bail!(
            "the scheduler (Service {service}) answered {}: {}",
            status.code,
            status.message.trim()
        ),
        Err(e) => anyhow::bail!("reaching the scheduler (Service {service}): {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_asked_of_the_schedulers_http_port_through_the_service_proxy() {
        assert_eq!(
            proxy_path("data", "dj-datajump-scheduler", "etl", "etl-1", "load", 2),
            "/api/v1/namespaces/data/services/http:dj-datajump-scheduler:http/proxy/archive/logs/data/etl/etl-1/load/2"
        );
    }
}

//! The namespace's pods: each pod's object (its status: phase, conditions, container states,
//! restarts) and its containers' recent logs — the init containers' too, and the previous
//! container's when one restarted (the log of the crash is the one that matters). Logs are read
//! a few at once, as the API server relays each from the node's kubelet.

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, LogParams};
use serde_json::Value;

use super::bundle::{Bundle, paths};
use super::collect::{Notes, Request, list_each, name_of, qualified};
use super::redact::{self, SecretNames, Term};

/// Logs read at once: enough to hide the kubelets' latency, few enough not to load them.
const LOGS_AT_ONCE: usize = 6;

/// No container's log in the bundle is longer than this, whatever `--tail` says.
const LOG_BYTES_CAP: i64 = 8 * 1024 * 1024;

/// How much of each log to read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLimits {
    pub since_seconds: i64,
    pub tail_lines: i64,
}

fn pods() -> ApiResource {
    ApiResource::erase::<Pod>(&())
}

/// The pods of `ns`, redacted (their `env` values of credential names above all); the values
/// redacted are returned as terms to search for in every file (a task that prints its own
/// `DB_PASSWORD`).
pub(crate) async fn read(
    client: &Client,
    notes: &mut Notes,
    ns: &str,
    names: &SecretNames,
) -> anyhow::Result<(Vec<Value>, Vec<Term>)> {
    let mut found = Vec::new();
    let mut terms = Vec::new();
    list_each(client, notes, &pods(), Some(ns), |mut pod| {
        let name = name_of(&pod).to_string();
        for value in redact::redact_fields(&mut pod, names) {
            terms.push(Term {
                value: value.into_bytes(),
                label: format!("a credential in the spec of pod {name}"),
            });
        }
        found.push(pod);
        Ok(())
    })
    .await?;
    Ok((found, terms))
}

/// Writes each pod's object.
pub(crate) fn write(bundle: &mut Bundle, ns: &str, pods: &[Value]) -> anyhow::Result<()> {
    let resource = qualified(&self::pods());
    for pod in pods {
        bundle.add_yaml(&paths::object(Some(ns), &resource, name_of(pod)), pod)?;
    }
    Ok(())
}

/// One log to read.
#[derive(Debug, Clone)]
struct LogRequest {
    pod: String,
    container: String,
    previous: bool,
}

/// The logs a pod has: each container's (init containers first), and the previous one's of
/// each container that restarted.
fn log_requests(pod: &Value) -> Vec<LogRequest> {
    let name = name_of(pod);
    let restarts = |container: &str| {
        ["initContainerStatuses", "containerStatuses"]
            .iter()
            .filter_map(|list| pod.pointer(&format!("/status/{list}"))?.as_array())
            .flatten()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(container))
            .and_then(|s| s.get("restartCount")?.as_i64())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        let containers = pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for container in containers.filter_map(|c| c.get("name")?.as_str()) {
            out.push(LogRequest {
                pod: name.to_string(),
                container: container.to_string(),
                previous: false,
            });
            if restarts(container) > 0 {
                out.push(LogRequest {
                    pod: name.to_string(),
                    container: container.to_string(),
                    previous: true,
                });
            }
        }
    }
    out
}

/// Reads and writes the logs of every pod; how many were written.
pub(crate) async fn write_logs(
    client: &Client,
    notes: &mut Notes,
    bundle: &mut Bundle,
    ns: &str,
    pods: &[Value],
    limits: LogLimits,
) -> anyhow::Result<usize> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let requests: Vec<LogRequest> = pods.iter().flat_map(log_requests).collect();
    let mut fetched = stream::iter(requests)
        .map(|r| {
            let api = api.clone();
            async move {
                let params = LogParams {
                    container: Some(r.container.clone()),
                    previous: r.previous,
                    since_seconds: Some(limits.since_seconds),
                    tail_lines: Some(limits.tail_lines),
                    limit_bytes: Some(LOG_BYTES_CAP),
                    timestamps: true,
                    ..LogParams::default()
                };
                let log = api.logs(&r.pod, &params).await;
                (r, log)
            }
        })
        .buffered(LOGS_AT_ONCE);
    let mut written = 0;
    while let Some((r, log)) = fetched.next().await {
        match log {
            Ok(text) => {
                bundle.add_text(&paths::log(&r.pod, &r.container, r.previous), &text)?;
                written += 1;
            }
            Err(e) => {
                let request = Request::new("get", "pods/log")
                    .namespaced(ns)
                    .named(&format!(
                        "{} ({}{})",
                        r.pod,
                        r.container,
                        if r.previous { ", previous" } else { "" }
                    ));
                notes.file(&request, e)?;
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_containers_first_and_the_previous_log_after_a_restart() {
        let pod = json!({
            "metadata": {"name": "web-1"},
            "spec": {"initContainers": [{"name": "wait"}], "containers": [{"name": "web"}, {"name": "proxy"}]},
            "status": {"containerStatuses": [
                {"name": "web", "restartCount": 3}, {"name": "proxy", "restartCount": 0}
            ]}
        });
        let shown: Vec<String> = log_requests(&pod)
            .iter()
            .map(|r| paths::log(&r.pod, &r.container, r.previous))
            .collect();
        assert_eq!(
            shown,
            [
                "logs/web-1/wait.log",
                "logs/web-1/web.log",
                "logs/web-1/web.previous.log",
                "logs/web-1/proxy.log"
            ]
        );
    }
}

//! The namespace's pods: each pod's object (its status: phase, conditions, container states,
//! restarts) and its containers' recent logs — the init containers' too, and the previous
//! container's when one restarted (the log of the crash is the one that matters). Logs are read
//! a few at once, as the API server relays each from the node's kubelet.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, LogParams};
use serde_json::Value;

use super::collect::{Notes, Request, list_each, name_of, qualified};
use super::{Part, Sink};
use crate::redact::{self, SecretNames, Term};

/// Logs read at once: enough to hide the kubelets' latency, few enough not to load them.
const LOGS_AT_ONCE: usize = 8;

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
pub(crate) fn write(sink: &mut impl Sink, ns: &str, pods: &[Value]) -> anyhow::Result<()> {
    let resource = qualified(&self::pods());
    for pod in pods {
        sink.put(Part::Object {
            namespace: Some(ns),
            resource: &resource,
            name: name_of(pod),
            value: pod,
        })?;
    }
    Ok(())
}

/// One log to read.
#[derive(Debug, Clone)]
struct LogRequest {
    pod: String,
    /// The node the pod runs on (none: not scheduled yet).
    node: Option<String>,
    container: String,
    previous: bool,
}

impl LogRequest {
    /// `pod (container, previous)`, as the notes name it.
    fn describe(&self) -> String {
        let previous = if self.previous { ", previous" } else { "" };
        format!("{} ({}{previous})", self.pod, self.container)
    }
}

/// How long one log may take: a kubelet that does not answer is not waited for as long as the
/// API server would.
const LOG_WAIT: Duration = Duration::from_secs(20);

/// What became of one log.
enum Fetched {
    Log(String),
    Failed(kube::Error),
    /// Not asked: the node's kubelet did not answer an earlier request (why).
    NodeDown(String, String),
    TimedOut,
}

/// Whether a failed log request says the node's kubelet cannot be reached (the API server
/// relays the dial error), so that its other pods' logs are not asked for one by one.
fn kubelet_unreachable(err: &kube::Error) -> bool {
    const DIAL: [&str; 5] = [
        "dial tcp",
        "connection refused",
        "no route to host",
        "i/o timeout",
        "no such host",
    ];
    matches!(err, kube::Error::Api(s) if s.code >= 500 && DIAL.iter().any(|d| s.message.contains(d)))
}

/// The requests, one node after another in turn, so that the first requests in flight reach
/// different kubelets and an unreachable one is known before its other pods' turn.
fn interleave_by_node(requests: Vec<LogRequest>) -> Vec<LogRequest> {
    let mut by_node: BTreeMap<Option<String>, VecDeque<LogRequest>> = BTreeMap::new();
    for r in requests {
        by_node.entry(r.node.clone()).or_default().push_back(r);
    }
    let mut out = Vec::new();
    while !by_node.is_empty() {
        by_node.retain(|_, queue| {
            out.extend(queue.pop_front());
            !queue.is_empty()
        });
    }
    out
}

/// The logs a pod has: each container's (init containers first), and the previous one's of
/// each container that restarted.
fn log_requests(pod: &Value) -> Vec<LogRequest> {
    let name = name_of(pod);
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .map(str::to_string);
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
            for previous in [false, true] {
                if !previous || restarts(container) > 0 {
                    out.push(LogRequest {
                        pod: name.to_string(),
                        node: node.clone(),
                        container: container.to_string(),
                        previous,
                    });
                }
            }
        }
    }
    out
}

/// Reads and writes the logs of every pod; how many were written. A node whose kubelet does
/// not answer costs one request, not one per container.
pub(crate) async fn write_logs(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
    pods: &[Value],
    limits: LogLimits,
) -> anyhow::Result<usize> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let requests = interleave_by_node(pods.iter().flat_map(log_requests).collect());
    let down: Mutex<BTreeMap<String, String>> = Mutex::default();
    let down = &down;
    let mut fetched = stream::iter(requests)
        .map(|r| {
            let api = api.clone();
            async move {
                let known_down = r.node.as_ref().and_then(|n| {
                    let down = down.lock().unwrap_or_else(|e| e.into_inner());
                    down.get(n).map(|why| (n.clone(), why.clone()))
                });
                if let Some((node, why)) = known_down {
                    return (r, Fetched::NodeDown(node, why));
                }
                let params = LogParams {
                    container: Some(r.container.clone()),
                    previous: r.previous,
                    since_seconds: Some(limits.since_seconds),
                    tail_lines: Some(limits.tail_lines),
                    limit_bytes: Some(LOG_BYTES_CAP),
                    timestamps: true,
                    ..LogParams::default()
                };
                let fetched = match tokio::time::timeout(LOG_WAIT, api.logs(&r.pod, &params)).await
                {
                    Ok(Ok(text)) => Fetched::Log(text),
                    Ok(Err(e)) => Fetched::Failed(e),
                    Err(_) => Fetched::TimedOut,
                };
                let unreachable = match &fetched {
                    Fetched::Failed(e) if kubelet_unreachable(e) => Some(e.to_string()),
                    Fetched::TimedOut => Some(format!("no answer within {}s", LOG_WAIT.as_secs())),
                    _ => None,
                };
                if let (Some(node), Some(why)) = (&r.node, unreachable) {
                    let mut down = down.lock().unwrap_or_else(|e| e.into_inner());
                    down.entry(node.clone()).or_insert(why);
                }
                (r, fetched)
            }
        })
        .buffered(LOGS_AT_ONCE);
    let mut written = 0;
    while let Some((r, fetched)) = fetched.next().await {
        let what = || format!("get pods/log {} in {ns}", r.describe());
        match fetched {
            Fetched::Log(text) => {
                sink.put(Part::Log {
                    pod: &r.pod,
                    container: &r.container,
                    previous: r.previous,
                    text: &text,
                })?;
                written += 1;
            }
            Fetched::Failed(e) => {
                let request = Request::new("get", "pods/log")
                    .namespaced(ns)
                    .named(&r.describe());
                notes.file(&request, e)?;
            }
            Fetched::NodeDown(node, why) => notes.unavailable(
                what(),
                format!("not asked: the kubelet of node {node} did not answer an earlier request ({why})"),
            ),
            Fetched::TimedOut => notes.unavailable(
                what(),
                format!("no answer within {}s", LOG_WAIT.as_secs()),
            ),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_take_turns_by_node_and_dial_errors_mark_a_kubelet_unreachable() {
        let on = |pod: &str, node: &str| LogRequest {
            pod: pod.into(),
            node: Some(node.into()),
            container: "c".into(),
            previous: false,
        };
        let order: Vec<String> = interleave_by_node(vec![
            on("a1", "a"),
            on("a2", "a"),
            on("a3", "a"),
            on("b1", "b"),
        ])
        .into_iter()
        .map(|r| r.pod)
        .collect();
        assert_eq!(order, ["a1", "b1", "a2", "a3"]);
        let status = crate::kube::report::collect::api_error;
        assert!(kubelet_unreachable(&status(
            500,
            "Get \"https://n1:10250/containerLogs/x\": dial tcp: lookup n1: no such host"
        )));
        assert!(!kubelet_unreachable(&status(
            400,
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        )));
    }

    #[test]
    fn init_containers_first_and_the_previous_log_after_a_restart() {
        let pod = json!({
            "metadata": {"name": "web-1"},
            "spec": {"initContainers": [{"name": "wait"}], "containers": [{"name": "web"}, {"name": "proxy"}]},
            "status": {"containerStatuses": [
                {"name": "web", "restartCount": 3}, {"name": "proxy", "restartCount": 0}
            ]}
        });
        let shown: Vec<String> = log_requests(&pod).iter().map(|r| r.describe()).collect();
        assert_eq!(
            shown,
            [
                "web-1 (wait)",
                "web-1 (web)",
                "web-1 (web, previous)",
                "web-1 (proxy)"
            ]
        );
    }
}

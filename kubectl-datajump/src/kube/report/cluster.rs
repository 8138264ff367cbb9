//! The cluster around the environment: the API server's version, each node in summary (what a
//! support engineer asks first: versions, conditions, capacity, taints — not the whole
//! object), and the install preflight run again now (version, CRDs, StorageClasses,
//! IngressClass, the Secrets the values name).

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::ApiResource;
use serde_json::{Value, json};

use super::collect::{Notes, list_each};
use super::{Part, Sink};
use crate::kube::{credentials, preflight};

/// The API server's version; `None` when it could not be read (noted).
pub(crate) async fn server_version(
    client: &Client,
    notes: &mut Notes,
) -> anyhow::Result<Option<Value>> {
    match client.apiserver_version().await {
        Ok(info) => Ok(Some(json!({
            "gitVersion": info.git_version,
            "platform": info.platform,
            "goVersion": info.go_version,
        }))),
        Err(e) => {
            notes.file(&super::collect::Request::new("get", "/version"), e)?;
            Ok(None)
        }
    }
}

/// A node as the report shows it.
pub(crate) fn node_summary(node: &Value) -> Value {
    let at = |p: &str| node.pointer(p).cloned().unwrap_or(Value::Null);
    let conditions: Vec<Value> = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            json!({
                "type": c.get("type"),
                "status": c.get("status"),
                "reason": c.get("reason"),
                "message": c.get("message"),
                "lastTransitionTime": c.get("lastTransitionTime"),
            })
        })
        .collect();
    let info = |key: &str| at(&format!("/status/nodeInfo/{key}"));
    json!({
        "name": at("/metadata/name"),
        "created": at("/metadata/creationTimestamp"),
        "labels": at("/metadata/labels"),
        "unschedulable": node.pointer("/spec/unschedulable").cloned().unwrap_or(json!(false)),
        "taints": node.pointer("/spec/taints").cloned().unwrap_or(json!([])),
        "versions": {
            "kubelet": info("kubeletVersion"),
            "containerRuntime": info("containerRuntimeVersion"),
            "osImage": info("osImage"),
            "kernel": info("kernelVersion"),
            "architecture": info("architecture"),
        },
        "conditions": conditions,
        "capacity": at("/status/capacity"),
        "allocatable": at("/status/allocatable"),
    })
}

/// Writes `nodes.yaml`; how many nodes.
pub(crate) async fn write_nodes(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
) -> anyhow::Result<usize> {
    let mut nodes = Vec::new();
    let listed = list_each(
        client,
        notes,
        &ApiResource::erase::<Node>(&()),
        None,
        |node| {
            nodes.push(node_summary(&node));
            Ok(())
        },
    )
    .await?;
    if listed {
        sink.put(Part::Nodes(&Value::Array(nodes.clone())))?;
    }
    Ok(nodes.len())
}

/// Runs install's preflight against the cluster as it is now, with the release's merged values
/// (or, without them, the checks that need none), and writes what it found.
pub(crate) async fn write_preflight(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
    values: Option<&Value>,
) -> anyhow::Result<()> {
    let empty = json!({});
    let merged = values.unwrap_or(&empty);
    let checks = preflight::plan(merged);
    let described: Vec<String> = checks.iter().map(describe).collect();
    let mut answer = json!({
        "values": if values.is_some() { "the release's (helm get values --all)" } else { "none (helm could not read the release): only the checks that need no values" },
        "checks": described,
    });
    match preflight::run(client, &checks).await {
        Ok(report) => {
            let mut failures = report.failures;
            for required in credentials::required_secrets(merged) {
                match credentials::check_required(client, ns, &required).await {
                    Ok(found) => failures.extend(found),
                    Err(e) => {
                        notes.file_any(&format!("preflight: Secret {}", required.name), e)?;
                    }
                }
            }
            answer["result"] = json!(if failures.is_empty() {
                "passed"
            } else {
                "failed"
            });
            answer["failures"] = json!(failures);
            answer["warnings"] = json!(report.warnings);
        }
        Err(e) => {
            answer["result"] = json!("could not run");
            answer["error"] = json!(format!("{e:#}"));
            notes.file_any("preflight", e)?;
        }
    }
    sink.put(Part::Preflight(&answer))
}

fn describe(check: &preflight::Check) -> String {
    match check {
        preflight::Check::Crd {
            name, component, ..
        } => format!("CRD {name} (for {component})"),
        preflight::Check::StorageClass(Some(name)) => format!("StorageClass {name}"),
        preflight::Check::StorageClass(None) => "a default StorageClass".into(),
        preflight::Check::IngressClass(name) => format!("IngressClass {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_summary_keeps_versions_conditions_capacity_and_taints_only() {
        let node = json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}, "managedFields": [{}], "annotations": {"big": "x"}},
            "spec": {"taints": [{"key": "dedicated", "value": "etl", "effect": "NoSchedule"}], "podCIDR": "10.0.0.0/24"},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": "t"}],
                "capacity": {"cpu": "4"}, "allocatable": {"cpu": "3800m"},
                "nodeInfo": {"kubeletVersion": "v1.36.2", "machineID": "m"},
                "images": [{"names": ["a"]}]
            }
        });
        let s = node_summary(&node);
        assert_eq!(s["name"], "n1");
        assert_eq!(s["versions"]["kubelet"], "v1.36.2");
        assert_eq!(s["taints"][0]["key"], "dedicated");
        assert_eq!(s["conditions"][0]["reason"], "KubeletReady");
        assert_eq!(s["allocatable"]["cpu"], "3800m");
        let text = s.to_string();
        for dropped in [
            "managedFields",
            "images",
            "machineID",
            "podCIDR",
            "lastHeartbeatTime",
            "big",
        ] {
            assert!(!text.contains(dropped), "{dropped} in {text}");
        }
    }
}

//! What `status` reads from the API server besides the workloads' rollout: the operator custom
//! resources' readiness, the scheduler's leader Lease, the newest successful backup Job and the
//! namespace's Pod Security level beside the one the release needs.

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::Value;

use super::jobs::{JobOutcome, job_outcome};

/// What the namespace enforces, what the release needs, and why it needs less than restricted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSecurityState {
    /// The namespace's `pod-security.kubernetes.io/enforce` label (none: unlabelled).
    pub enforced: Option<String>,
    /// The level the chart says the release needs.
    pub required: String,
    pub forced_by: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomResourceState {
    pub kind: String,
    pub name: String,
    pub ready: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Leader {
    pub holder: String,
    pub renewed_seconds_ago: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LastBackup {
    pub job: String,
    pub age_seconds: i64,
}

/// The operator custom resources the chart may create, by component.
pub(crate) const INFRA_KINDS: &[(&str, &str, &str, &str)] = &[
    ("mysql.oracle.com", "v2", "InnoDBCluster", "innodbclusters"),
    (
        "redis.redis.opstreelabs.in",
        "v1beta2",
        "RedisCluster",
        "redisclusters",
    ),
    ("kafka.strimzi.io", "v1", "Kafka", "kafkas"),
    (
        "elasticsearch.k8s.elastic.co",
        "v1",
        "Elasticsearch",
        "elasticsearches",
    ),
    ("minio.min.io", "v2", "Tenant", "tenants"),
];

/// Readiness of an operator CR from its status: a `Ready` condition, or the operator's own
/// health field.
pub(crate) fn cr_readiness(kind: &str, status: Option<&Value>) -> (bool, String) {
    let Some(status) = status else {
        return (false, "no status yet".into());
    };
    if let Some(conds) = status.get("conditions").and_then(Value::as_array)
        && let Some(ready) = conds
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
    {
        let ok = ready.get("status").and_then(Value::as_str) == Some("True");
        let msg = ready
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or(if ok { "Ready" } else { "not ready" });
        return (ok, msg.to_string());
    }
    let field = |p: &str| {
        status
            .pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (value, good): (Option<String>, &[&str]) = match kind {
        "InnoDBCluster" => (field("/cluster/status"), &["ONLINE"]),
        "Elasticsearch" => (field("/health"), &["green"]),
        "Tenant" => (
            field("/healthStatus").or_else(|| field("/currentState")),
            &["green", "Initialized"],
        ),
        "RedisCluster" => (field("/state"), &["Ready"]),
        _ => (field("/phase"), &["Ready", "Running"]),
    };
    match value {
        Some(v) => (good.contains(&v.as_str()), v),
        None => (false, "status not reported".into()),
    }
}

/// The operator custom resources in `ns` and their readiness; kinds whose CRD is not installed
/// are skipped.
pub(crate) async fn infrastructure(
    client: &Client,
    ns: &str,
) -> anyhow::Result<Vec<CustomResourceState>> {
    let mut out = Vec::new();
    for (group, version, kind, plural) in INFRA_KINDS {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let items = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            // The operator (and its CRD) is not installed: that component is not operator-managed.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for item in items {
            let (ready, detail) = cr_readiness(kind, item.data.get("status"));
            out.push(CustomResourceState {
                kind: kind.to_string(),
                name: item.metadata.name.unwrap_or_default(),
                ready,
                detail,
            });
        }
    }
    Ok(out)
}

/// The scheduler's leader from its Lease `<fullname>-scheduler-leader`; None when nobody holds it.
pub(crate) async fn leader(
    client: &Client,
    ns: &str,
    fullname: &str,
) -> anyhow::Result<Option<Leader>> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    let Some(lease) = api.get_opt(&format!("{fullname}-scheduler-leader")).await? else {
        return Ok(None);
    };
    let spec = lease.spec.unwrap_or_default();
    let now = Utc::now().timestamp();
    Ok(spec
        .holder_identity
        .filter(|h| !h.is_empty())
        .map(|holder| Leader {
            holder,
            renewed_seconds_ago: spec.renew_time.map(|t| now - t.0.as_second()),
        }))
}

/// The newest backup Job of `release` that succeeded, and how long ago it finished.
pub(crate) async fn last_backup(
    client: &Client,
    ns: &str,
    release: &str,
) -> anyhow::Result<Option<LastBackup>> {
    let selector =
        format!("app.kubernetes.io/instance={release},app.kubernetes.io/component=backup");
    let jobs: Vec<Job> = super::list_labelled(client, ns, &selector).await?;
    let now = Utc::now().timestamp();
    Ok(jobs
        .into_iter()
        .filter(|j| job_outcome(j) == Some(JobOutcome::Succeeded))
        .filter_map(|j| {
            let done = j.status.as_ref()?.completion_time.as_ref()?.0.as_second();
            Some(LastBackup {
                job: j.metadata.name.clone().unwrap_or_default(),
                age_seconds: now - done,
            })
        })
        .min_by_key(|b| b.age_seconds))
}

/// The live namespace label beside what the release's ConfigMap says it needs.
pub(crate) async fn pod_security(
    client: &Client,
    ns: &str,
    fullname: &str,
) -> anyhow::Result<Option<PodSecurityState>> {
    let config: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let Some(config) = config.get_opt(&format!("{fullname}-config")).await? else {
        return Ok(None);
    };
    let annotations = serde_json::to_value(config.metadata.annotations.unwrap_or_default())?;
    let Some(needed) = chart_gen::namespaces::PodSecurity::from_annotations(&annotations) else {
        return Ok(None);
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let enforced = namespaces
        .get_opt(ns)
        .await?
        .and_then(|n| n.metadata.labels)
        .and_then(|l| l.get("pod-security.kubernetes.io/enforce").cloned());
    Ok(Some(PodSecurityState {
        enforced,
        required: needed.enforce,
        forced_by: needed.forced_by,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_resource_readiness_uses_conditions_then_operator_fields() {
        let kafka = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(cr_readiness("Kafka", Some(&kafka)), (true, "Ready".into()));
        let mysql = json!({"cluster": {"status": "ONLINE_PARTIAL"}});
        assert_eq!(
            cr_readiness("InnoDBCluster", Some(&mysql)),
            (false, "ONLINE_PARTIAL".into())
        );
        let es = json!({"health": "green", "phase": "Ready"});
        assert!(cr_readiness("Elasticsearch", Some(&es)).0);
        assert!(!cr_readiness("Tenant", None).0);
    }
}

//! The namespaces install creates and labels (the chart does not own them): the release namespace
//! with `env=<env>` and Pod Security Admission labels, and Fluent Bit's own privileged namespace.

use chart_gen::model::Environment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::FIELD_MANAGER;

/// A namespace and the labels install guarantees on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePlan {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl NamespacePlan {
    /// The server-side apply body: only the labels we own, so other labels stay untouched.
    pub fn apply_body(&self) -> Value {
        let labels: serde_json::Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": self.name, "labels": labels },
        })
    }
}

/// The namespaces to create for an install, from the merged values.
pub fn plan(env: Environment, namespace: &str, values: &Value) -> Vec<NamespacePlan> {
    let enforce = values
        .pointer("/global/podSecurity")
        .and_then(Value::as_str)
        .unwrap_or("restricted")
        .to_string();
    let mut plans = vec![NamespacePlan {
        name: namespace.to_string(),
        labels: vec![
            ("env".into(), env.as_str().into()),
            ("pod-security.kubernetes.io/enforce".into(), enforce),
            (
                "pod-security.kubernetes.io/audit".into(),
                "restricted".into(),
            ),
            (
                "pod-security.kubernetes.io/warn".into(),
                "restricted".into(),
            ),
        ],
    }];
    let fluent_bit_on = values
        .pointer("/observability/fluentBit/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if fluent_bit_on {
        let ns = values
            .pointer("/observability/fluentBit/namespace")
            .and_then(Value::as_str)
            .unwrap_or("datajump-logging");
        // Fluent Bit reads root-owned host log files through hostPath: only a privileged
        // namespace admits it, which is why it does not share the release namespace.
        plans.push(NamespacePlan {
            name: ns.to_string(),
            labels: vec![
                ("env".into(), env.as_str().into()),
                (
                    "pod-security.kubernetes.io/enforce".into(),
                    "privileged".into(),
                ),
            ],
        });
    }
    plans
}

/// Creates or updates each namespace by server-side apply.
pub async fn apply(client: &Client, plans: &[NamespacePlan]) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for p in plans {
        api.patch(&p.name, &params, &Patch::Apply(p.apply_body()))
            .await
            .map_err(|e| anyhow::anyhow!("applying namespace {}: {e}", p.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_namespace_gets_env_and_pod_security_labels() {
        let plans = plan(Environment::Prod, "datajump-prod", &json!({}));
        assert_eq!(plans.len(), 1);
        assert_eq!(
            plans[0].apply_body()["metadata"]["labels"],
            json!({
                "env": "prod",
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            })
        );
    }

    #[test]
    fn fluent_bit_gets_its_own_privileged_namespace() {
        let values = json!({
            "global": {"podSecurity": "baseline"},
            "observability": {"fluentBit": {"enabled": true, "namespace": "logs"}},
        });
        let plans = plan(Environment::Dev, "datajump-dev", &values);
        assert_eq!(plans[0].labels[1].1, "baseline");
        assert_eq!(plans[1].name, "logs");
        assert_eq!(
            plans[1].labels[1],
            (
                "pod-security.kubernetes.io/enforce".into(),
                "privileged".into()
            )
        );
    }
}

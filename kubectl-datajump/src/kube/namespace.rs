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

/// The Pod Security level the chart says the release namespace needs: the annotations on its
/// `<fullname>-config` ConfigMap in a render (the chart is the one place that knows which
/// components fall short of restricted, and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSecurity {
    pub enforce: String,
    /// "component: reason" for each component that forces a level below restricted.
    pub forced_by: Vec<String>,
}

pub const ENFORCE_ANNOTATION: &str = "datajump.io/pod-security-enforce";
pub const FORCED_BY_ANNOTATION: &str = "datajump.io/pod-security-forced-by";

impl PodSecurity {
    /// Reads the annotations of `<fullname>-config` among rendered (or live) objects.
    pub fn from_objects(objects: &[Value], fullname: &str) -> anyhow::Result<Self> {
        let name = format!("{fullname}-config");
        let config = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == name.as_str())
            .ok_or_else(|| anyhow::anyhow!("the chart rendered no ConfigMap {name}"))?;
        Self::from_annotations(&config["metadata"]["annotations"])
            .ok_or_else(|| anyhow::anyhow!("ConfigMap {name} has no {ENFORCE_ANNOTATION} annotation (a chart older than this plugin?)"))
    }

    pub fn from_annotations(annotations: &Value) -> Option<Self> {
        let enforce = annotations.get(ENFORCE_ANNOTATION)?.as_str()?.to_string();
        let forced_by = annotations
            .get(FORCED_BY_ANNOTATION)
            .and_then(Value::as_str)
            .map(|s| s.split("; ").map(str::to_string).collect())
            .unwrap_or_default();
        Some(Self { enforce, forced_by })
    }
}

/// The namespaces to create for an install, from the merged values and the chart's Pod Security
/// answer. `audit` and `warn` stay `restricted` whatever is enforced, so every pod that falls
/// short is still reported.
pub fn plan(
    env: Environment,
    namespace: &str,
    values: &Value,
    pod_security: &PodSecurity,
) -> Vec<NamespacePlan> {
    let enforce = pod_security.enforce.clone();
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

    fn restricted() -> PodSecurity {
        PodSecurity {
            enforce: "restricted".into(),
            forced_by: Vec::new(),
        }
    }

    #[test]
    fn the_chart_says_the_level_and_why() {
        let objects = vec![
            json!({"kind": "ConfigMap", "metadata": {"name": "dj-config",
            "annotations": {
                ENFORCE_ANNOTATION: "baseline",
                FORCED_BY_ANNOTATION: "mysql: runs as root; other: reason"}}}),
        ];
        let got = PodSecurity::from_objects(&objects, "dj").unwrap();
        assert_eq!(got.enforce, "baseline");
        assert_eq!(got.forced_by, ["mysql: runs as root", "other: reason"]);
        let err = PodSecurity::from_objects(&objects, "other").unwrap_err();
        assert!(
            err.to_string().contains("no ConfigMap other-config"),
            "{err}"
        );
        let bare = vec![json!({"kind": "ConfigMap", "metadata": {"name": "dj-config"}})];
        assert!(PodSecurity::from_objects(&bare, "dj").is_err());
    }

    #[test]
    fn release_namespace_gets_env_and_pod_security_labels() {
        let plans = plan(
            Environment::Prod,
            "datajump-prod",
            &json!({}),
            &restricted(),
        );
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
        let baseline = PodSecurity {
            enforce: "baseline".into(),
            forced_by: vec!["mysql: root init container".into()],
        };
        let plans = plan(Environment::Dev, "datajump-dev", &values, &baseline);
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

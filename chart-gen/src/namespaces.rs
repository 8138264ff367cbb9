//! The namespaces a release needs and their labels: the release namespace with `env=<env>` and
//! Pod Security Admission labels, and Fluent Bit's own privileged namespace. The chart does not
//! own namespaces; `kubectl datajump install` applies these, and the Argo CD manifests
//! (`crate::gitops`) declare the same labels.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{Environment, Values};

/// Annotation on `<fullname>-config` naming the Pod Security level the release needs.
pub const ENFORCE_ANNOTATION: &str = "datajump.io/pod-security-enforce";
/// Annotation on `<fullname>-config` listing "component: reason" for each component that forces
/// a level below restricted.
pub const FORCED_BY_ANNOTATION: &str = "datajump.io/pod-security-forced-by";

/// Why the chart's Pod Security answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodSecurityError {
    /// The render holds no `<fullname>-config` ConfigMap.
    #[error("the chart rendered no ConfigMap {0}")]
    NoConfigMap(String),
    /// The ConfigMap lacks the annotation.
    #[error("ConfigMap {0} has no {ENFORCE_ANNOTATION} annotation (a chart older than this tool?)")]
    NoAnnotation(String),
}

/// The Pod Security level the chart says the release namespace needs: the annotations on its
/// `<fullname>-config` ConfigMap in a render (the chart is the one place that knows which
/// components fall short of restricted, and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSecurity {
    /// `restricted`, `baseline` or `privileged`.
    pub enforce: String,
    /// "component: reason" for each component that forces a level below restricted.
    pub forced_by: Vec<String>,
}

impl PodSecurity {
    /// Reads the annotations of `<fullname>-config` among rendered (or live) objects.
    pub fn from_objects(objects: &[Value], fullname: &str) -> Result<Self, PodSecurityError> {
        let name = format!("{fullname}-config");
        let config = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == name.as_str())
            .ok_or_else(|| PodSecurityError::NoConfigMap(name.clone()))?;
        Self::from_annotations(&config["metadata"]["annotations"])
            .ok_or(PodSecurityError::NoAnnotation(name))
    }

    /// Reads the two annotations from an object's `metadata.annotations`.
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

/// A namespace and the labels the release guarantees on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePlan {
    /// Namespace name.
    pub name: String,
    /// The labels owned by the release (others on the namespace are left alone).
    pub labels: BTreeMap<String, String>,
}

impl NamespacePlan {
    /// The Namespace object holding only the labels we own (a server-side apply body).
    pub fn object(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": self.name, "labels": self.labels },
        })
    }
}

/// The namespaces of a release in `namespace`: the release namespace first, then Fluent Bit's
/// when it is enabled. `audit` and `warn` stay `restricted` whatever is enforced, so every pod
/// that falls short is still reported.
pub fn plan(
    env: Environment,
    namespace: &str,
    values: &Values,
    pod_security: &PodSecurity,
) -> Vec<NamespacePlan> {
    let label = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut plans = vec![NamespacePlan {
        name: namespace.to_string(),
        labels: label(&[
            ("env", env.as_str()),
            ("pod-security.kubernetes.io/enforce", &pod_security.enforce),
            ("pod-security.kubernetes.io/audit", "restricted"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ]),
    }];
    let fluent_bit = &values.observability.fluent_bit;
    if fluent_bit.enabled {
        // Fluent Bit reads root-owned host log files through hostPath: only a privileged
        // namespace admits it, which is why it does not share the release namespace.
        plans.push(NamespacePlan {
            name: fluent_bit.namespace.clone(),
            labels: label(&[
                ("env", env.as_str()),
                ("pod-security.kubernetes.io/enforce", "privileged"),
            ]),
        });
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::profile;

    fn restricted() -> PodSecurity {
        PodSecurity {
            enforce: "restricted".into(),
            forced_by: Vec::new(),
        }
    }

    #[test]
    fn the_chart_says_the_level_and_why() {
        let objects = vec![json!({
            "kind": "ConfigMap",
            "metadata": {"name": "datajump-config", "annotations": {
                ENFORCE_ANNOTATION: "baseline",
                FORCED_BY_ANNOTATION: "mysql: the operator's pods; redis: root",
            }},
        })];
        let ps = PodSecurity::from_objects(&objects, "datajump").unwrap();
        assert_eq!(ps.enforce, "baseline");
        assert_eq!(ps.forced_by, ["mysql: the operator's pods", "redis: root"]);
        assert_eq!(
            PodSecurity::from_objects(&objects, "other"),
            Err(PodSecurityError::NoConfigMap("other-config".into()))
        );
    }

    #[test]
    fn release_namespace_gets_env_and_pod_security_labels() {
        let plans = plan(
            Environment::Dev,
            "dj",
            &profile(Environment::Dev),
            &restricted(),
        );
        assert_eq!(plans[0].name, "dj");
        assert_eq!(plans[0].labels["env"], "dev");
        assert_eq!(
            plans[0].labels["pod-security.kubernetes.io/enforce"],
            "restricted"
        );
        assert_eq!(
            plans[0].labels["pod-security.kubernetes.io/warn"],
            "restricted"
        );
        assert_eq!(
            plans[0].object()["metadata"]["labels"]["pod-security.kubernetes.io/audit"],
            "restricted"
        );
    }

    #[test]
    fn fluent_bit_gets_its_own_privileged_namespace() {
        let mut values = profile(Environment::Prod);
        values.observability.fluent_bit.enabled = true;
        values.observability.fluent_bit.namespace = "logs".into();
        let plans = plan(Environment::Prod, "dj", &values, &restricted());
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[1].name, "logs");
        assert_eq!(
            plans[1].labels["pod-security.kubernetes.io/enforce"],
            "privileged"
        );
        values.observability.fluent_bit.enabled = false;
        assert_eq!(
            plan(Environment::Prod, "dj", &values, &restricted()).len(),
            1
        );
    }
}

//! Chart conventions every rendered object follows: the standard `app.kubernetes.io/*` and
//! `helm.sh/chart` labels (tools, dashboards and `kubectl datajump` select by them) and an
//! explicit `metadata.namespace` on namespaced objects (so `helm template | kubectl apply` lands
//! in the right namespace).

use serde_json::Value;

use crate::model::Environment;
use crate::validate::{Problem, Rule, kubernetes, pointer};

/// The labels every object carries.
pub(super) const REQUIRED_LABELS: [&str; 7] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
];

/// Labels naming one release. CustomResourceDefinitions are exempt: Helm installs a chart's
/// `crds/` files verbatim (no templating), and one CRD serves every release in the cluster.
const RELEASE_LABELS: [&str; 2] = ["app.kubernetes.io/instance", "helm.sh/chart"];

/// Cluster-scoped kinds that are not built in (operator CRDs the chart may use).
const CLUSTER_SCOPED_CUSTOM: [&str; 2] = ["ClusterIssuer", "ClusterKopfPeering"];

pub(super) fn check(env: Environment, obj: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
    let is_crd = obj.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition");
    let missing: Vec<&str> = REQUIRED_LABELS
        .into_iter()
        .filter(|key| !(is_crd && RELEASE_LABELS.contains(key)))
        .filter(|key| {
            labels
                .and_then(|l| l.get(*key))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .collect();
    if !missing.is_empty() {
        problems.push(Problem::object(
            env,
            obj,
            Rule::Convention,
            "/metadata/labels",
            format!("missing label(s) {}", missing.join(", ")),
        ));
    }
    let has_namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .is_some_and(|ns| !ns.is_empty());
    if is_namespaced(obj) && !has_namespace {
        problems.push(Problem::object(
            env,
            obj,
            Rule::Convention,
            pointer::push("/metadata", "namespace"),
            "namespaced object without metadata.namespace",
        ));
    }
    problems
}

/// Built-in kinds by their type; custom kinds are namespaced unless cluster-scoped by name.
fn is_namespaced(obj: &Value) -> bool {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    kubernetes::is_namespaced(api_version, kind)
        .unwrap_or_else(|| !CLUSTER_SCOPED_CUSTOM.contains(&kind))
}

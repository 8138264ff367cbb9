//! Strict validation of built-in Kubernetes objects against the API's own types (k8s-openapi,
//! the newest supported API, Kubernetes 1.37), the way the API server's strict field validation
//! (`kubectl apply --validate=strict`, the default since 1.27) would judge them:
//! - the object is deserialized into its typed struct; a type error or a missing required field
//!   is reported with its JSON pointer;
//! - the typed value is serialized back and compared with the input: every key of the input that
//!   did not survive the round trip is a field the type does not have (`unknown field "x"`),
//!   exactly the fields the API server would reject or silently drop;
//! - APIs removed from Kubernetes are named with the release that removed them and their
//!   replacement.
//!
//! Only the kinds listed in `builtins!` count as built in, and every one of them is a GA API
//! served since long before the oldest supported release
//! ([`crate::kube_versions::OLDEST_SUPPORTED`]), so a render cannot use an API that release
//! lacks: any other apiVersion/kind must be a custom resource with a CRD schema. A *field* added
//! after 1.33 would pass here; CI's kubeconform run against the oldest release catches those.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::{
    admissionregistration, apps, autoscaling, batch, coordination, core, discovery, networking,
    node, policy, rbac, scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};

use super::FieldError;
use super::pointer;

/// Checks one object if its apiVersion/kind is a built-in kind this module knows or a removed
/// API. `None` means "not built in": the caller tries the CRD schemas next.
pub fn check_builtin(obj: &Value) -> Option<Vec<FieldError>> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    if let Some(removed) = removed_api(api_version, kind) {
        return Some(vec![FieldError::new("/apiVersion", removed)]);
    }
    let builtin = lookup(api_version, kind)?;
    Some((builtin.check)(obj))
}

/// Whether a built-in kind is namespaced; `None` when the kind is not one this module knows.
pub fn is_namespaced(api_version: &str, kind: &str) -> Option<bool> {
    lookup(api_version, kind).map(|b| b.namespaced)
}

/// What this module knows about a built-in kind.
struct Builtin {
    check: fn(&Value) -> Vec<FieldError>,
    namespaced: bool,
}

/// Maps k8s-openapi's scope marker types to a flag usable at run time.
trait Scoped {
    const NAMESPACED: bool;
}

impl Scoped for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scoped for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

macro_rules! builtins {
    ($($ty:ty),* $(,)?) => {
        fn lookup(api_version: &str, kind: &str) -> Option<Builtin> {
            $(
                if api_version == <$ty as Resource>::API_VERSION && kind == <$ty as Resource>::KIND {
                    return Some(Builtin {
                        check: check_typed::<$ty>,
                        namespaced: <<$ty as Resource>::Scope as Scoped>::NAMESPACED,
                    });
                }
            )*
            None
        }
    };
}

builtins!(
    core::v1::ConfigMap,
    core::v1::Secret,
    core::v1::Service,
    core::v1::ServiceAccount,
    core::v1::PersistentVolumeClaim,
    core::v1::PersistentVolume,
    core::v1::Pod,
    core::v1::Namespace,
    core::v1::Endpoints,
    core::v1::LimitRange,
    core::v1::ResourceQuota,
    apps::v1::Deployment,
    apps::v1::StatefulSet,
    apps::v1::DaemonSet,
    apps::v1::ReplicaSet,
    batch::v1::Job,
    batch::v1::CronJob,
    autoscaling::v2::HorizontalPodAutoscaler,
    autoscaling::v1::HorizontalPodAutoscaler,
    policy::v1::PodDisruptionBudget,
    networking::v1::Ingress,
    networking::v1::IngressClass,
    networking::v1::NetworkPolicy,
    rbac::v1::Role,
    rbac::v1::RoleBinding,
    rbac::v1::ClusterRole,
    rbac::v1::ClusterRoleBinding,
    coordination::v1::Lease,
    discovery::v1::EndpointSlice,
    scheduling::v1::PriorityClass,
    storage::v1::StorageClass,
    node::v1::RuntimeClass,
    admissionregistration::v1::ValidatingWebhookConfiguration,
    admissionregistration::v1::MutatingWebhookConfiguration,
    CustomResourceDefinition,
);

/// Checks a custom resource's `metadata` (at `path`) strictly as an ObjectMeta: the API server
/// handles it the same way for every kind.
pub(crate) fn check_object_meta(metadata: &Value, path: &str) -> Vec<FieldError> {
    check_typed_at::<ObjectMeta>(metadata, path)
}

fn check_typed<T: DeserializeOwned + Serialize>(obj: &Value) -> Vec<FieldError> {
    check_typed_at::<T>(obj, "")
}

/// Deserializes into `T` (type errors with their path), then reports every input key the typed
/// round trip dropped. `base` is the pointer of `value` inside the checked object.
fn check_typed_at<T: DeserializeOwned + Serialize>(value: &Value, base: &str) -> Vec<FieldError> {
    let typed: T = match serde_path_to_error::deserialize(value) {
        Ok(typed) => typed,
        Err(e) => {
            let path = format!("{base}{}", path_to_pointer(e.path()));
            return vec![FieldError::new(path, e.inner().to_string())];
        }
    };
    let round_trip = match serde_json::to_value(&typed) {
        Ok(v) => v,
        Err(e) => return vec![FieldError::new(base, format!("cannot re-serialize: {e}"))],
    };
    let mut errors = Vec::new();
    unknown_fields(value, &round_trip, base, &mut errors);
    // Same order whether or not serde_json keeps the input's key order.
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    errors
}

/// Walks the input and the round-tripped value side by side. An input key the round trip dropped
/// is a field the type does not have; a key the round trip added is a required field the input
/// lacks (k8s-openapi fills required fields with their default instead of failing). Null input
/// values count as absent, as they do for the API server.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<FieldError>) {
    match (input, typed) {
        (Value::Object(given), Value::Object(kept)) => {
            for (key, value) in given {
                if value.is_null() {
                    continue;
                }
                let field_path = pointer::push(path, key);
                match kept.get(key) {
                    Some(kept_value) => unknown_fields(value, kept_value, &field_path, out),
                    None => out.push(FieldError::new(
                        field_path,
                        format!("unknown field \"{key}\""),
                    )),
                }
            }
            // Embedded objects (a StatefulSet's volumeClaimTemplates) re-serialize with the
            // apiVersion and kind of their type; the API server does not require those there.
            let implied = |key: &str| !path.is_empty() && matches!(key, "apiVersion" | "kind");
            for key in kept.keys() {
                if !implied(key) && given.get(key).is_none_or(Value::is_null) {
                    out.push(FieldError::new(
                        path,
                        format!("missing required field \"{key}\""),
                    ));
                }
            }
        }
        (Value::Array(given), Value::Array(kept)) => {
            for (index, (value, kept_value)) in given.iter().zip(kept).enumerate() {
                unknown_fields(value, kept_value, &pointer::push_index(path, index), out);
            }
        }
        _ => {}
    }
}

/// serde_path_to_error's path (`spec.containers[0].image`) as a JSON pointer.
fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        out = match segment {
            Segment::Seq { index } => pointer::push_index(&out, *index),
            Segment::Map { key } => pointer::push(&out, key),
            Segment::Enum { variant } => pointer::push(&out, variant),
            Segment::Unknown => out,
        };
    }
    out
}

/// APIs the chart might still carry from older charts, removed in the Kubernetes release named.
/// Listed by (apiVersion, kind); `*` matches every kind of that apiVersion.
const REMOVED: &[(&str, &str, &str, &str)] = &[
    (
        "policy/v1beta1",
        "PodSecurityPolicy",
        "1.25",
        "Pod Security Admission namespace labels (pod-security.kubernetes.io/enforce)",
    ),
    ("policy/v1beta1", "PodDisruptionBudget", "1.25", "policy/v1"),
    (
        "extensions/v1beta1",
        "Ingress",
        "1.22",
        "networking.k8s.io/v1",
    ),
    (
        "networking.k8s.io/v1beta1",
        "Ingress",
        "1.22",
        "networking.k8s.io/v1",
    ),
    (
        "networking.k8s.io/v1beta1",
        "IngressClass",
        "1.22",
        "networking.k8s.io/v1",
    ),
    (
        "extensions/v1beta1",
        "NetworkPolicy",
        "1.16",
        "networking.k8s.io/v1",
    ),
    ("extensions/v1beta1", "*", "1.16", "apps/v1"),
    ("apps/v1beta1", "*", "1.16", "apps/v1"),
    ("apps/v1beta2", "*", "1.16", "apps/v1"),
    ("autoscaling/v2beta1", "*", "1.25", "autoscaling/v2"),
    ("autoscaling/v2beta2", "*", "1.26", "autoscaling/v2"),
    ("batch/v1beta1", "CronJob", "1.25", "batch/v1"),
    ("batch/v2alpha1", "CronJob", "1.21", "batch/v1"),
    (
        "rbac.authorization.k8s.io/v1beta1",
        "*",
        "1.22",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "rbac.authorization.k8s.io/v1alpha1",
        "*",
        "1.22",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "apiextensions.k8s.io/v1beta1",
        "*",
        "1.22",
        "apiextensions.k8s.io/v1",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "*",
        "1.22",
        "admissionregistration.k8s.io/v1",
    ),
    (
        "coordination.k8s.io/v1beta1",
        "*",
        "1.22",
        "coordination.k8s.io/v1",
    ),
    (
        "scheduling.k8s.io/v1beta1",
        "*",
        "1.22",
        "scheduling.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        "CSIStorageCapacity",
        "1.27",
        "storage.k8s.io/v1",
    ),
    ("storage.k8s.io/v1beta1", "*", "1.22", "storage.k8s.io/v1"),
    (
        "discovery.k8s.io/v1beta1",
        "*",
        "1.25",
        "discovery.k8s.io/v1",
    ),
    ("events.k8s.io/v1beta1", "*", "1.25", "events.k8s.io/v1"),
    ("node.k8s.io/v1beta1", "*", "1.25", "node.k8s.io/v1"),
    (
        "certificates.k8s.io/v1beta1",
        "*",
        "1.22",
        "certificates.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "*",
        "1.26",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "*",
        "1.29",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "*",
        "1.32",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// The error for a removed API, if `api_version`/`kind` is one.
fn removed_api(api_version: &str, kind: &str) -> Option<String> {
    REMOVED
        .iter()
        .find(|(v, k, _, _)| *v == api_version && (*k == kind || *k == "*"))
        .map(|(_, _, release, instead)| {
            format!("{api_version} {kind} was removed in Kubernetes {release}; use {instead}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_kind_is_none() {
        assert!(check_builtin(&json!({"apiVersion": "example.com/v1", "kind": "Thing"})).is_none());
        assert!(check_builtin(&json!({"kind": "ConfigMap"})).is_none());
    }

    #[test]
    fn config_map_with_unknown_and_null_fields() {
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "creationTimestamp": null, "labells": {}},
            "data": {"k": "v"}
        });
        let errors = check_builtin(&obj).unwrap();
        assert_eq!(
            errors,
            vec![FieldError::new(
                "/metadata/labells",
                "unknown field \"labells\""
            )]
        );
    }

    #[test]
    fn scope_is_known() {
        assert_eq!(is_namespaced("v1", "ConfigMap"), Some(true));
        assert_eq!(
            is_namespaced("rbac.authorization.k8s.io/v1", "ClusterRole"),
            Some(false)
        );
        assert_eq!(is_namespaced("example.com/v1", "Thing"), None);
    }

    #[test]
    fn removed_api_names_release_and_replacement() {
        let errors = check_builtin(
            &json!({"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler"}),
        )
        .unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "/apiVersion");
        assert!(
            errors[0]
                .message
                .contains("removed in Kubernetes 1.26; use autoscaling/v2")
        );
    }
}

//! An index of one render for the policy rules: the pod templates of every workload kind, and the
//! objects rules cross-reference (PDBs, HPAs, service accounts and their bindings, network
//! policies).

use serde_json::{Map, Value};

/// One workload with the pod template the policy applies to.
pub(super) struct Workload<'a> {
    pub obj: &'a Value,
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    /// The pod spec (`.spec` of the template, or of the Pod).
    pub pod_spec: &'a Value,
    /// JSON pointer of `pod_spec` inside the object.
    pub pod_spec_path: &'static str,
    /// The pod template's metadata (labels, annotations).
    pub pod_metadata: Option<&'a Value>,
    /// JSON pointer of `pod_metadata` inside the object.
    pub pod_metadata_path: &'static str,
}

impl Workload<'_> {
    /// Deployments, StatefulSets and DaemonSets run forever and need probes; Jobs and Pods
    /// (helm test hooks) run to completion.
    pub(super) fn is_long_running(&self) -> bool {
        matches!(
            self.kind,
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        )
    }

    pub(super) fn pod_labels(&self) -> Option<&Map<String, Value>> {
        self.pod_metadata?.get("labels")?.as_object()
    }

    pub(super) fn pod_annotation(&self, key: &str) -> Option<&Value> {
        self.pod_metadata?.get("annotations")?.get(key)
    }

    /// `spec.replicas` (default 1) for kinds that have it.
    pub(super) fn replicas(&self) -> i64 {
        self.obj
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    }
}

/// A role binding subject of kind ServiceAccount.
pub(super) struct BoundAccount<'a> {
    pub name: &'a str,
    pub namespace: Option<&'a str>,
}

/// The render, indexed once for all rules.
pub(super) struct Render<'a> {
    pub workloads: Vec<Workload<'a>>,
    pub pdbs: Vec<&'a Value>,
    pub hpas: Vec<&'a Value>,
    pub service_accounts: Vec<&'a Value>,
    pub bound_accounts: Vec<BoundAccount<'a>>,
    pub network_policies: Vec<&'a Value>,
}

impl<'a> Render<'a> {
    pub(super) fn index(objects: &'a [Value]) -> Self {
        let mut render = Render {
            workloads: Vec::new(),
            pdbs: Vec::new(),
            hpas: Vec::new(),
            service_accounts: Vec::new(),
            bound_accounts: Vec::new(),
            network_policies: Vec::new(),
        };
        for obj in objects {
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
            match kind {
                "PodDisruptionBudget" => render.pdbs.push(obj),
                "HorizontalPodAutoscaler" => render.hpas.push(obj),
                "ServiceAccount" => render.service_accounts.push(obj),
                "NetworkPolicy" => render.network_policies.push(obj),
                "RoleBinding" | "ClusterRoleBinding" => {
                    render.bound_accounts.extend(bound_accounts(obj));
                }
                _ => render.workloads.extend(workload(obj, kind)),
            }
        }
        render
    }

    /// Whether a ServiceAccount is a subject of some RoleBinding/ClusterRoleBinding.
    pub(super) fn is_bound(&self, name: &str, namespace: Option<&str>) -> bool {
        self.bound_accounts
            .iter()
            .any(|b| b.name == name && same_namespace(b.namespace, namespace))
    }

    /// The rendered ServiceAccount of that name, if any.
    pub(super) fn service_account(&self, name: &str, namespace: Option<&str>) -> Option<&'a Value> {
        self.service_accounts.iter().copied().find(|sa| {
            self::name(sa) == Some(name) && same_namespace(self::namespace(sa), namespace)
        })
    }
}

/// Namespaces match when equal, or when either is unset (the release namespace).
pub(super) fn same_namespace(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

pub(super) fn name(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/name").and_then(Value::as_str)
}

pub(super) fn namespace(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}

fn workload<'a>(obj: &'a Value, kind: &'a str) -> Option<Workload<'a>> {
    let (pod_metadata_path, pod_spec_path) = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            ("/spec/template/metadata", "/spec/template/spec")
        }
        "CronJob" => (
            "/spec/jobTemplate/spec/template/metadata",
            "/spec/jobTemplate/spec/template/spec",
        ),
        "Pod" => ("/metadata", "/spec"),
        _ => return None,
    };
    Some(Workload {
        obj,
        kind,
        name: name(obj).unwrap_or("?"),
        namespace: namespace(obj),
        pod_spec: obj.pointer(pod_spec_path)?,
        pod_spec_path,
        pod_metadata: obj.pointer(pod_metadata_path),
        pod_metadata_path,
    })
}

fn bound_accounts(binding: &Value) -> Vec<BoundAccount<'_>> {
    let binding_namespace = namespace(binding);
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return Vec::new();
    };
    subjects
        .iter()
        .filter(|s| s.get("kind").and_then(Value::as_str) == Some("ServiceAccount"))
        .filter_map(|s| {
            Some(BoundAccount {
                name: s.get("name")?.as_str()?,
                namespace: s
                    .get("namespace")
                    .and_then(Value::as_str)
                    .or(binding_namespace),
            })
        })
        .collect()
}

//! The pod option types: what a task's pod may carry beyond its container. They can only say
//! what Pod Security `restricted` admits (see the parent module).

// `derive(KubeSchema)` declares a copy of each struct (still `pub`) inside its generated
// `json_schema` function, where `unreachable_pub` sees an unreachable public item. The types
// here are all re-exported by `pod`, so the lint has nothing real to find in them.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, EmptyDirVolumeSource, LocalObjectReference,
    PersistentVolumeClaimVolumeSource, SecretVolumeSource, Toleration,
};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Label keys and prefixes a task cannot set on its pod: the scheduler's own (it finds its
/// Jobs and pods by them) and the Job controller's.
pub const RESERVED_LABEL_PREFIXES: &[&str] = &[
    "datajump.io/",
    "app.kubernetes.io/managed-by",
    "batch.kubernetes.io/",
    "job-name",
    "controller-uid",
];

/// Annotation key prefix a task cannot set: the scheduler's own.
pub const RESERVED_ANNOTATION_PREFIX: &str = "datajump.io/";

/// What a task's pod may carry beyond its container. Every field is optional; see the module's
/// documentation for how presets, workflow defaults and task options are layered.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodOptions {
    /// A pod preset defined by the platform team (the chart's `scheduler.executor.podPresets`),
    /// applied under this level's own options. A task naming a preset the scheduler does not
    /// know fails with the names it does know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub preset: Option<String>,
    /// Volumes: PersistentVolumeClaims, ConfigMaps, Secrets and emptyDirs (the sources Pod
    /// Security `restricted` admits; nothing from the node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub volumes: Vec<PodVolume>,
    /// Where the task container mounts the volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub volume_mounts: Vec<PodVolumeMount>,
    /// Node labels the pod's node must carry (a node pool, say).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pod tolerates (to run on a dedicated node pool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub tolerations: Vec<Toleration>,
    /// Node and pod (anti-)affinity, as in a Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Service account the pod runs as; unset: the scheduler's task service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// Mount the service account's API token into the pod. Unset: no token (tasks are data
    /// jobs, not controllers; a task that calls the Kubernetes API asks for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// Secrets (in the workflow's namespace) to pull the task's image with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// PriorityClass of the pod; unset: the cluster's default priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Labels on the pod (and its Job). The scheduler's (`datajump.io/*`,
    /// `app.kubernetes.io/managed-by`) and the Job controller's (`batch.kubernetes.io/*`) keys
    /// are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations on the pod; `datajump.io/*` keys are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// User and group IDs and a read-only root file system, within Pod Security `restricted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<TaskSecurityContext>,
}

/// A volume of a task pod: a name and exactly one of the sources allowed.
// schemars directly rather than KubeSchema: KubeSchema's copy of the struct would warn about
// `other_sources`, which only deserialization and validation use.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.persistentVolumeClaim) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.secret) ? 1 : 0) + (has(self.emptyDir) ? 1 : 0) == 1",
    "message": "a volume needs exactly one source: persistentVolumeClaim, configMap, secret or emptyDir",
}]))]
pub struct PodVolume {
    /// Volume name (DNS-1123 label), unique in the pod; mounts refer to it.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// A PersistentVolumeClaim in the workflow's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    /// A ConfigMap's keys as files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    /// A Secret's keys as files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
    /// Scratch space that lives as long as the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    /// Any other field (`hostPath`, `nfs`, …), kept only so that validation can name it: the
    /// CRD has no schema for it, so the API server never stores one.
    #[serde(flatten, default, skip_serializing)]
    #[schemars(skip)]
    pub other_sources: BTreeMap<String, serde_json::Value>,
}

/// Where the task container mounts a volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodVolumeMount {
    /// Name of a volume of the pod (declared at this level, another level or the preset).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Absolute path in the container; a later level's mount at the same path replaces this.
    #[schemars(length(min = 1))]
    pub mount_path: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// A path inside the volume to mount instead of its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

/// The part of a pod's security context a task may choose. Whatever is set here, the pod runs
/// as non-root, with every capability dropped, without privilege escalation and under the
/// RuntimeDefault seccomp profile.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TaskSecurityContext {
    /// User ID of the task container (not 0); unset: 65532.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub run_as_user: Option<i64>,
    /// Primary group ID; unset: 65532.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_as_group: Option<i64>,
    /// Group that owns the pod's volumes (so a non-root task can write to a PVC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub fs_group: Option<i64>,
    /// Further groups of the task's processes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub supplemental_groups: Vec<i64>,
    /// Mount the container's root file system read-only (write to an emptyDir instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
}

/// Named presets, as the scheduler reads them from its presets file: a map from name to
/// [`PodOptions`].
pub type Presets = BTreeMap<String, PodOptions>;

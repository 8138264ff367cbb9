//! Task pods as workloads: the pod options a task (`spec.tasks[].pod`), a workflow
//! (`spec.podDefaults`) and a named preset (the chart's `scheduler.executor.podPresets`,
//! DolphinScheduler's worker groups) may set — volumes and mounts, placement, identity, labels
//! and a security context — their validation and the rule that layers them.
//!
//! The types can only say what Pod Security `restricted` admits: a volume is a
//! PersistentVolumeClaim, ConfigMap, Secret or emptyDir (no hostPath, no NFS), a mount has no
//! propagation, and the security context holds IDs and a read-only root file system, never
//! privileges or capabilities. Runs as root (`runAsUser: 0`) is refused by [`validate`]. The
//! scheduler's own restrictions (non-root, all capabilities dropped, no privilege escalation,
//! the RuntimeDefault seccomp profile) are applied on top and cannot be turned off.
//!
//! # Layering
//!
//! A task's pod is built from up to four layers, each over the one before: the workflow's
//! preset, the workflow's `podDefaults`, the task's preset, the task's `pod` (a preset is named
//! by the `preset` field of `podDefaults` or `pod`). See [`PodOptions::overlay`] for how one layer
//! lies over another and [`resolve`] for the whole.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, EmptyDirVolumeSource, LocalObjectReference,
    PersistentVolumeClaimVolumeSource, SecretVolumeSource, Toleration,
};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::WorkflowSpec;
use crate::validate::{ValidationError, check_dns1123_label};

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

impl PodOptions {
    /// Lays `over` on top of `self` (a later level over an earlier one):
    ///
    /// - maps (`nodeSelector`, `labels`, `annotations`) merge key by key, `over` winning;
    /// - lists with an identity are appended, an entry of `over` replacing the earlier one with
    ///   the same identity in place: `volumes` and `imagePullSecrets` by name, `volumeMounts` by
    ///   mount path, `tolerations` by the whole toleration (an equal one is not repeated);
    /// - single values (`serviceAccountName`, `automountServiceAccountToken`,
    ///   `priorityClassName`, and `affinity` as a whole) are replaced when `over` sets them;
    /// - the security context merges field by field, `supplementalGroups` as a set.
    ///
    /// `preset` is not layered: [`resolve`] expands each level's preset beneath it.
    pub fn overlay(&mut self, over: &PodOptions) {
        upsert(&mut self.volumes, &over.volumes, |v| v.name.clone());
        upsert(&mut self.volume_mounts, &over.volume_mounts, |m| {
            m.mount_path.clone()
        });
        upsert(
            &mut self.image_pull_secrets,
            &over.image_pull_secrets,
            |s| s.name.clone(),
        );
        for t in &over.tolerations {
            if !self.tolerations.contains(t) {
                self.tolerations.push(t.clone());
            }
        }
        for (mine, theirs) in [
            (&mut self.node_selector, &over.node_selector),
            (&mut self.labels, &over.labels),
            (&mut self.annotations, &over.annotations),
        ] {
            mine.extend(theirs.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        replace(&mut self.affinity, &over.affinity);
        replace(&mut self.service_account_name, &over.service_account_name);
        replace(
            &mut self.automount_service_account_token,
            &over.automount_service_account_token,
        );
        replace(&mut self.priority_class_name, &over.priority_class_name);
        if let Some(theirs) = &over.security_context {
            let mine = self.security_context.get_or_insert_with(Default::default);
            replace(&mut mine.run_as_user, &theirs.run_as_user);
            replace(&mut mine.run_as_group, &theirs.run_as_group);
            replace(&mut mine.fs_group, &theirs.fs_group);
            replace(
                &mut mine.read_only_root_filesystem,
                &theirs.read_only_root_filesystem,
            );
            for g in &theirs.supplemental_groups {
                if !mine.supplemental_groups.contains(g) {
                    mine.supplemental_groups.push(*g);
                }
            }
        }
    }
}

fn replace<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
    if theirs.is_some() {
        mine.clone_from(theirs);
    }
}

fn upsert<T: Clone>(mine: &mut Vec<T>, theirs: &[T], key: impl Fn(&T) -> String) {
    for item in theirs {
        let k = key(item);
        match mine.iter_mut().find(|m| key(m) == k) {
            Some(slot) => *slot = item.clone(),
            None => mine.push(item.clone()),
        }
    }
}

/// Why a task's pod options cannot be resolved: only the scheduler knows the presets, so these
/// surface when it starts an attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// A level names a preset the scheduler was not given.
    #[error("unknown pod preset {name:?} (known: {})", known_names(.known))]
    UnknownPreset {
        /// The preset named.
        name: String,
        /// The presets the scheduler knows, sorted.
        known: Vec<String>,
    },
    /// With the presets applied, a mount names a volume no level declares.
    #[error(
        "volumeMounts: {mount_path:?} mounts volume {volume:?}, which neither the presets, the workflow's podDefaults nor the task declare"
    )]
    UndeclaredVolume {
        /// The mount's path.
        mount_path: String,
        /// The volume it names.
        volume: String,
    },
}

fn known_names(known: &[String]) -> String {
    if known.is_empty() {
        "none".into()
    } else {
        known.join(", ")
    }
}

/// The pod options of a task: the workflow's preset, its `podDefaults`, the task's preset and its
/// `pod`, each laid over the one before with [`PodOptions::overlay`]. The result names no preset.
pub fn resolve(
    presets: &BTreeMap<String, PodOptions>,
    workflow: Option<&PodOptions>,
    task: Option<&PodOptions>,
) -> Result<PodOptions, PodError> {
    let mut pod = PodOptions::default();
    for level in [workflow, task].into_iter().flatten() {
        if let Some(name) = &level.preset {
            let preset = presets.get(name).ok_or_else(|| PodError::UnknownPreset {
                name: name.clone(),
                known: presets.keys().cloned().collect(),
            })?;
            pod.overlay(preset);
        }
        pod.overlay(level);
    }
    pod.preset = None;
    if let Some(m) = pod
        .volume_mounts
        .iter()
        .find(|m| !pod.volumes.iter().any(|v| v.name == m.name))
    {
        return Err(PodError::UndeclaredVolume {
            mount_path: m.mount_path.clone(),
            volume: m.name.clone(),
        });
    }
    Ok(pod)
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A field or map key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A path below some pod options (`volumes[1].name`), printable in the workflow validation's
/// dotted style or as a JSON pointer (for the presets file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_string()));
        p
    }

    fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    /// `prefix.volumes[1].name`; a map key that is no plain word is bracketed
    /// (`labels[datajump.io/run]`).
    pub fn dotted(&self, prefix: &str) -> String {
        let mut out = prefix.to_string();
        for s in &self.0 {
            match s {
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                Segment::Key(k) if k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Key(k) => out.push_str(&format!("[{k}]")),
            }
        }
        out
    }

    /// The JSON pointer (RFC 6901) below `prefix` (itself a pointer, `""` for the root).
    pub fn pointer(&self, prefix: &str) -> String {
        let mut out = prefix.to_string();
        for s in &self.0 {
            out.push('/');
            match s {
                Segment::Index(i) => out.push_str(&i.to_string()),
                Segment::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            }
        }
        out
    }
}

/// One problem in pod options, at a path below them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    /// Where, relative to the pod options.
    pub path: FieldPath,
    /// What is wrong and what was expected.
    pub message: String,
}

/// What validation may assume about the other levels.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A preset: it names no preset, and its mounts name its own volumes.
    Preset,
    /// A workflow's `podDefaults` or a task's `pod`: mounts may also name `other_volumes`
    /// (the other level's), and, when `preset_named`, volumes of a preset, which only the
    /// scheduler can check.
    Workflow {
        /// Volumes the other level declares.
        other_volumes: &'a [PodVolume],
        /// Whether this level or the other one names a preset.
        preset_named: bool,
    },
}

/// Every problem in one level of pod options, with its path below them.
pub fn validate(opts: &PodOptions, scope: Scope<'_>) -> Vec<PodProblem> {
    let mut problems = Vec::new();
    let root = FieldPath::default();
    let mut push = |path: FieldPath, message: String| problems.push(PodProblem { path, message });
    match (&opts.preset, scope) {
        (Some(_), Scope::Preset) => push(
            root.key("preset"),
            "a preset cannot name another preset".into(),
        ),
        (Some(name), _) => {
            if let Err(msg) = check_dns1123_label(name) {
                push(root.key("preset"), msg);
            }
        }
        (None, _) => {}
    }

    let mut names = BTreeSet::new();
    for (i, v) in opts.volumes.iter().enumerate() {
        let at = root.key("volumes").index(i);
        if let Err(msg) = check_dns1123_label(&v.name) {
            push(at.key("name"), msg);
        } else if !names.insert(v.name.as_str()) {
            push(
                at.key("name"),
                format!("volume {:?} is declared twice", v.name),
            );
        }
        for key in v.other_sources.keys() {
            push(
                at.key(key),
                format!(
                    "volume source {key:?} is not allowed: a task volume is a \
                     persistentVolumeClaim, configMap, secret or emptyDir"
                ),
            );
        }
        let sources = [
            v.persistent_volume_claim.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
            v.empty_dir.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            1 => {}
            0 if !v.other_sources.is_empty() => {}
            n => push(
                at.clone(),
                format!(
                    "volume {:?} has {n} sources; expected exactly one of \
                     persistentVolumeClaim, configMap, secret, emptyDir",
                    v.name
                ),
            ),
        }
        if let Some(pvc) = &v.persistent_volume_claim
            && let Err(msg) = check_dns1123_subdomain(&pvc.claim_name)
        {
            push(at.key("persistentVolumeClaim").key("claimName"), msg);
        }
        if let Some(cm) = &v.config_map {
            if let Err(msg) = check_dns1123_subdomain(&cm.name) {
                push(at.key("configMap").key("name"), msg);
            }
            check_mode(&mut push, at.key("configMap"), cm.default_mode);
        }
        if let Some(s) = &v.secret {
            match s.secret_name.as_deref() {
                None => push(at.key("secret").key("secretName"), "is required".into()),
                Some(n) => {
                    if let Err(msg) = check_dns1123_subdomain(n) {
                        push(at.key("secret").key("secretName"), msg);
                    }
                }
            }
            check_mode(&mut push, at.key("secret"), s.default_mode);
        }
        if let Some(medium) = v.empty_dir.as_ref().and_then(|e| e.medium.as_deref())
            && !matches!(medium, "" | "Memory")
        {
            push(
                at.key("emptyDir").key("medium"),
                format!("{medium:?}: expected \"\" (the node's disk) or \"Memory\""),
            );
        }
    }

    let (other_volumes, preset_named) = match scope {
        Scope::Preset => (&[][..], false),
        Scope::Workflow {
            other_volumes,
            preset_named,
        } => (other_volumes, preset_named),
    };
    let mut paths = BTreeSet::new();
    for (i, m) in opts.volume_mounts.iter().enumerate() {
        let at = root.key("volumeMounts").index(i);
        let declared = opts
            .volumes
            .iter()
            .chain(other_volumes)
            .any(|v| v.name == m.name);
        if !declared && !preset_named {
            let hint = match scope {
                Scope::Preset => "in the preset's volumes",
                Scope::Workflow { .. } => "in this pod's volumes or the workflow's podDefaults",
            };
            push(
                at.key("name"),
                format!("no volume {:?} is declared {hint}", m.name),
            );
        }
        if !m.mount_path.starts_with('/') {
            push(
                at.key("mountPath"),
                format!("{:?} is not an absolute path", m.mount_path),
            );
        } else if !paths.insert(m.mount_path.trim_end_matches('/')) {
            push(
                at.key("mountPath"),
                format!("{:?} is mounted twice", m.mount_path),
            );
        }
        if let Some(sub) = &m.sub_path
            && (sub.starts_with('/') || sub.split('/').any(|part| part == ".."))
        {
            push(
                at.key("subPath"),
                format!("{sub:?}: expected a relative path without '..'"),
            );
        }
    }

    for (k, v) in &opts.node_selector {
        let at = root.key("nodeSelector").key(k);
        if let Err(msg) = check_qualified_name(k) {
            push(at.clone(), format!("key {msg}"));
        }
        if let Err(msg) = check_label_value(v) {
            push(at, msg);
        }
    }
    for (k, v) in &opts.labels {
        let at = root.key("labels").key(k);
        if let Some(prefix) = RESERVED_LABEL_PREFIXES.iter().find(|p| k.starts_with(*p)) {
            push(
                at,
                format!(
                    "{prefix:?} is the scheduler's or the Job controller's; choose another key"
                ),
            );
            continue;
        }
        if let Err(msg) = check_qualified_name(k) {
            push(at.clone(), format!("key {msg}"));
        }
        if let Err(msg) = check_label_value(v) {
            push(at, msg);
        }
    }
    for k in opts.annotations.keys() {
        let at = root.key("annotations").key(k);
        if k.starts_with(RESERVED_ANNOTATION_PREFIX) {
            push(
                at,
                format!(
                    "{RESERVED_ANNOTATION_PREFIX:?} annotations are the scheduler's; choose another key"
                ),
            );
        } else if let Err(msg) = check_qualified_name(k) {
            push(at, format!("key {msg}"));
        }
    }

    for (i, t) in opts.tolerations.iter().enumerate() {
        let at = root.key("tolerations").index(i);
        match t.operator.as_deref() {
            None | Some("Equal") => {}
            Some("Exists") => {
                if t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                    push(at.key("value"), "must be empty with operator Exists".into());
                }
            }
            Some(op) => push(
                at.key("operator"),
                format!("{op:?}: expected Equal or Exists"),
            ),
        }
        match t.effect.as_deref() {
            None | Some("" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") => {}
            Some(e) => push(
                at.key("effect"),
                format!("{e:?}: expected NoSchedule, PreferNoSchedule or NoExecute"),
            ),
        }
        if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
            push(
                at.key("tolerationSeconds"),
                "applies only to effect NoExecute".into(),
            );
        }
        if t.key.as_deref().unwrap_or_default().is_empty()
            && t.operator.as_deref() != Some("Exists")
        {
            push(
                at.key("key"),
                "an empty key matches every taint and needs operator Exists".into(),
            );
        }
    }

    for (field, value) in [
        ("serviceAccountName", &opts.service_account_name),
        ("priorityClassName", &opts.priority_class_name),
    ] {
        if let Some(Err(msg)) = value.as_deref().map(check_dns1123_subdomain) {
            push(root.key(field), msg);
        }
    }
    for (i, s) in opts.image_pull_secrets.iter().enumerate() {
        if let Err(msg) = check_dns1123_subdomain(&s.name) {
            push(root.key("imagePullSecrets").index(i).key("name"), msg);
        }
    }

    if let Some(sc) = &opts.security_context {
        let at = root.key("securityContext");
        match sc.run_as_user {
            Some(0) => push(
                at.key("runAsUser"),
                "0 is root, which Pod Security \"restricted\" refuses; choose a non-zero user ID"
                    .into(),
            ),
            Some(n) if n < 0 => push(at.key("runAsUser"), format!("{n} is negative")),
            _ => {}
        }
        for (field, value) in [("runAsGroup", sc.run_as_group), ("fsGroup", sc.fs_group)] {
            if let Some(n) = value.filter(|n| *n < 0) {
                push(at.key(field), format!("{n} is negative"));
            }
        }
        for (i, g) in sc.supplemental_groups.iter().enumerate() {
            if *g < 0 {
                push(
                    at.key("supplementalGroups").index(i),
                    format!("{g} is negative"),
                );
            }
        }
    }
    problems
}

fn check_mode(push: &mut impl FnMut(FieldPath, String), at: FieldPath, mode: Option<i32>) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        push(
            at.key("defaultMode"),
            format!("{m} is no file mode; expected 0-511 (0777 octal)"),
        );
    }
}

/// A DNS-1123 subdomain (object names: ConfigMaps, Secrets, claims, accounts).
pub fn check_dns1123_subdomain(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.len() > 253 || !name.split('.').all(label_ok) {
        Err(format!(
            "{name:?} is not a valid object name: lower-case letters, digits, '-' and '.', \
             starting and ending with a letter or digit, at most 253 characters"
        ))
    } else {
        Ok(())
    }
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of at most
/// 63 characters (letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit).
pub fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| check_dns1123_subdomain(p).is_ok());
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(format!(
            "{key:?} is not a valid key: an optional DNS subdomain and '/', then at most 63 \
             letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// A label value: empty, or at most 63 letters, digits, `-`, `_`, `.`, starting and ending with
/// a letter or digit.
pub fn check_label_value(value: &str) -> Result<(), String> {
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "value {value:?} is not a valid label value: at most 63 letters, digits, '-', '_' \
             or '.', starting and ending with a letter or digit"
        ))
    }
}

/// Named presets, as the scheduler reads them from its presets file: a map from name to
/// [`PodOptions`].
pub type Presets = BTreeMap<String, PodOptions>;

/// Every problem in a set of presets, each as a JSON pointer (`/gpu/volumes/0/name`) and a
/// message: names are DNS-1123 labels, and each preset is valid on its own ([`Scope::Preset`]).
pub fn validate_presets(presets: &Presets) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (name, opts) in presets {
        let at = FieldPath(vec![Segment::Key(name.clone())]);
        if let Err(msg) = check_dns1123_label(name) {
            problems.push((at.pointer(""), format!("preset name {msg}")));
        }
        for p in validate(opts, Scope::Preset) {
            problems.push((p.path.pointer(&at.pointer("")), p.message));
        }
    }
    problems
}

/// Every problem in a workflow's pod options (`spec.podDefaults`, each `spec.tasks[i].pod`),
/// with its full path; what depends on the presets is left to the scheduler.
pub fn validate_workflow_pods(spec: &WorkflowSpec) -> Vec<ValidationError> {
    let defaults = spec.pod_defaults.as_ref();
    let defaults_volumes = defaults.map(|d| d.volumes.as_slice()).unwrap_or_default();
    let defaults_preset = defaults.is_some_and(|d| d.preset.is_some());
    let mut errors = Vec::new();
    let mut report = |prefix: &str, problems: Vec<PodProblem>| {
        errors.extend(problems.into_iter().map(|p| ValidationError {
            path: p.path.dotted(prefix),
            message: p.message,
        }));
    };
    if let Some(d) = defaults {
        // The defaults' mounts may name volumes only a task declares: then every task must.
        let scope = Scope::Workflow {
            other_volumes: &[],
            preset_named: true,
        };
        report("spec.podDefaults", validate(d, scope));
        for (i, m) in d.volume_mounts.iter().enumerate() {
            let declared = |vs: &[PodVolume]| vs.iter().any(|v| v.name == m.name);
            if declared(&d.volumes) || d.preset.is_some() {
                continue;
            }
            let lacking = spec.tasks.iter().find(|t| {
                let pod = t.pod.as_ref();
                !pod.is_some_and(|p| declared(&p.volumes) || p.preset.is_some())
            });
            if let Some(t) = lacking {
                report(
                    "spec.podDefaults",
                    vec![PodProblem {
                        path: FieldPath::default()
                            .key("volumeMounts")
                            .index(i)
                            .key("name"),
                        message: format!(
                            "no volume {:?} is declared here, and task {:?} declares none",
                            m.name, t.name
                        ),
                    }],
                );
            }
        }
    }
    for (i, task) in spec.tasks.iter().enumerate() {
        if let Some(pod) = &task.pod {
            let scope = Scope::Workflow {
                other_volumes: defaults_volumes,
                preset_named: defaults_preset || pod.preset.is_some(),
            };
            report(&format!("spec.tasks[{i}].pod"), validate(pod, scope));
        }
    }
    errors
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: serde_json::Value) -> PodOptions {
        serde_json::from_value(json).expect("valid pod options")
    }

    fn messages(o: &PodOptions, scope: Scope<'_>) -> Vec<String> {
        validate(o, scope)
            .into_iter()
            .map(|p| format!("{}: {}", p.path.dotted("pod"), p.message))
            .collect()
    }

    const ALONE: Scope<'static> = Scope::Workflow {
        other_volumes: &[],
        preset_named: false,
    };

    #[test]
    fn a_full_set_of_options_is_valid() {
        let o = opts(serde_json::json!({
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "lake"}},
                {"name": "conf", "configMap": {"name": "etl-conf", "defaultMode": 0o440}},
                {"name": "creds", "secret": {"secretName": "s3"}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            ],
            "volumeMounts": [
                {"name": "data", "mountPath": "/data"},
                {"name": "conf", "mountPath": "/etc/etl", "readOnly": true},
                {"name": "scratch", "mountPath": "/tmp", "subPath": "t"},
            ],
            "nodeSelector": {"node.kubernetes.io/pool": "etl"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}],
            "serviceAccountName": "etl",
            "imagePullSecrets": [{"name": "harbor"}],
            "priorityClassName": "batch-low",
            "labels": {"team": "data", "example.com/cost-center": "42"},
            "annotations": {"example.com/owner": "data team"},
            "securityContext": {"runAsUser": 1000, "fsGroup": 1000, "readOnlyRootFilesystem": true},
        }));
        assert_eq!(messages(&o, ALONE), Vec::<String>::new());
    }

    #[test]
    fn problems_are_reported_with_their_paths() {
        let o = opts(serde_json::json!({
            "preset": "GPU",
            "volumes": [
                {"name": "data", "hostPath": {"path": "/var/lib"}},
                {"name": "data", "emptyDir": {}},
                {"name": "both", "emptyDir": {}, "configMap": {"name": "x"}},
                {"name": "none"},
            ],
            "volumeMounts": [
                {"name": "missing", "mountPath": "/a"},
                {"name": "both", "mountPath": "relative"},
                {"name": "both", "mountPath": "/a"},
            ],
            "nodeSelector": {"bad key!": "v"},
            "tolerations": [{"operator": "Equal", "value": "x", "tolerationSeconds": 5}],
            "labels": {"datajump.io/run": "x", "app.kubernetes.io/managed-by": "me", "ok": "not ok!"},
            "annotations": {"datajump.io/scheduled-time": "x"},
            "securityContext": {"runAsUser": 0},
        }));
        assert_eq!(
            messages(&o, ALONE),
            [
                "pod.preset: \"GPU\" is not a valid DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit",
                "pod.volumes[0].hostPath: volume source \"hostPath\" is not allowed: a task volume is a persistentVolumeClaim, configMap, secret or emptyDir",
                "pod.volumes[1].name: volume \"data\" is declared twice",
                "pod.volumes[2]: volume \"both\" has 2 sources; expected exactly one of persistentVolumeClaim, configMap, secret, emptyDir",
                "pod.volumes[3]: volume \"none\" has 0 sources; expected exactly one of persistentVolumeClaim, configMap, secret, emptyDir",
                "pod.volumeMounts[0].name: no volume \"missing\" is declared in this pod's volumes or the workflow's podDefaults",
                "pod.volumeMounts[1].mountPath: \"relative\" is not an absolute path",
                "pod.volumeMounts[2].mountPath: \"/a\" is mounted twice",
                "pod.nodeSelector[bad key!]: key \"bad key!\" is not a valid key: an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
                "pod.labels[app.kubernetes.io/managed-by]: \"app.kubernetes.io/managed-by\" is the scheduler's or the Job controller's; choose another key",
                "pod.labels[datajump.io/run]: \"datajump.io/\" is the scheduler's or the Job controller's; choose another key",
                "pod.labels.ok: value \"not ok!\" is not a valid label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
                "pod.annotations[datajump.io/scheduled-time]: \"datajump.io/\" annotations are the scheduler's; choose another key",
                "pod.tolerations[0].tolerationSeconds: applies only to effect NoExecute",
                "pod.tolerations[0].key: an empty key matches every taint and needs operator Exists",
                "pod.securityContext.runAsUser: 0 is root, which Pod Security \"restricted\" refuses; choose a non-zero user ID",
            ]
        );
    }

    #[test]
    fn mounts_may_name_volumes_of_the_other_level_or_of_a_preset() {
        let task = opts(serde_json::json!({
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
        }));
        let defaults = opts(serde_json::json!({
            "volumes": [{"name": "shared", "emptyDir": {}}],
        }));
        let with_defaults = Scope::Workflow {
            other_volumes: &defaults.volumes,
            preset_named: false,
        };
        assert!(messages(&task, with_defaults).is_empty());
        assert_eq!(messages(&task, ALONE).len(), 1);
        let with_preset = Scope::Workflow {
            other_volumes: &[],
            preset_named: true,
        };
        assert!(messages(&task, with_preset).is_empty());
        // A preset stands alone.
        assert_eq!(
            messages(&task, Scope::Preset),
            ["pod.volumeMounts[0].name: no volume \"shared\" is declared in the preset's volumes"]
        );
    }

    #[test]
    fn presets_are_checked_with_json_pointers() {
        let presets: Presets = serde_json::from_value(serde_json::json!({
            "gpu": {"preset": "other", "labels": {"batch.kubernetes.io/job-name": "x"}},
            "Spark": {"volumes": [{"name": "x", "nfs": {"server": "n", "path": "/"}}]},
        }))
        .expect("presets");
        assert_eq!(
            validate_presets(&presets),
            [
                (
                    "/Spark".to_string(),
                    "preset name \"Spark\" is not a valid DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit".to_string()
                ),
                (
                    "/Spark/volumes/0/nfs".into(),
                    "volume source \"nfs\" is not allowed: a task volume is a persistentVolumeClaim, configMap, secret or emptyDir".into()
                ),
                (
                    "/gpu/preset".into(),
                    "a preset cannot name another preset".into()
                ),
                (
                    "/gpu/labels/batch.kubernetes.io~1job-name".into(),
                    "\"batch.kubernetes.io/\" is the scheduler's or the Job controller's; choose another key".into()
                ),
            ]
        );
    }

    #[test]
    fn levels_are_layered_preset_defaults_preset_task() {
        let presets: Presets = serde_json::from_value(serde_json::json!({
            "general": {
                "nodeSelector": {"pool": "general", "zone": "a"},
                "volumes": [{"name": "cache", "emptyDir": {}}],
                "tolerations": [{"key": "batch", "operator": "Exists"}],
                "serviceAccountName": "general",
            },
            "gpu": {
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [{"key": "batch", "operator": "Exists"}, {"key": "gpu", "operator": "Exists"}],
                "priorityClassName": "gpu",
                "securityContext": {"runAsUser": 2000, "supplementalGroups": [44]},
            },
        }))
        .expect("presets");
        let defaults = opts(serde_json::json!({
            "preset": "general",
            "nodeSelector": {"pool": "defaults"},
            "labels": {"team": "data", "tier": "etl"},
            "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}],
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
            "securityContext": {"fsGroup": 3000, "supplementalGroups": [44, 45]},
        }));
        let task = opts(serde_json::json!({
            "preset": "gpu",
            "labels": {"tier": "ml"},
            "volumeMounts": [{"name": "cache", "mountPath": "/cache", "readOnly": true}],
            "serviceAccountName": "trainer",
        }));
        let pod = resolve(&presets, Some(&defaults), Some(&task)).expect("resolves");
        assert_eq!(pod.preset, None);
        // The task's preset lies over the workflow's defaults, which lie over their preset.
        assert_eq!(pod.node_selector["pool"], "gpu");
        assert_eq!(pod.node_selector["zone"], "a");
        assert_eq!(pod.labels["team"], "data");
        assert_eq!(pod.labels["tier"], "ml");
        // Same-name volume replaced in place; same-path mount replaced; equal tolerations once.
        assert_eq!(pod.volumes.len(), 1);
        assert!(pod.volumes[0].persistent_volume_claim.is_some());
        assert_eq!(pod.volume_mounts.len(), 1);
        assert!(pod.volume_mounts[0].read_only);
        let keys: Vec<_> = pod
            .tolerations
            .iter()
            .map(|t| t.key.clone().unwrap_or_default())
            .collect();
        assert_eq!(keys, ["batch", "gpu"]);
        assert_eq!(pod.service_account_name.as_deref(), Some("trainer"));
        assert_eq!(pod.priority_class_name.as_deref(), Some("gpu"));
        let sc = pod.security_context.expect("security context");
        assert_eq!((sc.run_as_user, sc.fs_group), (Some(2000), Some(3000)));
        assert_eq!(sc.supplemental_groups, [44, 45]);

        // Without a task preset the workflow's defaults win over their preset.
        let pod = resolve(&presets, Some(&defaults), None).expect("resolves");
        assert_eq!(pod.node_selector["pool"], "defaults");
        assert_eq!(pod.service_account_name.as_deref(), Some("general"));
    }

    #[test]
    fn an_unknown_preset_or_an_undeclared_volume_does_not_resolve() {
        let presets: Presets = serde_json::from_value(serde_json::json!({
            "spark": {}, "gpu": {},
        }))
        .expect("presets");
        let task = opts(serde_json::json!({"preset": "gpu-large"}));
        let err = resolve(&presets, None, Some(&task)).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown pod preset \"gpu-large\" (known: gpu, spark)"
        );
        let err = resolve(&Presets::new(), None, Some(&task)).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown pod preset \"gpu-large\" (known: none)"
        );
        let task = opts(serde_json::json!({
            "preset": "gpu",
            "volumeMounts": [{"name": "models", "mountPath": "/models"}],
        }));
        assert_eq!(
            resolve(&presets, None, Some(&task)).expect_err("undeclared"),
            PodError::UndeclaredVolume {
                mount_path: "/models".into(),
                volume: "models".into()
            }
        );
    }

    #[test]
    fn workflow_validation_names_the_level_and_the_task() {
        let wf: crate::Workflow = serde_yaml::from_str(
            r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl}
spec:
  podDefaults:
    volumes: [{name: conf, configMap: {name: etl}}]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  tasks:
    - name: extract
      image: busybox
      pod:
        volumes: [{name: scratch, emptyDir: {}}]
        volumeMounts: [{name: conf, mountPath: /etc/etl}]
    - name: load
      image: busybox
      pod:
        volumes: [{name: host, hostPath: {path: /}}]
        securityContext: {runAsUser: 0}
"#,
        )
        .expect("valid yaml");
        let errors = crate::validate::validate_workflow(&wf).expect_err("invalid");
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "spec.podDefaults.volumeMounts[0].name: no volume \"scratch\" is declared here, and task \"load\" declares none",
                "spec.tasks[1].pod.volumes[0].hostPath: volume source \"hostPath\" is not allowed: a task volume is a persistentVolumeClaim, configMap, secret or emptyDir",
                "spec.tasks[1].pod.securityContext.runAsUser: 0 is root, which Pod Security \"restricted\" refuses; choose a non-zero user ID",
            ]
        );
    }

    #[test]
    fn the_crd_schema_has_only_the_allowed_volume_sources_and_the_one_source_rule() {
        let crd = serde_json::to_value(crate::crds()).expect("CRDs serialize");
        let task = &crd[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["tasks"]["items"]["properties"]["pod"];
        let volume = &task["properties"]["volumes"]["items"];
        let mut sources: Vec<&str> = volume["properties"]
            .as_object()
            .expect("volume properties")
            .keys()
            .map(String::as_str)
            .collect();
        sources.sort_unstable();
        assert_eq!(
            sources,
            [
                "configMap",
                "emptyDir",
                "name",
                "persistentVolumeClaim",
                "secret"
            ]
        );
        let rules = volume["x-kubernetes-validations"].to_string();
        assert!(rules.contains("exactly one source"), "{rules}");
        let sc = task["properties"]["securityContext"]["properties"]
            .as_object()
            .expect("security context properties");
        assert!(!sc.contains_key("privileged") && !sc.contains_key("capabilities"));
    }

    #[test]
    fn other_volume_sources_are_kept_for_validation_but_never_written() {
        let v: PodVolume = serde_json::from_value(serde_json::json!({
            "name": "x", "hostPath": {"path": "/"},
        }))
        .expect("volume");
        assert!(v.other_sources.contains_key("hostPath"));
        assert_eq!(
            serde_json::to_value(&v).expect("serializes"),
            serde_json::json!({"name": "x"})
        );
    }
}

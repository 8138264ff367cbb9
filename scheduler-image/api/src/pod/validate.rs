//! Validation of one level of pod options, each problem with its path below them, and of the
//! scheduler's presets.

use std::collections::BTreeSet;
use std::fmt;

use super::{PodOptions, PodVolume, Presets, RESERVED_ANNOTATION_PREFIX, RESERVED_LABEL_PREFIXES};
use crate::k8s_names::{
    check_dns1123_label, check_dns1123_subdomain, check_label_value, check_qualified_name,
};

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
    /// This path, then the field or map key `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_string()));
        p
    }

    /// This path, then list index `i`.
    pub fn index(&self, i: usize) -> Self {
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

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted(""))
    }
}

/// Every problem in one level of pod options, with its path below them.
pub fn validate(opts: &PodOptions, scope: Scope<'_>) -> Vec<PodProblem> {
    let mut problems = Problems::default();
    check_preset(&mut problems, opts, scope);
    check_volumes(&mut problems, opts);
    check_mounts(&mut problems, opts, scope);
    check_labels(&mut problems, opts);
    check_tolerations(&mut problems, opts);
    check_object_names(&mut problems, opts);
    check_security_context(&mut problems, opts);
    problems.0
}

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<PodProblem>);

impl Problems {
    fn push(&mut self, path: FieldPath, message: String) {
        self.0.push(PodProblem { path, message });
    }

    /// Records `check`'s complaint, if any, at `path`.
    fn check(&mut self, path: FieldPath, check: Result<(), String>) {
        if let Err(message) = check {
            self.push(path, message);
        }
    }
}

fn root(field: &str) -> FieldPath {
    FieldPath::default().key(field)
}

/// A preset names no other preset; another level names a preset by a DNS-1123 label.
fn check_preset(problems: &mut Problems, opts: &PodOptions, scope: Scope<'_>) {
    match (&opts.preset, scope) {
        (Some(_), Scope::Preset) => {
            problems.push(root("preset"), "a preset cannot name another preset".into())
        }
        (Some(name), _) => problems.check(root("preset"), check_dns1123_label(name)),
        (None, _) => {}
    }
}

/// Volume names are unique labels, and each volume has exactly one allowed source, whose
/// references and modes are valid.
fn check_volumes(problems: &mut Problems, opts: &PodOptions) {
    let mut names = BTreeSet::new();
    for (i, v) in opts.volumes.iter().enumerate() {
        let at = root("volumes").index(i);
        if let Err(msg) = check_dns1123_label(&v.name) {
            problems.push(at.key("name"), msg);
        } else if !names.insert(v.name.as_str()) {
            problems.push(
                at.key("name"),
                format!("volume {:?} is declared twice", v.name),
            );
        }
        check_volume_sources(problems, &at, v);
    }
}

fn check_volume_sources(problems: &mut Problems, at: &FieldPath, v: &PodVolume) {
    for key in v.other_sources.keys() {
        problems.push(
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
        n => problems.push(
            at.clone(),
            format!(
                "volume {:?} has {n} sources; expected exactly one of \
                 persistentVolumeClaim, configMap, secret, emptyDir",
                v.name
            ),
        ),
    }
    if let Some(pvc) = &v.persistent_volume_claim {
        problems.check(
            at.key("persistentVolumeClaim").key("claimName"),
            check_dns1123_subdomain(&pvc.claim_name),
        );
    }
    if let Some(cm) = &v.config_map {
        problems.check(
            at.key("configMap").key("name"),
            check_dns1123_subdomain(&cm.name),
        );
        check_mode(problems, at.key("configMap"), cm.default_mode);
    }
    if let Some(s) = &v.secret {
        match s.secret_name.as_deref() {
            None => problems.push(at.key("secret").key("secretName"), "is required".into()),
            Some(n) => problems.check(
                at.key("secret").key("secretName"),
                check_dns1123_subdomain(n),
            ),
        }
        check_mode(problems, at.key("secret"), s.default_mode);
    }
    if let Some(medium) = v.empty_dir.as_ref().and_then(|e| e.medium.as_deref())
        && !matches!(medium, "" | "Memory")
    {
        problems.push(
            at.key("emptyDir").key("medium"),
            format!("{medium:?}: expected \"\" (the node's disk) or \"Memory\""),
        );
    }
}

/// Every mount names a volume some level declares, at an absolute path mounted once, with a
/// relative sub-path that does not climb out of the volume.
fn check_mounts(problems: &mut Problems, opts: &PodOptions, scope: Scope<'_>) {
    let (other_volumes, preset_named) = match scope {
        Scope::Preset => (&[][..], false),
        Scope::Workflow {
            other_volumes,
            preset_named,
        } => (other_volumes, preset_named),
    };
    let mut paths = BTreeSet::new();
    for (i, m) in opts.volume_mounts.iter().enumerate() {
        let at = root("volumeMounts").index(i);
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
            problems.push(
                at.key("name"),
                format!("no volume {:?} is declared {hint}", m.name),
            );
        }
        if !m.mount_path.starts_with('/') {
            problems.push(
                at.key("mountPath"),
                format!("{:?} is not an absolute path", m.mount_path),
            );
        } else if !paths.insert(m.mount_path.trim_end_matches('/')) {
            problems.push(
                at.key("mountPath"),
                format!("{:?} is mounted twice", m.mount_path),
            );
        }
        if let Some(sub) = &m.sub_path
            && (sub.starts_with('/') || sub.split('/').any(|part| part == ".."))
        {
            problems.push(
                at.key("subPath"),
                format!("{sub:?}: expected a relative path without '..'"),
            );
        }
    }
}

/// Node selector, labels and annotations: valid keys and values, none of the scheduler's or
/// the Job controller's own.
fn check_labels(problems: &mut Problems, opts: &PodOptions) {
    for (k, v) in &opts.node_selector {
        check_label(problems, root("nodeSelector").key(k), k, v);
    }
    for (k, v) in &opts.labels {
        let at = root("labels").key(k);
        if let Some(prefix) = RESERVED_LABEL_PREFIXES.iter().find(|p| k.starts_with(*p)) {
            problems.push(
                at,
                format!(
                    "{prefix:?} is the scheduler's or the Job controller's; choose another key"
                ),
            );
            continue;
        }
        check_label(problems, at, k, v);
    }
    for k in opts.annotations.keys() {
        let at = root("annotations").key(k);
        if k.starts_with(RESERVED_ANNOTATION_PREFIX) {
            problems.push(
                at,
                format!(
                    "{RESERVED_ANNOTATION_PREFIX:?} annotations are the scheduler's; choose another key"
                ),
            );
        } else if let Err(msg) = check_qualified_name(k) {
            problems.push(at, format!("key {msg}"));
        }
    }
}

fn check_label(problems: &mut Problems, at: FieldPath, key: &str, value: &str) {
    if let Err(msg) = check_qualified_name(key) {
        problems.push(at.clone(), format!("key {msg}"));
    }
    problems.check(at, check_label_value(value));
}

/// Tolerations as the API server accepts them: a known operator and effect, no value with
/// `Exists`, `tolerationSeconds` only with `NoExecute`, an empty key only with `Exists`.
fn check_tolerations(problems: &mut Problems, opts: &PodOptions) {
    for (i, t) in opts.tolerations.iter().enumerate() {
        let at = root("tolerations").index(i);
        match t.operator.as_deref() {
            None | Some("Equal") => {}
            Some("Exists") => {
                if t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                    problems.push(at.key("value"), "must be empty with operator Exists".into());
                }
            }
            Some(op) => problems.push(
                at.key("operator"),
                format!("{op:?}: expected Equal or Exists"),
            ),
        }
        match t.effect.as_deref() {
            None | Some("" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") => {}
            Some(e) => problems.push(
                at.key("effect"),
                format!("{e:?}: expected NoSchedule, PreferNoSchedule or NoExecute"),
            ),
        }
        if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
            problems.push(
                at.key("tolerationSeconds"),
                "applies only to effect NoExecute".into(),
            );
        }
        if t.key.as_deref().unwrap_or_default().is_empty()
            && t.operator.as_deref() != Some("Exists")
        {
            problems.push(
                at.key("key"),
                "an empty key matches every taint and needs operator Exists".into(),
            );
        }
    }
}

/// The objects the pod refers to by name: its service account, priority class and image pull
/// secrets.
fn check_object_names(problems: &mut Problems, opts: &PodOptions) {
    for (field, value) in [
        ("serviceAccountName", &opts.service_account_name),
        ("priorityClassName", &opts.priority_class_name),
    ] {
        if let Some(name) = value.as_deref() {
            problems.check(root(field), check_dns1123_subdomain(name));
        }
    }
    for (i, s) in opts.image_pull_secrets.iter().enumerate() {
        problems.check(
            root("imagePullSecrets").index(i).key("name"),
            check_dns1123_subdomain(&s.name),
        );
    }
}

/// User and group IDs: not root, none negative.
fn check_security_context(problems: &mut Problems, opts: &PodOptions) {
    let Some(sc) = &opts.security_context else {
        return;
    };
    let at = root("securityContext");
    match sc.run_as_user {
        Some(0) => problems.push(
            at.key("runAsUser"),
            "0 is root, which Pod Security \"restricted\" refuses; choose a non-zero user ID"
                .into(),
        ),
        Some(n) if n < 0 => problems.push(at.key("runAsUser"), format!("{n} is negative")),
        _ => {}
    }
    for (field, value) in [("runAsGroup", sc.run_as_group), ("fsGroup", sc.fs_group)] {
        if let Some(n) = value.filter(|n| *n < 0) {
            problems.push(at.key(field), format!("{n} is negative"));
        }
    }
    for (i, g) in sc.supplemental_groups.iter().enumerate() {
        if *g < 0 {
            problems.push(
                at.key("supplementalGroups").index(i),
                format!("{g} is negative"),
            );
        }
    }
}

fn check_mode(problems: &mut Problems, at: FieldPath, mode: Option<i32>) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        problems.push(
            at.key("defaultMode"),
            format!("{m} is no file mode; expected 0-511 (0777 octal)"),
        );
    }
}

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

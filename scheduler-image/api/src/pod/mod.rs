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

mod layering;
mod options;
mod validate;

pub use layering::{PodError, resolve};
pub use options::{
    PodOptions, PodVolume, PodVolumeMount, Presets, RESERVED_ANNOTATION_PREFIX,
    RESERVED_LABEL_PREFIXES, TaskSecurityContext,
};
pub use validate::{FieldPath, PodProblem, Scope, Segment, validate, validate_presets};

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

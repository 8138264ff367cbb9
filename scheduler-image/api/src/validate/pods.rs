//! The pod options of a workflow (`spec.podDefaults`, each `spec.tasks[i].pod`), checked
//! level by level with [`crate::pod::validate`] and reported with their full paths.

use super::ValidationError;
use crate::pod::{FieldPath, PodProblem, PodVolume, Scope, validate};
use crate::workflow::WorkflowSpec;

/// Every problem in a workflow's pod options (`spec.podDefaults`, each `spec.tasks[i].pod`),
/// with its full path; what depends on the presets is left to the scheduler.
pub(super) fn validate_workflow_pods(spec: &WorkflowSpec) -> Vec<ValidationError> {
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

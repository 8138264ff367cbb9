//! A manifest as the user wrote it, judged in one pass: its structure against the CRD's schema
//! (unknown fields, types, required fields, enums), then, when it reads as the typed resource,
//! the rules a schema cannot express (DAG, cron and time zone, names, ranges, references). Every
//! problem comes back at once, each with its path, so a file is fixed in one edit.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::structure::{Resource, check_structure};
use super::{ValidationErrors, validate_workflow};
use crate::{Workflow, WorkflowRun};

/// A Workflow manifest: the typed Workflow, or every problem found in it.
pub fn check_workflow_document(document: &Value) -> Result<Workflow, ValidationErrors> {
    let (workflow, mut errors) = typed::<Workflow>(Resource::Workflow, document);
    if let Some(wf) = &workflow
        && let Err(rules) = validate_workflow(wf)
    {
        // A rule that judges a field the schema lacks says more (`volume source "hostPath" is
        // not allowed: …`) than `unknown field`: one message per path.
        errors
            .0
            .retain(|known| !rules.iter().any(|r| r.path == known.path));
        errors.0.extend(rules.0);
    }
    match workflow {
        Some(wf) if errors.0.is_empty() => Ok(wf),
        _ => Err(errors),
    }
}

/// A WorkflowRun manifest: the typed run, or every problem found in it.
pub fn check_run_document(document: &Value) -> Result<WorkflowRun, ValidationErrors> {
    let (run, errors) = typed::<WorkflowRun>(Resource::WorkflowRun, document);
    match run {
        Some(run) if errors.0.is_empty() => Ok(run),
        _ => Err(errors),
    }
}

/// The structural problems, and the typed object when the document reads as one. A reading
/// error is added only where the structure check found nothing at its path (they usually say
/// the same thing; serde stops at the first, the structure check does not).
fn typed<T: DeserializeOwned>(
    resource: Resource,
    document: &Value,
) -> (Option<T>, ValidationErrors) {
    let mut errors = check_structure(resource, document);
    match serde_path_to_error::deserialize::<_, T>(document) {
        Ok(object) => (Some(object), errors),
        Err(e) => {
            let path = match e.path().to_string() {
                root if root == "." => String::new(),
                path => path,
            };
            if !errors.iter().any(|known| known.path == path) {
                errors.push(path, e.inner().to_string());
            }
            (None, errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(result: Result<impl Sized, ValidationErrors>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn unknown_fields_and_rule_violations_come_together() {
        let doc = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl"},
            "spec": {
                "schedule": "0 25 * * *",
                "timezone": "Mars/Olympus",
                "tasks": [
                    {"name": "a", "image": "busybox", "comand": ["run"]},
                    {"name": "b", "image": "busybox", "dependsOn": ["c"]},
                ],
            },
        });
        let got = messages(check_workflow_document(&doc));
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(
            got[0].starts_with("spec.tasks[0].comand: unknown field"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("spec.schedule: invalid cron"),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with("spec.timezone: unknown time zone"),
            "{got:#?}"
        );
        assert!(
            got[3].starts_with("spec.tasks[1].dependsOn[0]: unknown task"),
            "{got:#?}"
        );
    }

    #[test]
    fn a_type_error_is_reported_once_and_a_valid_manifest_passes() {
        let doc = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl"},
            "spec": {"schedul": "@daily", "tasks": [{"name": "a", "image": "x", "retries": "3"}]},
        });
        assert_eq!(
            messages(check_workflow_document(&doc)),
            [
                "spec.schedul: unknown field \"schedul\" (did you mean \"schedule\"?)",
                "spec.tasks[0].retries: expected an integer, found \"3\" (a string)",
            ]
        );
        // What serde refuses and the schema's types allow still shows, at its path.
        let negative = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl"},
            "spec": {"tasks": [{"name": "a", "image": "x", "retries": -1}]},
        });
        let got = messages(check_workflow_document(&negative));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].starts_with("spec.tasks[0].retries: invalid value"),
            "{got:#?}"
        );

        let ok = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl"},
            "spec": {"schedule": "@daily", "tasks": [{"name": "a", "image": "x"}]},
        });
        assert!(check_workflow_document(&ok).is_ok());
        let run = json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
            "metadata": {"name": "etl-1"}, "spec": {"workflowName": "etl"},
        });
        assert_eq!(check_run_document(&run).unwrap().spec.workflow_name, "etl");
    }
}

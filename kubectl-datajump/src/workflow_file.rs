//! A workflow manifest as a user writes it, read and checked offline with the scheduler's own
//! rules: kind and apiVersion, the structure against the CRD's schema (unknown fields with the
//! field probably meant, types, required fields), then the DAG, cron, time zone and name rules —
//! every problem in one pass, each with its file and field path. `workflow validate`, `submit`,
//! `graph -f` and `backfill -f` all start here, so a file is judged the same way whichever verb
//! reads it; `workflow validate` also takes a WorkflowRun manifest.

use std::path::Path;

use datajump_api::validate::{ValidationErrors, check_run_document, check_workflow_document};
use datajump_api::{Workflow, WorkflowRun};
use serde_json::Value;

use crate::error::{InputError, Problem};

/// A workflow file read and checked: the typed object and the document as written.
#[derive(Debug)]
pub struct CheckedWorkflow {
    pub workflow: Workflow,
    pub document: Value,
}

/// A manifest `workflow validate` accepts.
#[derive(Debug)]
pub(crate) enum Manifest {
    Workflow(Box<CheckedWorkflow>),
    Run(Box<WorkflowRun>),
}

/// Reads and validates a workflow manifest; every problem is reported with the file and its
/// field path.
pub(crate) fn check_file(path: &Path) -> Result<CheckedWorkflow, InputError> {
    let file = path.display().to_string();
    let document = read(path)?;
    expect_kind(&document, &["Workflow"], Some(&file))?;
    check_workflow(document, Some(&file))
}

/// Reads and validates a Workflow or WorkflowRun manifest (`workflow validate`).
pub(crate) fn check_manifest_file(path: &Path) -> Result<Manifest, InputError> {
    let file = path.display().to_string();
    let document = read(path)?;
    match expect_kind(&document, &["Workflow", "WorkflowRun"], Some(&file))? {
        "Workflow" => Ok(Manifest::Workflow(Box::new(check_workflow(
            document,
            Some(&file),
        )?))),
        _ => check_run_document(&document)
            .map(|run| Manifest::Run(Box::new(run)))
            .map_err(|errors| problems(errors, Some(&file))),
    }
}

/// Validates manifest text (YAML or JSON) of a Workflow.
pub fn check_text(text: &str) -> Result<CheckedWorkflow, InputError> {
    let document = parse(text, None)?;
    expect_kind(&document, &["Workflow"], None)?;
    check_workflow(document, None)
}

fn read(path: &Path) -> Result<Value, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read {}: {e}", path.display())))?;
    parse(&text, Some(&path.display().to_string()))
}

fn parse(text: &str, file: Option<&str>) -> Result<Value, InputError> {
    serde_yaml::from_str(text).map_err(|e| {
        InputError::new(format!(
            "{}invalid YAML: {e}",
            file.map(|f| format!("{f}: ")).unwrap_or_default()
        ))
    })
}

/// The manifest's kind, when it is one of `kinds` in `datajump.io/v1alpha1`.
fn expect_kind<'a>(
    document: &'a Value,
    kinds: &[&str],
    file: Option<&str>,
) -> Result<&'a str, InputError> {
    let kind = document.get("kind").and_then(Value::as_str);
    let api_version = document.get("apiVersion").and_then(Value::as_str);
    match kind {
        Some(k) if kinds.contains(&k) && api_version == Some("datajump.io/v1alpha1") => Ok(k),
        _ => Err(InputError::new(format!(
            "{}expected apiVersion datajump.io/v1alpha1 and kind {}, found {} {}",
            file.map(|f| format!("{f}: ")).unwrap_or_default(),
            kinds.join(" or "),
            api_version.unwrap_or("<no apiVersion>"),
            kind.unwrap_or("<no kind>")
        ))),
    }
}

fn check_workflow(document: Value, file: Option<&str>) -> Result<CheckedWorkflow, InputError> {
    match check_workflow_document(&document) {
        Ok(workflow) => Ok(CheckedWorkflow { workflow, document }),
        Err(errors) => Err(problems(errors, file)),
    }
}

/// `FILE: N problems`, then one `FILE: PATH: what` line each.
fn problems(errors: ValidationErrors, file: Option<&str>) -> InputError {
    let list: Vec<Problem> = errors
        .iter()
        .map(|e| Problem {
            file: file.map(str::to_string),
            path: e.path.clone(),
            message: e.message.clone(),
        })
        .collect();
    let n = list.len();
    let summary = format!(
        "{}{n} problem{}",
        file.map(|f| format!("{f}: ")).unwrap_or_default(),
        if n == 1 { "" } else { "s" }
    );
    InputError::with_problems(summary, list)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A diamond DAG on a nightly schedule (the workflow views' tests draw it too).
    pub(crate) const WF: &str = r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl}
spec:
  schedule: "0 2 * * *"
  tasks:
    - {name: extract, image: busybox}
    - {name: clean, image: busybox, dependsOn: [extract]}
    - {name: enrich, image: busybox, dependsOn: [extract]}
    - {name: load, image: busybox, dependsOn: [clean, enrich]}
"#;

    #[test]
    fn valid_file_passes_and_keeps_the_document_as_written() {
        let c = check_text(WF).unwrap();
        assert_eq!(c.workflow.spec.tasks.len(), 4);
        assert!(
            c.document["spec"].get("suspend").is_none(),
            "defaults must not be added to what we apply"
        );
    }

    #[test]
    fn problems_carry_field_paths() {
        let bad = WF.replace("dependsOn: [clean, enrich]", "dependsOn: [clean, lod]");
        let err = check_text(&bad).unwrap_err().to_string();
        assert!(
            err.contains(r#"spec.tasks[3].dependsOn[1]: unknown task "lod""#),
            "{err}"
        );
        let wrong_kind = check_text("apiVersion: v1\nkind: Pod\n")
            .unwrap_err()
            .to_string();
        assert!(wrong_kind.contains("expected apiVersion datajump.io/v1alpha1 and kind Workflow"));
        let cyc = WF.replace(
            "- {name: extract, image: busybox}",
            "- {name: extract, image: busybox, dependsOn: [load]}",
        );
        assert!(check_text(&cyc).unwrap_err().to_string().contains("cycle"));
        let no_image = WF.replace("{name: clean, image: busybox,", "{name: clean,");
        let err = check_text(&no_image).unwrap_err().to_string();
        assert!(
            err.contains("spec.tasks[1]: missing field `image`"),
            "{err}"
        );
        let bad_type = WF.replace("schedule: \"0 2 * * *\"", "schedule: [1]");
        let err = check_text(&bad_type).unwrap_err().to_string();
        assert!(
            err.contains("spec.schedule: expected a string, found a list"),
            "{err}"
        );
    }
}

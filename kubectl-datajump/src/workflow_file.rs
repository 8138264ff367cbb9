//! A workflow manifest as a user writes it, read and checked offline with the scheduler's own
//! rules: kind and apiVersion, the typed schema (every problem named by its field path), then
//! the DAG, cron and name rules. `workflow validate`, `submit`, `graph -f` and `backfill -f`
//! all start here, so a file is judged the same way whichever verb reads it.

use std::path::Path;

use datajump_api::Workflow;
use datajump_api::validate::validate_workflow;
use serde_json::Value;

use crate::error::InputError;

/// A workflow file read and checked: the typed object and the document as written.
#[derive(Debug)]
pub struct CheckedWorkflow {
    pub workflow: Workflow,
    pub document: Value,
}

/// Reads and validates a workflow manifest; every problem is reported with its field path.
pub(crate) fn check_file(path: &Path) -> Result<CheckedWorkflow, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read {}: {e}", path.display())))?;
    check_text(&text).map_err(|e| InputError::new(format!("{}: {e}", path.display())))
}

/// Validates manifest text (YAML or JSON): kind/apiVersion, the typed schema, then the
/// scheduler's DAG, cron and name rules.
pub fn check_text(text: &str) -> Result<CheckedWorkflow, InputError> {
    let document: Value =
        serde_yaml::from_str(text).map_err(|e| InputError::new(format!("invalid YAML: {e}")))?;
    let kind = document.get("kind").and_then(Value::as_str);
    let api_version = document.get("apiVersion").and_then(Value::as_str);
    if kind != Some("Workflow") || api_version != Some("datajump.io/v1alpha1") {
        return Err(InputError::new(format!(
            "expected apiVersion datajump.io/v1alpha1 and kind Workflow, found {} {}",
            api_version.unwrap_or("<no apiVersion>"),
            kind.unwrap_or("<no kind>")
        )));
    }
    let workflow: Workflow = serde_path_error(&document)?;
    validate_workflow(&workflow).map_err(|errors| {
        let n = errors.0.len();
        InputError::new(format!(
            "{n} problem{}:\n{errors}",
            if n == 1 { "" } else { "s" }
        ))
    })?;
    Ok(CheckedWorkflow { workflow, document })
}

/// Deserializes into the typed Workflow; a type error names its field path
/// (`spec.tasks[2]: missing field `image``).
fn serde_path_error(document: &Value) -> Result<Workflow, InputError> {
    serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        InputError::new(format!("1 problem:\n{path}{}", e.inner()))
    })
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
        assert!(err.contains("spec.schedule: invalid type"), "{err}");
    }
}

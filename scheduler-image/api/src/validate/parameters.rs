//! Workflow parameters and the run variables a task may refer to: declared names, references
//! to `$(DATAJUMP_…)` variables, and the values a run resolves them to.

use std::collections::{BTreeMap, BTreeSet};

use super::{ValidationErrors, suggestion};
use crate::runtime;
use crate::workflow::{TaskSpec, WorkflowSpec};

pub(super) fn validate_parameters(spec: &WorkflowSpec, errors: &mut ValidationErrors) {
    let mut seen = BTreeSet::new();
    for (i, p) in spec.parameters.iter().enumerate() {
        let path = format!("spec.parameters[{i}].name");
        let valid = p.name.len() <= 50
            && p.name.starts_with(|c: char| c.is_ascii_lowercase())
            && p.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            errors.push(
                path,
                format!(
                    "{:?}: expected lower-case letters, digits and '-', starting with a letter, at most 50 characters",
                    p.name
                ),
            );
        } else if !seen.insert(p.name.as_str()) {
            errors.push(path, format!("parameter {:?} is declared twice", p.name));
        }
    }
}

/// Every `$(DATAJUMP_…)` in a task's command, args and env values must name a run variable (see
/// [`crate::runtime`]) or a declared parameter's; any other `$(…)` is the task's own business
/// (the kubelet leaves undefined ones as written, so shell command substitution keeps working).
pub(super) fn validate_references(spec: &WorkflowSpec, errors: &mut ValidationErrors) {
    let mut known: Vec<String> = runtime::BUILTIN.iter().map(|v| v.to_string()).collect();
    known.extend(spec.parameters.iter().map(|p| runtime::param_var(&p.name)));
    for (i, task) in spec.tasks.iter().enumerate() {
        references_of(task, &format!("spec.tasks[{i}]"), &known, errors);
    }
    if let Some(task) = &spec.on_exit {
        known.extend(runtime::EXIT_ONLY.iter().map(|v| v.to_string()));
        references_of(task, "spec.onExit", &known, errors);
    }
}

fn references_of(task: &TaskSpec, path: &str, known: &[String], errors: &mut ValidationErrors) {
    for (k, env) in task.env.iter().enumerate() {
        if let Some(value) = &env.value {
            report_unknown(errors, &format!("{path}.env[{k}].value"), value, known);
        }
    }
    for (field, list) in [("command", &task.command), ("args", &task.args)] {
        for (j, text) in list.iter().enumerate() {
            report_unknown(errors, &format!("{path}.{field}[{j}]"), text, known);
        }
    }
}

fn report_unknown(errors: &mut ValidationErrors, path: &str, text: &str, known: &[String]) {
    for unknown in runtime::unknown_references(text, known) {
        if runtime::EXIT_ONLY.contains(&unknown.name.as_str()) {
            errors.push(
                path,
                format!(
                    "$({}) is known only to the onExit task, which runs once the outcome is known",
                    unknown.name
                ),
            );
            continue;
        }
        let hint = match &unknown.suggestion {
            Some(s) => format!(" (did you mean $({s})?)"),
            None => String::new(),
        };
        errors.push(
            path,
            format!(
                "$({}) is no run variable and no declared parameter{hint}: expected one of {} or DATAJUMP_PARAM_<NAME> of a parameter in spec.parameters",
                unknown.name,
                runtime::BUILTIN.join(", ")
            ),
        );
    }
}

/// The parameter values of a run: each declared parameter's value from `given` (a run's
/// `spec.parameters`), else its default. A value for an undeclared parameter, or none for a
/// parameter without a default, is an error naming it.
pub fn resolve_parameters(
    spec: &WorkflowSpec,
    given: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    for name in given.keys() {
        if !spec.parameters.iter().any(|p| &p.name == name) {
            let hint = suggestion(name, spec.parameters.iter().map(|p| p.name.as_str()))
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            errors.push(
                format!("spec.parameters.{name}"),
                format!("the workflow declares no parameter {name:?}{hint}"),
            );
        }
    }
    let mut values = Vec::new();
    for p in &spec.parameters {
        match given.get(&p.name).or(p.default.as_ref()) {
            Some(v) => values.push((p.name.clone(), v.clone())),
            None => errors.push(
                format!("spec.parameters.{}", p.name),
                format!(
                    "parameter {:?} has no default: the run must give it",
                    p.name
                ),
            ),
        }
    }
    if errors.0.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

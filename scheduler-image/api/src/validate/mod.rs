//! Validation of Workflows, shared by the scheduler (which refuses to schedule an invalid
//! workflow) and `kubectl datajump workflow validate`.
//!
//! Every problem is collected, not just the first, each with the field path it concerns
//! (`spec.tasks[3].dependsOn[0]`) so that users can fix a manifest in one pass.

mod document;
mod graph;
mod parameters;
mod pods;
mod scalars;
mod structure;

use std::fmt;

use crate::k8s_names::check_dns1123_label;
use crate::workflow::{Workflow, WorkflowSpec};

pub use document::{check_run_document, check_workflow_document};
pub use parameters::resolve_parameters;
pub use structure::{Resource, check_structure};

/// One problem in a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Field path, e.g. `spec.tasks[3].dependsOn[0]`.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All problems found in a workflow; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// The problems, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &ValidationError> {
        self.0.iter()
    }
}

/// Bounds that keep one workflow from overloading the scheduler or the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of tasks in a workflow.
    pub max_tasks: usize,
    /// Maximum retries per task.
    pub max_retries: u32,
    /// Maximum history limit (succeeded or failed runs kept).
    pub max_history: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tasks: 1000,
            max_retries: 10,
            max_history: 100,
        }
    }
}

/// The dependency graph of a valid workflow, by task index (the order of `spec.tasks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    /// `deps[i]`: indices of the tasks task `i` depends on.
    pub deps: Vec<Vec<usize>>,
    /// `dependents[i]`: indices of the tasks that depend on task `i`.
    pub dependents: Vec<Vec<usize>>,
}

/// Validates a workflow with the default [`Limits`].
pub fn validate_workflow(wf: &Workflow) -> Result<(), ValidationErrors> {
    validate_workflow_with(wf, &Limits::default()).map(|_| ())
}

/// Validates a workflow and returns its dependency graph.
pub fn validate_workflow_with(wf: &Workflow, limits: &Limits) -> Result<Dag, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    match wf.metadata.name.as_deref() {
        None | Some("") => errors.push("metadata.name", "is required"),
        Some(name) => {
            if let Err(msg) = check_dns1123_label(name) {
                errors.push("metadata.name", msg);
            }
        }
    }
    let dag = validate_spec_into(&wf.spec, limits, &mut errors);
    match dag {
        Some(dag) if errors.0.is_empty() => Ok(dag),
        _ => Err(errors),
    }
}

/// Validates a workflow spec (without its name) and returns its dependency graph.
pub fn validate_spec(spec: &WorkflowSpec, limits: &Limits) -> Result<Dag, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    match validate_spec_into(spec, limits, &mut errors) {
        Some(dag) if errors.0.is_empty() => Ok(dag),
        _ => Err(errors),
    }
}

fn validate_spec_into(
    spec: &WorkflowSpec,
    limits: &Limits,
    errors: &mut ValidationErrors,
) -> Option<Dag> {
    scalars::validate_schedule(spec, errors);
    scalars::validate_scalars(spec, limits, errors);
    parameters::validate_parameters(spec, errors);
    parameters::validate_references(spec, errors);
    errors.0.extend(pods::validate_workflow_pods(spec));
    if spec.tasks.is_empty() {
        errors.push("spec.tasks", "at least one task is required");
        return None;
    }
    if spec.tasks.len() > limits.max_tasks {
        errors.push(
            "spec.tasks",
            format!(
                "{} tasks exceed the limit of {}",
                spec.tasks.len(),
                limits.max_tasks
            ),
        );
    }
    let index = graph::task_index(spec, limits, errors);
    let dag = graph::dependency_graph(spec, &index, errors);
    graph::report_cycles(spec, &dag, errors);
    Some(dag)
}

/// The closest known name within edit distance 2, to suggest for a typo.
fn suggestion<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (strsim::levenshtein(wanted, n), n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskSpec;

    fn task(name: &str, deps: &[&str]) -> TaskSpec {
        serde_json::from_value(serde_json::json!({
            "name": name, "image": "busybox", "dependsOn": deps,
        }))
        .expect("valid task json")
    }

    fn workflow(name: &str, tasks: Vec<TaskSpec>) -> Workflow {
        let mut spec: WorkflowSpec =
            serde_json::from_value(serde_json::json!({"tasks": []})).expect("valid spec");
        spec.tasks = tasks;
        Workflow::new(name, spec)
    }

    fn messages(wf: &Workflow) -> Vec<String> {
        match validate_workflow(wf) {
            Ok(()) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_diamond_is_valid() {
        let wf = workflow(
            "etl",
            vec![
                task("a", &[]),
                task("b", &["a"]),
                task("c", &["a"]),
                task("d", &["b", "c"]),
            ],
        );
        let dag = validate_workflow_with(&wf, &Limits::default()).expect("valid");
        assert_eq!(dag.deps[3], [1, 2]);
        assert_eq!(dag.dependents[0], [1, 2]);
    }

    #[test]
    fn names_the_cycle() {
        let wf = workflow(
            "etl",
            vec![
                task("extract", &["load"]),
                task("load", &["extract"]),
                task("report", &["load"]),
            ],
        );
        assert_eq!(
            messages(&wf),
            ["spec.tasks: cycle: extract -> load -> extract"]
        );
    }

    #[test]
    fn names_a_longer_cycle_and_every_disjoint_one() {
        let wf = workflow(
            "etl",
            vec![
                task("a", &["c"]),
                task("b", &["a"]),
                task("c", &["b"]),
                task("x", &["y"]),
                task("y", &["x"]),
            ],
        );
        assert_eq!(
            messages(&wf),
            [
                "spec.tasks: cycle: a -> b -> c -> a",
                "spec.tasks: cycle: x -> y -> x"
            ]
        );
    }

    #[test]
    fn unknown_duplicate_and_self_dependencies_are_all_reported_with_paths() {
        let wf = workflow(
            "Bad_Name",
            vec![
                task("extract", &[]),
                task("load", &["extract", "extract"]),
                task("load", &[]),
                task("report", &["lod", "report", "nothing-like-it"]),
            ],
        );
        assert_eq!(
            messages(&wf),
            [
                "metadata.name: \"Bad_Name\" is not a valid DNS-1123 label: use lower-case \
                 letters, digits and '-', starting and ending with a letter or digit",
                "spec.tasks[2].name: duplicate task name \"load\" (first defined at spec.tasks[1])",
                "spec.tasks[1].dependsOn[1]: \"extract\" is listed more than once",
                "spec.tasks[3].dependsOn[0]: unknown task \"lod\" (did you mean \"load\"?)",
                "spec.tasks[3].dependsOn[1]: task \"report\" cannot depend on itself",
                "spec.tasks[3].dependsOn[2]: unknown task \"nothing-like-it\"",
            ]
        );
    }

    #[test]
    fn schedule_timezone_and_limits_are_checked() {
        let mut wf = workflow("etl", vec![task("a", &[])]);
        wf.spec.schedule = Some("0 25 * * *".into());
        wf.spec.timezone = Some("Europe/Nowhere".into());
        wf.spec.parallelism = Some(0);
        wf.spec.starting_deadline_seconds = Some(-1);
        wf.spec.successful_runs_history_limit = 1000;
        wf.spec.tasks[0].retries = 50;
        wf.spec.tasks[0].image = " ".into();
        wf.spec.tasks[0].timeout_seconds = Some(0);
        wf.spec.tasks[0].pending_timeout_seconds = Some(-5);
        let got = messages(&wf);
        let want = [
            "spec.schedule: invalid cron schedule \"0 25 * * *\": hour field: value 25 is out of range 0-23",
            "spec.timezone: unknown time zone \"Europe/Nowhere\"; expected an IANA name such as \
             \"Europe/Berlin\" or \"UTC\"",
            "spec.startingDeadlineSeconds: -1 is negative; expected >= 0",
            "spec.parallelism: 0 would never start a task; expected at least 1",
            "spec.successfulRunsHistoryLimit: 1000 exceeds the limit of 100",
            "spec.tasks[0].image: must not be empty",
            "spec.tasks[0].retries: 50 exceeds the limit of 10",
            "spec.tasks[0].timeoutSeconds: 0 must be at least 1",
            "spec.tasks[0].pendingTimeoutSeconds: -5 must be at least 1",
        ];
        assert_eq!(got, want);

        wf = workflow("etl", vec![task("a", &[])]);
        wf.spec.schedule = Some("@hourly".into());
        wf.spec.timezone = Some("Europe/Nowhere".into());
        assert_eq!(
            messages(&wf),
            [
                "spec.timezone: unknown time zone \"Europe/Nowhere\"; expected an IANA name such as \
              \"Europe/Berlin\" or \"UTC\""
            ]
        );
    }

    #[test]
    fn several_schedules_are_checked_entry_by_entry_with_their_paths() {
        let wf = workflow_yaml(
            r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl}
spec:
  schedules:
    - {schedule: "0 2 * * 1-5", timezone: Asia/Shanghai}
    - {schedule: "0 25 * * *", timezone: Mars/Olympus}
    - {schedule: "0 2 * * 1-5", timezone: Asia/Shanghai}
    - {schedule: "@daily"}
    - {schedule: "@daily", timezone: UTC}
    - {schedule: "0 0 * * *"}
  tasks: [{name: a, image: busybox}]
"#,
        );
        assert_eq!(
            messages(&wf),
            [
                "spec.schedules[2]: \"0 2 * * 1-5\" in Asia/Shanghai is spec.schedules[0] again; \
                 give each schedule once",
                "spec.schedules[4]: \"@daily\" in UTC is spec.schedules[3] again; give each \
                 schedule once",
                "spec.schedules[1].schedule: invalid cron schedule \"0 25 * * *\": hour field: \
                 value 25 is out of range 0-23",
                "spec.schedules[1].timezone: unknown time zone \"Mars/Olympus\"; expected an IANA \
                 name such as \"Europe/Berlin\" or \"UTC\"",
            ],
            "@daily and 0 0 * * * meet every night: one tick, not a mistake"
        );
    }

    #[test]
    fn both_schedule_forms_or_an_empty_list_are_refused() {
        let wf = workflow_yaml(
            r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl}
spec:
  schedule: "0 2 * * *"
  timezone: Europe/Berlin
  schedules: [{schedule: "0 9 * * *", timezone: Europe/Berlin}]
  tasks: [{name: a, image: busybox}]
"#,
        );
        assert_eq!(
            messages(&wf),
            [
                "spec.schedules: give either spec.schedule (one cron schedule) or spec.schedules \
                 (several), not both",
                "spec.timezone: goes with spec.schedule; with spec.schedules, give each entry its \
                 own timezone",
            ]
        );
        let mut empty = wf.clone();
        (empty.spec.schedule, empty.spec.timezone) = (None, None);
        empty.spec.schedules = Some(Vec::new());
        assert_eq!(
            messages(&empty),
            [
                "spec.schedules: at least one schedule is required (leave the field out for a \
              workflow started by hand only)"
            ]
        );
        let mut many = empty.clone();
        many.spec.schedules = Some(
            (0..21)
                .map(|m| crate::ScheduleSpec {
                    schedule: format!("{m} 2 * * *"),
                    timezone: None,
                })
                .collect(),
        );
        assert_eq!(
            messages(&many),
            ["spec.schedules: 21 schedules exceed the limit of 20"]
        );
    }

    #[test]
    fn task_count_limit_and_empty_tasks() {
        let tasks: Vec<TaskSpec> = (0..1001).map(|i| task(&format!("t{i}"), &[])).collect();
        assert_eq!(
            messages(&workflow("big", tasks)),
            ["spec.tasks: 1001 tasks exceed the limit of 1000"]
        );
        assert_eq!(
            messages(&workflow("none", vec![])),
            ["spec.tasks: at least one task is required"]
        );
    }

    #[test]
    fn display_is_one_problem_per_line() {
        let wf = workflow("etl", vec![task("a", &["b"]), task("a", &[])]);
        let err = validate_workflow(&wf).expect_err("invalid");
        let text = err.to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().all(|l| l.starts_with("spec.tasks[")), "{text}");
    }

    fn with_parameters(tasks: serde_json::Value, parameters: serde_json::Value) -> Workflow {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl"},
            "spec": {"parameters": parameters, "tasks": tasks},
        }))
        .expect("valid workflow json")
    }

    #[test]
    fn datajump_references_must_name_a_run_variable_or_a_declared_parameter() {
        let wf = with_parameters(
            serde_json::json!([{
                "name": "load", "image": "etl",
                "command": ["sh", "-c"],
                "args": ["load --day=$(DATAJUMP_LOGICAL_DATE) --table=$(DATAJUMP_PARAM_TABLE) --uid=$(id -u) --n=$((2 + 1)) --cost=$$5 $(DATAJUMP_LOGICAL_DAT)"],
                "env": [
                    {"name": "OUT", "value": "s3://lake/$(DATAJUMP_LOGICAL_DATE)/$(HOSTNAME)"},
                    {"name": "DAY", "value": "$(DATAJUMP_PARAM_DAY)"},
                ],
            }]),
            serde_json::json!([{"name": "table", "default": "events"}]),
        );
        let msgs = messages(&wf);
        assert_eq!(msgs.len(), 2, "{msgs:#?}");
        assert!(
            msgs[0].starts_with(
                "spec.tasks[0].env[1].value: $(DATAJUMP_PARAM_DAY) is no run variable and no declared parameter: expected one of DATAJUMP_LOGICAL_TIME"
            ),
            "{msgs:#?}"
        );
        assert!(
            msgs[1].starts_with(
                "spec.tasks[0].args[0]: $(DATAJUMP_LOGICAL_DAT) is no run variable and no declared parameter (did you mean $(DATAJUMP_LOGICAL_DATE)?)"
            ),
            "{msgs:#?}"
        );
    }

    #[test]
    fn parameters_are_named_once_and_resolved_with_defaults_and_overrides() {
        let wf = with_parameters(
            serde_json::json!([{"name": "a", "image": "x"}]),
            serde_json::json!([{"name": "day"}, {"name": "day"}, {"name": "Table"}]),
        );
        let msgs = messages(&wf);
        assert!(
            msgs[0].contains("spec.parameters[1].name: parameter \"day\" is declared twice"),
            "{msgs:#?}"
        );
        assert!(
            msgs[1].starts_with("spec.parameters[2].name: \"Table\": expected lower-case"),
            "{msgs:#?}"
        );

        let wf = with_parameters(
            serde_json::json!([{"name": "a", "image": "x"}]),
            serde_json::json!([{"name": "day"}, {"name": "table", "default": "events"}]),
        );
        let given =
            std::collections::BTreeMap::from([("day".to_string(), "2026-11-01".to_string())]);
        assert_eq!(
            resolve_parameters(&wf.spec, &given).unwrap(),
            [
                ("day".to_string(), "2026-11-01".to_string()),
                ("table".into(), "events".into())
            ]
        );
        let err = resolve_parameters(&wf.spec, &Default::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "spec.parameters.day: parameter \"day\" has no default: the run must give it"
        );
        let typo = std::collections::BTreeMap::from([
            ("day".to_string(), "x".to_string()),
            ("tabel".to_string(), "y".to_string()),
        ]);
        let err = resolve_parameters(&wf.spec, &typo).unwrap_err().to_string();
        assert_eq!(
            err,
            "spec.parameters.tabel: the workflow declares no parameter \"tabel\" (did you mean \"table\"?)"
        );
    }

    fn workflow_yaml(yaml: &str) -> Workflow {
        serde_yaml::from_str(yaml).expect("valid workflow yaml")
    }

    #[test]
    fn trigger_rules_and_on_exit_are_checked_with_their_paths() {
        let wf = workflow_yaml(
            r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl}
spec:
  failureStrategy: FailFast
  tasks:
    - {name: extract, image: busybox, triggerRule: AnyFailed}
    - {name: load, image: busybox, dependsOn: [extract], retryBackoffFactor: 0}
    - name: alert
      image: busybox
      dependsOn: [load]
      triggerRule: AnyFailed
      args: ["$(DATAJUMP_RUN_OUTCOME)"]
  onExit:
    name: load
    image: busybox
    dependsOn: [extract]
    triggerRule: AllDone
    retryBackoffMaxSeconds: 0
    args: ["$(DATAJUMP_RUN_OUTCOME) $(DATAJUMP_FAILED_TASKS) $(DATAJUMP_LOGICAL_DATE)"]
"#,
        );
        assert_eq!(
            messages(&wf),
            [
                "spec.tasks[0].triggerRule: AnyFailed decides on the tasks in dependsOn, and this task has none",
                "spec.tasks[1].retryBackoffFactor: 0 is out of range; expected 1-10",
                "spec.onExit.retryBackoffMaxSeconds: 0 is out of range; expected 1-86400",
                "spec.onExit.name: \"load\" is the name of spec.tasks[1]",
                "spec.onExit.dependsOn: the onExit task runs after every task; it takes no dependsOn",
                "spec.onExit.triggerRule: the onExit task runs whatever the outcome; it takes no triggerRule",
                "spec.tasks[2].args[0]: $(DATAJUMP_RUN_OUTCOME) is known only to the onExit task, which runs once the outcome is known",
            ]
        );
    }

    #[test]
    fn a_workflow_with_rules_and_an_exit_task_is_valid() {
        let wf = workflow_yaml(
            r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl}
spec:
  tasks:
    - {name: extract, image: busybox}
    - {name: cleanup, image: busybox, dependsOn: [extract], triggerRule: AllDone}
    - {name: alert, image: busybox, dependsOn: [extract], triggerRule: AnyFailed, retryOn: OnError}
  onExit:
    name: notify
    image: busybox
    args: ["$(DATAJUMP_RUN_OUTCOME)", "$(DATAJUMP_FAILED_TASKS)"]
"#,
        );
        assert_eq!(messages(&wf), Vec::<String>::new());
        let spec = &wf.spec;
        assert_eq!(spec.task(3).map(|t| t.name.as_str()), Some("notify"));
        assert_eq!(spec.task(4), None);
        assert_eq!(spec.all_tasks().count(), 4);
    }
}

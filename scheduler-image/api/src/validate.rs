//! Validation of Workflows, shared by the scheduler (which refuses to schedule an invalid
//! workflow) and `kubectl datajump workflow validate`.
//!
//! Every problem is collected, not just the first, each with the field path it concerns
//! (`spec.tasks[3].dependsOn[0]`) so that users can fix a manifest in one pass.

use std::collections::HashMap;
use std::fmt;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::schedule::{Schedule, ScheduleError};
use super::{TaskSpec, TriggerRule, Workflow, WorkflowSpec};
use crate::runtime;

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

/// Checks a DNS-1123 label: lower-case alphanumerics and '-', starting and ending with an
/// alphanumeric, at most 63 characters. These names end up in Job names and label values.
pub fn check_dns1123_label(name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.len() > 63 {
        Err(format!(
            "{name:?} is {} characters long; at most 63 are allowed",
            name.len()
        ))
    } else if !valid_chars || !alnum(name.as_bytes().first()) || !alnum(name.as_bytes().last()) {
        Err(format!(
            "{name:?} is not a valid DNS-1123 label: use lower-case letters, digits and '-', \
             starting and ending with a letter or digit"
        ))
    } else {
        Ok(())
    }
}

fn validate_spec_into(
    spec: &WorkflowSpec,
    limits: &Limits,
    errors: &mut ValidationErrors,
) -> Option<Dag> {
    validate_schedule(spec, errors);
    validate_scalars(spec, limits, errors);
    validate_parameters(spec, errors);
    validate_references(spec, errors);
    errors.0.extend(crate::pod::validate_workflow_pods(spec));
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
    let index = task_index(spec, limits, errors);
    let dag = dependency_graph(spec, &index, errors);
    report_cycles(spec, &dag, errors);
    Some(dag)
}

fn validate_parameters(spec: &WorkflowSpec, errors: &mut ValidationErrors) {
    let mut seen = std::collections::BTreeSet::new();
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
fn validate_references(spec: &WorkflowSpec, errors: &mut ValidationErrors) {
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
    given: &std::collections::BTreeMap<String, String>,
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

fn validate_schedule(spec: &WorkflowSpec, errors: &mut ValidationErrors) {
    match (&spec.schedule, &spec.timezone) {
        (Some(expr), tz) => match Schedule::parse(expr, tz.as_deref()) {
            Ok(_) => {}
            Err(ScheduleError::Cron { reason, .. }) => errors.push(
                "spec.schedule",
                format!("invalid cron schedule {expr:?}: {reason}"),
            ),
            Err(e @ ScheduleError::Timezone(_)) => errors.push("spec.timezone", e.to_string()),
        },
        (None, Some(tz)) => {
            if let Err(e) = super::schedule::parse_timezone(Some(tz)) {
                errors.push("spec.timezone", e.to_string());
            }
        }
        (None, None) => {}
    }
}

fn validate_scalars(spec: &WorkflowSpec, limits: &Limits, errors: &mut ValidationErrors) {
    if let Some(d) = spec.starting_deadline_seconds.filter(|d| *d < 0) {
        errors.push(
            "spec.startingDeadlineSeconds",
            format!("{d} is negative; expected >= 0"),
        );
    }
    if let Some(d) = spec.active_deadline_seconds.filter(|d| *d < 1) {
        errors.push(
            "spec.activeDeadlineSeconds",
            format!("{d} must be at least 1"),
        );
    }
    if !(-100..=100).contains(&spec.priority) {
        errors.push(
            "spec.priority",
            format!("{} is out of range; expected -100 to 100", spec.priority),
        );
    }
    if spec.parallelism == Some(0) {
        errors.push(
            "spec.parallelism",
            "0 would never start a task; expected at least 1",
        );
    }
    if !(1..=100).contains(&spec.max_catch_up_runs) {
        errors.push(
            "spec.maxCatchUpRuns",
            format!("{} is out of range; expected 1-100", spec.max_catch_up_runs),
        );
    }
    for (field, value) in [
        (
            "spec.successfulRunsHistoryLimit",
            spec.successful_runs_history_limit,
        ),
        (
            "spec.failedRunsHistoryLimit",
            spec.failed_runs_history_limit,
        ),
    ] {
        if value > limits.max_history {
            errors.push(
                field,
                format!("{value} exceeds the limit of {}", limits.max_history),
            );
        }
    }
    for (i, task) in spec.tasks.iter().enumerate() {
        validate_task_scalars(task, &format!("spec.tasks[{i}]"), limits, errors);
        if task.trigger_rule.needs_upstream() && task.depends_on.is_empty() {
            errors.push(
                format!("spec.tasks[{i}].triggerRule"),
                format!(
                    "{:?} decides on the tasks in dependsOn, and this task has none",
                    task.trigger_rule
                ),
            );
        }
    }
    if let Some(task) = &spec.on_exit {
        validate_on_exit(spec, task, limits, errors);
    }
}

/// The `onExit` task: a task like the others, outside the DAG.
fn validate_on_exit(
    spec: &WorkflowSpec,
    task: &TaskSpec,
    limits: &Limits,
    errors: &mut ValidationErrors,
) {
    validate_task_scalars(task, "spec.onExit", limits, errors);
    if let Err(msg) = check_dns1123_label(&task.name) {
        errors.push("spec.onExit.name", msg);
    } else if let Some(i) = spec.tasks.iter().position(|t| t.name == task.name) {
        errors.push(
            "spec.onExit.name",
            format!("{:?} is the name of spec.tasks[{i}]", task.name),
        );
    }
    if !task.depends_on.is_empty() {
        errors.push(
            "spec.onExit.dependsOn",
            "the onExit task runs after every task; it takes no dependsOn",
        );
    }
    if task.trigger_rule != TriggerRule::default() {
        errors.push(
            "spec.onExit.triggerRule",
            "the onExit task runs whatever the outcome; it takes no triggerRule",
        );
    }
}

/// The numbers of one task (`path` is `spec.tasks[i]` or `spec.onExit`).
fn validate_task_scalars(
    task: &TaskSpec,
    path: &str,
    limits: &Limits,
    errors: &mut ValidationErrors,
) {
    let path = |f: &str| format!("{path}.{f}");
    if let Some(Err(msg)) = task.pool.as_deref().map(check_dns1123_label) {
        errors.push(path("pool"), msg);
    }
    if task.image.trim().is_empty() {
        errors.push(path("image"), "must not be empty");
    }
    if task.retries > limits.max_retries {
        errors.push(
            path("retries"),
            format!(
                "{} exceeds the limit of {}",
                task.retries, limits.max_retries
            ),
        );
    }
    if !(1..=3600).contains(&task.retry_backoff_seconds) {
        errors.push(
            path("retryBackoffSeconds"),
            format!(
                "{} is out of range; expected 1-3600",
                task.retry_backoff_seconds
            ),
        );
    }
    if let Some(t) = task.timeout_seconds.filter(|t| *t < 1) {
        errors.push(path("timeoutSeconds"), format!("{t} must be at least 1"));
    }
    if let Some(t) = task.pending_timeout_seconds.filter(|t| *t < 1) {
        errors.push(
            path("pendingTimeoutSeconds"),
            format!("{t} must be at least 1"),
        );
    }
    if !(1..=10).contains(&task.retry_backoff_factor) {
        errors.push(
            path("retryBackoffFactor"),
            format!(
                "{} is out of range; expected 1-10",
                task.retry_backoff_factor
            ),
        );
    }
    if !(1..=86_400).contains(&task.retry_backoff_max_seconds) {
        errors.push(
            path("retryBackoffMaxSeconds"),
            format!(
                "{} is out of range; expected 1-86400",
                task.retry_backoff_max_seconds
            ),
        );
    }
}

/// Maps task names to indices, reporting invalid and duplicate names.
fn task_index<'a>(
    spec: &'a WorkflowSpec,
    _limits: &Limits,
    errors: &mut ValidationErrors,
) -> HashMap<&'a str, usize> {
    let mut index = HashMap::with_capacity(spec.tasks.len());
    for (i, task) in spec.tasks.iter().enumerate() {
        if let Err(msg) = check_dns1123_label(&task.name) {
            errors.push(format!("spec.tasks[{i}].name"), msg);
        }
        if let Some(first) = index.insert(task.name.as_str(), i) {
            errors.push(
                format!("spec.tasks[{i}].name"),
                format!(
                    "duplicate task name {:?} (first defined at spec.tasks[{first}])",
                    task.name
                ),
            );
            // Keep the first definition as the one dependencies resolve to.
            index.insert(task.name.as_str(), first);
        }
    }
    index
}

fn dependency_graph(
    spec: &WorkflowSpec,
    index: &HashMap<&str, usize>,
    errors: &mut ValidationErrors,
) -> Dag {
    let n = spec.tasks.len();
    let mut deps = vec![Vec::new(); n];
    let mut dependents = vec![Vec::new(); n];
    for (i, task) in spec.tasks.iter().enumerate() {
        for (k, dep) in task.depends_on.iter().enumerate() {
            let path = format!("spec.tasks[{i}].dependsOn[{k}]");
            if task.depends_on[..k].contains(dep) {
                errors.push(path, format!("{dep:?} is listed more than once"));
                continue;
            }
            match index.get(dep.as_str()) {
                None => {
                    let hint = suggestion(dep, spec.tasks.iter().map(|t| t.name.as_str()))
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    errors.push(path, format!("unknown task {dep:?}{hint}"));
                }
                Some(&j) if j == i => {
                    errors.push(path, format!("task {dep:?} cannot depend on itself"));
                }
                Some(&j) => {
                    deps[i].push(j);
                    dependents[j].push(i);
                }
            }
        }
    }
    Dag { deps, dependents }
}

/// Reports every dependency cycle as `a -> b -> a`, where `b` depends on `a`.
fn report_cycles(spec: &WorkflowSpec, dag: &Dag, errors: &mut ValidationErrors) {
    let mut graph = DiGraph::<(), ()>::with_capacity(dag.deps.len(), dag.deps.len());
    let nodes: Vec<NodeIndex> = (0..dag.deps.len()).map(|_| graph.add_node(())).collect();
    for (task, deps) in dag.deps.iter().enumerate() {
        for &dep in deps {
            graph.add_edge(nodes[dep], nodes[task], ());
        }
    }
    let mut cycles: Vec<Vec<usize>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let members: Vec<usize> = scc.iter().map(|n| n.index()).collect();
            cycle_through_first(&members, dag)
        })
        .collect();
    cycles.sort();
    for cycle in cycles {
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| spec.tasks[i].name.as_str())
            .collect();
        errors.push("spec.tasks", format!("cycle: {}", names.join(" -> ")));
    }
}

/// The shortest cycle through the lowest-index member of a strongly connected component,
/// found by breadth-first search along dependency edges (so the output is deterministic).
fn cycle_through_first(members: &[usize], dag: &Dag) -> Vec<usize> {
    let in_scc: std::collections::HashSet<usize> = members.iter().copied().collect();
    let start = members.iter().copied().min().unwrap_or_default();
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut next: Vec<usize> = dag.dependents[node]
            .iter()
            .copied()
            .filter(|m| in_scc.contains(m))
            .collect();
        next.sort_unstable();
        for m in next {
            if m == start {
                let mut path = vec![node];
                let mut cur = node;
                while cur != start {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(m) {
                e.insert(node);
                queue.push_back(m);
            }
        }
    }
    // Unreachable for a real SCC; fall back to listing the members.
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted
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

    #[test]
    fn dns_labels() {
        assert!(check_dns1123_label("etl-2").is_ok());
        assert!(check_dns1123_label("-etl").is_err());
        assert!(check_dns1123_label("etl.x").is_err());
        assert!(
            check_dns1123_label(&"a".repeat(64))
                .unwrap_err()
                .contains("64 characters")
        );
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

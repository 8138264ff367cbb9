//! `workflow ...`: offline validation with the scheduler's own rules, submission by server-side
//! apply, runs (start, watch, list), the DAG as a tree with each task's state, task logs, and
//! suspend/resume/delete.

use std::collections::HashMap;
use std::path::Path;

use chrono::Utc;
use datajump_api::validate::validate_workflow;
use datajump_api::{RunPhase, TaskPhase, Workflow, WorkflowRun, WorkflowRunStatus};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{GlobalOpts, WorkflowCommand};
use crate::cmd::{Ctx, confirm};
use crate::error::InputError;
use crate::kube::workflows::RunOptions;
use crate::kube::{jobs, workflows};
use crate::output::{self, Render, Style, age};

/// A workflow file read and checked: the typed object and the document as written.
#[derive(Debug)]
pub struct CheckedWorkflow {
    pub workflow: Workflow,
    pub document: Value,
}

/// Reads and validates a workflow manifest; every problem is reported with its field path.
pub fn check_file(path: &Path) -> Result<CheckedWorkflow, InputError> {
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

/// `workflow validate -f`: offline; prints `ok` or every problem (exit 2).
pub fn validate_file(path: &Path, _global: &GlobalOpts) -> anyhow::Result<()> {
    let checked = check_file(path)?;
    println!(
        "{}: Workflow {} is valid ({} tasks)",
        path.display(),
        checked
            .workflow
            .metadata
            .name
            .as_deref()
            .unwrap_or_default(),
        checked.workflow.spec.tasks.len()
    );
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: WorkflowCommand) -> anyhow::Result<()> {
    let client = ctx.client().await?;
    let ns = ctx.namespace_or(client.default_namespace());
    match cmd {
        WorkflowCommand::Validate { file } => validate_file(&file, &ctx.global),
        WorkflowCommand::Submit {
            file,
            run_now,
            watch,
            timeout,
        } => {
            let checked = check_file(&file)?;
            let name = checked.workflow.metadata.name.clone().unwrap_or_default();
            let ns = match checked.workflow.metadata.namespace.as_deref() {
                Some(file_ns)
                    if ctx
                        .global
                        .namespace
                        .as_deref()
                        .is_some_and(|n| n != file_ns) =>
                {
                    return Err(InputError::new(format!(
                        "{}: metadata.namespace {file_ns:?} differs from -n {:?}",
                        file.display(),
                        ctx.global.namespace.as_deref().unwrap_or_default()
                    ))
                    .into());
                }
                Some(file_ns) => file_ns.to_string(),
                None => ns,
            };
            let mut document = checked.document;
            document["metadata"]["namespace"] = Value::String(ns.clone());
            workflows::apply(&client, &ns, &name, &document).await?;
            println!("workflow.datajump.io/{name} applied in {ns}");
            if run_now || watch {
                let options = RunOptions::default();
                start_run(ctx, &client, &ns, &name, watch, timeout, &options).await?;
            }
            Ok(())
        }
        WorkflowCommand::List => {
            let list = WorkflowList::from(workflows::list(&client, &ns).await?);
            output::print(&list, &ctx.global)
        }
        WorkflowCommand::Get { name } => {
            let wf = workflows::get(&client, &ns, &name).await?;
            let runs = workflows::runs_of(&client, &ns, &name).await?;
            output::print(&WorkflowTree::build(&wf, runs.first()), &ctx.global)
        }
        WorkflowCommand::Runs { name, backfill } => {
            let runs = match backfill {
                Some(backfill) => {
                    let runs = crate::kube::backfill::runs_of(&client, &ns, &backfill).await?;
                    if runs.is_empty() {
                        return Err(InputError::new(format!(
                            "no runs of backfill {backfill} in namespace {ns}"
                        ))
                        .into());
                    }
                    runs.into_iter()
                        .filter(|r| r.spec.workflow_name == name)
                        .collect()
                }
                None => workflows::runs_of(&client, &ns, &name).await?,
            };
            output::print(&RunList::from(runs), &ctx.global)
        }
        WorkflowCommand::Backfill(args) => super::backfill::run(ctx, &client, &ns, &args).await,
        WorkflowCommand::Graph(args) => super::graph::run(ctx, &client, &ns, &args).await,
        WorkflowCommand::Retry {
            run,
            from_failed,
            watch,
            timeout,
        } => super::backfill::retry(ctx, &client, &ns, &run, from_failed, watch, timeout).await,
        WorkflowCommand::Logs { run, task, follow } => {
            logs(&client, &ns, &run, task.as_deref(), follow).await
        }
        WorkflowCommand::Run {
            name,
            watch,
            timeout,
            params,
            logical_time,
        } => {
            let options = RunOptions {
                parameters: params.into_iter().collect(),
                logical_time,
            };
            start_run(ctx, &client, &ns, &name, watch, timeout, &options).await
        }
        WorkflowCommand::Suspend { name } => {
            workflows::set_suspend(&client, &ns, &name, true).await?;
            println!("workflow.datajump.io/{name} suspended");
            Ok(())
        }
        WorkflowCommand::Resume { name } => {
            workflows::set_suspend(&client, &ns, &name, false).await?;
            println!("workflow.datajump.io/{name} resumed");
            Ok(())
        }
        WorkflowCommand::Delete { name, confirm: c } => {
            confirm(ctx.global.env, "delete workflow", &name, &c)?;
            workflows::delete(&client, &ns, &name).await?;
            println!("workflow.datajump.io/{name} deleted with its runs");
            Ok(())
        }
    }
}

/// Creates a run and, with `watch`, follows it; a failed run is an error (exit 1).
async fn start_run(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    name: &str,
    watch: bool,
    timeout: std::time::Duration,
    options: &RunOptions,
) -> anyhow::Result<()> {
    let run = workflows::create_run(client, ns, name, options).await?;
    let run_name = run.metadata.name.clone().unwrap_or_default();
    println!("workflowrun.datajump.io/{run_name} created");
    if !watch {
        return Ok(());
    }
    follow_run(ctx, client, ns, &run_name, timeout).await
}

/// Follows a run to its end, one line per task state change; a failed run is an error (exit 1).
pub async fn follow_run(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    run_name: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let progress = ctx.progress;
    let mut seen: HashMap<String, TaskPhase> = HashMap::new();
    let done = workflows::watch_run(client, ns, run_name, timeout, |r| {
        for t in r.status.iter().flat_map(|s| &s.tasks) {
            if seen.get(&t.name) != Some(&t.phase) {
                progress.line(format!("  {:<24} {:?}", t.name, t.phase));
                seen.insert(t.name.clone(), t.phase);
            }
        }
    })
    .await?;
    let status = done.status.unwrap_or_default();
    println!(
        "run {run_name}: {:?} ({}/{} tasks succeeded)",
        status.phase, status.succeeded_tasks, status.total_tasks
    );
    run_outcome(run_name, &status)
}

/// The exit status of a watched run: success only when the run succeeded; otherwise an error
/// (exit 1) naming the failed tasks and how to see their logs.
pub fn run_outcome(run_name: &str, status: &WorkflowRunStatus) -> anyhow::Result<()> {
    if status.phase == RunPhase::Succeeded {
        return Ok(());
    }
    let failed: Vec<&str> = status
        .tasks
        .iter()
        .filter(|t| t.phase == TaskPhase::Failed)
        .map(|t| t.name.as_str())
        .collect();
    anyhow::bail!(
        "run {run_name} {:?}: {}{} (see `kubectl datajump workflow logs {run_name}`)",
        status.phase,
        status.message.as_deref().unwrap_or("a task failed"),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failed tasks: {}", failed.join(", "))
        }
    )
}

/// Prints the logs of a run's task pods, prefixed by task; with `follow`, streams them.
async fn logs(
    client: &::kube::Client,
    ns: &str,
    run: &str,
    task: Option<&str>,
    follow: bool,
) -> anyhow::Result<()> {
    let wr = workflows::get_run(client, ns, run).await?;
    let tasks: Vec<_> = wr
        .status
        .map(|s| s.tasks)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| task.is_none_or(|want| t.name == want))
        .collect();
    if let Some(want) = task
        && tasks.is_empty()
    {
        return Err(InputError::new(format!("run {run} has no task {want:?}")).into());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for t in tasks {
        let Some(job) = &t.job_name else {
            println!("[{}] not started ({:?})", t.name, t.phase);
            continue;
        };
        for pod in workflows::job_pods(client, ns, job).await? {
            let pod_name = pod.metadata.name.unwrap_or_default();
            if follow {
                let mut lines = pods
                    .log_stream(&pod_name, &workflows::log_params(true))
                    .await
                    .map_err(|e| jobs::log_error(&pod_name, job, e))?
                    .lines();
                while let Some(line) = lines.try_next().await? {
                    println!("[{}] {line}", t.name);
                }
            } else {
                for line in pods
                    .logs(&pod_name, &workflows::log_params(false))
                    .await
                    .map_err(|e| jobs::log_error(&pod_name, job, e))?
                    .lines()
                {
                    println!("[{}] {line}", t.name);
                }
            }
        }
    }
    Ok(())
}

/// `workflow list` answer.
#[derive(Debug, Serialize)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowRow>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRow {
    pub name: String,
    pub schedule: Option<String>,
    pub suspended: bool,
    pub tasks: usize,
    pub active_runs: u32,
    pub last_schedule: Option<chrono::DateTime<Utc>>,
}

impl From<Vec<Workflow>> for WorkflowList {
    fn from(items: Vec<Workflow>) -> Self {
        let workflows = items
            .into_iter()
            .map(|w| {
                let status = w.status.unwrap_or_default();
                WorkflowRow {
                    name: w.metadata.name.unwrap_or_default(),
                    schedule: w.spec.schedule,
                    suspended: w.spec.suspend,
                    tasks: w.spec.tasks.len(),
                    active_runs: status.active_runs,
                    last_schedule: status.last_schedule_time,
                }
            })
            .collect();
        Self { workflows }
    }
}

impl Render for WorkflowList {
    fn human(&self, _style: &Style) -> String {
        let now = Utc::now();
        let rows: Vec<Vec<String>> = self
            .workflows
            .iter()
            .map(|w| {
                vec![
                    w.name.clone(),
                    w.schedule.clone().unwrap_or_else(|| "-".into()),
                    w.suspended.to_string(),
                    w.tasks.to_string(),
                    w.active_runs.to_string(),
                    w.last_schedule
                        .map(|t| age((now - t).num_seconds()))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        output::table(
            &[
                "NAME",
                "SCHEDULE",
                "SUSPENDED",
                "TASKS",
                "ACTIVE",
                "LAST SCHEDULE",
            ],
            &rows,
        )
    }
}

/// `workflow runs` answer.
#[derive(Debug, Serialize)]
pub struct RunList {
    pub runs: Vec<RunRow>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub name: String,
    pub phase: RunPhase,
    /// Its tick, or the time it was started for.
    pub logical_time: Option<chrono::DateTime<Utc>>,
    pub succeeded_tasks: u32,
    pub total_tasks: u32,
    pub start_time: Option<chrono::DateTime<Utc>>,
    pub completion_time: Option<chrono::DateTime<Utc>>,
}

impl From<Vec<WorkflowRun>> for RunList {
    fn from(runs: Vec<WorkflowRun>) -> Self {
        let runs = runs
            .into_iter()
            .map(|r| {
                let s = r.status.unwrap_or_default();
                RunRow {
                    name: r.metadata.name.unwrap_or_default(),
                    phase: s.phase,
                    logical_time: r.spec.scheduled_time.or(r.spec.logical_time),
                    succeeded_tasks: s.succeeded_tasks,
                    total_tasks: s.total_tasks,
                    start_time: s.start_time,
                    completion_time: s.completion_time,
                }
            })
            .collect();
        Self { runs }
    }
}

impl Render for RunList {
    fn human(&self, style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                let duration = match (r.start_time, r.completion_time) {
                    (Some(s), Some(e)) => age((e - s).num_seconds()),
                    (Some(s), None) => format!("{} (running)", age((Utc::now() - s).num_seconds())),
                    _ => "-".into(),
                };
                vec![
                    r.name.clone(),
                    style.state(&format!("{:?}", r.phase)),
                    r.logical_time
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "-".into()),
                    format!("{}/{}", r.succeeded_tasks, r.total_tasks),
                    r.start_time
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "-".into()),
                    duration,
                ]
            })
            .collect();
        output::table(
            &[
                "RUN",
                "PHASE",
                "LOGICAL TIME",
                "TASKS",
                "STARTED",
                "DURATION",
            ],
            &rows,
        )
    }
}

/// `workflow get` answer: the DAG with each task's state in the latest run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTree {
    pub name: String,
    pub schedule: Option<String>,
    pub suspended: bool,
    pub latest_run: Option<String>,
    /// The latest run executes the spec it started with; true when the Workflow has been
    /// edited since (the tree shows the run's tasks).
    pub latest_run_spec_differs: bool,
    /// The latest run's logical time: its tick, or the time it was started for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_time: Option<chrono::DateTime<Utc>>,
    /// The latest run's parameter values over the workflow's defaults.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub parameters: std::collections::BTreeMap<String, String>,
    /// The run this one retries, if it is a retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    pub tasks: Vec<TaskNode>,
    /// The task run after the DAG, whatever its outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<TaskNode>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskNode {
    pub name: String,
    pub depends_on: Vec<String>,
    /// When it starts given how its upstream tasks ended.
    pub trigger_rule: datajump_api::TriggerRule,
    /// Phase in the latest run (None when there is no run).
    pub phase: Option<TaskPhase>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The pod's or the Job's reason (`ImagePullBackOff`, `OOMKilled`, ...); the human form
    /// shows it through `message`, which names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl WorkflowTree {
    pub fn build(wf: &Workflow, latest: Option<&WorkflowRun>) -> Self {
        let states: HashMap<&str, _> = latest
            .and_then(|r| r.status.as_ref())
            .map(|s| s.tasks.iter().map(|t| (t.name.as_str(), t)).collect())
            .unwrap_or_default();
        // What the latest run executes: the spec it recorded when it started.
        let snapshot = latest
            .and_then(|r| r.status.as_ref())
            .and_then(|s| s.workflow_spec.as_deref());
        let spec = snapshot.unwrap_or(&wf.spec);
        let node = |t: &datajump_api::TaskSpec| {
            let st = states.get(t.name.as_str());
            TaskNode {
                name: t.name.clone(),
                depends_on: t.depends_on.clone(),
                trigger_rule: t.trigger_rule,
                phase: st.map(|s| s.phase),
                attempts: st.map(|s| s.attempts).unwrap_or(0),
                message: st.and_then(|s| s.message.clone()),
                reason: st.and_then(|s| s.reason.clone()),
                exit_code: st.and_then(|s| s.exit_code),
            }
        };
        Self {
            name: wf.metadata.name.clone().unwrap_or_default(),
            schedule: wf.spec.schedule.clone(),
            suspended: wf.spec.suspend,
            latest_run: latest.and_then(|r| r.metadata.name.clone()),
            latest_run_spec_differs: snapshot.is_some_and(|s| *s != wf.spec),
            logical_time: latest.and_then(|r| r.spec.scheduled_time.or(r.spec.logical_time)),
            parameters: latest
                .map(|r| r.spec.parameters.clone())
                .unwrap_or_default(),
            retry_of: latest.and_then(|r| r.spec.retry_of.as_ref().map(|o| o.run_name.clone())),
            tasks: spec.tasks.iter().map(node).collect(),
            on_exit: spec.on_exit.as_deref().map(node),
        }
    }
}

impl Render for WorkflowTree {
    /// Roots first, each task under what it depends on; a task with several parents is drawn
    /// fully under the first and referenced as `(see above)` under the others.
    fn human(&self, style: &Style) -> String {
        let mut out = format!(
            "Workflow {}  schedule: {}  suspended: {}  latest run: {}\n",
            self.name,
            self.schedule.as_deref().unwrap_or("-"),
            self.suspended,
            self.latest_run.as_deref().unwrap_or("-")
        );
        if let Some(t) = self.logical_time {
            out.push_str(&format!("logical time: {}", t.to_rfc3339()));
            for (k, v) in &self.parameters {
                out.push_str(&format!("  {k}={v}"));
            }
            if let Some(source) = &self.retry_of {
                out.push_str(&format!("  retries: {source}"));
            }
            out.push('\n');
        }
        if self.latest_run_spec_differs {
            out.push_str(
                "(the workflow changed since the latest run started; these are the tasks that run executes)\n",
            );
        }
        let index: HashMap<&str, usize> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.tasks.len()];
        let mut roots = Vec::new();
        for (i, t) in self.tasks.iter().enumerate() {
            let parents: Vec<usize> = t
                .depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect();
            match parents.first() {
                None => roots.push(i),
                Some(_) => parents.iter().for_each(|&p| children[p].push(i)),
            }
        }
        let mut drawn = vec![false; self.tasks.len()];
        let count = roots.len();
        for (n, &r) in roots.iter().enumerate() {
            self.draw(
                r,
                "",
                n + 1 == count,
                &children,
                &mut drawn,
                style,
                &mut out,
            );
        }
        if let Some(exit) = &self.on_exit {
            out.push_str("on exit:\n");
            let mut drawn = vec![false];
            let tree = WorkflowTree {
                tasks: vec![TaskNode {
                    depends_on: Vec::new(),
                    ..exit.clone()
                }],
                on_exit: None,
                ..self.clone()
            };
            tree.draw(0, "", true, &[Vec::new()], &mut drawn, style, &mut out);
        }
        out
    }
}

impl WorkflowTree {
    #[allow(clippy::too_many_arguments)]
    fn draw(
        &self,
        i: usize,
        prefix: &str,
        last: bool,
        children: &[Vec<usize>],
        drawn: &mut [bool],
        style: &Style,
        out: &mut String,
    ) {
        let t = &self.tasks[i];
        let branch = if last { "└── " } else { "├── " };
        let phase = t
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "-".into());
        if drawn[i] {
            out.push_str(&format!("{prefix}{branch}{} (see above)\n", t.name));
            return;
        }
        drawn[i] = true;
        let retries = if t.attempts > 1 {
            format!(" attempts={}", t.attempts)
        } else {
            String::new()
        };
        let msg = t
            .message
            .as_deref()
            .map(|m| format!("  {m}"))
            .unwrap_or_default();
        let rule = if t.trigger_rule == datajump_api::TriggerRule::default() {
            String::new()
        } else {
            format!(" ({:?})", t.trigger_rule)
        };
        out.push_str(&format!(
            "{prefix}{branch}{}{rule} [{}]{retries}{msg}\n",
            t.name,
            style.state(&phase)
        ));
        let child_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
        let kids = &children[i];
        for (n, &c) in kids.iter().enumerate() {
            self.draw(
                c,
                &child_prefix,
                n + 1 == kids.len(),
                children,
                drawn,
                style,
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WF: &str = r#"
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

    #[test]
    fn watched_run_sets_the_exit_status() {
        let ok: WorkflowRunStatus =
            serde_json::from_value(serde_json::json!({"phase": "Succeeded"})).unwrap();
        assert!(run_outcome("r1", &ok).is_ok());
        let failed: WorkflowRunStatus = serde_json::from_value(serde_json::json!({
            "phase": "Failed", "message": "task load failed after 3 attempts",
            "tasks": [{"name": "extract", "phase": "Succeeded"}, {"name": "load", "phase": "Failed"}]
        }))
        .unwrap();
        let err = run_outcome("r2", &failed).unwrap_err().to_string();
        assert_eq!(
            err,
            "run r2 Failed: task load failed after 3 attempts; failed tasks: load (see `kubectl datajump workflow logs r2`)"
        );
        let err = crate::error::exit_code_for(&run_outcome("r2", &failed).unwrap_err());
        assert_eq!(err, 1, "a failed run is a runtime failure");
    }

    #[test]
    fn tree_shows_the_tasks_the_latest_run_executes() {
        let wf = check_text(WF).unwrap().workflow;
        // The run started before `clean` was renamed `tidy`: it shows (and runs) `clean`.
        let mut started = wf.spec.clone();
        started.tasks[1].name = "tidy".into();
        started.tasks[3].depends_on = vec!["tidy".into(), "enrich".into()];
        let run: WorkflowRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
            "metadata": {"name": "etl-1"}, "spec": {"workflowName": "etl"},
            "status": {"phase": "Running", "workflowSpec": started, "tasks": [
                {"name": "extract", "phase": "Succeeded", "attempts": 1},
                {"name": "tidy", "phase": "Running", "attempts": 1}]}
        }))
        .unwrap();
        let tree = WorkflowTree::build(&wf, Some(&run));
        assert!(tree.latest_run_spec_differs);
        let names: Vec<&str> = tree.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["extract", "tidy", "enrich", "load"]);
        assert_eq!(tree.tasks[1].phase, Some(TaskPhase::Running));
        let text = tree.human(&Style { color: false });
        assert!(
            text.contains("the workflow changed since the latest run started"),
            "{text}"
        );
        // Without edits the note is absent.
        let mut same = run.clone();
        if let Some(s) = same.status.as_mut() {
            s.workflow_spec = Some(std::sync::Arc::new(wf.spec.clone()));
        }
        assert!(!WorkflowTree::build(&wf, Some(&same)).latest_run_spec_differs);
    }

    #[test]
    fn tree_draws_the_dag_with_phases() {
        let wf = check_text(WF).unwrap().workflow;
        let run: WorkflowRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
            "metadata": {"name": "etl-1"}, "spec": {"workflowName": "etl"},
            "status": {"phase": "Running", "tasks": [
                {"name": "extract", "phase": "Succeeded", "attempts": 1},
                {"name": "clean", "phase": "Running", "attempts": 2},
                {"name": "enrich", "phase": "Failed", "attempts": 1, "message": "exit code 1"}]}
        }))
        .unwrap();
        let tree = WorkflowTree::build(&wf, Some(&run)).human(&Style { color: false });
        let expected = "\
Workflow etl  schedule: 0 2 * * *  suspended: false  latest run: etl-1
└── extract [Succeeded]
    ├── clean [Running] attempts=2
    │   └── load [-]
    └── enrich [Failed]  exit code 1
        └── load (see above)
";
        assert_eq!(tree, expected);
    }
}

//! The answers of `workflow list`, `workflow runs` and `workflow get`: one `Serialize` struct
//! each, built from the API objects, with its human rendering (two tables and the DAG as a tree
//! with each task's state in the latest run).

use std::collections::HashMap;

use chrono::Utc;
use datajump_api::schedules::written;
use datajump_api::{
    RunPhase, ScheduleSpec, Shutdown, TaskPhase, Workflow, WorkflowRun, WorkflowSpec,
};
use serde::Serialize;

use crate::output::{self, Render, Style, age};

/// The workflow's schedules whichever form it writes (one entry for `schedule`/`timezone`).
fn schedules_of(spec: &WorkflowSpec) -> Vec<ScheduleSpec> {
    written(spec)
        .into_iter()
        .map(|w| ScheduleSpec {
            schedule: w.schedule.to_string(),
            timezone: w.timezone.map(str::to_string),
        })
        .collect()
}

/// One schedule for people: `0 2 * * *`, or `0 2 * * 1-5 (Asia/Shanghai)` with a zone.
fn schedule_text(s: &ScheduleSpec) -> String {
    match &s.timezone {
        Some(tz) => format!("{} ({tz})", s.schedule),
        None => s.schedule.clone(),
    }
}

/// `workflow list` answer.
#[derive(Debug, Serialize)]
pub(crate) struct WorkflowList {
    pub workflows: Vec<WorkflowRow>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowRow {
    pub name: String,
    /// `spec.schedule` as written (unset with the `schedules` form).
    pub schedule: Option<String>,
    /// Every schedule, whichever form the workflow writes.
    pub schedules: Vec<ScheduleSpec>,
    pub suspended: bool,
    pub tasks: usize,
    pub active_runs: u32,
    pub last_schedule: Option<chrono::DateTime<Utc>>,
    /// The next tick of any schedule, as the scheduler last computed it.
    pub next_schedule: Option<chrono::DateTime<Utc>>,
}

impl From<Vec<Workflow>> for WorkflowList {
    fn from(items: Vec<Workflow>) -> Self {
        let workflows = items
            .into_iter()
            .map(|w| {
                let status = w.status.unwrap_or_default();
                WorkflowRow {
                    name: w.metadata.name.unwrap_or_default(),
                    schedules: schedules_of(&w.spec),
                    schedule: w.spec.schedule,
                    suspended: w.spec.suspend,
                    tasks: w.spec.tasks.len(),
                    active_runs: status.active_runs,
                    last_schedule: status.last_schedule_time,
                    next_schedule: status.next_schedule_time,
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
                // One line per schedule.
                let schedules: Vec<String> = w.schedules.iter().map(schedule_text).collect();
                vec![
                    w.name.clone(),
                    if schedules.is_empty() {
                        "-".into()
                    } else {
                        schedules.join("\n")
                    },
                    w.suspended.to_string(),
                    w.tasks.to_string(),
                    w.active_runs.to_string(),
                    w.last_schedule
                        .map(|t| age((now - t).num_seconds()))
                        .unwrap_or_else(|| "-".into()),
                    w.next_schedule
                        .filter(|_| !w.suspended)
                        .map(|t| format!("in {}", age((t - now).num_seconds().max(0))))
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
                "NEXT SCHEDULE",
            ],
            &rows,
        )
    }
}

/// `workflow runs` answer.
#[derive(Debug, Serialize)]
pub(crate) struct RunList {
    pub runs: Vec<RunRow>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunRow {
    pub name: String,
    pub phase: RunPhase,
    /// Its `spec.shutdown`: asked to stop or terminate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,
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
                    shutdown: r.spec.shutdown,
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
                    style.state(&phase_word(r.phase, r.shutdown)),
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

/// A run's phase in a table: an unfinished run asked to end early shows `Stopping` or
/// `Terminating` instead of `Running`.
fn phase_word(phase: RunPhase, shutdown: Option<Shutdown>) -> String {
    match shutdown {
        Some(Shutdown::Stop) if !phase.is_finished() => "Stopping".into(),
        Some(Shutdown::Terminate) if !phase.is_finished() => "Terminating".into(),
        _ => format!("{phase:?}"),
    }
}

/// `workflow get` answer: the DAG with each task's state in the latest run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowTree {
    pub name: String,
    /// `spec.schedule` as written (unset with the `schedules` form).
    pub schedule: Option<String>,
    /// Every schedule, whichever form the workflow writes.
    pub schedules: Vec<ScheduleSpec>,
    /// The next tick of any schedule, as the scheduler last computed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_schedule: Option<chrono::DateTime<Utc>>,
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
pub(crate) struct TaskNode {
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
    pub(crate) fn build(wf: &Workflow, latest: Option<&WorkflowRun>) -> Self {
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
            schedules: schedules_of(&wf.spec),
            next_schedule: wf.status.as_ref().and_then(|s| s.next_schedule_time),
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
        let schedules: Vec<String> = self.schedules.iter().map(schedule_text).collect();
        let (label, schedules) = match schedules.len() {
            0 => ("schedule", "-".to_string()),
            1 => ("schedule", schedules.join("")),
            _ => ("schedules", schedules.join("; ")),
        };
        let mut out = format!(
            "Workflow {}  {label}: {schedules}  suspended: {}  latest run: {}\n",
            self.name,
            self.suspended,
            self.latest_run.as_deref().unwrap_or("-")
        );
        if let Some(next) = self.next_schedule.filter(|_| !self.suspended) {
            out.push_str(&format!("next run: {}\n", next.to_rfc3339()));
        }
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
    use crate::workflow_file::check_text;
    use crate::workflow_file::tests::WF;

    #[test]
    fn runs_asked_to_end_early_show_it_until_they_end() {
        let run = |name: &str, phase: &str, shutdown: &str| -> WorkflowRun {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
                "metadata": {"name": name},
                "spec": {"workflowName": "etl", "shutdown": shutdown},
                "status": {"phase": phase}
            }))
            .expect("a run")
        };
        let list = RunList::from(vec![
            run("a", "Running", "Stop"),
            run("b", "Running", "Terminate"),
            run("c", "Terminated", "Terminate"),
        ]);
        let table = list.human(&Style { color: false });
        let phases: Vec<&str> = table
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(phases, ["Stopping", "Terminating", "Terminated"], "{table}");
        let json = serde_json::to_value(&list).expect("json");
        assert_eq!(json["runs"][0]["phase"], "Running");
        assert_eq!(json["runs"][0]["shutdown"], "Stop");
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
    fn several_schedules_show_one_per_line_with_the_next_tick_of_any() {
        let several = WF.replace(
            "schedule: \"0 2 * * *\"",
            "schedules:\n    - {schedule: \"0 2 * * 1-5\", timezone: Asia/Shanghai}\n    - {schedule: \"0 9 * * *\"}",
        );
        let mut wf = check_text(&several).unwrap().workflow;
        let next = Utc::now() + chrono::Duration::minutes(150);
        wf.status = Some(datajump_api::WorkflowStatus {
            next_schedule_time: Some(next),
            ..Default::default()
        });
        let list = WorkflowList::from(vec![wf.clone()]);
        let json = serde_json::to_value(&list).unwrap();
        assert_eq!(
            json["workflows"][0]["schedules"],
            serde_json::json!([
                {"schedule": "0 2 * * 1-5", "timezone": "Asia/Shanghai"},
                {"schedule": "0 9 * * *"}
            ])
        );
        let table = list.human(&Style { color: false });
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("NEXT SCHEDULE"), "{table}");
        assert!(
            lines[1].contains("0 2 * * 1-5 (Asia/Shanghai)") && lines[1].ends_with("in 2h"),
            "{table}"
        );
        assert!(lines[2].trim() == "0 9 * * *", "{table}");

        let tree = WorkflowTree::build(&wf, None).human(&Style { color: false });
        assert!(
            tree.starts_with(
                "Workflow etl  schedules: 0 2 * * 1-5 (Asia/Shanghai); 0 9 * * *  suspended: false"
            ),
            "{tree}"
        );
        assert!(
            tree.contains(&format!("next run: {}\n", next.to_rfc3339())),
            "{tree}"
        );
        wf.spec.suspend = true;
        let tree = WorkflowTree::build(&wf, None).human(&Style { color: false });
        assert!(!tree.contains("next run"), "a suspended workflow has none");
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

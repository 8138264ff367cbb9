//! `workflow backfill` and `workflow retry`: runs for past ticks, and a finished run again.
//!
//! A backfill is planned here (the window in each schedule's time zone, one run per tick of any
//! of the workflow's schedules, named as the scheduled run of that tick so existing ones are
//! recognised) and paced by the
//! scheduler (`spec.backfill.parallelism`, oldest first). A retry names its source run; the
//! scheduler executes it with the spec that run recorded.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use datajump_api::backfill::{self as planner, Bound, Window, Windows};
use datajump_api::names::backfill_name;
use datajump_api::schedules::Schedules;
use datajump_api::{BackfillRef, RunPhase, TaskPhase, Workflow, WorkflowRun};
use serde::Serialize;

use super::RUNS;
use super::outcomes::{BackfillOutcome, RetryStarted};
use super::runs::follow_run;
use crate::cli::{BackfillArgs, GlobalOpts};
use crate::cmd::Ctx;
use crate::error::InputError;
use crate::kube::{backfill, workflows};
use crate::output::{self, Changed, Render, Style};
use crate::workflow_file::check_file;

/// `workflow backfill` answer: the backfill and its runs in the window.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackfillAnswer {
    pub workflow: String,
    pub backfill: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub parallelism: u32,
    pub dry_run: bool,
    /// The runs it creates (or would), oldest first.
    pub runs: Vec<BackfillRow>,
    /// Ticks of the window that have a run already (scheduled, or an earlier backfill's).
    pub existing: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackfillRow {
    pub name: String,
    pub logical_time: DateTime<Utc>,
    /// `planned` (dry run), `created`, or `exists` (made meanwhile by the schedule).
    pub state: &'static str,
}

impl Render for BackfillAnswer {
    fn human(&self, style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.logical_time.to_rfc3339(),
                    style.state(r.state),
                ]
            })
            .collect();
        let mut out = if rows.is_empty() {
            String::new()
        } else {
            output::table(&["RUN", "LOGICAL TIME", "STATE"], &rows)
        };
        let verb = if self.dry_run {
            "would create"
        } else {
            "created"
        };
        let made = self.runs.iter().filter(|r| r.state != "exists").count();
        let existing = self.existing + self.runs.len() - made;
        out.push_str(&format!(
            "backfill {} of workflow {}: {verb} {made} runs ({existing} of the window's ticks have one already), at most {} at a time, oldest first\n",
            self.backfill, self.workflow, self.parallelism
        ));
        if !self.dry_run {
            out.push_str(&format!(
                "follow it: kubectl datajump workflow runs {} --backfill {}\n",
                self.workflow, self.backfill
            ));
        }
        out
    }
}

/// What a backfill of `workflow` does, planned against the names of its existing runs.
fn plan(
    workflow: &Workflow,
    args: &BackfillArgs,
    existing: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<(BackfillRef, Window, planner::Plan), InputError> {
    let name = workflow.metadata.name.clone().unwrap_or_default();
    let spec = &workflow.spec;
    let schedules = Schedules::of(spec)
        .map_err(|e| InputError::new(format!("workflow {name}: {e}")))?
        .ok_or_else(|| {
            InputError::new(format!(
                "workflow {name} has no schedule, so it has no ticks to backfill; start single runs with `kubectl datajump workflow run {name} --logical-time TIME`"
            ))
        })?;
    let bound =
        |flag, value: &str| Bound::parse(flag, value).map_err(|e| InputError::new(e.to_string()));
    let windows = Windows::new(
        bound("--from", &args.from)?,
        bound("--to", &args.to)?,
        &schedules,
        now,
    )
    .map_err(|e| InputError::new(e.to_string()))?;
    let planned = planner::plan(&name, &schedules, &windows, existing)
        .map_err(|e| InputError::new(e.to_string()))?;
    let window = windows.whole;
    let backfill = BackfillRef {
        name: backfill_name(&name, window.from, window.to),
        parallelism: args.parallel,
    };
    Ok((backfill, window, planned))
}

fn answer(
    workflow: &Workflow,
    backfill: &BackfillRef,
    window: Window,
    planned: &planner::Plan,
    state: impl Fn(&str) -> &'static str,
    dry_run: bool,
) -> BackfillAnswer {
    BackfillAnswer {
        workflow: workflow.metadata.name.clone().unwrap_or_default(),
        backfill: backfill.name.clone(),
        from: window.from,
        to: window.to,
        parallelism: backfill.parallelism,
        dry_run,
        runs: planned
            .create
            .iter()
            .map(|r| BackfillRow {
                name: r.name.clone(),
                logical_time: r.logical_time,
                state: state(&r.name),
            })
            .collect(),
        existing: planned.existing,
    }
}

/// `workflow backfill -f FILE --dry-run`: the plan for a workflow file, without a cluster.
pub(crate) fn run_offline(args: &BackfillArgs, global: &GlobalOpts) -> anyhow::Result<()> {
    let Some(file) = &args.file else {
        return Err(InputError::new("a workflow name or -f FILE is required").into());
    };
    let checked = check_file(file)?;
    let (backfill, window, planned) =
        plan(&checked.workflow, args, &BTreeSet::new(), Utc::now())
            .map_err(|e| InputError::new(format!("{}: {e}", file.display())))?;
    let answer = answer(
        &checked.workflow,
        &backfill,
        window,
        &planned,
        |_| "planned",
        true,
    );
    output::print(&answer, global)
}

/// `workflow backfill NAME`: creates the runs of the window that do not exist yet.
pub(crate) async fn run(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    args: &BackfillArgs,
) -> anyhow::Result<()> {
    let Some(name) = &args.name else {
        return run_offline(args, &ctx.global);
    };
    let workflow = workflows::get(client, ns, name).await?;
    datajump_api::validate::validate_workflow(&workflow)
        .map_err(|e| InputError::new(format!("workflow {name} is invalid:\n{e}")))?;
    let existing: BTreeSet<String> = workflows::runs_of(client, ns, name)
        .await?
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    let (backfill, window, planned) = plan(&workflow, args, &existing, Utc::now())?;
    if args.dry_run {
        let answer = answer(&workflow, &backfill, window, &planned, |_| "planned", true);
        return output::print(&answer, &ctx.global);
    }
    let runs: Vec<(String, DateTime<Utc>)> = planned
        .create
        .iter()
        .map(|r| (r.name.clone(), r.logical_time))
        .collect();
    let created = backfill::create_runs(client, &workflow, &backfill, &runs).await?;
    let state = |run: &str| {
        if created.existing.iter().any(|e| e == run) {
            "exists"
        } else {
            "created"
        }
    };
    output::print(
        &answer(&workflow, &backfill, window, &planned, state, false),
        &ctx.global,
    )?;
    if args.watch {
        follow(ctx, client, ns, &backfill.name, args.timeout).await?;
    }
    Ok(())
}

/// Follows a backfill to its end: one line per run as it finishes; an error (exit 1) naming the
/// failed runs and how to retry them when any failed.
async fn follow(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    name: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let progress = ctx.progress;
    let runs = backfill::watch(client, ns, name, timeout, |run| {
        if let Some(status) = run.status.as_ref().filter(|s| s.phase.is_finished()) {
            progress.line(format!(
                "  {:<40} {:?}",
                run.metadata.name.as_deref().unwrap_or_default(),
                status.phase
            ));
        }
    })
    .await?;
    let phase =
        |r: &Option<WorkflowRun>| r.as_ref().and_then(|r| r.status.as_ref()).map(|s| s.phase);
    let failed: Vec<&str> = runs
        .iter()
        .filter(|(_, r)| phase(r) == Some(RunPhase::Failed))
        .map(|(n, _)| n.as_str())
        .collect();
    let succeeded = runs
        .values()
        .filter(|r| phase(r) == Some(RunPhase::Succeeded))
        .count();
    // Runs someone stopped or terminated did not do all their work either.
    let stopped: Vec<&str> = runs
        .iter()
        .filter(|(_, r)| matches!(phase(r), Some(RunPhase::Stopped | RunPhase::Terminated)))
        .map(|(n, _)| n.as_str())
        .collect();
    let gone = runs.values().filter(|r| r.is_none()).count();
    let names = |runs: &[&str]| runs.iter().map(|r| r.to_string()).collect();
    let outcome = BackfillOutcome {
        backfill: name.to_string(),
        succeeded,
        failed: names(&failed),
        stopped: names(&stopped),
        pruned: gone,
    };
    output::print(&outcome, &ctx.global)?;
    if failed.is_empty() && stopped.is_empty() {
        return Ok(());
    }
    let mut which = Vec::new();
    if !failed.is_empty() {
        which.push(format!("failed runs: {}", failed.join(", ")));
    }
    if !stopped.is_empty() {
        which.push(format!("stopped runs: {}", stopped.join(", ")));
    }
    anyhow::bail!(
        "backfill {name}: {}; retry one with `kubectl datajump workflow retry RUN --from-failed`",
        which.join("; ")
    )
}

/// `workflow retry RUN`: a new run of a finished run's spec, logical time and parameters.
pub(crate) async fn retry(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    run_name: &str,
    from_failed: bool,
    watch: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let source = workflows::get_run(client, ns, run_name).await?;
    let status = source.status.clone().unwrap_or_default();
    check_retry(run_name, &status, from_failed)?;
    let workflow = workflows::get(client, ns, &source.spec.workflow_name).await?;
    let run = backfill::create_retry(client, &workflow, &source, from_failed).await?;
    let name = run.metadata.name.clone().unwrap_or_default();
    let started = RetryStarted {
        run: Changed::object("WorkflowRun", RUNS, &name, ns, "created", ""),
        retry_of: run_name.to_string(),
        from_failed,
        rerun: if from_failed {
            rerun_tasks(&status)
                .into_iter()
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        },
    };
    output::print(&started, &ctx.global)?;
    if let Some(timeout) = watch {
        follow_run(ctx, client, ns, &name, timeout).await?;
    }
    Ok(())
}

/// The tasks a retry from the failed ones runs again (see [`datajump_api::flow::kept_by_retry`]).
fn rerun_tasks(status: &datajump_api::WorkflowRunStatus) -> Vec<&str> {
    let Some(spec) = status.workflow_spec.as_deref() else {
        return Vec::new();
    };
    let limits = datajump_api::validate::Limits::default();
    let Ok(dag) = datajump_api::validate::validate_spec(spec, &limits) else {
        return spec.tasks.iter().map(|t| t.name.as_str()).collect();
    };
    let succeeded: Vec<bool> = spec
        .tasks
        .iter()
        .map(|t| {
            status
                .tasks
                .iter()
                .any(|s| s.name == t.name && s.phase == TaskPhase::Succeeded)
        })
        .collect();
    let kept = datajump_api::flow::kept_by_retry(&dag.dependents, &succeeded);
    spec.tasks
        .iter()
        .zip(kept)
        .filter(|(_, kept)| !kept)
        .map(|(t, _)| t.name.as_str())
        .chain(spec.on_exit.as_deref().map(|t| t.name.as_str()))
        .collect()
}

/// A run can be retried once it finished and recorded its spec; from its failed tasks only if it
/// failed.
fn check_retry(
    run: &str,
    status: &datajump_api::WorkflowRunStatus,
    from_failed: bool,
) -> Result<(), InputError> {
    if !status.phase.is_finished() {
        return Err(InputError::new(format!(
            "run {run} is {:?}: only a finished run is retried",
            status.phase
        )));
    }
    if status.workflow_spec.is_none() {
        return Err(InputError::new(format!(
            "run {run} recorded no spec (it never started a task), so there is nothing to run again; start a new run with `kubectl datajump workflow run`"
        )));
    }
    if from_failed && status.phase == RunPhase::Succeeded {
        return Err(InputError::new(format!(
            "run {run} succeeded: it has no failed tasks to retry; without --from-failed every task runs again"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn args(from: &str, to: &str) -> BackfillArgs {
        BackfillArgs {
            name: Some("etl".into()),
            file: None,
            from: from.into(),
            to: to.into(),
            parallel: 3,
            dry_run: true,
            watch: false,
            timeout: Duration::ZERO,
        }
    }

    fn nightly() -> Workflow {
        serde_yaml::from_str(
            r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl, namespace: data}
spec:
  schedule: "0 2 * * *"
  timezone: Asia/Shanghai
  tasks: [{name: load, image: busybox}]
"#,
        )
        .expect("workflow")
    }

    #[test]
    fn a_month_is_one_run_per_night_and_existing_nights_are_left_alone() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 6, 0, 0, 0)
            .single()
            .expect("now");
        let existing = BTreeSet::from(["etl-202611141800".to_string()]);
        let (backfill, window, planned) = plan(
            &nightly(),
            &args("2026-11-01", "2026-11-30"),
            &existing,
            now,
        )
        .expect("plan");
        assert_eq!(backfill.name, "etl-backfill-202610311600-202611301559");
        assert_eq!(backfill.parallelism, 3);
        assert_eq!(
            window.from,
            Utc.with_ymd_and_hms(2026, 10, 31, 16, 0, 0).unwrap()
        );
        assert_eq!(planned.create.len(), 29);
        assert_eq!(planned.existing, 1);
        // 02:00 in Shanghai is 18:00 UTC the day before.
        assert_eq!(planned.create[0].name, "etl-202610311800");
        let answer = answer(&nightly(), &backfill, window, &planned, |_| "planned", true);
        let text = answer.human(&Style { color: false });
        assert!(
            text.contains("would create 29 runs (1 of the window's ticks have one already), at most 3 at a time"),
            "{text}"
        );
    }

    #[test]
    fn several_schedules_backfill_their_union_once_per_instant() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 6, 0, 0, 0)
            .single()
            .expect("now");
        // Every night at 02:00, weekday nights at 02:00 too (the same instants), and weekend
        // afternoons at 14:00, all in Shanghai: Monday 2 to Sunday 8 November.
        let mut wf = nightly();
        (wf.spec.schedule, wf.spec.timezone) = (None, None);
        let entry = |schedule: &str| datajump_api::ScheduleSpec {
            schedule: schedule.into(),
            timezone: Some("Asia/Shanghai".into()),
        };
        wf.spec.schedules = Some(vec![
            entry("0 2 * * *"),
            entry("0 2 * * 1-5"),
            entry("0 14 * * 6,0"),
        ]);
        let (backfill, window, planned) = plan(
            &wf,
            &args("2026-11-02", "2026-11-08"),
            &BTreeSet::new(),
            now,
        )
        .expect("plan");
        let names: Vec<&str> = planned.create.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names.len(), 9, "7 nights and 2 afternoons: {names:?}");
        assert_eq!(names[0], "etl-202611011800", "Monday 02:00 Shanghai, once");
        assert!(names.contains(&"etl-202611070600"), "Saturday 14:00");
        assert_eq!(backfill.name, "etl-backfill-202611011600-202611081559");
        assert_eq!(
            window.from,
            Utc.with_ymd_and_hms(2026, 11, 1, 16, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_windows_and_unscheduled_workflows_are_input_errors() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 6, 0, 0, 0)
            .single()
            .expect("now");
        let none = BTreeSet::new();
        let err = |wf: &Workflow, a: BackfillArgs| {
            plan(wf, &a, &none, now).expect_err("refused").to_string()
        };
        assert_eq!(
            err(&nightly(), args("2026-11-31", "2026-12-01")),
            "--from \"2026-11-31\": expected a date (2026-11-01) or an RFC 3339 time (2026-11-01T02:00:00+08:00)"
        );
        assert!(
            err(&nightly(), args("2026-11-10", "2026-11-01")).starts_with("the window is empty")
        );
        assert!(err(&nightly(), args("2027-01-01", "2027-01-02")).contains("in the future"));
        let mut manual = nightly();
        manual.spec.schedule = None;
        assert!(
            err(&manual, args("2026-11-01", "2026-11-02"))
                .starts_with("workflow etl has no schedule")
        );
    }

    #[test]
    fn only_finished_runs_with_a_spec_are_retried() {
        let mut status = datajump_api::WorkflowRunStatus {
            phase: RunPhase::Running,
            ..Default::default()
        };
        assert!(
            check_retry("r", &status, false)
                .unwrap_err()
                .to_string()
                .contains("is Running")
        );
        status.phase = RunPhase::Failed;
        assert!(
            check_retry("r", &status, true)
                .unwrap_err()
                .to_string()
                .contains("recorded no spec")
        );
        status.workflow_spec = Some(std::sync::Arc::new(nightly().spec));
        assert!(check_retry("r", &status, true).is_ok());
        status.phase = RunPhase::Succeeded;
        assert!(
            check_retry("r", &status, true)
                .unwrap_err()
                .to_string()
                .contains("no failed tasks")
        );
        assert!(check_retry("r", &status, false).is_ok());
    }
}

//! A workflow's runs: starting one now, following it to its end (the exit code is its
//! outcome), listing them (all, or one backfill's), and reading its task pods' logs.

use std::collections::HashMap;
use std::time::Duration;

use datajump_api::{RunPhase, TaskPhase, WorkflowRun, WorkflowRunStatus};

use super::RUNS;
use super::outcomes::RunOutcome;
use super::views::RunList;
use crate::cmd::Ctx;
use crate::error::InputError;
use crate::kube::archive::{self, ArchivedLog};
use crate::kube::workflows::RunOptions;
use crate::kube::{logs, workflows};
use crate::output::{self, Changed};

/// Creates a run and, with `watch` (its `--timeout`), follows it; a failed run is an error
/// (exit 1).
pub(crate) async fn start(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    name: &str,
    watch: Option<Duration>,
    options: &RunOptions,
) -> anyhow::Result<()> {
    let run = workflows::create_run(client, ns, name, options).await?;
    let run_name = run.metadata.name.clone().unwrap_or_default();
    let created = Changed::object("WorkflowRun", RUNS, &run_name, ns, "created", "");
    output::print(&created, &ctx.global)?;
    let Some(timeout) = watch else {
        return Ok(());
    };
    follow_run(ctx, client, ns, &run_name, timeout).await
}

/// Follows a run to its end, one line per task state change; a failed run is an error (exit 1).
pub(crate) async fn follow_run(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    run_name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let done = watch_tasks(ctx, client, ns, run_name, timeout).await?;
    let status = done.status.unwrap_or_default();
    let outcome = RunOutcome {
        run: run_name.to_string(),
        phase: status.phase,
        succeeded_tasks: status.succeeded_tasks,
        total_tasks: status.total_tasks,
    };
    output::print(&outcome, &ctx.global)?;
    run_outcome(run_name, &status)
}

/// Watches a run until it finishes, one progress line per task state change; the run then.
pub(crate) async fn watch_tasks(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    run_name: &str,
    timeout: Duration,
) -> anyhow::Result<WorkflowRun> {
    let progress = ctx.progress;
    let mut seen: HashMap<String, TaskPhase> = HashMap::new();
    workflows::watch_run(client, ns, run_name, timeout, |r| {
        for t in r.status.iter().flat_map(|s| &s.tasks) {
            if seen.get(&t.name) != Some(&t.phase) {
                progress.line(format!("  {:<24} {:?}", t.name, t.phase));
                seen.insert(t.name.clone(), t.phase);
            }
        }
    })
    .await
}

/// The exit status of a watched run: success only when the run succeeded; otherwise an error
/// (exit 1) naming the failed tasks and how to see their logs.
pub(crate) fn run_outcome(run_name: &str, status: &WorkflowRunStatus) -> anyhow::Result<()> {
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

/// Which logs `workflow logs` prints.
pub(crate) struct LogsOf<'a> {
    /// Only this task (else every task of the run).
    pub(crate) task: Option<&'a str>,
    /// With `task`: this attempt instead of the last.
    pub(crate) attempt: Option<u32>,
    /// Stream until the containers end.
    pub(crate) follow: bool,
}

/// Prints the logs of a run's task pods, prefixed by task; with `follow`, streams them. A task
/// whose pod is gone is read from the scheduler's log archive (a note on stderr says so); one
/// that neither has is an error that says why for both, after the other tasks' logs.
pub(crate) async fn logs(
    client: &::kube::Client,
    ns: &str,
    run: &str,
    which: &LogsOf<'_>,
) -> anyhow::Result<()> {
    let wr = workflows::get_run(client, ns, run).await?;
    let workflow = wr.spec.workflow_name.clone();
    let tasks: Vec<_> = wr
        .status
        .map(|s| s.tasks)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| which.task.is_none_or(|want| t.name == want))
        .collect();
    if let Some(want) = which.task
        && tasks.is_empty()
    {
        return Err(InputError::new(format!("run {run} has no task {want:?}")).into());
    }
    let mut missing = Vec::new();
    for t in tasks {
        let job = match which.attempt {
            Some(n) if n > t.attempts => {
                return Err(InputError::new(format!(
                    "task {} of run {run} has made {} attempt(s); there is no attempt {n}",
                    t.name, t.attempts
                ))
                .into());
            }
            Some(n) => datajump_api::names::job_name(run, &t.name, n),
            None => match &t.job_name {
                Some(job) => job.clone(),
                None => {
                    println!("[{}] not started ({:?})", t.name, t.phase);
                    continue;
                }
            },
        };
        if print_pods(client, ns, &job, &t.name, which.follow).await? {
            continue;
        }
        let attempt = which.attempt.unwrap_or(t.attempts);
        let archived = archive::open(client, ns, &workflow, run, &t.name, attempt).await;
        let why_not = match archived {
            Ok(ArchivedLog::Found(log)) => {
                eprintln!(
                    "[{}] the pod of Job {job} is gone: this log is from the log archive",
                    t.name
                );
                print_prefixed(&t.name, log).await?;
                continue;
            }
            Ok(ArchivedLog::Missing(why)) => format!("the log archive has none: {why}"),
            Err(e) => format!("the log archive could not be read: {e:#}"),
        };
        let gone = logs::why_no_pod(client, ns, &t.name, &job).await?;
        missing.push(format!("{gone}; and {why_not}"));
    }
    match missing.len() {
        0 => Ok(()),
        _ => Err(anyhow::anyhow!(missing.join("\n"))),
    }
}

/// Prints the logs of Job `job`'s pods prefixed by `[task]` (streamed with `follow`); returns
/// false when it has no pod, or its pods went while being read (the scheduler deletes a
/// finished pod once its log is archived): the archive has the log then.
async fn print_pods(
    client: &::kube::Client,
    ns: &str,
    job: &str,
    task: &str,
    follow: bool,
) -> anyhow::Result<bool> {
    let pods = logs::job_pods(client, ns, job).await?;
    if pods.is_empty() {
        return Ok(false);
    }
    for pod in pods {
        let pod_name = pod.metadata.name.unwrap_or_default();
        let read = if follow {
            logs::follow(client, ns, &pod_name, job, |line| {
                println!("[{task}] {line}")
            })
            .await
        } else {
            logs::pod_log(client, ns, &pod_name, job)
                .await
                .map(|log| log.lines().for_each(|line| println!("[{task}] {line}")))
        };
        if let Err(e) = read {
            if logs::job_pods(client, ns, job).await?.is_empty() {
                return Ok(false);
            }
            return Err(e);
        }
    }
    Ok(true)
}

/// Prints each line of `log` prefixed by `[task]`, as it arrives (an archived log can be
/// larger than memory).
async fn print_prefixed(
    task: &str,
    log: Box<dyn futures::AsyncBufRead + Unpin + Send>,
) -> anyhow::Result<()> {
    use futures::AsyncBufReadExt;
    use std::io::Write;
    let mut log = log;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut line = Vec::new();
    // Bytes, not text: a log is not always UTF-8, and it is passed on as the task wrote it.
    while log.read_until(b'\n', &mut line).await? > 0 {
        write!(out, "[{task}] ")?;
        out.write_all(&line)?;
        if !line.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        line.clear();
    }
    out.flush()?;
    Ok(())
}

/// `workflow runs NAME [--backfill B]`: the workflow's runs newest first, or one backfill's
/// oldest tick first.
pub(crate) async fn list(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    name: &str,
    backfill: Option<&str>,
) -> anyhow::Result<()> {
    let runs = match backfill {
        Some(backfill) => {
            let runs = crate::kube::backfill::runs_of(client, ns, backfill).await?;
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
        None => workflows::runs_of(client, ns, name).await?,
    };
    output::print(&RunList::from(runs), &ctx.global)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

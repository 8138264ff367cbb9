//! `workflow stop RUN` and `workflow terminate RUN`: ask a run to end early by setting its
//! `spec.shutdown` (which GitOps or `kubectl patch` can set just as well), then with `--wait`
//! follow it to its end. A run that finished, or that was asked already, is left alone and
//! said so (exit 0, like kubectl's no-op answers). Terminating kills running tasks, so it asks
//! for confirmation like the other destructive verbs.

use datajump_api::{RunPhase, Shutdown, TaskPhase, WorkflowRun};
use serde::Serialize;

use super::runs::watch_tasks;
use crate::cli::{ConfirmArgs, ShutdownArgs};
use crate::cmd::{Ctx, confirm};
use crate::kube::workflows;
use crate::output::{self, Format, Render, Style};

/// What a request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// The run ended already, in this phase: nothing to do.
    Finished(RunPhase),
    /// The run was asked this already (or more): nothing to do.
    Asked(Shutdown),
    /// Set the field.
    Request,
}

/// What asking `shutdown` of `run` does, as it stands.
fn decide(run: &WorkflowRun, shutdown: Shutdown) -> Decision {
    let phase = run.status.as_ref().map(|s| s.phase).unwrap_or_default();
    if phase.is_finished() {
        return Decision::Finished(phase);
    }
    match run.spec.shutdown {
        Some(asked) if asked >= shutdown => Decision::Asked(asked),
        _ => Decision::Request,
    }
}

/// The verb of a shutdown, as the user typed it.
fn verb(shutdown: Shutdown) -> &'static str {
    match shutdown {
        Shutdown::Stop => "stop",
        Shutdown::Terminate => "terminate",
    }
}

/// The answer: what was asked of which run, whether this command asked it, and the run's phase
/// (when asked, or at its end with `--wait`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShutdownAnswer {
    pub run: String,
    pub namespace: String,
    /// `Stop` or `Terminate`.
    pub shutdown: Shutdown,
    /// Whether this command set `spec.shutdown` (false: the run had ended, or was asked already).
    pub requested: bool,
    pub phase: RunPhase,
    /// What happened, in words.
    pub message: String,
}

impl Render for ShutdownAnswer {
    fn human(&self, _style: &Style) -> String {
        format!("{}\n", self.message)
    }
}

/// What a request said, in words: for a run asked now, what happens next, naming its running
/// tasks and its `onExit` task.
fn request_message(
    run: &WorkflowRun,
    name: &str,
    shutdown: Shutdown,
    decision: Decision,
) -> String {
    let what = verb(shutdown);
    match decision {
        Decision::Finished(phase) => format!("run {name} already {phase:?}; nothing to {what}"),
        Decision::Asked(Shutdown::Stop) => {
            format!("run {name} is already stopping; nothing to {what}")
        }
        Decision::Asked(Shutdown::Terminate) => {
            format!("run {name} is already terminating; nothing to {what}")
        }
        Decision::Request => {
            let status = run.status.clone().unwrap_or_default();
            let running: Vec<&str> = status
                .tasks
                .iter()
                .filter(|t| t.phase == TaskPhase::Running)
                .map(|t| t.name.as_str())
                .collect();
            let running = match running.as_slice() {
                [] => "no task runs now".to_string(),
                names => format!("running: {}", names.join(", ")),
            };
            let exit = status
                .workflow_spec
                .as_ref()
                .and_then(|s| s.on_exit.as_ref())
                .map_or_else(String::new, |t| {
                    format!(", then the onExit task {} runs", t.name)
                });
            let effect = match shutdown {
                Shutdown::Stop => "no new task starts, running tasks finish",
                Shutdown::Terminate => "running tasks are stopped (their Jobs and pods deleted)",
            };
            format!("workflowrun.datajump.io/{name} {what} requested: {effect}{exit} ({running})")
        }
    }
}

/// `workflow stop|terminate RUN [--wait]`: `confirmation` is given for a terminate.
pub(crate) async fn run(
    ctx: &Ctx,
    client: &::kube::Client,
    ns: &str,
    args: &ShutdownArgs,
    shutdown: Shutdown,
    confirmation: Option<&ConfirmArgs>,
) -> anyhow::Result<()> {
    let name = args.run.as_str();
    let current = workflows::get_run(client, ns, name).await?;
    let decision = decide(&current, shutdown);
    let mut answer = ShutdownAnswer {
        run: name.to_string(),
        namespace: ns.to_string(),
        shutdown,
        requested: decision == Decision::Request,
        phase: current.status.as_ref().map(|s| s.phase).unwrap_or_default(),
        message: request_message(&current, name, shutdown, decision),
    };
    if let Decision::Finished(_) = decision {
        return output::print(&answer, &ctx.global);
    }
    if decision == Decision::Request {
        if let Some(args) = confirmation {
            confirm(
                ctx.global.env,
                &format!("{} run", verb(shutdown)),
                name,
                args,
            )?;
        }
        workflows::request_shutdown(client, ns, name, shutdown).await?;
    }
    if !args.wait {
        return output::print(&answer, &ctx.global);
    }
    let table = Format::from(ctx.global.output) == Format::Table;
    if table {
        output::print(&answer, &ctx.global)?;
    }
    let done = watch_tasks(ctx, client, ns, name, args.timeout).await?;
    let status = done.status.unwrap_or_default();
    answer.phase = status.phase;
    answer.message = format!(
        "run {name}: {:?}: {}",
        status.phase,
        status.message.as_deref().unwrap_or("ended")
    );
    output::print(&answer, &ctx.global)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(phase: &str, shutdown: Option<&str>) -> WorkflowRun {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
            "metadata": {"name": "etl-1", "namespace": "data"},
            "spec": {"workflowName": "etl", "shutdown": shutdown},
            "status": {"phase": phase,
                "workflowSpec": {"tasks": [{"name": "load", "image": "busybox"}],
                                 "onExit": {"name": "notify", "image": "busybox"}},
                "tasks": [{"name": "extract", "phase": "Succeeded"},
                          {"name": "load", "phase": "Running"}]}
        }))
        .expect("a run")
    }

    #[test]
    fn a_run_is_asked_once_and_a_finished_run_not_at_all() {
        use Shutdown::{Stop, Terminate};
        let cases = [
            ("Running", None, Stop, Decision::Request),
            ("Pending", None, Terminate, Decision::Request),
            ("Running", Some("Stop"), Terminate, Decision::Request),
            ("Running", Some("Stop"), Stop, Decision::Asked(Stop)),
            (
                "Running",
                Some("Terminate"),
                Stop,
                Decision::Asked(Terminate),
            ),
            (
                "Succeeded",
                None,
                Stop,
                Decision::Finished(RunPhase::Succeeded),
            ),
            (
                "Stopped",
                Some("Stop"),
                Terminate,
                Decision::Finished(RunPhase::Stopped),
            ),
        ];
        for (phase, asked, wanted, expected) in cases {
            assert_eq!(
                decide(&run(phase, asked), wanted),
                expected,
                "{phase} {asked:?} {wanted:?}"
            );
        }
    }

    #[test]
    fn the_answer_says_what_happens_next_or_why_nothing_does() {
        let r = run("Running", None);
        assert_eq!(
            request_message(&r, "etl-1", Shutdown::Stop, Decision::Request),
            "workflowrun.datajump.io/etl-1 stop requested: no new task starts, running tasks finish, then the onExit task notify runs (running: load)"
        );
        assert_eq!(
            request_message(&r, "etl-1", Shutdown::Terminate, Decision::Request),
            "workflowrun.datajump.io/etl-1 terminate requested: running tasks are stopped (their Jobs and pods deleted), then the onExit task notify runs (running: load)"
        );
        assert_eq!(
            request_message(
                &r,
                "etl-1",
                Shutdown::Stop,
                Decision::Finished(RunPhase::Succeeded)
            ),
            "run etl-1 already Succeeded; nothing to stop"
        );
        assert_eq!(
            request_message(
                &r,
                "etl-1",
                Shutdown::Stop,
                Decision::Asked(Shutdown::Terminate)
            ),
            "run etl-1 is already terminating; nothing to stop"
        );
    }
}

//! `workflow ...`: the scheduler's workflows from the command line. This module only dispatches
//! the sub-verbs: checking and submitting files (`submit`), starting, following, listing and
//! reading runs (`runs`), the answers people read (`views`, and `outcomes` for the verbs that
//! check or change something), the DAG drawn (`graph`), runs for past ticks or again
//! (`backfill`), and ending a run early (`stop`). Every file is read through
//! [`crate::workflow_file`].

pub(crate) mod backfill;
pub mod graph;
pub(crate) mod outcomes;
pub(crate) mod runs;
pub(crate) mod stop;
pub(crate) mod submit;
pub(crate) mod views;

use datajump_api::Shutdown;

use crate::cli::{GlobalOpts, WorkflowCommand};
use crate::cmd::{Ctx, confirm};
use crate::kube::workflows::{self, RunOptions};
use crate::output::{self, Changed};

/// The sub-verbs that need no cluster (a file instead of a workflow name); None for the rest.
pub(crate) fn run_offline(
    cmd: &WorkflowCommand,
    global: &GlobalOpts,
) -> Option<anyhow::Result<()>> {
    match cmd {
        WorkflowCommand::Validate { file } => Some(submit::validate(file, global)),
        WorkflowCommand::Backfill(args) if args.file.is_some() => {
            Some(backfill::run_offline(args, global))
        }
        WorkflowCommand::Graph(args) if args.file.is_some() => {
            Some(graph::run_offline(args, global))
        }
        _ => None,
    }
}

/// Runs one sub-verb against the cluster: `-n`, else `--env`'s namespace, else the context's.
pub(crate) async fn run(ctx: &Ctx, cmd: WorkflowCommand) -> anyhow::Result<()> {
    let client = ctx.client().await?;
    let ns = ctx.namespace_or(client.default_namespace());
    match cmd {
        WorkflowCommand::Validate { file } => submit::validate(&file, &ctx.global),
        WorkflowCommand::Submit {
            file,
            run_now,
            watch,
            timeout,
        } => {
            let applied = submit::submit(ctx, &client, &ns, &file).await?;
            if run_now || watch {
                let (ns, name) = (&applied.namespace, &applied.name);
                let watch = watch.then_some(timeout);
                runs::start(ctx, &client, ns, name, watch, &RunOptions::default()).await?;
            }
            Ok(())
        }
        WorkflowCommand::List => {
            let list = views::WorkflowList::from(workflows::list(&client, &ns).await?);
            output::print(&list, &ctx.global)
        }
        WorkflowCommand::Get { name } => {
            let wf = workflows::get(&client, &ns, &name).await?;
            let runs = workflows::runs_of(&client, &ns, &name).await?;
            output::print(&views::WorkflowTree::build(&wf, runs.first()), &ctx.global)
        }
        WorkflowCommand::Runs { name, backfill } => {
            runs::list(ctx, &client, &ns, &name, backfill.as_deref()).await
        }
        WorkflowCommand::Backfill(args) => backfill::run(ctx, &client, &ns, &args).await,
        WorkflowCommand::Graph(args) => graph::run(ctx, &client, &ns, &args).await,
        WorkflowCommand::Retry {
            run,
            from_failed,
            watch,
            timeout,
        } => {
            let watch = watch.then_some(timeout);
            backfill::retry(ctx, &client, &ns, &run, from_failed, watch).await
        }
        WorkflowCommand::Stop(args) => {
            stop::run(ctx, &client, &ns, &args, Shutdown::Stop, None).await
        }
        WorkflowCommand::Terminate { args, confirm } => {
            stop::run(
                ctx,
                &client,
                &ns,
                &args,
                Shutdown::Terminate,
                Some(&confirm),
            )
            .await
        }
        WorkflowCommand::Logs {
            run,
            task,
            attempt,
            follow,
        } => {
            let which = runs::LogsOf {
                task: task.as_deref(),
                attempt,
                follow,
            };
            runs::logs(&client, &ns, &run, &which).await
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
            let watch = watch.then_some(timeout);
            runs::start(ctx, &client, &ns, &name, watch, &options).await
        }
        WorkflowCommand::Suspend { name } => {
            workflows::set_suspend(&client, &ns, &name, true).await?;
            output::print(&changed(&ns, &name, "suspended", ""), &ctx.global)
        }
        WorkflowCommand::Resume { name } => {
            workflows::set_suspend(&client, &ns, &name, false).await?;
            output::print(&changed(&ns, &name, "resumed", ""), &ctx.global)
        }
        WorkflowCommand::Delete { name, confirm: c } => {
            confirm(ctx.global.env, "delete workflow", &name, &c)?;
            workflows::delete(&client, &ns, &name).await?;
            let deleted = changed(&ns, &name, "deleted", " with its runs");
            output::print(&deleted, &ctx.global)
        }
    }
}

/// How kubectl names the two resources in what it prints (`workflow.datajump.io/etl`).
pub(crate) const WORKFLOWS: &str = "workflow.datajump.io";
pub(crate) const RUNS: &str = "workflowrun.datajump.io";

/// `workflow.datajump.io/NAME ACTION[REMARK]` for people, the change for scripts.
fn changed(ns: &str, name: &str, action: &'static str, remark: &str) -> Changed {
    Changed::object("Workflow", WORKFLOWS, name, ns, action, remark)
}

//! Workflow and WorkflowRun requests (types from `datajump_api`): submit by server-side
//! apply, start runs, suspend/resume and stop/terminate runs by merge patch, and the
//! suspend-everything / resume-exactly-those pair that `restore` brackets its work with.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use datajump_api::names::manual_run_prefix;
use datajump_api::{LABEL_WORKFLOW, Shutdown, Workflow, WorkflowRun, WorkflowRunSpec};
use futures::TryStreamExt;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};

use super::FIELD_MANAGER;
use crate::error::InputError;

/// Server-side applies the workflow document exactly as the user wrote it (so only the fields
/// they set are owned by our field manager), forcing ownership conflicts like `kubectl apply
/// --server-side --force-conflicts`.
pub async fn apply(
    client: &Client,
    namespace: &str,
    name: &str,
    document: &Value,
) -> anyhow::Result<Workflow> {
    let api: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &super::apply_params(), &Patch::Apply(document))
        .await
        .with_context(|| format!("applying Workflow {name} in {namespace}"))
}

/// What a run started by hand carries besides its workflow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Parameter values over the workflow's defaults.
    pub parameters: std::collections::BTreeMap<String, String>,
    /// Its logical time (default: its creation).
    pub logical_time: Option<chrono::DateTime<Utc>>,
}

/// Creates a WorkflowRun for the workflow now. Parameters that do not fit the workflow (unknown,
/// or a required one missing) are an input error and nothing is created.
pub async fn create_run(
    client: &Client,
    namespace: &str,
    workflow: &str,
    options: &RunOptions,
) -> anyhow::Result<WorkflowRun> {
    let workflows: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    let owner = workflows
        .get_opt(workflow)
        .await
        .with_context(|| format!("reading Workflow {workflow} in {namespace}"))?
        .ok_or_else(|| {
            InputError::new(format!(
                "workflow {workflow:?} not found in namespace {namespace}"
            ))
        })?;
    datajump_api::validate::resolve_parameters(&owner.spec, &options.parameters).map_err(|e| {
        InputError::new(format!(
            "the parameters do not fit Workflow {workflow}:\n{e}"
        ))
    })?;
    let api: Api<WorkflowRun> = Api::namespaced(client.clone(), namespace);
    let run = WorkflowRun {
        metadata: ObjectMeta {
            // Server-generated suffix: two runs started in the same second do not collide.
            generate_name: Some(manual_run_prefix(workflow, Utc::now())),
            namespace: Some(namespace.to_string()),
            labels: Some([(LABEL_WORKFLOW.to_string(), workflow.to_string())].into()),
            // Owned like scheduled runs: deleting the workflow deletes it, and its changes
            // wake the workflow's controller (history, concurrency).
            owner_references: owner.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: WorkflowRunSpec {
            workflow_name: workflow.to_string(),
            scheduled_time: None,
            logical_time: options.logical_time,
            parameters: options.parameters.clone(),
            ..WorkflowRunSpec::default()
        },
        status: None,
    };
    api.create(&PostParams::default(), &run)
        .await
        .with_context(|| format!("creating a run of Workflow {workflow}"))
}

/// Sets `spec.suspend` with a merge patch (a toggle, not a declaration of the whole spec).
pub(crate) async fn set_suspend(
    client: &Client,
    namespace: &str,
    name: &str,
    suspend: bool,
) -> anyhow::Result<()> {
    let api: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &super::patch_params(),
        &Patch::Merge(json!({"spec": {"suspend": suspend}})),
    )
    .await
    .with_context(|| format!("setting suspend={suspend} on Workflow {name}"))?;
    Ok(())
}

/// Sets a run's `spec.shutdown` with a merge patch (the one field of a run's spec that may
/// change; the API server refuses going back from Terminate to Stop).
pub(crate) async fn request_shutdown(
    client: &Client,
    namespace: &str,
    run: &str,
    shutdown: Shutdown,
) -> anyhow::Result<WorkflowRun> {
    let api: Api<WorkflowRun> = Api::namespaced(client.clone(), namespace);
    // Under our field manager, so the run's managed fields tell who asked.
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..super::patch_params()
    };
    api.patch(
        run,
        &params,
        &Patch::Merge(json!({"spec": {"shutdown": shutdown}})),
    )
    .await
    .with_context(|| format!("setting shutdown={shutdown:?} on WorkflowRun {run}"))
}

/// Suspends every workflow in the namespace that is not suspended yet and returns their names,
/// so that exactly those are resumed afterwards (workflows a user had suspended stay suspended).
pub(crate) async fn suspend_all(client: &Client, namespace: &str) -> anyhow::Result<Vec<String>> {
    let api: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    let mut suspended = Vec::new();
    for wf in api.list(&ListParams::default()).await?.items {
        let Some(name) = wf.metadata.name.clone() else {
            continue;
        };
        if !wf.spec.suspend {
            set_suspend(client, namespace, &name, true).await?;
            suspended.push(name);
        }
    }
    Ok(suspended)
}

/// Resumes the given workflows; keeps going after a failure and reports every one that failed.
pub(crate) async fn resume_these(
    client: &Client,
    namespace: &str,
    names: &[String],
) -> Result<(), Vec<String>> {
    let mut failed = Vec::new();
    for name in names {
        if let Err(e) = set_suspend(client, namespace, name, false).await {
            failed.push(format!("{e:#}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed)
    }
}

/// Lists workflows.
pub(crate) async fn list(client: &Client, namespace: &str) -> anyhow::Result<Vec<Workflow>> {
    let api: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    Ok(api.list(&ListParams::default()).await?.items)
}

/// Gets one workflow (with a clear message when missing).
pub(crate) async fn get(client: &Client, namespace: &str, name: &str) -> anyhow::Result<Workflow> {
    let api: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Workflow {name} not found in namespace {namespace}"))
}

/// Deletes a workflow; its runs go with it when the scheduler made them owned, and otherwise
/// are deleted here too.
pub(crate) async fn delete(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let api: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    api.delete(name, &DeleteParams::background()).await?;
    // Runs are owned by their workflow, so the garbage collector is deleting them already;
    // this also catches runs made before they were owned. One already gone is fine.
    let runs: Api<WorkflowRun> = Api::namespaced(client.clone(), namespace);
    for run in runs_of(client, namespace, name).await? {
        if let Some(n) = run.metadata.name {
            match runs.delete(&n, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("deleting WorkflowRun {n}")));
                }
            }
        }
    }
    Ok(())
}

/// The runs of a workflow, newest first.
pub(crate) async fn runs_of(
    client: &Client,
    namespace: &str,
    workflow: &str,
) -> anyhow::Result<Vec<WorkflowRun>> {
    let api: Api<WorkflowRun> = Api::namespaced(client.clone(), namespace);
    let mut runs: Vec<WorkflowRun> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| r.spec.workflow_name == workflow)
        .collect();
    newest_first(&mut runs);
    Ok(runs)
}

/// Orders runs newest first: by creation, then (for runs created in the same second, as a
/// catch-up over several schedules creates them) by logical time, then by name.
fn newest_first(runs: &mut [WorkflowRun]) {
    runs.sort_by_cached_key(|r| {
        std::cmp::Reverse((
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            r.spec.scheduled_time.or(r.spec.logical_time),
            r.metadata.name.clone(),
        ))
    });
}

/// Gets one run.
pub(crate) async fn get_run(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<WorkflowRun> {
    let api: Api<WorkflowRun> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("WorkflowRun {name} not found in namespace {namespace}"))
}

/// Polls a run until it finishes, calling `on_change` with every new observation.
pub(crate) async fn watch_run(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    mut on_change: impl FnMut(&WorkflowRun),
) -> anyhow::Result<WorkflowRun> {
    let api: Api<WorkflowRun> = Api::namespaced(client.clone(), namespace);
    let follow = async {
        // One watch on the run (re-listed by the watcher after any disconnect): every status
        // change arrives as it happens, no polling.
        let mut changes = std::pin::pin!(kube::runtime::watcher::watch_object(api, name));
        let mut last = None;
        while let Some(event) = changes.try_next().await? {
            let Some(run) = event else {
                anyhow::bail!("WorkflowRun {name} in {namespace} was deleted while being watched");
            };
            if last.as_ref() != run.status.as_ref() {
                on_change(&run);
                last = run.status.clone();
            }
            if run.status.as_ref().is_some_and(|s| s.phase.is_finished()) {
                return Ok(run);
            }
        }
        anyhow::bail!("the watch of WorkflowRun {name} in {namespace} ended")
    };
    super::within(timeout, follow, || {
        format!(
            "WorkflowRun {name} in {namespace} did not finish within {timeout:?} (--timeout); it keeps running: kubectl datajump workflow runs -n {namespace}"
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_created_in_the_same_second_are_ordered_by_logical_time() {
        let run = |name: &str, created: &str, tick: &str| -> WorkflowRun {
            serde_json::from_value(json!({
                "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"workflowName": "etl", "scheduledTime": tick},
            }))
            .expect("a run")
        };
        let mut runs = vec![
            run(
                "etl-202612060950",
                "2026-12-06T10:04:01Z",
                "2026-12-06T09:50:00Z",
            ),
            run(
                "etl-202612061004",
                "2026-12-06T10:04:01Z",
                "2026-12-06T10:04:00Z",
            ),
            run(
                "etl-202612060900",
                "2026-12-06T09:00:00Z",
                "2026-12-06T09:00:00Z",
            ),
            run(
                "etl-202612061006",
                "2026-12-06T10:06:00Z",
                "2026-12-06T10:06:00Z",
            ),
        ];
        newest_first(&mut runs);
        let names: Vec<&str> = runs
            .iter()
            .filter_map(|r| r.metadata.name.as_deref())
            .collect();
        assert_eq!(
            names,
            [
                "etl-202612061006",
                "etl-202612061004",
                "etl-202612060950",
                "etl-202612060900"
            ]
        );
    }
}

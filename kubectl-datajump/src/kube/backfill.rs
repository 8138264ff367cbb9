//! Runs made for a workflow rather than by its schedule: a backfill's runs (one per past tick,
//! named as the scheduled run of that tick, so a second backfill of the same window creates
//! nothing) and a retry of a finished run. The scheduler paces a backfill and executes a retry
//! with the spec its source run recorded; this side only creates the runs and follows them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use datajump_api::names::retry_run_prefix;
use datajump_api::{
    ANNOTATION_SCHEDULED_TIME, BackfillRef, LABEL_BACKFILL, LABEL_RETRY_OF, LABEL_WORKFLOW,
    RetryOf, Workflow, WorkflowRun, WorkflowRunSpec,
};
use futures::TryStreamExt;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};

/// What creating a backfill's runs did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Created {
    /// Runs created.
    pub created: Vec<String>,
    /// Runs that existed already (made by the schedule or an earlier backfill meanwhile).
    pub existing: Vec<String>,
}

/// Creates the backfill's runs, oldest first: each named as the scheduled run of its tick,
/// owned by the workflow and labelled with the backfill. A run that exists already is left as
/// it is.
pub(crate) async fn create_runs(
    client: &Client,
    workflow: &Workflow,
    backfill: &BackfillRef,
    runs: &[(String, DateTime<Utc>)],
) -> anyhow::Result<Created> {
    let namespace = workflow.metadata.namespace.clone().unwrap_or_default();
    let wf_name = workflow.metadata.name.clone().unwrap_or_default();
    let api: Api<WorkflowRun> = Api::namespaced(client.clone(), &namespace);
    let mut outcome = Created::default();
    for (name, tick) in runs {
        let run = WorkflowRun {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(BTreeMap::from([
                    (LABEL_WORKFLOW.to_string(), wf_name.clone()),
                    (LABEL_BACKFILL.to_string(), backfill.name.clone()),
                ])),
                annotations: Some(BTreeMap::from([(
                    ANNOTATION_SCHEDULED_TIME.to_string(),
                    tick.to_rfc3339(),
                )])),
                owner_references: workflow.controller_owner_ref(&()).map(|r| vec![r]),
                ..ObjectMeta::default()
            },
            spec: WorkflowRunSpec {
                workflow_name: wf_name.clone(),
                scheduled_time: Some(*tick),
                backfill: Some(backfill.clone()),
                ..WorkflowRunSpec::default()
            },
            status: None,
        };
        match api.create(&PostParams::default(), &run).await {
            Ok(_) => outcome.created.push(name.clone()),
            Err(kube::Error::Api(e)) if e.code == 409 => outcome.existing.push(name.clone()),
            Err(e) => {
                anyhow::bail!(
                    "creating WorkflowRun {name} in {namespace}: {e} ({} of {} runs created; running the same backfill again creates the rest)",
                    outcome.created.len(),
                    runs.len()
                )
            }
        }
    }
    Ok(outcome)
}

/// The runs of backfill `name`, oldest tick first.
pub(crate) async fn runs_of(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<WorkflowRun>> {
    let selector = format!("{LABEL_BACKFILL}={name}");
    let mut runs: Vec<WorkflowRun> = super::list_labelled(client, namespace, &selector).await?;
    runs.sort_by_key(|r| (r.spec.scheduled_time, r.metadata.name.clone()));
    Ok(runs)
}

/// Follows the runs of backfill `name` until every one of them finished (or went away: history
/// pruning may delete finished runs), calling `on_change` with each new observation of a run.
/// Returns the last state seen of each run, by name.
pub(crate) async fn watch(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    mut on_change: impl FnMut(&WorkflowRun),
) -> anyhow::Result<BTreeMap<String, Option<WorkflowRun>>> {
    let api: Api<WorkflowRun> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().labels(&format!("{LABEL_BACKFILL}={name}"));
    let follow = async {
        let mut seen: BTreeMap<String, Option<WorkflowRun>> = BTreeMap::new();
        let mut events = std::pin::pin!(watcher(api, config));
        let mut listed = false;
        while let Some(event) = events.try_next().await? {
            match event {
                watcher::Event::Apply(run) | watcher::Event::InitApply(run) => {
                    let key = run.metadata.name.clone().unwrap_or_default();
                    let changed = seen
                        .get(&key)
                        .is_none_or(|old| old.as_ref().map(|r| &r.status) != Some(&run.status));
                    if changed {
                        on_change(&run);
                    }
                    seen.insert(key, Some(run));
                }
                watcher::Event::Delete(run) => {
                    seen.insert(run.metadata.name.clone().unwrap_or_default(), None);
                }
                watcher::Event::Init => {}
                watcher::Event::InitDone => listed = true,
            }
            let all_done = seen.values().all(|r| {
                r.as_ref()
                    .is_none_or(|r| r.status.as_ref().is_some_and(|s| s.phase.is_finished()))
            });
            if listed && all_done {
                return Ok(seen);
            }
        }
        anyhow::bail!("the watch of backfill {name} in {namespace} ended")
    };
    super::within(timeout, follow, || {
        format!(
            "backfill {name} in {namespace} did not finish within {timeout:?} (--timeout); its runs carry on: kubectl datajump workflow runs WORKFLOW --backfill {name} -n {namespace}"
        )
    })
    .await
}

/// Creates a run retrying the finished run `source` with the spec it recorded, its logical
/// time and parameters; with `from_failed`, its succeeded tasks are kept.
pub(crate) async fn create_retry(
    client: &Client,
    workflow: &Workflow,
    source: &WorkflowRun,
    from_failed: bool,
) -> anyhow::Result<WorkflowRun> {
    let namespace = workflow.metadata.namespace.clone().unwrap_or_default();
    let source_name = source.metadata.name.clone().unwrap_or_default();
    let logical_time = source
        .spec
        .scheduled_time
        .or(source.spec.logical_time)
        .or_else(|| {
            source
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
        });
    let mut labels = BTreeMap::from([(
        LABEL_WORKFLOW.to_string(),
        source.spec.workflow_name.clone(),
    )]);
    // A run name is also a valid label value unless someone named one by hand past 63 characters.
    if source_name.len() <= datajump_api::names::MAX_NAME_LEN {
        labels.insert(LABEL_RETRY_OF.to_string(), source_name.clone());
    }
    let run = WorkflowRun {
        metadata: ObjectMeta {
            generate_name: Some(retry_run_prefix(&source_name)),
            namespace: Some(namespace.clone()),
            labels: Some(labels),
            owner_references: workflow.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: WorkflowRunSpec {
            workflow_name: source.spec.workflow_name.clone(),
            logical_time,
            parameters: source.spec.parameters.clone(),
            retry_of: Some(RetryOf {
                run_name: source_name.clone(),
                from_failed,
            }),
            ..WorkflowRunSpec::default()
        },
        status: None,
    };
    let api: Api<WorkflowRun> = Api::namespaced(client.clone(), &namespace);
    api.create(&PostParams::default(), &run)
        .await
        .with_context(|| format!("creating a retry of WorkflowRun {source_name} in {namespace}"))
}

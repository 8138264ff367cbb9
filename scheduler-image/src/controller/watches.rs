//! The controller's watches: Workflows, WorkflowRuns, and the task Jobs and pods the scheduler
//! created, each feeding a cache (a reflector store, or the Job index) before it triggers a
//! reconcile, so that a reconcile always sees the change that triggered it.
//!
//! Cached objects are trimmed of what nothing reads, and cached runs share equal spec
//! snapshots ([`SharedSpecs`]): with thousands of runs retained, those copies would be most of
//! the scheduler's memory.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use futures::channel::mpsc::UnboundedSender;
use futures::{Stream, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::Notify;

use crate::cache_sync::{Cache, CacheSync};
use crate::job_index::JobIndex;
use crate::jobs::{LABEL_MANAGED_BY, MANAGER};
use crate::watched::{WatchedJob, WatchedPod, convert};
use datajump_api::{LABEL_RUN, Workflow, WorkflowRun, WorkflowSpec};

/// An API of `K` objects in `namespace`, or in every namespace.
pub(super) fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The run a task Job or pod belongs to, from its `datajump.io/run` label (the Job's pod
/// template carries the Job's labels).
pub(super) fn run_of(meta: &ObjectMeta) -> Option<ObjectRef<WorkflowRun>> {
    let run = meta.labels.as_ref()?.get(LABEL_RUN)?;
    let ns = meta.namespace.as_deref()?;
    Some(ObjectRef::new(run).within(ns))
}

/// Reports the end of `cache`'s first list to `synced`.
fn observer<K>(synced: &Arc<CacheSync>, cache: Cache) -> impl Fn(&watcher::Event<K>) + use<K> {
    let synced = synced.clone();
    move |event| synced.observe(cache, event)
}

/// Cached Workflows and runs keep no managed fields and no annotations: nothing here reads
/// them, a run's managed fields name every task's status fields again (about a kilobyte per
/// task), and `kubectl apply` keeps a whole Workflow in an annotation.
fn trim_cached<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
}

/// Shares the spec snapshots of cached runs: the runs of one Workflow mostly execute the same
/// spec, and each copy of a 100-task spec costs tens of kilobytes. Holds the specs weakly, so
/// it keeps nothing alive that no cached run uses.
#[derive(Default)]
struct SharedSpecs {
    /// By (namespace, workflow): the distinct specs its cached runs hold, newest last.
    specs: HashMap<(String, String), Vec<Weak<WorkflowSpec>>>,
}

/// Distinct specs remembered per Workflow (runs of older specs beyond these keep own copies).
const SHARED_SPECS_PER_WORKFLOW: usize = 4;

impl SharedSpecs {
    fn share(&mut self, run: &mut WorkflowRun) {
        let key = (
            run.metadata.namespace.clone().unwrap_or_default(),
            run.spec.workflow_name.clone(),
        );
        let Some(spec) = run.status.as_mut().and_then(|s| s.workflow_spec.as_mut()) else {
            return;
        };
        let known = self.specs.entry(key).or_default();
        known.retain(|w| w.strong_count() > 0);
        if let Some(shared) = known
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| **s == **spec)
        {
            *spec = shared;
            return;
        }
        if known.len() == SHARED_SPECS_PER_WORKFLOW {
            known.remove(0);
        }
        known.push(Arc::downgrade(spec));
    }
}

/// Asks for a reconcile of the Workflow that owns the run of `event`.
fn trigger_workflow(
    event: &watcher::Event<WorkflowRun>,
    wake: &UnboundedSender<ObjectRef<Workflow>>,
) {
    let run = match event {
        watcher::Event::Apply(run)
        | watcher::Event::Delete(run)
        | watcher::Event::InitApply(run) => run,
        watcher::Event::Init | watcher::Event::InitDone => return,
    };
    let owner = run
        .owner_references()
        .iter()
        .find(|o| o.kind == "Workflow" && o.controller == Some(true));
    if let (Some(owner), Some(ns)) = (owner, run.namespace()) {
        // Fails only once the workflow controller stopped.
        let _ = wake.unbounded_send(ObjectRef::new(&owner.name).within(&ns));
    }
}

/// The Workflow watch: its cache, and the Workflows it changes.
pub(super) fn workflows(
    api: Api<Workflow>,
    synced: &Arc<CacheSync>,
) -> (
    Store<Workflow>,
    impl Stream<Item = Result<Workflow, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store::<Workflow>();
    let events = reflector(
        writer,
        watcher(api, watcher::Config::default()).modify(trim_cached),
    )
    .default_backoff()
    .inspect_ok(observer(synced, Cache::Workflows))
    .applied_objects();
    (store, events)
}

/// The WorkflowRun watch: its cache (spec snapshots shared), and the runs it changes. A run's
/// change also triggers its Workflow (history, concurrency, status) through `workflow_wake`,
/// from this same watch and after the store holds the change: a second watch of runs could
/// trigger the Workflow before its store shows what changed.
pub(super) fn runs(
    api: Api<WorkflowRun>,
    synced: &Arc<CacheSync>,
    workflow_wake: UnboundedSender<ObjectRef<Workflow>>,
) -> (
    Store<WorkflowRun>,
    impl Stream<Item = Result<WorkflowRun, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store::<WorkflowRun>();
    let mut shared_specs = SharedSpecs::default();
    let events = reflector(
        writer,
        watcher(api, watcher::Config::default()).modify(move |run| {
            trim_cached(run);
            shared_specs.share(run);
        }),
    )
    .default_backoff()
    .inspect_ok(observer(synced, Cache::Runs))
    .inspect_ok(move |event| trigger_workflow(event, &workflow_wake))
    .applied_objects();
    (store, events)
}

/// Only the Jobs (and their pods) the scheduler created.
fn managed_by_scheduler() -> watcher::Config {
    watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"))
}

/// The watch of task Jobs: it feeds the Job index (for the global cap and each run's Jobs)
/// and then the run controller's triggers. The index is updated before the event is passed
/// on, so a run reconciled because its Job changed always sees that change; with two separate
/// watches the trigger could arrive first, find nothing new, and leave the run waiting for the
/// next resync. Every Job change may free a slot: `slots_freed` is notified.
pub(super) fn jobs(
    api: Api<WatchedJob>,
    index: Arc<JobIndex>,
    slots_freed: Arc<Notify>,
    synced: &Arc<CacheSync>,
) -> impl Stream<Item = Result<Job, watcher::Error>> + Send + 'static {
    // Task Jobs are watched without the spec and managed fields they carry (see `watched`),
    // then read as the k8s-openapi type.
    watcher(api, managed_by_scheduler())
        .default_backoff()
        .map_ok(convert::<WatchedJob, Job>)
        .map_ok(move |event| {
            index.observe(&event);
            slots_freed.notify_one();
            event
        })
        .inspect_ok(observer(synced, Cache::Jobs))
        .touched_objects()
}

/// The watch of task pods, which tell what their Jobs do not (an image that cannot be pulled,
/// no node that fits, an exit code). The Job index takes their reports, and only events that
/// change a report trigger the run: a pod's ordinary life (scheduled, running, done) triggers
/// nothing beyond what its Job's events already do.
pub(super) fn pods(
    api: Api<WatchedPod>,
    index: Arc<JobIndex>,
) -> impl Stream<Item = Result<Pod, watcher::Error>> + Send + 'static {
    watcher(api, managed_by_scheduler())
        .default_backoff()
        .map_ok(convert::<WatchedPod, Pod>)
        .try_filter(move |event| std::future::ready(index.observe_pod(event)))
        .touched_objects()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with_spec(name: &str, workflow: &str, image: &str) -> WorkflowRun {
        let mut run: WorkflowRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "WorkflowRun",
            "metadata": {"name": name, "namespace": "dev",
                         "managedFields": [{"manager": "m", "operation": "Apply"}],
                         "annotations": {"a": "b"}},
            "spec": {"workflowName": workflow},
            "status": {"workflowSpec": {"tasks": [{"name": "t", "image": image}]}}
        }))
        .expect("a run");
        trim_cached(&mut run);
        run
    }

    fn spec_of(run: &WorkflowRun) -> Arc<WorkflowSpec> {
        run.status
            .as_ref()
            .and_then(|s| s.workflow_spec.clone())
            .expect("a snapshot")
    }

    #[test]
    fn cached_runs_share_equal_specs_and_keep_no_managed_fields() {
        let mut shared = SharedSpecs::default();
        let mut runs: Vec<WorkflowRun> =
            [("r1", "etl", "a"), ("r2", "etl", "a"), ("r3", "etl", "b")]
                .into_iter()
                .map(|(n, w, i)| run_with_spec(n, w, i))
                .collect();
        runs.push(run_with_spec("r4", "other", "a"));
        for run in &mut runs {
            shared.share(run);
        }
        assert!(
            runs[0].metadata.managed_fields.is_none() && runs[0].metadata.annotations.is_none()
        );
        assert!(
            Arc::ptr_eq(&spec_of(&runs[0]), &spec_of(&runs[1])),
            "equal specs share one copy"
        );
        assert!(
            !Arc::ptr_eq(&spec_of(&runs[0]), &spec_of(&runs[2])),
            "a different spec is its own"
        );
        assert!(
            !Arc::ptr_eq(&spec_of(&runs[0]), &spec_of(&runs[3])),
            "per workflow"
        );
        assert_eq!(spec_of(&runs[1]).tasks[0].image, "a");
        // Nothing is kept alive by the sharing itself.
        let weak = Arc::downgrade(&spec_of(&runs[2]));
        runs.remove(2);
        assert_eq!(weak.strong_count(), 0);
    }
}

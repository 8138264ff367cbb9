//! The only module that talks to the API server: the kube-runtime controllers over Workflows
//! and WorkflowRuns (and the Jobs they own), the [`Cluster`] implementation backed by reflector
//! caches, the leader Lease, and the process's run loop.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration as StdDuration;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::cache_sync::{Cache, CacheSync};
use crate::config::ControllerConfig;
use crate::http::Health;
use crate::job_index::JobIndex;
use crate::jobs::{LABEL_JOB_NAME, LABEL_MANAGED_BY, MANAGER, from_k8s_time, to_k8s_time};
use crate::leader::{LeaseDecision, LeaseView, decide, renew_deadline, retry_period};
use crate::metrics::Metrics;
use crate::plan::{EventType, ObservedJob};
use crate::reconcile::{Cluster, ClusterError, Created, Reconciler};
use crate::waiters::RunRef;
use crate::watched::{WatchedJob, WatchedPod, convert};
use datajump_api::{
    LABEL_RUN, Workflow, WorkflowRun, WorkflowRunStatus, WorkflowSpec, WorkflowStatus,
};

/// Field manager of every write (server-side apply and creates).
pub const FIELD_MANAGER: &str = "datajump-scheduler";

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A Kubernetes API call failed.
    // Not marked as `source`: kube's message already includes its causes.
    #[error("kubernetes API: {0}")]
    Kube(kube::Error),
    /// The Lease could not be renewed in time; another replica may be acting now.
    #[error("lost the leader Lease {0}; exiting so that only one replica acts")]
    LostLeadership(String),
}

impl From<kube::Error> for ControllerError {
    fn from(e: kube::Error) -> Self {
        Self::Kube(e)
    }
}

/// [`Cluster`] over reflector caches and the API server.
pub struct KubeCluster {
    client: Client,
    workflows: Store<Workflow>,
    runs: Store<WorkflowRun>,
    jobs: Arc<JobIndex>,
    recorder: Recorder,
}

fn cluster_error(
    operation: &'static str,
    kind: &'static str,
    ns: &str,
    name: &str,
    e: kube::Error,
) -> ClusterError {
    ClusterError {
        operation,
        kind,
        namespace: ns.into(),
        name: name.into(),
        message: e.to_string(),
    }
}

fn is_status(e: &kube::Error, pred: fn(&kube::core::Status) -> bool) -> bool {
    matches!(e, kube::Error::Api(s) if pred(s))
}

impl KubeCluster {
    async fn create<K>(&self, obj: K, kind: &'static str) -> Result<Created, ClusterError>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&pp, &obj).await {
            Ok(_) => Ok(Created::New),
            Err(e) if is_status(&e, |s| s.is_already_exists()) => Ok(Created::AlreadyExists),
            // Bad request, forbidden (admission, quota) and invalid: the same object would be
            // refused again, so retrying the reconcile cannot help; the caller records it.
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => {
                Ok(Created::Rejected { message: s.message })
            }
            Err(e) => Err(cluster_error("create", kind, &ns, &name, e)),
        }
    }

    async fn delete<K>(&self, ns: &str, name: &str, kind: &'static str) -> Result<(), ClusterError>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        // Background propagation: the API server garbage-collects pods (and a run's Jobs).
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, |s| s.is_not_found()) => Ok(()),
            Err(e) => Err(cluster_error("delete", kind, ns, name, e)),
        }
    }

    async fn apply_status<K, S>(
        &self,
        obj: &K,
        status: &S,
        kind: &'static str,
    ) -> Result<(), ClusterError>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        S: Serialize,
    {
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map(|_| ())
        .map_err(|e| cluster_error("patch status", kind, &ns, &name, e))
    }
}

impl Cluster for KubeCluster {
    fn workflow(&self, namespace: &str, name: &str) -> Option<Arc<Workflow>> {
        self.workflows.get(&ObjectRef::new(name).within(namespace))
    }

    fn runs_of(&self, namespace: &str, workflow: &str) -> Vec<Arc<WorkflowRun>> {
        self.runs.state_filter(|r| {
            r.metadata.namespace.as_deref() == Some(namespace) && r.spec.workflow_name == workflow
        })
    }

    fn jobs_of(&self, run: &WorkflowRun) -> Vec<ObservedJob> {
        run.metadata
            .uid
            .as_deref()
            .map(|uid| self.jobs.jobs_of(uid))
            .unwrap_or_default()
    }

    fn job_cached(&self, namespace: &str, name: &str) -> bool {
        self.jobs.contains(namespace, name)
    }

    fn running_tasks(&self) -> usize {
        self.jobs.active()
    }

    fn running_in_pool(&self, pool: &str) -> usize {
        self.jobs.active_in(pool)
    }

    async fn create_run(&self, run: WorkflowRun) -> Result<Created, ClusterError> {
        let (ns, name) = (run.namespace().unwrap_or_default(), run.name_any());
        match self.create(run, "WorkflowRun").await? {
            // A refused run is the workflow's problem, reported through its reconcile error.
            Created::Rejected { message } => Err(ClusterError {
                operation: "create",
                kind: "WorkflowRun",
                namespace: ns,
                name,
                message,
            }),
            created => Ok(created),
        }
    }

    async fn delete_run(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        self.delete::<WorkflowRun>(namespace, name, "WorkflowRun")
            .await
    }

    async fn patch_run_status(
        &self,
        run: &WorkflowRun,
        status: &WorkflowRunStatus,
    ) -> Result<(), ClusterError> {
        self.apply_status(run, status, "WorkflowRun").await
    }

    async fn patch_workflow_status(
        &self,
        wf: &Workflow,
        status: &WorkflowStatus,
    ) -> Result<(), ClusterError> {
        self.apply_status(wf, status, "Workflow").await
    }

    async fn create_job(&self, job: Job) -> Result<Created, ClusterError> {
        self.create(job, "Job").await
    }

    async fn delete_job(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        self.delete::<Job>(namespace, name, "Job").await
    }

    async fn delete_finished_pods(&self, namespace: &str, job: &str) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        // The Job is finished, so its controller creates no pod any more: every pod of it is
        // a finished one.
        let selector = ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job}"));
        api.delete_collection(&DeleteParams::background(), &selector)
            .await
            .map(drop)
            .map_err(|e| cluster_error("delete the pods of", "Job", namespace, job, e))
    }

    async fn publish_event(
        &self,
        run: &WorkflowRun,
        type_: EventType,
        reason: &'static str,
        message: &str,
    ) {
        let event = Event {
            type_: match type_ {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: reason.into(),
            // The Events API caps notes at 1 kB.
            note: Some(message.chars().take(1000).collect()),
            action: "Schedule".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &run.object_ref(&())).await {
            tracing::warn!(run = %run.name_any(), error = %e, "could not publish event");
        }
    }
}

struct Context {
    reconciler: Reconciler<KubeCluster>,
    synced: Arc<CacheSync>,
    /// The longest an object waits for its next reconcile when nothing changes.
    resync: StdDuration,
}

impl Context {
    /// Waits until every cache has its initial list, so decisions never rest on a partial view.
    async fn caches_ready(&self) {
        self.synced.wait().await;
    }
}

fn requeue(wake: Option<chrono::DateTime<Utc>>, resync: StdDuration) -> Requeue {
    let delay = wake
        .map(|w| (w - Utc::now()).to_std().unwrap_or(StdDuration::ZERO))
        .map_or(resync, |d| d.min(resync));
    // Wake slightly after the instant so the tick is already due.
    Requeue::requeue(delay + StdDuration::from_millis(200))
}

async fn reconcile_workflow(wf: Arc<Workflow>, ctx: Arc<Context>) -> Result<Requeue, ClusterError> {
    ctx.caches_ready().await;
    let wake = ctx.reconciler.reconcile_workflow(&wf, Utc::now()).await?;
    Ok(requeue(wake, ctx.resync))
}

async fn reconcile_run(run: Arc<WorkflowRun>, ctx: Arc<Context>) -> Result<Requeue, ClusterError> {
    ctx.caches_ready().await;
    let wake = ctx.reconciler.reconcile_run(&run, Utc::now()).await?;
    Ok(requeue(wake, ctx.resync))
}

fn on_error<K: ResourceExt>(obj: Arc<K>, err: &ClusterError, ctx: Arc<Context>) -> Requeue {
    ctx.reconciler.metrics.reconcile_errors.inc();
    tracing::warn!(object = %obj.name_any(), namespace = ?obj.namespace(), error = %err, "reconcile failed; retrying");
    Requeue::requeue(StdDuration::from_secs(5))
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
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
fn run_of(meta: &ObjectMeta) -> Option<ObjectRef<WorkflowRun>> {
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
    wake: &futures::channel::mpsc::UnboundedSender<ObjectRef<Workflow>>,
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

/// Wakes runs waiting for a slot of the global cap (in the order of `waiters`), one per free slot, each
/// time `slots_freed` is notified (notifications while it works coalesce into one more look).
async fn wake_waiting_runs(
    ctx: Arc<Context>,
    slots_freed: Arc<Notify>,
    runs: Store<WorkflowRun>,
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<WorkflowRun>>,
) {
    loop {
        slots_freed.notified().await;
        let exists = |(ns, name): &RunRef| runs.get(&ObjectRef::new(name).within(ns)).is_some();
        for (ns, name) in ctx.reconciler.runs_to_wake(Utc::now(), exists) {
            if wake
                .unbounded_send(ObjectRef::new(&name).within(&ns))
                .is_err()
            {
                return; // the run controller stopped
            }
        }
    }
}

/// Runs both controllers until `stop` completes.
pub async fn run_controllers(
    client: Client,
    config: &ControllerConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let ns = config.watch_namespace.as_deref();
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    let workflows: Api<Workflow> = scoped(&client, ns);
    let runs: Api<WorkflowRun> = scoped(&client, ns);
    // Task Jobs and pods are watched without the spec and managed fields they carry (see
    // `watched`), then read as the k8s-openapi types.
    let jobs: Api<WatchedJob> = scoped(&client, ns);
    let pods: Api<WatchedPod> = scoped(&client, ns);

    // Every cache reports the end of its first list to `synced`; see `cache_sync` for why the
    // stores' own readiness is not awaited here.
    let synced = Arc::new(CacheSync::default());

    let (workflow_store, writer) = reflector::store::<Workflow>();
    let workflow_events = reflector(
        writer,
        watcher(workflows, watcher::Config::default()).modify(trim_cached),
    )
    .default_backoff()
    .inspect_ok(observer(&synced, Cache::Workflows))
    .applied_objects();
    let (run_store, writer) = reflector::store::<WorkflowRun>();
    // A run's change triggers its Workflow (history, concurrency, status) from this same
    // watch, after the store holds the change: a second watch of runs could trigger the
    // Workflow before its store shows what changed.
    let (workflow_wake, workflow_wakes) = futures::channel::mpsc::unbounded();
    let mut shared_specs = SharedSpecs::default();
    let run_events = reflector(
        writer,
        watcher(runs, watcher::Config::default()).modify(move |run| {
            trim_cached(run);
            shared_specs.share(run);
        }),
    )
    .default_backoff()
    .inspect_ok(observer(&synced, Cache::Runs))
    .inspect_ok(move |event| trigger_workflow(event, &workflow_wake))
    .applied_objects();

    // One watch of the Jobs the scheduler created feeds both the Job index (for the global cap
    // and each run's Jobs) and the run controller's triggers. The index is updated before the
    // event is passed on, so a run reconciled because its Job changed always sees that change;
    // with two separate watches the trigger could arrive first, find nothing new, and leave the
    // run waiting for the next resync.
    let job_selector = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let job_index = Arc::new(JobIndex::default());
    let index = job_index.clone();
    // Every Job change may free a slot of the global cap: the waker below then wakes the runs
    // waiting for one.
    let slots_freed = Arc::new(Notify::new());
    let freed = slots_freed.clone();
    let job_events = watcher(jobs, job_selector.clone())
        .default_backoff()
        .map_ok(convert::<WatchedJob, Job>)
        .map_ok(move |event| {
            index.observe(&event);
            freed.notify_one();
            event
        })
        .inspect_ok(observer(&synced, Cache::Jobs))
        .touched_objects();
    // Task pods tell what their Jobs do not (an image that cannot be pulled, no node that
    // fits, an exit code). The same index takes their reports, and only events that change a
    // report trigger the run: a pod's ordinary life (scheduled, running, done) triggers nothing
    // beyond what its Job's events already do.
    let index = job_index.clone();
    let pod_events = watcher(pods, job_selector)
        .default_backoff()
        .map_ok(convert::<WatchedPod, Pod>)
        .try_filter(move |event| std::future::ready(index.observe_pod(event)))
        .touched_objects();
    // Bounded like controller-runtime's MaxConcurrentReconciles: unbounded, a thousand runs
    // created at once are a thousand reconciles in flight, each with its own connection.
    let concurrency = controller::Config::default().concurrency(config.reconcile_concurrency);
    let run_controller = Controller::for_stream(run_events, run_store.clone())
        .with_config(concurrency.clone())
        .watches_stream(job_events, |job: Job| run_of(&job.metadata))
        .watches_stream(pod_events, |pod: Pod| run_of(&pod.metadata))
        .reconcile_on(wake_rx);
    let workflow_controller = Controller::for_stream(workflow_events, workflow_store.clone())
        .with_config(concurrency)
        .reconcile_on(workflow_wakes);

    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some(config.identity.clone()),
    };
    let cluster = KubeCluster {
        client: client.clone(),
        workflows: workflow_store,
        runs: run_store.clone(),
        jobs: job_index,
        recorder: Recorder::new(client, reporter),
    };
    let ctx = Arc::new(Context {
        reconciler: Reconciler::new(cluster, config.scheduler.clone(), metrics)
            .with_slots_freed(slots_freed.clone()),
        synced,
        resync: config.resync,
    });

    let ready_ctx = ctx.clone();
    let readiness = async move {
        ready_ctx.caches_ready().await;
        tracing::info!("caches synced; scheduling");
        health.set_ready(true);
    };
    let wf_loop = workflow_controller
        .graceful_shutdown_on(stop.clone())
        .run(reconcile_workflow, on_error, ctx.clone())
        .for_each(|_| async {});
    let waker = wake_waiting_runs(ctx.clone(), slots_freed, run_store, wake_tx);
    let run_loop = run_controller
        .graceful_shutdown_on(stop.clone())
        .run(reconcile_run, on_error, ctx)
        .for_each(|_| async {});
    let waker = async move {
        tokio::select! {
            () = stop => {}
            () = waker => {}
        }
    };
    tokio::join!(readiness, wf_loop, run_loop, waker);
}

/// The leader Lease of this replica.
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration_seconds: u32,
}

fn micro_now() -> Option<MicroTime> {
    to_k8s_time(Utc::now()).map(|t| MicroTime(t.0))
}

impl LeaderLease {
    /// The Lease `name` in `namespace`, for candidate `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration_seconds: u32,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration_seconds,
        }
    }

    fn spec(&self, acquire: bool, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds as i32),
            acquire_time: if acquire { micro_now() } else { None },
            renew_time: micro_now(),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One election round: acquire, renew, or follow. Returns whether we hold the Lease.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let view = current.as_ref().map(|l| {
            let spec = l.spec.clone().unwrap_or_default();
            LeaseView {
                holder: spec.holder_identity,
                renewed: spec.renew_time.as_ref().and_then(|t| {
                    from_k8s_time(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0))
                }),
                duration_seconds: i64::from(
                    spec.lease_duration_seconds
                        .unwrap_or(self.duration_seconds as i32),
                ),
            }
        });
        let outcome = match (decide(view.as_ref(), &self.identity, Utc::now()), current) {
            (LeaseDecision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(true, 0)),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| true)
            }
            (LeaseDecision::Renew, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let mut spec = self.spec(false, old.lease_transitions.unwrap_or(0));
                spec.acquire_time = old.acquire_time;
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| true)
            }
            (LeaseDecision::TakeOver, Some(mut lease)) => {
                let transitions = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0)
                    + 1;
                lease.spec = Some(self.spec(true, transitions));
                tracing::info!(lease = %self.name, identity = %self.identity, "taking over the leader Lease");
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| true)
            }
            (LeaseDecision::Follow { holder, until }, _) => {
                tracing::debug!(%holder, %until, "following the leader");
                Ok(false)
            }
            (_, None) => Ok(false),
        };
        match outcome {
            // Another candidate wrote first (resourceVersion conflict or concurrent create).
            Err(e) if is_status(&e, |s| s.is_conflict() || s.is_already_exists()) => Ok(false),
            other => other,
        }
    }

    /// Gives the Lease up on shutdown so a follower takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                if let Err(e) = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    tracing::warn!(error = %e, "could not release the leader Lease");
                }
            }
        }
    }
}

/// Runs the scheduler: elects a leader (if enabled), then runs the controllers while leading.
/// Returns when `shutdown` fires, or with an error when leadership is lost.
pub async fn run(
    config: &ControllerConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    let client = Client::try_default().await?;
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let Some(election) = &config.leader_election else {
        metrics.is_leader.set(1);
        let stop = futures::future::FutureExt::shared(stopped(shutdown.clone()));
        run_controllers(client, config, metrics, health, stop).await;
        return Ok(());
    };

    let lease = LeaderLease::new(
        client.clone(),
        &election.namespace,
        &election.name,
        &config.identity,
        election.duration_seconds,
    );
    let period = retry_period(election.duration_seconds);
    // Standby until elected; a follower that reaches the API server is ready.
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        match lease.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => health.set_ready(true),
            Err(e) => tracing::warn!(error = %e, "leader election round failed"),
        }
        let mut rx = shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = rx.wait_for(|s| *s) => return Ok(()),
        }
    }
    tracing::info!(identity = %config.identity, lease = %election.name, "elected leader");
    metrics.is_leader.set(1);
    health.set_ready(false);

    // Keep renewing; stop the controllers once renewal has failed for the renew deadline, which
    // ends before the Lease expires for the followers.
    let (lost_tx, lost_rx) = watch::channel(false);
    let renew_shutdown = shutdown.clone();
    let lease = Arc::new(lease);
    let renewer = {
        let lease = lease.clone();
        let deadline = renew_deadline(election.duration_seconds);
        tokio::spawn(async move {
            // The election round that made us leader was a successful write.
            let mut last_ok = tokio::time::Instant::now();
            while !*renew_shutdown.borrow() {
                tokio::time::sleep(period).await;
                let left = deadline.saturating_sub(last_ok.elapsed());
                match tokio::time::timeout(left, lease.try_acquire_or_renew()).await {
                    Ok(Ok(true)) => last_ok = tokio::time::Instant::now(),
                    Ok(Ok(false)) => {
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "renewing the leader Lease failed"),
                    Err(_) => tracing::warn!("renewing the leader Lease did not finish in time"),
                }
                if last_ok.elapsed() >= deadline {
                    let _ = lost_tx.send(true);
                    return;
                }
            }
        })
    };
    let stop_on_shutdown = stopped(shutdown.clone());
    let stop_on_loss = stopped(lost_rx.clone());
    let stop = futures::future::FutureExt::shared(async move {
        tokio::select! {
            _ = stop_on_shutdown => {}
            _ = stop_on_loss => {}
        }
    });
    run_controllers(client, config, metrics.clone(), health, stop).await;
    renewer.abort();
    metrics.is_leader.set(0);
    if *lost_rx.borrow() {
        return Err(ControllerError::LostLeadership(election.name.clone()));
    }
    lease.release().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The API edges against kube's mock client (tower-test): request paths, verbs, field
    //! manager, and the mapping of 409 AlreadyExists / Conflict.
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use tower_test::mock;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

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

    fn mock_client() -> (Client, Handle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "default"), handle)
    }

    fn status(code: u16, reason: &str) -> Response<Body> {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": reason, "reason": reason, "code": code,
        });
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&body).expect("json")))
            .expect("response")
    }

    fn ok(value: serde_json::Value) -> Response<Body> {
        Response::builder()
            .body(Body::from(serde_json::to_vec(&value).expect("json")))
            .expect("response")
    }

    async fn next(
        handle: &mut Handle,
    ) -> (
        String,
        String,
        serde_json::Value,
        mock::SendResponse<Response<Body>>,
    ) {
        let (req, send) = handle.next_request().await.expect("a request");
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let bytes = req.into_body().collect_bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (method, uri, body, send)
    }

    fn cluster(client: Client) -> KubeCluster {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        };
        KubeCluster {
            client: client.clone(),
            workflows: kube::runtime::reflector::store().0,
            runs: kube::runtime::reflector::store().0,
            jobs: Arc::new(JobIndex::default()),
            recorder: Recorder::new(client, reporter),
        }
    }

    fn job(name: &str) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("data".into()),
                ..ObjectMeta::default()
            },
            ..Job::default()
        }
    }

    #[tokio::test]
    async fn a_duplicate_create_is_already_exists_not_an_error() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (method, uri, body, send) = next(&mut handle).await;
            assert_eq!(method, "POST");
            assert!(
                uri.starts_with("/apis/batch/v1/namespaces/data/jobs?"),
                "{uri}"
            );
            assert!(uri.contains("fieldManager=datajump-scheduler"), "{uri}");
            assert_eq!(body["metadata"]["name"], "run-a-1");
            send.send_response(ok(body));
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(status(409, "AlreadyExists"));
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(status(403, "Forbidden"));
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(status(503, "ServiceUnavailable"));
        });
        let c = cluster(client);
        assert_eq!(
            c.create_job(job("run-a-1")).await.expect("created"),
            Created::New
        );
        assert_eq!(
            c.create_job(job("run-a-1")).await.expect("exists"),
            Created::AlreadyExists
        );
        // Refused for good (admission, quota): an answer for the run, not a reconcile error.
        assert_eq!(
            c.create_job(job("run-a-1")).await.expect("refused"),
            Created::Rejected {
                message: "Forbidden".into()
            }
        );
        let err = c.create_job(job("run-a-1")).await.expect_err("unavailable");
        assert_eq!(
            (err.operation, err.kind, err.name.as_str()),
            ("create", "Job", "run-a-1")
        );
        server.await.expect("mock server");
    }

    #[tokio::test]
    async fn run_status_goes_through_the_status_subresource_with_server_side_apply() {
        let (client, mut handle) = mock_client();
        let server = tokio::spawn(async move {
            let (method, uri, body, send) = next(&mut handle).await;
            assert_eq!(method, "PATCH");
            assert!(
                uri.starts_with(
                    "/apis/datajump.io/v1alpha1/namespaces/data/workflowruns/etl-1/status?"
                ),
                "{uri}"
            );
            assert!(
                uri.contains("fieldManager=datajump-scheduler") && uri.contains("force=true"),
                "{uri}"
            );
            assert_eq!(body["kind"], "WorkflowRun");
            assert_eq!(body["status"]["phase"], "Running");
            let mut echo = body.clone();
            echo["metadata"] = serde_json::json!({"name": "etl-1", "namespace": "data"});
            echo["spec"] = serde_json::json!({"workflowName": "etl"});
            send.send_response(ok(echo));
        });
        let mut run = WorkflowRun::new(
            "etl-1",
            datajump_api::WorkflowRunSpec {
                workflow_name: "etl".into(),
                scheduled_time: None,
                ..Default::default()
            },
        );
        run.metadata.namespace = Some("data".into());
        let status = WorkflowRunStatus {
            phase: datajump_api::RunPhase::Running,
            ..Default::default()
        };
        cluster(client)
            .patch_run_status(&run, &status)
            .await
            .expect("patched");
        server.await.expect("mock server");
    }

    #[tokio::test]
    async fn lease_is_created_when_absent_and_followed_while_someone_else_holds_it() {
        let (client, mut handle) = mock_client();
        let lease = LeaderLease::new(
            client,
            "datajump-prod",
            "datajump-scheduler-leader",
            "pod-a",
            15,
        );
        let path = "/apis/coordination.k8s.io/v1/namespaces/datajump-prod/leases";
        let server = tokio::spawn(async move {
            let (method, uri, _, send) = next(&mut handle).await;
            assert_eq!(
                (method.as_str(), uri.as_str()),
                ("GET", &*format!("{path}/datajump-scheduler-leader"))
            );
            send.send_response(status(404, "NotFound"));
            let (method, uri, body, send) = next(&mut handle).await;
            assert_eq!(method, "POST");
            assert!(uri.starts_with(path), "{uri}");
            assert_eq!(body["spec"]["holderIdentity"], "pod-a");
            assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
            send.send_response(ok(body));

            // Round two: pod-b renewed a moment ago, so pod-a follows without writing.
            let (_, _, _, send) = next(&mut handle).await;
            let renewed = to_k8s_time(Utc::now()).map(|t| t.0.to_string());
            send.send_response(ok(serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "datajump-scheduler-leader", "resourceVersion": "7"},
                "spec": {"holderIdentity": "pod-b", "leaseDurationSeconds": 15, "renewTime": renewed},
            })));

            // Round three: the Lease expired; pod-a's takeover loses a race (409 Conflict).
            let (_, _, _, send) = next(&mut handle).await;
            send.send_response(ok(serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "datajump-scheduler-leader", "resourceVersion": "8"},
                "spec": {"holderIdentity": "pod-b", "leaseDurationSeconds": 15,
                         "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 2},
            })));
            let (method, _, body, send) = next(&mut handle).await;
            assert_eq!(method, "PUT");
            assert_eq!(
                body["metadata"]["resourceVersion"], "8",
                "optimistic concurrency"
            );
            assert_eq!(body["spec"]["leaseTransitions"], 3);
            send.send_response(status(409, "Conflict"));
        });
        assert!(
            lease.try_acquire_or_renew().await.expect("created"),
            "pod-a leads"
        );
        assert!(
            !lease.try_acquire_or_renew().await.expect("followed"),
            "pod-b holds it"
        );
        assert!(
            !lease.try_acquire_or_renew().await.expect("lost race"),
            "conflict means follow"
        );
        server.await.expect("mock server");
    }
}

//! The only module that talks to the API server: the kube-runtime controllers over Workflows
//! and WorkflowRuns (and the Jobs they own), wired to the reconcilers, and the process's run
//! loop under the leader Lease.
//!
//! - `cluster`: [`KubeCluster`], the reconcilers' `Cluster` over the caches and the API server;
//! - `watches`: the watch streams and the caches they feed;
//! - `lease`: the leader Lease client and the election loop;
//! - here: the wiring of watches, controllers, reconcilers and the slot waker, and [`run`].

mod cluster;
mod lease;
#[cfg(test)]
mod mock;
mod watches;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Utc;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{self, Action as Requeue, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio::sync::{Notify, watch};

use crate::cache_sync::CacheSync;
use crate::config::ControllerConfig;
use crate::http::Health;
use crate::job_index::JobIndex;
use crate::metrics::Metrics;
use crate::reconcile::{ClusterError, Reconciler};
use crate::waiters::RunRef;
use datajump_api::{Workflow, WorkflowRun};
use lease::{keep_renewing, wait_for_leadership};
use watches::{run_of, scoped};

pub use cluster::{FIELD_MANAGER, KubeCluster};
pub use lease::LeaderLease;

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

/// Wakes runs waiting for a slot of the global cap (in the order of the slot ledger), one per
/// free slot, each time `slots_freed` is notified (notifications while it works coalesce into
/// one more look).
async fn wake_waiting_runs(
    ctx: Arc<Context>,
    slots_freed: Arc<Notify>,
    runs: Store<WorkflowRun>,
    wake: UnboundedSender<ObjectRef<WorkflowRun>>,
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
    // Every cache reports the end of its first list to `synced`; see `cache_sync` for why the
    // stores' own readiness is not awaited here.
    let synced = Arc::new(CacheSync::default());
    let (workflow_wake, workflow_wakes) = futures::channel::mpsc::unbounded();
    let (workflow_store, workflow_events) = watches::workflows(scoped(&client, ns), &synced);
    let (run_store, run_events) = watches::runs(scoped(&client, ns), &synced, workflow_wake);
    let job_index = Arc::new(JobIndex::default());
    // Every Job change may free a slot of the global cap: the waker below then wakes the runs
    // waiting for one.
    let slots_freed = Arc::new(Notify::new());
    let job_events = watches::jobs(
        scoped(&client, ns),
        job_index.clone(),
        slots_freed.clone(),
        &synced,
    );
    let pod_events = watches::pods(scoped(&client, ns), job_index.clone());

    // Bounded like controller-runtime's MaxConcurrentReconciles: unbounded, a thousand runs
    // created at once are a thousand reconciles in flight, each with its own connection.
    let concurrency = controller::Config::default().concurrency(config.reconcile_concurrency);
    let (run_wake, run_wakes) = futures::channel::mpsc::unbounded();
    let run_controller = Controller::for_stream(run_events, run_store.clone())
        .with_config(concurrency.clone())
        .watches_stream(job_events, |job: Job| run_of(&job.metadata))
        .watches_stream(pod_events, |pod: Pod| run_of(&pod.metadata))
        .reconcile_on(run_wakes);
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
        archive: config.log_archive.clone(),
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
    let waker = wake_waiting_runs(ctx.clone(), slots_freed, run_store, run_wake);
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

/// Resolves once `rx` turns true (or its sender goes).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
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
    if !wait_for_leadership(&lease, &health, &shutdown).await {
        return Ok(());
    }
    tracing::info!(identity = %config.identity, lease = %election.name, "elected leader");
    metrics.is_leader.set(1);
    health.set_ready(false);

    // Keep renewing; stop the controllers once leadership is lost.
    let lease = Arc::new(lease);
    let (renewer, lost) = keep_renewing(lease.clone(), shutdown.clone());
    let stop_on_shutdown = stopped(shutdown.clone());
    let stop_on_loss = stopped(lost.clone());
    let stop = futures::future::FutureExt::shared(async move {
        tokio::select! {
            _ = stop_on_shutdown => {}
            _ = stop_on_loss => {}
        }
    });
    run_controllers(client, config, metrics.clone(), health, stop).await;
    renewer.abort();
    metrics.is_leader.set(0);
    if *lost.borrow() {
        return Err(ControllerError::LostLeadership(election.name.clone()));
    }
    lease.release().await;
    Ok(())
}

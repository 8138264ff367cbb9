//! The reconcilers: glue between the pure planners and a [`Cluster`].
//!
//! A reconcile reads the caches, asks a planner what to do (`ticks` for a workflow's schedule,
//! `plan` for a run's tasks) and carries the answer out through the [`Cluster`]. The
//! reconcilers keep no state that matters across restarts; everything is re-derived from the
//! cluster. What they do keep lives beside them:
//!
//! - `cluster`: the seam ([`Cluster`], [`Created`], [`ClusterError`]);
//! - `slots`: the slot ledger — the global cap and the task pools, slots reserved for Jobs on
//!   their way into the cache, runs waiting for a slot or for their backfill's turn;
//! - `freshness`: writes the caches may not show yet;
//! - `workflow`: a Workflow's reconcile (schedule ticks, history, status);
//! - `run`: a WorkflowRun's reconcile (its spec, its tasks as Jobs, its status).

mod cluster;
mod freshness;
mod run;
mod slots;
mod workflow;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::config::SchedulerConfig;
use crate::metrics::Metrics;
use crate::waiters::RunRef;
use freshness::Freshness;
use slots::SlotLedger;

pub use cluster::{ArchiveFailure, Archived, Cluster, ClusterError, Created};

/// Reconciles Workflows (schedule ticks, history) and WorkflowRuns (tasks as Jobs).
pub struct Reconciler<C> {
    /// The cluster.
    pub cluster: C,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings (the cap and the task pools are the slot ledger's).
    config: SchedulerConfig,
    /// Room for tasks, reserved slots and the runs waiting for them.
    slots: SlotLedger,
    /// Writes the caches may not show yet.
    freshness: Freshness,
}

impl<C: Cluster> Reconciler<C> {
    /// A reconciler over `cluster`.
    pub fn new(cluster: C, config: SchedulerConfig, metrics: Arc<Metrics>) -> Self {
        let slots = SlotLedger::new(config.max_running_tasks, config.task_pools.clone());
        Self {
            cluster,
            metrics,
            config,
            slots,
            freshness: Freshness::default(),
        }
    }

    /// The same reconciler notifying `slots_freed` when it gives reserved slots back (the
    /// controller passes the one its Job watch notifies and its waker waits on).
    pub fn with_slots_freed(mut self, slots_freed: Arc<Notify>) -> Self {
        self.slots.notify(slots_freed);
        self
    }

    /// What to notify when slots of the global cap may have freed; whoever wakes the waiting
    /// runs waits on it and calls [`Reconciler::runs_to_wake`].
    pub fn slots_freed(&self) -> Arc<Notify> {
        self.slots.slots_freed()
    }

    /// Takes the runs to wake now: the waiting runs for which `exists` holds, one per free
    /// slot of the global cap (highest priority first, runs under way before new ones), and
    /// the backfill runs whose turn came.
    pub fn runs_to_wake(
        &self,
        now: DateTime<Utc>,
        exists: impl Fn(&RunRef) -> bool,
    ) -> Vec<RunRef> {
        self.slots.runs_to_wake(&self.cluster, now, exists)
    }
}

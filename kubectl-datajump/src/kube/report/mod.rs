//! What `kubectl datajump report` reads from the API server, with whatever rights the user has
//! (`collect`: a refusal is noted, not a failure): every object of the namespace and of the
//! release (`objects`), the pods and their logs (`pods`), the events (`events`), the
//! scheduler's Lease, metrics and runs (`scheduler`), the operators' resources (`operators`),
//! the nodes and the preflight checks (`cluster`).
//!
//! Each reader hands what it read to a [`Sink`] as a [`Part`] the moment it has it, so nothing
//! is held longer than it takes to write it; where a part goes in the archive, and the
//! redaction on its way in, are the sink's business (`cmd/report/bundle.rs`).

pub(crate) mod cluster;
pub(crate) mod collect;
pub(crate) mod events;
pub(crate) mod objects;
pub(crate) mod operators;
pub(crate) mod pods;
pub(crate) mod scheduler;

use serde_json::Value;

/// One part of the report, as read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part<'a> {
    /// An object; `namespace` none for a cluster-scoped one, `resource` as kubectl names it
    /// (`deployments.apps`).
    Object {
        namespace: Option<&'a str>,
        resource: &'a str,
        name: &'a str,
        value: &'a Value,
    },
    /// A container's log (`previous`: the container before its last restart).
    Log {
        pod: &'a str,
        container: &'a str,
        previous: bool,
        text: &'a str,
    },
    /// The namespace's events as a table.
    Events(&'a str),
    /// The scheduler's leader Lease.
    Lease(&'a Value),
    /// The scheduler's `/metrics`.
    Metrics(&'a str),
    /// One line per WorkflowRun.
    RunsIndex(&'a str),
    /// One of the newest WorkflowRuns in full.
    Run { name: &'a str, value: &'a Value },
    /// An operator custom resource's readiness and status.
    Operator {
        kind: &'a str,
        name: &'a str,
        value: &'a Value,
    },
    /// Every node in summary.
    Nodes(&'a Value),
    /// The preflight checks' outcome.
    Preflight(&'a Value),
}

/// Where the readers put what they read.
pub(crate) trait Sink {
    fn put(&mut self, part: Part<'_>) -> anyhow::Result<()>;

    /// Whether an object is in already (the release's objects the namespace's listing found).
    fn has_object(&self, namespace: Option<&str>, resource: &str, name: &str) -> bool;
}

//! What the run planner takes: the run's Jobs as observed ([`ObservedJob`], with what their
//! pods report) and everything else it decides from ([`RunInput`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use datajump_api::validate::Dag;
use datajump_api::{Shutdown, WorkflowRunStatus, WorkflowSpec};

/// State of a Job as the controller observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Pods are pending or running.
    Active,
    /// The Job completed.
    Succeeded,
    /// The Job failed; `reason` is the Job's Failed condition reason (e.g. `DeadlineExceeded`).
    Failed {
        /// Machine reason from the Job condition.
        reason: String,
    },
}

/// Why a pod or a Job whose deadline passed failed, as Kubernetes words it (and the reason the
/// scheduler records on such a task).
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// What a task's pod shows that its Job does not: why it cannot start, or how its task
/// container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodReport {
    /// The pod cannot start without someone's help: its image cannot be pulled, its
    /// configuration is missing, or no node fits it.
    Blocked {
        /// As the kubelet or the kube-scheduler gives it (`ImagePullBackOff`, `Unschedulable`).
        reason: String,
        /// Their message.
        message: String,
    },
    /// The pod's `activeDeadlineSeconds` passed (the task's timeout, or the scheduler stopping
    /// it where it runs) and the kubelet stopped its containers; the pod stays, with its log.
    DeadlineExceeded {
        /// The task container's exit code, when it had started (137 after a SIGKILL, whatever
        /// the task chose after a SIGTERM it handled).
        exit_code: Option<i32>,
    },
    /// The task container terminated with a failure.
    Terminated {
        /// As the kubelet gives it (`OOMKilled`, `Error`).
        reason: String,
        /// The container's exit code.
        exit_code: i32,
    },
}

/// A Job owned by the run, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedJob {
    /// Value of the task label.
    pub task: String,
    /// Value of the attempt label (1-based).
    pub attempt: u32,
    /// Job name.
    pub name: String,
    /// Its state.
    pub state: JobState,
    /// When the Job was created (or started).
    pub started: Option<DateTime<Utc>>,
    /// When it finished (completion time or Failed condition transition).
    pub finished: Option<DateTime<Utc>>,
    /// What its pod reports, if anything (boxed: most Jobs have nothing to report, and the
    /// cache holds one `ObservedJob` per retained Job).
    pub pod: Option<Box<PodReport>>,
    /// Whether finished pods of it still exist (removed once the run recorded the result and
    /// the retention passed).
    pub finished_pods: bool,
    /// Whether it is being deleted (it carries a deletion timestamp): a Job deleted in the
    /// foreground stays, still active, until its pods are gone.
    pub deleting: bool,
}

/// Whether finished pods' logs go to the log archive before the pods are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogArchiving {
    /// No archive: pods are deleted once the retention passed.
    #[default]
    Off,
    /// Each pod's log is archived first; the pod is deleted only once that worked, or, when
    /// `give_up_after_seconds` is set, once that long passed after the pod was due while the
    /// archive kept failing (so an archive down for days does not keep every pod).
    On {
        /// Seconds after the retention a pod whose log could not be archived is deleted
        /// anyway; `None` keeps it until the archive works.
        give_up_after_seconds: Option<u32>,
    },
}

/// What the run planner needs.
#[derive(Debug, Clone, Copy)]
pub struct RunInput<'a> {
    /// The current time.
    pub now: DateTime<Utc>,
    /// Run name (Job names derive from it).
    pub run_name: &'a str,
    /// The workflow spec the run executes.
    /// (Shared: a run's first step records it as the run's spec snapshot without a copy.)
    pub spec: &'a Arc<WorkflowSpec>,
    /// Its validated dependency graph.
    pub dag: &'a Dag,
    /// The run's recorded status (default for a new run).
    pub status: &'a WorkflowRunStatus,
    /// Jobs labelled with this run.
    pub jobs: &'a [ObservedJob],
    /// How many more tasks may start now under the global cap of running tasks.
    pub free_slots: usize,
    /// Free slots of each task pool the scheduler knows.
    pub pool_free: &'a HashMap<String, usize>,
    /// The task pools the scheduler knows, with their limits: a task naming another pool has
    /// its attempt refused, with these in the message.
    pub task_pools: &'a BTreeMap<String, usize>,
    /// Seconds a pod may be blocked before its attempt fails, for tasks that set none.
    pub pending_timeout_seconds: u32,
    /// Seconds finished pods are kept (for `kubectl logs`) once the run recorded their result.
    pub finished_pod_retention_seconds: u32,
    /// Whether their logs are archived first.
    pub log_archiving: LogArchiving,
    /// The run's `spec.shutdown`: asked to stop or terminate.
    pub shutdown: Option<Shutdown>,
}

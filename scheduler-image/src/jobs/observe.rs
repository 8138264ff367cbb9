//! Reading back what the scheduler created: a task Job in the planner's terms, and what a task
//! pod reports that its Job does not (why it cannot start, how its container failed).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use super::{LABEL_JOB_NAME, from_k8s_time};
use crate::plan::{DEADLINE_EXCEEDED, JobState, ObservedJob, PodReport};
use datajump_api::{LABEL_ATTEMPT, LABEL_TASK};

/// Reads a Job the scheduler created back into the planner's terms; `None` for Jobs without
/// the task/attempt labels (not ours).
pub fn observe_job(job: &Job) -> Option<ObservedJob> {
    let labels = job.metadata.labels.as_ref()?;
    let task = labels.get(LABEL_TASK)?.clone();
    let attempt = labels.get(LABEL_ATTEMPT)?.parse().ok()?;
    let status = job.status.as_ref();
    let failed = status.and_then(|s| s.conditions.as_ref()).and_then(|cs| {
        cs.iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
    });
    let succeeded = status.and_then(|s| s.succeeded).unwrap_or(0) > 0;
    let state = match (succeeded, failed) {
        (true, _) => JobState::Succeeded,
        (false, Some(c)) => JobState::Failed {
            reason: c.reason.clone().unwrap_or_else(|| "Failed".into()),
        },
        (false, None) => JobState::Active,
    };
    let started = status
        .and_then(|s| s.start_time.as_ref())
        .or(job.metadata.creation_timestamp.as_ref())
        .and_then(from_k8s_time);
    let finished = status
        .and_then(|s| s.completion_time.as_ref())
        .or(failed.and_then(|c| c.last_transition_time.as_ref()))
        .and_then(from_k8s_time);
    Some(ObservedJob {
        task,
        attempt,
        name: job.metadata.name.clone()?,
        state,
        started,
        finished,
        pod: None,
        finished_pods: false,
        deleting: job.metadata.deletion_timestamp.is_some(),
    })
}

/// Container waiting reasons that do not clear without someone's help (an image name, a
/// registry secret, a missing ConfigMap or Secret). `ContainerCreating` and `PodInitializing`
/// are normal steps and are not here.
const BLOCKED_WAITING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Whether a pod has finished (Succeeded or Failed) and is not being deleted already.
pub fn pod_finished(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// The Job a task pod belongs to and what the pod reports: why it cannot start (a blocked
/// container, or no node fits it) or how its task container failed. `None` for a pod that is
/// not a Job's.
pub fn observe_pod(pod: &Pod) -> Option<(&str, Option<PodReport>)> {
    let job = pod.metadata.labels.as_ref()?.get(LABEL_JOB_NAME)?;
    Some((job.as_str(), pod_report(pod)))
}

fn pod_report(pod: &Pod) -> Option<PodReport> {
    let status = pod.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    // A disrupted pod (drain, preemption) is ignored by the Job's pod failure policy and
    // replaced: it says nothing about the task.
    if conditions
        .iter()
        .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
    {
        return None;
    }
    let containers = || {
        status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
    };
    match status.phase.as_deref() {
        // The kubelet stopped the pod at its deadline: the container's own ending (SIGKILL's
        // `Error` 137, or a clean exit on SIGTERM) is not why the task ended.
        Some("Failed") if status.reason.as_deref() == Some(DEADLINE_EXCEEDED) => {
            Some(PodReport::DeadlineExceeded {
                exit_code: containers()
                    .find_map(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)),
            })
        }
        Some("Failed") => containers().find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| PodReport::Terminated {
                reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
                exit_code: t.exit_code,
            })
        }),
        Some("Pending") | None => {
            let unschedulable = conditions.iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            });
            if let Some(c) = unschedulable {
                return Some(PodReport::Blocked {
                    reason: "Unschedulable".into(),
                    message: c.message.clone().unwrap_or_default(),
                });
            }
            containers().find_map(|c| {
                let w = c.state.as_ref()?.waiting.as_ref()?;
                let reason = w.reason.as_deref()?;
                BLOCKED_WAITING_REASONS
                    .contains(&reason)
                    .then(|| PodReport::Blocked {
                        reason: reason.to_string(),
                        message: w.message.clone().unwrap_or_default(),
                    })
            })
        }
        _ => None,
    }
}

/// Whether a Job is still running (counts against the global cap).
pub fn job_is_active(job: &Job) -> bool {
    observe_job(job).is_some_and(|o| o.state == JobState::Active)
}

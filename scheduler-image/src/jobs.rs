//! Pure builders for the objects the scheduler creates (WorkflowRuns and Jobs) and the reverse
//! mapping from an observed Job to the planner's view of it.
//!
//! Jobs run one attempt each (`backoffLimit: 0`): retries are the scheduler's, so every attempt
//! has its own deterministically named Job. A task's timeout becomes the Job's
//! `activeDeadlineSeconds`, so Kubernetes stops the pod and the Job keeps the verdict
//! (`DeadlineExceeded`) even if the scheduler is down at that moment.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, Pod, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;

use crate::plan::{JobState, ObservedJob, PodReport};
use datajump_api::names::scheduled_run_name;
use datajump_api::pod::{PodError, PodOptions, PodVolume, Presets};
use datajump_api::runtime::{self, RunFacts};
use datajump_api::schedule::{Schedule, parse_timezone};
use datajump_api::{
    ANNOTATION_SCHEDULED_TIME, LABEL_ATTEMPT, LABEL_POOL, LABEL_RUN, LABEL_TASK, LABEL_WORKFLOW,
    TaskSpec, Workflow, WorkflowRun, WorkflowRunSpec, WorkflowSpec,
};

/// Label every object created by the scheduler carries, so its watches see only its own Jobs.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGER: &str = "datajump-scheduler";

/// UID and GID task containers run as (the conventional "nonroot" user of distroless images).
pub const TASK_UID: i64 = 65532;

/// Settings applied to every task Job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskDefaults {
    /// Service account of task pods (unset: the namespace default).
    pub service_account: Option<String>,
    /// Requests for tasks that set none (cpu, memory).
    pub requests: BTreeMap<String, String>,
    /// Limits for tasks that set none (cpu, memory).
    pub limits: BTreeMap<String, String>,
    /// Named pod presets tasks and workflows may refer to (`pod.preset`).
    pub pod_presets: Presets,
}

/// Converts a chrono time into the Kubernetes wire type.
pub fn to_k8s_time(t: DateTime<Utc>) -> Option<Time> {
    k8s_openapi::jiff::Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .ok()
        .map(Time)
}

/// Converts a Kubernetes time into chrono.
pub fn from_k8s_time(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let mut reference = owner.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(reference)
}

/// The run for tick `scheduled` of `wf`, owned by it (deleting the workflow deletes its runs).
pub fn build_run(wf: &Workflow, scheduled: DateTime<Utc>) -> WorkflowRun {
    let wf_name = wf.metadata.name.clone().unwrap_or_default();
    let mut run = WorkflowRun::new(
        &scheduled_run_name(&wf_name, scheduled),
        WorkflowRunSpec {
            workflow_name: wf_name.clone(),
            scheduled_time: Some(scheduled),
            logical_time: None,
            // A scheduled run takes every parameter's default.
            ..WorkflowRunSpec::default()
        },
    );
    run.metadata.namespace = wf.metadata.namespace.clone();
    run.metadata.labels = Some(BTreeMap::from([
        (LABEL_WORKFLOW.to_string(), wf_name),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
    ]));
    run.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_SCHEDULED_TIME.to_string(),
        scheduled.to_rfc3339(),
    )]));
    run.metadata.owner_references = owner_reference(wf).map(|o| vec![o]);
    run
}

/// A task's resources with the scheduler's defaults filled in, per resource: a resource the task
/// sets (a request or a limit) is taken as the task gives it, and only a resource it does not
/// mention at all gets the default request and limit. Mixing them would give a task with
/// `requests.memory: 2Gi` the default `limits.memory: 512Mi`, which the API server refuses.
fn merged_resources(
    task: Option<&ResourceRequirements>,
    defaults: &TaskDefaults,
) -> ResourceRequirements {
    let given = |m: Option<&BTreeMap<String, Quantity>>| m.cloned().unwrap_or_default();
    let mut requests = given(task.and_then(|r| r.requests.as_ref()));
    let mut limits = given(task.and_then(|r| r.limits.as_ref()));
    let resources: std::collections::BTreeSet<&String> = defaults
        .requests
        .keys()
        .chain(defaults.limits.keys())
        .collect();
    for resource in resources {
        if requests.contains_key(resource) || limits.contains_key(resource) {
            continue;
        }
        if let Some(v) = defaults.requests.get(resource) {
            requests.insert(resource.clone(), Quantity(v.clone()));
        }
        if let Some(v) = defaults.limits.get(resource) {
            limits.insert(resource.clone(), Quantity(v.clone()));
        }
    }
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        claims: task.and_then(|r| r.claims.clone()),
    }
}

/// A container security context that passes the `restricted` Pod Security Standard, which the
/// DataJump namespaces enforce by default.
fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// The Job for `attempt` of `task` in `run`, owned by the run.
/// The variables every task of `run` gets (see [`datajump_api::runtime`]): its logical time —
/// the tick it was scheduled for, else the time it was created for, else its creation — the data interval from the schedule's
/// previous tick, the run and workflow names, and `parameters` (the run's resolved values).
/// The same on every attempt: nothing here depends on when the Job is created.
pub fn run_variables(
    run: &WorkflowRun,
    spec: &WorkflowSpec,
    parameters: &[(String, String)],
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let created = run
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(from_k8s_time);
    let logical_time = run
        .spec
        .scheduled_time
        .or(run.spec.logical_time)
        .or(created)
        .unwrap_or(now);
    let schedule = spec
        .schedule
        .as_deref()
        .and_then(|expr| Schedule::parse(expr, spec.timezone.as_deref()).ok());
    let tz = schedule
        .as_ref()
        .map(Schedule::timezone)
        .or_else(|| parse_timezone(spec.timezone.as_deref()).ok())
        .unwrap_or(chrono_tz::UTC);
    let interval_start = schedule
        .as_ref()
        .and_then(|s| s.latest_at_or_before(logical_time - chrono::Duration::seconds(1)))
        .unwrap_or(logical_time);
    let run_name = run.metadata.name.clone().unwrap_or_default();
    runtime::variables(&RunFacts {
        workflow: &run.spec.workflow_name,
        run: &run_name,
        logical_time,
        logical_date: logical_time.with_timezone(&tz).date_naive(),
        interval_start,
        parameters,
    })
}

///
/// The pod carries the task's pod options laid over the workflow's `podDefaults` (`pod_defaults`)
/// and the presets they name (see [`datajump_api::pod`]); a preset the scheduler does not know
/// is an error, which the caller treats like a Job the API server refused. Whatever the options
/// say, the scheduler's labels keep their values and the pod stays within Pod Security
/// `restricted`: non-root, every capability dropped, no privilege escalation, RuntimeDefault
/// seccomp, and no service account token unless asked for.
pub fn build_job(
    run: &WorkflowRun,
    task: &TaskSpec,
    pod_defaults: Option<&PodOptions>,
    attempt: u32,
    job_name: &str,
    defaults: &TaskDefaults,
    variables: &[(String, String)],
) -> Result<Job, PodError> {
    let options =
        datajump_api::pod::resolve(&defaults.pod_presets, pod_defaults, task.pod.as_ref())?;
    let run_name = run.metadata.name.clone().unwrap_or_default();
    // The task's labels first: the scheduler's own keys (validation refuses them anyway) keep
    // the scheduler's values, or it would lose track of its Jobs.
    let mut labels = options.labels.clone();
    labels.extend([
        (LABEL_WORKFLOW.to_string(), run.spec.workflow_name.clone()),
        (LABEL_RUN.to_string(), run_name),
        (LABEL_TASK.to_string(), task.name.clone()),
        (LABEL_ATTEMPT.to_string(), attempt.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
    ]);
    if let Some(pool) = &task.pool {
        labels.insert(LABEL_POOL.to_string(), pool.clone());
    }
    let mut container_security = restricted_security_context();
    container_security.read_only_root_filesystem = options
        .security_context
        .as_ref()
        .and_then(|sc| sc.read_only_root_filesystem);
    let chosen = options.security_context.clone().unwrap_or_default();
    let container = Container {
        name: "task".into(),
        image: Some(task.image.clone()),
        command: (!task.command.is_empty()).then(|| task.command.clone()),
        args: (!task.args.is_empty()).then(|| task.args.clone()),
        // The run's variables first, so the task's own env values can refer to them.
        env: Some(
            variables
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                })
                .chain(task.env.iter().cloned())
                .collect(),
        ),
        env_from: (!task.env_from.is_empty()).then(|| task.env_from.clone()),
        resources: Some(merged_resources(task.resources.as_ref(), defaults)),
        security_context: Some(container_security),
        volume_mounts: non_empty(
            options
                .volume_mounts
                .iter()
                .map(|m| VolumeMount {
                    name: m.name.clone(),
                    mount_path: m.mount_path.clone(),
                    read_only: m.read_only.then_some(true),
                    sub_path: m.sub_path.clone(),
                    ..VolumeMount::default()
                })
                .collect(),
        ),
        ..Container::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name.to_string()),
            namespace: run.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: owner_reference(run).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            // One pod per attempt: the scheduler counts attempts (retries with backoff) itself.
            backoff_limit: Some(0),
            // ... except that a pod the cluster took away (node drain, preemption, eviction) is
            // not a failed attempt: the Job controller starts another pod for the same attempt.
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: Some("True".into()),
                    }]),
                    on_exit_codes: None,
                }],
            }),
            active_deadline_seconds: task.timeout_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!options.annotations.is_empty())
                        .then(|| options.annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    // `runAsNonRoot` alone rejects every image whose USER is root (most public
                    // ones); a fixed unprivileged UID lets them run under `restricted`.
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(chosen.run_as_user.unwrap_or(TASK_UID)),
                        run_as_group: Some(chosen.run_as_group.unwrap_or(TASK_UID)),
                        fs_group: chosen.fs_group,
                        supplemental_groups: non_empty(chosen.supplemental_groups),
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    service_account_name: options
                        .service_account_name
                        .clone()
                        .or_else(|| defaults.service_account.clone()),
                    // Tasks are data jobs, not controllers: no Kubernetes API credentials
                    // unless the task asks for them.
                    automount_service_account_token: Some(
                        options.automount_service_account_token.unwrap_or(false),
                    ),
                    containers: vec![container],
                    volumes: non_empty(options.volumes.iter().map(volume).collect()),
                    node_selector: (!options.node_selector.is_empty())
                        .then(|| options.node_selector.clone()),
                    tolerations: non_empty(options.tolerations.clone()),
                    affinity: options.affinity.clone(),
                    image_pull_secrets: non_empty(options.image_pull_secrets.clone()),
                    priority_class_name: options.priority_class_name.clone(),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// A task volume as a Pod's volume: only the four sources [`PodVolume`] can hold.
fn volume(v: &PodVolume) -> Volume {
    Volume {
        name: v.name.clone(),
        persistent_volume_claim: v.persistent_volume_claim.clone(),
        config_map: v.config_map.clone(),
        secret: v.secret.clone(),
        empty_dir: v.empty_dir.clone(),
        ..Volume::default()
    }
}

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
    })
}

/// Label the Job controller puts on a Job's pods.
pub const LABEL_JOB_NAME: &str = "batch.kubernetes.io/job-name";

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

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "etl-1-load-1-x7k2p", "labels": {LABEL_JOB_NAME: "etl-1-load-1"}},
            "status": status,
        }))
        .expect("a pod")
    }

    #[test]
    fn pods_report_why_they_cannot_start_and_how_they_failed() {
        let waiting = |reason: &str| {
            pod(
                serde_json::json!({"phase": "Pending", "containerStatuses": [{
                    "name": "task", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": "Back-off pulling image \"x\""}}
                }]}),
            )
        };
        let blocked = |reason: &str, message: &str| PodReport::Blocked {
            reason: reason.into(),
            message: message.into(),
        };
        assert_eq!(
            observe_pod(&waiting("ImagePullBackOff")),
            Some((
                "etl-1-load-1",
                Some(blocked("ImagePullBackOff", "Back-off pulling image \"x\""))
            ))
        );
        assert_eq!(
            observe_pod(&waiting("ContainerCreating")).map(|p| p.1),
            Some(None)
        );
        let unschedulable = pod(serde_json::json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory."
        }]}));
        assert_eq!(
            observe_pod(&unschedulable).and_then(|p| p.1),
            Some(blocked(
                "Unschedulable",
                "0/3 nodes are available: 3 Insufficient memory."
            ))
        );
        let failed = |reason: &str, code: i32, disrupted: bool| {
            let conditions = if disrupted {
                serde_json::json!([{"type": "DisruptionTarget", "status": "True"}])
            } else {
                serde_json::json!([])
            };
            pod(
                serde_json::json!({"phase": "Failed", "conditions": conditions, "containerStatuses": [{
                    "name": "task", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"reason": reason, "exitCode": code}}
                }]}),
            )
        };
        assert_eq!(
            observe_pod(&failed("OOMKilled", 137, false)).and_then(|p| p.1),
            Some(PodReport::Terminated {
                reason: "OOMKilled".into(),
                exit_code: 137
            })
        );
        assert_eq!(
            observe_pod(&failed("Error", 137, true)).and_then(|p| p.1),
            None
        );
        let running = pod(serde_json::json!({"phase": "Running"}));
        assert_eq!(observe_pod(&running).map(|p| p.1), Some(None));
        let mut not_a_jobs = running.clone();
        not_a_jobs.metadata.labels = None;
        assert_eq!(observe_pod(&not_a_jobs), None);
    }
    use chrono::TimeZone;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn workflow() -> Workflow {
        let mut wf: Workflow = serde_json::from_value(serde_json::json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl", "namespace": "data", "uid": "wf-uid"},
            "spec": {"tasks": [{"name": "load", "image": "busybox", "timeoutSeconds": 600,
                                "resources": {"requests": {"cpu": "2"}}}]},
        }))
        .expect("valid workflow");
        wf.metadata.resource_version = None;
        wf
    }

    #[test]
    fn runs_are_named_after_the_tick_and_owned_by_the_workflow() {
        let tick = Utc
            .with_ymd_and_hms(2026, 5, 1, 2, 0, 0)
            .single()
            .expect("valid");
        let run = build_run(&workflow(), tick);
        assert_eq!(run.metadata.name.as_deref(), Some("etl-202605010200"));
        assert_eq!(run.metadata.namespace.as_deref(), Some("data"));
        let owner = &run.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Workflow", "wf-uid")
        );
        assert_eq!(run.spec.scheduled_time, Some(tick));
        assert_eq!(
            run.metadata.labels.as_ref().expect("labels")[LABEL_WORKFLOW],
            "etl"
        );
    }

    #[test]
    fn tasks_get_the_runs_logical_time_interval_and_parameters_before_their_own_env() {
        let mut wf = workflow();
        wf.spec.schedule = Some("0 2 * * *".into());
        wf.spec.timezone = Some("Asia/Shanghai".into());
        wf.spec.tasks[0].env = vec![EnvVar {
            name: "OUT".into(),
            value: Some("s3://lake/$(DATAJUMP_LOGICAL_DATE)".into()),
            value_from: None,
        }];
        // 02:00 in Shanghai on 1 November is 18:00 UTC on 31 October.
        let tick = Utc
            .with_ymd_and_hms(2026, 10, 31, 18, 0, 0)
            .single()
            .expect("valid");
        let run = build_run(&wf, tick);
        let params = vec![("table".to_string(), "events".to_string())];
        let vars = run_variables(&run, &wf.spec, &params, tick + chrono::Duration::hours(5));
        let job = build_job(
            &run,
            &wf.spec.tasks[0],
            None,
            1,
            "j",
            &TaskDefaults::default(),
            &vars,
        )
        .expect("job");
        let env = job
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .containers[0]
            .env
            .clone()
            .expect("env");
        let value = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
                .unwrap_or_default()
        };
        assert_eq!(value("DATAJUMP_LOGICAL_TIME"), "2026-10-31T18:00:00Z");
        assert_eq!(
            value("DATAJUMP_LOGICAL_DATE"),
            "2026-11-01",
            "the date where the workflow runs"
        );
        assert_eq!(
            value("DATAJUMP_INTERVAL_START"),
            "2026-10-30T18:00:00Z",
            "the tick before"
        );
        assert_eq!(value("DATAJUMP_INTERVAL_END"), "2026-10-31T18:00:00Z");
        assert_eq!(value("DATAJUMP_RUN_NAME"), "etl-202610311800");
        assert_eq!(value("DATAJUMP_WORKFLOW_NAME"), "etl");
        assert_eq!(value("DATAJUMP_PARAM_TABLE"), "events");
        // The task's own entry last: the kubelet expands $(…) only from earlier entries.
        assert_eq!(env.last().map(|e| e.name.as_str()), Some("OUT"));
    }

    #[test]
    fn a_disrupted_pod_is_not_a_failed_attempt() {
        let run = build_run(&workflow(), Utc::now());
        let wf = workflow();
        let job = build_job(
            &run,
            &wf.spec.tasks[0],
            None,
            1,
            "j",
            &TaskDefaults::default(),
            &[],
        )
        .expect("job");
        let spec = job.spec.expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        let rules = spec.pod_failure_policy.expect("pod failure policy").rules;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].action, "Ignore");
        let on = rules[0].on_pod_conditions.as_ref().expect("conditions");
        assert_eq!(on[0].type_, "DisruptionTarget");
        assert_eq!(on[0].status.as_deref(), Some("True"));
        assert_eq!(
            spec.template.spec.expect("pod").restart_policy.as_deref(),
            Some("Never"),
            "a pod failure policy needs restartPolicy Never"
        );
    }

    #[test]
    fn defaults_fill_only_resources_the_task_does_not_mention() {
        let defaults = TaskDefaults {
            service_account: None,
            requests: BTreeMap::from([
                ("cpu".into(), "100m".into()),
                ("memory".into(), "128Mi".into()),
            ]),
            limits: BTreeMap::from([
                ("cpu".into(), "1".into()),
                ("memory".into(), "512Mi".into()),
            ]),
            pod_presets: Presets::new(),
        };
        let task = ResourceRequirements {
            requests: Some(BTreeMap::from([("memory".into(), Quantity("2Gi".into()))])),
            ..ResourceRequirements::default()
        };
        let merged = merged_resources(Some(&task), &defaults);
        let requests = merged.requests.expect("requests");
        let limits = merged.limits.expect("limits");
        assert_eq!(requests["memory"].0, "2Gi");
        assert!(
            !limits.contains_key("memory"),
            "no default memory limit under a 2Gi request: {limits:?}"
        );
        assert_eq!(requests["cpu"].0, "100m", "cpu is not mentioned: defaults");
        assert_eq!(limits["cpu"].0, "1");
        let none = merged_resources(None, &defaults);
        assert_eq!(none.limits.expect("limits")["memory"].0, "512Mi");
    }

    #[test]
    fn jobs_carry_labels_owner_timeout_defaults_and_a_restricted_context() {
        let tick = Utc
            .with_ymd_and_hms(2026, 5, 1, 2, 0, 0)
            .single()
            .expect("valid");
        let mut run = build_run(&workflow(), tick);
        run.metadata.uid = Some("run-uid".into());
        let defaults = TaskDefaults {
            service_account: Some("tasks".into()),
            requests: BTreeMap::from([
                ("cpu".into(), "100m".into()),
                ("memory".into(), "128Mi".into()),
            ]),
            limits: BTreeMap::from([("memory".into(), "1Gi".into())]),
            pod_presets: Presets::new(),
        };
        let wf = workflow();
        let job = build_job(
            &run,
            &wf.spec.tasks[0],
            None,
            2,
            "etl-202605010200-load-2",
            &defaults,
            &[],
        )
        .expect("job");
        let labels = job.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[LABEL_RUN], "etl-202605010200");
        assert_eq!(labels[LABEL_TASK], "load");
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        assert_eq!(
            job.metadata.owner_references.as_ref().expect("owner")[0].uid,
            "run-uid"
        );
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(
            (spec.backoff_limit, spec.active_deadline_seconds),
            (Some(0), Some(600))
        );
        let pod = spec.template.spec.as_ref().expect("pod");
        assert_eq!(pod.service_account_name.as_deref(), Some("tasks"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let c = &pod.containers[0];
        let res = c.resources.as_ref().expect("resources");
        let requests = res.requests.as_ref().expect("requests");
        assert_eq!(requests["cpu"].0, "2", "the task's own request wins");
        assert_eq!(requests["memory"].0, "128Mi", "the default fills the gap");
        assert_eq!(res.limits.as_ref().expect("limits")["memory"].0, "1Gi");
        let sc = c.security_context.as_ref().expect("security context");
        assert_eq!(
            (sc.allow_privilege_escalation, sc.run_as_non_root),
            (Some(false), Some(true))
        );
    }

    #[test]
    fn pod_options_reach_the_pod_without_loosening_the_restricted_context() {
        let mut wf: Workflow = serde_json::from_value(serde_json::json!({
            "apiVersion": "datajump.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "etl", "namespace": "data"},
            "spec": {
                "podDefaults": {
                    "preset": "etl-pool",
                    "volumes": [{"name": "conf", "configMap": {"name": "etl-conf"}}],
                    "volumeMounts": [{"name": "conf", "mountPath": "/etc/etl", "readOnly": true}],
                    "labels": {"team": "data"},
                },
                "tasks": [{"name": "load", "image": "busybox", "pod": {
                    "volumes": [
                        {"name": "lake", "persistentVolumeClaim": {"claimName": "lake"}},
                        {"name": "scratch", "emptyDir": {}},
                    ],
                    "volumeMounts": [
                        {"name": "lake", "mountPath": "/lake"},
                        {"name": "scratch", "mountPath": "/tmp"},
                    ],
                    "serviceAccountName": "loader",
                    "imagePullSecrets": [{"name": "harbor"}],
                    "priorityClassName": "batch-low",
                    "annotations": {"example.com/owner": "data"},
                    "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "readOnlyRootFilesystem": true},
                }}],
            },
        }))
        .expect("valid workflow");
        // Validation refuses them; the builder must not let them through either.
        wf.spec.tasks[0].pod.as_mut().expect("pod").labels.extend([
            (LABEL_TASK.to_string(), "other".to_string()),
            (LABEL_MANAGED_BY.to_string(), "me".to_string()),
        ]);
        let presets: Presets = serde_json::from_value(serde_json::json!({
            "etl-pool": {
                "nodeSelector": {"pool": "etl"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}],
            },
        }))
        .expect("presets");
        let defaults = TaskDefaults {
            service_account: Some("tasks".into()),
            pod_presets: presets,
            ..TaskDefaults::default()
        };
        let run = build_run(&wf, Utc::now());
        let job = build_job(
            &run,
            &wf.spec.tasks[0],
            wf.spec.pod_defaults.as_ref(),
            1,
            "j",
            &defaults,
            &[],
        )
        .expect("job");
        let template = job.spec.expect("spec").template;
        let meta = template.metadata.expect("pod metadata");
        let labels = meta.labels.expect("labels");
        assert_eq!(labels["team"], "data");
        assert_eq!(labels[LABEL_TASK], "load", "the scheduler's label wins");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGER);
        assert_eq!(
            meta.annotations.expect("annotations")["example.com/owner"],
            "data"
        );
        let pod = template.spec.expect("pod");
        let volumes: Vec<&str> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["conf", "lake", "scratch"]);
        let volume = |name: &str| {
            pod.volumes
                .iter()
                .flatten()
                .find(|v| v.name == name)
                .cloned()
                .expect("volume")
        };
        assert_eq!(
            volume("conf").config_map.expect("configMap").name,
            "etl-conf"
        );
        assert_eq!(
            volume("lake")
                .persistent_volume_claim
                .expect("pvc")
                .claim_name,
            "lake"
        );
        assert!(volume("scratch").empty_dir.is_some());
        let c = &pod.containers[0];
        let mounts: Vec<(&str, &str, Option<bool>)> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("conf", "/etc/etl", Some(true)),
                ("lake", "/lake", None),
                ("scratch", "/tmp", None)
            ]
        );
        assert_eq!(
            pod.node_selector.as_ref().expect("node selector")["pool"],
            "etl"
        );
        let toleration = &pod.tolerations.as_ref().expect("tolerations")[0];
        assert_eq!(
            (toleration.key.as_deref(), toleration.effect.as_deref()),
            (Some("dedicated"), Some("NoSchedule"))
        );
        assert_eq!(pod.service_account_name.as_deref(), Some("loader"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(
            pod.image_pull_secrets.as_ref().expect("pull secrets")[0].name,
            "harbor"
        );
        assert_eq!(pod.priority_class_name.as_deref(), Some("batch-low"));
        let psc = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(
            (
                psc.run_as_user,
                psc.run_as_group,
                psc.fs_group,
                psc.run_as_non_root
            ),
            (Some(1000), Some(TASK_UID), Some(2000), Some(true))
        );
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        let sc = c
            .security_context
            .as_ref()
            .expect("container security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            (
                sc.allow_privilege_escalation,
                sc.run_as_non_root,
                sc.privileged
            ),
            (Some(false), Some(true), None)
        );
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );

        // Without a pod service account the scheduler's task account stays the fallback.
        wf.spec.tasks[0]
            .pod
            .as_mut()
            .expect("pod")
            .service_account_name = None;
        let job = build_job(&run, &wf.spec.tasks[0], None, 1, "j", &defaults, &[]).expect("job");
        let pod = job.spec.expect("spec").template.spec.expect("pod");
        assert_eq!(pod.service_account_name.as_deref(), Some("tasks"));
        assert_eq!(
            pod.node_selector, None,
            "no workflow preset, no node selector"
        );

        // A preset the scheduler does not know is an error naming the ones it does.
        wf.spec.tasks[0].pod.as_mut().expect("pod").preset = Some("gpu".into());
        let err = build_job(&run, &wf.spec.tasks[0], None, 1, "j", &defaults, &[])
            .expect_err("unknown preset");
        assert_eq!(
            err.to_string(),
            "unknown pod preset \"gpu\" (known: etl-pool)"
        );
    }

    #[test]
    fn observes_job_states() {
        let wf = workflow();
        let run = build_run(&wf, Utc::now());
        let mut job = build_job(
            &run,
            &wf.spec.tasks[0],
            None,
            1,
            "j",
            &TaskDefaults::default(),
            &[],
        )
        .expect("job");
        assert_eq!(observe_job(&job).expect("ours").state, JobState::Active);
        let t = Utc
            .with_ymd_and_hms(2026, 5, 1, 3, 0, 0)
            .single()
            .expect("valid");
        job.status = Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: "Failed".into(),
                status: "True".into(),
                reason: Some("DeadlineExceeded".into()),
                last_transition_time: to_k8s_time(t),
                ..JobCondition::default()
            }]),
            ..JobStatus::default()
        });
        let o = observe_job(&job).expect("ours");
        assert_eq!(
            o.state,
            JobState::Failed {
                reason: "DeadlineExceeded".into()
            }
        );
        assert_eq!((o.attempt, o.finished), (1, Some(t)));
        job.status = Some(JobStatus {
            succeeded: Some(1),
            ..JobStatus::default()
        });
        assert_eq!(observe_job(&job).expect("ours").state, JobState::Succeeded);
        job.metadata.labels = None;
        assert!(observe_job(&job).is_none());
    }
}

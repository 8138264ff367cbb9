//! Building what the scheduler creates: a scheduled WorkflowRun, and a task attempt's Job with
//! its variables, resources and pod options within Pod Security `restricted`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::{LABEL_MANAGED_BY, MANAGER, TASK_UID, TaskDefaults, from_k8s_time};
use datajump_api::names::scheduled_run_name;
use datajump_api::pod::{PodError, PodOptions, PodVolume};
use datajump_api::runtime::{self, RunFacts};
use datajump_api::schedule::parse_timezone;
use datajump_api::schedules::Schedules;
use datajump_api::{
    ANNOTATION_SCHEDULED_TIME, LABEL_ATTEMPT, LABEL_POOL, LABEL_RUN, LABEL_TASK, LABEL_WORKFLOW,
    TaskSpec, Workflow, WorkflowRun, WorkflowRunSpec, WorkflowSpec,
};

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
pub(super) fn merged_resources(
    task: Option<&ResourceRequirements>,
    defaults: &TaskDefaults,
) -> ResourceRequirements {
    let given = |m: Option<&BTreeMap<String, Quantity>>| m.cloned().unwrap_or_default();
    let mut requests = given(task.and_then(|r| r.requests.as_ref()));
    let mut limits = given(task.and_then(|r| r.limits.as_ref()));
    let resources: BTreeSet<&String> = defaults
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

/// The variables every task of `run` gets (see [`datajump_api::runtime`]): its logical time —
/// the tick it was scheduled for, else the time it was created for, else its creation — its
/// date in the zone of the schedule that fired, the data interval from the previous tick of any
/// schedule, the run and workflow names, and `parameters` (the run's resolved values).
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
    let schedules = Schedules::of(spec).ok().flatten();
    // With several schedules, the date is read in the zone of the one the tick came from.
    let tz = schedules
        .as_ref()
        .map(|s| s.timezone_at(logical_time))
        .or_else(|| parse_timezone(spec.timezone.as_deref()).ok())
        .unwrap_or(chrono_tz::UTC);
    // The interval runs from the previous tick of any schedule: consecutive runs cover time
    // without gaps or overlaps.
    let interval_start = schedules
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

/// How long after a task's timeout its Job's own deadline passes: enough for the kubelet to
/// stop the pod at the pod's deadline (the same timeout) with its grace period (30 s by
/// default), so the Job's deadline, which deletes the pod and its log, only catches a pod
/// that never reached a kubelet.
pub const DEADLINE_BACKSTOP_SECONDS: i64 = 60;

/// The Job for `attempt` of `task` in `run`, owned by the run.
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
        name: super::TASK_CONTAINER.into(),
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
            // The task's timeout is the pod's (below); the Job's is only the backstop for a
            // pod that never reached a kubelet to stop it.
            active_deadline_seconds: task
                .timeout_seconds
                .map(|t| t.saturating_add(DEADLINE_BACKSTOP_SECONDS)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!options.annotations.is_empty())
                        .then(|| options.annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    // The kubelet stops a pod at its own deadline and keeps it, finished, with
                    // its log (for `workflow logs` and the log archive); a Job's deadline would
                    // delete it.
                    active_deadline_seconds: task.timeout_seconds,
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

//! Pure builders for the objects the scheduler creates (WorkflowRuns and Jobs) and the reverse
//! mapping from an observed Job to the planner's view of it.
//!
//! Jobs run one attempt each (`backoffLimit: 0`): retries are the scheduler's, so every attempt
//! has its own deterministically named Job. A task's timeout becomes its pod's
//! `activeDeadlineSeconds`, so the kubelet stops the pod even if the scheduler is down at that
//! moment, and the pod keeps the verdict (`DeadlineExceeded`) and its log; the Job's deadline,
//! a minute later, only catches a pod that never reached a kubelet.
//!
//! `build` makes the objects, `observe` reads them back; the labels, task defaults and time
//! conversions they share are here.

mod build;
mod observe;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use datajump_api::pod::Presets;

pub use build::{DEADLINE_BACKSTOP_SECONDS, build_job, build_run, run_variables};
pub use observe::{job_is_active, observe_job, observe_pod, pod_finished};

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

/// Name of the task container in every task pod (the one whose log is the task's).
pub const TASK_CONTAINER: &str = "task";

/// Label the Job controller puts on a Job's pods.
pub const LABEL_JOB_NAME: &str = "batch.kubernetes.io/job-name";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{JobState, PodReport};
    use build::merged_resources;
    use datajump_api::{LABEL_ATTEMPT, LABEL_RUN, LABEL_TASK, LABEL_WORKFLOW, Workflow};
    use k8s_openapi::api::core::v1::{EnvVar, Pod, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

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
        // Stopped by the kubelet at the pod's deadline: that is the report, whatever the
        // container exited with (a SIGTERM handled, here), or with no exit code when the
        // container never started.
        let mut timed_out = failed("Completed", 143, false);
        timed_out.status.as_mut().expect("status").reason = Some("DeadlineExceeded".into());
        assert_eq!(
            observe_pod(&timed_out).and_then(|p| p.1),
            Some(PodReport::DeadlineExceeded {
                exit_code: Some(143)
            })
        );
        timed_out
            .status
            .as_mut()
            .expect("status")
            .container_statuses = None;
        assert_eq!(
            observe_pod(&timed_out).and_then(|p| p.1),
            Some(PodReport::DeadlineExceeded { exit_code: None })
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
    fn with_several_schedules_the_date_is_the_firing_ones_and_the_interval_the_unions() {
        let mut wf = workflow();
        // 02:00 in Shanghai (18:00 UTC the day before) and 20:00 in New York (01:00 UTC, EST).
        wf.spec.schedules = Some(vec![
            datajump_api::ScheduleSpec {
                schedule: "0 2 * * *".into(),
                timezone: Some("Asia/Shanghai".into()),
            },
            datajump_api::ScheduleSpec {
                schedule: "0 20 * * *".into(),
                timezone: Some("America/New_York".into()),
            },
        ]);
        let vars_at = |h: u32| {
            let tick = Utc
                .with_ymd_and_hms(2026, 11, 10, h, 0, 0)
                .single()
                .expect("valid");
            let run = build_run(&wf, tick);
            let vars = run_variables(&run, &wf.spec, &[], tick);
            let value = |name: &str| {
                vars.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (
                value("DATAJUMP_LOGICAL_DATE"),
                value("DATAJUMP_INTERVAL_START"),
            )
        };
        assert_eq!(
            vars_at(1),
            ("2026-11-09".into(), "2026-11-09T18:00:00Z".into()),
            "New York's evening of the 9th, since Shanghai's night"
        );
        assert_eq!(
            vars_at(18),
            ("2026-11-11".into(), "2026-11-10T01:00:00Z".into()),
            "Shanghai's night of the 11th, since New York's evening"
        );
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
            (Some(0), Some(600 + DEADLINE_BACKSTOP_SECONDS))
        );
        let pod = spec.template.spec.as_ref().expect("pod");
        assert_eq!(
            pod.active_deadline_seconds,
            Some(600),
            "the timeout is the pod's"
        );
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

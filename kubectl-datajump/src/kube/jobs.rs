//! One-off Jobs made from the chart's CronJob templates (backup, restore, list-backups), the way
//! `kubectl create job --from=cronjob/...` makes them, and waiting for them (their logs are read
//! through `logs`).

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::PostParams;
use kube::{Api, Client};

/// Seconds a finished one-off Job stays around for `kubectl logs` before the TTL controller
/// removes it.
const JOB_TTL_SECONDS: i32 = 86_400;

/// How to adapt the CronJob's template for this Job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JobOverrides {
    /// Replaces the first container's command (e.g. `/scripts/list-backups.sh`).
    pub command: Option<Vec<String>>,
    /// Extra env on the first container (replacing same-named entries).
    pub env: Vec<(String, String)>,
}

/// Builds a Job from a CronJob's jobTemplate: same labels, annotations and pod spec, owned by the
/// CronJob, marked as a manual instantiation, with a TTL so one-off Jobs do not pile up.
pub(crate) fn job_from_cronjob(
    cronjob: &CronJob,
    name: &str,
    overrides: &JobOverrides,
) -> anyhow::Result<Job> {
    let cj_name = cronjob.metadata.name.clone().unwrap_or_default();
    let template = cronjob.spec.job_template.clone();
    let mut spec = template
        .spec
        .ok_or_else(|| anyhow::anyhow!("CronJob {cj_name} has an empty jobTemplate"))?;
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    spec.ttl_seconds_after_finished
        .get_or_insert(JOB_TTL_SECONDS);
    let container = spec
        .template
        .spec
        .as_mut()
        .and_then(|p| p.containers.first_mut())
        .ok_or_else(|| anyhow::anyhow!("CronJob {cj_name}'s pod template has no container"))?;
    if let Some(cmd) = &overrides.command {
        container.command = Some(cmd.clone());
        container.args = None;
    }
    if !overrides.env.is_empty() {
        let env = container.env.get_or_insert_with(Vec::new);
        for (k, v) in &overrides.env {
            env.retain(|e| &e.name != k);
            env.push(EnvVar {
                name: k.clone(),
                value: Some(v.clone()),
                value_from: None,
            });
        }
    }
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cronjob.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: cronjob.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "CronJob".into(),
                    name: cj_name.clone(),
                    uid,
                    controller: Some(true),
                    block_owner_deletion: None,
                }]
            }),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// Outcome of creating a Job with a deterministic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    New,
    /// A Job with that name already exists (same minute, or a retry): we follow it instead.
    AlreadyExisted,
}

/// Reads the CronJob template and creates the Job from it.
pub(crate) async fn create_from_cronjob(
    client: &Client,
    namespace: &str,
    cronjob: &str,
    job_name: &str,
    overrides: &JobOverrides,
) -> anyhow::Result<Created> {
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let cj = cronjobs.get_opt(cronjob).await?.ok_or_else(|| {
        anyhow::anyhow!("CronJob {cronjob} not found in namespace {namespace}: is DataJump installed there (check --env/-n and --release)?")
    })?;
    let job = job_from_cronjob(&cj, job_name, overrides)?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => Ok(Created::New),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Created::AlreadyExisted),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating Job {job_name}"))),
    }
}

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobOutcome {
    Succeeded,
    Failed(String),
}

/// The Job's outcome from its conditions, or None while it runs.
pub(crate) fn job_outcome(job: &Job) -> Option<JobOutcome> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(JobOutcome::Succeeded),
            "Failed" => Some(JobOutcome::Failed(
                c.message
                    .clone()
                    .or(c.reason.clone())
                    .unwrap_or_else(|| "failed".into()),
            )),
            _ => None,
        })
}

/// Polls the Job until it completes or fails, or the timeout passes.
pub(crate) async fn wait_for_job(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<JobOutcome> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let job = jobs.get(name).await?;
        if let Some(outcome) = job_outcome(&job) {
            return Ok(outcome);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "Job {name} did not finish within {}s (it keeps running; see kubectl logs job/{name} -n {namespace})",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The last non-empty line of a log: the scripts print their result (the backup name) last.
pub(crate) fn last_line(log: &str) -> Option<&str> {
    log.lines().map(str::trim).rev().find(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn restore_cronjob() -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "datajump-restore", "namespace": "datajump-dev", "uid": "u-1"},
            "spec": {
                "schedule": "0 0 31 2 *", "suspend": true,
                "jobTemplate": {
                    "metadata": {"labels": {"app.kubernetes.io/component": "restore"}},
                    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
                        "name": "restore", "image": "mysql:8.4",
                        "command": ["/scripts/restore.sh"],
                        "env": [{"name": "BACKUP_NAME", "value": ""}, {"name": "BACKUP_DIR", "value": "/backup"}]
                    }]}}}
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn job_copies_the_template_and_applies_overrides() {
        let overrides = JobOverrides {
            command: None,
            env: vec![("BACKUP_NAME".into(), "b1".into())],
        };
        let job = job_from_cronjob(&restore_cronjob(), "datajump-restore-x", &overrides).unwrap();
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["metadata"]["name"], "datajump-restore-x");
        assert_eq!(v["metadata"]["namespace"], "datajump-dev");
        assert_eq!(
            v["metadata"]["labels"]["app.kubernetes.io/component"],
            "restore"
        );
        assert_eq!(
            v["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(v["spec"]["ttlSecondsAfterFinished"], 86_400);
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["command"], json!(["/scripts/restore.sh"]));
        assert_eq!(
            c["env"],
            json!([{"name": "BACKUP_DIR", "value": "/backup"}, {"name": "BACKUP_NAME", "value": "b1"}])
        );
    }

    #[test]
    fn command_override_replaces_command_and_args() {
        let overrides = JobOverrides {
            command: Some(vec!["/scripts/list-backups.sh".into()]),
            env: vec![],
        };
        let job = job_from_cronjob(&restore_cronjob(), "l", &overrides).unwrap();
        let c = &job.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(
            c.command.as_deref(),
            Some(&["/scripts/list-backups.sh".to_string()][..])
        );
    }

    #[test]
    fn outcome_follows_conditions() {
        let mut job: Job = serde_json::from_value(json!({"status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}))
        .unwrap();
        assert_eq!(
            job_outcome(&job),
            Some(JobOutcome::Failed("BackoffLimitExceeded".into()))
        );
        job.status = None;
        assert_eq!(job_outcome(&job), None);
        assert_eq!(
            last_line("dumping...\ndatajump-20260101-0200\n\n"),
            Some("datajump-20260101-0200")
        );
    }
}

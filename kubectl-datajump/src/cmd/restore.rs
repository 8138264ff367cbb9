//! `restore --env E BACKUP --yes`: only a listed, verified backup is restored. While the restore
//! Job runs, every Workflow is suspended and the scheduler Deployment is scaled to zero so no task
//! writes into a half-restored database; afterwards — also when the restore failed — the
//! scheduler gets its previous replica count back and exactly the workflows we suspended resume.

use std::time::Duration;

use chrono::Utc;
use kube::Client;
use serde::Serialize;

use crate::cli::RestoreArgs;
use crate::cmd::backup::{self, BackupInfo};
use crate::cmd::{Ctx, confirm};
use crate::error::InputError;
use crate::kube::jobs::{self, JobOutcome, JobOverrides};
use crate::kube::{logs, scheduler, workflows};
use crate::output::{self, Progress, Render, Style};

/// What happened, for the user and for scripts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub backup: String,
    pub job: String,
    pub succeeded: bool,
    pub message: String,
    /// The restore script's summary (last lines of its log).
    pub log_tail: Vec<String>,
    pub workflows_resumed: Vec<String>,
    pub scheduler_replicas: i32,
    /// Anything that failed while putting the scheduler and workflows back.
    pub cleanup_errors: Vec<String>,
}

impl Render for RestoreReport {
    fn human(&self, style: &Style) -> String {
        let state = if self.succeeded {
            "Succeeded"
        } else {
            "Failed"
        };
        let mut out = format!(
            "restore of {} {} (Job {}): {}\n",
            self.backup,
            style.state(state),
            self.job,
            self.message
        );
        for l in &self.log_tail {
            out.push_str(&format!("  | {l}\n"));
        }
        out.push_str(&format!(
            "scheduler scaled back to {} replica(s); {} workflow(s) resumed{}\n",
            self.scheduler_replicas,
            self.workflows_resumed.len(),
            if self.workflows_resumed.is_empty() {
                String::new()
            } else {
                format!(": {}", self.workflows_resumed.join(", "))
            }
        ));
        for e in &self.cleanup_errors {
            out.push_str(&format!("WARNING: {e}\n"));
        }
        out
    }
}

/// Refuses unknown and unverified backups (input errors, exit 2).
pub(crate) fn choose<'a>(
    backups: &'a [BackupInfo],
    name: &str,
) -> Result<&'a BackupInfo, InputError> {
    let Some(b) = backups.iter().find(|b| b.name == name) else {
        let known: Vec<&str> = backups.iter().map(|b| b.name.as_str()).collect();
        return Err(InputError::new(format!(
            "unknown backup {name:?}; known backups: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if !b.is_verified() {
        return Err(InputError::new(format!(
            "backup {name:?} is not verified (status {:?}{}): refusing to restore it",
            b.status.as_deref().unwrap_or("unknown"),
            b.reason
                .as_deref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default()
        )));
    }
    Ok(b)
}

pub(crate) async fn run(ctx: &Ctx, args: &RestoreArgs) -> anyhow::Result<()> {
    let env = ctx.env()?;
    let ns = ctx.namespace()?;
    confirm(
        Some(env),
        &format!("restore backup into {ns}"),
        &args.backup,
        &args.confirm,
    )?;
    let client = ctx.client().await?;
    let backups = backup::list(ctx, &client, &ns, Duration::from_secs(300)).await?;
    choose(&backups, &args.backup)?;
    let fullname = ctx.installed_fullname(&client, &ns).await?;
    let report = restore(
        &client,
        &ns,
        &fullname,
        &args.backup,
        args.timeout,
        ctx.progress,
    )
    .await?;
    output::print(&report, &ctx.global)?;
    if report.succeeded && report.cleanup_errors.is_empty() {
        Ok(())
    } else if report.succeeded {
        anyhow::bail!(
            "restore succeeded but putting the scheduler/workflows back failed (see warnings above)"
        )
    } else {
        anyhow::bail!("restore of {} failed: {}", report.backup, report.message)
    }
}

/// The restore sequence against the cluster (see the module doc). Errors before the restore Job
/// starts undo what was done so far; afterwards the outcome is reported, never thrown away.
pub async fn restore(
    client: &Client,
    ns: &str,
    fullname: &str,
    backup: &str,
    timeout: Duration,
    progress: Progress,
) -> anyhow::Result<RestoreReport> {
    let scheduler = format!("{fullname}-scheduler");
    progress.line("suspending workflows ...");
    let suspended = workflows::suspend_all(client, ns).await?;
    progress.line(format!(
        "suspended {} workflow(s); stopping {scheduler} ...",
        suspended.len()
    ));
    let previous = match scheduler::stop(client, ns, &scheduler).await {
        Ok(p) => p,
        Err(e) => {
            let _ = workflows::resume_these(client, ns, &suspended).await;
            return Err(e.context("stopping the scheduler (workflows were resumed)"));
        }
    };

    let job = datajump_api::names::bounded(
        &format!("{fullname}-restore"),
        &Utc::now().format("%Y%m%d-%H%M").to_string(),
    );
    progress.line(format!("restoring {backup} (Job {job}) ..."));
    let (succeeded, message, log_tail) =
        match run_restore_job(client, ns, fullname, &job, backup, timeout).await {
            Ok((JobOutcome::Succeeded, log)) => (true, "restored".to_string(), tail(&log)),
            Ok((JobOutcome::Failed(reason), log)) => (false, reason, tail(&log)),
            Err(e) => (false, format!("{e:#}"), Vec::new()),
        };

    progress.line("starting the scheduler and resuming workflows ...");
    let mut cleanup_errors = Vec::new();
    if let Err(e) = scheduler::scale(client, ns, &scheduler, previous).await {
        cleanup_errors.push(format!("scaling {scheduler} back to {previous}: {e:#}"));
    }
    if let Err(errs) = workflows::resume_these(client, ns, &suspended).await {
        cleanup_errors.extend(errs);
    }
    Ok(RestoreReport {
        backup: backup.to_string(),
        job,
        succeeded,
        message,
        log_tail,
        workflows_resumed: suspended,
        scheduler_replicas: previous,
        cleanup_errors,
    })
}

async fn run_restore_job(
    client: &Client,
    ns: &str,
    fullname: &str,
    job: &str,
    backup: &str,
    timeout: Duration,
) -> anyhow::Result<(JobOutcome, String)> {
    let overrides = JobOverrides {
        command: None,
        env: vec![("BACKUP_NAME".into(), backup.into())],
    };
    jobs::create_from_cronjob(client, ns, &format!("{fullname}-restore"), job, &overrides).await?;
    let outcome = jobs::wait_for_job(client, ns, job, timeout).await?;
    let log = logs::job_log(client, ns, job).await.unwrap_or_default();
    Ok((outcome, log))
}

fn tail(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, status: &str) -> BackupInfo {
        BackupInfo {
            name: name.into(),
            created: None,
            size: None,
            sha256: None,
            status: Some(status.into()),
            verified: None,
            reason: None,
            databases: vec![],
        }
    }

    #[test]
    fn unknown_and_unverified_backups_are_refused() {
        let list = [info("good", "verified"), info("bad", "checksum-mismatch")];
        assert_eq!(choose(&list, "good").unwrap().name, "good");
        let unknown = choose(&list, "nope").unwrap_err().to_string();
        assert!(
            unknown.contains("unknown backup \"nope\"") && unknown.contains("good, bad"),
            "{unknown}"
        );
        let bad = choose(&list, "bad").unwrap_err().to_string();
        assert!(
            bad.contains("not verified") && bad.contains("checksum-mismatch"),
            "{bad}"
        );
    }
}

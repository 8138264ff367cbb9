//! `backup create` (a Job from the chart's backup CronJob, with a deterministic name) and
//! `backup list` (the restore template running `/scripts/list-backups.sh`, whose JSON we parse).

use std::time::Duration;

use chrono::{DateTime, Utc};
use datajump_api::names::bounded;
use kube::Client;
use serde::{Deserialize, Serialize};

use crate::cli::BackupCommand;
use crate::cmd::Ctx;
use crate::kube::jobs::{self, Created, JobOutcome, JobOverrides};
use crate::kube::logs;
use crate::output::{self, Render, Style};

/// The backup Job's name for a given minute: a second `backup create` in the same minute finds
/// the same Job instead of starting a duplicate dump.
pub(crate) fn backup_job_name(fullname: &str, now: DateTime<Utc>) -> String {
    bounded(
        &format!("{fullname}-backup"),
        &now.format("%Y%m%d-%H%M").to_string(),
    )
}

/// The name of the Job that lists backups (one per second).
pub(crate) fn list_job_name(fullname: &str, now: DateTime<Utc>) -> String {
    bounded(
        &format!("{fullname}-list-backups"),
        &now.format("%Y%m%d-%H%M%S").to_string(),
    )
}

/// The `backup create` answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupCreated {
    pub job: String,
    pub namespace: String,
    /// Present once the Job finished (`--wait`).
    pub backup: Option<String>,
    pub state: String,
}

impl Render for BackupCreated {
    fn human(&self, _style: &Style) -> String {
        match &self.backup {
            // Only the name on stdout, so `name=$(kubectl datajump backup create --wait)` works;
            // the Job's details went to stderr as progress.
            Some(b) => format!("{b}\n"),
            None => format!(
                "backup Job {} {}; its log ends with the backup name: kubectl logs -n {} job/{} (or rerun with --wait)\n",
                self.job, self.state, self.namespace, self.job
            ),
        }
    }
}

/// One backup as `list-backups.sh` reports it (the manifest `backup.sh` writes, plus whether the
/// archive still matches its checksum).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackupInfo {
    pub name: String,
    #[serde(default, alias = "created", alias = "createdAt", alias = "time")]
    pub created: Option<String>,
    #[serde(default, alias = "sizeBytes", alias = "size_bytes")]
    pub size: Option<u64>,
    #[serde(default, alias = "checksum")]
    pub sha256: Option<String>,
    /// `verified`/`ok` when the archive matches its manifest; anything else is not restorable.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Why a backup is not verified (from list-backups.sh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
}

impl BackupInfo {
    /// Restorable: the listing confirmed the archive against its manifest's checksum.
    pub(crate) fn is_verified(&self) -> bool {
        self.verified == Some(true)
            || self.status.as_deref().is_some_and(|s| {
                matches!(s.to_ascii_lowercase().as_str(), "verified" | "ok" | "valid")
            })
    }

    fn state(&self) -> String {
        match (&self.status, self.verified) {
            (Some(s), _) => s.clone(),
            (None, Some(true)) => "verified".into(),
            (None, Some(false)) => "corrupt".into(),
            (None, None) => "unverified".into(),
        }
    }
}

/// Parses the listing: a JSON array, or `{"backups": [...]}`; log lines before the JSON are
/// skipped so progress messages from the script do not break parsing.
pub(crate) fn parse_listing(log: &str) -> anyhow::Result<Vec<BackupInfo>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Listing {
        List(Vec<BackupInfo>),
        Wrapped { backups: Vec<BackupInfo> },
    }
    let start = log
        .find(['[', '{'])
        .ok_or_else(|| anyhow::anyhow!("list-backups.sh printed no JSON: {log:?}"))?;
    let listing: Listing = serde_json::from_str(log[start..].trim())
        .map_err(|e| anyhow::anyhow!("list-backups.sh printed unexpected JSON ({e}): {log:?}"))?;
    let mut backups = match listing {
        Listing::List(b) | Listing::Wrapped { backups: b } => b,
    };
    backups.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    Ok(backups)
}

/// The `backup list` answer.
#[derive(Debug, Serialize)]
pub(crate) struct BackupList {
    pub backups: Vec<BackupInfo>,
}

impl Render for BackupList {
    fn human(&self, style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .backups
            .iter()
            .map(|b| {
                vec![
                    b.name.clone(),
                    b.created.clone().unwrap_or_else(|| "-".into()),
                    b.size.map(human_size).unwrap_or_else(|| "-".into()),
                    b.sha256
                        .as_deref()
                        .map(|s| s.chars().take(12).collect())
                        .unwrap_or_else(|| "-".into()),
                    style.state(&b.state()),
                    b.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        output::table(
            &["NAME", "CREATED", "SIZE", "SHA256", "STATUS", "REASON"],
            &rows,
        )
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub(crate) async fn run(ctx: &Ctx, cmd: BackupCommand) -> anyhow::Result<()> {
    let ns = ctx.namespace()?;
    let client = ctx.client().await?;
    match cmd {
        BackupCommand::Create { wait, timeout } => {
            let answer = create(ctx, &client, &ns, wait, timeout).await?;
            output::print(&answer, &ctx.global)
        }
        BackupCommand::List { timeout } => {
            let backups = list(ctx, &client, &ns, timeout).await?;
            output::print(&BackupList { backups }, &ctx.global)
        }
    }
}

/// Starts (or finds) this minute's backup Job; with `wait`, returns the backup name from its log.
pub async fn create(
    ctx: &Ctx,
    client: &Client,
    ns: &str,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<BackupCreated> {
    let fullname = ctx.installed_fullname(client, ns).await?;
    let job = backup_job_name(&fullname, Utc::now());
    let created = jobs::create_from_cronjob(
        client,
        ns,
        &format!("{fullname}-backup"),
        &job,
        &JobOverrides::default(),
    )
    .await?;
    if created == Created::AlreadyExisted {
        ctx.progress.line(format!(
            "backup Job {job} already exists (started this minute); following it"
        ));
    }
    let mut answer = BackupCreated {
        job: job.clone(),
        namespace: ns.to_string(),
        backup: None,
        state: "started".into(),
    };
    if !wait {
        return Ok(answer);
    }
    ctx.progress
        .line(format!("waiting for backup Job {job} ..."));
    let outcome = jobs::wait_for_job(client, ns, &job, timeout).await?;
    let log = logs::job_log(client, ns, &job).await.unwrap_or_default();
    match outcome {
        JobOutcome::Succeeded => {
            let name = jobs::last_line(&log).ok_or_else(|| {
                anyhow::anyhow!("backup Job {job} succeeded but printed no backup name")
            })?;
            answer.backup = Some(name.to_string());
            answer.state = "Complete".into();
            ctx.progress
                .line(format!("backup Job {job} complete: {name}"));
            Ok(answer)
        }
        JobOutcome::Failed(reason) => anyhow::bail!(
            "backup Job {job} failed: {reason}\n{}",
            log.lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Runs the listing Job from the restore template and parses its JSON.
pub(crate) async fn list(
    ctx: &Ctx,
    client: &Client,
    ns: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<BackupInfo>> {
    let fullname = ctx.installed_fullname(client, ns).await?;
    let job = list_job_name(&fullname, Utc::now());
    let overrides = JobOverrides {
        // The chart runs its scripts through /bin/sh (ConfigMap files are not executable).
        command: Some(vec!["/bin/sh".into(), "/scripts/list-backups.sh".into()]),
        env: vec![],
    };
    jobs::create_from_cronjob(client, ns, &format!("{fullname}-restore"), &job, &overrides).await?;
    ctx.progress
        .line(format!("listing backups (Job {job}) ..."));
    let outcome = jobs::wait_for_job(client, ns, &job, timeout).await?;
    let log = logs::job_log(client, ns, &job).await?;
    if let JobOutcome::Failed(reason) = outcome {
        anyhow::bail!("listing backups failed (Job {job}): {reason}\n{log}");
    }
    parse_listing(&log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn job_names_are_deterministic() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            backup_job_name("datajump", t),
            "datajump-backup-20260102-0304"
        );
        assert_eq!(
            list_job_name("datajump", t),
            "datajump-list-backups-20260102-030405"
        );
        // The longest fullname the chart accepts still gives Job names that fit a label value.
        let longest = format!("datajump-{}", "a".repeat(35));
        for name in [backup_job_name(&longest, t), list_job_name(&longest, t)] {
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with("datajump-aaaa"), "{name}");
        }
        assert_ne!(
            backup_job_name(&longest, t),
            backup_job_name(&longest, t + chrono::Duration::minutes(1))
        );
    }

    #[test]
    fn listing_parses_arrays_wrapped_objects_and_skips_log_lines() {
        let log = "scanning /backup\n[{\"name\":\"b1\",\"created\":\"2026-01-01T02:00:00Z\",\"size\":2048,\"sha256\":\"abcdef0123456789\",\"status\":\"verified\"},\
                   {\"name\":\"b2\",\"created\":\"2026-01-02T02:00:00Z\",\"size\":10,\"sha256\":\"00\",\"status\":\"corrupt\"}]";
        let b = parse_listing(log).unwrap();
        assert_eq!(
            b.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["b2", "b1"]
        );
        assert!(b[1].is_verified() && !b[0].is_verified());
        let wrapped = parse_listing(r#"{"backups":[{"name":"x","verified":true}]}"#).unwrap();
        assert!(wrapped[0].is_verified());
        assert!(parse_listing("no json here").is_err());
        let table = BackupList { backups: b }.human(&Style { color: false });
        assert!(
            table.contains("b1     2026-01-01T02:00:00Z   2.0 KiB   abcdef012345   verified"),
            "{table}"
        );
    }
}

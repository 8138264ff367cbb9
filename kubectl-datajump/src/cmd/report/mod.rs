//! `report --env E [-o FILE.zip]`: one zip a platform engineer attaches to a ticket, like
//! `kubectl cnpg report` or `velero debug` — versions, the Helm release, every object of the
//! environment, events, pod logs, the scheduler, the operators' resources, nodes and the
//! preflight checks, with no secret in it.
//!
//! The order matters for the redaction: the Secrets, the pods' specs and the Helm values are
//! read first, and every value they hold that is a credential becomes a term the redactor
//! searches every later file for (`crate::redact`); only then is the archive started
//! (`bundle`) and each part read (`crate::kube::report`, and helm in `release`) and written.
//! What the user may not read is listed in the archive, never a failure.

pub(crate) mod bundle;
mod release;

use std::path::PathBuf;

use chart_gen::model::{Environment, names};
use chrono::{DateTime, Utc};
use kube::Client;
use serde::Serialize;
use serde_json::{Value, json};

use bundle::{Bundle, Index, Limits, OutputFile, Redaction, paths};
use release::ReleaseFacts;

use crate::kube::report::collect::{self, Denied, Notes};
use crate::kube::report::{Part, Sink, cluster, events, objects, operators, pods, scheduler};
use crate::redact::{self, Redactor, Term};

use crate::cli::ReportArgs;
use crate::cmd::Ctx;
use crate::error::InputError;
use crate::output::{self, Render, Style};

/// The answer: where the bundle is and what it holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    pub file: String,
    pub bytes: u64,
    pub files: usize,
    pub objects: usize,
    pub pods: usize,
    pub logs: usize,
    pub events: usize,
    pub workflow_runs: usize,
    pub nodes: usize,
    pub operator_resources: usize,
    /// Requests RBAC refused (each listed in the archive's `forbidden.txt`).
    pub forbidden: usize,
    /// What could not be read for another reason (`unavailable.txt`).
    pub unavailable: usize,
    pub denied: Vec<Denied>,
}

impl Render for Summary {
    fn human(&self, _: &Style) -> String {
        let mut out = format!(
            "wrote {} ({} files, {}): {} objects, {} pods with {} logs, {} events, {} WorkflowRuns, {} nodes, {} operator resources\n",
            self.file,
            self.files,
            size(self.bytes),
            self.objects,
            self.pods,
            self.logs,
            self.events,
            self.workflow_runs,
            self.nodes,
            self.operator_resources
        );
        for d in &self.denied {
            out.push_str(&format!(
                "  not allowed: {} {}{} ({}x)\n",
                d.verb,
                d.resource,
                d.namespace
                    .as_deref()
                    .map(|n| format!(" in {n}"))
                    .unwrap_or_default(),
                d.count
            ));
        }
        out
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// `datajump-report-<env>-<UTC timestamp>.zip` (the namespace instead of the env with `-n`).
pub(crate) fn default_name(env: Option<Environment>, ns: &str, now: DateTime<Utc>) -> PathBuf {
    let which = env.map_or_else(|| ns.to_string(), |e| e.as_str().to_string());
    PathBuf::from(format!(
        "datajump-report-{which}-{}.zip",
        now.format("%Y%m%dT%H%M%SZ")
    ))
}

pub(crate) async fn run(ctx: &Ctx, args: &ReportArgs) -> anyhow::Result<()> {
    let ns = ctx.namespace()?;
    let now = Utc::now();
    let target = args
        .output_file
        .clone()
        .unwrap_or_else(|| default_name(ctx.global.env, &ns, now));
    // Before any request: a place that cannot take the archive is refused having read nothing.
    let output = OutputFile::prepare(&target, args.force)?;
    let client = ctx.client().await?;
    require_namespace(&client, &ns).await?;
    let mut notes = Notes::default();
    let mut steps = Steps::new(ctx);

    steps.next("reading the release (helm)");
    let release = release::read(ctx, &ns, &mut notes).await;
    steps.next("reading Secrets, pods and values for the redaction");
    let secrets = objects::read_secrets(&client, &mut notes, &ns, &release.objects).await?;
    let (pods, pod_terms) = pods::read(&client, &mut notes, &ns, &secrets.names).await?;
    let mut terms = secrets.terms;
    terms.extend(pod_terms);
    terms.extend(value_terms(&release, &secrets.names));
    let redactor = Redactor::new(terms, secrets.names);
    let redaction = Redaction {
        secrets_read: secrets.objects.len(),
        secrets_readable: secrets.readable,
        values_searched: redactor.len(),
        values_scrubbed: 0,
    };
    let mut bundle = Bundle::new(output, redactor, now)?;

    let fullname = match ctx.installed_fullname(&client, &ns).await {
        Ok(name) => name,
        Err(_) => names::fullname(&ctx.global.release, "", ""),
    };
    write_versions(&client, &mut notes, &mut bundle, &release).await?;
    write_release(&mut bundle, &release)?;
    steps.next("reading every object of the namespace");
    let mut objects = secrets.objects.len();
    let secrets_resource = objects::secrets_resource();
    for (namespace, secret) in &secrets.objects {
        bundle.put(Part::Object {
            namespace: Some(namespace),
            resource: &secrets_resource,
            name: collect::name_of(secret),
            value: secret,
        })?;
    }
    let discovery = objects::discover(&client, &mut notes).await?;
    if let Some(discovery) = &discovery {
        let resources = objects::namespaced_resources(discovery);
        objects +=
            objects::write_namespace(&client, &mut notes, &mut bundle, &ns, &resources).await?;
        objects += objects::write_release_elsewhere(
            &client,
            &mut notes,
            &mut bundle,
            &ns,
            discovery,
            &release.objects,
        )
        .await?;
    }
    pods::write(&mut bundle, &ns, &pods)?;
    steps.next(format!("reading the logs of {} pods", pods.len()));
    let limits = pods::LogLimits {
        since_seconds: i64::try_from(args.logs_since.as_secs().max(1)).unwrap_or(i64::MAX),
        tail_lines: i64::from(args.tail),
    };
    let logs = pods::write_logs(&client, &mut notes, &mut bundle, &ns, &pods, limits).await?;
    let events = events::write(&client, &mut notes, &mut bundle, &ns).await?;
    steps.next("reading the scheduler and its runs");
    let leader = scheduler::write_lease(&client, &mut notes, &mut bundle, &ns, &fullname).await?;
    scheduler::write_metrics(
        &client,
        &mut notes,
        &mut bundle,
        &ns,
        &fullname,
        leader.as_deref(),
    )
    .await?;
    let max_runs = usize::try_from(args.max_runs).unwrap_or(usize::MAX);
    let workflow_runs =
        scheduler::write_runs(&client, &mut notes, &mut bundle, &ns, max_runs).await?;
    let operator_resources = operators::write(&client, &mut notes, &mut bundle, &ns).await?;
    steps.next("reading nodes and running the preflight checks");
    let nodes = cluster::write_nodes(&client, &mut notes, &mut bundle).await?;
    cluster::write_preflight(
        &client,
        &mut notes,
        &mut bundle,
        &ns,
        release.computed.as_ref(),
    )
    .await?;

    let forbidden = notes.forbidden_count();
    let unavailable = notes.unavailable.len();
    let index = Index {
        generator: format!("kubectl-datajump {}", env!("CARGO_PKG_VERSION")),
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        environment: ctx.global.env.map(|e| e.as_str().to_string()),
        namespace: ns.clone(),
        release: ctx.global.release.clone(),
        limits: Limits {
            logs_since_seconds: args.logs_since.as_secs(),
            tail_lines: args.tail,
            max_runs: args.max_runs,
        },
        redaction,
        files: Vec::new(),
        forbidden: notes.forbidden.clone(),
        unavailable: notes.unavailable,
    };
    steps.next("writing the index");
    let written = bundle.finish(index)?;
    steps.done();
    if forbidden + unavailable > 0 {
        eprintln!(
            "note: {} items skipped: {forbidden} not allowed by RBAC (listed in {} in the archive), {unavailable} not available ({})",
            forbidden + unavailable,
            paths::FORBIDDEN,
            paths::UNAVAILABLE
        );
    }
    let summary = Summary {
        file: written.path.display().to_string(),
        bytes: written.bytes,
        files: written.files.len(),
        objects,
        pods: pods.len(),
        logs,
        events,
        workflow_runs,
        nodes,
        operator_resources,
        forbidden,
        unavailable,
        denied: notes.forbidden,
    };
    output::print(&summary, &ctx.global)
}

/// The report's steps: each announced as progress, and with `-v` how long it took, so a slow
/// cluster (or a slow part of one) shows where the time goes.
struct Steps {
    progress: crate::output::Progress,
    verbose: bool,
    current: Option<(String, std::time::Instant)>,
}

impl Steps {
    fn new(ctx: &Ctx) -> Self {
        Self {
            progress: ctx.progress,
            verbose: ctx.global.verbose(),
            current: None,
        }
    }

    fn next(&mut self, step: impl Into<String>) {
        self.done();
        let step = step.into();
        self.progress.line(format!("{step} ..."));
        self.current = Some((step, std::time::Instant::now()));
    }

    fn done(&mut self) {
        if let Some((step, started)) = self.current.take()
            && self.verbose
        {
            eprintln!(
                "debug: report: {step}: {:.2}s",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The namespace must exist (a typo in `-n`, an environment not installed here): bad input,
/// nothing written. When the user may not read namespaces, the report goes on.
async fn require_namespace(client: &Client, ns: &str) -> anyhow::Result<()> {
    if collect::namespace_exists(client, ns).await? == Some(false) {
        return Err(InputError::new(format!(
            "namespace {ns} does not exist in this cluster: is the environment installed here? (-n names another namespace)"
        ))
        .into());
    }
    Ok(())
}

/// The credentials in the Helm values (by their field names), to search for everywhere.
fn value_terms(release: &ReleaseFacts, names: &redact::SecretNames) -> Vec<Term> {
    [&release.values, &release.computed]
        .into_iter()
        .flatten()
        .flat_map(|values| redact::redact_fields(&mut values.clone(), names))
        .map(|value| Term {
            value: value.into_bytes(),
            label: "a credential of the Helm values".into(),
        })
        .collect()
}

async fn write_versions(
    client: &Client,
    notes: &mut Notes,
    bundle: &mut Bundle,
    release: &ReleaseFacts,
) -> anyhow::Result<()> {
    let cluster = cluster::server_version(client, notes).await?;
    let versions = json!({
        "plugin": env!("CARGO_PKG_VERSION"),
        "chart": release.info.as_ref().map(|i| serde_json::to_value(i).unwrap_or(Value::Null)),
        "cluster": cluster,
        "helm": {"version": release.helm_version, "path": release.helm_path},
    });
    bundle.add_yaml(paths::VERSIONS, &versions)
}

fn write_release(bundle: &mut Bundle, release: &ReleaseFacts) -> anyhow::Result<()> {
    for (path, part) in [
        (paths::HISTORY, &release.history),
        (paths::VALUES, &release.values),
        (paths::COMPUTED_VALUES, &release.computed),
    ] {
        if let Some(part) = part {
            bundle.add_yaml(path, part)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_default_name_carries_the_environment_and_the_utc_time() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 13, 4, 5).unwrap();
        assert_eq!(
            default_name(Some(Environment::Prod), "datajump-prod", at),
            PathBuf::from("datajump-report-prod-20261206T130405Z.zip")
        );
        assert_eq!(
            default_name(None, "team-a", at),
            PathBuf::from("datajump-report-team-a-20261206T130405Z.zip")
        );
    }
}

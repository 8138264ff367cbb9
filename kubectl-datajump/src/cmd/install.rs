//! `install` / `upgrade`: values are merged and checked against the chart's schema before
//! anything touches the cluster; then preflight, namespaces, `helm upgrade --install`, an optional
//! wait with per-component progress, and a summary. `prepare` is shared with `images` and `diff`.

use std::collections::BTreeMap;
use std::time::Duration;

use chart_gen::model::Environment;
use chart_gen::namespaces;
use serde::Serialize;

use crate::cli::{ChartArgs, InstallArgs};
use crate::cmd::{Ctx, readiness_table};
use crate::helm::{Helm, Release};
use crate::kube::rollout::WorkloadReadiness;
use crate::kube::{crds, credentials, log_shipping, namespace, preflight, rollout};
use crate::output::{self, Render, Style};
use crate::values::{MergedValues, load_layers};
use crate::{manifests, schema};

/// A chart resolved to a directory, with validated values and the release to render.
pub(crate) struct Prepared {
    pub helm: Helm,
    pub env: Environment,
    pub release: Release,
    pub values: MergedValues,
    /// Keeps a pulled OCI chart on disk while we use it.
    _pulled: Option<tempfile::TempDir>,
}

/// Locates helm, resolves the chart, merges the values and validates them against the schema.
pub(crate) async fn prepare(
    ctx: &Ctx,
    chart: &ChartArgs,
    timeout: Duration,
    dry_run: bool,
) -> anyhow::Result<Prepared> {
    let env = ctx.env()?;
    let namespace = ctx.namespace()?;
    let helm = ctx.helm()?;
    let (chart_dir, pulled) = helm.resolve_chart(&chart.source()).await?;
    let layers = load_layers(
        &chart_dir,
        &env.values_file_name(),
        &chart.values,
        &chart.set,
        &chart.set_string,
    )?;
    let values = MergedValues::from_layers(layers)?;
    let schema = schema::read_schema(&chart_dir)?;
    schema::ensure_valid(&schema, &values)?;
    let release = Release {
        name: ctx.global.release.clone(),
        namespace,
        env_values: chart_dir.join(env.values_file_name()),
        chart_dir,
        values: chart.values.clone(),
        set: chart.set.clone(),
        set_string: chart.set_string.clone(),
        timeout,
        dry_run,
    };
    Ok(Prepared {
        helm,
        env,
        release,
        values,
        _pulled: pulled,
    })
}

/// install or upgrade (the same path; only the wording differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Install,
    Upgrade,
}

impl Verb {
    fn done(self) -> &'static str {
        match self {
            Self::Install => "installed",
            Self::Upgrade => "upgraded",
        }
    }
}

/// The answer of install/upgrade.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstallSummary {
    pub release: String,
    pub namespace: String,
    pub env: Environment,
    pub result: String,
    pub dry_run: bool,
    /// Rendered objects by kind (dry run) — what helm would apply.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, usize>,
    /// Rollout state per workload (after --wait).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<WorkloadReadiness>,
}

impl Render for InstallSummary {
    fn human(&self, style: &Style) -> String {
        let mut out = format!(
            "{}: release {} in {} ({})\n",
            self.result, self.release, self.namespace, self.env
        );
        if !self.objects.is_empty() {
            let rows: Vec<Vec<String>> = self
                .objects
                .iter()
                .map(|(k, n)| vec![k.clone(), n.to_string()])
                .collect();
            out.push_str(&output::table(&["KIND", "COUNT"], &rows));
        }
        if !self.components.is_empty() {
            out.push_str(&readiness_table(&self.components, style));
        }
        out
    }
}

pub(crate) async fn run(ctx: &Ctx, args: &InstallArgs, verb: Verb) -> anyhow::Result<()> {
    let p = prepare(ctx, &args.chart, args.timeout, args.dry_run).await?;
    ctx.progress.line(format!(
        "values valid against {}",
        p.release.chart_dir.join("values.schema.json").display()
    ));
    let mut summary = InstallSummary {
        release: p.release.name.clone(),
        namespace: p.release.namespace.clone(),
        env: p.env,
        result: String::new(),
        dry_run: args.dry_run,
        objects: BTreeMap::new(),
        components: Vec::new(),
    };
    if args.dry_run {
        let out = p.helm.run(&p.helm.upgrade_install_args(&p.release)).await?;
        for obj in manifests::parse(&manifests::from_dry_run_output(&out))? {
            let kind = obj
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("?")
                .to_string();
            *summary.objects.entry(kind).or_default() += 1;
        }
        summary.result = format!("dry run: would be {}", verb.done());
        return output::print(&summary, &ctx.global);
    }

    let client = ctx.client().await?;
    deploy(ctx, &p, &client, args, &mut summary).await?;
    summary.result = verb.done().to_string();
    output::print(&summary, &ctx.global)
}

/// The cluster part of install/upgrade, in order: preflight, namespaces, helm, optional wait.
pub(crate) async fn deploy(
    ctx: &Ctx,
    p: &Prepared,
    client: &::kube::Client,
    args: &InstallArgs,
    summary: &mut InstallSummary,
) -> anyhow::Result<()> {
    let fullname = ctx.fullname_for(&p.values.merged);
    let credentials = credentials::source(&p.values.merged, &fullname);
    if !args.skip_preflight {
        ctx.progress
            .line("preflight: server version, operator CRDs, StorageClass, IngressClass ...");
        let report = preflight::run(client, &preflight::plan(&p.values.merged)).await?;
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        let mut failures = report.failures;
        for required in credentials::required_secrets(&p.values.merged) {
            failures.extend(
                credentials::check_required(client, &p.release.namespace, &required).await?,
            );
        }
        if !failures.is_empty() {
            anyhow::bail!(
                "preflight failed ({} problem{}):\n  {}\n(--skip-preflight skips these checks)",
                failures.len(),
                if failures.len() == 1 { "" } else { "s" },
                failures.join("\n  ")
            );
        }
    }
    // The chart knows which components fall short of "restricted": render it and ask.
    let rendered = manifests::parse(&p.helm.run(&p.helm.template_args(&p.release)).await?)?;
    let pod_security = namespaces::PodSecurity::from_objects(&rendered, &fullname)?;
    let log_shipping = log_shipping::Declared::from_objects(&rendered)?;
    for reason in &pod_security.forced_by {
        ctx.progress.line(format!(
            "pod security: namespace enforces {} because {reason}",
            pod_security.enforce
        ));
    }
    // The values passed the chart's schema in `prepare`, so they fit the model.
    let typed: chart_gen::model::Values = serde_json::from_value(p.values.merged.clone())
        .map_err(|e| anyhow::anyhow!("the merged values do not fit the chart's model: {e}"))?;
    let ns_plans = namespaces::plan(p.env, &p.release.namespace, &typed, &pod_security);
    namespace::apply(client, &ns_plans).await?;
    if let credentials::Source::Generated(name) = &credentials
        && credentials::ensure_generated(client, &p.release.namespace, name).await?
    {
        ctx.progress.line(format!(
            "created Secret {name} with generated credentials (kept across upgrades and uninstall)"
        ));
    }
    // ECK reads Fluent Bit's file-realm user from its first reconcile on: create it before the
    // Elasticsearch resource exists.
    let eck =
        p.values.merged.pointer("/elasticsearch/mode") == Some(&serde_json::json!("operator"));
    if let Some(writer) = log_shipping.as_ref().and_then(|d| d.credentials.as_ref())
        && eck
        && log_shipping::ensure_log_writer(client, writer).await?
    {
        ctx.progress.line(format!(
            "created Secret {writer}: Fluent Bit's Elasticsearch user (kept across upgrades)"
        ));
    }
    crds::apply(client, &p.release.chart_dir).await?;
    ctx.progress.line(format!(
        "namespace {} ready; running helm upgrade --install ...",
        p.release.namespace
    ));
    p.helm.run(&p.helm.upgrade_install_args(&p.release)).await?;
    if let Some(d) = &log_shipping {
        // Before any rollout wait: the Fluent Bit pods cannot start without this Secret.
        let wait = if args.wait {
            args.timeout
        } else {
            LOG_SOURCES_WAIT
        };
        report_log_shipping(ctx, d, log_shipping::sync(client, d, wait).await?);
    }
    if args.wait {
        ctx.progress.line("waiting for rollouts:");
        let namespaces: Vec<String> = ns_plans.iter().map(|n| n.name.clone()).collect();
        let progress = ctx.progress;
        summary.components =
            rollout::wait(client, &namespaces, &p.release.name, args.timeout, |w| {
                let mark = if w.rolled_out { "ready" } else { "waiting" };
                progress.line(format!(
                    "  {:<16} {}/{} {mark} ({} {})",
                    w.component, w.ready, w.desired, w.kind, w.name
                ));
            })
            .await?;
    }
    Ok(())
}

/// How long install/upgrade without `--wait` waits for the sources of Fluent Bit's Secret (ECK
/// publishes its CA within seconds of seeing the Elasticsearch resource when it is running).
const LOG_SOURCES_WAIT: Duration = Duration::from_secs(30);

fn report_log_shipping(ctx: &Ctx, d: &log_shipping::Declared, synced: log_shipping::Synced) {
    use log_shipping::Synced;
    match synced {
        Synced::Created => ctx
            .progress
            .line(format!("created Secret {} for Fluent Bit", d.secret)),
        Synced::Updated => ctx.progress.line(format!(
            "updated Secret {} for Fluent Bit and restarted DaemonSet {}",
            d.secret, d.daemonset
        )),
        Synced::Unchanged => {}
        Synced::Waiting(reason) => eprintln!(
            "warning: Fluent Bit's Secret {} is not made yet: {reason}; its pods wait for it. \
             Run `kubectl datajump upgrade` again once Elasticsearch is up.",
            d.secret
        ),
    }
}

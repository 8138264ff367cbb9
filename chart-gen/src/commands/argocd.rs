//! `chart-gen argocd`: writes the Argo CD manifests of the environments after validating each
//! environment exactly as `chart-gen validate -f <site values>` does. The manifests are built by
//! [`chart_gen::gitops`] from the render; they are checked against Argo CD's CRDs before
//! anything is written, and nothing is written when an environment or a manifest has a problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chart_gen::generate::CHART_DIR;
use chart_gen::generate::templates::CHART;
use chart_gen::gitops::{self, Delivery, SiteValues, Target};
use chart_gen::helm::Helm;
use chart_gen::model::{Environment, Values, names};
use chart_gen::namespaces::{self, PodSecurity};
use chart_gen::pipeline::Pipeline;
use chart_gen::validate::{crd::CrdSchemas, kubernetes};
use clap::Args;
use serde_json::Value;

use super::CrdArgs;
use crate::EnvSelection;

/// Argo CD's in-cluster destination.
const IN_CLUSTER: &str = "https://kubernetes.default.svc";

#[derive(Args)]
pub(crate) struct ArgocdArgs {
    #[command(flatten)]
    envs: EnvSelection,
    /// OCI repository holding the chart, as Argo CD writes Helm OCI repositories: host/path,
    /// without a scheme (e.g. harbor.example.com/datajump).
    #[arg(long, value_name = "HOST/PATH")]
    chart_repo: String,
    /// Chart version the Applications pin (default: this chart's version).
    #[arg(long, value_name = "VERSION")]
    chart_version: Option<String>,
    /// Helm release name in every environment.
    #[arg(long, default_value = "datajump")]
    release: String,
    /// Argo CD project the Applications belong to (written too).
    #[arg(long, default_value = "datajump")]
    project: String,
    /// Namespace Argo CD runs in.
    #[arg(long, default_value = "argocd", value_name = "NAMESPACE")]
    argocd_namespace: String,
    /// The cluster of an environment, as Argo CD knows it: ENV=URL (repeatable; default: the
    /// cluster Argo CD runs in).
    #[arg(long = "cluster", value_name = "ENV=URL", value_parser = parse_cluster)]
    clusters: Vec<(Environment, String)>,
    /// Local checkout of the site's values folder: values-<env>.yaml per environment (each
    /// optional). They are validated with the chart and referenced from git by the Applications.
    #[arg(long, value_name = "DIR", requires_all = ["site_repo", "site_path"])]
    site_dir: Option<PathBuf>,
    /// Git repository Argo CD reads the site's values from.
    #[arg(long, value_name = "URL", requires = "site_dir")]
    site_repo: Option<String>,
    /// Branch, tag or commit of the site repository Argo CD follows.
    #[arg(long, value_name = "REV", default_value = "main")]
    site_revision: String,
    /// Folder of the values files inside the site repository.
    #[arg(long, value_name = "PATH", requires = "site_dir")]
    site_path: Option<String>,
    #[command(flatten)]
    crds: CrdArgs,
    /// Directory to write project.yaml, namespaces.yaml and <release>-<env>.yaml into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn parse_cluster(s: &str) -> Result<(Environment, String), String> {
    let (env, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ENV=URL, got {s:?}"))?;
    let env: Environment = env
        .parse()
        .map_err(|_| format!("unknown environment {env:?} (dev, test, staging or prod)"))?;
    if !url.starts_with("https://") {
        return Err(format!(
            "the cluster URL of {env} must start with https://, got {url:?}"
        ));
    }
    Ok((env, url.to_string()))
}

/// Checks the flags that clap cannot: names Argo CD would refuse.
fn check_args(args: &ArgocdArgs) -> Result<(), String> {
    if args.chart_repo.contains("://") {
        return Err(format!(
            "--chart-repo {:?}: write the OCI repository as host/path without a scheme (Argo CD's form for Helm OCI repositories, e.g. harbor.example.com/datajump)",
            args.chart_repo
        ));
    }
    if let Some(path) = &args.site_path
        && (path.starts_with('/') || path.ends_with('/') || path.split('/').any(|p| p == ".."))
    {
        return Err(format!(
            "--site-path {path:?}: a relative folder inside the site repository, without a leading or trailing / or .."
        ));
    }
    Ok(())
}

pub(crate) fn run(root: &Path, helm: Helm, args: ArgocdArgs) -> Result<ExitCode> {
    if let Err(message) = check_args(&args) {
        eprintln!("chart-gen: error: {message}");
        return Ok(ExitCode::from(crate::EXIT_PROBLEMS));
    }
    let mut pipeline: Pipeline = args.crds.pipeline(&root.join(CHART_DIR), helm)?;
    pipeline.release = args.release.clone();
    let envs = args.envs.envs();
    let mut targets = Vec::new();
    let mut site_envs = Vec::new();
    let mut problems = 0;
    for &env in &envs {
        let site_file = args
            .site_dir
            .as_ref()
            .map(|d| d.join(env.values_file_name()))
            .filter(|f| f.is_file());
        if site_file.is_some() {
            site_envs.push(env);
        }
        let report = pipeline.run(env, site_file.as_slice())?;
        for p in &report.problems {
            println!("{p}");
        }
        problems += report.problems.len();
        if report.problems.is_empty() {
            targets.push(target(
                env,
                &args,
                &report.values,
                &report.objects,
                &pipeline.crds,
            )?);
        }
    }
    if problems > 0 {
        eprintln!("chart-gen: argocd: {problems} problems; nothing written");
        return Ok(ExitCode::from(crate::EXIT_PROBLEMS));
    }
    let delivery = Delivery {
        chart_repo: args.chart_repo.clone(),
        chart_version: args
            .chart_version
            .clone()
            .unwrap_or_else(|| CHART.version.to_string()),
        release: args.release.clone(),
        project: args.project.clone(),
        argocd_namespace: args.argocd_namespace.clone(),
        site: args.site_repo.clone().map(|repo_url| SiteValues {
            repo_url,
            revision: args.site_revision.clone(),
            path: args.site_path.clone().unwrap_or_default(),
            envs: site_envs,
        }),
    };
    let files = manifests(&delivery, &targets);
    let invalid = check_manifests(&files, &pipeline.crds, args.crds.no_crds);
    if !invalid.is_empty() {
        for line in &invalid {
            println!("{line}");
        }
        eprintln!(
            "chart-gen: argocd: {} invalid manifests; nothing written",
            invalid.len()
        );
        return Ok(ExitCode::from(crate::EXIT_PROBLEMS));
    }
    write(&args.out, &files)?;
    Ok(ExitCode::SUCCESS)
}

/// What the Applications need from one environment's render.
fn target(
    env: Environment,
    args: &ArgocdArgs,
    values: &Value,
    objects: &[Value],
    crds: &CrdSchemas,
) -> Result<Target> {
    let typed: Values = serde_json::from_value(values.clone())
        .with_context(|| format!("{env}: the merged values do not fit the model"))?;
    let fullname = names::fullname(
        &args.release,
        &typed.name_override,
        &typed.fullname_override,
    );
    let pod_security = PodSecurity::from_objects(objects, &fullname)
        .with_context(|| format!("{env}: reading the chart's Pod Security answer"))?;
    let namespace = env.default_namespace();
    let cluster = args
        .clusters
        .iter()
        .rev()
        .find(|(e, _)| *e == env)
        .map_or(IN_CLUSTER.to_string(), |(_, url)| url.clone());
    Ok(Target {
        env,
        cluster,
        namespaces: namespaces::plan(env, &namespace, &typed, &pod_security),
        autoscaled: gitops::autoscaled_deployments(objects, &namespace),
        cluster_kinds: gitops::cluster_scoped_kinds(objects, crds),
    })
}

/// One file to write: its name, where it is applied, the object.
struct Manifest {
    file: String,
    applied_to: String,
    object: Value,
}

/// Every manifest, in the order to apply them: the project and the Applications go to the
/// cluster Argo CD runs in, extra namespaces to their environment's cluster.
fn manifests(delivery: &Delivery, targets: &[Target]) -> Vec<Manifest> {
    let argocd = format!(
        "the cluster Argo CD runs in (namespace {})",
        delivery.argocd_namespace
    );
    let mut files = vec![Manifest {
        file: "project.yaml".into(),
        applied_to: argocd.clone(),
        object: gitops::project(delivery, targets),
    }];
    for ns in gitops::extra_namespaces(targets) {
        let name = ns.object["metadata"]["name"]
            .as_str()
            .unwrap_or("namespace");
        files.push(Manifest {
            file: format!(
                "{}-{}-namespace-{name}.yaml",
                delivery.release,
                ns.env.as_str()
            ),
            applied_to: format!("{} (before syncing the {} Application)", ns.cluster, ns.env),
            object: ns.object.clone(),
        });
    }
    for t in targets {
        files.push(Manifest {
            file: format!("{}.yaml", gitops::application_name(delivery, t.env)),
            applied_to: argocd.clone(),
            object: gitops::application(delivery, t),
        });
    }
    files
}

/// Every manifest against its schema: Argo CD's CRDs, Kubernetes' types for the Namespaces.
fn check_manifests(files: &[Manifest], crds: &CrdSchemas, no_crds: bool) -> Vec<String> {
    let mut out = Vec::new();
    for Manifest {
        file, object: obj, ..
    } in files
    {
        let errors = match kubernetes::check_builtin(obj) {
            Some(errors) => errors,
            None if no_crds => continue,
            None => match crds.check(obj) {
                Some(errors) => errors,
                None => {
                    out.push(format!("{file}: no schema for {} {} (are Argo CD's CRDs in the cache? `chart-gen crds fetch`)", obj["apiVersion"], obj["kind"]));
                    continue;
                }
            },
        };
        out.extend(errors.iter().map(|e| format!("{file}: {e}")));
    }
    out
}

fn write(dir: &Path, files: &[Manifest]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for m in files {
        let path = dir.join(&m.file);
        let text = format!(
            "# Written by `chart-gen argocd` from the DataJump chart {} — regenerate rather than edit.\n# Apply to {}.\n{}",
            CHART.version,
            m.applied_to,
            serde_yaml::to_string(&m.object)?
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

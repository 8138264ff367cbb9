//! Turns the template files under `chart-gen/templates/` into chart files.
//!
//! The templates produce Helm templates, so they use minijinja with a custom syntax — `[[ … ]]`
//! for expressions, `[% … %]` for statements, `[# … #]` for comments — and Helm's `{{ … }}`
//! passes through untouched. minijinja does the generation-time work (one Deployment template per
//! platform service, per-component folders); Helm does the install-time work (values).
//!
//! Template folders:
//! - `chart/**`   → rendered once to the same path under `charts/datajump/`;
//! - `service/*`  → rendered once per platform service to `templates/<component>/<file>`;
//! - `embedded/*` → rendered once per infrastructure component with an `embedded` mode
//!   ([`EMBEDDED_SERVERS`]) to `templates/<component>/<file>`, beside the component's own files;
//! - `files/**`   → copied verbatim to `files/` (shell scripts Helm mounts from ConfigMaps).

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, context};
use serde::Serialize;

use crate::model::{EMBEDDED_SERVERS, LOG_SHIPPING, PLATFORM_SERVICES};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

/// A failure to expand a template file (a bug in it, reported with its name and line).
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source:#}")]
pub struct TemplateError {
    /// Template path under `chart-gen/templates/`.
    pub name: String,
    /// minijinja's error, with line information.
    #[source]
    pub source: minijinja::Error,
}

/// Facts about the chart the templates may use.
#[derive(Debug, Clone, Serialize)]
pub struct ChartInfo {
    /// Chart name.
    pub name: &'static str,
    /// Chart version (SemVer).
    pub version: &'static str,
    /// Version of the platform the chart deploys.
    pub app_version: &'static str,
}

/// The supported Kubernetes releases, for Chart.yaml (from [`crate::kube_versions`]).
#[derive(Debug, Clone, Serialize)]
pub struct KubernetesInfo {
    /// Chart.yaml `kubeVersion`: a lower bound only.
    pub kube_version: String,
    /// Oldest supported and newest tested release, e.g. "1.33" and "1.37".
    pub oldest: String,
    pub newest_tested: String,
}

impl KubernetesInfo {
    fn current() -> Self {
        use crate::kube_versions::{NEWEST_TESTED, OLDEST_SUPPORTED, chart_kube_version};
        Self {
            kube_version: chart_kube_version(),
            oldest: OLDEST_SUPPORTED.to_string(),
            newest_tested: NEWEST_TESTED.to_string(),
        }
    }
}

/// The chart this generator writes.
pub const CHART: ChartInfo = ChartInfo {
    name: "datajump",
    version: env!("CARGO_PKG_VERSION"),
    app_version: crate::profiles::APP_VERSION,
};

#[derive(Serialize)]
struct ServiceCtx {
    key: &'static str,
    component: &'static str,
}

fn environment() -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .block_delimiters("[%", "%]")
        .variable_delimiters("[[", "]]")
        .comment_delimiters("[#", "#]")
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|source| TemplateError {
            name: "<syntax>".into(),
            source,
        })?;
    env.set_syntax(syntax);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let templated = embedded::TEMPLATES.iter().filter(|(name, _)| {
        ["chart/", "service/", "embedded/"]
            .iter()
            .any(|p| name.starts_with(p))
    });
    for (name, source) in templated {
        env.add_template(name, source)
            .map_err(|source| TemplateError {
                name: (*name).into(),
                source,
            })?;
    }
    Ok(env)
}

/// Expands every template file into the chart's files. Returns (path relative to the chart
/// directory, contents), sorted. (Rendering the chart with values is `helm template`'s job.)
pub fn chart_files() -> Result<Vec<(String, String)>, TemplateError> {
    let env = environment()?;
    let kubernetes = KubernetesInfo::current();
    let services: Vec<ServiceCtx> = PLATFORM_SERVICES
        .iter()
        .map(|s| ServiceCtx {
            key: s.values_key,
            component: s.component,
        })
        .collect();
    let mut out = Vec::new();
    for (name, source) in embedded::TEMPLATES {
        let render = |ctx| {
            env.get_template(name)
                .and_then(|t| t.render(ctx))
                .map_err(|source| TemplateError {
                    name: (*name).into(),
                    source,
                })
        };
        if let Some(rel) = name.strip_prefix("chart/") {
            out.push((
                rel.to_string(),
                render(context! {
                    chart => Serde(&CHART),
                    kubernetes => Serde(&kubernetes),
                    services => Serde(&services),
                    log_shipping => Serde(&LOG_SHIPPING),
                })?,
            ));
        } else if let Some(file) = name.strip_prefix("service/") {
            for svc in &services {
                let path = format!("templates/{}/{file}", svc.component);
                out.push((
                    path,
                    render(context! { chart => Serde(&CHART), svc => Serde(svc) })?,
                ));
            }
        } else if let Some(file) = name.strip_prefix("embedded/") {
            for srv in &EMBEDDED_SERVERS {
                let path = format!("templates/{}/{file}", srv.component);
                out.push((path, render(context! { srv => Serde(srv) })?));
            }
        } else if name.starts_with("files/") {
            out.push(((*name).to_string(), (*source).to_string()));
        }
    }
    out.sort();
    Ok(out)
}

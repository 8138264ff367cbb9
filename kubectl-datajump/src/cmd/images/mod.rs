//! `images`: every image an environment runs (from `helm template` of the chart with the
//! environment's values), where each comes from, and the verbs that move them into a private
//! registry: `mirror` (network), `save` + `load` (air gap), `lock` (digests for prod).

mod lock;
mod mirror;
mod offline;
pub(crate) mod plan;

use std::time::Duration;

use chart_gen::model::mirror::{Mirror, values_images};
use serde::Serialize;

use crate::cli::{ChartArgs, ImagesArgs, ImagesCommand, SourceArgs, TargetArgs};
use crate::cmd::Ctx;
use crate::cmd::install::{Prepared, prepare};
use crate::error::InputError;
use crate::manifests;
use crate::output::{self, Render, Style};
use crate::registry::{Connection, CopyOptions, Credentials, Platforms, Registry, SourceMirrors};
use plan::PlannedImage;

/// The answer of `images`: every image, sorted by the reference the pods get.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageList {
    pub env: String,
    /// `global.imageRegistry` (and project) the render used, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<Mirror>,
    /// Harbor projects that must exist in that registry before a mirror.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    pub images: Vec<PlannedImage>,
}

impl Render for ImageList {
    fn human(&self, _style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .images
            .iter()
            .map(|i| {
                let source = if i.upstream == i.image {
                    "-".to_string()
                } else {
                    i.upstream.to_string()
                };
                vec![i.image.to_string(), source, i.used_by.join(", ")]
            })
            .collect();
        let mut out = output::table(&["IMAGE", "SOURCE", "USED BY"], &rows);
        if let Some(registry) = &self.registry {
            out.push_str(&format!(
                "\nHarbor projects these images need in {}: {}\n",
                registry.registry,
                self.projects.join(", ")
            ));
        }
        out
    }
}

/// Renders the environment (for `mirror` under the registry it will be mirrored to) and pairs
/// every rendered image with its upstream.
pub(crate) async fn environment_images(
    ctx: &Ctx,
    chart: &ChartArgs,
    mirror: Option<&Mirror>,
) -> anyhow::Result<(Prepared, ImageList)> {
    let mut chart = chart.clone();
    if let Some(m) = mirror {
        chart
            .set_string
            .push(format!("global.imageRegistry={}", m.registry));
        chart
            .set_string
            .push(format!("global.imageProject={}", m.project().unwrap_or("")));
    }
    let p = prepare(ctx, &chart, Duration::from_secs(300), true).await?;
    let rendered = p.helm.run(&p.helm.template_args(&p.release)).await?;
    let objects = manifests::parse(&rendered)?;
    let global = |k: &str| {
        p.values
            .merged
            .pointer(&format!("/global/{k}"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let registry = Mirror::from_global(&global("imageRegistry"), &global("imageProject"));
    let images = plan::plan(
        &manifests::images(&objects),
        &values_images(&p.values.merged),
        registry.as_ref(),
    )
    .map_err(|e| anyhow::anyhow!("environment {}: {e}", p.env))?;
    let projects = registry
        .as_ref()
        .map(|r| r.projects(images.iter().map(|i| &i.upstream)))
        .unwrap_or_default();
    let list = ImageList {
        env: p.env.as_str().to_string(),
        registry,
        projects,
        images,
    };
    Ok((p, list))
}

pub(crate) async fn run(ctx: &Ctx, args: &ImagesArgs) -> anyhow::Result<()> {
    match &args.action {
        None => list(ctx, &args.chart).await,
        Some(ImagesCommand::List(chart)) => list(ctx, chart).await,
        Some(ImagesCommand::Mirror(a)) => mirror::run(ctx, a).await,
        Some(ImagesCommand::Save(a)) => offline::save(ctx, a).await,
        Some(ImagesCommand::Load(a)) => offline::load(ctx, a).await,
        Some(ImagesCommand::Lock(a)) => lock::run(ctx, a).await,
    }
}

async fn list(ctx: &Ctx, chart: &ChartArgs) -> anyhow::Result<()> {
    let (_, list) = environment_images(ctx, chart, None).await?;
    output::print(&list, &ctx.global)
}

/// `HOST[/PROJECT]` of `--to`/`--registry`, as bad input when malformed.
pub(crate) fn parse_mirror(flag: &str, given: &str) -> Result<Mirror, InputError> {
    Mirror::parse(given).map_err(|e| InputError::new(format!("{flag}: {e}")))
}

/// A registry client: for `target` (with the password read from stdin when
/// `--password-stdin` asks for it), and for the sources, `plain_sources` spoken to over HTTP.
pub(crate) fn client(
    target: Option<(&Mirror, &TargetArgs)>,
    plain_sources: &[&str],
    extra_ca: &[std::path::PathBuf],
) -> anyhow::Result<Registry> {
    let mut credentials = Credentials::discover();
    let mut plain_http: Vec<String> = plain_sources.iter().map(|h| h.to_string()).collect();
    let mut ca_files = extra_ca.to_vec();
    if let Some((mirror, args)) = target {
        if let (Some(user), true) = (&args.username, args.password_stdin) {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| InputError::new(format!("--password-stdin: {e}")))?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(InputError::new("--password-stdin: standard input was empty").into());
            }
            credentials = credentials.with_login(&mirror.registry, user, password);
        }
        if args.plain_http {
            plain_http.push(mirror.registry.clone());
        }
        ca_files.extend(args.ca_file.iter().cloned());
    }
    let connection = Connection {
        ca_files,
        plain_http,
    };
    Registry::new(&connection, credentials).map_err(|e| InputError::new(e.to_string()).into())
}

/// The hosts of `--source-mirror`s when `--source-plain-http` asks for plain HTTP.
pub(crate) fn plain_sources<'a>(source: &SourceArgs, mirrors: &'a SourceMirrors) -> Vec<&'a str> {
    if source.source_plain_http {
        mirrors.hosts().collect()
    } else {
        Vec::new()
    }
}

/// Source mirrors and copy options from the flags, as bad input when malformed.
pub(crate) fn source_options(
    source: &SourceArgs,
) -> Result<(SourceMirrors, CopyOptions), InputError> {
    let mirrors =
        SourceMirrors::parse(&source.source_mirror).map_err(|e| InputError::new(e.to_string()))?;
    let platforms =
        Platforms::parse(&source.platform).map_err(|e| InputError::new(e.to_string()))?;
    Ok((
        mirrors,
        CopyOptions::new(platforms, usize::from(source.jobs)),
    ))
}

//! `images save` and `images load`: for a site with no connection at all. `save` writes every
//! image of the environment and the chart into one archive on the connected side; `load`
//! verifies every blob of it on the disconnected side and only then pushes it all into the
//! site's registry, the chart where `helm install oci://HOST[/PROJECT]/datajump` finds it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use bytes::Bytes;
use indicatif::ProgressBar;
use serde::Serialize;

use super::mirror::human_bytes;
use super::{client, environment_images, parse_mirror, plain_sources, source_options};
use crate::cli::{LoadArgs, OutputFormat, SaveArgs};
use crate::cmd::Ctx;
use crate::error::InputError;
use crate::output::{self, Render, Style};
use crate::registry::{
    ChartArtifact, LoadOutcome, SaveImage, load_archive, verify_archive, write_archive,
};

/// The answer of `images save`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SaveReport {
    pub env: String,
    pub file: String,
    pub chart: String,
    pub images: Vec<String>,
    pub bytes: u64,
}

impl Render for SaveReport {
    fn human(&self, _style: &Style) -> String {
        let rows: Vec<Vec<String>> = self.images.iter().map(|i| vec![i.clone()]).collect();
        let mut out = output::table(&["IMAGE"], &rows);
        out.push_str(&format!(
            "\nwrote {} ({} images, chart {}, {} of blobs); carry it across and run\n  kubectl datajump images load {} --to HOST[/PROJECT]\n",
            self.file,
            self.images.len(),
            self.chart,
            human_bytes(self.bytes),
            self.file
        ));
        out
    }
}

/// The answer of `images load`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadReport {
    pub env: String,
    #[serde(flatten)]
    pub outcome: LoadOutcome,
}

impl Render for LoadReport {
    fn human(&self, _style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .outcome
            .images
            .iter()
            .map(|i| vec![i.image.to_string(), i.digest.clone()])
            .collect();
        let mut out = output::table(&["IMAGE", "DIGEST"], &rows);
        out.push_str(&format!(
            "\n{} images and the chart loaded ({} blobs uploaded, {}; {} already there); install with\n  helm install datajump {}\n",
            self.outcome.images.len(),
            self.outcome.blobs_copied,
            human_bytes(self.outcome.bytes_copied),
            self.outcome.blobs_skipped,
            self.outcome.chart
        ));
        out
    }
}

fn progress(ctx: &Ctx) -> ProgressBar {
    if ctx.global.output == OutputFormat::Table && std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    }
}

pub(super) async fn save(ctx: &Ctx, args: &SaveArgs) -> anyhow::Result<()> {
    let (mirrors, options) = source_options(&args.source)?;
    let (prepared, list) = environment_images(ctx, &args.chart, None).await?;
    let chart = package_chart(&prepared).await?;
    let registry = client(None, &plain_sources(&args.source, &mirrors), &args.ca_file)?;
    let mut images: Vec<SaveImage> = Vec::new();
    for planned in &list.images {
        if !images.iter().any(|i| i.upstream == planned.upstream) {
            images.push(SaveImage {
                source: mirrors.apply(&planned.upstream),
                upstream: planned.upstream.clone(),
            });
        }
    }
    let bar = progress(ctx);
    let bytes = AtomicU64::new(0);
    let on_bytes = |n: u64| {
        let total = bytes.fetch_add(n, Ordering::Relaxed) + n;
        bar.set_message(format!("{} written", human_bytes(total)));
    };
    let contents = write_archive(
        &registry,
        &args.output_file,
        &list.env,
        &images,
        &options.platforms,
        &chart,
        &on_bytes,
    )
    .await
    .with_context(|| {
        format!(
            "saving {} (nothing was written)",
            args.output_file.display()
        )
    })?;
    bar.finish_and_clear();
    output::print(
        &SaveReport {
            env: list.env,
            file: args.output_file.display().to_string(),
            chart: format!("{} {}", chart.name, chart.version),
            images: contents.images.iter().map(|i| i.upstream.clone()).collect(),
            bytes: bytes.into_inner(),
        },
        &ctx.global,
    )
}

/// The chart the environment was rendered from, packaged as `helm package` does.
async fn package_chart(prepared: &super::Prepared) -> anyhow::Result<ChartArtifact> {
    let dir = tempfile::tempdir().context("a temp dir for the packaged chart")?;
    let chart_dir = &prepared.release.chart_dir;
    prepared
        .helm
        .run(&[
            "package".into(),
            chart_dir.into(),
            "--destination".into(),
            dir.path().into(),
        ])
        .await?;
    let package = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .context("helm package wrote no .tgz")?;
    let chart_yaml = std::fs::read_to_string(chart_dir.join("Chart.yaml"))
        .with_context(|| format!("reading {}/Chart.yaml", chart_dir.display()))?;
    Ok(ChartArtifact::new(
        &chart_yaml,
        Bytes::from(std::fs::read(&package)?),
    )?)
}

pub(super) async fn load(ctx: &Ctx, args: &LoadArgs) -> anyhow::Result<()> {
    let target = parse_mirror("--to", &args.to)?;
    let file = args.file.clone();
    // A damaged or foreign file is bad input: exit 2, and nothing is pushed.
    let verified = tokio::task::spawn_blocking(move || verify_archive(&file))
        .await
        .context("verifying the archive")?
        .map_err(|e| InputError::new(e.to_string()))?;
    let registry = client(Some((&target, &args.target)), &[], &[])?;
    let bar = progress(ctx);
    let on_bytes = |n: u64| bar.inc(n);
    let outcome = load_archive(&registry, &args.file, &verified, &target, &on_bytes).await?;
    bar.finish_and_clear();
    output::print(
        &LoadReport {
            env: verified.contents.env.clone(),
            outcome,
        },
        &ctx.global,
    )
}

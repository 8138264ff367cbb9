//! `images mirror --env E --to HOST[/PROJECT]`: copies every image of the environment from its
//! upstream registry (or a `--source-mirror`) into the private registry, several at once. An
//! image that fails is reported with the component that needs it and the others are still
//! copied; the exit code is non-zero when any failed.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::bail;
use chart_gen::model::mirror::{ImageRef, Mirror};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::{
    client, environment_images, parse_mirror, plain_sources, plan::PlannedImage, source_options,
};
use crate::cli::{MirrorArgs, OutputFormat};
use crate::cmd::Ctx;
use crate::output::{self, Render, Style};
use crate::registry::{CopyOptions, CopyOutcome, ImageCopy, Registry, SourceMirrors, copy_image};

/// What happened to one image.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MirroredImage {
    /// Where it was written.
    pub image: ImageRef,
    /// Where it was read from.
    pub source: ImageRef,
    /// The copy, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CopyOutcome>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `images mirror`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MirrorReport {
    pub env: String,
    pub registry: Mirror,
    pub images: Vec<MirroredImage>,
    /// Images whose tag already pointed at the upstream digest.
    pub up_to_date: usize,
    /// Images written.
    pub copied: usize,
    /// Images that failed.
    pub failed: usize,
    /// Blobs uploaded, over all images.
    pub blobs_copied: usize,
    /// Bytes uploaded, over all images.
    pub bytes_copied: u64,
}

impl Render for MirrorReport {
    fn human(&self, style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .images
            .iter()
            .map(|i| {
                let (result, digest) = match (&i.outcome, &i.error) {
                    (Some(o), _) if o.up_to_date => (style.state("ok"), o.digest.clone()),
                    (Some(o), _) => (
                        format!(
                            "copied {} blobs, {}",
                            o.blobs_copied,
                            human_bytes(o.bytes_copied)
                        ),
                        o.digest.clone(),
                    ),
                    (None, Some(e)) => (style.state("failed"), e.clone()),
                    (None, None) => (String::new(), String::new()),
                };
                vec![i.image.to_string(), result, digest]
            })
            .collect();
        let mut out = output::table(&["IMAGE", "RESULT", "DIGEST / ERROR"], &rows);
        out.push_str(&format!(
            "\n{} images: {} copied ({} blobs, {}), {} already up to date, {} failed\n",
            self.images.len(),
            self.copied,
            self.blobs_copied,
            human_bytes(self.bytes_copied),
            self.up_to_date,
            self.failed
        ));
        out
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / MIB)
    }
}

pub(crate) async fn run(ctx: &Ctx, args: &MirrorArgs) -> anyhow::Result<()> {
    let target = parse_mirror("--to", &args.to)?;
    let (mirrors, options) = source_options(&args.source)?;
    let (_, list) = environment_images(ctx, &args.chart, Some(&target)).await?;
    let registry = client(
        Some((&target, &args.target)),
        &plain_sources(&args.source, &mirrors),
        &[],
    )?;
    let show = ctx.global.output == OutputFormat::Table && std::io::stderr().is_terminal();
    let report = mirror_all(
        &registry,
        &list.env,
        &target,
        &list.images,
        &mirrors,
        &options,
        show,
    )
    .await;
    output::print(&report, &ctx.global)?;
    if report.failed > 0 {
        let failures: Vec<String> = report
            .images
            .iter()
            .zip(&list.images)
            .filter_map(|(m, planned)| {
                m.error.as_ref().map(|e| {
                    format!(
                        "{} (needed by {} in {}): {e}",
                        planned.upstream,
                        needed_by(planned),
                        report.env
                    )
                })
            })
            .collect();
        bail!(
            "{} of {} images were not mirrored (the others were; run the mirror again once fixed):\n  {}",
            report.failed,
            report.images.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// The component a planned image belongs to, in words: its values paths, else its users.
fn needed_by(planned: &PlannedImage) -> String {
    if planned.values_paths.is_empty() {
        planned.used_by.join(", ")
    } else {
        planned.values_paths.join(", ")
    }
}

/// Copies every planned image (in input order in the report), `options`' transfers at once.
pub(crate) async fn mirror_all(
    registry: &Registry,
    env: &str,
    target: &Mirror,
    images: &[PlannedImage],
    mirrors: &SourceMirrors,
    options: &CopyOptions,
    show_progress: bool,
) -> MirrorReport {
    let bar = if show_progress {
        let bar = ProgressBar::new(images.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} images {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let bytes = AtomicU64::new(0);
    let on_bytes = |n: u64| {
        let total = bytes.fetch_add(n, Ordering::Relaxed) + n;
        bar.set_message(format!("{} uploaded", human_bytes(total)));
    };
    let results: Vec<MirroredImage> = futures::stream::iter(images.iter().map(|planned| {
        let job = ImageCopy {
            source: mirrors.apply(&planned.upstream),
            target: planned.image.tagged(),
        };
        let bar = &bar;
        let on_bytes = &on_bytes;
        async move {
            let result = copy_image(registry, &job, options, on_bytes).await;
            bar.inc(1);
            let (outcome, error) = match result {
                Ok(o) => (Some(o), None),
                Err(e) => (None, Some(e.to_string())),
            };
            MirroredImage {
                image: job.target,
                source: job.source,
                outcome,
                error,
            }
        }
    }))
    .buffered(options.jobs)
    .collect()
    .await;
    bar.finish_and_clear();
    let count = |f: &dyn Fn(&MirroredImage) -> bool| results.iter().filter(|r| f(r)).count();
    MirrorReport {
        env: env.to_string(),
        registry: target.clone(),
        up_to_date: count(&|r| r.outcome.as_ref().is_some_and(|o| o.up_to_date)),
        copied: count(&|r| r.outcome.as_ref().is_some_and(|o| !o.up_to_date)),
        failed: count(&|r| r.error.is_some()),
        blobs_copied: results
            .iter()
            .filter_map(|r| r.outcome.as_ref())
            .map(|o| o.blobs_copied)
            .sum(),
        bytes_copied: results
            .iter()
            .filter_map(|r| r.outcome.as_ref())
            .map(|o| o.bytes_copied)
            .sum(),
        images: results,
    }
}

//! `images --env E`: every image the environment would run, from `helm template` of the chart
//! with the environment's values (subcharts included), for mirroring into Harbor.

use std::time::Duration;

use serde::Serialize;

use crate::cli::ChartArgs;
use crate::cmd::Ctx;
use crate::cmd::install::prepare;
use crate::manifests;
use crate::output::{self, Render, Style};

/// One image and the objects that reference it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageUse {
    pub image: String,
    pub used_by: Vec<String>,
}

/// The answer: images sorted by name.
#[derive(Debug, Serialize)]
pub struct ImageList {
    pub env: String,
    pub images: Vec<ImageUse>,
}

impl Render for ImageList {
    fn human(&self, _style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .images
            .iter()
            .map(|i| vec![i.image.clone(), i.used_by.join(", ")])
            .collect();
        output::table(&["IMAGE", "USED BY"], &rows)
    }
}

/// Builds the answer from rendered objects.
pub fn list(env: &str, objects: &[serde_json::Value]) -> ImageList {
    ImageList {
        env: env.to_string(),
        images: manifests::images(objects)
            .into_iter()
            .map(|(image, users)| ImageUse {
                image,
                used_by: users.into_iter().collect(),
            })
            .collect(),
    }
}

pub async fn run(ctx: &Ctx, chart: &ChartArgs) -> anyhow::Result<()> {
    let p = prepare(ctx, chart, Duration::from_secs(300), true).await?;
    let rendered = p.helm.run(&p.helm.template_args(&p.release)).await?;
    let objects = manifests::parse(&rendered)?;
    output::print(&list(p.env.as_str(), &objects), &ctx.global)
}

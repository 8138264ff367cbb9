//! `images lock --env E --registry HOST[/PROJECT] -o FILE`: resolves every image of the
//! environment in the private registry to the digest its tag points at now, and writes a
//! values file that selects that registry and pins each component's `image.digest` — so prod
//! pulls exactly what was tested (and checkov's digest check passes without an exception).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{client, environment_images, parse_mirror};
use crate::cli::LockArgs;
use crate::cmd::Ctx;
use crate::output::{self, Render, Style};

/// One pinned image.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockedImage {
    pub image: String,
    pub digest: String,
    /// The values paths pinned (`<path>.digest`); empty for images an operator pulls by tag.
    pub values_paths: Vec<String>,
}

/// The answer of `images lock`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockReport {
    pub env: String,
    pub file: String,
    pub images: Vec<LockedImage>,
}

impl Render for LockReport {
    fn human(&self, _style: &Style) -> String {
        let rows: Vec<Vec<String>> = self
            .images
            .iter()
            .map(|i| {
                let pinned = if i.values_paths.is_empty() {
                    "(by tag: the operator pulls it)".to_string()
                } else {
                    i.values_paths.join(", ")
                };
                vec![i.image.clone(), i.digest.clone(), pinned]
            })
            .collect();
        let mut out = output::table(&["IMAGE", "DIGEST", "PINNED AT"], &rows);
        out.push_str(&format!(
            "\nwrote {}: install with -f {} (it sets global.imageRegistry too)\n",
            self.file, self.file
        ));
        out
    }
}

pub(crate) async fn run(ctx: &Ctx, args: &LockArgs) -> anyhow::Result<()> {
    let target = parse_mirror("--registry", &args.registry)?;
    let (_, list) = environment_images(ctx, &args.chart, Some(&target)).await?;
    let registry = client(Some((&target, &args.target)), &[], &[])?;
    let mut locked = Vec::new();
    let mut missing = Vec::new();
    for planned in &list.images {
        let tagged = planned.image.tagged();
        match registry.manifest(&tagged).await? {
            Some(m) => locked.push(LockedImage {
                image: tagged.to_string(),
                digest: m.digest,
                values_paths: planned.values_paths.clone(),
            }),
            None => missing.push(format!(
                "{tagged} (needed by {} in {})",
                planned.values_paths.join(", "),
                list.env
            )),
        }
    }
    if !missing.is_empty() {
        bail!(
            "not in {}: {}; run `kubectl datajump images mirror --env {} --to {}` first (nothing was written)",
            target.registry,
            missing.join(", "),
            list.env,
            args.registry
        );
    }
    let text = lock_file(&list.env, &target, &locked)?;
    std::fs::write(&args.output_file, text)
        .with_context(|| format!("writing {}", args.output_file.display()))?;
    output::print(
        &LockReport {
            env: list.env.clone(),
            file: args.output_file.display().to_string(),
            images: locked,
        },
        &ctx.global,
    )
}

/// The values file: `global.imageRegistry`/`imageProject` and every `<path>.digest`.
fn lock_file(
    env: &str,
    target: &chart_gen::model::mirror::Mirror,
    locked: &[LockedImage],
) -> anyhow::Result<String> {
    let mut root = Map::new();
    let mut global = Map::new();
    global.insert("imageRegistry".into(), Value::from(target.registry.clone()));
    global.insert(
        "imageProject".into(),
        Value::from(target.project().unwrap_or_default()),
    );
    root.insert("global".into(), Value::Object(global));
    let mut by_operator: BTreeMap<&str, &str> = BTreeMap::new();
    for image in locked {
        if image.values_paths.is_empty() {
            by_operator.insert(&image.image, &image.digest);
        }
        for path in &image.values_paths {
            let mut node = &mut root;
            for key in path.split('.') {
                node = node
                    .entry(key.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .context("values path through a non-object")?;
            }
            node.insert("digest".into(), Value::from(image.digest.clone()));
        }
    }
    let mut text = format!(
        "# Written by `kubectl datajump images lock --env {env} --registry {}`: every image of\n# {env} pinned to the digest its tag had in that registry. Pass it with -f after the\n# environment's values.\n",
        target.registry
    );
    for (image, digest) in by_operator {
        let _ = writeln!(
            text,
            "# pulled by an operator by tag (no digest field): {image} was {digest}"
        );
    }
    text.push_str(&serde_yaml::to_string(&Value::Object(root))?);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_registry_and_digests_at_their_paths() {
        let target = chart_gen::model::mirror::Mirror::parse("h:5000/dj").unwrap();
        let d = format!("sha256:{}", "a".repeat(64));
        let text = lock_file(
            "prod",
            &target,
            &[
                LockedImage {
                    image: "h:5000/dj/web:1".into(),
                    digest: d.clone(),
                    values_paths: vec!["web.image".into(), "kafka.operator.image".into()],
                },
                LockedImage {
                    image: "h:5000/dj/community-operator:9".into(),
                    digest: d.clone(),
                    values_paths: vec![],
                },
            ],
        )
        .unwrap();
        let v: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["global"]["imageRegistry"], "h:5000");
        assert_eq!(v["global"]["imageProject"], "dj");
        assert_eq!(v["web"]["image"]["digest"], d.as_str());
        assert_eq!(v["kafka"]["operator"]["image"]["digest"], d.as_str());
        assert!(text.contains("community-operator:9 was sha256:"), "{text}");
    }
}

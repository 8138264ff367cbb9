//! Copying one image from a source registry to a target registry through the distribution API:
//! manifests byte for byte (digests unchanged), blobs streamed from source to target (never a
//! whole layer in memory) and skipped when the target has them, platform manifests pushed by
//! digest and the tag written last — so an interrupted copy never leaves a tag pointing at
//! incomplete content, and running it again copies only what is missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use chart_gen::model::mirror::ImageRef;
use futures::TryStreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::manifest::BlobRef;
use super::{Manifest, ManifestKind, Registry, RegistryError};

/// `--source-mirror FROM=TO[/PREFIX]` (repeatable): read images of registry FROM from TO
/// instead, as containerd's registry mirrors do — a pull-through cache, or a local upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceMirrors(Vec<(String, String)>);

impl SourceMirrors {
    /// Parses `FROM=TO` pairs.
    pub(crate) fn parse(pairs: &[String]) -> Result<Self, RegistryError> {
        let mut mirrors = Vec::new();
        for pair in pairs {
            let (from, to) = pair
                .split_once('=')
                .filter(|(f, t)| !f.is_empty() && !t.is_empty() && !f.contains('/'))
                .ok_or_else(|| {
                    RegistryError::Invalid(format!(
                        "--source-mirror {pair:?}: expected FROM=TO[/PREFIX], e.g. docker.io=cache.example.com/dockerhub"
                    ))
                })?;
            mirrors.push((from.to_string(), to.trim_end_matches('/').to_string()));
        }
        Ok(Self(mirrors))
    }

    /// The hosts images are read from instead.
    pub(crate) fn hosts(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .map(|(_, to)| to.split('/').next().unwrap_or(to))
    }

    /// Where to read `upstream` from.
    pub(crate) fn apply(&self, upstream: &ImageRef) -> ImageRef {
        let Some((_, to)) = self.0.iter().find(|(from, _)| *from == upstream.registry) else {
            return upstream.clone();
        };
        let (registry, prefix) = to.split_once('/').unwrap_or((to, ""));
        let repository = if prefix.is_empty() {
            upstream.repository.clone()
        } else {
            format!("{prefix}/{}", upstream.repository)
        };
        ImageRef {
            registry: registry.to_string(),
            repository,
            ..upstream.clone()
        }
    }
}

/// `--platform os/arch[,…]`, or every platform an index has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Platforms {
    /// Copy every manifest of an index (its digest stays the same).
    #[default]
    All,
    /// Only these (`linux/amd64`, `linux/arm64/v8`); an index gets a new digest.
    Only(Vec<String>),
}

impl Platforms {
    /// Parses the comma-separated `--platform` values (empty: all).
    pub(crate) fn parse(values: &[String]) -> Result<Self, RegistryError> {
        let list: Vec<String> = values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        if list.is_empty() {
            return Ok(Self::All);
        }
        for p in &list {
            let parts = p.split('/').count();
            if !(2..=3).contains(&parts) || p.split('/').any(str::is_empty) {
                return Err(RegistryError::Invalid(format!(
                    "--platform {p:?}: expected os/architecture[/variant], e.g. linux/amd64"
                )));
            }
        }
        Ok(Self::Only(list))
    }

    pub(crate) fn accepts(&self, platform: &str) -> bool {
        match self {
            Self::All => true,
            // `linux/arm64` selects `linux/arm64/v8` too, as docker pull does.
            Self::Only(list) => list
                .iter()
                .any(|p| platform == p || platform.starts_with(&format!("{p}/"))),
        }
    }
}

/// How copies run.
#[derive(Debug, Clone)]
pub(crate) struct CopyOptions {
    /// Which platforms of an index to copy.
    pub platforms: Platforms,
    /// Images, and blob transfers, at once.
    pub jobs: usize,
    /// Holds the blob transfers to `jobs` across every image being copied.
    transfers: Arc<Semaphore>,
}

impl CopyOptions {
    /// `jobs` blob transfers at once.
    pub(crate) fn new(platforms: Platforms, jobs: usize) -> Self {
        let jobs = jobs.max(1);
        Self {
            platforms,
            jobs,
            transfers: Arc::new(Semaphore::new(jobs)),
        }
    }
}

/// One image to copy: read from `source`, written to `target` (a tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ImageCopy {
    /// Where the bytes come from (after `--source-mirror`).
    pub source: ImageRef,
    /// Where they go.
    pub target: ImageRef,
}

/// What one copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CopyOutcome {
    /// The digest the target's tag now points at.
    pub digest: String,
    /// The tag already pointed at that digest: nothing was read or written.
    pub up_to_date: bool,
    /// Blobs uploaded.
    pub blobs_copied: usize,
    /// Blobs the target already had.
    pub blobs_skipped: usize,
    /// Bytes uploaded.
    pub bytes_copied: u64,
    /// Manifests written (platform manifests and the tagged one).
    pub manifests_written: usize,
}

#[derive(Default)]
struct Tally {
    copied: AtomicUsize,
    skipped: AtomicUsize,
    bytes: AtomicU64,
}

/// Copies one image (every platform `options` selects); `on_bytes` hears of every chunk
/// uploaded (for a progress bar).
pub(crate) async fn copy_image(
    registry: &Registry,
    job: &ImageCopy,
    options: &CopyOptions,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<CopyOutcome, RegistryError> {
    let source = registry
        .manifest(&job.source)
        .await?
        .ok_or_else(|| RegistryError::NotFound {
            what: job.source.to_string(),
        })?;
    let top = source.only_platforms(|p| options.platforms.accepts(p))?;
    if let Some(existing) = registry.manifest(&job.target.tagged()).await?
        && existing.digest == top.digest
    {
        return Ok(CopyOutcome {
            digest: top.digest,
            up_to_date: true,
            ..CopyOutcome::default()
        });
    }
    let tally = Tally::default();
    let mut manifests_written = 0;
    match top.kind()? {
        ManifestKind::Index(children) => {
            for child in children
                .iter()
                .filter(|c| options.platforms.accepts(&c.platform))
            {
                let at = |image: &ImageRef| ImageRef {
                    digest: Some(child.digest.clone()),
                    ..image.clone()
                };
                let manifest = registry.manifest(&at(&job.source)).await?.ok_or_else(|| {
                    RegistryError::NotFound {
                        what: at(&job.source).to_string(),
                    }
                })?;
                copy_blobs(registry, job, &manifest, options, &tally, on_bytes).await?;
                registry.push_manifest(&at(&job.target), &manifest).await?;
                manifests_written += 1;
            }
        }
        ManifestKind::Image { .. } => {
            copy_blobs(registry, job, &top, options, &tally, on_bytes).await?;
        }
    }
    // Last: only now does the tag point at the copy.
    registry.push_manifest(&job.target.tagged(), &top).await?;
    manifests_written += 1;
    Ok(CopyOutcome {
        digest: top.digest,
        up_to_date: false,
        blobs_copied: tally.copied.into_inner(),
        blobs_skipped: tally.skipped.into_inner(),
        bytes_copied: tally.bytes.into_inner(),
        manifests_written,
    })
}

async fn copy_blobs(
    registry: &Registry,
    job: &ImageCopy,
    manifest: &Manifest,
    options: &CopyOptions,
    tally: &Tally,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<(), RegistryError> {
    let ManifestKind::Image { config, layers } = manifest.kind()? else {
        return Err(RegistryError::Invalid(format!(
            "{}: an index inside an index is not supported",
            job.source
        )));
    };
    let blobs: Vec<BlobRef> = std::iter::once(config).chain(layers).collect();
    futures::stream::iter(blobs.iter().map(Ok))
        .try_for_each_concurrent(None, |blob| async move {
            let _permit = options
                .transfers
                .acquire()
                .await
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
            if registry.has_blob(&job.target, &blob.digest).await? {
                tally.skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let stream = registry.blob(&job.source, &blob.digest).await?;
            let sent = Arc::new(AtomicU64::new(0));
            let counter = Arc::clone(&sent);
            let stream = stream.inspect_ok(move |chunk| {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            });
            // The stream must be 'static, so it counts into an atomic; progress hears of the
            // blob once its upload has committed.
            registry
                .push_blob(&job.target, &blob.digest, blob.size, stream)
                .await?;
            let bytes = sent.load(Ordering::Relaxed);
            on_bytes(bytes);
            tally.copied.fetch_add(1, Ordering::Relaxed);
            tally.bytes.fetch_add(bytes, Ordering::Relaxed);
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_mirrors_rewrite_the_registry_and_add_a_prefix() {
        let m = SourceMirrors::parse(&[
            "docker.io=127.0.0.1:5000/hub".into(),
            "quay.io=cache.local".into(),
        ])
        .unwrap();
        let up = ImageRef::new("docker.io", "library/mysql", "8");
        assert_eq!(
            m.apply(&up).to_string(),
            "127.0.0.1:5000/hub/library/mysql:8"
        );
        let q = ImageRef::new("quay.io", "strimzi/kafka", "1");
        assert_eq!(m.apply(&q).to_string(), "cache.local/strimzi/kafka:1");
        let other = ImageRef::new("ghcr.io", "a/b", "1");
        assert_eq!(m.apply(&other), other);
        for bad in ["docker.io", "=x", "a/b=c", "x="] {
            assert!(SourceMirrors::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn platforms_select_variants_too() {
        let p = Platforms::parse(&["linux/amd64,linux/arm64".into()]).unwrap();
        assert!(p.accepts("linux/amd64"));
        assert!(p.accepts("linux/arm64/v8"));
        assert!(!p.accepts("linux/arm"));
        assert!(!p.accepts("unknown"));
        assert!(Platforms::All.accepts("unknown"));
        assert_eq!(Platforms::parse(&[]).unwrap(), Platforms::All);
        assert!(Platforms::parse(&["linux".into()]).is_err());
    }
}

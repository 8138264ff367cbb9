//! The archive of an air-gapped transfer: one tar holding an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) with every image of an environment and the chart, plus
//! `datajump-images.json`, the names and digests `images load` needs. The small documents come
//! first, so a reader knows what every blob is for before it meets it. Blobs are streamed in and
//! out (never a whole layer in memory); `verify` hashes every blob before `load` pushes anything.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chart_gen::model::mirror::{ImageRef, Mirror};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::copy::Platforms;
use super::manifest::sha256_digest;
use super::{ChartArtifact, Manifest, ManifestKind, Registry, RegistryError};

/// The file in the archive that names its images.
pub(crate) const CONTENTS: &str = "datajump-images.json";
const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchiveContents {
    /// The environment it was saved for.
    pub env: String,
    /// The chart: name, version and the digest of its manifest.
    pub chart: ArchiveChart,
    /// Every image.
    pub images: Vec<ArchiveImage>,
}

/// The chart in an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchiveChart {
    pub name: String,
    pub version: String,
    pub manifest: String,
    /// Its config and content blobs.
    pub blobs: Vec<String>,
}

/// One image in an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchiveImage {
    /// Where it came from (the name a mirror maps).
    pub upstream: String,
    /// The digest of its (possibly platform-filtered) top manifest.
    pub manifest: String,
    /// The platform manifests an index points at (empty for a single image).
    pub children: Vec<String>,
    /// Every config and layer blob, of every platform.
    pub blobs: Vec<String>,
}

/// One image to save: read from `source`, named by `upstream`.
#[derive(Debug, Clone)]
pub(crate) struct SaveImage {
    pub source: ImageRef,
    pub upstream: ImageRef,
}

/// The manifests of one image, read from its registry.
struct Fetched {
    entry: ArchiveImage,
    manifests: Vec<Manifest>,
    /// Blob digest → size.
    blobs: BTreeMap<String, u64>,
    source: ImageRef,
}

async fn fetch(
    registry: &Registry,
    image: &SaveImage,
    platforms: &Platforms,
) -> Result<Fetched, RegistryError> {
    let top = registry
        .manifest(&image.source)
        .await?
        .ok_or_else(|| RegistryError::NotFound {
            what: image.source.to_string(),
        })?
        .only_platforms(|p| platforms.accepts(p))?;
    let mut manifests = vec![top.clone()];
    let mut children = Vec::new();
    if let ManifestKind::Index(list) = top.kind()? {
        for child in list.iter().filter(|c| platforms.accepts(&c.platform)) {
            let at = ImageRef {
                digest: Some(child.digest.clone()),
                ..image.source.clone()
            };
            let manifest =
                registry
                    .manifest(&at)
                    .await?
                    .ok_or_else(|| RegistryError::NotFound {
                        what: at.to_string(),
                    })?;
            children.push(manifest.digest.clone());
            manifests.push(manifest);
        }
    }
    let mut blobs = BTreeMap::new();
    for manifest in &manifests {
        if let ManifestKind::Image { config, layers } = manifest.kind()? {
            for blob in std::iter::once(config).chain(layers) {
                blobs.insert(blob.digest, blob.size);
            }
        }
    }
    Ok(Fetched {
        entry: ArchiveImage {
            upstream: image.upstream.to_string(),
            manifest: top.digest.clone(),
            children,
            blobs: blobs.keys().cloned().collect(),
        },
        manifests,
        blobs,
        source: image.source.clone(),
    })
}

/// A tar file written front to back, under a temporary name until `finish` renames it.
struct TarWriter {
    out: BufWriter<tokio::fs::File>,
    partial: PathBuf,
    path: PathBuf,
}

impl TarWriter {
    async fn create(path: &Path) -> Result<Self, RegistryError> {
        let partial = path.with_extension("partial");
        let file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| RegistryError::Invalid(format!("{}: {e}", partial.display())))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, file),
            partial,
            path: path.to_path_buf(),
        })
    }

    fn io(&self, e: std::io::Error) -> RegistryError {
        RegistryError::Invalid(format!("writing {}: {e}", self.partial.display()))
    }

    async fn header(&mut self, name: &str, size: u64) -> Result<(), RegistryError> {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(name)
            .map_err(|e| RegistryError::Invalid(format!("tar entry {name}: {e}")))?;
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let result = self.out.write_all(header.as_bytes()).await;
        result.map_err(|e| self.io(e))
    }

    async fn pad(&mut self, size: u64) -> Result<(), RegistryError> {
        let rest = (512 - size % 512) % 512;
        let result = self.out.write_all(&vec![0; rest as usize]).await;
        result.map_err(|e| self.io(e))
    }

    async fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        self.header(name, bytes.len() as u64).await?;
        let result = self.out.write_all(bytes).await;
        result.map_err(|e| self.io(e))?;
        self.pad(bytes.len() as u64).await
    }

    async fn stream(
        &mut self,
        name: &str,
        size: u64,
        stream: impl Stream<Item = Result<Bytes, std::io::Error>>,
    ) -> Result<u64, RegistryError> {
        self.header(name, size).await?;
        let mut stream = std::pin::pin!(stream);
        let mut written = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Other {
                what: name.to_string(),
                detail: e.to_string(),
            })?;
            written += chunk.len() as u64;
            let result = self.out.write_all(&chunk).await;
            result.map_err(|e| self.io(e))?;
        }
        if written != size {
            return Err(RegistryError::Invalid(format!(
                "{name}: the registry sent {written} bytes, its manifest says {size}"
            )));
        }
        self.pad(size).await?;
        Ok(written)
    }

    async fn finish(mut self) -> Result<(), RegistryError> {
        let result = self.out.write_all(&[0; 1024]).await;
        result.map_err(|e| self.io(e))?;
        let result = self.out.flush().await;
        result.map_err(|e| self.io(e))?;
        self.out
            .get_mut()
            .sync_all()
            .await
            .map_err(|e| RegistryError::Invalid(format!("{}: {e}", self.partial.display())))?;
        tokio::fs::rename(&self.partial, &self.path)
            .await
            .map_err(|e| RegistryError::Invalid(format!("{}: {e}", self.path.display())))
    }
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Writes the archive: every image (read from its source) and the chart. `on_bytes` hears of
/// every blob written. The file appears only when complete.
pub(crate) async fn write_archive(
    registry: &Registry,
    path: &Path,
    env: &str,
    images: &[SaveImage],
    platforms: &Platforms,
    chart: &ChartArtifact,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<ArchiveContents, RegistryError> {
    let mut fetched = Vec::new();
    for image in images {
        fetched.push(fetch(registry, image, platforms).await?);
    }
    let contents = ArchiveContents {
        env: env.to_string(),
        chart: ArchiveChart {
            name: chart.name.clone(),
            version: chart.version.clone(),
            manifest: chart.manifest.digest.clone(),
            blobs: vec![sha256_digest(&chart.config), sha256_digest(&chart.content)],
        },
        images: fetched.iter().map(|f| f.entry.clone()).collect(),
    };
    let mut index_entries: Vec<serde_json::Value> = fetched
        .iter()
        .map(|f| descriptor(&f.manifests[0], &f.entry.upstream))
        .collect();
    index_entries.push(descriptor(
        &chart.manifest,
        &format!("{}:{}", chart.name, chart.tag()),
    ));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::manifest::OCI_INDEX,
        "manifests": index_entries,
    });
    let mut tar = TarWriter::create(path).await?;
    tar.file("oci-layout", LAYOUT).await?;
    tar.file(CONTENTS, &to_json(&contents)).await?;
    tar.file("index.json", &to_json(&index)).await?;
    let mut written: BTreeSet<String> = BTreeSet::new();
    let documents = fetched
        .iter()
        .flat_map(|f| {
            f.manifests
                .iter()
                .map(|m| (m.digest.clone(), m.bytes.clone()))
        })
        .chain([
            (chart.manifest.digest.clone(), chart.manifest.bytes.clone()),
            (sha256_digest(&chart.config), chart.config.clone()),
            (sha256_digest(&chart.content), chart.content.clone()),
        ]);
    for (digest, bytes) in documents {
        if written.insert(digest.clone()) {
            tar.file(&blob_path(&digest), &bytes).await?;
        }
    }
    for f in &fetched {
        for (digest, size) in &f.blobs {
            if !written.insert(digest.clone()) {
                continue;
            }
            let stream = registry.blob(&f.source, digest).await?;
            let n = tar.stream(&blob_path(digest), *size, stream).await?;
            on_bytes(n);
        }
    }
    tar.finish().await?;
    Ok(contents)
}

fn descriptor(manifest: &Manifest, name: &str) -> serde_json::Value {
    serde_json::json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.bytes.len(),
        "annotations": {REF_NAME: name},
    })
}

/// Our own types always serialize.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

/// An archive that checked out: what it holds and its small documents (manifests, the chart's
/// config and content) by digest.
#[derive(Debug)]
pub(crate) struct VerifiedArchive {
    pub contents: ArchiveContents,
    pub documents: BTreeMap<String, Bytes>,
}

fn archive_error(path: &Path, msg: impl std::fmt::Display) -> RegistryError {
    RegistryError::Invalid(format!("{}: {msg}", path.display()))
}

/// Reads the whole archive once, hashing every blob: a damaged blob is named with the images
/// that use it, and nothing is pushed. Blocking I/O (run it off the async threads).
pub(crate) fn verify_archive(path: &Path) -> Result<VerifiedArchive, RegistryError> {
    let file = std::fs::File::open(path).map_err(|e| archive_error(path, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut contents: Option<ArchiveContents> = None;
    let mut documents = BTreeMap::new();
    let mut blobs = BTreeMap::new();
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let entries = archive.entries().map_err(|e| archive_error(path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_error(path, e))?;
        let name = entry
            .path()
            .map_err(|e| archive_error(path, e))?
            .to_string_lossy()
            .into_owned();
        if name == CONTENTS {
            let mut text = Vec::new();
            entry
                .read_to_end(&mut text)
                .map_err(|e| archive_error(path, e))?;
            let read: ArchiveContents = serde_json::from_slice(&text)
                .map_err(|e| archive_error(path, format!("{CONTENTS}: {e}")))?;
            keep.insert(read.chart.manifest.clone());
            keep.extend(read.chart.blobs.iter().cloned());
            for image in &read.images {
                keep.insert(image.manifest.clone());
                keep.extend(image.children.iter().cloned());
            }
            contents = Some(read);
            continue;
        }
        let Some(hex) = name.strip_prefix("blobs/sha256/") else {
            continue;
        };
        let claimed = format!("sha256:{hex}");
        let small = entry.size() <= 4 << 20;
        let mut hasher = Sha256::new();
        let mut kept = Vec::new();
        let mut buf = vec![0; 1 << 16];
        let mut size = 0;
        loop {
            let n = entry.read(&mut buf).map_err(|e| archive_error(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            if small {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != claimed {
            let users = contents
                .as_ref()
                .map(|c| users_of(c, &claimed))
                .unwrap_or_default();
            return Err(archive_error(
                path,
                format!(
                    "blob {claimed} is damaged (its bytes hash to {actual}){users}; nothing was pushed — copy the file again"
                ),
            ));
        }
        blobs.insert(claimed.clone(), size);
        // Manifests and the chart's blobs are kept: the contents come before any blob and name
        // them.
        if small && keep.contains(&claimed) {
            documents.insert(claimed, Bytes::from(kept));
        }
    }
    let contents = contents.ok_or_else(|| {
        archive_error(
            path,
            format!("no {CONTENTS}: not an archive `kubectl datajump images save` wrote"),
        )
    })?;
    let missing: Vec<String> = contents
        .images
        .iter()
        .flat_map(|i| {
            i.blobs
                .iter()
                .chain(&i.children)
                .chain(std::iter::once(&i.manifest))
                .filter(|d| !blobs.contains_key(*d))
                .map(move |d| format!("{d} of {}", i.upstream))
        })
        .collect();
    if !missing.is_empty() {
        return Err(archive_error(
            path,
            format!("blobs missing: {}; nothing was pushed", missing.join(", ")),
        ));
    }
    Ok(VerifiedArchive {
        contents,
        documents,
    })
}

fn users_of(contents: &ArchiveContents, digest: &str) -> String {
    let mut users: Vec<String> = contents
        .images
        .iter()
        .filter(|i| {
            std::iter::once(&i.manifest)
                .chain(&i.children)
                .chain(&i.blobs)
                .any(|d| d == digest)
        })
        .map(|i| i.upstream.clone())
        .collect();
    let chart = &contents.chart;
    if chart.manifest == digest || chart.blobs.iter().any(|b| b == digest) {
        users.push(format!("the chart {} {}", chart.name, chart.version));
    }
    if users.is_empty() {
        String::new()
    } else {
        format!(" — it belongs to {}", users.join(", "))
    }
}

/// What `load` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadOutcome {
    /// Every image written.
    pub images: Vec<LoadedImage>,
    /// The chart reference (`oci://…`) and version.
    pub chart: String,
    pub blobs_copied: usize,
    pub blobs_skipped: usize,
    pub bytes_copied: u64,
}

/// One image `load` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LoadedImage {
    pub image: ImageRef,
    pub digest: String,
}

/// One blob read off the archive by the reader thread, its bytes following on `chunks`.
struct BlobEntry {
    digest: String,
    size: u64,
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

/// Reads the archive's blobs in file order on a blocking thread, each as a bounded stream of
/// chunks (a few at a time in memory), skipping those `wanted` does not name.
fn read_blobs(
    path: PathBuf,
    wanted: BTreeSet<String>,
) -> tokio::sync::mpsc::Receiver<Result<BlobEntry, std::io::Error>> {
    let (entries_tx, entries_rx) = tokio::sync::mpsc::channel(1);
    tokio::task::spawn_blocking(move || {
        let send_err = |e: std::io::Error| {
            let _ = entries_tx.blocking_send(Err(e));
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return send_err(e),
        };
        let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => return send_err(e),
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => return send_err(e),
            };
            let name = entry.path().map(|p| p.to_string_lossy().into_owned());
            let Some(digest) = name
                .ok()
                .and_then(|n| {
                    n.strip_prefix("blobs/sha256/")
                        .map(|h| format!("sha256:{h}"))
                })
                .filter(|d| wanted.contains(d))
            else {
                continue;
            };
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let blob = BlobEntry {
                digest,
                size: entry.size(),
                chunks: rx,
            };
            if entries_tx.blocking_send(Ok(blob)).is_err() {
                return;
            }
            let mut buf = vec![0; 1 << 16];
            loop {
                match entry.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        // A receiver that has gone (the blob was skipped) drains the entry.
                        let _ = tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])));
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
        }
    });
    entries_rx
}

/// Pushes a verified archive into `target`: every blob to every repository that needs it
/// (uploaded once, mounted into the others), platform manifests by digest, then each image's
/// tag and the chart — tags last.
pub(crate) async fn load_archive(
    registry: &Registry,
    path: &Path,
    verified: &VerifiedArchive,
    target: &Mirror,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<LoadOutcome, RegistryError> {
    let contents = &verified.contents;
    let chart_repo = ImageRef {
        registry: target.registry.clone(),
        repository: target.repository_for(&contents.chart.name),
        tag: contents.chart.version.replace('+', "_"),
        digest: None,
    };
    let chart_manifest = document(verified, &contents.chart.manifest, path)?;
    let ManifestKind::Image { config, layers } = chart_manifest.kind()? else {
        return Err(archive_error(path, "the chart's manifest is an index"));
    };
    let mut needed: BTreeMap<String, Vec<ImageRef>> = BTreeMap::new();
    for d in std::iter::once(config.digest).chain(layers.into_iter().map(|l| l.digest)) {
        needed.entry(d).or_default().push(chart_repo.clone());
    }
    let mut targets = Vec::new();
    for image in &contents.images {
        let upstream = ImageRef::parse(&image.upstream)
            .map_err(|e| archive_error(path, format!("{CONTENTS}: {e}")))?;
        let to = target.reference_for(&upstream.tagged());
        for blob in &image.blobs {
            let repos = needed.entry(blob.clone()).or_default();
            if !repos.contains(&to) {
                repos.push(to.clone());
            }
        }
        targets.push((image, to));
    }
    let mut outcome = LoadOutcome::default();
    let mut entries = read_blobs(path.to_path_buf(), needed.keys().cloned().collect());
    while let Some(entry) = entries.recv().await {
        let entry = entry.map_err(|e| archive_error(path, e))?;
        let repos = needed.get(&entry.digest).cloned().unwrap_or_default();
        let mut holder: Option<&ImageRef> = None;
        let mut missing = Vec::new();
        for repo in &repos {
            if registry.has_blob(repo, &entry.digest).await? {
                holder = holder.or(Some(repo));
            } else {
                missing.push(repo);
            }
        }
        if missing.is_empty() {
            outcome.blobs_skipped += 1;
            continue;
        }
        let (first, rest) = match holder {
            Some(h) => (None, missing.iter().map(|r| (*r, h)).collect::<Vec<_>>()),
            None => (
                Some(missing[0]),
                missing[1..].iter().map(|r| (*r, missing[0])).collect(),
            ),
        };
        if let Some(repo) = first {
            let chunks = futures::stream::unfold(entry.chunks, |mut rx| async move {
                rx.recv().await.map(|chunk| (chunk, rx))
            });
            registry
                .push_blob(repo, &entry.digest, entry.size, chunks)
                .await?;
            outcome.blobs_copied += 1;
            outcome.bytes_copied += entry.size;
            on_bytes(entry.size);
        }
        for (repo, from) in rest {
            registry.mount_blob(repo, from, &entry.digest).await?;
        }
    }
    for (image, to) in targets {
        for child in &image.children {
            let manifest = document(verified, child, path)?;
            let at = ImageRef {
                digest: Some(child.clone()),
                ..to.clone()
            };
            registry.push_manifest(&at, &manifest).await?;
        }
        let top = document(verified, &image.manifest, path)?;
        registry.push_manifest(&to, &top).await?;
        outcome.images.push(LoadedImage {
            image: to,
            digest: top.digest,
        });
    }
    registry.push_manifest(&chart_repo, &chart_manifest).await?;
    outcome.chart = format!(
        "oci://{}/{} --version {}",
        chart_repo.registry, chart_repo.repository, contents.chart.version
    );
    Ok(outcome)
}

fn document(
    verified: &VerifiedArchive,
    digest: &str,
    path: &Path,
) -> Result<Manifest, RegistryError> {
    let bytes = verified
        .documents
        .get(digest)
        .ok_or_else(|| archive_error(path, format!("manifest {digest} is not in the file")))?;
    Manifest::new(bytes.clone(), None)
}

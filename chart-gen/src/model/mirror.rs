//! Where an image comes from and where a private registry keeps it. The chart's `datajump.image`
//! helper (with `global.imageRegistry` and `global.imageProject`) and `kubectl datajump images
//! mirror` both follow [`Mirror::reference_for`]; a chart test renders every environment in both
//! layouts and compares every pod's image with it, so the two cannot drift apart.
//!
//! Harbor treats the first path segment of a repository as a *project*, which must exist before
//! anything is pushed into it. So a mirror either keeps the upstream paths (`library/mysql` stays
//! `library/mysql`: the projects `library`, `strimzi`, … must exist) or puts every image into one
//! project (`global.imageProject: datajump` → `<registry>/datajump/mysql`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// An image reference split into its parts: `registry/repository:tag[@digest]`. Serialized as
/// that one string, as users and scripts write image references.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    /// Registry host (and port), e.g. `docker.io` or `harbor.example.com:8443`.
    pub registry: String,
    /// Path inside the registry, e.g. `library/mysql`.
    pub repository: String,
    /// Tag, e.g. `8.4.3`.
    pub tag: String,
    /// Content digest (`sha256:…`) when the reference pins one.
    pub digest: Option<String>,
}

impl Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A reference that is not `registry/repository:tag[@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {reference:?}: {reason}")]
pub struct ImageRefError {
    /// What was given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ImageRef {
    /// Builds a reference from its parts.
    pub fn new(registry: &str, repository: &str, tag: &str) -> Self {
        Self {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: None,
        }
    }

    /// Parses a fully qualified reference, as the chart renders them: the registry is always
    /// named (a first segment with a dot or a colon, or `localhost`) and a tag is required.
    pub fn parse(reference: &str) -> Result<Self, ImageRefError> {
        let bad = |reason: &str| ImageRefError {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => {
                if !is_digest(digest) {
                    return Err(bad("the digest is not sha256:<64 hex digits>"));
                }
                (name, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        let (registry, rest) = name
            .split_once('/')
            .ok_or_else(|| bad("no registry (expected registry/repository:tag)"))?;
        if !is_registry_host(registry) {
            return Err(bad(
                "the first segment is not a registry host (expected registry/repository:tag)",
            ));
        }
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, tag),
            _ => return Err(bad("no tag (expected registry/repository:tag)")),
        };
        if repository.is_empty() || repository.split('/').any(str::is_empty) {
            return Err(bad("the repository has an empty path segment"));
        }
        if tag.is_empty() {
            return Err(bad("the tag is empty"));
        }
        Ok(Self {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest,
        })
    }

    /// The same image without its digest (what a tag resolves).
    pub fn tagged(&self) -> Self {
        Self {
            digest: None,
            ..self.clone()
        }
    }

    /// The repository's last path segment (`library/mysql` → `mysql`).
    pub fn short_name(&self) -> &str {
        last_segment(&self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)?;
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A first path segment container runtimes read as a registry host, not a Docker Hub user.
fn is_registry_host(s: &str) -> bool {
    !s.is_empty() && (s.contains('.') || s.contains(':') || s == "localhost")
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How a private registry lays out the images it mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MirrorLayout {
    /// Upstream paths kept: `docker.io/library/mysql` → `<registry>/library/mysql`.
    KeepPaths,
    /// Every image in one project: `docker.io/library/mysql` → `<registry>/<project>/mysql`.
    Project(String),
}

/// A private registry (Harbor) holding copies of every image: `global.imageRegistry` and
/// `global.imageProject`, or the `--to HOST[/PROJECT]` of `kubectl datajump images mirror`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mirror {
    /// Registry host (and port).
    pub registry: String,
    /// Where images go inside it.
    pub layout: MirrorLayout,
}

/// A `HOST[/PROJECT]` that names no registry or an invalid project.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry {given:?}: {reason}")]
pub struct MirrorError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Mirror {
    /// The mirror the chart's `global` values select, `None` when `global.imageRegistry` is
    /// empty (every image then comes from its own registry).
    pub fn from_global(image_registry: &str, image_project: &str) -> Option<Self> {
        (!image_registry.is_empty()).then(|| Self::new(image_registry, image_project))
    }

    fn new(registry: &str, project: &str) -> Self {
        Self {
            registry: registry.to_string(),
            layout: if project.is_empty() {
                MirrorLayout::KeepPaths
            } else {
                MirrorLayout::Project(project.to_string())
            },
        }
    }

    /// Parses `HOST[/PROJECT]` (an `oci://` prefix is accepted and dropped).
    pub fn parse(given: &str) -> Result<Self, MirrorError> {
        let bad = |reason: &str| MirrorError {
            given: given.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = given.strip_prefix("oci://").unwrap_or(given);
        let trimmed = trimmed.trim_end_matches('/');
        let (registry, project) = match trimmed.split_once('/') {
            Some((registry, project)) => (registry, project),
            None => (trimmed, ""),
        };
        if !is_registry_host(registry) {
            return Err(bad(
                "expected HOST[:PORT][/PROJECT], the host with a dot or a port (or localhost) as container runtimes read it",
            ));
        }
        if !project.is_empty() && !is_project_name(project) {
            return Err(bad(
                "the project must be one lowercase path segment (letters, digits, and . _ - between them), e.g. harbor.example.com/datajump",
            ));
        }
        Ok(Self::new(registry, project))
    }

    /// The project every image goes into, if the layout puts them in one.
    pub fn project(&self) -> Option<&str> {
        match &self.layout {
            MirrorLayout::KeepPaths => None,
            MirrorLayout::Project(p) => Some(p),
        }
    }

    /// The repository an upstream repository has in this registry.
    pub fn repository_for(&self, upstream_repository: &str) -> String {
        match &self.layout {
            MirrorLayout::KeepPaths => upstream_repository.to_string(),
            MirrorLayout::Project(project) => {
                format!("{project}/{}", last_segment(upstream_repository))
            }
        }
    }

    /// The reference an upstream image has in this registry (tag and digest kept).
    pub fn reference_for(&self, upstream: &ImageRef) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository_for(&upstream.repository),
            tag: upstream.tag.clone(),
            digest: upstream.digest.clone(),
        }
    }

    /// The Harbor projects that must exist before these images are pushed: the first path
    /// segment of every mirrored repository.
    pub fn projects<'a>(&self, upstreams: impl IntoIterator<Item = &'a ImageRef>) -> Vec<String> {
        let set: BTreeSet<String> = upstreams
            .into_iter()
            .map(|u| {
                let repo = self.repository_for(&u.repository);
                repo.split('/').next().unwrap_or_default().to_string()
            })
            .collect();
        set.into_iter().collect()
    }

    /// Two upstream images that would land on the same reference here (possible only in the
    /// one-project layout: `library/redis:7` and `bitnami/redis:7` both become `<p>/redis:7`).
    pub fn collisions<'a>(
        &self,
        upstreams: impl IntoIterator<Item = &'a ImageRef>,
    ) -> Vec<(ImageRef, ImageRef)> {
        let mut seen: BTreeMap<ImageRef, &ImageRef> = BTreeMap::new();
        let mut clashes = Vec::new();
        for upstream in upstreams {
            let target = self.reference_for(&upstream.tagged());
            match seen.get(&target) {
                Some(first) if first.tagged() != upstream.tagged() => {
                    clashes.push(((*first).clone(), upstream.clone()));
                }
                Some(_) => {}
                None => {
                    seen.insert(target, upstream);
                }
            }
        }
        clashes
    }
}

/// Harbor's project-name rule (lowercase, digits and `._-` between them).
fn is_project_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
}

/// One image the values name: where in the values it is (a dotted path to its `image` object,
/// which has the `digest` field a lock file pins) and its upstream reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValuesImage {
    /// Dotted path to the image object, e.g. `mysql.embedded.image`; `None` for an image an
    /// operator pulls on its own (it has no digest field to pin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_path: Option<String>,
    /// Where it comes from (the image's own registry, not `global.imageRegistry`).
    pub upstream: ImageRef,
}

/// Every image the (merged) values name, in values order: each object with the shape of the
/// model's `Image` (`registry`, `repository`, `tag`, `pullPolicy`), and the images the MySQL
/// Operator pulls for an `InnoDBCluster` (server, router and its sidecar), which the values
/// name only by repository and version. Components that are turned off are included; match
/// against a render to keep only what an environment runs.
pub fn values_images(values: &Value) -> Vec<ValuesImage> {
    let mut found = Vec::new();
    walk(values, &mut Vec::new(), &mut found);
    found.extend(mysql_operator_values_images(values));
    found
}

fn walk(value: &Value, path: &mut Vec<String>, found: &mut Vec<ValuesImage>) {
    match value {
        Value::Object(map) => {
            if let Some(upstream) = image_object(map) {
                found.push(ValuesImage {
                    values_path: Some(path.join(".")),
                    upstream,
                });
                return;
            }
            for (key, child) in map {
                path.push(key.clone());
                walk(child, path, found);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(i.to_string());
                walk(child, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

fn image_object(map: &serde_json::Map<String, Value>) -> Option<ImageRef> {
    let s = |k: &str| map.get(k).and_then(Value::as_str);
    let (registry, repository, tag) = (s("registry")?, s("repository")?, s("tag")?);
    map.get("pullPolicy")?;
    let mut image = ImageRef::new(registry, repository, tag);
    image.digest = s("digest").filter(|d| !d.is_empty()).map(str::to_string);
    Some(image)
}

/// The upstream host of the MySQL Operator's images when `imageRepository` is empty.
pub const MYSQL_OPERATOR_DEFAULT_REPOSITORY: &str = "container-registry.oracle.com/mysql";

/// The images the MySQL Operator pulls for an InnoDBCluster: `<repo>/community-server:<version>`,
/// `<repo>/community-router:<version>` and its sidecar `<repo>/community-operator:<operator>`.
/// `image_repository` is `host/path` as the InnoDBCluster's `spec.imageRepository` takes it.
pub fn mysql_operator_images(
    image_repository: &str,
    version: &str,
    operator_version: &str,
) -> Vec<(ImageRef, &'static str)> {
    let repo = if image_repository.is_empty() {
        MYSQL_OPERATOR_DEFAULT_REPOSITORY
    } else {
        image_repository
    };
    let (registry, path) = repo.split_once('/').unwrap_or((repo, ""));
    let at = |name: &str, tag: &str| {
        let repository = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}/{name}")
        };
        ImageRef::new(registry, &repository, tag)
    };
    let mut images = Vec::new();
    if !version.is_empty() {
        images.push((at("community-server", version), "server"));
        images.push((at("community-router", version), "router"));
    }
    if !operator_version.is_empty() {
        images.push((at("community-operator", operator_version), "sidecar"));
    }
    images
}

fn mysql_operator_values_images(values: &Value) -> Vec<ValuesImage> {
    let mysql = values.get("mysql");
    let s = |p: &str| {
        mysql
            .and_then(|m| m.pointer(p))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if s("/mode") != "operator" {
        return Vec::new();
    }
    mysql_operator_images(
        s("/operator/imageRepository"),
        s("/operator/version"),
        s("/operator/operatorVersion"),
    )
    .into_iter()
    .map(|(upstream, _)| ValuesImage {
        values_path: None,
        upstream,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_references() {
        let r = ImageRef::parse("docker.io/library/mysql:8.4.3").unwrap();
        assert_eq!(r, ImageRef::new("docker.io", "library/mysql", "8.4.3"));
        let d = format!("sha256:{}", "a".repeat(64));
        let pinned = ImageRef::parse(&format!("127.0.0.1:5000/a/b/c:1@{d}")).unwrap();
        assert_eq!(pinned.registry, "127.0.0.1:5000");
        assert_eq!(pinned.repository, "a/b/c");
        assert_eq!(pinned.digest.as_deref(), Some(d.as_str()));
        assert_eq!(pinned.to_string(), format!("127.0.0.1:5000/a/b/c:1@{d}"));
        for bad in [
            "mysql:8",
            "library/mysql:8",
            "docker.io/library/mysql",
            "docker.io//mysql:1",
            "docker.io/mysql:1@sha256:xyz",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn keep_paths_and_project_layouts() {
        let up = ImageRef::new("docker.io", "library/mysql", "8.4.3");
        let keep = Mirror::parse("harbor.local:8443").unwrap();
        assert_eq!(
            keep.reference_for(&up).to_string(),
            "harbor.local:8443/library/mysql:8.4.3"
        );
        let project = Mirror::parse("oci://harbor.local/datajump/").unwrap();
        assert_eq!(project.project(), Some("datajump"));
        assert_eq!(
            project.reference_for(&up).to_string(),
            "harbor.local/datajump/mysql:8.4.3"
        );
        let ups = [
            up.clone(),
            ImageRef::new("quay.io", "strimzi/kafka", "1"),
            ImageRef::new("docker.io", "library/redis", "7"),
        ];
        assert_eq!(keep.projects(&ups), ["library", "strimzi"]);
        assert_eq!(project.projects(&ups), ["datajump"]);
    }

    #[test]
    fn rejects_bad_targets_and_reports_collisions() {
        assert!(Mirror::parse("").is_err());
        assert!(
            Mirror::parse("harbor").is_err(),
            "a Docker Hub user, not a host"
        );
        assert!(Mirror::parse("harbor.io/Data").is_err());
        assert!(Mirror::parse("harbor.io/a/b").is_err());
        let project = Mirror::parse("harbor.io/p").unwrap();
        let a = ImageRef::new("docker.io", "library/redis", "7");
        let b = ImageRef::new("quay.io", "opstree/redis", "7");
        let c = ImageRef::new("quay.io", "opstree/redis", "8");
        assert_eq!(project.collisions([&a, &b, &c]), vec![(a.clone(), b)]);
        assert!(
            Mirror::parse("harbor.io")
                .unwrap()
                .collisions([&a, &c])
                .is_empty()
        );
    }

    #[test]
    fn finds_images_in_values_with_their_paths() {
        let values = serde_json::json!({
            "web": {"image": {"registry": "harbor", "repository": "datajump/web", "tag": "1", "pullPolicy": "Always"}},
            "list": [{"image": {"registry": "r.io", "repository": "x", "tag": "2", "pullPolicy": "Never"}}],
            "notAnImage": {"registry": "r.io", "repository": "x"},
            "mysql": {"mode": "operator", "operator": {"imageRepository": "", "version": "8.4.3", "operatorVersion": "9.1.0-2.2.2"}}
        });
        let found = values_images(&values);
        let paths: Vec<Option<&str>> = found.iter().map(|f| f.values_path.as_deref()).collect();
        assert_eq!(
            paths,
            [Some("web.image"), Some("list.0.image"), None, None, None]
        );
        assert_eq!(
            found[4].upstream.to_string(),
            "container-registry.oracle.com/mysql/community-operator:9.1.0-2.2.2"
        );
    }
}

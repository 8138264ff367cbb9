//! A manifest as the registry serves it: the exact bytes (so a copy keeps its digest), its media
//! type, and what it points at — an index's platform manifests, or an image's config and layers.

use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};

use super::RegistryError;

/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (schema 2).
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2).
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What `Accept` asks registries for.
pub(crate) const ACCEPTED: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// The sha256 digest of some bytes, as `sha256:<hex>`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One manifest, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The bytes the digest is computed over.
    pub bytes: Bytes,
    /// Its media type (from the document, else from what it holds).
    pub media_type: String,
    /// `sha256:…` of `bytes`.
    pub digest: String,
}

/// A blob an image manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRef {
    /// `sha256:…`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// A platform manifest an index points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChildRef {
    /// `sha256:…`.
    pub digest: String,
    /// `os/architecture[/variant]`, or `unknown` (attestations and other artifacts).
    pub platform: String,
}

/// What a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ManifestKind {
    /// An index (multi-platform image).
    Index(Vec<ChildRef>),
    /// One image: its config blob and its layers.
    Image {
        /// The config blob.
        config: BlobRef,
        /// The layers, in order.
        layers: Vec<BlobRef>,
    },
}

impl Manifest {
    /// A manifest from the bytes a registry (or an archive) holds; `declared` is the
    /// Content-Type or descriptor media type when known.
    pub(crate) fn new(bytes: Bytes, declared: Option<&str>) -> Result<Self, RegistryError> {
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Invalid(format!("manifest is not JSON: {e}")))?;
        let inner = value.get("mediaType").and_then(serde_json::Value::as_str);
        let media_type = match (inner, declared) {
            (Some(t), _) => t.to_string(),
            (None, Some(t)) if ACCEPTED.contains(&t) => t.to_string(),
            // OCI documents may leave mediaType out; what they hold says which one they are.
            (None, _) if value.get("manifests").is_some() => OCI_INDEX.to_string(),
            (None, _) if value.get("layers").is_some() => OCI_MANIFEST.to_string(),
            (None, _) => {
                return Err(RegistryError::Invalid(
                    "manifest is neither an image manifest nor an index".into(),
                ));
            }
        };
        if !ACCEPTED.contains(&media_type.as_str()) {
            return Err(RegistryError::Invalid(format!(
                "unsupported manifest media type {media_type} (supported: {})",
                ACCEPTED.join(", ")
            )));
        }
        let digest = sha256_digest(&bytes);
        Ok(Self {
            bytes,
            media_type,
            digest,
        })
    }

    /// Whether this is an index (multi-platform).
    pub(crate) fn is_index(&self) -> bool {
        matches!(self.media_type.as_str(), OCI_INDEX | DOCKER_LIST)
    }

    /// What the manifest points at.
    pub(crate) fn kind(&self) -> Result<ManifestKind, RegistryError> {
        let parse_err =
            |e: serde_json::Error| RegistryError::Invalid(format!("manifest {}: {e}", self.digest));
        if self.is_index() {
            let index: ImageIndex = serde_json::from_slice(&self.bytes).map_err(parse_err)?;
            Ok(ManifestKind::Index(
                index.manifests().iter().map(child_ref).collect(),
            ))
        } else {
            let manifest: ImageManifest = serde_json::from_slice(&self.bytes).map_err(parse_err)?;
            Ok(ManifestKind::Image {
                config: blob_ref(manifest.config()),
                layers: manifest.layers().iter().map(blob_ref).collect(),
            })
        }
    }

    /// An index holding only the platforms `keep` accepts (a new document, so a new digest);
    /// the manifest itself when it is not an index or every platform is kept.
    pub(crate) fn only_platforms(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Self, RegistryError> {
        let ManifestKind::Index(children) = self.kind()? else {
            return Ok(self.clone());
        };
        if children.iter().all(|c| keep(&c.platform)) {
            return Ok(self.clone());
        }
        let mut value: serde_json::Value = serde_json::from_slice(&self.bytes)
            .map_err(|e| RegistryError::Invalid(format!("manifest {}: {e}", self.digest)))?;
        if let Some(list) = value.get_mut("manifests").and_then(|m| m.as_array_mut()) {
            list.retain(|entry| keep(&platform_of_json(entry)));
            if list.is_empty() {
                return Err(RegistryError::Invalid(format!(
                    "index {} has no manifest for the platforms asked for (it has {})",
                    self.digest,
                    children
                        .iter()
                        .map(|c| c.platform.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let bytes = serde_json::to_vec_pretty(&value)
            .map_err(|e| RegistryError::Invalid(format!("manifest {}: {e}", self.digest)))?;
        Self::new(Bytes::from(bytes), Some(&self.media_type))
    }
}

fn blob_ref(d: &Descriptor) -> BlobRef {
    BlobRef {
        digest: d.digest().to_string(),
        size: d.size(),
    }
}

fn child_ref(d: &Descriptor) -> ChildRef {
    let platform = d.platform().as_ref().map_or_else(
        || "unknown".to_string(),
        |p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        },
    );
    ChildRef {
        digest: d.digest().to_string(),
        platform,
    }
}

fn platform_of_json(entry: &serde_json::Value) -> String {
    let Some(p) = entry.get("platform") else {
        return "unknown".into();
    };
    let s = |k: &str| p.get(k).and_then(serde_json::Value::as_str);
    match (s("os"), s("architecture"), s("variant")) {
        (Some(os), Some(arch), Some(v)) => format!("{os}/{arch}/{v}"),
        (Some(os), Some(arch), None) => format!("{os}/{arch}"),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn index() -> Manifest {
        let json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d('a'), "size": 10, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": d('b'), "size": 10, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
            ]
        });
        Manifest::new(Bytes::from(serde_json::to_vec(&json).unwrap()), None).unwrap()
    }

    #[test]
    fn reads_index_children_and_image_blobs() {
        let ManifestKind::Index(children) = index().kind().unwrap() else {
            panic!("not an index")
        };
        let platforms: Vec<&str> = children.iter().map(|c| c.platform.as_str()).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
        let image = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('c'), "size": 3},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d('e'), "size": 7}]
        });
        let bytes = Bytes::from(serde_json::to_vec(&image).unwrap());
        let m = Manifest::new(bytes.clone(), None).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.digest, sha256_digest(&bytes));
        assert_eq!(
            m.kind().unwrap(),
            ManifestKind::Image {
                config: BlobRef {
                    digest: d('c'),
                    size: 3
                },
                layers: vec![BlobRef {
                    digest: d('e'),
                    size: 7
                }],
            }
        );
    }

    #[test]
    fn filters_platforms_into_a_new_index() {
        let full = index();
        assert_eq!(full.only_platforms(|_| true).unwrap(), full);
        let amd = full.only_platforms(|p| p == "linux/amd64").unwrap();
        assert_ne!(amd.digest, full.digest);
        let ManifestKind::Index(children) = amd.kind().unwrap() else {
            panic!("not an index")
        };
        assert_eq!(children.len(), 1);
        let err = full.only_platforms(|p| p == "windows/amd64").unwrap_err();
        assert!(err.to_string().contains("linux/arm64/v8"), "{err}");
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        assert!(Manifest::new(Bytes::from_static(b"{}"), None).is_err());
        assert!(Manifest::new(Bytes::from_static(b"not json"), None).is_err());
        let v1 = br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}"#;
        assert!(Manifest::new(Bytes::from_static(v1), None).is_err());
    }
}

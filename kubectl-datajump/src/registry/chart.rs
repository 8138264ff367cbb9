//! The chart as the OCI artifact `helm push` makes: a config blob holding `Chart.yaml` as JSON
//! (`application/vnd.cncf.helm.config.v1+json`), one layer holding the packaged chart
//! (`…chart.content.v1.tar+gzip`), tagged with the chart version — so `helm install
//! oci://HOST/PROJECT/datajump --version V` finds it.

use bytes::Bytes;
use serde_json::{Value, json};

use super::Manifest;
use super::RegistryError;
use super::manifest::{OCI_MANIFEST, sha256_digest};

/// Helm's chart config media type.
pub(crate) const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// Helm's chart content media type.
pub(crate) const HELM_CONTENT: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// A chart ready to push: its name, version, and the three documents of the artifact.
#[derive(Debug, Clone)]
pub(crate) struct ChartArtifact {
    pub name: String,
    pub version: String,
    pub config: Bytes,
    pub content: Bytes,
    pub manifest: Manifest,
}

impl ChartArtifact {
    /// Builds the artifact from `Chart.yaml`'s text and the `.tgz` `helm package` wrote.
    pub(crate) fn new(chart_yaml: &str, package: Bytes) -> Result<Self, RegistryError> {
        let metadata: Value = serde_yaml::from_str(chart_yaml)
            .map_err(|e| RegistryError::Invalid(format!("Chart.yaml: {e}")))?;
        let field = |key: &str| {
            metadata
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| RegistryError::Invalid(format!("Chart.yaml: no {key}")))
        };
        let (name, version) = (field("name")?, field("version")?);
        let config = Bytes::from(
            serde_json::to_vec(&metadata)
                .map_err(|e| RegistryError::Invalid(format!("Chart.yaml: {e}")))?,
        );
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": HELM_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
            "layers": [{"mediaType": HELM_CONTENT, "digest": sha256_digest(&package), "size": package.len()}],
            "annotations": {
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": version,
            }
        });
        let manifest = Manifest::new(
            Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default()),
            Some(OCI_MANIFEST),
        )?;
        Ok(Self {
            name,
            version,
            config,
            content: package,
            manifest,
        })
    }

    /// The tag Helm pushes a version under (`+` is not allowed in tags; Helm writes `_`).
    pub(crate) fn tag(&self) -> String {
        self.version.replace('+', "_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_what_helm_push_builds() {
        let chart = ChartArtifact::new(
            "apiVersion: v2\nname: datajump\nversion: 1.4.0+build.2\nappVersion: \"1.0.0\"\n",
            Bytes::from_static(b"tgz bytes"),
        )
        .unwrap();
        assert_eq!(chart.tag(), "1.4.0_build.2");
        let m: Value = serde_json::from_slice(&chart.manifest.bytes).unwrap();
        assert_eq!(m["config"]["mediaType"], HELM_CONFIG);
        assert_eq!(m["layers"][0]["mediaType"], HELM_CONTENT);
        assert_eq!(m["layers"][0]["size"], 9);
        let config: Value = serde_json::from_slice(&chart.config).unwrap();
        assert_eq!(config["appVersion"], "1.0.0");
        assert_eq!(chart.version, "1.4.0+build.2");
        assert!(ChartArtifact::new("name: x\n", Bytes::new()).is_err());
    }
}

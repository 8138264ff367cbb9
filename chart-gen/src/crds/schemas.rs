//! `chart-gen crds schemas`: kubeconform's schema files for CRDs, laid out as its
//! `-schema-location` template `{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json` wants
//! (kind lower-cased), one per served version. The schemas come from the converter `validate`
//! uses ([`CrdSchemas::served_schemas`]), so kubeconform in CI and `chart-gen validate` agree on
//! what a custom resource may hold: unknown fields are rejected except under
//! `x-kubernetes-preserve-unknown-fields`, and the root always allows apiVersion, kind and
//! metadata.

use std::fs;
use std::path::{Path, PathBuf};

use crate::validate::CrdSchemas;

use super::CrdsError;

/// What [`write_schemas`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Every schema file, in the order written.
    pub files: Vec<PathBuf>,
}

/// Loads the CRDs in `inputs` (directories of `*.yaml`/`*.yml`, or single files, possibly
/// multi-document) and writes a schema file under `out` for every served version. A CRD of the
/// same group and kind in a later input replaces an earlier one. No CRD at all is an error, so a
/// wrong path cannot pass as "nothing to check".
pub fn write_schemas(inputs: &[PathBuf], out: &Path) -> Result<Written, CrdsError> {
    let mut crds = CrdSchemas::new();
    for input in inputs {
        if input.is_dir() {
            crds.merge(CrdSchemas::load_dir(input)?);
        } else {
            crds.add_file(input)?;
        }
    }
    if crds.is_empty() {
        let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(CrdsError::NoCrds(names.join(" ")));
    }
    let mut files = Vec::new();
    for served in crds.served_schemas()? {
        let dir = out.join(&served.group);
        fs::create_dir_all(&dir).map_err(CrdsError::io(&dir))?;
        let path = dir.join(format!(
            "{}_{}.json",
            served.kind.to_lowercase(),
            served.version
        ));
        let mut text = serde_json::to_string_pretty(&served.schema)
            .expect("a serde_json::Value always serializes");
        text.push('\n');
        fs::write(&path, text).map_err(CrdsError::io(&path))?;
        files.push(path);
    }
    Ok(Written { files })
}

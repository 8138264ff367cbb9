//! The chart's own CRDs (Workflow, WorkflowRun). Helm installs the files in `crds/` on the first
//! install only and never upgrades them, so `install` and `upgrade` apply them server-side
//! before the release: a chart upgrade that adds a field to a CRD then really reaches the
//! cluster.

use std::path::Path;

use anyhow::Context;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Patch;
use kube::{Api, Client};

use crate::manifests;

/// Server-side applies every CRD in `<chart>/crds/*.yaml`; returns their names.
pub(crate) async fn apply(client: &Client, chart_dir: &Path) -> anyhow::Result<Vec<String>> {
    let dir = chart_dir.join("crds");
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("reading {}: {e}", dir.display()),
    };
    files.sort();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = super::apply_params();
    let mut applied = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
        for doc in
            manifests::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?
        {
            let crd: CustomResourceDefinition = serde_json::from_value(doc)
                .map_err(|e| anyhow::anyhow!("{}: not a CRD: {e}", file.display()))?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("applying CRD {name}"))?;
            applied.push(name);
        }
    }
    Ok(applied)
}

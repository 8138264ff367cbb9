//! Applies the namespaces install creates and labels (the chart does not own them). Which ones and
//! with which labels is `chart_gen::namespaces` (shared with the Argo CD manifests).

use anyhow::Context;
use chart_gen::namespaces::NamespacePlan;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Patch;
use kube::{Api, Client};

/// Creates or updates each namespace by server-side apply of only the labels we own, so other
/// labels on it stay untouched.
pub async fn apply(client: &Client, plans: &[NamespacePlan]) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let params = super::apply_params();
    for p in plans {
        api.patch(&p.name, &params, &Patch::Apply(p.object()))
            .await
            .with_context(|| format!("applying namespace {}", p.name))?;
    }
    Ok(())
}

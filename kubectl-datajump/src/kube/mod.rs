//! Everything that talks to the API server. Each submodule takes a `kube::Client`, so tests hand
//! it a tower-test mock and assert the exact requests; building the client from kubeconfig flags
//! is the only part that needs a real cluster (`endpoint`), and the failures at that edge are
//! worded in one place for every verb (`edge_error`).

pub(crate) mod archive;
pub(crate) mod backfill;
pub(crate) mod crds;
pub(crate) mod credentials;
pub mod edge_error;
mod endpoint;
pub(crate) mod jobs;
pub(crate) mod log_shipping;
pub(crate) mod logs;
pub mod namespace;
pub mod preflight;
pub(crate) mod release;
pub(crate) mod report;
pub(crate) mod rollout;
pub(crate) mod scheduler;
pub(crate) mod status;
pub mod workflows;

use std::path::PathBuf;

use anyhow::Context;
use kube::Client;
use kube::api::{Api, ListParams, PatchParams};

use edge_error::Endpoint;

/// The one field manager for every server-side apply the plugin makes, so ownership of fields is
/// stable across versions and users.
pub(crate) const FIELD_MANAGER: &str = "kubectl-datajump";

/// Server-side apply as [`FIELD_MANAGER`], taking over fields another manager set (like `kubectl
/// apply --server-side --force-conflicts`), with strict field validation: the API server refuses
/// a field the schema does not know (`schedul:`) instead of pruning it silently.
pub(crate) fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict()
}

/// A merge patch with strict field validation (see [`apply_params`]).
pub(crate) fn patch_params() -> PatchParams {
    PatchParams::default().validation_strict()
}

/// Runs `follow` to its end, or gives up after `timeout` (zero: no limit) with `gave_up`'s
/// message — the `--timeout` of the verbs that follow something on the cluster.
pub(crate) async fn within<T>(
    timeout: std::time::Duration,
    follow: impl std::future::Future<Output = anyhow::Result<T>>,
    gave_up: impl FnOnce() -> String,
) -> anyhow::Result<T> {
    if timeout.is_zero() {
        return follow.await;
    }
    tokio::time::timeout(timeout, follow)
        .await
        .map_err(|_| anyhow::anyhow!(gave_up()))?
}

/// The `K` objects in `namespace` that carry the labels `selector` asks for.
pub(crate) async fn list_labelled<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> kube::Result<Vec<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// Which cluster to talk to, as kubectl's `--kubeconfig` and `--context` name it (none: KUBECONFIG,
/// else the in-cluster config). Helm is pointed at the same one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// Builds a client for `target`, and says which cluster it points at (for the messages of
/// [`edge_error`]). A missing or unreadable kubeconfig and an unknown context are input errors.
pub(crate) async fn connect(target: &Target) -> anyhow::Result<(Client, Endpoint)> {
    let resolved = endpoint::resolve(target).await?;
    let client = Client::try_from(resolved.config).context("building the Kubernetes client")?;
    Ok((client, resolved.endpoint))
}

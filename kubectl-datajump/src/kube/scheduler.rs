//! Stopping and restarting the scheduler Deployment through its scale subresource: `restore`
//! stops it so no task writes into a half-restored database, then gives it its replicas back.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Patch;
use kube::{Api, Client};
use serde_json::json;

/// Scales the scheduler Deployment `name` to zero and waits until its pods are gone; returns the
/// replicas it had. When they do not go within two minutes it is scaled back before the error.
pub(crate) async fn stop(client: &Client, ns: &str, name: &str) -> anyhow::Result<i32> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let current = api
        .get_scale(name)
        .await
        .with_context(|| format!("reading the scale of Deployment {name}"))?;
    let previous = current.spec.and_then(|s| s.replicas).unwrap_or(1);
    scale(client, ns, name, 0).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = api.get_scale(name).await?;
        if s.status.map(|st| st.replicas).unwrap_or(0) == 0 {
            return Ok(previous);
        }
        if Instant::now() >= deadline {
            // Put it back: we must not leave the scheduler half-stopped.
            scale(client, ns, name, previous).await?;
            anyhow::bail!("scheduler pods did not stop within 120s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Sets the replicas of Deployment `name` through its scale subresource (a merge patch).
pub(crate) async fn scale(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch_scale(name, &super::patch_params(), &patch)
        .await
        .map(|_scale| ())
        .with_context(|| format!("scaling Deployment {name} to {replicas}"))
}

//! What the cluster says about an installed release that helm does not: the chart's fullname
//! it was installed under (object names are `<fullname>-<component>`).

use chart_gen::model::names;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ListParams};

use anyhow::Context as _;

/// The fullname of `release` in `ns`, read off its `<fullname>-config` ConfigMap (found by the
/// release's labels, so any name override is honoured); the chart's default rule when the
/// release has none yet.
pub(crate) async fn installed_fullname(
    client: &Client,
    ns: &str,
    release: &str,
) -> anyhow::Result<String> {
    let selector =
        format!("app.kubernetes.io/instance={release},app.kubernetes.io/component=config");
    let config: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let found = config
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("listing ConfigMaps {selector} in namespace {ns}"))?;
    let from_cluster = found
        .items
        .iter()
        .filter_map(|cm| cm.metadata.name.as_deref())
        .find_map(|name| name.strip_suffix("-config"))
        .map(str::to_string);
    Ok(from_cluster.unwrap_or_else(|| names::fullname(release, "", "")))
}

//! The operators' custom resources the chart renders (MySQL Operator's InnoDBCluster, OT
//! redis-operator's RedisCluster, Strimzi's Kafka and KafkaNodePool, ECK's Elasticsearch, the
//! MinIO Tenant): each one's readiness, as `status` judges it, and its whole status. A kind
//! whose CRD the cluster does not have is noted, not an error (the component runs embedded or
//! outside).

use kube::Client;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::collect::{Notes, list_each, name_of};
use super::{Part, Sink};
use crate::kube::status::{INFRA_KINDS, cr_readiness};

/// Operator kinds beside the ones `status` shows readiness for.
const MORE_KINDS: &[(&str, &str, &str, &str)] =
    &[("kafka.strimzi.io", "v1", "KafkaNodePool", "kafkanodepools")];

/// Writes `operators/<Kind>/<name>.yaml` for every operator resource in `ns`; how many.
pub(crate) async fn write(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
) -> anyhow::Result<usize> {
    let mut count = 0;
    for (group, version, kind, plural) in INFRA_KINDS.iter().chain(MORE_KINDS) {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        list_each(client, notes, &ar, Some(ns), |resource| {
            let status = resource.get("status");
            let (ready, detail) = cr_readiness(kind, status);
            let answer = json!({
                "kind": kind,
                "name": name_of(&resource),
                "ready": ready,
                "detail": detail,
                "status": status.cloned().unwrap_or(Value::Null),
            });
            count += 1;
            sink.put(Part::Operator {
                kind,
                name: name_of(&resource),
                value: &answer,
            })
        })
        .await?;
    }
    Ok(count)
}

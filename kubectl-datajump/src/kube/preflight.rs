//! Preflight: before helm runs, check the cluster can take this configuration — a supported
//! Kubernetes version, the CRDs of every operator the values rely on (naming the operator to
//! install), and the StorageClass and IngressClass the values reference. The list of checks is
//! computed from the values alone (pure); only `run` talks to the cluster.

use anyhow::Context;
use chart_gen::kube_versions::{self, NEWEST_TESTED, OLDEST_SUPPORTED, Support};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use serde_json::Value;

/// One thing the cluster must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A CRD by full name, and the operator that ships it.
    Crd {
        name: &'static str,
        kind: &'static str,
        operator: &'static str,
        component: &'static str,
    },
    /// A named StorageClass, or (None) a default one.
    StorageClass(Option<String>),
    /// A named IngressClass.
    IngressClass(String),
}

/// An operator-mode component: the CRDs (name, kind) it needs and the operator that ships them.
struct OperatorRequirement {
    component: &'static str,
    crds: &'static [(&'static str, &'static str)],
    operator: &'static str,
}

/// The operator-mode components, their CRDs and the operator to install.
const OPERATOR_CRDS: &[OperatorRequirement] = &[
    OperatorRequirement {
        component: "mysql",
        crds: &[("innodbclusters.mysql.oracle.com", "InnoDBCluster")],
        operator: "MySQL Operator",
    },
    OperatorRequirement {
        component: "redis",
        crds: &[("redisclusters.redis.redis.opstreelabs.in", "RedisCluster")],
        operator: "OT redis-operator",
    },
    OperatorRequirement {
        component: "kafka",
        crds: &[
            ("kafkas.kafka.strimzi.io", "Kafka"),
            ("kafkanodepools.kafka.strimzi.io", "KafkaNodePool"),
        ],
        operator: "Strimzi",
    },
    OperatorRequirement {
        component: "elasticsearch",
        crds: &[(
            "elasticsearches.elasticsearch.k8s.elastic.co",
            "Elasticsearch",
        )],
        operator: "ECK",
    },
    OperatorRequirement {
        component: "minio",
        crds: &[("tenants.minio.min.io", "Tenant")],
        operator: "MinIO Operator",
    },
];

/// Where a component's mode lives in the values (`operator`, `embedded` or `external`).
fn component_mode<'v>(values: &'v Value, component: &str) -> Option<&'v str> {
    values
        .pointer(&format!("/{component}/mode"))
        .and_then(Value::as_str)
}

/// The checks these values need.
pub fn plan(values: &Value) -> Vec<Check> {
    let mut checks = Vec::new();
    for OperatorRequirement {
        component,
        crds,
        operator,
    } in OPERATOR_CRDS
    {
        let enabled = values
            .pointer(&format!("/{component}/enabled"))
            .and_then(Value::as_bool)
            != Some(false);
        if enabled && component_mode(values, component) == Some("operator") {
            for (name, kind) in crds.iter() {
                checks.push(Check::Crd {
                    name,
                    kind,
                    operator,
                    component,
                });
            }
        }
    }
    if values
        .pointer("/observability/serviceMonitor/enabled")
        .and_then(Value::as_bool)
        == Some(true)
    {
        checks.push(Check::Crd {
            name: "servicemonitors.monitoring.coreos.com",
            kind: "ServiceMonitor",
            operator: "Prometheus Operator (kube-prometheus-stack)",
            component: "observability.serviceMonitor",
        });
    }
    if values
        .pointer("/httpRoute/enabled")
        .and_then(Value::as_bool)
        == Some(true)
    {
        checks.push(Check::Crd {
            name: "httproutes.gateway.networking.k8s.io",
            kind: "HTTPRoute",
            operator: "Gateway API CRDs (standard channel, v1.0 or later) and a Gateway implementation",
            component: "httpRoute",
        });
    }
    // Every component may name its own StorageClass (empty = global.storageClass, then the
    // cluster default): check each one named, and a default when the global one is empty —
    // only when the release claims volumes at all (a release whose middleware is all external
    // and has no backup volume needs no storage).
    if claims_storage(values) {
        let mut classes = std::collections::BTreeSet::new();
        collect_storage_classes(values, &mut classes);
        let global_empty = values
            .pointer("/global/storageClass")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if global_empty && claims_without_class(values) {
            checks.push(Check::StorageClass(None));
        }
        checks.extend(classes.into_iter().map(|c| Check::StorageClass(Some(c))));
    }
    let ingress_on = values
        .pointer("/ingress/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if let Some(class) = values
        .pointer("/ingress/className")
        .and_then(Value::as_str)
        .filter(|_| ingress_on)
        && !class.is_empty()
    {
        checks.push(Check::IngressClass(class.to_string()));
    }
    checks
}

/// Whether the release makes PersistentVolumeClaims: the backup volume, or a middleware service
/// the release runs itself (`embedded` StatefulSets and operator-managed clusters keep data on
/// volumes; `external` ones are elsewhere).
fn claims_storage(values: &Value) -> bool {
    let backup = values
        .pointer("/backup/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let in_cluster = ["mysql", "redis", "kafka", "elasticsearch", "minio"]
        .iter()
        .any(|service| {
            values
                .pointer(&format!("/{service}/mode"))
                .and_then(Value::as_str)
                .is_some_and(|mode| mode != "external")
        });
    backup || in_cluster
}

/// Whether a claim of the release names no StorageClass of its own, so it falls back to
/// `global.storageClass` (then the cluster's default): embedded services have no class of
/// their own; the backup volume and operator-managed clusters may name one.
fn claims_without_class(values: &Value) -> bool {
    let unnamed = |pointer: &str| {
        values
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    };
    let backup = values
        .pointer("/backup/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if backup && unnamed("/backup/storageClass") {
        return true;
    }
    let operator_classes: &[(&str, &[&str])] = &[
        ("mysql", &["/mysql/operator/storage/storageClass"]),
        ("redis", &["/redis/operator/storage/storageClass"]),
        ("kafka", &["/kafka/operator/storage/storageClass"]),
        (
            "elasticsearch",
            &[
                "/elasticsearch/operator/master/storage/storageClass",
                "/elasticsearch/operator/data/storage/storageClass",
            ],
        ),
        ("minio", &["/minio/operator/storage/storageClass"]),
    ];
    operator_classes.iter().any(|(service, classes)| {
        match values
            .pointer(&format!("/{service}/mode"))
            .and_then(Value::as_str)
        {
            Some("embedded") => true,
            Some("operator") => classes.iter().any(|c| unnamed(c)),
            _ => false,
        }
    })
}

fn collect_storage_classes(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("storageClass", Value::String(s)) if !s.is_empty() => {
                        out.insert(s.clone());
                    }
                    _ => collect_storage_classes(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_storage_classes(i, out)),
        _ => {}
    }
}

/// What a server version means for the install: refused below the oldest supported release,
/// a warning above the newest tested one (a newer cluster is not locked out).
pub(crate) fn check_version(major: &str, minor: &str) -> Result<Option<String>, String> {
    match kube_versions::classify(major, minor) {
        Ok(Support::Supported(_)) => Ok(None),
        Ok(Support::NewerThanTested(v)) => Ok(Some(format!(
            "Kubernetes {v} is newer than the newest release DataJump is tested on ({NEWEST_TESTED}); continuing"
        ))),
        Ok(Support::TooOld(v)) => Err(format!(
            "Kubernetes {v} is not supported: DataJump needs {OLDEST_SUPPORTED} or newer (tested on {})",
            kube_versions::supported_range()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The outcome of preflight: failures stop the install, warnings are printed and it goes on.
#[derive(Debug, Default)]
pub struct Report {
    pub failures: Vec<String>,
    pub warnings: Vec<String>,
}

/// Runs every check and returns what failed and what deserves a warning.
pub async fn run(client: &Client, checks: &[Check]) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let info = client
        .apiserver_version()
        .await
        .context("reading the API server's version")?;
    match check_version(&info.major, &info.minor) {
        Ok(None) => {}
        Ok(Some(warning)) => report.warnings.push(warning),
        Err(failure) => report.failures.push(failure),
    }
    let failures = &mut report.failures;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let storage: Api<StorageClass> = Api::all(client.clone());
    let ingress: Api<IngressClass> = Api::all(client.clone());
    for check in checks {
        match check {
            Check::Crd {
                name,
                kind,
                operator,
                component,
            } => {
                if crds.get_opt(name).await?.is_none() {
                    failures.push(format!(
                        "{component} needs CRD {name} ({kind}), which is missing: install the {operator} first"
                    ));
                }
            }
            Check::StorageClass(Some(name)) => {
                if storage.get_opt(name).await?.is_none() {
                    failures.push(format!(
                        "StorageClass {name:?} (named in the values' storageClass settings) does not exist: create it or name an existing one"
                    ));
                }
            }
            Check::StorageClass(None) => {
                let list = storage.list(&Default::default()).await?;
                let has_default = list.items.iter().any(|sc| {
                    sc.metadata.annotations.as_ref().is_some_and(|a| {
                        a.get("storageclass.kubernetes.io/is-default-class")
                            .map(String::as_str)
                            == Some("true")
                    })
                });
                if !has_default {
                    failures.push(
                        "no default StorageClass and global.storageClass is empty: set global.storageClass".into(),
                    );
                }
            }
            Check::IngressClass(name) => {
                if ingress.get_opt(name).await?.is_none() {
                    failures.push(format!(
                        "IngressClass {name:?} (ingress.className) does not exist: install that ingress controller or change ingress.className"
                    ));
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operator_components_need_their_crds() {
        let values = json!({
            "mysql": {"mode": "operator"},
            "kafka": {"mode": "operator"},
            "redis": {"mode": "embedded"},
            "minio": {"mode": "operator", "enabled": false},
            "observability": {"serviceMonitor": {"enabled": true}},
            "global": {"storageClass": "fast"},
            "backup": {"storageClass": "bulk"},
            "ingress": {"className": "nginx"},
            "httpRoute": {"enabled": true},
        });
        let names: Vec<String> = plan(&values)
            .iter()
            .map(|c| match c {
                Check::Crd { name, .. } => name.to_string(),
                Check::StorageClass(s) => format!("sc:{s:?}"),
                Check::IngressClass(i) => format!("ic:{i}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "innodbclusters.mysql.oracle.com",
                "kafkas.kafka.strimzi.io",
                "kafkanodepools.kafka.strimzi.io",
                "servicemonitors.monitoring.coreos.com",
                "httproutes.gateway.networking.k8s.io",
                "sc:Some(\"bulk\")",
                "sc:Some(\"fast\")",
                "ic:nginx",
            ]
        );
    }

    #[test]
    fn storage_is_checked_only_when_the_release_claims_volumes() {
        let storage = |values: Value| {
            plan(&values)
                .into_iter()
                .filter(|c| matches!(c, Check::StorageClass(_)))
                .count()
        };
        let external = |backup: bool| {
            json!({
                "mysql": {"mode": "external"}, "redis": {"mode": "external"},
                "kafka": {"mode": "external"}, "elasticsearch": {"mode": "external"},
                "minio": {"mode": "external"}, "backup": {"enabled": backup},
            })
        };
        assert_eq!(storage(external(false)), 0, "nothing claims a volume");
        assert_eq!(
            storage(external(true)),
            1,
            "the backup volume needs a default class"
        );
        let mut named = external(true);
        named["backup"]["storageClass"] = json!("node-local");
        assert_eq!(
            plan(&named)
                .into_iter()
                .filter(|c| matches!(c, Check::StorageClass(_)))
                .collect::<Vec<_>>(),
            [Check::StorageClass(Some("node-local".into()))],
            "a backup volume naming its class needs that class, not a default"
        );
        let mut embedded_redis = external(false);
        embedded_redis["redis"]["mode"] = json!("embedded");
        assert_eq!(
            storage(embedded_redis),
            1,
            "an embedded Redis keeps its data on a volume"
        );
    }

    #[test]
    fn versions_below_the_oldest_are_refused_and_above_the_newest_warned() {
        assert_eq!(check_version("1", "33"), Ok(None));
        assert_eq!(check_version("1", "36+"), Ok(None));
        assert_eq!(check_version("1", "37"), Ok(None));
        let refused = check_version("1", "32").unwrap_err();
        assert!(refused.contains("needs 1.33 or newer"), "{refused}");
        let warning = check_version("1", "38").unwrap().expect("a warning");
        assert!(warning.contains("newer than the newest release DataJump is tested on (1.37)"));
        assert!(check_version("2", "0").is_err());
    }
}

//! Argo CD manifests for the four environments (`chart-gen argocd`): one `Application` per
//! environment installing the chart from the Harbor OCI repository with the chart's own
//! `values-<env>.yaml` and, when the site keeps its values in git, the site's file for that
//! environment; an `AppProject` allowing exactly those sources and destinations; and the
//! namespaces an Application cannot create itself (Fluent Bit's privileged one).
//!
//! Everything an Application states comes from the chart: the namespace labels from the render's
//! Pod Security answer ([`crate::namespaces`]), the fields a controller owns from the render's
//! HorizontalPodAutoscalers. The builders are pure; the command renders and validates.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::Environment;
use crate::namespaces::NamespacePlan;
use crate::validate::{crd::CrdSchemas, kubernetes};

/// Where and how the environments are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The OCI repository holding the chart, without scheme: `harbor.example.com/datajump`.
    pub chart_repo: String,
    /// Chart version to install (an exact version: GitOps pins what runs).
    pub chart_version: String,
    /// Helm release name in every environment.
    pub release: String,
    /// Argo CD project name.
    pub project: String,
    /// Namespace Argo CD runs in (its Applications and AppProjects live there).
    pub argocd_namespace: String,
    /// The site's own values, if any.
    pub site: Option<SiteValues>,
}

/// A git repository holding the site's values: `<path>/values-<env>.yaml` per environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteValues {
    /// Clone URL.
    pub repo_url: String,
    /// Branch, tag or commit Argo CD follows.
    pub revision: String,
    /// Folder of the values files inside the repository (no leading or trailing `/`).
    pub path: String,
    /// Environments that have a file there (the others use the chart's values alone).
    pub envs: Vec<Environment>,
}

/// One environment's destination and what its render says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The environment.
    pub env: Environment,
    /// API server URL of its cluster as Argo CD knows it.
    pub cluster: String,
    /// The release namespace first, then any other namespace the release writes into.
    pub namespaces: Vec<NamespacePlan>,
    /// Deployments whose replicas an HPA sets: (namespace, name).
    pub autoscaled: Vec<(String, String)>,
    /// The cluster-scoped kinds the render holds: (API group, kind), e.g. the chart's CRDs and
    /// Fluent Bit's ClusterRole and ClusterRoleBinding.
    pub cluster_kinds: Vec<(String, String)>,
}

/// How an environment syncs: dev and test follow every chart or values change by themselves;
/// staging and prod change only when someone syncs them (the deploy workflow, or a person).
fn automated(env: Environment) -> bool {
    matches!(env, Environment::Dev | Environment::Test)
}

/// The Application's name: `<release>-<env>`.
pub fn application_name(delivery: &Delivery, env: Environment) -> String {
    format!("{}-{}", delivery.release, env.as_str())
}

fn labels(env: Option<Environment>) -> Value {
    let mut labels = BTreeMap::from([("app.kubernetes.io/part-of", "datajump")]);
    if let Some(env) = env {
        labels.insert("datajump.io/environment", env.as_str());
    }
    json!(labels)
}

/// The chart source, with its value files in the order Helm layers them.
fn chart_source(delivery: &Delivery, env: Environment) -> Value {
    let mut value_files = vec![env.values_file_name()];
    if let Some(site) = &delivery.site
        && site.envs.contains(&env)
    {
        value_files.push(format!("$site/{}/{}", site.path, env.values_file_name()));
    }
    json!({
        "repoURL": delivery.chart_repo,
        "chart": "datajump",
        "targetRevision": delivery.chart_version,
        "helm": {
            "releaseName": delivery.release,
            "valueFiles": value_files,
        },
    })
}

/// The Application of one environment.
pub fn application(delivery: &Delivery, target: &Target) -> Value {
    let env = target.env;
    let release_ns = &target.namespaces[0];
    let mut sync_policy = json!({
        // The release namespace carries the Pod Security level the chart asks for.
        "managedNamespaceMetadata": { "labels": release_ns.labels },
        "syncOptions": [
            "CreateNamespace=true",
            // Some CRDs are too large for client-side apply's last-applied annotation.
            "ServerSideApply=true",
            "RespectIgnoreDifferences=true",
            "PruneLast=true",
        ],
        "retry": {
            "limit": 5,
            "backoff": { "duration": "10s", "factor": 2, "maxDuration": "3m" },
        },
    });
    if automated(env) {
        sync_policy["automated"] = json!({ "prune": true, "selfHeal": true });
    }
    let mut spec = json!({
        "project": delivery.project,
        "destination": { "server": target.cluster, "namespace": release_ns.name },
        "syncPolicy": sync_policy,
        "revisionHistoryLimit": 10,
    });
    match &delivery.site {
        Some(site) if site.envs.contains(&env) => {
            spec["sources"] = json!([
                chart_source(delivery, env),
                { "repoURL": site.repo_url, "targetRevision": site.revision, "ref": "site" },
            ]);
        }
        _ => spec["source"] = chart_source(delivery, env),
    }
    if !target.autoscaled.is_empty() {
        // The HPA owns these replicas (the chart leaves the field out when autoscaling is on).
        let ignored: Vec<Value> = target
            .autoscaled
            .iter()
            .map(|(namespace, name)| {
                json!({
                    "group": "apps",
                    "kind": "Deployment",
                    "namespace": namespace,
                    "name": name,
                    "jsonPointers": ["/spec/replicas"],
                })
            })
            .collect();
        spec["ignoreDifferences"] = Value::Array(ignored);
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": application_name(delivery, env),
            "namespace": delivery.argocd_namespace,
            "labels": labels(Some(env)),
        },
        "spec": spec,
    })
}

/// The AppProject: only the chart's repository (and the site's), only the environments'
/// namespaces, and of cluster-scoped kinds only what the environments' renders hold (the chart's
/// CRDs, Fluent Bit's ClusterRole and ClusterRoleBinding where it runs) and the Namespaces Argo CD
/// creates (`CreateNamespace=true`).
pub fn project(delivery: &Delivery, targets: &[Target]) -> Value {
    let mut repos = vec![delivery.chart_repo.clone()];
    if let Some(site) = &delivery.site {
        repos.push(site.repo_url.clone());
    }
    let mut destinations: Vec<Value> = Vec::new();
    for t in targets {
        for ns in &t.namespaces {
            let d = json!({ "server": t.cluster, "namespace": ns.name });
            if !destinations.contains(&d) {
                destinations.push(d);
            }
        }
    }
    let mut cluster_kinds: Vec<(String, String)> = vec![(String::new(), "Namespace".into())];
    cluster_kinds.extend(targets.iter().flat_map(|t| t.cluster_kinds.iter().cloned()));
    cluster_kinds.sort();
    cluster_kinds.dedup();
    let whitelist: Vec<Value> = cluster_kinds
        .iter()
        .map(|(group, kind)| json!({ "group": group, "kind": kind }))
        .collect();
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {
            "name": delivery.project,
            "namespace": delivery.argocd_namespace,
            "labels": labels(None),
        },
        "spec": {
            "description": "The DataJump platform in its environments",
            "sourceRepos": repos,
            "destinations": destinations,
            "clusterResourceWhitelist": whitelist,
        },
    })
}

/// A namespace a release writes into besides its own (Fluent Bit's): an Application creates
/// only its destination namespace, so this one is applied to the cluster beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraNamespace {
    /// The first environment that needs it on that cluster.
    pub env: Environment,
    /// The cluster to apply it to.
    pub cluster: String,
    /// The Namespace object.
    pub object: Value,
}

/// Each extra namespace once per cluster. Without the `env` label: environments sharing a
/// cluster share it.
pub fn extra_namespaces(targets: &[Target]) -> Vec<ExtraNamespace> {
    let mut out: Vec<ExtraNamespace> = Vec::new();
    for t in targets {
        for ns in t.namespaces.iter().skip(1) {
            let seen = out.iter().any(|x| {
                x.cluster == t.cluster && x.object["metadata"]["name"] == ns.name.as_str()
            });
            if seen {
                continue;
            }
            let mut object = ns.object();
            if let Some(labels) = object["metadata"]["labels"].as_object_mut() {
                labels.remove("env");
                labels.insert("app.kubernetes.io/part-of".into(), json!("datajump"));
            }
            out.push(ExtraNamespace {
                env: t.env,
                cluster: t.cluster.clone(),
                object,
            });
        }
    }
    out
}

/// The cluster-scoped kinds among `objects`, as (API group, kind), sorted: built-in kinds by
/// Kubernetes' types, custom kinds by their CRD in `crds`. A kind neither knows counts as
/// namespaced; the validator reports it as having no schema.
pub fn cluster_scoped_kinds(objects: &[Value], crds: &CrdSchemas) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = objects
        .iter()
        .filter_map(|o| {
            let api_version = o["apiVersion"].as_str()?;
            let kind = o["kind"].as_str()?;
            let namespaced = kubernetes::is_namespaced(api_version, kind)
                .or_else(|| crds.is_namespaced(api_version, kind))
                .unwrap_or(true);
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            (!namespaced).then(|| (group.to_string(), kind.to_string()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Deployments an HPA in `objects` scales: (namespace, name), sorted.
pub fn autoscaled_deployments(objects: &[Value], default_namespace: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = objects
        .iter()
        .filter(|o| o["kind"] == "HorizontalPodAutoscaler")
        .filter(|o| o["spec"]["scaleTargetRef"]["kind"] == "Deployment")
        .filter_map(|o| {
            let name = o["spec"]["scaleTargetRef"]["name"].as_str()?;
            let ns = o["metadata"]["namespace"]
                .as_str()
                .unwrap_or(default_namespace);
            Some((ns.to_string(), name.to_string()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(site: Option<SiteValues>) -> Delivery {
        Delivery {
            chart_repo: "harbor.example.com/datajump".into(),
            chart_version: "0.1.0".into(),
            release: "datajump".into(),
            project: "datajump".into(),
            argocd_namespace: "argocd".into(),
            site,
        }
    }

    fn ns(name: &str, enforce: &str) -> NamespacePlan {
        NamespacePlan {
            name: name.into(),
            labels: BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                ("pod-security.kubernetes.io/enforce".into(), enforce.into()),
            ]),
        }
    }

    fn target(env: Environment) -> Target {
        Target {
            env,
            cluster: "https://kubernetes.default.svc".into(),
            namespaces: vec![
                ns(&env.default_namespace(), "baseline"),
                ns("logs", "privileged"),
            ],
            autoscaled: vec![(env.default_namespace(), "datajump-web".into())],
            cluster_kinds: vec![
                (
                    "apiextensions.k8s.io".into(),
                    "CustomResourceDefinition".into(),
                ),
                ("rbac.authorization.k8s.io".into(), "ClusterRole".into()),
            ],
        }
    }

    #[test]
    fn an_application_installs_the_pinned_chart_with_its_environment_values() {
        let app = application(&delivery(None), &target(Environment::Prod));
        assert_eq!(app["metadata"]["name"], "datajump-prod");
        assert_eq!(app["metadata"]["namespace"], "argocd");
        let source = &app["spec"]["source"];
        assert_eq!(source["repoURL"], "harbor.example.com/datajump");
        assert_eq!(source["targetRevision"], "0.1.0");
        assert_eq!(source["helm"]["valueFiles"], json!(["values-prod.yaml"]));
        assert_eq!(app["spec"]["destination"]["namespace"], "datajump-prod");
        let labels = &app["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"];
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
        assert_eq!(
            app["spec"]["ignoreDifferences"][0]["jsonPointers"],
            json!(["/spec/replicas"])
        );
        assert_eq!(app["spec"]["ignoreDifferences"][0]["name"], "datajump-web");
    }

    #[test]
    fn dev_and_test_sync_themselves_staging_and_prod_wait_for_a_sync() {
        for env in Environment::ALL {
            let app = application(&delivery(None), &target(env));
            let auto = app["spec"]["syncPolicy"].get("automated").is_some();
            assert_eq!(
                auto,
                matches!(env, Environment::Dev | Environment::Test),
                "{env}"
            );
        }
    }

    #[test]
    fn site_values_come_from_git_after_the_charts_own() {
        let site = SiteValues {
            repo_url: "https://git.example.com/acme/site.git".into(),
            revision: "main".into(),
            path: "datajump".into(),
            envs: vec![Environment::Prod],
        };
        let d = delivery(Some(site));
        let app = application(&d, &target(Environment::Prod));
        assert!(app["spec"].get("source").is_none());
        let sources = app["spec"]["sources"].as_array().unwrap();
        assert_eq!(
            sources[0]["helm"]["valueFiles"],
            json!(["values-prod.yaml", "$site/datajump/values-prod.yaml"])
        );
        assert_eq!(sources[1]["ref"], "site");
        // An environment without a site file keeps the single source.
        let dev = application(&d, &target(Environment::Dev));
        assert_eq!(
            dev["spec"]["source"]["helm"]["valueFiles"],
            json!(["values-dev.yaml"])
        );
        let project = project(&d, &[target(Environment::Prod)]);
        assert_eq!(project["spec"]["sourceRepos"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_project_allows_exactly_the_environments_namespaces() {
        let targets: Vec<Target> = Environment::ALL.iter().map(|&e| target(e)).collect();
        let p = project(&delivery(None), &targets);
        let destinations = p["spec"]["destinations"].as_array().unwrap();
        // Four release namespaces and the shared logging one, once.
        assert_eq!(destinations.len(), 5, "{destinations:#?}");
        let extra = extra_namespaces(&targets);
        assert_eq!(extra.len(), 1, "one cluster, one logging namespace");
        assert_eq!(extra[0].env, Environment::Dev);
        assert_eq!(extra[0].object["metadata"]["name"], "logs");
        assert!(extra[0].object["metadata"]["labels"].get("env").is_none());
        // On another cluster it is needed again.
        let mut prod = target(Environment::Prod);
        prod.cluster = "https://prod.example.com".into();
        let extra = extra_namespaces(&[target(Environment::Dev), prod]);
        assert_eq!(extra.len(), 2);
        assert_eq!(extra[1].cluster, "https://prod.example.com");
    }

    #[test]
    fn the_project_allows_the_cluster_scoped_kinds_of_the_renders_and_namespaces() {
        let mut dev = target(Environment::Dev);
        dev.cluster_kinds.truncate(1);
        let p = project(&delivery(None), &[dev, target(Environment::Prod)]);
        assert_eq!(
            p["spec"]["clusterResourceWhitelist"],
            json!([
                { "group": "", "kind": "Namespace" },
                { "group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition" },
                { "group": "rbac.authorization.k8s.io", "kind": "ClusterRole" },
            ])
        );
    }

    #[test]
    fn cluster_scoped_kinds_come_from_kubernetes_types_and_the_crds() {
        let objects = vec![
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding"}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding"}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}),
            json!({"apiVersion": "v1", "kind": "Namespace"}),
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            json!({"apiVersion": "example.com/v1", "kind": "Unknown"}),
        ];
        assert_eq!(
            cluster_scoped_kinds(&objects, &CrdSchemas::default()),
            [
                (String::new(), "Namespace".to_string()),
                (
                    "rbac.authorization.k8s.io".to_string(),
                    "ClusterRoleBinding".to_string()
                ),
            ]
        );
    }

    #[test]
    fn autoscaled_deployments_come_from_the_hpas() {
        let objects = vec![
            json!({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "a"},
                   "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "datajump-web"}}}),
            json!({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "b", "namespace": "x"},
                   "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "db"}}}),
            json!({"kind": "Deployment", "metadata": {"name": "datajump-api-gateway"}}),
        ];
        assert_eq!(
            autoscaled_deployments(&objects, "ns"),
            [("ns".to_string(), "datajump-web".to_string())]
        );
    }
}

//! Rendered manifests as data: parsing helm's multi-document YAML, the images they run, and the
//! difference between two renderings with the changes the API server refuses (immutable fields).
//! Pure functions over `serde_json::Value`; `images` and `diff` feed them helm's output.

use std::collections::{BTreeMap, BTreeSet};

use chart_gen::model::mirror;
use serde::Serialize;
use serde_json::Value;

/// Parses multi-document YAML (helm template / get manifest) into objects, skipping empty
/// documents and mappings without a `kind` (chart-gen's parser, which validation uses too).
pub fn parse(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let objects = chart_gen::validate::parse_manifests(yaml)?;
    Ok(objects
        .into_iter()
        .filter(|o| o.get("kind").is_some())
        .collect())
}

/// The objects that are part of the release itself: Helm hooks (bucket set-up, `helm test`) are
/// created afresh around each install or upgrade and are never in `helm get manifest`, so a
/// diff against the deployed release leaves them out.
pub fn without_hooks(objects: Vec<Value>) -> Vec<Value> {
    objects
        .into_iter()
        .filter(|o| o.pointer("/metadata/annotations/helm.sh~1hook").is_none())
        .collect()
}

/// The manifests in `helm upgrade --install --dry-run` output: hooks and the manifest, between
/// the release header and `NOTES:`, as one multi-document YAML string.
pub fn from_dry_run_output(out: &str) -> String {
    let start = out
        .find("\nHOOKS:\n")
        .or_else(|| out.find("\nMANIFEST:\n"))
        .map(|i| i + 1)
        .unwrap_or(0);
    let end = out.find("\nNOTES:\n").unwrap_or(out.len()).max(start);
    out[start..end]
        .lines()
        .map(|l| {
            if l == "HOOKS:" || l == "MANIFEST:" {
                "---"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identity of an object across renderings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of a rendered object; objects without a namespace get `default_ns`.
    pub fn of(obj: &Value, default_ns: &str) -> Self {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let ns = s("/metadata/namespace");
        Self {
            kind: s("/kind"),
            namespace: if ns.is_empty() { default_ns.into() } else { ns },
            name: s("/metadata/name"),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Kinds whose `image:` fields are not container images worth mirroring.
const NOT_WORKLOADS: &[&str] = &["ConfigMap", "Secret", "CustomResourceDefinition"];

/// Every image referenced by the objects — containers, init and ephemeral containers, CronJob
/// templates and the `image:` fields of operator custom resources — with who uses it.
pub fn images(objects: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for obj in objects {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        if NOT_WORKLOADS.contains(&kind) {
            continue;
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut here = Vec::new();
        collect_images(obj, &mut String::new(), &mut here);
        here.extend(implied_images(obj));
        for (image, path) in here {
            found
                .entry(image)
                .or_default()
                .insert(format!("{kind}/{name} ({path})"));
        }
    }
    found
}

/// Images an operator runs for a custom resource that names only a version: the MySQL Operator
/// pulls `<imageRepository>/community-server|community-router:<version>`, ECK pulls
/// `docker.elastic.co/elasticsearch/elasticsearch:<version>`. (Strimzi derives Kafka images from
/// its own release, which the chart cannot know; pin `spec.kafka.image` to mirror it.)
fn implied_images(obj: &Value) -> Vec<(String, String)> {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    match (obj.get("kind").and_then(Value::as_str), s("/spec/version")) {
        (Some("InnoDBCluster"), Some(version)) => mirror::mysql_operator_images(
            s("/spec/imageRepository").unwrap_or_default(),
            version,
            "",
        )
        .into_iter()
        .map(|(image, role)| {
            (
                image.to_string(),
                format!("spec.version (operator default {role} image)"),
            )
        })
        .collect(),
        (Some("Elasticsearch"), Some(version)) if s("/spec/image").is_none() => vec![(
            format!("docker.elastic.co/elasticsearch/elasticsearch:{version}"),
            "spec.version (ECK default image)".into(),
        )],
        _ => Vec::new(),
    }
}

fn collect_images(v: &Value, path: &mut String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match (k.as_str(), child) {
                    ("image", Value::String(s)) if !s.trim().is_empty() => {
                        out.push((s.trim().to_string(), path.clone()))
                    }
                    _ => collect_images(child, path, out),
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                let label = child
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                path.push_str(&format!("[{label}]"));
                collect_images(child, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// A field the API server will not let an update change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImmutableChange {
    pub object: String,
    pub field: &'static str,
    pub remedy: &'static str,
}

/// Immutable fields per kind, and what to do about a change to them.
const IMMUTABLE: &[(&str, &str, &str)] = &[
    (
        "StatefulSet",
        "/spec/selector",
        "delete the StatefulSet with --cascade=orphan, then upgrade",
    ),
    (
        "StatefulSet",
        "/spec/volumeClaimTemplates",
        "delete the StatefulSet with --cascade=orphan (PVCs stay), then upgrade; resize PVCs separately",
    ),
    (
        "StatefulSet",
        "/spec/serviceName",
        "delete the StatefulSet with --cascade=orphan, then upgrade",
    ),
    (
        "StatefulSet",
        "/spec/podManagementPolicy",
        "delete the StatefulSet with --cascade=orphan, then upgrade",
    ),
    (
        "Deployment",
        "/spec/selector",
        "delete the Deployment, then upgrade (brief downtime)",
    ),
    (
        "Job",
        "/spec/template",
        "delete the Job (or let its TTL remove it), then upgrade",
    ),
    ("Job", "/spec/selector", "delete the Job, then upgrade"),
];

/// The immutable fields that differ between the deployed and the new object.
pub fn immutable_changes(old: &Value, new: &Value) -> Vec<ImmutableChange> {
    let kind = new.get("kind").and_then(Value::as_str).unwrap_or_default();
    let object = ObjectKey::of(new, "").to_string();
    IMMUTABLE
        .iter()
        .filter(|(k, field, _)| *k == kind && old.pointer(field) != new.pointer(field))
        .map(|(_, field, remedy)| ImmutableChange {
            object: object.clone(),
            field,
            remedy,
        })
        .collect()
}

/// What an upgrade does to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub change: ChangeKind,
    /// Unified diff of the YAML (empty for additions and removals).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// The full comparison of two renderings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub changes: Vec<ObjectChange>,
    pub immutable: Vec<ImmutableChange>,
}

/// Compares the deployed objects with the new rendering.
pub fn compare(current: &[Value], next: &[Value], default_ns: &str) -> Comparison {
    let index = |objs: &[Value]| -> BTreeMap<ObjectKey, Value> {
        objs.iter()
            .map(|o| (ObjectKey::of(o, default_ns), o.clone()))
            .collect()
    };
    let (old, new) = (index(current), index(next));
    let mut cmp = Comparison::default();
    let keys: BTreeSet<&ObjectKey> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let entry = |change, diff| ObjectChange {
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            change,
            diff,
        };
        match (old.get(key), new.get(key)) {
            (None, Some(_)) => cmp.changes.push(entry(ChangeKind::Added, String::new())),
            (Some(_), None) => cmp.changes.push(entry(ChangeKind::Removed, String::new())),
            (Some(a), Some(b)) if a != b => {
                cmp.immutable.extend(immutable_changes(a, b));
                cmp.changes.push(entry(
                    ChangeKind::Changed,
                    yaml_diff(a, b, &key.to_string()),
                ));
            }
            _ => {}
        }
    }
    cmp
}

fn yaml_diff(a: &Value, b: &Value, name: &str) -> String {
    let (ya, yb) = (
        serde_yaml::to_string(a).unwrap_or_default(),
        serde_yaml::to_string(b).unwrap_or_default(),
    );
    similar::TextDiff::from_lines(&ya, &yb)
        .unified_diff()
        .context_radius(3)
        .header(&format!("deployed {name}"), &format!("new {name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_not_part_of_the_release() {
        let objects = vec![
            serde_json::json!({"kind": "Job", "metadata": {"name": "buckets",
                "annotations": {"helm.sh/hook": "post-install,post-upgrade"}}}),
            serde_json::json!({"kind": "Job", "metadata": {"name": "plain",
                "annotations": {"other": "x"}}}),
            serde_json::json!({"kind": "Service", "metadata": {"name": "web"}}),
        ];
        let kept: Vec<String> = without_hooks(objects)
            .iter()
            .filter_map(|o| Some(o.pointer("/metadata/name")?.as_str()?.to_string()))
            .collect();
        assert_eq!(kept, ["plain", "web"]);
    }
    use serde_json::json;

    const RENDERED: &str = r#"
---
# Source: datajump/templates/web/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: datajump-web, namespace: datajump-dev}
spec:
  selector: {matchLabels: {app: web}}
  template:
    spec:
      initContainers: [{name: wait, image: "busybox:1.36"}]
      containers: [{name: web, image: "harbor.local/dj/web:1.0"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: datajump-backup}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: backup, image: "mysql:8.4"}]
---
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata: {name: datajump-kafka}
spec: {kafka: {image: "quay.io/strimzi/kafka:0.45.0-kafka-3.9.0"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {image: "not-an-image"}
"#;

    #[test]
    fn images_cover_containers_init_cronjobs_and_custom_resources() {
        let objs = parse(RENDERED).unwrap();
        assert_eq!(objs.len(), 4);
        let imgs = images(&objs);
        let names: Vec<&str> = imgs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "busybox:1.36",
                "harbor.local/dj/web:1.0",
                "mysql:8.4",
                "quay.io/strimzi/kafka:0.45.0-kafka-3.9.0"
            ]
        );
        assert!(
            imgs["busybox:1.36"].contains(
                "Deployment/datajump-web (spec.template.spec.initContainers[wait].image)"
            )
        );
        assert!(
            imgs["mysql:8.4"]
                .iter()
                .next()
                .unwrap()
                .starts_with("CronJob/datajump-backup")
        );
    }

    #[test]
    fn operator_resources_that_name_only_a_version_imply_their_images() {
        let objs = vec![
            json!({"kind": "InnoDBCluster", "metadata": {"name": "db"},
                   "spec": {"version": "8.4.3", "imageRepository": "harbor.local/mysql"}}),
            json!({"kind": "Elasticsearch", "metadata": {"name": "es"}, "spec": {"version": "8.15.3"}}),
            json!({"kind": "Elasticsearch", "metadata": {"name": "pinned"},
                   "spec": {"version": "8.15.3", "image": "harbor.local/es:8.15.3"}}),
        ];
        let names: Vec<String> = images(&objs).into_keys().collect();
        assert_eq!(
            names,
            [
                "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
                "harbor.local/es:8.15.3",
                "harbor.local/mysql/community-router:8.4.3",
                "harbor.local/mysql/community-server:8.4.3",
            ]
        );
    }

    #[test]
    fn compare_flags_immutable_statefulset_changes() {
        let old = json!({"kind": "StatefulSet", "metadata": {"name": "datajump-mysql"},
            "spec": {"serviceName": "m", "selector": {"a": 1}, "replicas": 1,
                     "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "10Gi"}}}}]}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
            json!("20Gi");
        let added = json!({"kind": "Service", "metadata": {"name": "x"}});
        let cmp = compare(&[old], &[new, added], "ns");
        assert_eq!(cmp.changes.len(), 2);
        assert_eq!(cmp.changes[0].change, ChangeKind::Added);
        assert_eq!(cmp.changes[1].change, ChangeKind::Changed);
        assert!(
            cmp.changes[1].diff.contains("-      replicas: 1")
                || cmp.changes[1].diff.contains("-  replicas: 1"),
            "{}",
            cmp.changes[1].diff
        );
        assert_eq!(cmp.immutable.len(), 1);
        assert_eq!(cmp.immutable[0].field, "/spec/volumeClaimTemplates");
        assert_eq!(cmp.immutable[0].object, "StatefulSet/datajump-mysql");
    }

    #[test]
    fn job_template_changes_are_immutable_but_deployment_templates_are_not() {
        let job = json!({"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"x": 1}}});
        let mut job2 = job.clone();
        job2["spec"]["template"]["x"] = json!(2);
        assert_eq!(immutable_changes(&job, &job2).len(), 1);
        let d = json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"selector": {}, "template": {"x": 1}}});
        let mut d2 = d.clone();
        d2["spec"]["template"]["x"] = json!(2);
        assert!(immutable_changes(&d, &d2).is_empty());
    }

    #[test]
    fn dry_run_output_yields_the_manifest() {
        let out = "Release \"datajump\" has been upgraded.\nNAME: datajump\nHOOKS:\n---\nkind: Job\nmetadata: {name: h}\nMANIFEST:\n---\nkind: Service\nmetadata: {name: s}\n\nNOTES:\nhello\n";
        let objs = parse(&from_dry_run_output(out)).unwrap();
        let names: Vec<&str> = objs
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["h", "s"]);
    }
}

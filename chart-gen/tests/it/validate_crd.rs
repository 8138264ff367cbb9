//! Custom resources are checked against the operators' CRD schemas (from `../shared/crds`, or
//! `DATAJUMP_CRD_DIR`) with Kubernetes structural-schema semantics; tests that need those CRDs say
//! "skipped" when the directory is absent.

use std::path::PathBuf;

use chart_gen::validate::{CrdSchemas, FieldError, parse_manifests};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use crate::support::reference_crds;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate")
}

fn fixture(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixture_dir().join(name)).expect("fixture exists");
    parse_manifests(&text).expect("fixture parses")
}

fn object(objects: &[Value], kind: &str) -> Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("{kind} in fixture"))
}

fn widget_crds() -> CrdSchemas {
    let text = std::fs::read_to_string(fixture_dir().join("custom-crd.yaml")).unwrap();
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
    let mut crds = CrdSchemas::new();
    crds.add(crd);
    crds
}

fn widget(spec: Value) -> Value {
    json!({
        "apiVersion": "example.datajump.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "datajump-dev"},
        "spec": spec
    })
}

#[test]
fn strimzi_kafka_and_node_pool_v1_pass() {
    let Some(crds) = reference_crds() else { return };
    let objects = fixture("operator-crs.yaml");
    for obj in &objects {
        let errors = crds
            .check(obj)
            .unwrap_or_else(|| panic!("{} has a CRD", obj["kind"]));
        assert!(errors.is_empty(), "{}: {errors:?}", obj["kind"]);
    }
    assert_eq!(
        crds.is_namespaced("kafka.strimzi.io/v1", "Kafka"),
        Some(true)
    );
    assert_eq!(
        crds.is_namespaced("cert-manager.io/v1", "ClusterIssuer"),
        Some(false)
    );
}

#[test]
fn innodb_cluster_without_secret_name_is_refused() {
    let Some(crds) = reference_crds() else { return };
    let mut cluster = object(&fixture("operator-crs.yaml"), "InnoDBCluster");
    cluster["spec"]
        .as_object_mut()
        .unwrap()
        .remove("secretName");
    assert_eq!(
        crds.check(&cluster),
        Some(vec![FieldError::new(
            "/spec",
            "missing required field \"secretName\""
        )])
    );
}

#[test]
fn kafka_v1beta2_is_refused_as_not_served() {
    let Some(crds) = reference_crds() else { return };
    let mut kafka = object(&fixture("operator-crs.yaml"), "Kafka");
    kafka["apiVersion"] = json!("kafka.strimzi.io/v1beta2");
    let errors = crds.check(&kafka).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "/apiVersion");
    assert!(
        errors[0]
            .message
            .starts_with("kafka.strimzi.io/v1beta2 is not served by the Kafka CRD"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.ends_with("served: kafka.strimzi.io/v1"),
        "{}",
        errors[0].message
    );
}

#[test]
fn unknown_field_in_redis_cluster_spec_is_reported() {
    let Some(crds) = reference_crds() else { return };
    let mut redis = object(&fixture("operator-crs.yaml"), "RedisCluster");
    redis["spec"]["clusterSise"] = json!(3);
    redis["spec"]["kubernetesConfig"]["imagePullPolicyy"] = json!("Always");
    let errors = crds.check(&redis).unwrap();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/spec/clusterSise",
            "/spec/kubernetesConfig/imagePullPolicyy"
        ],
        "{errors:?}"
    );
    assert_eq!(
        errors[0].message,
        "unknown field \"clusterSise\" (did you mean \"clusterSize\"?)"
    );
}

#[test]
fn preserved_unknown_fields_stay_allowed_in_operator_crds() {
    let Some(crds) = reference_crds() else { return };
    let mut kafka = object(&fixture("operator-crs.yaml"), "Kafka");
    // Kafka broker config is free-form (x-kubernetes-preserve-unknown-fields).
    kafka["spec"]["kafka"]["config"]["log.retention.hours"] = json!(168);
    assert_eq!(crds.check(&kafka), Some(vec![]));
}

#[test]
fn built_in_and_unknown_groups_have_no_crd() {
    let crds = widget_crds();
    assert!(
        crds.check(&json!({"apiVersion": "v1", "kind": "ConfigMap"}))
            .is_none()
    );
    assert!(
        crds.check(&json!({"apiVersion": "example.com/v1", "kind": "Widget"}))
            .is_none()
    );
}

#[test]
fn structural_semantics_of_a_typed_crd() {
    let crds = widget_crds();
    let ok = widget(json!({
        "size": 3,
        "port": "http",
        "tier": null,
        "settings": {"anything": {"goes": true}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
        "selector": {"app": "web"}
    }));
    assert_eq!(crds.check(&ok), Some(vec![]));
    assert_eq!(
        crds.check(&widget(json!({"size": 1, "port": 8080}))),
        Some(vec![])
    );
}

#[test]
fn structural_violations_are_reported_with_paths() {
    let crds = widget_crds();
    let bad = widget(json!({
        "size": 4_000_000_000_i64,
        "port": true,
        "tier": "bronze",
        "template": {"metadata": {}},
        "selector": {"app": "web", "tier": "front"}
    }));
    let errors = crds.check(&bad).unwrap();
    let find = |path: &str| {
        errors
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no error at {path}: {errors:?}"))
    };
    assert!(
        find("/spec/size").message.contains("2147483647"),
        "{errors:?}"
    );
    assert!(
        find("/spec/port").message.contains("\"integer\""),
        "{errors:?}"
    );
    assert!(find("/spec/tier").message.contains("bronze"), "{errors:?}");
    assert_eq!(
        find("/spec/template").message,
        "missing required field \"apiVersion\""
    );
    assert_eq!(
        find("/spec/selector/tier").message,
        "unknown field \"tier\""
    );
}

#[test]
fn unserved_version_and_bad_metadata() {
    let crds = widget_crds();
    let mut old = widget(json!({"size": 1, "port": 1}));
    old["apiVersion"] = json!("example.datajump.io/v1alpha1");
    let errors = crds.check(&old).unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .message
            .ends_with("served: example.datajump.io/v1"),
        "{}",
        errors[0].message
    );

    let mut labelled = widget(json!({"size": 1, "port": 1}));
    labelled["metadata"]["lables"] = json!({"a": "b"});
    assert_eq!(
        crds.check(&labelled),
        Some(vec![FieldError::new(
            "/metadata/lables",
            "unknown field \"lables\""
        )])
    );
}

#[test]
fn load_dir_reads_only_crd_files_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("custom-crd.yaml"),
        dir.path().join("widgets.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a CRD").unwrap();
    let crds = CrdSchemas::load_dir(dir.path()).unwrap();
    assert_eq!(crds.len(), 1);
    assert_eq!(
        crds.check(&widget(json!({"size": 1, "port": 1}))),
        Some(vec![])
    );

    std::fs::write(
        dir.path().join("broken.yaml"),
        "kind: ConfigMap\ndata: [1\n",
    )
    .unwrap();
    let err = CrdSchemas::load_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("broken.yaml"), "{err}");

    let missing = CrdSchemas::load_dir(&dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("cannot read CRD directory"),
        "{missing}"
    );
}

#[test]
fn load_dir_reads_multi_document_files() {
    let widget_crd = std::fs::read_to_string(fixture_dir().join("custom-crd.yaml")).unwrap();
    let gadget_crd = widget_crd
        .replace("widgets.example", "gadgets.example")
        .replace("kind: Widget", "kind: Gadget");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("both.yaml"),
        format!("---\n{widget_crd}\n---\n{gadget_crd}"),
    )
    .unwrap();
    let crds = CrdSchemas::load_dir(dir.path()).unwrap();
    assert_eq!(crds.len(), 2);
    let mut gadget = widget(json!({"size": 0, "port": 1}));
    gadget["kind"] = json!("Gadget");
    let errors = crds.check(&gadget).expect("Gadget has a CRD");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "/spec/size");
}

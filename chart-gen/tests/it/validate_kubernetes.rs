//! Built-in kinds are validated strictly against Kubernetes' own types: unknown or misspelled
//! fields, wrong types and removed APIs are reported with their JSON pointer.

use chart_gen::validate::{kubernetes, parse_manifests};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/validate/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    parse_manifests(&text).expect("fixture parses")
}

fn object(objects: &[Value], kind: &str, name: &str) -> Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{kind}/{name} in fixture"))
}

#[test]
fn every_good_builtin_object_passes() {
    let objects = fixture("prod-render.yaml");
    assert!(objects.len() >= 20, "fixture has {} objects", objects.len());
    for obj in &objects {
        let errors = kubernetes::check_builtin(obj)
            .unwrap_or_else(|| panic!("{} is a built-in kind", obj["kind"]));
        assert!(
            errors.is_empty(),
            "{} {}: {errors:?}",
            obj["kind"],
            obj["metadata"]["name"]
        );
    }
}

#[test]
fn misspelled_field_deep_in_a_deployment_is_reported_with_its_path() {
    let mut deployment = object(
        &fixture("prod-render.yaml"),
        "Deployment",
        "datajump-scheduler",
    );
    let container = deployment
        .pointer_mut("/spec/template/spec/containers/0")
        .and_then(Value::as_object_mut)
        .unwrap();
    let policy = container.remove("imagePullPolicy").unwrap();
    container.insert("imagePullPolicyy".to_string(), policy);
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRooot"] = json!(true);

    let errors = kubernetes::check_builtin(&deployment).unwrap();
    let reported: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        reported,
        vec![
            (
                "/spec/template/spec/containers/0/imagePullPolicyy",
                "unknown field \"imagePullPolicyy\""
            ),
            (
                "/spec/template/spec/securityContext/runAsNonRooot",
                "unknown field \"runAsNonRooot\""
            ),
        ]
    );
}

#[test]
fn unknown_label_keys_and_annotations_are_not_fields() {
    let mut cm = object(&fixture("prod-render.yaml"), "ConfigMap", "datajump-config");
    cm["metadata"]["labels"]["anything.example.com/free-form"] = json!("yes");
    cm["data"]["another.yml"] = json!("a: 1");
    assert_eq!(kubernetes::check_builtin(&cm), Some(vec![]));
}

#[test]
fn wrong_type_names_the_field_and_the_expected_type() {
    let mut deployment = object(&fixture("prod-render.yaml"), "Deployment", "datajump-web");
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
        json!("eighty");
    let errors = kubernetes::check_builtin(&deployment).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].path,
        "/spec/template/spec/containers/0/ports/0/containerPort"
    );
    assert!(
        errors[0]
            .message
            .contains("invalid type: string \"eighty\", expected i32"),
        "{}",
        errors[0].message
    );
}

#[test]
fn missing_required_field_is_reported_at_its_parent() {
    let mut deployment = object(&fixture("prod-render.yaml"), "Deployment", "datajump-web");
    deployment["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("containers");
    let errors = kubernetes::check_builtin(&deployment).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "/spec/template/spec");
    assert!(
        errors[0].message == "missing required field \"containers\"",
        "{}",
        errors[0].message
    );
}

#[test]
fn missing_required_scalar_is_reported() {
    let mut service = object(
        &fixture("prod-render.yaml"),
        "Service",
        "datajump-scheduler",
    );
    service["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("port");
    let errors = kubernetes::check_builtin(&service).unwrap();
    assert_eq!(
        errors,
        vec![chart_gen::validate::FieldError::new(
            "/spec/ports/0",
            "missing required field \"port\""
        )]
    );
}

#[test]
fn removed_apis_name_the_release_and_the_replacement() {
    let cases = [
        (
            "policy/v1beta1",
            "PodSecurityPolicy",
            "1.25",
            "Pod Security Admission",
        ),
        (
            "extensions/v1beta1",
            "Ingress",
            "1.22",
            "networking.k8s.io/v1",
        ),
        (
            "networking.k8s.io/v1beta1",
            "Ingress",
            "1.22",
            "networking.k8s.io/v1",
        ),
        (
            "autoscaling/v2beta2",
            "HorizontalPodAutoscaler",
            "1.26",
            "autoscaling/v2",
        ),
        ("batch/v1beta1", "CronJob", "1.25", "batch/v1"),
        ("policy/v1beta1", "PodDisruptionBudget", "1.25", "policy/v1"),
        ("extensions/v1beta1", "Deployment", "1.16", "apps/v1"),
    ];
    for (api_version, kind, release, instead) in cases {
        let obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
        let errors = kubernetes::check_builtin(&obj).expect("removed APIs are built in");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "/apiVersion");
        let expected = format!("removed in Kubernetes {release}; use {instead}");
        assert!(
            errors[0].message.contains(&expected),
            "{api_version} {kind}: {}",
            errors[0].message
        );
    }
}

#[test]
fn custom_kinds_are_not_built_in() {
    for obj in fixture("operator-crs.yaml") {
        assert!(kubernetes::check_builtin(&obj).is_none(), "{}", obj["kind"]);
    }
}

//! `validate_rendered` runs every object check over a render: the good prod render with its
//! operator resources has no problem; unknown kinds, schema errors and policy problems are all
//! reported, each once, with env, kind/name and path.

use chart_gen::model::Environment;
use chart_gen::validate::{CrdSchemas, Rule, parse_manifests, validate_rendered};
use serde_json::{Value, json};

use crate::support::reference_crds;

fn fixture_text(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/validate/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("fixture exists")
}

#[test]
fn parse_manifests_skips_empty_documents() {
    let yaml = "---\n# Source: datajump/templates/web/hpa.yaml\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n";
    let objects = parse_manifests(yaml).unwrap();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["ConfigMap", "Secret"]);
    assert_eq!(parse_manifests("").unwrap(), Vec::<Value>::new());
}

#[test]
fn parse_manifests_reports_the_bad_document() {
    let err = parse_manifests("kind: ConfigMap\n---\nkind: [\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("document 2 of the manifests is not valid YAML"),
        "{err}"
    );
    let err = parse_manifests("just a string\n").unwrap_err().to_string();
    assert!(err.contains("expected a Kubernetes object"), "{err}");
}

#[test]
fn the_good_prod_render_has_no_problem() {
    let mut objects = parse_manifests(&fixture_text("prod-render.yaml")).unwrap();
    let crds = match reference_crds() {
        Some(crds) => {
            objects.extend(parse_manifests(&fixture_text("operator-crs.yaml")).unwrap());
            crds
        }
        None => CrdSchemas::new(),
    };
    let problems = validate_rendered(Environment::Prod, &objects, &crds);
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{lines:#?}");
}

#[test]
fn every_kind_of_problem_is_reported_once() {
    let mut objects = parse_manifests(&fixture_text("prod-render.yaml")).unwrap();
    let web = objects
        .iter_mut()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "datajump-web")
        .unwrap();
    web["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
    web["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:latest");
    let mut thing = objects[0].clone();
    thing["apiVersion"] = json!("example.com/v1");
    thing["kind"] = json!("Thing");
    objects.push(thing);

    let problems = validate_rendered(Environment::Staging, &objects, &CrdSchemas::new());
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "staging: Deployment/datajump-web: /spec/template/spec/containers/0/imagePullPolicyy: unknown field \"imagePullPolicyy\"",
            "staging: Thing/datajump-scheduler: no schema for example.com/v1/Thing: pass --crd-dir with its CRD",
            "staging: Deployment/datajump-web: /spec/template/spec/containers/0/image: [image-tag] container \"web\": image \"web:latest\" uses the latest tag; pin a version tag or a digest",
        ]
    );
    let rules: Vec<Rule> = problems.iter().map(|p| p.rule).collect();
    assert_eq!(
        rules,
        vec![Rule::KubernetesSchema, Rule::CrdSchema, Rule::Security]
    );
}

/// `validate --no-crds`: the pinned operators' groups pass unchecked, any other kind without a
/// schema is still a problem.
#[test]
fn skipped_operator_groups_pass_unchecked_but_other_unknown_kinds_do_not() {
    let mut objects = parse_manifests(&fixture_text("operator-crs.yaml")).unwrap();
    let no_schema = |crds: &CrdSchemas, objects: &[Value]| -> Vec<String> {
        validate_rendered(Environment::Prod, objects, crds)
            .iter()
            .map(ToString::to_string)
            .filter(|l| l.contains("no schema for"))
            .collect()
    };
    let unchecked = no_schema(&CrdSchemas::new(), &objects);
    assert!(
        unchecked
            .iter()
            .any(|l| l.contains("kafka.strimzi.io/v1/Kafka")),
        "{unchecked:?}"
    );
    let mut skipping = CrdSchemas::new();
    skipping.skip_groups(chart_gen::crds::Sources::pinned().unwrap().groups());
    assert_eq!(no_schema(&skipping, &objects), Vec::<String>::new());

    let mut thing = objects[0].clone();
    thing["apiVersion"] = json!("example.com/v1");
    thing["kind"] = json!("Thing");
    objects.push(thing);
    let lines = no_schema(&skipping, &objects);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("example.com/v1/Thing"), "{lines:?}");
}

#[test]
fn objects_without_api_version_or_kind_are_reported() {
    let objects = vec![json!({"metadata": {"name": "x", "namespace": "n"}})];
    let problems = validate_rendered(Environment::Dev, &objects, &CrdSchemas::new());
    assert!(
        problems
            .iter()
            .any(|p| p.to_string() == "dev: ?/x: object has no apiVersion or kind"),
        "{problems:#?}"
    );
}

#[test]
fn malformed_objects_are_reported_not_panicked_on() {
    let shapes = [
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "n"}, "spec": []}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b", "namespace": "n"},
               "spec": {"replicas": "many", "template": {"spec": {"containers": "web", "volumes": 3}}}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "n"},
               "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {"datajump.io/policy-exception": 7}}, "spec": {"containers": [null, 1, {"securityContext": "x", "resources": []}]}}}}}}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "d", "namespace": "n"}, "spec": {"selector": {"matchExpressions": [{"operator": "Exists"}, 5]}}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "e"}, "subjects": "all"}),
        json!({"apiVersion": 1, "kind": ["Pod"], "metadata": "x"}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "f", "namespace": "n"}, "spec": {"containers": [{"name": "x", "image": 5}]}}),
    ];
    for env in Environment::ALL {
        let problems = validate_rendered(env, &shapes, &CrdSchemas::new());
        for (index, obj) in shapes.iter().enumerate() {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            assert!(
                problems
                    .iter()
                    .any(|p| p.object.as_ref().is_some_and(|o| o.name == name)),
                "{env}: shape {index} ({name}) produced no problem"
            );
        }
    }
}

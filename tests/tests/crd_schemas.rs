//! `chart-gen crds schemas`, which ci.yml runs to give kubeconform strict JSON schemas of the
//! operators' CRDs and the chart's own. Checked on a small fixture CRD: the layout kubeconform's
//! `-schema-location` template wants, served versions only, unknown fields rejected everywhere
//! except where the CRD preserves them, apiVersion, kind and metadata always allowed at the root
//! (as the API server does); input without CRDs is refused. Then, with the reference CRDs
//! (`../shared/crds` or `DATAJUMP_CRD_DIR`): the default inputs are the cache plus the chart's
//! `crds/`, and the schemas accept every custom resource an operator-mode environment renders
//! while catching a misspelled field — checked with a JSON Schema validator, as kubeconform
//! would.

use std::path::{Path, PathBuf};
use std::process::Command;

use chart_gen::crds::Sources;
use chart_gen::generate::CHART_DIR;
use chart_gen::helm::{Helm, TemplateRequest};
use chart_gen::model::Environment;
use datajump_tests::cluster::{cargo_bin, workspace_root};
use serde_json::{Value as Json, json};

struct Run {
    code: Option<i32>,
    stderr: String,
}

/// `chart-gen ARGS` from the workspace root, with `DATAJUMP_CRD_CACHE` set to `cache`.
fn chart_gen(args: &[&str], cache: &Path) -> Run {
    let bin = cargo_bin("chart-gen", &["chart-gen/src", "scheduler-image/api/src"]);
    let out = Command::new(bin)
        .current_dir(workspace_root())
        .args(args)
        .env("DATAJUMP_CRD_CACHE", cache)
        .output()
        .expect("run chart-gen");
    Run {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read_json(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("schema is JSON")
}

/// A CRD shaped like the operators' ones: metadata constrained at the root (as MySQL's is), a
/// nested object, a free-form subtree, and a version that is no longer served.
fn fixture_crd(group: &str, kind: &str, plural: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  names: {{ kind: {kind}, plural: {plural} }}
  scope: Namespaced
  versions:
    - name: v2
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            metadata:
              type: object
              properties:
                name: {{ type: string, maxLength: 40 }}
            spec:
              type: object
              properties:
                instances: {{ type: integer }}
                router:
                  type: object
                  properties:
                    instances: {{ type: integer }}
                podSpec:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
                  properties:
                    nodeName: {{ type: string }}
    - name: v1
      served: false
      storage: false
      schema:
        openAPIV3Schema: {{ type: object }}
"
    )
}

/// The errors a JSON Schema validator reports for `instance` (empty when it is valid).
fn errors(schema: &Json, instance: &Json) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn schemas_are_strict_except_where_the_crd_preserves_unknown_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(
        src.join("crd.yaml"),
        fixture_crd("mysql.example.com", "InnoDBCluster", "innodbclusters"),
    )
    .expect("write crd");
    let out_dir = dir.path().join("schemas");
    let run = chart_gen(
        &["crds", "schemas", "--out", utf8(&out_dir), utf8(&src)],
        dir.path(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("wrote 1 schemas"), "{}", run.stderr);
    // kubeconform's -schema-location template: {{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json
    let schema = read_json(&out_dir.join("mysql.example.com/innodbcluster_v2.json"));
    assert!(
        !out_dir
            .join("mysql.example.com/innodbcluster_v1.json")
            .exists(),
        "unserved versions get no schema"
    );

    assert_eq!(schema["additionalProperties"], Json::Bool(false));
    assert_eq!(schema["properties"]["apiVersion"]["type"], "string");
    assert_eq!(schema["properties"]["kind"]["type"], "string");
    assert_eq!(
        schema["properties"]["metadata"],
        json!({"type": "object"}),
        "metadata is ObjectMeta, not the CRD's partial view of it"
    );
    let spec = &schema["properties"]["spec"];
    assert_eq!(spec["additionalProperties"], Json::Bool(false));
    assert_eq!(
        spec["properties"]["router"]["additionalProperties"],
        Json::Bool(false)
    );
    assert!(
        spec["properties"]["podSpec"]
            .get("additionalProperties")
            .is_none(),
        "x-kubernetes-preserve-unknown-fields stays open"
    );

    // The same properties, as a validator sees them.
    let good = json!({
        "apiVersion": "mysql.example.com/v2",
        "kind": "InnoDBCluster",
        "metadata": {"name": "a-name-longer-than-forty-characters-is-still-fine", "labels": {"a": "b"}},
        "spec": {"instances": 3, "router": {"instances": 1}, "podSpec": {"anything": {"goes": 1}}}
    });
    assert_eq!(errors(&schema, &good), Vec::<String>::new());
    let mut typo = good.clone();
    typo["spec"]["router"]["instancez"] = json!(1);
    let found = errors(&schema, &typo);
    assert!(
        found.len() == 1 && found[0].contains("instancez"),
        "{found:?}"
    );
    let mut extra_root = good;
    extra_root["status"] = json!({});
    assert_eq!(errors(&schema, &extra_root).len(), 1);
}

#[test]
fn multi_document_files_give_one_schema_per_crd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("bundle.yaml");
    std::fs::write(
        &bundle,
        format!(
            "{}---\n{}",
            fixture_crd("mysql.example.com", "InnoDBCluster", "innodbclusters"),
            fixture_crd("mysql.example.com", "MySQLBackup", "mysqlbackups")
        ),
    )
    .expect("write");
    let out_dir = dir.path().join("o");
    let run = chart_gen(
        &["crds", "schemas", "--out", utf8(&out_dir), utf8(&bundle)],
        dir.path(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut names: Vec<String> = std::fs::read_dir(out_dir.join("mysql.example.com"))
        .expect("group directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["innodbcluster_v2.json", "mysqlbackup_v2.json"]);
}

#[test]
fn schemas_refuse_input_without_crds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cm.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n",
    )
    .expect("write");
    let out = dir.path().join("o");
    let run = chart_gen(
        &["crds", "schemas", "--out", utf8(&out), utf8(&file)],
        dir.path(),
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("cm.yaml: not a valid apiextensions.k8s.io/v1 CustomResourceDefinition"),
        "{}",
        run.stderr
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let run = chart_gen(
        &["crds", "schemas", "--out", utf8(&out), utf8(&empty)],
        dir.path(),
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no CustomResourceDefinition found in"),
        "{}",
        run.stderr
    );
    assert!(!out.exists(), "nothing written");
}

/// The reference CRDs (`DATAJUMP_CRD_DIR`, else `../shared/crds`). Absent, the test fails
/// saying so, unless `DATAJUMP_SKIP_CRD_TESTS=1`: then `None`, after printing "skipped".
fn reference_crds() -> Option<PathBuf> {
    let dir = std::env::var_os("DATAJUMP_CRD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/crds"));
    if dir.is_dir() {
        return Some(dir);
    }
    let why = format!("the operators' reference CRDs are not at {}", dir.display());
    if std::env::var("DATAJUMP_SKIP_CRD_TESTS").as_deref() != Ok("1") {
        panic!("{why}: set DATAJUMP_CRD_DIR, or DATAJUMP_SKIP_CRD_TESTS=1 to skip this check");
    }
    println!("skipped: {why} (DATAJUMP_SKIP_CRD_TESTS=1)");
    None
}

/// A cache as `chart-gen crds fetch` leaves it, made from the reference copies (the download
/// itself is tested in chart-gen/tests/it/crds_fetch.rs).
fn filled_cache(reference: &Path, root: &Path) {
    let sources = Sources::pinned().expect("pinned sources");
    let dir = root.join(sources.cache_key());
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (_, crd) in sources.crds() {
        std::fs::copy(reference.join(&crd.file), dir.join(&crd.file)).expect("copy CRD");
    }
}

fn render(env: Environment) -> Vec<Json> {
    let root = workspace_root();
    let chart = root.join(CHART_DIR);
    let helm = Helm::locate(None, Some(&root)).expect("helm (run .ci/install-tools.sh)");
    let yaml = helm
        .template(&TemplateRequest {
            release: "datajump",
            namespace: &env.default_namespace(),
            chart: &chart,
            values: vec![chart.join(env.values_file_name())],
            set: Vec::new(),
        })
        .expect("helm template");
    chart_gen::validate::parse_manifests(&yaml).expect("manifests")
}

/// The schema file kubeconform would pick for an object, if the object has a group.
fn schema_path(out: &Path, obj: &Json) -> Option<PathBuf> {
    let (group, version) = obj["apiVersion"].as_str()?.split_once('/')?;
    let kind = obj["kind"].as_str()?.to_lowercase();
    Some(out.join(group).join(format!("{kind}_{version}.json")))
}

#[test]
fn default_inputs_are_the_cache_and_the_charts_crds_and_they_accept_the_charts_resources() {
    let Some(reference) = reference_crds() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let out = dir.path().join("schemas");

    let run = chart_gen(&["crds", "schemas", "--out", utf8(&out)], &cache);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("chart-gen crds fetch"),
        "{}",
        run.stderr
    );

    filled_cache(&reference, &cache);
    let run = chart_gen(&["crds", "schemas", "--out", utf8(&out)], &cache);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for expected in [
        "datajump.io/workflow_v1alpha1.json",
        "datajump.io/workflowrun_v1alpha1.json",
        "kafka.strimzi.io/kafka_v1.json",
        "mysql.oracle.com/innodbcluster_v2.json",
        "elasticsearch.k8s.elastic.co/elasticsearch_v1beta1.json",
        "cert-manager.io/clusterissuer_v1.json",
    ] {
        assert!(out.join(expected).is_file(), "{expected} missing");
    }
    assert!(
        !out.join("elasticsearch.k8s.elastic.co/elasticsearch_v1alpha1.json")
            .exists(),
        "ECK's unserved v1alpha1 gets no schema"
    );

    let mut cluster = None;
    for env in [Environment::Test, Environment::Staging, Environment::Prod] {
        let mut checked = 0;
        for obj in render(env) {
            let Some(path) = schema_path(&out, &obj) else {
                continue;
            };
            if !path.is_file() {
                continue; // a built-in kind: kubeconform's default schemas cover it
            }
            let found = errors(&read_json(&path), &obj);
            assert_eq!(found, Vec::<String>::new(), "{env}: {}", path.display());
            if obj["kind"] == "InnoDBCluster" {
                cluster = Some(obj);
            }
            checked += 1;
        }
        assert!(checked >= 9, "{env}: only {checked} custom resources");
    }

    let mut typo = cluster.expect("an InnoDBCluster is rendered");
    typo["spec"]["instancez"] = json!(3);
    let schema = read_json(&out.join("mysql.oracle.com/innodbcluster_v2.json"));
    let found = errors(&schema, &typo);
    assert!(found.iter().any(|e| e.contains("instancez")), "{found:?}");
}

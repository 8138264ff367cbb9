//! `.github/scripts/crds.py`, which ci.yml uses to fetch the operators' CRDs at their pinned
//! commits and to turn them into the strict JSON schemas kubeconform validates custom resources
//! with. Checked on small fixture CRDs: multi-document sources are split and named
//! `<group>_<plural>.yaml`, a missing CRD or an unreachable source is an error, and the schemas
//! reject unknown fields everywhere except where the CRD preserves them, while always allowing
//! apiVersion, kind and metadata at the root (as the API server does).

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/scripts/crds.py")
}

fn crds_py(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("run python3 (with PyYAML)")
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
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

fn write_sources(dir: &Path, rows: &[(&str, &str)]) -> PathBuf {
    let commit = "aec777a1f91d2c26c1d3470d97ec77899d73eadf";
    let text: String = rows
        .iter()
        .map(|(file, path)| format!("{file}  example/operator  {commit}  {path}\n"))
        .collect();
    let sources = dir.join("sources.txt");
    std::fs::write(&sources, format!("# fixture\n{text}")).expect("write sources");
    sources
}

/// A local mirror laid out like raw.githubusercontent.com: `<repo>/<commit>/<path>`.
fn mirror_file(mirror: &Path, path: &str, text: &str) {
    let target = mirror
        .join("example/operator/aec777a1f91d2c26c1d3470d97ec77899d73eadf")
        .join(path);
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::fs::write(target, text).expect("write mirror file");
}

#[test]
fn fetch_splits_multi_document_sources_and_names_crds_by_group_and_plural() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mirror = dir.path().join("mirror");
    let bundle = format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{ name: not-a-crd }}\n---\n{}",
        fixture_crd("mysql.example.com", "InnoDBCluster", "innodbclusters"),
        fixture_crd("mysql.example.com", "MySQLBackup", "mysqlbackups")
    );
    mirror_file(&mirror, "deploy/deploy-crds.yaml", &bundle);
    let sources = write_sources(
        dir.path(),
        &[
            (
                "mysql.example.com_innodbclusters.yaml",
                "deploy/deploy-crds.yaml",
            ),
            (
                "mysql.example.com_mysqlbackups.yaml",
                "deploy/deploy-crds.yaml",
            ),
        ],
    );
    let dest = dir.path().join("crds");
    let base = format!("file://{}", mirror.display());
    let out = crds_py(&[
        "fetch",
        utf8(&dest),
        "--sources",
        utf8(&sources),
        "--base-url",
        &base,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&dest)
        .expect("read dest")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "mysql.example.com_innodbclusters.yaml",
            "mysql.example.com_mysqlbackups.yaml"
        ]
    );
    let backup: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(dest.join("mysql.example.com_mysqlbackups.yaml")).expect("read"),
    )
    .expect("yaml");
    assert_eq!(
        backup["spec"]["names"]["kind"].as_str(),
        Some("MySQLBackup")
    );
}

#[test]
fn fetch_fails_on_a_missing_crd_or_source_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mirror = dir.path().join("mirror");
    mirror_file(
        &mirror,
        "crds/all.yaml",
        &fixture_crd("a.example.com", "Thing", "things"),
    );
    let base = format!("file://{}", mirror.display());
    let dest = dir.path().join("crds");

    let sources = write_sources(
        dir.path(),
        &[("a.example.com_others.yaml", "crds/all.yaml")],
    );
    let out = crds_py(&[
        "fetch",
        utf8(&dest),
        "--sources",
        utf8(&sources),
        "--base-url",
        &base,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no CRD for a.example.com_others.yaml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let sources = write_sources(
        dir.path(),
        &[("a.example.com_things.yaml", "crds/gone.yaml")],
    );
    let out = crds_py(&[
        "fetch",
        utf8(&dest),
        "--sources",
        utf8(&sources),
        "--base-url",
        &base,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot download"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("crds/gone.yaml"));
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
    let out = crds_py(&["schemas", utf8(&src), "--out", utf8(&out_dir)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 1 schema(s)"));
    // kubeconform's -schema-location template: {{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json
    let path = out_dir.join("mysql.example.com/innodbcluster_v2.json");
    let schema: Json =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema")).expect("json");
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
        serde_json::json!({"type": "object"}),
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
    let out = crds_py(&["schemas", utf8(&file), "--out", utf8(&dir.path().join("o"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no CustomResourceDefinition found"));
}

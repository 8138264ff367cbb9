//! Helpers the chart tests share: the real helm, the operators' reference CRDs, renders of each
//! environment, object lookup.

use std::path::{Path, PathBuf};

use chart_gen::generate::CHART_DIR;
use chart_gen::helm::{Helm, TemplateRequest};
use chart_gen::model::Environment;
use chart_gen::validate::{self, CrdSchemas};
use serde_json::Value;

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs the chart-gen binary in `root`: (exit code, stdout, stderr).
pub(crate) fn chart_gen(args: &[&str], root: &Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chart-gen"))
        .args(args)
        .env("DATAJUMP_REPO_ROOT", root)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn helm() -> Helm {
    Helm::locate(None, Some(&repo_root()))
        .expect("helm is required for these tests: run `bash .ci/install-tools.sh`")
}

/// Set to `1` to let the tests that need the operators' reference CRDs pass without them; each
/// then prints that it skipped its CRD checks, and `.ci/test` prints the variable in its summary.
pub(crate) const SKIP_CRDS_ENV: &str = "DATAJUMP_SKIP_CRD_TESTS";

/// The operators' reference CRDs: `DATAJUMP_CRD_DIR`, else `../shared/crds` beside the checkout.
/// Without them a test fails saying where to get them, unless [`SKIP_CRDS_ENV`] is `1`: then
/// `None`, after saying so.
pub(crate) fn crd_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DATAJUMP_CRD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/crds"));
    if dir.is_dir() {
        return Some(dir);
    }
    let missing = format!(
        "the operators' reference CRDs are not at {}: set DATAJUMP_CRD_DIR to a directory of \
         them (`chart-gen crds fetch` prints the one it fills)",
        dir.display()
    );
    if std::env::var(SKIP_CRDS_ENV).as_deref() == Ok("1") {
        println!("skipped the CRD checks: {missing}; {SKIP_CRDS_ENV}=1");
        return None;
    }
    panic!("{missing}, or set {SKIP_CRDS_ENV}=1 to skip the checks that need them");
}

/// The reference CRDs loaded as schemas (see [`crd_dir`]).
pub(crate) fn reference_crds() -> Option<CrdSchemas> {
    crd_dir().map(|dir| CrdSchemas::load_dir(&dir).expect("the reference CRD directory loads"))
}

pub(crate) fn render(env: Environment, extra: &[PathBuf]) -> Vec<Value> {
    let chart = repo_root().join(CHART_DIR);
    let mut values = vec![chart.join(env.values_file_name())];
    values.extend(extra.iter().cloned());
    let out = helm()
        .template(&TemplateRequest {
            release: "datajump",
            namespace: &env.default_namespace(),
            chart: &chart,
            values,
            set: Vec::new(),
        })
        .unwrap_or_else(|e| panic!("{env}: {e}"));
    validate::parse_manifests(&out).unwrap()
}

pub(crate) fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

pub(crate) fn kinds(objs: &[Value], kind: &str) -> Vec<Value> {
    objs.iter().filter(|o| o["kind"] == kind).cloned().collect()
}

/// The Secrets a render holds other than ECK's role definitions (`roles.yml` only, no
/// credentials).
pub(crate) fn credential_secrets(objs: &[Value]) -> Vec<String> {
    kinds(objs, "Secret")
        .into_iter()
        .filter(|s| {
            let keys: Vec<&String> = s["stringData"]
                .as_object()
                .into_iter()
                .chain(s["data"].as_object())
                .flat_map(|m| m.keys())
                .collect();
            keys != ["roles.yml"]
        })
        .map(|s| {
            s["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

pub(crate) fn render_with(env: Environment, extra_yaml: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extra.yaml");
    std::fs::write(&file, extra_yaml).unwrap();
    render(env, &[file])
}

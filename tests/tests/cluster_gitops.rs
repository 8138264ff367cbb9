//! The Argo CD manifests `chart-gen argocd` writes, on a real API server with Argo CD's CRDs
//! installed (v3.5.1, from `../shared/crds`): the AppProject, the four Applications and Fluent
//! Bit's namespace apply without a warning, and the API server keeps every field as written
//! (a field its schema does not know would be pruned silently). Argo CD itself does not run
//! here, so nothing is synced: what it would do with them is not proven by this test.

use std::path::Path;

use datajump_tests::cluster::{self, Cluster, cargo_bin, operator_crd_dir, workspace_root};
use serde_json::Value;

fn chart_gen_argocd(out: &Path) {
    let bin = cargo_bin("chart-gen", &["chart-gen/src", "chart-gen/templates"]);
    let result = std::process::Command::new(bin)
        .current_dir(workspace_root())
        .args([
            "argocd",
            "--chart-repo",
            "harbor.example.com/datajump",
            "--crd-dir",
        ])
        .arg(operator_crd_dir())
        .args(["--cluster", "prod=https://prod.example.com:6443", "--out"])
        .arg(out)
        .output()
        .expect("run chart-gen");
    assert!(
        result.status.success(),
        "chart-gen argocd: {}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}

fn get(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    let out = cluster.kubectl_ok(&all).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_argocd_manifests_apply_and_keep_every_field() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    chart_gen_argocd(dir.path());
    cluster.namespace("argocd", &[]);
    // As a user applies them: kubectl apply -f <dir> (client-side, warnings on stderr).
    let applied = cluster
        .kubectl_ok(&["apply", "-f", &dir.path().to_string_lossy()])
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(!stderr.contains("Warning"), "{stderr}");

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let written: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let kind = written["kind"].as_str().unwrap().to_lowercase();
        let name = written["metadata"]["name"].as_str().unwrap();
        let live = match written["metadata"]["namespace"].as_str() {
            Some(ns) => get(cluster, &[&kind, name, "-n", ns]),
            None => get(cluster, &[&kind, name]),
        };
        // The API server adds labels of its own (kubernetes.io/metadata.name): ours must stay.
        for (key, value) in written["metadata"]["labels"].as_object().unwrap() {
            assert_eq!(
                &live["metadata"]["labels"][key],
                value,
                "{}: label {key}",
                path.display()
            );
        }
        if kind != "namespace" {
            assert_eq!(
                live["spec"],
                written["spec"],
                "{}: the API server changed the spec",
                path.display()
            );
        }
    }
    let logging = get(cluster, &["namespace", "datajump-logging"]);
    assert_eq!(
        logging["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let prod = get(cluster, &["application", "datajump-prod", "-n", "argocd"]);
    assert_eq!(
        prod["spec"]["destination"]["server"],
        "https://prod.example.com:6443"
    );
}

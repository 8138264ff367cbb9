//! The supported Kubernetes releases come from one place (`chart_gen::kube_versions`): the
//! chart's `kubeVersion`, the kind matrix of the e2e workflow, the kubeconform target in CI and
//! the README must all say the same.

use chart_gen::kube_versions::{
    NEWEST_TESTED, OLDEST_SUPPORTED, chart_kube_version, supported_range,
};
use datajump_tests::cluster::workspace_root;
use serde_yaml::Value;

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(workspace_root().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_chart_states_the_oldest_supported_release_as_its_only_bound() {
    let chart = yaml("charts/datajump/Chart.yaml");
    assert_eq!(
        chart["kubeVersion"].as_str(),
        Some(chart_kube_version().as_str())
    );
}

#[test]
fn the_kind_job_tests_the_oldest_supported_and_the_newest_tested_release() {
    let e2e = yaml(".github/workflows/e2e.yml");
    let include = e2e["jobs"]["kind"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("e2e.yml: jobs.kind.strategy.matrix.include");
    let versions: Vec<&str> = include
        .iter()
        .map(|entry| {
            entry["kubernetes"]
                .as_str()
                .expect("matrix.include[].kubernetes")
        })
        .collect();
    assert_eq!(
        versions,
        [OLDEST_SUPPORTED.to_string(), NEWEST_TESTED.to_string()]
    );
    for entry in include {
        let version = entry["kubernetes"].as_str().unwrap_or_default();
        let image = entry["node_image"]
            .as_str()
            .expect("matrix.include[].node_image");
        let (tag, digest) = image
            .split_once("@sha256:")
            .unwrap_or_else(|| panic!("{image}: node images are pinned by digest"));
        assert!(
            tag.starts_with(&format!("kindest/node:v{version}.")),
            "{image} is not a {version} node image"
        );
        assert!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{image}: digest"
        );
        assert!(
            entry["kind"].as_str().is_some_and(|k| k.starts_with('v')),
            "each node image names the kind release it was published with"
        );
    }
}

#[test]
fn ci_checks_renders_against_the_oldest_supported_release() {
    let ci = yaml(".github/workflows/ci.yml");
    let target = ci["env"]["KUBERNETES_VERSION"]
        .as_str()
        .expect("ci.yml: env.KUBERNETES_VERSION");
    assert!(
        target.starts_with(&format!("{OLDEST_SUPPORTED}.")),
        "kubeconform checks {target}, not {OLDEST_SUPPORTED}"
    );
}

#[test]
fn the_readme_states_the_supported_range() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let range = supported_range();
    assert!(
        readme.contains(&format!("Kubernetes {range}")),
        "README.md must say \"Kubernetes {range}\""
    );
    for stale in ["1.29", "1.35 range", "1.29–1.35"] {
        assert!(
            !readme.contains(stale),
            "README.md still mentions {stale:?}"
        );
    }
}

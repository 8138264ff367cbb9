//! The deploy workflow's step, `.github/scripts/deploy.sh`, run as the workflow runs it (the same
//! script, the same settings as environment variables) against the local control plane, with the
//! chart from this checkout instead of Harbor: a first install, a site-values change, values the
//! chart refuses, an immutable change stopped by the preview, the same change forced through the
//! override failing at the API server with rollback advice, and the release untouched by every
//! refusal. Not exercised: the Harbor pull and prod's backup step (prod needs its operators'
//! prerequisites; `backup create --wait` itself is proven in cluster_plugin.rs).

use std::path::Path;
use std::process::Command;

use chart_gen::model::Environment;
use datajump_tests::cluster::{self, Cluster, cargo_bin, operator_crd_dir, tool, workspace_root};
use datajump_tests::plugin::prerequisites;

struct Deploy {
    code: Option<i32>,
    output: String,
}

/// `bash .github/scripts/deploy.sh dev <chart version>` with the site folder `site` and `extra`
/// settings.
fn deploy(cluster: &Cluster, site: &Path, extra: &[(&str, &str)]) -> Deploy {
    let chart_gen = cargo_bin("chart-gen", &["chart-gen/src", "scheduler-image/api/src"]);
    let plugin = cargo_bin(
        "kubectl-datajump",
        &[
            "kubectl-datajump/src",
            "chart-gen/src",
            "scheduler-image/api/src",
        ],
    );
    let mut command = Command::new("bash");
    command
        .current_dir(workspace_root())
        .args([
            ".github/scripts/deploy.sh",
            "dev",
            env!("CARGO_PKG_VERSION"),
        ])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("DATAJUMP_CHART", workspace_root().join("charts/datajump"))
        .env("DATAJUMP_SITE_VALUES", site)
        .env("DATAJUMP_CRD_DIR", operator_crd_dir())
        .env("DATAJUMP_TIMEOUT", "5m")
        .env("CHART_GEN", chart_gen)
        .env("KUBECTL_DATAJUMP", plugin)
        .env("HELM", tool("helm4"))
        .env("NO_COLOR", "1");
    for (k, v) in extra {
        command.env(k, v);
    }
    let out = command.output().expect("run deploy.sh");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("$ deploy.sh dev -> {:?}\n{output}", out.status.code());
    Deploy {
        code: out.status.code(),
        output,
    }
}

/// The release's current revision (0 when there is none).
fn revision(cluster: &Cluster) -> u64 {
    let out = Command::new(tool("helm4"))
        .args([
            "history",
            "datajump",
            "-n",
            "datajump-dev",
            "--max",
            "1",
            "-o",
            "json",
        ])
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .output()
        .expect("helm history");
    if !out.status.success() {
        return 0;
    }
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    history[0]["revision"].as_u64().unwrap()
}

fn site_values(site: &Path, yaml: &str) {
    std::fs::write(site.join("values-dev.yaml"), yaml).unwrap();
}

#[test]
fn the_deploy_step_installs_upgrades_and_refuses_what_it_must() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    prerequisites(cluster, Environment::Dev);
    let site = tempfile::tempdir().unwrap();

    // First deploy: no release yet, so no preview; installed and ready.
    site_values(site.path(), "config:\n  logLevel: info\n");
    let first = deploy(cluster, site.path(), &[]);
    assert_eq!(first.code, Some(0), "{}", first.output);
    assert!(first.output.contains("first install"), "{}", first.output);
    assert_eq!(revision(cluster), 1);

    // A change of the site's values: previewed, then upgraded.
    site_values(site.path(), "config:\n  logLevel: debug\n");
    let second = deploy(cluster, site.path(), &[]);
    assert_eq!(second.code, Some(0), "{}", second.output);
    assert!(
        second.output.contains("changed  ConfigMap/datajump-config"),
        "{}",
        second.output
    );
    assert_eq!(revision(cluster), 2);

    // Values the chart refuses: stopped by validation, named with file and field.
    site_values(site.path(), "config:\n  logLevell: debug\n");
    let bad = deploy(cluster, site.path(), &[]);
    assert_eq!(bad.code, Some(2), "{}", bad.output);
    assert!(
        bad.output
            .contains("values-dev.yaml: /config: unknown field \"logLevell\""),
        "{}",
        bad.output
    );
    assert_eq!(revision(cluster), 2, "nothing deployed");

    // A larger MySQL volume changes a StatefulSet's volumeClaimTemplates: the preview stops it.
    site_values(site.path(), "mysql:\n  embedded:\n    storage: 16Gi\n");
    let immutable = deploy(cluster, site.path(), &[]);
    assert_eq!(immutable.code, Some(3), "{}", immutable.output);
    assert!(
        immutable
            .output
            .contains("IMMUTABLE StatefulSet/datajump-mysql"),
        "{}",
        immutable.output
    );
    assert!(
        immutable.output.contains("nothing was changed"),
        "{}",
        immutable.output
    );
    assert_eq!(revision(cluster), 2, "nothing deployed");

    // Forced through, the API server refuses it; the script says how to roll back.
    let forced = deploy(
        cluster,
        site.path(),
        &[("DATAJUMP_ALLOW_IMMUTABLE", "true")],
    );
    assert_eq!(forced.code, Some(1), "{}", forced.output);
    assert!(
        forced.output.contains("the override was given"),
        "{}",
        forced.output
    );
    assert!(
        forced
            .output
            .contains("helm rollback datajump 2 -n datajump-dev --wait"),
        "{}",
        forced.output
    );

    // Bad arguments change nothing either.
    let out = Command::new("bash")
        .current_dir(workspace_root())
        .args([".github/scripts/deploy.sh", "qa", "1.0.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown environment \"qa\""));
}

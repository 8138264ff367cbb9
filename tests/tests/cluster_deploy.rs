//! The deploy workflow's step, `.github/scripts/deploy.sh`, run as the workflow runs it (the same
//! script, the same settings as environment variables) against the local control plane, with the
//! chart from this checkout instead of Harbor: a first install, a site-values change, values the
//! chart refuses, an immutable change stopped by the preview, the same change forced through the
//! override failing at the API server with rollback advice, and the release untouched by every
//! refusal; and prod with Helm 3.18 (the version the workflow installs): installed, then previewed,
//! backed up and upgraded in that order. Not exercised: the Harbor pull, and `backup create
//! --wait` reading the backup name from the Job's log (it needs a kubelet; the test cluster's fake
//! one runs no containers).

use std::path::{Path, PathBuf};
use std::process::Command;

use chart_gen::model::Environment;
use datajump_tests::cluster::{self, Cluster, cargo_bin, operator_crd_dir, tool, workspace_root};
use datajump_tests::plugin::prerequisites;

struct Deploy {
    code: Option<i32>,
    output: String,
}

fn plugin_bin() -> PathBuf {
    cargo_bin(
        "kubectl-datajump",
        &[
            "kubectl-datajump/src",
            "chart-gen/src",
            "scheduler-image/api/src",
        ],
    )
}

/// `bash .github/scripts/deploy.sh dev <chart version>` with the site folder `site` and `extra`
/// settings.
fn deploy(cluster: &Cluster, site: &Path, extra: &[(&str, &str)]) -> Deploy {
    deploy_env(cluster, "dev", site, extra)
}

/// `bash .github/scripts/deploy.sh <env> <chart version>` with Helm 4 unless `extra` sets HELM.
fn deploy_env(cluster: &Cluster, env: &str, site: &Path, extra: &[(&str, &str)]) -> Deploy {
    let chart_gen = cargo_bin("chart-gen", &["chart-gen/src", "scheduler-image/api/src"]);
    let mut command = Command::new("bash");
    command
        .current_dir(workspace_root())
        .args([".github/scripts/deploy.sh", env, env!("CARGO_PKG_VERSION")])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("DATAJUMP_CHART", workspace_root().join("charts/datajump"))
        .env("DATAJUMP_SITE_VALUES", site)
        .env("DATAJUMP_CRD_DIR", operator_crd_dir())
        .env("DATAJUMP_TIMEOUT", "5m")
        .env("CHART_GEN", chart_gen)
        .env("KUBECTL_DATAJUMP", plugin_bin())
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
    eprintln!("$ deploy.sh {env} -> {:?}\n{output}", out.status.code());
    Deploy {
        code: out.status.code(),
        output,
    }
}

/// The dev release's current revision (0 when there is none).
fn revision(cluster: &Cluster) -> u64 {
    revision_in(cluster, "datajump-dev")
}

fn revision_in(cluster: &Cluster, namespace: &str) -> u64 {
    let out = Command::new(tool("helm4"))
        .args([
            "history", "datajump", "-n", namespace, "--max", "1", "-o", "json",
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
    // The chart came from a local folder, which holds the version that failed: the plugin's
    // advice names the previous version's folder with --chart-dir, and the site's values then.
    let version = env!("CARGO_PKG_VERSION");
    let advice = format!(
        "  or: kubectl datajump upgrade --env dev --chart-dir <chart {version}'s folder, e.g. charts/datajump at tag v{version}> -f <values-dev.yaml as it was for {version}> --wait"
    );
    assert!(
        forced.output.contains(&advice),
        "{advice}\nin:\n{}",
        forced.output
    );
    assert!(!forced.output.contains("--chart /"), "{}", forced.output);

    // Bad arguments change nothing either.
    let out = Command::new("bash")
        .current_dir(workspace_root())
        .args([".github/scripts/deploy.sh", "qa", "1.0.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown environment \"qa\""));
}

/// Prod as the workflow deploys it, with Helm 3.18 (what `azure/setup-helm` installs there): the
/// first deploy installs without a preview or a backup (there is nothing yet); the next one
/// previews, backs up and only then upgrades. The plugin is wrapped (`KUBECTL_DATAJUMP`) by a
/// script that records each call and runs the real plugin; `backup create` runs without `--wait`
/// (the fake kubelet writes no log to read the backup name from), so the backup Job is created
/// for real and checked here.
#[test]
fn prod_is_previewed_backed_up_and_upgraded_in_that_order_with_helm_3() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    prerequisites(cluster, Environment::Prod);
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let calls = work.path().join("calls.log");
    let wrapper = work.path().join("kubectl-datajump");
    std::fs::write(
        &wrapper,
        format!(
            r#"#!/usr/bin/env bash
echo "$*" >> {calls:?}
if [ "$1" = backup ]; then
  args=()
  for a in "$@"; do [ "$a" = --wait ] || args+=("$a"); done
  exec {real:?} "${{args[@]}}"
fi
exec {real:?} "$@"
"#,
            calls = calls,
            real = plugin_bin(),
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    let helm3 = tool("helm3");
    let settings = [
        ("KUBECTL_DATAJUMP", wrapper.to_str().unwrap()),
        ("HELM", helm3.to_str().unwrap()),
        ("DATAJUMP_TIMEOUT", "10m"),
    ];
    // The calls since the last look, each as its first two words; the full lines are kept.
    let mut full = Vec::new();
    let mut recorded = || -> Vec<String> {
        let text = std::fs::read_to_string(&calls).unwrap_or_default();
        std::fs::remove_file(&calls).ok();
        full.extend(text.lines().map(str::to_string));
        text.lines()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let helm_version = Command::new(&helm3)
        .args(["version", "--short"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&helm_version.stdout).starts_with("v3.18."),
        "{helm_version:?}"
    );

    let first = deploy_env(cluster, "prod", &site, &settings);
    assert_eq!(first.code, Some(0), "{}", first.output);
    assert!(first.output.contains("first install"), "{}", first.output);
    assert_eq!(recorded(), ["upgrade --env"]);
    assert_eq!(revision_in(cluster, "datajump-prod"), 1);

    std::fs::write(site.join("values-prod.yaml"), "config:\n  logLevel: warn\n").unwrap();
    let second = deploy_env(cluster, "prod", &site, &settings);
    assert_eq!(second.code, Some(0), "{}", second.output);
    assert_eq!(
        recorded(),
        ["diff --env", "backup create", "upgrade --env"],
        "{}",
        second.output
    );
    assert!(
        full.contains(&"backup create --env prod --wait".to_string()),
        "{full:?}"
    );
    assert!(
        second.output.contains("changed  ConfigMap/datajump-config"),
        "{}",
        second.output
    );
    let text = second.output.as_str();
    let (backup, upgrade) = (
        text.find("== backup before upgrading prod")
            .expect("the backup step"),
        text.find("== upgrade").expect("the upgrade step"),
    );
    assert!(backup < upgrade, "{text}");
    assert_eq!(revision_in(cluster, "datajump-prod"), 2);
    // The backup Job exists, made from the chart's CronJob by the plugin.
    let jobs = cluster
        .kubectl_ok(&[
            "get",
            "jobs",
            "-n",
            "datajump-prod",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .expect("list Jobs");
    let jobs = String::from_utf8_lossy(&jobs.stdout).into_owned();
    assert!(
        jobs.split(' ').any(|j| j.starts_with("datajump-backup-")),
        "a backup Job in datajump-prod: {jobs:?}"
    );
}

//! Installing prod from a private registry on a real API server (the local control plane; pods
//! played by the fake kubelet): the images and the chart are loaded into a "Harbor" (a real
//! registry with a password and a certificate from a test CA), pinned with `images lock`, and
//! installed with plain `helm install oci://…` on Helm 3.18 and Helm 4 and with `kubectl
//! datajump install --chart oci://…`. Every pod template's image must then be
//! `HOST/PROJECT/…@sha256:…`, and each such manifest must exist in the registry (asked through
//! its API with skopeo, not compared as strings).

use std::path::Path;
use std::process::{Command, Output};

use chart_gen::model::Environment;
use chart_gen::model::mirror::ImageRef;
use datajump_tests::cluster::{self, Cluster, tool, workspace_root};
use datajump_tests::plugin::{self as dj, plugin_command, run_logged};
use datajump_tests::registry::{TestRegistry, USER, helm_in, seed, upstreams};
use serde_json::Value;

/// Helm with its registry login kept in `home`.
fn helm(bin: &str, home: &Path, args: &[&str]) -> Output {
    let out = helm_in(bin, home).args(args).output().expect("helm");
    eprintln!(
        "$ {bin} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every container image of the pod templates in `namespaces`.
fn pod_template_images(cluster: &Cluster, namespaces: &[&str]) -> Vec<String> {
    let mut images = Vec::new();
    for ns in namespaces {
        let out = cluster.kubectl(&[
            "get",
            "deployments,statefulsets,daemonsets,cronjobs,jobs",
            "-n",
            ns,
            "-o",
            "json",
        ]);
        let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl JSON");
        for item in list["items"].as_array().into_iter().flatten() {
            let spec = if item["kind"] == "CronJob" {
                &item["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            } else {
                &item["spec"]["template"]["spec"]
            };
            for key in ["containers", "initContainers"] {
                for c in spec[key].as_array().into_iter().flatten() {
                    images.push(c["image"].as_str().unwrap_or_default().to_string());
                }
            }
        }
    }
    images.sort();
    images.dedup();
    images
}

/// Each image is pinned, in the registry's project, and its manifest is there.
fn assert_pinned_in(registry: &TestRegistry, project: &str, images: &[String]) {
    assert!(images.len() >= 8, "{images:?}");
    for image in images {
        let parsed = ImageRef::parse(image).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.registry, registry.host(), "{image}");
        assert!(
            parsed.repository.starts_with(&format!("{project}/")),
            "{image}"
        );
        let digest = parsed
            .digest
            .as_deref()
            .unwrap_or_else(|| panic!("{image} is not pinned to a digest"));
        let (_, got) = registry
            .manifest(&format!("{}@{digest}", parsed.repository))
            .unwrap_or_else(|| panic!("{image}: no such manifest in the registry"));
        assert_eq!(got, digest);
    }
}

/// What the chart README asks a plain Helm user to create first (see cluster_chart.rs).
fn plain_helm_prerequisites(cluster: &Cluster, ns: &str, logging_ns: &str) {
    let env = Environment::Prod;
    cluster.namespace(
        ns,
        &[
            ("env", env.as_str()),
            ("pod-security.kubernetes.io/enforce", "restricted"),
        ],
    );
    cluster.namespace(
        logging_ns,
        &[("pod-security.kubernetes.io/enforce", "privileged")],
    );
    cluster::credentials_secret(cluster, env, ns);
    dj::operator_secrets(cluster, env, ns);
    dj::log_shipping_secrets(cluster, env, ns, logging_ns);
}

/// checkov's digest check (CKV_K8S_43), which `.ci/policy-scan` has to tolerate for the
/// chart's own values, passes on every workload of prod rendered with the lock file.
fn checkov_finds_every_image_pinned(lock: &str) {
    let work = tempfile::tempdir().unwrap();
    let render = work.path().join("prod.yaml");
    let out = Command::new(tool("helm4"))
        .current_dir(workspace_root())
        .args([
            "template",
            "datajump",
            "charts/datajump",
            "-n",
            "datajump-prod",
        ])
        .args(["-f", "charts/datajump/values-prod.yaml", "-f", lock])
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&render, &out.stdout).unwrap();
    let out = Command::new(tool("checkov"))
        .args([
            "--framework",
            "kubernetes",
            "--check",
            "CKV_K8S_43",
            "--skip-download",
        ])
        .args(["-o", "json", "-f"])
        .arg(&render)
        .output()
        .expect("checkov (bash .ci/install-tools.sh)");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov JSON: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let summary = &report["summary"];
    assert_eq!(
        summary["failed"], 0,
        "{}",
        report["results"]["failed_checks"]
    );
    assert!(summary["passed"].as_u64().unwrap_or(0) >= 8, "{summary}");
}

#[test]
fn prod_installs_from_the_private_registry_pinned_by_digest() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let upstream = TestRegistry::start(false, true);
    let harbor = TestRegistry::start(true, true);
    let password = harbor.password.clone().expect("password");
    let harbor_ca = harbor.ca().expect("ca").display().to_string();
    let upstream_ca = upstream.ca().expect("ca").display().to_string();
    let work = tempfile::tempdir().unwrap();
    let (flags, _) = seed(&upstream, &upstreams("prod"), work.path());
    let to = format!("{}/datajump", harbor.host());

    // Images and chart into "Harbor" (save + load), then the lock file.
    let archive = work.path().join("prod.tar").display().to_string();
    let mut save = vec!["images", "save", "--env", "prod", "-o", &archive];
    save.extend(["--ca-file", &upstream_ca]);
    save.extend(flags.iter().map(String::as_str));
    assert!(dj::plugin_offline(&save, None).ok);
    let load = [
        "images",
        "load",
        &archive,
        "--to",
        &to,
        "--username",
        USER,
        "--password-stdin",
        "--ca-file",
        &harbor_ca,
    ];
    assert!(dj::plugin_offline(&load, Some(&password)).ok);
    let lock = work.path().join("lock.yaml").display().to_string();
    let lock_args = [
        "images",
        "lock",
        "--env",
        "prod",
        "--registry",
        &to,
        "--username",
        USER,
        "--password-stdin",
        "--ca-file",
        &harbor_ca,
        "-o",
        &lock,
    ];
    assert!(dj::plugin_offline(&lock_args, Some(&password)).ok);
    let chart_yaml =
        std::fs::read_to_string(workspace_root().join("charts/datajump/Chart.yaml")).unwrap();
    let version = chart_yaml
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .expect("chart version")
        .trim()
        .to_string();
    checkov_finds_every_image_pinned(&lock);
    let chart = format!("oci://{to}/datajump");
    let kubeconfig = cluster.kubeconfig.display().to_string();

    // Plain helm install from the registry, Helm 3.18 and Helm 4.
    for bin in ["helm3", "helm4"] {
        let home = tempfile::tempdir().unwrap();
        harbor.helm_login(bin, home.path());
        let ns = format!("{bin}-oci-prod");
        let logging_ns = format!("{ns}-logging");
        plain_helm_prerequisites(cluster, &ns, &logging_ns);
        let logging = format!("observability.fluentBit.namespace={logging_ns}");
        let install = helm(
            bin,
            home.path(),
            &[
                "install",
                "datajump",
                &chart,
                "--version",
                &version,
                "--ca-file",
                &harbor_ca,
                "-n",
                &ns,
                "-f",
                "charts/datajump/values-prod.yaml",
                "-f",
                &lock,
                "--set",
                &logging,
                "--kubeconfig",
                &kubeconfig,
            ],
        );
        assert!(
            install.status.success(),
            "{bin} install: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        assert_pinned_in(
            &harbor,
            "datajump",
            &pod_template_images(cluster, &[&ns, &logging_ns]),
        );
    }

    // kubectl datajump install --chart oci://… with the lock file; helm (which the plugin runs
    // to pull the chart) trusts the registry's CA through SSL_CERT_FILE and finds the login in
    // its registry config.
    let home = tempfile::tempdir().unwrap();
    harbor.helm_login("helm4", home.path());
    dj::prerequisites(cluster, Environment::Prod);
    let ns = Environment::Prod.default_namespace();
    let logging_ns = format!("{ns}-logging");
    let logging = format!("observability.fluentBit.namespace={logging_ns}");
    let args = [
        "install",
        "--env",
        "prod",
        "--chart",
        &chart,
        "--version",
        &version,
        "-f",
        &lock,
        "--set",
        &logging,
        "--kubeconfig",
        &kubeconfig,
    ];
    let mut cmd = plugin_command();
    cmd.args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("SSL_CERT_FILE", &harbor_ca);
    let run = run_logged(cmd, &args, None);
    assert!(run.ok, "{}", run.stderr);
    assert_pinned_in(
        &harbor,
        "datajump",
        &pod_template_images(cluster, &[&ns, &logging_ns]),
    );
}

//! The plugin driving the real helm against the generated chart (`charts/datajump`): the images
//! of every environment and a client-side dry-run install. Fails, saying how to get them, when
//! the chart or helm is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/datajump")
}

/// The generated chart and helm as chart-gen finds it (the pinned copy, else PATH); a missing
/// one fails the test saying how to get it.
fn prerequisites() -> (PathBuf, PathBuf) {
    let chart = chart_dir();
    assert!(
        chart.join("Chart.yaml").is_file(),
        "{} is not generated (run `cargo run -p chart-gen -- generate`)",
        chart.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let helm = chart_gen::helm::Helm::locate(None, Some(&root)).unwrap_or_else(|e| panic!("{e}"));
    (chart, helm.program().to_path_buf())
}

fn plugin(args: &[&str], chart: &Path, helm: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-datajump"))
        .args(args)
        .arg("--chart-dir")
        .arg(chart)
        .arg("--helm")
        .arg(helm)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("run kubectl-datajump");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn images_of_every_environment_come_from_the_rendered_chart() {
    let (chart, helm) = prerequisites();
    for env in ["dev", "test", "staging", "prod"] {
        let (code, stdout, stderr) = plugin(&["images", "--env", env, "-o", "json"], &chart, &helm);
        assert_eq!(code, 0, "images --env {env}: {stderr}");
        let answer: Value = serde_json::from_str(&stdout).expect("images -o json is JSON");
        let images = answer["images"].as_array().expect("images array");
        assert!(images.len() >= 5, "{env}: only {} images", images.len());
        for i in images {
            let name = i["image"].as_str().unwrap();
            assert!(
                name.contains(':') || name.contains('@'),
                "{env}: image {name} has no tag or digest"
            );
            assert!(!i["usedBy"].as_array().unwrap().is_empty());
        }
        let scheduler = images.iter().any(|i| {
            i["usedBy"]
                .to_string()
                .contains("Deployment/datajump-scheduler")
        });
        assert!(scheduler, "{env}: the scheduler's image is listed");
    }
}

#[test]
fn dry_run_install_renders_every_environment_without_a_cluster() {
    let (chart, helm) = prerequisites();
    for env in ["dev", "prod"] {
        let (code, stdout, stderr) = plugin(
            &["install", "--env", env, "--dry-run", "-o", "json"],
            &chart,
            &helm,
        );
        if code != 0 && stderr.contains("cluster unreachable") {
            // Helm 3 consults the cluster even for --dry-run=client installs; Helm 4 does not.
            // That is the one way this may fail without a cluster, and only on Helm 3.
            let version = Command::new(&helm)
                .args(["version", "--template", "{{.Version}}"])
                .output()
                .expect("helm version");
            let version = String::from_utf8_lossy(&version.stdout).into_owned();
            assert!(version.starts_with("v3."), "helm {version}: {stderr}");
            return;
        }
        assert_eq!(code, 0, "install --env {env} --dry-run: {stderr}");
        let summary: Value = serde_json::from_str(&stdout).expect("JSON summary");
        assert_eq!(summary["namespace"], format!("datajump-{env}"));
        assert_eq!(summary["dryRun"], true);
        assert!(
            summary["objects"]["Deployment"].as_u64().unwrap_or(0) >= 6,
            "{summary}"
        );
    }
}

#[test]
fn invalid_values_are_refused_before_helm_runs() {
    let (chart, helm) = prerequisites();
    let (code, _, stderr) = plugin(
        &[
            "install",
            "--env",
            "dev",
            "--dry-run",
            "--set",
            "scheduler.replicas=many",
        ],
        &chart,
        &helm,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--set scheduler.replicas=many: /scheduler/replicas:"),
        "{stderr}"
    );
}

/// The upgrade preview's comparison on two real renderings: a bigger MySQL volume is an
/// immutable StatefulSet change the API server would refuse; more web replicas are not.
#[tokio::test]
async fn diff_of_real_renderings_flags_the_volume_claim_template_change() {
    use kubectl_datajump::helm::{Helm, Release};
    use kubectl_datajump::manifests::{self, ChangeKind};
    let (chart, helm_bin) = prerequisites();
    let helm = Helm {
        bin: helm_bin,
        kubeconfig: None,
        context: None,
        verbose: false,
    };
    let release = |set: Vec<String>| Release {
        name: "datajump".into(),
        namespace: "datajump-dev".into(),
        env_values: chart.join("values-dev.yaml"),
        chart_dir: chart.clone(),
        values: vec![],
        set,
        set_string: vec![],
        timeout: std::time::Duration::from_secs(60),
        dry_run: true,
    };
    let render = |r: Release| {
        let helm = helm.clone();
        async move {
            manifests::parse(
                &helm
                    .run(&helm.template_args(&r))
                    .await
                    .expect("helm template"),
            )
            .expect("YAML")
        }
    };
    let before = render(release(vec![])).await;
    let after = render(release(vec![
        "mysql.embedded.storage=20Gi".into(),
        "web.replicas=3".into(),
    ]))
    .await;
    let cmp = manifests::compare(&before, &after, "datajump-dev");
    let changed: Vec<String> = cmp
        .changes
        .iter()
        .filter(|c| c.change == ChangeKind::Changed)
        .map(|c| format!("{}/{}", c.kind, c.name))
        .collect();
    assert!(
        changed.contains(&"StatefulSet/datajump-mysql".to_string()),
        "{changed:?}"
    );
    assert!(
        changed.contains(&"Deployment/datajump-web".to_string()),
        "{changed:?}"
    );
    let immutable: Vec<(&str, &str)> = cmp
        .immutable
        .iter()
        .map(|i| (i.object.as_str(), i.field))
        .collect();
    assert_eq!(
        immutable,
        [("StatefulSet/datajump-mysql", "/spec/volumeClaimTemplates")]
    );
}

/// Run from a checkout after `bash .ci/build`, with no helm on PATH and no `--helm`: the plugin
/// finds the pinned `.tools/bin/helm` as chart-gen does; `DATAJUMP_HELM` still wins over it.
#[test]
fn from_a_checkout_the_pinned_helm_is_found_without_path_or_flags() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join(".tools/bin/helm").is_file(),
        "no pinned helm in .tools/bin: run `bash .ci/install-tools.sh`"
    );
    let images = |helm_env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-datajump"));
        cmd.args(["images", "--env", "prod", "-o", "json"])
            .current_dir(root.join("charts"))
            .env("PATH", "/usr/bin:/bin")
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env_remove("DATAJUMP_HELM");
        if let Some(helm) = helm_env {
            cmd.env("DATAJUMP_HELM", helm);
        }
        cmd.arg("--chart-dir").arg(chart_dir());
        cmd.output().expect("run kubectl-datajump")
    };
    let out = images(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("helm not found"), "{err}");
    let list: Value = serde_json::from_slice(&out.stdout).expect("the image list as JSON");
    assert!(!list["images"].as_array().unwrap().is_empty(), "{list}");

    let overridden = images(Some("/nonexistent/helm"));
    assert_eq!(overridden.status.code(), Some(2));
    let err = String::from_utf8_lossy(&overridden.stderr);
    assert!(err.contains("helm binary /nonexistent/helm"), "{err}");
}

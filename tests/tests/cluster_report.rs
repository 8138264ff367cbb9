//! `kubectl datajump report` on a real API server (the local control plane, fake kubelet): the
//! dev release installed with known secret values planted where support bundles leak them —
//! a Secret (and its `last-applied-configuration` copy), the Helm values, a container's env, a
//! ConfigMap, a connection string, a WorkflowRun's parameters — and the bundle proven to hold
//! none of them in any form, while keeping the keys and every part a support engineer needs.
//! Then the same with a ServiceAccount that may read only some things: what it may not read is
//! listed in the archive, the command still succeeds. And bad input: nothing written, exit 2.
//!
//! The fake kubelet serves no logs; the secret in a task's log line is proven on the real node
//! (`real_node/report.rs`).

use std::path::{Path, PathBuf};

use datajump_tests::cluster::{self, Cluster};
use datajump_tests::plugin::{Run, install_dev_with, plugin, plugin_command, run_logged};
use datajump_tests::report::Bundle;
use serde_json::Value;

const NS: &str = "report-dev";

/// Planted values, each unique so that any occurrence is a leak.
const IN_SECRET: &str = "PlantedSecretValue-7f3a9c";
const IN_SECRET_FILE: &str = "PlantedEmbedded-41c2aa";
const IN_VALUES: &str = "PlantedValues-9d1e0b";
const IN_ENV: &str = "PlantedEnv-5b7c3d";
const IN_CONFIGMAP: &str = "PlantedConfig-2e8f61";
const ALL: [&str; 5] = [IN_SECRET, IN_SECRET_FILE, IN_VALUES, IN_ENV, IN_CONFIGMAP];

/// The dev release in [`NS`] with the planted values, once for this binary's tests.
fn planted() -> Option<&'static Cluster> {
    static PLANTED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let cluster = cluster::shared()?;
    PLANTED.get_or_init(|| plant(cluster));
    Some(cluster)
}

fn plant(cluster: &Cluster) {
    // In the Helm values, and so in the web Deployment's env.
    let set = format!("web.env.DB_PASSWORD={IN_VALUES}");
    install_dev_with(cluster, NS, &["--set", &set]);
    // Client-side apply, as many users apply: the annotation repeats the whole object. The
    // namespace enforces the restricted Pod Security level, which the Deployment meets.
    kubectl_apply(
        cluster,
        "planted.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: report-planted\n  namespace: {NS}\n\
             stringData:\n  password: {IN_SECRET}\n  app.env: |\n    export APP_TOKEN={IN_SECRET_FILE}\n    export REGION=eu\n\
             ---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: report-app-config\n  namespace: {NS}\n\
             data:\n  DB_PASSWORD: {IN_CONFIGMAP}\n  DB_HOST: mysql\n  connection: mysql://app:{IN_SECRET}@mysql:3306/datajump\n\
             ---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: report-app\n  namespace: {NS}\n\
             spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: report-app}}}}\n  template:\n    metadata: {{labels: {{app: report-app}}}}\n    spec:\n      securityContext: {{runAsNonRoot: true, runAsUser: 1000, seccompProfile: {{type: RuntimeDefault}}}}\n      containers:\n        - name: app\n          image: busybox\n          securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n          env:\n            - {{name: API_TOKEN, value: {IN_ENV}}}\n            - {{name: REGION, value: eu}}\n          args: [\"--db-password={IN_CONFIGMAP}\"]\n\
             ---\n\
             apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: nightly\n  namespace: {NS}\n\
             spec:\n  schedule: \"0 2 * * *\"\n  suspend: true\n  tasks:\n    - {{name: load, image: busybox}}\n"
        ),
    );
    for i in 1..=3 {
        cluster.apply_yaml(&format!(
            "apiVersion: datajump.io/v1alpha1\nkind: WorkflowRun\nmetadata:\n  name: nightly-manual-{i}\n  namespace: {NS}\n\
             spec:\n  workflowName: nightly\n  parameters: {{password: {IN_SECRET}, day: '2026-12-0{i}'}}\n"
        ));
    }
    cluster::wait_until(
        "the planted Deployment's pod",
        std::time::Duration::from_secs(60),
        || {
            let out = cluster.kubectl(&[
                "get",
                "pods",
                "-n",
                NS,
                "-l",
                "app=report-app",
                "-o",
                "name",
            ]);
            (!out.stdout.is_empty()).then_some(())
        },
    );
}

fn kubectl_apply(cluster: &Cluster, file: &str, yaml: &str) {
    let path = cluster.dir.join(file);
    std::fs::write(&path, yaml).expect("write the manifest");
    cluster
        .kubectl_ok(&["apply", "-f", &path.to_string_lossy()])
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `report --env dev -n NS ARGS` with the admin kubeconfig.
fn report(cluster: &Cluster, args: &[&str]) -> Run {
    let mut all = vec!["report", "--env", "dev", "-n", NS];
    all.extend_from_slice(args);
    plugin(cluster, &all)
}

/// Every Secret value of the namespace at least 8 bytes long, decoded.
fn every_secret_value(cluster: &Cluster) -> Vec<String> {
    use base64::Engine as _;
    let out = cluster
        .kubectl_ok(&["get", "secrets", "-n", NS, "-o", "json"])
        .expect("list the Secrets");
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut values = Vec::new();
    for secret in list["items"].as_array().expect("items") {
        for value in secret["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| v)
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().unwrap_or_default())
                .expect("base64");
            let text = String::from_utf8_lossy(&decoded).trim().to_string();
            if text.len() >= 8 {
                values.push(text);
            }
        }
    }
    values
}

/// `reports/<name>` in the cluster's folder (`<test>/<file>` keeps a test's files apart).
fn out_path(cluster: &Cluster, name: &str) -> PathBuf {
    let dir = cluster.dir.join("reports");
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("a folder for the reports");
    path
}

#[test]
fn the_bundle_holds_the_environment_and_no_planted_secret() {
    let Some(cluster) = planted() else { return };
    let path = out_path(cluster, "admin.zip");
    let _ = std::fs::remove_file(&path);
    let path_text = path.to_string_lossy().into_owned();
    // `-o FILE.zip` names the file, `-o json` the answer's format.
    let run = report(
        cluster,
        &["-o", &path_text, "-o", "json", "--max-runs", "2"],
    );
    assert!(run.ok, "report: {}", run.stderr);
    let summary = run.json();
    assert_eq!(summary["file"], path_text.as_str());
    assert_eq!(summary["forbidden"], 0, "{summary}");
    assert!(summary["pods"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(summary["workflowRuns"], 3);

    let bundle = Bundle::open(&path);
    bundle.assert_free_of(&ALL);
    let values = every_secret_value(cluster);
    assert!(
        values.len() >= 7,
        "the credentials Secret and the planted one: {values:?}"
    );
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    bundle.assert_free_of(&values);

    // The keys are kept, the values replaced by their size.
    let secret = bundle.text(&format!("objects/{NS}/secrets/report-planted.yaml"));
    let app_env = format!("export APP_TOKEN={IN_SECRET_FILE}\nexport REGION=eu\n");
    for (key, bytes) in [("password", IN_SECRET.len()), ("app.env", app_env.len())] {
        let kept = format!("{key}: '<redacted: {bytes} bytes>'");
        assert!(secret.contains(&kept), "{kept} in {secret}");
    }
    assert!(
        secret.contains("kubectl.kubernetes.io/last-applied-configuration: <redacted>"),
        "{secret}"
    );
    let config = bundle.text(&format!("objects/{NS}/configmaps/report-app-config.yaml"));
    assert!(config.contains("DB_PASSWORD: '<redacted"), "{config}");
    assert!(config.contains("DB_HOST: mysql"), "{config}");
    assert!(
        config.contains(
            "mysql://app:<redacted: Secret report-planted key password>@mysql:3306/datajump"
        ),
        "a Secret's value is named where it appears: {config}"
    );
    // A field naming a Secret's key is a reference, kept.
    let values = bundle.text("release/computed-values.yaml");
    assert!(values.contains("accessKeyKey: access-key"), "{values}");
    let deployment = bundle.text(&format!("objects/{NS}/deployments.apps/report-app.yaml"));
    assert!(deployment.contains("name: API_TOKEN"), "{deployment}");
    assert!(deployment.contains("value: eu"), "{deployment}");
    let user_values = bundle.text("release/values.yaml");
    assert!(
        user_values.contains("DB_PASSWORD: '<redacted"),
        "{user_values}"
    );

    // Every part is there.
    let names = bundle.names();
    for expected in [
        "README.txt",
        "manifest.json",
        "versions.yaml",
        "preflight.yaml",
        "release/history.yaml",
        "release/values.yaml",
        "release/computed-values.yaml",
        "events.txt",
        "nodes.yaml",
        "forbidden.txt",
        "unavailable.txt",
        "scheduler/workflowruns.txt",
        "scheduler/workflowruns/nightly-manual-3.yaml",
        "scheduler/workflowruns/nightly-manual-2.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:#?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n == "scheduler/workflowruns/nightly-manual-1.yaml"),
        "--max-runs 2 keeps the newest two"
    );
    assert!(
        bundle
            .text("scheduler/workflowruns.txt")
            .contains("nightly-manual-1"),
        "every run has its line"
    );
    for prefix in [
        format!("objects/{NS}/deployments.apps/"),
        format!("objects/{NS}/services/"),
        format!("objects/{NS}/pods/report-app-"),
        format!("objects/{NS}/workflows.datajump.io/nightly"),
        format!("objects/{NS}/networkpolicies.networking.k8s.io/"),
        format!("objects/{NS}/serviceaccounts/"),
        format!("objects/{NS}/roles.rbac.authorization.k8s.io/"),
        format!("objects/{NS}/cronjobs.batch/"),
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(&prefix)),
            "{prefix}… in {names:#?}"
        );
    }
    assert!(
        !bundle
            .text(&format!("objects/{NS}/deployments.apps/report-app.yaml"))
            .contains("managedFields"),
        "managedFields dropped"
    );
    let versions = bundle.text("versions.yaml");
    for part in [
        "plugin: 0.1.0",
        "gitVersion: v1.36",
        "version: v4.",
        "revision: 1",
    ] {
        assert!(versions.contains(part), "{part} in {versions}");
    }
    assert!(bundle.text("nodes.yaml").contains("name: fake-node-0"));
    assert!(
        bundle.text("preflight.yaml").contains("result: passed"),
        "{}",
        bundle.text("preflight.yaml")
    );
    assert!(bundle.text("events.txt").starts_with("LAST SEEN"));
    assert!(
        bundle
            .text("forbidden.txt")
            .starts_with("Nothing was refused")
    );
    // The fake kubelet serves no logs: each one missing is noted, not an error.
    assert!(bundle.text("unavailable.txt").contains("get pods/log"));

    // The index lists every file.
    let manifest = bundle.manifest();
    let listed: Vec<&str> = manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("a path"))
        .collect();
    assert_eq!(listed, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(manifest["redaction"]["secretsReadable"], true);
    assert!(manifest["redaction"]["valuesScrubbed"].as_u64().unwrap() > 0);
    let readme = bundle.text("README.txt");
    for name in &names {
        assert!(readme.contains(name.as_str()), "README lists {name}");
    }
}

/// A ServiceAccount that may read the namespace's workloads, ConfigMaps and events, and
/// nothing else: no Secrets (so no helm either), no logs, no runs, nothing cluster-wide.
fn viewer_kubeconfig(cluster: &Cluster) -> PathBuf {
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: report-viewer\n  namespace: {NS}\n\
         ---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: report-viewer\n  namespace: {NS}\n\
         rules:\n  - apiGroups: [\"\"]\n    resources: [pods, configmaps, services, events]\n    verbs: [get, list]\n\
         \x20 - apiGroups: [apps]\n    resources: [deployments, statefulsets]\n    verbs: [get, list]\n\
         ---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: report-viewer\n  namespace: {NS}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: report-viewer}}\n\
         subjects:\n  - {{kind: ServiceAccount, name: report-viewer, namespace: {NS}}}\n"
    ));
    cluster.service_account_kubeconfig(NS, "report-viewer")
}

#[test]
fn what_the_user_may_not_read_is_listed_and_the_report_still_succeeds() {
    let Some(cluster) = planted() else { return };
    let kubeconfig = viewer_kubeconfig(cluster);
    let path = out_path(cluster, "viewer.zip");
    let _ = std::fs::remove_file(&path);
    let path_text = path.to_string_lossy().into_owned();
    let args = [
        "report",
        "--env",
        "dev",
        "-n",
        NS,
        "-o",
        path_text.as_str(),
        "--kubeconfig",
    ];
    let mut cmd = plugin_command();
    cmd.args(args).arg(&kubeconfig);
    let run = run_logged(cmd, &args, None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("items skipped") && run.stderr.contains("not allowed by RBAC"),
        "stderr says how many were skipped: {}",
        run.stderr
    );
    let bundle = Bundle::open(&path);
    bundle.assert_free_of(&ALL);

    let manifest = bundle.manifest();
    let denied = manifest["forbidden"].as_array().expect("forbidden").clone();
    let has = |verb: &str, resource: &str, ns: Option<&str>| {
        denied.iter().any(|d| {
            d["verb"] == verb
                && d["resource"] == resource
                && d.get("namespace").and_then(Value::as_str) == ns
        })
    };
    for (verb, resource, ns) in [
        ("list", "secrets", Some(NS)),
        ("get", "pods/log", Some(NS)),
        ("list", "workflowruns.datajump.io", Some(NS)),
        ("list", "jobs.batch", Some(NS)),
        ("list", "nodes", None),
    ] {
        assert!(
            has(verb, resource, ns),
            "{verb} {resource} {ns:?} in {denied:#?}"
        );
    }
    let forbidden = bundle.text("forbidden.txt");
    assert!(forbidden.contains("list      secrets"), "{forbidden}");
    assert!(forbidden.contains("(cluster)"), "{forbidden}");
    assert_eq!(manifest["redaction"]["secretsReadable"], false);
    assert!(bundle.text("README.txt").contains("could not be read"));
    // What it may read is there, redacted by the rules that need no Secret.
    let config = bundle.text(&format!("objects/{NS}/configmaps/report-app-config.yaml"));
    assert!(config.contains("DB_PASSWORD: '<redacted"), "{config}");
    assert!(config.contains("mysql://app:<redacted>@mysql"), "{config}");
    let names = bundle.names();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(&format!("objects/{NS}/pods/report-app-")))
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with(&format!("objects/{NS}/secrets/")))
    );
}

#[test]
fn bad_input_writes_nothing_and_exits_2() {
    let Some(cluster) = planted() else { return };
    let existing = out_path(cluster, "bad-input/existing.zip");
    std::fs::write(&existing, "keep").unwrap();
    let existing_text = existing.to_string_lossy().into_owned();
    let run = report(cluster, &["-o", &existing_text]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("exists already: pass --force"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep");
    let forced = report(
        cluster,
        &["-o", &existing_text, "--force", "--max-runs", "0"],
    );
    assert!(forced.ok, "{}", forced.stderr);
    assert!(
        Bundle::open(&existing)
            .names()
            .contains(&"README.txt".to_string())
    );

    let folder = out_path(cluster, "x")
        .parent()
        .unwrap()
        .join("no-such-folder");
    let missing = folder.join("r.zip");
    let run = report(cluster, &["-o", &missing.to_string_lossy()]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);

    let empty = out_path(cluster, "bad-input/other-ns.zip");
    let run = plugin(
        cluster,
        &[
            "report",
            "--env",
            "dev",
            "-n",
            "no-such-namespace",
            "-o",
            &empty.to_string_lossy(),
        ],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("namespace no-such-namespace does not exist"),
        "{}",
        run.stderr
    );
    assert!(!empty.exists());
    assert_no_part_files(empty.parent().unwrap());

    let run = plugin(cluster, &["report", "--env", "qa"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

/// No temporary archive is left behind by a refused report.
fn assert_no_part_files(dir: &Path) {
    let parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".zip.part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
}

//! Running the `kubectl-datajump` binary against a test cluster, the way a user does.

use std::io::Write;
use std::process::{Command, Stdio};

use chart_gen::model::Environment;
use serde_json::Value;

use crate::cluster::{Cluster, cargo_bin, tool, workspace_root};

/// What a run of the plugin printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as JSON (`-o json`); panics with the text when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}{}", self.stdout, self.stderr))
    }
}

/// `kubectl datajump ARGS --kubeconfig <cluster> --helm <pinned helm 4>`, from the workspace
/// root (so `--chart-dir` defaults to `charts/datajump`), colours off.
pub fn plugin(cluster: &Cluster, args: &[&str]) -> Run {
    let mut cmd = plugin_command();
    cmd.args(args).arg("--kubeconfig").arg(&cluster.kubeconfig);
    run_logged(cmd, args, None)
}

/// `kubectl datajump ARGS` with no cluster, as a user on a workstation: no Docker or Helm
/// credentials of the machine running the tests (a fresh HOME), `stdin` fed when given.
pub fn plugin_offline(args: &[&str], stdin: Option<&str>) -> Run {
    let home = tempfile::tempdir().expect("temp HOME");
    let mut cmd = plugin_command();
    cmd.args(args)
        .env("HOME", home.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("HELM_REGISTRY_CONFIG");
    run_logged(cmd, args, stdin)
}

/// The plugin binary run from the workspace root with the pinned Helm 4 and colours off; the
/// caller adds the arguments.
pub fn plugin_command() -> Command {
    let bin = cargo_bin(
        "kubectl-datajump",
        &[
            "kubectl-datajump/src",
            "chart-gen/src",
            "scheduler-image/api/src",
        ],
    );
    let mut cmd = Command::new(bin);
    cmd.current_dir(workspace_root())
        .arg("--helm")
        .arg(tool("helm4"))
        .env("NO_COLOR", "1");
    cmd
}

/// Runs a plugin command (feeding `stdin` when given), prints what it said under the command
/// line `args` for the test log, and returns it.
pub fn run_logged(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl-datajump");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write the plugin's stdin");
    }
    let out = child.wait_with_output().expect("wait for kubectl-datajump");
    let run = Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "$ kubectl datajump {} -> {:?}\n{}{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    run
}

/// The cluster-wide things preflight checks for that a platform team provides: the
/// StorageClasses the profiles name and the ingress controller's IngressClass (the operator
/// CRDs come with the test cluster), and the Secret `secrets.existingSecret` names.
pub fn prerequisites(cluster: &Cluster, env: Environment) {
    for class in ["fast-ssd", "standard-ssd"] {
        cluster.apply_yaml(&format!(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {class}\nprovisioner: fake.local/hostpath\n"
        ));
    }
    cluster.apply_yaml(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n",
    );
    // The generated one (dev, test) is the plugin's to create; a named one must exist.
    let ns = env.default_namespace();
    let profile = chart_gen::profiles::profile(env);
    if !profile.secrets.existing_secret.is_empty() {
        cluster.namespace(&ns, &[]);
        crate::cluster::credentials_secret(cluster, env, &ns);
    }
    operator_secrets(cluster, env, &ns);
    if ships_to_eck(env) {
        publish_eck_ca(cluster, &ns, "datajump", "CA ONE");
    }
}

/// Whether the environment's Fluent Bit ships to an ECK-managed Elasticsearch.
pub fn ships_to_eck(env: Environment) -> bool {
    let profile = chart_gen::profiles::profile(env);
    profile.observability.fluent_bit.enabled
        && profile.elasticsearch.mode == chart_gen::model::Mode::Operator
}

/// Plays ECK, which does not run here: publishes the HTTP CA of `<fullname>-es` as ECK does,
/// in `<fullname>-es-es-http-certs-public` (key `ca.crt`).
pub fn publish_eck_ca(cluster: &Cluster, ns: &str, fullname: &str, pem: &str) {
    cluster.namespace(ns, &[]);
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {fullname}-es-es-http-certs-public\n  namespace: {ns}\nstringData:\n  ca.crt: {pem:?}\n"
    ));
}

/// What the chart README asks plain Helm users to create for Fluent Bit when it ships to ECK:
/// the file-realm user's Secret, and the Secret Fluent Bit mounts in its namespace (made from
/// that user and ECK's CA, here published by [`publish_eck_ca`]).
pub fn log_shipping_secrets(cluster: &Cluster, env: Environment, ns: &str, logging_ns: &str) {
    if !ships_to_eck(env) {
        return;
    }
    let ca = "PLAIN HELM CA";
    publish_eck_ca(cluster, ns, "datajump", ca);
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: datajump-es-log-writer\n  namespace: {ns}\ntype: kubernetes.io/basic-auth\nstringData:\n  username: datajump-log-writer\n  password: test-writer\n  roles: datajump_log_writer\n"
    ));
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: datajump-fluent-bit-{ns}-es\n  namespace: {logging_ns}\nstringData:\n  es.conf: |\n    @SET ES_USER=datajump-log-writer\n    @SET ES_PASSWORD=test-writer\n  ca.crt: {ca:?}\n"
    ));
}

/// The Secrets operator-mode custom resources read (preflight checks them): MySQL Operator's
/// root account and the MinIO Tenant's configuration.
pub fn operator_secrets(cluster: &Cluster, env: Environment, ns: &str) {
    let profile = chart_gen::profiles::profile(env);
    let mut secrets = Vec::new();
    if profile.mysql.mode == chart_gen::model::Mode::Operator {
        secrets.push(format!(
            "  name: {}\nstringData:\n  rootUser: root\n  rootHost: '%'\n  rootPassword: test-root\n",
            profile.mysql.operator.root_secret
        ));
    }
    if profile.minio.mode == chart_gen::model::Mode::Operator {
        secrets.push(format!(
            "  name: {}\nstringData:\n  config.env: |\n    export MINIO_ROOT_USER=test\n    export MINIO_ROOT_PASSWORD=test-secret\n",
            profile.minio.operator.config_secret
        ));
    }
    if secrets.is_empty() {
        return;
    }
    cluster.namespace(ns, &[]);
    for body in secrets {
        cluster.apply_yaml(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  namespace: {ns}\n{body}"
        ));
    }
}

/// Installs dev into `ns` with `kubectl datajump install --wait` after its prerequisites.
pub fn install_dev(cluster: &Cluster, ns: &str) {
    install_dev_with(cluster, ns, &[]);
}

/// [`install_dev`] with further arguments (`-f VALUES`, say).
pub fn install_dev_with(cluster: &Cluster, ns: &str, extra: &[&str]) {
    prerequisites(cluster, Environment::Dev);
    let mut args = vec![
        "install",
        "--env",
        "dev",
        "-n",
        ns,
        "--wait",
        "--timeout",
        "5m",
    ];
    args.extend_from_slice(extra);
    let install = plugin(cluster, &args);
    assert!(install.ok, "install --env dev -n {ns}: {}", install.stderr);
}

/// Writes `workflow` (YAML) to `<name>.yaml` in the cluster's directory and runs
/// `kubectl datajump workflow submit -f` on it with `extra` arguments.
pub fn submit_workflow(cluster: &Cluster, name: &str, workflow: &str, extra: &[&str]) -> Run {
    let file = cluster.dir.join(format!("{name}.yaml"));
    std::fs::write(&file, workflow).expect("write the workflow");
    let file = file.to_string_lossy().into_owned();
    let mut args = vec!["workflow", "submit", "-f", &file];
    args.extend_from_slice(extra);
    plugin(cluster, &args)
}

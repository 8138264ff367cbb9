//! Running the `kubectl-datajump` binary against a test cluster, the way a user does.

use std::process::Command;

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
    let bin = cargo_bin(
        "kubectl-datajump",
        &[
            "kubectl-datajump/src",
            "chart-gen/src",
            "scheduler-image/src",
        ],
    );
    let out = Command::new(bin)
        .current_dir(workspace_root())
        .args(args)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("--helm")
        .arg(tool("helm4"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run kubectl-datajump");
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
    if !chart_gen::profiles::profile(env)
        .secrets
        .existing_secret
        .is_empty()
    {
        let ns = env.default_namespace();
        cluster.namespace(&ns, &[]);
        crate::cluster::credentials_secret(cluster, env, &ns);
    }
}

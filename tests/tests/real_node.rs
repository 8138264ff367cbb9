//! The scheduler image on a real node, deployed the way users deploy it: built without a
//! container engine by `scheduler-image/build-image.sh`, loaded into the node, and installed with
//! `kubectl datajump install --env dev --wait` into the `restricted` namespace the plugin makes.
//!
//! What has no image here is turned off in the values ([`VALUES`]): the platform's own services
//! (web, API gateway, integration, development, metadata, ops monitor), the backup CronJob (its
//! volume needs a storage provisioner the node has not) and every infrastructure service, which
//! runs outside the cluster in this shape (seed 004's: middleware on hosts of its own). Nothing
//! left in the release connects to MySQL, so no server is started for it.
//!
//! So `--wait` means the scheduler's pod really started (`scheduler.rs`: its process runs as
//! the chart's user on a read-only root, passes its real probes, holds the Lease with its own
//! ServiceAccount token under the chart's RBAC, and serves the dashboard's series on /metrics),
//! and the workflows it runs have real containers (`tasks.rs`: exit codes, memory limits,
//! deadlines, volumes, Kubernetes' `$(VAR)` expansion, logs).

#[path = "real_node/scheduler.rs"]
mod scheduler;
#[path = "real_node/tasks.rs"]
mod tasks;

use datajump_tests::cluster::{self, Cluster};
use datajump_tests::node::scheduler_image;
use datajump_tests::plugin::{plugin, prerequisites};
use serde_json::Value;

const NS: &str = "datajump-dev";

/// Values on top of dev's: what has no image on this node is off or external; task pods get
/// small default resources (the node is this 2-core machine) and a pod preset (`etl`) that the
/// task tests use.
const VALUES: &str = "\
web: {enabled: false}
apiGateway: {enabled: false}
integration: {enabled: false}
development: {enabled: false}
metadata: {enabled: false}
opsMonitor: {enabled: false}
backup: {enabled: false}
redis: {mode: external}
kafka: {mode: external}
elasticsearch: {mode: external}
minio: {mode: external}
# This host as the pods see it (the node's bridge gateway). No component left in this release
# connects to MySQL; the external mode is what removes the in-cluster server.
mysql: {mode: external, external: {host: 10.88.0.1, port: 3306}}
scheduler:
  executor:
    defaultTaskResources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {cpu: 500m, memory: 64Mi}
    podPresets:
      etl:
        volumes:
          - {name: reference, configMap: {name: etl-reference}}
        volumeMounts:
          - {name: reference, mountPath: /reference, readOnly: true}
        securityContext: {runAsUser: 10002, runAsGroup: 10002}
";

/// The image the e2e samples name (`gcr.io/distroless/static-debian12:debug-nonroot`), made here
/// from the host's static busybox with the same layout: a shell at /busybox/sh, user 65532.
const E2E_IMAGE: &str = "gcr.io/distroless/static-debian12:debug-nonroot";

/// The installed release, shared by the tests of this binary.
struct Installed {
    cluster: &'static Cluster,
}

fn installed() -> Option<&'static Installed> {
    static INSTALLED: std::sync::OnceLock<Installed> = std::sync::OnceLock::new();
    let cluster = cluster::shared_real_node()?;
    Some(INSTALLED.get_or_init(|| install(cluster)))
}

fn install(cluster: &'static Cluster) -> Installed {
    cluster.import_image(&scheduler_image());
    cluster.import_image(&e2e_image(cluster));
    let values = cluster.dir.join("node-values.yaml");
    std::fs::write(&values, VALUES).expect("write the values");
    prerequisites(cluster, chart_gen::model::Environment::Dev);
    let values = values.to_string_lossy().into_owned();
    let run = plugin(
        cluster,
        &[
            "install",
            "--env",
            "dev",
            "-n",
            NS,
            "--wait",
            "--timeout",
            "4m",
            "-f",
            &values,
        ],
    );
    assert!(
        run.ok,
        "install --env dev --wait on the real node: {}{}",
        run.stdout, run.stderr
    );
    Installed { cluster }
}

/// Builds [`E2E_IMAGE`] with the control plane's image tool.
fn e2e_image(cluster: &Cluster) -> std::path::PathBuf {
    let out = cluster.dir.join("e2e-image.tar");
    let status = std::process::Command::new("python3")
        .arg(cluster::k8s_tools_dir().join("mkimage.py"))
        .arg("build")
        .arg(&out)
        .arg(E2E_IMAGE)
        .args([
            "--busybox",
            "--add",
            "/bin/busybox:/busybox/sh",
            "--user",
            "65532:65532",
        ])
        .status()
        .expect("run mkimage.py");
    assert!(status.success(), "mkimage.py build {E2E_IMAGE}");
    out
}

fn kubectl_json(cluster: &Cluster, args: &[&str]) -> Value {
    let out = cluster.kubectl_ok(args).expect("kubectl");
    serde_json::from_slice(&out.stdout).expect("kubectl -o json")
}

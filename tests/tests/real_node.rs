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
//! deadlines, volumes, Kubernetes' `$(VAR)` expansion, logs), and their logs outlive their pods
//! (`archive.rs`: the scheduler's log archive, in moto, the S3 server the tests use).

#[path = "real_node/archive.rs"]
mod archive;
#[path = "real_node/scheduler.rs"]
mod scheduler;
#[path = "real_node/tasks.rs"]
mod tasks;

use datajump_tests::cluster::{self, Cluster};
use datajump_tests::node::scheduler_image;
use datajump_tests::plugin::{plugin, prerequisites};
use datajump_tests::s3::S3Server;
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

/// The log archive's bucket in moto, its key prefix, and how long finished pods are kept
/// (short, so the tests see pods archived and deleted).
const ARCHIVE_BUCKET: &str = "task-logs";
const ARCHIVE_PREFIX: &str = "real-node";
const FINISHED_POD_RETENTION_SECONDS: u32 = 15;

/// The installed release, shared by the tests of this binary.
struct Installed {
    cluster: &'static Cluster,
    /// The S3 server the log archive writes to.
    archive: S3Server,
}

/// Starts moto where the scheduler's pod reaches it (every address of this host: the pods
/// see it at the node's bridge gateway, 10.88.0.1), with the log archive's bucket; the
/// cluster's guard stops it with the cluster. Returns it and the values that point the
/// scheduler's log archive at it (with the Secret holding its key, created here).
fn archive_store(cluster: &Cluster) -> (S3Server, String) {
    let moto = S3Server::locate_or_skip("real_node")
        .expect("moto")
        .expect("moto_server for the log archive (`bash .ci/install-tools.sh`)");
    let s3 = S3Server::start_on(&moto, "0.0.0.0").expect("start moto");
    std::fs::write(
        cluster.dir.join("run").join("test-moto-archive.pid"),
        s3.pid().to_string(),
    )
    .expect("record moto's pid for the guard");
    s3.create_bucket(ARCHIVE_BUCKET)
        .expect("the archive's bucket");
    cluster.namespace(NS, &[]);
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: log-archive-s3, namespace: {NS}}}\n\
         stringData: {{access-key: {:?}, secret-key: {:?}}}\n",
        s3.access_key, s3.secret_key
    ));
    let values = format!(
        "scheduler:
  executor: {{finishedPodRetentionSeconds: {FINISHED_POD_RETENTION_SECONDS}}}
  logArchive:
    enabled: true
    endpoint: http://10.88.0.1:{}
    bucket: {ARCHIVE_BUCKET}
    keyPrefix: {ARCHIVE_PREFIX}
    credentials: {{secretName: log-archive-s3}}
",
        s3.port()
    );
    (s3, values)
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
    let (archive, archive_values) = archive_store(cluster);
    let archive_file = cluster.dir.join("node-archive-values.yaml");
    std::fs::write(&archive_file, archive_values).expect("write the archive values");
    prerequisites(cluster, chart_gen::model::Environment::Dev);
    let values = values.to_string_lossy().into_owned();
    let archive_file = archive_file.to_string_lossy().into_owned();
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
            "-f",
            &archive_file,
        ],
    );
    assert!(
        run.ok,
        "install --env dev --wait on the real node: {}{}",
        run.stdout, run.stderr
    );
    Installed { cluster, archive }
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

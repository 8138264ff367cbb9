//! The real node of [`crate::cluster::shared_real_node`]: `../shared/k8s/node.sh` runs kubelet,
//! kube-scheduler and containerd beside the test control plane, so pods really start, probes
//! really probe, memory limits are cgroup limits and `kubectl logs` returns what a container
//! printed. The cluster's guard stops the node (pods torn down, mounts, bridge and iptables rules
//! removed) before the control plane when the test process ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, workspace_root};
use crate::plugin::{plugin, prerequisites};
use crate::s3::S3Server;

/// The busybox image `node.sh` builds from the host's static busybox (all applets, `nobody` in
/// /etc/passwd) and loads into the node.
pub const BUSYBOX: &str = "localhost/busybox:1.35";

/// How long to wait for another test binary's node (one per machine) to be stopped.
const NODE_LOCK_WAIT: Duration = Duration::from_secs(20 * 60);

/// Starts the node for the cluster in `dir`, waiting while another node holds the machine.
pub(crate) fn start(k8s: &Path, dir: &Path) -> Result<(), String> {
    let node_sh = k8s.join("node.sh");
    let deadline = Instant::now() + NODE_LOCK_WAIT;
    loop {
        let out = Command::new("bash")
            .arg(&node_sh)
            .arg("start")
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", node_sh.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains("another node runs on this machine") || Instant::now() > deadline {
            return Err(format!(
                "{} start failed ({}):\n{stderr}",
                node_sh.display(),
                out.status
            ));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

impl Cluster {
    /// Loads an image archive (OCI or docker-archive) into the real node's containerd, under
    /// the name its index gives it.
    pub fn import_image(&self, archive: &Path) {
        let node_sh = crate::cluster::k8s_tools_dir().join("node.sh");
        let out = Command::new("bash")
            .arg(&node_sh)
            .arg("import")
            .arg(&self.dir)
            .arg(archive)
            .output()
            .expect("run node.sh import");
        assert!(
            out.status.success(),
            "node.sh import {} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The scheduler image as `scheduler-image/build-image.sh` wrote it (an OCI archive of the
/// static release binary); `.ci/test` builds it before the tests. Like [`cargo_bin`], an archive
/// older than the sources it is built from is refused with the command that rebuilds it, so a
/// test never deploys a stale scheduler. (Building it from here would rebuild the release tree
/// under the test process's environment, minutes on a small machine.)
///
/// [`cargo_bin`]: crate::cluster::cargo_bin
pub fn scheduler_image() -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let archive = target_dir.join(format!(
        "oci/datajump-scheduler-{}.oci.tar",
        env!("CARGO_PKG_VERSION")
    ));
    let built = std::fs::metadata(&archive)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `bash scheduler-image/build-image.sh` first",
                archive.display()
            )
        });
    for source in [
        "scheduler-image/src",
        "scheduler-image/api/src",
        "scheduler-image/Dockerfile",
    ] {
        if let Some(newer) = crate::cluster::newer_than(&workspace_root().join(source), built) {
            panic!(
                "{} is older than {}: run `bash scheduler-image/build-image.sh` so the tests do not deploy a stale scheduler",
                archive.display(),
                newer.display()
            );
        }
    }
    archive
}

/// The namespace of the dev release on the real node.
pub const DEV_NS: &str = "datajump-dev";

/// Values on top of dev's: what has no image on this node is off or external; task pods get
/// small default resources (the node is this 2-core machine) and a pod preset (`etl`) that the
/// task tests use.
const DEV_VALUES: &str = "\
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
pub const E2E_IMAGE: &str = "gcr.io/distroless/static-debian12:debug-nonroot";

/// The dev release's log archive: its bucket in moto, its key prefix, and how long finished
/// pods are kept (short, so the tests see pods archived and deleted).
pub const ARCHIVE_BUCKET: &str = "task-logs";
pub const ARCHIVE_PREFIX: &str = "real-node";
pub const FINISHED_POD_RETENTION_SECONDS: u32 = 15;

/// The S3 server (moto) the dev release's scheduler archives task logs in.
static DEV_ARCHIVE: OnceLock<S3Server> = OnceLock::new();

/// The dev release installed on this test binary's real node (first use installs it): the
/// cluster, or `None` when the real-cluster tests are skipped.
pub fn installed_dev() -> Option<&'static Cluster> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let cluster = crate::cluster::shared_real_node()?;
    INSTALLED.get_or_init(|| install(cluster));
    Some(cluster)
}

/// The S3 server of the dev release's log archive (after [`installed_dev`]).
pub fn dev_log_archive() -> &'static S3Server {
    DEV_ARCHIVE
        .get()
        .expect("the dev release is installed (installed_dev) before its log archive is read")
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
    cluster.namespace(DEV_NS, &[]);
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: log-archive-s3, namespace: {DEV_NS}}}\n\
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

fn install(cluster: &Cluster) {
    cluster.import_image(&scheduler_image());
    cluster.import_image(&e2e_image(cluster));
    let values = cluster.dir.join("node-values.yaml");
    std::fs::write(&values, DEV_VALUES).expect("write the values");
    let (archive, archive_values) = archive_store(cluster);
    let _ = DEV_ARCHIVE.set(archive);
    let archive_file = cluster.dir.join("node-archive-values.yaml");
    std::fs::write(&archive_file, archive_values).expect("write the archive values");
    let archive_file = archive_file.to_string_lossy().into_owned();
    prerequisites(cluster, chart_gen::model::Environment::Dev);
    let values = values.to_string_lossy().into_owned();
    let run = plugin(
        cluster,
        &[
            "install",
            "--env",
            "dev",
            "-n",
            DEV_NS,
            "--wait",
            "--timeout",
            "4m",
            "-f",
            &values,
            // The log archive: moto, and pods deleted (after their logs are archived) soon.
            "-f",
            &archive_file,
        ],
    );
    assert!(
        run.ok,
        "install --env dev --wait on the real node: {}{}",
        run.stdout, run.stderr
    );
}

/// Builds [`E2E_IMAGE`] with the control plane's image tool.
fn e2e_image(cluster: &Cluster) -> std::path::PathBuf {
    let out = cluster.dir.join("e2e-image.tar");
    let status = std::process::Command::new("python3")
        .arg(crate::cluster::k8s_tools_dir().join("mkimage.py"))
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

/// Processes on this host whose command line (arguments joined by spaces) satisfies `matches`.
/// The real node runs here, so a container's processes are among them, and `/proc` shows what
/// the kernel enforces on them.
pub fn host_processes(matches: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            matches(&String::from_utf8_lossy(&cmdline).replace('\0', " ")).then_some(pid)
        })
        .collect()
}

/// The scheduler container's process: its entrypoint, as the image config names it.
pub fn is_scheduler(cmdline: &str) -> bool {
    cmdline.starts_with("/datajump-scheduler ")
}

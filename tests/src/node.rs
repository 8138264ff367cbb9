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
use crate::mariadb::{Binaries, MariaDb, sql_string};
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

/// Values on top of dev's: what has no image on this node is off or external (MySQL's server
/// and the backup volume are given in [`host_mysql`] and [`backup_volume`]); task pods get
/// small default resources (the node is this 2-core machine) and a pod preset (`etl`) that the
/// task tests use.
const DEV_VALUES: &str = "\
web: {enabled: false}
apiGateway: {enabled: false}
integration: {enabled: false}
development: {enabled: false}
metadata: {enabled: false}
opsMonitor: {enabled: false}
redis: {mode: external}
kafka: {mode: external}
elasticsearch: {mode: external}
minio: {mode: external}
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

/// The dev release's MySQL: a MariaDB server on this host, outside the cluster (seed 004's
/// shape), which the release reaches in `external` mode.
static DEV_MYSQL: OnceLock<MariaDb> = OnceLock::new();

/// The release's database (the chart's `mysql.database`) and the table the backup test reads.
pub const DEV_DATABASE: &str = "datajump";
pub const DEV_TABLE: &str = "workflows_seen";

/// The MariaDB server of the dev release (after [`installed_dev`]).
pub fn dev_mysql() -> &'static MariaDb {
    DEV_MYSQL
        .get()
        .expect("the dev release is installed (installed_dev) before its MySQL is used")
}

/// The directory on this host behind the release's backup volume.
pub fn dev_backup_dir(cluster: &Cluster) -> PathBuf {
    cluster.dir.join("backup-volume")
}

/// Starts MariaDB on every address of this host (the pods reach it at the bridge gateway,
/// 10.88.0.1); the cluster's guard stops it with the cluster. Returns it and the values that
/// point the release's MySQL at it.
fn host_mysql(cluster: &Cluster) -> (MariaDb, String) {
    let bins = Binaries::locate_or_skip("real_node")
        .expect("MariaDB")
        .expect("mariadb-server for the release's external MySQL (`bash .ci/install-tools.sh`)");
    let server = MariaDb::start_on(&bins, "0.0.0.0").expect("start MariaDB");
    std::fs::write(
        cluster.dir.join("run").join("test-mariadb.pid"),
        server.pid().to_string(),
    )
    .expect("record MariaDB's pid for the guard");
    let values = format!(
        "mysql: {{mode: external, database: {DEV_DATABASE}, external: {{host: 10.88.0.1, port: {}}}}}\n",
        server.port()
    );
    (server, values)
}

/// The backup volume: the node has no storage provisioner, so a hostPath PersistentVolume of
/// a class without one (`kubernetes.io/no-provisioner`) waits for the release's claim, like a
/// local volume an administrator provides. Returns the values that claim it.
fn backup_volume(cluster: &Cluster) -> String {
    let dir = dev_backup_dir(cluster);
    std::fs::create_dir_all(&dir).expect("the backup volume's directory");
    // The backup pod runs as the chart's unprivileged user; a hostPath volume is not chowned
    // to the pod's fsGroup.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
        .expect("open the backup directory to the pod's user");
    cluster.apply_yaml(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: node-local}}\n\
         provisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: Immediate\n---\n\
         apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: dev-backup}}\nspec:\n  \
         capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  \
         storageClassName: node-local\n  hostPath: {{path: {:?}, type: Directory}}\n",
        dir.display().to_string()
    ));
    "backup: {enabled: true, storageClass: node-local, storage: 1Gi}\n".to_string()
}

/// The release's CronJob of backups, as the API server has it.
fn backup_cronjob(cluster: &Cluster) -> serde_json::Value {
    let mut cronjobs = crate::runs::list(
        cluster,
        DEV_NS,
        "cronjobs",
        "app.kubernetes.io/component=backup",
    );
    assert_eq!(
        cronjobs.len(),
        1,
        "the release's backup CronJob: {cronjobs:#?}"
    );
    cronjobs.remove(0)
}

/// What the release's backup connects with: the user and password of its credentials (the
/// platform Secret the plugin generated), given to the host's server with a table of rows.
fn release_database(cluster: &Cluster, server: &MariaDb, cronjob: &serde_json::Value) {
    let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let env = pod["containers"][0]["env"]
        .as_array()
        .expect("the backup env");
    let user = env
        .iter()
        .find(|e| e["name"] == "MYSQL_USER")
        .and_then(|e| e["value"].as_str())
        .expect("MYSQL_USER");
    let source = pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "credentials"))
        .and_then(|v| v["projected"]["sources"][0]["secret"].as_object())
        .expect("the credentials' Secret");
    let secret = source["name"].as_str().expect("Secret name");
    let key = source["items"][0]["key"].as_str().expect("password key");
    let out = cluster
        .kubectl_ok(&[
            "get",
            "secret",
            secret,
            "-n",
            DEV_NS,
            "-o",
            &format!("go-template={{{{index .data {key:?} | base64decode}}}}"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let password = String::from_utf8(out.stdout).expect("a text password");
    server
        .query(&format!(
            "CREATE DATABASE {DEV_DATABASE}; \
             CREATE TABLE {DEV_DATABASE}.{DEV_TABLE} (name VARCHAR(64) PRIMARY KEY); \
             INSERT INTO {DEV_DATABASE}.{DEV_TABLE} VALUES ('nightly-etl'), ('market-close'); \
             CREATE USER {}@'%' IDENTIFIED BY {}; \
             GRANT ALL PRIVILEGES ON {DEV_DATABASE}.* TO {}@'%';",
            sql_string(user),
            sql_string(&password),
            sql_string(user)
        ))
        .expect("the release's database and user");
}

/// The backup image under the reference the CronJob names (`library/mysql` in the chart): the
/// host's static busybox for the scripts' shell and tools, and the host's MariaDB client and
/// dump programs with their libraries.
fn backup_image(cluster: &Cluster, server: &MariaDb, cronjob: &serde_json::Value) -> PathBuf {
    let reference =
        cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .expect("the backup image");
    let out = cluster.dir.join("backup-image.tar");
    let bins = server.binaries();
    let status = std::process::Command::new("python3")
        .arg(crate::cluster::k8s_tools_dir().join("mkimage.py"))
        .arg("build")
        .arg(&out)
        .arg(reference)
        .arg("--busybox")
        .arg("--ldd")
        .arg(&bins.client)
        .arg("--ldd")
        .arg(&bins.dump)
        .status()
        .expect("run mkimage.py");
    assert!(status.success(), "mkimage.py build {reference}");
    out
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
    let (mysql, mysql_values) = host_mysql(cluster);
    let middleware_file = cluster.dir.join("node-middleware-values.yaml");
    std::fs::write(
        &middleware_file,
        format!("{mysql_values}{}", backup_volume(cluster)),
    )
    .expect("write the middleware values");
    let middleware_file = middleware_file.to_string_lossy().into_owned();
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
            // MySQL on this host, and the backup volume on the node's disk.
            "-f",
            &middleware_file,
        ],
    );
    assert!(
        run.ok,
        "install --env dev --wait on the real node: {}{}",
        run.stdout, run.stderr
    );
    let cronjob = backup_cronjob(cluster);
    release_database(cluster, &mysql, &cronjob);
    cluster.import_image(&backup_image(cluster, &mysql, &cronjob));
    let _ = DEV_MYSQL.set(mysql);
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

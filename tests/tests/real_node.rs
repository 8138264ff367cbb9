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
//! (`archive.rs`: the scheduler's log archive, in moto, the S3 server the tests use). And the
//! support bundle holds those real logs with no secret in them (`report.rs`).

#[path = "real_node/archive.rs"]
mod archive;
#[path = "real_node/report.rs"]
mod report;
#[path = "real_node/scheduler.rs"]
mod scheduler;
#[path = "real_node/stop.rs"]
mod stop;
#[path = "real_node/tasks.rs"]
mod tasks;

use datajump_tests::cluster::Cluster;
use datajump_tests::plugin::{Run, plugin};

use datajump_tests::node::{DEV_NS as NS, E2E_IMAGE};

/// The dev release on the real node, installed once for this binary's tests.
struct Installed {
    cluster: &'static Cluster,
}

fn installed() -> Option<&'static Installed> {
    static INSTALLED: std::sync::OnceLock<Installed> = std::sync::OnceLock::new();
    let cluster = datajump_tests::node::installed_dev()?;
    Some(INSTALLED.get_or_init(|| Installed { cluster }))
}

/// `kubectl datajump ARGS -n NS`.
fn dj(cluster: &Cluster, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-n", NS]);
    plugin(cluster, &all)
}

/// Applies a Workflow (YAML) with `workflow submit`.
fn submit(cluster: &Cluster, name: &str, yaml: &str) {
    let file = cluster.dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("write the workflow");
    let run = dj(
        cluster,
        &["workflow", "submit", "-f", &file.to_string_lossy()],
    );
    assert!(run.ok, "submit {name}: {}", run.stderr);
}

//! The scheduler image on a real node, deployed the way users deploy it: built without a
//! container engine by `scheduler-image/build-image.sh`, loaded into the node, and installed with
//! `kubectl datajump install --env dev --wait` into the `restricted` namespace the plugin makes.
//!
//! What has no image here is turned off in the values ([`VALUES`]): the platform's own services
//! (web, API gateway, integration, development, metadata, ops monitor), and every infrastructure
//! service runs outside the cluster in this shape (seed 004's: middleware on hosts of its own):
//! MySQL is a MariaDB server on this host, which the backup reaches over the pod network, and
//! the backup volume is a directory of this host behind a PersistentVolume (the node has no
//! storage provisioner).
//!
//! So `--wait` means the scheduler's pod really started (`scheduler.rs`: its process runs as
//! the chart's user on a read-only root, passes its real probes, holds the Lease with its own
//! ServiceAccount token under the chart's RBAC, and serves the dashboard's series on /metrics),
//! and the workflows it runs have real containers (`tasks.rs`: exit codes, memory limits,
//! deadlines, volumes, Kubernetes' `$(VAR)` expansion, logs), and their logs outlive their pods
//! (`archive.rs`: the scheduler's log archive, in moto, the S3 server the tests use), and the
//! release's backup dumps the external MySQL from a real container (`backup.rs`). And the
//! support bundle holds those real logs with no secret in them (`report.rs`).

#[path = "real_node/archive.rs"]
mod archive;
#[path = "real_node/backup.rs"]
mod backup;
#[path = "real_node/report.rs"]
mod report;
#[path = "real_node/scheduler.rs"]
mod scheduler;
#[path = "real_node/stop.rs"]
mod stop;
#[path = "real_node/tasks.rs"]
mod tasks;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use datajump_tests::cluster::Cluster;
use datajump_tests::plugin::{Run, plugin};

use datajump_tests::node::{DEV_NS as NS, E2E_IMAGE};

/// The dev release on the real node, installed once for this binary's tests, for one test:
/// tests share it, but one that stops its scheduler (a restore) has it alone, so no other
/// test's run stalls meanwhile.
struct Installed {
    cluster: &'static Cluster,
    _turn: Turn,
}

/// A test's hold on the release: shared, or alone.
enum Turn {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

static TURNS: RwLock<()> = RwLock::new(());

/// The release, shared with the other tests (`None`: the real-node tests are skipped).
fn installed() -> Option<Installed> {
    let cluster = datajump_tests::node::installed_dev()?;
    let turn = Turn::Shared(TURNS.read().unwrap_or_else(|e| e.into_inner()));
    Some(Installed {
        cluster,
        _turn: turn,
    })
}

/// The release, once no other test uses it, until the test ends.
fn installed_alone() -> Option<Installed> {
    let cluster = datajump_tests::node::installed_dev()?;
    let turn = Turn::Alone(TURNS.write().unwrap_or_else(|e| e.into_inner()));
    Some(Installed {
        cluster,
        _turn: turn,
    })
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

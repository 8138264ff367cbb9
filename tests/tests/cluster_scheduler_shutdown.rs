//! The scheduler binary ends promptly on SIGTERM whatever the API server does: with the API
//! server answering it releases its Lease and exits at once; with the API server frozen (no
//! answer at all, as when it is unreachable) it still exits within its 5 s grace period instead
//! of hanging until Kubernetes kills it. Its own test binary (its own cluster), because it
//! freezes the API server.

use std::process::Command;
use std::time::{Duration, Instant};

use datajump_tests::cluster::{self, Background, Cluster, cargo_bin, signal, wait_until};

const NS: &str = "shutdown";

fn start(cluster: &Cluster, name: &str) -> Background {
    let mut command = Command::new(cargo_bin("datajump-scheduler", &["scheduler-image/src"]));
    command
        .env_clear()
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("DATAJUMP_WATCH_NAMESPACE", NS)
        .env("DATAJUMP_POD_NAMESPACE", NS)
        .env("DATAJUMP_POD_NAME", name)
        .env("DATAJUMP_HTTP_ADDR", "127.0.0.1:0")
        .env("DATAJUMP_LOG_FORMAT", "text");
    let scheduler = cluster.spawn(name, command);
    wait_until("the scheduler to lead", Duration::from_secs(60), || {
        scheduler
            .output()
            .contains("caches synced; scheduling")
            .then_some(())
    });
    scheduler
}

fn lease_holder(cluster: &Cluster) -> String {
    let out = cluster.kubectl(&[
        "get",
        "lease",
        "datajump-scheduler-leader",
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sigterm_ends_the_scheduler_promptly_with_or_without_an_api_server() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    cluster.namespace(NS, &[]);

    let mut scheduler = start(cluster, "first");
    assert_eq!(lease_holder(cluster), "first");
    signal(&scheduler.id().to_string(), "TERM");
    let status = scheduler
        .wait_for_exit(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("still running 3 s after SIGTERM:\n{}", scheduler.output()));
    assert!(status.success(), "{status}\n{}", scheduler.output());
    assert_ne!(
        lease_holder(cluster),
        "first",
        "the Lease is released on the way out"
    );

    let mut scheduler = start(cluster, "second");
    let frozen = cluster.freeze_api_server();
    let signalled = Instant::now();
    signal(&scheduler.id().to_string(), "TERM");
    let status = scheduler.wait_for_exit(Duration::from_secs(10));
    let took = signalled.elapsed();
    drop(frozen);
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 10 s after SIGTERM with the API server frozen:\n{}",
            scheduler.output()
        )
    });
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_secs(4),
        "it waited its grace period ({took:?})"
    );
    assert!(
        scheduler
            .output()
            .contains("shutdown did not finish in time"),
        "{}",
        scheduler.output()
    );
}

//! End-to-end throughput of the scheduler on the local control plane (`../shared/k8s`, with the
//! fake kubelet finishing each Job's pod about a second after it starts), beside what the same
//! cluster does with bare Jobs created at once.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo bench -p datajump-tests --bench cluster_throughput [-- RUNS]
//! ```
//!
//! Prints, for bare Jobs and for RUNS runs (default 60) of a 5-task diamond:
//! - Jobs completed per second, from the first create to the last completion;
//! - the latency from a Job's completion to the creation of each dependent's Job (for the
//!   join, from the last of its upstreams), p50/p99/max, both instants seen by one watch of
//!   this process;
//! - the scheduler's peak RSS (VmHWM).

use std::time::Instant;

use datajump_tests::cluster::{self, Cluster};
use datajump_tests::load::{
    DIAMOND, create_runs, dependent_latencies, peak_rss_mib, percentile, start_diamond_scheduler,
    watch_jobs,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;

const BARE_NS: &str = "bench-bare";
const NS: &str = "bench-dev";

fn bare_job(i: usize) -> Job {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": format!("bare-{i}"), "namespace": BARE_NS},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "task", "image": "busybox"}]
            }}
        }
    }))
    .expect("a Job")
}

/// Bare Jobs created at once (16 creates in flight): Jobs completed per second.
async fn bare_jobs(cluster: &Cluster, n: usize) -> f64 {
    let _ = cluster.kubectl_ok(&["create", "namespace", BARE_NS]);
    let api: Api<Job> = Api::namespaced(cluster.client().await, BARE_NS);
    let (tx, mut rx) = mpsc::channel(1);
    let watch = tokio::spawn(watch_jobs(api.clone(), n, tx));
    rx.recv().await.expect("the watch started");
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &bare_job(i)).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating bare Jobs");
    let seen = watch.await.expect("the watch task");
    let last = seen.finished.values().max().copied().unwrap_or(start);
    n as f64 / (last - start).as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments is the count of runs.
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let tasks = runs * DIAMOND.len();
    let cluster = cluster::shared().expect("the local control plane (../shared/k8s)");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let bare = runtime.block_on(bare_jobs(cluster, tasks));
    println!("bare Jobs: {tasks} created at once, {bare:.1} Jobs/s completed");

    // A cap above the work, so that only the scheduler's own speed limits it.
    let (_, mut scheduler) = start_diamond_scheduler(cluster, NS, tasks, &[]);
    let (names, seen, start) = runtime.block_on(async {
        let client = cluster.client().await;
        let (tx, mut rx) = mpsc::channel(1);
        let watch = tokio::spawn(watch_jobs(Api::namespaced(client.clone(), NS), tasks, tx));
        rx.recv().await.expect("the watch started");
        let start = Instant::now();
        let names = create_runs(&client, NS, "diamond", runs).await;
        (names, watch.await.expect("the watch task"), start)
    });
    let rss = peak_rss_mib(scheduler.id());
    assert!(scheduler.running(), "{}", scheduler.output());
    let last = seen.finished.values().max().copied().unwrap_or(start);
    let rate = tasks as f64 / (last - start).as_secs_f64();
    let l = dependent_latencies(&seen, &names, &DIAMOND);
    println!(
        "scheduler: {runs} runs x {} tasks created at once, {rate:.1} tasks/s completed ({:.0}% of bare)",
        DIAMOND.len(),
        100.0 * rate / bare
    );
    println!(
        "completion -> dependent Job created: p50 {:?}, p99 {:?}, max {:?} ({} edges)",
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        percentile(&l, 1.0),
        l.len()
    );
    match rss {
        Some(mib) => println!("scheduler peak RSS: {mib:.1} MiB"),
        None => println!("scheduler peak RSS: not readable from /proc"),
    }
}

//! End-to-end throughput of the scheduler on the local control plane (`../shared/k8s`, with the
//! fake kubelet finishing each Job's pod about a second after it starts), beside what the same
//! cluster does with bare Jobs created at once.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo bench -p datajump-tests --bench cluster_throughput [-- RUNS]
//! ```
//!
//! Prints, for bare Jobs and for RUNS runs of a 5-task diamond (`a`; `b`, `c`, `d` after `a`;
//! `e` after all three):
//! - tasks (Jobs) completed per second, from the first create to the last completion;
//! - the latency from a Job's completion to the creation of each dependent's Job (for `e`, from
//!   the last of its upstreams), p50/p99/max, both instants seen by one watch of this process;
//! - the scheduler's peak RSS (VmHWM).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use datajump_tests::cluster::{self, Cluster};
use datajump_tests::plugin::{install_dev, submit_workflow};
use datajump_tests::scheduler::{free_port, start_scheduler, wait_leading};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

const BARE_NS: &str = "bench-bare";
const NS: &str = "bench-dev";
const TASKS_PER_RUN: usize = 5;
/// Upstream tasks of each task of the diamond.
const DIAMOND: [(&str, &[&str]); TASKS_PER_RUN] = [
    ("a", &[]),
    ("b", &["a"]),
    ("c", &["a"]),
    ("d", &["a"]),
    ("e", &["b", "c", "d"]),
];

fn diamond() -> String {
    let tasks: String = DIAMOND
        .iter()
        .map(|(name, after)| {
            format!("    - {{name: {name}, image: busybox, dependsOn: {after:?}}}\n")
        })
        .collect();
    format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: diamond, namespace: {NS}}}\n\
         spec:\n  successfulRunsHistoryLimit: 100\n  tasks:\n{tasks}"
    )
}

/// When this process saw each Job created and completed.
#[derive(Default)]
struct Seen {
    created: HashMap<String, Instant>,
    completed: HashMap<String, Instant>,
}

fn complete(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

/// Watches the Jobs of `ns` until `expected` have completed; returns what it saw and the
/// instant of the last completion. `started` is sent once the watch is established.
async fn watch_jobs(api: Api<Job>, expected: usize, started: mpsc::Sender<()>) -> (Seen, Instant) {
    let mut seen = Seen::default();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut last = Instant::now();
    while let Some(event) = events.try_next().await.expect("the Job watch") {
        match event {
            watcher::Event::InitDone => {
                let _ = started.send(()).await;
            }
            watcher::Event::Apply(job) | watcher::Event::InitApply(job) => {
                let name = job.metadata.name.clone().unwrap_or_default();
                let now = Instant::now();
                seen.created.entry(name.clone()).or_insert(now);
                if complete(&job) && !seen.completed.contains_key(&name) {
                    seen.completed.insert(name, now);
                    last = now;
                    if seen.completed.len() == expected {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    (seen, last)
}

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
    let (_, last) = watch.await.expect("the watch task");
    n as f64 / (last - start).as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Peak resident set of a process, from /proc.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

struct SchedulerFigures {
    tasks_per_second: f64,
    latencies: Vec<Duration>,
    rss_mib: Option<f64>,
}

/// `runs` runs of the diamond created at once (16 creates in flight) with a cap above the
/// work, so only the scheduler's own speed limits it.
async fn scheduler_runs(cluster: &Cluster, runs: usize) -> SchedulerFigures {
    install_dev(cluster, NS);
    let submit = submit_workflow(cluster, "diamond", &diamond(), &[]);
    assert!(submit.ok, "{}", submit.stderr);
    let port = free_port();
    let cap = (runs * TASKS_PER_RUN).to_string();
    let mut scheduler = start_scheduler(
        cluster,
        NS,
        port,
        &[
            ("DATAJUMP_MAX_RUNNING_TASKS", cap.as_str()),
            ("RUST_LOG", "warn"),
        ],
    );
    wait_leading(port);
    let client = cluster.client().await;
    let api: Api<Job> = Api::namespaced(client.clone(), NS);
    let (tx, mut rx) = mpsc::channel(1);
    let watch = tokio::spawn(watch_jobs(api, runs * TASKS_PER_RUN, tx));
    rx.recv().await.expect("the watch started");
    let start = Instant::now();
    let names: Vec<String> = futures::stream::iter(0..runs)
        .map(|_| {
            let client = client.clone();
            async move {
                kubectl_datajump::kube::workflows::create_run(&client, NS, "diamond")
                    .await
                    .map(|r| r.metadata.name.unwrap_or_default())
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await
        .expect("creating runs");
    let (seen, last) = watch.await.expect("the watch task");
    let rss_mib = peak_rss_mib(scheduler.id());
    assert!(scheduler.running(), "{}", scheduler.output());

    let mut latencies = Vec::new();
    for run in &names {
        for (task, after) in DIAMOND.iter().filter(|(_, after)| !after.is_empty()) {
            let job = |t: &str| format!("{run}-{t}-1");
            let created = seen.created.get(&job(task)).expect("every task ran");
            let ready = after
                .iter()
                .map(|u| {
                    seen.completed
                        .get(&job(u))
                        .expect("every upstream completed")
                })
                .max()
                .expect("at least one upstream");
            latencies.push(created.saturating_duration_since(*ready));
        }
    }
    latencies.sort();
    SchedulerFigures {
        tasks_per_second: (runs * TASKS_PER_RUN) as f64 / (last - start).as_secs_f64(),
        latencies,
        rss_mib,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments is the count of runs.
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let cluster = cluster::shared().expect("the local control plane (../shared/k8s)");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let tasks = runs * TASKS_PER_RUN;
    let bare = runtime.block_on(bare_jobs(cluster, tasks));
    println!("bare Jobs: {tasks} created at once, {bare:.1} Jobs/s completed");
    let figures = runtime.block_on(scheduler_runs(cluster, runs));
    let l = &figures.latencies;
    println!(
        "scheduler: {runs} runs x {TASKS_PER_RUN} tasks created at once, {:.1} tasks/s completed ({:.0}% of bare)",
        figures.tasks_per_second,
        100.0 * figures.tasks_per_second / bare
    );
    println!(
        "completion -> dependent Job created: p50 {:?}, p99 {:?}, max {:?} ({} edges)",
        percentile(l, 0.5),
        percentile(l, 0.99),
        percentile(l, 1.0),
        l.len()
    );
    match figures.rss_mib {
        Some(mib) => println!("scheduler peak RSS: {mib:.1} MiB"),
        None => println!("scheduler peak RSS: not readable from /proc"),
    }
}

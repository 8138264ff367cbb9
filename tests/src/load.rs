//! Many runs at once against the real scheduler: creating them the way `kubectl datajump
//! workflow run` does, and watching their Jobs and phases from this process, so the figures
//! (Jobs in flight, completion-to-dependent latency, runs finished) come from the API server's
//! own watch events rather than from the scheduler's view of itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use datajump_api::{RunPhase, WorkflowRun};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};

use crate::cluster::{Background, Cluster};
use crate::plugin::{install_dev, submit_workflow};
use crate::scheduler::{free_port, start_scheduler, wait_leading};

/// Creates in flight at once.
const CREATES_IN_FLIGHT: usize = 16;

/// Creates `n` runs of `workflow` in `ns` at once (through the plugin's library); their names.
pub async fn create_runs(client: &kube::Client, ns: &str, workflow: &str, n: usize) -> Vec<String> {
    let options = kubectl_datajump::kube::workflows::RunOptions::default();
    let options = &options;
    futures::stream::iter(0..n)
        .map(|_| async move {
            kubectl_datajump::kube::workflows::create_run(client, ns, workflow, options)
                .await
                .map(|r| r.metadata.name.unwrap_or_default())
        })
        .buffer_unordered(CREATES_IN_FLIGHT)
        .try_collect()
        .await
        .expect("creating runs")
}

/// Whether a Job has finished (Complete or Failed).
pub fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

/// What one watch of a namespace's Jobs saw.
#[derive(Debug, Default)]
pub struct JobsSeen {
    /// When this process first saw each Job.
    pub created: HashMap<String, Instant>,
    /// When it first saw each Job finished.
    pub finished: HashMap<String, Instant>,
    /// The most Jobs created and not yet finished at any one time (every watch event is a
    /// sample).
    pub max_in_flight: usize,
}

/// Watches the Jobs of `ns` until `expected` have finished. Resolves `started` once the watch
/// has its initial list, so that nothing created afterwards is missed.
pub async fn watch_jobs(api: Api<Job>, expected: usize, started: mpsc::Sender<()>) -> JobsSeen {
    let mut seen = JobsSeen::default();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.try_next().await.expect("the Job watch") {
        match event {
            watcher::Event::InitDone => {
                let _ = started.send(()).await;
            }
            watcher::Event::Apply(job) | watcher::Event::InitApply(job) => {
                let name = job.metadata.name.clone().unwrap_or_default();
                let now = Instant::now();
                seen.created.entry(name.clone()).or_insert(now);
                if finished(&job) {
                    in_flight.remove(&name);
                    if let std::collections::hash_map::Entry::Vacant(e) = seen.finished.entry(name)
                    {
                        e.insert(now);
                        if seen.finished.len() == expected {
                            break;
                        }
                    }
                } else if !seen.finished.contains_key(&name) {
                    in_flight.insert(name);
                    seen.max_in_flight = seen.max_in_flight.max(in_flight.len());
                }
            }
            watcher::Event::Delete(job) => {
                in_flight.remove(&job.metadata.name.unwrap_or_default());
            }
            watcher::Event::Init => {}
        }
    }
    seen
}

/// The last phase this process saw for each run of `ns`, kept after the run is deleted
/// (history pruning). Published on `phases` at every change.
pub async fn watch_run_phases(
    api: Api<WorkflowRun>,
    phases: watch::Sender<BTreeMap<String, RunPhase>>,
) {
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Ok(Some(run)) = events.try_next().await {
        let phase = run.status.as_ref().map(|s| s.phase).unwrap_or_default();
        let name = run.metadata.name.unwrap_or_default();
        phases.send_modify(|p| {
            p.insert(name, phase);
        });
    }
}

/// Latencies from the completion of a task's upstreams (the last of them) to the creation of
/// its Job, for every run and every task with upstreams; sorted. `dag` lists (task, upstreams).
pub fn dependent_latencies(
    seen: &JobsSeen,
    runs: &[String],
    dag: &[(&str, &[&str])],
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for run in runs {
        let job = |t: &str| format!("{run}-{t}-1");
        for (task, after) in dag.iter().filter(|(_, after)| !after.is_empty()) {
            let created = seen.created.get(&job(task)).expect("every task ran");
            let ready = after
                .iter()
                .map(|u| seen.finished.get(&job(u)).expect("every upstream finished"))
                .max()
                .expect("at least one upstream");
            latencies.push(created.saturating_duration_since(*ready));
        }
    }
    latencies.sort();
    latencies
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The 5-task diamond: `a`; `b`, `c`, `d` after `a`; `e` after all three.
pub const DIAMOND: [(&str, &[&str]); 5] = [
    ("a", &[]),
    ("b", &["a"]),
    ("c", &["a"]),
    ("d", &["a"]),
    ("e", &["b", "c", "d"]),
];

/// A Workflow named `name` in `ns` running [`DIAMOND`].
pub fn diamond_workflow(name: &str, ns: &str) -> String {
    let tasks: String = DIAMOND
        .iter()
        .map(|(task, after)| {
            format!("    - {{name: {task}, image: busybox, dependsOn: {after:?}}}\n")
        })
        .collect();
    format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  successfulRunsHistoryLimit: 100\n  tasks:\n{tasks}"
    )
}

/// A release in `ns` (dev), the [`DIAMOND`] Workflow `diamond` and the scheduler binary
/// under `cap` running tasks with the `extra` environment, leading; the scheduler's metrics
/// port and process.
pub fn start_diamond_scheduler(
    cluster: &Cluster,
    ns: &str,
    cap: usize,
    extra: &[(&str, &str)],
) -> (u16, Background) {
    install_dev(cluster, ns);
    let submit = submit_workflow(cluster, "diamond", &diamond_workflow("diamond", ns), &[]);
    assert!(submit.ok, "{}", submit.stderr);
    let port = free_port();
    let cap = cap.to_string();
    let mut env = vec![
        ("DATAJUMP_MAX_RUNNING_TASKS", cap.as_str()),
        ("RUST_LOG", "warn"),
    ];
    env.extend_from_slice(extra);
    let scheduler = start_scheduler(cluster, ns, port, &env);
    wait_leading(port);
    (port, scheduler)
}

/// Peak resident set of a process in MiB, from /proc (`None` where it cannot be read).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    proc_status_mib(pid, "VmHWM")
}

/// A memory figure of a process in MiB from /proc/PID/status (`VmRSS`, `VmHWM`, ...); `None`
/// where it cannot be read.
pub fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

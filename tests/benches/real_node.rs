//! The scheduler against the floor a kubelet allows, on the real node (`../shared/k8s/node.sh`),
//! with the dev release installed as `tests/tests/real_node.rs` installs it (the scheduler in its
//! pod, from the image `scheduler-image/build-image.sh` built):
//!
//! ```sh
//! bash scheduler-image/build-image.sh && cargo build -p kubectl-datajump   # the dev-profile plugin
//! cargo bench --profile dev -p datajump-tests --bench real_node [-- --rounds 3 --workflows 1000]
//! ```
//!
//! 1. **Overhead**: a 20-task diamond-and-fan workflow of `true` tasks
//!    (`a → b1..b8 → c → d1..d8 → e → f`) run by the scheduler, beside the same 20 Jobs (the
//!    scheduler's own Job specs, renamed and unlabelled) created level by level by this bench,
//!    each level waited for with `kubectl wait` before the next: the floor the kubelet allows.
//!    Rounds alternate; both are timed from the first request to the last task's completion as
//!    `kubectl wait` sees it. Overhead = scheduler / floor − 1 (budget ≤ 20 %).
//! 2. **Task pod start**: for every scheduler Job, the time from the Job's appearance to its
//!    container running (or already ended), both seen by this bench's watches; p50 and p99.
//! 3. **Memory**: the scheduler container's working set (its memory cgroup on this host, as
//!    cAdvisor computes `container_memory_working_set_bytes`) with the release idle, then with N
//!    Workflows (default 1,000; daily schedules that do not fire during the bench) once the
//!    scheduler has reconciled every one (each shows `status.nextScheduleTime`). Budget 64 MiB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use datajump_tests::cluster::{Cluster, wait_until};
use datajump_tests::node::{DEV_NS as NS, E2E_IMAGE, installed_dev};
use datajump_tests::plugin::plugin;
use datajump_tests::runs::started_run;
use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use serde_json::Value;

/// The DAG's levels: every task of a level depends on every task of the level before.
fn levels() -> Vec<Vec<String>> {
    let fan = |p: &str| (1..=8).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    vec![
        vec!["a".into()],
        fan("b"),
        vec!["c".into()],
        fan("d"),
        vec!["e".into()],
        vec!["f".into()],
    ]
}

fn workflow() -> String {
    let mut tasks = String::new();
    let mut before: Vec<String> = Vec::new();
    for level in levels() {
        for task in &level {
            let deps = if before.is_empty() {
                String::new()
            } else {
                format!(", dependsOn: [{}]", before.join(", "))
            };
            tasks.push_str(&format!(
                "    - {{name: {task}, image: \"{E2E_IMAGE}\", command: [/busybox/sh, -c, \"true\"]{deps}}}\n"
            ));
        }
        before = level;
    }
    format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: bench-fan, namespace: {NS}}}\nspec:\n  parallelism: 8\n  successfulRunsHistoryLimit: 20\n  tasks:\n{tasks}"
    )
}

fn kubectl_json(cluster: &Cluster, args: &[&str]) -> anyhow::Result<Value> {
    let out = cluster.kubectl_ok(args).map_err(anyhow::Error::msg)?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// One scheduler run: seconds from `workflow run` to the run's `Succeeded`.
fn scheduler_round(cluster: &Cluster) -> anyhow::Result<(f64, String)> {
    let started = Instant::now();
    let run = started_run(&plugin(
        cluster,
        &["workflow", "run", "bench-fan", "-n", NS],
    ));
    cluster
        .kubectl_ok(&[
            "wait",
            "-n",
            NS,
            &format!("workflowrun/{run}"),
            "--for=jsonpath={.status.phase}=Succeeded",
            "--timeout=300s",
        ])
        .map_err(anyhow::Error::msg)?;
    Ok((started.elapsed().as_secs_f64(), run))
}

/// The scheduler's Job of each task in `run`, as a plain Job: renamed, without the scheduler's
/// labels and owner (so the scheduler ignores it), status and server fields dropped.
fn plain_jobs(
    cluster: &Cluster,
    run: &str,
    round: usize,
) -> anyhow::Result<HashMap<String, Value>> {
    let jobs = kubectl_json(
        cluster,
        &[
            "get",
            "jobs",
            "-n",
            NS,
            "-l",
            &format!("datajump.io/run={run}"),
            "-o",
            "json",
        ],
    )?;
    let mut out = HashMap::new();
    for job in jobs["items"].as_array().context("jobs")? {
        let task = job["metadata"]["labels"]["datajump.io/task"]
            .as_str()
            .context("the task label")?
            .to_string();
        let mut spec = job["spec"].clone();
        let template = spec["template"].as_object_mut().context("template")?;
        template.insert("metadata".into(), serde_json::json!({}));
        if let Some(s) = spec.as_object_mut() {
            s.remove("selector");
            s.remove("manualSelector");
        }
        let plain = serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": format!("floor-{round}-{task}"), "namespace": NS},
            "spec": spec,
        });
        out.insert(task, plain);
    }
    if out.len() != 20 {
        bail!("run {run} has {} Jobs, not 20", out.len());
    }
    Ok(out)
}

/// The floor: the same Jobs created level by level, each level waited for.
fn floor_round(cluster: &Cluster, jobs: &HashMap<String, Value>) -> anyhow::Result<f64> {
    let started = Instant::now();
    for level in levels() {
        let items: Vec<&Value> = level.iter().map(|t| &jobs[t]).collect();
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        let file = cluster.dir.join("floor-level.json");
        std::fs::write(&file, list.to_string())?;
        cluster
            .kubectl_ok(&["create", "-f", &file.to_string_lossy()])
            .map_err(anyhow::Error::msg)?;
        let names: Vec<String> = items
            .iter()
            .map(|j| format!("job/{}", j["metadata"]["name"].as_str().unwrap_or_default()))
            .collect();
        let mut args = vec![
            "wait",
            "-n",
            NS,
            "--for=condition=Complete",
            "--timeout=300s",
        ];
        args.extend(names.iter().map(String::as_str));
        cluster.kubectl_ok(&args).map_err(anyhow::Error::msg)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// When each scheduler Job appeared and when its pod's container started, as watched.
#[derive(Default)]
struct Starts {
    job_seen: HashMap<String, Instant>,
    running_seen: HashMap<String, Instant>,
}

fn watch_starts(rt: &tokio::runtime::Runtime, client: kube::Client) -> Arc<Mutex<Starts>> {
    let starts = Arc::new(Mutex::new(Starts::default()));
    let config = watcher::Config::default().labels("datajump.io/run");
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let seen = starts.clone();
    rt.spawn(
        watcher::watcher(jobs, config.clone()).for_each(move |event| {
            if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event
                && let Some(name) = job.metadata.name
                && let Ok(mut s) = seen.lock()
            {
                s.job_seen.entry(name).or_insert_with(Instant::now);
            }
            async {}
        }),
    );
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let seen = starts.clone();
    rt.spawn(
        watcher::watcher(pods, watcher::Config::default()).for_each(move |event| {
            if let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event {
                let job = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("job-name").cloned());
                let started = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                    .and_then(|c| c.state.as_ref())
                    .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
                if let (Some(job), true) = (job, started)
                    && let Ok(mut s) = seen.lock()
                {
                    s.running_seen.entry(job).or_insert_with(Instant::now);
                }
            }
            async {}
        }),
    );
    starts
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The scheduler container's memory working set, read from its memory cgroup on this host
/// (the node runs here) the way cAdvisor computes `container_memory_working_set_bytes`: usage
/// less inactive file pages. MiB. (The kubelet's summary API is out of reach: the API server
/// refuses to proxy to a kubelet on a loopback address.)
fn scheduler_working_set() -> anyhow::Result<f64> {
    let pid = std::fs::read_dir("/proc")?
        .flatten()
        .find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            cmdline.starts_with(b"/datajump-scheduler\0").then_some(pid)
        })
        .context("no scheduler process on this host")?;
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = cgroups
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        })
        .context("the scheduler's memory cgroup")?;
    let dir = format!("/sys/fs/cgroup/memory{path}");
    let usage: f64 = std::fs::read_to_string(format!("{dir}/memory.usage_in_bytes"))?
        .trim()
        .parse()?;
    let stat = std::fs::read_to_string(format!("{dir}/memory.stat"))?;
    let inactive_file: f64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("total_inactive_file "))
        .context("total_inactive_file")?
        .trim()
        .parse()?;
    Ok((usage - inactive_file).max(0.0) / 1024.0 / 1024.0)
}

fn many_workflows(cluster: &Cluster, n: usize) -> anyhow::Result<()> {
    let docs: String = (0..n)
        .map(|i| {
            format!(
                "---\napiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: mem-{i:04}, namespace: {NS}}}\nspec:\n  schedule: \"{} {} * * *\"\n  tasks:\n    - {{name: a, image: \"{E2E_IMAGE}\", command: [/busybox/sh, -c, \"true\"]}}\n    - {{name: b, image: \"{E2E_IMAGE}\", command: [/busybox/sh, -c, \"true\"], dependsOn: [a]}}\n",
                i % 60,
                (chrono::Utc::now().hour() + 12 + (i as u32 % 5)) % 24
            )
        })
        .collect();
    let file = cluster.dir.join("many-workflows.yaml");
    std::fs::write(&file, docs)?;
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", &file.to_string_lossy()])
        .map_err(anyhow::Error::msg)?;
    wait_until(
        "every Workflow reconciled",
        Duration::from_secs(600),
        || {
            let list = kubectl_json(cluster, &["get", "workflows", "-n", NS, "-o", "json"]).ok()?;
            let done = list["items"]
                .as_array()?
                .iter()
                .filter(|w| w["status"]["nextScheduleTime"].is_string())
                .count();
            (done >= n).then_some(())
        },
    );
    Ok(())
}

use chrono::Timelike as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rounds, workflows) = (arg("--rounds", 3), arg("--workflows", 1000));
    let Some(cluster) = installed_dev() else {
        return Ok(());
    };
    let rt = tokio::runtime::Runtime::new()?;
    let client = rt.block_on(cluster.client());
    let starts = watch_starts(&rt, client);
    let file = cluster.dir.join("bench-fan.yaml");
    std::fs::write(&file, workflow())?;
    let submitted = plugin(
        cluster,
        &["workflow", "submit", "-f", &file.to_string_lossy()],
    );
    if !submitted.ok {
        bail!("submit: {}", submitted.stderr);
    }
    // A warm-up run: the image is unpacked and the Job specs are taken from it.
    let (_, warm) = scheduler_round(cluster)?;
    let mut scheduler = Vec::new();
    let mut floor = Vec::new();
    for round in 0..rounds {
        let jobs = plain_jobs(cluster, &warm, round)?;
        let f = floor_round(cluster, &jobs)?;
        let (s, _) = scheduler_round(cluster)?;
        println!("round {round}: scheduler {s:.2} s, floor {f:.2} s");
        scheduler.push(s);
        floor.push(f);
    }
    scheduler.sort_by(f64::total_cmp);
    floor.sort_by(f64::total_cmp);
    let (s, f) = (percentile(&scheduler, 0.5), percentile(&floor, 0.5));
    println!(
        "20-task diamond-and-fan: scheduler median {s:.2} s, floor median {f:.2} s, overhead {:.1} % (budget 20 %)",
        (s / f - 1.0) * 100.0
    );
    let mut delays: Vec<f64> = {
        let s = starts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        s.job_seen
            .iter()
            .filter(|(job, _)| !job.starts_with("floor-"))
            .filter_map(|(job, seen)| {
                Some(s.running_seen.get(job)?.duration_since(*seen).as_secs_f64())
            })
            .collect()
    };
    delays.sort_by(f64::total_cmp);
    if !delays.is_empty() {
        println!(
            "task pod start (Job created -> container running), {} Jobs: p50 {:.2} s, p99 {:.2} s",
            delays.len(),
            percentile(&delays, 0.5),
            percentile(&delays, 0.99)
        );
    }
    let idle = scheduler_working_set()?;
    if workflows > 0 {
        let started = Instant::now();
        many_workflows(cluster, workflows)?;
        // Let the caches settle after the burst before reading.
        std::thread::sleep(Duration::from_secs(20));
        let loaded = scheduler_working_set()?;
        println!(
            "scheduler working set: {idle:.1} MiB idle, {loaded:.1} MiB with {workflows} Workflows (all reconciled in {:.0} s; budget 64 MiB)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

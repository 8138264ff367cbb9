//! The scheduler's central promise on a real API server: runs always make progress and never
//! double-fire, through a restart (SIGTERM), a crash (SIGKILL) and a leader handover between
//! three replicas, in the middle of DAGs with a retried, failing branch.
//!
//! Each scenario stops the scheduler while tasks run. Its counters are read with the API server
//! frozen (no status write can land between the reading and the stop), so the counters of all
//! the processes add up to what the runs did. The fake kubelet completes a task's pod about a
//! second after it starts and fails the pods of tasks whose name ends in `fails`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datajump_tests::cluster::{self, Background, Cluster, signal, wait_until};
use datajump_tests::plugin::{install_dev, plugin, submit_workflow};
use datajump_tests::scheduler::{counters, free_port, start_scheduler, wait_leading};
use serde_json::Value;

const RUNS: usize = 4;

/// The scenarios freeze the shared API server; one at a time, so that one's freeze does not
/// cost the other's leader its Lease.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A chain of three, and beside it a task that fails twice (one retry) with a dependent that
/// is therefore skipped: every run ends Failed, with a fixed set of Jobs. The history keeps
/// every run so that the test can read them all.
fn workflow(ns: &str) -> String {
    format!(
        "apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: relay, namespace: {ns}}}
spec:
  failedRunsHistoryLimit: 20
  tasks:
    - {{name: t1, image: busybox}}
    - {{name: t2, image: busybox, dependsOn: [t1]}}
    - {{name: t3, image: busybox, dependsOn: [t2]}}
    - {{name: bfails, image: busybox, retries: 1, retryBackoffSeconds: 1}}
    - {{name: after, image: busybox, dependsOn: [bfails]}}
"
    )
}

/// The Jobs one run must have made: one per attempt, no more.
const JOBS_PER_RUN: [&str; 5] = ["bfails-1", "bfails-2", "t1-1", "t2-1", "t3-1"];
/// Tasks that end (Succeeded or Failed) per run, and how many of them succeed.
const FINISHED_PER_RUN: f64 = 4.0;
const SUCCEEDED_PER_RUN: f64 = 3.0;

fn list(cluster: &Cluster, ns: &str, kind: &str) -> Vec<Value> {
    let out = cluster
        .kubectl_ok(&["get", kind, "-n", ns, "-o", "json"])
        .unwrap_or_else(|e| panic!("list {kind}: {e}"));
    let list: Value = serde_json::from_slice(&out.stdout).expect("list JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Submits the workflow and starts `RUNS` runs of it by hand; their names.
fn start_runs(cluster: &Cluster, ns: &str) -> Vec<String> {
    let submit = submit_workflow(cluster, "relay", &workflow(ns), &[]);
    assert!(submit.ok, "{}", submit.stderr);
    (0..RUNS)
        .map(|_| {
            let run = plugin(cluster, &["workflow", "run", "relay", "-n", ns]);
            assert!(run.ok, "{}", run.stderr);
            run.stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix("workflowrun.datajump.io/"))
                .unwrap_or_else(|| panic!("no run name in {:?}", run.stdout))
                .to_string()
        })
        .collect()
}

/// Waits until a Job of some run is running: the moment to pull the plug.
fn wait_for_tasks_in_flight(cluster: &Cluster, ns: &str) {
    wait_until("a task Job to run", Duration::from_secs(60), || {
        list(cluster, ns, "jobs")
            .iter()
            .any(|j| j["status"]["active"].as_i64().unwrap_or(0) > 0)
            .then_some(())
    });
}

/// The scheduler's finished-task counters, read while the API server is frozen so that none
/// can change before the process is stopped; then the process gets `sig`.
fn stop_counted(cluster: &Cluster, scheduler: &mut Background, port: u16, sig: &str) -> (f64, f64) {
    let frozen = cluster.freeze_api_server();
    let c = counters(port);
    let counts = (
        c.get("task_total").copied().unwrap_or(0.0),
        c.get("task_success_total").copied().unwrap_or(0.0),
    );
    signal(&scheduler.id().to_string(), sig);
    assert!(
        scheduler.wait_for_exit(Duration::from_secs(10)).is_some(),
        "the scheduler did not exit on {sig}:\n{}",
        scheduler.output()
    );
    drop(frozen);
    counts
}

/// Every run finished as it must: Failed, the chain Succeeded, the failing task Failed after
/// two attempts, its dependent Skipped, and exactly the Jobs of those attempts.
fn assert_runs_correct(cluster: &Cluster, ns: &str, runs: &[String], log: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (finished, unfinished) = loop {
        let (done, open): (Vec<Value>, Vec<Value>) = list(cluster, ns, "workflowruns")
            .into_iter()
            .filter(|r| runs.iter().any(|n| r["metadata"]["name"] == n.as_str()))
            .partition(|r| matches!(r["status"]["phase"].as_str(), Some("Succeeded" | "Failed")));
        if done.len() == runs.len() || Instant::now() > deadline {
            break (done, open);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let unfinished: Vec<String> = unfinished
        .iter()
        .map(|r| format!("{} {}", r["metadata"]["name"], r["status"]))
        .collect();
    assert_eq!(
        finished.len(),
        runs.len(),
        "every run finished within 120 s; not finished: {unfinished:#?}\n{log}"
    );
    let jobs = list(cluster, ns, "jobs");
    for run in &finished {
        let name = run["metadata"]["name"].as_str().unwrap_or_default();
        assert_eq!(run["status"]["phase"], "Failed", "{run:#}");
        let tasks: BTreeMap<&str, (&str, i64)> = run["status"]["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["name"].as_str().unwrap_or_default(),
                    (
                        t["phase"].as_str().unwrap_or_default(),
                        t["attempts"].as_i64().unwrap_or(0),
                    ),
                )
            })
            .collect();
        let expected = BTreeMap::from([
            ("t1", ("Succeeded", 1)),
            ("t2", ("Succeeded", 1)),
            ("t3", ("Succeeded", 1)),
            ("bfails", ("Failed", 2)),
            ("after", ("Skipped", 0)),
        ]);
        assert_eq!(tasks, expected, "{name}");
        let mut own: Vec<String> = jobs
            .iter()
            .filter(|j| j["metadata"]["labels"]["datajump.io/run"] == name)
            .filter_map(|j| j["metadata"]["name"].as_str())
            .map(|j| {
                j.trim_start_matches(name)
                    .trim_start_matches('-')
                    .to_string()
            })
            .collect();
        own.sort();
        assert_eq!(own, JOBS_PER_RUN, "{name}: one Job per attempt");
    }
}

#[test]
fn runs_finish_through_a_restart_and_a_crash() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = "restart-dev";
    install_dev(cluster, ns);
    let port = free_port();
    let mut first = start_scheduler(cluster, ns, port, &[]);
    wait_leading(port);
    let runs = start_runs(cluster, ns);

    // SIGTERM while tasks run; a new process takes over (same identity, as a restarted pod of
    // a StatefulSet would: it renews its own Lease at once).
    wait_for_tasks_in_flight(cluster, ns);
    let a = stop_counted(cluster, &mut first, port, "TERM");
    let mut second = start_scheduler(cluster, ns, port, &[]);
    wait_leading(port);

    // SIGKILL while a second batch of runs is under way: nothing is handed over, the next
    // process finds it all.
    let mut runs = runs;
    runs.extend(start_runs(cluster, ns));
    wait_for_tasks_in_flight(cluster, ns);
    let b = stop_counted(cluster, &mut second, port, "KILL");
    let third = start_scheduler(cluster, ns, port, &[]);
    wait_leading(port);

    let log = format!(
        "{}\n{}\n{}",
        first.output(),
        second.output(),
        third.output()
    );
    assert_runs_correct(cluster, ns, &runs, &log);
    let c = counters(port);
    let total = a.0 + b.0 + c.get("task_total").copied().unwrap_or(0.0);
    let success = a.1 + b.1 + c.get("task_success_total").copied().unwrap_or(0.0);
    let n = runs.len() as f64;
    assert_eq!(
        (total, success),
        (n * FINISHED_PER_RUN, n * SUCCEEDED_PER_RUN),
        "each finished task counted once across the three processes"
    );
}

#[test]
fn a_follower_takes_over_when_the_leader_dies() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = "failover-dev";
    install_dev(cluster, ns);
    // A short Lease keeps the test short: followers take over 6 s after the last renewal.
    let mut replicas: Vec<(String, u16, Background)> = (0..3)
        .map(|i| {
            let name = format!("scheduler-{i}");
            let port = free_port();
            let process = start_scheduler(
                cluster,
                ns,
                port,
                &[
                    ("DATAJUMP_POD_NAME", name.as_str()),
                    ("DATAJUMP_LEASE_DURATION_SECONDS", "6"),
                ],
            );
            (name, port, process)
        })
        .collect();
    let leader_of = |replicas: &[(String, u16, Background)]| -> Vec<usize> {
        replicas
            .iter()
            .enumerate()
            .filter(|(_, (_, port, _))| counters(*port).get("scheduler_leader") == Some(&1.0))
            .map(|(i, _)| i)
            .collect()
    };
    let leader = wait_until(
        "one replica to lead",
        Duration::from_secs(60),
        || match leader_of(&replicas)[..] {
            [one] => Some(one),
            _ => None,
        },
    );
    wait_leading(replicas[leader].1);
    let runs = start_runs(cluster, ns);
    wait_for_tasks_in_flight(cluster, ns);

    let (_, port, process) = &mut replicas[leader];
    let killed = stop_counted(cluster, process, *port, "KILL");
    let started = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let next = wait_until("a follower to take over", Duration::from_secs(30), || {
        let leading: Vec<usize> = leader_of(&replicas)
            .into_iter()
            .filter(|i| survivors.contains(i))
            .collect();
        assert!(leading.len() <= 1, "two leaders at once: {leading:?}");
        leading.first().copied()
    });
    let handover = started.elapsed();
    let log: String = replicas
        .iter()
        .map(|(name, _, p)| format!("== {name}\n{}", p.output()))
        .collect();
    assert_runs_correct(cluster, ns, &runs, &log);
    assert!(
        handover < Duration::from_secs(12),
        "taken over in {handover:?} (lease 6 s)"
    );
    let mut total = killed;
    for &i in &survivors {
        let c = counters(replicas[i].1);
        total.0 += c.get("task_total").copied().unwrap_or(0.0);
        total.1 += c.get("task_success_total").copied().unwrap_or(0.0);
    }
    let n = RUNS as f64;
    assert_eq!(
        total,
        (n * FINISHED_PER_RUN, n * SUCCEEDED_PER_RUN),
        "each finished task counted once, by whichever replica led"
    );
    let lease = cluster
        .kubectl_ok(&[
            "get",
            "lease",
            "datajump-scheduler-leader",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .expect("the Lease");
    assert_eq!(
        String::from_utf8_lossy(&lease.stdout),
        replicas[next].0,
        "the Lease names the new leader"
    );
}

//! Task pods that cannot start, or that fail, on the real API server, with the scheduler under
//! the chart's RBAC. This binary's fake kubelet is paused while the test plays the kubelet and
//! the kube-scheduler for the task pods, reporting what they would: an image that cannot be
//! pulled, a pod no node fits, a container killed for memory, one that exits with 3.
//!
//! What the run must show: each task's reason and exit code; the two pods that cannot start
//! give their attempts up after `pendingTimeoutSeconds`, their Jobs are deleted and their
//! slots under the cap of 2 go to the two tasks waiting behind them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use datajump_tests::cluster::{self, Cluster};
use datajump_tests::kubelet::PausedKubelet;
use datajump_tests::plugin::{install_dev, submit_workflow};
use datajump_tests::scheduler::{free_port, start_scheduler, wait_leading};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "pods-dev";
const PENDING_TIMEOUT_SECONDS: i64 = 8;
const UNPULLABLE: &str = "registry.invalid/etl:nope";

fn workflow() -> String {
    format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: pods, namespace: {NS}}}\n\
         spec:\n  tasks:\n\
         \x20   - {{name: pull, image: \"{UNPULLABLE}\", pendingTimeoutSeconds: {PENDING_TIMEOUT_SECONDS}}}\n\
         \x20   - {{name: unsched, image: busybox, pendingTimeoutSeconds: {PENDING_TIMEOUT_SECONDS}}}\n\
         \x20   - {{name: oom, image: busybox}}\n\
         \x20   - {{name: exit3, image: busybox}}\n\
         \x20   - {{name: publish, image: busybox, dependsOn: [pull]}}\n"
    )
}

fn container(pod: &Pod, state: Value) -> Value {
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    json!([{"name": "task", "image": image, "imageID": "", "ready": false,
            "restartCount": 0, "state": state}])
}

/// What the kubelet (or the kube-scheduler) reports for the pod of `task`.
fn status_of(task: &str, pod: &Pod) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    let scheduled = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]);
    let terminated = |reason: &str, code: i32| {
        json!({"phase": "Failed", "startTime": now, "conditions": scheduled,
               "containerStatuses": container(pod, json!({"terminated": {
                   "reason": reason, "exitCode": code, "startedAt": now, "finishedAt": now}}))})
    };
    match task {
        "pull" => json!({"phase": "Pending", "conditions": scheduled,
            "containerStatuses": container(pod, json!({"waiting": {
                "reason": "ImagePullBackOff",
                "message": format!("Back-off pulling image \"{UNPULLABLE}\"")}}))}),
        "unsched" => json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": now,
            "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
        "oom" => terminated("OOMKilled", 137),
        "exit3" => terminated("Error", 3),
        _ => json!({"phase": "Succeeded", "startTime": now, "conditions": scheduled,
            "containerStatuses": container(pod, json!({"terminated": {
                "reason": "Completed", "exitCode": 0, "startedAt": now, "finishedAt": now}}))}),
    }
}

/// Plays every new task pod once: binds it to a node (except the one no node fits) and
/// reports its status.
async fn play_pods(api: Api<Pod>) {
    let mut played = HashSet::new();
    loop {
        let pods = api.list(&ListParams::default()).await.expect("list pods");
        for pod in pods.items {
            let (Some(name), Some(uid)) = (pod.metadata.name.clone(), pod.metadata.uid.clone())
            else {
                continue;
            };
            // Only task pods: the release's own pods were started before the kubelet paused.
            let Some(task) = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("datajump.io/task"))
                .cloned()
            else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some() || !played.insert(uid) {
                continue;
            }
            if task != "unsched" {
                let binding = json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name}, "target": {"kind": "Node", "name": "fake-node-0"}});
                let bound: Result<Value, _> = api
                    .create_subresource("binding", &name, &PostParams::default(), &binding)
                    .await;
                bound.unwrap_or_else(|e| panic!("bind {name}: {e}"));
            }
            let status = json!({ "status": status_of(&task, &pod) });
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap_or_else(|e| panic!("report the status of {name}: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn run_of_workflow(cluster: &Cluster) -> Option<Value> {
    let out = cluster
        .kubectl_ok(&[
            "get",
            "workflowruns",
            "-n",
            NS,
            "-l",
            "datajump.io/workflow=pods",
            "-o",
            "json",
        ])
        .ok()?;
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    list["items"].as_array()?.first().cloned()
}

fn task<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["status"]["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("task {name} in {run:#}"))
}

fn job_names(cluster: &Cluster) -> Vec<String> {
    let out = cluster
        .kubectl_ok(&["get", "jobs", "-n", NS, "-o", "name"])
        .expect("list jobs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("job.batch/").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_failures_reach_the_run_and_blocked_pods_give_their_slots_up() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    install_dev(cluster, NS);
    let port = free_port();
    let mut scheduler = start_scheduler(cluster, NS, port, &[("DATAJUMP_MAX_RUNNING_TASKS", "2")]);
    wait_leading(port);

    let kubelet = PausedKubelet::pause(cluster);
    let player = tokio::spawn(play_pods(Api::namespaced(cluster.client().await, NS)));
    let submit = submit_workflow(cluster, "pods", &workflow(), &["--run-now"]);
    assert!(submit.ok, "{}", submit.stderr);

    let deadline = Instant::now() + Duration::from_secs(35);
    let mut seen_waiting = None;
    let run = loop {
        let run = run_of_workflow(cluster);
        if let Some(run) = run.as_ref().filter(|r| r["status"]["tasks"].is_array()) {
            let pull = task(run, "pull");
            if pull["phase"] == "Running" && pull["reason"] == "ImagePullBackOff" {
                seen_waiting = pull["message"].as_str().map(str::to_string);
            }
            if run["status"]["phase"] == "Failed" || run["status"]["phase"] == "Succeeded" {
                break run.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the run did not finish within 35 s: {run:#?}\n{}",
            scheduler.output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    player.abort();
    drop(kubelet);

    // While it waited, the status said why.
    let waiting = seen_waiting.expect("pull was seen Running with its pod's reason");
    assert!(
        waiting.contains("cannot start: ImagePullBackOff") && waiting.contains(UNPULLABLE),
        "{waiting}"
    );
    assert_eq!(run["status"]["phase"], "Failed");
    let fields = |name: &str| {
        let t = task(&run, name);
        (
            t["phase"].as_str().unwrap_or_default().to_string(),
            t["reason"].as_str().unwrap_or_default().to_string(),
            t["exitCode"].as_i64(),
        )
    };
    let failed = |reason: &str, code: Option<i64>| ("Failed".to_string(), reason.to_string(), code);
    assert_eq!(fields("pull"), failed("ImagePullBackOff", None), "{run:#}");
    assert_eq!(fields("unsched"), failed("Unschedulable", None), "{run:#}");
    assert_eq!(fields("oom"), failed("OOMKilled", Some(137)), "{run:#}");
    assert_eq!(fields("exit3"), failed("Error", Some(3)), "{run:#}");
    assert_eq!(task(&run, "publish")["phase"], "Skipped");
    let message = |name: &str| {
        task(&run, name)["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        message("pull").starts_with(&format!(
            "attempt 1 could not start within {PENDING_TIMEOUT_SECONDS}s: ImagePullBackOff"
        )),
        "{}",
        message("pull")
    );
    assert!(
        message("unsched").contains("Insufficient memory"),
        "{}",
        message("unsched")
    );
    assert_eq!(
        message("oom"),
        "attempt 1 failed: exit code 137 (OOMKilled)"
    );

    // The cap of 2 was held by the two blocked pods: the other two started only once those
    // were given up.
    let started = |name: &str| {
        task(&run, name)["startTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .unwrap_or_else(|| panic!("{name} has a start time: {run:#}"))
    };
    // The timeout counts from the Job's start, which the API server keeps in whole seconds:
    // it can end up to a second before the sub-second start the run recorded for pull.
    for late in ["oom", "exit3"] {
        let waited = started(late) - started("pull");
        assert!(
            waited >= chrono::Duration::seconds(PENDING_TIMEOUT_SECONDS - 1),
            "{late} started {waited} after pull, before a slot was free"
        );
    }
    // The given-up attempts' Jobs are gone; the failed ones stay as the record.
    let jobs = job_names(cluster);
    assert!(
        !jobs
            .iter()
            .any(|j| j.contains("-pull-") || j.contains("-unsched-")),
        "{jobs:?}"
    );
    assert!(jobs.iter().any(|j| j.contains("-oom-")), "{jobs:?}");
    assert!(
        scheduler.running(),
        "the scheduler died:\n{}",
        scheduler.output()
    );
}

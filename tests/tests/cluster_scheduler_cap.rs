//! The global cap on running task Jobs (`DATAJUMP_MAX_RUNNING_TASKS`) on a real API server:
//! runs created at once never have more Jobs active than the cap, and a run held back by the cap
//! starts as soon as another run's Job frees a slot — not at the next resync (300 s).
//!
//! The fake kubelet completes each task's pod about a second after it starts. With a retention
//! of 0, the finished pods go once their runs recorded them, and the Jobs stay.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use datajump_tests::cluster::{self, Cluster};
use datajump_tests::plugin::{install_dev, submit_workflow};
use datajump_tests::scheduler::{free_port, start_scheduler, wait_leading};
use serde_json::Value;

const NS: &str = "cap-dev";
const RUNS: usize = 4;

/// (active Jobs, the set of Succeeded runs) right now.
fn observe(cluster: &Cluster) -> (usize, BTreeSet<String>) {
    let get = |kind: &str| -> Value {
        let out = cluster
            .kubectl_ok(&["get", kind, "-n", NS, "-o", "json"])
            .unwrap_or_else(|e| panic!("list {kind}: {e}"));
        serde_json::from_slice(&out.stdout).expect("list JSON")
    };
    let jobs = get("jobs");
    let active = jobs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| {
            let done = j["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
                });
            !done
        })
        .count();
    let runs = get("workflowruns");
    let succeeded = runs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"]["phase"] == "Succeeded")
        .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    (active, succeeded)
}

#[test]
fn runs_share_the_cap_and_a_waiting_run_starts_when_a_slot_frees() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    install_dev(cluster, NS);
    let port = free_port();
    let mut scheduler = start_scheduler(
        cluster,
        NS,
        port,
        &[
            ("DATAJUMP_MAX_RUNNING_TASKS", "1"),
            ("DATAJUMP_FINISHED_POD_RETENTION", "0"),
        ],
    );
    wait_leading(port);

    for i in 0..RUNS {
        let workflow = format!(
            "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: capped-{i}, namespace: {NS}}}\nspec:\n  tasks:\n    - name: only\n      image: busybox\n"
        );
        let submit = submit_workflow(cluster, &format!("capped-{i}"), &workflow, &["--run-now"]);
        assert!(submit.ok, "{}", submit.stderr);
    }

    // Each run needs its one slot in turn: about a second of pod time each, plus the
    // scheduler's reactions. Without a wake-up for runs held back by the cap they wait for the
    // resync, far beyond this deadline.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut most_active = 0;
    let succeeded = loop {
        let (active, succeeded) = observe(cluster);
        most_active = most_active.max(active);
        if succeeded.len() == RUNS || Instant::now() > deadline {
            break succeeded;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        succeeded.len(),
        RUNS,
        "every run finished within 90 s: {succeeded:?}\n{}",
        scheduler.output()
    );
    assert_eq!(most_active, 1, "never more active Jobs than the cap of 1");

    // The Job controller leaves finished pods in place; the scheduler removes them once the
    // run recorded the result (at once here), under the chart's RBAC, and keeps the Jobs.
    let names = |kind: &str, selector: &str| -> Vec<String> {
        let out = cluster
            .kubectl_ok(&["get", kind, "-n", NS, "-l", selector, "-o", "name"])
            .unwrap_or_else(|e| panic!("list {kind}: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    cluster::wait_until(
        "finished task pods deleted",
        Duration::from_secs(20),
        || names("pods", "datajump.io/task").is_empty().then_some(()),
    );
    assert_eq!(
        names("jobs", "datajump.io/task").len(),
        RUNS,
        "the Jobs stay as the record"
    );
    assert!(
        scheduler.running(),
        "the scheduler died:\n{}",
        scheduler.output()
    );
}

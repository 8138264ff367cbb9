//! Stopping and terminating runs whose tasks are real processes: `workflow stop` lets the
//! running container finish its work and starts nothing after it; `workflow terminate` kills the
//! running container — its process is gone from this host, not only its pod object — before
//! the onExit task runs.

use std::time::Duration;

use datajump_tests::cluster::{Cluster, wait_until};
use datajump_tests::plugin::{Run, plugin};
use datajump_tests::runs::{started_run, task, task_phase, wait_for_end, wait_for_run};

use crate::{E2E_IMAGE, NS, installed};

fn dj(cluster: &Cluster, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-n", NS]);
    plugin(cluster, &all)
}

/// A workflow whose first task runs `first` (a shell command), with a task after it and an
/// onExit task that prints the run's outcome.
fn workflow(name: &str, first: &str) -> String {
    format!(
        r#"apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: {name}, namespace: {NS}}}
spec:
  tasks:
    - name: long
      image: {E2E_IMAGE}
      command: ["/busybox/sh", "-c", "{first}"]
    - name: after
      image: {E2E_IMAGE}
      command: ["/busybox/sh", "-c", "echo after ran"]
      dependsOn: [long]
  onExit:
    name: notify
    image: {E2E_IMAGE}
    command: ["/busybox/sh", "-c", "echo outcome $(DATAJUMP_RUN_OUTCOME)"]
"#
    )
}

/// Submits `yaml`, starts a run and waits until its `long` task's container is running.
fn start_long(cluster: &Cluster, name: &str, yaml: &str) -> String {
    let file = cluster.dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("write the workflow");
    let submitted = dj(
        cluster,
        &["workflow", "submit", "-f", &file.to_string_lossy()],
    );
    assert!(submitted.ok, "{}", submitted.stderr);
    let run = started_run(&dj(cluster, &["workflow", "run", name]));
    wait_for_run(
        cluster,
        NS,
        &run,
        "long running",
        Duration::from_secs(120),
        |r| task_phase(r, "long").as_deref() == Some("Running"),
    );
    let job = format!(
        "job-name={}",
        datajump_api::names::job_name(&run, "long", 1)
    );
    wait_until(
        "the long task's container running",
        Duration::from_secs(60),
        || {
            let out = cluster.kubectl(&["get", "pods", "-n", NS, "-l", &job, "-o", "json"]);
            let pods: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            pods["items"]
                .as_array()?
                .iter()
                .any(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
                .then_some(())
        },
    );
    run
}

/// Host processes whose command line contains `marker` (the node runs on this machine).
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(marker)
                .then_some(pid)
        })
        .collect()
}

#[test]
fn stop_lets_the_running_container_finish_and_starts_nothing_after_it() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    let run = start_long(
        cluster,
        "stoppable",
        &workflow("stoppable", "sleep 4; echo long finished"),
    );
    let stop = dj(cluster, &["workflow", "stop", &run]);
    assert!(stop.ok, "workflow stop: {}", stop.stderr);
    let done = wait_for_end(cluster, NS, &run, Duration::from_secs(120));
    assert_eq!(done["status"]["phase"], "Stopped", "{:#}", done["status"]);
    assert_eq!(
        task(&done, "long")["phase"],
        "Succeeded",
        "the running task finished"
    );
    assert_eq!(
        task(&done, "after")["phase"],
        "Skipped",
        "nothing new started"
    );
    let logs = dj(cluster, &["workflow", "logs", &run]);
    assert!(
        logs.stdout.contains("[long] long finished"),
        "the container ran to its end:\n{}{}",
        logs.stdout,
        logs.stderr
    );
    assert!(
        logs.stdout.contains("[notify] outcome Stopped"),
        "{}",
        logs.stdout
    );
    assert!(!logs.stdout.contains("after ran"), "{}", logs.stdout);
}

#[test]
fn terminate_kills_the_running_container_before_on_exit_runs() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    // A marker no other test's process carries.
    let marker = "sleep 317";
    let run = start_long(cluster, "killable", &workflow("killable", marker));
    assert!(
        !processes_with(marker).is_empty(),
        "the task's process runs on this host"
    );
    let terminate = dj(
        cluster,
        &[
            "workflow",
            "terminate",
            &run,
            "--yes",
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    assert!(
        terminate.ok || terminate.stdout.contains("Terminated"),
        "workflow terminate --wait: {}{}",
        terminate.stdout,
        terminate.stderr
    );
    let done = wait_for_end(cluster, NS, &run, Duration::from_secs(60));
    assert_eq!(
        done["status"]["phase"], "Terminated",
        "{:#}",
        done["status"]
    );
    assert_eq!(
        task(&done, "long")["reason"],
        "Terminated",
        "{:#}",
        done["status"]
    );
    assert_eq!(task(&done, "after")["phase"], "Skipped");
    assert!(
        processes_with(marker).is_empty(),
        "the container's process is gone: {:?}",
        processes_with(marker)
    );
    // onExit ran after the kill, and saw how the run ended.
    let logs = dj(cluster, &["workflow", "logs", &run, "--task", "notify"]);
    assert!(
        logs.stdout.contains("[notify] outcome Terminated"),
        "{}{}",
        logs.stdout,
        logs.stderr
    );
    let killed_at = task(&done, "long")["completionTime"]
        .as_str()
        .map(str::to_string);
    let notify_started = task(&done, "notify")["startTime"]
        .as_str()
        .map(str::to_string);
    assert!(
        notify_started >= killed_at,
        "onExit started ({notify_started:?}) once the task was killed ({killed_at:?})"
    );
}

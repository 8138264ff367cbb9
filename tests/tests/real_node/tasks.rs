//! Workflows whose tasks really run: every assertion is on what a container did (its log, its
//! exit code, the kernel's OOM kill, the Job's deadline, files it read and wrote), never on what
//! a test told a fake to report. The scheduler is the chart's, in its pod.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datajump_tests::cluster::{Cluster, wait_until, workspace_root};
use datajump_tests::node::{ARCHIVE_BUCKET, ARCHIVE_PREFIX, dev_log_archive};
use datajump_tests::runs::{get_json, list, started_run, task, task_phase, wait_for_end};
use serde_json::Value;

use crate::{E2E_IMAGE, NS, dj, installed, submit};

/// Starts a run of `workflow` with extra `workflow run` arguments and waits for it to end;
/// returns the WorkflowRun as the API server has it.
pub(crate) fn run_to_end(cluster: &Cluster, workflow: &str, extra: &[&str]) -> Value {
    let mut args = vec!["workflow", "run", workflow];
    args.extend_from_slice(extra);
    let started = dj(cluster, &args);
    let name = started_run(&started);
    wait_for_end(cluster, NS, &name, Duration::from_secs(180))
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a time: {v}"))
}

/// `workflow logs RUN ARGS`, which must succeed.
fn logs(cluster: &Cluster, run: &str, extra: &[&str]) -> String {
    let mut args = vec!["workflow", "logs", run];
    args.extend_from_slice(extra);
    let out = dj(cluster, &args);
    assert!(out.ok, "workflow logs {run} {extra:?}: {}", out.stderr);
    out.stdout
}

#[test]
fn e2e_diamond_sample_succeeds_in_dependency_order() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    let sample = workspace_root().join("tests/e2e/sample-workflow.yaml");
    let yaml = std::fs::read_to_string(sample).expect("the sample");
    assert!(
        yaml.contains(E2E_IMAGE),
        "the sample's tasks use {E2E_IMAGE}"
    );
    submit(cluster, "e2e-diamond", &yaml);
    let run = run_to_end(cluster, "e2e-diamond", &[]);
    assert_eq!(run["status"]["phase"], "Succeeded", "{:#}", run["status"]);
    // Every task started after the tasks it depends on completed.
    for (name, deps) in [
        ("transform-orders", vec!["extract"]),
        ("transform-users", vec!["extract"]),
        ("load", vec!["transform-orders", "transform-users"]),
    ] {
        let started = time(&task(&run, name)["startTime"]);
        for dep in deps {
            let done = time(&task(&run, dep)["completionTime"]);
            assert!(
                started >= done,
                "{name} started {started} before {dep} completed {done}"
            );
        }
    }
    let name = run["metadata"]["name"].as_str().expect("run name");
    let all = logs(cluster, name, &[]);
    for line in [
        "[extract] extracted 3 rows",
        "[transform-orders] orders transformed",
        "[transform-users] users transformed",
        "[load] loaded",
    ] {
        assert!(all.contains(line), "{line:?} in the run's logs:\n{all}");
    }
    let one = logs(cluster, name, &["--task", "load"]);
    assert_eq!(one.trim(), "[load] loaded", "only the load task's log");
}

#[test]
fn run_variables_reach_commands_through_kubernetes_expansion() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    // The sample's pods ask for the `etl` node pool.
    let node = get_json(cluster, &["get", "nodes", "-o", "json"])["items"][0]["metadata"]["name"]
        .as_str()
        .expect("the node")
        .to_string();
    cluster
        .kubectl_ok(&["label", "node", &node, "node-pool=etl", "--overwrite"])
        .expect("label the node");
    let yaml = std::fs::read_to_string(workspace_root().join("tests/e2e/nightly-etl.yaml"))
        .expect("the sample");
    submit(cluster, "nightly-etl", &yaml);
    let run = run_to_end(
        cluster,
        "nightly-etl",
        &[
            "-p",
            "table=customers",
            "--logical-time",
            "2026-11-30T02:00:00Z",
        ],
    );
    assert_eq!(run["status"]["phase"], "Succeeded", "{:#}", run["status"]);
    let name = run["metadata"]["name"].as_str().expect("run name");
    let all = logs(cluster, name, &[]);
    // `$(DATAJUMP_…)` in command and args is expanded by the kubelet from the task's env.
    assert!(
        all.contains("[report] report for 2026-11-30"),
        "logical date:\n{all}"
    );
    assert!(
        all.contains("[load] loading 2026-11-29"),
        "interval start:\n{all}"
    );
    assert!(
        all.contains(&format!("[notify] {name} Succeeded failed=")),
        "the onExit task saw the run's name and outcome:\n{all}"
    );
    assert!(
        !all.contains("$(DATAJUMP"),
        "no variable left unexpanded:\n{all}"
    );
}

/// Independent tasks that each end in a way only a real container can: an exit code, the
/// kernel's OOM kill, the Job's deadline; one reads a ConfigMap through a pod preset and writes
/// an emptyDir; one fails twice, printing its own pod's name.
fn failures_workflow() -> String {
    format!(
        r#"apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: failures, namespace: {NS}}}
spec:
  parallelism: 5
  tasks:
    - name: exit3
      image: {E2E_IMAGE}
      command: ["/busybox/sh", "-c", "echo about to fail; exit 3"]
    - name: oom
      image: {E2E_IMAGE}
      command: ["/busybox/sh", "-c", "head -c 268435456 /dev/zero | tail > /dev/null"]
      resources: {{limits: {{memory: 24Mi}}}}
      retries: 1
      retryOn: OnFailure
      retryBackoffSeconds: 1
    - name: deadline
      image: {E2E_IMAGE}
      command: ["/busybox/sh", "-c", "echo started; sleep 300"]
      timeoutSeconds: 5
    - name: files
      image: {E2E_IMAGE}
      command: ["/busybox/sh", "-c", "cat /reference/greeting > /work/copy && echo uid=$(id -u) && cat /work/copy"]
      pod:
        preset: etl
        volumes: [{{name: work, emptyDir: {{}}}}]
        volumeMounts: [{{name: work, mountPath: /work}}]
    - name: flaky
      image: {E2E_IMAGE}
      command: ["/busybox/sh", "-c", "echo pod $(hostname); exit 1"]
      retries: 1
      retryBackoffSeconds: 1
"#
    )
}

#[test]
fn failures_are_what_the_containers_did() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: etl-reference, namespace: {NS}}}\ndata:\n  greeting: hello from a ConfigMap\n"
    ));
    submit(cluster, "failures", &failures_workflow());
    let run = run_to_end(cluster, "failures", &[]);
    let name = run["metadata"]["name"]
        .as_str()
        .expect("run name")
        .to_string();
    assert_eq!(run["status"]["phase"], "Failed", "{:#}", run["status"]);

    let exit3 = task(&run, "exit3");
    assert_eq!(exit3["phase"], "Failed");
    assert_eq!(exit3["exitCode"], 3, "the container's exit code: {exit3:#}");

    let oom = task(&run, "oom");
    assert_eq!(oom["phase"], "Failed");
    assert_eq!(
        oom["reason"], "OOMKilled",
        "killed by its memory limit: {oom:#}"
    );
    assert_eq!(
        oom["attempts"], 2,
        "retried once (retryOn: OnFailure): {oom:#}"
    );
    assert_eq!(oom["exitCode"], 137, "SIGKILL: {oom:#}");

    let deadline = task(&run, "deadline");
    assert_eq!(deadline["phase"], "Failed");
    assert_eq!(deadline["reason"], "DeadlineExceeded", "{deadline:#}");
    let took = time(&deadline["completionTime"]) - time(&deadline["startTime"]);
    assert!(
        took.num_seconds() < 60,
        "killed at its 5 s deadline, not after sleep 300: {took}"
    );
    let job = deadline["jobName"]
        .as_str()
        .expect("the deadline task's Job");
    for pod in list(cluster, NS, "pods", &format!("job-name={job}")) {
        assert_ne!(
            pod["status"]["phase"], "Running",
            "the deadline's container is gone: {pod:#}"
        );
    }

    let files = task(&run, "files");
    assert_eq!(files["phase"], "Succeeded", "{files:#}");
    let out = logs(cluster, &name, &["--task", "files"]);
    assert!(
        out.contains("[files] uid=10002") && out.contains("[files] hello from a ConfigMap"),
        "the preset's user read the ConfigMap and wrote the emptyDir:\n{out}"
    );
    assert!(logs(cluster, &name, &["--task", "exit3"]).contains("[exit3] about to fail"));

    // Each attempt's own log: the default is the last attempt, --attempt picks another.
    let flaky = task(&run, "flaky");
    assert_eq!(flaky["attempts"], 2, "{flaky:#}");
    let last = logs(cluster, &name, &["--task", "flaky"]);
    let first = logs(cluster, &name, &["--task", "flaky", "--attempt", "1"]);
    assert!(
        last.contains("-flaky-2-"),
        "the last attempt's pod printed its name:\n{last}"
    );
    assert!(
        first.contains("-flaky-1-"),
        "the first attempt's pod printed its name:\n{first}"
    );

    // A pod that is gone, and its log not in the archive either (the pod is deleted by hand,
    // and whatever the scheduler archived meanwhile is removed): the error says so for both,
    // and why, and nothing is printed as if it were a log.
    let exit3_job = exit3["jobName"].as_str().expect("exit3's Job");
    cluster
        .kubectl_ok(&[
            "delete",
            "pods",
            "-n",
            NS,
            "-l",
            &format!("job-name={exit3_job}"),
            "--wait",
        ])
        .expect("delete the pod");
    let key = format!(
        "{ARCHIVE_PREFIX}/{NS}/failures/{name}/exit3/{}.log",
        exit3["attempts"]
    );
    dev_log_archive()
        .delete(ARCHIVE_BUCKET, &key)
        .expect("remove the archived log");
    let gone = dj(cluster, &["workflow", "logs", &name, "--task", "exit3"]);
    assert!(!gone.ok, "no log to show is an error: {}", gone.stdout);
    assert!(
        gone.stderr.contains(exit3_job) && gone.stderr.contains("finishedPodRetentionSeconds"),
        "the error names the Job and why its pod is gone:\n{}",
        gone.stderr
    );
    assert!(
        gone.stderr.contains("the log archive has none") && gone.stderr.contains(&key),
        "the error says the archive has no such log either:\n{}",
        gone.stderr
    );
}

#[test]
fn follow_streams_a_running_task_to_its_end() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    submit(
        cluster,
        "ticker",
        &format!(
            "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: ticker, namespace: {NS}}}\nspec:\n  tasks:\n    - name: tick\n      image: {E2E_IMAGE}\n      command: [\"/busybox/sh\", \"-c\", \"for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done\"]\n"
        ),
    );
    let started = dj(cluster, &["workflow", "run", "ticker"]);
    let name = started_run(&started);
    wait_until("the tick task running", Duration::from_secs(120), || {
        let run = get_json(
            cluster,
            &["get", "workflowrun", "-n", NS, &name, "-o", "json"],
        );
        // The run may have no status yet: the scheduler has not looked at it.
        (task_phase(&run, "tick").as_deref() == Some("Running")).then_some(())
    });
    let begun = Instant::now();
    let out = logs(cluster, &name, &["--task", "tick", "--follow"]);
    let took = begun.elapsed();
    let ticks: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("[tick] tick "))
        .collect();
    assert_eq!(
        ticks,
        (1..=6)
            .map(|i| format!("[tick] tick {i}"))
            .collect::<Vec<_>>(),
        "every line, in order, until the container ended:\n{out}"
    );
    assert!(
        took >= Duration::from_secs(1),
        "--follow waited for lines still to come ({took:?})"
    );
    let run = wait_for_end(cluster, NS, &name, Duration::from_secs(60));
    assert_eq!(run["status"]["phase"], "Succeeded");
}

//! `kubectl datajump report` where logs are real: a task reads a Secret's password into its env
//! and prints it the ways programs leak credentials — as a `password:` field, in JSON, as
//! `token=`, and bare in the middle of a sentence — while it runs. The bundle has the task's log
//! (and the scheduler's, its Lease and its /metrics through the API server's pod proxy) with
//! every one of those occurrences replaced, and the value nowhere in the archive.

use std::time::Duration;

use datajump_tests::cluster::wait_until;
use datajump_tests::report::Bundle;
use datajump_tests::runs::{list, started_run};

use crate::{E2E_IMAGE, NS, dj, installed, submit};

/// The Secret's value the task prints; unique, so any occurrence is a leak.
const PASSWORD: &str = "RealNodeSecret-3c9e71";

/// A line the task prints after the leaks, to know its log has them all.
const DONE: &str = "report-task-printed-everything";

fn workflow() -> String {
    format!(
        r#"apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: leaky, namespace: {NS}}}
spec:
  tasks:
    - name: leak
      image: {E2E_IMAGE}
      env:
        - name: DB_PASSWORD
          valueFrom: {{secretKeyRef: {{name: report-db, key: password}}}}
      command:
        - /busybox/sh
        - -c
        - |
          echo "connecting to mysql with password: $DB_PASSWORD"
          echo "{{\"user\":\"app\",\"password\":\"$DB_PASSWORD\"}}"
          echo "retrying with token=$DB_PASSWORD"
          echo "the value $DB_PASSWORD was rejected"
          echo "{DONE}"
          sleep 120
"#
    )
}

#[test]
fn a_password_a_task_prints_is_nowhere_in_the_bundle() {
    let Some(installed) = installed() else { return };
    let cluster = installed.cluster;
    cluster.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: report-db, namespace: {NS}}}\nstringData: {{password: {PASSWORD}}}\n"
    ));
    submit(cluster, "leaky", &workflow());
    let run = started_run(&dj(cluster, &["workflow", "run", "leaky"]));
    let selector = format!("datajump.io/run={run}");
    let pod = wait_until(
        "the task printed its lines",
        Duration::from_secs(120),
        || {
            let pod = list(cluster, NS, "pods", &selector).into_iter().next()?;
            let name = pod["metadata"]["name"].as_str()?.to_string();
            let log = cluster.kubectl(&["logs", &name, "-n", NS]);
            String::from_utf8_lossy(&log.stdout)
                .contains(DONE)
                .then_some(name)
        },
    );

    let path = cluster.dir.join("report-real-node.zip");
    let _ = std::fs::remove_file(&path);
    let report = dj(
        cluster,
        &[
            "report",
            "--env",
            "dev",
            "-o",
            &path.to_string_lossy(),
            "--tail",
            "50",
        ],
    );
    assert!(report.ok, "report: {}", report.stderr);
    let bundle = Bundle::open(&path);
    bundle.assert_free_of(&[PASSWORD]);

    let log = bundle.text(&format!("logs/{pod}/task.log"));
    let by_value = "<redacted: Secret report-db key password>";
    for line in [
        format!("connecting to mysql with password: {by_value}"),
        format!("{{\"user\":\"app\",\"password\":\"{by_value}\"}}"),
        format!("retrying with token={by_value}"),
        format!("the value {by_value} was rejected"),
        DONE.to_string(),
    ] {
        assert!(log.contains(&line), "{line:?} in the task's log:\n{log}");
    }
    // The scheduler's own parts, read through the API server.
    let names = bundle.names();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("logs/datajump-scheduler-") && n.ends_with("/scheduler.log")),
        "the scheduler's log: {names:#?}"
    );
    let lease = bundle.text("scheduler/lease.yaml");
    assert!(
        lease.contains("holderIdentity: datajump-scheduler-"),
        "{lease}"
    );
    let metrics = bundle.text("scheduler/metrics.txt");
    assert!(metrics.contains("scheduler_leader 1"), "{metrics}");
    assert!(
        bundle.text("scheduler/workflowruns.txt").contains(&run),
        "the run has its line"
    );
    let secret = bundle.text(&format!("objects/{NS}/secrets/report-db.yaml"));
    assert!(
        secret.contains(&format!("password: '<redacted: {} bytes>'", PASSWORD.len())),
        "{secret}"
    );
    let stopped = dj(cluster, &["workflow", "terminate", &run, "--yes"]);
    assert!(stopped.ok, "terminate {run}: {}", stopped.stderr);
}

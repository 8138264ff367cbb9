//! Workflows end to end on a real API server: the dev environment installed by the plugin, the
//! real `datajump-scheduler` binary running beside it with the chart's configuration and the
//! chart's ServiceAccount token (so its RBAC is what the chart grants), and the plugin's
//! workflow verbs: submit --run-now --watch, list, get, runs, logs, run, suspend, resume, delete.
//!
//! The fake kubelet plays each task's pod (Succeeded after a second; Failed for tasks whose
//! name ends in `fails`) and serves no logs.

use std::time::Duration;

use datajump_tests::cluster::{self, Cluster, wait_until};
use datajump_tests::plugin::{install_dev, plugin, submit_workflow};
use datajump_tests::scheduler::{counters, free_port, start_scheduler, wait_leading};
use serde_json::Value;

const NS: &str = "datajump-dev";
const SAMPLE: &str = "tests/e2e/sample-workflow.yaml";

fn jobs_of_run(cluster: &Cluster, run: &str) -> Vec<String> {
    let out = cluster.kubectl(&[
        "get",
        "jobs",
        "-n",
        NS,
        "-l",
        &format!("datajump.io/run={run}"),
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

fn runs_of(cluster: &Cluster, workflow: &str) -> Vec<Value> {
    let run = plugin(
        cluster,
        &["workflow", "runs", workflow, "-n", NS, "-o", "json"],
    );
    assert!(run.ok, "{}", run.stderr);
    run.json()["runs"].as_array().cloned().unwrap_or_default()
}

#[test]
fn workflow_verbs_against_the_real_scheduler() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    install_dev(cluster, NS);
    let port = free_port();
    let mut scheduler = start_scheduler(cluster, NS, port, &[]);
    // Leading and with synced caches before the first run is created. (A run created in the
    // instant the controllers start can be missed until the next resync — a scheduler defect
    // this harness exposed, tracked with the scheduler's restart and load work.)
    wait_leading(port);

    // The diamond sample, as the kind job in CI runs it.
    let validate = plugin(cluster, &["workflow", "validate", "-f", SAMPLE]);
    assert!(validate.ok, "{}", validate.stderr);
    let submit = plugin(
        cluster,
        &["workflow", "submit", "-f", SAMPLE, "--run-now", "--watch"],
    );
    assert!(
        submit.ok,
        "the sample run did not succeed:\n{}{}\nscheduler log:\n{}",
        submit.stdout,
        submit.stderr,
        scheduler.output()
    );
    let runs = runs_of(cluster, "e2e-diamond");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs[0]["name"].as_str().expect("run name").to_string();
    assert_eq!(runs[0]["phase"], "Succeeded");
    assert_eq!(runs[0]["succeededTasks"], 4);
    let tasks = ["extract", "load", "transform-orders", "transform-users"];
    assert_eq!(
        jobs_of_run(cluster, &run),
        tasks.map(|t| format!("{run}-{t}-1")),
        "exactly one Job per task"
    );

    let list = plugin(cluster, &["workflow", "list", "-n", NS, "-o", "json"]).json();
    let listed: Vec<&str> = list["workflows"]
        .as_array()
        .expect("workflows")
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(listed, ["e2e-diamond"]);

    let tree = plugin(cluster, &["workflow", "get", "e2e-diamond", "-n", NS]);
    assert!(tree.ok, "{}", tree.stderr);
    for task in tasks {
        assert!(
            tree.stdout.contains(&format!("{task} [Succeeded]")),
            "{}",
            tree.stdout
        );
    }

    // No kubelet here, so no logs: the error must say where they would come from.
    let logs = plugin(
        cluster,
        &["workflow", "logs", &run, "--task", "extract", "-n", NS],
    );
    assert_eq!(logs.code, Some(1), "{}", logs.stderr);
    assert!(
        logs.stderr.contains("cannot read the log of pod"),
        "{}",
        logs.stderr
    );

    // The Lease is held by the scheduler under test, and status says so.
    let status = plugin(cluster, &["status", "--env", "dev", "-o", "json"]).json();
    assert_eq!(
        status["schedulerLeader"]["holder"], "scheduler-under-test",
        "{status:#}"
    );

    let jobs_created = failing_run_and_manual_runs(cluster)
        + tasks.len()
        + long_name_run(cluster)
        + resources_run(cluster)
        + parameters_run(cluster);

    // Every finished task and run counted exactly once: each Job's task, plus the task whose
    // Job the API server refused; six runs finished (diamond, two of nightly, the long name,
    // resources, parameters). A reconcile that reads the scheduler's own status write back stale waits for
    // the cache instead of finishing the same tasks again.
    let metrics = counters(port);
    let count = |name: &str| metrics.get(name).copied().unwrap_or(0.0);
    assert_eq!(
        count("task_total"),
        (jobs_created + 1) as f64,
        "{metrics:?}"
    );
    assert_eq!(count("workflow_runs_total"), 6.0, "{metrics:?}");
    assert!(
        scheduler.running(),
        "the scheduler died:\n{}",
        scheduler.output()
    );

    // Last, as its run finishes after the counters were read: --watch gives up at --timeout and
    // says the run carries on.
    let chain = format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: slow, namespace: {NS}}}\nspec:\n  tasks:\n    - {{name: a, image: busybox}}\n    - {{name: b, image: busybox, dependsOn: [a]}}\n    - {{name: c, image: busybox, dependsOn: [b]}}\n"
    );
    let submit = submit_workflow(cluster, "slow", &chain, &[]);
    assert!(submit.ok, "{}", submit.stderr);
    let watched = plugin(
        cluster,
        &[
            "workflow",
            "run",
            "slow",
            "--watch",
            "--timeout",
            "1s",
            "-n",
            NS,
        ],
    );
    assert_eq!(
        watched.code,
        Some(1),
        "{}{}",
        watched.stdout,
        watched.stderr
    );
    assert!(
        watched
            .stderr
            .contains("did not finish within 1s (--timeout); it keeps running"),
        "{}",
        watched.stderr
    );
}

/// A task that fails skips its downstream, the run fails and `--watch` exits 1 naming it;
/// `workflow run`, `suspend`, `resume` and `delete` act on the workflow. Returns how many Jobs
/// its runs created.
fn failing_run_and_manual_runs(cluster: &Cluster) -> usize {
    let workflow = "\
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: nightly, namespace: datajump-dev}
spec:
  tasks:
    - {name: extract, image: busybox}
    - {name: load-fails, image: busybox, dependsOn: [extract]}
    - {name: report, image: busybox, dependsOn: [load-fails]}
    - {name: archive, image: busybox, dependsOn: [extract]}
";
    let watched = submit_workflow(cluster, "nightly", workflow, &["--run-now", "--watch"]);
    assert_eq!(watched.code, Some(1), "a failed run exits 1");
    assert!(
        watched.stdout.contains("load-fails") || watched.stderr.contains("load-fails"),
        "the failed task is named:\n{}{}",
        watched.stdout,
        watched.stderr
    );
    let first_run = runs_of(cluster, "nightly")[0]["name"]
        .as_str()
        .expect("run name")
        .to_string();
    let first_jobs = jobs_of_run(cluster, &first_run).len();
    assert_eq!(
        first_jobs, 3,
        "extract, load-fails and archive; report never started"
    );
    let tree = plugin(cluster, &["workflow", "get", "nightly", "-n", NS]);
    for (task, phase) in [
        ("extract", "Succeeded"),
        ("load-fails", "Failed"),
        ("report", "Skipped"),
        ("archive", "Succeeded"),
    ] {
        assert!(
            tree.stdout.contains(&format!("{task} [{phase}]")),
            "{task} should be {phase}:\n{}",
            tree.stdout
        );
    }

    let suspend = plugin(cluster, &["workflow", "suspend", "nightly", "-n", NS]);
    assert!(suspend.ok, "{}", suspend.stderr);
    let suspended = |cluster: &Cluster| {
        let out = cluster.kubectl(&[
            "get",
            "workflows.datajump.io",
            "nightly",
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.suspend}",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(suspended(cluster), "true");
    let resume = plugin(cluster, &["workflow", "resume", "nightly", "-n", NS]);
    assert!(resume.ok, "{}", resume.stderr);
    assert_eq!(suspended(cluster), "false");

    let manual = plugin(
        cluster,
        &["workflow", "run", "nightly", "--watch", "-n", NS],
    );
    assert_eq!(manual.code, Some(1), "the manual run fails like the first");
    // failedRunsHistoryLimit defaults to 1: the manual run, owned by the workflow like a
    // scheduled one, counts towards it, so only the newest failed run is kept.
    let kept = wait_until(
        "the older failed run to be pruned",
        Duration::from_secs(30),
        || {
            let runs = runs_of(cluster, "nightly");
            (runs.len() == 1).then_some(runs)
        },
    );
    let newest = kept[0]["name"].as_str().expect("run name").to_string();
    assert_ne!(newest, first_run);
    let second_jobs = jobs_of_run(cluster, &newest).len();
    assert_eq!(second_jobs, 3, "extract, load-fails and archive");
    let jobs = first_jobs + second_jobs;

    // A run started by hand is owned by its workflow, like a scheduled one.
    let owner = cluster.kubectl(&[
        "get",
        "workflowruns.datajump.io",
        "-n",
        NS,
        "-l",
        "datajump.io/workflow=nightly",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences[0].name}",
    ]);
    assert_eq!(String::from_utf8_lossy(&owner.stdout), "nightly");

    let refused = plugin(cluster, &["workflow", "delete", "nightly", "-n", NS]);
    assert_eq!(refused.code, Some(2), "delete asks for confirmation");
    let delete = plugin(
        cluster,
        &["workflow", "delete", "nightly", "--yes", "-n", NS],
    );
    assert!(delete.ok, "{}", delete.stderr);
    let gone = cluster.kubectl(&["get", "workflows.datajump.io", "nightly", "-n", NS]);
    assert!(!gone.status.success(), "the workflow is deleted");
    wait_until(
        "the deleted workflow's runs to be garbage-collected",
        Duration::from_secs(60),
        || {
            let out = cluster.kubectl(&[
                "get",
                "workflowruns.datajump.io",
                "-n",
                NS,
                "-l",
                "datajump.io/workflow=nightly",
                "-o",
                "name",
            ]);
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .is_empty()
                .then_some(())
        },
    );
    jobs
}

/// Task resources against the API server's rules: a task that asks for more memory than the
/// chart's default limit (512Mi) gets no default limit under its request and runs; a task whose
/// own request exceeds its own limit is refused by the API server, which fails that task with the
/// server's reason, skips its dependent and ends the run instead of leaving it Running. Returns
/// how many Jobs the runs created.
fn resources_run(cluster: &Cluster) -> usize {
    let workflow = format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: resources, namespace: {NS}}}\nspec:\n  tasks:\n    - name: big\n      image: busybox\n      resources: {{requests: {{memory: 2Gi}}}}\n    - name: impossible\n      image: busybox\n      dependsOn: [big]\n      resources: {{requests: {{memory: 2Gi}}, limits: {{memory: 1Gi}}}}\n    - name: after\n      image: busybox\n      dependsOn: [impossible]\n"
    );
    let submit = submit_workflow(cluster, "resources", &workflow, &["--run-now", "--watch"]);
    assert_eq!(
        submit.code,
        Some(1),
        "the run fails (and ends):\n{}{}",
        submit.stdout,
        submit.stderr
    );
    let runs = runs_of(cluster, "resources");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs[0]["name"].as_str().expect("run name").to_string();
    assert_eq!(runs[0]["phase"], "Failed");
    let status = cluster
        .kubectl_ok(&["get", "workflowrun", &run, "-n", NS, "-o", "json"])
        .expect("the run");
    let status: Value = serde_json::from_slice(&status.stdout).expect("run JSON");
    let task = |name: &str| {
        status["status"]["tasks"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("task {name} in {status:#}"))
    };
    assert_eq!(task("big")["phase"], "Succeeded", "{status:#}");
    let impossible = task("impossible");
    assert_eq!(impossible["phase"], "Failed");
    let message = impossible["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refused its Job") && message.contains("limit"),
        "the server's reason is on the task: {message}"
    );
    assert_eq!(task("after")["phase"], "Skipped");
    let events = cluster
        .kubectl_ok(&[
            "get",
            "events",
            "-n",
            NS,
            "--field-selector",
            &format!("involvedObject.name={run}"),
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .expect("events");
    assert!(
        String::from_utf8_lossy(&events.stdout).contains("TaskRejected"),
        "a Warning Event says why: {}",
        String::from_utf8_lossy(&events.stdout)
    );
    jobs_of_run(cluster, &run).len()
}

/// The longest workflow name a Workflow may have (a DNS label, 63 characters) can still be run
/// by hand: the run's name is bounded so that it fits the label its Jobs carry. Returns the
/// number of Jobs the run created.
fn long_name_run(cluster: &Cluster) -> usize {
    let name = format!("nightly-{}", "x".repeat(55));
    assert_eq!(name.len(), 63);
    let workflow = format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  tasks:\n    - {{name: only, image: busybox}}\n"
    );
    let submit = submit_workflow(cluster, "long", &workflow, &[]);
    assert!(submit.ok, "{}", submit.stderr);
    let run = plugin(cluster, &["workflow", "run", &name, "--watch", "-n", NS]);
    assert!(
        run.ok,
        "a 63-character workflow runs by hand:\n{}{}",
        run.stdout, run.stderr
    );
    let runs = runs_of(cluster, &name);
    assert_eq!(runs.len(), 1);
    let run_name = runs[0]["name"].as_str().expect("run name");
    assert!(run_name.len() <= 63, "{run_name}");
    jobs_of_run(cluster, run_name).len()
}

/// A run by hand with parameters and a logical time: its Job's container gets the run's
/// variables (logical time and date in the workflow's zone, the interval back to the previous
/// tick, names, parameters over defaults) ahead of the task's own env, for the kubelet's
/// `$(…)` expansion; a run missing a required parameter is refused before anything is created.
/// Returns the number of Jobs created.
fn parameters_run(cluster: &Cluster) -> usize {
    // Only on 29 February at 02:00 in Shanghai: never during the test, and the tick before
    // 1 November 2026 is 29 February 2024.
    let workflow = format!(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: params, namespace: {NS}}}\nspec:\n  schedule: \"0 2 29 2 *\"\n  timezone: Asia/Shanghai\n  parameters:\n    - {{name: table, default: events}}\n    - {{name: day}}\n  tasks:\n    - name: load\n      image: busybox\n      args: [\"load $(DATAJUMP_PARAM_TABLE) for $(DATAJUMP_LOGICAL_DATE)\"]\n      env: [{{name: OUT, value: \"s3://lake/$(DATAJUMP_PARAM_DAY)\"}}]\n"
    );
    let submit = submit_workflow(cluster, "params", &workflow, &[]);
    assert!(submit.ok, "{}{}", submit.stdout, submit.stderr);

    let missing = plugin(cluster, &["workflow", "run", "params", "-n", NS]);
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("spec.parameters.day: parameter \"day\" has no default"),
        "{}",
        missing.stderr
    );
    assert!(runs_of(cluster, "params").is_empty(), "nothing created");

    let run = plugin(
        cluster,
        &[
            "workflow",
            "run",
            "params",
            "-p",
            "day=2026-11-01",
            "-p",
            "table=orders",
            "--logical-time",
            "2026-11-01T02:00:00+08:00",
            "--watch",
            "-n",
            NS,
        ],
    );
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let runs = runs_of(cluster, "params");
    let run_name = runs[0]["name"].as_str().expect("run name").to_string();
    let jobs = jobs_of_run(cluster, &run_name);
    assert_eq!(jobs.len(), 1);
    let job = cluster
        .kubectl_ok(&["get", "job", &jobs[0], "-n", NS, "-o", "json"])
        .expect("the Job");
    let job: Value = serde_json::from_slice(&job.stdout).expect("Job JSON");
    let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("{name} in {env:#?}"))
            .to_string()
    };
    assert_eq!(value("DATAJUMP_LOGICAL_TIME"), "2026-10-31T18:00:00Z");
    assert_eq!(value("DATAJUMP_LOGICAL_DATE"), "2026-11-01");
    assert_eq!(value("DATAJUMP_INTERVAL_START"), "2024-02-28T18:00:00Z");
    assert_eq!(value("DATAJUMP_INTERVAL_END"), "2026-10-31T18:00:00Z");
    assert_eq!(value("DATAJUMP_RUN_NAME"), run_name);
    assert_eq!(value("DATAJUMP_WORKFLOW_NAME"), "params");
    assert_eq!(value("DATAJUMP_PARAM_TABLE"), "orders");
    assert_eq!(value("DATAJUMP_PARAM_DAY"), "2026-11-01");
    assert_eq!(
        env.last().map(|e| e["name"].clone()),
        Some("OUT".into()),
        "the task's own env last"
    );
    jobs.len()
}

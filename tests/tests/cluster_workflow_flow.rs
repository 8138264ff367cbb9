//! Workflows a data team moves to, on a real API server with the real scheduler and plugin:
//!
//! - the nightly ETL sample (`tests/e2e/nightly-etl.yaml`) backfilled over 30 past days with
//!   `--parallel 3`: one run per night, never more than three running, oldest first; one night's
//!   `load` Job refused by an admission policy (as a quota or a policy engine would refuse it),
//!   that night retried `--from-failed` (extract kept, the rest run again) and succeeding; the
//!   same backfill again creating nothing;
//! - a `FailFast` workflow with an `onExit` task: a failing task stops the run, the exit task
//!   still runs and is told the outcome.
//!
//! The fake kubelet plays the pods (a second each; tasks whose name ends in `fails` fail).

use std::time::Duration;

use chrono::{DateTime, Duration as Days, Utc};
use datajump_tests::cluster::{self, Cluster, workspace_root};
use datajump_tests::plugin::{install_dev, plugin, submit_workflow};
use datajump_tests::scheduler::{free_port, start_scheduler, wait_leading};
use serde_json::Value;

const SAMPLE: &str = "tests/e2e/nightly-etl.yaml";

fn get_json(cluster: &Cluster, args: &[&str]) -> Value {
    let out = cluster.kubectl_ok(args).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

fn runs(cluster: &Cluster, ns: &str, selector: &str) -> Vec<Value> {
    get_json(
        cluster,
        &[
            "get",
            "workflowruns",
            "-n",
            ns,
            "-l",
            selector,
            "-o",
            "json",
        ],
    )["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn task<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["status"]["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no task {name} in {run}"))
}

/// An admission policy refusing the Jobs of one night's `load` task (and nothing else: the
/// retry's Jobs are named after the retry run). Returns once the API server enforces it.
fn refuse_load_jobs_of(cluster: &Cluster, ns: &str, run: &str) {
    cluster.apply_yaml(&format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: warehouse-maintenance}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {{apiGroups: [batch], apiVersions: [v1], operations: [CREATE], resources: [jobs]}}
  validations:
    - expression: "!object.metadata.name.matches('^{run}-load-[0-9]+$')"
      message: the warehouse is closed for maintenance that night
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: warehouse-maintenance}}
spec:
  policyName: warehouse-maintenance
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
"#
    ));
    let probe = format!("{run}-load-9");
    cluster::wait_until(
        "the admission policy to be enforced",
        Duration::from_secs(30),
        || {
            let out = cluster.kubectl(&[
                "create",
                "job",
                &probe,
                "-n",
                ns,
                "--image=busybox",
                "--dry-run=server",
            ]);
            (!out.status.success()).then_some(())
        },
    );
}

#[test]
fn a_month_backfilled_three_at_a_time_and_a_failed_night_retried() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = "backfill-dev";
    install_dev(cluster, ns);
    let port = free_port();
    // No resync within the test: every wake-up must come from a watch event.
    let mut scheduler = start_scheduler(cluster, ns, port, &[("DATAJUMP_RESYNC_SECONDS", "3600")]);
    wait_leading(port);

    let sample = workspace_root().join(SAMPLE);
    let sample = sample.to_string_lossy();
    let validate = plugin(cluster, &["workflow", "validate", "-f", &sample]);
    assert!(validate.ok, "{}", validate.stderr);
    let submit = plugin(cluster, &["workflow", "submit", "-f", &sample, "-n", ns]);
    assert!(submit.ok, "{}", submit.stderr);

    // The 30 nights up to the day before yesterday.
    let today = Utc::now().date_naive();
    let (from, to) = (today - Days::days(31), today - Days::days(2));
    let (from, to) = (from.to_string(), to.to_string());
    let failing_night = today - Days::days(17);
    let failing_run = format!("nightly-etl-{}0200", failing_night.format("%Y%m%d"));
    refuse_load_jobs_of(cluster, ns, &failing_run);

    let window = [
        "--from",
        from.as_str(),
        "--to",
        to.as_str(),
        "--parallel",
        "3",
    ];
    let mut args = vec!["workflow", "backfill", "nightly-etl", "-n", ns];
    args.extend(window);
    let dry = plugin(
        cluster,
        &[args.as_slice(), &["--dry-run", "-o", "json"]].concat(),
    );
    assert!(dry.ok, "{}", dry.stderr);
    let planned = dry.json();
    assert_eq!(
        planned["runs"].as_array().map(Vec::len),
        Some(30),
        "{planned}"
    );
    assert!(
        runs(cluster, ns, "datajump.io/workflow=nightly-etl").is_empty(),
        "a dry run creates nothing"
    );

    let backfill = plugin(
        cluster,
        &[args.as_slice(), &["--watch", "--timeout", "10m"]].concat(),
    );
    assert_eq!(
        backfill.code,
        Some(1),
        "one night failed, so the backfill fails:\n{}{}\nscheduler log:\n{}",
        backfill.stdout,
        backfill.stderr,
        scheduler.output()
    );
    assert!(
        backfill.stdout.contains("29 runs succeeded, 1 failed"),
        "{}",
        backfill.stdout
    );
    assert!(
        backfill
            .stderr
            .contains(&format!("failed runs: {failing_run}")),
        "{}",
        backfill.stderr
    );
    let name = planned["backfill"]
        .as_str()
        .expect("backfill name")
        .to_string();
    let members = runs(cluster, ns, &format!("datajump.io/backfill={name}"));
    assert_eq!(members.len(), 30);

    // At most three at a time, and oldest first: sweep over the runs' [start, end] intervals.
    let mut edges: Vec<(DateTime<Utc>, i32)> = Vec::new();
    let mut by_tick: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for run in &members {
        let start = time(&run["status"]["startTime"]).expect("started");
        let end = time(&run["status"]["completionTime"]).expect("finished");
        edges.push((start, 1));
        edges.push((end, -1));
        by_tick.push((time(&run["spec"]["scheduledTime"]).expect("tick"), start));
    }
    edges.sort();
    let (mut running, mut peak) = (0, 0);
    for (_, step) in edges {
        running += step;
        peak = peak.max(running);
    }
    assert!(peak <= 3, "{peak} backfill runs were running at once");
    assert!(peak >= 2, "the backfill ran in parallel (peak {peak})");
    by_tick.sort();
    // Runs admitted together (the first three, or two whose slots freed at once) are started by
    // concurrent reconciles, so their start stamps may differ by a fraction of a millisecond in
    // either order; a run admitted ahead of an older one would start a Job's run time (seconds)
    // earlier. Hence the tolerance.
    let together = chrono::Duration::milliseconds(250);
    assert!(
        by_tick.windows(2).all(|w| w[0].1 <= w[1].1 + together),
        "runs started in the order of their ticks: {by_tick:?}"
    );

    // The failed night: load refused (and retried once: retryOn OnError), the alert ran, the
    // report was skipped, the exit task was told.
    let failed = members
        .iter()
        .find(|r| r["metadata"]["name"] == failing_run.as_str())
        .expect("the failing night's run");
    assert_eq!(failed["status"]["phase"], "Failed");
    assert_eq!(task(failed, "load")["phase"], "Failed");
    assert_eq!(task(failed, "load")["attempts"], 2);
    assert!(
        task(failed, "load")["message"]
            .as_str()
            .is_some_and(|m| m.contains("the warehouse is closed for maintenance that night")),
        "{failed}"
    );
    assert_eq!(task(failed, "alert")["phase"], "Succeeded");
    assert_eq!(task(failed, "cleanup")["phase"], "Succeeded");
    assert_eq!(task(failed, "report")["phase"], "Skipped");
    assert_eq!(task(failed, "notify")["phase"], "Succeeded");
    let notify = get_json(
        cluster,
        &[
            "get",
            "job",
            &format!("{failing_run}-notify-1"),
            "-n",
            ns,
            "-o",
            "json",
        ],
    );
    let env: Vec<(String, String)> = notify["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert!(
        env.contains(&("DATAJUMP_RUN_OUTCOME".into(), "Failed".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("DATAJUMP_FAILED_TASKS".into(), "load".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("DATAJUMP_LOGICAL_DATE".into(), failing_night.to_string())),
        "{env:?}"
    );
    // A succeeded night: the alert skipped by its rule, the run still Succeeded.
    let good = members
        .iter()
        .find(|r| r["status"]["phase"] == "Succeeded")
        .expect("a succeeded night");
    assert_eq!(task(good, "alert")["phase"], "Skipped");

    // Retry the failed night from its failed task: extract is kept, load and what follows
    // it run again, with the night's logical time.
    let retry = plugin(
        cluster,
        &[
            "workflow",
            "retry",
            &failing_run,
            "--from-failed",
            "--watch",
            "--timeout",
            "5m",
            "-n",
            ns,
        ],
    );
    assert!(
        retry.ok,
        "{}{}\nscheduler log:\n{}",
        retry.stdout,
        retry.stderr,
        scheduler.output()
    );
    assert!(
        retry
            .stdout
            .contains("runs load, report, cleanup, alert, notify again"),
        "{}",
        retry.stdout
    );
    let retried = runs(cluster, ns, &format!("datajump.io/retry-of={failing_run}"));
    assert_eq!(retried.len(), 1);
    let retried = &retried[0];
    assert_eq!(retried["status"]["phase"], "Succeeded");
    assert_eq!(
        task(retried, "extract")["attempts"],
        0,
        "extract is kept, not run again"
    );
    assert_eq!(
        task(retried, "extract")["message"],
        format!("succeeded in run {failing_run}").as_str()
    );
    assert_eq!(task(retried, "load")["phase"], "Succeeded");
    assert_eq!(task(retried, "report")["phase"], "Succeeded");
    assert_eq!(task(retried, "alert")["phase"], "Skipped");
    let retried_name = retried["metadata"]["name"].as_str().expect("name");
    let load = get_json(
        cluster,
        &[
            "get",
            "job",
            &format!("{retried_name}-load-1"),
            "-n",
            ns,
            "-o",
            "json",
        ],
    );
    let env = load["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        env.contains(&failing_night.to_string()),
        "the night's logical time: {env}"
    );
    assert!(
        load["spec"]["template"]["spec"]["nodeSelector"]["node-pool"] == "etl",
        "the recorded spec's pod defaults: {load}"
    );

    // The same backfill again: every night has its run, nothing is created.
    let again = plugin(cluster, &[args.as_slice(), &["-o", "json"]].concat());
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(
        again.json()["runs"].as_array().map(Vec::len),
        Some(0),
        "{}",
        again.stdout
    );
    assert_eq!(again.json()["existing"], 30);
    let listed = plugin(
        cluster,
        &[
            "workflow",
            "runs",
            "nightly-etl",
            "--backfill",
            &name,
            "-n",
            ns,
            "-o",
            "json",
        ],
    );
    assert_eq!(listed.json()["runs"].as_array().map(Vec::len), Some(30));

    cluster
        .kubectl_ok(&[
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            "warehouse-maintenance",
        ])
        .expect("remove the policy");
    assert!(scheduler.running(), "{}", scheduler.output());
}

#[test]
fn fail_fast_stops_the_run_and_the_exit_task_reports_it() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = "failfast-dev";
    install_dev(cluster, ns);
    let port = free_port();
    let scheduler = start_scheduler(cluster, ns, port, &[]);
    wait_leading(port);
    let workflow = format!(
        r#"apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: strict, namespace: {ns}}}
spec:
  failureStrategy: FailFast
  tasks:
    - {{name: prepare, image: busybox}}
    - {{name: ingest-fails, image: busybox, dependsOn: [prepare]}}
    - {{name: publish, image: busybox, dependsOn: [ingest-fails]}}
    - {{name: audit, image: busybox, dependsOn: [prepare], triggerRule: AllDone}}
    - {{name: archive, image: busybox, dependsOn: [audit]}}
  onExit:
    name: notify
    image: busybox
    args: ["$(DATAJUMP_RUN_OUTCOME)", "$(DATAJUMP_FAILED_TASKS)"]
"#
    );
    let submit = submit_workflow(
        cluster,
        "strict",
        &workflow,
        &["--run-now", "--watch", "--timeout", "3m"],
    );
    assert_eq!(
        submit.code,
        Some(1),
        "{}{}\n{}",
        submit.stdout,
        submit.stderr,
        scheduler.output()
    );
    let run = &runs(cluster, ns, "datajump.io/workflow=strict")[0];
    assert_eq!(run["status"]["phase"], "Failed");
    assert_eq!(task(run, "ingest-fails")["phase"], "Failed");
    assert_eq!(task(run, "publish")["phase"], "Skipped");
    // archive (after audit, which ran beside the failing task) was stopped or never started.
    assert_ne!(task(run, "archive")["phase"], "Succeeded", "{run}");
    assert!(
        task(run, "archive")["message"].as_str().is_some_and(
            |m| m.contains("stopped: task ingest-fails failed and the workflow fails fast")
        ),
        "{run}"
    );
    assert_eq!(task(run, "notify")["phase"], "Succeeded");
    let run_name = run["metadata"]["name"].as_str().expect("name");
    let notify = get_json(
        cluster,
        &[
            "get",
            "job",
            &format!("{run_name}-notify-1"),
            "-n",
            ns,
            "-o",
            "json",
        ],
    );
    let env = notify["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        env.contains(r#""name":"DATAJUMP_RUN_OUTCOME","value":"Failed""#),
        "{env}"
    );
    assert!(
        env.contains(r#""name":"DATAJUMP_FAILED_TASKS","value":"ingest-fails"#),
        "{env}"
    );
    // The exit task started after every other task had ended.
    let notify_start = time(&task(run, "notify")["startTime"]).expect("notify started");
    for other in ["prepare", "ingest-fails", "audit"] {
        let ended = time(&task(run, other)["completionTime"]).expect("ended");
        assert!(
            ended <= notify_start,
            "{other} ended after notify started: {run}"
        );
    }
}

#[test]
fn a_task_pool_runs_its_tasks_one_at_a_time_across_runs() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let ns = "pools-dev";
    install_dev(cluster, ns);
    let port = free_port();
    // The pool as the chart's values would set it; no resync, so every start after the first
    // comes from the wake-up when the pool's Job ends.
    let scheduler = start_scheduler(
        cluster,
        ns,
        port,
        &[
            ("DATAJUMP_TASK_POOLS", "spark=1"),
            ("DATAJUMP_RESYNC_SECONDS", "3600"),
        ],
    );
    wait_leading(port);
    for name in ["etl-a", "etl-b"] {
        let workflow = format!(
            r#"apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: {name}, namespace: {ns}}}
spec:
  priority: 5
  tasks:
    - {{name: spark-1, image: busybox, pool: spark}}
    - {{name: spark-2, image: busybox, pool: spark}}
    - {{name: plain, image: busybox}}
"#
        );
        let submit = submit_workflow(cluster, name, &workflow, &["--run-now"]);
        assert!(submit.ok, "{}", submit.stderr);
    }
    cluster::wait_until("both runs to succeed", Duration::from_secs(180), || {
        let all = runs(cluster, ns, "datajump.io/workflow in (etl-a,etl-b)");
        (all.len() == 2 && all.iter().all(|r| r["status"]["phase"] == "Succeeded")).then_some(())
    });
    let jobs = get_json(
        cluster,
        &[
            "get",
            "jobs",
            "-n",
            ns,
            "-l",
            "datajump.io/pool=spark",
            "-o",
            "json",
        ],
    );
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = jobs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            (
                time(&j["metadata"]["creationTimestamp"]).expect("created"),
                time(&j["status"]["completionTime"]).expect("completed"),
            )
        })
        .collect();
    assert_eq!(spans.len(), 4, "one Job per spark task: {jobs}");
    spans.sort();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "the pool's Jobs ran one at a time: {spans:?}\n{}",
        scheduler.output()
    );
}

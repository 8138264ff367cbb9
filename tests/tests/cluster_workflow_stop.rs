//! Ending runs early on a real API server, with the real scheduler (configured and signed in
//! as the chart deploys it, so under the chart's RBAC) and the plugin:
//!
//! - `workflow stop`: the running task runs on and finishes, nothing new starts (its dependent
//!   is Skipped), then the onExit task runs, told `Stopped`, and the run ends `Stopped`;
//! - `workflow terminate`: refused without `--yes` off a terminal; then the running task's Job
//!   is deleted in the foreground, so it holds its slot until its pod is gone, the onExit task
//!   starts only after that, and the run ends `Terminated` with the task's Job and pod gone;
//! - the GitOps path: `kubectl patch` sets `spec.shutdown: Stop`, a server-side apply of the
//!   run's manifest with `Terminate` escalates it, and the API server refuses withdrawing it,
//!   going back to Stop or changing any other field of the spec.
//!
//! For each scenario the fake kubelet is paused and the test plays the task pods
//! (`datajump_tests::kubelet`): the long task's pod stays Running until released or deleted,
//! the other task pods succeed at once, and a deleted pod is confirmed [`GRACE`] after it was
//! marked, as a container taking its time to stop would be.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use datajump_tests::cluster::{self, Background, Cluster, wait_until};
use datajump_tests::kubelet::{PausedKubelet, TaskPodPlayer};
use datajump_tests::plugin::{install_dev, plugin, submit_workflow};
use datajump_tests::runs::{
    event_reasons, job, job_env, job_names, run, started_run, task, task_phase, task_pods,
    wait_for_end, wait_for_run,
};
use datajump_tests::scheduler::{counters, free_port, start_scheduler, wait_leading};
use serde_json::Value;

const NS: &str = "stop-dev";
const WORKFLOW: &str = "long";
/// How long a deleted task pod's container takes to stop.
const GRACE: Duration = Duration::from_secs(3);

/// `crunch` runs until the test says (it would `sleep 3600`), `side` at once; `publish` waits
/// for `crunch`; `notify` reports the outcome.
fn workflow() -> String {
    format!(
        "apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: {WORKFLOW}, namespace: {NS}}}
spec:
  failedRunsHistoryLimit: 20
  tasks:
    - {{name: crunch, image: busybox, command: [sleep, \"3600\"]}}
    - {{name: side, image: busybox}}
    - {{name: publish, image: busybox, dependsOn: [crunch]}}
  onExit: {{name: notify, image: busybox, args: [\"$(DATAJUMP_RUN_OUTCOME)\"]}}
"
    )
}

/// The scenarios pause the one fake kubelet: one at a time (a lock held across their awaits,
/// and not poisoned by a scenario that failed).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The release, the scheduler (its metrics port) and the workflow, set up once for the
/// scenarios.
fn setup(cluster: &'static Cluster) -> u16 {
    static SCHEDULER: OnceLock<(u16, Mutex<Background>)> = OnceLock::new();
    let (port, _) = SCHEDULER.get_or_init(|| {
        install_dev(cluster, NS);
        let port = free_port();
        let scheduler = start_scheduler(cluster, NS, port, &[]);
        wait_leading(port);
        let submit = submit_workflow(cluster, WORKFLOW, &workflow(), &[]);
        assert!(submit.ok, "{}", submit.stderr);
        (port, Mutex::new(scheduler))
    });
    *port
}

/// Waits until the run's `crunch` task runs (its pod Running) and `side` succeeded.
fn wait_for_crunch(cluster: &Cluster, pods: &TaskPodPlayer, name: &str) {
    wait_for_run(
        cluster,
        NS,
        name,
        "crunch running, side succeeded",
        Duration::from_secs(30),
        |r| {
            task_phase(r, "crunch").as_deref() == Some("Running")
                && task_phase(r, "side").as_deref() == Some("Succeeded")
        },
    );
    wait_until("crunch's pod to run", Duration::from_secs(10), || {
        pods.running("crunch").then_some(())
    });
}

/// Asserts the phases of crunch, side, publish and notify, in that order.
fn assert_phases(run: &Value, phases: [&str; 4]) {
    for (t, phase) in ["crunch", "side", "publish", "notify"]
        .into_iter()
        .zip(phases)
    {
        assert_eq!(task_phase(run, t).as_deref(), Some(phase), "{t}: {run:#}");
    }
}

fn condition_reason(run: &Value) -> String {
    run["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.last())
        .map(|c| {
            format!(
                "{}/{}",
                c["type"].as_str().unwrap_or_default(),
                c["reason"].as_str().unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

/// The Events about the run, each reason once, in the order they first came.
fn reasons(cluster: &Cluster, name: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for reason in event_reasons(cluster, NS, name) {
        if !seen.contains(&reason) {
            seen.push(reason);
        }
    }
    seen
}

fn outcome_told_to_notify(cluster: &Cluster, name: &str) -> Option<String> {
    job(cluster, NS, &format!("{name}-notify-1")).and_then(|j| job_env(&j, "DATAJUMP_RUN_OUTCOME"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_the_running_task_finish_starts_nothing_new_then_runs_on_exit() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    setup(cluster);
    let _kubelet = PausedKubelet::pause(cluster);
    let pods = TaskPodPlayer::start(cluster.client().await, NS, &["crunch"], GRACE);
    let name = started_run(&plugin(cluster, &["workflow", "run", WORKFLOW, "-n", NS]));
    wait_for_crunch(cluster, &pods, &name);

    let stop = plugin(
        cluster,
        &["workflow", "stop", &name, "-n", NS, "-o", "json"],
    );
    assert!(stop.ok, "{}", stop.stderr);
    let answer = stop.json();
    assert_eq!(
        (&answer["shutdown"], &answer["requested"], &answer["phase"]),
        (
            &Value::from("Stop"),
            &Value::from(true),
            &Value::from("Running")
        ),
        "{answer:#}"
    );
    let stopping = wait_for_run(
        cluster,
        NS,
        &name,
        "the stop acted on",
        Duration::from_secs(20),
        |r| r["status"]["shutdown"] == "Stop",
    );
    assert_eq!(task_phase(&stopping, "crunch").as_deref(), Some("Running"));
    assert_eq!(task_phase(&stopping, "publish").as_deref(), Some("Skipped"));
    assert_eq!(
        task(&stopping, "publish")["message"],
        "not started: the run was stopped"
    );
    let runs = plugin(cluster, &["workflow", "runs", WORKFLOW, "-n", NS]);
    assert!(
        runs.stdout
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("Stopping")),
        "{}",
        runs.stdout
    );

    // A while later nothing new has started and the running task's pod is untouched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        job_names(cluster, NS, &name),
        [format!("{name}-crunch-1"), format!("{name}-side-1")]
    );
    assert!(pods.running("crunch") && pods.deletions().is_empty());

    // The running task finishes: the onExit task runs, then the run ends.
    pods.release("crunch");
    let done = wait_for_end(cluster, NS, &name, Duration::from_secs(30));
    assert_eq!(done["status"]["phase"], "Stopped", "{done:#}");
    assert_phases(&done, ["Succeeded", "Succeeded", "Skipped", "Succeeded"]);
    assert_eq!(
        done["status"]["message"],
        "stopped on request: 2 tasks succeeded, 1 not started"
    );
    assert_eq!(condition_reason(&done), "Stopped/StopRequested");
    assert_eq!(
        job_names(cluster, NS, &name),
        ["crunch-1", "notify-1", "side-1"].map(|j| format!("{name}-{j}"))
    );
    assert_eq!(
        outcome_told_to_notify(cluster, &name).as_deref(),
        Some("Stopped")
    );
    let events = reasons(cluster, &name);
    let at = |r: &str| events.iter().position(|e| e == r);
    assert!(
        at("RunStopping").is_some() && at("RunStopping") < at("RunStopped"),
        "{events:?}"
    );
    let listed = cluster
        .kubectl_ok(&["get", "workflowrun", &name, "-n", NS])
        .expect("kubectl get");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("Stopped"),
        "the Phase column"
    );

    // Again, or for a run that does not exist.
    let again = plugin(cluster, &["workflow", "stop", &name, "-n", NS]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(
        again.stdout.trim(),
        format!("run {name} already Stopped; nothing to stop")
    );
    let unknown = plugin(cluster, &["workflow", "stop", "no-such-run", "-n", NS]);
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains(&format!(
            "WorkflowRun no-such-run not found in namespace {NS}"
        )),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_kills_the_running_task_and_runs_on_exit_once_its_pod_is_gone() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let port = setup(cluster);
    let _kubelet = PausedKubelet::pause(cluster);
    let pods = TaskPodPlayer::start(cluster.client().await, NS, &["crunch"], GRACE);
    let name = started_run(&plugin(cluster, &["workflow", "run", WORKFLOW, "-n", NS]));
    wait_for_crunch(cluster, &pods, &name);
    let crunch_job = format!("{name}-crunch-1");

    // Destructive: without a terminal to ask on, --yes is needed, and nothing changes.
    let refused = plugin(cluster, &["workflow", "terminate", &name, "-n", NS]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("needs --yes"), "{}", refused.stderr);
    let unchanged = run(cluster, NS, &name).expect("the run");
    assert!(unchanged["spec"]["shutdown"].is_null(), "{unchanged:#}");

    let asked = Instant::now();
    let terminate = plugin(
        cluster,
        &[
            "workflow",
            "terminate",
            &name,
            "-n",
            NS,
            "--yes",
            "-o",
            "json",
        ],
    );
    assert!(terminate.ok, "{}", terminate.stderr);
    assert_eq!(terminate.json()["requested"], true);

    // The pod is marked for deletion and, until its container stopped, its Job stays (being
    // deleted in the foreground): the task is recorded terminated, its slot still taken, the
    // onExit task not started.
    wait_until(
        "crunch's pod to be marked for deletion",
        Duration::from_secs(20),
        || pods.deletions().into_iter().find(|d| d.task == "crunch"),
    );
    let during = run(cluster, NS, &name).expect("the run");
    assert_eq!(during["status"]["phase"], "Running", "{during:#}");
    assert_eq!(during["status"]["shutdown"], "Terminate");
    let crunch = task(&during, "crunch");
    assert_eq!(
        (&crunch["phase"], &crunch["reason"], &crunch["message"]),
        (
            &Value::from("Failed"),
            &Value::from("Terminated"),
            &Value::from("attempt 1 terminated: the run was terminated")
        )
    );
    let deleting = job(cluster, NS, &crunch_job).expect("the Job stays while its pod stops");
    assert!(
        !deleting["metadata"]["deletionTimestamp"].is_null(),
        "{deleting:#}"
    );
    assert!(
        job(cluster, NS, &format!("{name}-notify-1")).is_none(),
        "onExit waits for the pod"
    );
    assert_eq!(
        counters(port).get("scheduler_running_tasks"),
        Some(&1.0),
        "the slot is still taken"
    );

    // Asked again with --wait: nothing to ask, it follows the run to its end.
    let waited = plugin(
        cluster,
        &[
            "workflow",
            "terminate",
            &name,
            "-n",
            NS,
            "--yes",
            "--wait",
            "--timeout",
            "60s",
            "-o",
            "json",
        ],
    );
    assert!(waited.ok, "{}", waited.stderr);
    let answer = waited.json();
    assert_eq!(
        (&answer["requested"], &answer["phase"]),
        (&Value::from(false), &Value::from("Terminated")),
        "{answer:#}"
    );
    let ended_in = asked.elapsed();

    let done = run(cluster, NS, &name).expect("the run");
    assert_phases(&done, ["Failed", "Succeeded", "Skipped", "Succeeded"]);
    assert_eq!(
        done["status"]["message"],
        "terminated on request: 1 tasks succeeded, 1 terminated (crunch), 1 not started"
    );
    assert_eq!(condition_reason(&done), "Stopped/TerminateRequested");
    assert_eq!(
        outcome_told_to_notify(cluster, &name).as_deref(),
        Some("Terminated")
    );
    // The Job and its pod are gone; the pod was deleted while it ran.
    assert_eq!(
        job_names(cluster, NS, &name),
        ["notify-1", "side-1"].map(|j| format!("{name}-{j}"))
    );
    assert!(task_pods(cluster, NS, &name, "crunch").is_empty());
    let deletion = pods
        .deletions()
        .into_iter()
        .find(|d| d.task == "crunch")
        .expect("crunch's pod was deleted");
    assert!(deletion.was_running, "{deletion:?}");
    // The onExit task's Job came after the pod was gone (the API server's timestamps are whole
    // seconds: one of slack, against the 3 s the container took).
    let confirmed = deletion.confirmed.expect("the deletion was confirmed");
    let notify = job(cluster, NS, &format!("{name}-notify-1")).expect("the onExit Job");
    let created = chrono::DateTime::parse_from_rfc3339(
        notify["metadata"]["creationTimestamp"]
            .as_str()
            .expect("a creation time"),
    )
    .expect("RFC 3339");
    let created = SystemTime::from(created) + Duration::from_secs(1);
    assert!(
        created >= confirmed,
        "the onExit Job was created before crunch's pod was gone"
    );
    let events = reasons(cluster, &name);
    let at = |r: &str| events.iter().position(|e| e == r);
    assert!(
        at("RunTerminating").is_some() && at("RunTerminating") < at("RunTerminated"),
        "{events:?}"
    );
    wait_until("the slot to be free", Duration::from_secs(10), || {
        (counters(port).get("scheduler_running_tasks") == Some(&0.0)).then_some(())
    });
    eprintln!("terminate: request to Terminated in {ended_in:.1?}, with a {GRACE:?} pod grace");
}

/// The run as a GitOps repository declares it.
fn declared_run(name: &str, shutdown: Option<&str>) -> String {
    let shutdown = shutdown
        .map(|s| format!("  shutdown: {s}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: datajump.io/v1alpha1\nkind: WorkflowRun\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  workflowName: {WORKFLOW}\n{shutdown}"
    )
}

fn patch(cluster: &Cluster, name: &str, body: &str) -> std::process::Output {
    cluster.kubectl(&[
        "patch",
        "workflowrun",
        name,
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        body,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_patch_and_apply_stop_then_terminate_a_run_and_the_api_server_keeps_the_rest() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    setup(cluster);
    let _kubelet = PausedKubelet::pause(cluster);
    let pods = TaskPodPlayer::start(cluster.client().await, NS, &["crunch"], GRACE);
    let name = "long-declared";
    cluster.apply_yaml(&declared_run(name, None));
    wait_for_crunch(cluster, &pods, name);

    let stop = patch(cluster, name, r#"{"spec":{"shutdown":"Stop"}}"#);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let stopping = wait_for_run(
        cluster,
        NS,
        name,
        "the stop acted on",
        Duration::from_secs(20),
        |r| r["status"]["shutdown"] == "Stop",
    );
    assert_eq!(task_phase(&stopping, "publish").as_deref(), Some("Skipped"));
    assert!(pods.running("crunch"));

    // The API server keeps the request and the rest of the spec as they are.
    for (body, refusal) in [
        (
            r#"{"spec":{"shutdown":null}}"#,
            "spec.shutdown cannot be withdrawn",
        ),
        (
            r#"{"spec":{"parameters":{"day":"1"}}}"#,
            "a WorkflowRun's spec is immutable, except spec.shutdown",
        ),
        (
            r#"{"spec":{"workflowName":"other"}}"#,
            "a WorkflowRun's spec is immutable, except spec.shutdown",
        ),
    ] {
        let out = patch(cluster, name, body);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(refusal),
            "{body}: {stderr}"
        );
    }

    // Escalated by applying the declared run with Terminate.
    cluster.apply_yaml(&declared_run(name, Some("Terminate")));
    let done = wait_for_end(cluster, NS, name, Duration::from_secs(30));
    assert_eq!(done["status"]["phase"], "Terminated", "{done:#}");
    assert_eq!(task(&done, "crunch")["reason"], "Terminated");
    assert!(task_pods(cluster, NS, name, "crunch").is_empty());
    assert!(job(cluster, NS, &format!("{name}-crunch-1")).is_none());
    assert!(
        pods.deletions()
            .iter()
            .any(|d| d.task == "crunch" && d.was_running)
    );
    let back = patch(cluster, name, r#"{"spec":{"shutdown":"Stop"}}"#);
    assert!(
        String::from_utf8_lossy(&back.stderr).contains("changed from Terminate back to Stop"),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    let events = reasons(cluster, name);
    for reason in ["RunStopping", "RunTerminating", "RunTerminated"] {
        assert!(events.iter().any(|e| e == reason), "{reason}: {events:?}");
    }
}

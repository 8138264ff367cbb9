//! End-to-end simulations: the real reconcilers drive workflows through an in-memory cluster
//! (`datajump_scheduler::sim`), including a scheduler restart with a lost status write.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use datajump_api::{RunPhase, TaskPhase, Workflow, WorkflowRun, WorkflowRunSpec};
use datajump_scheduler::config::SchedulerConfig;
use datajump_scheduler::metrics::Metrics;
use datajump_scheduler::reconcile::Reconciler;
use datajump_scheduler::sim::{MemoryCluster, reconcile_all, reconcile_runs_concurrently};

const NS: &str = "data";

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, h, m, s)
        .single()
        .expect("valid time")
}

fn workflow(yaml: &str) -> Workflow {
    serde_yaml::from_str(yaml).expect("valid workflow yaml")
}

const DIAMOND: &str = r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: diamond, namespace: data}
spec:
  schedule: "@hourly"
  tasks:
    - {name: extract, image: busybox}
    - {name: clean, image: busybox, dependsOn: [extract]}
    - {name: enrich, image: busybox, dependsOn: [extract]}
    - {name: load, image: busybox, dependsOn: [clean, enrich]}
"#;

fn reconciler(
    cluster: &Arc<MemoryCluster>,
    config: SchedulerConfig,
) -> Reconciler<Arc<MemoryCluster>> {
    Reconciler::new(cluster.clone(), config, Arc::new(Metrics::new()))
}

fn task_phase(run: &WorkflowRun, task: &str) -> TaskPhase {
    run.status
        .as_ref()
        .and_then(|s| s.tasks.iter().find(|t| t.name == task))
        .map(|t| t.phase)
        .unwrap_or_default()
}

fn metric(reconciler: &Reconciler<Arc<MemoryCluster>>, name: &str) -> u64 {
    let text = reconciler.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in\n{text}"))
}

#[tokio::test]
async fn diamond_runs_on_schedule_and_survives_a_restart_without_duplicate_jobs() {
    let cluster = MemoryCluster::new(at(9, 59, 0));
    cluster.apply_workflow(workflow(DIAMOND));
    let first = reconciler(&cluster, SchedulerConfig::default());

    // Before the tick: nothing happens, the scheduler asks to wake at 10:00.
    let wake = reconcile_all(&first, at(9, 59, 30))
        .await
        .expect("reconcile");
    assert_eq!(wake, Some(at(10, 0, 0)));
    assert!(cluster.runs().is_empty());

    // The tick: one run, named after it, whose first task starts.
    reconcile_all(&first, at(10, 0, 1))
        .await
        .expect("reconcile");
    let run_name = "diamond-202601011000";
    assert_eq!(cluster.runs().len(), 1);
    assert_eq!(cluster.job_names(), [format!("{run_name}-extract-1")]);
    // Reconciling again (another watch event) changes nothing.
    reconcile_all(&first, at(10, 0, 2))
        .await
        .expect("reconcile");
    assert_eq!(cluster.runs().len(), 1);
    assert_eq!(cluster.jobs_created().len(), 1);

    assert!(cluster.succeed_job(NS, &format!("{run_name}-extract-1")));
    // The scheduler crashes right after creating the next Jobs, before recording them.
    cluster.drop_next_status_writes(1);
    reconcile_all(&first, at(10, 1, 0))
        .await
        .expect("reconcile");
    assert_eq!(
        cluster.active_jobs().len(),
        2,
        "clean and enrich run in parallel"
    );
    drop(first);

    // A new scheduler process rebuilds everything from the cluster.
    let second = reconciler(&cluster, SchedulerConfig::default());
    reconcile_all(&second, at(10, 1, 30))
        .await
        .expect("reconcile");
    let run = cluster.run(NS, run_name).expect("run exists");
    assert_eq!(
        task_phase(&run, "clean"),
        TaskPhase::Running,
        "adopted, not recreated"
    );
    assert_eq!(task_phase(&run, "enrich"), TaskPhase::Running);
    assert_eq!(
        cluster.jobs_created().len(),
        3,
        "no duplicate Job after the restart"
    );

    cluster.succeed_job(NS, &format!("{run_name}-clean-1"));
    reconcile_all(&second, at(10, 2, 0))
        .await
        .expect("reconcile");
    assert_eq!(cluster.jobs_created().len(), 3, "load waits for enrich");
    cluster.succeed_job(NS, &format!("{run_name}-enrich-1"));
    reconcile_all(&second, at(10, 3, 0))
        .await
        .expect("reconcile");
    cluster.succeed_job(NS, &format!("{run_name}-load-1"));
    reconcile_all(&second, at(10, 4, 0))
        .await
        .expect("reconcile");

    let run = cluster.run(NS, run_name).expect("run exists");
    let status = run.status.as_ref().expect("status");
    assert_eq!(status.phase, RunPhase::Succeeded);
    assert_eq!((status.succeeded_tasks, status.total_tasks), (4, 4));
    let mut created = cluster.jobs_created();
    created.sort();
    let mut want: Vec<String> = ["clean", "enrich", "extract", "load"]
        .iter()
        .map(|t| format!("{run_name}-{t}-1"))
        .collect();
    want.sort();
    assert_eq!(created, want, "exactly one Job per task");
    let reasons: Vec<&str> = cluster.events().iter().map(|e| e.reason).collect();
    assert_eq!(reasons.first(), Some(&"RunStarted"));
    assert_eq!(reasons.last(), Some(&"RunSucceeded"));
    // The lost status write never recorded extract's success, so the new process saw it finish
    // too: task counters are at-least-once across crashes, never missing a task.
    assert_eq!(metric(&second, "task_total"), 4);
    assert_eq!(metric(&second, "task_success_total"), 4);
    let wf = cluster.workflows()[0].clone();
    let wf_status = wf.status.as_ref().expect("workflow status");
    assert_eq!(wf_status.last_schedule_time, Some(at(10, 0, 0)));
    assert_eq!(wf_status.next_schedule_time, Some(at(11, 0, 0)));

    // The next tick creates the next run exactly once.
    reconcile_all(&second, at(11, 0, 0))
        .await
        .expect("reconcile");
    reconcile_all(&second, at(11, 0, 5))
        .await
        .expect("reconcile");
    assert_eq!(cluster.runs().len(), 2);
    assert!(cluster.run(NS, "diamond-202601011100").is_some());
}

const FLAKY: &str = r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: flaky, namespace: data}
spec:
  failedRunsHistoryLimit: 1
  tasks:
    - {name: fetch, image: busybox, retries: 1, retryBackoffSeconds: 30}
    - {name: report, image: busybox, dependsOn: [fetch]}
    - {name: audit, image: busybox}
"#;

fn manual_run(name: &str) -> WorkflowRun {
    let mut run = WorkflowRun::new(
        name,
        WorkflowRunSpec {
            workflow_name: "flaky".into(),
            scheduled_time: None,
            ..Default::default()
        },
    );
    run.metadata.namespace = Some(NS.into());
    run
}

#[tokio::test]
async fn failures_retry_then_skip_downstream_and_history_is_pruned() {
    let cluster = MemoryCluster::new(at(8, 0, 0));
    cluster.apply_workflow(workflow(FLAKY));
    let r = reconciler(&cluster, SchedulerConfig::default());
    cluster.create_manual_run(manual_run("flaky-by-hand-1"));
    reconcile_all(&r, at(8, 0, 0)).await.expect("reconcile");
    assert_eq!(cluster.active_jobs().len(), 2, "fetch and audit start");

    cluster.set_now(at(8, 0, 10));
    cluster.fail_job(NS, "flaky-by-hand-1-fetch-1", "BackoffLimitExceeded");
    cluster.succeed_job(NS, "flaky-by-hand-1-audit-1");
    let wake = reconcile_all(&r, at(8, 0, 10)).await.expect("reconcile");
    assert_eq!(wake, Some(at(8, 0, 40)), "retry after the 30 s backoff");
    reconcile_all(&r, at(8, 0, 40)).await.expect("reconcile");
    assert!(
        cluster
            .job_names()
            .contains(&"flaky-by-hand-1-fetch-2".to_string())
    );

    cluster.set_now(at(8, 1, 0));
    cluster.fail_job(NS, "flaky-by-hand-1-fetch-2", "DeadlineExceeded");
    reconcile_all(&r, at(8, 1, 0)).await.expect("reconcile");
    let run = cluster.run(NS, "flaky-by-hand-1").expect("run");
    assert_eq!(task_phase(&run, "fetch"), TaskPhase::Failed);
    assert_eq!(task_phase(&run, "report"), TaskPhase::Skipped);
    assert_eq!(task_phase(&run, "audit"), TaskPhase::Succeeded);
    assert_eq!(run.status.as_ref().map(|s| s.phase), Some(RunPhase::Failed));
    assert_eq!(metric(&r, "task_total"), 2);
    assert_eq!(metric(&r, "task_success_total"), 1);

    // A second failed run: only the newest failed run (failedRunsHistoryLimit: 1) is kept.
    cluster.set_now(at(9, 0, 0));
    cluster.create_manual_run(manual_run("flaky-by-hand-2"));
    reconcile_all(&r, at(9, 0, 0)).await.expect("reconcile");
    cluster.set_now(at(9, 0, 5));
    cluster.fail_job(NS, "flaky-by-hand-2-fetch-1", "BackoffLimitExceeded");
    cluster.fail_job(NS, "flaky-by-hand-2-audit-1", "BackoffLimitExceeded");
    reconcile_all(&r, at(9, 0, 5)).await.expect("reconcile");
    reconcile_all(&r, at(9, 0, 35)).await.expect("reconcile");
    cluster.set_now(at(9, 0, 40));
    cluster.fail_job(NS, "flaky-by-hand-2-fetch-2", "BackoffLimitExceeded");
    reconcile_all(&r, at(9, 0, 40)).await.expect("reconcile");
    reconcile_all(&r, at(9, 0, 41)).await.expect("reconcile");
    let names: Vec<String> = cluster
        .runs()
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    assert_eq!(names, ["flaky-by-hand-2"]);
    assert!(
        cluster
            .job_names()
            .iter()
            .all(|j| j.starts_with("flaky-by-hand-2-")),
        "the pruned run's Jobs went with it"
    );
}

/// Three hourly workflows of five independent tasks each, and a reconciler capped at 4.
fn three_wide_workflows_under_a_cap_of_four() -> (Arc<MemoryCluster>, Reconciler<Arc<MemoryCluster>>)
{
    let cluster = MemoryCluster::new(at(7, 0, 0));
    for i in 0..3 {
        let yaml = format!(
            "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: wide-{i}, namespace: data}}\n\
             spec:\n  schedule: '0 * * * *'\n  tasks:\n{}",
            (0..5)
                .map(|t| format!("    - {{name: t{t}, image: busybox}}\n"))
                .collect::<String>()
        );
        cluster.apply_workflow(workflow(&yaml));
    }
    let r = reconciler(
        &cluster,
        SchedulerConfig {
            max_running_tasks: 4,
            ..SchedulerConfig::default()
        },
    );
    (cluster, r)
}

/// The three wide workflows' runs are done: one Job per task, every run Succeeded.
fn assert_fifteen_tasks_ran_and_every_run_succeeded(cluster: &MemoryCluster) {
    assert_eq!(
        cluster.jobs_created().len(),
        15,
        "all 15 tasks ran, one Job each"
    );
    let phases: Vec<_> = cluster
        .runs()
        .iter()
        .map(|r| r.status.as_ref().map(|s| s.phase))
        .collect();
    assert!(
        phases.iter().all(|p| *p == Some(RunPhase::Succeeded)),
        "every run finished: {phases:?}"
    );
}

#[tokio::test]
async fn the_global_cap_bounds_running_tasks_across_runs() {
    let (cluster, r) = three_wide_workflows_under_a_cap_of_four();
    let mut now = at(8, 0, 0);
    let mut peak = 0;
    for _ in 0..40 {
        reconcile_all(&r, now).await.expect("reconcile");
        let active = cluster.active_jobs();
        peak = peak.max(active.len());
        assert!(active.len() <= 4, "cap exceeded: {active:?}");
        for (ns, name) in active.iter().take(2) {
            cluster.succeed_job(ns, name);
        }
        now += Duration::seconds(10);
        cluster.set_now(now);
    }
    assert_eq!(peak, 4);
    assert_fifteen_tasks_ran_and_every_run_succeeded(&cluster);
}

#[tokio::test]
async fn concurrent_run_reconciles_never_spend_a_slot_twice() {
    let (cluster, r) = three_wide_workflows_under_a_cap_of_four();
    // The workflows create their runs; then the runs are reconciled all at once, each create
    // yielding to the others, as on a real API server.
    let mut now = at(8, 0, 0);
    reconcile_all(&r, now).await.expect("reconcile");
    for _ in 0..40 {
        reconcile_runs_concurrently(&r, now)
            .await
            .expect("reconcile");
        let active = cluster.active_jobs();
        assert!(active.len() <= 4, "cap exceeded: {active:?}");
        for (ns, name) in active.iter().take(2) {
            cluster.succeed_job(ns, name);
        }
        now += Duration::seconds(10);
        cluster.set_now(now);
    }
    assert_eq!(
        cluster.jobs_created().len(),
        15,
        "all 15 tasks ran, one Job each"
    );
}

/// Runs blocked by the cap are reconciled here only when their own Jobs change or when
/// `runs_to_wake` names them, as in the controller: no timed wake-up, no resync. They all
/// finish, oldest waiter first.
#[tokio::test]
async fn runs_waiting_for_a_slot_are_woken_when_one_frees() {
    let (cluster, r) = three_wide_workflows_under_a_cap_of_four();
    let now = at(8, 0, 0);
    cluster.set_now(now);
    reconcile_all(&r, now).await.expect("reconcile");
    assert_eq!(cluster.active_jobs().len(), 4);
    assert!(
        r.runs_to_wake(now, |_| true).is_empty(),
        "no slot is free: nobody to wake"
    );
    let mut woken_order = Vec::new();
    for _ in 0..40 {
        let mut trigger: Vec<(String, String)> = Vec::new();
        for (ns, job) in cluster.active_jobs().into_iter().take(2) {
            cluster.succeed_job(&ns, &job);
            let owner = cluster
                .runs()
                .into_iter()
                .find(|run| {
                    job.starts_with(&format!(
                        "{}-",
                        run.metadata.name.as_deref().unwrap_or_default()
                    ))
                })
                .expect("the Job's run");
            trigger.push((ns, owner.metadata.name.clone().unwrap_or_default()));
        }
        let woken = r.runs_to_wake(now, |_| true);
        woken_order.extend(woken.iter().map(|(_, name)| name.clone()));
        trigger.extend(woken);
        trigger.sort();
        trigger.dedup();
        for (ns, name) in trigger {
            let run = cluster.run(&ns, &name).expect("the run exists");
            r.reconcile_run(&run, now).await.expect("reconcile");
            assert!(cluster.active_jobs().len() <= 4, "cap exceeded");
        }
    }
    assert_fifteen_tasks_ran_and_every_run_succeeded(&cluster);
    assert!(!woken_order.is_empty(), "the waiting runs were woken");
}

const CHAIN: &str = r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: chain, namespace: data}
spec:
  tasks:
    - {name: extract, image: "etl:1"}
    - {name: load, image: "etl:1", dependsOn: [extract]}
"#;

fn run_of(workflow: &str, name: &str) -> WorkflowRun {
    let mut run = manual_run(name);
    run.spec.workflow_name = workflow.into();
    run
}

fn image_of(cluster: &Arc<MemoryCluster>, job: &str) -> String {
    cluster
        .created_image(job)
        .unwrap_or_else(|| panic!("no Job {job} created"))
}

/// Editing a Workflow while it runs changes later runs only: the running one keeps the spec it
/// started with (recorded in its status), even when the edit renames tasks, changes images or
/// makes the Workflow invalid; a finished run's history is not rewritten by a later edit.
#[tokio::test]
async fn a_run_executes_the_spec_it_started_with() {
    let cluster = MemoryCluster::new(at(7, 0, 0));
    cluster.apply_workflow(workflow(CHAIN));
    let r = reconciler(&cluster, SchedulerConfig::default());
    cluster.create_manual_run(run_of("chain", "chain-1"));
    reconcile_all(&r, at(7, 0, 0)).await.expect("reconcile");
    let run = cluster.run(NS, "chain-1").expect("run");
    let snapshot = run
        .status
        .as_ref()
        .and_then(|s| s.workflow_spec.clone())
        .expect("the first step records the spec");
    assert_eq!(snapshot.tasks[1].name, "load");

    // An edit: new image, a renamed and an added task. Then one that breaks it (a cycle).
    cluster.apply_workflow(workflow(
        &CHAIN
            .replace("etl:1", "etl:2")
            .replace("name: load", "name: publish")
            .replace(
                "dependsOn: [extract]}",
                "dependsOn: [extract]}\n    - {name: extra, image: x}",
            ),
    ));
    cluster.set_now(at(7, 0, 5));
    cluster.succeed_job(NS, "chain-1-extract-1");
    reconcile_all(&r, at(7, 0, 5)).await.expect("reconcile");
    assert_eq!(image_of(&cluster, "chain-1-load-1"), "etl:1");
    cluster.apply_workflow(workflow(&CHAIN.replace(
        "{name: extract, image: \"etl:1\"}",
        "{name: extract, image: x, dependsOn: [load]}",
    )));
    cluster.set_now(at(7, 0, 9));
    cluster.succeed_job(NS, "chain-1-load-1");
    reconcile_all(&r, at(7, 0, 9)).await.expect("reconcile");
    let run = cluster.run(NS, "chain-1").expect("run");
    let status = run.status.clone().expect("status");
    assert_eq!(status.phase, RunPhase::Succeeded, "{:?}", status.message);
    let names: Vec<&str> = status.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["extract", "load"]);
    assert_eq!(status.workflow_spec.as_ref(), Some(&snapshot));

    // Later edits leave the finished run as it was.
    cluster.apply_workflow(workflow(&CHAIN.replace("etl:1", "etl:3")));
    reconcile_all(&r, at(7, 1, 0)).await.expect("reconcile");
    assert_eq!(
        cluster.run(NS, "chain-1").expect("run").status,
        Some(status)
    );

    // A new run takes the Workflow as it is now.
    cluster.create_manual_run(run_of("chain", "chain-2"));
    reconcile_all(&r, at(7, 1, 1)).await.expect("reconcile");
    assert_eq!(image_of(&cluster, "chain-2-extract-1"), "etl:3");
}

/// A run whose Workflow is not (yet) in the cache waits a little before it fails: caches fill
/// from separate watches, and a run is often created right after its Workflow.
#[tokio::test]
async fn a_new_run_waits_briefly_for_its_workflow() {
    let cluster = MemoryCluster::new(at(6, 0, 0));
    let r = reconciler(&cluster, SchedulerConfig::default());
    cluster.create_manual_run(run_of("chain", "early-1"));
    let wake = reconcile_all(&r, at(6, 0, 1)).await.expect("reconcile");
    let run = cluster.run(NS, "early-1").expect("run");
    assert_eq!(
        run.status, None,
        "not failed while the Workflow may be on its way"
    );
    assert_eq!(wake, Some(at(6, 0, 2)), "and looked at again in a second");
    cluster.apply_workflow(workflow(CHAIN));
    reconcile_all(&r, at(6, 0, 2)).await.expect("reconcile");
    assert_eq!(
        cluster.active_jobs().len(),
        1,
        "it runs once the Workflow is there"
    );

    cluster.create_manual_run(run_of("missing", "orphan-1"));
    reconcile_all(&r, at(6, 0, 10)).await.expect("reconcile");
    assert_eq!(cluster.run(NS, "orphan-1").expect("run").status, None);
    reconcile_all(&r, at(6, 0, 40)).await.expect("reconcile");
    let status = cluster
        .run(NS, "orphan-1")
        .expect("run")
        .status
        .clone()
        .expect("status");
    assert_eq!(status.phase, RunPhase::Failed);
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("not found"),
        "{status:?}"
    );
}

/// A run deleted and re-created under the same name while the old run's Jobs still exist (the
/// garbage collector is not instant): the new run does not take the old Jobs' results as its
/// own, and runs its tasks once the old Jobs are gone.
#[tokio::test]
async fn a_re_created_run_does_not_adopt_the_old_runs_jobs() {
    use datajump_scheduler::reconcile::Cluster;
    let cluster = MemoryCluster::new(at(5, 0, 0));
    cluster.apply_workflow(workflow(CHAIN));
    let r = reconciler(&cluster, SchedulerConfig::default());
    cluster.create_manual_run(run_of("chain", "again"));
    reconcile_all(&r, at(5, 0, 0)).await.expect("reconcile");
    assert_eq!(cluster.active_jobs().len(), 1);
    cluster.delete_run_leaving_jobs(NS, "again");
    cluster.create_manual_run(run_of("chain", "again"));
    cluster.set_now(at(5, 0, 2));
    cluster.succeed_job(NS, "again-extract-1");
    for s in [2, 3, 4] {
        reconcile_all(&r, at(5, 0, s)).await.expect("reconcile");
    }
    let run = cluster.run(NS, "again").expect("run");
    assert_ne!(
        task_phase(&run, "extract"),
        TaskPhase::Succeeded,
        "the old run's Job is not the new run's result"
    );
    assert!(
        cluster.created_image("again-load-1").is_none(),
        "load did not start"
    );

    // The garbage collector removes the old Job: the new run runs its own.
    cluster
        .delete_job(NS, "again-extract-1")
        .await
        .expect("deleted");
    reconcile_all(&r, at(5, 1, 10)).await.expect("reconcile");
    assert!(cluster.job_cached(NS, "again-extract-1"), "created anew");
    cluster.set_now(at(5, 1, 20));
    cluster.succeed_job(NS, "again-extract-1");
    reconcile_all(&r, at(5, 1, 20)).await.expect("reconcile");
    cluster.set_now(at(5, 1, 30));
    cluster.succeed_job(NS, "again-load-1");
    reconcile_all(&r, at(5, 1, 30)).await.expect("reconcile");
    let run = cluster.run(NS, "again").expect("run");
    assert_eq!(
        run.status.as_ref().map(|s| s.phase),
        Some(RunPhase::Succeeded)
    );
}

#[tokio::test]
async fn replace_never_restarts_the_run_it_just_started_from_a_stale_view() {
    let cluster = MemoryCluster::new(at(9, 59, 0));
    cluster.apply_workflow(workflow(&DIAMOND.replace(
        "schedule: \"@hourly\"",
        "schedule: \"@hourly\"\n  concurrencyPolicy: Replace",
    )));
    let r = reconciler(&cluster, SchedulerConfig::default());
    // The 10:00 tick starts a run; the Workflow's new lastScheduleTime is not visible to the
    // next reconcile (the watch event has not arrived), while the new run already is.
    cluster.drop_next_workflow_status_writes(1);
    reconcile_all(&r, at(10, 0, 1)).await.expect("reconcile");
    let run = "diamond-202601011000";
    let uid = |c: &Arc<MemoryCluster>| c.run(NS, run).and_then(|r| r.metadata.uid.clone());
    let first_uid = uid(&cluster).expect("run started");
    for s in [2, 3] {
        reconcile_all(&r, at(10, 0, s)).await.expect("reconcile");
    }
    assert_eq!(
        uid(&cluster),
        Some(first_uid),
        "the run was not replaced by itself"
    );
    assert_eq!(
        cluster.jobs_created(),
        [format!("{run}-extract-1")],
        "its first task ran once"
    );
    let wf = cluster.workflows().pop().expect("workflow");
    assert_eq!(
        wf.status.as_ref().and_then(|s| s.last_schedule_time),
        Some(at(10, 0, 0)),
        "the lost write was made again"
    );

    // The 11:00 tick replaces the 10:00 run, which is still running.
    reconcile_all(&r, at(11, 0, 1)).await.expect("reconcile");
    assert!(cluster.run(NS, run).is_none(), "the 10:00 run was replaced");
    assert!(cluster.run(NS, "diamond-202601011100").is_some());
}

/// Two schedules in different zones, meeting at :30 UTC: one run per instant, named after it,
/// also when a scheduler restarts having lost its status write of the meeting.
#[tokio::test]
async fn two_schedules_run_once_per_instant_across_a_restart() {
    let cluster = MemoryCluster::new(at(9, 59, 0));
    // On the half hour in UTC, and at :00, :20 and :40 in Kolkata (UTC+05:30): :30, :50 and
    // :10 in UTC. Together: :00, :10, :30 (both), :50.
    cluster.apply_workflow(workflow(
        r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: twice, namespace: data}
spec:
  schedules:
    - {schedule: "*/30 * * * *"}
    - {schedule: "0,20,40 * * * *", timezone: Asia/Kolkata}
  tasks:
    - {name: only, image: busybox}
"#,
    ));
    let first = reconciler(&cluster, SchedulerConfig::default());
    let wake = reconcile_all(&first, at(9, 59, 30))
        .await
        .expect("reconcile");
    assert_eq!(wake, Some(at(10, 0, 0)));
    for m in [0, 10] {
        reconcile_all(&first, at(10, m, 1))
            .await
            .expect("reconcile");
    }
    // The meeting at 10:30: the run is created, then the process dies before the Workflow's
    // status (lastScheduleTime 10:30) is written.
    cluster.drop_next_workflow_status_writes(1);
    let wake = reconcile_all(&first, at(10, 30, 1))
        .await
        .expect("reconcile");
    assert_eq!(
        wake,
        Some(at(10, 50, 0)),
        "the next tick of either schedule"
    );
    drop(first);
    let before = cluster.already_exists_count();
    let second = reconciler(&cluster, SchedulerConfig::default());
    reconcile_all(&second, at(10, 30, 5))
        .await
        .expect("reconcile");
    assert_eq!(
        cluster.already_exists_count(),
        before + 1,
        "the new process takes 10:30 again and finds its run"
    );
    reconcile_all(&second, at(10, 50, 1))
        .await
        .expect("reconcile");
    let mut names: Vec<String> = cluster
        .runs()
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "twice-202601011000",
            "twice-202601011010",
            "twice-202601011030",
            "twice-202601011050"
        ]
    );
    let status = cluster.workflows()[0].status.clone().unwrap_or_default();
    assert_eq!(status.last_schedule_time, Some(at(10, 50, 0)));
    assert_eq!(status.next_schedule_time, Some(at(11, 0, 0)));
    assert_eq!(status.missed_ticks, 0);
}

/// A finished run that cannot be deleted (an admission webhook, a missing RBAC rule) must not
/// hold up the schedule: the next tick's run is created, the workflow's status written, and
/// the deletion tried again on a later reconcile.
#[tokio::test]
async fn a_history_pruning_error_does_not_block_scheduling() {
    let cluster = MemoryCluster::new(at(7, 30, 0));
    cluster.apply_workflow(workflow(
        r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: hourly, namespace: data}
spec:
  schedule: "@hourly"
  successfulRunsHistoryLimit: 0
  tasks:
    - {name: only, image: busybox}
"#,
    ));
    let r = reconciler(&cluster, SchedulerConfig::default());
    reconcile_all(&r, at(8, 0, 0)).await.expect("reconcile");
    cluster.set_now(at(8, 0, 5));
    assert!(cluster.succeed_job(NS, "hourly-202601010800-only-1"));
    reconcile_all(&r, at(8, 0, 5)).await.expect("reconcile");
    let first = cluster.run(NS, "hourly-202601010800").expect("first run");
    assert_eq!(
        first.status.as_ref().map(|s| s.phase),
        Some(RunPhase::Succeeded)
    );

    cluster.refuse_next_run_deletes(1);
    let wf = cluster.workflows().pop().expect("workflow");
    let outcome = r.reconcile_workflow(&wf, at(9, 0, 0)).await;
    assert!(
        outcome.is_err(),
        "the refused deletion is reported, so the controller retries it"
    );
    assert!(
        cluster.run(NS, "hourly-202601010900").is_some(),
        "the 09:00 run was created although pruning the 08:00 run failed"
    );
    let wf = cluster.workflows().pop().expect("workflow");
    assert_eq!(
        wf.status.as_ref().and_then(|s| s.last_schedule_time),
        Some(at(9, 0, 0)),
        "the workflow's status records the tick"
    );
    assert!(cluster.run(NS, "hourly-202601010800").is_some());

    r.reconcile_workflow(&wf, at(9, 0, 1))
        .await
        .expect("the retry prunes");
    assert!(cluster.run(NS, "hourly-202601010800").is_none());
    assert_eq!(
        cluster.jobs_created(),
        ["hourly-202601010800-only-1"],
        "nothing was scheduled twice"
    );
}

const NIGHTLY: &str = r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: nightly, namespace: data}
spec:
  schedule: "0 2 * * *"
  concurrencyPolicy: Forbid
  tasks:
    - {name: extract, image: "etl:1"}
    - {name: load, image: "etl:1", dependsOn: [extract]}
    - {name: report, image: "etl:1", dependsOn: [load]}
"#;

fn status_of(cluster: &MemoryCluster, name: &str) -> datajump_api::WorkflowRunStatus {
    cluster
        .run(NS, name)
        .and_then(|r| r.status.clone())
        .unwrap_or_default()
}

/// A failed run retried from its failed task: the succeeded task is kept, the rest run again
/// with the spec the failed run executed (not the Workflow's edited one).
#[tokio::test]
async fn a_retry_from_failed_keeps_succeeded_tasks_and_the_original_spec() {
    let cluster = MemoryCluster::new(at(1, 0, 0));
    cluster.apply_workflow(workflow(NIGHTLY));
    let r = reconciler(&cluster, SchedulerConfig::default());
    cluster.create_manual_run(run_of("nightly", "first"));
    reconcile_all(&r, at(1, 0, 0)).await.expect("reconcile");
    assert!(cluster.succeed_job(NS, "first-extract-1"));
    reconcile_all(&r, at(1, 0, 5)).await.expect("reconcile");
    assert!(cluster.fail_job(NS, "first-load-1", "BackoffLimitExceeded"));
    reconcile_all(&r, at(1, 0, 10)).await.expect("reconcile");
    assert_eq!(status_of(&cluster, "first").phase, RunPhase::Failed);

    cluster.apply_workflow(workflow(&NIGHTLY.replace("etl:1", "etl:2")));
    let mut retry = run_of("nightly", "first-retry-1");
    retry.spec.retry_of = Some(datajump_api::RetryOf {
        run_name: "first".into(),
        from_failed: true,
    });
    cluster.create_manual_run(retry);
    reconcile_all(&r, at(1, 1, 0)).await.expect("reconcile");
    let status = status_of(&cluster, "first-retry-1");
    let extract = &status.tasks[0];
    assert_eq!(
        (extract.phase, extract.attempts, extract.message.as_deref()),
        (TaskPhase::Succeeded, 0, Some("succeeded in run first"))
    );
    assert!(
        !cluster
            .job_names()
            .contains(&"first-retry-1-extract-1".to_string()),
        "the succeeded task does not run again"
    );
    assert_eq!(image_of(&cluster, "first-retry-1-load-1"), "etl:1");
    assert!(cluster.succeed_job(NS, "first-retry-1-load-1"));
    reconcile_all(&r, at(1, 1, 5)).await.expect("reconcile");
    assert!(cluster.succeed_job(NS, "first-retry-1-report-1"));
    reconcile_all(&r, at(1, 1, 10)).await.expect("reconcile");
    assert_eq!(
        status_of(&cluster, "first-retry-1").phase,
        RunPhase::Succeeded
    );

    // A retry of a run that is not there fails once the cache had time to show it.
    cluster.set_now(at(1, 2, 0));
    let mut orphan = run_of("nightly", "orphan-retry");
    orphan.spec.retry_of = Some(datajump_api::RetryOf {
        run_name: "missing".into(),
        from_failed: false,
    });
    cluster.create_manual_run(orphan);
    reconcile_all(&r, at(1, 2, 0)).await.expect("reconcile");
    assert_eq!(status_of(&cluster, "orphan-retry").phase, RunPhase::Pending);
    reconcile_all(&r, at(1, 3, 0)).await.expect("reconcile");
    let orphan = status_of(&cluster, "orphan-retry");
    assert_eq!(orphan.phase, RunPhase::Failed);
    assert_eq!(
        orphan.conditions.last().map(|c| c.reason.as_str()),
        Some("RetrySourceNotFound")
    );
}

/// Four backfill runs with parallelism 2: the two oldest run, the others wait with a note and
/// are handed to the waker (by the Workflow's reconcile) when a place frees. A Forbid
/// workflow's schedule is not held up by them.
#[tokio::test]
async fn a_backfill_runs_its_ticks_oldest_first_a_few_at_a_time() {
    let cluster = MemoryCluster::new(at(1, 0, 0));
    cluster.apply_workflow(workflow(NIGHTLY));
    let r = reconciler(&cluster, SchedulerConfig::default());
    let days = [4u32, 2, 5, 3];
    for day in days {
        let tick = Utc
            .with_ymd_and_hms(2025, 12, day, 2, 0, 0)
            .single()
            .expect("tick");
        let mut run = run_of("nightly", &format!("nightly-2025120{day}0200"));
        run.spec.scheduled_time = Some(tick);
        run.spec.backfill = Some(datajump_api::BackfillRef {
            name: "dec".into(),
            parallelism: 2,
        });
        cluster.create_manual_run(run);
    }
    reconcile_all(&r, at(1, 0, 0)).await.expect("reconcile");
    let mut started: Vec<String> = cluster.active_jobs().into_iter().map(|(_, j)| j).collect();
    started.sort();
    assert_eq!(
        started,
        [
            "nightly-202512020200-extract-1",
            "nightly-202512030200-extract-1"
        ]
    );
    assert_eq!(
        status_of(&cluster, "nightly-202512040200")
            .message
            .as_deref(),
        Some("waiting for its turn: backfill dec runs 2 at a time, oldest first")
    );

    // The 02:00 tick of the day is scheduled although four runs are unfinished (Forbid).
    reconcile_all(&r, at(2, 0, 0)).await.expect("reconcile");
    assert!(cluster.run(NS, "nightly-202601010200").is_some());

    for task in ["extract", "load", "report"] {
        assert!(cluster.succeed_job(NS, &format!("nightly-202512020200-{task}-1")));
        // Only the run whose Job changed, then its Workflow, as the watches trigger them.
        let run = cluster.run(NS, "nightly-202512020200").expect("run");
        r.reconcile_run(&run, at(2, 0, 1))
            .await
            .expect("reconcile run");
        let wf = cluster.workflows().pop().expect("workflow");
        r.reconcile_workflow(&wf, at(2, 0, 1))
            .await
            .expect("reconcile");
    }
    assert_eq!(
        status_of(&cluster, "nightly-202512020200").phase,
        RunPhase::Succeeded
    );
    let woken = r.runs_to_wake(at(2, 0, 2), |_| true);
    assert_eq!(
        woken,
        [(NS.to_string(), "nightly-202512040200".to_string())],
        "the next oldest is woken, the newest still waits"
    );
    let run = cluster.run(NS, "nightly-202512040200").expect("run");
    r.reconcile_run(&run, at(2, 0, 2))
        .await
        .expect("reconcile run");
    let status = status_of(&cluster, "nightly-202512040200");
    assert_eq!(status.phase, RunPhase::Running);
    assert_eq!(status.message, None, "the waiting note is gone");
    let run = cluster.run(NS, "nightly-202512050200").expect("run");
    r.reconcile_run(&run, at(2, 0, 2))
        .await
        .expect("reconcile run");
    assert_eq!(
        status_of(&cluster, "nightly-202512050200").phase,
        RunPhase::Pending
    );
}

/// A task naming a pod preset the scheduler does not know fails its attempt like a Job the API
/// server refused — retried while retries remain, then Failed with the names it does know and
/// its dependents Skipped — while a task with a known preset runs.
#[tokio::test]
async fn an_unknown_pod_preset_fails_the_attempt_with_the_known_names() {
    let cluster = MemoryCluster::new(at(6, 0, 0));
    cluster.apply_workflow(workflow(
        r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: pools, namespace: data}
spec:
  tasks:
    - {name: known, image: busybox, pod: {preset: etl}}
    - {name: unknown, image: busybox, retries: 1, retryBackoffSeconds: 10, pod: {preset: gpu}}
    - {name: after, image: busybox, dependsOn: [unknown]}
"#,
    ));
    let mut config = SchedulerConfig::default();
    config.task_defaults.pod_presets =
        serde_yaml::from_str("etl: {nodeSelector: {pool: etl}}\nspark: {}").expect("presets");
    let r = reconciler(&cluster, config);
    cluster.create_manual_run(run_of("pools", "pools-1"));
    reconcile_all(&r, at(6, 0, 0)).await.expect("reconcile");
    assert_eq!(cluster.job_names(), ["pools-1-known-1"]);
    let run = cluster.run(NS, "pools-1").expect("run");
    assert_eq!(task_phase(&run, "unknown"), TaskPhase::Pending, "retried");

    reconcile_all(&r, at(6, 0, 10)).await.expect("reconcile");
    reconcile_all(&r, at(6, 0, 11)).await.expect("reconcile");
    let run = cluster.run(NS, "pools-1").expect("run");
    let status = run.status.as_ref().expect("status");
    let unknown = status
        .tasks
        .iter()
        .find(|t| t.name == "unknown")
        .expect("task");
    assert_eq!(unknown.phase, TaskPhase::Failed);
    assert_eq!(
        unknown.message.as_deref(),
        Some("attempt 2: its pod cannot be built: unknown pod preset \"gpu\" (known: etl, spark)")
    );
    assert_eq!(task_phase(&run, "after"), TaskPhase::Skipped);
    assert_eq!(cluster.job_names(), ["pools-1-known-1"], "no Job for it");
    assert!(
        cluster
            .events()
            .iter()
            .any(|e| format!("{e:?}").contains("TaskRejected")),
        "{:?}",
        cluster.events()
    );
}

/// Under a cap of one, a freed slot goes to the waiting run of the workflow with the higher
/// priority, although runs of the other workflow waited longer.
#[tokio::test]
async fn a_freed_slot_goes_to_the_higher_priority_first() {
    let cluster = MemoryCluster::new(at(9, 0, 0));
    for (name, priority) in [("batch", 0), ("urgent", 10)] {
        cluster.apply_workflow(workflow(&format!(
            "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: {name}, namespace: data}}\nspec:\n  priority: {priority}\n  tasks:\n    - {{name: only, image: busybox}}\n"
        )));
    }
    let config = SchedulerConfig {
        max_running_tasks: 1,
        ..SchedulerConfig::default()
    };
    let r = reconciler(&cluster, config);
    let now = at(9, 0, 0);
    for name in ["batch-1", "batch-2", "batch-3"] {
        cluster.create_manual_run(run_of("batch", name));
        let run = cluster.run(NS, name).expect("run");
        r.reconcile_run(&run, now).await.expect("reconcile");
    }
    cluster.create_manual_run(run_of("urgent", "urgent-1"));
    let run = cluster.run(NS, "urgent-1").expect("run");
    r.reconcile_run(&run, now).await.expect("reconcile");
    assert_eq!(cluster.active_jobs().len(), 1, "batch-1 holds the one slot");

    assert!(cluster.succeed_job(NS, "batch-1-only-1"));
    assert_eq!(
        r.runs_to_wake(now, |_| true),
        [(NS.to_string(), "urgent-1".to_string())],
        "the urgent run goes before the older batch runs"
    );
    let run = cluster.run(NS, "urgent-1").expect("run");
    r.reconcile_run(&run, now).await.expect("reconcile");
    assert_eq!(
        cluster.active_jobs(),
        [(NS.to_string(), "urgent-1-only-1".to_string())]
    );
}

/// A task pool of one: its tasks run one at a time across workflows while other tasks use the
/// rest of the cap; the run held back by the pool is woken when the pool's Job ends; a task
/// naming a pool the scheduler does not have fails with the pools it has.
#[tokio::test]
async fn a_task_pool_bounds_its_tasks_across_workflows() {
    let cluster = MemoryCluster::new(at(10, 0, 0));
    for name in ["left", "right"] {
        cluster.apply_workflow(workflow(&format!(
            "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {{name: {name}, namespace: data}}\nspec:\n  tasks:\n    - {{name: spark, image: busybox, pool: spark}}\n    - {{name: plain, image: busybox}}\n"
        )));
    }
    cluster.apply_workflow(workflow(
        "apiVersion: datajump.io/v1alpha1\nkind: Workflow\nmetadata: {name: typo, namespace: data}\nspec:\n  tasks:\n    - {name: only, image: busybox, pool: sparc}\n",
    ));
    let mut config = SchedulerConfig::default();
    config.task_pools.insert("spark".into(), 1);
    let r = reconciler(&cluster, config);
    let now = at(10, 0, 0);
    for (wf, name) in [("left", "left-1"), ("right", "right-1"), ("typo", "typo-1")] {
        cluster.create_manual_run(run_of(wf, name));
    }
    reconcile_all(&r, now).await.expect("reconcile");
    let mut active: Vec<String> = cluster.active_jobs().into_iter().map(|(_, j)| j).collect();
    active.sort();
    assert_eq!(
        active,
        ["left-1-plain-1", "left-1-spark-1", "right-1-plain-1"],
        "one spark task at a time; plain tasks are not held back"
    );
    // The refused attempt is recorded; the next step ends the run.
    reconcile_all(&r, now).await.expect("reconcile");
    let typo = status_of(&cluster, "typo-1");
    assert_eq!(typo.phase, RunPhase::Failed);
    assert_eq!(
        typo.tasks[0].message.as_deref(),
        Some("attempt 1: unknown task pool \"sparc\" (the scheduler's pools: spark=1)")
    );

    assert!(r.runs_to_wake(now, |_| true).is_empty(), "the pool is full");
    assert!(cluster.succeed_job(NS, "left-1-spark-1"));
    assert_eq!(
        r.runs_to_wake(now, |_| true),
        [(NS.to_string(), "right-1".to_string())],
        "the run waiting for the pool is woken when its Job ends"
    );
    let run = cluster.run(NS, "right-1").expect("run");
    r.reconcile_run(&run, now).await.expect("reconcile");
    assert!(
        cluster
            .active_jobs()
            .contains(&(NS.to_string(), "right-1-spark-1".to_string()))
    );
}

/// `spec.shutdown` through the reconcilers. A terminate whose status write is lost (the
/// scheduler stopped right after deleting the running Job) is finished by the next scheduler:
/// it does not create the deleted Job again, marks the task terminated, runs the exit task
/// and ends the run `Terminated`. A backfill run still waiting for its turn, told to stop, ends
/// `Stopped` at once instead of waiting.
#[tokio::test]
async fn a_terminate_survives_a_restart_and_a_waiting_backfill_run_stops_at_once() {
    let cluster = MemoryCluster::new(at(6, 0, 0));
    cluster.apply_workflow(workflow(
        r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: long, namespace: data}
spec:
  tasks:
    - {name: crunch, image: busybox}
    - {name: publish, image: busybox, dependsOn: [crunch]}
  onExit: {name: notify, image: busybox}
"#,
    ));
    let first = reconciler(&cluster, SchedulerConfig::default());
    cluster.create_manual_run(run_of("long", "long-1"));
    for (day, name) in [(1, "long-bf-1"), (2, "long-bf-2")] {
        let mut run = run_of("long", name);
        run.spec.scheduled_time = Some(at(day, 0, 0));
        run.spec.backfill = Some(datajump_api::BackfillRef {
            name: "bf".into(),
            parallelism: 1,
        });
        cluster.create_manual_run(run);
    }
    reconcile_all(&first, at(6, 0, 0)).await.expect("reconcile");
    let mut active: Vec<String> = cluster.active_jobs().into_iter().map(|(_, j)| j).collect();
    active.sort();
    assert_eq!(active, ["long-1-crunch-1", "long-bf-1-crunch-1"]);

    assert!(cluster.request_shutdown(NS, "long-1", datajump_api::Shutdown::Terminate));
    assert!(cluster.request_shutdown(NS, "long-bf-2", datajump_api::Shutdown::Stop));
    cluster.drop_next_status_writes(1);
    let run = cluster.run(NS, "long-1").expect("run");
    first
        .reconcile_run(&run, at(6, 0, 5))
        .await
        .expect("reconcile run");
    assert!(
        !cluster.job_names().contains(&"long-1-crunch-1".to_string()),
        "the running Job was deleted"
    );
    assert_eq!(
        task_phase(&cluster.run(NS, "long-1").expect("run"), "crunch"),
        TaskPhase::Running,
        "the status write was lost"
    );

    // A new scheduler: it sees a running task without its Job under a terminate.
    let second = reconciler(&cluster, SchedulerConfig::default());
    reconcile_all(&second, at(6, 0, 6))
        .await
        .expect("reconcile");
    let status = status_of(&cluster, "long-1");
    let crunch = status
        .tasks
        .iter()
        .find(|t| t.name == "crunch")
        .expect("task");
    assert_eq!(
        (crunch.phase, crunch.reason.as_deref()),
        (TaskPhase::Failed, Some("Terminated"))
    );
    assert!(
        cluster.succeed_job(NS, "long-1-notify-1"),
        "the exit task runs"
    );
    reconcile_all(&second, at(6, 0, 7))
        .await
        .expect("reconcile");
    let status = status_of(&cluster, "long-1");
    assert_eq!(status.phase, RunPhase::Terminated);
    assert_eq!(status.shutdown, Some(datajump_api::Shutdown::Terminate));
    let created: Vec<String> = cluster
        .jobs_created()
        .into_iter()
        .filter(|j| j.starts_with("long-1-"))
        .collect();
    assert_eq!(
        created,
        ["long-1-crunch-1", "long-1-notify-1"],
        "the deleted Job was not created again, publish never started"
    );

    // The backfill run that waited for its turn stopped without one; its exit task runs.
    let waiting = status_of(&cluster, "long-bf-2");
    assert_eq!(
        task_phase(&cluster.run(NS, "long-bf-2").expect("run"), "crunch"),
        TaskPhase::Skipped
    );
    assert!(cluster.succeed_job(NS, "long-bf-2-notify-1"), "{waiting:?}");
    reconcile_all(&second, at(6, 0, 8))
        .await
        .expect("reconcile");
    assert_eq!(status_of(&cluster, "long-bf-2").phase, RunPhase::Stopped);
    assert_eq!(
        status_of(&cluster, "long-bf-1").phase,
        RunPhase::Running,
        "the other backfill run carries on"
    );
}

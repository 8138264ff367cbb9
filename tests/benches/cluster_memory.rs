//! Peak memory of the release scheduler binary on the local control plane (`../shared/k8s`), in
//! the two situations the issue budgets: many Workflows, and many retained Jobs.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo bench -p datajump-tests --bench cluster_memory [-- --workflows 1000 --jobs 100000]
//! ```
//!
//! `--workflows N` (default 1,000) and `--jobs N` (default 100,000) scale the scenarios; 0 skips
//! one. Each scenario has its own namespace with the dev release installed, and the scheduler
//! binary runs as the chart's Deployment would (its env, its ServiceAccount).
//!
//! 1. **Workflows**: N Workflows of the 5-task diamond. 1 % fire every minute (so the scheduler
//!    also creates runs and Jobs while measured); the others fire once a day, 12 to 17 hours
//!    from now, so not during the bench. Measured once every Workflow shows a
//!    `status.nextScheduleTime` (the scheduler's own write: each was reconciled) and the first
//!    minute's runs have succeeded.
//! 2. **Retained Jobs**: N finished Jobs, 100 tasks per run, 10 runs per Workflow (within its
//!    `successfulRunsHistoryLimit`, so nothing is pruned). Runs are Succeeded through the status
//!    subresource; Jobs are what `build_job` creates, plus `spec.managedBy:
//!    bench.datajump.io/none` (so the Job controller leaves them alone) and a Complete status
//!    written through the status subresource. The scheduler starts after they all exist, so its
//!    first list holds them all.
//!
//! Prints, per scenario: the create rate, the scheduler's time from start to ready (caches
//! synced, leading), its peak RSS (VmHWM) against the budget, the object counts before and
//! after (nothing garbage-collected or pruned), and the RSS of etcd, the API server and the
//! controller-manager.

use std::fmt::Debug;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use datajump_api::names::job_name;
use datajump_api::{RunPhase, TaskSpec, Workflow, WorkflowRun, WorkflowRunStatus};
use datajump_scheduler::config::Cli;
use datajump_scheduler::jobs::{
    LABEL_MANAGED_BY, MANAGER, TaskDefaults, build_job, build_run, from_k8s_time,
};
use datajump_tests::cluster::{self, Background, Cluster};
use datajump_tests::load::{diamond_workflow, peak_rss_mib, proc_status_mib};
use datajump_tests::plugin::install_dev;
use datajump_tests::scheduler::{counters, free_port, scheduler_deployment, start_scheduler};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

const WORKFLOWS_NS: &str = "bench-mem-workflows";
const JOBS_NS: &str = "bench-mem-jobs";
/// The issue's budgets, MiB.
const WORKFLOWS_BUDGET: f64 = 64.0;
const JOBS_BUDGET: f64 = 128.0;
/// Creates in flight at once: enough to keep the API server busy on two cores.
const CREATES_IN_FLIGHT: usize = 64;
/// One Workflow in this many fires every minute.
const MINUTELY_ONE_IN: usize = 100;
/// Retained-Jobs shape: tasks per run (one Job each) and finished runs kept per Workflow.
const TASKS_PER_RUN: usize = 100;
const RUNS_PER_WORKFLOW: usize = 10;
/// Who "manages" the retained Jobs: nobody, so the Job controller never touches them.
const NO_CONTROLLER: &str = "bench.datajump.io/none";
/// How long the caches get after the scheduler reports ready, before RSS is read.
const SETTLE: Duration = Duration::from_secs(10);

/// Selects what the scheduler's Job and pod watches select.
fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGER}")
}

/// The scenarios' sizes (0 skips one).
struct Options {
    workflows: usize,
    jobs: usize,
}

impl Options {
    /// `--workflows N` and `--jobs N`; anything else (`cargo bench` passes `--bench`) is ignored.
    fn from_args() -> anyhow::Result<Self> {
        let mut options = Self {
            workflows: 1_000,
            jobs: 100_000,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                "--workflows" => &mut options.workflows,
                "--jobs" => &mut options.jobs,
                _ => continue,
            };
            let value = args
                .next()
                .with_context(|| format!("{arg} needs a number"))?;
            *slot = value
                .replace(['_', ','], "")
                .parse()
                .with_context(|| format!("{arg} {value}: not a number"))?;
        }
        Ok(options)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::from_args()?;
    let started = Instant::now();
    let cluster = cluster::shared().context("the local control plane (../shared/k8s)")?;
    let runtime = tokio::runtime::Runtime::new()?;
    print_machine();
    if options.workflows > 0 {
        let peak = runtime.block_on(workflows_scenario(cluster, options.workflows))?;
        print_budget(
            &format!("{} workflows", options.workflows),
            peak,
            WORKFLOWS_BUDGET,
        );
        print_control_plane(cluster);
    }
    if options.jobs > 0 {
        let peak = runtime.block_on(retained_jobs_scenario(cluster, options.jobs))?;
        print_budget(
            &format!("{} retained Jobs", options.jobs),
            peak,
            JOBS_BUDGET,
        );
        print_control_plane(cluster);
    }
    println!("bench took {:.0?}", started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: many Workflows.

async fn workflows_scenario(cluster: &Cluster, n: usize) -> anyhow::Result<f64> {
    println!(
        "== {n} Workflows (5-task diamond), 1 in {MINUTELY_ONE_IN} every minute, the rest daily"
    );
    install_dev(cluster, WORKFLOWS_NS);
    let client = cluster.client().await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), WORKFLOWS_NS);
    let hour = utc_hour();
    let workflows: Vec<Workflow> = (0..n).map(|i| scheduled_workflow(i, hour)).collect();
    datajump_api::validate::validate_workflow(&workflows[0])
        .map_err(|e| anyhow::anyhow!("the bench's Workflow is invalid: {e}"))?;
    let start = Instant::now();
    create_all(&api, workflows).await?;
    print_rate("Workflows created", n, start.elapsed());

    let (port, mut scheduler, ready) = start_until_ready(cluster, WORKFLOWS_NS).await?;
    println!("scheduler ready (caches synced, leading) {ready:.1?} after start");
    let start = Instant::now();
    let reconciled = wait_for(
        &mut scheduler,
        "every Workflow reconciled",
        Duration::from_secs(300),
        || {
            let api = api.clone();
            async move {
                let scheduled = count_where(&api, |w: &Workflow| {
                    w.status
                        .as_ref()
                        .is_some_and(|s| s.next_schedule_time.is_some())
                });
                let scheduled = scheduled.await?;
                Ok((scheduled == n).then_some(scheduled))
            }
        },
    )
    .await?;
    println!(
        "{reconciled} of {n} Workflows show status.nextScheduleTime (written by the scheduler) {:.1?} after ready",
        start.elapsed()
    );
    // The minute's firings: the first tick comes within a minute, a diamond run takes ~10 s.
    let minutely = n.div_ceil(MINUTELY_ONE_IN);
    let runs: Api<WorkflowRun> = Api::namespaced(client.clone(), WORKFLOWS_NS);
    let succeeded = wait_for(
        &mut scheduler,
        "the first minute's runs to succeed",
        Duration::from_secs(180),
        || {
            let runs = runs.clone();
            async move {
                let done = count_where(&runs, |r: &WorkflowRun| {
                    r.status
                        .as_ref()
                        .is_some_and(|s| s.phase == RunPhase::Succeeded)
                });
                let done = done.await?;
                Ok((done >= minutely).then_some(done))
            }
        },
    )
    .await?;
    println!("{succeeded} scheduled runs Succeeded ({minutely} Workflows fire every minute)");
    tokio::time::sleep(SETTLE).await;
    print_scheduler_counters(port);
    finish(scheduler)
}

/// The diamond Workflow `wf-NNNN`: every [`MINUTELY_ONE_IN`]th fires every minute, the others
/// daily at a minute 12 to 17 hours after `hour` (UTC), out of reach of the bench.
fn scheduled_workflow(i: usize, hour: usize) -> Workflow {
    let mut wf: Workflow =
        serde_yaml::from_str(&diamond_workflow(&format!("wf-{i:04}"), WORKFLOWS_NS))
            .expect("the diamond Workflow parses");
    wf.spec.schedule = Some(if i.is_multiple_of(MINUTELY_ONE_IN) {
        "* * * * *".to_string()
    } else {
        format!("{} {} * * *", i % 60, (hour + 12 + i % 6) % 24)
    });
    wf
}

fn utc_hour() -> usize {
    (Timestamp::now().as_second() / 3600 % 24) as usize
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: many retained Jobs.

async fn retained_jobs_scenario(cluster: &Cluster, n: usize) -> anyhow::Result<f64> {
    let run_count = n.div_ceil(TASKS_PER_RUN);
    let workflow_count = run_count.div_ceil(RUNS_PER_WORKFLOW);
    println!(
        "== {n} retained Jobs: {workflow_count} Workflows x {RUNS_PER_WORKFLOW} Succeeded runs x {TASKS_PER_RUN} Complete Jobs"
    );
    install_dev(cluster, JOBS_NS);
    let client = cluster.client().await;
    let defaults = chart_task_defaults(cluster, JOBS_NS)?;

    let workflows: Api<Workflow> = Api::namespaced(client.clone(), JOBS_NS);
    let created = create_all(
        &workflows,
        (0..workflow_count).map(fanout_workflow).collect(),
    )
    .await?;
    let runs_api: Api<WorkflowRun> = Api::namespaced(client.clone(), JOBS_NS);
    let start = Instant::now();
    let runs = create_finished_runs(&runs_api, &created, run_count).await?;
    print_rate("Succeeded runs created", runs.len(), start.elapsed());

    let jobs_api: Api<Job> = Api::namespaced(client.clone(), JOBS_NS);
    let start = Instant::now();
    let made = create_finished_jobs(&jobs_api, &runs, &created, n, &defaults).await?;
    print_rate(
        "Complete Jobs created (create + status write each)",
        made,
        start.elapsed(),
    );

    describe_job(&jobs_api, &job_name(&runs[0].name_any(), "extract", 1)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), JOBS_NS);
    let before = Counts::read(&jobs_api, &runs_api, &pods).await?;
    println!("before the scheduler: {before}");

    let (port, mut scheduler, ready) = start_until_ready(cluster, JOBS_NS).await?;
    println!("scheduler ready (caches synced, leading) {ready:.1?} after start");
    tokio::time::sleep(SETTLE).await;
    if !scheduler.running() {
        bail!("the scheduler exited:\n{}", scheduler.output());
    }
    let after = Counts::read(&jobs_api, &runs_api, &pods).await?;
    println!("after: {after}");
    if after.jobs != before.jobs || after.runs != before.runs {
        println!("WARNING: Jobs or runs went away during the bench");
    }
    println!(
        "runs whose status the scheduler rewrote: {} of {}",
        rewritten_by_scheduler(&runs_api).await?,
        runs.len()
    );
    print_scheduler_counters(port);
    report_relists(&scheduler);
    finish(scheduler)
}

/// `etl-NNN`: one `extract`, 98 `part-NN` after it, one `load` after all of them; no schedule
/// (started by hand or by another system), keeping [`RUNS_PER_WORKFLOW`] succeeded runs.
fn fanout_workflow(i: usize) -> Workflow {
    let parts: Vec<String> = (1..TASKS_PER_RUN - 1)
        .map(|p| format!("part-{p:02}"))
        .collect();
    let mut tasks = vec![json!({"name": "extract", "image": "busybox"})];
    tasks.extend(
        parts
            .iter()
            .map(|p| json!({"name": p, "image": "busybox", "dependsOn": ["extract"]})),
    );
    tasks.push(json!({"name": "load", "image": "busybox", "dependsOn": parts}));
    serde_json::from_value(json!({
        "apiVersion": "datajump.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": format!("etl-{i:03}"), "namespace": JOBS_NS},
        "spec": {"successfulRunsHistoryLimit": RUNS_PER_WORKFLOW, "tasks": tasks},
    }))
    .expect("a Workflow")
}

/// The task resources the chart gives the scheduler, read from its Deployment through the
/// scheduler's own flag parser, so the Jobs are the ones it would have created.
fn chart_task_defaults(cluster: &Cluster, ns: &str) -> anyhow::Result<TaskDefaults> {
    let deployment = scheduler_deployment(cluster, ns).map_err(anyhow::Error::msg)?;
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .context("the scheduler container has env")?;
    let flags = env.iter().filter_map(|var| {
        let name = var["name"].as_str()?.strip_prefix("DATAJUMP_TASK_")?;
        let value = var["value"].as_str()?;
        Some(format!(
            "--task-{}={value}",
            name.to_lowercase().replace('_', "-")
        ))
    });
    let cli = Cli::try_parse_from(std::iter::once("datajump-scheduler".to_string()).chain(flags))?;
    Ok(cli.scheduler_config().task_defaults)
}

/// Seconds after a run's tick at which each level of the fan-out starts and ends.
const LEVELS: [(i64, i64); 3] = [(2, 62), (63, 183), (184, 244)];

fn level_of(task: usize) -> usize {
    match task {
        0 => 0,
        t if t == TASKS_PER_RUN - 1 => 2,
        _ => 1,
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

/// The hourly tick `k` hours before the last full hour.
fn tick(k: usize) -> Timestamp {
    let hour = Timestamp::now().as_second() / 3600 * 3600;
    Timestamp::from_second(hour - 3600 * (k as i64 + 1)).expect("a valid time")
}

/// `count` runs, [`RUNS_PER_WORKFLOW`] per Workflow on hourly ticks, each then marked Succeeded
/// through the status subresource the way the scheduler finishes a run.
async fn create_finished_runs(
    api: &Api<WorkflowRun>,
    workflows: &[Workflow],
    count: usize,
) -> anyhow::Result<Vec<WorkflowRun>> {
    let runs: Vec<WorkflowRun> = (0..count)
        .map(|r| {
            let (wf, k) = (&workflows[r / RUNS_PER_WORKFLOW], r % RUNS_PER_WORKFLOW);
            build_run(wf, from_k8s_time(&Time(tick(k))).expect("a valid time"))
        })
        .collect();
    let runs = create_all(api, runs).await?;
    futures::stream::iter(runs.iter().enumerate())
        .map(|(r, run)| {
            let wf = &workflows[r / RUNS_PER_WORKFLOW];
            let status = succeeded_status(run, wf, tick(r % RUNS_PER_WORKFLOW));
            async move {
                let body = json!({"status": status});
                api.patch_status(
                    &run.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&body),
                )
                .await
                .with_context(|| format!("marking run {} Succeeded", run.name_any()))
            }
        })
        .buffer_unordered(CREATES_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(runs)
}

/// The status the scheduler leaves on a run whose tasks all succeeded at the first attempt
/// (typed, so it is known to read back into the scheduler's own types).
fn succeeded_status(run: &WorkflowRun, wf: &Workflow, tick: Timestamp) -> WorkflowRunStatus {
    let at = |s: i64| rfc3339(tick + SignedDuration::from_secs(s));
    let tasks: Vec<_> = wf
        .spec
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (start, end) = LEVELS[level_of(i)];
            json!({
                "name": t.name, "phase": "Succeeded", "attempts": 1,
                "jobName": job_name(&run.name_any(), &t.name, 1),
                "startTime": at(start), "completionTime": at(end),
            })
        })
        .collect();
    let end = at(LEVELS[2].1 + 1);
    let message = format!("all {} tasks succeeded", tasks.len());
    serde_json::from_value(json!({
        "phase": "Succeeded",
        "startTime": at(0),
        "completionTime": end,
        "succeededTasks": tasks.len(),
        "totalTasks": tasks.len(),
        "tasks": tasks,
        "message": message,
        "conditions": [{"type": "Complete", "status": "True", "reason": "Completed",
                        "message": message, "lastTransitionTime": end}],
        "workflowSpec": wf.spec,
    }))
    .expect("a WorkflowRunStatus")
}

/// One Job per task of every run (the first `n`), created as `build_job` makes them and then
/// completed through the status subresource. Returns how many were made.
async fn create_finished_jobs(
    api: &Api<Job>,
    runs: &[WorkflowRun],
    workflows: &[Workflow],
    n: usize,
    defaults: &TaskDefaults,
) -> anyhow::Result<usize> {
    let made = AtomicUsize::new(0);
    let started = Instant::now();
    let work = runs.iter().enumerate().flat_map(|(r, run)| {
        let wf = &workflows[r / RUNS_PER_WORKFLOW];
        wf.spec
            .tasks
            .iter()
            .enumerate()
            .map(move |(i, task)| (run, task, tick(r % RUNS_PER_WORKFLOW), i))
    });
    futures::stream::iter(work.take(n))
        .map(Ok)
        .try_for_each_concurrent(CREATES_IN_FLIGHT, |(run, task, tick, i)| {
            let made = &made;
            async move {
                create_finished_job(api, run, task, tick, level_of(i), defaults).await?;
                let done = made.fetch_add(1, Ordering::Relaxed) + 1;
                if done.is_multiple_of(10_000) {
                    eprintln!(
                        "  {done} Jobs ({:.0} Jobs/s)",
                        done as f64 / started.elapsed().as_secs_f64()
                    );
                }
                anyhow::Ok(())
            }
        })
        .await?;
    Ok(made.into_inner())
}

async fn create_finished_job(
    api: &Api<Job>,
    run: &WorkflowRun,
    task: &TaskSpec,
    tick: Timestamp,
    level: usize,
    defaults: &TaskDefaults,
) -> anyhow::Result<()> {
    let name = job_name(&run.name_any(), &task.name, 1);
    let mut job = build_job(run, task, None, 1, &name, defaults, &[])?;
    if let Some(spec) = job.spec.as_mut() {
        spec.managed_by = Some(NO_CONTROLLER.into());
    }
    api.create(&PostParams::default(), &job)
        .await
        .with_context(|| format!("creating Job {name}"))?;
    let (start, end) = LEVELS[level];
    let body = json!({"status": complete_job_status(
        tick + SignedDuration::from_secs(start),
        tick + SignedDuration::from_secs(end),
    )});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .with_context(|| format!("completing Job {name}"))?;
    Ok(())
}

/// What the Job controller writes when a one-pod Job's pod succeeded. The API server checks it:
/// a Complete condition needs SuccessCriteriaMet first, a start and a completion time, and the
/// succeeded count.
fn complete_job_status(start: Timestamp, end: Timestamp) -> serde_json::Value {
    let condition = |type_: &str| {
        json!({
            "type": type_, "status": "True", "reason": "CompletionsReached",
            "message": "Reached expected number of succeeded pods",
            "lastProbeTime": rfc3339(end), "lastTransitionTime": rfc3339(end),
        })
    };
    json!({
        "startTime": rfc3339(start),
        "completionTime": rfc3339(end),
        "succeeded": 1,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
    })
}

/// Prints what one retained Job looks like as the API server stored it (its manager, its
/// conditions), so the output says which kind of Jobs were measured.
async fn describe_job(api: &Api<Job>, name: &str) -> anyhow::Result<()> {
    let job = api.get(name).await?;
    let managed_by = job.spec.as_ref().and_then(|s| s.managed_by.as_deref());
    let status = job.status.unwrap_or_default();
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect();
    if !conditions.iter().any(|c| c == "Complete=True") {
        bail!("Job {name} is not Complete: {conditions:?}");
    }
    println!(
        "Jobs are finished Jobs: e.g. {name}: spec.managedBy {managed_by:?}, succeeded {:?}, conditions {}",
        status.succeeded,
        conditions.join(", ")
    );
    Ok(())
}

/// The objects of the retained-Jobs namespace the scheduler watches.
struct Counts {
    jobs: usize,
    runs: usize,
    pods: usize,
}

impl Counts {
    async fn read(
        jobs: &Api<Job>,
        runs: &Api<WorkflowRun>,
        pods: &Api<Pod>,
    ) -> anyhow::Result<Self> {
        let selector = managed_selector();
        Ok(Self {
            jobs: count(jobs, &selector).await?,
            runs: count(runs, "").await?,
            pods: count(pods, &selector).await?,
        })
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} scheduler Jobs, {} runs, {} task pods",
            self.jobs, self.runs, self.pods
        )
    }
}

/// Runs whose status carries a write of the scheduler's field manager.
async fn rewritten_by_scheduler(api: &Api<WorkflowRun>) -> anyhow::Result<usize> {
    Ok(list_all(api)
        .await?
        .iter()
        .filter(|r| {
            r.managed_fields().iter().any(|m| {
                m.manager.as_deref() == Some(datajump_scheduler::controller::FIELD_MANAGER)
                    && m.subresource.as_deref() == Some("status")
            })
        })
        .count())
}

/// Watch trouble in the scheduler's log (an expired list continues as a relist from scratch).
fn report_relists(scheduler: &Background) {
    let log = scheduler.output();
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("watcher") || l.contains("410") || l.contains("Expired"))
        .collect();
    match trouble.as_slice() {
        [] => println!("scheduler log: no watch errors or relists"),
        lines => {
            println!("scheduler log: {} watch error lines, e.g.:", lines.len());
            for line in lines.iter().take(3) {
                println!("  {line}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared steps.

/// Starts the scheduler for `ns` and waits until it is ready (all caches listed) and leads;
/// its metrics port, the process, and the time from start to ready.
async fn start_until_ready(
    cluster: &Cluster,
    ns: &str,
) -> anyhow::Result<(u16, Background, Duration)> {
    let port = free_port();
    let mut scheduler = start_scheduler(cluster, ns, port, &[("RUST_LOG", "info")]);
    let start = Instant::now();
    wait_for(
        &mut scheduler,
        "the scheduler to be ready and lead",
        Duration::from_secs(600),
        || async move {
            let ready = Command::new("curl")
                .args(["-fsS", &format!("http://127.0.0.1:{port}/readyz")])
                .output()
                .is_ok_and(|o| o.status.success());
            Ok((ready && counters(port).get("scheduler_leader") == Some(&1.0)).then_some(()))
        },
    )
    .await?;
    Ok((port, scheduler, start.elapsed()))
}

/// Polls `check` every 200 ms until it gives a value; fails after `timeout`, or at once with
/// its log if the scheduler exits.
async fn wait_for<T, F, Fut>(
    scheduler: &mut Background,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if !scheduler.running() {
            bail!(
                "the scheduler exited while waiting for {what}:\n{}",
                scheduler.output()
            );
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The scheduler's peak RSS, read while it still runs; it is stopped after.
fn finish(mut scheduler: Background) -> anyhow::Result<f64> {
    if !scheduler.running() {
        bail!("the scheduler exited:\n{}", scheduler.output());
    }
    let peak = peak_rss_mib(scheduler.id()).context("the scheduler's VmHWM from /proc")?;
    let now = proc_status_mib(scheduler.id(), "VmRSS").unwrap_or(f64::NAN);
    println!("scheduler RSS now {now:.1} MiB");
    Ok(peak)
}

/// Creates `objects` with [`CREATES_IN_FLIGHT`] requests in flight; what the API server returned.
async fn create_all<K>(api: &Api<K>, objects: Vec<K>) -> anyhow::Result<Vec<K>>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    futures::stream::iter(objects)
        .map(|object| async move {
            api.create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("creating {}", object.name_any()))
        })
        .buffer_unordered(CREATES_IN_FLIGHT)
        .try_collect()
        .await
}

/// Every object of `api`'s namespace, paged.
/// How many objects `api` lists that satisfy `pred`.
async fn count_where<K>(api: &Api<K>, pred: impl Fn(&K) -> bool) -> anyhow::Result<usize>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    Ok(list_all(api).await?.iter().filter(|k| pred(k)).count())
}

async fn list_all<K>(api: &Api<K>) -> anyhow::Result<Vec<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut params = ListParams::default().limit(500);
    let mut all = Vec::new();
    loop {
        let page = api.list(&params).await?;
        all.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(all),
        }
    }
}

/// How many objects match `selector` (metadata only, so 100k Jobs are cheap to count).
async fn count<K>(api: &Api<K>, selector: &str) -> anyhow::Result<usize>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut params = ListParams::default().labels(selector).limit(5_000);
    let mut n = 0;
    loop {
        let page = api.list_metadata(&params).await?;
        n += page.items.len();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(n),
        }
    }
}

fn print_rate(what: &str, n: usize, elapsed: Duration) {
    println!(
        "{n} {what} in {elapsed:.1?}: {:.0}/s",
        n as f64 / elapsed.as_secs_f64()
    );
}

fn print_budget(scenario: &str, peak: f64, budget: f64) {
    let verdict = if peak <= budget { "within" } else { "OVER" };
    println!(
        "scheduler peak RSS with {scenario}: {peak:.1} MiB ({verdict} the {budget:.0} MiB budget)"
    );
}

fn print_scheduler_counters(port: u16) {
    let c = counters(port);
    let get = |name: &str| c.get(name).copied().unwrap_or(0.0);
    println!(
        "scheduler counters: task_total {}, workflow_runs_total {}, reconcile errors {}, missed ticks {}",
        get("task_total"),
        get("workflow_runs_total"),
        get("scheduler_reconcile_errors_total"),
        get("scheduler_missed_ticks_total"),
    );
}

/// RSS now and at peak of etcd, the API server and the controller-manager (pids from the
/// cluster's `run/` directory).
fn print_control_plane(cluster: &Cluster) {
    for name in ["etcd", "apiserver", "controller-manager"] {
        let pid = std::fs::read_to_string(cluster.dir.join("run").join(format!("{name}.pid")))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        match pid.and_then(|pid| Some((proc_status_mib(pid, "VmRSS")?, peak_rss_mib(pid)?))) {
            Some((now, peak)) => println!("{name}: RSS {now:.0} MiB (peak {peak:.0} MiB)"),
            None => println!("{name}: RSS not readable"),
        }
    }
}

fn print_machine() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    println!(
        "machine: {} cores, {:.0} MiB memory, {:.0} MiB available",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        field("MemTotal:"),
        field("MemAvailable:")
    );
}

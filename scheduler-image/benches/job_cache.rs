//! The Job cache at scale: 100,000 retained Jobs (20,000 runs of 5 tasks) fed through the
//! index as the watch delivers them — whole Job objects, as the API server sends them, dropped
//! once observed — then the two reads every run reconcile makes: the run's Jobs and the active
//! count. Budgets: max RSS (VmHWM) ≤ 128 MiB for the cache, and a reconcile's reads costing
//! O(tasks of the run), not O(all Jobs).

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use datajump_api::{LABEL_ATTEMPT, LABEL_RUN, LABEL_TASK, LABEL_WORKFLOW};
use datajump_scheduler::job_index::JobIndex;
use kube::runtime::watcher;

const RUNS: usize = 20_000;
const TASKS: [&str; 5] = ["extract", "clean", "enrich", "load", "report"];
const BUDGET_MIB: f64 = 128.0;

fn max_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A finished task Job as the API server returns it: labels, owner, pod template, status.
fn job(run: usize, task: &str, active: bool) -> Job {
    let run_name = format!("wf-{}-2026060{}{:04}", run % 1000, run % 9, run % 10_000);
    let name = format!("{run_name}-{task}-1");
    let time = Time(timestamp(run));
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(format!("ns-{}", run % 10)),
            uid: Some(format!("{run:08x}-job-{task}")),
            resource_version: Some(format!("{}", 100_000 + run)),
            creation_timestamp: Some(time.clone()),
            labels: Some(BTreeMap::from([
                (LABEL_WORKFLOW.to_string(), format!("wf-{}", run % 1000)),
                (LABEL_RUN.to_string(), run_name.clone()),
                (LABEL_TASK.to_string(), task.to_string()),
                (LABEL_ATTEMPT.to_string(), "1".to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "datajump-scheduler".to_string(),
                ),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: "datajump.io/v1alpha1".into(),
                kind: "WorkflowRun".into(),
                name: run_name,
                uid: format!("{run:08x}-0000-4000-8000-000000000000"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "task".into(),
                        image: Some("registry.example.com/datajump/etl:1.4.2".into()),
                        command: Some(vec!["/bin/etl".into(), task.into()]),
                        resources: Some(ResourceRequirements {
                            limits: Some(BTreeMap::from([
                                ("cpu".to_string(), Quantity("1".into())),
                                ("memory".to_string(), Quantity("512Mi".into())),
                            ])),
                            ..ResourceRequirements::default()
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: Some(if active {
            JobStatus {
                active: Some(1),
                start_time: Some(time),
                ..JobStatus::default()
            }
        } else {
            JobStatus {
                succeeded: Some(1),
                start_time: Some(time.clone()),
                completion_time: Some(time.clone()),
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    last_transition_time: Some(time),
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            }
        }),
    }
}

fn timestamp(run: usize) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(1_780_000_000 + run as i64).unwrap_or_default()
}

fn main() {
    let baseline = max_rss_mib();
    let index = JobIndex::default();
    let began = Instant::now();
    index.observe(&watcher::Event::Init);
    for run in 0..RUNS {
        for (t, task) in TASKS.iter().enumerate() {
            // One run in a hundred still has its last task running.
            let active = run % 100 == 0 && t == TASKS.len() - 1;
            index.observe(&watcher::Event::InitApply(job(run, task, active)));
        }
    }
    index.observe(&watcher::Event::InitDone);
    let filled = began.elapsed();
    let peak = max_rss_mib();
    assert_eq!(index.len(), RUNS * TASKS.len());
    assert_eq!(index.active(), RUNS / 100);

    // What one run reconcile reads, for runs spread over the whole cache.
    let rounds = 100_000;
    let began = Instant::now();
    let mut seen = 0;
    for i in 0..rounds {
        let run = (i * 7919) % RUNS;
        let uid = format!("{run:08x}-0000-4000-8000-000000000000");
        seen += index.jobs_of(&uid).len();
        seen += index.active() & 1;
    }
    let per_reconcile = began.elapsed() / rounds as u32;
    assert!(seen >= rounds * TASKS.len());

    let jobs = RUNS * TASKS.len();
    let cache_mib = peak - baseline;
    println!(
        "jobs cached:                 {jobs} ({RUNS} runs x {})",
        TASKS.len()
    );
    println!("filled from watch events in: {:.2} s", filled.as_secs_f64());
    println!("max RSS before:              {baseline:.1} MiB");
    println!("max RSS (VmHWM):             {peak:.1} MiB (budget {BUDGET_MIB} MiB)");
    println!(
        "per cached Job:              {:.0} bytes",
        cache_mib * 1024.0 * 1024.0 / jobs as f64
    );
    println!("reads of one run reconcile:  {per_reconcile:?} (jobs of the run + active count)");
    assert!(
        peak < BUDGET_MIB,
        "max RSS {peak:.1} MiB exceeds {BUDGET_MIB} MiB"
    );
}

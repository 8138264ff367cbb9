//! Speed budgets: validate + plan a 10,000-task DAG with trigger rules (< 20 ms) and compute the next fire time
//! of 10,000 workflows (< 10 ms).

use std::hint::black_box;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use datajump_api::schedule::Schedule;
use datajump_api::validate::{Limits, validate_spec};
use datajump_api::{TaskPhase, TaskStatus, WorkflowRunStatus, WorkflowSpec};
use datajump_scheduler::plan::{JobState, ObservedJob, RunInput, plan_run};

const TASKS: usize = 10_000;
const WIDTH: usize = 100;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// 100 layers of 100 tasks; each task depends on two tasks of the previous layer, a third of
/// them by a trigger rule other than the default; and an onExit task.
fn layered_spec() -> WorkflowSpec {
    let tasks: Vec<serde_json::Value> = (0..TASKS)
        .map(|i| {
            let (layer, pos) = (i / WIDTH, i % WIDTH);
            let deps: Vec<String> = if layer == 0 {
                Vec::new()
            } else {
                let prev = (layer - 1) * WIDTH;
                vec![
                    format!("t{}", prev + pos),
                    format!("t{}", prev + (pos + 1) % WIDTH),
                ]
            };
            // A third of the tasks past the first layer decide by another trigger rule.
            let rule = match (layer, i % 3) {
                (0, _) | (_, 0) => "AllSucceeded",
                (_, 1) => "AllDone",
                _ => "NoneFailed",
            };
            serde_json::json!({
                "name": format!("t{i}"), "image": "busybox", "dependsOn": deps, "triggerRule": rule,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "tasks": tasks,
        "failureStrategy": "Continue",
        "onExit": {"name": "notify", "image": "busybox"},
    }))
    .expect("valid spec")
}

fn bench_dag(c: &mut Criterion) {
    let spec = std::sync::Arc::new(layered_spec());
    let limits = Limits {
        max_tasks: TASKS,
        ..Limits::default()
    };
    // Mid-run: the first half succeeded, the next layer is running.
    let status = WorkflowRunStatus {
        tasks: (0..TASKS)
            .map(|i| TaskStatus {
                name: format!("t{i}"),
                phase: if i < TASKS / 2 {
                    TaskPhase::Succeeded
                } else {
                    TaskPhase::Pending
                },
                attempts: u32::from(i < TASKS / 2 + WIDTH),
                ..TaskStatus::default()
            })
            .collect(),
        ..WorkflowRunStatus::default()
    };
    let jobs: Vec<ObservedJob> = (TASKS / 2..TASKS / 2 + WIDTH)
        .map(|i| ObservedJob {
            task: format!("t{i}"),
            attempt: 1,
            name: format!("run-t{i}-1"),
            state: if i % 2 == 0 {
                JobState::Succeeded
            } else {
                JobState::Active
            },
            started: Some(now()),
            finished: None,
            pod: None,
            finished_pods: false,
            deleting: false,
        })
        .collect();
    c.bench_function("validate_and_plan_10000_task_dag", |b| {
        b.iter(|| {
            let dag = validate_spec(black_box(&spec), &limits).expect("valid DAG");
            let plan = plan_run(&RunInput {
                now: now(),
                run_name: "run",
                spec: &spec,
                dag: &dag,
                status: &status,
                jobs: &jobs,
                free_slots: 1000,
                pool_free: &std::collections::HashMap::new(),
                task_pools: &std::collections::BTreeMap::new(),
                pending_timeout_seconds: 600,
                finished_pod_retention_seconds: 3600,
                log_archiving: datajump_scheduler::plan::LogArchiving::Off,
                shutdown: None,
            });
            black_box(plan.actions.len())
        })
    });
}

fn bench_next_fire(c: &mut Criterion) {
    let exprs = [
        "*/5 * * * *",
        "0 3 * * *",
        "@hourly",
        "30 2 * * 1-5",
        "15 */6 1,15 * *",
        "@daily",
    ];
    let zones = [
        None,
        Some("Europe/Berlin"),
        Some("Asia/Shanghai"),
        Some("America/New_York"),
    ];
    let schedules: Vec<Schedule> = (0..10_000)
        .map(|i| {
            Schedule::parse(exprs[i % exprs.len()], zones[i % zones.len()]).expect("valid schedule")
        })
        .collect();
    c.bench_function("next_fire_10000_workflows", |b| {
        b.iter(|| {
            let at = now();
            schedules
                .iter()
                .filter_map(|s| s.next_after(black_box(at)))
                .count()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_dag, bench_next_fire
}
criterion_main!(benches);

//! Memory budget: the scheduler managing 1,000 scheduled workflows, simulated end to end over
//! the in-memory cluster for six hours of ticks, must peak under 64 MiB resident (max RSS read
//! from the kernel's `VmHWM`, which is what `getrusage` reports as `ru_maxrss`).

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use datajump_api::Workflow;
use datajump_scheduler::config::SchedulerConfig;
use datajump_scheduler::metrics::Metrics;
use datajump_scheduler::reconcile::Reconciler;
use datajump_scheduler::sim::{MemoryCluster, reconcile_all};

const WORKFLOWS: usize = 1_000;
const BUDGET_MIB: f64 = 64.0;

fn max_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn workflow(i: usize) -> Workflow {
    let yaml = format!(
        r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {{name: wf-{i}, namespace: ns-{ns}}}
spec:
  schedule: "{minute} * * * *"
  timezone: Europe/Berlin
  concurrencyPolicy: Forbid
  tasks:
    - {{name: extract, image: "registry.example.com/etl:1.0", command: [extract]}}
    - {{name: clean, image: "registry.example.com/etl:1.0", dependsOn: [extract]}}
    - {{name: enrich, image: "registry.example.com/etl:1.0", dependsOn: [extract]}}
    - {{name: load, image: "registry.example.com/etl:1.0", dependsOn: [clean, enrich]}}
"#,
        ns = i % 10,
        minute = i % 60,
    );
    serde_yaml::from_str(&yaml).expect("valid workflow")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let start = Utc
        .with_ymd_and_hms(2026, 6, 1, 0, 0, 30)
        .single()
        .expect("valid time");
    let cluster = MemoryCluster::new(start - Duration::minutes(1));
    for i in 0..WORKFLOWS {
        cluster.apply_workflow(workflow(i));
    }
    let reconciler = Reconciler::new(
        cluster.clone(),
        SchedulerConfig {
            max_running_tasks: 500,
            ..SchedulerConfig::default()
        },
        Arc::new(Metrics::new()),
    );
    let baseline = max_rss_mib();
    let began = std::time::Instant::now();
    let mut now = start;
    for _ in 0..360 {
        runtime
            .block_on(reconcile_all(&reconciler, now))
            .expect("reconcile");
        // Every Job that ran for a minute finishes; one in 50 fails.
        for (n, (ns, name)) in cluster.active_jobs().into_iter().enumerate() {
            if n % 50 == 49 {
                cluster.fail_job(&ns, &name, "BackoffLimitExceeded");
            } else {
                cluster.succeed_job(&ns, &name);
            }
        }
        now += Duration::minutes(1);
    }
    let peak = max_rss_mib();
    let runs = cluster.runs().len();
    let created = cluster.jobs_created().len();
    println!("workflows managed:        {WORKFLOWS}");
    println!(
        "simulated:                6 h, 360 reconcile rounds in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    println!("runs kept (history):      {runs}");
    println!("jobs created:             {created}");
    println!("max RSS before workflows: {baseline:.1} MiB");
    println!("max RSS (VmHWM):          {peak:.1} MiB (budget {BUDGET_MIB} MiB)");
    assert!(
        created >= WORKFLOWS * 4 * 5,
        "the simulation ran too few tasks: {created}"
    );
    assert!(
        peak < BUDGET_MIB,
        "max RSS {peak:.1} MiB exceeds {BUDGET_MIB} MiB"
    );
}

//! Load on a real API server: 1,000 runs of a 5-task diamond created at once under a global cap
//! of 50 running tasks. Every run succeeds and the cap is never exceeded (every Job watch event
//! is a sample). The scheduler runs with its resync period and pending timeout far beyond the
//! test's bound, so no reconcile happens but those events trigger: a run that missed an event
//! would never finish, and the test would fail at its bound. The bound only catches that hang;
//! how fast the load goes depends on the machine (the figure is printed).
//!
//! The fake kubelet finishes each task's pod about a second after it starts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datajump_api::RunPhase;
use datajump_tests::cluster;
use datajump_tests::load::{
    DIAMOND, create_runs, dependent_latencies, peak_rss_mib, percentile, start_diamond_scheduler,
    watch_jobs, watch_run_phases,
};
use datajump_tests::scheduler::counters;
use kube::api::Api;
use tokio::sync::{mpsc, watch};

const NS: &str = "load-dev";
const RUNS: usize = 1_000;
const CAP: usize = 50;
/// The scheduler's resync period and pending timeout here: no reconcile is timed by them
/// within [`BOUND`].
const NEVER: &str = "86400";
/// How long the load may take before the test calls it stuck (2 cores finish it in about
/// four minutes).
const BOUND: Duration = Duration::from_secs(900);

#[test]
fn a_thousand_runs_under_a_cap_of_fifty_all_succeed_with_no_resync() {
    let Some(cluster) = cluster::shared() else {
        return;
    };
    let (port, mut scheduler) = start_diamond_scheduler(
        cluster,
        NS,
        CAP,
        &[
            ("DATAJUMP_RESYNC_SECONDS", NEVER),
            ("DATAJUMP_TASK_PENDING_TIMEOUT", NEVER),
        ],
    );

    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let tasks = RUNS * DIAMOND.len();
    let (names, seen, phases, elapsed) = runtime.block_on(async {
        let client = cluster.client().await;
        let (phases_tx, mut phases) = watch::channel(BTreeMap::new());
        tokio::spawn(watch_run_phases(
            Api::namespaced(client.clone(), NS),
            phases_tx,
        ));
        let (tx, mut rx) = mpsc::channel(1);
        let jobs = tokio::spawn(watch_jobs(Api::namespaced(client.clone(), NS), tasks, tx));
        rx.recv().await.expect("the Job watch started");
        let start = Instant::now();
        let names = create_runs(&client, NS, "diamond", RUNS).await;
        let seen = tokio::time::timeout(BOUND, jobs)
            .await
            .unwrap_or_else(|_| panic!("{tasks} task Jobs did not all finish within {BOUND:?}"))
            .expect("the Job watch task");
        let finished = |p: &BTreeMap<String, RunPhase>| {
            names
                .iter()
                .all(|n| p.get(n).is_some_and(|p| p.is_finished()))
        };
        // The last runs record their result a moment after their last Job finishes.
        let left = BOUND.saturating_sub(start.elapsed());
        let _ = tokio::time::timeout(left, phases.wait_for(finished)).await;
        let elapsed = start.elapsed();
        let phases = phases.borrow().clone();
        (names, seen, phases, elapsed)
    });

    let not_succeeded: Vec<_> = names
        .iter()
        .filter(|n| phases.get(*n) != Some(&RunPhase::Succeeded))
        .map(|n| (n, phases.get(n)))
        .collect();
    assert!(
        not_succeeded.is_empty(),
        "{} of {RUNS} runs did not succeed within {elapsed:?}: {:?}",
        not_succeeded.len(),
        &not_succeeded[..not_succeeded.len().min(10)]
    );
    assert_eq!(seen.created.len(), tasks, "one Job per task");
    assert!(
        seen.max_in_flight <= CAP,
        "{} Jobs were in flight at once, over the cap of {CAP}",
        seen.max_in_flight
    );
    assert!(
        seen.max_in_flight >= CAP * 9 / 10,
        "the cap was never nearly used ({} at most): the scheduler held work back",
        seen.max_in_flight
    );
    let c = counters(port);
    assert_eq!(c.get("task_success_total"), Some(&(tasks as f64)));
    let latencies = dependent_latencies(&seen, &names, &DIAMOND);
    println!(
        "{RUNS} runs x {} tasks, cap {CAP}: {elapsed:.1?}, {:.1} tasks/s, at most {} Jobs in flight; \
         completion -> dependent Job created p50 {:?} p99 {:?} (includes waiting for a slot); \
         scheduler peak RSS {:?} MiB",
        DIAMOND.len(),
        tasks as f64 / elapsed.as_secs_f64(),
        seen.max_in_flight,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        peak_rss_mib(scheduler.id()),
    );
    assert!(scheduler.running(), "{}", scheduler.output());
}

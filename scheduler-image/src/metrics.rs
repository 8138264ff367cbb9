//! Prometheus metrics. The first three names are fixed: the platform's Grafana dashboard
//! queries `task_total`, `task_success_total` and `scheduler_running_tasks`.
//!
//! prometheus-client appends `_total` to counters, so they are registered as `task` and
//! `task_success`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use datajump_api::{RunPhase, TaskPhase};

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The scheduler's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Task attempts that finished (succeeded or failed terminally).
    pub tasks: Counter,
    /// Tasks that succeeded.
    pub task_successes: Counter,
    /// Task Jobs currently active across all runs.
    pub running_tasks: Gauge,
    /// Finished runs by phase.
    pub runs: Family<Labels, Counter>,
    /// Run duration (start to finish) by namespace, workflow and phase.
    pub run_duration: HistogramFamily,
    /// Ticks missed (beyond the starting deadline or dropped by the catch-up policy).
    pub missed_ticks: Counter,
    /// Reconcile failures.
    pub reconcile_errors: Counter,
    /// Run reconciles deferred because the cache did not yet show this scheduler's own last
    /// status write.
    pub stale_reads: Counter,
    /// 1 while this replica holds the leader Lease.
    pub is_leader: Gauge,
}

fn duration_histogram() -> Histogram {
    // 1 s .. ~9 h.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers all metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            tasks: Counter::default(),
            task_successes: Counter::default(),
            running_tasks: Gauge::default(),
            runs: Family::default(),
            run_duration: Family::new_with_constructor(duration_histogram),
            missed_ticks: Counter::default(),
            reconcile_errors: Counter::default(),
            stale_reads: Counter::default(),
            is_leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "task",
            "Workflow tasks finished (succeeded or failed)",
            m.tasks.clone(),
        );
        registry.register(
            "task_success",
            "Workflow tasks succeeded",
            m.task_successes.clone(),
        );
        registry.register(
            "scheduler_running_tasks",
            "Task Jobs currently running",
            m.running_tasks.clone(),
        );
        registry.register(
            "workflow_runs",
            "Workflow runs finished, by phase",
            m.runs.clone(),
        );
        registry.register(
            "workflow_run_duration_seconds",
            "Duration of finished workflow runs",
            m.run_duration.clone(),
        );
        registry.register(
            "scheduler_missed_ticks",
            "Schedule ticks missed (starting deadline or catch-up policy)",
            m.missed_ticks.clone(),
        );
        registry.register(
            "scheduler_reconcile_errors",
            "Reconciles that failed and will be retried",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "scheduler_stale_reads",
            "Run reconciles deferred until the cache showed the scheduler's own last status write",
            m.stale_reads.clone(),
        );
        registry.register(
            "scheduler_leader",
            "1 while this replica holds the leader Lease",
            m.is_leader.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts a task that reached a terminal phase (skipped tasks never ran and are not counted).
    pub fn task_finished(&self, phase: TaskPhase) {
        match phase {
            TaskPhase::Succeeded => {
                self.tasks.inc();
                self.task_successes.inc();
            }
            TaskPhase::Failed => {
                self.tasks.inc();
            }
            _ => {}
        }
    }

    /// Records a finished run.
    pub fn run_finished(&self, namespace: &str, workflow: &str, phase: RunPhase, seconds: f64) {
        let phase = format!("{phase:?}");
        self.runs
            .get_or_create(&vec![("phase".into(), phase.clone())])
            .inc();
        let labels = vec![
            ("namespace".into(), namespace.to_string()),
            ("workflow".into(), workflow.to_string()),
            ("phase".into(), phase),
        ];
        self.run_duration
            .get_or_create(&labels)
            .observe(seconds.max(0.0));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_dashboard_names_exactly() {
        let m = Metrics::new();
        m.task_finished(TaskPhase::Succeeded);
        m.task_finished(TaskPhase::Failed);
        m.task_finished(TaskPhase::Skipped);
        m.running_tasks.set(7);
        m.run_finished("data", "etl", RunPhase::Succeeded, 42.0);
        let text = m.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"task_total 2"), "{text}");
        assert!(lines.contains(&"task_success_total 1"), "{text}");
        assert!(lines.contains(&"scheduler_running_tasks 7"), "{text}");
        assert!(
            lines.contains(&"workflow_runs_total{phase=\"Succeeded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "workflow_run_duration_seconds_count{namespace=\"data\",workflow=\"etl\",phase=\"Succeeded\"} 1"
            ),
            "{text}"
        );
    }
}

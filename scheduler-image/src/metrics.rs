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

/// Most workflows (namespace and name) the per-workflow run metrics keep a series for; runs of
/// further workflows are counted under `namespace="_other", workflow="_other"`. Each workflow
/// costs 2 × 17 histogram series per phase it ended in, so this bounds the exposition (and
/// Prometheus) whatever number of workflows a cluster holds or has deleted.
pub const MAX_WORKFLOW_SERIES: usize = 500;

/// The label value for workflows past [`MAX_WORKFLOW_SERIES`].
const OTHER: &str = "_other";
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
    /// Task logs stored in the log archive.
    pub logs_archived: Counter,
    /// Bytes of task logs stored in the log archive.
    pub log_archive_bytes: Counter,
    /// Attempts to archive a task log that failed (the pod stays; retried).
    pub log_archive_failures: Counter,
    /// Pods deleted without their log archived, the archive having failed for the whole
    /// give-up time.
    pub log_archive_given_up: Counter,
    /// The workflows that have their own series in `run_duration`.
    workflows_seen: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
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
            logs_archived: Counter::default(),
            log_archive_bytes: Counter::default(),
            log_archive_failures: Counter::default(),
            log_archive_given_up: Counter::default(),
            registry: Registry::default(),
            workflows_seen: Default::default(),
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
            "Duration of finished workflow runs, by namespace, workflow (at most 500, then _other) and phase; its _count by phase gives each workflow's success rate",
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
        registry.register(
            "scheduler_logs_archived",
            "Task logs stored in the log archive",
            m.logs_archived.clone(),
        );
        registry.register(
            "scheduler_log_archive_bytes",
            "Bytes of task logs stored in the log archive",
            m.log_archive_bytes.clone(),
        );
        registry.register(
            "scheduler_log_archive_failures",
            "Task logs that could not be archived (their pods stay; retried)",
            m.log_archive_failures.clone(),
        );
        registry.register(
            "scheduler_log_archive_given_up",
            "Task pods deleted without their log archived (the archive failed for the whole give-up time)",
            m.log_archive_given_up.clone(),
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
        let (namespace, workflow) = self.series_of(namespace, workflow);
        let labels = vec![
            ("namespace".into(), namespace),
            ("workflow".into(), workflow),
            ("phase".into(), phase),
        ];
        self.run_duration
            .get_or_create(&labels)
            .observe(seconds.max(0.0));
    }

    /// The (namespace, workflow) labels of a workflow's runs: its own while fewer than
    /// [`MAX_WORKFLOW_SERIES`] workflows have series, else `_other`.
    fn series_of(&self, namespace: &str, workflow: &str) -> (String, String) {
        let key = (namespace.to_string(), workflow.to_string());
        let mut seen = self
            .workflows_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.contains(&key) || seen.len() < MAX_WORKFLOW_SERIES {
            seen.insert(key.clone());
            key
        } else {
            (OTHER.to_string(), OTHER.to_string())
        }
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

    #[test]
    fn per_workflow_series_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_WORKFLOW_SERIES + 20 {
            m.run_finished("data", &format!("wf-{i}"), RunPhase::Succeeded, 1.0);
        }
        m.run_finished("data", "wf-0", RunPhase::Failed, 1.0);
        let text = m.render();
        let count_series = text
            .lines()
            .filter(|l| l.starts_with("workflow_run_duration_seconds_count{"))
            .count();
        assert_eq!(
            count_series,
            MAX_WORKFLOW_SERIES + 2,
            "{} series",
            count_series
        );
        assert!(
            text.contains("workflow_run_duration_seconds_count{namespace=\"_other\",workflow=\"_other\",phase=\"Succeeded\"} 20"),
            "the workflows past the bound share one series"
        );
        assert!(
            text.contains("workflow_run_duration_seconds_count{namespace=\"data\",workflow=\"wf-0\",phase=\"Failed\"} 1"),
            "a workflow with a series keeps it for every phase"
        );
    }
}

//! The workflow scheduler: its leader Lease, the leader's `/metrics` (read through the API
//! server's pod proxy, or the Service's when no pod holds the Lease), one line per WorkflowRun
//! and the newest runs in full. Runs are read page by page and only the newest `--max-runs`
//! are kept, so thousands of runs cost one line each.

use std::time::Duration;

use datajump_api::WorkflowRun;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::ApiResource;
use serde_json::Value;

use super::collect::{Notes, Request, get_one, list_each, name_of};
use super::objects::redact_object;
use super::{Part, Sink};
use crate::output;

/// How long the metrics may take: the proxy waits for a pod that does not answer as long as
/// the API server's own timeout, and the report does not.
const METRICS_WAIT: Duration = Duration::from_secs(5);

/// The scheduler's container port (the chart's `http`, where `/metrics` is served).
const METRICS_PORT: u16 = 8080;

/// Writes the Lease and returns its holder (the leader pod's name).
pub(crate) async fn write_lease(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
    fullname: &str,
) -> anyhow::Result<Option<String>> {
    let ar = ApiResource::erase::<Lease>(&());
    let name = format!("{fullname}-scheduler-leader");
    let Some(lease) = get_one(client, notes, &ar, Some(ns), &name).await? else {
        return Ok(None);
    };
    sink.put(Part::Lease(&lease))?;
    Ok(lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(str::to_string))
}

/// Writes the leader's `/metrics` (the Service's when there is no leader).
pub(crate) async fn write_metrics(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
    fullname: &str,
    leader: Option<&str>,
) -> anyhow::Result<()> {
    let (path, request) = match leader {
        Some(pod) => (
            format!("/api/v1/namespaces/{ns}/pods/{pod}:{METRICS_PORT}/proxy/metrics"),
            Request::new("get", "pods/proxy").namespaced(ns).named(pod),
        ),
        None => {
            let service = format!("{fullname}-scheduler");
            (
                format!("/api/v1/namespaces/{ns}/services/{service}:http/proxy/metrics"),
                Request::new("get", "services/proxy")
                    .namespaced(ns)
                    .named(&service),
            )
        }
    };
    let http = http::Request::get(&path).body(Vec::new())?;
    match tokio::time::timeout(METRICS_WAIT, client.request_text(http)).await {
        Ok(Ok(text)) => sink.put(Part::Metrics(&text))?,
        Ok(Err(e)) => notes.file(&request, e)?,
        Err(_) => notes.unavailable(
            "the scheduler's /metrics",
            format!("{path} did not answer within {}s", METRICS_WAIT.as_secs()),
        ),
    }
    Ok(())
}

/// One run, as a line of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunLine {
    created: String,
    name: String,
    workflow: String,
    phase: String,
    started: String,
    finished: String,
}

impl RunLine {
    fn of(run: &Value) -> Self {
        let text = |p: &str| {
            run.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string()
        };
        Self {
            created: text("/metadata/creationTimestamp"),
            name: text("/metadata/name"),
            workflow: text("/spec/workflowName"),
            phase: text("/status/phase"),
            started: text("/status/startTime"),
            finished: text("/status/completionTime"),
        }
    }
}

/// The newest `keep` of the runs offered, by creation time (then name).
#[derive(Debug)]
struct Newest {
    keep: usize,
    runs: Vec<(String, String, Value)>,
}

impl Newest {
    fn offer(&mut self, run: Value) {
        if self.keep == 0 {
            return;
        }
        let created = run
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.runs.push((created, name_of(&run).to_string(), run));
        // Trim in batches: sorting after every run would be quadratic.
        if self.runs.len() >= 2 * self.keep {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.runs.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
        self.runs.truncate(self.keep);
    }
}

/// Writes one line per WorkflowRun (newest first) and the newest `max_runs` in full; how many
/// runs there are.
pub(crate) async fn write_runs(
    client: &Client,
    notes: &mut Notes,
    sink: &mut impl Sink,
    ns: &str,
    max_runs: usize,
) -> anyhow::Result<usize> {
    let ar = ApiResource::erase::<WorkflowRun>(&());
    let mut lines = Vec::new();
    let mut newest = Newest {
        keep: max_runs,
        runs: Vec::new(),
    };
    let listed = list_each(client, notes, &ar, Some(ns), |run| {
        lines.push(RunLine::of(&run));
        newest.offer(run);
        Ok(())
    })
    .await?;
    if !listed {
        return Ok(0);
    }
    newest.trim();
    for (_, name, mut run) in newest.runs {
        redact_object(&mut run);
        sink.put(Part::Run {
            name: &name,
            value: &run,
        })?;
    }
    lines.sort_by(|a, b| (&b.created, &b.name).cmp(&(&a.created, &a.name)));
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.created.clone(),
                l.name.clone(),
                l.workflow.clone(),
                l.phase.clone(),
                l.started.clone(),
                l.finished.clone(),
            ]
        })
        .collect();
    let table = output::table(
        &[
            "CREATED", "NAME", "WORKFLOW", "PHASE", "STARTED", "FINISHED",
        ],
        &rows,
    );
    sink.put(Part::RunsIndex(&table))?;
    Ok(lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_runs_are_kept_whatever_order_they_come_in() {
        let mut newest = Newest {
            keep: 3,
            runs: Vec::new(),
        };
        for i in [5, 1, 9, 3, 7, 8, 2, 6, 4, 0] {
            newest.offer(json!({"metadata": {
                "name": format!("r{i}"),
                "creationTimestamp": format!("2026-01-01T00:00:0{i}Z")
            }}));
        }
        newest.trim();
        let names: Vec<&str> = newest.runs.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(names, ["r9", "r8", "r7"]);
        let line =
            RunLine::of(&json!({"metadata": {"name": "r"}, "spec": {"workflowName": "etl"}}));
        assert_eq!(line.phase, "-");
        assert_eq!(line.workflow, "etl");
    }
}

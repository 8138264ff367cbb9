//! The answers of the workflow verbs that check or change something: a manifest found valid, a
//! retry started, a run or a backfill followed to its end. Like every answer, one `Serialize`
//! struct each: the line people read, or the object with `-o json|yaml`. (A workflow applied,
//! suspended, resumed or deleted, and a run started, are `output::Changed`.)

use datajump_api::RunPhase;
use serde::Serialize;

use crate::output::{Changed, Render, Style};

/// `workflow validate`: the manifest is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Validated {
    pub file: String,
    /// `Workflow` or `WorkflowRun`.
    pub kind: &'static str,
    pub name: String,
    pub valid: bool,
    /// A Workflow's number of tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<usize>,
    /// A WorkflowRun's workflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
}

impl Render for Validated {
    fn human(&self, _: &Style) -> String {
        let what = match (self.tasks, &self.workflow) {
            (Some(n), _) => format!(" ({n} tasks)"),
            (None, Some(w)) => format!(" (a run of workflow {w})"),
            (None, None) => String::new(),
        };
        format!(
            "{}: {} {} is valid{what}\n",
            self.file, self.kind, self.name
        )
    }
}

/// A run followed to its end (`--watch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunOutcome {
    pub run: String,
    pub phase: RunPhase,
    pub succeeded_tasks: u32,
    pub total_tasks: u32,
}

impl Render for RunOutcome {
    fn human(&self, _: &Style) -> String {
        format!(
            "run {}: {:?} ({}/{} tasks succeeded)\n",
            self.run, self.phase, self.succeeded_tasks, self.total_tasks
        )
    }
}

/// `workflow retry`: the new run, the run it retries and the tasks it runs again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RetryStarted {
    #[serde(flatten)]
    pub run: Changed,
    pub retry_of: String,
    pub from_failed: bool,
    /// With `--from-failed`: the tasks it runs again (the others keep their success).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rerun: Vec<String>,
}

impl Render for RetryStarted {
    fn human(&self, _: &Style) -> String {
        let again = if self.from_failed {
            format!("runs {} again", self.rerun.join(", "))
        } else {
            "every task again".to_string()
        };
        format!(
            "workflowrun.datajump.io/{} created: retries {} ({again})\n",
            self.run.name, self.retry_of
        )
    }
}

/// A backfill followed to its end (`--watch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackfillOutcome {
    pub backfill: String,
    pub succeeded: usize,
    pub failed: Vec<String>,
    /// Runs someone stopped or terminated.
    pub stopped: Vec<String>,
    /// Runs the workflow's history limits deleted before their end was seen.
    pub pruned: usize,
}

impl Render for BackfillOutcome {
    fn human(&self, _: &Style) -> String {
        let pruned = if self.pruned > 0 {
            format!(
                ", {} pruned by the workflow's history limits before their end was seen",
                self.pruned
            )
        } else {
            String::new()
        };
        let stopped = if self.stopped.is_empty() {
            String::new()
        } else {
            format!(", {} stopped", self.stopped.len())
        };
        format!(
            "backfill {}: {} runs succeeded, {} failed{stopped}{pruned}\n",
            self.backfill,
            self.succeeded,
            self.failed.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_a_line_and_scripts_an_object() {
        let v = Validated {
            file: "etl.yaml".into(),
            kind: "Workflow",
            name: "etl".into(),
            valid: true,
            tasks: Some(4),
            workflow: None,
        };
        assert_eq!(
            v.human(&Style { color: false }),
            "etl.yaml: Workflow etl is valid (4 tasks)\n"
        );
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"file": "etl.yaml", "kind": "Workflow", "name": "etl", "valid": true, "tasks": 4})
        );
        let retry = RetryStarted {
            run: Changed::object(
                "WorkflowRun",
                "workflowrun.datajump.io",
                "etl-retry-1",
                "dj",
                "created",
                "",
            ),
            retry_of: "etl-1".into(),
            from_failed: true,
            rerun: vec!["load".into()],
        };
        assert_eq!(
            serde_json::to_value(&retry).unwrap(),
            serde_json::json!({"kind": "WorkflowRun", "name": "etl-retry-1", "namespace": "dj",
                               "action": "created", "retryOf": "etl-1", "fromFailed": true, "rerun": ["load"]})
        );
    }
}

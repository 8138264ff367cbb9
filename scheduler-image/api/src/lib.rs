//! The workflow API: the `Workflow` and `WorkflowRun` custom resources (group `datajump.io`,
//! version `v1alpha1`), their CRDs, the labels the scheduler puts on what it creates, object
//! names, the cron evaluator (one schedule, and a workflow's several read as one) and the
//! validation shared by the scheduler and the `kubectl datajump` plugin.
//!
//! A crate of its own so that everyone who reads or writes these resources shares exactly one
//! definition of each field without compiling the scheduler's controller, web server or metrics:
//! the scheduler executes them, chart-gen writes [`crds()`] into the chart, the plugin submits
//! and shows them.

/// The scheduler's global cap of task Jobs running at once when nothing sets
/// `DATAJUMP_MAX_RUNNING_TASKS`; the chart's environments set their own (dev and test fewer).
/// A `u16`, so that it widens without a cast into both the chart's `u32` and the scheduler's
/// `usize`.
pub const DEFAULT_MAX_RUNNING_TASKS: u16 = 50;

pub mod backfill;
pub mod flow;
pub mod k8s_names;
pub mod names;
pub mod pod;
pub mod runtime;
pub mod schedule;
pub mod schedules;
pub mod validate;

mod crd;
mod phase;
mod run;
mod workflow;

pub use crd::crds;
pub use flow::{FailureStrategy, RetryOn, TriggerRule};
pub use phase::{RunPhase, TaskPhase};
pub use run::*;
pub use workflow::*;

/// API group of both resources.
pub const GROUP: &str = "datajump.io";
/// API version of both resources.
pub const VERSION: &str = "v1alpha1";

/// Label naming the Workflow a WorkflowRun or Job belongs to.
pub const LABEL_WORKFLOW: &str = "datajump.io/workflow";
/// Label naming the WorkflowRun a Job belongs to.
pub const LABEL_RUN: &str = "datajump.io/run";
/// Label naming the task a Job executes.
pub const LABEL_TASK: &str = "datajump.io/task";
/// Label carrying the attempt number (1-based) of a task's Job.
pub const LABEL_ATTEMPT: &str = "datajump.io/attempt";
/// Annotation on a scheduled WorkflowRun with the tick (RFC 3339, UTC) it was created for.
pub const ANNOTATION_SCHEDULED_TIME: &str = "datajump.io/scheduled-time";
/// Label naming the backfill a WorkflowRun belongs to (`kubectl datajump workflow runs
/// --backfill`).
pub const LABEL_BACKFILL: &str = "datajump.io/backfill";
/// Label naming the task pool a task Job counts against.
pub const LABEL_POOL: &str = "datajump.io/pool";
/// Label on a WorkflowRun that retries another: the retried run's name.
pub const LABEL_RETRY_OF: &str = "datajump.io/retry-of";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_have_status_subresource_printer_columns_and_cel_rules() {
        let crds = crds();
        let names: Vec<_> = crds
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["workflows.datajump.io", "workflowruns.datajump.io"]);
        for crd in &crds {
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, VERSION);
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
            assert!(
                version
                    .additional_printer_columns
                    .as_ref()
                    .is_some_and(|c| c.len() >= 4)
            );
        }
        let json = serde_json::to_string(&crds).expect("CRDs serialize");
        for format in ["uint8", "uint16", "uint32", "uint64"] {
            assert!(
                !json.contains(&format!("\"format\":\"{format}\"")),
                "format {format} is unknown to Kubernetes"
            );
        }
        assert!(
            json.contains("\"format\":\"int32\""),
            "u32 fields become int32"
        );
        assert!(
            json.contains("a task cannot depend on itself"),
            "task CEL rule missing"
        );
        assert!(
            json.contains("self.workflowName == oldSelf.workflowName"),
            "run immutability rule missing"
        );
        let workflow = serde_json::to_string(&crds[0]).expect("CRD serializes");
        assert!(
            workflow.len() < 160_000,
            "the Workflow CRD is {} bytes; kubectl apply annotates at most 256 KiB",
            workflow.len()
        );
        assert!(
            !workflow.contains("requiredDuringSchedulingIgnoredDuringExecution\":{\"description"),
            "Kubernetes' own types carry no nested descriptions"
        );
        assert!(workflow.contains("When the task starts given how its"));
    }

    /// The CEL rules on a WorkflowRun's spec, by rule text.
    fn run_spec_rules() -> (Vec<String>, Vec<String>) {
        let crd = serde_json::to_value(&crds()[1]).expect("CRD serializes");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let fields = spec["properties"]
            .as_object()
            .expect("spec properties")
            .keys()
            .cloned()
            .collect();
        let rules = spec["x-kubernetes-validations"]
            .as_array()
            .expect("spec rules")
            .iter()
            .filter_map(|r| r["rule"].as_str().map(str::to_string))
            .collect();
        (fields, rules)
    }

    #[test]
    fn a_runs_spec_is_immutable_but_for_its_shutdown_which_only_escalates() {
        let (fields, rules) = run_spec_rules();
        let immutable = rules
            .iter()
            .find(|r| r.contains("oldSelf.workflowName"))
            .expect("the immutability rule");
        for field in &fields {
            let kept = immutable.contains(&format!("self.{field} == oldSelf.{field}"));
            assert_eq!(
                kept,
                field != "shutdown",
                "spec.{field}: only shutdown may change: {immutable}"
            );
        }
        let escalates = rules
            .iter()
            .find(|r| r.contains("oldSelf.shutdown"))
            .expect("the shutdown rule");
        assert!(escalates.contains("'Terminate'"), "{escalates}");
        let shutdown: Shutdown = serde_json::from_str("\"Terminate\"").expect("a value");
        assert_eq!(shutdown.phase(), RunPhase::Terminated);
        assert_eq!(Shutdown::Stop.phase(), RunPhase::Stopped);
        assert!(RunPhase::Stopped.is_finished() && RunPhase::Terminated.is_finished());
    }

    #[test]
    fn workflow_yaml_round_trips_with_defaults() {
        let yaml = r#"
apiVersion: datajump.io/v1alpha1
kind: Workflow
metadata: {name: etl, namespace: data}
spec:
  schedule: "@hourly"
  tasks:
    - name: extract
      image: busybox
    - name: load
      image: busybox
      dependsOn: [extract]
      env:
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
"#;
        let wf: Workflow = serde_yaml::from_str(yaml).expect("valid workflow yaml");
        assert_eq!(wf.spec.concurrency_policy, ConcurrencyPolicy::Allow);
        assert_eq!(wf.spec.successful_runs_history_limit, 3);
        assert_eq!(wf.spec.failed_runs_history_limit, 1);
        assert_eq!(wf.spec.tasks[1].depends_on, ["extract"]);
        assert_eq!(wf.spec.tasks[1].retry_backoff_seconds, 10);
        let back = serde_json::to_value(&wf).expect("serializes");
        assert_eq!(back["spec"]["tasks"][1]["dependsOn"][0], "extract");
        assert_eq!(back["spec"]["concurrencyPolicy"], "Allow");
    }
}

//! What a WorkflowRun did, read through kubectl the way a user would look: the run and its
//! tasks, its Jobs and task pods, the Events about it, and waiting for it to get somewhere.
//! For the tests that drive runs, on the fake kubelet or on a real node.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::{Cluster, wait_until};
use crate::plugin::Run;

/// `kubectl get -o json` of `args`, parsed.
pub fn get_json(cluster: &Cluster, args: &[&str]) -> Value {
    let out = cluster.kubectl_ok(args).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

/// The items of a `kubectl get KIND -n NS -l SELECTOR -o json` list.
pub fn list(cluster: &Cluster, ns: &str, kind: &str, selector: &str) -> Vec<Value> {
    get_json(
        cluster,
        &["get", kind, "-n", ns, "-l", selector, "-o", "json"],
    )["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The run's name from what `workflow run` (or `submit --run-now`) printed.
pub fn started_run(out: &Run) -> String {
    assert!(out.ok, "starting a run failed: {}", out.stderr);
    out.stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("workflowrun.datajump.io/"))
        .unwrap_or_else(|| panic!("no run name in {:?}", out.stdout))
        .to_string()
}

/// A run, or `None` when it does not exist.
pub fn run(cluster: &Cluster, ns: &str, name: &str) -> Option<Value> {
    let out = cluster
        .kubectl_ok(&["get", "workflowrun", name, "-n", ns, "-o", "json"])
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// A task's entry in the run's status (panics naming the run when it has none).
pub fn task<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["status"]["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no task {name} in {run:#}"))
}

/// A task's phase in the run's status, if it has an entry.
pub fn task_phase(run: &Value, name: &str) -> Option<String> {
    run["status"]["tasks"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)?["phase"]
        .as_str()
        .map(str::to_string)
}

/// Waits until the run satisfies `done` (up to `timeout`); the run then.
pub fn wait_for_run(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(&format!("run {name}: {what}"), timeout, || {
        run(cluster, ns, name).filter(|r| done(r))
    })
}

/// Waits until the run has finished (any final phase); the run then.
pub fn wait_for_end(cluster: &Cluster, ns: &str, name: &str, timeout: Duration) -> Value {
    wait_for_run(cluster, ns, name, "to end", timeout, |r| {
        matches!(
            r["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Stopped" | "Terminated")
        )
    })
}

/// The run's Jobs (label `datajump.io/run`), by name.
pub fn job_names(cluster: &Cluster, ns: &str, run: &str) -> Vec<String> {
    let mut names: Vec<String> = list(cluster, ns, "jobs", &format!("datajump.io/run={run}"))
        .iter()
        .filter_map(|j| j["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// A Job as JSON, or `None` when it does not exist.
pub fn job(cluster: &Cluster, ns: &str, name: &str) -> Option<Value> {
    let out = cluster
        .kubectl_ok(&["get", "job", name, "-n", ns, "-o", "json"])
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// The value of environment variable `var` of a Job's task container.
pub fn job_env(job: &Value, var: &str) -> Option<String> {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == var)?["value"]
        .as_str()
        .map(str::to_string)
}

/// The pods of one task of the run.
pub fn task_pods(cluster: &Cluster, ns: &str, run: &str, task: &str) -> Vec<Value> {
    list(
        cluster,
        ns,
        "pods",
        &format!("datajump.io/run={run},datajump.io/task={task}"),
    )
}

/// The reasons of the Events about the run, oldest first.
pub fn event_reasons(cluster: &Cluster, ns: &str, run: &str) -> Vec<String> {
    let events = get_json(
        cluster,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.kind=WorkflowRun,involvedObject.name={run}"),
            "-o",
            "json",
        ],
    );
    let mut events: Vec<(String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let at = e["eventTime"]
                .as_str()
                .or(e["firstTimestamp"].as_str())
                .or(e["metadata"]["creationTimestamp"].as_str())
                .unwrap_or_default();
            (
                at.to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    events.sort();
    events.into_iter().map(|(_, reason)| reason).collect()
}

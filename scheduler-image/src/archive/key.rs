//! Where a task attempt's log lives in the archive:
//! `<prefix>/<namespace>/<workflow>/<run>/<task>/<attempt>.log`. The scheduler builds the key
//! from the Job it archives; the HTTP endpoint builds it from a request path, so every segment
//! is checked to be a Kubernetes name (no `/`, no `..`): a request cannot reach another key.

use std::fmt;

/// A segment that is not a Kubernetes object name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not a Kubernetes name (lower-case letters, digits, '-' and '.')")]
pub struct BadSegment {
    /// Which part of the key.
    pub what: &'static str,
    /// What was given.
    pub value: String,
}

/// The identity of one task attempt's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    namespace: String,
    workflow: String,
    run: String,
    task: String,
    attempt: u32,
}

/// Checks that `value` is a DNS-1123 subdomain-like name: what namespaces, workflows, runs and
/// tasks are named with, and never a path.
fn segment(what: &'static str, value: &str) -> Result<String, BadSegment> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && !value.contains("..");
    if ok {
        Ok(value.to_string())
    } else {
        Err(BadSegment {
            what,
            value: value.to_string(),
        })
    }
}

impl LogKey {
    /// The log of `attempt` (1-based) of `task` in run `run` of `workflow` in `namespace`.
    pub fn new(
        namespace: &str,
        workflow: &str,
        run: &str,
        task: &str,
        attempt: u32,
    ) -> Result<Self, BadSegment> {
        if attempt == 0 {
            return Err(BadSegment {
                what: "attempt",
                value: "0".into(),
            });
        }
        Ok(Self {
            namespace: segment("namespace", namespace)?,
            workflow: segment("workflow", workflow)?,
            run: segment("run", run)?,
            task: segment("task", task)?,
            attempt,
        })
    }

    /// The object key under `prefix` (empty, or segments joined by `/` without leading or
    /// trailing `/`; stray slashes are dropped).
    pub fn object_key(&self, prefix: &str) -> String {
        let prefix = prefix.trim_matches('/');
        let path = self.to_string();
        if prefix.is_empty() {
            path
        } else {
            format!("{prefix}/{path}")
        }
    }
}

impl fmt::Display for LogKey {
    /// The key without prefix: `<namespace>/<workflow>/<run>/<task>/<attempt>.log`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}.log",
            self.namespace, self.workflow, self.run, self.task, self.attempt
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_namespace_workflow_run_task_attempt_under_the_prefix() {
        let key = LogKey::new("data", "etl", "etl-202605010200", "load", 2).expect("valid");
        assert_eq!(key.object_key(""), "data/etl/etl-202605010200/load/2.log");
        assert_eq!(
            key.object_key("datajump/prod"),
            "datajump/prod/data/etl/etl-202605010200/load/2.log"
        );
        assert_eq!(
            key.object_key("/logs/"),
            "logs/data/etl/etl-202605010200/load/2.log"
        );
    }

    #[test]
    fn a_segment_that_could_leave_its_place_is_refused() {
        for (ns, wf, run, task) in [
            ("data", "etl", "..", "load"),
            ("data", "etl/x", "r", "load"),
            ("data", "etl", "r", ""),
            ("Data", "etl", "r", "load"),
            ("data", "etl", "r", "a..b"),
            ("data", "etl", "r", ".hidden"),
            ("data", "etl", "r", "load%2F"),
        ] {
            assert!(
                LogKey::new(ns, wf, run, task, 1).is_err(),
                "{ns}/{wf}/{run}/{task}"
            );
        }
        let err = LogKey::new("data", "etl", "r", "load", 0).expect_err("attempt 0");
        assert_eq!(err.what, "attempt");
    }
}
